import type { CompiledTenant, IsolatedProject } from "../policy/preview.js";
import { restorable, servicesUnfit, stagedBetween, type RegistrySnapshot } from "./registry.js";
import type { KeyOfProject } from "../policy/tenant-settings.js";
import type { Clock } from "../../ports/clock.js";
import { artifactHash, artifactRef, type ArtifactRef, type GatewayArtifact } from "../../ports/gateway.js";
import { unversioned, type BatchOp, type Store } from "../../ports/store.js";
import type { ChangeWriter } from "../changes.js";
import { newId, type Page, type RequestContext, type Role } from "../common.js";
import { AppError, fail } from "../errors.js";
import type { Driven, DriveRequest, DriveRetry } from "../kernel/drive.js";
import { ANY_TENANT_ROLE, holdsAny, TENANT_ADMINS } from "../kernel/roles.js";
import { parseOrThrow } from "../validation.js";
import { GatewayApplier, publishDrive, type PublishInput, type TenantKeyPlacement, type TenantPlacement } from "./applier.js";
import { partitionOf, PublishingDocuments, revisionPath, subjectOf, toRevision, type GatewayStateDoc, type Manifest, type RevisionDoc } from "./documents.js";
import { DriftChecker } from "./drift.js";
import { diffManifests, ManifestStore, manifestOf, sameManifest } from "./manifest-store.js";
import { RegistryStore } from "./registry-store.js";
import { unifiedDiff } from "./render.js";
import { MAX_LISTED_CHANGES, PublishSpec, type ArtifactChange, type DriftReport, type GatewayDiff, type PublishResult, type Revision } from "./schema.js";

export { GatewayUnavailableError, type ApplyResult } from "./applier.js";

/** Unified diffs returned by the API are cut at this size (the counts and change list stay complete). */
const MAX_DIFF_CHARS = 1_000_000;

/** What the publisher needs of the compiler: the registry now, and a snapshot compiled with projects isolated. */
export interface PublishCompiler {
  registry(tenantId: string): Promise<RegistrySnapshot>;
  compileRegistry(reg: RegistrySnapshot, published?: RegistrySnapshot): Promise<CompiledTenant>;
}

/** What the publish service is built from. */
export interface PublishKit {
  store: Store;
  changes: ChangeWriter;
  clock: Clock;
  compiler: PublishCompiler;
  gateways: TenantPlacement & {
    /** Reserves the tenant's gateway key on its instance; a collision is refused before anything is stored. */
    reserve(tenantId: string): Promise<void>;
  };
  /** The tenant's keys, for a move between instances (their subscriptions are not in a publish). */
  keys?: TenantKeyPlacement;
  /**
   * The key documents of the given projects (revoked ones too): a rollback holds the keys whose tier screens
   * prompts to the region rules it restores (servicesUnfit). Absent: no key is held (tests without keys).
   */
  keyDocs?: (tenantId: string, projectIds: readonly string[]) => Promise<readonly KeyOfProject[]>;
  /** The publish orchestration's retry (PUBLISH_RETRY_*). */
  retry: DriveRetry;
  /** How long one apply call may send before the orchestration calls the next (PUBLISH_SLICE_SECONDS). */
  sliceMs?: number;
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
  /** For a system publish: the revision whose registry a failed system revision carried and this one leaves out. */
  registryLeftOut?: string;
  /** For a system publish the sweep asks again: the failed revision it retries. */
  retry?: { of: string; attempt: number };
}

/** A failed system revision is asked for again after 15 min, 30 min, 1 h, 2 h and 4 h; then a person must look (it stays failed, with its error). */
export const SYSTEM_RETRY_BACKOFF_MS = [15, 30, 60, 120, 240].map((m) => m * 60_000);

/** The projects a publish keeps as the gateway holds them. */
const keptAsHeld = (isolated: readonly IsolatedProject[] | undefined): string[] => (isolated ?? []).filter((p) => p.outcome === "keptArtifacts").map((p) => p.projectId);

/** A system publish's base is no longer the newest revision (a person published meanwhile): compile again. */
const BASE_MOVED = Symbol("baseMoved");

/**
 * Desired-state publishing of a tenant's gateway artifacts, with revisions, rollback and drift checks.
 *
 * A publish compiles the tenant, stores the artifacts content-addressed and a revision whose manifest
 * (ref → hash) is split into parts (`ManifestStore`), with the registry snapshot it was compiled from
 * (`RegistryStore`). The revision is then applied by a durable orchestration (the `drive` a publish
 * returns; functions/workflows/publish.ts) through `applier`; `drift` reads the gateway back.
 * See docs/adr/006-publishing.md.
 */
export class PublishService {
  readonly applier: GatewayApplier;
  readonly drift: DriftChecker;
  private readonly docs: PublishingDocuments;
  private readonly manifests: ManifestStore;
  private readonly registries: RegistryStore;
  private readonly changes: ChangeWriter;
  private readonly keyDocs: PublishKit["keyDocs"];
  private readonly clock: Clock;
  private readonly compiler: PublishCompiler;
  private readonly reserveGateway: (tenantId: string) => Promise<void>;
  private readonly retry: DriveRetry;
  private readonly assignedInstance: (tenantId: string) => string;

  constructor(kit: PublishKit) {
    this.changes = kit.changes;
    this.clock = kit.clock;
    this.compiler = kit.compiler;
    this.retry = kit.retry;
    this.keyDocs = kit.keyDocs;
    this.reserveGateway = (tenantId) => kit.gateways.reserve(tenantId);
    this.assignedInstance = (tenantId) => kit.gateways.instance(tenantId);
    const publisher = (tenantId: string) => kit.gateways.publisher(tenantId);
    this.docs = new PublishingDocuments(kit.store, kit.changes);
    this.manifests = new ManifestStore(kit.store, this.docs, this.assignedInstance, async (tenantId) => (await kit.gateways.instancesHeld?.(tenantId)) ?? []);
    this.registries = new RegistryStore(kit.store, this.docs);
    this.applier = new GatewayApplier(this.docs, this.manifests, kit.changes, kit.clock, kit.gateways, kit.sliceMs, kit.keys);
    this.drift = new DriftChecker(this.docs, this.manifests, kit.changes, kit.clock, publisher);
  }

  // ------------------------------------------------------------------------------------------
  // API

  /** A person's publish: everything the registry says now (what GET /gateway/diff shows); `drive` applies it. */
  async publish(ctx: RequestContext, input: unknown): Promise<Driven<PublishResult>> {
    this.require(ctx, TENANT_ADMINS, "publishing requires TenantAdmin");
    const spec = parseOrThrow(PublishSpec, input ?? {}, "body");
    const tenantId = ctx.principal.tenantId;
    return this.onLatest(tenantId, "the gateway's revisions kept changing while this publish compiled; retry", async (state) => {
      const compiled = await this.compiler.compileRegistry(await this.compiler.registry(tenantId), await this.registries.of(tenantId, state.published?.revisionId));
      const result = await this.propose(ctx, compiled.result.artifacts, { kind: "publish", origin: "person", registry: compiled.registry, isolated: compiled.isolated, ...(spec.reason ? { reason: spec.reason } : {}), baseIs: state.latest?.revisionId });
      return result === BASE_MOVED ? result : this.driven(tenantId, compiled.isolated.length ? { ...result, isolated: compiled.isolated } : result);
    });
  }

  /**
   * For automation (an exemption's activation, expiry or revocation; a key that needs its product; a
   * share): a publish on behalf of the system. It compiles the registry the gateway holds (or is
   * about to: a pending revision's) with the current keys and exemptions — so it ships what its own
   * change needs and never a registry change a person has not published; those stay staged and the
   * revision says which (`staged`). Nothing happens for a tenant that never published (its first
   * publish is a person's decision) — `needsPublish` says so. The gateway publish sweep starts the
   * revision's orchestration (automation has no durable client).
   */
  async requestPublish(tenantId: string, cause: { by: string; reason: string; correlationId: string; retry?: { of: string; attempt: number } }): Promise<PublishResult & { needsPublish?: true }> {
    const ctx: RequestContext = { principal: { tenantId, userId: cause.by, roles: new Set(TENANT_ADMINS) }, correlationId: cause.correlationId };
    return this.onLatest(tenantId, "the gateway's revisions kept changing; the system publish will be retried", async (state): Promise<(PublishResult & { needsPublish?: true }) | typeof BASE_MOVED> => {
      const { baseId, leftOut } = await this.systemBase(tenantId, state);
      const base = await this.registries.of(tenantId, baseId);
      if (!base) return { changed: false, needsPublish: true };
      const compiled = await this.compiler.compileRegistry(base, base);
      const staged = stagedBetween(base, await this.compiler.registry(tenantId));
      return this.propose(ctx, compiled.result.artifacts, {
        kind: "publish",
        origin: "system",
        reason: cause.reason,
        registry: compiled.registry,
        isolated: compiled.isolated,
        staged,
        // A person's publish made meanwhile is the new base: compiling from the old one would undo it.
        baseIs: state.latest?.revisionId,
        registryFrom: baseId!,
        ...(leftOut ? { registryLeftOut: leftOut } : {}),
        ...(cause.retry ? { retry: cause.retry } : {}),
      });
    });
  }

  /** Whether the gateway holds an artifact, as far as the last publish (and any partial one since) says. */
  async holds(tenantId: string, ref: ArtifactRef): Promise<boolean> {
    return (await this.manifests.gatewayManifest(tenantId, await this.docs.state(tenantId))).has(ref);
  }

  /**
   * Whether the tenant's gateway state is on the instance it is assigned now: false while a move is
   * pending (until its next publish the old instance holds the tenant's artifacts and admits its keys),
   * and for a state from before instances were recorded (unknown) once something was published.
   */
  async settled(tenantId: string): Promise<boolean> {
    const state = await this.docs.state(tenantId);
    if (state.instance === undefined) return state.published === undefined;
    return state.instance === this.assignedInstance(tenantId);
  }

  /** A virtual key needs its API or product: the system publishes what the keys need (see requestPublish). */
  async ensurePublished(tenantId: string, cause: { by: string; reason: string; correlationId: string }): Promise<PublishResult & { needsPublish?: true }> {
    return this.requestPublish(tenantId, cause);
  }

  async rollback(ctx: RequestContext, revisionId: string, input: unknown): Promise<Driven<PublishResult>> {
    this.require(ctx, TENANT_ADMINS, "rolling back requires TenantAdmin");
    const spec = parseOrThrow(PublishSpec, input ?? {}, "body");
    const tenantId = ctx.principal.tenantId;
    const target = await this.docs.loadRevision(tenantId, revisionId);
    if (target.status !== "published") {
      fail({ kind: "conflict", detail: `revision ${target.number} was never published (${target.status}); only a published revision can be restored`, reason: "revision_not_published" });
    }
    // The registry people published then, compiled with the keys and exemptions in force NOW: the
    // revision's stored artifacts would bring back exemptions that have ended and subscriptions of
    // keys revoked since (what a rollback restores is configuration, never access).
    const snapshot = await this.registries.of(tenantId, target.id);
    if (!snapshot) return fail({ kind: "conflict", detail: `revision ${target.number} was stored without its registry snapshot; publish the configuration you want instead`, reason: "revision_not_restorable" });
    // A project that does not compile falls back to what the gateway holds now (as a publish does), never
    // to the target's own entry: that would fail the same way and leave the project out (deleted).
    // Nor what was withdrawn for good since: a project or model deleted, an agent retired, blocked or disabled.
    const live = await this.compiler.registry(tenantId);
    const registry = restorable(snapshot, live);
    // The services are the live ones: a control the target switches on whose service is gone since would
    // isolate every project it reaches (kept as the gateway holds it), so the rollback would restore none of
    // it while answering as if it had; content safety under a region rule that excludes its service would
    // screen prompts outside the tenant's regions — so would a key's own content safety (keys are live) under
    // a region rule the rollback restores. Refused instead, naming what does not fit (servicesUnfit).
    const keys = this.keyDocs ? await this.keyDocs(tenantId, live.projects.map((p) => p.id)) : [];
    const unfit = servicesUnfit(registry, keys, live.projects);
    if (unfit.length) {
      fail({
        kind: "conflict",
        detail: `revision ${target.number} cannot be restored with the tenant's services as they are now: ${unfit.join("; ")}. Configure the service (or its region) in the tenant settings, or publish the configuration you want instead`,
        reason: "revision_needs_service",
      });
    }
    return this.onLatest(tenantId, "the gateway's revisions kept changing while this rollback compiled; retry", async (state) => {
      const compiled = await this.compiler.compileRegistry(registry, await this.registries.of(tenantId, state.published?.revisionId));
      const result = await this.propose(ctx, compiled.result.artifacts, {
        kind: "rollback",
        origin: "person",
        rollbackOf: target.id,
        reason: spec.reason ?? `rollback to revision ${target.number}`,
        registry: compiled.registry,
        isolated: compiled.isolated,
        baseIs: state.latest?.revisionId,
      });
      return result === BASE_MOVED ? result : this.driven(tenantId, compiled.isolated.length ? { ...result, isolated: compiled.isolated } : result);
    });
  }

  async get(ctx: RequestContext, revisionId: string, withDiff: boolean): Promise<Revision> {
    this.require(ctx, ANY_TENANT_ROLE, "reading revisions requires a tenant role");
    const tenantId = ctx.principal.tenantId;
    const doc = await this.docs.loadRevision(tenantId, revisionId);
    const revision = toRevision(doc);
    if (!withDiff) return revision;
    const after = await this.manifests.manifest(tenantId, doc);
    const before = doc.basedOn ? await this.manifests.manifest(tenantId, await this.docs.loadRevision(tenantId, doc.basedOn)) : new Map<ArtifactRef, string>();
    return { ...revision, diff: await this.renderDiff(tenantId, before, after, diffManifests(before, after).changes) };
  }

  async list(ctx: RequestContext, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<Revision>> {
    this.require(ctx, ANY_TENANT_ROLE, "reading revisions requires a tenant role");
    return this.docs.revisionPage(ctx.principal.tenantId, page);
  }

  /** What a publish would change now: the gateway's state (as last published) → the compiled registry. */
  async diff(ctx: RequestContext): Promise<GatewayDiff> {
    this.require(ctx, ANY_TENANT_ROLE, "reading the gateway diff requires a tenant role");
    const tenantId = ctx.principal.tenantId;
    const state = await this.docs.state(tenantId);
    const compiled = await this.compiler.compileRegistry(await this.compiler.registry(tenantId), await this.registries.of(tenantId, state.published?.revisionId));
    const before = await this.manifests.heldManifest(tenantId, state);
    const kept = keptAsHeld(compiled.isolated);
    const artifacts = kept.length ? [...compiled.result.artifacts, ...(await this.manifests.keptArtifacts(tenantId, await this.manifests.recordedManifest(tenantId, state), compiled.result.artifacts, kept))] : compiled.result.artifacts;
    const after = manifestOf(artifacts);
    const { changes, counts } = diffManifests(before, after);
    const desired = new Map(artifacts.map((a) => [artifactRef(a), a]));
    return {
      ...(state.published ? { basedOn: state.published.revisionId } : {}),
      counts,
      changes: changes.slice(0, MAX_LISTED_CHANGES),
      diff: await this.renderDiff(tenantId, before, after, changes, desired),
    };
  }

  async driftReport(ctx: RequestContext): Promise<DriftReport> {
    this.require(ctx, ANY_TENANT_ROLE, "reading the drift report requires a tenant role");
    return this.drift.report(ctx.principal.tenantId);
  }

  async checkDriftNow(ctx: RequestContext): Promise<DriftReport> {
    this.require(ctx, TENANT_ADMINS, "checking drift requires TenantAdmin");
    return this.drift.check(ctx.principal.tenantId, ctx.correlationId);
  }

  // ------------------------------------------------------------------------------------------
  // Drivers (the gateway publish sweep)

  /** The orchestration that applies a revision. */
  drive(tenantId: string, revisionId: string): DriveRequest<PublishInput> {
    return publishDrive(tenantId, revisionId, this.retry);
  }

  /** Pending revisions everywhere, each with its driver (the sweep starts one for any that lacks a live one). */
  async *pendingRevisions(): AsyncGenerator<{ tenantId: string; revisionId: string; drive: DriveRequest<PublishInput> }> {
    for await (const d of this.docs.pendingRevisions()) yield { tenantId: d.tenantId, revisionId: d.id, drive: this.drive(d.tenantId, d.id) };
  }

  /**
   * Asks again for system publishes whose revision failed after its retries (the gateway refused or was
   * away for their whole run). A system publish carries a change nobody will ask for twice — a lock, an
   * exemption's end, a share, a key's product — so a failure must not be the end of it. Only a tenant
   * whose newest revision is that failure is asked for (anything newer compiled the live state again),
   * with backoff (SYSTEM_RETRY_BACKOFF_MS); the new revision names the one it retries. A retry that finds
   * the gateway already holding the live state makes no revision.
   */
  async retryFailedSystemPublishes(correlationId: string): Promise<{ asked: number; failed: { tenantId: string; revisionId: string; error: string }[] }> {
    const now = this.clock.now().getTime();
    const since = new Date(now - 24 * 3_600_000).toISOString();
    let asked = 0;
    const failures: { tenantId: string; revisionId: string; error: string }[] = [];
    for await (const failed of this.docs.failedSystemRevisions(since)) {
      const attempt = failed.retry?.attempt ?? 0;
      const wait = SYSTEM_RETRY_BACKOFF_MS[attempt];
      if (failed.retryAskedAt || wait === undefined || !failed.failedAt || now - Date.parse(failed.failedAt) < wait) continue;
      // One tenant's trouble (its compile, its gateway) must not keep the others' retries from being asked.
      try {
        if ((await this.docs.state(failed.tenantId)).latest?.revisionId !== failed.id) continue;
        const result = await this.requestPublish(failed.tenantId, {
          by: "system:publish-sweep",
          reason: `retry ${attempt + 1} of revision ${failed.number} (${failed.reason ?? "a system publish"}), which failed`.slice(0, 500),
          correlationId,
          retry: { of: failed.retry?.of ?? failed.id, attempt: attempt + 1 },
        });
        if (result.changed) asked += 1;
        // No revision made (the gateway holds the live state already): the failure stays newest, and must
        // not be asked for again at every sweep. (A new revision is newest itself: nothing to record.)
        else await this.docs.markRetryAsked(failed, new Date(now).toISOString());
      } catch (err) {
        failures.push({ tenantId: failed.tenantId, revisionId: failed.id, error: err instanceof Error ? err.message : String(err) });
      }
    }
    return { asked, failed: failures };
  }

  /** When the first revision published at or after `since` went live (adoption metrics). */
  firstPublishedSince(tenantId: string, since: string): Promise<string | undefined> {
    return this.docs.firstPublishedSince(tenantId, since);
  }

  /** Whether a revision still waits to be applied (the sweep asks before starting a finished driver again). */
  async isPending(tenantId: string, revisionId: string): Promise<boolean> {
    return (await this.docs.loadRevision(tenantId, revisionId)).status === "pending";
  }

  // ------------------------------------------------------------------------------------------
  // Internals

  /**
   * Compiles and proposes (`attempt`) on the tenant's newest revision: one made while it compiled (another
   * publish, a system publish of a lock or an exemption's end) is newer than what it read, so it compiles
   * again rather than supersede that one with older live state.
   */
  private async onLatest<T>(tenantId: string, busy: string, attempt: (state: GatewayStateDoc) => Promise<T | typeof BASE_MOVED>): Promise<T> {
    for (let n = 0; ; n++) {
      const result = await attempt(await this.docs.state(tenantId));
      if (result !== BASE_MOVED) return result;
      if (n >= 8) throw new AppError({ kind: "unavailable", detail: busy });
    }
  }

  /** A result that made a pending revision comes with the orchestration that applies it. */
  private driven(tenantId: string, result: PublishResult): Driven<PublishResult> {
    return result.changed && result.revision?.status === "pending" ? { ...result, drive: this.drive(tenantId, result.revision.id) } : result;
  }

  /**
   * Makes a pending revision for `artifacts` unless they are exactly what the gateway will hold
   * anyway (the pending revision if any, else the published state): then nothing is made or sent.
   */
  private async propose(ctx: RequestContext, artifacts: GatewayArtifact[], meta: ProposeMeta & { baseIs: string | undefined }): Promise<PublishResult | typeof BASE_MOVED>;
  private async propose(ctx: RequestContext, artifacts: GatewayArtifact[], meta: ProposeMeta): Promise<PublishResult>;
  private async propose(ctx: RequestContext, artifacts: GatewayArtifact[], meta: ProposeMeta & { baseIs?: string | undefined }): Promise<PublishResult | typeof BASE_MOVED> {
    const tenantId = ctx.principal.tenantId;
    const partition = partitionOf(tenantId);
    const kept = keptAsHeld(meta.isolated);
    await this.reserveGateway(tenantId);
    for (;;) {
      const state = await this.docs.state(tenantId);
      if ("baseIs" in meta && state.latest?.revisionId !== meta.baseIs) return BASE_MOVED;
      const gateway = await this.manifests.heldManifest(tenantId, state);
      const latest = state.latest ? await this.docs.loadRevision(tenantId, state.latest.revisionId) : undefined;
      const pending = latest?.status === "pending" ? await this.manifests.manifest(tenantId, latest) : undefined;
      const target = pending ?? gateway;
      // Projects kept as held keep what the gateway holds (or a pending revision is about to) for them.
      const all = kept.length ? [...artifacts, ...(await this.manifests.keptArtifacts(tenantId, pending ?? (await this.manifests.recordedManifest(tenantId, state)), artifacts, kept))] : artifacts;
      const manifest = manifestOf(all);
      // A system publish that changes nothing leaves the state as it is (its registry is the base's, or a
      // pending revision's); a person's publish that changes no artifact still records nothing either.
      if (sameManifest(target, manifest) && (latest?.status === "pending" || Object.keys(state.overrides).length === 0)) {
        const current = latest?.status === "pending" ? latest : state.published ? await this.docs.loadRevision(tenantId, state.published.revisionId) : undefined;
        return { changed: false, ...(current ? { revision: toRevision(current) } : {}) };
      }

      // Artifacts first (content-addressed, idempotent): a revision never points at a missing artifact.
      const byHash = new Map<string, GatewayArtifact>();
      for (const a of all) {
        const h = manifest.get(artifactRef(a))!;
        if (gateway.get(artifactRef(a)) !== h) byHash.set(h, a);
      }
      await this.manifests.storeArtifacts(tenantId, byHash);
      const id = newId("rev");
      const parts = await this.manifests.storeManifest(tenantId, id, manifest);
      const registryParts = meta.registry ? await this.registries.save(tenantId, id, meta.registry) : undefined;

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
        ...(meta.registryLeftOut ? { registryLeftOut: meta.registryLeftOut } : {}),
        ...(meta.isolated?.length ? { isolated: meta.isolated } : {}),
        ...(meta.staged && (meta.staged.tenant || meta.staged.projects.length) ? { staged: meta.staged } : {}),
        ...(meta.retry ? { retry: meta.retry } : {}),
        status: "pending",
        createdAt: this.clock.now().toISOString(),
        createdBy: ctx.principal.userId,
        artifactCount: manifest.size,
        counts,
        changes: changes.slice(0, MAX_LISTED_CHANGES),
        parts,
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
        await this.manifests.dropManifest(tenantId, id, parts);
        await this.registries.drop(tenantId, id, registryParts ?? 0);
        continue;
      }
      return { changed: true, revision: toRevision(doc) };
    }
  }

  /**
   * The revision a system publish builds on: a pending revision (a person's publish on its way, which
   * the system's must not undo), else the published one — or a failed system revision, once: it carries
   * the registry it was built on (a person's revision it superseded, which reads `superseded` and would
   * otherwise be reverted by the next system publish). Not when the registry it carried had failed
   * already (a person's own failed revision, or a system revision that carried it and failed): a registry
   * the gateway refuses must not hold back the system's publishes — an exemption's end, a lock, a
   * revocation. Those publish on the published registry, and list what they leave out under `staged`.
   */
  private async systemBase(tenantId: string, state: GatewayStateDoc): Promise<{ baseId: string | undefined; leftOut?: string }> {
    const published = state.published?.revisionId;
    if (state.latest && state.latest.revisionId !== published) {
      // Read after the state: it may have been published since (the state read is then the older one).
      const latest = await this.docs.loadRevision(tenantId, state.latest.revisionId);
      if (latest.status === "pending" || latest.status === "published") return { baseId: latest.id };
      if (latest.status === "failed" && latest.origin === "system" && latest.registryParts !== undefined && latest.registryFrom && latest.registryFrom !== published) {
        const carried = await this.docs.loadRevision(tenantId, latest.registryFrom).catch(() => undefined);
        if (carried && carried.status !== "failed") return { baseId: latest.id };
        // Left out: say whose registry that was (the revision the system revisions carried it from).
        return { baseId: published, leftOut: carried ? await this.registryOwner(tenantId, carried) : latest.registryFrom };
      }
    }
    return { baseId: published };
  }

  /** The revision a registry came from: `registryFrom` followed through system revisions (a few hops at most). */
  private async registryOwner(tenantId: string, from: RevisionDoc): Promise<string> {
    let revision: RevisionDoc = from;
    for (let hop = 0; hop < 10 && revision.origin === "system" && revision.registryFrom; hop++) {
      const next: RevisionDoc | undefined = await this.docs.loadRevision(tenantId, revision.registryFrom).catch(() => undefined);
      if (!next) return revision.registryFrom;
      revision = next;
    }
    return revision.id;
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
        return this.manifests.artifact(tenantId, h);
      };
      out += unifiedDiff(c.ref, await load(before), await load(after));
    }
    return out;
  }

  private require(ctx: RequestContext, roles: readonly Role[], detail: string): void {
    if (!holdsAny(ctx.principal.roles, roles)) fail({ kind: "forbidden", detail });
  }
}
