import { z } from "zod";
import { idSchema, PageQuery, serverFields } from "../../domain/common.js";
import { Audience, FreeText, HeaderName, DataClass, Guid } from "../../policy/identifiers.js";
import { MCP_SERVER_NAME, TOOL_NAME } from "../../policy/input.js";

export const ServerId = idSchema("srv");
export const ToolboxId = idSchema("tbx");
export const SnapshotId = idSchema("snp");
export const ServerName = z
  .string()
  .regex(MCP_SERVER_NAME, "2–40 characters: lower-case letters, digits and '-', starting with a letter")
  .meta({ description: "The server's namespace in its project: its gateway path segment and the prefix of its tools in the catalog" });
export const ToolName = z.string().regex(TOOL_NAME, "1–128 characters: letters, digits, '_', '.', '-'");

const Url = z.url({ protocol: /^https?$/ }).max(2000);
const SecretValue = z.string().min(1).max(8192).meta({ description: "Write-only: kept in the secret store, never returned" });

/** How the gateway and discovery authenticate to the server (secrets are write-only). */
export const UpstreamAuthSpec = z
  .discriminatedUnion("type", [
    z.strictObject({ type: z.literal("none") }),
    z
      .strictObject({ type: z.literal("header"), header: HeaderName, value: SecretValue.optional(), keep: z.literal(true).optional().meta({ description: "Keep the stored value (same header, same server URL origin)" }) })
      .refine((a) => (a.value === undefined) !== (a.keep === undefined), { message: "give exactly one of value and keep", path: ["value"] }),
    z.strictObject({ type: z.literal("managedIdentity"), audience: Audience, clientId: Guid.optional() }),
    z
      .strictObject({
        type: z.literal("oauthClientCredentials"),
        tokenUrl: z.url({ protocol: /^https$/ }).max(2000),
        clientId: z.string().min(1).max(200),
        scope: z.string().max(1000).optional(),
        clientSecret: SecretValue.optional(),
        keep: z.literal(true).optional(),
      })
      .refine((a) => (a.clientSecret === undefined) !== (a.keep === undefined), { message: "give exactly one of clientSecret and keep", path: ["clientSecret"] }),
  ])
  .meta({ id: "McpUpstreamAuthSpec" });
export type UpstreamAuthSpec = z.output<typeof UpstreamAuthSpec>;

const SecretRef = z.strictObject({ name: z.string(), version: z.string() });
export const UpstreamAuth = z
  .discriminatedUnion("type", [
    z.strictObject({ type: z.literal("none") }),
    z.strictObject({ type: z.literal("header"), header: HeaderName, secretRef: SecretRef }),
    z.strictObject({ type: z.literal("managedIdentity"), audience: z.string(), clientId: Guid.optional() }),
    z.strictObject({ type: z.literal("oauthClientCredentials"), tokenUrl: z.string(), clientId: z.string(), scope: z.string().optional(), secretRef: SecretRef }),
  ])
  .meta({ id: "McpUpstreamAuth" });
export type UpstreamAuth = z.output<typeof UpstreamAuth>;

const RateLimit = z.strictObject({ calls: z.int().min(1).max(1_000_000), renewalPeriodSeconds: z.int().min(1).max(300) });

export const ServerSource = z
  .discriminatedUnion("kind", [
    z.strictObject({
      kind: z.literal("remote"),
      url: Url.meta({ description: "The server's MCP endpoint (Streamable HTTP), or its SSE endpoint (legacy HTTP+SSE)" }),
      transport: z.enum(["streamable-http", "sse"]).default("streamable-http"),
    }),
    z.strictObject({
      kind: z.literal("openapi"),
      baseUrl: Url.meta({ description: "Where the REST API is served (requests for its tools go here)" }),
      document: z.record(z.string(), z.unknown()).optional().meta({ description: "The OpenAPI 3.0/3.1 document (JSON); or documentUrl" }),
      documentUrl: Url.optional().meta({ description: "Where to fetch the document (bounded, public addresses only in Azure)" }),
      include: z.array(z.string().min(1).max(300)).max(1000).optional().meta({ description: "Operations to turn into tools (operationId or 'METHOD /path'); all when absent" }),
    }),
  ])
  .meta({ id: "McpServerSource" });

export const ToolsLimits = z
  .strictObject({
    perTool: RateLimit.optional().meta({ description: "Calls per key per tool (every tool of the server without its own limit)" }),
    tools: z.record(ToolName, RateLimit).optional().meta({ description: "Calls per key for named tools" }),
  })
  .meta({ id: "McpToolLimits" });

/** The registry's server.json metadata kept with an imported server (packages are not gateway-routable). */
export const RegistryMetadata = z.strictObject({
  name: z.string().min(3).max(200),
  version: z.string().min(1).max(255),
  title: FreeText(100).optional(),
  websiteUrl: z.string().max(2000).optional(),
  repository: z.record(z.string(), z.unknown()).optional(),
  packages: z.array(z.record(z.string(), z.unknown())).max(50).default([]).meta({ description: "Local packages (npm, pypi, oci…): catalog metadata only, not routable through the gateway" }),
});

export const McpServerSpec = z
  .strictObject({
    name: ServerName,
    displayName: FreeText(100).optional(),
    description: FreeText(2000).optional(),
    owner: z.string().min(1).max(200).optional().meta({ description: "Who answers for the server (a person or team)" }),
    tags: z.array(z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/)).max(20).default([]),
    source: ServerSource,
    auth: UpstreamAuthSpec.default({ type: "none" }),
    status: z.enum(["active", "deprecated", "blocked"]).default("active"),
    sunsetDate: z.iso.date().optional().meta({ description: "Required when deprecated: a date after today (UTC). The gateway answers with `Sunset` and `Deprecation` until then and refuses the server's calls, and its toolboxes', from 00:00 UTC of that date on (410 `tool_server_sunset` / `toolbox_sunset`)" }),
    dataClasses: z.array(DataClass).max(20).default([]),
    limits: ToolsLimits.default({}),
    discovery: z
      .strictObject({ enabled: z.boolean().default(true), intervalHours: z.int().min(1).max(720).default(24) })
      .default({ enabled: true, intervalHours: 24 })
      .meta({ description: "Scheduled re-discovery (on demand: POST …/discover)" }),
    registry: RegistryMetadata.optional(),
  })
  .superRefine((s, ctx) => {
    if (s.status === "deprecated" && !s.sunsetDate) ctx.addIssue({ code: "custom", path: ["sunsetDate"], message: "is required when status is deprecated" });
    if (s.source.kind === "openapi" && !s.source.document === !s.source.documentUrl) ctx.addIssue({ code: "custom", path: ["source", "document"], message: "give exactly one of document and documentUrl" });
  })
  .meta({ id: "McpServerSpec" });
export type McpServerSpec = z.output<typeof McpServerSpec>;
export type McpServerSpecInput = z.input<typeof McpServerSpec>;

export const McpServerPatch = z
  .strictObject({
    displayName: FreeText(100).nullable().optional(),
    description: FreeText(2000).nullable().optional(),
    owner: z.string().min(1).max(200).nullable().optional(),
    tags: z.array(z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/)).max(20).optional(),
    source: ServerSource.optional(),
    auth: UpstreamAuthSpec.optional(),
    status: z.enum(["active", "deprecated", "blocked"]).optional(),
    sunsetDate: z.iso.date().nullable().optional().meta({ description: "A date being set must be after today (UTC): from 00:00 UTC of it on, a deprecated server's calls are refused (410 `tool_server_sunset`)" }),
    dataClasses: z.array(DataClass).max(20).optional(),
    limits: ToolsLimits.optional(),
    discovery: z.strictObject({ enabled: z.boolean().optional(), intervalHours: z.int().min(1).max(720).optional() }).optional().meta({ description: "Merged into the current settings" }),
  })
  .meta({ id: "McpServerPatch" });
export type McpServerPatch = z.output<typeof McpServerPatch>;

export const DiscoveryState = z
  .strictObject({
    status: z.enum(["never", "succeeded", "failed"]).meta({ description: "The last discovery's outcome (never: not finished yet)" }),
    lastAttemptAt: z.iso.datetime().optional(),
    lastSuccessAt: z.iso.datetime().optional(),
    snapshotId: SnapshotId.optional(),
    protocolVersion: z.string().optional(),
    transport: z.enum(["streamable-http", "sse", "openapi"]).optional(),
    toolCount: z.int().optional(),
    failure: z.strictObject({ code: z.string(), message: z.string() }).optional(),
  })
  .meta({ id: "McpDiscoveryState" });
export type DiscoveryState = z.output<typeof DiscoveryState>;

const { source: _source, auth: _auth, ...specShape } = McpServerSpec.shape;
export const McpServer = z
  .strictObject({
    id: ServerId,
    projectId: z.string(),
    ...specShape,
    source: z.discriminatedUnion("kind", [
      z.strictObject({ kind: z.literal("remote"), url: z.string(), transport: z.enum(["streamable-http", "sse"]) }),
      z.strictObject({ kind: z.literal("openapi"), baseUrl: z.string(), documentUrl: z.string().optional(), include: z.array(z.string()).optional() }),
    ]),
    auth: UpstreamAuth,
    deprecatedAt: z.iso
      .date()
      .optional()
      .meta({ description: "When the server was deprecated (server-set, UTC date; kept while it is blocked, dropped when it is active again); its gateway answers, and its toolboxes', carry it as the Deprecation header (RFC 9745)" }),
    discoveryState: DiscoveryState,
    ...serverFields,
  })
  .meta({ id: "McpServer" });
export type McpServer = z.output<typeof McpServer>;

export const McpServerList = z.strictObject({ items: z.array(McpServer), continuationToken: z.string().optional() }).meta({ id: "McpServerList" });

export const ToolFinding = z.strictObject({ severity: z.enum(["error", "warning"]), code: z.string(), path: z.string(), message: z.string() }).meta({ id: "McpToolFinding" });

export const ToolApprovalState = z.enum(["notRequired", "required", "pending", "approved", "suspended", "rejected", "withdrawn"]);

/** A tool of a server as its latest discovery found it, with what the project's approvals say about it. */
export const Tool = z
  .strictObject({
    name: ToolName,
    namespacedName: z.string().meta({ description: "<server>/<tool>: the tool's id in the tenant catalog" }),
    title: z.string().optional(),
    description: z.string().optional(),
    hash: z.string().meta({ description: "sha-256 of the tool's canonical definition (what an approval pins)" }),
    annotations: z.strictObject({ readOnly: z.boolean(), destructive: z.boolean(), idempotent: z.boolean(), openWorld: z.boolean() }),
    findings: z.array(ToolFinding),
    approval: z.strictObject({ state: ToolApprovalState, approvalId: z.string().optional(), pinnedHash: z.string().optional(), cause: z.string().optional().meta({ description: "Why: definition_changed, or binding_changed (the tool served from another endpoint, or a REST tool re-pointed at another operation), for a suspension" }) }),
    callable: z.boolean().meta({ description: "Whether keys with this tool in scope may call it at the gateway once published (never a name the server lists twice or that is not routable)" }),
    lastUsedAt: z.iso.datetime().optional().meta({ description: "Its last call through the gateway (tools/call, or the REST tool's operation), from the usage rollups" }),
    definition: z.record(z.string(), z.unknown()).meta({ description: "The tool exactly as the server listed it" }),
  })
  .meta({ id: "McpTool" });
export type Tool = z.output<typeof Tool>;
export const ToolList = z.strictObject({ items: z.array(Tool), continuationToken: z.string().optional() }).meta({ id: "McpToolList" });

export const ToolDiff = z.strictObject({ added: z.array(z.string()), removed: z.array(z.string()), changed: z.array(z.strictObject({ name: z.string(), fields: z.array(z.string()) })) });

export const Snapshot = z
  .strictObject({
    id: SnapshotId,
    serverId: ServerId,
    projectId: z.string(),
    seq: z.int(),
    createdAt: z.iso.datetime(),
    transport: z.enum(["streamable-http", "sse", "openapi"]),
    protocolVersion: z.string(),
    serverInfo: z.record(z.string(), z.unknown()),
    capabilities: z.record(z.string(), z.unknown()),
    toolCount: z.int(),
    resourceCount: z.int(),
    promptCount: z.int(),
    resources: z.array(z.string()).meta({ description: "Resource URIs (first 200)" }),
    prompts: z.array(z.string()).meta({ description: "Prompt names (first 200)" }),
    findingCount: z.int(),
    diff: ToolDiff.meta({ description: "Against the previous snapshot" }),
    etag: z.string(),
  })
  .meta({ id: "McpSnapshot" });
export type Snapshot = z.output<typeof Snapshot>;
export const SnapshotList = z.strictObject({ items: z.array(Snapshot), continuationToken: z.string().optional() }).meta({ id: "McpSnapshotList" });

export const ToolsSettings = z
  .strictObject({
    approvalMode: z.enum(["none", "all", "destructive"]).default("none").meta({ description: "none: every tool the last discovery listed is callable; all: every tool needs an approval; destructive: tools not annotated read-only need one" }),
  })
  .meta({ id: "ToolsSettings" });
export const ToolsSettingsView = ToolsSettings.extend({ etag: z.string() }).meta({ id: "ToolsSettingsView" });

export const ToolboxSpec = z
  .strictObject({
    name: ServerName,
    description: FreeText(2000).optional(),
    tools: z.array(z.strictObject({ server: ServerName, tool: ToolName })).min(1).max(500),
  })
  .meta({ id: "ToolboxSpec" });
export type ToolboxSpec = z.output<typeof ToolboxSpec>;
export const ToolboxPatch = z.strictObject({ description: FreeText(2000).nullable().optional(), tools: z.array(z.strictObject({ server: ServerName, tool: ToolName })).min(1).max(500).optional() }).meta({ id: "ToolboxPatch" });
export const Toolbox = z
  .strictObject({ id: ToolboxId, projectId: z.string(), name: z.string(), description: z.string().optional(), tools: z.array(z.strictObject({ server: z.string(), tool: z.string() })), ...serverFields })
  .meta({ id: "Toolbox" });
export type Toolbox = z.output<typeof Toolbox>;
export const ToolboxList = z.strictObject({ items: z.array(Toolbox), continuationToken: z.string().optional() }).meta({ id: "ToolboxList" });

export const ToolApprovalSpec = z
  .strictObject({ justification: FreeText(2000).min(1) })
  .meta({ id: "ToolApprovalSpec" });

export const CatalogEntry = z
  .strictObject({
    projectId: z.string(),
    serverId: ServerId,
    server: z.string(),
    tool: z.string(),
    namespacedName: z.string(),
    title: z.string().optional(),
    description: z.string().optional(),
    annotations: z.strictObject({ readOnly: z.boolean(), destructive: z.boolean(), idempotent: z.boolean(), openWorld: z.boolean() }),
    protocolVersion: z.string(),
    findingCount: z.int(),
    approval: ToolApprovalState,
    serverStatus: z.enum(["active", "deprecated", "blocked"]),
    tags: z.array(z.string()),
    updatedAt: z.iso.datetime(),
  })
  .meta({ id: "CatalogEntry" });
export type CatalogEntry = z.output<typeof CatalogEntry>;
export const CatalogPage = z.strictObject({ items: z.array(CatalogEntry), continuationToken: z.string().optional() }).meta({ id: "CatalogPage" });
export const CatalogQuery = z.strictObject({
  q: z.string().min(1).max(100).optional().meta({ description: "Words that must all appear in the tool's name, title, description or server (case-insensitive)" }),
  projectId: z.string().max(40).optional(),
  server: ServerName.optional(),
  readOnly: z.enum(["true", "false"]).optional(),
  approval: ToolApprovalState.optional(),
  tag: z.string().max(40).optional(),
  ...PageQuery.shape,
});
