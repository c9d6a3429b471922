/**
 * The compiler input: everything the policy compiler needs about one tenant, in the shape a model
 * registry and the project service will map onto. Plain data, validated strictly (identifiers.ts).
 *
 * ## Virtual keys and per-key limits
 *
 * Virtual keys are APIM subscriptions. They are **not** listed in any policy, so no document grows
 * with the number of keys:
 * - Per-key limits use a counter keyed by the subscription, e.g.
 *   `@("tpm-key|" + (context.Subscription?.Id ?? "none") + "|" + context.Api.Id)` as the counter-key
 *   (expressions.ts `counterKey`).
 * - Per-key overrides are **key tiers** (`keyTiers`): tenant-defined key *profiles*, each a set of
 *   per-key limits and optionally the model names its keys may call (`models`). Keys with equal
 *   profiles share one tier (the domain derives ids such as `kp_<10 hex>`), so the tenant list grows
 *   with distinct profiles (≤ {@link MAX_TENANT_KEY_TIERS}), never with keys.
 *   A key in tier T of project P is a subscription scoped to the product `aigov-<P>-<T>`
 *   (names.ts `tierProductIdFor`), which contains P's API. That product's policy sets one context
 *   variable to the tier's id; the project's API policy picks the tier's limits and model scope with
 *   a `choose` over tier ids. A tier's documents therefore depend on that tier alone: adding or
 *   removing another tier changes no other tier's product policy, nor the API policy of a project
 *   that does not apply the changed tier. Documents grow with the number of tiers a project offers or
 *   accepts (bounded, ≤ {@link MAX_PROJECT_KEY_TIERS} each), never with the number of keys. Keys
 *   without a tier are subscriptions scoped to the API `aigov-<P>` and get the project's limits.
 * - Sharing: project Q lists `(P, T)` in `sharedKeyTiers` to accept P's keys in tier T (after an
 *   approval, decided outside the compiler). The product `aigov-<P>-<T>` then also contains Q's API,
 *   and Q's API policy treats T like a tier it offers. Only the product links the key to Q's API, so
 *   accepting (P, T) admits P's keys in T, not other projects' keys in the same tier.
 * - `virtualKeys` below is metadata only: it is validated (project and tier exist) and otherwise
 *   ignored, which is exactly what keeps the documents independent of the key count.
 */
import { z } from "zod";
import { Pillars } from "../domain/projects/schema.js";
import {
  Audience,
  DataClass,
  FreeText,
  Guid,
  HeaderName,
  HttpsUrl,
  Ident,
  KeyVaultSecretUri,
  DeploymentName,
  GatewayKey,
  ModelName,
  NamedValueId,
  Region,
  TenantId,
  TierId,
  VersionLabel,
} from "./identifiers.js";
import { CompilerModelSettings, CompilerSettings, QUOTA_PERIODS, Settings } from "./settings.js";
import { managedIdentityRefusal, serviceIdentityUse, type IdentityGrants } from "./identity.js";

const AZURE_DEPLOYMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const GATEWAY_TIERS = ["classic", "v2", "consumption"] as const;
export const PROVIDERS = ["azure-openai", "foundry", "openai", "anthropic", "bedrock", "vertex", "openai-compatible"] as const;
export const MODEL_STATUSES = ["active", "deprecated", "blocked"] as const;
/** Headers that can carry a backend key; `Authorization` is sent as `Bearer <key>`. */
export const KEY_HEADERS = ["api-key", "x-api-key", "Authorization"] as const;
/** Backends per pool (APIM limit). */
export const MAX_POOL_SIZE = 30;
/** Key profiles per tenant: one tier per distinct (limits, models) profile, shared by all keys that have it.
 * Tiers cost nothing in a document unless a project offers or accepts them. */
export const MAX_TENANT_KEY_TIERS = 2000;
/** Tiers one project offers, and (separately) tiers of other projects' keys it accepts: the API policy
 * grows by a `when` per tier (limits, model list), so this bounds the document, not the key count. */
export const MAX_PROJECT_KEY_TIERS = 40;
/** Model names one key tier may list. */
export const MAX_TIER_MODELS = 200;

export const ManagedIdentityAuth = z
  .strictObject({
    type: z.literal("managedIdentity"),
    resource: Audience,
    clientId: Guid.optional().meta({ description: "User-assigned identity client id; system-assigned when absent" }),
  })
  .meta({ description: "The gateway's managed identity gets a token for `resource` (authentication-managed-identity)" });

export const KeyVaultSecretAuth = z
  .strictObject({
    type: z.literal("keyVaultSecret"),
    namedValueId: NamedValueId.meta({ description: "The Key Vault-backed named value the compiler creates; referenced as {{id}}" }),
    secretIdentifier: KeyVaultSecretUri,
    identityClientId: Guid.optional().meta({ description: "User-assigned identity that reads the vault; system-assigned when absent" }),
    header: z.enum(KEY_HEADERS).default("api-key"),
  })
  .meta({ description: "A key kept in Key Vault, sent by the backend as a header; never a raw key" });

export const BackendAuth = z.discriminatedUnion("type", [ManagedIdentityAuth, KeyVaultSecretAuth]);
export type BackendAuth = z.output<typeof BackendAuth>;

export const ModelBackend = z
  .strictObject({
    id: Ident.meta({ description: "Unique within the tenant" }),
    url: HttpsUrl.meta({ description: "Base URL the gateway forwards to (APIM backend url)" }),
    region: Region,
    priority: z.int().min(1).max(100).default(1).meta({ description: "Lower values are used first; higher only when all lower ones have tripped" }),
    weight: z.int().min(1).max(100).default(1).meta({ description: "Share of traffic within a priority" }),
    version: VersionLabel.optional().meta({ description: "Model version this backend serves (needed for A/B splits)" }),
    auth: BackendAuth,
  })
  .meta({ id: "PolicyModelBackend" });
export type ModelBackend = z.output<typeof ModelBackend>;

export const Pricing = z
  .strictObject({
    currency: z.string().regex(/^[A-Z]{3}$/),
    inputPerMillionTokens: z.number().min(0),
    outputPerMillionTokens: z.number().min(0),
  })
  .meta({ description: "List price; used by cost reporting, not by policies" });

export const AbSplit = z
  .array(z.strictObject({ version: VersionLabel, weight: z.int().min(1).max(100) }))
  .min(2)
  .max(10)
  .meta({ description: "Weighted split of requests between model versions (each version served by its own pool)" });

export const PolicyModel = z
  .strictObject({
    id: Ident.meta({ description: "Unique within the project" }),
    name: ModelName.meta({ description: "Name clients send (model field or deployment name); unique within the project" }),
    deployment: DeploymentName.optional().meta({
      description: "The provider's deployment (Azure OpenAI) or model name the gateway sends the request to; the client never chooses it. Default: name",
    }),
    displayName: FreeText(200).optional(),
    description: FreeText(2000).optional(),
    provider: z.enum(PROVIDERS),
    status: z.enum(MODEL_STATUSES).default("active"),
    deprecatedAt: z.iso.date().optional().meta({ description: "When the model was (or will be) deprecated; sent as the Deprecation header" }),
    sunsetDate: z.iso.date().optional().meta({ description: "Required when deprecated; sent as the Sunset header" }),
    backends: z.array(ModelBackend).min(1).max(100),
    pricing: Pricing.optional(),
    allowedDataClasses: z.array(DataClass).max(50).optional().meta({ description: "Data classes this model may receive; intersected with dataClass.allowed" }),
    abSplit: AbSplit.optional(),
    settings: CompilerModelSettings.default({}),
  })
  .superRefine((m, ctx) => {
    if (m.status === "deprecated" && !m.sunsetDate) ctx.addIssue({ code: "custom", path: ["sunsetDate"], message: "is required for a deprecated model" });
    if (m.provider === "azure-openai" && !AZURE_DEPLOYMENT.test(m.deployment ?? m.name)) {
      ctx.addIssue({ code: "custom", path: ["deployment"], message: "an Azure OpenAI deployment name is 1-64 letters, digits, '.', '_' or '-' (it becomes a path segment)" });
    }
    const ids = new Set<string>();
    for (const [i, b] of m.backends.entries()) {
      if (ids.has(b.id)) ctx.addIssue({ code: "custom", path: ["backends", i, "id"], message: `duplicate backend id ${b.id}` });
      ids.add(b.id);
    }
    const auths = new Set(m.backends.map((b) => (b.auth.type === "managedIdentity" ? `mi|${b.auth.resource}|${b.auth.clientId ?? ""}` : "kv")));
    if (auths.size > 1) {
      ctx.addIssue({ code: "custom", path: ["backends"], message: "all backends of a model must use the same managed identity, or all use Key Vault keys" });
    }
    const perVersion = new Map<string, number>();
    for (const b of m.backends) perVersion.set(b.version ?? "", (perVersion.get(b.version ?? "") ?? 0) + 1);
    if (m.abSplit) {
      const versions = new Set<string>();
      for (const [i, s] of m.abSplit.entries()) {
        if (versions.has(s.version)) ctx.addIssue({ code: "custom", path: ["abSplit", i, "version"], message: `duplicate version ${s.version}` });
        versions.add(s.version);
        if (!perVersion.has(s.version)) ctx.addIssue({ code: "custom", path: ["abSplit", i, "version"], message: `no backend serves version ${s.version}` });
      }
      for (const [i, b] of m.backends.entries()) {
        if (!b.version || !versions.has(b.version)) ctx.addIssue({ code: "custom", path: ["backends", i, "version"], message: "with an A/B split, every backend serves one of the split's versions" });
      }
      for (const [version, n] of perVersion) {
        if (versions.has(version) && n > MAX_POOL_SIZE) ctx.addIssue({ code: "custom", path: ["backends"], message: `version ${version} has ${n} backends; a pool holds at most ${MAX_POOL_SIZE}` });
      }
    } else if (m.backends.length > MAX_POOL_SIZE) {
      ctx.addIssue({ code: "custom", path: ["backends"], message: `a pool holds at most ${MAX_POOL_SIZE} backends` });
    }
  })
  .meta({ id: "PolicyModel" });
export type PolicyModel = z.output<typeof PolicyModel>;

/** An MCP server's name: its namespace in the project (URL path segment, catalog ids, key scopes). */
export const MCP_SERVER_NAME = /^[a-z][a-z0-9-]{0,38}[a-z0-9]$/;
/** A tool name the gateway can route and compare (MCP 2025-11-25's character set; never `|`). */
export const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
export const MAX_PROJECT_MCP_SERVERS = 100;
export const MAX_PROJECT_TOOLBOXES = 200;
export const MAX_SERVER_TOOLS = 10_000;

const ToolRateLimit = z.strictObject({ calls: z.int().min(1).max(1_000_000), renewalPeriodSeconds: z.int().min(1).max(300) });

/** A tool as the gateway needs it: its name, whether it needs an approval, and (REST tools) the operation that serves it. */
export const PolicyTool = z
  .strictObject({
    name: z.string().regex(TOOL_NAME),
    /** sha-256 of the tool's canonical definition (what an approval pins). */
    hash: z.string().regex(/^[0-9a-f]{64}$/),
    /** Annotated read-only and without an approval record: approval mode `destructive` lets keys call it unapproved. */
    readOnly: z.boolean().default(false),
    /** REST tools: the operation of the server's REST API that serves it (ARM OperationContract fields; its representations name types of the server's `restSchemas`). */
    operation: z
      .strictObject({
        id: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/),
        method: z.enum(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
        urlTemplate: z.string().min(1).max(2000),
        displayName: z.string().max(300).optional(),
        description: FreeText(1000).optional(),
        templateParameters: z.array(z.record(z.string(), z.unknown())).max(100).optional(),
        request: z.record(z.string(), z.unknown()).optional(),
        responses: z.array(z.record(z.string(), z.unknown())).max(20).optional(),
      })
      .optional(),
  })
  .meta({ id: "PolicyTool" });
export type PolicyTool = z.output<typeof PolicyTool>;

export const McpUpstreamAuth = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("none") }),
  z.strictObject({ type: z.literal("header"), header: HeaderName, namedValueId: NamedValueId, secretIdentifier: KeyVaultSecretUri }),
  z.strictObject({ type: z.literal("managedIdentity"), audience: Audience, clientId: Guid.optional() }),
]);

/** An MCP server of a project as the compiler sees it: how the gateway reaches it and its tools (from its latest discovery). */
export const PolicyMcpServer = z
  .strictObject({
    id: z.string().regex(/^srv_[0-9a-z]{20}$/),
    name: z.string().regex(MCP_SERVER_NAME),
    displayName: FreeText(100).optional(),
    status: z.enum(MODEL_STATUSES).default("active"),
    sunsetDate: z.iso.date().optional(),
    deprecatedAt: z.iso.date().optional().meta({ description: "When the server was deprecated; sent as the Deprecation header (a toolbox's: the earliest of its deprecated servers')" }),
    source: z.discriminatedUnion("kind", [
      z.strictObject({ kind: z.literal("remote"), url: z.url({ protocol: /^https?$/ }), transport: z.enum(["streamable-http", "sse"]) }),
      z.strictObject({ kind: z.literal("openapi"), baseUrl: z.url({ protocol: /^https?$/ }) }),
    ]),
    auth: McpUpstreamAuth.default({ type: "none" }),
    limits: z
      .strictObject({ perTool: ToolRateLimit.optional(), tools: z.record(z.string().regex(TOOL_NAME), ToolRateLimit).optional() })
      .default({}),
    /** Filled from the latest discovery (live: not part of the published registry snapshot). */
    tools: z.array(PolicyTool).max(MAX_SERVER_TOOLS).default([]),
    /** REST tools: the component schemas their operations' representations name (live, with the tools). */
    restSchemas: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: "PolicyMcpServer" });
export type PolicyMcpServer = z.output<typeof PolicyMcpServer>;

export const PolicyToolbox = z
  .strictObject({
    id: z.string().regex(/^tbx_[0-9a-z]{20}$/),
    name: z.string().regex(MCP_SERVER_NAME),
    tools: z.array(z.strictObject({ server: z.string().regex(MCP_SERVER_NAME), tool: z.string().regex(TOOL_NAME) })).max(500),
  })
  .meta({ id: "PolicyToolbox" });
export type PolicyToolbox = z.output<typeof PolicyToolbox>;

/** What an approval granted: a tool of a server, pinned to the definition hash that was approved (live). */
export const PolicyToolGrant = z.strictObject({ server: z.string().regex(MCP_SERVER_NAME), tool: z.string().regex(TOOL_NAME), hash: z.string().regex(/^[0-9a-f]{64}$/) });

export const PolicyTools = z
  .strictObject({
    /** Which tools need an approval before keys may call them: none, all, or those not annotated read-only. */
    approvalMode: z.enum(["none", "all", "destructive"]).default("none"),
    servers: z.array(PolicyMcpServer).max(MAX_PROJECT_MCP_SERVERS).default([]),
    toolboxes: z.array(PolicyToolbox).max(MAX_PROJECT_TOOLBOXES).default([]),
    grants: z.array(PolicyToolGrant).max(100_000).default([]),
  })
  .meta({ id: "PolicyTools" });
export type PolicyTools = z.output<typeof PolicyTools>;

/** An agent's id: its name at the gateway (an API per served agent). */
export const AgentIdent = z.string().regex(/^agt_[0-9a-z]{20}$/);
/** The most agents a project serves at the gateway (APIs per APIM instance are limited: see docs/gateway.md). */
export const MAX_PROJECT_AGENTS = 500;

/** An agent the gateway serves (active or deprecated, enabled, with an endpoint; never one removed at its source). */
export const PolicyAgent = z
  .strictObject({
    id: AgentIdent,
    status: z.enum(["active", "deprecated"]),
    sunsetDate: z.iso.date().optional(),
    deprecatedAt: z.iso.date().optional().meta({ description: "When the agent was deprecated; sent as the Deprecation header" }),
    endpoint: z
      .string()
      .max(2000)
      .regex(/^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[A-Za-z0-9._~%/-]*)?$/, "must be an http(s) URL without query or fragment")
      .meta({ description: "Where calls go (the API's service URL)" }),
    /** Calls per minute per key at the agent's API. */
    callsPerMinute: z.int().min(1).max(1_000_000).optional(),
    /** The data classes a call may declare (x-aigov-data-class); a call must declare one of them. */
    dataClasses: z.array(DataClass).min(1).max(16),
    /** The registry's valid AgentCard as received: served, rewritten, at the API's /.well-known/agent-card.json. */
    card: z
      .strictObject({ version: z.enum(["0.3", "1.0"]), document: z.record(z.string(), z.unknown()) })
      .optional()
      .meta({ description: "The agent's AgentCard as the registry recorded it (valid cards only); absent: the gateway answers 404 for the card" }),
  })
  .meta({ id: "PolicyAgent" });
export type PolicyAgent = z.output<typeof PolicyAgent>;

export const PolicyProject = z
  .strictObject({
    id: Ident.meta({ description: "Project id, e.g. prj_7x1k…" }),
    name: FreeText(100).min(1),
    description: FreeText(2000).optional(),
    pillars: Pillars.default({ models: true, tools: true, agents: true }),
    settings: CompilerSettings.default({}),
    keyTiers: z.array(TierId).max(MAX_PROJECT_KEY_TIERS).default([]).meta({ description: "Key tiers this project offers (ids from keyTiers)" }),
    sharedKeyTiers: z
      .array(z.strictObject({ projectId: Ident, tierId: TierId }))
      .max(MAX_PROJECT_KEY_TIERS)
      .default([])
      .meta({ description: "Tiers of another project's keys this project accepts: the owner's tier product also links this project's API, and this project's policy applies the tier" }),
    models: z.array(PolicyModel).max(5000).default([]),
    tools: PolicyTools.default({ approvalMode: "none", servers: [], toolboxes: [], grants: [] }),
    agents: z.array(PolicyAgent).max(MAX_PROJECT_AGENTS).default([]),
  })
  .superRefine((p, ctx) => {
    const serverNames = new Set<string>();
    for (const [i, srv] of p.tools.servers.entries()) {
      if (serverNames.has(srv.name)) ctx.addIssue({ code: "custom", path: ["tools", "servers", i, "name"], message: `duplicate server name ${srv.name}` });
      serverNames.add(srv.name);
    }
    const ids = new Set<string>();
    const names = new Set<string>();
    for (const [i, m] of p.models.entries()) {
      if (ids.has(m.id)) ctx.addIssue({ code: "custom", path: ["models", i, "id"], message: `duplicate model id ${m.id}` });
      if (names.has(m.name)) ctx.addIssue({ code: "custom", path: ["models", i, "name"], message: `duplicate model name ${m.name}` });
      ids.add(m.id);
      names.add(m.name);
    }
    if (new Set(p.keyTiers).size !== p.keyTiers.length) ctx.addIssue({ code: "custom", path: ["keyTiers"], message: "duplicate tier" });
    const shared = new Set<string>();
    for (const [i, s] of p.sharedKeyTiers.entries()) {
      const k = `${s.projectId}/${s.tierId}`;
      if (shared.has(k)) ctx.addIssue({ code: "custom", path: ["sharedKeyTiers", i], message: `duplicate shared tier ${k}` });
      shared.add(k);
      if (s.projectId === p.id) ctx.addIssue({ code: "custom", path: ["sharedKeyTiers", i, "projectId"], message: "a project cannot accept its own tier; it offers it (keyTiers)" });
    }
  })
  .meta({ id: "PolicyProject" });
export type PolicyProject = z.output<typeof PolicyProject>;

export const KeyTier = z
  .strictObject({
    id: TierId,
    description: FreeText(1000).optional(),
    limits: z
      .strictObject({
        tokensPerMinute: z.int().min(1).max(1_000_000_000).optional(),
        tokenQuota: z.strictObject({ limit: z.int().min(1).max(1_000_000_000_000), period: z.enum(QUOTA_PERIODS) }).optional(),
        requestRate: z.strictObject({ calls: z.int().min(1).max(1_000_000), renewalPeriodSeconds: z.int().min(1).max(300) }).optional(),
        budget: z
          .strictObject({ tokens: z.int().min(1).max(1_000_000_000_000), period: z.enum(QUOTA_PERIODS) })
          .optional()
          .meta({ description: "The tokens a key's budget buys: one counter per key across every API it reaches" }),
      })
      .meta({ description: "Per-key limits for keys in this tier; each is its own counter on top of the project's per-key limits (the tightest bites)" }),
    contentSafety: z
      .enum(["low", "medium", "high"])
      .optional()
      .meta({ description: "Content safety on model calls of keys in this tier, on top of the project's (a second llm-content-safety: both must pass)" }),
    relaxes: z
      .array(z.enum(["tokens.perMinute", "tokens.quota", "requests.rate"]))
      .optional()
      .meta({ description: "Set on exemption tiers: their value replaces the project's per-key limit for these controls (an approved relaxation for one key)" }),
    models: z
      .array(ModelName)
      .max(MAX_TIER_MODELS)
      .optional()
      .meta({
        description:
          "Model names (PolicyModel.name) keys in this tier may call, in every project that offers or accepts the tier; intersected with the project's allowed models. Absent: every model the project allows. Names no project has are never matched (a model may be deleted while keys still list it).",
      }),
    tools: z
      .array(z.string().regex(/^(server:[a-z][a-z0-9-]{0,38}[a-z0-9]|toolbox:[a-z][a-z0-9-]{0,38}[a-z0-9]|tool:[a-z][a-z0-9-]{0,38}[a-z0-9]\/[A-Za-z0-9_.-]{1,128})$/))
      .max(MAX_TIER_MODELS)
      .optional()
      .meta({
        description:
          "What keys in this tier may call among MCP tools: `server:<name>` (every tool of a server), `tool:<server>/<tool>`, `toolbox:<name>`. Absent or empty: no tool at all (tools are granted to keys explicitly).",
      }),
    agents: z
      .array(AgentIdent)
      .max(MAX_TIER_MODELS)
      .optional()
      .meta({ description: "Agents (PolicyAgent.id) keys in this tier may call. Absent or empty: none (agents are granted to keys explicitly)." }),
  })
  .meta({ id: "KeyTier" });
export type KeyTier = z.output<typeof KeyTier>;

export const VirtualKeyRef = z
  .strictObject({
    id: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/),
    projectId: Ident,
    tier: TierId.optional(),
  })
  .meta({ description: "A virtual key (APIM subscription); metadata only, never compiled into a document" });

export const Services = z
  .strictObject({
    contentSafety: z
      .strictObject({
        url: HttpsUrl.regex(/^https:\/\/[a-z0-9-]+\.cognitiveservices\.azure\.com\/?$/, "must be https://<name>.cognitiveservices.azure.com"),
        clientId: Guid.optional().meta({ description: "User-assigned identity of the gateway; system-assigned when absent" }),
        region: Region.optional().meta({
          description:
            "The resource's Azure region. Every prompt of a scope with content safety on is screened there, so a settings write that leaves such a scope with a regions.allowed rule excluding it is refused (service_region_not_allowed); absent: the policy preview warns where a region rule applies",
        }),
      })
      .optional()
      .meta({ description: "Azure AI Content Safety resource for llm-content-safety (the gateway identity needs Cognitive Services User)" }),
    embeddings: z
      .strictObject({
        url: HttpsUrl,
        clientId: Guid.optional(),
        region: Region.optional().meta({
          description:
            "The deployment's Azure region. Every cached prompt is embedded there, so the semantic cache is not used for a model whose regions.allowed excludes it (absent: not used for any model a region rule applies to)",
        }),
      })
      .optional()
      .meta({ description: "Embeddings deployment URL (…/openai/deployments/<name>/embeddings) for the semantic cache; the gateway's identity authenticates" }),
  })
  .meta({ description: "Shared services some controls need" });

/** A web origin as browsers send it in `Origin`: scheme, host and, when not the default, port; no path. */
export const BrowserOrigin = z
  .string()
  .regex(/^https?:\/\/[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$/, "must be an origin: http(s)://host[:port], lower case, no path")
  .meta({ description: "A web origin, e.g. https://portal.contoso.com" });

export const CompilerInput = z
  .strictObject({
    tenantId: TenantId,
    gatewayKey: GatewayKey.optional().meta({ description: "The tenant's artifact id key when an operator assigned one; derived from tenantId otherwise (names.ts)" }),
    gatewayIdentities: z
      .array(Guid)
      .max(20)
      .default([])
      .meta({ description: "Client ids of the user-assigned identities an operator assigned to the tenant on its gateway (identity.ts): the only clientIds its credentials may name" }),
    gatewaySharedHosts: z
      .array(z.string().regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/, "must be a host name, lower case"))
      .max(100)
      .optional()
      .meta({ description: "Hosts of the Azure AI resources the gateway's own identity may call for the tenant (identity.ts); absent: any Azure AI service's host" }),
    gatewayTier: z.enum(GATEWAY_TIERS).default("v2").meta({ description: "Decides the size limit (16 KiB on consumption, else 512 KiB) and which policies exist" }),
    settings: Settings.default({}).meta({ description: "Tenant-scope settings" }),
    services: Services.default({}),
    browserOrigins: z
      .array(BrowserOrigin)
      .max(20)
      .default([])
      .meta({ description: "Origins whose pages may call the published APIs from a browser (a cors policy on each API): the portal's" }),
    keyTiers: z.array(KeyTier).max(MAX_TENANT_KEY_TIERS).default([]),
    projects: z.array(PolicyProject).max(1000),
    virtualKeys: z.array(VirtualKeyRef).max(1_000_000).default([]),
  })
  .superRefine((input, ctx) => {
    const grants: IdentityGrants = { identities: input.gatewayIdentities, sharedHosts: input.gatewaySharedHosts ?? "any" };
    const tiers = new Set<string>();
    for (const [i, t] of input.keyTiers.entries()) {
      if (tiers.has(t.id)) ctx.addIssue({ code: "custom", path: ["keyTiers", i, "id"], message: `duplicate tier ${t.id}` });
      tiers.add(t.id);
    }
    const projects = new Map<string, Set<string>>();
    const backends = new Map<string, string>();
    const namedValues = new Map<string, string>();
    for (const [pi, p] of input.projects.entries()) {
      if (projects.has(p.id)) ctx.addIssue({ code: "custom", path: ["projects", pi, "id"], message: `duplicate project id ${p.id}` });
      projects.set(p.id, new Set(p.keyTiers));
      for (const [ti, t] of p.keyTiers.entries()) {
        if (!tiers.has(t)) ctx.addIssue({ code: "custom", path: ["projects", pi, "keyTiers", ti], message: `unknown tier ${t}` });
      }
      for (const [mi, m] of p.models.entries()) {
        for (const [bi, b] of m.backends.entries()) {
          const at = `${p.id}/${m.id}`;
          const prev = backends.get(b.id);
          if (prev !== undefined && prev !== at) {
            ctx.addIssue({ code: "custom", path: ["projects", pi, "models", mi, "backends", bi, "id"], message: `backend id ${b.id} is already used by ${prev}` });
          }
          backends.set(b.id, at);
          if (b.auth.type === "managedIdentity") {
            const refused = managedIdentityRefusal({ url: b.url, audience: b.auth.resource, clientId: b.auth.clientId }, grants);
            if (refused) ctx.addIssue({ code: "custom", path: ["projects", pi, "models", mi, "backends", bi, "auth"], message: refused });
          }
          if (b.auth.type === "keyVaultSecret") {
            const def = `${b.auth.secretIdentifier}|${b.auth.identityClientId ?? ""}`;
            const nv = namedValues.get(b.auth.namedValueId);
            if (nv !== undefined && nv !== def) {
              ctx.addIssue({ code: "custom", path: ["projects", pi, "models", mi, "backends", bi, "auth", "namedValueId"], message: `named value ${b.auth.namedValueId} is defined twice with different secrets` });
            }
            namedValues.set(b.auth.namedValueId, def);
          }
        }
      }
    }
    // Managed identities of MCP upstreams and shared services: the tenant's own, or the gateway's for Azure AI services only.
    for (const [pi, p] of input.projects.entries()) {
      for (const [si, s] of (p.tools?.servers ?? []).entries()) {
        if (s.auth.type !== "managedIdentity") continue;
        const url = s.source.kind === "remote" ? s.source.url : s.source.baseUrl;
        const refused = managedIdentityRefusal({ url, audience: s.auth.audience, clientId: s.auth.clientId }, grants);
        if (refused) ctx.addIssue({ code: "custom", path: ["projects", pi, "tools", "servers", si, "auth"], message: refused });
      }
    }
    // The tenant's shared services are held to the host list where they are written (tenant-settings.ts),
    // not here: a refusal of one fails the whole tenant's publish and leaves what the gateway holds in place,
    // so a service stored before the list existed would freeze every project's policy (ADR 022, rule 5).
    const serviceGrants: IdentityGrants = { identities: grants.identities, sharedHosts: "any" };
    for (const name of ["contentSafety", "embeddings"] as const) {
      const service = input.services[name];
      const refused = service && managedIdentityRefusal(serviceIdentityUse(name, service), serviceGrants);
      if (refused) ctx.addIssue({ code: "custom", path: ["services", name], message: refused });
    }
    // Accepted tiers: the owner exists, the tier exists and the owner offers it (its product is what
    // links the keys to this project's API, so without it the acceptance could never take effect).
    for (const [pi, p] of input.projects.entries()) {
      for (const [si, s] of p.sharedKeyTiers.entries()) {
        const offered = projects.get(s.projectId);
        if (!offered) ctx.addIssue({ code: "custom", path: ["projects", pi, "sharedKeyTiers", si, "projectId"], message: `unknown project ${s.projectId}` });
        else if (!tiers.has(s.tierId)) ctx.addIssue({ code: "custom", path: ["projects", pi, "sharedKeyTiers", si, "tierId"], message: `unknown tier ${s.tierId}` });
        else if (!offered.has(s.tierId)) ctx.addIssue({ code: "custom", path: ["projects", pi, "sharedKeyTiers", si, "tierId"], message: `project ${s.projectId} does not offer tier ${s.tierId}` });
      }
    }
    for (const [ki, k] of input.virtualKeys.entries()) {
      const offered = projects.get(k.projectId);
      if (!offered) ctx.addIssue({ code: "custom", path: ["virtualKeys", ki, "projectId"], message: `unknown project ${k.projectId}` });
      else if (k.tier !== undefined && !offered.has(k.tier)) ctx.addIssue({ code: "custom", path: ["virtualKeys", ki, "tier"], message: `project ${k.projectId} does not offer tier ${k.tier}` });
    }
  })
  .meta({ id: "PolicyCompilerInput" });
export type CompilerInput = z.output<typeof CompilerInput>;
export type CompilerInputIn = z.input<typeof CompilerInput>;
