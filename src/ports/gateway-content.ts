import { createHash } from "node:crypto";
import { canonicalJson } from "../util/canonical-json.js";
import type {
  ApiArtifact,
  ApiOperation,
  ApiSchema,
  BackendArtifact,
  CircuitBreakerRule,
  GatewayArtifact,
  GatewayReadBack,
  McpApiSource,
  OperationParameter,
  PolicyScope,
  ProductArtifact,
  ResolveSecret,
  SubscriptionReadBack,
  SubscriptionScope,
} from "./gateway.js";

/**
 * The content identity of gateway artifacts: one canonical form (what is hashed and what read() returns),
 * its hash, and the key fingerprints that stand in for subscription keys. Pure (no I/O, no SDK), so the
 * domain (publish bookkeeping, drift checks) and both publishers compute exactly the same values.
 */

/** A pool member may be given as "b1", "/backends/b1" or a full ARM id; the port means the backend id. */
export function poolMemberId(id: string): string {
  const i = id.lastIndexOf("/backends/");
  return i >= 0 ? id.slice(i + "/backends/".length) : id;
}

function normalizeRule(r: CircuitBreakerRule): CircuitBreakerRule {
  const fc = r.failureCondition;
  return {
    name: r.name,
    failureCondition: {
      count: fc.count,
      interval: fc.interval,
      statusCodeRanges: fc.statusCodeRanges.map((s) => ({ min: s.min, max: s.max })),
      ...(fc.errorReasons && fc.errorReasons.length > 0 ? { errorReasons: [...fc.errorReasons] } : {}),
    },
    tripDuration: r.tripDuration,
    ...(r.acceptRetryAfter !== undefined ? { acceptRetryAfter: r.acceptRetryAfter } : {}),
  };
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

type Representation = { contentType: string; schemaId?: string; typeName?: string };

function normalizeParameter(p: OperationParameter): OperationParameter {
  return {
    name: p.name,
    type: p.type,
    // The gateway may leave `required: false` out of what it returns.
    required: p.required === true,
    ...(p.description ? { description: p.description } : {}),
    ...(p.schemaId ? { schemaId: p.schemaId } : {}),
    ...(p.typeName ? { typeName: p.typeName } : {}),
  };
}

function normalizeRepresentation(r: Representation): Representation {
  return { contentType: r.contentType, ...(r.schemaId ? { schemaId: r.schemaId } : {}), ...(r.typeName ? { typeName: r.typeName } : {}) };
}

/** Parameters, representations and responses keep their order (the gateway keeps the order sent);
 * empty lists and an empty request are dropped (APIM returns `[]` for what was never sent). */
export function normalizeOperation(o: ApiOperation): ApiOperation {
  const params = (ps: OperationParameter[] | undefined) => (ps && ps.length > 0 ? ps.map(normalizeParameter) : undefined);
  const reps = (rs: Representation[] | undefined) => (rs && rs.length > 0 ? rs.map(normalizeRepresentation) : undefined);
  const query = params(o.request?.queryParameters);
  const headers = params(o.request?.headers);
  const representations = reps(o.request?.representations);
  const templateParameters = params(o.templateParameters);
  const responses = o.responses?.map((r) => {
    const rr = reps(r.representations);
    return { statusCode: r.statusCode, ...(r.description ? { description: r.description } : {}), ...(rr ? { representations: rr } : {}) };
  });
  return {
    id: o.id,
    method: o.method,
    urlTemplate: o.urlTemplate,
    displayName: o.displayName,
    ...(o.description ? { description: o.description } : {}),
    ...(templateParameters ? { templateParameters } : {}),
    ...(query || headers || representations
      ? { request: { ...(query ? { queryParameters: query } : {}), ...(headers ? { headers } : {}), ...(representations ? { representations } : {}) } }
      : {}),
    ...(responses && responses.length > 0 ? { responses } : {}),
  };
}

/** Tools and endpoints are separate gateway entities (or named members) without an order: sorted. */
function normalizeMcp(m: McpApiSource): McpApiSource {
  if (m.type === "passThrough") {
    return {
      type: "passThrough",
      serviceUrl: m.serviceUrl,
      transportType: m.transportType,
      endpoints: m.endpoints.map((e) => ({ name: e.name, uriTemplate: e.uriTemplate })).sort((x, y) => byCodePoint(x.name, y.name)),
    };
  }
  return {
    type: "restTools",
    tools: m.tools
      .map((t) => ({ id: t.id, displayName: t.displayName, ...(t.description ? { description: t.description } : {}), apiId: t.apiId, operationId: t.operationId }))
      .sort((x, y) => byCodePoint(x.id, y.id)),
  };
}

/** A schema document is JSON the gateway stores as given: copied (the caller keeps its own), hashed by canonicalJson. */
function normalizeSchema(s: ApiSchema): ApiSchema {
  return { id: s.id, contentType: s.contentType, document: structuredClone(s.document) };
}

function normalizeSubscriptionScope(s: SubscriptionScope): SubscriptionScope {
  return s.type === "api" ? { type: "api", apiId: s.apiId } : { type: "product", productId: s.productId };
}

/**
 * The one canonical form of an artifact: what is hashed, what read() returns. Empty optional values
 * (description "", tags [], no rules, no headers) are dropped, because the gateway does not keep the
 * difference between "empty" and "absent" and a read-back must hash the same as what was published.
 * Operations, schemas, MCP tools and product links are separate gateway entities without an order: they
 * are sorted. An MCP API keeps its `mcp` even with no tools: that is what makes it an MCP server.
 */
export function normalizeArtifact(a: GatewayArtifact): GatewayArtifact {
  const desc = (d: string | undefined) => (d ? { description: d } : {});
  switch (a.kind) {
    case "policy": {
      const s = a.scope;
      const scope: PolicyScope =
        s.type === "global"
          ? { type: "global" }
          : s.type === "product"
            ? { type: "product", productId: s.productId }
            : s.type === "api"
              ? { type: "api", apiId: s.apiId }
              : { type: "operation", apiId: s.apiId, operationId: s.operationId };
      return { kind: "policy", scope, xml: a.xml };
    }
    case "fragment":
      return { kind: "fragment", id: a.id, ...desc(a.description), xml: a.xml };
    case "backend": {
      if (a.type === "Pool") {
        return {
          kind: "backend",
          id: a.id,
          type: "Pool",
          ...desc(a.description),
          services: a.services.map((m) => ({
            id: poolMemberId(m.id),
            ...(m.priority !== undefined ? { priority: m.priority } : {}),
            ...(m.weight !== undefined ? { weight: m.weight } : {}),
          })),
        };
      }
      const headers = a.credentialHeaders && Object.keys(a.credentialHeaders).length > 0 ? a.credentialHeaders : undefined;
      const single: BackendArtifact = {
        kind: "backend",
        id: a.id,
        type: "Single",
        url: a.url,
        ...desc(a.description),
        ...(a.circuitBreaker && a.circuitBreaker.rules.length > 0 ? { circuitBreaker: { rules: a.circuitBreaker.rules.map(normalizeRule) } } : {}),
        ...(headers ? { credentialHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [...v]])) } : {}),
        ...(a.managedIdentity ? { managedIdentity: { resource: a.managedIdentity.resource, ...(a.managedIdentity.clientId ? { clientId: a.managedIdentity.clientId } : {}) } } : {}),
        ...(a.unmodelled && Object.keys(a.unmodelled).length > 0 ? { unmodelled: a.unmodelled } : {}),
      };
      return single;
    }
    case "namedValue": {
      const tags = a.tags && a.tags.length > 0 ? { tags: [...a.tags] } : {};
      if (a.secret) {
        const kv = a.keyVault;
        return {
          kind: "namedValue",
          id: a.id,
          displayName: a.displayName,
          secret: true,
          keyVault: { secretIdentifier: kv.secretIdentifier, ...(kv.identityClientId ? { identityClientId: kv.identityClientId } : {}) },
          ...tags,
        };
      }
      return { kind: "namedValue", id: a.id, displayName: a.displayName, secret: false, value: a.value, ...tags };
    }
    case "api": {
      const api: ApiArtifact = {
        kind: "api",
        id: a.id,
        displayName: a.displayName,
        ...desc(a.description),
        path: a.path,
        // Copied, not re-stated: a read-back with other protocols must hash differently (drift).
        protocols: [...a.protocols] as ApiArtifact["protocols"],
        subscriptionRequired: a.subscriptionRequired,
        subscriptionKeyHeaderName: a.subscriptionKeyHeaderName,
        operations: [...a.operations].map(normalizeOperation).sort((x, y) => byCodePoint(x.id, y.id)),
        ...(a.mcp ? { mcp: normalizeMcp(a.mcp) } : {}),
        ...(a.serviceUrl ? { serviceUrl: a.serviceUrl } : {}),
        ...(a.schemas && a.schemas.length > 0 ? { schemas: a.schemas.map(normalizeSchema).sort((x, y) => byCodePoint(x.id, y.id)) } : {}),
      };
      return api;
    }
    case "product": {
      const product: ProductArtifact = {
        kind: "product",
        id: a.id,
        displayName: a.displayName,
        ...desc(a.description),
        subscriptionRequired: a.subscriptionRequired,
        approvalRequired: a.approvalRequired,
        state: a.state,
        apis: [...new Set(a.apis)].sort(byCodePoint),
      };
      return product;
    }
    case "subscription":
      return {
        kind: "subscription",
        id: a.id,
        displayName: a.displayName,
        scope: normalizeSubscriptionScope(a.scope),
        state: a.state,
        primaryKey: { name: a.primaryKey.name, version: a.primaryKey.version },
        secondaryKey: { name: a.secondaryKey.name, version: a.secondaryKey.version },
      };
  }
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** Content hash of an artifact: sha256 (hex) of the canonical JSON of its normalised form. For a
 * subscription it covers the key refs (name and version), never key material. */
export function artifactHash(a: GatewayArtifact): string {
  return sha256(canonicalJson(normalizeArtifact(a)));
}

/**
 * Identifies a subscription key without revealing it: the first 16 hex characters (64 bits) of its
 * sha256. Enough to tell keys apart in a drift check; too short, and of a high-entropy key, to help
 * anyone recover it.
 */
export function subscriptionFingerprint(key: string): string {
  return sha256(key).slice(0, 16);
}

/** The canonical form of a read-back (normalizeArtifact, plus subscriptions). */
export function normalizeReadBack(r: GatewayReadBack): GatewayReadBack {
  if (r.kind !== "subscription") return normalizeArtifact(r) as GatewayReadBack;
  const out: SubscriptionReadBack = {
    kind: "subscription",
    id: r.id,
    displayName: r.displayName,
    scope: normalizeSubscriptionScope(r.scope),
    state: r.state,
    primaryKeyFingerprint: r.primaryKeyFingerprint,
    secondaryKeyFingerprint: r.secondaryKeyFingerprint,
  };
  return out;
}

/** Hash of a read-back. For every kind but subscriptions it equals artifactHash of the same content,
 * so `readBackHash(read) === outcome.hashes[ref]` means "no drift". */
export function readBackHash(r: GatewayReadBack): string {
  return sha256(canonicalJson(normalizeReadBack(r)));
}

/**
 * What read() should return for a desired artifact when the gateway holds exactly it. Drift check:
 * `readBackHash(read[ref]) === readBackHash(await expectedReadBack(desired, resolveSecret))`.
 * Only subscriptions resolve secrets (to fingerprint them); the values go no further.
 */
export async function expectedReadBack(a: GatewayArtifact, resolveSecret: ResolveSecret): Promise<GatewayReadBack> {
  if (a.kind !== "subscription") return normalizeArtifact(a) as GatewayReadBack;
  const [primary, secondary] = await Promise.all([resolveSecret(a.primaryKey), resolveSecret(a.secondaryKey)]);
  return {
    kind: "subscription",
    id: a.id,
    displayName: a.displayName,
    scope: normalizeSubscriptionScope(a.scope),
    state: a.state,
    primaryKeyFingerprint: subscriptionFingerprint(primary),
    secondaryKeyFingerprint: subscriptionFingerprint(secondary),
  };
}
