/**
 * Naming conventions of the APIM entities the compiler emits (APIs, operations, products, backends,
 * named values, fragments) and of those others attach to them (virtual keys: subscriptions scoped to
 * the API or a tier product).
 *
 * **Tenants share a gateway, never an artifact.** Every id starts with the tenant's gateway key
 * (`aigov-<key>-…`), so one tenant's publish can neither overwrite nor delete another's artifact, and
 * no policy of one tenant can include another's fragment or reach its backends. The key is derived
 * from the tenant id (10 base32 characters of its SHA-256, {@link tenantGatewayKey}); the publishing
 * side reserves it per gateway instance before the first write, so two tenants can never hold the
 * same key on one instance (a collision is refused; an operator then assigns an explicit key).
 *
 * Ids are built from validated identifiers (identifiers.ts: `[a-z0-9_]`, no `-`) joined with `-`, so
 * two different inputs never produce the same id. APIM limits: backend ids ≤ 80 characters, fragment
 * ids `^[\w][\w-]+[\w]$` ≤ 80, named values `^[A-Za-z0-9-._]+$` ≤ 80 (a pool id is at most
 * 6 + 10 + 6 + 24 + 1 + 24 + 3 = 74).
 */
import { createHash } from "node:crypto";

/** An explicit gateway key (assigned by an operator) or a derived one: lower-case letters and digits. */
export const GATEWAY_KEY = /^[a-z0-9]{1,10}$/;

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/** The gateway key derived from a tenant id: the first 50 bits of its SHA-256, in base32. */
export function tenantGatewayKey(tenantId: string): string {
  const digest = createHash("sha256").update(`aigov-tenant:${tenantId}`).digest();
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 10) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length === 10) break;
  }
  return out;
}

/** The ids of one tenant's artifacts. */
export class GatewayNames {
  readonly prefix: string;

  constructor(readonly key: string) {
    if (!GATEWAY_KEY.test(key)) throw new RangeError(`not a gateway key: ${JSON.stringify(key)}`);
    this.prefix = `aigov-${key}`;
  }

  /** The API that serves a project (its policy is the project's policy). */
  api(projectId: string): string {
    return `${this.prefix}-${projectId}`;
  }

  /** The project API's URL suffix: https://<gateway>/aigov/<key>/<projectId>/… (lower-case ids: APIM paths are case-insensitive). */
  apiPath(projectId: string): string {
    return `aigov/${this.key}/${projectId}`;
  }

  /** The product for keys of a project in a key tier. */
  product(projectId: string, tierId: string): string {
    return `${this.prefix}-${projectId}-${tierId}`;
  }

  /** A single backend (one endpoint of a model); backend ids are unique within the tenant. */
  backend(backendId: string): string {
    return `${this.prefix}-be-${backendId}`;
  }

  /** The pool that serves a model in a project; with an A/B split, one pool per version. */
  pool(projectId: string, modelId: string, versionIndex?: number): string {
    return `${this.prefix}-pool-${projectId}-${modelId}${versionIndex === undefined ? "" : `-v${versionIndex}`}`;
  }

  /** A named value (a Key Vault-backed backend key), referenced as {{id}}. */
  namedValue(id: string): string {
    return `${this.prefix}-${id}`;
  }

  fragment(name: "resolve-model" | "on-error"): string {
    return `${this.prefix}-${name}`;
  }

  /** Shared backends the GenAI policies call themselves. */
  get contentSafety(): string {
    return `${this.prefix}-content-safety`;
  }

  get embeddings(): string {
    return `${this.prefix}-embeddings`;
  }

  /** A virtual key's subscription. */
  subscription(keyId: string): string {
    return `${this.prefix}-${keyId}`;
  }

  /** The MCP API that serves a project's MCP server (or a REST API's tools) at the gateway. */
  mcpApi(projectId: string, serverName: string): string {
    return `${this.prefix}-${projectId}-mcp-${serverName}`;
  }

  /** The MCP API that serves a project's toolbox (a virtual MCP server). */
  toolboxApi(projectId: string, toolboxName: string): string {
    return `${this.prefix}-${projectId}-tbx-${toolboxName}`;
  }

  /** The REST API behind an MCP server converted from an OpenAPI document. */
  restApi(projectId: string, serverName: string): string {
    return `${this.prefix}-${projectId}-rest-${serverName}`;
  }

  /** URL suffixes: …/<projectId>/mcp/<server>, …/<projectId>/toolboxes/<name>, …/<projectId>/rest/<server>. */
  mcpApiPath(projectId: string, serverName: string): string {
    return `${this.apiPath(projectId)}/mcp/${serverName}`;
  }

  toolboxApiPath(projectId: string, toolboxName: string): string {
    return `${this.apiPath(projectId)}/toolboxes/${toolboxName}`;
  }

  restApiPath(projectId: string, serverName: string): string {
    return `${this.apiPath(projectId)}/rest/${serverName}`;
  }

  /** The API that serves a project's agent at the gateway. */
  agentApi(projectId: string, agentId: string): string {
    return `${this.prefix}-${projectId}-${agentId}`;
  }

  /** …/<projectId>/agents/<agentId>. */
  agentApiPath(projectId: string, agentId: string): string {
    return `${this.apiPath(projectId)}/agents/${agentId}`;
  }

  /** True when an artifact id belongs to this tenant. */
  owns(id: string): boolean {
    return id === this.prefix || id.startsWith(`${this.prefix}-`);
  }
}

export function gatewayNames(tenantId: string, explicitKey?: string): GatewayNames {
  return new GatewayNames(explicitKey ?? tenantGatewayKey(tenantId));
}

/** The header that carries a virtual key: the one Azure OpenAI clients already send their key in. */
export const SUBSCRIPTION_KEY_HEADER = "api-key";
/** APIM's default query parameter for a subscription key (kept; removed before forwarding). */
export const SUBSCRIPTION_KEY_QUERY = "subscription-key";

/** The model calls the gateway serves (ADR 009: the request shapes). `call` is the path the backend gets. */
export const MODEL_CALLS = [
  { name: "chat-completions", call: "chat/completions" },
  { name: "completions", call: "completions" },
  { name: "embeddings", call: "embeddings" },
  { name: "responses", call: "responses" },
] as const;

/**
 * The project API's operations with the models pillar on: the OpenAI-style routes (`/v1/…`, model in
 * the body), the Azure OpenAI v1 routes (`/openai/v1/…`, model in the body) and the Azure OpenAI
 * deployment routes (`/openai/deployments/{deployment-id}/…`, model in the path; no Responses API there).
 */
export const MODEL_OPERATIONS: readonly { id: string; method: "POST"; urlTemplate: string; displayName: string }[] = MODEL_CALLS.flatMap((c) => [
  { id: `v1-${c.name}`, method: "POST" as const, urlTemplate: `/v1/${c.call}`, displayName: `${c.call} (OpenAI style)` },
  { id: `openai-v1-${c.name}`, method: "POST" as const, urlTemplate: `/openai/v1/${c.call}`, displayName: `${c.call} (Azure OpenAI v1)` },
  ...(c.name === "responses" ? [] : [{ id: `deployment-${c.name}`, method: "POST" as const, urlTemplate: `/openai/deployments/{deployment-id}/${c.call}`, displayName: `${c.call} (Azure OpenAI deployment)` }]),
]);

/** The request header that carries the caller's data classification (only where a data-class rule applies). */
export const DATA_CLASS_HEADER = "x-aigov-data-class";

/** The api-version the gateway adds for Azure OpenAI deployment calls whose client sent none. */
export const DEFAULT_AZURE_OPENAI_API_VERSION = "2024-10-21";

/** Context variables set by compiled policies (compiler constants; never derived from input). */
export const VAR = {
  /** The model name the request addresses. */
  model: "aigov-model",
  /** '|'-separated model names the project may call (data, not code). */
  models: "aigov-models",
  /** '|'-separated pool ids, parallel to `models`. */
  pools: "aigov-pools",
  /** '|'-separated provider deployment/model names (the registry's modelName), parallel to `models`. */
  deployments: "aigov-deployments",
  /** '|'-separated backend request shapes ("azure" deployment paths or "v1" model-in-body), parallel to `models`. */
  routes: "aigov-routes",
  /** '|'-separated retries on 429/5xx per model, parallel to `models` (only with failover). */
  retryCounts: "aigov-retry-counts",
  /** '|'-separated per-model block numbers, parallel to `models` (0 = no block). */
  groups: "aigov-model-groups",
  modelIndex: "aigov-model-ix",
  group: "aigov-model-group",
  backend: "aigov-backend",
  /** The path model (deployment-id) and the body model, as the client named them. */
  pathModel: "aigov-path-model",
  bodyModel: "aigov-body-model",
  /** The data classes a request may declare here, '|'-separated (a literal; DATA_CLASS_OUTSIDE reads it). */
  dataClasses: "aigov-data-classes",
  /** A required header's name (headers.required, lower case; a literal REQUIRED_HEADER_OUTSIDE reads). */
  requiredHeader: "aigov-required-header",
  /** That header's allowed values, lower case, '|'-separated (a literal; REQUIRED_HEADER_OUTSIDE reads it). */
  requiredValues: "aigov-required-values",
  /** "reading" while an expression parses the request body as JSON, "read" after: on-error tells a body it cannot parse (400) from a fault (500). */
  bodyState: "aigov-body-state",
  /** The provider deployment/model the request is sent to. */
  deployment: "aigov-deployment",
  /** The model call (chat/completions, embeddings, …) the operation stands for. */
  call: "aigov-call",
  retries: "aigov-retries",
  /** Set by a key-tier product policy: the tier's id (identifiers.ts TierId); API policies compare it
   * as a string literal, so a tier's identity in documents does not depend on other tiers. */
  keyTier: "aigov-key-tier",
  /** '|'-separated model names the key's tier may call (data, not code), set only for tiers that
   * restrict the project's models; absent = no tier restriction. */
  tierModels: "aigov-tier-models",
  abRoll: "aigov-ab",
  /** '|'-separated names of the project's deprecated models that have a sunset date (a literal; the sunset gate reads it). */
  sunsetModels: "aigov-sunset-models",
  sunset: "aigov-sunset",
  deprecation: "aigov-deprecation",
  /** Set when the model has its own content-safety settings, so the project-level element skips it. */
  ownContentSafety: "aigov-own-cs",
  /** Set by the block of a model whose region rule excludes the embeddings deployment (ADR 024): the semantic cache skips it. */
  noCache: "aigov-no-cache",
  /** MCP APIs: the JSON-RPC method of the request ("" when not a POST, or for a client's response). */
  mcpMethod: "aigov-mcp-method",
  /** MCP APIs: the tool a tools/call names ("" otherwise). */
  mcpTool: "aigov-mcp-tool",
  /** MCP and REST-tool APIs: '|'-separated tools (or operations) the approval mode lets keys call. */
  mcpAllowed: "aigov-mcp-allowed",
  /** '|'-separated tools (or operations) a narrowed key tier may call; absent = the tier's whole grant. */
  mcpTierTools: "aigov-mcp-tier-tools",
  /** '|'-separated tools a pass-through server's last discovery listed (the only ones it serves). */
  mcpListed: "aigov-mcp-listed",
  /** '|'-separated tools of a pass-through toolbox. */
  mcpToolbox: "aigov-mcp-toolbox",
  /** Set when only lifecycle and tool methods may pass (a narrowed tier, a toolbox). */
  mcpToolsOnly: "aigov-mcp-tools-only",
  /** MCP APIs: whose per-tool counters a call counts in — the MCP API id of the one server its tools come
   * from (so a server and its toolboxes share one budget per key and tool), else the API's own id. */
  mcpLimitScope: "aigov-mcp-limit-scope",
  /** Pass-through MCP APIs: the server's session id of a request whose `Mcp-Session-Id` decrypts under the
   * caller's key, "" when the request names no session, " " (never a session id: those are visible ASCII)
   * when it decrypts to anything else (expressions.ts, MCP_SESSION_OF_REQUEST). */
  mcpSession: "aigov-mcp-session",
  /** Pass-through MCP APIs: "reading" while the session's name is decrypted (a failure is on-error's unknown session), then "read". */
  mcpSessionState: "aigov-mcp-session-state",
  /** Agent APIs: the card the gateway serves, base64 of its UTF-8 JSON (data, not code; agent-card.ts). */
  agentCard: "aigov-agent-card",
} as const;
