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
  SubscriptionCreateParameters,
} from "@azure/arm-apimanagement";
import type { TokenCredential } from "@azure/identity";
import type {
  ApiArtifact,
  ArtifactRef,
  GatewayArtifact,
  GatewayPublisher,
  GatewayReadBack,
  ProductArtifact,
  PublishOutcome,
  ResolveSecret,
  SubscriptionArtifact,
} from "../../ports/gateway.js";
import { diffChildren, mapLimit, parseRef, runPublish, type Current, type Locator, type PlannedWrite, type PublishIo } from "./plan.js";
import {
  fromArmProperties,
  operationProperties,
  resourcePath,
  subscriptionProperties,
  toArmProperties,
  type ApiProperties,
  type ArmChildren,
  type ArmProperties,
  type BackendProperties,
  type FragmentProperties,
  type NamedValueProperties,
  type OperationProperties,
  type PolicyProperties,
  type ProductProperties,
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

  publish(desired: GatewayArtifact[], previous: Record<ArtifactRef, string>): Promise<PublishOutcome> {
    const io: PublishIo = {
      lookup: async (loc: Locator, { needType }): Promise<Current | undefined> => {
        if (needType) {
          const got = await this.getRaw(loc);
          return got && { etag: got.etag, backendType: got.properties.type === "Pool" ? "Pool" : "Single" };
        }
        const etag = await orUndefined(this.ops(loc).etag());
        return etag === undefined ? undefined : { etag };
      },
      write: async (w: PlannedWrite, current: Current | undefined) => {
        if (current && !current.etag) throw new Error(`${resourcePath(w.loc)} exists but the gateway returned no ETag`);
        const a = w.artifact;
        if (a.kind === "subscription") return this.putSubscription(a, current?.etag);
        await this.ops(w.loc).put(toArmProperties(a), current?.etag);
        // A new entity has no children yet: listing them would only cost a request.
        if (a.kind === "api") await this.syncOperations(a, current !== undefined);
        if (a.kind === "product") await this.syncProductApis(a, current !== undefined);
      },
      remove: async (_ref: ArtifactRef, loc: Locator, current: Current) => {
        if (!current.etag) throw new Error(`${resourcePath(loc)} exists but the gateway returned no ETag`);
        await this.ops(loc).del(current.etag);
      },
    };
    return runPublish(io, desired, previous);
  }

  async read(refs: ArtifactRef[]): Promise<Record<ArtifactRef, GatewayReadBack | undefined>> {
    const locs = refs.map(parseRef);
    const got = await mapLimit(locs, READ_CONCURRENCY, async (loc) => {
      const entity = await this.getRaw(loc);
      return entity && fromArmProperties(loc, entity.properties, await this.children(loc));
    });
    const out: Record<ArtifactRef, GatewayReadBack | undefined> = {};
    refs.forEach((ref, i) => (out[ref] = got[i]));
    return out;
  }

  /** What read() needs besides the entity's own properties: operations, linked APIs, or keys. */
  private async children(loc: Locator): Promise<ArmChildren> {
    const c = this.sdk();
    const { resourceGroup: rg, serviceName: svc } = this.opts;
    if (loc.kind === "api") return { operations: await this.listOperations(loc.id) };
    if (loc.kind === "product") {
      const apis: string[] = [];
      for await (const api of c.productApi.listByProduct(rg, svc, loc.id)) if (api.name) apis.push(api.name);
      return { apis };
    }
    if (loc.kind === "subscription") {
      // GET never returns keys; listSecrets does. Only their fingerprints leave fromArmProperties.
      const { primaryKey, secondaryKey } = await c.subscription.listSecrets(rg, svc, loc.id);
      return { keys: { primaryKey, secondaryKey } };
    }
    return {};
  }

  private async listOperations(apiId: string): Promise<{ name: string; properties: OperationProperties }[]> {
    const ops: { name: string; properties: OperationProperties }[] = [];
    for await (const o of this.sdk().apiOperation.listByApi(this.opts.resourceGroup, this.opts.serviceName, apiId)) {
      if (o.name) ops.push({ name: o.name, properties: { displayName: o.displayName ?? "", method: o.method ?? "", urlTemplate: o.urlTemplate ?? "" } });
    }
    return ops;
  }

  /**
   * Makes the API's operations exactly the listed ones. Operations are sub-entities of the API just
   * written under its ETag; the listing is their freshness check. An update of a listed operation carries
   * `If-Match: *` ("must still exist"), so one deleted concurrently fails (412) instead of being recreated.
   */
  private async syncOperations(a: ApiArtifact, existed: boolean): Promise<void> {
    const c = this.sdk();
    const { resourceGroup: rg, serviceName: svc } = this.opts;
    const desired = new Map(a.operations.map((o) => [o.id, operationProperties(o)]));
    const existing = new Map(existed ? (await this.listOperations(a.id)).map((o) => [o.name, o.properties]) : []);
    const same = (x: OperationProperties, y: OperationProperties) => x.displayName === y.displayName && x.method === y.method && x.urlTemplate === y.urlTemplate;
    const { put, remove } = diffChildren(desired, existing, same);
    for (const id of put) {
      const body = desired.get(id) as OperationProperties satisfies OperationContract;
      await c.apiOperation.createOrUpdate(rg, svc, a.id, id, body, existing.has(id) ? { ifMatch: "*" } : {});
    }
    for (const id of remove) await c.apiOperation.delete(rg, svc, a.id, id, "*");
  }

  /** Makes the product's API links exactly the listed ones (a link has no body and no ETag). */
  private async syncProductApis(a: ProductArtifact, existed: boolean): Promise<void> {
    const c = this.sdk();
    const { resourceGroup: rg, serviceName: svc } = this.opts;
    const existing = new Map<string, true>();
    if (existed) for await (const api of c.productApi.listByProduct(rg, svc, a.id)) if (api.name) existing.set(api.name, true);
    const { put, remove } = diffChildren(new Map(a.apis.map((id) => [id, true as const])), existing, () => true);
    for (const apiId of put) await c.productApi.createOrUpdate(rg, svc, a.id, apiId);
    for (const apiId of remove) await c.productApi.delete(rg, svc, a.id, apiId);
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
  private async getRaw(loc: Locator): Promise<{ etag: string | undefined; properties: Record<string, unknown> } | undefined> {
    const client = this.sdk();
    // Loaded with the SDK it belongs to (a dependency of @azure/arm-apimanagement), only when reading.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createPipelineRequest, RestError } = require("@azure/core-rest-pipeline") as typeof import("@azure/core-rest-pipeline");
    const path = resourcePath(loc).split("/").map(encodeURIComponent).join("/");
    const query = new URLSearchParams({ "api-version": client.apiVersion });
    if (loc.kind === "policy" || loc.kind === "fragment") query.set("format", "xml");
    const url = `${client.$host}${this.servicePath()}/${path}?${query.toString()}`;
    const request = createPipelineRequest({ url, method: "GET" });
    request.headers.set("Accept", "application/json");
    const response = await client.sendRequest(request);
    if (response.status === 404) return undefined;
    let body: unknown;
    try {
      body = response.bodyAsText ? JSON.parse(response.bodyAsText) : undefined;
    } catch {
      body = undefined;
    }
    if (response.status !== 200) {
      const e = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new RestError(e?.message ?? `GET ${resourcePath(loc)} answered ${response.status}`, { code: e?.code, statusCode: response.status, request, response });
    }
    const props = (body as { properties?: unknown } | undefined)?.properties;
    return { etag: response.headers.get("etag"), properties: props !== null && typeof props === "object" ? { ...(props as Record<string, unknown>) } : {} };
  }

  /** PUT of `{ properties }` through the client's pipeline, for fields the SDK's models do not carry. */
  private async putRaw(loc: Locator, properties: object, ifMatch: string | undefined): Promise<void> {
    const client = this.sdk();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createPipelineRequest, RestError } = require("@azure/core-rest-pipeline") as typeof import("@azure/core-rest-pipeline");
    const path = resourcePath(loc).split("/").map(encodeURIComponent).join("/");
    const url = `${client.$host}${this.servicePath()}/${path}?${new URLSearchParams({ "api-version": client.apiVersion }).toString()}`;
    const request = createPipelineRequest({ url, method: "PUT", body: JSON.stringify({ properties }) });
    request.headers.set("Content-Type", "application/json");
    request.headers.set("Accept", "application/json");
    if (ifMatch !== undefined) request.headers.set("If-Match", ifMatch);
    const response = await client.sendRequest(request);
    if (response.status !== 200 && response.status !== 201) {
      let e: { code?: string; message?: string } | undefined;
      try {
        e = (JSON.parse(response.bodyAsText ?? "{}") as { error?: { code?: string; message?: string } }).error;
      } catch {
        e = undefined;
      }
      throw new RestError(e?.message ?? `PUT ${resourcePath(loc)} answered ${response.status}`, { code: e?.code, statusCode: response.status, request, response });
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
  const out = new Error(message) as Error & { statusCode?: number; code?: string };
  if (typeof e?.statusCode === "number") out.statusCode = e.statusCode;
  if (typeof e?.code === "string") out.code = e.code;
  return out;
}
