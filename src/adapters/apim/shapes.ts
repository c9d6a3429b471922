import type { BackendArtifact, CircuitBreakerRule, GatewayArtifact } from "../../ports/gateway.js";
import { normalizeArtifact, poolMemberId, type Locator } from "./plan.js";

/**
 * The ARM wire format (api-version 2024-05-01) of each artifact kind, both ways: the request body a PUT
 * sends and the parse of what a GET (or a file on disk) holds. The ARM publisher and the file publisher
 * both go through here; no Azure SDK types.
 */

export interface PolicyProperties {
  value: string;
  /** Always rawxml: policy expressions keep their unescaped quotes, < and &. */
  format: "rawxml";
}

export interface FragmentProperties {
  value: string;
  format: "rawxml";
  description?: string;
}

export interface BackendProperties {
  type: "Single" | "Pool";
  description?: string;
  url?: string;
  protocol?: "http";
  circuitBreaker?: { rules: CircuitBreakerRule[] };
  credentials?: { header: Record<string, string[]> };
  pool?: { services: { id: string; priority?: number; weight?: number }[] };
}

export interface NamedValueProperties {
  displayName: string;
  secret: boolean;
  value?: string;
  keyVault?: { secretIdentifier: string; identityClientId?: string };
  tags?: string[];
}

export type ArmProperties = PolicyProperties | FragmentProperties | BackendProperties | NamedValueProperties;

/** The resource path below `…/providers/Microsoft.ApiManagement/service/{serviceName}/` (ids unencoded). */
export function resourcePath(loc: Locator): string {
  switch (loc.kind) {
    case "policy": {
      const s = loc.scope;
      if (s.type === "global") return "policies/policy";
      if (s.type === "product") return `products/${s.productId}/policies/policy`;
      if (s.type === "api") return `apis/${s.apiId}/policies/policy`;
      return `apis/${s.apiId}/operations/${s.operationId}/policies/policy`;
    }
    case "fragment":
      return `policyFragments/${loc.id}`;
    case "backend":
      return `backends/${loc.id}`;
    case "namedValue":
      return `namedValues/${loc.id}`;
  }
}

/** The `properties` of the PUT body for an artifact (the body is `{ properties }`). */
export function toArmProperties(raw: GatewayArtifact): ArmProperties {
  const a = normalizeArtifact(raw);
  switch (a.kind) {
    case "policy":
      return { value: a.xml, format: "rawxml" };
    case "fragment":
      return { value: a.xml, format: "rawxml", ...(a.description ? { description: a.description } : {}) };
    case "backend":
      if (a.type === "Pool") {
        return {
          type: "Pool",
          ...(a.description ? { description: a.description } : {}),
          // The relative resource-id form ("/backends/<id>"), as AI-Gateway's Bicep and the Learn samples use.
          pool: { services: a.services.map((m) => ({ ...m, id: `/backends/${m.id}` })) },
        };
      }
      return {
        type: "Single",
        url: a.url,
        protocol: "http",
        ...(a.description ? { description: a.description } : {}),
        ...(a.circuitBreaker ? { circuitBreaker: a.circuitBreaker } : {}),
        ...(a.credentialHeaders ? { credentials: { header: a.credentialHeaders } } : {}),
      };
    case "namedValue":
      return {
        displayName: a.displayName,
        secret: a.secret,
        ...(a.secret ? { keyVault: a.keyVault } : { value: a.value }),
        ...(a.tags ? { tags: a.tags } : {}),
      };
  }
}

// ---- parsing what the gateway (or a hand-edited file) holds: defensive, never trusts the shape ----

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : undefined);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === "string" ? v : "");
const optStr = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const optNum = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined);
const num = (v: unknown): number => (typeof v === "number" ? v : Number.NaN);

function parseRule(v: unknown): CircuitBreakerRule {
  const r = obj(v) ?? {};
  const fc = obj(r.failureCondition) ?? {};
  const reasons = arr(fc.errorReasons).map(str);
  return {
    name: str(r.name),
    failureCondition: {
      count: num(fc.count),
      interval: str(fc.interval),
      statusCodeRanges: arr(fc.statusCodeRanges).map((x) => ({ min: num(obj(x)?.min), max: num(obj(x)?.max) })),
      ...(reasons.length > 0 ? { errorReasons: reasons } : {}),
    },
    tripDuration: str(r.tripDuration),
    ...(typeof r.acceptRetryAfter === "boolean" ? { acceptRetryAfter: r.acceptRetryAfter } : {}),
  };
}

/**
 * Maps the `properties` of an ARM entity back to the port's artifact, normalised (so that an untouched
 * entity hashes exactly like what was published). Fields the port does not model are ignored; missing
 * or mistyped fields come back empty, which shows up as drift rather than as an exception.
 */
export function fromArmProperties(loc: Locator, properties: unknown): GatewayArtifact {
  const p = obj(properties) ?? {};
  switch (loc.kind) {
    case "policy":
      return normalizeArtifact({ kind: "policy", scope: loc.scope, xml: str(p.value) });
    case "fragment":
      return normalizeArtifact({ kind: "fragment", id: loc.id, description: optStr(p.description), xml: str(p.value) });
    case "backend": {
      const description = optStr(p.description);
      let a: BackendArtifact;
      if (p.type === "Pool") {
        const services = arr(obj(p.pool)?.services).map((x) => {
          const m = obj(x) ?? {};
          return { id: poolMemberId(str(m.id)), priority: optNum(m.priority), weight: optNum(m.weight) };
        });
        a = { kind: "backend", id: loc.id, type: "Pool", description, services };
      } else {
        const rules = arr(obj(p.circuitBreaker)?.rules).map(parseRule);
        const header = obj(obj(p.credentials)?.header);
        const credentialHeaders = header ? Object.fromEntries(Object.entries(header).map(([k, v]) => [k, arr(v).map(str)])) : undefined;
        a = { kind: "backend", id: loc.id, type: "Single", url: str(p.url), description, circuitBreaker: { rules }, credentialHeaders };
      }
      return normalizeArtifact(a);
    }
    case "namedValue": {
      const tags = arr(p.tags).map(str);
      const displayName = str(p.displayName);
      if (p.secret === true) {
        // A secret that is not Key Vault-backed cannot be expressed by the port: it reads back with an
        // empty secretIdentifier, i.e. as drift.
        const kv = obj(p.keyVault) ?? {};
        const keyVault = { secretIdentifier: str(kv.secretIdentifier), identityClientId: optStr(kv.identityClientId) };
        return normalizeArtifact({ kind: "namedValue", id: loc.id, displayName, secret: true, keyVault, tags });
      }
      return normalizeArtifact({ kind: "namedValue", id: loc.id, displayName, secret: false, value: str(p.value), tags });
    }
  }
}
