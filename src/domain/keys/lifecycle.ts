import type { Clock } from "../../ports/clock.js";
import { unversioned, type Versioned } from "../../ports/store.js";
import type { ApprovalService } from "../approvals/service.js";
import type { RequestContext } from "../common.js";
import type { Drivers, JobLog } from "../kernel/drive.js";
import { systemContext } from "../kernel/system.js";
import { DEFAULT_KEY_POLICY, type KeyPolicy } from "../projects/schema.js";
import type { ProjectService } from "../projects/service.js";
import type { KeyDoc, KeyDocuments } from "./documents.js";
import type { KeyGatewaySync } from "./gateway-sync.js";
import type { KeyRotation, RotationStarted } from "./rotation.js";
import type { KeySecrets } from "./secrets.js";

const DAY_MS = 86_400_000;
/** Expiry notices, nearest last: each sent once, and only the nearer one after downtime. */
const NOTICES = [["14d", 14 * DAY_MS], ["1d", DAY_MS]] as const;
/**
 * Key subscriptions read back per run (each a GET and a listSecrets POST on ARM, and the key's secrets
 * resolved to fingerprint them): every key is read back once every ceil(keys / this) runs.
 */
export const READBACKS_PER_RUN = 50;

/** Whether a key's secret is old enough for its project's scheduled rotation (`rotateAfterDays`; none without it). */
export function rotationDue(key: Pick<KeyDoc, "status" | "secretCreatedAt">, policy: Pick<KeyPolicy, "rotateAfterDays">, now: number): boolean {
  if (key.status !== "active" || !policy.rotateAfterDays) return false;
  return now - Date.parse(key.secretCreatedAt) >= policy.rotateAfterDays * DAY_MS;
}

/** What one run of the lifecycle job did. */
export interface LifecycleReport {
  /** Scheduled rotations started. */
  rotations: number;
  /** Due rotations left for the next run (pacing). */
  deferred: number;
  /** Keys that failed once and were tried again in the run. */
  retried: number;
  /** Keys that failed again (the next run retries them). */
  failures: number;
  /** Key subscriptions read back from the gateway this run (at most `readBacksPerRun`). */
  readBacks: number;
  /** Of those, subscriptions the gateway held differently: reported and sent anew. */
  drifted: number;
}

/**
 * A key's life after creation: expiry notices (14 days, 1 day; once each), expiry, revocation's and
 * expiry's end state (both slots fillers), scheduled rotation by the project's key policy — paced to
 * what the management plane allows (`perRun` a run; ADR 008) — and the drivers of rotations kept alive.
 */
export class KeyLifecycle {
  constructor(
    private readonly docs: KeyDocuments,
    private readonly secrets: KeySecrets,
    private readonly sync: KeyGatewaySync,
    private readonly rotation: KeyRotation,
    private readonly projects: Pick<ProjectService, "keyPolicyOf"> & Partial<Pick<ProjectService, "finishLeavers">>,
    private readonly clock: Clock,
    /** Scheduled rotations started per run at most (KEY_ROTATIONS_PER_RUN); the rest start next run. */
    private readonly perRun: number,
    /** Key subscriptions read back per run at most; the next run goes on after the last one read. */
    private readonly readBacksPerRun: number = READBACKS_PER_RUN,
    /** Withdraws the requests of shares still waiting when a key ends. */
    private readonly approvals?: Pick<ApprovalService, "withdraw">,
  ) {}

  /** Where the last run's read-backs stopped (a key's sort key); a new process starts at a random key. */
  private readBackCursor: string | undefined;

  /**
   * The read-back of key subscriptions (KeyGatewaySync.verify): an edit at the gateway (a suspended key
   * set active in the portal, a subscription moved to another product) is reported and reverted. Bounded:
   * at most `readBacksPerRun` keys a run, in a fixed order going on from where the last run stopped, so
   * every key is read within ceil(keys / readBacksPerRun) runs.
   */
  async readBack(keys: { tenantId: string; projectId: string; id: string }[], correlationId: string, log: JobLog): Promise<{ readBacks: number; drifted: number }> {
    const sortKey = (k: { tenantId: string; projectId: string; id: string }) => `${k.tenantId}\u0000${k.projectId}\u0000${k.id}`;
    const sorted = keys.map((k) => ({ k, s: sortKey(k) })).sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : 0));
    if (sorted.length === 0) return { readBacks: 0, drifted: 0 };
    const cursor = this.readBackCursor;
    const after = cursor === undefined ? Math.floor(Math.random() * sorted.length) : sorted.findIndex((x) => x.s > cursor);
    const start = after < 0 ? 0 : after;
    const batch = Array.from({ length: Math.min(this.readBacksPerRun, sorted.length) }, (_, i) => sorted[(start + i) % sorted.length]!);
    let drifted = 0;
    for (const { k, s } of batch) {
      this.readBackCursor = s;
      try {
        if ((await this.sync.verify(k.tenantId, k.projectId, k.id, correlationId)) === "drifted") drifted += 1;
      } catch (err) {
        log.warn(`key lifecycle: read-back of key ${k.id}: ${err instanceof Error ? err.message : String(err)} (read again in a later run)`);
      }
    }
    if (drifted > 0) log.warn(`key lifecycle: ${drifted} key subscription(s) edited at the gateway; reported and sent anew`);
    return { readBacks: batch.length, drifted };
  }

  /** Revocation and expiry: both slots become fillers (the secrets are never valid again) and the subscription is cancelled. */
  async end(ctx: RequestContext, doc: Versioned<KeyDoc>, status: "revoked" | "expired", reason: string): Promise<void> {
    const fillerGen = doc.fillerGen + 2;
    const { rotation: _r, ...rest } = unversioned(doc);
    const next: KeyDoc = {
      ...rest,
      status,
      slots: { primary: { kind: "filler", version: `g${fillerGen - 1}` }, secondary: { kind: "filler", version: `g${fillerGen}` } },
      fillerGen,
      ...(status === "revoked" ? { revocationPending: true } : {}),
      gateway: { ...doc.gateway, desiredGen: doc.gateway.desiredGen + 1 },
      updatedAt: this.clock.now().toISOString(),
      updatedBy: ctx.principal.userId,
    };
    await this.docs.commit(ctx, doc, next, status === "revoked" ? "key.revoke" : "key.expire", status === "revoked" ? "aigov.key.revocation.requested.v1" : "aigov.key.expired.v1", {
      keyId: doc.id,
      projectId: doc.projectId,
      reason,
    });
    // Its active shares end with it: the projects it was shared with no longer list it (their records end,
    // audited and announced there). A record this misses (a crash) is ended by the sync that confirms the end.
    for (const target of new Set((doc.shares ?? []).filter((s) => s.status === "active").map((s) => s.projectId))) await this.docs.recordSharedIn(ctx, doc, target).catch(() => undefined);
    for (const slot of ["primary", "secondary"] as const) if (doc.slots[slot].kind === "secret") await this.secrets.disableRetired(doc.id, slot, doc.slots[slot].version);
    // Its shares still waiting for an approval can no longer be made (their settle rejects them): nobody is
    // asked to decide them any more. Best effort: the approval sweep withdraws what this misses (sharing.ts).
    for (const s of doc.shares ?? []) {
      if (s.status === "pending") await this.approvals?.withdraw(doc.tenantId, s.approvalId, `key ${doc.id} ${status}`, ctx.correlationId).catch(() => undefined);
    }
  }

  /** Starts a scheduled rotation: the owner collects the new secret during the overlap. */
  async beginScheduled(tenantId: string, projectId: string, id: string, overlapHours: number, correlationId: string): Promise<RotationStarted | undefined> {
    const doc = await this.docs.read(tenantId, projectId, id);
    if (!doc || doc.status !== "active" || doc.rotation) return undefined;
    return this.rotation.begin(systemContext(tenantId, "system:keys", correlationId), doc, overlapHours * 3_600_000, true, "scheduled rotation");
  }

  /** The job's per-key housekeeping: expiry notices, expiry, and gateway changes not yet confirmed. */
  async housekeep(listed: Versioned<KeyDoc>, correlationId: string): Promise<Versioned<KeyDoc> | undefined> {
    // The job lists keys in pages: act on the listed document, re-read only after acting (every write
    // is conditional, so a listed document gone stale fails the write and the job retries the key).
    const { tenantId, projectId, id } = listed;
    const ctx = systemContext(tenantId, "system:keys", correlationId);
    let doc: Versioned<KeyDoc> | undefined = listed;
    const now = this.clock.now().getTime();
    const expiresAt = Date.parse(doc.expiresAt);
    if ((doc.status === "active" || doc.status === "suspended") && expiresAt <= now) {
      await this.end(ctx, doc, "expired", "expiresAt reached");
      doc = await this.docs.read(tenantId, projectId, id);
    } else if (doc.status === "active" || doc.status === "suspended") {
      for (const [notice, ms] of NOTICES) {
        if (!doc || expiresAt - now > ms || doc.notices[notice]) continue;
        // The 14-day notice is pointless once the 1-day one is due (after downtime): send only the nearer one.
        if (notice === "14d" && expiresAt - now <= DAY_MS) continue;
        const next: KeyDoc = { ...unversioned(doc), notices: { ...doc.notices, [notice]: new Date(now).toISOString() } };
        await this.docs.commit(ctx, doc, next, `key.expiring.${notice}`, "aigov.key.expiring.v1", { keyId: id, projectId, owner: doc.owner, expiresAt: doc.expiresAt, notice });
        doc = await this.docs.read(tenantId, projectId, id);
      }
    }
    // Reconcile (unconfirmed changes, exemption moves) — during a rotation too: its steps sync the key
    // as well, but a suspension whose sync failed, or an exemption that ended, must not wait for the
    // end of an overlap that may last 30 days (syncs are one at a time per key, and idempotent).
    if (doc) await this.sync.sync(tenantId, projectId, id, correlationId);
    // A share ended whose record in the target project a crash left active (the unshare's second write) is
    // ended by the sync that confirms the share's end (gateway-sync.ts): the unshare raised the key's
    // generation, so that sync is still owed and comes from here at the latest. Nothing is read per ended
    // share on every run (a key's shares are kept for good, so that would grow with its history).
    return doc;
  }

  /**
   * One run of the lifecycle job (every key, every run: a missed run is caught up by the next and
   * running twice changes nothing): housekeeping, the driver of every rotation in progress kept alive
   * (a missing one started, a failed or terminated one started again: every step is idempotent and
   * keyed by the rotation id), and scheduled rotations of keys whose secret is due, at most `perRun`.
   * A key that fails (a concurrent write to it, a store hiccup) gets a second go at the end of the run.
   */
  async run(correlationId: string, drivers: Drivers, log: JobLog): Promise<LifecycleReport> {
    const policies = new Map<string, Promise<KeyPolicy>>();
    const policyOf = (tenantId: string, projectId: string) => {
      const k = `${tenantId}/${projectId}`;
      if (!policies.has(k)) policies.set(k, this.projects.keyPolicyOf(tenantId, projectId).then((p) => p ?? DEFAULT_KEY_POLICY));
      return policies.get(k)!;
    };
    // Leavers' keys a removal of their project role did not get to suspend (a crash, a failure) are
    // suspended first, so that nothing below treats them as in use.
    await this.projects.finishLeavers?.(correlationId).catch((err: unknown) => log.warn(`key lifecycle: leavers' keys: ${err instanceof Error ? err.message : String(err)} (retried next run)`));
    const now = this.clock.now().getTime();
    let rotations = 0;
    let deferred = 0;
    const seen: { tenantId: string; projectId: string; id: string }[] = [];
    const visit = async (listed: Versioned<KeyDoc>) => {
      const key = await this.housekeep(listed, correlationId);
      if (!key) return;
      seen.push({ tenantId: key.tenantId, projectId: key.projectId, id: key.id });
      const rotationId = key.rotation?.id;
      if (rotationId) {
        const stillRotating = async () => (await this.docs.latest(key))?.rotation?.id === rotationId;
        const outcome = await drivers.ensure(this.rotation.drive(key, rotationId), stillRotating);
        if (outcome === "restarted") log.warn(`key lifecycle: the rotation ${rotationId} of key ${key.id} had lost its orchestration; started it again`);
        return;
      }
      const policy = await policyOf(key.tenantId, key.projectId);
      if (!rotationDue(key, policy, now)) return;
      // Paced to what the management plane allows; the rest start next run.
      if (rotations >= this.perRun) {
        deferred += 1;
        return;
      }
      const started = await this.beginScheduled(key.tenantId, key.projectId, key.id, policy.rotationOverlapHours, correlationId);
      if (started) {
        await drivers.start(started.drive);
        rotations += 1;
      }
    };
    const retry: Versioned<KeyDoc>[] = [];
    for await (const key of this.docs.everyKey()) {
      await visit(key).catch((err: unknown) => {
        log.warn(`key lifecycle: key ${key.id}: ${err instanceof Error ? err.message : String(err)} (retried in this run)`);
        retry.push(key);
      });
    }
    let failures = 0;
    for (const listed of retry) {
      // Re-reading one key (a store hiccup) is that key's trouble too: the others are still retried.
      await (async () => {
        const key = await this.docs.latest(listed);
        if (key) await visit(key);
      })().catch((err: unknown) => {
        failures += 1;
        log.error(`key lifecycle: key ${listed.id} of tenant ${listed.tenantId}: ${err instanceof Error ? err.message : String(err)} (retried next run)`);
      });
    }
    if (rotations > 0 || failures > 0 || deferred > 0 || retry.length > 0) {
      log.log(`key lifecycle: ${rotations} scheduled rotation(s) started, ${deferred} due ones left for the next run, ${retry.length} key(s) retried, ${failures} failed (retried next run)`);
    }
    // Read-backs last, of keys housekeeping left in step (a retried key visited twice is read once).
    const unique = [...new Map(seen.map((k) => [`${k.tenantId}/${k.projectId}/${k.id}`, k])).values()];
    const { readBacks, drifted } = await this.readBack(unique, correlationId, log);
    return { rotations, deferred, retried: retry.length, failures, readBacks, drifted };
  }
}
