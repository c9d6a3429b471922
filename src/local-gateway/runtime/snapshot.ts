/**
 * Reads what a publish wrote — the ARM resource bodies under the gateway's folder (.data/apim/: the
 * same paths and `properties` as the management API) — into what the gateway serves: APIs with their
 * operations, products with their API links, subscriptions with their keys, backends, named values,
 * fragments and policy documents; MCP servers (APIs of `type: "mcp"`) with their tools, and the schema
 * documents and request/response shapes of operations that tools are made from. Everything that does
 * not load is a LoadIssue with its file and line; an API whose policy chain (or, for an MCP server, whose
 * configuration) has an issue answers 500 naming it instead of running half of it.
 */
import { dirname, join, relative } from "node:path";
import { loadPolicyDocument, parseFragment, type PolicyDocument } from "../policy/load.js";
import { type LoadIssue } from "../policy/types.js";
import { type XmlElement } from "../xml.js";
import { isoDurationMs, type BackendDef, type CircuitBreakerRule } from "./backends.js";
import { FileTexts, scanFolder, type FolderScan } from "./folder.js";
import { toolSchemas, type OperationParam, type OperationShape, type Representation, type ServedTool } from "./mcp.js";

export interface SecretRefLike {
  name: string;
  version: string;
}

export interface SnapshotSources {
  /** A subscription key kept as a reference in the local files (the publisher never writes keys). */
  resolveSecret(ref: SecretRefLike): Promise<string>;
  /** A Key Vault-backed named value: its secret identifier to the value, undefined when missing. */
  resolveKeyVaultSecret(secretIdentifier: string): Promise<string | undefined>;
}

export interface LoadedOperation {
  id: string;
  name: string;
  method: string;
  urlTemplate: string;
  match: (path: string) => Record<string, string> | undefined;
  /** Higher first: literal segments beat parameters, parameters beat the wildcard. */
  rank: number;
  policy?: PolicyDocument;
  /** Its parameters and representations (what a tool made from it is derived from). */
  shape: OperationShape;
  /** An MCP server's endpoint: what it is, and (pass-through) the remote server's path for it. */
  mcp?: { endpoint: "message" | "sse"; upstreamPath?: string };
}

/** A tool of an MCP server, resolved to the operation that serves it. */
export interface LoadedTool extends ServedTool {
  id: string;
  api: LoadedApi;
  operation: LoadedOperation;
}

export type LoadedMcp =
  | { type: "passThrough"; serviceUrl: string; transportType: "streamable" | "sse" }
  | { type: "restTools"; tools: LoadedTool[] };

export interface LoadedApi {
  id: string;
  name: string;
  path: string;
  subscriptionRequired: boolean;
  keyHeader: string;
  keyQuery: string;
  operations: LoadedOperation[];
  policy?: PolicyDocument;
  /** An HTTP API's default backend (ARM serviceUrl). */
  serviceUrl?: string;
  /** Schema documents by id: their `components.schemas`. */
  schemas: Map<string, Record<string, unknown>>;
  mcp?: LoadedMcp;
  /** What keeps this API from being served (a broken MCP configuration or tool): it answers 500 naming the first. */
  issues: LoadIssue[];
}

export interface LoadedProduct {
  id: string;
  name: string;
  published: boolean;
  apis: Set<string>;
  policy?: PolicyDocument;
}

export interface LoadedSubscription {
  id: string;
  name: string;
  scope: { type: "api"; id: string } | { type: "product"; id: string } | { type: "all" };
  state: string;
  primaryKey: string;
  secondaryKey: string;
}

export interface Snapshot {
  apis: LoadedApi[];
  products: Map<string, LoadedProduct>;
  subscriptionsByKey: Map<string, LoadedSubscription>;
  backends: Map<string, BackendDef>;
  global?: PolicyDocument;
  /** Documents (file names relative to the root) that did not load. */
  broken: Map<string, LoadIssue[]>;
  issues: LoadIssue[];
}

/** Subscription keys and named values are resolved once per (name, version): both are immutable. */
export class SecretCache {
  private readonly cache = new Map<string, Promise<string>>();
  get(ref: SecretRefLike, resolve: (ref: SecretRefLike) => Promise<string>): Promise<string> {
    const k = `${ref.name}@${ref.version}`;
    let p = this.cache.get(k);
    if (!p) {
      p = resolve(ref).catch((err: unknown) => {
        this.cache.delete(k);
        throw err;
      });
      this.cache.set(k, p);
    }
    return p;
  }
}

/**
 * What one load keeps for the next: file texts by stamp, and policy documents by their text (after
 * named values) while the fragments they may include are unchanged. A loaded document is steps over
 * its own constants, so the next snapshot may serve the same one.
 */
export class SnapshotCache {
  readonly secrets = new SecretCache();
  readonly files = new FileTexts();
  private fragments = "";
  private policies = new Map<string, { doc: PolicyDocument | undefined; issues: LoadIssue[] }>();
  private used = new Map<string, { doc: PolicyDocument | undefined; issues: LoadIssue[] }>();

  /** Starts a load: documents are reused only when every fragment reads as in the load they came from. */
  begin(fragments: string): void {
    if (fragments !== this.fragments) this.policies.clear();
    this.fragments = fragments;
    this.used = new Map();
  }

  policy(file: string, text: string, load: () => { doc: PolicyDocument | undefined; issues: LoadIssue[] }): { doc: PolicyDocument | undefined; issues: LoadIssue[] } {
    const key = `${file}\0${text}`;
    const loaded = this.policies.get(key) ?? load();
    this.used.set(key, loaded);
    return loaded;
  }

  /** Ends a load: what it did not use is forgotten. */
  end(scan: FolderScan): void {
    this.policies = this.used;
    this.used = new Map();
    this.files.keepOnly(scan);
  }
}

/** The folder as a snapshot; `seen`: a scan of it just taken (the poller's), else it is looked at now. */
export async function loadSnapshot(root: string, sources: SnapshotSources, cache: SnapshotCache, seen?: FolderScan): Promise<Snapshot> {
  const { secrets, files: texts } = cache;
  const issues: LoadIssue[] = [];
  const scan = seen ?? (await scanFolder(root));
  // Each folder's .json files by name (without .json), sorted: what `children` answers without a pass over every file.
  const byDir = new Map<string, string[]>();
  for (const file of scan.keys()) {
    if (!file.endsWith(".json")) continue;
    const dir = dirname(file);
    const names = byDir.get(dir) ?? [];
    names.push(file.slice(dir.length + 1, -".json".length));
    byDir.set(dir, names);
  }
  for (const names of byDir.values()) names.sort();
  const rel = (f: string) => relative(root, f);
  const readText = (file: string): Promise<string | undefined> => {
    const at = scan.get(file);
    if (at === undefined) return Promise.resolve(undefined);
    // Removed since the scan (a publish deleting an API): absent, as the reload its removal triggers will see it.
    return texts.read(file, at).catch((err: unknown) => (isMissing(err) ? undefined : Promise.reject(err)));
  };
  const readJson = async (path: string): Promise<Record<string, unknown> | undefined> => {
    const file = join(root, `${path}.json`);
    const text = await readText(file);
    if (text === undefined) return undefined;
    try {
      const body = JSON.parse(text) as { properties?: unknown };
      return body.properties && typeof body.properties === "object" ? (body.properties as Record<string, unknown>) : {};
    } catch (err) {
      issues.push({ file: rel(file), line: 1, column: 1, message: `not valid JSON: ${(err as Error).message}` });
      return undefined;
    }
  };
  const children = (dir: string) => byDir.get(join(root, dir)) ?? [];

  // Named values first: documents reference them as {{name}}.
  const namedValues = new Map<string, string>();
  for (const id of children("namedValues")) {
    const p = await readJson(`namedValues/${id}`);
    if (!p) continue;
    const name = typeof p.displayName === "string" ? p.displayName : id;
    const kv = p.keyVault as { secretIdentifier?: unknown } | undefined;
    if (typeof p.value === "string") namedValues.set(name, p.value);
    else if (typeof kv?.secretIdentifier === "string") {
      const value = await sources.resolveKeyVaultSecret(kv.secretIdentifier).catch(() => undefined);
      if (value === undefined) issues.push({ file: `namedValues/${id}.json`, line: 1, column: 1, message: `Key Vault secret ${kv.secretIdentifier} could not be read` });
      else namedValues.set(name, value);
    } else issues.push({ file: `namedValues/${id}.json`, line: 1, column: 1, message: "a named value needs a value or a keyVault.secretIdentifier" });
  }
  const substitute = (text: string, file: string) =>
    text.replace(/\{\{([A-Za-z0-9._-]+)\}\}/g, (whole, name: string) => {
      const v = namedValues.get(name);
      if (v === undefined) {
        issues.push({ file, line: lineOf(text, whole), column: 1, message: `named value '${name}' does not exist` });
        return whole;
      }
      return escapeXml(v);
    });

  const readPolicyText = async (path: string): Promise<string | undefined> => {
    const xmlFile = join(root, `${path}.xml`);
    const props = await readJson(path);
    if (props && props.format !== undefined && props.format !== "xml") {
      issues.push({ file: `${path}.json`, line: 1, column: 1, message: `policy format '${String(props.format)}' is not loaded by the local gateway: publish policies as format "xml" (well-formed, XML-escaped)` });
      return undefined;
    }
    if (scan.has(xmlFile)) return readText(xmlFile);
    return typeof props?.value === "string" ? props.value : undefined;
  };

  const fragments = new Map<string, { el: XmlElement; file: string }>();
  const fragmentDir = join(root, "policyFragments");
  const fragmentIds = new Set([...children("policyFragments"), ...[...scan.keys()].filter((f) => dirname(f) === fragmentDir && f.endsWith(".xml")).map((f) => f.slice(fragmentDir.length + 1, -".xml".length))]);
  const fragmentTexts: string[] = [];
  for (const id of [...fragmentIds].sort()) {
    const file = `policyFragments/${id}.xml`;
    const text = await readPolicyText(`policyFragments/${id}`);
    if (text === undefined) continue;
    const substituted = substitute(text, file);
    fragmentTexts.push(`${id}\0${substituted}`);
    const el = parseFragment(file, substituted, issues);
    if (el) fragments.set(id, { el, file });
  }
  cache.begin(fragmentTexts.join("\0\0"));

  const broken = new Map<string, LoadIssue[]>();
  const policyAt = async (path: string): Promise<PolicyDocument | undefined> => {
    const text = await readPolicyText(path);
    if (text === undefined) return undefined;
    const file = `${path}.xml`;
    const substituted = substitute(text, file);
    const load = () => {
      const own: LoadIssue[] = [];
      return { doc: loadPolicyDocument(file, substituted, { fragment: (id) => fragments.get(id) }, own), issues: own };
    };
    const { doc, issues: own } = cache.policy(file, substituted, load);
    issues.push(...own);
    if (!doc) broken.set(file, own.length ? own : [{ file, line: 1, column: 1, message: "the policy did not load" }]);
    return doc;
  };

  const global = await policyAt("policies/policy");

  const apis: LoadedApi[] = [];
  const toolFiles = new Map<LoadedApi, { id: string; props: Record<string, unknown> }[]>();
  for (const id of children("apis")) {
    const p = await readJson(`apis/${id}`);
    if (!p) continue;
    const names = (p.subscriptionKeyParameterNames ?? {}) as { header?: unknown; query?: unknown };
    const own: LoadIssue[] = [];
    const isMcp = p.type === "mcp";
    if (p.type !== undefined && p.type !== "http" && !isMcp) own.push({ file: `apis/${id}.json`, line: 1, column: 1, message: `API type '${String(p.type)}' is not served by the local gateway (http and mcp are)` });
    const operations: LoadedOperation[] = [];
    for (const opId of children(`apis/${id}/operations`)) {
      const o = await readJson(`apis/${id}/operations/${opId}`);
      if (!o) continue;
      if (isMcp) {
        own.push({ file: `apis/${id}/operations/${opId}.json`, line: 1, column: 1, message: "an MCP server has tools, not operations" });
        continue;
      }
      const template = typeof o.urlTemplate === "string" ? o.urlTemplate : "";
      const compiled = compileTemplate(template);
      if ("error" in compiled) {
        issues.push({ file: `apis/${id}/operations/${opId}.json`, line: 1, column: 1, message: compiled.error });
        continue;
      }
      const policy = await policyAt(`apis/${id}/operations/${opId}/policies/policy`);
      const method = String(o.method ?? "GET").toUpperCase();
      operations.push({ id: opId, name: String(o.displayName ?? opId), method, urlTemplate: template, ...compiled, ...(policy ? { policy } : {}), shape: operationShape(o, method, template) });
    }
    const schemas = new Map<string, Record<string, unknown>>();
    for (const schemaId of children(`apis/${id}/schemas`)) {
      const x = await readJson(`apis/${id}/schemas/${schemaId}`);
      if (!x) continue;
      const components = (x.document as { components?: { schemas?: unknown } } | undefined)?.components?.schemas;
      if (components && typeof components === "object" && !Array.isArray(components)) schemas.set(schemaId, components as Record<string, unknown>);
      else issues.push({ file: `apis/${id}/schemas/${schemaId}.json`, line: 1, column: 1, message: "a schema document needs document.components.schemas (OpenAPI components)" });
    }
    const policy = await policyAt(`apis/${id}/policies/policy`);
    const api: LoadedApi = {
      id,
      name: String(p.displayName ?? id),
      path: String(p.path ?? "").replace(/^\/+|\/+$/g, ""),
      subscriptionRequired: p.subscriptionRequired !== false,
      keyHeader: typeof names.header === "string" ? names.header : "Ocp-Apim-Subscription-Key",
      keyQuery: typeof names.query === "string" ? names.query : "subscription-key",
      operations,
      ...(policy ? { policy } : {}),
      ...(!isMcp && typeof p.serviceUrl === "string" && p.serviceUrl ? { serviceUrl: p.serviceUrl } : {}),
      schemas,
      issues: own,
    };
    if (isMcp) {
      const tools = [];
      for (const toolId of children(`apis/${id}/tools`)) {
        const t = await readJson(`apis/${id}/tools/${toolId}`);
        if (t) tools.push({ id: toolId, props: t });
      }
      loadMcp(api, p, own);
      if (api.mcp?.type === "restTools") toolFiles.set(api, tools);
      else if (tools.length) own.push({ file: `apis/${id}/tools/${tools[0]!.id}.json`, line: 1, column: 1, message: "a pass-through MCP server (mcpProperties) has no tools of its own" });
    }
    operations.sort((a, b) => b.rank - a.rank);
    apis.push(api);
  }
  // Tools name operations of other APIs: resolved once every API is loaded.
  for (const [api, tools] of toolFiles) {
    const loaded: LoadedTool[] = [];
    for (const t of tools) {
      const tool = loadTool(api, t.id, t.props, apis);
      if (typeof tool === "string") api.issues.push({ file: `apis/${api.id}/tools/${t.id}.json`, line: 1, column: 1, message: tool });
      else loaded.push(tool);
    }
    const names = new Set<string>();
    for (const t of loaded) {
      if (names.has(t.name)) api.issues.push({ file: `apis/${api.id}/tools/${t.id}.json`, line: 1, column: 1, message: `two tools are named '${t.name}'` });
      names.add(t.name);
    }
    api.mcp = { type: "restTools", tools: loaded };
  }
  for (const api of apis) issues.push(...api.issues);
  // Longest path first, so /a/b wins over /a.
  apis.sort((a, b) => b.path.length - a.path.length);

  const products = new Map<string, LoadedProduct>();
  for (const id of children("products")) {
    const p = await readJson(`products/${id}`);
    if (!p) continue;
    const policy = await policyAt(`products/${id}/policies/policy`);
    products.set(id, { id, name: String(p.displayName ?? id), published: p.state === "published", apis: new Set(children(`products/${id}/apis`)), ...(policy ? { policy } : {}) });
  }

  const backends = new Map<string, BackendDef>();
  for (const id of children("backends")) {
    const p = await readJson(`backends/${id}`);
    if (!p) continue;
    const def = backendDef(id, p, (m) => issues.push({ file: `backends/${id}.json`, line: 1, column: 1, message: m }), (t) => substituteValue(t, namedValues));
    if (def) backends.set(id, def);
  }
  for (const b of backends.values()) {
    for (const m of b.pool ?? []) {
      const member = backends.get(m.id);
      if (!member) issues.push({ file: `backends/${b.id}.json`, line: 1, column: 1, message: `pool member '${m.id}' does not exist` });
      else if (member.type !== "Single") issues.push({ file: `backends/${b.id}.json`, line: 1, column: 1, message: `pool member '${m.id}' is a pool; a pool holds single backends only` });
    }
  }

  const subscriptionsByKey = new Map<string, LoadedSubscription>();
  for (const id of children("subscriptions")) {
    const p = await readJson(`subscriptions/${id}`);
    if (!p) continue;
    const file = `subscriptions/${id}.json`;
    const key = async (v: unknown): Promise<string | undefined> => {
      if (typeof v === "string") return v;
      const ref = (v as { secretRef?: { name?: unknown; version?: unknown } } | null)?.secretRef;
      if (typeof ref?.name !== "string" || typeof ref.version !== "string") return undefined;
      return secrets.get({ name: ref.name, version: ref.version }, (r) => sources.resolveSecret(r)).catch(() => undefined);
    };
    const [primaryKey, secondaryKey] = await Promise.all([key(p.primaryKey), key(p.secondaryKey)]);
    const scope = parseScope(String(p.scope ?? ""));
    if (!scope) {
      issues.push({ file, line: 1, column: 1, message: `unknown subscription scope '${String(p.scope)}'` });
      continue;
    }
    const sub: LoadedSubscription = { id, name: String(p.displayName ?? id), scope, state: String(p.state ?? "submitted"), primaryKey: primaryKey ?? "", secondaryKey: secondaryKey ?? "" };
    for (const k of [primaryKey, secondaryKey]) if (k) subscriptionsByKey.set(k, sub);
  }

  cache.end(scan);
  return { apis, products, subscriptionsByKey, backends, ...(global ? { global } : {}), broken, issues };
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

function params(v: unknown): OperationParam[] {
  return (Array.isArray(v) ? v : []).map((x: Record<string, unknown>) => ({
    name: String(x?.name ?? ""),
    type: String(x?.type ?? ""),
    required: x?.required === true,
    ...(str(x?.description) ? { description: str(x?.description)! } : {}),
    ...(str(x?.schemaId) ? { schemaId: str(x?.schemaId)! } : {}),
    ...(str(x?.typeName) ? { typeName: str(x?.typeName)! } : {}),
  }));
}

function representations(v: unknown): Representation[] {
  return (Array.isArray(v) ? v : []).map((x: Record<string, unknown>) => ({
    contentType: String(x?.contentType ?? ""),
    ...(str(x?.schemaId) ? { schemaId: str(x?.schemaId)! } : {}),
    ...(str(x?.typeName) ? { typeName: str(x?.typeName)! } : {}),
  }));
}

/** An operation file's request and response shapes (ARM OperationContract). */
function operationShape(o: Record<string, unknown>, method: string, urlTemplate: string): OperationShape {
  const req = (o.request ?? {}) as Record<string, unknown>;
  return {
    method,
    urlTemplate,
    ...(str(o.description) ? { description: str(o.description)! } : {}),
    templateParameters: params(o.templateParameters),
    queryParameters: params(req.queryParameters),
    headers: params(req.headers),
    representations: representations(req.representations),
    responses: (Array.isArray(o.responses) ? o.responses : []).map((r: Record<string, unknown>) => ({ statusCode: Number(r?.statusCode), representations: representations(r?.representations) })),
  };
}

const NO_SHAPE = (method: string, urlTemplate: string): OperationShape => ({ method, urlTemplate, templateParameters: [], queryParameters: [], headers: [], representations: [], responses: [] });

/**
 * The gateway side of an MCP server: Streamable HTTP at `/mcp` (POST, GET, DELETE), or for an SSE
 * pass-through `GET /sse` and `POST /messages` — whatever the remote server's own paths
 * (`mcpProperties.endpoints`), which are where the gateway forwards them. An MCP API without
 * mcpProperties is made of its tools. Both `endpoints` shapes of the preview are read.
 */
function loadMcp(api: LoadedApi, p: Record<string, unknown>, own: LoadIssue[]): void {
  const file = `apis/${api.id}.json`;
  const issue = (message: string) => own.push({ file, line: 1, column: 1, message });
  const op = (id: "message" | "sse", method: string, path: string, upstreamPath?: string): LoadedOperation => {
    const compiled = compileTemplate(path) as { match: LoadedOperation["match"]; rank: number };
    return { id, name: id, method, urlTemplate: path, ...compiled, shape: NO_SHAPE(method, path), mcp: { endpoint: id, ...(upstreamPath ? { upstreamPath } : {}) } };
  };
  const streamable = (upstreamPath?: string) => ["POST", "GET", "DELETE"].map((m) => op("message", m, "/mcp", upstreamPath));
  const mp = p.mcpProperties as { transportType?: unknown; endpoints?: unknown } | undefined;
  if (!mp || typeof mp !== "object") {
    api.mcp = { type: "restTools", tools: [] };
    api.operations.push(...streamable());
    return;
  }
  const endpoints = new Map<string, string>();
  const raw = mp.endpoints;
  const list: [string, unknown][] = Array.isArray(raw)
    ? raw.map((e: Record<string, unknown>) => [String(e?.name ?? ""), e?.uriTemplate])
    : Object.entries((raw ?? {}) as Record<string, { uriTemplate?: unknown }>).map(([k, e]) => [k === "messages" ? "message" : k, e?.uriTemplate]);
  for (const [name, uri] of list) {
    if (typeof uri !== "string" || !uri.startsWith("/")) issue(`endpoint '${name}': uriTemplate must start with '/'`);
    else endpoints.set(name, uri);
  }
  const transport = mp.transportType;
  const serviceUrl = typeof p.serviceUrl === "string" ? p.serviceUrl : "";
  if (!/^https?:\/\//i.test(serviceUrl)) issue("a pass-through MCP server needs an http(s) serviceUrl");
  if (transport === "streamable") {
    if (!endpoints.has("message") || endpoints.size !== 1) issue("streamable transport requires one endpoint: message");
    api.operations.push(...streamable(endpoints.get("message") ?? "/mcp"));
  } else if (transport === "sse") {
    if (!endpoints.has("message") || !endpoints.has("sse") || endpoints.size !== 2) issue("SSE transport requires exactly two endpoints: sse and message");
    api.operations.push(op("sse", "GET", "/sse", endpoints.get("sse") ?? "/sse"), op("message", "POST", "/messages", endpoints.get("message") ?? "/messages"));
  } else {
    issue(`transportType must be streamable or sse, not '${String(transport)}'`);
    return;
  }
  api.mcp = { type: "passThrough", serviceUrl, transportType: transport };
}

/** A tool file resolved to its operation and schemas, or why it cannot be served. */
function loadTool(api: LoadedApi, id: string, t: Record<string, unknown>, apis: LoadedApi[]): LoadedTool | string {
  const name = typeof t.displayName === "string" ? t.displayName : "";
  if (!name) return "a tool needs a displayName (its name as clients see it)";
  const target = /\/apis\/([^/]+)\/operations\/([^/]+)$/i.exec(typeof t.operationId === "string" ? t.operationId : "");
  if (!target) return `operationId '${String(t.operationId)}' does not name an operation (…/apis/{apiId}/operations/{operationId})`;
  const backing = apis.find((a) => a.id === decodeURIComponent(target[1]!));
  if (!backing) return `API '${target[1]}' (named by operationId) does not exist`;
  if (backing.mcp || backing.id === api.id) return `API '${backing.id}' is an MCP server: a tool's operation belongs to an HTTP API`;
  const operation = backing.operations.find((o) => o.id === decodeURIComponent(target[2]!));
  if (!operation) return `API '${backing.id}' has no operation '${target[2]}'`;
  const schemas = toolSchemas(operation.shape, backing.schemas);
  if (schemas.problems.length) return `tool '${name}': ${schemas.problems.join("; ")}`;
  const description = typeof t.description === "string" && t.description ? t.description : operation.shape.description;
  return { id, name, ...(description ? { description } : {}), inputSchema: schemas.input, ...(schemas.output ? { outputSchema: schemas.output } : {}), api: backing, operation };
}

/** "/apis/{id}", "/products/{id}" or "/apis" (all APIs), alone or at the end of a full resource id. */
function parseScope(scope: string): LoadedSubscription["scope"] | undefined {
  let m = /\/apis\/([^/]+)$/.exec(scope);
  if (m) return { type: "api", id: m[1]! };
  m = /\/products\/([^/]+)$/.exec(scope);
  if (m) return { type: "product", id: m[1]! };
  return /\/apis$/.test(scope) ? { type: "all" } : undefined;
}

function backendDef(id: string, p: Record<string, unknown>, issue: (m: string) => void, value: (t: string) => string): BackendDef | undefined {
  const type = p.type === "Pool" ? "Pool" : "Single";
  if (type === "Pool") {
    const services = ((p.pool as { services?: unknown } | undefined)?.services ?? []) as { id?: unknown; priority?: unknown; weight?: unknown }[];
    if (!Array.isArray(services) || services.length === 0) {
      issue("a pool needs at least one service");
      return undefined;
    }
    return {
      id,
      type,
      pool: services.map((s) => {
        const sid = String(s.id ?? "");
        return { id: sid.slice(sid.lastIndexOf("/backends/") >= 0 ? sid.lastIndexOf("/backends/") + "/backends/".length : 0), priority: typeof s.priority === "number" ? s.priority : 1, weight: typeof s.weight === "number" ? s.weight : 1 };
      }),
    };
  }
  if (typeof p.url !== "string") {
    issue("a single backend needs a url");
    return undefined;
  }
  const def: BackendDef = { id, type, url: p.url };
  const creds = p.credentials as { header?: Record<string, string[]>; managedIdentity?: { resource?: unknown; clientId?: unknown }; query?: unknown; authorization?: unknown; certificate?: unknown; certificateIds?: unknown } | undefined;
  if (creds) {
    for (const k of ["query", "authorization", "certificate", "certificateIds"] as const) if (creds[k] !== undefined) issue(`credentials.${k} is not implemented by the local gateway`);
    if (creds.header) def.headers = Object.fromEntries(Object.entries(creds.header).map(([h, vs]) => [h, (Array.isArray(vs) ? vs : [vs]).map((v) => value(String(v)))]));
    if (creds.managedIdentity) {
      if (typeof creds.managedIdentity.resource !== "string") issue("credentials.managedIdentity needs a resource");
      else def.managedIdentity = { resource: creds.managedIdentity.resource, ...(typeof creds.managedIdentity.clientId === "string" ? { clientId: creds.managedIdentity.clientId } : {}) };
    }
  }
  const cb = p.circuitBreaker as { rules?: CircuitBreakerRule[] } | undefined;
  if (cb?.rules?.length) {
    if (cb.rules.length > 1) issue("only one circuit breaker rule can be configured for a backend");
    const rule = cb.rules[0]!;
    try {
      isoDurationMs(rule.tripDuration);
      isoDurationMs(rule.failureCondition.interval);
    } catch (err) {
      issue((err as Error).message);
      return undefined;
    }
    if (rule.failureCondition.percentage !== undefined) issue("circuit breaker failure percentages are not implemented by the local gateway");
    def.circuitBreaker = { rules: [rule] };
  }
  return def;
}

/** A named-value reference in a backend credential (`{{name}}`), replaced by its value. */
function substituteValue(text: string, values: Map<string, string>): string {
  return text.replace(/\{\{([A-Za-z0-9._-]+)\}\}/g, (whole, name: string) => values.get(name) ?? whole);
}

/**
 * An operation URL template as a matcher: literal segments, `{name}` parameters (one segment) and the
 * trailing wildcard `/*`. Query templates are not part of the subset the local gateway serves.
 */
export function compileTemplate(template: string): { match: LoadedOperation["match"]; rank: number } | { error: string } {
  if (!template.startsWith("/")) return { error: `URL template '${template}' must start with '/'` };
  if (template.includes("?")) return { error: `query parameters in URL templates ('${template}') are not implemented by the local gateway` };
  const segments = template.split("/").slice(1);
  const wildcard = segments[segments.length - 1] === "*";
  const fixed = wildcard ? segments.slice(0, -1) : segments;
  const names: string[] = [];
  const parts = fixed.map((s) => {
    const p = /^\{([A-Za-z0-9_-]+)\}$/.exec(s);
    if (p) {
      names.push(p[1]!);
      return "([^/]+)";
    }
    if (/[{}*]/.test(s)) return null;
    return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  });
  if (parts.includes(null)) return { error: `URL template '${template}' uses a form the local gateway does not implement` };
  const re = new RegExp(`^${fixed.length ? "/" + parts.join("/") : ""}${wildcard ? "(?:/.*)?" : ""}$`, "i");
  const literal = fixed.length - names.length;
  return {
    rank: (wildcard ? 0 : 1_000_000) + literal * 1000 - names.length,
    match: (path) => {
      const m = re.exec(path === "" ? "/" : path);
      if (!m) return undefined;
      const out: Record<string, string> = {};
      names.forEach((n, i) => (out[n] = decodeURIComponent(m[i + 1]!)));
      return out;
    },
  };
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === "ENOENT";

function lineOf(text: string, fragment: string): number {
  const i = text.indexOf(fragment);
  return i < 0 ? 1 : text.slice(0, i).split("\n").length;
}

function escapeXml(v: string): string {
  return v.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
