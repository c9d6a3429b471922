import { createHash } from "node:crypto";
import { systemClock, type Clock } from "../../ports/clock.js";
import type { BatchOp, Partition, Store, StoredDoc, Versioned } from "../../ports/store.js";
import { jitter } from "../kernel/contention.js";
import type { ChangeWriter } from "../changes.js";
import type { RequestContext } from "../common.js";
import { MAX_PROJECT_KEY_TIERS } from "../../policy/input.js";
import { AppError, fail, notFound, type DomainError } from "../errors.js";
import { Collection } from "../kernel/collection.js";
import { everyDoc, toArray } from "../paging.js";
import type { Key, KeyLimits, KeyScopes } from "./schema.js";

export type SlotName = "primary" | "secondary";
export type KeyStatus = "active" | "suspended" | "revoked" | "expired";
export const otherSlot = (s: SlotName): SlotName => (s === "primary" ? "secondary" : "primary");

/** A slot of the key's APIM subscription: a real secret (in the secret store) or a filler nobody knows. */
export interface Slot {
  kind: "secret" | "filler";
  /** Secret store version (secrets) or generation (fillers). */
  version: string;
}

export interface Rotation {
  id: string;
  phase: "overlap" | "retiring";
  newSlot: SlotName;
  overlapMs: number;
  overlapUntil?: string;
  startedAt: string;
  startedBy: string;
  scheduled: boolean;
  /** Set when retiring: the secret version the filler replaced (disabled once the gateway confirmed). */
  retiredVersion?: string;
}

/** A key tier made by a key-scope exemption, as the compiler input holds it. */
export interface ExemptionTier {
  id: string;
  tier: { id: string; description?: string; limits: Record<string, unknown>; models?: string[] };
}

/** What decides a key's product: its model scope, its limits and the projects it is shared with. */
export interface ProfileDef {
  id: string;
  /** Model ids, sorted; empty: every model of the project — unless `noModels`. */
  models: string[];
  /** The key's model scope is an empty list: it reaches no model (a key for tools or agents only). */
  noModels?: true;
  /** Tool scope entries (srv_…, srv_…/<tool>, tbx_…), sorted; absent on profiles published before tools existed. */
  tools?: string[];
  /** Agent ids, sorted; absent on profiles published before agents existed. */
  agents?: string[];
  limits: KeyLimits;
  sharedWith: string[];
}

export interface KeyDoc extends StoredDoc {
  docType: "virtualKey";
  projectId: string;
  name: string;
  description?: string;
  owner: string;
  scopes: KeyScopes;
  limits: KeyLimits;
  expiresAt: string;
  status: KeyStatus;
  /**
   * Who suspended it, where that limits who or what resumes it; cleared by any change of status.
   * - `projectLock`: a sandbox's lock (the lifecycle sweep; a key request approved while it is locked); the
   *   extension resumes such a key, and the sweep does in a project that is not locked (a lock it lost a
   *   race to an extension). A person may suspend it too: then the suspension is the person's, and stays.
   * - `agentHold`: the key of an agent that was blocked or disabled (agents pillar); only that agent's
   *   unblocking or enabling resumes it (a person's resume is refused while the agent is held).
   * - `admin`: an admin, of a key someone else holds: only an admin resumes it.
   * - `roleRemoved`: its owner lost their last project role that may hold keys (an admin's edit of the
   *   project, an access review's deny); giving a key-holding role back resumes it. Until then only its
   *   owner resumes it, and only while holding such a role by another way (a tenant role in their token);
   *   an admin's resume is refused (409 `key_owner_without_role`) while the owner holds no such project role.
   */
  suspendedBy?: "projectLock" | "agentHold" | "admin" | "roleRemoved";
  /**
   * Internal (never in the key's view): a person's suspension (the owner's or an admin's) of a key whose owner
   * lost their last project role that may hold keys (ADR 026). The removal leaves such a suspension the
   * person's, but holds the key for the leaver: while the mark is on and the owner holds no such role, every
   * resume is refused (409 `key_owner_without_role`), as for `roleRemoved`. Giving the role back clears it
   * (the key stays suspended: the suspension is still the person's).
   */
  leaverHold?: true;
  prefix: string;
  last4: string;
  /** The slot holding the secret the owner is meant to use now. */
  current: SlotName;
  slots: Record<SlotName, Slot>;
  rotation?: Rotation;
  /** A scheduled rotation's new secret, until its owner collects it (it outlives the rotation itself). */
  pickup?: { slot: SlotName; version: string };
  /**
   * desiredGen grows with every change the gateway must learn; syncedGen is the last one it confirmed.
   * publishedProfile: the profile the gateway's subscription is on now — kept in the compiled tenant
   * until the subscription has moved, so its product is never deleted from under it.
   */
  gateway: {
    /** The key's APIM subscription id (names.ts: the tenant's gateway key + the key id). */
    subscriptionId?: string;
    desiredGen: number;
    syncedGen: number;
    publishedHash?: string;
    publishedProfile?: ProfileDef;
    publishedExemptionTier?: ExemptionTier;
    /** The sync publishing this key now (one at a time), until `until`. */
    syncing?: { token: string; until: string };
    /** "publish": the key's project is not at the gateway yet; automation does not publish a project, a TenantAdmin does. */
    waitingFor?: "publish";
  };
  shares: ShareDoc[];
  /** A key requested where keys need an approval (keyPolicy.requireApproval): suspended until it is approved. */
  approval?: { approvalId: string; state: "pending" | "approved" | "rejected"; requestedBy: string; requestedAt: string; decidedAt?: string };
  revocationPending?: boolean;
  /** Expiry notices sent ("14d", "1d") → when. */
  notices: Record<string, string>;
  secretCreatedAt: string;
  rotationCount: number;
  lastRotatedAt?: string;
  fillerGen: number;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
  updatedBy: string;
}

export interface ShareDoc {
  projectId: string;
  status: "pending" | "active" | "rejected" | "revoked";
  approvalId: string;
  requestedBy: string;
  requestedAt: string;
  decidedAt?: string;
  /** A share ended while the key was on the shared product: the gateway generation that moves it off (revocationPending until confirmed). */
  revokedAtGen?: number;
}

/** Index in the target project of a key shared into it (so the key is visible there). */
interface SharedInDoc extends StoredDoc {
  docType: "keyShareIn";
  fromProject: string;
  keyId: string;
  status: "active" | "revoked";
}

/**
 * The guard on a project's key tiers (ADR 008; in the project partition): every write that may add a key
 * profile (a key created with a profile, new scopes or limits, a share made) takes it in the same batch, with
 * a conditional write, after it has read it and counted the places; and a key exemption request reserves its
 * key's place in it (`exemptionPlaces`) before its exemption is written (in the tenant partition: no batch
 * holds both). So of two writers taking the last place at the same moment, the second's write fails on the
 * guard and it is counted again with the first: never both on one place.
 *
 * The tiers a project accepts from keys shared into it are counted here too: a key of another project is
 * written in its own partition, so a write that may add such tiers (a share made, a shared key's new scopes
 * or limits) first reserves them in each target's guard (`acceptedPlaces`), counted with every other
 * reservation there; the reservation is released once the key's write and the target's record of it
 * (which the count then reads) are written, or lapses.
 */
interface KeyTierGuardDoc extends StoredDoc {
  docType: "keyTierGuard";
  /** How many writes took the guard. */
  seq: number;
  /** Key id → until when a key exemption's request holds its place here (by then its exemption is written, and counted as open). */
  exemptionPlaces?: Record<string, string>;
  /** "<source project>/<key id>" → the (source project, profile) pairs a key shared into this project holds here while it is written, and until when. */
  acceptedPlaces?: Record<string, { until: string; pairs: string[] }>;
}
const KEY_TIER_GUARD = "keyTierGuard";
/** How long a key exemption request's reservation holds a place (its exemption is written right after it; a crash in between frees it then). */
export const EXEMPTION_PLACE_RESERVATION_MS = 10 * 60 * 1000;
/** How often a write that may add a key profile is tried when another such write took the guard first. */
const TIER_GUARD_ATTEMPTS = 20;

/** A conditional write of the project's guard on key tiers, for the batch of a write that may add a key profile. */
export interface TierGuard {
  op: BatchOp;
}

/** The write lost its project's guard on key tiers to another writer (counted again by the caller). */
const TIER_GUARD_LOST = "another change of the project's key tiers was written meanwhile; try again";
const tierGuardLost = (): DomainError => ({ kind: "conflict", detail: TIER_GUARD_LOST, reason: "changed_meanwhile" });
export const lostTierGuard = (err: unknown): boolean => err instanceof AppError && err.error.kind === "conflict" && err.error.detail === TIER_GUARD_LOST;

export const keyPath = (projectId: string, id: string) => `/projects/${projectId}/keys/${id}`;
const KEY_ID = /^key_[0-9a-z]{20}$/;

/** The key's profile: "" (none: a subscription on the project API) or a product of its own kind. */
export function profileDefOf(doc: Pick<KeyDoc, "scopes" | "limits"> & { shares?: ShareDoc[] }): ProfileDef {
  const models = [...(doc.scopes.models ?? [])].sort();
  // Absent: every model of the project. Empty: none.
  const noModels = doc.scopes.models !== undefined && models.length === 0;
  const tools = [...new Set(doc.scopes.tools ?? [])].sort();
  const agents = [...new Set(doc.scopes.agents ?? [])].sort();
  const limits = doc.limits;
  const sharedWith = (doc.shares ?? []).filter((x) => x.status === "active").map((x) => x.projectId).sort();
  if (models.length === 0 && !noModels && tools.length === 0 && agents.length === 0 && Object.keys(limits).length === 0 && sharedWith.length === 0) return { id: "", models, tools, agents, limits, sharedWith };
  // Tools, agents, a content-safety level and "no models" join the canonical form only when set, so older
  // profiles keep their ids ("no-models" is last and is none of the other elements' values).
  const extra = [
    ...(tools.length || agents.length || limits.contentSafety ? [tools] : []),
    ...(agents.length || limits.contentSafety ? [agents] : []),
    ...(limits.contentSafety ? [limits.contentSafety] : []),
    ...(noModels ? ["no-models"] : []),
  ];
  const canonical = JSON.stringify([models, limits.tokensPerMinute ?? null, limits.tokenQuota ?? null, limits.requestsPerMinute ?? null, limits.budget ?? null, sharedWith, ...extra]);
  return { id: `kp_${createHash("sha256").update(canonical).digest("hex").slice(0, 10)}`, models, ...(noModels ? { noModels } : {}), tools, agents, limits, sharedWith };
}

/** A key as the caps read it: stored, or as a change would leave it (a key not made yet has no id). */
export type ProfileHolder = Pick<KeyDoc, "projectId" | "scopes" | "limits" | "status"> & { id?: string; shares?: ShareDoc[]; gateway?: Pick<KeyDoc["gateway"], "publishedProfile"> };

/**
 * Shares whose every combination a key holds a profile for; a key shared with more projects than this
 * (only possible before the caps counted them: 2^6 profiles are more than a project holds) holds those
 * of each single share's end and of all of them.
 */
const MAX_RESERVED_SHARES = 6;

/**
 * The profiles a key holds against the caps on key profiles (ADR 008): its own, the one its subscription
 * is on (compiled until it has moved), and — while it has not ended — every profile ending some of its
 * active shares would give it (one for each subset of the projects it is shared with). Ending a share (an
 * unshare, an access review's deny) is a safety action that must never be refused nor need room that may
 * be gone by then: the profile it moves the key to was counted against the caps all along, so it is never
 * a profile the project's gateway document cannot hold.
 */
export function profilesHeldBy(doc: ProfileHolder): ProfileDef[] {
  const out = new Map<string, ProfileDef>();
  const add = (d: ProfileDef) => {
    if (d.id && !out.has(d.id)) out.set(d.id, d);
  };
  const own = profileDefOf(doc);
  add(own);
  if (doc.gateway?.publishedProfile) add(doc.gateway.publishedProfile);
  if (keyEnded(doc)) return [...out.values()]; // its shares end with it, and its profile stays as it is
  const targets = own.sharedWith;
  const subsets =
    targets.length <= MAX_RESERVED_SHARES
      ? Array.from({ length: 2 ** targets.length }, (_, mask) => targets.filter((_t, i) => (mask >> i) & 1))
      : [[], ...targets.map((t) => targets.filter((x) => x !== t))];
  for (const keep of subsets) add(profileDefOf({ scopes: doc.scopes, limits: doc.limits, shares: keep.map((projectId) => ({ projectId, status: "active" }) as ShareDoc) }));
  return [...out.values()];
}

/**
 * A profile is a key tier of its project (a product; ADR 008), and a project's gateway document holds at
 * most MAX_PROJECT_KEY_TIERS of them. Profiles of revoked and expired keys stay in their own project (their
 * cancelled subscriptions stay on their products; the projects they were shared with no longer accept
 * them: acceptedInUse), so a key whose profiles (profilesHeldBy) would take the project past the cap is
 * refused (409 key_profiles_exhausted) — compiled, it would set the whole project aside at the next publish.
 * `next`: the key as the change would leave it (its stored document, if any, is counted as `next` instead).
 */
export async function roomForProfile(docs: TierPlaceReader, tenantId: string, next: ProfileHolder): Promise<void> {
  const inUse = await profilesInUse(docs, tenantId, next);
  if (inUse === undefined) return;
  fail({ kind: "conflict", detail: `project ${next.projectId} already has ${inUse} key profiles (distinct scopes, limits and shares, and those the key's shares would leave it with when they end), the most its gateway document holds; give this key the scopes and limits of an existing one`, reason: "key_profiles_exhausted" });
}

/**
 * Room for the key's profiles in its own project and among the tiers each project it is shared with
 * accepts (a share begun, a share asked for, new scopes or limits of a shared key): 409
 * key_profiles_exhausted otherwise.
 */
export async function roomForShared(docs: TierPlaceReader & Pick<KeyDocuments, "sharedIntoAll" | "read"> & Partial<Pick<KeyDocuments, "acceptedReservations">>, tenantId: string, next: ProfileHolder): Promise<void> {
  await roomForProfile(docs, tenantId, next);
  for (const target of profileDefOf(next).sharedWith) await roomAccepted(docs, tenantId, target, next);
}

/** Room among the tiers `target` accepts for the key `next` (409 key_profiles_exhausted otherwise). */
async function roomAccepted(docs: Pick<KeyDocuments, "sharedIntoAll" | "read"> & Partial<Pick<KeyDocuments, "acceptedReservations">>, tenantId: string, target: string, next: ProfileHolder): Promise<void> {
  const accepted = await acceptedInUse(docs, tenantId, target, next);
  if (accepted !== undefined) fail({ kind: "conflict", detail: `project ${target} already accepts ${accepted} shared key profiles, the most its gateway document holds`, reason: "key_profiles_exhausted" });
}

/**
 * Whether the key has ended (revoked or expired): it works nowhere again, so no project it was shared
 * with accepts its profile any more (profiles.ts) — its shares stay on its document as history (and read
 * revoked: shareStatusOf), and its profile stays compiled in its own project only (its cancelled
 * subscription is on that product).
 */
export const keyEnded = (doc: Pick<KeyDoc, "status">): boolean => doc.status === "revoked" || doc.status === "expired";

/** The (project, profile) pairs of the key a project it is shared with accepts, or holds room for (profilesHeldBy). */
const acceptedFrom = (doc: ProfileHolder, target: string): string[] => (keyEnded(doc) ? [] : profilesHeldBy(doc).filter((d) => d.sharedWith.includes(target)).map((d) => `${doc.projectId}/${d.id}`));

/**
 * A project accepts the profiles of keys shared into it as key tiers too, at most MAX_PROJECT_KEY_TIERS
 * (source project, profile) pairs; how many it has when the key `next` would take it past that, else
 * undefined. The target's records only say where to look: the key's document decides, as the compiler's
 * input does (profiles.ts) — a profile counts only when it is shared with the target, so a record a crash
 * left active after its share ended takes no room, and only while the key has not ended: a revoked or
 * expired key's profile is accepted nowhere else, so it frees its place at once. Records of ended shares
 * are read too: until its subscription has moved, an unshared key's old profile is still accepted there.
 */
export async function acceptedInUse(docs: Pick<KeyDocuments, "sharedIntoAll" | "read"> & Partial<Pick<KeyDocuments, "acceptedReservations">>, tenantId: string, target: string, next: ProfileHolder): Promise<number | undefined> {
  const inUse = new Set<string>();
  // Places other keys' writes reserved here (ADR 008): their key documents or records may not be written yet.
  for (const [holder, pairs] of (await docs.acceptedReservations?.(tenantId, target)) ?? []) if (holder !== `${next.projectId}/${next.id}`) for (const pair of pairs) inUse.add(pair);
  for await (const s of docs.sharedIntoAll(tenantId, target)) {
    if (s.fromProject === next.projectId && s.keyId === next.id) continue;
    const doc = await docs.read(tenantId, s.fromProject, s.keyId);
    if (doc) for (const pair of acceptedFrom(doc, target)) inUse.add(pair);
  }
  const added = acceptedFrom(next, target).filter((pair) => !inUse.has(pair));
  return added.length === 0 || inUse.size + added.length <= MAX_PROJECT_KEY_TIERS ? undefined : inUse.size;
}

/** What the caps on a project's key tiers read: its keys, and (when wired) which of them a key exemption is open for. */
export type TierPlaceReader = Pick<KeyDocuments, "listAll"> & Partial<Pick<KeyDocuments, "exemptedKeys">>;

/**
 * The places a key exemption takes among its project's key tiers (ADR 007, ADR 008): one per key that a
 * key exemption is open for (requested, approved or in force: held from its request on, so an exemption
 * approved while there was room always has it) or whose subscription is still on an exemption tier (that
 * tier stays compiled until the key has moved back). Keys with the same relaxed limits may share one tier:
 * one place per key is never fewer than the compiler uses in the steady state.
 */
async function exemptionPlaces(docs: TierPlaceReader, tenantId: string, projectId: string, keys: readonly KeyDoc[]): Promise<Set<string>> {
  const open = (await docs.exemptedKeys?.(tenantId, projectId)) ?? new Set<string>();
  return new Set(keys.filter((d) => d.gateway.publishedExemptionTier || open.has(d.id)).map((d) => `exemption of ${d.id}`));
}

/**
 * How many key tiers (profiles, and the places key exemptions take) the project has when the key `next`
 * would take it past the cap; undefined when it fits.
 */
export async function profilesInUse(docs: TierPlaceReader, tenantId: string, next: ProfileHolder): Promise<number | undefined> {
  const all = await docs.listAll(tenantId, next.projectId);
  // A key's exemption place does not change with its profile: the baseline counts it, the key's own included.
  const others = new Set([...all.filter((d) => d.id !== next.id).flatMap((d) => profilesHeldBy(d).map((x) => x.id)), ...(await exemptionPlaces(docs, tenantId, next.projectId, all))]);
  const added = profilesHeldBy(next).filter((x) => !others.has(x.id));
  return added.length === 0 || others.size + added.length <= MAX_PROJECT_KEY_TIERS ? undefined : others.size;
}

/**
 * Room for a key exemption of `keyId` among its project's key tiers (its exemption tier is one): 409
 * key_profiles_exhausted when the project already has the most its gateway document holds. Compiled, a
 * 41st tier would set the whole project aside at the next publish (every key of it off the gateway); the
 * place is held from the request on, so no key profile made later can take it.
 */
export async function roomForExemption(docs: TierPlaceReader, tenantId: string, projectId: string, keyId: string): Promise<void> {
  const all = await docs.listAll(tenantId, projectId);
  const places = new Set([...all.flatMap((d) => profilesHeldBy(d).map((x) => x.id)), ...(await exemptionPlaces(docs, tenantId, projectId, all))]);
  if (places.has(`exemption of ${keyId}`) || places.size < MAX_PROJECT_KEY_TIERS) return;
  fail({
    kind: "conflict",
    detail: `project ${projectId} already has ${places.size} key tiers (key profiles and key exemptions' tiers), the most its gateway document holds; a key exemption needs one more — exempt the project or a model instead, or end another key exemption of the project`,
    reason: "key_profiles_exhausted",
  });
}

export const profileOf = (doc: Pick<KeyDoc, "scopes" | "limits"> & { shares?: ShareDoc[] }): string => profileDefOf(doc).id;

export function statusOf(doc: KeyDoc): Key["status"] {
  return doc.status === "revoked" && doc.revocationPending ? "revocationPending" : doc.status;
}

/**
 * A share is reported revoked only once the gateway has moved the key off the shared product, as a key's
 * revocation is. A key that ended (revoked, expired) is shared with nobody: its active shares ended with it
 * (its document keeps them as they were, so its profile — the product its cancelled subscription is on —
 * stays as it is), and read as its own end does — `revocationPending` until the gateway confirmed it.
 */
export function shareStatusOf(doc: Pick<KeyDoc, "gateway" | "status" | "revocationPending">, share: ShareDoc): Key["shares"][number]["status"] {
  if (share.status === "active" && keyEnded(doc)) return doc.revocationPending || doc.gateway.syncedGen < doc.gateway.desiredGen ? "revocationPending" : "revoked";
  return share.status === "revoked" && share.revokedAtGen !== undefined && doc.gateway.syncedGen < share.revokedAtGen ? "revocationPending" : share.status;
}

/** Whether the key reaches `target` through a share: active there, and the key has not ended. */
export const sharedWith = (doc: Pick<KeyDoc, "status" | "shares">, target: string): boolean => !keyEnded(doc) && (doc.shares ?? []).some((x) => x.projectId === target && x.status === "active");

/**
 * The key as the API shows it (and audit records and events see it): never a secret, digest or secret version.
 * `into`: the key as a project it is shared with sees it (`sharedFrom` its own project) — only the share into
 * that project, never its shares with other projects (whose existence that project's people may not know).
 */
function present(doc: KeyDoc, into?: { sharedFrom: string; projectId: string }): Omit<Key, "etag"> {
  return {
    id: doc.id,
    projectId: doc.projectId,
    name: doc.name,
    ...(doc.description ? { description: doc.description } : {}),
    owner: doc.owner,
    scopes: doc.scopes,
    limits: doc.limits,
    expiresAt: doc.expiresAt,
    status: statusOf(doc),
    ...(doc.suspendedBy && statusOf(doc) === "suspended" ? { suspendedBy: doc.suspendedBy } : {}),
    gateway: {
      state: doc.gateway.syncedGen >= doc.gateway.desiredGen ? "synced" : "pending",
      subscriptionId: doc.gateway.subscriptionId ?? doc.id,
      profile: profileOf(doc) || "project",
      ...(doc.gateway.waitingFor && doc.gateway.syncedGen < doc.gateway.desiredGen ? { waitingFor: doc.gateway.waitingFor } : {}),
    },
    prefix: doc.prefix,
    last4: doc.last4,
    ...(doc.rotation
      ? {
          rotation: {
            phase: doc.rotation.phase,
            startedAt: doc.rotation.startedAt,
            ...(doc.rotation.overlapUntil ? { overlapUntil: doc.rotation.overlapUntil } : {}),
            scheduled: doc.rotation.scheduled,
          },
        }
      : {}),
    ...(doc.lastRotatedAt ? { lastRotatedAt: doc.lastRotatedAt } : {}),
    rotationCount: doc.rotationCount,
    awaitingCollection: doc.pickup !== undefined,
    shares: (doc.shares ?? []).filter((x) => !into || x.projectId === into.projectId).map((x) => ({ projectId: x.projectId, status: shareStatusOf(doc, x), approvalId: x.approvalId, requestedBy: x.requestedBy, requestedAt: x.requestedAt })),
    ...(doc.approval ? { approval: { ...doc.approval } } : {}),
    ...(into ? { sharedFrom: into.sharedFrom } : {}),
    createdAt: doc.createdAt,
    createdBy: doc.createdBy,
    updatedAt: doc.updatedAt,
    updatedBy: doc.updatedBy,
  };
}

/** Read-only access to key documents: what the compiler input and exemptions need of keys (no gateway, no secrets). */
export interface KeyDocReader {
  /** Every key of a tenant's project (key profiles become key tiers). */
  listAll(tenantId: string, projectId: string): Promise<KeyDoc[]>;
  /** Whether a key exists in the project (exemptions of one key name it). */
  exists(tenantId: string, projectId: string, id: string): Promise<boolean>;
}

/**
 * The key documents (project partition `[tenant, project]`) and the index of keys shared into a
 * project: reads that check the document type, the view, and every write — audited changes through
 * the change writer, and the gateway bookkeeping (claims, confirmations) as plain conditional writes.
 */
export class KeyDocuments implements KeyDocReader {
  private readonly keys: Collection<KeyDoc, Key>;

  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock = systemClock,
  ) {
    this.keys = new Collection<KeyDoc, Key>(store, changes, { docType: "virtualKey", path: (d) => keyPath(d.scopeId, d.id), present: (d) => present(d) });
  }

  /**
   * Keys of a project that hold, or may again hold, access at the gateway: every one not revoked or
   * expired (a suspended key resumes), and every revocation or expiry the gateway has not confirmed of a
   * key that reached it (still a subscription there). They block deleting the project: a deleted
   * project's keys could no longer be revoked, or their revocation followed, through the API.
   */
  async countHeld(tenantId: string, projectId: string): Promise<number> {
    let n = 0;
    for await (const k of everyDoc<KeyDoc>(this.store, this.partition(tenantId, projectId), { docType: "virtualKey" })) {
      const ended = k.status === "revoked" || k.status === "expired";
      // A key whose subscription never reached the gateway (its project never published) leaves nothing there to revoke.
      const reached = k.gateway.publishedHash !== undefined || k.gateway.syncedGen > 0;
      if (!ended || (reached && (k.revocationPending || k.gateway.syncedGen < k.gateway.desiredGen))) n++;
    }
    return n;
  }

  view(doc: KeyDoc & { _etag?: string }, etag?: string): Key {
    return this.keys.view(doc, etag);
  }

  /** The key as the project `target` it is shared with sees it: `sharedFrom` its own project, and only the share into `target`. */
  viewFrom(doc: KeyDoc & { _etag?: string }, target: string): Key {
    const v = this.keys.view(doc);
    return { ...present(doc, { sharedFrom: doc.projectId, projectId: target }), etag: v.etag };
  }

  partition(tenantId: string, projectId: string): Partition {
    return { tenantId, scopeId: projectId };
  }

  read(tenantId: string, projectId: string, id: string): Promise<Versioned<KeyDoc> | undefined> {
    return this.keys.read(this.partition(tenantId, projectId), id);
  }

  /** The key, or a 404 (an id that is not a key id never reaches the store). */
  async load(tenantId: string, projectId: string, id: string): Promise<Versioned<KeyDoc>> {
    const doc = KEY_ID.test(id) ? await this.read(tenantId, projectId, id) : undefined;
    if (!doc) return notFound(keyPath(projectId, id));
    return doc;
  }

  async exists(tenantId: string, projectId: string, id: string): Promise<boolean> {
    return KEY_ID.test(id) && (await this.read(tenantId, projectId, id)) !== undefined;
  }

  private openExemptions?: (tenantId: string, projectId: string) => Promise<Set<string>>;

  /** Where the keys of a project with an open key exemption are read (the exemption documents; wired by the app). */
  exemptedKeysWith(read: (tenantId: string, projectId: string) => Promise<Set<string>>): void {
    this.openExemptions = read;
  }

  /**
   * The keys of the project that a key exemption is open for (requested, approved or in force), or whose
   * request holds its place under the project's guard on key tiers (reserveExemptionPlace) while its exemption is written.
   */
  async exemptedKeys(tenantId: string, projectId: string): Promise<Set<string>> {
    const [open, reserved] = await Promise.all([this.openExemptions?.(tenantId, projectId), this.readTierGuard(tenantId, projectId)]);
    const out = new Set(open ?? []);
    for (const id of Object.keys(this.freshReservations(reserved))) out.add(id);
    return out;
  }

  private async readTierGuard(tenantId: string, projectId: string): Promise<Versioned<KeyTierGuardDoc> | undefined> {
    const doc = await this.store.read<KeyTierGuardDoc>(this.partition(tenantId, projectId), KEY_TIER_GUARD);
    return doc?.docType === "keyTierGuard" ? doc : undefined;
  }

  private freshReservations(guard: KeyTierGuardDoc | undefined): Record<string, string> {
    const now = this.clock.now().toISOString();
    return Object.fromEntries(Object.entries(guard?.exemptionPlaces ?? {}).filter(([, until]) => until > now));
  }

  private freshAccepted(guard: KeyTierGuardDoc | undefined): Record<string, { until: string; pairs: string[] }> {
    const now = this.clock.now().toISOString();
    return Object.fromEntries(Object.entries(guard?.acceptedPlaces ?? {}).filter(([, r]) => r.until > now));
  }

  /** The places keys of other projects reserved among the tiers the project accepts ("<project>/<key id>" → pairs), while their writes land. */
  async acceptedReservations(tenantId: string, projectId: string): Promise<Map<string, string[]>> {
    return new Map(Object.entries(this.freshAccepted(await this.readTierGuard(tenantId, projectId))).map(([holder, r]) => [holder, r.pairs]));
  }

  /**
   * The guard on the project's key tiers as it reads now, and the write that takes it (read it before counting the places).
   * `reserve`: a key exemption's place to hold; `accepted`: a shared key's accepted places to hold (`pairs`) or to release (none).
   */
  async tierGuard(tenantId: string, projectId: string, reserve?: string, accepted?: { holder: string; pairs?: string[] }): Promise<TierGuard> {
    const partition = this.partition(tenantId, projectId);
    const current = await this.readTierGuard(tenantId, projectId);
    const places = this.freshReservations(current);
    if (reserve !== undefined) places[reserve] = new Date(this.clock.now().getTime() + EXEMPTION_PLACE_RESERVATION_MS).toISOString();
    const held = this.freshAccepted(current);
    if (accepted?.pairs) held[accepted.holder] = { until: new Date(this.clock.now().getTime() + EXEMPTION_PLACE_RESERVATION_MS).toISOString(), pairs: accepted.pairs };
    else if (accepted) delete held[accepted.holder];
    const doc: KeyTierGuardDoc = {
      id: KEY_TIER_GUARD,
      ...partition,
      docType: "keyTierGuard",
      seq: (current?.seq ?? 0) + 1,
      ...(Object.keys(places).length ? { exemptionPlaces: places } : {}),
      ...(Object.keys(held).length ? { acceptedPlaces: held } : {}),
    };
    return { op: current ? { kind: "replace", doc, ifMatch: current._etag } : { kind: "create", doc } };
  }

  /**
   * Reserves, in the guard of each project the key `next` (as a change would leave it) is shared with, the
   * tiers that project would accept from it: counted there with every other key shared into it and every
   * other reservation (409 key_profiles_exhausted when there is no room), and written conditionally on that
   * guard, so of two keys of different projects taking a target's last place at once, the second is counted
   * again with the first. Call before the key's write; `release` once the key and the target's record of it
   * are written (the count reads them from then on), or when the write did not happen.
   */
  async reserveAccepted(tenantId: string, next: ProfileHolder & { id: string }): Promise<{ release: () => Promise<void> }> {
    const holder = `${next.projectId}/${next.id}`;
    const reserved: string[] = [];
    const release = async () => {
      for (const target of reserved) await this.writeAcceptedGuard(tenantId, target, { holder }).catch(() => undefined);
    };
    try {
      for (const target of profileDefOf(next).sharedWith) {
        await this.writeAcceptedGuard(tenantId, target, { holder, pairs: acceptedFrom(next, target) }, () => roomAccepted(this, tenantId, target, next));
        reserved.push(target);
      }
    } catch (err) {
      await release();
      throw err;
    }
    return { release };
  }

  /** Writes the target's guard with `accepted` (after `check`, counted under the guard read), again when another writer took it first. */
  private async writeAcceptedGuard(tenantId: string, target: string, accepted: { holder: string; pairs?: string[] }, check?: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const guard = await this.tierGuard(tenantId, target, undefined, accepted);
      await check?.();
      if ((await this.store.batch(this.partition(tenantId, target), [guard.op])).ok) return;
      if (attempt >= TIER_GUARD_ATTEMPTS) fail(tierGuardLost());
      await jitter(attempt);
    }
  }

  /**
   * Runs `write` (which counts the places and writes under the guard it is given) until it is not beaten to
   * the guard by another writer; each lost attempt is counted again with what that writer wrote.
   */
  async underTierGuard<T>(tenantId: string, projectId: string, write: (guard: TierGuard) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const guard = await this.tierGuard(tenantId, projectId);
      try {
        return await write(guard);
      } catch (err) {
        if (!lostTierGuard(err) || attempt >= TIER_GUARD_ATTEMPTS) throw err;
        await jitter(attempt);
      }
    }
  }

  /**
   * A key exemption request's place among its project's key tiers, held from before its exemption is written
   * (the exemption lives in the tenant partition, so no batch writes both): counted (409
   * key_profiles_exhausted when there is no room) and reserved under the project's guard, so a key profile
   * made at the same moment is counted with it, or it with the profile. The reservation lapses after
   * EXEMPTION_PLACE_RESERVATION_MS; by then the written exemption holds the place as an open one.
   */
  async reserveExemptionPlace(tenantId: string, projectId: string, keyId: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      // Held already (the request's earlier attempt, counted then): no second write of a guard every racer writes.
      const held = this.freshReservations(await this.readTierGuard(tenantId, projectId))[keyId];
      if (held !== undefined && Date.parse(held) - this.clock.now().getTime() > EXEMPTION_PLACE_RESERVATION_MS / 2) return;
      const guard = await this.tierGuard(tenantId, projectId, keyId);
      await roomForExemption(this, tenantId, projectId, keyId);
      if ((await this.store.batch(this.partition(tenantId, projectId), [guard.op])).ok) return;
      if (attempt >= TIER_GUARD_ATTEMPTS) fail(tierGuardLost());
      await jitter(attempt);
    }
  }

  /** Room for a key exemption of the key among its project's key tiers (409 key_profiles_exhausted otherwise). */
  roomForExemption(tenantId: string, projectId: string, keyId: string): Promise<void> {
    return roomForExemption(this, tenantId, projectId, keyId);
  }

  /** The key's own limits (its profile's): what a key exemption is judged against, with the project's per-key limits. */
  async limitsOf(tenantId: string, projectId: string, keyId: string): Promise<KeyLimits | undefined> {
    return (await this.read(tenantId, projectId, keyId))?.limits;
  }

  /** The key as stored now (a job retrying a key whose listed document went stale). */
  latest(doc: Pick<KeyDoc, "tenantId" | "projectId" | "id">): Promise<Versioned<KeyDoc> | undefined> {
    return this.read(doc.tenantId, doc.projectId, doc.id);
  }

  page(tenantId: string, projectId: string, page: { maxPageSize: number; continuationToken?: string | undefined }) {
    return this.keys.page(this.partition(tenantId, projectId), { orderBy: { field: "createdAt", direction: "ASC" } }, page);
  }

  listAll(tenantId: string, projectId: string): Promise<KeyDoc[]> {
    return toArray(this.inProject(tenantId, projectId));
  }

  inProject(tenantId: string, projectId: string): AsyncGenerator<Versioned<KeyDoc>> {
    return this.keys.every(this.partition(tenantId, projectId));
  }

  /** Background only: every key (the lifecycle job's work list). */
  everyKey(): AsyncGenerator<Versioned<KeyDoc>> {
    return this.keys.every("all");
  }

  /** A new key; `guard`: the project's guard on key tiers, taken in the same batch (a key that may add a profile). */
  create(ctx: RequestContext, doc: KeyDoc, guard?: TierGuard): Promise<Key> {
    return this.keys.create(ctx, doc, { action: "key.create", event: "aigov.key.created.v1", ...(guard ? { extraOps: [guard.op], onFailure: (index: number) => (index === 1 ? tierGuardLost() : undefined) } : {}) });
  }

  /** An audited change of the key that may add a key profile (If-Match on `before`), with the project's guard on key tiers in the same batch. */
  commitGuarded(ctx: RequestContext, before: Versioned<KeyDoc>, after: KeyDoc, action: string, event: string, data: unknown, guard: TierGuard): Promise<Key> {
    return this.keys.replace(ctx, before, after, { action, event, data, extraOps: [guard.op], onFailure: (index: number) => (index === 1 ? tierGuardLost() : { kind: "preconditionFailed" }) });
  }

  /** An audited change of the key (If-Match on `before`); any refusal of the write is a 412. */
  commit(ctx: RequestContext, before: Versioned<KeyDoc>, after: KeyDoc, action: string, event: string, data?: unknown, onFailure: () => DomainError = () => ({ kind: "preconditionFailed" })): Promise<Key> {
    return this.keys.replace(ctx, before, after, { action, event, ...(data !== undefined ? { data } : {}), onFailure });
  }

  /**
   * Bookkeeping of the gateway's state that is also a statement (a revocation the gateway confirmed):
   * the document, its audit record and its event in one batch, so neither is ever without the other.
   * False when the key changed meanwhile.
   */
  async putAnnounced(ctx: RequestContext, doc: KeyDoc, ifMatch: string, action: string, event: string, after: Record<string, unknown>, data: Record<string, unknown>): Promise<boolean> {
    try {
      await this.changes.commit({
        partition: this.partition(doc.tenantId, doc.projectId),
        ctx,
        action,
        resource: keyPath(doc.projectId, doc.id),
        after,
        ops: [{ kind: "replace", doc, ifMatch }],
        event: { type: event, subject: this.keys.subject(doc), data },
        onFailure: () => ({ kind: "preconditionFailed" }),
      });
      return true;
    } catch (err) {
      if (err instanceof AppError && err.error.kind === "preconditionFailed") return false;
      throw err;
    }
  }

  /** Bookkeeping of the gateway's state (claims, confirmations, waiting): conditional, not audited. False when the key changed meanwhile. */
  async put(doc: KeyDoc, ifMatch: string): Promise<boolean> {
    return (await this.store.batch(this.partition(doc.tenantId, doc.projectId), [{ kind: "replace", doc, ifMatch }])).ok;
  }

  /** The project's keys suspended by a sandbox lock (the sweep asks every hour: a filtered query, not every key). */
  async *lockSuspended(tenantId: string, projectId: string): AsyncGenerator<KeyDoc> {
    const filters = [{ field: "suspendedBy", op: "=" as const, value: "projectLock" }, { field: "status", op: "=" as const, value: "suspended" }];
    yield* everyDoc<KeyDoc>(this.store, this.partition(tenantId, projectId), { docType: "virtualKey", filters });
  }

  /** Every tenant's keys an agent's hold suspended (the agents' hold sweep: a filtered cross-partition query). */
  async *agentHeld(): AsyncGenerator<KeyDoc> {
    const filters = [{ field: "suspendedBy", op: "=" as const, value: "agentHold" }, { field: "status", op: "=" as const, value: "suspended" }];
    yield* everyDoc<KeyDoc>(this.store, "all", { docType: "virtualKey", filters });
  }

  /** The active shares into a project: where each shared key lives. */
  async *sharedInto(tenantId: string, projectId: string): AsyncGenerator<{ fromProject: string; keyId: string }> {
    for await (const s of everyDoc<SharedInDoc>(this.store, this.partition(tenantId, projectId), { docType: "keyShareIn" })) if (s.status === "active") yield { fromProject: s.fromProject, keyId: s.keyId };
  }

  /** Every key ever shared into a project, its share active or ended (the cap on accepted tiers reads them: acceptedInUse). */
  async *sharedIntoAll(tenantId: string, projectId: string): AsyncGenerator<{ fromProject: string; keyId: string }> {
    for await (const s of everyDoc<SharedInDoc>(this.store, this.partition(tenantId, projectId), { docType: "keyShareIn" })) yield { fromProject: s.fromProject, keyId: s.keyId };
  }

  /**
   * Makes a key visible in the project it is shared with, or ends that (the target's own partition and
   * audit chain), as the key's document says now: active while a share into `target` is active, ended once
   * one ended or the key did (a record is never made for a share that never was active). The record is read before the
   * key and written conditionally, so of two writers racing (an unshare and a share made again) the last
   * one's view of the key stands. Idempotent: recorded already, nothing is written (a settle run again, or
   * the lifecycle job's repair, after a crash between the key's write and this one).
   */
  async recordSharedIn(ctx: RequestContext, key: Pick<KeyDoc, "projectId" | "id">, target: string): Promise<void> {
    // A lost race (another writer between the read and the write) is read again: the key's change that
    // called this is committed already, so its caller must not see a failure for the record's sake.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.recordSharedInOnce(ctx, key, target);
      } catch (err) {
        if (!(err instanceof AppError && err.error.kind === "conflict" && err.error.reason === "changed_meanwhile") || attempt >= 3) throw err;
      }
    }
  }

  private async recordSharedInOnce(ctx: RequestContext, key: Pick<KeyDoc, "projectId" | "id">, target: string): Promise<void> {
    const tenantId = ctx.principal.tenantId;
    const partition = this.partition(tenantId, target);
    const id = `keyshare.${key.id}`;
    const current = await this.store.read<SharedInDoc>(partition, id);
    const doc = await this.read(tenantId, key.projectId, key.id);
    const shares = (doc?.shares ?? []).filter((x) => x.projectId === target);
    // A key that ended (revoked, expired) is shared with nobody: its active shares ended with it.
    const status = shares.some((x) => x.status === "active") && doc && !keyEnded(doc) ? "active" : shares.some((x) => x.status === "revoked" || x.status === "active") ? "revoked" : undefined;
    if (!doc || !status || (status === "revoked" && current?.docType !== "keyShareIn")) return;
    if (current?.docType === "keyShareIn" && current.status === status && current.fromProject === doc.projectId) return;
    const shareDoc: SharedInDoc = { id, ...partition, docType: "keyShareIn", fromProject: doc.projectId, keyId: doc.id, status };
    await this.changes.commit({
      partition,
      ctx,
      action: status === "active" ? "key.share.accept" : "key.share.end",
      resource: `/projects/${target}/keys/shared/${doc.id}`,
      after: { keyId: doc.id, fromProject: doc.projectId, status },
      ops: [current ? { kind: "replace", doc: shareDoc, ifMatch: current._etag } : { kind: "create", doc: shareDoc }],
      event: { type: status === "active" ? "aigov.key.share.accepted.v1" : "aigov.key.share.ended.v1", subject: `/tenants/${tenantId}/projects/${target}/keys/shared/${doc.id}`, data: { keyId: doc.id, fromProject: doc.projectId } },
      onFailure: () => ({ kind: "conflict", detail: "the share changed meanwhile; try again", reason: "changed_meanwhile" }),
    });
  }
}
