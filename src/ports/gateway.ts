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
  /** The <policies> document, published as format "rawxml". */
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
      /** Managed identity auth is done in policy (authentication-managed-identity), not here. */
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

export type GatewayArtifact = PolicyArtifact | FragmentArtifact | BackendArtifact | NamedValueArtifact;

/** A stable identity for an artifact, e.g. "policy:api/proj-x", "backend:pool-gpt4o", "namedValue:nv-openai-key". */
export type ArtifactRef = string;

export function artifactRef(a: GatewayArtifact): ArtifactRef {
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
}

export interface GatewayPublisher {
  /**
   * Makes the gateway hold exactly `desired` (for the artifacts this control plane owns): ordered
   * (named values, then backends — singles before pools — then fragments, then policies; deletes in
   * reverse), idempotent (an artifact whose hash equals `previous[ref]` is not sent), ETag-guarded.
   */
  publish(desired: GatewayArtifact[], previous: Record<ArtifactRef, string>): Promise<PublishOutcome>;
  /** Reads back what the gateway holds now for these artifacts (undefined when missing), for drift checks. */
  read(refs: ArtifactRef[]): Promise<Record<ArtifactRef, GatewayArtifact | undefined>>;
}
