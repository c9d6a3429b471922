import {
  normalizeArtifact,
  normalizeReadBack,
  poolMemberId,
  subscriptionFingerprint,
  type ApiArtifact,
  type ApiOperation,
  type ApiSchema,
  type BackendArtifact,
  type CircuitBreakerRule,
  type GatewayArtifact,
  type GatewayReadBack,
  type McpApiSource,
  type McpToolArtifact,
  type OperationParameter,
  type ProductArtifact,
  type SubscriptionArtifact,
  type SubscriptionScope,
} from "../../ports/gateway.js";
import { normalizeOperation } from "../../ports/gateway-content.js";
import { type Locator } from "./plan.js";

/**
 * The ARM wire format (api-version 2024-05-01) of each artifact kind, both ways: the request body a PUT
 * sends and the parse of what a GET (or a file on disk) holds. The ARM publisher and the file publisher
 * both go through here; no Azure SDK types.
 *
 * MCP servers are the exception to the api-version: an API of `type: "mcp"` (its `mcpProperties`) and its
 * `tools` exist only in api-version 2025-09-01-preview (MCP_API_VERSION), a preview whose shapes Learn
 * and the REST specification's examples do not agree on (docs/gateway.md, "MCP servers at the gateway").
 */

/** The management API version that knows MCP servers (`type: "mcp"`, `mcpProperties`, apis/{id}/tools). Preview. */
export const MCP_API_VERSION = "2025-09-01-preview";

export interface PolicyProperties {
  value: string;
  /** Always xml: the compiler renders well-formed XML, so quotes, < and & inside expressions are
   * escaped (&quot;, &lt;, &amp;). rawxml would hand those escapes to the expression compiler as C#. */
  format: "xml";
}

export interface FragmentProperties {
  value: string;
  format: "xml";
  description?: string;
}

export interface BackendProperties {
  type: "Single" | "Pool";
  description?: string;
  url?: string;
  protocol?: "http";
  circuitBreaker?: { rules: CircuitBreakerRule[] };
  credentials?: { header?: Record<string, string[]>; managedIdentity?: { resource: string; clientId?: string } };
  pool?: { services: { id: string; priority?: number; weight?: number }[] };
}

export interface NamedValueProperties {
  displayName: string;
  secret: boolean;
  value?: string;
  keyVault?: { secretIdentifier: string; identityClientId?: string };
  tags?: string[];
}

export interface ApiProperties {
  displayName: string;
  description?: string;
  path: string;
  protocols: string[];
  subscriptionRequired: boolean;
  /** Only the header is modelled; the query parameter name keeps APIM's default. */
  subscriptionKeyParameterNames: { header: string };
  /** An HTTP API's default backend; a pass-through MCP server's remote server. */
  serviceUrl?: string;
  /** Only MCP servers send a type (2025-09-01-preview); an HTTP API keeps APIM's default ("http"). */
  type?: "mcp";
  /** A pass-through MCP server only (2025-09-01-preview). */
  mcpProperties?: McpProperties;
}

/**
 * How `mcpProperties.endpoints` is written. "list" is Learn's shape (`manage-mcp-servers-rest-api`:
 * `[{ name: "message" | "sse", uriTemplate }]`); "map" is the REST specification example's
 * (`ApiManagementCreateMcpApi.json`: `{ sse: { uriTemplate }, messages: { uriTemplate } }`). Which one the
 * service keeps is not settled (preview); both are read back.
 */
export type McpEndpointsShape = "list" | "map";

export interface McpProperties {
  transportType: "streamable" | "sse";
  endpoints: { name: string; uriTemplate: string }[] | Record<string, { uriTemplate: string }>;
}

/** ARM ParameterContract (the fields the port models: the port's type is the ARM shape). */
export type ParameterProperties = OperationParameter;

/** ARM RepresentationContract (the fields the port models). */
export interface RepresentationProperties {
  contentType: string;
  schemaId?: string;
  typeName?: string;
}

/** apis/{apiId}/operations/{operationId} (ARM OperationContract). */
export interface OperationProperties {
  displayName: string;
  method: string;
  urlTemplate: string;
  description?: string;
  templateParameters?: ParameterProperties[];
  request?: { queryParameters?: ParameterProperties[]; headers?: ParameterProperties[]; representations?: RepresentationProperties[] };
  responses?: { statusCode: number; description?: string; representations?: RepresentationProperties[] }[];
}

/** apis/{apiId}/schemas/{schemaId} (ARM SchemaContract): an OpenAPI components document. */
export interface SchemaProperties {
  contentType: string;
  document: { components: Record<string, unknown> };
}

/** apis/{mcpApiId}/tools/{toolId} (2025-09-01-preview): `operationId` is the resource id of the backing operation. */
export interface ToolProperties {
  displayName: string;
  description?: string;
  operationId: string;
}

export interface ProductProperties {
  displayName: string;
  description?: string;
  subscriptionRequired: boolean;
  approvalRequired: boolean;
  state: "published" | "notPublished";
}

/**
 * subscriptions/{sid}. `K` is what stands for a key: the key itself in the ARM body (and nowhere else),
 * `{ secretRef }` in the local files.
 */
export interface SubscriptionProperties<K> {
  /** "/apis/{apiId}" or "/products/{productId}" (ARM answers with the full resource id). */
  scope: string;
  displayName: string;
  state: "active" | "suspended" | "cancelled";
  primaryKey: K;
  secondaryKey: K;
}

export type ArmProperties = PolicyProperties | FragmentProperties | BackendProperties | NamedValueProperties | ApiProperties | ProductProperties;

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
    case "api":
      return `apis/${loc.id}`;
    case "product":
      return `products/${loc.id}`;
    case "subscription":
      return `subscriptions/${loc.id}`;
  }
}

export const operationPath = (apiId: string, operationId: string) => `apis/${apiId}/operations/${operationId}`;
export const productApiPath = (productId: string, apiId: string) => `products/${productId}/apis/${apiId}`;
export const schemaPath = (apiId: string, schemaId: string) => `apis/${apiId}/schemas/${schemaId}`;
export const toolPath = (apiId: string, toolId: string) => `apis/${apiId}/tools/${toolId}`;

/** The body of an operation, from its normalised form (empty lists are never sent). */
export function operationProperties(raw: ApiOperation): OperationProperties {
  const o = normalizeOperation(raw);
  return {
    displayName: o.displayName,
    method: o.method,
    urlTemplate: o.urlTemplate,
    ...(o.description ? { description: o.description } : {}),
    ...(o.templateParameters ? { templateParameters: o.templateParameters } : {}),
    ...(o.request ? { request: o.request } : {}),
    ...(o.responses ? { responses: o.responses } : {}),
  };
}

export function schemaProperties(s: ApiSchema): SchemaProperties {
  return { contentType: s.contentType, document: { components: structuredClone(s.document.components) } };
}

/**
 * The resource id of the operation behind a tool. The ARM publisher passes the service's resource id
 * ("/subscriptions/…/service/{name}"), as the preview documents (a full ARM id); the file publisher has no
 * service and passes "", leaving the relative form "/apis/{apiId}/operations/{operationId}" (the form
 * pool members and subscription scopes already take). Both read back by their suffix.
 */
export function toolOperationId(serviceId: string, apiId: string, operationId: string): string {
  return `${serviceId}/apis/${apiId}/operations/${operationId}`;
}

export function toolProperties(t: McpToolArtifact, serviceId: string): ToolProperties {
  return { displayName: t.displayName, ...(t.description ? { description: t.description } : {}), operationId: toolOperationId(serviceId, t.apiId, t.operationId) };
}

function mcpProperties(m: Extract<McpApiSource, { type: "passThrough" }>, shape: McpEndpointsShape): McpProperties {
  const endpoints =
    shape === "map"
      ? Object.fromEntries(m.endpoints.map((e) => [e.name === "message" ? "messages" : e.name, { uriTemplate: e.uriTemplate }]))
      : m.endpoints.map((e) => ({ name: e.name, uriTemplate: e.uriTemplate }));
  return { transportType: m.transportType, endpoints };
}

export function subscriptionScopePath(s: SubscriptionScope): string {
  return s.type === "api" ? `/apis/${s.apiId}` : `/products/${s.productId}`;
}

/** The `properties` of a subscription's PUT body, with `key(ref)` standing in for each key. */
export function subscriptionProperties<K>(a: SubscriptionArtifact, primaryKey: K, secondaryKey: K): SubscriptionProperties<K> {
  return { scope: subscriptionScopePath(a.scope), displayName: a.displayName, state: a.state, primaryKey, secondaryKey };
}

/** The `properties` of the PUT body for an artifact (the body is `{ properties }`). Not for
 * subscriptions: their body needs the resolved keys (subscriptionProperties). */
export function toArmProperties(raw: GatewayArtifact, opts: { mcpEndpoints?: McpEndpointsShape } = {}): ArmProperties {
  const a = normalizeArtifact(raw);
  switch (a.kind) {
    case "policy":
      return { value: a.xml, format: "xml" };
    case "fragment":
      return { value: a.xml, format: "xml", ...(a.description ? { description: a.description } : {}) };
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
        ...(a.credentialHeaders || a.managedIdentity
          ? { credentials: { ...(a.credentialHeaders ? { header: a.credentialHeaders } : {}), ...(a.managedIdentity ? { managedIdentity: a.managedIdentity } : {}) } }
          : {}),
      };
    case "namedValue":
      return {
        displayName: a.displayName,
        secret: a.secret,
        ...(a.secret ? { keyVault: a.keyVault } : { value: a.value }),
        ...(a.tags ? { tags: a.tags } : {}),
      };
    case "api": {
      const mcp = a.mcp;
      const passThrough = mcp?.type === "passThrough" ? mcp : undefined;
      const serviceUrl = passThrough ? passThrough.serviceUrl : a.serviceUrl;
      return {
        ...(mcp ? { type: "mcp" as const } : {}),
        displayName: a.displayName,
        ...(a.description ? { description: a.description } : {}),
        path: a.path,
        protocols: a.protocols,
        subscriptionRequired: a.subscriptionRequired,
        subscriptionKeyParameterNames: { header: a.subscriptionKeyHeaderName },
        ...(serviceUrl ? { serviceUrl } : {}),
        ...(passThrough ? { mcpProperties: mcpProperties(passThrough, opts.mcpEndpoints ?? "list") } : {}),
      };
    }
    case "product":
      return {
        displayName: a.displayName,
        ...(a.description ? { description: a.description } : {}),
        subscriptionRequired: a.subscriptionRequired,
        approvalRequired: a.approvalRequired,
        state: a.state,
      };
    case "subscription":
      throw new Error("gateway: a subscription's body is built with subscriptionProperties");
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

/** A single backend's security-relevant settings aigov never writes, when set to anything but APIM's defaults. */
function unmodelledBackendFields(p: Obj): Obj {
  const out: Obj = {};
  const proxy = obj(p.proxy);
  if (proxy && Object.keys(proxy).length) out.proxy = proxy;
  const tls = obj(p.tls);
  if (tls && (tls.validateCertificateChain === false || tls.validateCertificateName === false)) out.tls = tls;
  const credentials = obj(p.credentials) ?? {};
  for (const field of ["query", "authorization", "certificate", "certificateIds"] as const) {
    const v = credentials[field];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0) && !(typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0)) out[`credentials.${field}`] = v;
  }
  return out;
}

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
export interface ArmChildren {
  /** api: its operations as listed by the gateway (name = operation id). */
  operations?: { name: string; properties: unknown }[];
  /** api: its schema documents (name = schema id), `properties` as ARM has them ({ contentType, document }). */
  schemas?: { name: string; properties: unknown }[];
  /** MCP api: its tools (name = tool id). */
  tools?: { name: string; properties: unknown }[];
  /** product: the ids of the APIs linked to it. */
  apis?: string[];
  /** subscription: the keys as the gateway returns them (listSecrets); only fingerprints leave this function. */
  keys?: { primaryKey?: unknown; secondaryKey?: unknown };
}

/** "/subscriptions/…/service/s/products/p" or "/products/p" → the port's scope; anything else reads as an empty api id (drift). */
export function parseSubscriptionScope(scope: string): SubscriptionScope {
  const m = /\/(apis|products)\/([^/]+)$/.exec(scope);
  if (m?.[1] === "products") return { type: "product", productId: m[2] ?? "" };
  return { type: "api", apiId: m?.[2] ?? "" };
}

/** normalizeArtifact for the kinds whose read-back is the artifact itself. */
const norm = (a: Exclude<GatewayArtifact, SubscriptionArtifact>) => normalizeArtifact(a) as GatewayReadBack;

/** A key that is missing or not a string fingerprints as "" (drift), never as an exception. */
const fingerprintOf = (key: unknown) => (typeof key === "string" ? subscriptionFingerprint(key) : "");

export function fromArmProperties(loc: Locator, properties: unknown, children: ArmChildren = {}): GatewayReadBack {
  const p = obj(properties) ?? {};
  switch (loc.kind) {
    case "api": {
      const isMcp = p.type === "mcp";
      // An MCP server has no operations of its own (its tools name other APIs' operations).
      const operations = isMcp ? [] : (children.operations ?? []).map((o) => parseOperation(o.name, o.properties));
      const schemas = (children.schemas ?? []).map((c) => parseSchema(c.name, c.properties));
      const serviceUrl = optStr(p.serviceUrl);
      // What the port does not model (other protocols, no subscription) is kept as read, so it hashes as drift.
      const api = {
        kind: "api",
        id: loc.id,
        displayName: str(p.displayName),
        description: optStr(p.description),
        path: str(p.path),
        protocols: arr(p.protocols).map(str),
        subscriptionRequired: p.subscriptionRequired,
        subscriptionKeyHeaderName: str(obj(p.subscriptionKeyParameterNames)?.header),
        operations,
        ...(isMcp ? { mcp: parseMcp(p, children.tools ?? []) } : { serviceUrl, schemas }),
      } as unknown as ApiArtifact;
      return norm(api);
    }
    case "product": {
      const product = {
        kind: "product",
        id: loc.id,
        displayName: str(p.displayName),
        description: optStr(p.description),
        subscriptionRequired: p.subscriptionRequired,
        approvalRequired: p.approvalRequired,
        state: str(p.state),
        apis: children.apis ?? [],
      } as unknown as ProductArtifact;
      return norm(product);
    }
    case "subscription":
      return normalizeReadBack({
        kind: "subscription",
        id: loc.id,
        displayName: str(p.displayName),
        scope: parseSubscriptionScope(str(p.scope)),
        state: str(p.state),
        primaryKeyFingerprint: fingerprintOf(children.keys?.primaryKey),
        secondaryKeyFingerprint: fingerprintOf(children.keys?.secondaryKey),
      });
    case "policy":
      return norm({ kind: "policy", scope: loc.scope, xml: str(p.value) });
    case "fragment":
      return norm({ kind: "fragment", id: loc.id, description: optStr(p.description), xml: str(p.value) });
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
        const mi = obj(obj(p.credentials)?.managedIdentity);
        const managedIdentity = mi ? { resource: str(mi.resource), ...(optStr(mi.clientId) ? { clientId: str(mi.clientId) } : {}) } : undefined;
        a = { kind: "backend", id: loc.id, type: "Single", url: str(p.url), description, circuitBreaker: { rules }, credentialHeaders, ...(managedIdentity ? { managedIdentity } : {}) };
        // What the port does not model but an edit in the portal could add — a proxy (the provider key then
        // goes through it), TLS checks turned off, other credentials — is kept as read, so it hashes as drift.
        const unmodelled = unmodelledBackendFields(p);
        if (Object.keys(unmodelled).length) a = { ...a, unmodelled };
      }
      return norm(a);
    }
    case "namedValue": {
      const tags = arr(p.tags).map(str);
      const displayName = str(p.displayName);
      if (p.secret === true) {
        // A secret that is not Key Vault-backed cannot be expressed by the port: it reads back with an
        // empty secretIdentifier, i.e. as drift.
        const kv = obj(p.keyVault) ?? {};
        const keyVault = { secretIdentifier: str(kv.secretIdentifier), identityClientId: optStr(kv.identityClientId) };
        return norm({ kind: "namedValue", id: loc.id, displayName, secret: true, keyVault, tags });
      }
      return norm({ kind: "namedValue", id: loc.id, displayName, secret: false, value: str(p.value), tags });
    }
  }
}

function parseParameter(v: unknown): OperationParameter {
  const x = obj(v) ?? {};
  return { name: str(x.name), type: str(x.type), required: x.required === true, description: optStr(x.description), schemaId: optStr(x.schemaId), typeName: optStr(x.typeName) };
}

function parseRepresentation(v: unknown): RepresentationProperties {
  const x = obj(v) ?? {};
  return { contentType: str(x.contentType), schemaId: optStr(x.schemaId), typeName: optStr(x.typeName) };
}

/** An operation's ARM properties (or the SDK's flattened OperationContract: the same names) as the port's operation. */
export function parseOperation(id: string, properties: unknown): ApiOperation {
  const op = obj(properties) ?? {};
  const req = obj(op.request);
  return {
    id,
    method: str(op.method),
    urlTemplate: str(op.urlTemplate),
    displayName: str(op.displayName),
    description: optStr(op.description),
    templateParameters: arr(op.templateParameters).map(parseParameter),
    request: req
      ? { queryParameters: arr(req.queryParameters).map(parseParameter), headers: arr(req.headers).map(parseParameter), representations: arr(req.representations).map(parseRepresentation) }
      : undefined,
    responses: arr(op.responses).map((r) => {
      const x = obj(r) ?? {};
      return { statusCode: num(x.statusCode), description: optStr(x.description), representations: arr(x.representations).map(parseRepresentation) };
    }),
  } as ApiOperation;
}

/** A schema's ARM properties ({ contentType, document }). A document without components reads as an empty one (drift). */
export function parseSchema(id: string, properties: unknown): ApiSchema {
  const p = obj(properties) ?? {};
  const components = obj(obj(p.document)?.components) ?? {};
  return { id, contentType: str(p.contentType), document: { components } } as ApiSchema;
}

/** The operation a tool's `operationId` names, from its suffix (a full ARM id or the relative form). */
export function parseToolOperationId(operationId: string): { apiId: string; operationId: string } | undefined {
  const m = /\/apis\/([^/]+)\/operations\/([^/]+)$/i.exec(operationId);
  return m ? { apiId: decodeURIComponent(m[1]!), operationId: decodeURIComponent(m[2]!) } : undefined;
}

export function parseTool(id: string, properties: unknown): McpToolArtifact {
  const p = obj(properties) ?? {};
  const target = parseToolOperationId(str(p.operationId)) ?? { apiId: "", operationId: "" };
  return { id, displayName: str(p.displayName), description: optStr(p.description), apiId: target.apiId, operationId: target.operationId } as McpToolArtifact;
}

/** `mcpProperties.endpoints` in either shape (McpEndpointsShape); the map's "messages" is the list's "message". */
export function parseMcpEndpoints(v: unknown): { name: string; uriTemplate: string }[] {
  if (Array.isArray(v)) return v.map((e) => ({ name: str(obj(e)?.name), uriTemplate: str(obj(e)?.uriTemplate) }));
  return Object.entries(obj(v) ?? {}).map(([name, e]) => ({ name: name === "messages" ? "message" : name, uriTemplate: str(obj(e)?.uriTemplate) }));
}

/** An MCP server: pass-through when it has mcpProperties, else made of its tools. */
function parseMcp(p: Obj, tools: { name: string; properties: unknown }[]): McpApiSource {
  const mp = obj(p.mcpProperties);
  if (mp) {
    return {
      type: "passThrough",
      serviceUrl: str(p.serviceUrl),
      transportType: str(mp.transportType),
      endpoints: parseMcpEndpoints(mp.endpoints),
    } as McpApiSource;
  }
  return { type: "restTools", tools: tools.map((t) => parseTool(t.name, t.properties)) };
}
