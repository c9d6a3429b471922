import { createHttpHeaders, type HttpClient, type PipelineRequest, type PipelineResponse } from "@azure/core-rest-pipeline";

/**
 * An in-process fake of Azure Resource Manager for the API Management entities the gateway publisher
 * writes (policies at every scope, policy fragments, backends, named values), to be passed to
 * ApiManagementClient as `httpClient`. In-process rather than a server because the SDK refuses bearer
 * tokens over plain HTTP (see shared/notes/local-fakes.md), and this way the real SDK pipeline (auth,
 * retries, serialisation, LRO poller) still runs end to end.
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
 *  - policies/fragments read without `format=rawxml` come back in the escaped "xml" form (the SPEC example
 *    ApiManagementCreateApiPolicyNonXmlEncoded echoes `=>` as `=&gt;`); this fake escapes only that.
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
];

export function createArmFake(): ArmFake {
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
    const kind = KINDS.find((k) => k.pattern.test(resource));
    if (!kind) return error(request, 400, "UnsupportedByFake", `the fake does not model ${resource}`);
    const entity = state.get(resource);
    const matches = (ifMatch: string | undefined) => ifMatch === undefined || (entity !== undefined && (ifMatch === "*" || ifMatch === entity.etag));
    const name = resource.slice(resource.lastIndexOf("/") + 1);
    const envelope = (e: ArmFakeEntity, rawxml: boolean) => {
      const properties: Record<string, unknown> = structuredClone(e.properties);
      if (kind.lro) properties.provisioningState = "Succeeded";
      if (resource.startsWith("namedValues/") && properties.secret === true) delete properties.value;
      if (!rawxml && typeof properties.value === "string" && properties.format === "rawxml") {
        properties.value = properties.value.replace(/=>/g, "=&gt;");
        properties.format = "xml";
      }
      return { id: rec.path, type: kind.type, name, properties };
    };

    switch (request.method) {
      case "HEAD":
      case "GET": {
        if (!entity) return error(request, 404, "ResourceNotFound", `${resource} was not found.`);
        const rawxml = rec.query.format === "rawxml" || !(resource.includes("policies/") || resource.startsWith("policyFragments/"));
        return respond(request, 200, envelope(entity, rawxml), { etag: entity.etag });
      }
      case "PUT": {
        if (!matches(rec.ifMatch)) return error(request, 412, "PreconditionFailed", `ETag mismatch for ${resource}.`);
        const props = (rec.body as { properties?: unknown } | undefined)?.properties;
        if (props === null || typeof props !== "object" || Array.isArray(props)) return error(request, 400, "ValidationError", "body.properties is required");
        const next: ArmFakeEntity = { properties: structuredClone(props as Record<string, unknown>), etag: nextEtag() };
        state.set(resource, next);
        return respond(request, entity ? 200 : 201, envelope(next, true), { etag: next.etag });
      }
      case "DELETE": {
        if (rec.ifMatch === undefined) return error(request, 400, "InvalidRequest", "If-Match header is required for DELETE.");
        if (!entity) return respond(request, 204);
        if (!matches(rec.ifMatch)) return error(request, 412, "PreconditionFailed", `ETag mismatch for ${resource}.`);
        state.delete(resource);
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
