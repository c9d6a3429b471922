import { createHash } from "node:crypto";
import type { CompiledTenant, IsolatedProject } from "../policy/preview.js";
import { snapshotFrom, snapshotParts, stagedBetween, type RegistryPart, type RegistrySnapshot } from "./registry.js";
import type { Clock } from "../../ports/clock.js";
import { artifactHash, artifactRef, type ArtifactRef, type GatewayArtifact, type GatewayPublisher } from "../../ports/gateway.js";
import { TENANT_SCOPE, unversioned, type BatchOp, type Partition, type Store, type StoredDoc, type Versioned } from "../../ports/store.js";
import type { ChangeWriter } from "../changes.js";
import { newId, type Page, type RequestContext, type Role } from "../common.js";
import { AppError, fail, notFound } from "../errors.js";
import { parseOrThrow } from "../validation.js";
import { mapLimit } from "../../util/map-limit.js";
import { comparableHash, unifiedDiff } from "./render.js";
import { everyDoc, listPage } from "../paging.js";
import {
  MAX_LISTED_CHANGES,
  PublishSpec,
  type ArtifactChange,
  type DriftItem,
  type DriftReport,
  type GatewayDiff,
  type PublishResult,
  type Revision,
} from "./schema.js";

/** Entries per manifest part: a manifest of a large tenant does not fit one document (2 MB). */
const PART_SIZE = 2000;
/** How long an apply may hold the tenant's gateway before another revision may take over. */
const LEASE_MS = 10 * 60 * 1000;
/** Unified diffs returned by the API are cut at this size (the counts and change list stay complete). */
const MAX_DIFF_CHARS = 1_000_000;
const READ_CONCURRENCY = 16;
/** Manifests kept in memory (they are immutable; a large tenant's is ~20 MB). */
const MANIFEST_CACHE = 8;

const READERS: Role[] = ["TenantAdmin", "ProjectAdmin", "Developer", "Approver", "Auditor", "Reader"];
const STATE_ID = "gateway.state";
const DRIFT_ID = "gateway.drift";
const revisionPath = (id: string) => `/gateway/revisions/${id}`;
const subjectOf = (tenantId: string, path: string) => `/tenants/${tenantId}${path}`;
const artifactDocId = (hash: string) => `artifact.${hash}`;
const partId = (revisionId: string, n: number) => `revpart.${revisionId}.${n}`;
const registryPartId = (revisionId: string, n: number) => `revreg.${revisionId}.${n}`;
const registryDocId = (hash: string) => `registry.${hash}`;

type Manifest = Map<ArtifactRef, string>;

interface GatewayStateDoc extends StoredDoc {
  docType: "gatewayState";
  revisionCount: number;
  /** The newest revision made (pending, published, failed or superseded). */
  latest?: { revisionId: string; number: number };
  /** The revision the gateway was last brought to, completely. */
  published?: { revisionId: string; number: number; at: string };
  /** After a publish stopped part-way: what the gateway holds beyond `published` (ref → hash; null = removed). */
  overrides: Record<ArtifactRef, string | null>;
  lease?: { revisionId: string; until: string };
}

interface RevisionDoc extends StoredDoc, Omit<Revision, "diff" | "id"> {
  docType: "revision";
  parts: number;
  /** Chunks of the registry snapshot's entries (absent on revisions made before snapshots were kept). */
  registryParts?: number;
}

interface RegistryPartDoc extends StoredDoc {
  docType: "registryPart";
  part: RegistryPart;
}

interface RegistryEntriesDoc extends StoredDoc {
  docType: "revisionRegistry";
  entries: [string, string][];
}

/** What the publisher needs of the compiler: the registry now, and a snapshot compiled with projects isolated. */
export interface PublishCompiler {
  registry(tenantId: string): Promise<RegistrySnapshot>;
  compileRegistry(reg: RegistrySnapshot, published?: RegistrySnapshot): Promise<CompiledTenant>;
}

interface RevisionPartDoc extends StoredDoc {
  docType: "revisionPart";
  entries: [ArtifactRef, string][];
}

interface ArtifactDoc extends StoredDoc {
  docType: "gatewayArtifact";
  artifact: GatewayArtifact;
}

interface DriftDoc extends StoredDoc, Omit<DriftReport, "checkedAt"> {
  docType: "driftReport";
  checkedAt: string;
  fingerprint: string;
}

/** What a revision is made with. */
interface ProposeMeta {
  kind: "publish" | "rollback";
  origin: "person" | "system";
  rollbackOf?: string;
  reason?: string;
  /** The registry the artifacts were compiled from (kept for the system's publishes after this one). */
  registry?: RegistrySnapshot;
  isolated?: IsolatedProject[];
  staged?: { tenant: boolean; projects: string[] };
  /** For a system publish: the revision whose registry it compiled. */
  registryFrom?: string;
}

/** A system publish's base is no longer the newest revision (a person published meanwhile): compile again. */
const BASE_MOVED = Symbol("baseMoved");

/** What an apply attempt came to; "busy": another revision holds the gateway, try again shortly. */
export type ApplyResult = "published" | "superseded" | "failed" | "busy";

/** Thrown by apply when the gateway refused part of a publish: the activity fails and is retried. */
export class GatewayUnavailableError extends Error {
  override name = "GatewayUnavailableError";
}


function diffManifests(before: Manifest, after: Manifest): { changes: ArtifactChange[]; counts: Revision["counts"] } {
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

const sameManifest = (a: Manifest, b: Manifest) => a.size === b.size && [...a].every(([ref, h]) => b.get(ref) === h);

/**
 * Desired-state publishing of a tenant's gateway artifacts, with revisions, rollback and drift checks.
 *
 * A publish compiles the tenant, stores the artifacts content-addressed (`artifact.<sha256>`, written
 * once, shared by every revision that holds them) and a revision whose manifest (ref → hash) is split
 * into parts. The revision is then applied by a durable orchestration (functions/workflows/publish.ts)
 * calling `apply` with retries: one revision at a time per tenant (a lease on the gateway state), the
 * newest wins (older pending revisions are superseded), and a publish that stops part-way records what
 * the gateway now holds so the retry resumes instead of starting over. See docs/adr/006-publishing.md.
 */
export class PublishService {
  private readonly manifests = new Map<string, Manifest>();

  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly compiler: PublishCompiler,
    /** The tenant's gateway publisher (its instance; its gateway key reserved there: tenant-gateways.ts). */
    private readonly publisher: (tenantId: string) => Promise<GatewayPublisher>,
    /** Reserves the tenant's gateway key on its instance; a collision is refused before anything is stored. */
    private readonly reserveGateway: (tenantId: string) => Promise<void> = async () => undefined,
  ) {}

  // ------------------------------------------------------------------------------------------
  // API

  /** A person's publish: everything the registry says now (what GET /gateway/diff shows). */
  async publish(ctx: RequestContext, input: unknown): Promise<PublishResult> {
    this.require(ctx, ["TenantAdmin"], "publishing requires TenantAdmin");
    const spec = parseOrThrow(PublishSpec, input ?? {}, "body");
    const tenantId = ctx.principal.tenantId;
    const state = await this.state(tenantId);
    const compiled = await this.compiler.compileRegistry(await this.compiler.registry(tenantId), await this.registryOf(tenantId, state.published?.revisionId));
    const result = await this.propose(ctx, compiled.result.artifacts, { kind: "publish", origin: "person", registry: compiled.registry, isolated: compiled.isolated, ...(spec.reason ? { reason: spec.reason } : {}) });
    return compiled.isolated.length ? { ...result, isolated: compiled.isolated } : result;
  }

  /**
   * For automation (an exemption's activation, expiry or revocation; a key that needs its product; a
   * share): a publish on behalf of the system. It compiles the registry the gateway holds (or is
   * about to: a pending revision's) with the current keys and exemptions — so it ships what its own
   * change needs and never a registry change a person has not published; those stay staged and the
   * revision says which (`staged`). Nothing happens for a tenant that never published (its first
   * publish is a person's decision) — `needsPublish` says so.
   */
  async requestPublish(tenantId: string, cause: { by: string; reason: string; correlationId: string }): Promise<PublishResult & { needsPublish?: true }> {
    const ctx: RequestContext = { principal: { tenantId, userId: cause.by, roles: new Set(["TenantAdmin"]) }, correlationId: cause.correlationId };
    for (let attempt = 0; ; attempt++) {
      const state = await this.state(tenantId);
      const baseId = await this.systemBase(tenantId, state);
      const base = await this.registryOf(tenantId, baseId);
      if (!base) return { changed: false, needsPublish: true };
      const compiled = await this.compiler.compileRegistry(base, base);
      const staged = stagedBetween(base, await this.compiler.registry(tenantId));
      const result = await this.propose(ctx, compiled.result.artifacts, {
        kind: "publish",
        origin: "system",
        reason: cause.reason,
        registry: compiled.registry,
        isolated: compiled.isolated,
        staged,
        // A person's publish made meanwhile is the new base: compiling from the old one would undo it.
        baseIs: state.latest?.revisionId,
        registryFrom: baseId!,
      });
      if (result !== BASE_MOVED) return result;
      if (attempt >= 8) throw new AppError({ kind: "unavailable", detail: "the gateway's revisions kept changing; the system publish will be retried" });
    }
  }

  /** Whether the gateway holds an artifact, as far as the last publish (and any partial one since) says. */
  async holds(tenantId: string, ref: ArtifactRef): Promise<boolean> {
    return (await this.gatewayManifest(tenantId, await this.state(tenantId))).has(ref);
  }

  /** A virtual key needs its API or product: the system publishes what the keys need (see requestPublish). */
  async ensurePublished(tenantId: string, cause: { by: string; reason: string; correlationId: string }): Promise<PublishResult & { needsPublish?: true }> {
    return this.requestPublish(tenantId, cause);
  }

  async rollback(ctx: RequestContext, revisionId: string, input: unknown): Promise<PublishResult> {
    this.require(ctx, ["TenantAdmin"], "rolling back requires TenantAdmin");
    const spec = parseOrThrow(PublishSpec, input ?? {}, "body");
    const target = await this.loadRevision(ctx.principal.tenantId, revisionId);
    if (target.status !== "published") {
      fail({ kind: "conflict", detail: `revision ${target.number} was never published (${target.status}); only a published revision can be restored`, reason: "revision_not_published" });
    }
    const manifest = await this.manifest(ctx.principal.tenantId, target);
    const artifacts = await this.artifacts(ctx.principal.tenantId, manifest);
    const registry = await this.registryOf(ctx.principal.tenantId, target.id);
    return this.propose(ctx, artifacts, { kind: "rollback", origin: "person", rollbackOf: target.id, reason: spec.reason ?? `rollback to revision ${target.number}`, ...(registry ? { registry } : {}) });
  }

  async get(ctx: RequestContext, revisionId: string, withDiff: boolean): Promise<Revision> {
    this.require(ctx, READERS, "reading revisions requires a tenant role");
    const tenantId = ctx.principal.tenantId;
    const doc = await this.loadRevision(tenantId, revisionId);
    const revision = toRevision(doc);
    if (!withDiff) return revision;
    const after = await this.manifest(tenantId, doc);
    const before = doc.basedOn ? await this.manifest(tenantId, await this.loadRevision(tenantId, doc.basedOn)) : new Map<ArtifactRef, string>();
    return { ...revision, diff: await this.renderDiff(tenantId, before, after, diffManifests(before, after).changes) };
  }

  async list(ctx: RequestContext, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<Revision>> {
    this.require(ctx, READERS, "reading revisions requires a tenant role");
    const result = await listPage<RevisionDoc>(this.store, this.partition(ctx.principal.tenantId), { docType: "revision", orderBy: { field: "number", direction: "DESC" } }, page);
    return { ...result, items: result.items.map(toRevision) };
  }

  /** What a publish would change now: the gateway's state (as last published) → the compiled registry. */
  async diff(ctx: RequestContext): Promise<GatewayDiff> {
    this.require(ctx, READERS, "reading the gateway diff requires a tenant role");
    const tenantId = ctx.principal.tenantId;
    const state = await this.state(tenantId);
    const compiled = (await this.compiler.compileRegistry(await this.compiler.registry(tenantId), await this.registryOf(tenantId, state.published?.revisionId))).result;
    const before = await this.heldManifest(tenantId, state);
    const after = manifestOf(compiled.artifacts);
    const { changes, counts } = diffManifests(before, after);
    const desired = new Map(compiled.artifacts.map((a) => [artifactRef(a), a]));
    return {
      ...(state.published ? { basedOn: state.published.revisionId } : {}),
      counts,
      changes: changes.slice(0, MAX_LISTED_CHANGES),
      diff: await this.renderDiff(tenantId, before, after, changes, desired),
    };
  }

  async driftReport(ctx: RequestContext): Promise<DriftReport> {
    this.require(ctx, READERS, "reading the drift report requires a tenant role");
    const doc = await this.store.read<DriftDoc>(this.partition(ctx.principal.tenantId), DRIFT_ID);
    if (!doc) {
      const state = await this.state(ctx.principal.tenantId);
      return state.published
        ? { status: "inSync", revisionId: state.published.revisionId, revisionNumber: state.published.number, checkedArtifacts: 0, items: [] }
        : { status: "neverPublished", checkedArtifacts: 0, items: [] };
    }
    return toDriftReport(doc);
  }

  async checkDriftNow(ctx: RequestContext): Promise<DriftReport> {
    this.require(ctx, ["TenantAdmin"], "checking drift requires TenantAdmin");
    return this.checkDrift(ctx.principal.tenantId, ctx.correlationId);
  }

  // ------------------------------------------------------------------------------------------
  // Workflow steps (activities) and jobs

  /**
   * Brings the gateway to one revision. Idempotent: a revision already published (or superseded, or
   * failed) is not applied again. Throws GatewayUnavailableError when the gateway refused a call: the
   * activity's retry resumes from what the gateway holds then.
   */
  async apply(tenantId: string, revisionId: string, correlationId: string): Promise<ApplyResult> {
    const partition = this.partition(tenantId);
    const revision = await this.loadRevision(tenantId, revisionId);
    if (revision.status !== "pending") return revision.status;
    let state = await this.stateDoc(tenantId);
    const ctx = this.systemContext(tenantId, correlationId);
    if (state.latest && state.latest.number > revision.number) {
      await this.transition(ctx, revision, { status: "superseded" }, "aigov.gateway.revision.superseded.v1");
      return "superseded";
    }
    const now = this.clock.now();
    if (state.lease && state.lease.revisionId !== revisionId && Date.parse(state.lease.until) > now.getTime()) return "busy";
    const leased: GatewayStateDoc = { ...state, lease: { revisionId, until: new Date(now.getTime() + LEASE_MS).toISOString() } };
    const etag = await this.replaceState(partition, leased, state._etag);
    if (!etag) return "busy";
    state = { ...leased, _etag: etag };

    const previous = await this.heldManifest(tenantId, state);
    const target = await this.manifest(tenantId, revision);
    const desired = await this.artifacts(tenantId, target);
    const publisher = await this.publisher(tenantId);
    let outcome;
    try {
      outcome = await publisher.publish(desired, Object.fromEntries(previous));
    } catch (err) {
      // Record how far it got (the publisher says what the gateway now holds), release, and let the retry resume.
      const partial = (err as { partial?: { hashes: Record<ArtifactRef, string> } }).partial;
      const base = await this.publishedManifest(tenantId, state);
      await this.updateState(tenantId, revisionId, (fresh) => {
        const { lease: _l, ...rest } = fresh;
        return { ...rest, overrides: partial ? overridesOf(base, partial.hashes) : fresh.overrides };
      });
      throw new GatewayUnavailableError(`publishing revision ${revision.number} stopped: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const at = now.toISOString();
    const after: RevisionDoc = {
      ...unversioned(revision),
      status: "published",
      publishedAt: at,
      outcome: { sent: outcome.sent.length, unchanged: outcome.unchanged.length, deleted: outcome.deleted.length },
    };
    // A publish proposed meanwhile rewrote the state (its counter and newest revision): build the
    // final state from a fresh read each time, keeping those, as long as the lease is still ours.
    for (let attempt = 0; ; attempt++) {
      const fresh = await this.stateDoc(tenantId);
      if (fresh.lease && fresh.lease.revisionId !== revisionId) throw new GatewayUnavailableError(`revision ${revision.number} lost its lease while publishing`);
      const { lease: _l, ...released } = fresh;
      const nextState: GatewayStateDoc = { ...released, overrides: {}, published: { revisionId, number: revision.number, at } };
      try {
        await this.changes.commit({
          partition,
          ctx,
          action: "gateway.publish",
          resource: revisionPath(revisionId),
          before: { status: revision.status },
          after: { status: "published", number: revision.number, outcome: after.outcome },
          ops: [
            { kind: "replace", doc: after, ifMatch: revision._etag },
            fresh._etag ? { kind: "replace", doc: unversioned(nextState), ifMatch: fresh._etag } : { kind: "create", doc: unversioned(nextState) },
          ],
          event: {
            type: "aigov.gateway.published.v1",
            subject: subjectOf(tenantId, revisionPath(revisionId)),
            data: { revisionId, number: revision.number, kind: revision.kind, counts: revision.counts, outcome: after.outcome },
          },
          onFailure: (index) => ({ kind: "conflict", detail: index === 1 ? "state" : "revision", reason: index === 1 ? "gateway_state_raced" : "changed_meanwhile" }),
        });
        return "published";
      } catch (err) {
        const raced = err instanceof AppError && err.error.kind === "conflict" && err.error.reason === "gateway_state_raced";
        if (!raced || attempt >= 8) throw err;
      }
    }
  }

  /** A conditional update of the gateway state by this revision's applier, retried on a race with a proposal. */
  private async updateState(tenantId: string, revisionId: string, change: (fresh: GatewayStateDoc) => GatewayStateDoc): Promise<void> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const fresh = await this.stateDoc(tenantId);
      if (fresh.lease && fresh.lease.revisionId !== revisionId) return;
      if (await this.replaceState(this.partition(tenantId), change(fresh), fresh._etag)) return;
    }
  }

  /** The retries ran out: the revision is failed (the gateway keeps what it holds; drift checks compare with the last published revision). */
  async markFailed(tenantId: string, revisionId: string, error: string, correlationId: string): Promise<void> {
    const revision = await this.loadRevision(tenantId, revisionId);
    if (revision.status !== "pending") return;
    await this.transition(this.systemContext(tenantId, correlationId), revision, { status: "failed", error: error.slice(0, 2000) }, "aigov.gateway.publish.failed.v1");
  }

  /**
   * Reads back what the gateway holds for every artifact of the last published revision and records
   * the differences. The report is rewritten on every check; a change in the finding (drift appears,
   * changes, or is resolved) is also audited and announced as an event.
   */
  async checkDrift(tenantId: string, correlationId: string): Promise<DriftReport> {
    const partition = this.partition(tenantId);
    const state = await this.state(tenantId);
    const checkedAt = this.clock.now().toISOString();
    let report: Omit<DriftReport, "checkedAt">;
    if (!state.published) {
      report = { status: "neverPublished", checkedArtifacts: 0, items: [] };
    } else {
      const expected = await this.gatewayManifest(tenantId, state);
      const refs = [...expected.keys()].sort();
      const [held, artifacts] = await Promise.all([(await this.publisher(tenantId)).read(refs), this.artifactsByRef(tenantId, expected)]);
      const items: DriftItem[] = [];
      for (const ref of refs) {
        const want = artifacts.get(ref)!;
        const back = held[ref];
        // Revisions never hold subscriptions (keys are published on their own), so a read-back is an artifact.
        const got = back && back.kind !== "subscription" ? back : undefined;
        if (!got) items.push({ ref, state: "missing", diff: unifiedDiff(ref, want, undefined) });
        else if (comparableHash(got) !== comparableHash(want)) items.push({ ref, state: "modified", diff: unifiedDiff(ref, want, got) });
      }
      report = {
        status: items.length > 0 ? "drifted" : "inSync",
        revisionId: state.published.revisionId,
        revisionNumber: state.published.number,
        checkedArtifacts: refs.length,
        items,
      };
    }
    const fingerprint = createHash("sha256").update(JSON.stringify([report.status, report.revisionId ?? "", report.items])).digest("hex");
    const current = await this.store.read<DriftDoc>(partition, DRIFT_ID);
    const doc: DriftDoc = { id: DRIFT_ID, ...partition, docType: "driftReport", ...report, checkedAt, fingerprint };
    if (current && current.fingerprint === fingerprint) {
      // Same finding: only the time of the check moves on (housekeeping, not a change to audit).
      await this.store.batch(partition, [{ kind: "replace", doc, ifMatch: current._etag }]);
    } else if (!current && report.status !== "drifted") {
      await this.store.batch(partition, [{ kind: "create", doc }]);
    } else {
      const event = report.status === "drifted" ? "aigov.gateway.drift.detected.v1" : "aigov.gateway.drift.resolved.v1";
      await this.changes.commit({
        partition,
        ctx: this.systemContext(tenantId, correlationId),
        action: report.status === "drifted" ? "gateway.drift.detect" : "gateway.drift.resolve",
        resource: "/gateway/drift",
        ...(current ? { before: { status: current.status, items: current.items.map((i) => `${i.state} ${i.ref}`) } } : {}),
        after: { status: report.status, items: report.items.map((i) => `${i.state} ${i.ref}`) },
        ops: [current ? { kind: "replace", doc, ifMatch: current._etag } : { kind: "create", doc }],
        event: {
          type: event,
          subject: subjectOf(tenantId, "/gateway/drift"),
          data: { status: report.status, revisionId: report.revisionId, items: report.items.map(({ ref, state: s }) => ({ ref, state: s })) },
        },
        onFailure: () => ({ kind: "conflict", detail: "another drift check wrote the report at the same time", reason: "changed_meanwhile" }),
      });
    }
    return { ...report, checkedAt };
  }

  /** Tenants that have published at least once (the drift job's work list). Background jobs only. */
  async *publishedTenants(): AsyncGenerator<string> {
    for await (const d of everyDoc<GatewayStateDoc>(this.store, "all", { docType: "gatewayState" })) if (d.published) yield d.tenantId;
  }

  /** Pending revisions everywhere (the sweep starts an orchestration for any that lacks a live one). */
  async *pendingRevisions(): AsyncGenerator<{ tenantId: string; revisionId: string }> {
    for await (const d of everyDoc<RevisionDoc>(this.store, "all", { docType: "revision", filters: [{ field: "status", op: "=", value: "pending" }] })) {
      yield { tenantId: d.tenantId, revisionId: d.id };
    }
  }

  /** Whether a revision still waits to be applied (the sweep asks before starting a finished driver again). */
  async isPending(tenantId: string, revisionId: string): Promise<boolean> {
    return (await this.loadRevision(tenantId, revisionId)).status === "pending";
  }

  // ------------------------------------------------------------------------------------------
  // Internals

  /**
   * Makes a pending revision for `artifacts` unless they are exactly what the gateway will hold
   * anyway (the pending revision if any, else the published state): then nothing is made or sent.
   */
  private async propose(ctx: RequestContext, artifacts: GatewayArtifact[], meta: ProposeMeta & { baseIs: string | undefined }): Promise<PublishResult | typeof BASE_MOVED>;
  private async propose(ctx: RequestContext, artifacts: GatewayArtifact[], meta: ProposeMeta): Promise<PublishResult>;
  private async propose(ctx: RequestContext, artifacts: GatewayArtifact[], meta: ProposeMeta & { baseIs?: string | undefined }): Promise<PublishResult | typeof BASE_MOVED> {
    const tenantId = ctx.principal.tenantId;
    const partition = this.partition(tenantId);
    const manifest = manifestOf(artifacts);
    await this.reserveGateway(tenantId);
    for (;;) {
      const state = await this.stateDoc(tenantId);
      if ("baseIs" in meta && state.latest?.revisionId !== meta.baseIs) return BASE_MOVED;
      const gateway = await this.heldManifest(tenantId, state);
      const latest = state.latest ? await this.loadRevision(tenantId, state.latest.revisionId) : undefined;
      const target = latest?.status === "pending" ? await this.manifest(tenantId, latest) : gateway;
      // A system publish that changes nothing leaves the state as it is (its registry is the base's, or a
      // pending revision's); a person's publish that changes no artifact still records nothing either.
      if (sameManifest(target, manifest) && (latest?.status === "pending" || Object.keys(state.overrides).length === 0)) {
        const current = latest?.status === "pending" ? latest : state.published ? await this.loadRevision(tenantId, state.published.revisionId) : undefined;
        return { changed: false, ...(current ? { revision: toRevision(current) } : {}) };
      }

      // Artifacts first (content-addressed, idempotent): a revision never points at a missing artifact.
      const byHash = new Map<string, GatewayArtifact>();
      for (const a of artifacts) {
        const h = manifest.get(artifactRef(a))!;
        if (gateway.get(artifactRef(a)) !== h) byHash.set(h, a);
      }
      await mapLimit([...byHash], READ_CONCURRENCY, ([hash, artifact]) =>
        this.store.batch(partition, [{ kind: "upsert", doc: { id: artifactDocId(hash), ...partition, docType: "gatewayArtifact", artifact } satisfies ArtifactDoc }]),
      );
      const id = newId("rev");
      const entries = [...manifest].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const parts: RevisionPartDoc[] = [];
      for (let i = 0; i * PART_SIZE < entries.length || i === 0; i++) {
        parts.push({ id: partId(id, i), ...partition, docType: "revisionPart", entries: entries.slice(i * PART_SIZE, (i + 1) * PART_SIZE) });
      }
      await mapLimit(parts, READ_CONCURRENCY, (p) => this.store.batch(partition, [{ kind: "create", doc: p }]));
      const registryParts = meta.registry ? await this.storeRegistry(tenantId, id, meta.registry) : undefined;

      const { changes, counts } = diffManifests(gateway, manifest);
      const number = state.revisionCount + 1;
      const doc: RevisionDoc = {
        id,
        ...partition,
        docType: "revision",
        number,
        kind: meta.kind,
        ...(meta.rollbackOf ? { rollbackOf: meta.rollbackOf } : {}),
        ...(state.published ? { basedOn: state.published.revisionId } : {}),
        ...(meta.reason ? { reason: meta.reason } : {}),
        origin: meta.origin,
        ...(meta.registryFrom ? { registryFrom: meta.registryFrom } : {}),
        ...(meta.isolated?.length ? { isolated: meta.isolated } : {}),
        ...(meta.staged && (meta.staged.tenant || meta.staged.projects.length) ? { staged: meta.staged } : {}),
        status: "pending",
        createdAt: this.clock.now().toISOString(),
        createdBy: ctx.principal.userId,
        artifactCount: manifest.size,
        counts,
        changes: changes.slice(0, MAX_LISTED_CHANGES),
        parts: parts.length,
        ...(registryParts !== undefined ? { registryParts } : {}),
      };
      const nextState: GatewayStateDoc = { ...unversioned(state), revisionCount: number, latest: { revisionId: id, number } };
      const stateOp: BatchOp = state._etag ? { kind: "replace", doc: nextState, ifMatch: state._etag } : { kind: "create", doc: nextState };
      let raced = false;
      await this.changes
        .commit({
          partition,
          ctx,
          action: meta.kind === "rollback" ? "gateway.rollback" : "gateway.revision.create",
          resource: revisionPath(id),
          after: { number, kind: meta.kind, origin: meta.origin, rollbackOf: meta.rollbackOf, reason: meta.reason, counts, isolated: doc.isolated, staged: doc.staged },
          ops: [{ kind: "create", doc }, stateOp],
          event: {
            type: meta.kind === "rollback" ? "aigov.gateway.rollback.requested.v1" : "aigov.gateway.publish.requested.v1",
            subject: subjectOf(tenantId, revisionPath(id)),
            data: { revisionId: id, number, kind: meta.kind, origin: meta.origin, rollbackOf: meta.rollbackOf, counts, isolated: doc.isolated?.map(({ projectId, name, outcome }) => ({ projectId, name, outcome })), staged: doc.staged },
          },
          onFailure: (index) => (index === 1 ? { kind: "conflict", detail: "raced", reason: "revision_number_taken" } : undefined),
        })
        .catch((err: unknown) => {
          // Another publish took the next number first: recompute against the new state.
          if (err instanceof AppError && err.error.kind === "conflict" && err.error.reason === "revision_number_taken") raced = true;
          else throw err;
        });
      if (raced) {
        await Promise.all(parts.map((p) => this.store.delete(partition, p.id)));
        await Promise.all(Array.from({ length: registryParts ?? 0 }, (_, i) => this.store.delete(partition, registryPartId(id, i))));
        continue;
      }
      return { changed: true, revision: toRevision(doc) };
    }
  }

  /** Stores a revision's registry snapshot: content-addressed parts, and the entries in chunks. */
  private async storeRegistry(tenantId: string, revisionId: string, registry: RegistrySnapshot): Promise<number> {
    const partition = this.partition(tenantId);
    const { entries, parts } = snapshotParts(registry);
    await mapLimit([...parts], READ_CONCURRENCY, ([hash, part]) =>
      this.store.batch(partition, [{ kind: "upsert", doc: { id: registryDocId(hash), ...partition, docType: "registryPart", part } satisfies RegistryPartDoc }]),
    );
    const chunks: RegistryEntriesDoc[] = [];
    for (let i = 0; i * PART_SIZE < entries.length || i === 0; i++) {
      chunks.push({ id: registryPartId(revisionId, i), ...partition, docType: "revisionRegistry", entries: entries.slice(i * PART_SIZE, (i + 1) * PART_SIZE) });
    }
    await mapLimit(chunks, READ_CONCURRENCY, (c) => this.store.batch(partition, [{ kind: "create", doc: c }]));
    return chunks.length;
  }

  /** The registry snapshot a revision was compiled from; undefined without a revision, or for one made before snapshots were kept. */
  private async registryOf(tenantId: string, revisionId: string | undefined): Promise<RegistrySnapshot | undefined> {
    if (!revisionId) return undefined;
    const revision = await this.loadRevision(tenantId, revisionId);
    if (revision.registryParts === undefined) return undefined;
    const partition = this.partition(tenantId);
    const chunks = await mapLimit(Array.from({ length: revision.registryParts }, (_, i) => i), READ_CONCURRENCY, (i) => this.store.read<RegistryEntriesDoc>(partition, registryPartId(revisionId, i)));
    const entries = chunks.flatMap((c) => {
      if (!c) throw new Error(`a registry part of revision ${revisionId} is missing`);
      return c.entries;
    });
    const hashes = [...new Set(entries.map(([, h]) => h))];
    const docs = await mapLimit(hashes, READ_CONCURRENCY, (h) => this.store.read<RegistryPartDoc>(partition, registryDocId(h)));
    const parts = new Map(docs.flatMap((d, i) => (d ? [[hashes[i]!, d.part] as const] : [])));
    return snapshotFrom(tenantId, entries, parts);
  }

  /**
   * The revision a system publish builds on: a pending revision (a person's publish on its way, which
   * the system's must not undo), else the published one.
   */
  private async systemBase(tenantId: string, state: GatewayStateDoc): Promise<string | undefined> {
    if (state.latest && state.latest.revisionId !== state.published?.revisionId) {
      // Read after the state: it may have been published since (the state read is then the older one).
      const latest = await this.loadRevision(tenantId, state.latest.revisionId);
      if (latest.status === "pending" || latest.status === "published") return latest.id;
    }
    return state.published?.revisionId;
  }

  private async transition(ctx: RequestContext, revision: Versioned<RevisionDoc>, patch: Partial<RevisionDoc>, eventType: string): Promise<void> {
    const after: RevisionDoc = { ...unversioned(revision), ...patch };
    await this.changes.commit({
      partition: this.partition(ctx.principal.tenantId),
      ctx,
      action: `gateway.revision.${patch.status ?? "update"}`,
      resource: revisionPath(revision.id),
      before: { status: revision.status },
      after: { status: after.status, ...(after.error ? { error: after.error } : {}) },
      ops: [{ kind: "replace", doc: after, ifMatch: revision._etag }],
      event: { type: eventType, subject: subjectOf(ctx.principal.tenantId, revisionPath(revision.id)), data: { revisionId: revision.id, number: revision.number, status: after.status, error: after.error } },
      onFailure: () => ({ kind: "conflict", detail: "the revision changed meanwhile", reason: "changed_meanwhile" }),
    });
  }

  private async renderDiff(tenantId: string, before: Manifest, after: Manifest, changes: ArtifactChange[], known?: Map<ArtifactRef, GatewayArtifact>): Promise<string> {
    let out = "";
    for (const c of changes) {
      if (out.length > MAX_DIFF_CHARS) return `${out}\n… diff truncated at ${MAX_DIFF_CHARS} characters (${changes.length} artifacts changed)\n`;
      const load = async (m: Manifest) => {
        const h = m.get(c.ref);
        if (h === undefined) return undefined;
        const k = known?.get(c.ref);
        if (k && artifactHash(k) === h) return k;
        return (await this.store.read<ArtifactDoc>(this.partition(tenantId), artifactDocId(h)))?.artifact;
      };
      out += unifiedDiff(c.ref, await load(before), await load(after));
    }
    return out;
  }

  private async artifacts(tenantId: string, manifest: Manifest): Promise<GatewayArtifact[]> {
    return [...(await this.artifactsByRef(tenantId, manifest)).values()];
  }

  private async artifactsByRef(tenantId: string, manifest: Manifest): Promise<Map<ArtifactRef, GatewayArtifact>> {
    const hashes = [...new Set(manifest.values())];
    const docs = await mapLimit(hashes, READ_CONCURRENCY, (h) => this.store.read<ArtifactDoc>(this.partition(tenantId), artifactDocId(h)));
    const byHash = new Map<string, GatewayArtifact>();
    docs.forEach((d, i) => {
      if (!d) throw new Error(`gateway artifact ${hashes[i]} is missing from the store`);
      byHash.set(hashes[i]!, d.artifact);
    });
    return new Map([...manifest].map(([ref, h]) => [ref, byHash.get(h)!]));
  }

  private async manifest(tenantId: string, revision: RevisionDoc): Promise<Manifest> {
    // A revision's manifest never changes once written: keep the last few (every key sync asks
    // whether the gateway holds its product, which is a lookup in the published manifest).
    const key = `${tenantId}/${revision.id}`;
    const hit = this.manifests.get(key);
    if (hit) return new Map(hit);
    const parts = await mapLimit(
      Array.from({ length: revision.parts }, (_, i) => i),
      READ_CONCURRENCY,
      (i) => this.store.read<RevisionPartDoc>(this.partition(tenantId), partId(revision.id, i)),
    );
    const out: Manifest = new Map();
    for (const p of parts) {
      if (!p) throw new Error(`a manifest part of revision ${revision.id} is missing`);
      for (const [ref, h] of p.entries) out.set(ref, h);
    }
    this.manifests.set(key, out);
    if (this.manifests.size > MANIFEST_CACHE) this.manifests.delete(this.manifests.keys().next().value!);
    return new Map(out);
  }

  private async publishedManifest(tenantId: string, state: GatewayStateDoc): Promise<Manifest> {
    return state.published ? this.manifest(tenantId, await this.loadRevision(tenantId, state.published.revisionId)) : new Map();
  }

  /** What the gateway holds (as far as this control plane knows): the published revision plus any partial publish since. */
  private async gatewayManifest(tenantId: string, state: GatewayStateDoc): Promise<Manifest> {
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
  private async heldManifest(tenantId: string, state: GatewayStateDoc): Promise<Manifest> {
    const m = await this.gatewayManifest(tenantId, state);
    const drift = await this.store.read<DriftDoc>(this.partition(tenantId), DRIFT_ID);
    if (drift?.status === "drifted" && drift.revisionId === state.published?.revisionId) {
      for (const item of drift.items) if (m.has(item.ref)) m.set(item.ref, `drifted:${drift.fingerprint}`);
    }
    return m;
  }

  private async loadRevision(tenantId: string, id: string): Promise<Versioned<RevisionDoc>> {
    const doc = /^rev_[0-9a-z]{20}$/.test(id) ? await this.store.read<RevisionDoc>(this.partition(tenantId), id) : undefined;
    if (!doc || doc.docType !== "revision") return notFound(revisionPath(id));
    return doc;
  }

  private async stateDoc(tenantId: string): Promise<GatewayStateDoc & { _etag?: string }> {
    const doc = await this.store.read<GatewayStateDoc>(this.partition(tenantId), STATE_ID);
    return doc ?? { id: STATE_ID, ...this.partition(tenantId), docType: "gatewayState", revisionCount: 0, overrides: {} };
  }

  private state(tenantId: string): Promise<GatewayStateDoc> {
    return this.stateDoc(tenantId);
  }

  /** A conditional replace of the gateway state outside any audited change (leases, progress); undefined when it lost a race. */
  private async replaceState(partition: Partition, doc: GatewayStateDoc, ifMatch: string | undefined): Promise<string | undefined> {
    const clean = unversioned(doc);
    const result = await this.store.batch(partition, [ifMatch ? { kind: "replace", doc: clean, ifMatch } : { kind: "create", doc: clean }]);
    return result.ok ? result.etags[0] : undefined;
  }

  private partition(tenantId: string): Partition {
    return { tenantId, scopeId: TENANT_SCOPE };
  }

  private systemContext(tenantId: string, correlationId: string): RequestContext {
    return { principal: { tenantId, userId: "system:publisher", roles: new Set() }, correlationId };
  }

  private require(ctx: RequestContext, roles: Role[], detail: string): void {
    if (!roles.some((r) => ctx.principal.roles.has(r))) fail({ kind: "forbidden", detail });
  }
}

function manifestOf(artifacts: GatewayArtifact[]): Manifest {
  return new Map(artifacts.map((a) => [artifactRef(a), artifactHash(a)]));
}

function overridesOf(base: Manifest, held: Record<ArtifactRef, string>): Record<ArtifactRef, string | null> {
  const out: Record<ArtifactRef, string | null> = {};
  for (const [ref, h] of Object.entries(held)) if (base.get(ref) !== h) out[ref] = h;
  for (const ref of base.keys()) if (!(ref in held)) out[ref] = null;
  return out;
}


function toRevision(doc: RevisionDoc): Revision {
  return {
    id: doc.id,
    number: doc.number,
    kind: doc.kind,
    ...(doc.rollbackOf ? { rollbackOf: doc.rollbackOf } : {}),
    ...(doc.basedOn ? { basedOn: doc.basedOn } : {}),
    ...(doc.reason ? { reason: doc.reason } : {}),
    origin: doc.origin ?? "person",
    ...(doc.registryFrom ? { registryFrom: doc.registryFrom } : {}),
    ...(doc.isolated ? { isolated: doc.isolated } : {}),
    ...(doc.staged ? { staged: doc.staged } : {}),
    status: doc.status,
    createdAt: doc.createdAt,
    createdBy: doc.createdBy,
    ...(doc.publishedAt ? { publishedAt: doc.publishedAt } : {}),
    ...(doc.error ? { error: doc.error } : {}),
    artifactCount: doc.artifactCount,
    counts: doc.counts,
    changes: doc.changes,
    ...(doc.outcome ? { outcome: doc.outcome } : {}),
  };
}

function toDriftReport(doc: DriftDoc): DriftReport {
  return {
    status: doc.status,
    ...(doc.revisionId ? { revisionId: doc.revisionId } : {}),
    ...(doc.revisionNumber !== undefined ? { revisionNumber: doc.revisionNumber } : {}),
    checkedAt: doc.checkedAt,
    checkedArtifacts: doc.checkedArtifacts,
    items: doc.items,
  };
}
