import { z } from "zod";
import { AZURE_AI_HOST_SUFFIXES } from "../policy/identity.js";

/**
 * The one configuration of the app, parsed once from the environment.
 * Names match the Bicep outputs / app settings in infra/main.bicep and .env.example.
 */
const boolish = z
  .enum(["true", "false", "1", "0"])
  .transform((v) => v === "true" || v === "1");

/** A JSON-valued setting, parsed and validated with `schema`. */
const json = <S extends z.ZodType>(schema: S) =>
  z.string().transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message: "must be JSON" });
      return z.NEVER;
    }
  }).pipe(schema);

const GatewayInstances = z.record(
  z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/),
  z.strictObject({
    subscriptionId: z.guid().optional(),
    resourceGroup: z.string().min(1).max(90).optional(),
    serviceName: z.string().regex(/^[a-zA-Z][a-zA-Z0-9-]{0,49}$/).optional(),
  }),
);
/** A host of an Azure AI resource (policy/identity.ts), as an operator lists it for the gateway's own identity. */
const AzureAiHost = z
  .string()
  .transform((h) => h.trim().toLowerCase())
  .pipe(z.string().regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/, "must be a host name, no scheme or path"))
  .refine((h) => AZURE_AI_HOST_SUFFIXES.some((s) => h.endsWith(s)), `must be an Azure AI service's host (${AZURE_AI_HOST_SUFFIXES.map((s) => `*${s}`).join(", ")})`);
/**
 * A tenant id as tokens carry it: Entra's `tid` is a lower-case GUID (auth/verifier.ts refuses any other), so
 * a GUID written in capitals is that tenant; any other id (local dev tenants) is kept exactly.
 */
const tenantKey = (id: string) => (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id) ? id.toLowerCase() : id);

const GatewayAssignments = z.record(
  z.string().min(1),
  z.strictObject({
    instance: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/).optional(),
    key: z.string().regex(/^[a-z0-9]{1,10}$/).optional(),
    // Client ids of user-assigned identities attached to the tenant's gateway for it alone (src/policy/identity.ts).
    identities: z.array(z.guid()).max(20).optional(),
    // Azure AI resources the gateway's own identity may call for this tenant alone, on top of GATEWAY_SHARED_IDENTITY_HOSTS.
    sharedIdentityHosts: z.array(AzureAiHost).max(50).optional(),
  }),
);

const ConfigSchema = z
  .object({
    AIGOV_DATA_DIR: z.string().default(".data"),
    // Cosmos DB. COSMOS_KEY is only accepted for the embedded local server (see AIGOV_LOCAL).
    COSMOS_ENDPOINT: z.url(),
    COSMOS_DATABASE: z.string().min(1).default("aigov"),
    COSMOS_CONTAINER: z.string().min(1).default("resources"),
    COSMOS_LOCAL_KEY: z.string().optional(),
    // Auth: "entra" validates Entra ID tokens; "dev" validates tokens from the local dev issuer.
    AUTH_MODE: z.enum(["entra", "dev"]).default("entra"),
    AUTH_ISSUER: z.string().min(1),
    AUTH_AUDIENCE: z.string().min(1),
    AUTH_JWKS_URI: z.url(),
    AUTH_CLOCK_SKEW_SECONDS: z.coerce.number().int().min(0).max(600).default(120),
    AUTH_TENANT_CLAIM: z.string().default("tid"),
    // AUTH_MODE=entra only: the Entra tenants (tid GUIDs, comma- or space-separated) whose tokens are accepted.
    // Unset or empty = every tenant in which the multi-tenant app registration has a service principal.
    AUTH_ALLOWED_TENANTS: z
      .string()
      .default("")
      .transform((v) => v.split(/[\s,]+/).filter((t) => t !== "").map((t) => t.toLowerCase()))
      .pipe(z.array(z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "must be tenant ids (GUIDs)"))),
    // Agent sync: the tenants (ids, comma- or space-separated) whose connections may reach other clouds as
    // the platform's own identity (workload identity federation, or the default credentials). Every
    // tenant presents the same identity, so a tenant not named here could read whatever another tenant
    // granted it. Unset = none outside local mode (their connections bring their own credentials).
    AGENT_PLATFORM_IDENTITY_TENANTS: z
      .string()
      .default("")
      .transform((v) => v.split(/[\s,]+/).filter((t) => t !== "").map(tenantKey)),
    // Events: Event Grid topic endpoint (CloudEvents schema) or the local NDJSON sink.
    EVENTGRID_TOPIC_ENDPOINT: z.url().optional(),
    EVENTS_WEBHOOK_URL: z.url().optional(),
    AIGOV_LOCAL: boolish.default(false),
    // Key Vault for secrets (signing keys, peppers, provider keys). Unset = encrypted files under the data dir (local only).
    KEYVAULT_URI: z.url().optional(),
    // The vault of provider keys (model backends' keys, MCP upstream header secrets): the only vault the
    // gateway's identity reads, so the control plane's signing keys and peppers stay out of its reach. Unset = KEYVAULT_URI.
    PROVIDER_KEYVAULT_URI: z.url().optional(),
    // The app's public base URL, for links sent to people (approver links). Defaults to https://$WEBSITE_HOSTNAME.
    AIGOV_PUBLIC_URL: z.url().optional(),
    WEBSITE_HOSTNAME: z.string().optional(),
    // Set by App Service in Azure; used to refuse local-only settings there.
    WEBSITE_SITE_NAME: z.string().optional(),
    // Not a setting: which variable Azure set (see azureSignal), when the app runs in Azure.
    __azureSignal: z.string().optional(),
    // NCRONTAB (six fields) of the exemption expiry sweep; the timer reads it as %EXEMPTION_SWEEP_SCHEDULE%.
    EXEMPTION_SWEEP_SCHEDULE: z.string().regex(/^\S+( \S+){5}$/, "must be six NCRONTAB fields").default("0 */5 * * * *"),
    // NCRONTAB of the access review sweep (starts missing campaign orchestrations, e.g. a recurring review's next one): %ACCESS_REVIEW_SWEEP_SCHEDULE%.
    // NCRONTAB of the sandbox expiry sweep (notices, then lock and key suspension): %PROJECT_LIFECYCLE_SCHEDULE%.
    PROJECT_LIFECYCLE_SCHEDULE: z.string().regex(/^\S+( \S+){5}$/, "must be six NCRONTAB fields").default("0 0 * * * *"),
    ACCESS_REVIEW_SWEEP_SCHEDULE: z.string().regex(/^\S+( \S+){5}$/, "must be six NCRONTAB fields").default("0 */15 * * * *"),
    // The API Management instance the tenant's artifacts are published to. Unset = files under the data dir (local only).
    APIM_SUBSCRIPTION_ID: z.guid().optional(),
    APIM_RESOURCE_GROUP: z.string().min(1).max(90).optional(),
    // Retries of one publish step against the gateway (durable activity retry; doubles each time).
    PUBLISH_RETRY_FIRST_INTERVAL_MS: z.coerce.number().int().min(100).max(600_000).default(2000),
    PUBLISH_RETRY_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(6),
    // How long one publish step sends before the next step goes on (a third of Flex Consumption's default
    // 30-minute function timeout); 0 sends one artifact per step. At most 15 minutes: a newer revision
    // waits out the step in hand, and its orchestration waits for the gateway 20 minutes at most.
    PUBLISH_SLICE_SECONDS: z.coerce.number().int().min(0).max(900).default(600),
    // Scheduled key rotations started per run of the key lifecycle job (each rotation costs the
    // management plane ~4 ARM writes and 1 Key Vault secret write; ARM allows ~10 writes/s per principal).
    KEY_ROTATIONS_PER_RUN: z.coerce.number().int().min(1).max(100_000).default(120),
    APIM_SERVICE_NAME: z.string().regex(/^[a-zA-Z][a-zA-Z0-9-]{0,49}$/, "an API Management service name").optional(),
    // More API Management instances, by name ({"eu": {"subscriptionId", "resourceGroup", "serviceName"}}; locally
    // a name alone is a folder .data/apim-<name>/), and tenants assigned to them or given an explicit
    // gateway key ({"<tenantId>": {"instance": "eu", "key": "abc123"}}). Unassigned tenants use APIM_*.
    GATEWAY_INSTANCES: json(GatewayInstances).default({}),
    // Origins whose pages may call the published APIs from a browser (a cors policy on each API aigov
    // publishes): the portal's, comma-separated. Locally the local host's own origins by default.
    GATEWAY_BROWSER_ORIGINS: z
      .string()
      .default("")
      .transform((v) => v.split(",").map((s) => s.trim().replace(/\/+$/, "").toLowerCase()).filter(Boolean))
      .pipe(z.array(z.string().regex(/^https?:\/\/[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$/, "must be origins: http(s)://host[:port], no path")).max(20)),
    GATEWAY_ASSIGNMENTS: json(GatewayAssignments).default({}),
    // The platform's own Azure AI resources (hosts, comma-separated) the gateway's own identity may call for
    // every tenant; `*` for any Azure AI service's host. Unset: none in Azure (each tenant's own identities
    // then, or hosts GATEWAY_ASSIGNMENTS lists for it alone); any locally. policy/identity.ts, ADR 022.
    GATEWAY_SHARED_IDENTITY_HOSTS: z
      .string()
      .optional()
      .transform((v) => (v === undefined ? undefined : v.trim() === "*" ? ("any" as const) : v.split(/[\s,]+/).filter((h) => h !== "")))
      .pipe(z.union([z.undefined(), z.literal("any"), z.array(AzureAiHost).max(50)])),
    // The Log Analytics workspace (its workspace id, a GUID) APIM's diagnostic settings send the gateway
    // and LLM logs to: usage ingestion reads it (in Azure; locally it reads the local gateway's files).
    USAGE_LOG_WORKSPACE_ID: z.guid().optional(),
    // Days each rollup granularity is kept (minute, hour, day).
    USAGE_RETENTION_MINUTE_DAYS: z.coerce.number().int().min(1).max(30).default(3),
    USAGE_RETENTION_HOUR_DAYS: z.coerce.number().int().min(7).max(400).default(95),
    USAGE_RETENTION_DAY_DAYS: z.coerce.number().int().min(31).max(3650).default(800),
  })
  .superRefine((c, ctx) => {
    const inAzure = c.__azureSignal !== undefined;
    if (inAzure && c.AIGOV_LOCAL) {
      ctx.addIssue({
        code: "custom",
        path: ["AIGOV_LOCAL"],
        message: `local mode is refused in Azure (${c.__azureSignal} is set): it serves an embedded store, dev tokens and files instead of Cosmos DB, Entra ID and Key Vault`,
      });
    }
    if (inAzure && c.AUTH_MODE === "dev") {
      ctx.addIssue({ code: "custom", path: ["AUTH_MODE"], message: "dev tokens are refused in Azure" });
    }
    if (inAzure && c.COSMOS_LOCAL_KEY !== undefined) {
      ctx.addIssue({ code: "custom", path: ["COSMOS_LOCAL_KEY"], message: "account keys are not used in Azure; use managed identity" });
    }
    if (!c.AIGOV_LOCAL && c.KEYVAULT_URI === undefined) {
      ctx.addIssue({ code: "custom", path: ["KEYVAULT_URI"], message: "is required outside local mode" });
    }
    const apim = [c.APIM_SUBSCRIPTION_ID, c.APIM_RESOURCE_GROUP, c.APIM_SERVICE_NAME].filter((v) => v !== undefined).length;
    if (apim !== 0 && apim !== 3) {
      ctx.addIssue({ code: "custom", path: ["APIM_SERVICE_NAME"], message: "APIM_SUBSCRIPTION_ID, APIM_RESOURCE_GROUP and APIM_SERVICE_NAME go together" });
    }
    if (!c.AIGOV_LOCAL && apim === 0) {
      ctx.addIssue({ code: "custom", path: ["APIM_SERVICE_NAME"], message: "is required outside local mode (with APIM_SUBSCRIPTION_ID and APIM_RESOURCE_GROUP)" });
    }
    for (const [name, inst] of Object.entries(c.GATEWAY_INSTANCES)) {
      const set = [inst.subscriptionId, inst.resourceGroup, inst.serviceName].filter((v) => v !== undefined).length;
      if (name === "default") ctx.addIssue({ code: "custom", path: ["GATEWAY_INSTANCES"], message: "'default' is the APIM_* instance; name the others" });
      if (set !== 0 && set !== 3) ctx.addIssue({ code: "custom", path: ["GATEWAY_INSTANCES", name], message: "subscriptionId, resourceGroup and serviceName go together" });
      if (!c.AIGOV_LOCAL && set !== 3) ctx.addIssue({ code: "custom", path: ["GATEWAY_INSTANCES", name], message: "outside local mode an instance needs subscriptionId, resourceGroup and serviceName" });
    }
    // An identity is one tenant's alone (ADR 022): given to two, each could reach what the other's roles allow.
    const identityOwner = new Map<string, string>();
    const tenants = new Map<string, string>();
    for (const [tenant, a] of Object.entries(c.GATEWAY_ASSIGNMENTS)) {
      const other = tenants.get(tenantKey(tenant));
      if (other !== undefined) ctx.addIssue({ code: "custom", path: ["GATEWAY_ASSIGNMENTS", tenant], message: `names the tenant '${other}' names (a tenant id GUID is matched in lower case, as tokens carry it)` });
      tenants.set(tenantKey(tenant), tenant);
      if (a.instance && a.instance !== "default" && !c.GATEWAY_INSTANCES[a.instance]) ctx.addIssue({ code: "custom", path: ["GATEWAY_ASSIGNMENTS", tenant, "instance"], message: `unknown instance '${a.instance}'` });
      for (const id of a.identities ?? []) {
        const other = identityOwner.get(id.toLowerCase());
        if (other !== undefined && other !== tenant) ctx.addIssue({ code: "custom", path: ["GATEWAY_ASSIGNMENTS", tenant, "identities"], message: `identity ${id} is assigned to tenant '${other}' too: an identity is one tenant's alone` });
        identityOwner.set(id.toLowerCase(), tenant);
      }
    }
    if (!c.AIGOV_LOCAL && c.USAGE_LOG_WORKSPACE_ID === undefined) {
      ctx.addIssue({ code: "custom", path: ["USAGE_LOG_WORKSPACE_ID"], message: "is required outside local mode (usage is read from the gateway's logs in Log Analytics)" });
    }
    if (!c.AIGOV_LOCAL && c.GATEWAY_BROWSER_ORIGINS.some((o) => !o.startsWith("https://"))) {
      ctx.addIssue({ code: "custom", path: ["GATEWAY_BROWSER_ORIGINS"], message: "outside local mode only https origins may call the gateway from a browser" });
    }
    if (!c.AIGOV_LOCAL && c.COSMOS_LOCAL_KEY !== undefined) {
      ctx.addIssue({ code: "custom", path: ["COSMOS_LOCAL_KEY"], message: "only valid with AIGOV_LOCAL=true" });
    }
  });

export interface Config {
  dataDir: string;
  local: boolean;
  cosmos: { endpoint: string; database: string; container: string; localKey?: string };
  auth: {
    mode: "entra" | "dev";
    issuer: string;
    audience: string;
    jwksUri: string;
    clockSkewSeconds: number;
    tenantClaim: string;
    /** AUTH_MODE=entra: the only tenants accepted; absent or empty = any tenant. */
    allowedTenants?: string[];
  };
  events: { eventGridEndpoint?: string; webhookUrl?: string };
  /** Tenants whose agent connections may use the platform's own identity (AGENT_PLATFORM_IDENTITY_TENANTS); every tenant locally. */
  platformIdentityTenants: "all" | string[];
  keyVaultUri?: string;
  /** Where provider keys live (the gateway reads them as Key Vault-backed named values); the control plane's vault when not set. */
  providerKeyVaultUri?: string;
  apim?: { subscriptionId: string; resourceGroup: string; serviceName: string };
  /** Named API Management instances besides the default (APIM_*); locally, folders .data/apim-<name>/. */
  gatewayInstances: Record<string, { subscriptionId: string; resourceGroup: string; serviceName: string } | { local: true }>;
  gatewayAssignments: Record<string, { instance?: string; key?: string; identities?: string[]; sharedIdentityHosts?: string[] }>;
  /** The Azure AI hosts the gateway's own identity may call for every tenant (GATEWAY_SHARED_IDENTITY_HOSTS); "any" locally unless set. */
  sharedIdentityHosts: "any" | string[];
  /** Origins whose pages may call the published APIs from a browser (the portal's). */
  browserOrigins: string[];
  publishRetry: { firstIntervalMs: number; maxAttempts: number };
  publishSliceSeconds: number;
  keyRotationsPerRun: number;
  usage: { workspaceId?: string; retentionDays: { minute: number; hour: number; day: number } };
  publicUrl: string;
}

export class ConfigError extends Error {}

/**
 * The variable that shows the app runs on Azure Functions, or undefined: App Service sets WEBSITE_INSTANCE_ID,
 * WEBSITE_SITE_NAME and WEBSITE_OWNER_NAME; Linux Consumption and Flex Consumption set CONTAINER_NAME, which
 * other container platforms set too, so it counts only beside the Functions host's own settings. The local
 * host sets none of them (it sets WEBSITE_HOSTNAME only).
 */
export function azureSignal(env: NodeJS.ProcessEnv): string | undefined {
  for (const name of ["WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME", "WEBSITE_OWNER_NAME"]) if (env[name]) return name;
  if (env.CONTAINER_NAME && Object.keys(env).some((k) => /^(AzureWebJobsStorage(__\w+)?|FUNCTIONS_WORKER_RUNTIME|FUNCTIONS_EXTENSION_VERSION)$/.test(k) && env[k])) {
    return "CONTAINER_NAME";
  }
  return undefined;
}

export function parseConfig(env: NodeJS.ProcessEnv): Config {
  const parsed = ConfigSchema.safeParse({ ...env, __azureSignal: azureSignal(env) });
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  const c = parsed.data;
  return {
    dataDir: c.AIGOV_DATA_DIR,
    local: c.AIGOV_LOCAL,
    cosmos: {
      endpoint: c.COSMOS_ENDPOINT,
      database: c.COSMOS_DATABASE,
      container: c.COSMOS_CONTAINER,
      ...(c.COSMOS_LOCAL_KEY !== undefined ? { localKey: c.COSMOS_LOCAL_KEY } : {}),
    },
    auth: {
      mode: c.AUTH_MODE,
      issuer: c.AUTH_ISSUER,
      audience: c.AUTH_AUDIENCE,
      jwksUri: c.AUTH_JWKS_URI,
      clockSkewSeconds: c.AUTH_CLOCK_SKEW_SECONDS,
      tenantClaim: c.AUTH_TENANT_CLAIM,
      ...(c.AUTH_ALLOWED_TENANTS.length > 0 ? { allowedTenants: c.AUTH_ALLOWED_TENANTS } : {}),
    },
    platformIdentityTenants: c.AIGOV_LOCAL ? "all" : c.AGENT_PLATFORM_IDENTITY_TENANTS,
    ...(c.KEYVAULT_URI !== undefined ? { keyVaultUri: c.KEYVAULT_URI } : {}),
    ...((c.PROVIDER_KEYVAULT_URI ?? c.KEYVAULT_URI) !== undefined ? { providerKeyVaultUri: c.PROVIDER_KEYVAULT_URI ?? c.KEYVAULT_URI } : {}),
    ...(c.APIM_SUBSCRIPTION_ID && c.APIM_RESOURCE_GROUP && c.APIM_SERVICE_NAME
      ? { apim: { subscriptionId: c.APIM_SUBSCRIPTION_ID, resourceGroup: c.APIM_RESOURCE_GROUP, serviceName: c.APIM_SERVICE_NAME } }
      : {}),
    gatewayInstances: Object.fromEntries(
      Object.entries(c.GATEWAY_INSTANCES).map(([name, i]) => [
        name,
        i.subscriptionId && i.resourceGroup && i.serviceName ? { subscriptionId: i.subscriptionId, resourceGroup: i.resourceGroup, serviceName: i.serviceName } : { local: true as const },
      ]),
    ),
    gatewayAssignments: Object.fromEntries(Object.entries(c.GATEWAY_ASSIGNMENTS).map(([t, a]) => [tenantKey(t), { ...(a.instance ? { instance: a.instance } : {}), ...(a.key ? { key: a.key } : {}), ...(a.identities?.length ? { identities: a.identities.map((id) => id.toLowerCase()) } : {}), ...(a.sharedIdentityHosts?.length ? { sharedIdentityHosts: a.sharedIdentityHosts } : {}) }])),
    sharedIdentityHosts: c.GATEWAY_SHARED_IDENTITY_HOSTS ?? (c.AIGOV_LOCAL ? "any" : []),
    browserOrigins: c.GATEWAY_BROWSER_ORIGINS,
    publishRetry: { firstIntervalMs: c.PUBLISH_RETRY_FIRST_INTERVAL_MS, maxAttempts: c.PUBLISH_RETRY_MAX_ATTEMPTS },
    publishSliceSeconds: c.PUBLISH_SLICE_SECONDS,
    keyRotationsPerRun: c.KEY_ROTATIONS_PER_RUN,
    usage: {
      ...(c.USAGE_LOG_WORKSPACE_ID !== undefined ? { workspaceId: c.USAGE_LOG_WORKSPACE_ID } : {}),
      retentionDays: { minute: c.USAGE_RETENTION_MINUTE_DAYS, hour: c.USAGE_RETENTION_HOUR_DAYS, day: c.USAGE_RETENTION_DAY_DAYS },
    },
    publicUrl: (c.AIGOV_PUBLIC_URL ?? `https://${c.WEBSITE_HOSTNAME ?? "localhost"}`).replace(/\/$/, ""),
    events: {
      ...(c.EVENTGRID_TOPIC_ENDPOINT !== undefined ? { eventGridEndpoint: c.EVENTGRID_TOPIC_ENDPOINT } : {}),
      ...(c.EVENTS_WEBHOOK_URL !== undefined ? { webhookUrl: c.EVENTS_WEBHOOK_URL } : {}),
    },
  };
}

let cached: Config | undefined;

/** The process-wide configuration, parsed on first use and never again. */
export function getConfig(): Config {
  cached ??= parseConfig(process.env);
  return cached;
}
