import type {
  ApiCreateOrUpdateParameter,
  ApiManagementClient,
  ApiManagementClientOptionalParams,
  BackendContract,
  NamedValueCreateContract,
  OperationContract,
  PolicyContract,
  PolicyFragmentContract,
  ProductContract,
  SchemaContract,
  SubscriptionCreateParameters,
} from "@azure/arm-apimanagement";
import type { PipelineResponse } from "@azure/core-rest-pipeline";
import type { TokenCredential } from "@azure/identity";
import type {
  ApiArtifact,
  ArtifactRef,
  GatewayArtifact,
  GatewayPublisher,
  GatewayReadBack,
  ProductArtifact,
  PublishBudget,
  PublishOutcome,
  ResolveSecret,
  SubscriptionArtifact,
} from "../../ports/gateway.js";
import { canonicalJson } from "../../util/canonical-json.js";
import { diffChildren, mapLimit, parseRef, runPublish, type Current, type Deferred, type Locator, type PlannedWrite, type PublishIo } from "./plan.js";
import {
  fromArmProperties,
  MCP_API_VERSION,
  operationProperties,
  parseOperation,
  parseSchema,
  parseTool,
  resourcePath,
  schemaProperties,
  subscriptionProperties,
  toArmProperties,
  toolPath,
  toolProperties,
  type ApiProperties,
  type ArmChildren,
  type ArmProperties,
  type BackendProperties,
  type FragmentProperties,
  type McpEndpointsShape,
  type NamedValueProperties,
  type OperationProperties,
  type PolicyProperties,
  type ProductProperties,
  type SchemaProperties,
  type ToolProperties,
} from "./shapes.js";

export interface ArmGatewayPublisherOptions {
  /** A GUID (the SDK refuses anything else, even against a fake). */
  subscriptionId: string;
  resourceGroup: string;
  /** The API Management service name. */
  serviceName: string;
  /** Default: DefaultAzureCredential (managed identity in Azure), created on first use. */
  credential?: TokenCredential;
  /** Passed to ApiManagementClient: apiVersion (default 2024-05-01), retryOptions, httpClient (tests), endpoint… */
  clientOptions?: ApiManagementClientOptionalParams;
  /** Resolves a subscription's key refs when its PUT body is built (and nowhere else). Without it,
   * publishing a subscription fails; every other kind works. */
  resolveSecret?: ResolveSecret;
  /** How a pass-through MCP server's `mcpProperties.endpoints` is sent (shapes.ts McpEndpointsShape);
   * default "list", Learn's shape. Both shapes are read back. */
  mcpEndpoints?: McpEndpointsShape;
  /** Wait between polls of a long-running MCP write when the service sends no Retry-After (default 2 s). */
  pollIntervalMs?: number;
  /** Give up on a long-running MCP write after this long (default 10 minutes). */
  pollTimeoutMs?: number;
}

/** Reads of many artifacts run this many GETs at a time (ARM throttles per principal; keep it modest). */
const READ_CONCURRENCY = 8;

/** The operations publish/read need on one entity, whatever its kind. */
interface EntityOps {
  /** The entity's ETag (HEAD), undefined on 404. */
  etag(): Promise<string | undefined>;
  put(properties: ArmProperties, ifMatch: string | undefined): Promise<void>;
  del(ifMatch: string): Promise<void>;
}

function isNotFound(err: unknown): boolean {
  return (err as { statusCode?: unknown } | undefined)?.statusCode === 404;
}

async function orUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * GatewayPublisher over Azure Resource Manager, through @azure/arm-apimanagement v10 (api-version
 * 2024-05-01 by default). Every field the port models (pool members with priority/weight, circuit-breaker
 * rules, header credentials, Key Vault named values, xml policies) is in that SDK's models, so the typed
 * operations are used for every write (and HEAD, DELETE): they bring the SDK's error mapping and, for named
 * values and fragments (long-running writes), its poller.
 *
 * Reads are the exception: they are plain GETs sent through the same client's pipeline (same credential,
 * retry policy, api-version), parsed by shapes.ts. The generated `apiPolicy.get` is marked isXML and
 * deserialises a JSON answer without `properties.value` (Azure/azure-sdk-for-js#31566, still so in v10),
 * so the SDK cannot read an API policy back at all; one raw path for every kind keeps read() uniform.
 *
 * ETags: before each write the entity's ETag is read (HEAD) and the PUT carries `If-Match: <that ETag>`;
 * an entity that does not exist yet is created with a plain PUT (see the module report: APIM documents no
 * If-None-Match). Deletes carry the ETag read just before. A 412 surfaces as GatewayPublishError.status.
 *
 * MCP servers (APIs of `type: "mcp"` and their `tools`) exist only in api-version 2025-09-01-preview, and
 * the SDK's serializer drops `mcpProperties`, so they go as plain REST at that version through the same
 * pipeline, polling `Azure-AsyncOperation` (their writes and deletes are long-running). APIs are read at
 * that version too (only it returns an MCP server's shape), and an API about to be deleted is read there
 * to learn whether it is an MCP server: MCP servers are deleted before the HTTP APIs whose operations
 * their tools name. Operations and schemas stay on the SDK.
 */
export class ArmGatewayPublisher implements GatewayPublisher {
  private client: ApiManagementClient | undefined;

  constructor(private readonly opts: ArmGatewayPublisherOptions) {}

  private sdk(): ApiManagementClient {
    if (!this.client) {
      // Loaded on first use: the ARM SDK is large and most function invocations never publish; require
      // (not import()) keeps the one CommonJS copy of the SDK.
      /* eslint-disable @typescript-eslint/no-require-imports */
      const { ApiManagementClient } = require("@azure/arm-apimanagement") as typeof import("@azure/arm-apimanagement");
      let credential = this.opts.credential;
      if (!credential) {
        const { DefaultAzureCredential } = require("@azure/identity") as typeof import("@azure/identity");
        credential = new DefaultAzureCredential();
      }
      /* eslint-enable @typescript-eslint/no-require-imports */
      this.client = new ApiManagementClient(credential, this.opts.subscriptionId, this.opts.clientOptions);
    }
    return this.client;
  }

  publish(desired: GatewayArtifact[], previous: Record<ArtifactRef, string>, budget?: PublishBudget): Promise<PublishOutcome> {
    // HTTP APIs whose operations a desired MCP tool names: their stale operations are removed last.
    const named = new Set(desired.flatMap((a) => (a.kind === "api" && a.mcp?.type === "restTools" ? a.mcp.tools.map((t) => t.apiId) : [])));
    const io: PublishIo = {
      lookup: async (loc: Locator, { needType }): Promise<Current | undefined> => {
        if (needType && loc.kind === "api") {
          const got = await this.getRaw(loc, MCP_API_VERSION);
          return got && { etag: got.etag, apiType: got.properties.type === "mcp" ? "mcp" : "http" };
        }
        if (needType) {
          const got = await this.getRaw(loc);
          return got && { etag: got.etag, backendType: got.properties.type === "Pool" ? "Pool" : "Single" };
        }
        if (loc.kind === "api" && loc.mcp) {
          const head = await this.rest("HEAD", resourcePath(loc), { apiVersion: MCP_API_VERSION });
          return head && { etag: head.headers.get("etag") };
        }
        const etag = await orUndefined(this.ops(loc).etag());
        return etag === undefined ? undefined : { etag };
      },
      write: async (w: PlannedWrite, current: Current | undefined): Promise<Deferred | void> => {
        if (current && !current.etag) throw new Error(`${resourcePath(w.loc)} exists but the gateway returned no ETag`);
        const a = w.artifact;
        if (a.kind === "subscription") return this.putSubscription(a, current?.etag);
        if (a.kind === "api" && a.mcp) {
          await this.putLongRunning(resourcePath(w.loc), toArmProperties(a, { mcpEndpoints: this.opts.mcpEndpoints }), current?.etag);
          return this.syncTools(a, current !== undefined);
        }
        await this.ops(w.loc).put(toArmProperties(a), current?.etag);
        // A new entity has no children yet: listing them would only cost a request.
        if (a.kind === "api") return this.syncApiChildren(a, current !== undefined, named.has(a.id));
        if (a.kind === "product") return this.syncProductApis(a, current !== undefined);
      },
      remove: async (_ref: ArtifactRef, loc: Locator, current: Current) => {
        if (!current.etag) throw new Error(`${resourcePath(loc)} exists but the gateway returned no ETag`);
        // An MCP server takes its tools with it.
        if (loc.kind === "api" && current.apiType === "mcp") return this.deleteLongRunning(resourcePath(loc), current.etag);
        await this.ops(loc).del(current.etag);
      },
    };
    return runPublish(io, desired, previous, budget);
  }

  async read(refs: ArtifactRef[]): Promise<Record<ArtifactRef, GatewayReadBack | undefined>> {
    const locs = refs.map(parseRef);
    const got = await mapLimit(locs, READ_CONCURRENCY, async (loc) => {
      const entity = await this.getRaw(loc, loc.kind === "api" ? MCP_API_VERSION : undefined);
      return entity && fromArmProperties(loc, entity.properties, await this.children(loc, entity.properties));
    });
    const out: Record<ArtifactRef, GatewayReadBack | undefined> = {};
    refs.forEach((ref, i) => (out[ref] = got[i]));
    return out;
  }

  /** What read() needs besides the entity's own properties: operations (and schemas) or tools, linked APIs, or keys. */
  private async children(loc: Locator, properties: Record<string, unknown>): Promise<ArmChildren> {
    const c = this.sdk();
    const { resourceGroup: rg, serviceName: svc } = this.opts;
    // A pass-through server has no tools of its own (read() would not show them).
    if (loc.kind === "api" && properties.type === "mcp") return properties.mcpProperties ? {} : { tools: await this.listTools(loc.id) };
    if (loc.kind === "api") {
      const operations = await this.listOperations(loc.id);
      // Only a REST API has schemas (a project API never does, and listing would cost a request per API).
      const rest = typeof properties.serviceUrl === "string" || operations.some((o) => namesSchema(o.properties));
      return { operations, ...(rest ? { schemas: await this.listSchemas(loc.id) } : {}) };
    }
    if (loc.kind === "product") {
      const apis: string[] = [];
      for await (const api of c.productApi.listByProduct(rg, svc, loc.id)) if (api.name) apis.push(api.name);
      return { apis };
    }
    if (loc.kind === "subscription") {
      // GET never returns keys; listSecrets does. Only their fingerprints leave fromArmProperties.
      const { primaryKey, secondaryKey } = await c.subscription.listSecrets(rg, svc, loc.id).catch((err: unknown) => {
        throw secretsReadFailed(err);
      });
      return { keys: { primaryKey, secondaryKey } };
    }
    return {};
  }

  /** The API's operations as the port's bodies (what the SDK lists, normalised: `values: []` and the like dropped). */
  private async listOperations(apiId: string): Promise<{ name: string; properties: OperationProperties }[]> {
    const ops: { name: string; properties: OperationProperties }[] = [];
    for await (const o of this.sdk().apiOperation.listByApi(this.opts.resourceGroup, this.opts.serviceName, apiId)) {
      if (o.name) ops.push({ name: o.name, properties: operationProperties(parseOperation(o.name, o)) });
    }
    return ops;
  }

  /** The API's schema documents in their ARM form ({ contentType, document }); the SDK flattens document.components. */
  private async listSchemas(apiId: string): Promise<{ name: string; properties: SchemaProperties }[]> {
    const out: { name: string; properties: SchemaProperties }[] = [];
    for await (const x of this.sdk().apiSchema.listByApi(this.opts.resourceGroup, this.opts.serviceName, apiId)) {
      if (x.name) out.push({ name: x.name, properties: schemaProperties(parseSchema(x.name, { contentType: x.contentType, document: { components: x.components } })) });
    }
    return out;
  }

  /** An MCP server's tools (2025-09-01-preview), every page. */
  private async listTools(apiId: string): Promise<{ name: string; properties: ToolProperties }[]> {
    const out: { name: string; properties: ToolProperties }[] = [];
    let url: string | undefined = this.url(`apis/${apiId}/tools`, MCP_API_VERSION);
    while (url) {
      const page = await this.send("GET", url);
      const body = page?.json as { value?: { name?: unknown; properties?: unknown }[]; nextLink?: unknown } | undefined;
      for (const t of body?.value ?? []) if (typeof t.name === "string") out.push({ name: t.name, properties: t.properties as ToolProperties });
      url = typeof body?.nextLink === "string" ? body.nextLink : undefined;
    }
    return out;
  }

  /**
   * Makes an HTTP API's schemas and operations exactly the listed ones: schemas first (operations name
   * them), then operations. Sub-entities of the API just written under its ETag: the listing is their
   * freshness check. An update of a listed child carries `If-Match: *` ("must still exist"), so one deleted
   * concurrently fails (412) instead of being recreated.
   *
   * What has to go goes last, after its operations' users: stale operations after every MCP tool that may
   * name them has been rewritten or deleted (runPublish's deferred work), stale schemas after the operations
   * that used them. That is needed only for a REST API (a serviceUrl or schemas, or named by a desired tool);
   * a project API (neither, never behind a tool) removes its stale operations at once and has no schemas to list.
   */
  private async syncApiChildren(a: ApiArtifact, existed: boolean, namedByTool: boolean): Promise<Deferred | void> {
    const c = this.sdk();
    const { resourceGroup: rg, serviceName: svc } = this.opts;
    const rest = a.serviceUrl !== undefined || (a.schemas?.length ?? 0) > 0 || namedByTool;
    const same = (x: object, y: object) => canonicalJson(x) === canonicalJson(y);

    const desiredSchemas = new Map((a.schemas ?? []).map((x) => [x.id, schemaProperties(x)]));
    const existingSchemas = new Map(existed && rest ? (await this.listSchemas(a.id)).map((x) => [x.name, x.properties]) : []);
    const schemas = diffChildren(desiredSchemas, existingSchemas, same);
    for (const id of schemas.put) {
      const p = desiredSchemas.get(id) as SchemaProperties;
      const body: SchemaContract = { contentType: p.contentType, components: p.document.components };
      await c.apiSchema.beginCreateOrUpdateAndWait(rg, svc, a.id, id, body, existingSchemas.has(id) ? { ifMatch: "*" } : {});
    }

    const desired = new Map(a.operations.map((o) => [o.id, operationProperties(o)]));
    const existing = new Map(existed ? (await this.listOperations(a.id)).map((o) => [o.name, o.properties]) : []);
    const ops = diffChildren(desired, existing, same);
    for (const id of ops.put) {
      const body = desired.get(id) as OperationProperties satisfies OperationContract;
      await c.apiOperation.createOrUpdate(rg, svc, a.id, id, body, existing.has(id) ? { ifMatch: "*" } : {});
    }

    const removeStale = async () => {
      for (const id of ops.remove) await c.apiOperation.delete(rg, svc, a.id, id, "*");
      for (const id of schemas.remove) await c.apiSchema.delete(rg, svc, a.id, id, "*");
    };
    if (ops.remove.length === 0 && schemas.remove.length === 0) return;
    if (!rest) return removeStale();
    return removeStale;
  }

  /**
   * Makes an MCP server's tools exactly the listed ones (none for a pass-through server), as plain REST at
   * 2025-09-01-preview; `operationId` is the full resource id of the backing operation. Tools name other
   * APIs' operations, written earlier in the publish (HTTP APIs rank before MCP servers).
   */
  private async syncTools(a: ApiArtifact, existed: boolean): Promise<void> {
    const serviceId = this.servicePath();
    const tools = a.mcp?.type === "restTools" ? a.mcp.tools : [];
    const desired = new Map(tools.map((t) => [t.id, toolProperties(t, serviceId)]));
    // Compared as the port sees them: the service may spell the resource id's segments in another case.
    const same = (x: ToolProperties, y: ToolProperties) => canonicalJson(parseTool("", x)) === canonicalJson(parseTool("", y));
    const existing = new Map(existed ? (await this.listTools(a.id)).map((t) => [t.name, t.properties]) : []);
    const { put, remove } = diffChildren(desired, existing, same);
    for (const id of put) await this.putLongRunning(toolPath(a.id, id), desired.get(id) as ToolProperties, existing.has(id) ? "*" : undefined);
    for (const id of remove) await this.deleteLongRunning(toolPath(a.id, id), "*");
  }

  /**
   * Makes the product's API links exactly the listed ones (a link has no body and no ETag): the stale ones
   * go now; the new ones are the deferred work, added at the end of the publish, after the policies that
   * govern those APIs (plan.ts, RANK): a key of the product never reaches an API before its policy.
   */
  private async syncProductApis(a: ProductArtifact, existed: boolean): Promise<Deferred | void> {
    const c = this.sdk();
    const { resourceGroup: rg, serviceName: svc } = this.opts;
    const existing = new Map<string, true>();
    if (existed) for await (const api of c.productApi.listByProduct(rg, svc, a.id)) if (api.name) existing.set(api.name, true);
    const { put, remove } = diffChildren(new Map(a.apis.map((id) => [id, true as const])), existing, () => true);
    for (const apiId of remove) await c.productApi.delete(rg, svc, a.id, apiId);
    if (put.length === 0) return;
    return async () => {
      for (const apiId of put) await c.productApi.createOrUpdate(rg, svc, a.id, apiId);
    };
  }

  /** The one place key material exists: resolved, put in the body, sent; an error keeps no trace of it. */
  private async putSubscription(a: SubscriptionArtifact, ifMatch: string | undefined): Promise<void> {
    const resolve = this.opts.resolveSecret;
    if (!resolve) throw new Error(`subscription ${a.id}: this publisher was created without resolveSecret`);
    const [primary, secondary] = await Promise.all([resolve(a.primaryKey), resolve(a.secondaryKey)]);
    const body = subscriptionProperties(a, primary, secondary) satisfies SubscriptionCreateParameters;
    try {
      await this.sdk().subscription.createOrUpdate(this.opts.resourceGroup, this.opts.serviceName, a.id, body, ifMatch !== undefined ? { ifMatch } : {});
    } catch (err) {
      throw withoutKeys(err, [primary, secondary]);
    }
  }

  /**
   * GET of one entity through the client's own pipeline (credential, retries, api-version, httpClient):
   * its wire `properties` and ETag, undefined on 404. Policies and fragments are asked for as xml, the
   * format they were published in (drift compares the parsed documents: APIM re-serialises them).
   */
  private async getRaw(loc: Locator, apiVersion?: string): Promise<{ etag: string | undefined; properties: Record<string, unknown> } | undefined> {
    const query = loc.kind === "policy" || loc.kind === "fragment" ? { format: "xml" } : undefined;
    const response = await this.rest("GET", resourcePath(loc), { ...(apiVersion ? { apiVersion } : {}), ...(query ? { query } : {}) });
    if (!response) return undefined;
    const props = (response.json as { properties?: unknown } | undefined)?.properties;
    return { etag: response.headers.get("etag"), properties: props !== null && typeof props === "object" ? { ...(props as Record<string, unknown>) } : {} };
  }

  /** PUT of `{ properties }` through the client's pipeline, for fields the SDK's models do not carry. */
  private async putRaw(loc: Locator, properties: object, ifMatch: string | undefined): Promise<void> {
    await this.rest("PUT", resourcePath(loc), { body: { properties }, ...(ifMatch !== undefined ? { ifMatch } : {}) });
  }

  /** PUT of `{ properties }` at 2025-09-01-preview (MCP servers and tools), waiting for the operation to finish. */
  private async putLongRunning(path: string, properties: object, ifMatch: string | undefined): Promise<void> {
    const response = await this.rest("PUT", path, { apiVersion: MCP_API_VERSION, body: { properties }, ...(ifMatch !== undefined ? { ifMatch } : {}) });
    if (response) await this.settle(response.raw, `PUT ${path}`);
  }

  /** DELETE at 2025-09-01-preview with If-Match (required: without it the service answers 412), waiting for it to finish. */
  private async deleteLongRunning(path: string, ifMatch: string): Promise<void> {
    const response = await this.rest("DELETE", path, { apiVersion: MCP_API_VERSION, ifMatch });
    if (response) await this.settle(response.raw, `DELETE ${path}`);
  }

  /** The URL of a resource below the service, at an api-version (the SDK's unless given). */
  private url(path: string, apiVersion: string, query: Record<string, string> = {}): string {
    const client = this.sdk();
    const segments = path.split("/").map(encodeURIComponent).join("/");
    return `${client.$host}${this.servicePath()}/${segments}?${new URLSearchParams({ "api-version": apiVersion, ...query }).toString()}`;
  }

  /** A plain request to a resource below the service; undefined on 404 of a GET, HEAD or DELETE. */
  private rest(
    method: "GET" | "HEAD" | "PUT" | "DELETE",
    path: string,
    opts: { apiVersion?: string; query?: Record<string, string>; body?: unknown; ifMatch?: string } = {},
  ): Promise<{ status: number; headers: PipelineResponse["headers"]; json: unknown; raw: PipelineResponse } | undefined> {
    const url = this.url(path, opts.apiVersion ?? this.sdk().apiVersion, opts.query);
    return this.send(method, url, opts.body, opts.ifMatch, path);
  }

  /** Sends through the client's pipeline; errors become RestErrors with the service's code and status. */
  private async send(
    method: "GET" | "HEAD" | "PUT" | "DELETE",
    url: string,
    body?: unknown,
    ifMatch?: string,
    what = url,
  ): Promise<{ status: number; headers: PipelineResponse["headers"]; json: unknown; raw: PipelineResponse } | undefined> {
    const client = this.sdk();
    // Loaded with the SDK it belongs to (a dependency of @azure/arm-apimanagement), only when used.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createPipelineRequest, RestError } = require("@azure/core-rest-pipeline") as typeof import("@azure/core-rest-pipeline");
    const request = createPipelineRequest({ url, method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    if (body !== undefined) request.headers.set("Content-Type", "application/json");
    request.headers.set("Accept", "application/json");
    if (ifMatch !== undefined) request.headers.set("If-Match", ifMatch);
    const response = await client.sendRequest(request);
    if (response.status === 404 && method !== "PUT") return undefined;
    let json: unknown;
    try {
      json = response.bodyAsText ? JSON.parse(response.bodyAsText) : undefined;
    } catch {
      json = undefined;
    }
    if (response.status >= 300) {
      const e = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new RestError(e?.message ?? `${method} ${what} answered ${response.status}`, { code: e?.code, statusCode: response.status, request, response });
    }
    return { status: response.status, headers: response.headers, json, raw: response };
  }

  /**
   * Waits for a long-running write or delete: polls `Azure-AsyncOperation` (its `status` Succeeded, Failed
   * or Canceled), else, for a 202 with `Location`, that URL until it stops answering 202. Retry-After is
   * honoured; an answer with neither header was complete.
   */
  private async settle(response: PipelineResponse, what: string): Promise<void> {
    const interval = this.opts.pollIntervalMs ?? 2000;
    const deadline = Date.now() + (this.opts.pollTimeoutMs ?? 600_000);
    // Retry-After is honoured, but never past the deadline: a service asking for a day's pause fails the
    // publish in time (the publish is retried) instead of holding it for a day.
    const wait = (r: PipelineResponse) => {
      const s = Number(r.headers.get("retry-after"));
      const asked = Number.isFinite(s) && s >= 0 ? s * 1000 : interval;
      return new Promise((ok) => setTimeout(ok, Math.max(0, Math.min(asked, deadline - Date.now() + 1))));
    };
    const asyncOp = response.headers.get("azure-asyncoperation");
    const location = response.status === 202 ? response.headers.get("location") : undefined;
    const url = asyncOp ?? location;
    if (!url) return;
    let last = response;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`${what}: the operation did not finish in time`);
      await wait(last);
      const got = await this.send("GET", url, undefined, undefined, `${what} (status)`);
      if (!got) throw new Error(`${what}: the operation's status is gone (404)`);
      last = got.raw;
      if (!asyncOp) {
        if (got.status !== 202) return;
        continue;
      }
      const status = (got.json as { status?: unknown } | undefined)?.status;
      if (status === "Succeeded") return;
      if (status === "Failed" || status === "Canceled") {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { RestError } = require("@azure/core-rest-pipeline") as typeof import("@azure/core-rest-pipeline");
        const e = (got.json as { error?: { code?: string; message?: string } }).error;
        throw new RestError(`${what}: ${String(status)}${e?.message ? `: ${e.message}` : ""}`, { code: e?.code ?? String(status), statusCode: 409 });
      }
    }
  }

  private servicePath(): string {
    const { subscriptionId, resourceGroup, serviceName } = this.opts;
    const e = encodeURIComponent;
    return `/subscriptions/${e(subscriptionId)}/resourceGroups/${e(resourceGroup)}/providers/Microsoft.ApiManagement/service/${e(serviceName)}`;
  }

  private ops(loc: Locator): EntityOps {
    const c = this.sdk();
    const rg = this.opts.resourceGroup;
    const svc = this.opts.serviceName;
    const ifMatchOpt = (ifMatch: string | undefined) => (ifMatch !== undefined ? { ifMatch } : {});
    switch (loc.kind) {
      case "policy": {
        const s = loc.scope;
        const policy = (p: ArmProperties) => p as PolicyProperties satisfies PolicyContract;
        if (s.type === "global") {
          return {
            etag: async () => (await c.policy.getEntityTag(rg, svc, "policy")).eTag,
            put: async (p, m) => void (await c.policy.createOrUpdate(rg, svc, "policy", policy(p), ifMatchOpt(m))),
            del: (m) => c.policy.delete(rg, svc, "policy", m),
          };
        }
        if (s.type === "product") {
          const id = s.productId;
          return {
            etag: async () => (await c.productPolicy.getEntityTag(rg, svc, id, "policy")).eTag,
            put: async (p, m) => void (await c.productPolicy.createOrUpdate(rg, svc, id, "policy", policy(p), ifMatchOpt(m))),
            del: (m) => c.productPolicy.delete(rg, svc, id, "policy", m),
          };
        }
        if (s.type === "api") {
          const api = s.apiId;
          return {
            etag: async () => (await c.apiPolicy.getEntityTag(rg, svc, api, "policy")).eTag,
            put: async (p, m) => void (await c.apiPolicy.createOrUpdate(rg, svc, api, "policy", policy(p), ifMatchOpt(m))),
            del: (m) => c.apiPolicy.delete(rg, svc, api, "policy", m),
          };
        }
        const { apiId: api, operationId: op } = s;
        return {
          etag: async () => (await c.apiOperationPolicy.getEntityTag(rg, svc, api, op, "policy")).eTag,
          put: async (p, m) => void (await c.apiOperationPolicy.createOrUpdate(rg, svc, api, op, "policy", policy(p), ifMatchOpt(m))),
          del: (m) => c.apiOperationPolicy.delete(rg, svc, api, op, "policy", m),
        };
      }
      case "fragment": {
        const id = loc.id;
        return {
          etag: async () => (await c.policyFragment.getEntityTag(rg, svc, id)).eTag,
          // A long-running operation in ARM: the SDK's poller waits for it to finish.
          put: async (p, m) =>
            void (await c.policyFragment.beginCreateOrUpdateAndWait(rg, svc, id, p as FragmentProperties satisfies PolicyFragmentContract, ifMatchOpt(m))),
          del: (m) => c.policyFragment.delete(rg, svc, id, m),
        };
      }
      case "backend": {
        const id = loc.id;
        return {
          etag: async () => (await c.backend.getEntityTag(rg, svc, id)).eTag,
          put: async (p, m) => {
            const props = p as BackendProperties;
            // The SDK's serializer drops credentials.managedIdentity (not in its models; ADR 009): such a
            // backend is sent as the plain ARM body through the same client pipeline.
            if (props.credentials?.managedIdentity) return this.putRaw(loc, props, m);
            // The SDK names the backend's properties.type `typePropertiesType` (its `type` is the ARM resource type).
            const { type, ...rest } = props;
            const model: BackendContract = { ...rest, typePropertiesType: type } as BackendContract;
            await c.backend.createOrUpdate(rg, svc, id, model, ifMatchOpt(m));
          },
          del: (m) => c.backend.delete(rg, svc, id, m),
        };
      }
      case "api": {
        const id = loc.id;
        return {
          etag: async () => (await c.api.getEntityTag(rg, svc, id)).eTag,
          // Long-running in ARM. Deleting the API deletes its operations and policies with it.
          put: async (p, m) => void (await c.api.beginCreateOrUpdateAndWait(rg, svc, id, p as ApiProperties satisfies ApiCreateOrUpdateParameter, ifMatchOpt(m))),
          del: async (m) => void (await c.api.beginDeleteAndWait(rg, svc, id, m)),
        };
      }
      case "product": {
        const id = loc.id;
        return {
          etag: async () => (await c.product.getEntityTag(rg, svc, id)).eTag,
          put: async (p, m) => void (await c.product.createOrUpdate(rg, svc, id, p as ProductProperties satisfies ProductContract, ifMatchOpt(m))),
          // No deleteSubscriptions: keys still scoped to the product make the delete fail rather than vanish
          // (the control plane deletes its own subscriptions first: they rank after products).
          del: (m) => c.product.delete(rg, svc, id, m),
        };
      }
      case "subscription": {
        const id = loc.id;
        return {
          etag: async () => (await c.subscription.getEntityTag(rg, svc, id)).eTag,
          put: () => Promise.reject(new Error("gateway: subscriptions are written by putSubscription")),
          del: (m) => c.subscription.delete(rg, svc, id, m),
        };
      }
      case "namedValue": {
        const id = loc.id;
        return {
          etag: async () => (await c.namedValue.getEntityTag(rg, svc, id)).eTag,
          // Long-running in ARM (a Key Vault reference is resolved before it completes).
          put: async (p, m) =>
            void (await c.namedValue.beginCreateOrUpdateAndWait(rg, svc, id, p as NamedValueProperties satisfies NamedValueCreateContract, ifMatchOpt(m))),
          del: (m) => c.namedValue.delete(rg, svc, id, m),
        };
      }
    }
  }
}

/**
 * A failed subscription PUT's error without the request (whose body holds the keys) and with any echo
 * of a key redacted; the status and code survive for GatewayPublishError.
 */
function withoutKeys(err: unknown, keys: string[]): Error {
  const e = err as { message?: unknown; statusCode?: unknown; code?: unknown } | undefined;
  let message = typeof e?.message === "string" ? e.message : "subscription write failed";
  for (const k of keys) if (k) message = message.split(k).join("[redacted]");
  return withStatusOf(err, message);
}

/** A new error (no request, no cause) with `message`, keeping the status and code GatewayPublishError reads. */
function withStatusOf(err: unknown, message: string): Error {
  const e = err as { statusCode?: unknown; code?: unknown } | undefined;
  const out = new Error(message) as Error & { statusCode?: number; code?: string };
  if (typeof e?.statusCode === "number") out.statusCode = e.statusCode;
  if (typeof e?.code === "string") out.code = e.code;
  return out;
}

/**
 * A failed listSecrets without what could hold the keys. The SDK's error for an answer it could not parse or
 * deserialise carries the whole body in its message, and a 2xx listSecrets body is the keys; an error answer
 * (4xx/5xx, e.g. a missing role assignment) holds none, and its message is what an operator needs.
 */
function secretsReadFailed(err: unknown): Error {
  const e = err as { message?: unknown; statusCode?: unknown } | undefined;
  const status = typeof e?.statusCode === "number" ? e.statusCode : undefined;
  const said = status !== undefined && status >= 400 && typeof e?.message === "string" ? e.message : "the answer could not be read";
  return withStatusOf(err, `reading the subscription's keys failed${status !== undefined ? ` (HTTP ${status})` : ""}: ${said}`);
}

/** Whether an operation names a schema document (a REST API's operation; a project API's never does). */
function namesSchema(o: OperationProperties): boolean {
  const reps = [...(o.request?.representations ?? []), ...(o.responses ?? []).flatMap((r) => r.representations ?? [])];
  const params = [...(o.templateParameters ?? []), ...(o.request?.queryParameters ?? []), ...(o.request?.headers ?? [])];
  return [...reps, ...params].some((x) => x.schemaId !== undefined);
}
