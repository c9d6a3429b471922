import type { Clock } from "../../ports/clock.js";
import type { ArtifactRef, GatewayPublisher, PublishOutcome } from "../../ports/gateway.js";
import { unversioned, type Versioned } from "../../ports/store.js";
import type { ChangeWriter } from "../changes.js";
import type { RequestContext } from "../common.js";
import { AppError } from "../errors.js";
import type { DriveRequest, DriveRetry } from "../kernel/drive.js";
import { systemContext } from "../kernel/system.js";
import { partitionOf, revisionPath, subjectOf, type GatewayStateDoc, type Manifest, type PublishingDocuments, type RevisionDoc } from "./documents.js";
import { overridesOf, remarked, type ManifestStore } from "./manifest-store.js";

export const PUBLISH_ORCHESTRATOR = "publishOrchestrator";

/** What a move between instances needs of the tenant's keys (their subscriptions are not in a publish). */
export interface TenantKeyPlacement {
  /** The subscription ids of every key of the tenant: what the instance it leaves must lose. */
  subscriptionIds(tenantId: string, instance: string): Promise<string[]>;
  /** Every key's subscription is sent again at its next sync: the instance the tenant moves to has none. */
  resendAll(tenantId: string): Promise<void>;
}

/** Where the tenant's artifacts go (tenant-gateways.ts): its instance now, and a publisher for any instance. */
export interface TenantPlacement {
  publisher(tenantId: string): Promise<GatewayPublisher>;
  instance(tenantId: string): string;
  publisherOn(instance: string): Promise<GatewayPublisher>;
  /** Every instance the tenant reserved a gateway key on (it wrote there); absent: none known. */
  instancesHeld?(tenantId: string): Promise<string[]>;
}

export interface PublishInput {
  tenantId: string;
  revisionId: string;
  /** From configuration, passed in: an orchestrator may not read settings (determinism). */
  retry: DriveRetry;
}

/** One orchestration per revision, with the revision's id: starting it twice is harmless, and the gateway publish sweep starts any that is missing. */
export const publishDrive = (tenantId: string, revisionId: string, retry: DriveRetry): DriveRequest<PublishInput> => ({
  orchestrator: PUBLISH_ORCHESTRATOR,
  instanceId: revisionId,
  input: { tenantId, revisionId, retry: { ...retry } },
});

/** How long an apply may hold the tenant's gateway before another revision may take over. */
const LEASE_MS = 10 * 60 * 1000;
/** How often a running apply extends its lease (real time), so a long publish keeps the gateway. */
const LEASE_RENEW_MS = LEASE_MS / 4;

/**
 * What an apply attempt came to; "busy": another revision holds the gateway, try again shortly;
 * "continue": the attempt's slice of time ran out part-way (what the gateway holds is recorded, the
 * lease kept), call again at once.
 */
export type ApplyResult = "published" | "superseded" | "failed" | "busy" | "continue";

/** Thrown by apply when the gateway refused part of a publish: the activity fails and is retried. */
export class GatewayUnavailableError extends Error {
  override name = "GatewayUnavailableError";
}

/**
 * Brings the gateway to a revision (the publish orchestration's activity, functions/workflows/publish.ts):
 * one revision at a time per tenant (a lease on the gateway state), the newest wins (older pending
 * revisions are superseded), and a publish that stops part-way records what the gateway now holds so
 * the retry resumes instead of starting over (ADR 006).
 */
export class GatewayApplier {
  constructor(
    private readonly docs: PublishingDocuments,
    private readonly manifests: ManifestStore,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
    /** The tenant's gateway publisher (its instance; its gateway key reserved there: tenant-gateways.ts), and any instance's. */
    private readonly placement: TenantPlacement,
    /**
     * How long one apply call may send for (real time: it is the Functions host's timeout it must stay
     * under, PUBLISH_SLICE_SECONDS); a publish that needs longer goes on in the next call. 0: one write
     * or delete per call.
     */
    private readonly sliceMs: number = Number.POSITIVE_INFINITY,
    /** The tenant's keys, for a move between instances (undefined: no keys to move, as in tests of publishing alone). */
    private readonly keys?: TenantKeyPlacement,
  ) {}

  /**
   * Brings the gateway to one revision. Idempotent: a revision already published (or superseded, or
   * failed) is not applied again. Throws GatewayUnavailableError when the gateway refused a call: the
   * activity's retry resumes from what the gateway holds then.
   */
  async apply(tenantId: string, revisionId: string, correlationId: string): Promise<ApplyResult> {
    const partition = partitionOf(tenantId);
    const revision = await this.docs.loadRevision(tenantId, revisionId);
    let state = await this.docs.state(tenantId);
    // Between two steps of this revision it holds the lease; ended now, it lets the gateway go at once.
    const release = () => (state.lease?.revisionId === revisionId ? this.updateState(tenantId, revisionId, ({ lease: _l, progress: _p, ...rest }) => rest) : Promise.resolve());
    if (revision.status !== "pending") {
      await release();
      return revision.status;
    }
    const ctx = systemContext(tenantId, "system:publisher", correlationId);
    if (state.latest && state.latest.number > revision.number) {
      await release();
      await this.transition(ctx, revision, { status: "superseded" }, "aigov.gateway.revision.superseded.v1");
      return "superseded";
    }
    const now = this.clock.now();
    if (state.lease && state.lease.revisionId !== revisionId && Date.parse(state.lease.until) > now.getTime()) return "busy";
    // Another revision's lease that lapsed: its apply died or stalled part-way and recorded nothing. What
    // it may have written or deleted is unknown — every artifact where it differs from what the gateway
    // was known to hold is sent again (or deleted, when not wanted) by this apply.
    const lapsed = state.lease && state.lease.revisionId !== revisionId ? await this.touchedBy(tenantId, state, state.lease.revisionId) : [];
    const leased: GatewayStateDoc = { ...withUnsure(state, lapsed), lease: { revisionId, until: new Date(now.getTime() + LEASE_MS).toISOString() } };
    const etag = await this.docs.replaceState(leased, state._etag);
    if (!etag) return "busy";
    state = { ...leased, _etag: etag };

    // A long publish (an MCP API write may poll for minutes, a move drains a whole instance first) keeps
    // its lease: another revision taking over meanwhile would write while this one still does.
    const renewal = setInterval(() => void this.renewLease(tenantId, revisionId).catch(() => undefined), LEASE_RENEW_MS);
    renewal.unref();
    let previous, desired, publisher;
    try {
      desired = await this.manifests.artifacts(tenantId, await this.manifests.manifest(tenantId, revision));
      // A tenant an operator assigned another instance since its last publish moves first (its old instance drained).
      const here = this.placement.instance(tenantId);
      const described = await this.manifests.describes(tenantId, state);
      if (described !== undefined && described !== here) {
        const moved = await this.move(tenantId, revisionId, { ...state, instance: described }, here);
        if (!moved) {
          // Out of time part-way through the drain: recorded, the lease kept; the orchestration calls again at once.
          clearInterval(renewal);
          return "continue";
        }
        state = moved;
      }
      previous = await this.manifests.heldManifest(tenantId, state);
      publisher = await this.placement.publisher(tenantId);
    } catch (err) {
      clearInterval(renewal);
      // Nothing was sent to the gateway the revision goes to (a drain that failed part-way is done again by
      // the retry: deletes of what is gone are no-ops): the lease goes at once rather than hold newer revisions back.
      await this.updateState(tenantId, revisionId, ({ lease: _l, ...rest }) => rest).catch(() => undefined);
      throw err;
    }
    let outcome;
    // What this revision's earlier calls sent and deleted (steps, retries), added to this call's.
    const prior = state.progress?.revisionId === revisionId ? state.progress : undefined;
    const sofar = (o: PublishOutcome): NonNullable<GatewayStateDoc["progress"]> => {
      const resent = [...new Set([...(prior?.resent ?? []), ...remarked(previous, o.hashes)])];
      return {
        revisionId,
        sent: (prior?.sent ?? 0) + o.sent.length,
        deleted: (prior?.deleted ?? 0) + o.deleted.length,
        unchanged: prior?.unchanged ?? o.unchanged.length,
        ...(resent.length ? { resent } : {}),
      };
    };
    /** The state after a call that stopped part-way: what the gateway holds, and no longer unsure what the call sent again. */
    const stoppedAt = (fresh: GatewayStateDoc, base: Manifest, o: PublishOutcome): GatewayStateDoc => {
      const progress = sofar(o);
      const known = new Set(progress.resent);
      const { unsure, ...rest } = fresh;
      const still = (unsure ?? []).filter((ref) => !known.has(ref));
      return { ...rest, ...(still.length ? { unsure: still } : {}), overrides: overridesOf(base, o.hashes), progress };
    };
    const started = performance.now();
    try {
      outcome = await publisher.publish(desired, Object.fromEntries(previous), { spent: () => performance.now() - started >= this.sliceMs });
    } catch (err) {
      // Record how far it got (the publisher says what the gateway now holds), release, and let the retry resume.
      const { partial, ref: failedAt } = err as { partial?: PublishOutcome; ref?: ArtifactRef };
      const base = await this.manifests.publishedManifest(tenantId, state);
      await this.updateState(tenantId, revisionId, (fresh) => {
        const { lease: _l, ...rest } = partial ? stoppedAt(fresh, base, partial) : fresh;
        // The call that failed may have taken effect all the same: its artifact is sent again next time.
        return withUnsure(rest, failedAt ? [failedAt] : []);
      });
      throw new GatewayUnavailableError(`publishing revision ${revision.number} stopped: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    } finally {
      clearInterval(renewal);
    }
    if (outcome.remaining !== undefined) {
      // Out of time part-way: record what the gateway holds now and keep the lease; the orchestration
      // calls again at once, and that call sends the rest.
      const base = await this.manifests.publishedManifest(tenantId, state);
      const stopped = outcome;
      await this.updateState(tenantId, revisionId, (fresh) => stoppedAt(fresh, base, stopped));
      return "continue";
    }
    const at = now.toISOString();
    const after: RevisionDoc = {
      ...unversioned(revision),
      status: "published",
      publishedAt: at,
      outcome: (({ sent, unchanged, deleted }) => ({ sent, unchanged, deleted }))(sofar(outcome)),
    };
    // A publish proposed meanwhile rewrote the state (its counter and newest revision): build the
    // final state from a fresh read each time, keeping those, as long as the lease is still ours.
    for (let attempt = 0; ; attempt++) {
      const fresh = await this.docs.state(tenantId);
      // Only the holder of the lease records a publish: a lease that is gone was taken (and released)
      // by another revision meanwhile; the retry finds out whether that one was newer (superseded).
      if (fresh.lease?.revisionId !== revisionId) throw new GatewayUnavailableError(`revision ${revision.number} lost its lease while publishing`);
      if (fresh.published && fresh.published.number > revision.number) {
        // Never move the gateway's published revision backwards.
        const { lease: _l, progress: _p, ...rest } = fresh;
        await this.docs.replaceState(rest, fresh._etag);
        await this.transition(ctx, revision, { status: "superseded" }, "aigov.gateway.revision.superseded.v1");
        return "superseded";
      }
      const { lease: _l, unsure: _u, progress: _p, ...released } = fresh;
      const nextState: GatewayStateDoc = { ...released, instance: this.placement.instance(tenantId), overrides: {}, published: { revisionId, number: revision.number, at } };
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

  /** The retries ran out: the revision is failed (the gateway keeps what it holds; drift checks compare with the last published revision). */
  async markFailed(tenantId: string, revisionId: string, error: string, correlationId: string): Promise<void> {
    const revision = await this.docs.loadRevision(tenantId, revisionId);
    if (revision.status !== "pending") return;
    // A publish given up between steps (too many) still holds the gateway: newer revisions need not wait for the lease to lapse.
    await this.updateState(tenantId, revisionId, ({ lease: _l, progress: _p, ...rest }) => rest);
    await this.transition(systemContext(tenantId, "system:publisher", correlationId), revision, { status: "failed", failedAt: this.clock.now().toISOString(), error: error.slice(0, 2000) }, "aigov.gateway.publish.failed.v1");
  }

  /**
   * Moves the tenant from the instance its state describes to `to`: everything it holds there — the
   * published revision's artifacts, what a stopped publish left, and every key's subscription (first: APIM
   * refuses to delete a product that has subscriptions) — is deleted there; every key is to be sent again;
   * and the state records that the new instance holds nothing, so this publish sends every artifact.
   * Idempotent: a retry deletes what is already gone (a no-op) and records the same. The drain takes the
   * apply's slices like a publish: out of time, it records what the old instance still holds (`overrides`,
   * the state still naming that instance) and answers undefined — the next call drains on. The tenant is
   * dark on both instances from the drain until this publish and its keys' syncs reach the new one.
   */
  private async move(tenantId: string, revisionId: string, state: GatewayStateDoc & { _etag?: string }, to: string): Promise<(GatewayStateDoc & { _etag?: string }) | undefined> {
    const from = state.instance!;
    const base = await this.manifests.publishedManifest(tenantId, state);
    const held = await this.manifests.recordedManifest(tenantId, state);
    const there: Record<ArtifactRef, string> = Object.fromEntries(held);
    for (const ref of state.unsure ?? []) there[ref] ??= "unconfirmed";
    // Key subscriptions an earlier slice of this drain deleted are marked so (null): not deleted again each call.
    const subscriptions = ((await this.keys?.subscriptionIds(tenantId, from)) ?? []).map((id) => `subscription:${id}` as const);
    for (const ref of subscriptions) if (state.overrides[ref] !== null) there[ref] = "unconfirmed";
    const old = await this.placement.publisherOn(from);
    const started = performance.now();
    const drained = await old.publish([], there, { spent: () => performance.now() - started >= this.sliceMs });
    if (drained.remaining !== undefined) {
      const gone = Object.fromEntries(subscriptions.filter((ref) => !(ref in drained.hashes)).map((ref) => [ref, null]));
      // The instance drained is recorded too (a state from before instances were recorded names none).
      await this.updateState(tenantId, revisionId, ({ unsure: _u, ...rest }) => ({ ...rest, instance: from, overrides: { ...overridesOf(base, drained.hashes), ...gone } }));
      return undefined;
    }
    await this.keys?.resendAll(tenantId);
    await this.updateState(tenantId, revisionId, ({ unsure: _u, progress: _p, ...rest }) => ({ ...rest, instance: to, overrides: Object.fromEntries([...base.keys()].map((ref) => [ref, null])) }));
    const moved = await this.docs.state(tenantId);
    if (moved.instance !== to || moved.lease?.revisionId !== revisionId) throw new GatewayUnavailableError(`revision ${revisionId}: the move from gateway '${from}' to '${to}' was not recorded; retrying`);
    return moved;
  }

  /** A conditional update of the gateway state by this revision's applier, retried on a race with a proposal. */
  private async updateState(tenantId: string, revisionId: string, change: (fresh: GatewayStateDoc) => GatewayStateDoc): Promise<void> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const fresh = await this.docs.state(tenantId);
      if (fresh.lease?.revisionId !== revisionId) return; // another revision's state now: nothing of ours to record
      if (await this.docs.replaceState(change(fresh), fresh._etag)) return;
    }
  }

  /** The artifacts a revision's apply may have changed at the gateway: where its manifest differs from what the gateway was known to hold. */
  private async touchedBy(tenantId: string, state: GatewayStateDoc, revisionId: string): Promise<ArtifactRef[]> {
    const revision = await this.docs.loadRevision(tenantId, revisionId).catch(() => undefined);
    if (!revision) return [];
    const theirs = await this.manifests.manifest(tenantId, revision);
    const held = await this.manifests.gatewayManifest(tenantId, state);
    return [...new Set([...theirs.keys(), ...held.keys()])].filter((ref) => theirs.get(ref) !== held.get(ref)).sort();
  }

  /** Extends this revision's lease while it still holds it. */
  private async renewLease(tenantId: string, revisionId: string): Promise<void> {
    const until = new Date(this.clock.now().getTime() + LEASE_MS).toISOString();
    await this.updateState(tenantId, revisionId, (fresh) => ({ ...fresh, lease: { revisionId, until } }));
  }

  private async transition(ctx: RequestContext, revision: Versioned<RevisionDoc>, patch: Partial<RevisionDoc>, eventType: string): Promise<void> {
    const after: RevisionDoc = { ...unversioned(revision), ...patch };
    await this.changes.commit({
      partition: partitionOf(ctx.principal.tenantId),
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
}

/** The state with `refs` added to what the next publish sends again whatever it believes (GatewayStateDoc.unsure). */
function withUnsure<S extends Pick<GatewayStateDoc, "unsure">>(state: S, refs: ArtifactRef[]): S {
  const unsure = [...new Set([...(state.unsure ?? []), ...refs])];
  return unsure.length ? { ...state, unsure } : state;
}
