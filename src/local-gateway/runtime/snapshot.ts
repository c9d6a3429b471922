/**
 * Reads what a publish wrote — the ARM resource bodies under the gateway's folder (.data/apim/: the
 * same paths and `properties` as the management API) — into what the gateway serves: APIs with their
 * operations, products with their API links, subscriptions with their keys, backends, named values,
 * fragments and policy documents. Everything that does not load is a LoadIssue with its file and
 * line; an API whose policy chain has an issue answers 500 naming it instead of running half a policy.
 */
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { loadPolicyDocument, parseFragment, type PolicyDocument } from "../policy/load.js";
import { type LoadIssue } from "../policy/types.js";
import { type XmlElement } from "../xml.js";
import { isoDurationMs, type BackendDef, type CircuitBreakerRule } from "./backends.js";

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
}

export interface LoadedApi {
  id: string;
  name: string;
  path: string;
  subscriptionRequired: boolean;
  keyHeader: string;
  keyQuery: string;
  operations: LoadedOperation[];
  policy?: PolicyDocument;
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

export async function loadSnapshot(root: string, sources: SnapshotSources, secrets: SecretCache): Promise<Snapshot> {
  const issues: LoadIssue[] = [];
  const files = new Set(await listFiles(root));
  const rel = (f: string) => relative(root, f);
  const readJson = async (path: string): Promise<Record<string, unknown> | undefined> => {
    const file = join(root, `${path}.json`);
    if (!files.has(file)) return undefined;
    try {
      const body = JSON.parse(await readFile(file, "utf8")) as { properties?: unknown };
      return body.properties && typeof body.properties === "object" ? (body.properties as Record<string, unknown>) : {};
    } catch (err) {
      issues.push({ file: rel(file), line: 1, column: 1, message: `not valid JSON: ${(err as Error).message}` });
      return undefined;
    }
  };
  const children = (dir: string) =>
    [...files].filter((f) => f.startsWith(join(root, dir) + "/") && f.endsWith(".json") && !f.slice(join(root, dir).length + 1).includes("/")).map((f) => f.slice(join(root, dir).length + 1, -".json".length)).sort();

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
    if (files.has(xmlFile)) return readFile(xmlFile, "utf8");
    return typeof props?.value === "string" ? props.value : undefined;
  };

  const fragments = new Map<string, { el: XmlElement; file: string }>();
  const fragmentIds = new Set([...children("policyFragments"), ...[...files].filter((f) => f.startsWith(join(root, "policyFragments") + "/") && f.endsWith(".xml")).map((f) => f.slice(join(root, "policyFragments").length + 1, -".xml".length))]);
  for (const id of [...fragmentIds].sort()) {
    const file = `policyFragments/${id}.xml`;
    const text = await readPolicyText(`policyFragments/${id}`);
    if (text === undefined) continue;
    const el = parseFragment(file, substitute(text, file), issues);
    if (el) fragments.set(id, { el, file });
  }

  const broken = new Map<string, LoadIssue[]>();
  const policyAt = async (path: string): Promise<PolicyDocument | undefined> => {
    const text = await readPolicyText(path);
    if (text === undefined) return undefined;
    const file = `${path}.xml`;
    const own: LoadIssue[] = [];
    const doc = loadPolicyDocument(file, substitute(text, file), { fragment: (id) => fragments.get(id) }, own);
    issues.push(...own);
    if (!doc) broken.set(file, own.length ? own : [{ file, line: 1, column: 1, message: "the policy did not load" }]);
    return doc;
  };

  const global = await policyAt("policies/policy");

  const apis: LoadedApi[] = [];
  for (const id of children("apis")) {
    const p = await readJson(`apis/${id}`);
    if (!p) continue;
    const names = (p.subscriptionKeyParameterNames ?? {}) as { header?: unknown; query?: unknown };
    const operations: LoadedOperation[] = [];
    for (const opId of children(`apis/${id}/operations`)) {
      const o = await readJson(`apis/${id}/operations/${opId}`);
      if (!o) continue;
      const template = typeof o.urlTemplate === "string" ? o.urlTemplate : "";
      const compiled = compileTemplate(template);
      if ("error" in compiled) {
        issues.push({ file: `apis/${id}/operations/${opId}.json`, line: 1, column: 1, message: compiled.error });
        continue;
      }
      const policy = await policyAt(`apis/${id}/operations/${opId}/policies/policy`);
      operations.push({ id: opId, name: String(o.displayName ?? opId), method: String(o.method ?? "GET").toUpperCase(), urlTemplate: template, ...compiled, ...(policy ? { policy } : {}) });
    }
    operations.sort((a, b) => b.rank - a.rank);
    const policy = await policyAt(`apis/${id}/policies/policy`);
    apis.push({
      id,
      name: String(p.displayName ?? id),
      path: String(p.path ?? "").replace(/^\/+|\/+$/g, ""),
      subscriptionRequired: p.subscriptionRequired !== false,
      keyHeader: typeof names.header === "string" ? names.header : "Ocp-Apim-Subscription-Key",
      keyQuery: typeof names.query === "string" ? names.query : "subscription-key",
      operations,
      ...(policy ? { policy } : {}),
    });
  }
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

  return { apis, products, subscriptionsByKey, backends, ...(global ? { global } : {}), broken, issues };
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

async function listFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const out: string[] = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else if (e.name.endsWith(".json") || e.name.endsWith(".xml")) out.push(p);
  }
  return out;
}

function lineOf(text: string, fragment: string): number {
  const i = text.indexOf(fragment);
  return i < 0 ? 1 : text.slice(0, i).split("\n").length;
}

function escapeXml(v: string): string {
  return v.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
