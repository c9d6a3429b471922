import { z } from "zod";
import { idSchema, PageQuery, serverFields } from "../../domain/common.js";
import { ProjectId } from "../../domain/projects/schema.js";
import { Region } from "../../policy/identifiers.js";
import { DATA_CLASSES, ModelId } from "../models/schema.js";

export const AgentId = idSchema("agt");
export const ConnectionId = idSchema("con");
export const SyncRunId = idSchema("syn");

/**
 * An agent's life in the registry, set by people only (a sync never moves it):
 * draft → active → deprecated (with a sunset date) → retired; blocked from any state but retired, and
 * back to the state it was blocked from. Only active and deprecated agents are served at the gateway.
 */
export const LIFECYCLE_STATES = ["draft", "active", "deprecated", "retired", "blocked"] as const;
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];
export const ENVIRONMENTS = ["dev", "test", "prod"] as const;
export const CLOUDS = ["bedrock", "vertex", "foundry"] as const;
/** Content safety on the agent's model calls (through its key): the project's alone, or a level of its own on top. */
export const CONTENT_SAFETY_LEVELS = ["project", "low", "medium", "high"] as const;

const Url = z.url({ protocol: /^https?$/ }).max(2000);
const Name = z.string().trim().min(1).max(200);
const Description = z.string().max(4000);
const Owner = z.string().trim().min(1).max(256).meta({ description: "Who answers for the agent (a user's oid or a team's mail)" });

/** Scope entries of the tools pillar (servers, single tools, toolboxes), as keys take them. */
const ToolScopeEntry = z.string().regex(/^(srv_[0-9a-z]{20}(\/[A-Za-z0-9_.-]{1,128})?|tbx_[0-9a-z]{20})$/, "must be an MCP server id (srv_…), a server's tool (srv_…/<tool name>) or a toolbox id (tbx_…)");

/** The parts of the guardrails, shared by the full form (create) and the merge patch (update). */
const GuardrailModels = z.array(ModelId).max(50).meta({ description: "Models of the project the agent's key may call (empty: none)" });
const GuardrailTools = z.array(ToolScopeEntry).max(100).meta({ description: "MCP servers, tools and toolboxes the agent's key may call (empty: none)" });
const limitFields = {
  tokensPerMinute: z.int().min(1).max(1_000_000_000).meta({ description: "The agent's key: tokens per minute across its models" }),
  requestsPerMinute: z.int().min(1).max(1_000_000).meta({ description: "The agent's key: requests per minute" }),
  callsPerMinute: z.int().min(1).max(1_000_000).meta({ description: "Callers of the agent: calls per minute per key, at the agent's API" }),
};
const GuardrailDataClasses = z.array(z.enum(DATA_CLASSES)).min(1).max(DATA_CLASSES.length).meta({ description: "Data classes the agent may handle; a call to it carrying x-aigov-data-class outside them is refused" });

/**
 * What an agent may do, owned by the platform team and never touched by a sync: the models and tools
 * its key reaches, its limits (its key's, and per caller at its own API), content safety on calls to it,
 * and the data classes it may handle.
 */
export const Guardrails = z
  .strictObject({
    models: GuardrailModels.default([]),
    tools: GuardrailTools.default([]),
    limits: z
      .strictObject({
        tokensPerMinute: limitFields.tokensPerMinute.optional(),
        requestsPerMinute: limitFields.requestsPerMinute.optional(),
        callsPerMinute: limitFields.callsPerMinute.optional(),
      })
      .default({}),
    contentSafety: z.enum(CONTENT_SAFETY_LEVELS).default("project"),
    dataClasses: GuardrailDataClasses.default(["public", "internal"]),
  })
  .meta({ id: "AgentGuardrails" });
export type Guardrails = z.output<typeof Guardrails>;
/** The guardrails as shown (every field present). */
export const GuardrailsView = z
  .object({
    models: z.array(z.string()),
    tools: z.array(z.string()),
    limits: z.object({ tokensPerMinute: z.int().optional(), requestsPerMinute: z.int().optional(), callsPerMinute: z.int().optional() }),
    contentSafety: z.enum(CONTENT_SAFETY_LEVELS),
    dataClasses: z.array(z.enum(DATA_CLASSES)),
  })
  .meta({ id: "AgentGuardrailsView" });
export type GuardrailsInput = z.input<typeof Guardrails>;

/**
 * The guardrails in a PATCH (merge patch): a field sent replaces the agent's (lists as a whole), a field
 * absent keeps its value, a limit sent as null is removed. An agent with a key keeps at least one model.
 */
export const GuardrailsPatch = z
  .strictObject({
    models: GuardrailModels.optional(),
    tools: GuardrailTools.optional(),
    limits: z
      .strictObject({
        tokensPerMinute: limitFields.tokensPerMinute.nullable().optional(),
        requestsPerMinute: limitFields.requestsPerMinute.nullable().optional(),
        callsPerMinute: limitFields.callsPerMinute.nullable().optional(),
      })
      .optional()
      .meta({ description: "Merged into the agent's limits: a limit absent is kept, null removes it" }),
    contentSafety: z.enum(CONTENT_SAFETY_LEVELS).optional(),
    dataClasses: GuardrailDataClasses.optional(),
  })
  .meta({ id: "AgentGuardrailsPatch" });
export type GuardrailsPatch = z.output<typeof GuardrailsPatch>;

/** Where the gateway forwards calls to the agent. */
export const AgentEndpoint = z
  .strictObject({
    url: Url.meta({ description: "The agent's endpoint (A2A JSON-RPC or HTTP+JSON interface, or a plain HTTP API)" }),
    protocol: z.enum(["a2a", "http"]).default("a2a"),
  })
  .meta({ id: "AgentEndpoint" });

/** An AgentCard supplied inline, or where to fetch it (the agent's origin: /.well-known/agent-card.json). */
export const CardSource = z.union([
  z.strictObject({ card: z.record(z.string(), z.unknown()).meta({ description: "The AgentCard JSON (A2A v0.3 or v1.0)" }) }),
  z.strictObject({ url: Url.meta({ description: "The agent's base URL (its well-known card is fetched) or the card's own URL" }) }),
]);

export const CardFinding = z.object({ path: z.string(), code: z.string(), message: z.string(), severity: z.enum(["error", "warning"]) });
export const SignatureCheck = z.object({
  index: z.int(),
  kid: z.string().optional(),
  alg: z.string(),
  status: z.enum(["valid", "invalid", "unverifiable"]),
  selfSigned: z.boolean().optional(),
  reason: z.string().optional(),
});

/** The agent's card as recorded: the version, its normalised form (when valid), and what checking it found. */
export const AgentCardRecord = z
  .object({
    origin: z.enum(["supplied", "fetched", "cloud"]),
    url: z.string().optional(),
    checkedAt: z.iso.datetime(),
    version: z.enum(["0.3", "1.0", "unknown"]),
    valid: z.boolean(),
    hash: z.string().meta({ description: "SHA-256 of the card as received (canonical JSON)" }),
    findings: z.array(CardFinding),
    signatures: z.array(SignatureCheck),
    trust: z.enum(["verified", "self-signed", "unverified", "unsigned"]).meta({ description: "verified: a signature checks out with a key from its jku; self-signed: only with a key the signature embeds" }),
    card: z.record(z.string(), z.unknown()).optional().meta({ description: "The normalised card (version-independent); absent when the card is invalid" }),
    document: z
      .record(z.string(), z.unknown())
      .optional()
      .meta({ description: "The card as received (valid cards only): what the gateway serves at the agent's API, its URLs rewritten to the gateway" }),
  })
  .meta({ id: "AgentCardRecord" });

/** Where a synced agent comes from, and when the registry last took the source's fields. */
export const Provenance = z
  .object({
    connectionId: ConnectionId,
    cloud: z.enum(CLOUDS),
    account: z.string().meta({ description: "AWS account, Google Cloud project or Foundry project endpoint" }),
    region: Region,
    sourceId: z.string(),
    sourceVersion: z.string().optional(),
    sourceStatus: z.string().optional(),
    sourceUpdatedAt: z.string().optional(),
    firstSeenAt: z.iso.datetime(),
    lastSyncedAt: z.iso.datetime().meta({ description: "When the registry last took a change from the source" }),
    lastSeenAt: z.iso.datetime().optional().meta({ description: "The last complete listing of its region that held it" }),
    removedAtSourceAt: z.iso.datetime().optional(),
  })
  .meta({ id: "AgentProvenance" });

/** What the source says about the agent beyond the shared fields (kept as the source gives it). */
export const SourceDetails = z.object({
  model: z.string().optional(),
  endpoint: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  aliases: z.array(z.object({ id: z.string(), name: z.string(), status: z.string(), agentVersion: z.string().optional() })).optional(),
  actions: z.array(z.object({ id: z.string(), name: z.string(), state: z.string().optional() })).optional(),
});

export const Conflict = z.object({
  field: z.enum(["name", "description", "card"]),
  localValue: z.string().optional().meta({ description: "For card: the hash of the card set here" }),
  sourceValue: z.string().optional().meta({ description: "For card: the hash of the source's card (absent: the source has none now)" }),
  at: z.iso.datetime(),
});

const lifecycleFields = {
  state: z.enum(LIFECYCLE_STATES),
  sunsetDate: z.iso.date().optional(),
  deprecatedAt: z.iso.date().optional().meta({ description: "When the agent was deprecated (server-set, UTC date); its gateway answers carry it as the Deprecation header (RFC 9745)" }),
  /** The state a blocked agent returns to when unblocked. */
  blockedFrom: z.enum(LIFECYCLE_STATES).optional(),
  reason: z.string().optional(),
};

export const Agent = z
  .object({
    id: AgentId,
    projectId: z.string(),
    name: Name,
    description: Description.optional(),
    owner: Owner,
    environment: z.enum(ENVIRONMENTS),
    dataClasses: z.array(z.enum(DATA_CLASSES)),
    lifecycle: z.object(lifecycleFields),
    enabled: z.boolean().meta({ description: "A disabled agent is kept but not served; a sync never enables it" }),
    endpoint: z.object({ url: z.string(), protocol: z.enum(["a2a", "http"]) }).optional(),
    card: AgentCardRecord.optional(),
    guardrails: GuardrailsView,
    key: z.object({ keyId: z.string(), issuedAt: z.iso.datetime() }).optional().meta({ description: "The agent's own virtual key (scope and limits follow its guardrails)" }),
    origin: z.enum(["local", "synced"]),
    provenance: Provenance.optional(),
    lastUsedAt: z.iso.datetime().optional().meta({ description: "Its last request through the gateway, from the usage rollups" }),
    source: SourceDetails.optional(),
    sync: z
      .object({
        state: z.enum(["present", "removedAtSource"]),
        conflicts: z.array(Conflict),
      })
      .optional(),
    ...serverFields,
  })
  .meta({ id: "Agent" });
export type Agent = z.output<typeof Agent>;

export const AgentSpec = z
  .strictObject({
    name: Name,
    description: Description.optional(),
    owner: Owner.optional().meta({ description: "Default: the caller" }),
    environment: z.enum(ENVIRONMENTS).default("dev"),
    dataClasses: z.array(z.enum(DATA_CLASSES)).min(1).max(DATA_CLASSES.length).default(["public", "internal"]),
    endpoint: AgentEndpoint.optional(),
    card: CardSource.optional().meta({ description: "The AgentCard, inline or fetched; an invalid card is refused with its findings" }),
    guardrails: Guardrails.default({ models: [], tools: [], limits: {}, contentSafety: "project", dataClasses: ["public", "internal"] }),
  })
  .meta({ id: "AgentSpec" });
export type AgentSpecInput = z.input<typeof AgentSpec>;
export type AgentSpec = z.output<typeof AgentSpec>;

/** Merge patch: absent = unchanged; null clears an optional field; guardrails merge field by field (GuardrailsPatch). */
export const AgentPatch = z
  .strictObject({
    name: Name.optional(),
    description: Description.nullable().optional(),
    owner: Owner.optional(),
    environment: z.enum(ENVIRONMENTS).optional(),
    dataClasses: z.array(z.enum(DATA_CLASSES)).min(1).max(DATA_CLASSES.length).optional(),
    endpoint: AgentEndpoint.nullable().optional(),
    card: CardSource.nullable().optional(),
    guardrails: GuardrailsPatch.optional(),
    enabled: z.boolean().optional(),
  })
  .meta({ id: "AgentPatch" });
export type AgentPatch = z.output<typeof AgentPatch>;

export const LifecycleChange = z
  .strictObject({
    to: z.enum(LIFECYCLE_STATES),
    sunsetDate: z.iso.date().optional().meta({ description: "Required when deprecating: a date after today (UTC). The gateway answers with `Sunset` and `Deprecation` until then and refuses the agent's calls from 00:00 UTC of that date on (410 `agent_sunset`); from then on the agent's own key is held too (`suspendedBy: agentHold`; 409 `agent_sunset_passed`) until it is made active again" }),
    reason: z.string().trim().min(1).max(500).optional(),
  })
  .meta({ id: "AgentLifecycleChange" });

/** A card in a list: what was checked and found, without the card itself (GET the agent for it). */
export const AgentCardSummary = AgentCardRecord.omit({ card: true, document: true }).meta({ id: "AgentCardSummary" });
/** An agent in a list: everything but its card's contents, which a page of agents would carry a hundred times over. */
export const AgentSummary = Agent.extend({ card: AgentCardSummary.optional() }).meta({ id: "AgentSummary" });
export type AgentSummary = z.output<typeof AgentSummary>;

export const AgentList = z.object({ items: z.array(AgentSummary), continuationToken: z.string().optional(), nextLink: z.string().optional() }).meta({ id: "AgentList" });

export const AgentQuery = z.strictObject({
  ...PageQuery.shape,
  state: z.enum(LIFECYCLE_STATES).optional(),
  origin: z.enum(["local", "synced"]).optional(),
  connectionId: ConnectionId.optional(),
});

// ---- Cloud connections ----

const AccessKeyId = z.string().regex(/^[A-Z0-9]{16,128}$/, "an AWS access key id");
const Secret = z.string().min(1).max(16_384).meta({ description: "Write-only: kept in the secret store, never returned" });
/** Endpoint overrides reach local fakes: accepted only when the control plane runs locally. */
const LocalEndpoint = z.url({ protocol: /^https?$/ }).max(500).meta({ description: "Local mode only: where the cloud's API is served (a local fake)" });

export const ConnectionCredentialsSpec = z
  .discriminatedUnion("kind", [
    z.strictObject({ kind: z.literal("workloadIdentity") }).meta({ description: "No secret: the control plane's managed identity, federated into the cloud (AWS: a role trusting the identity's token; Google: workload identity federation; Azure: the identity itself)" }),
    z.strictObject({ kind: z.literal("awsAccessKey"), accessKeyId: AccessKeyId, secretAccessKey: Secret }),
    z.strictObject({ kind: z.literal("gcpServiceAccountKey"), json: Secret }),
    z.strictObject({ kind: z.literal("accessToken"), token: Secret }).meta({ description: "Local mode only: a static bearer token for a local fake" }),
  ])
  .meta({ id: "ConnectionCredentialsSpec" });

export const ConnectionCredentials = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("workloadIdentity") }),
  z.object({ kind: z.literal("awsAccessKey"), accessKeyId: z.string(), secretRef: z.object({ name: z.string(), version: z.string() }) }),
  z.object({ kind: z.literal("gcpServiceAccountKey"), secretRef: z.object({ name: z.string(), version: z.string() }) }),
  z.object({ kind: z.literal("accessToken"), secretRef: z.object({ name: z.string(), version: z.string() }) }),
]);

export const ConnectionScope = z
  .discriminatedUnion("cloud", [
    z.strictObject({
      cloud: z.literal("bedrock"),
      accountId: z.string().regex(/^\d{12}$/, "a 12-digit AWS account id"),
      roleArn: z
        .string()
        .regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, "an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        .optional()
        .meta({ description: "With workloadIdentity credentials: the IAM role the control plane assumes with its Entra ID token (STS AssumeRoleWithWebIdentity); absent: the AWS SDK's default credential chain" }),
      agentCore: z.boolean().default(false),
      endpoint: LocalEndpoint.optional(),
    }),
    z.strictObject({
      cloud: z.literal("vertex"),
      projectId: z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, "a Google Cloud project id"),
      workloadIdentityProvider: z
        .string()
        .regex(/^\/\/iam\.googleapis\.com\/projects\/\d+\/locations\/global\/workloadIdentityPools\/[a-z0-9-]{4,32}\/providers\/[a-z0-9-]{4,32}$/, "//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>")
        .optional()
        .meta({ description: "With workloadIdentity credentials: the workload identity pool provider that trusts the control plane's Entra ID tokens (absent: Application Default Credentials)" }),
      serviceAccount: z
        .email()
        .optional()
        .meta({ description: "With workloadIdentityProvider: the service account impersonated after the token exchange (absent: the federated principal itself needs the Vertex AI roles)" }),
      endpoint: LocalEndpoint.optional(),
    }),
    z.strictObject({
      cloud: z.literal("foundry"),
      projectEndpoints: z
        .record(Region, z.url({ protocol: /^https$/ }).max(500))
        .refine((r) => Object.keys(r).length >= 1 && Object.keys(r).length <= 20, "1–20 regions")
        .meta({ description: "The Foundry project endpoint of each region (https://<resource>.services.ai.azure.com/api/projects/<project>)" }),
    }),
  ])
  .meta({ id: "ConnectionScope" });

export const ConnectionSpec = z
  .strictObject({
    name: z.string().regex(/^[a-z][a-z0-9-]{1,39}$/, "2–40 lower-case letters, digits or '-', starting with a letter"),
    description: Description.optional(),
    projectId: ProjectId.meta({ description: "The project the connection's agents are registered in" }),
    scope: ConnectionScope,
    regions: z.array(Region).min(1).max(20).meta({ description: "Regions listed (Foundry: the keys of projectEndpoints)" }),
    credentials: ConnectionCredentialsSpec,
    owner: Owner.optional().meta({ description: "Owner given to agents discovered through the connection (default: the caller)" }),
    schedule: z.strictObject({ intervalMinutes: z.int().min(15).max(10_080) }).default({ intervalMinutes: 360 }),
    enabled: z.boolean().default(true),
  })
  .meta({ id: "ConnectionSpec" });
export type ConnectionSpecInput = z.input<typeof ConnectionSpec>;

export const ConnectionPatch = z
  .strictObject({
    description: Description.nullable().optional(),
    regions: z.array(Region).min(1).max(20).optional(),
    scope: ConnectionScope.optional(),
    credentials: ConnectionCredentialsSpec.optional(),
    owner: Owner.optional(),
    schedule: z.strictObject({ intervalMinutes: z.int().min(15).max(10_080) }).optional(),
    enabled: z.boolean().optional(),
  })
  .meta({ id: "ConnectionPatch" });
export type ConnectionPatch = z.output<typeof ConnectionPatch>;

export const SyncCounts = z.object({ listed: z.int(), discovered: z.int(), changed: z.int(), unchanged: z.int(), removedAtSource: z.int(), returned: z.int(), malformed: z.int(), conflicts: z.int() });
export type SyncCounts = z.output<typeof SyncCounts>;

export const RegionReport = z.object({
  region: z.string(),
  status: z.enum(["completed", "failed"]),
  pages: z.int(),
  counts: SyncCounts,
  error: z.object({ kind: z.string(), code: z.string().optional(), message: z.string() }).optional(),
});

export const SyncRun = z
  .object({
    id: SyncRunId,
    connectionId: ConnectionId,
    trigger: z.enum(["manual", "schedule"]),
    status: z.enum(["running", "completed", "partial", "failed", "skipped"]),
    skippedBecause: z.string().optional(),
    startedAt: z.iso.datetime(),
    finishedAt: z.iso.datetime().optional(),
    durationMs: z.int().optional(),
    counts: SyncCounts,
    regions: z.array(RegionReport),
    malformed: z.array(z.object({ region: z.string(), sourceId: z.string().optional(), reason: z.string() })).meta({ description: "Records the source returned that are not agents (first 100)" }),
    conflicts: z.array(z.object({ agentId: z.string(), field: z.string() })).meta({ description: "Fields changed both here and at the source (first 100); the local value was kept" }),
    by: z.string(),
    etag: z.string(),
  })
  .meta({ id: "AgentSyncRun" });
export type SyncRun = z.output<typeof SyncRun>;

export const Connection = z
  .object({
    id: ConnectionId,
    name: z.string(),
    description: z.string().optional(),
    cloud: z.enum(CLOUDS),
    projectId: z.string(),
    scope: z.record(z.string(), z.unknown()),
    regions: z.array(z.string()),
    credentials: ConnectionCredentials,
    owner: z.string(),
    schedule: z.object({ intervalMinutes: z.int() }),
    enabled: z.boolean(),
    lastSync: z
      .object({ runId: z.string(), status: z.string(), startedAt: z.string(), finishedAt: z.string().optional() })
      .optional(),
    /** Per region: when its last complete listing finished (an agent it held was seen then). */
    regionsSeenAt: z.record(z.string(), z.iso.datetime()).optional(),
    ...serverFields,
  })
  .meta({ id: "AgentConnection" });
export type Connection = z.output<typeof Connection>;

export const ConnectionList = z.object({ items: z.array(Connection), continuationToken: z.string().optional(), nextLink: z.string().optional() }).meta({ id: "AgentConnectionList" });
export const SyncRunList = z.object({ items: z.array(SyncRun), continuationToken: z.string().optional(), nextLink: z.string().optional() }).meta({ id: "AgentSyncRunList" });

/** A switch that stops sync without touching local governance: one for the tenant, one per project. */
export const AgentSyncSettings = z
  .strictObject({
    syncEnabled: z.boolean().meta({ description: "Off: the connections in scope do not sync; their agents keep their state and governance" }),
  })
  .meta({ id: "AgentSyncSettings" });
export const AgentSyncSettingsView = AgentSyncSettings.extend({ etag: z.string() }).meta({ id: "AgentSyncSettingsView" });
