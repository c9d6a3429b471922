import {
  artifactHash,
  artifactRef,
  normalizeArtifact,
  type ArtifactRef,
  type GatewayArtifact,
  type PolicyScope,
  type PublishOutcome,
} from "../../ports/gateway.js";
import { assertValidSecretName, assertValidSecretVersion } from "../../ports/secrets.js";

// Content hashing moved to the port (the domain needs it too); re-exported for the adapters' tests.
export { artifactHash, canonicalJson, normalizeArtifact, poolMemberId } from "../../ports/gateway.js";

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
  | { kind: "api"; id: string }
  | { kind: "product"; id: string }
  | { kind: "subscription"; id: string };

/**
 * Write order: named values, single backends, pools, fragments, APIs, products (they link APIs),
 * policies (APIM refuses a policy whose API or product does not exist), subscriptions (a key starts to
 * work only once the policies that limit it are in place). Deletes run in reverse.
 */
const RANK = { namedValue: 0, single: 1, pool: 2, fragment: 3, api: 4, product: 5, policy: 6, subscription: 7 } as const;

export function rankOf(loc: Locator, backendType?: "Single" | "Pool"): number {
  if (loc.kind === "backend") return backendType === "Pool" ? RANK.pool : RANK.single;
  return RANK[loc.kind];
}

export function locatorOf(a: GatewayArtifact): Locator {
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
      const seen = new Set<string>();
      for (const o of a.operations) {
        assertSafeId("operation", o.id);
        if (seen.has(o.id)) throw new Error(`gateway: ${ref} lists operation ${o.id} twice`);
        seen.add(o.id);
      }
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
    else candidates.push({ ref, loc, artifact, hash, index, rank: rankOf(loc, artifact.kind === "backend" ? artifact.type : undefined) });
  });
  // Stable: within a rank, the caller's order is kept.
  candidates.sort((a, b) => a.rank - b.rank || a.index - b.index);
  const deletes = Object.keys(previous).filter((ref) => !seen.has(ref));
  for (const ref of deletes) parseRef(ref);
  return { writes: candidates.map(({ ref, loc, artifact, hash }) => ({ ref, loc, artifact, hash })), unchanged, deletes, hashes };
}

/** What the gateway holds for one entity right now. */
export interface Current {
  /** The entity's ETag (the file publisher has none). */
  etag?: string;
  /** For backends looked up with needType. */
  backendType?: "Single" | "Pool";
}

/** The I/O a publisher plugs into runPublish. */
export interface PublishIo {
  /** undefined when the entity does not exist. needType: a backend's type is wanted (to order deletes). */
  lookup(loc: Locator, opts: { needType: boolean }): Promise<Current | undefined>;
  /** Creates (current undefined) or updates (guarded by current.etag) one artifact. */
  write(w: PlannedWrite, current: Current | undefined): Promise<void>;
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

/** The publish algorithm both publishers run: writes in rank order, then deletes in reverse rank order. */
export async function runPublish(io: PublishIo, desired: GatewayArtifact[], previous: Record<ArtifactRef, string>): Promise<PublishOutcome> {
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
  try {
    for (const w of plan.writes) {
      at = w.ref;
      // Read the ETag immediately before the write, so the guarded window is as short as it can be.
      await io.write(w, await io.lookup(w.loc, { needType: false }));
      sent.push(w.ref);
      hashes[w.ref] = w.hash;
    }
    // Every delete is looked up first: a backend's rank (pool before its members) comes from the gateway.
    const found: { ref: ArtifactRef; loc: Locator; cur: Current | undefined; rank: number; index: number }[] = [];
    for (const [index, ref] of plan.deletes.entries()) {
      at = ref;
      const loc = parseRef(ref);
      const cur = await io.lookup(loc, { needType: loc.kind === "backend" });
      found.push({ ref, loc, cur, rank: rankOf(loc, cur?.backendType), index });
    }
    found.sort((a, b) => b.rank - a.rank || b.index - a.index);
    for (const d of found) {
      at = d.ref;
      // Already gone: nothing to send, but it has left the gateway all the same.
      if (d.cur) await io.remove(d.ref, d.loc, d.cur);
      deleted.push(d.ref);
      delete hashes[d.ref];
    }
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new GatewayPublishError(`gateway publish failed at ${at}: ${why}`, at, outcome(), err);
  }
  return outcome();
}

export { mapLimit } from "../../util/map-limit.js";
