import { artifactHash, artifactRef, type ArtifactRef, type GatewayArtifact } from "../../ports/gateway.js";
import type { BatchResult, Store, StoredDoc } from "../../ports/store.js";
import { mapLimit } from "../../util/map-limit.js";
import { AppError } from "../errors.js";
import { partitionOf, PART_SIZE, READ_CONCURRENCY, type GatewayStateDoc, type Manifest, type PublishingDocuments, type RevisionDoc } from "./documents.js";
import type { ArtifactChange, Revision } from "./schema.js";

/** Manifests kept in memory (they are immutable; a large tenant's is ~20 MB). */
const MANIFEST_CACHE = 8;

const artifactDocId = (hash: string) => `artifact.${hash}`;
const partId = (revisionId: string, n: number) => `revpart.${revisionId}.${n}`;

interface RevisionPartDoc extends StoredDoc {
  docType: "revisionPart";
  entries: [ArtifactRef, string][];
}

interface ArtifactDoc extends StoredDoc {
  docType: "gatewayArtifact";
  artifact: GatewayArtifact;
}

export function manifestOf(artifacts: GatewayArtifact[]): Manifest {
  return new Map(artifacts.map((a) => [artifactRef(a), artifactHash(a)]));
}

export const sameManifest = (a: Manifest, b: Manifest) => a.size === b.size && [...a].every(([ref, h]) => b.get(ref) === h);

/**
 * Whether a published artifact is one of a project's, by its id (src/policy/names.ts): its APIs
 * (`aigov-<key>-<projectId>`, and `…-<projectId>-…` for its MCP, toolbox, REST and agent APIs) with their
 * policies and operations' policies, its products with their policies, and its pools.
 */
export function ownedByProject(ref: ArtifactRef, projectId: string): boolean {
  const m = /^(?:api:|product:|policy:api\/|policy:product\/|backend:)aigov-[a-z0-9]{1,10}-(?:pool-)?(.*)$/.exec(ref);
  if (!m) return false;
  const rest = m[1]!;
  return rest === projectId || rest.startsWith(`${projectId}-`) || rest.startsWith(`${projectId}/`);
}

/** Tenant-wide artifacts a kept project's policies and pools may use: never removed while a project is kept as held. */
const SHARED_KINDS = ["backend:", "namedValue:", "fragment:"];

export function diffManifests(before: Manifest, after: Manifest): { changes: ArtifactChange[]; counts: Revision["counts"] } {
  const changes: ArtifactChange[] = [];
  for (const [ref, hash] of after) {
    const prev = before.get(ref);
    if (prev === undefined) changes.push({ ref, change: "added" });
    else if (prev !== hash) changes.push({ ref, change: "modified" });
  }
  for (const ref of before.keys()) if (!after.has(ref)) changes.push({ ref, change: "removed" });
  changes.sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  const count = (c: ArtifactChange["change"]) => changes.filter((x) => x.change === c).length;
  return { changes, counts: { added: count("added"), modified: count("modified"), removed: count("removed") } };
}

/** How heldManifest marks an artifact the last drift check found changed: a stand-in, never a stored artifact's hash. */
const DRIFT_MARK = "drifted:";
const UNSURE_MARK = "unsure:";

/**
 * Refs heldManifest marked (unsure, or drifted) that a publish call has since sent or deleted: what the
 * gateway holds for them is known again. `held` is the call's `previous`, `after` its outcome's hashes.
 */
export function remarked(held: ReadonlyMap<ArtifactRef, string>, after: Record<ArtifactRef, string>): ArtifactRef[] {
  const isMark = (h: string) => h.startsWith(DRIFT_MARK) || h.startsWith(UNSURE_MARK);
  const out: ArtifactRef[] = [];
  for (const [ref, h] of held) {
    if (!isMark(h)) continue;
    const now = after[ref];
    // Deleted (gone from the outcome) or sent (a real hash now); a ref the call did not reach keeps its mark.
    if (now === undefined || !isMark(now)) out.push(ref);
  }
  return out;
}

/**
 * What a partial publish left at the gateway, relative to the published manifest (ref → hash; null =
 * removed). A ref the publish did not reach still carries heldManifest's drift mark: it is what it was
 * (the drift report keeps it), never an override naming an artifact that does not exist.
 */
export function overridesOf(base: Manifest, held: Record<ArtifactRef, string>): Record<ArtifactRef, string | null> {
  const out: Record<ArtifactRef, string | null> = {};
  for (const [ref, h] of Object.entries(held)) if (!h.startsWith(DRIFT_MARK) && !h.startsWith(UNSURE_MARK) && base.get(ref) !== h) out[ref] = h;
  for (const ref of base.keys()) if (!(ref in held)) out[ref] = null;
  return out;
}

/**
 * Artifacts stored content-addressed (`artifact.<sha256>`, written once, shared by every revision that
 * holds them) and each revision's manifest (ref → hash) in parts of PART_SIZE entries; and what the
 * gateway holds, as far as this control plane knows (ADR 006).
 */
export class ManifestStore {
  private readonly cache = new Map<string, Manifest>();

  constructor(
    private readonly store: Store,
    private readonly docs: PublishingDocuments,
    /** The instance the tenant is assigned now (tenant-gateways.ts); the state says which one it describes. */
    private readonly instanceOf: (tenantId: string) => string | undefined = () => undefined,
    /** Every instance the tenant reserved a gateway key on: it wrote there (tenant-gateways.ts). */
    private readonly instancesHeld: (tenantId: string) => Promise<string[]> = async () => [],
  ) {}

  /**
   * The instance a state describes. A state written before instances were recorded names none: a tenant
   * writes to an instance only after reserving its key there, so the one other instance it reserved on is
   * where its last publish went if an operator has reassigned it since; with no other (or, undecidably,
   * several), the instance assigned now. Wrong only towards a needless drain of the other instance and a
   * full publish to this one. Undefined: nothing published, nothing to describe.
   */
  async describes(tenantId: string, state: GatewayStateDoc): Promise<string | undefined> {
    if (state.instance !== undefined) return state.instance;
    const here = this.instanceOf(tenantId);
    if (!state.published || here === undefined) return here;
    const others = (await this.instancesHeld(tenantId)).filter((i) => i !== here);
    return others.length === 1 ? others[0]! : here;
  }

  /** Stores artifacts by their hash (idempotent: the same content is one document). */
  async storeArtifacts(tenantId: string, byHash: Map<string, GatewayArtifact>): Promise<void> {
    const partition = partitionOf(tenantId);
    await mapLimit([...byHash], READ_CONCURRENCY, async ([hash, artifact]) =>
      written(await this.store.batch(partition, [{ kind: "upsert", doc: { id: artifactDocId(hash), ...partition, docType: "gatewayArtifact", artifact } satisfies ArtifactDoc }]), `artifact ${hash}`),
    );
  }

  /** Stores a revision's manifest in parts (before the revision itself, so it never points at anything missing); how many. */
  async storeManifest(tenantId: string, revisionId: string, manifest: Manifest): Promise<number> {
    const partition = partitionOf(tenantId);
    const entries = [...manifest].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const parts: RevisionPartDoc[] = [];
    for (let i = 0; i * PART_SIZE < entries.length || i === 0; i++) {
      parts.push({ id: partId(revisionId, i), ...partition, docType: "revisionPart", entries: entries.slice(i * PART_SIZE, (i + 1) * PART_SIZE) });
    }
    await mapLimit(parts, READ_CONCURRENCY, async (p) => written(await this.store.batch(partition, [{ kind: "create", doc: p }]), `manifest part ${p.id}`));
    return parts.length;
  }

  /** Removes the parts of a revision that was never recorded (it lost the race for its number). */
  async dropManifest(tenantId: string, revisionId: string, parts: number): Promise<void> {
    await Promise.all(Array.from({ length: parts }, (_, i) => this.store.delete(partitionOf(tenantId), partId(revisionId, i))));
  }

  async manifest(tenantId: string, revision: RevisionDoc): Promise<Manifest> {
    // A revision's manifest never changes once written: keep the last few (every key sync asks
    // whether the gateway holds its product, which is a lookup in the published manifest).
    const key = `${tenantId}/${revision.id}`;
    const hit = this.cache.get(key);
    if (hit) return new Map(hit);
    const parts = await mapLimit(
      Array.from({ length: revision.parts }, (_, i) => i),
      READ_CONCURRENCY,
      (i) => this.store.read<RevisionPartDoc>(partitionOf(tenantId), partId(revision.id, i)),
    );
    const out: Manifest = new Map();
    for (const p of parts) {
      if (!p) throw new Error(`a manifest part of revision ${revision.id} is missing`);
      for (const [ref, h] of p.entries) out.set(ref, h);
    }
    this.cache.set(key, out);
    if (this.cache.size > MANIFEST_CACHE) this.cache.delete(this.cache.keys().next().value!);
    return new Map(out);
  }

  /**
   * What a publish keeps for projects kept as held (keptArtifacts, see TenantCompiler.compileRegistry),
   * from `held` (what the gateway holds, or a pending revision is about to): every artifact of those
   * projects, and every backend, named value and fragment the compile no longer makes (a kept project's
   * policies and pools may name them; those unused go with the next publish that keeps none). A kept
   * product links its own project's APIs only: the kept project is not compiled, so no other project's
   * API applies its key tiers any more, and a link to one would let its keys in without their limits.
   */
  async keptArtifacts(tenantId: string, held: Manifest, compiled: GatewayArtifact[], kept: readonly string[]): Promise<GatewayArtifact[]> {
    const made = new Set(compiled.map(artifactRef));
    const refs: Manifest = new Map();
    for (const [ref, h] of held) {
      if (made.has(ref)) continue;
      if (SHARED_KINDS.some((k) => ref.startsWith(k)) || kept.some((id) => ownedByProject(ref, id))) refs.set(ref, h);
    }
    return [...(await this.artifactsByRef(tenantId, refs))].map(([ref, a]) => {
      if (a.kind !== "product") return a;
      const owner = kept.find((id) => ownedByProject(ref, id))!;
      return { ...a, apis: a.apis.filter((api) => ownedByProject(`api:${api}`, owner)) };
    });
  }

  /** One stored artifact by its hash. */
  async artifact(tenantId: string, hash: string): Promise<GatewayArtifact | undefined> {
    return (await this.store.read<ArtifactDoc>(partitionOf(tenantId), artifactDocId(hash)))?.artifact;
  }

  async artifacts(tenantId: string, manifest: Manifest): Promise<GatewayArtifact[]> {
    return [...(await this.artifactsByRef(tenantId, manifest)).values()];
  }

  async artifactsByRef(tenantId: string, manifest: Manifest): Promise<Map<ArtifactRef, GatewayArtifact>> {
    const hashes = [...new Set(manifest.values())];
    const docs = await mapLimit(hashes, READ_CONCURRENCY, (h) => this.store.read<ArtifactDoc>(partitionOf(tenantId), artifactDocId(h)));
    const byHash = new Map<string, GatewayArtifact>();
    docs.forEach((d, i) => {
      if (!d) throw new Error(`gateway artifact ${hashes[i]} is missing from the store`);
      byHash.set(hashes[i]!, d.artifact);
    });
    return new Map([...manifest].map(([ref, h]) => [ref, byHash.get(h)!]));
  }

  async publishedManifest(tenantId: string, state: GatewayStateDoc): Promise<Manifest> {
    return state.published ? this.manifest(tenantId, await this.docs.loadRevision(tenantId, state.published.revisionId)) : new Map();
  }

  /**
   * What the tenant's gateway holds (as far as this control plane knows): the published revision plus any
   * partial publish since — nothing, when the state describes another instance than the one the tenant is
   * assigned now (an operator moved it: the next publish moves it, applier.ts).
   */
  async gatewayManifest(tenantId: string, state: GatewayStateDoc): Promise<Manifest> {
    const now = this.instanceOf(tenantId);
    const described = await this.describes(tenantId, state);
    if (described !== undefined && now !== undefined && described !== now) return new Map();
    return this.recordedManifest(tenantId, state);
  }

  /** What the instance the state describes holds: the published revision plus any partial publish since. */
  async recordedManifest(tenantId: string, state: GatewayStateDoc): Promise<Manifest> {
    const m = await this.publishedManifest(tenantId, state);
    for (const [ref, h] of Object.entries(state.overrides)) {
      if (h === null) m.delete(ref);
      else m.set(ref, h);
    }
    return m;
  }

  /**
   * What the gateway holds as far as a publish is concerned: like gatewayManifest, but artifacts the
   * last drift check found modified or missing count as not held, so the next publish (or rollback)
   * sends them again and so repairs the drift.
   */
  async heldManifest(tenantId: string, state: GatewayStateDoc): Promise<Manifest> {
    const m = await this.gatewayManifest(tenantId, state);
    // A call whose outcome is unknown: its artifact counts as not held (sent again), and one the gateway
    // may hold without knowing it is deleted unless it is wanted.
    for (const ref of state.unsure ?? []) m.set(ref, `${UNSURE_MARK}${ref}`);
    const drift = await this.docs.drift(tenantId);
    // What the applying revision's earlier calls sent again is repaired: the drift report (kept until a
    // complete publish) no longer marks it, or each call would send it again.
    const resent = state.progress && state.progress.revisionId === state.lease?.revisionId ? new Set(state.progress.resent ?? []) : new Set<ArtifactRef>();
    if (drift?.status === "drifted" && drift.revisionId === state.published?.revisionId) {
      for (const item of drift.items) if (m.has(item.ref) && !resent.has(item.ref)) m.set(item.ref, `${DRIFT_MARK}${drift.fingerprint}`);
    }
    return m;
  }
}

/**
 * A write a revision will point at must have happened: the store answers a refused write (throttled past
 * its retries, too large) with ok: false, and a revision recorded over a missing part could not be
 * applied — or, for a registry part, would leave every later publish of the tenant unable to read it.
 */
export function written(result: BatchResult, what: string): void {
  if (!result.ok) throw new AppError({ kind: "unavailable", detail: `storing ${what} failed (status ${result.status}); nothing was published: retry` });
}
