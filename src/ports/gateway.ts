/**
 * The gateway (Azure API Management) as the control plane sees it: a desired set of artifacts that the
 * policy compiler produces (src/policy) and a publisher applies (src/adapters/apim: ARM; locally,
 * files under .data/apim/). No Azure SDK types here.
 */

/** Where a policy document applies. ARM paths: service/policies/policy, products/{id}/policies/policy,
 * apis/{id}/policies/policy, apis/{apiId}/operations/{id}/policies/policy. */
export type PolicyScope =
  | { type: "global" }
  | { type: "product"; productId: string }
  | { type: "api"; apiId: string }
  | { type: "operation"; apiId: string; operationId: string };

export interface PolicyArtifact {
  kind: "policy";
  scope: PolicyScope;
  /** The <policies> document: well-formed XML with escaped expressions, published as format "xml". */
  xml: string;
}

/** A policy fragment (referenced with <include-fragment fragment-id="…"/>). */
export interface FragmentArtifact {
  kind: "fragment";
  id: string;
  description?: string;
  xml: string;
}

export interface CircuitBreakerRule {
  name: string;
  failureCondition: {
    count: number;
    /** ISO-8601 duration, e.g. PT1M. */
    interval: string;
    statusCodeRanges: { min: number; max: number }[];
    errorReasons?: string[];
  };
  /** ISO-8601 duration the backend is taken out of rotation. */
  tripDuration: string;
  acceptRetryAfter?: boolean;
}

/** A backend: a single endpoint (with optional circuit breaker and credentials) or a load-balanced pool. */
export type BackendArtifact =
  | {
      kind: "backend";
      id: string;
      type: "Single";
      url: string;
      description?: string;
      circuitBreaker?: { rules: CircuitBreakerRule[] };
      /** Header credentials by reference to named values only (e.g. {"api-key": ["{{nv-id}}"]}); never a raw key. */
      credentialHeaders?: Record<string, string[]>;
      /** The gateway's managed identity authenticates to the backend (credentials.managedIdentity): used by
       * backends that policies call themselves (Content Safety, embeddings). Model backends authenticate
       * in policy (authentication-managed-identity). */
      managedIdentity?: { resource: string; clientId?: string };
      /**
       * Read back only: settings aigov never writes that the gateway holds anyway (a proxy, TLS checks turned
       * off, query or certificate credentials — an edit in the portal). A desired backend never has them, so
       * a backend that does hashes as drift.
       */
      unmodelled?: Record<string, unknown>;
    }
  | {
      kind: "backend";
      id: string;
      type: "Pool";
      description?: string;
      services: { id: string; priority?: number; weight?: number }[];
    };

/** A named value: plain, secret, or Key Vault-backed (the value never passes through the control plane). */
export type NamedValueArtifact =
  | { kind: "namedValue"; id: string; displayName: string; secret: false; value: string; tags?: string[] }
  | { kind: "namedValue"; id: string; displayName: string; secret: true; keyVault: { secretIdentifier: string; identityClientId?: string }; tags?: string[] };

/** A parameter of an operation (ARM ParameterContract). */
export interface OperationParameter {
  name: string;
  /** "string", "integer", "number", "boolean", "array" or "object" (ARM `type`). */
  type: string;
  required: boolean;
  description?: string;
  /** A schema of the API's schema document (ApiSchema) that describes the value, by its type name. */
  schemaId?: string;
  typeName?: string;
}

/** An operation of an API. `urlTemplate` "/*" is APIM's wildcard: every path for that method. */
export interface ApiOperation {
  id: string;
  method: string;
  urlTemplate: string;
  displayName: string;
  description?: string;
  /** `{name}` parameters of `urlTemplate` (ARM templateParameters). */
  templateParameters?: OperationParameter[];
  /** ARM `request`: query parameters, headers and body representations (schemas by schemaId/typeName). */
  request?: {
    queryParameters?: OperationParameter[];
    headers?: OperationParameter[];
    representations?: { contentType: string; schemaId?: string; typeName?: string }[];
  };
  /** ARM `responses`: the success response's representations (what a REST-as-MCP tool's output is). */
  responses?: { statusCode: number; description?: string; representations?: { contentType: string; schemaId?: string; typeName?: string }[] }[];
}

/**
 * A schema document of an API (ARM apis/{id}/schemas/{schemaId}, contentType
 * "application/vnd.oai.openapi.components+json"): the components its operations' representations name.
 */
export interface ApiSchema {
  id: string;
  contentType: "application/vnd.oai.openapi.components+json";
  document: { components: { schemas: Record<string, unknown> } };
}

/**
 * A tool of an MCP API made from a REST API (ARM apis/{mcpApiId}/tools/{id}, api-version
 * 2025-09-01-preview; preview, docs/adr/013-tools-at-the-gateway.md): it names the REST operation that
 * serves it. APIM derives its input schema from that operation.
 */
export interface McpToolArtifact {
  /** Resource name: 1–80 characters, `^\w+$|^\w[\w-]+\w$`. */
  id: string;
  /** The tool's name as MCP clients see it (letters, digits, `_`, `-`; ≤ 300). */
  displayName: string;
  description?: string;
  /** The backing operation: apis/{apiId}/operations/{operationId} (an ARM id in the request body). */
  apiId: string;
  operationId: string;
}

/**
 * What an API of type "mcp" serves (ARM `properties.type: "mcp"`, api-version 2025-09-01-preview,
 * preview: docs/adr/013-tools-at-the-gateway.md):
 * - `passThrough`: a remote MCP server the gateway forwards to (`serviceUrl`, `mcpProperties`);
 * - `restTools`: tools made from operations of the tenant's REST APIs (`apis/{id}/tools/{toolId}`).
 */
export type McpApiSource =
  | { type: "passThrough"; serviceUrl: string; transportType: "streamable" | "sse"; endpoints: { name: "message" | "sse"; uriTemplate: string }[] }
  | { type: "restTools"; tools: McpToolArtifact[] };

/** An HTTP API (ARM apis/{id}) with its operations (apis/{id}/operations/{opId}); the operations listed
 * are the only ones it keeps. A project API has no serviceUrl: its policy picks the backend (set-backend-service). */
export interface ApiArtifact {
  kind: "api";
  id: string;
  displayName: string;
  description?: string;
  /** The API URL suffix below the gateway host, e.g. "aigov/prj_x". */
  path: string;
  protocols: ["https"];
  subscriptionRequired: true;
  /** The request header that carries a subscription (virtual) key. */
  subscriptionKeyHeaderName: string;
  operations: ApiOperation[];
  /** Set on an MCP server API (then `operations` is empty); absent on an HTTP API. */
  mcp?: McpApiSource;
  /** HTTP APIs only: where requests go when no policy sets a backend (ARM serviceUrl). */
  serviceUrl?: string;
  /** HTTP APIs only: schema documents its operations' representations reference. */
  schemas?: ApiSchema[];
}

/** A product (ARM products/{id}) and the APIs linked to it (products/{id}/apis/{apiId}); links not listed are removed. */
export interface ProductArtifact {
  kind: "product";
  id: string;
  displayName: string;
  description?: string;
  subscriptionRequired: true;
  approvalRequired: false;
  state: "published";
  apis: string[];
}

/** A secret in the SecretStore port (src/ports/secrets.ts), by name and exact version. */
export interface SecretRef {
  name: string;
  version: string;
}

/** Returns the value of a secret version; given to the publishers, called only to build a request body. */
export type ResolveSecret = (ref: SecretRef) => Promise<string>;

export type SubscriptionScope = { type: "api"; apiId: string } | { type: "product"; productId: string };
export type SubscriptionState = "active" | "suspended" | "cancelled";

/**
 * An APIM subscription: a virtual key. The keys are named, never held: the artifact, its hash, plans,
 * outcomes and local files carry only the SecretRefs; a publisher resolves them when it builds the ARM
 * body. A new secret version is a new ref, hence a new hash, hence a re-send (rotation).
 */
export interface SubscriptionArtifact {
  kind: "subscription";
  id: string;
  displayName: string;
  scope: SubscriptionScope;
  state: SubscriptionState;
  primaryKey: SecretRef;
  secondaryKey: SecretRef;
}

export type GatewayArtifact =
  | PolicyArtifact
  | FragmentArtifact
  | BackendArtifact
  | NamedValueArtifact
  | ApiArtifact
  | ProductArtifact
  | SubscriptionArtifact;

/**
 * What read() returns for a subscription: the gateway cannot say which secret version a key came from,
 * only the key itself, and the key must not travel further. So the refs become fingerprints
 * (subscriptionFingerprint of each key as the gateway returns it). A drift check compares them with the
 * fingerprints of the resolved desired secrets: expectedReadBack() in gateway-content.ts.
 */
export interface SubscriptionReadBack {
  kind: "subscription";
  id: string;
  displayName: string;
  scope: SubscriptionScope;
  /** Whatever the gateway reports (it also knows "submitted", "expired", ...): a state the port does not model is drift. */
  state: string;
  primaryKeyFingerprint: string;
  secondaryKeyFingerprint: string;
}

/** What read() returns: the artifact as the gateway holds it, normalised; a subscription as a SubscriptionReadBack. */
export type GatewayReadBack = Exclude<GatewayArtifact, SubscriptionArtifact> | SubscriptionReadBack;

/** A stable identity for an artifact, e.g. "policy:api/proj-x", "backend:pool-gpt4o", "namedValue:nv-openai-key",
 * "api:aigov-prj_x", "product:aigov-prj_x-gold", "subscription:vk_1". */
export type ArtifactRef = string;

export function artifactRef(a: GatewayArtifact | GatewayReadBack): ArtifactRef {
  switch (a.kind) {
    case "policy": {
      const s = a.scope;
      if (s.type === "global") return "policy:global";
      if (s.type === "product") return `policy:product/${s.productId}`;
      if (s.type === "api") return `policy:api/${s.apiId}`;
      return `policy:api/${s.apiId}/operation/${s.operationId}`;
    }
    case "fragment":
      return `fragment:${a.id}`;
    case "backend":
      return `backend:${a.id}`;
    case "namedValue":
      return `namedValue:${a.id}`;
    case "api":
      return `api:${a.id}`;
    case "product":
      return `product:${a.id}`;
    case "subscription":
      return `subscription:${a.id}`;
  }
}

export interface PublishOutcome {
  /** Artifacts sent (created or updated), in the order they were sent. */
  sent: ArtifactRef[];
  /** Artifacts whose content hash matched the last publish: not sent again. */
  unchanged: ArtifactRef[];
  /** Artifacts removed from the gateway because they left the desired set. */
  deleted: ArtifactRef[];
  /** Content hash of every artifact now published (input to the next publish and to drift checks). */
  hashes: Record<ArtifactRef, string>;
  /**
   * Present when the publish stopped because its budget was spent: how many steps (writes, deletes,
   * deferred work) it had left. `hashes` is what the gateway holds; passed as `previous` to the next
   * publish, that one goes on.
   */
  remaining?: number;
}

/**
 * How long one publish call may go on: asked after each write, delete and piece of deferred work, and
 * heeded only once the call has made progress (runPublish), so a call always gets somewhere.
 */
export interface PublishBudget {
  spent(): boolean;
}

export interface GatewayPublisher {
  /**
   * Makes the gateway hold exactly `desired` (for the artifacts this control plane owns): ordered
   * (named values, then backends — singles before pools — then fragments, APIs, products, policies,
   * subscriptions; deletes in reverse), idempotent (an artifact whose hash equals `previous[ref]` is not
   * sent), ETag-guarded. Only refs in `previous` are ever deleted, so a partial desired set (e.g. one
   * key's subscription, with `previous` holding only that ref) touches nothing else.
   */
  publish(desired: GatewayArtifact[], previous: Record<ArtifactRef, string>, budget?: PublishBudget): Promise<PublishOutcome>;
  /** Reads back what the gateway holds now for these artifacts (undefined when missing), for drift checks. */
  read(refs: ArtifactRef[]): Promise<Record<ArtifactRef, GatewayReadBack | undefined>>;
}

export {
  artifactHash,
  expectedReadBack,
  normalizeArtifact,
  normalizeReadBack,
  poolMemberId,
  readBackHash,
  subscriptionFingerprint,
} from "./gateway-content.js";
