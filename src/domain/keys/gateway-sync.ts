import { randomUUID } from "node:crypto";
import type { Clock } from "../../ports/clock.js";
import { canonicalJson } from "../../util/canonical-json.js";
import { artifactHash, artifactRef, expectedReadBack, readBackHash, type SubscriptionReadBack } from "../../ports/gateway.js";
import { unversioned, type Versioned } from "../../ports/store.js";
import { systemContext } from "../kernel/system.js";
import { keyEnded, profileDefOf, type KeyDoc, type KeyDocuments } from "./documents.js";
import type { GatewayAccess } from "./gateway-access.js";
import type { SecretResolver } from "./secrets.js";
import { stopsInPlace, subscriptionFor } from "./subscription.js";

export type SyncResult = "synced" | "waitingForProfile" | "waitingForPublish";
/** A read-back of a key's subscription: as recorded, drifted (reported and sent anew), or not in step (the sync's to finish). */
export type VerifyResult = "inSync" | "drifted" | "skipped";

/** Which parts of a subscription the gateway holds differently; never the secrets themselves, only whether they differ. */
function differences(held: SubscriptionReadBack | undefined, want: SubscriptionReadBack): string[] {
  if (!held) return ["missing"];
  const out: string[] = [];
  if (held.state !== want.state) out.push("state");
  if (canonicalJson(held.scope) !== canonicalJson(want.scope)) out.push("scope");
  if (held.displayName !== want.displayName) out.push("displayName");
  if (held.primaryKeyFingerprint !== want.primaryKeyFingerprint || held.secondaryKeyFingerprint !== want.secondaryKeyFingerprint) out.push("secrets");
  return out.length ? out : ["other"];
}

const SYNC_ATTEMPTS = 24;
/** How long a sync may hold a key before another may take over (a crashed sync's claim expires). */
const SYNC_CLAIM_MS = 60_000;

function withoutExemptionTier(g: KeyDoc["gateway"]): KeyDoc["gateway"] {
  const { publishedExemptionTier: _x, ...rest } = g;
  return rest;
}

/**
 * Gateway sync is confirmed (ADR 008): a key's subscription is published (If-Match), read back and
 * only then recorded as synced. One sync per key at a time (a claim on the key document).
 */
export class KeyGatewaySync {
  constructor(
    private readonly docs: KeyDocuments,
    private readonly resolveSecret: SecretResolver,
    private readonly gateway: GatewayAccess,
    private readonly clock: Clock,
  ) {}

  /**
   * Publishes the key's subscription and confirms it by reading it back. Idempotent; safe to call
   * from any step and from the jobs. "waitingForProfile": the key's product is not at the gateway yet
   * (a tenant publish has been asked for).
   */
  async sync(tenantId: string, projectId: string, id: string, correlationId: string): Promise<SyncResult> {
    for (let attempt = 0; attempt < SYNC_ATTEMPTS; attempt++) {
      const doc = await this.docs.read(tenantId, projectId, id);
      if (!doc) return "synced";
      const live = doc.status === "active" || doc.status === "suspended";
      // Ended before any sync ever took it up (never claimed, so never published: a sync claims the key
      // before it publishes and records what it sent or "unconfirmed"): the gateway holds no subscription to
      // stop, so the end is confirmed as it is — instead of waiting for a publish of a project nobody
      // published, or one deleted as the key was created, which would never come.
      if (!live && doc.gateway.syncing === undefined && doc.gateway.publishedHash === undefined && doc.gateway.syncedGen === 0) {
        const { waitingFor: _w, ...gateway } = doc.gateway;
        const next: KeyDoc = { ...unversioned(doc), gateway: { ...gateway, syncedGen: doc.gateway.desiredGen }, ...(doc.revocationPending ? { revocationPending: false } : {}) };
        const ctx = systemContext(tenantId, "system:keys", correlationId);
        const written = doc.revocationPending
          ? await this.docs.putAnnounced(ctx, next, doc._etag, "key.revoke.confirm", "aigov.key.revoked.v1", { status: "revoked" }, { keyId: id, projectId })
          : await this.docs.put(next, doc._etag);
        if (written) return "synced";
        continue;
      }
      const exempted = live ? await this.gateway.exemptionTier(tenantId, projectId, id) : undefined;
      const artifact = subscriptionFor(doc, this.gateway.names(tenantId), exempted?.id);
      // In step when every change was confirmed and the subscription is still what it should be (an
      // exemption starting or ending moves it to another product without a change to the key; a new
      // gateway key for the tenant names it anew).
      if (doc.gateway.syncedGen >= doc.gateway.desiredGen && doc.gateway.publishedHash === artifactHash(artifact) && doc.gateway.subscriptionId === artifact.id) return "synced";
      const parent = artifact.scope.type === "product" ? `product:${artifact.scope.productId}` : `api:${artifact.scope.apiId}`;
      if (!(await this.gateway.holds(tenantId, parent))) {
        // An end already confirmed (a stopped subscription read back, or a key that never reached the
        // gateway) under a product the gateway does not hold: no subscription of it can be there either, so
        // nothing to send and no publish to ask for — a key of a project nobody published would ask at every
        // lifecycle run, and again after an instance move marked it to be sent anew.
        if (!live && doc.gateway.syncedGen >= doc.gateway.desiredGen && !doc.revocationPending) return "synced";
        const asked = await this.gateway.ensurePublished(tenantId, { by: "system:keys", reason: `virtual key ${id} needs ${parent}`, correlationId });
        // The system publishes a key's product on top of what is published, never a project nobody
        // published: the key says it waits for that publish (housekeeping, not an audited change).
        const waitingFor = asked.needsPublish || !(await this.gateway.holds(tenantId, `api:${this.gateway.names(tenantId).api(projectId)}`)) ? "publish" : undefined;
        if (doc.gateway.waitingFor !== waitingFor) {
          const { waitingFor: _w, ...rest } = doc.gateway;
          await this.docs.put({ ...unversioned(doc), gateway: { ...rest, ...(waitingFor ? { waitingFor } : {}) } }, doc._etag);
        }
        return waitingFor ? "waitingForPublish" : "waitingForProfile";
      }
      // One publisher per key at a time: a sync that published an older state must never record
      // itself over a newer one, so each sync claims the key first and records only while it holds it.
      const now = this.clock.now().getTime();
      if (doc.gateway.syncing && Date.parse(doc.gateway.syncing.until) > now) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(250, 25 * (attempt + 1))));
        continue;
      }
      const claim = { token: randomUUID(), until: new Date(now + SYNC_CLAIM_MS).toISOString() };
      if (!(await this.docs.put({ ...unversioned(doc), gateway: { ...doc.gateway, syncing: claim } }, doc._etag))) continue;
      const release = async (extra: Partial<KeyDoc["gateway"]> = {}) => {
        for (;;) {
          const cur = await this.docs.read(tenantId, projectId, id);
          if (!cur || cur.gateway.syncing?.token !== claim.token) return;
          const { syncing: _s, ...gateway } = cur.gateway;
          if (await this.docs.put({ ...unversioned(cur), gateway: { ...gateway, ...extra } }, cur._etag)) return;
        }
      };
      const publisher = await this.gateway.publisher(tenantId);
      const ref = artifactRef(artifact);
      const hash = artifactHash(artifact);
      // The subscription published under the tenant's former gateway key (an operator assigned a new one)
      // goes in the same call: it holds the same secret, and left active it would go on admitting the key
      // under the old product — or after a revocation confirmed only on the new one.
      const former = doc.gateway.subscriptionId && doc.gateway.subscriptionId !== artifact.id ? (`subscription:${doc.gateway.subscriptionId}` as const) : undefined;
      // A key synced before subscription ids were recorded: whichever key the tenant held then named it, so
      // the names under every key it held on this instance before the current one go (a missing one is a no-op).
      const legacy = doc.gateway.subscriptionId === undefined && doc.gateway.publishedHash !== undefined ? await this.gateway.formerSubscriptions(tenantId, doc.id) : [];
      const held: Record<string, string> = former
        ? { [former]: doc.gateway.publishedHash ?? "unconfirmed" }
        : { ...Object.fromEntries(legacy.map((id) => [`subscription:${id}`, "unconfirmed"])), ...(doc.gateway.publishedHash ? { [ref]: doc.gateway.publishedHash } : {}) };
      let back;
      let expected;
      try {
        await publisher.publish([artifact], held);
        back = (await publisher.read([ref]))[ref];
        expected = await expectedReadBack(artifact, this.resolveSecret);
      } catch (err) {
        // What the gateway holds is unknown now: the next sync publishes again.
        await release({ publishedHash: "unconfirmed" }).catch(() => undefined);
        throw err;
      }
      if (!back || readBackHash(back) !== readBackHash(expected)) {
        // Sent, but not (yet) what the gateway answers with: publish again next attempt.
        await release({ publishedHash: "unconfirmed" });
        continue;
      }
      const gen = doc.gateway.desiredGen;
      for (;;) {
        const cur = await this.docs.read(tenantId, projectId, id);
        if (!cur) return "synced";
        if (cur.gateway.syncing?.token !== claim.token) {
          // The claim lapsed while this sync published and another took over: which of the two publishes
          // the gateway got last is unknown, so neither confirmation stands — the next sync publishes again.
          if (cur.gateway.publishedHash === "unconfirmed" || (await this.docs.put({ ...unversioned(cur), gateway: { ...cur.gateway, publishedHash: "unconfirmed" } }, cur._etag))) break;
          continue;
        }
        if (cur.gateway.publishedHash === "unconfirmed" && doc.gateway.publishedHash !== "unconfirmed") {
          // A sync whose claim had lapsed published after this one read back: this confirmation does not stand.
          await release({ publishedHash: "unconfirmed" });
          break;
        }
        const confirmed = cur.gateway.desiredGen === gen;
        const { syncing: _s, ...gatewayRest } = cur.gateway;
        // Stopped in place, the subscription is where it was: so is its recorded placement.
        const inPlace = stopsInPlace(doc);
        const next: KeyDoc = {
          ...unversioned(cur),
          gateway: {
            ...(inPlace ? gatewayRest : withoutExemptionTier(gatewayRest)),
            waitingFor: undefined,
            subscriptionId: artifact.id,
            publishedHash: hash,
            publishedProfile: inPlace ? gatewayRest.publishedProfile! : profileDefOf(doc),
            // The exemption tier the subscription is on stays compiled until the key has left it.
            ...(!inPlace && exempted ? { publishedExemptionTier: exempted } : {}),
            ...(confirmed ? { syncedGen: gen } : {}),
          },
          ...(confirmed && cur.revocationPending ? { revocationPending: false } : {}),
        };
        // A confirmed revocation: now, and only now, the key is revoked as far as anyone can tell — said in
        // the same batch that records it, so a failure cannot leave one without the other.
        // Shares ended since the last confirmation: the key has left the products that reached those projects.
        const sharesEnded = confirmed ? (cur.shares ?? []).filter((x) => x.status === "revoked" && x.revokedAtGen !== undefined && x.revokedAtGen > cur.gateway.syncedGen && x.revokedAtGen <= gen).map((x) => x.projectId) : [];
        // A key that ended: its shares ended with it (their records end when it does; repaired here when that write was lost).
        const endedWithKey = confirmed && keyEnded(cur) && cur.gateway.syncedGen < gen ? (cur.shares ?? []).filter((x) => x.status === "active").map((x) => x.projectId) : [];
        let written: boolean;
        try {
          const ctx = systemContext(tenantId, "system:keys", correlationId);
          // Each ended share's record in its target project ended first (idempotent: one that agrees is only
          // read), so a confirmed end has a record that says so — repaired here, once per ended share, when an
          // unshare's second write was lost (a crash), and never read again by later runs.
          for (const target of new Set([...sharesEnded, ...endedWithKey])) await this.docs.recordSharedIn(ctx, cur, target);
          written =
            confirmed && cur.revocationPending
              ? await this.docs.putAnnounced(ctx, next, cur._etag, "key.revoke.confirm", "aigov.key.revoked.v1", { status: "revoked" }, { keyId: id, projectId })
              : sharesEnded.length
                ? await this.docs.putAnnounced(ctx, next, cur._etag, "key.share.revoke.confirm", "aigov.key.share.revocation.confirmed.v1", { sharesEnded }, { keyId: id, projectId, toProjects: sharesEnded })
                : await this.docs.put(next, cur._etag);
        } catch (err) {
          // Not recorded: the claim goes (the next sync need not wait for it to lapse) and publishes again.
          await release({ publishedHash: "unconfirmed" }).catch(() => undefined);
          throw err;
        }
        if (!written) continue;
        if (confirmed) return "synced";
        break; // a newer change arrived while publishing: publish it too
      }
    }
    throw new Error(`key ${id}: the gateway did not confirm the subscription after ${SYNC_ATTEMPTS} attempts`);
  }

  /**
   * The periodic read-back (the lifecycle job, a bounded number of keys a run): what the gateway holds for a
   * key in step — its state, its product or API, and its secrets (fingerprints only: the secrets or the
   * fillers of an ended key) — compared with what the key document says it should be. An edit made at the
   * gateway (a suspended key set active in the portal, moved to another product, a cancelled one revived)
   * is audited and announced (`aigov.key.drift.detected.v1`, which parts differ, never a secret) and the
   * subscription is sent anew (the sync re-asserts it). Only the tenant's own subscription is read, on the
   * tenant's gateway. A key not in step (a change unconfirmed, a sync holding it) is the sync's: skipped.
   */
  async verify(tenantId: string, projectId: string, id: string, correlationId: string): Promise<VerifyResult> {
    const doc = await this.docs.read(tenantId, projectId, id);
    if (!doc) return "skipped";
    const g = doc.gateway;
    if (g.publishedHash === undefined || g.publishedHash === "unconfirmed" || g.syncedGen < g.desiredGen || doc.revocationPending) return "skipped";
    if (g.syncing && Date.parse(g.syncing.until) > this.clock.now().getTime()) return "skipped";
    // A move between instances pending: the configured instance does not hold the tenant's keys yet, the old one still does.
    if (this.gateway.settled && !(await this.gateway.settled(tenantId))) return "skipped";
    const live = doc.status === "active" || doc.status === "suspended";
    const exempted = live ? await this.gateway.exemptionTier(tenantId, projectId, id) : undefined;
    const artifact = subscriptionFor(doc, this.gateway.names(tenantId), exempted?.id);
    if (g.publishedHash !== artifactHash(artifact) || g.subscriptionId !== artifact.id) return "skipped";
    const ref = artifactRef(artifact);
    const got = (await (await this.gateway.publisher(tenantId)).read([ref]))[ref];
    const held = got?.kind === "subscription" ? got : undefined;
    // An ended key's subscription gone from the gateway admits nobody: nothing to put back.
    if (!held && !live) return "inSync";
    const want = (await expectedReadBack(artifact, this.resolveSecret)) as SubscriptionReadBack;
    if (held && readBackHash(held) === readBackHash(want)) return "inSync";
    const differs = differences(held, want);
    const found = held ? { state: held.state, scope: held.scope } : { missing: true };
    // Recorded only if the key did not change since it was read (If-Match): a sync that claimed it meanwhile
    // changed the gateway under the read-back, so what differs may be that sync. "unconfirmed" makes the
    // sync publish the subscription again instead of trusting the recorded hash.
    const next: KeyDoc = { ...unversioned(doc), gateway: { ...g, publishedHash: "unconfirmed" } };
    const ctx = systemContext(tenantId, "system:keys", correlationId);
    const announced = await this.docs.putAnnounced(ctx, next, doc._etag, "key.drift.detect", "aigov.key.drift.detected.v1", { differs, held: found, expected: { state: want.state, scope: want.scope } }, {
      keyId: id,
      projectId,
      subscription: artifact.id,
      differs,
      held: found,
    });
    if (!announced) return "skipped";
    console.warn(`key ${id}: the gateway's subscription differs from the key (${differs.join(", ")}); reported and sent anew`);
    await this.sync(tenantId, projectId, id, correlationId);
    return "drifted";
  }

  /** A gateway change right away when the gateway answers; otherwise the key stays "pending" and the job retries. */
  async trySync(tenantId: string, projectId: string, id: string, correlationId: string): Promise<Versioned<KeyDoc> | undefined> {
    try {
      await this.sync(tenantId, projectId, id, correlationId);
    } catch (err) {
      console.warn(`key ${id}: gateway change not confirmed yet (${err instanceof Error ? err.message : String(err)}); the key lifecycle job retries`);
    }
    return this.docs.read(tenantId, projectId, id);
  }

  /**
   * After a revision reached the gateway: keys whose change the gateway has not confirmed (most often a
   * new key waiting for its profile's product) are synced now instead of at the lifecycle job's next
   * run. Best effort: a key that fails here stays pending and the job retries it.
   */
  async syncWaiting(tenantId: string, projectIds: string[], correlationId: string): Promise<number> {
    let synced = 0;
    for (const projectId of projectIds) {
      for await (const doc of this.docs.inProject(tenantId, projectId)) {
        // Waiting: a change not confirmed, a subscription to write anew (a new gateway key, or a new instance: "unconfirmed").
        if (doc.gateway.syncedGen >= doc.gateway.desiredGen && doc.gateway.subscriptionId === this.gateway.names(tenantId).subscription(doc.id) && doc.gateway.publishedHash !== "unconfirmed") continue;
        try {
          if ((await this.sync(tenantId, projectId, doc.id, correlationId)) === "synced") synced++;
        } catch {
          // Left pending: the key lifecycle job retries unconfirmed keys.
        }
      }
    }
    return synced;
  }
}
