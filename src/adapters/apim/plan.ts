import {
  artifactHash,
  artifactRef,
  normalizeArtifact,
  type ArtifactRef,
  type GatewayArtifact,
  type PolicyScope,
  type PublishBudget,
  type PublishOutcome,
} from "../../ports/gateway.js";
import { assertValidSecretName, assertValidSecretVersion } from "../../ports/secrets.js";
import { mapLimit } from "../../util/map-limit.js";

// Content hashing moved to the port (the domain needs it too); re-exported for the adapters' tests.
export { artifactHash, normalizeArtifact, poolMemberId } from "../../ports/gateway.js";

/**
 * What the two gateway publishers (ARM and local files) share, so that they cannot drift apart:
 * normalisation and content hashing, ref parsing, ordering, and the publish loop itself. Each publisher
 * only supplies its I/O (PublishIo). No Azure SDK here; content hashing is the port's (gateway-content.ts).
 */

/** Where an artifact lives, recovered from its ref alone (deletes only have the ref). */
export type Locator =
  | { kind: "policy"; scope: PolicyScope }
  | { kind: "fragment"; id: string }
  | { kind: "backend"; id: string }
  | { kind: "namedValue"; id: string }
  /** `mcp` is known when writing (from the artifact); a delete learns it from the gateway (Current.apiType). */
  | { kind: "api"; id: string; mcp?: boolean }
  | { kind: "product"; id: string }
  | { kind: "subscription"; id: string };

/**
 * Write order: named values, single backends, pools, fragments, HTTP APIs, MCP APIs (their tools name HTTP
 * APIs' operations, which must exist first), products (they link APIs), policies (APIM refuses a policy
 * whose API or product does not exist), subscriptions (a key starts to work only once the policies that
 * limit it are in place). Deletes run in reverse: an MCP API (and its tools) goes before the operations
 * they name; but a policy whose API or product is deleted too goes with its owner, never before it
 * (ownerOf).
 *
 * A product's write removes the API links it no longer has at once, but the links it gains are its deferred
 * work (after every write and delete): a link is what lets the product's keys reach an API, and the API's
 * policy — the keys' scope, approvals and limits, which tiers it applies — must be in place first. A publish
 * that stops between the two (a failure, a step's end) leaves the keys without the API, never with an API
 * governed by no policy or by one that does not know their tier (which falls back to the project's limits).
 */
const RANK = { namedValue: 0, single: 1, pool: 2, fragment: 3, api: 4, mcpApi: 5, product: 6, policy: 7, subscription: 8 } as const;

/** What only the gateway (or the artifact) knows about an entity, and its rank depends on. */
export interface Subtype {
  backendType?: "Single" | "Pool";
  apiType?: "http" | "mcp";
}

export function rankOf(loc: Locator, sub: Subtype = {}): number {
  if (loc.kind === "backend") return sub.backendType === "Pool" ? RANK.pool : RANK.single;
  if (loc.kind === "api") return sub.apiType === "mcp" || loc.mcp ? RANK.mcpApi : RANK.api;
  return RANK[loc.kind];
}

export function locatorOf(a: GatewayArtifact): Locator {
  if (a.kind === "api") return a.mcp ? { kind: "api", id: a.id, mcp: true } : { kind: "api", id: a.id };
  return a.kind === "policy" ? { kind: "policy", scope: a.scope } : { kind: a.kind, id: a.id };
}

/** An id becomes a URL path segment and a file name: refuse anything that could escape either. */
export function assertSafeId(what: string, id: string): void {
  if (id === "" || id === "." || id === ".." || /[/\\?#%\u0000-\u001f]/.test(id) || id.length > 256) {
    throw new Error(`gateway: invalid ${what} id ${JSON.stringify(id)}`);
  }
}

function assertLocator(loc: Locator): void {
  if (loc.kind !== "policy") return assertSafeId(loc.kind, loc.id);
  const s = loc.scope;
  if (s.type === "product") assertSafeId("product", s.productId);
  if (s.type === "api" || s.type === "operation") assertSafeId("api", s.apiId);
  if (s.type === "operation") assertSafeId("operation", s.operationId);
}

/** Inverse of artifactRef() for the locating part. Throws on a ref this module did not produce. */
export function parseRef(ref: ArtifactRef): Locator {
  const colon = ref.indexOf(":");
  const kind = ref.slice(0, colon);
  const rest = ref.slice(colon + 1);
  let loc: Locator | undefined;
  if (kind === "policy") {
    const parts = rest.split("/");
    if (rest === "global") loc = { kind, scope: { type: "global" } };
    else if (parts.length === 2 && parts[0] === "product") loc = { kind, scope: { type: "product", productId: parts[1] ?? "" } };
    else if (parts.length === 2 && parts[0] === "api") loc = { kind, scope: { type: "api", apiId: parts[1] ?? "" } };
    else if (parts.length === 4 && parts[0] === "api" && parts[2] === "operation")
      loc = { kind, scope: { type: "operation", apiId: parts[1] ?? "", operationId: parts[3] ?? "" } };
  } else if (kind === "fragment" || kind === "backend" || kind === "namedValue" || kind === "api" || kind === "product" || kind === "subscription") {
    loc = { kind, id: rest };
  }
  if (colon < 0 || !loc) throw new Error(`gateway: unknown artifact ref ${JSON.stringify(ref)}`);
  assertLocator(loc);
  return loc;
}

export interface PlannedWrite {
  ref: ArtifactRef;
  loc: Locator;
  artifact: GatewayArtifact;
  hash: string;
}

export interface PublishPlan {
  /** Artifacts to send, in write order. */
  writes: PlannedWrite[];
  unchanged: ArtifactRef[];
  /** Refs to delete, not yet ordered: a backend's rank (single or pool) is only known from the gateway. */
  deletes: ArtifactRef[];
  /** Hash of every desired artifact. */
  hashes: Record<ArtifactRef, string>;
}

/** Ids inside an artifact become paths too (pool members, operations, linked APIs, subscription scopes). */
function assertContent(ref: ArtifactRef, a: GatewayArtifact): void {
  switch (a.kind) {
    case "backend":
      if (a.type === "Pool") {
        if (a.services.length === 0) throw new Error(`gateway: pool ${ref} has no members`);
        for (const m of a.services) assertSafeId("pool member", m.id);
      }
      return;
    case "api": {
      const unique = (what: string, ids: string[]) => {
        const seen = new Set<string>();
        for (const id of ids) {
          assertSafeId(what, id);
          if (seen.has(id)) throw new Error(`gateway: ${ref} lists ${what} ${id} twice`);
          seen.add(id);
        }
      };
      unique("operation", a.operations.map((o) => o.id));
      unique("schema", (a.schemas ?? []).map((x) => x.id));
      if (a.mcp) assertMcp(ref, a);
      return;
    }
    case "product":
      for (const api of a.apis) assertSafeId("api", api);
      return;
    case "subscription":
      assertSafeId(a.scope.type, a.scope.type === "api" ? a.scope.apiId : a.scope.productId);
      for (const key of [a.primaryKey, a.secondaryKey]) {
        assertValidSecretName(key.name);
        assertValidSecretVersion(key.version);
      }
      return;
    default:
      return;
  }
}

/**
 * What APIM refuses an MCP server for (Learn, manage-mcp-servers-rest-api: "SSE transport requires exactly
 * two endpoints (sse and message). Streamable transport requires one (message)", a uriTemplate starts with
 * "/"), refused here before anything is sent; tool ids and the operations they name become paths.
 */
function assertMcp(ref: ArtifactRef, a: Extract<GatewayArtifact, { kind: "api" }>): void {
  const m = a.mcp!;
  if (a.operations.length > 0) throw new Error(`gateway: ${ref} is an MCP server: it has tools, not operations`);
  if (a.serviceUrl || (a.schemas?.length ?? 0) > 0) throw new Error(`gateway: ${ref} is an MCP server: serviceUrl and schemas belong to HTTP APIs`);
  if (m.type === "passThrough") {
    const names = m.endpoints.map((e) => e.name).sort();
    const want = m.transportType === "sse" ? ["message", "sse"] : ["message"];
    if (names.join() !== want.join()) throw new Error(`gateway: ${ref}: a ${m.transportType} MCP server needs the endpoints ${want.join(" and ")}, got ${names.join(", ") || "none"}`);
    for (const e of m.endpoints) if (!e.uriTemplate.startsWith("/")) throw new Error(`gateway: ${ref}: endpoint ${e.name}'s uriTemplate must start with "/"`);
    if (!/^https?:\/\//i.test(m.serviceUrl)) throw new Error(`gateway: ${ref}: serviceUrl must be an http(s) URL`);
    return;
  }
  const seen = new Set<string>();
  for (const t of m.tools) {
    assertSafeId("tool", t.id);
    if (seen.has(t.id)) throw new Error(`gateway: ${ref} lists tool ${t.id} twice`);
    seen.add(t.id);
    assertSafeId("api", t.apiId);
    assertSafeId("operation", t.operationId);
  }
}

/** How a set of child entities (an API's operations, a product's API links) must change to become `desired`. */
export function diffChildren<T>(desired: Map<string, T>, existing: Map<string, T>, same: (a: T, b: T) => boolean): { put: string[]; remove: string[] } {
  const put = [...desired].filter(([id, v]) => {
    const cur = existing.get(id);
    return cur === undefined || !same(v, cur);
  });
  return { put: put.map(([id]) => id), remove: [...existing.keys()].filter((id) => !desired.has(id)) };
}

export function planPublish(desired: GatewayArtifact[], previous: Record<ArtifactRef, string>): PublishPlan {
  const seen = new Set<ArtifactRef>();
  const candidates: (PlannedWrite & { rank: number; index: number })[] = [];
  const unchanged: ArtifactRef[] = [];
  const hashes: Record<ArtifactRef, string> = {};
  desired.forEach((raw, index) => {
    const artifact = normalizeArtifact(raw);
    const ref = artifactRef(artifact);
    if (seen.has(ref)) throw new Error(`gateway: ${ref} appears twice in the desired set`);
    seen.add(ref);
    const loc = locatorOf(artifact);
    assertLocator(loc);
    assertContent(ref, artifact);
    const hash = artifactHash(artifact);
    hashes[ref] = hash;
    if (previous[ref] === hash) unchanged.push(ref);
    else candidates.push({ ref, loc, artifact, hash, index, rank: rankOf(loc, artifact.kind === "backend" ? { backendType: artifact.type } : {}) });
  });
  // Stable: within a rank, the caller's order is kept.
  candidates.sort((a, b) => a.rank - b.rank || a.index - b.index);
  const deletes = Object.keys(previous).filter((ref) => !seen.has(ref));
  for (const ref of deletes) parseRef(ref);
  return { writes: candidates.map(({ ref, loc, artifact, hash }) => ({ ref, loc, artifact, hash })), unchanged, deletes, hashes };
}

/**
 * OwnedPolicies: the API (for an API's or an operation's policy) or product whose delete takes a policy
 * with it. APIM deletes an entity's policies with the entity (the file publisher does the same), so a
 * publish that removes both never deletes the policy first: between the two deletes (a step's end, a
 * failure, APIM refusing to delete a product that still has subscriptions) the API or product would stand
 * with no policy, its keys reaching the API — and its serviceUrl — ungoverned. Deleted with its owner, the
 * policy governs for as long as the owner stands.
 */
function ownerOf(loc: Locator): ArtifactRef | undefined {
  if (loc.kind !== "policy") return undefined;
  const s = loc.scope;
  if (s.type === "api" || s.type === "operation") return `api:${s.apiId}`;
  if (s.type === "product") return `product:${s.productId}`;
  return undefined;
}

/** What the gateway holds for one entity right now. */
export interface Current extends Subtype {
  /** The entity's ETag (the file publisher has none). */
  etag?: string;
}

/**
 * Work a write leaves for the end of the publish, after every other write and delete: removing an HTTP
 * API's stale operations (and the schemas they used), which MCP tools written or deleted later in the
 * same publish may still name (APIM refuses to delete an operation a tool names); linking a product to the
 * APIs it gains, once their policies are in place (RANK).
 */
export type Deferred = () => Promise<void>;

/** The I/O a publisher plugs into runPublish. */
export interface PublishIo {
  /** undefined when the entity does not exist. needType: a backend's or an API's type is wanted (to order deletes). */
  lookup(loc: Locator, opts: { needType: boolean }): Promise<Current | undefined>;
  /** Creates (current undefined) or updates (guarded by current.etag) one artifact; may defer part of it. */
  write(w: PlannedWrite, current: Current | undefined): Promise<Deferred | void>;
  remove(ref: ArtifactRef, loc: Locator, current: Current): Promise<void>;
}

/** A publish that stopped part-way. `partial` is what the gateway is now believed to hold: pass
 * `partial.hashes` as `previous` to the next publish and it resumes (unsent writes and undone deletes
 * keep their previous hash, so they are retried). */
export class GatewayPublishError extends Error {
  /** HTTP status of the failed call when there was one (412: the entity changed under us). */
  readonly status: number | undefined;
  constructor(
    message: string,
    readonly ref: ArtifactRef,
    readonly partial: PublishOutcome,
    cause: unknown,
  ) {
    super(message, { cause });
    this.name = "GatewayPublishError";
    const s = (cause as { statusCode?: unknown } | undefined)?.statusCode;
    this.status = typeof s === "number" ? s : undefined;
  }
}

/**
 * The error's message; else its status and code. A failed HEAD (the ETag lookup before every write and
 * delete) has no body, so the SDK's error carries no message: a 403 from a missing role assignment would
 * otherwise read "gateway publish failed at backend:x: " and nothing more.
 */
function reasonOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.message) return err.message;
  const { statusCode, code } = err as { statusCode?: unknown; code?: unknown };
  const parts = [typeof statusCode === "number" ? `HTTP ${statusCode}` : undefined, typeof code === "string" && code ? code : undefined].filter(Boolean);
  return parts.length > 0 ? `${parts.join(" ")} (no error message)` : err.name;
}

/** Delete lookups in flight at once (reads; the ARM publisher's own reads use as many). */
const LOOKUP_CONCURRENCY = 8;

/**
 * The publish algorithm both publishers run: writes in rank order, then deletes in reverse rank order,
 * then the writes' deferred work. With a budget, it stops after the step that spent it and says how
 * much is left (`remaining`). A write whose deferred work has not run keeps its previous hash, so the
 * next call sends it again and runs that work at its own end, after that call's writes and deletes; such
 * a write is no progress, and a call stops only once it has made some (an artifact's hash recorded or
 * removed), so calls that each stop as soon as they may still finish.
 */
export async function runPublish(io: PublishIo, desired: GatewayArtifact[], previous: Record<ArtifactRef, string>, budget?: PublishBudget): Promise<PublishOutcome> {
  const plan = planPublish(desired, previous);
  const sent: ArtifactRef[] = [];
  const deleted: ArtifactRef[] = [];
  // What the gateway is believed to hold at every step: unchanged artifacts; until a write succeeds, its
  // previous content (if any); until a delete succeeds, the deleted artifact.
  const hashes: Record<ArtifactRef, string> = {};
  for (const ref of plan.unchanged) hashes[ref] = plan.hashes[ref] ?? "";
  for (const ref of [...plan.writes.map((w) => w.ref), ...plan.deletes]) {
    const h = previous[ref];
    if (h !== undefined) hashes[ref] = h;
  }

  let at: ArtifactRef = "";
  const outcome = (): PublishOutcome => ({ sent: [...sent], unchanged: [...plan.unchanged], deleted: [...deleted], hashes: { ...hashes } });
  // A write with deferred work is only believed done (its hash recorded) once that work is done: a publish
  // that stops before then leaves the previous hash, so the next one sends it again.
  const deferred: { ref: ArtifactRef; hash: string; run: Deferred }[] = [];
  let done = 0;
  let progress = 0;
  /** After each write, delete or deferred step: the outcome so far when the budget is spent, progress made and work left. */
  const paused = (): PublishOutcome | undefined => {
    const left = plan.writes.length + plan.deletes.length + deferred.length - done;
    return left > 0 && progress > 0 && budget?.spent() ? { ...outcome(), remaining: left } : undefined;
  };
  try {
    for (const w of plan.writes) {
      at = w.ref;
      // Read the ETag immediately before the write, so the guarded window is as short as it can be.
      const rest = await io.write(w, await io.lookup(w.loc, { needType: false }));
      sent.push(w.ref);
      done++;
      if (rest) deferred.push({ ref: w.ref, hash: w.hash, run: rest });
      else {
        hashes[w.ref] = w.hash;
        progress++;
      }
      const stop = paused();
      if (stop) return stop;
    }
    // Every delete is looked up first: a backend's rank (pool before its members) and an API's (MCP
    // before HTTP) come from the gateway. Reads, several at a time: a large removal's lookups would
    // otherwise take much of a step before its first delete.
    const found = await mapLimit([...plan.deletes.entries()], LOOKUP_CONCURRENCY, async ([index, ref]) => {
      const loc = parseRef(ref);
      try {
        const cur = await io.lookup(loc, { needType: loc.kind === "backend" || loc.kind === "api" });
        return { ref, loc, cur, rank: rankOf(loc, cur ?? {}), index };
      } catch (err) {
        at = ref;
        throw err;
      }
    });
    found.sort((a, b) => b.rank - a.rank || b.index - a.index);
    // A policy whose API or product goes too leaves with it, never before it (OwnedPolicies).
    const going = new Set(found.map((d) => d.ref));
    const owned = new Map<ArtifactRef, typeof found>();
    const order: typeof found = [];
    for (const d of found) {
      const owner = ownerOf(d.loc);
      if (owner && going.has(owner)) owned.set(owner, [...(owned.get(owner) ?? []), d]);
      else order.push(d);
    }
    for (const d of order) {
      at = d.ref;
      // Already gone: nothing to send, but it has left the gateway all the same.
      if (d.cur) await io.remove(d.ref, d.loc, d.cur);
      for (const p of [d, ...(owned.get(d.ref) ?? [])]) {
        at = p.ref;
        // The owner's delete took its policies (as APIM's does); one still found without its owner goes alone.
        if (p !== d && p.cur && !d.cur) await io.remove(p.ref, p.loc, p.cur);
        deleted.push(p.ref);
        delete hashes[p.ref];
        done++;
        progress++;
      }
      const stop = paused();
      if (stop) return stop;
    }
    for (const d of deferred) {
      at = d.ref;
      await d.run();
      hashes[d.ref] = d.hash;
      done++;
      progress++;
      const stop = paused();
      if (stop) return stop;
    }
  } catch (err) {
    throw new GatewayPublishError(`gateway publish failed at ${at}: ${reasonOf(err)}`, at, outcome(), err);
  }
  return outcome();
}

export { mapLimit };
