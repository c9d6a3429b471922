/**
 * The tools pillar's documents. Everything of a project lives in the project's partition (servers,
 * their discovery snapshots, toolboxes, approvals of tools, the approval mode); the tenant catalog's
 * index lives in the tenant partition (catalog.ts), so a catalog page is one single-partition query.
 */
import { sha256 } from "../../domain/audit/chain.js";
import { TOOL_NAME } from "../../policy/input.js";
import type { StoredDoc } from "../../ports/store.js";
import type { ToolFinding } from "./validation.js";
import type { McpServer, Toolbox } from "./schema.js";

export interface ServerDoc extends StoredDoc, Omit<McpServer, "etag"> {
  docType: "mcpServer";
  /** Incremented by every discovery that wrote a snapshot (the next snapshot's sequence number). */
  snapshotSeq: number;
  /**
   * Incremented by every change of the source or credential (an OpenAPI document's content included, which
   * lives in its own document): a discovery listed from an older revision is not this registration's.
   */
  sourceRevision?: number;
}

/** An immutable discovery snapshot's header: written last, so a snapshot without one does not exist. */
export interface SnapshotDoc extends StoredDoc {
  docType: "mcpSnapshot";
  serverId: string;
  projectId: string;
  seq: number;
  createdAt: string;
  /** The upstream it was listed from (sourceKey): the compiler uses it only with a registration of the same source. */
  sourceKey?: string;
  transport: "streamable-http" | "sse" | "openapi";
  protocolVersion: string;
  serverInfo: Record<string, unknown>;
  capabilities: Record<string, unknown>;
  toolCount: number;
  resourceCount: number;
  promptCount: number;
  resources: string[];
  prompts: string[];
  findingCount: number;
  diff: { added: string[]; removed: string[]; changed: { name: string; fields: string[] }[] };
  /** The chunk documents holding the tools, in order. */
  chunks: string[];
  /** REST tools: the component schemas their operations name. */
  restSchemas?: Record<string, unknown>;
}

/** One tool of a snapshot, as stored. */
export interface StoredTool {
  name: string;
  hash: string;
  definition: Record<string, unknown>;
  findings: ToolFinding[];
  annotations: { readOnly: boolean; destructive: boolean; idempotent: boolean; openWorld: boolean };
  /** REST tools (OpenAPI): how a call becomes a request (the compiler's PolicyTool.operation). */
  operation?: Record<string, unknown>;
}

/**
 * Whether the gateway serves a discovered tool at all, whatever the approval mode: its name fits the
 * literal lists the policies compare it in, and the server listed it once (a second copy could hide a
 * changed definition behind an approved one). The compiler publishes only these; the API's `callable` says the same.
 */
export const servedAtGateway = (tool: Pick<StoredTool, "name" | "findings">): boolean => TOOL_NAME.test(tool.name) && !tool.findings.some((f) => f.code === "duplicate_name");

/** Tools of a snapshot, a bounded slice per document (Cosmos items are limited to 2 MB). */
export interface SnapshotChunkDoc extends StoredDoc {
  docType: "mcpSnapshotChunk";
  snapshotId: string;
  index: number;
  tools: StoredTool[];
}

/** What the project decided about one tool: an approval, pinned to the definition hash that was approved. */
export interface GrantDoc extends StoredDoc {
  docType: "toolGrant";
  serverId: string;
  server: string;
  tool: string;
  /** "withdrawn": an approval taken back (an access review's outcome); a new request can be made. */
  state: "pending" | "approved" | "rejected" | "suspended" | "withdrawn";
  approvalId: string;
  /** The definition the request was about (what an approval pins). */
  requestedHash: string;
  /** Set once approved: calls are allowed while the tool's current hash equals it. */
  pinnedHash?: string;
  /** The binding (server endpoint, and a REST tool's operation) the request was about, and once approved the one pinned (bindingHash): calls are allowed while it is the tool's. */
  requestedBinding?: string;
  pinnedBinding?: string;
  /** Why the state is what it is ("definition_changed" for a suspension). */
  cause?: string;
  requestedBy: string;
  requestedAt: string;
  updatedAt: string;
}

export interface ToolboxDoc extends StoredDoc, Omit<Toolbox, "etag"> {
  docType: "toolbox";
}

export interface SettingsDoc extends StoredDoc {
  docType: "toolsSettings";
  approvalMode: "none" | "all" | "destructive";
  updatedAt: string;
  updatedBy: string;
}

/** An OpenAPI document given inline: kept beside its server (re-discovery converts it again). */
export interface OpenApiDocumentDoc extends StoredDoc {
  docType: "openApiDocument";
  serverId: string;
  document: Record<string, unknown>;
}

export const serverPath = (projectId: string, id: string) => `/projects/${projectId}/mcp-servers/${id}`;
export const toolboxPath = (projectId: string, id: string) => `/projects/${projectId}/toolboxes/${id}`;
export const snapshotPath = (projectId: string, serverId: string, id: string) => `${serverPath(projectId, serverId)}/snapshots/${id}`;
export const settingsPath = (projectId: string) => `/projects/${projectId}/tools-settings`;
export const serverNameId = (name: string) => `name.mcpServer.${sha256(name).slice(0, 48)}`;
export const toolboxNameId = (name: string) => `name.toolbox.${sha256(name).slice(0, 48)}`;
export const grantId = (serverId: string, tool: string) => `grant.${serverId}.${sha256(tool).slice(0, 40)}`;
export const settingsId = "tools-settings";
export const openApiDocumentId = (serverId: string) => `oas.${serverId}`;
/** Secret names: letters, digits and '-' (Key Vault). */
export const upstreamSecretName = (serverId: string, type: "header" | "oauthClientCredentials") => `mcp-${serverId.replace("_", "-")}-${type === "header" ? "upstream" : "oauth"}`;

/** Where a server's tools come from, as one string: a remote URL and transport, or a REST API's base URL. */
export const sourceKey = (source: { kind: "remote"; url: string; transport: string } | { kind: "openapi"; baseUrl: string }): string =>
  source.kind === "remote" ? `remote|${source.url}|${source.transport}` : `openapi|${source.baseUrl}`;
