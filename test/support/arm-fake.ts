import { create } from "xmlbuilder2";
import { ArmGatewayPublisher } from "../../src/adapters/apim/arm-publisher.js";
import { createHttpHeaders, type HttpClient, type PipelineRequest, type PipelineResponse } from "@azure/core-rest-pipeline";

/**
 * An in-process fake of Azure Resource Manager for the API Management entities the gateway publisher
 * writes (policies at every scope, policy fragments, backends, named values, APIs and their operations,
 * products and their API links, subscriptions), to be passed to
 * ApiManagementClient as `httpClient`. In-process rather than a server because the SDK refuses bearer
 * tokens over plain HTTP (see docs/local-host.md, "Azure SDKs against local servers"), and this way the
 * real SDK pipeline (auth, retries, serialisation, LRO poller) still runs end to end.
 *
 * Behaviour copied from ARM/APIM, because the publisher depends on it:
 *  - paths are /subscriptions/{GUID}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{svc}/…,
 *    and api-version is required (400 otherwise);
 *  - every entity has an ETag, changed by every write; GET and HEAD return it in the ETag header;
 *  - If-Match on PUT/DELETE: 412 when it does not match (or the entity is missing); `*` matches any;
 *    DELETE without If-Match is 400 (the SDK always sends one);
 *  - GET/HEAD of an unknown entity: 404 with an ARM error body; DELETE of an unknown entity: 204;
 *  - PUT answers 201 on create, 200 on update; named values and fragments report provisioningState
 *    Succeeded (they are long-running in ARM: the SDK poller then completes at once);
 *  - a secret named value's `value` is never returned;
 *  - policies/fragments are stored as parsed documents and read back in APIM's own serialization: the
 *    "xml" form (the default) is the document re-serialized (this fake: no indentation, `>` escaped in
 *    attributes as the SPEC example ApiManagementCreateApiPolicyNonXmlEncoded echoes `=>` as `=&gt;`),
 *    never the bytes that were sent; `format=rawxml` returns the text with expressions unescaped;
 *  - APIs are long-running writes (and deletes); deleting an API deletes its operations, policies and
 *    product links; deleting a product its policy and API links;
 *  - GET apis/{a}/operations and GET products/{p}/apis list children (`{ value: [...] }`);
 *  - a product–API link (PUT products/{p}/apis/{a}) has no body, and its DELETE no If-Match;
 *  - a subscription's keys are never returned by GET (null), only by POST …/listSecrets; missing keys are
 *    generated; its scope comes back as a full resource id;
 *  - with `strictParents`, a child whose parent is missing (a policy or operation of an unknown API, a
 *    product policy or link of an unknown product, a subscription of an unknown scope) is a 404, as in
 *    APIM: the ordering tests rely on it. Off by default, so that policy-only tests need no API.
 * Entity names are compared case-sensitively (ARM does not); state is in memory.
 */

export interface ArmFakeRequest {
  method: string;
  /** Full URL path, decoded. */
  path: string;
  /** The path below …/service/{svc}/ (e.g. "apis/proj-x/policies/policy"); "" if the path is not APIM's. */
  resource: string;
  apiVersion: string | undefined;
  /** Query parameters other than api-version. */
  query: Record<string, string>;
  ifMatch: string | undefined;
  ifNoneMatch: string | undefined;
  authorization: string | undefined;
  /** Parsed JSON body, if any. */
  body: unknown;
  /** The status the fake answered. */
  status: number;
}

export interface ArmFakeEntity {
  /** The `properties` as last written (by a PUT or by edit()). */
  properties: Record<string, unknown>;
  etag: string;
}

export interface ArmFake {
  httpClient: HttpClient;
  requests: ArmFakeRequest[];
  /** By resource path below the service (see ArmFakeRequest.resource). */
  state: Map<string, ArmFakeEntity>;
  /** Changes an entity behind the publisher's back (new ETag), as a portal user would. `path` is the
   * resource path below the service ("backends/b1") or the full ARM path. */
  edit(path: string, mutate: (properties: Record<string, unknown>) => void): void;
  /** Answers the next `times` requests with this status (and Retry-After: 0) instead of serving them. */
  failNext(status: number, times?: number): void;
  /** Runs `fn` once, just before the next request with this method and resource is served (races). */
  beforeNext(method: string, resource: string, fn: () => void): void;
  /** Forgets all state, requests, faults and hooks. */
  reset(): void;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SERVICE_PATH = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ApiManagement\/service\/([^/]+)\/(.+)$/i;
const SEG = "[^/]+";
/** The entity kinds this fake knows, with their ARM resource type. */
const KINDS: { pattern: RegExp; type: string; lro: boolean }[] = [
  { pattern: /^policies\/policy$/, type: "Microsoft.ApiManagement/service/policies", lro: false },
  { pattern: new RegExp(`^products/${SEG}/policies/policy$`), type: "Microsoft.ApiManagement/service/products/policies", lro: false },
  { pattern: new RegExp(`^apis/${SEG}/policies/policy$`), type: "Microsoft.ApiManagement/service/apis/policies", lro: false },
  { pattern: new RegExp(`^apis/${SEG}/operations/${SEG}/policies/policy$`), type: "Microsoft.ApiManagement/service/apis/operations/policies", lro: false },
  { pattern: new RegExp(`^policyFragments/${SEG}$`), type: "Microsoft.ApiManagement/service/policyFragments", lro: true },
  { pattern: new RegExp(`^backends/${SEG}$`), type: "Microsoft.ApiManagement/service/backends", lro: false },
  { pattern: new RegExp(`^namedValues/${SEG}$`), type: "Microsoft.ApiManagement/service/namedValues", lro: true },
  { pattern: new RegExp(`^apis/${SEG}$`), type: "Microsoft.ApiManagement/service/apis", lro: true },
  { pattern: new RegExp(`^apis/${SEG}/operations/${SEG}$`), type: "Microsoft.ApiManagement/service/apis/operations", lro: false },
  { pattern: new RegExp(`^products/${SEG}$`), type: "Microsoft.ApiManagement/service/products", lro: false },
  { pattern: new RegExp(`^products/${SEG}/apis/${SEG}$`), type: "Microsoft.ApiManagement/service/products/apis", lro: false },
  { pattern: new RegExp(`^subscriptions/${SEG}$`), type: "Microsoft.ApiManagement/service/subscriptions", lro: false },
];

/** Collections the fake lists (GET), by pattern; the entities listed are those one segment below. */
const LISTS = [new RegExp(`^apis/${SEG}/operations$`), new RegExp(`^products/${SEG}/apis$`)];
const LIST_SECRETS = new RegExp(`^subscriptions/(${SEG})/listSecrets$`);

/** The entities that must exist before `resource` can be written (strictParents). */
function parentsOf(resource: string, body: unknown): string[] {
  const parts = resource.split("/");
  if (parts[0] === "apis" && parts.length > 2) return [`apis/${parts[1]}`];
  if (parts[0] === "products" && parts[2] === "policies") return [`products/${parts[1]}`];
  if (parts[0] === "products" && parts[2] === "apis") return [`products/${parts[1]}`, `apis/${parts[3]}`];
  if (parts[0] === "subscriptions" && parts.length === 2) {
    const scope = (body as { properties?: { scope?: unknown } } | undefined)?.properties?.scope;
    const m = typeof scope === "string" ? /\/((?:apis|products)\/[^/]+)$/.exec(scope) : null;
    return m?.[1] ? [m[1]] : [];
  }
  return [];
}

export interface ArmFakeOptions {
  /** Refuse (404) writes of children whose parent does not exist, as APIM does. */
  strictParents?: boolean;
}

export function createArmFake(options: ArmFakeOptions = {}): ArmFake {
  const state = new Map<string, ArmFakeEntity>();
  const requests: ArmFakeRequest[] = [];
  let faults: number[] = [];
  let hooks: { method: string; resource: string; fn: () => void }[] = [];
  let etagCounter = 0;
  const nextEtag = () => `"AAAAAAAA${(++etagCounter).toString(16).padStart(4, "0")}="`;

  const respond = (request: PipelineRequest, status: number, body?: unknown, headers: Record<string, string> = {}): PipelineResponse => ({
    request,
    status,
    headers: createHttpHeaders({ ...(body !== undefined ? { "content-type": "application/json; charset=utf-8" } : {}), ...headers }),
    bodyAsText: body !== undefined && request.method !== "HEAD" ? JSON.stringify(body) : undefined,
  });
  const error = (request: PipelineRequest, status: number, code: string, message: string) => respond(request, status, { error: { code, message } });

  function serve(request: PipelineRequest, rec: ArmFakeRequest): PipelineResponse {
    const m = SERVICE_PATH.exec(rec.path);
    if (!m) return error(request, 404, "InvalidResourceType", `the fake only serves API Management service entities, not ${rec.path}`);
    if (!GUID.test(m[1] ?? "")) return error(request, 400, "InvalidSubscriptionId", `The provided subscription identifier '${m[1]}' is malformed or invalid.`);
    if (!rec.apiVersion) return error(request, 400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.");
    const resource = rec.resource;
    const servicePrefix = rec.path.slice(0, rec.path.length - resource.length);
    if (request.method === "GET" && LISTS.some((l) => l.test(resource))) {
      const value = [...state.entries()]
        .filter(([k]) => k.startsWith(`${resource}/`) && !k.slice(resource.length + 1).includes("/"))
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, e]) => ({ id: servicePrefix + k, name: k.slice(resource.length + 1), properties: structuredClone(e.properties) }));
      return respond(request, 200, { value });
    }
    const secrets = LIST_SECRETS.exec(resource);
    if (request.method === "POST" && secrets) {
      const e = state.get(`subscriptions/${secrets[1]}`);
      if (!e) return error(request, 404, "ResourceNotFound", `${resource} was not found.`);
      return respond(request, 200, { primaryKey: e.properties.primaryKey, secondaryKey: e.properties.secondaryKey }, { etag: e.etag });
    }
    const kind = KINDS.find((k) => k.pattern.test(resource));
    if (!kind) return error(request, 400, "UnsupportedByFake", `the fake does not model ${resource}`);
    const isLink = /^products\/[^/]+\/apis\//.test(resource);
    const entity = state.get(resource);
    const matches = (ifMatch: string | undefined) => ifMatch === undefined || (entity !== undefined && (ifMatch === "*" || ifMatch === entity.etag));
    const name = resource.slice(resource.lastIndexOf("/") + 1);
    const envelope = (e: ArmFakeEntity, rawxml: boolean) => {
      const properties: Record<string, unknown> = structuredClone(e.properties);
      if (kind.lro) properties.provisioningState = "Succeeded";
      if (resource.startsWith("namedValues/") && properties.secret === true) delete properties.value;
      if (resource.startsWith("subscriptions/")) {
        properties.primaryKey = null;
        properties.secondaryKey = null;
        if (typeof properties.scope === "string" && properties.scope.startsWith("/") && !properties.scope.startsWith("/subscriptions/")) {
          properties.scope = servicePrefix.replace(/\/$/, "") + properties.scope;
        }
      }
      if (typeof properties.value === "string" && (resource.includes("policies/") || resource.startsWith("policyFragments/"))) {
        properties.value = rawxml ? properties.value : reserialize(properties.value);
        properties.format = rawxml ? "rawxml" : "xml";
      }
      return { id: rec.path, type: kind.type, name, properties };
    };

    switch (request.method) {
      case "HEAD":
      case "GET": {
        if (!entity) return error(request, 404, "ResourceNotFound", `${resource} was not found.`);
        const rawxml = rec.query.format === "rawxml";
        return respond(request, 200, envelope(entity, rawxml), { etag: entity.etag });
      }
      case "PUT": {
        if (!matches(rec.ifMatch)) return error(request, 412, "PreconditionFailed", `ETag mismatch for ${resource}.`);
        if (options.strictParents) {
          const missing = parentsOf(resource, rec.body).find((p) => !state.has(p));
          if (missing) return error(request, 404, "ResourceNotFound", `${missing} was not found (needed by ${resource}).`);
        }
        const props = isLink ? {} : (rec.body as { properties?: unknown } | undefined)?.properties;
        if (props === null || typeof props !== "object" || Array.isArray(props)) return error(request, 400, "ValidationError", "body.properties is required");
        const stored = structuredClone(props as Record<string, unknown>);
        if (resource.startsWith("subscriptions/")) {
          // APIM generates a key that is not given (and keeps the old one on an update without it).
          for (const k of ["primaryKey", "secondaryKey"]) stored[k] ??= entity?.properties[k] ?? `generated-${k}-${etagCounter}`;
        }
        const next: ArmFakeEntity = { properties: stored, etag: nextEtag() };
        state.set(resource, next);
        return respond(request, entity ? 200 : 201, envelope(next, true), { etag: next.etag });
      }
      case "DELETE": {
        if (rec.ifMatch === undefined && !isLink) return error(request, 400, "InvalidRequest", "If-Match header is required for DELETE.");
        if (!entity) return respond(request, 204);
        if (!isLink && !matches(rec.ifMatch)) return error(request, 412, "PreconditionFailed", `ETag mismatch for ${resource}.`);
        state.delete(resource);
        // Children go with their parent, as in APIM.
        const cascade = /^(apis|products)\/[^/]+$/.test(resource);
        if (cascade) {
          const apiLink = resource.startsWith("apis/") ? new RegExp(`^products/[^/]+/apis/${resource.slice("apis/".length)}$`) : undefined;
          for (const k of [...state.keys()]) if (k.startsWith(`${resource}/`) || apiLink?.test(k)) state.delete(k);
        }
        return respond(request, 200);
      }
      default:
        return error(request, 405, "MethodNotAllowed", `${request.method} is not supported by the fake`);
    }
  }

  const httpClient: HttpClient = {
    async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
      const url = new URL(request.url);
      const path = decodeURIComponent(url.pathname);
      const query: Record<string, string> = {};
      for (const [k, v] of url.searchParams) if (k !== "api-version") query[k] = v;
      let body: unknown;
      if (typeof request.body === "string" && request.body !== "") body = JSON.parse(request.body);
      const rec: ArmFakeRequest = {
        method: request.method,
        path,
        resource: SERVICE_PATH.exec(path)?.[4] ?? "",
        apiVersion: url.searchParams.get("api-version") ?? undefined,
        query,
        ifMatch: request.headers.get("if-match"),
        ifNoneMatch: request.headers.get("if-none-match"),
        authorization: request.headers.get("authorization"),
        body,
        status: 0,
      };
      requests.push(rec);
      const hook = hooks.find((h) => h.method === request.method && h.resource === rec.resource);
      if (hook) {
        hooks = hooks.filter((h) => h !== hook);
        hook.fn();
      }
      const fault = faults.shift();
      const response =
        fault !== undefined
          ? respond(request, fault, { error: { code: "Injected", message: `fault ${fault} injected by the test` } }, { "retry-after": "0" })
          : serve(request, rec);
      rec.status = response.status;
      return response;
    },
  };

  return {
    httpClient,
    requests,
    state,
    edit(path, mutate) {
      const resource = SERVICE_PATH.exec(path)?.[4] ?? path;
      const e = state.get(resource);
      if (!e) throw new Error(`arm-fake: no entity at ${path}`);
      mutate(e.properties);
      e.etag = nextEtag();
    },
    failNext(status, times = 1) {
      for (let i = 0; i < times; i++) faults.push(status);
    },
    beforeNext(method, resource, fn) {
      hooks.push({ method, resource, fn });
    },
    reset() {
      state.clear();
      requests.length = 0;
      faults = [];
      hooks = [];
    },
  };
}

export const FAKE_ARM_SUBSCRIPTION = "6f1c3f8e-2a4b-4c1d-9e8f-0a1b2c3d4e5f";
const fakeCredential = { getToken: async () => ({ token: "t", expiresOnTimestamp: Date.now() + 3600e3 }) };

/**
 * The real ARM publisher (SDK and all) on a fake, as the app's publisher in integration tests
 * (overrideServices). `around` may replace or wrap a request (faults, lost answers) before the fake.
 */
export function armPublisherOn(
  fake: ArmFake,
  resolveSecret: (ref: { name: string; version: string }) => Promise<string>,
  around?: (request: PipelineRequest, send: (r: PipelineRequest) => Promise<PipelineResponse>) => Promise<PipelineResponse>,
): ArmGatewayPublisher {
  const send = (r: PipelineRequest) => fake.httpClient.sendRequest(r);
  return new ArmGatewayPublisher({
    subscriptionId: FAKE_ARM_SUBSCRIPTION,
    resourceGroup: "rg-aigov",
    serviceName: "apim-aigov",
    credential: fakeCredential,
    clientOptions: { httpClient: { sendRequest: (r) => (around ? around(r, send) : send(r)) }, retryOptions: { retryDelayInMs: 1, maxRetryDelayInMs: 5 } },
    resolveSecret,
  });
}

/** APIM's serialization of a stored policy: the same document, other bytes (compact, `>` escaped in attributes). */
function reserialize(xml: string): string {
  try {
    return create(xml).end({ headless: true, prettyPrint: false }).replace(/="([^"]*)"/g, (_m, v: string) => `="${v.replace(/>/g, "&gt;")}"`);
  } catch {
    return xml;
  }
}
