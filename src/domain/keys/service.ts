import { createHash, createHmac, randomBytes, randomUUID } from "node:crypto";
import type { Clock } from "../../ports/clock.js";
import { artifactHash, artifactRef, expectedReadBack, readBackHash, type GatewayPublisher, type SecretRef, type SubscriptionArtifact } from "../../ports/gateway.js";
import type { SecretStore } from "../../ports/secrets.js";
import { TENANT_SCOPE, unversioned, type Partition, type Store, type StoredDoc, type Versioned } from "../../ports/store.js";
import { type GatewayNames } from "../../policy/names.js";
import type { ChangeWriter } from "../changes.js";
import { etagMatches, etagValue, newId, type Page, type RequestContext } from "../common.js";
import { AppError, fail, notFound } from "../errors.js";
import type { Model } from "../../pillars/models/schema.js";
import type { ModelService } from "../../pillars/models/service.js";
import { everyDoc, listPage, toArray } from "../paging.js";
import { DEFAULT_KEY_POLICY, type KeyPolicy, type Project } from "../projects/schema.js";
import type { ProjectService } from "../projects/service.js";
import { parseOrThrow } from "../validation.js";
import { generateKey, isWellFormedKey, keyDigest, keyHints } from "./format.js";
import type { Approval } from "../approvals/schema.js";
import type { ApprovalService } from "../approvals/service.js";
import { KeySpec, LookupSpec, overlapMs, ReasonSpec, RotateSpec, ShareSpec, type Key, type KeyLimits, type KeyScopes, type KeySpecInput, type KeyWithSecret, type LookupResult } from "./schema.js";

type SlotName = "primary" | "secondary";
type KeyStatus = "active" | "suspended" | "revoked" | "expired";
const other = (s: SlotName): SlotName => (s === "primary" ? "secondary" : "primary");

/** A slot of the key's APIM subscription: a real secret (in the secret store) or a filler nobody knows. */
interface Slot {
  kind: "secret" | "filler";
  /** Secret store version (secrets) or generation (fillers). */
  version: string;
}

interface Rotation {
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
}

/** What decides a key's product: its model scope, its limits and the projects it is shared with. */
export interface ProfileDef {
  id: string;
  models: string[];
  limits: KeyLimits;
  sharedWith: string[];
}

/** Index in the target project of a key shared into it (so the key is visible there). */
interface SharedInDoc extends StoredDoc {
  docType: "keyShareIn";
  fromProject: string;
  keyId: string;
  status: "active" | "revoked";
}

/** Index from a secret's digest to its key (tenant partition): lookups of leaked keys, never the secret itself. */
interface DigestDoc extends StoredDoc {
  docType: "keyDigest";
  projectId: string;
  keyId: string;
  slot: SlotName;
  version: string;
}

export const keyPath = (projectId: string, id: string) => `/projects/${projectId}/keys/${id}`;
const subjectOf = (tenantId: string, projectId: string, id: string) => `/tenants/${tenantId}${keyPath(projectId, id)}`;
/** Key Vault names allow letters, digits and '-'. */
const secretName = (keyId: string, slot: SlotName) => `vkey-${keyId.replace("_", "-")}-${slot}`;
const fillerName = (keyId: string, slot: SlotName) => `vkfill-${keyId.replace("_", "-")}-${slot}`;
const PEPPER_NAME = "vkey-pepper";
const digestId = (digest: string) => `keydigest.${digest}`;
const SYNC_ATTEMPTS = 24;
/** How long a sync may hold a key before another may take over (a crashed sync's claim expires). */
const SYNC_CLAIM_MS = 60_000;

/** The key's profile: "" (none: a subscription on the project API) or a product of its own kind. */
export function profileDefOf(doc: Pick<KeyDoc, "scopes" | "limits"> & { shares?: ShareDoc[] }): ProfileDef {
  const models = [...(doc.scopes.models ?? [])].sort();
  const limits = doc.limits;
  const sharedWith = (doc.shares ?? []).filter((x) => x.status === "active").map((x) => x.projectId).sort();
  if (models.length === 0 && Object.keys(limits).length === 0 && sharedWith.length === 0) return { id: "", models, limits, sharedWith };
  const canonical = JSON.stringify([models, limits.tokensPerMinute ?? null, limits.tokenQuota ?? null, limits.requestsPerMinute ?? null, limits.budget ?? null, sharedWith]);
  return { id: `kp_${createHash("sha256").update(canonical).digest("hex").slice(0, 10)}`, models, limits, sharedWith };
}

export const profileOf = (doc: Pick<KeyDoc, "scopes" | "limits"> & { shares?: ShareDoc[] }): string => profileDefOf(doc).id;

/**
 * The key's APIM subscription as it should be now: a pure function of the key document (and of the
 * tier an active key-scope exemption puts it on, which replaces its own product while it lasts).
 */
export function subscriptionFor(doc: KeyDoc, names: GatewayNames, exemptionTier?: string): SubscriptionArtifact {
  const profile = exemptionTier ?? profileOf(doc);
  const dead = doc.status === "revoked" || doc.status === "expired";
  const ref = (slot: SlotName): SecretRef =>
    doc.slots[slot].kind === "secret" ? { name: secretName(doc.id, slot), version: doc.slots[slot].version } : { name: fillerName(doc.id, slot), version: doc.slots[slot].version };
  const id = names.subscription(doc.id);
  return {
    kind: "subscription",
    id,
    displayName: subscriptionDisplayName(doc.name, doc.id),
    scope: profile ? { type: "product", productId: names.product(doc.projectId, profile) } : { type: "api", apiId: names.api(doc.projectId) },
    state: dead ? "cancelled" : doc.status === "suspended" ? "suspended" : "active",
    primaryKey: ref("primary"),
    secondaryKey: ref("secondary"),
  };
}

/** APIM allows 100 characters: the key id always fits (it is how people find the key), the name is
 * shortened by whole code points so a surrogate pair is never split. */
export function subscriptionDisplayName(name: string, keyId: string): string {
  const suffix = ` (${keyId})`;
  const room = 100 - suffix.length;
  if (name.length <= room) return `${name}${suffix}`;
  let out = "";
  for (const ch of name) {
    if (out.length + ch.length > room - 1) break;
    out += ch;
  }
  return `${out}…${suffix}`;
}

function statusOf(doc: KeyDoc): Key["status"] {
  return doc.status === "revoked" && doc.revocationPending ? "revocationPending" : doc.status;
}

function view(doc: KeyDoc, etag: string, sharedFrom?: string): Key {
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
    shares: (doc.shares ?? []).map((x) => ({ projectId: x.projectId, status: x.status, approvalId: x.approvalId, requestedBy: x.requestedBy, requestedAt: x.requestedAt })),
    ...(sharedFrom ? { sharedFrom } : {}),
    createdAt: doc.createdAt,
    createdBy: doc.createdBy,
    updatedAt: doc.updatedAt,
    updatedBy: doc.updatedBy,
    etag: etagValue(etag),
  };
}

/** What audit records and events say about a key: never a secret, digest or secret version. */
function snapshot(doc: KeyDoc) {
  const { etag: _e, ...rest } = view(doc, "");
  return rest;
}

/** The gateway-facing side the key service needs from publishing (ADR 006). */
export interface GatewayAccess {
  /** The tenant's gateway (its instance, its key reserved there). */
  publisher(tenantId: string): Promise<GatewayPublisher>;
  /** The ids of the tenant's artifacts (names.ts). */
  names(tenantId: string): GatewayNames;
  /** Whether the gateway holds an artifact (the key's product or API) according to the last publish. */
  holds(tenantId: string, ref: string): Promise<boolean>;
  /**
   * Makes (if needed) a pending revision so the tenant's profiles reach the gateway, on top of what is
   * published; `needsPublish`: nothing of the tenant is published yet, a person's publish comes first.
   */
  ensurePublished(tenantId: string, cause: { by: string; reason: string; correlationId: string }): Promise<{ needsPublish?: boolean }>;
  /** The tier an active key-scope exemption puts the key on (its product replaces the key's own), if any. */
  exemptionTier(tenantId: string, projectId: string, keyId: string): Promise<ExemptionTier | undefined>;
}

export type SyncResult = "synced" | "waitingForProfile" | "waitingForPublish";

/** A key tier made by a key-scope exemption, as the compiler input holds it. */
export interface ExemptionTier {
  id: string;
  tier: { id: string; description?: string; limits: Record<string, unknown>; models?: string[] };
}

/**
 * Virtual keys: one APIM subscription per key (docs/adr/008-virtual-keys.md). The key material lives
 * only in the secret store (for the gateway) and, once, in the creation or rotation response; Cosmos
 * holds an HMAC digest (peppered), the prefix and the last four characters.
 */
export class KeyService {
  private pepper: Promise<string> | undefined;

  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly secrets: SecretStore,
    private readonly projects: ProjectService,
    private readonly models: ModelService,
    private readonly gateway: GatewayAccess,
    private readonly approvals: ApprovalService,
  ) {
    approvals.onSettled("keyShare", (approval, correlationId) => this.settleShare(approval, correlationId));
  }

  // ------------------------------------------------------------------------------------------
  // API

  async create(ctx: RequestContext, projectId: string, input: KeySpecInput): Promise<KeyWithSecret> {
    const project = await this.writable(ctx, projectId, "create");
    const spec = parseOrThrow(KeySpec, input, "body");
    const policy = project.keyPolicy ?? DEFAULT_KEY_POLICY;
    const now = this.clock.now();
    const expiresAt = spec.expiresAt ?? new Date(now.getTime() + policy.defaultTtlDays * 86_400_000).toISOString();
    await this.validate(ctx, project, policy, spec.scopes, spec.limits, expiresAt, now);

    const id = newId("key");
    const plaintext = generateKey();
    const secret = await this.secrets.set(secretName(id, "primary"), plaintext, { contentType: "aigov-virtual-key", tags: { keyId: id, projectId } });
    await this.index(ctx.principal.tenantId, projectId, id, "primary", secret.version, plaintext);
    const at = now.toISOString();
    const doc: KeyDoc = {
      id,
      tenantId: ctx.principal.tenantId,
      scopeId: projectId,
      docType: "virtualKey",
      projectId,
      name: spec.name,
      ...(spec.description ? { description: spec.description } : {}),
      owner: spec.owner ?? ctx.principal.userId,
      scopes: spec.scopes,
      limits: spec.limits,
      expiresAt,
      status: "active",
      ...keyHints(plaintext),
      current: "primary",
      slots: { primary: { kind: "secret", version: secret.version }, secondary: { kind: "filler", version: "g1" } },
      gateway: { subscriptionId: this.gateway.names(ctx.principal.tenantId).subscription(id), desiredGen: 1, syncedGen: 0 },
      shares: [],
      notices: {},
      secretCreatedAt: at,
      rotationCount: 0,
      fillerGen: 1,
      createdAt: at,
      createdBy: ctx.principal.userId,
      updatedAt: at,
      updatedBy: ctx.principal.userId,
    };
    const [etag] = await this.changes.commit({
      partition: this.partition(ctx.principal.tenantId, projectId),
      ctx,
      action: "key.create",
      resource: keyPath(projectId, id),
      after: snapshot(doc),
      ops: [{ kind: "create", doc }],
      event: { type: "aigov.key.created.v1", subject: subjectOf(ctx.principal.tenantId, projectId, id), data: snapshot(doc) },
    });
    const synced = await this.trySync(ctx.principal.tenantId, projectId, id, ctx.correlationId);
    return { ...view(synced ?? doc, synced?._etag ?? etag ?? ""), key: plaintext };
  }

  async get(ctx: RequestContext, projectId: string, id: string): Promise<Key> {
    await this.projects.get(ctx, projectId);
    const doc = await this.load(ctx.principal.tenantId, projectId, id);
    return view(doc, doc._etag);
  }

  async list(ctx: RequestContext, projectId: string, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<Key>> {
    await this.projects.get(ctx, projectId);
    const result = await listPage<KeyDoc>(this.store, this.partition(ctx.principal.tenantId, projectId), { docType: "virtualKey", orderBy: { field: "createdAt", direction: "ASC" } }, page);
    return { ...result, items: result.items.map((d) => view(d, d._etag)) };
  }

  /** Starts a rotation: the new secret goes into the standby slot now; the orchestration publishes, waits the overlap, retires. */
  async rotate(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch?: string): Promise<KeyWithSecret & { rotationId: string }> {
    const doc = await this.mayManage(ctx, projectId, id);
    const spec = parseOrThrow(RotateSpec, input ?? {}, "body");
    if (ifMatch !== undefined && !etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    const { plaintext, rotationId, doc: next, etag } = await this.beginRotation(ctx, doc, overlapMs(spec.overlap)!, false, spec.reason);
    return { ...view(next, etag), key: plaintext, rotationId };
  }

  async revoke(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch?: string): Promise<Key> {
    const doc = await this.mayManage(ctx, projectId, id);
    const spec = parseOrThrow(ReasonSpec, input, "body");
    if (ifMatch !== undefined && !etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (doc.status === "revoked") fail({ kind: "conflict", detail: "the key is already revoked", reason: "key_revoked" });
    await this.kill(ctx, doc, "revoked", spec.reason);
    const synced = await this.trySync(ctx.principal.tenantId, projectId, id, ctx.correlationId);
    return this.reread(ctx.principal.tenantId, projectId, id, synced);
  }

  async suspend(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch?: string): Promise<Key> {
    return this.setActive(ctx, projectId, id, input, ifMatch, "suspended");
  }

  async resume(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch?: string): Promise<Key> {
    return this.setActive(ctx, projectId, id, input, ifMatch, "active");
  }

  /** The new secret of a scheduled rotation, handed to the key's owner exactly once. */
  async pickup(ctx: RequestContext, projectId: string, id: string): Promise<KeyWithSecret> {
    await this.projects.get(ctx, projectId);
    const doc = await this.load(ctx.principal.tenantId, projectId, id);
    if (doc.owner !== ctx.principal.userId) fail({ kind: "forbidden", detail: "only the key's owner collects a rotated secret", reason: "key_owner_only" });
    const pick = doc.pickup;
    // Collectable while that secret is still the key's (a later rotation or a revocation ends it).
    if (!pick || doc.slots[pick.slot].kind !== "secret" || doc.slots[pick.slot].version !== pick.version) {
      fail({ kind: "conflict", detail: "no rotated secret is waiting for collection", reason: "rotated_secret_not_waiting" });
    }
    const secret = await this.secrets.get(secretName(id, pick!.slot), pick!.version);
    if (!secret) fail({ kind: "conflict", detail: "the rotated secret is no longer available", reason: "rotated_secret_gone" });
    const { pickup: _p, ...rest } = unversioned(doc);
    const next: KeyDoc = { ...rest, updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
    const [etag] = await this.changes.commit({
      partition: this.partition(ctx.principal.tenantId, projectId),
      ctx,
      action: "key.pickup",
      resource: keyPath(projectId, id),
      before: snapshot(doc),
      after: snapshot(next),
      ops: [{ kind: "replace", doc: next, ifMatch: doc._etag }],
      event: { type: "aigov.key.secret.collected.v1", subject: subjectOf(ctx.principal.tenantId, projectId, id), data: { keyId: id, projectId } },
      onFailure: () => ({ kind: "conflict", detail: "the key changed meanwhile; try again", reason: "changed_meanwhile" }),
    });
    return { ...view(next, etag ?? ""), key: secret!.value };
  }

  /**
   * Asks to use the key with another project of the tenant: an approval (by default the target
   * project's admins) decides; the share shows on the key and, once active, in the target project.
   */
  async share(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch?: string): Promise<{ key: Key; approval: Approval }> {
    await this.mayManage(ctx, projectId, id);
    const spec = parseOrThrow(ShareSpec, input, "body");
    const tenantId = ctx.principal.tenantId;
    if (spec.projectId === projectId) fail({ kind: "validation", detail: "a key is already usable in its own project", errors: [{ field: "body.projectId", message: "is the key's own project" }] });
    await this.projects.get(ctx, spec.projectId); // 404 for a project of another tenant, like a missing one
    const doc = await this.load(tenantId, projectId, id);
    if (ifMatch !== undefined && !etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (doc.status === "revoked" || doc.status === "expired") fail({ kind: "conflict", detail: `a ${doc.status} key cannot be shared`, reason: doc.status === "revoked" ? "key_revoked" : "key_expired" });
    if ((doc.shares ?? []).some((x) => x.projectId === spec.projectId && (x.status === "pending" || x.status === "active"))) {
      fail({ kind: "conflict", detail: `the key is already shared (or being shared) with ${spec.projectId}`, reason: "key_already_shared" });
    }
    // Who approves is the tenant's route for key shares (default: the target project's admins or a
    // TenantAdmin); approvers the requester names are an extra stage after it.
    const approval = await this.approvals.request(ctx, {
      subject: { resourceType: "keyShare", resourceId: id, projectId: spec.projectId, change: { keyId: id, fromProject: projectId, toProject: spec.projectId } },
      justification: spec.justification,
      route: { subjectType: "keyShare", scope: "project", risk: "standard" },
      ...(spec.approvers ? { extraStages: [{ approvers: spec.approvers.map((a) => ("role" in a ? { role: a.role, scope: "project" as const } : a)), decisionTimeout: "P7D" }], extraField: "body.approvers" } : {}),
    });
    const at = this.clock.now().toISOString();
    const next: KeyDoc = {
      ...unversioned(doc),
      shares: [...(doc.shares ?? []), { projectId: spec.projectId, status: "pending", approvalId: approval.id, requestedBy: ctx.principal.userId, requestedAt: at }],
      updatedAt: at,
      updatedBy: ctx.principal.userId,
    };
    const etag = await this.commit(ctx, doc, next, "key.share.request", "aigov.key.share.requested.v1", { keyId: id, projectId, toProject: spec.projectId, approvalId: approval.id });
    return { key: view(next, etag), approval };
  }

  /** Ends a share (either project's admin or the key's owner): the key stops working with that project once the gateway confirms. */
  async unshare(ctx: RequestContext, projectId: string, id: string, targetProjectId: string, ifMatch?: string): Promise<Key> {
    const doc = await this.mayManage(ctx, projectId, id);
    const tenantId = ctx.principal.tenantId;
    if (ifMatch !== undefined && !etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    const share = (doc.shares ?? []).find((x) => x.projectId === targetProjectId && (x.status === "active" || x.status === "pending"));
    if (!share) return notFound(`${keyPath(projectId, id)}/shares/${targetProjectId}`);
    await this.setShare(ctx, doc, targetProjectId, "revoked");
    const synced = await this.trySync(tenantId, projectId, id, ctx.correlationId);
    return this.reread(tenantId, projectId, id, synced);
  }

  /** Keys of other projects shared into this one (active shares). */
  async listSharedIn(ctx: RequestContext, projectId: string): Promise<Key[]> {
    await this.projects.get(ctx, projectId);
    const tenantId = ctx.principal.tenantId;
    const out: Key[] = [];
    for await (const s of everyDoc<SharedInDoc>(this.store, this.partition(tenantId, projectId), { docType: "keyShareIn" })) {
      if (s.status !== "active") continue;
      const doc = await this.read(tenantId, s.fromProject, s.keyId);
      if (doc && (doc.shares ?? []).some((x) => x.projectId === projectId && x.status === "active")) out.push(view(doc, doc._etag, s.fromProject));
    }
    return out;
  }

  /** The approval engine's verdict on a share (idempotent: it may run more than once). */
  private async settleShare(approval: Approval, correlationId: string): Promise<void> {
    const change = approval.subject.change as { keyId?: string; fromProject?: string; toProject?: string };
    if (!change.keyId || !change.fromProject || !change.toProject) return;
    const tenantId = approval.tenantId;
    const doc = await this.read(tenantId, change.fromProject, change.keyId);
    const share = doc?.shares?.find((x) => x.approvalId === approval.id);
    if (!doc || !share || share.status !== "pending") return;
    const ctx = this.system(tenantId, correlationId);
    if (approval.status !== "approved") {
      await this.setShare(ctx, doc, change.toProject, "rejected");
      return;
    }
    await this.setShare(ctx, doc, change.toProject, "active");
    // The target project's product link comes with the next publish; the key moves to it once published.
    await this.gateway.ensurePublished(tenantId, { by: "system:keys", reason: `key ${change.keyId} shared with ${change.toProject}`, correlationId });
  }

  private async setShare(ctx: RequestContext, doc: Versioned<KeyDoc>, target: string, status: ShareDoc["status"]): Promise<void> {
    const tenantId = ctx.principal.tenantId;
    const at = this.clock.now().toISOString();
    const shares = (doc.shares ?? []).map((x) => (x.projectId === target && (x.status === "pending" || x.status === "active") ? { ...x, status, decidedAt: at } : x));
    const moves = status === "active" || doc.shares?.some((x) => x.projectId === target && x.status === "active");
    const next: KeyDoc = {
      ...unversioned(doc),
      shares,
      ...(moves ? { gateway: { ...doc.gateway, desiredGen: doc.gateway.desiredGen + 1 } } : {}),
      updatedAt: at,
      updatedBy: ctx.principal.userId,
    };
    const events = { active: "aigov.key.shared.v1", rejected: "aigov.key.share.rejected.v1", revoked: "aigov.key.share.revoked.v1", pending: "aigov.key.share.requested.v1" } as const;
    await this.commit(ctx, doc, next, `key.share.${status}`, events[status], { keyId: doc.id, projectId: doc.projectId, toProject: target });
    if (status === "active" || status === "revoked") {
      // Visible in the target project too (its own partition and audit chain).
      const partition = this.partition(tenantId, target);
      const current = await this.store.read<SharedInDoc>(partition, `keyshare.${doc.id}`);
      const shareDoc: SharedInDoc = { id: `keyshare.${doc.id}`, ...partition, docType: "keyShareIn", fromProject: doc.projectId, keyId: doc.id, status: status === "active" ? "active" : "revoked" };
      await this.changes.commit({
        partition,
        ctx,
        action: status === "active" ? "key.share.accept" : "key.share.end",
        resource: `/projects/${target}/keys/shared/${doc.id}`,
        after: { keyId: doc.id, fromProject: doc.projectId, status: shareDoc.status },
        ops: [current ? { kind: "replace", doc: shareDoc, ifMatch: current._etag } : { kind: "create", doc: shareDoc }],
        event: { type: status === "active" ? "aigov.key.share.accepted.v1" : "aigov.key.share.ended.v1", subject: `/tenants/${tenantId}/projects/${target}/keys/shared/${doc.id}`, data: { keyId: doc.id, fromProject: doc.projectId } },
        onFailure: () => ({ kind: "conflict", detail: "the share changed meanwhile; try again", reason: "changed_meanwhile" }),
      });
    }
  }

  /** Which key a leaked secret belongs to. Shape and checksum are checked first: a mistyped key never reaches the store. */
  async lookup(ctx: RequestContext, input: unknown): Promise<LookupResult> {
    if (!ctx.principal.roles.has("TenantAdmin") && !ctx.principal.roles.has("Auditor")) fail({ kind: "forbidden", detail: "looking up keys requires TenantAdmin or Auditor" });
    const { key } = parseOrThrow(LookupSpec, input, "body");
    if (!isWellFormedKey(key)) {
      throw new AppError({ kind: "validation", detail: "not a virtual key", errors: [{ field: "body.key", message: "is not an aigw_ key or its checksum does not match" }] });
    }
    const tenantId = ctx.principal.tenantId;
    const entry = await this.store.read<DigestDoc>({ tenantId, scopeId: TENANT_SCOPE }, digestId(keyDigest(await this.pepperValue(), key)));
    const doc = entry ? await this.store.read<KeyDoc>(this.partition(tenantId, entry.projectId), entry.keyId) : undefined;
    if (!entry || !doc) return notFound("/keys/lookup");
    const slot = doc.slots[entry.slot];
    const live = slot.kind === "secret" && slot.version === entry.version;
    const secret = !live ? "retired" : entry.slot === doc.current ? "current" : "next";
    return { keyId: doc.id, projectId: doc.projectId, status: statusOf(doc), secret };
  }

  // ------------------------------------------------------------------------------------------
  // Workflow steps (activities) and jobs

  /** Rotation step 1: the gateway holds both secrets (confirmed); fixes the end of the overlap. */
  async confirmRotation(tenantId: string, projectId: string, id: string, rotationId: string, correlationId: string): Promise<{ state: "gone" } | { state: "overlap"; until: string }> {
    const doc = await this.read(tenantId, projectId, id);
    if (!doc?.rotation || doc.rotation.id !== rotationId) return { state: "gone" };
    if (doc.rotation.phase === "retiring") return { state: "overlap", until: doc.rotation.overlapUntil ?? this.clock.now().toISOString() };
    const synced = await this.sync(tenantId, projectId, id, correlationId);
    if (synced !== "synced") throw new Error(`key ${id}: the gateway does not hold its product yet`);
    for (;;) {
      const cur = await this.read(tenantId, projectId, id);
      if (!cur?.rotation || cur.rotation.id !== rotationId) return { state: "gone" };
      if (cur.rotation.overlapUntil) return { state: "overlap", until: cur.rotation.overlapUntil };
      const until = new Date(this.clock.now().getTime() + cur.rotation.overlapMs).toISOString();
      const next: KeyDoc = { ...unversioned(cur), rotation: { ...cur.rotation, overlapUntil: until } };
      const r = await this.store.batch(this.partition(tenantId, projectId), [{ kind: "replace", doc: next, ifMatch: cur._etag }]);
      if (r.ok) return { state: "overlap", until };
    }
  }

  /** Rotation step 2: the old secret is replaced by a filler at the gateway (confirmed) and is never valid again. */
  async retireRotation(tenantId: string, projectId: string, id: string, rotationId: string, correlationId: string): Promise<"done" | "gone"> {
    const ctx = this.system(tenantId, correlationId);
    let doc = await this.read(tenantId, projectId, id);
    if (!doc?.rotation || doc.rotation.id !== rotationId) return "gone";
    if (doc.rotation.phase === "overlap") {
      const r = doc.rotation;
      const old = doc.current;
      const fillerGen = doc.fillerGen + 1;
      const next: KeyDoc = {
        ...unversioned(doc),
        current: r.newSlot,
        slots: { ...doc.slots, [old]: { kind: "filler", version: `g${fillerGen}` } },
        fillerGen,
        rotation: { ...r, phase: "retiring", ...(doc.slots[old].kind === "secret" ? { retiredVersion: doc.slots[old].version } : {}) },
        gateway: { ...doc.gateway, desiredGen: doc.gateway.desiredGen + 1 },
        updatedAt: this.clock.now().toISOString(),
        updatedBy: ctx.principal.userId,
      };
      await this.commit(ctx, doc, next, "key.rotation.retire", "aigov.key.rotation.retiring.v1");
    }
    if ((await this.sync(tenantId, projectId, id, correlationId)) !== "synced") throw new Error(`key ${id}: the gateway does not hold its product yet`);
    doc = (await this.read(tenantId, projectId, id))!;
    if (!doc.rotation || doc.rotation.id !== rotationId) return "gone";
    const at = this.clock.now().toISOString();
    const retiredSlot = other(doc.current);
    const retiredVersion = doc.rotation.retiredVersion;
    const { rotation: _r, ...rest } = unversioned(doc);
    const done: KeyDoc = { ...rest, rotationCount: doc.rotationCount + 1, lastRotatedAt: at, updatedAt: at, updatedBy: ctx.principal.userId };
    await this.commit(ctx, doc, done, "key.rotation.complete", "aigov.key.rotated.v1");
    // Defence in depth: the retired secret cannot even be read back for a republish. Only that version:
    // a rotation started since may already have put its new secret under the same name.
    if (retiredVersion) await this.disableRetired(id, retiredSlot, retiredVersion);
    return "done";
  }

  /**
   * Publishes the key's subscription and confirms it by reading it back. Idempotent; safe to call
   * from any step and from the jobs. "waitingForProfile": the key's product is not at the gateway yet
   * (a tenant publish has been asked for).
   */
  async sync(tenantId: string, projectId: string, id: string, correlationId: string): Promise<SyncResult> {
    const partition = this.partition(tenantId, projectId);
    for (let attempt = 0; attempt < SYNC_ATTEMPTS; attempt++) {
      const doc = await this.read(tenantId, projectId, id);
      if (!doc) return "synced";
      const live = doc.status === "active" || doc.status === "suspended";
      const exempted = live ? await this.gateway.exemptionTier(tenantId, projectId, id) : undefined;
      const artifact = subscriptionFor(doc, this.gateway.names(tenantId), exempted?.id);
      // In step when every change was confirmed and the subscription is still what it should be (an
      // exemption starting or ending moves it to another product without a change to the key).
      if (doc.gateway.syncedGen >= doc.gateway.desiredGen && doc.gateway.publishedHash === artifactHash(artifact)) return "synced";
      const parent = artifact.scope.type === "product" ? `product:${artifact.scope.productId}` : `api:${artifact.scope.apiId}`;
      if (!(await this.gateway.holds(tenantId, parent))) {
        const asked = await this.gateway.ensurePublished(tenantId, { by: "system:keys", reason: `virtual key ${id} needs ${parent}`, correlationId });
        // The system publishes a key's product on top of what is published, never a project nobody
        // published: the key says it waits for that publish (housekeeping, not an audited change).
        const waitingFor = asked.needsPublish || !(await this.gateway.holds(tenantId, `api:${this.gateway.names(tenantId).api(projectId)}`)) ? "publish" : undefined;
        if (doc.gateway.waitingFor !== waitingFor) {
          const { waitingFor: _w, ...rest } = doc.gateway;
          await this.store.batch(partition, [{ kind: "replace", doc: { ...unversioned(doc), gateway: { ...rest, ...(waitingFor ? { waitingFor } : {}) } }, ifMatch: doc._etag }]);
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
      const claimed = await this.store.batch(partition, [{ kind: "replace", doc: { ...unversioned(doc), gateway: { ...doc.gateway, syncing: claim } }, ifMatch: doc._etag }]);
      if (!claimed.ok) continue;
      const release = async (extra: Partial<KeyDoc["gateway"]> = {}) => {
        for (;;) {
          const cur = await this.read(tenantId, projectId, id);
          if (!cur || cur.gateway.syncing?.token !== claim.token) return;
          const { syncing: _s, ...gateway } = cur.gateway;
          if ((await this.store.batch(partition, [{ kind: "replace", doc: { ...unversioned(cur), gateway: { ...gateway, ...extra } }, ifMatch: cur._etag }])).ok) return;
        }
      };
      const publisher = await this.gateway.publisher(tenantId);
      const ref = artifactRef(artifact);
      const hash = artifactHash(artifact);
      let back;
      let expected;
      try {
        await publisher.publish([artifact], doc.gateway.publishedHash ? { [ref]: doc.gateway.publishedHash } : {});
        back = (await publisher.read([ref]))[ref];
        expected = await expectedReadBack(artifact, (r) => this.resolveSecret(r));
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
        const cur = await this.read(tenantId, projectId, id);
        if (!cur) return "synced";
        if (cur.gateway.syncing?.token !== claim.token) break; // the claim expired and another sync took over
        const confirmed = cur.gateway.desiredGen === gen;
        const { syncing: _s, ...gatewayRest } = cur.gateway;
        const next: KeyDoc = {
          ...unversioned(cur),
          gateway: {
            ...withoutExemptionTier(gatewayRest),
            waitingFor: undefined,
            publishedHash: hash,
            publishedProfile: profileDefOf(doc),
            // The exemption tier the subscription is on stays compiled until the key has left it.
            ...(exempted ? { publishedExemptionTier: exempted } : {}),
            ...(confirmed ? { syncedGen: gen } : {}),
          },
          ...(confirmed && cur.revocationPending ? { revocationPending: false } : {}),
        };
        const r = await this.store.batch(partition, [{ kind: "replace", doc: next, ifMatch: cur._etag }]);
        if (!r.ok) continue;
        if (confirmed && cur.revocationPending) {
          // Now, and only now, the key is revoked as far as anyone can tell.
          await this.changes.commit({
            partition,
            ctx: this.system(tenantId, correlationId),
            action: "key.revoke.confirm",
            resource: keyPath(projectId, id),
            after: { status: "revoked" },
            ops: [],
            event: { type: "aigov.key.revoked.v1", subject: subjectOf(tenantId, projectId, id), data: { keyId: id, projectId } },
          });
        }
        if (confirmed) return "synced";
        break; // a newer change arrived while publishing: publish it too
      }
    }
    throw new Error(`key ${id}: the gateway did not confirm the subscription after ${SYNC_ATTEMPTS} attempts`);
  }

  /** Resolves the secret references of subscriptions for the publisher: real secrets from the store, fillers derived. */
  async resolveSecret(ref: SecretRef): Promise<string> {
    if (ref.name.startsWith("vkfill-")) {
      // Derived, never stored: unknowable without the pepper, different for every slot and generation.
      return `unused-${createHmac("sha256", await this.pepperValue()).update(`${ref.name}/${ref.version}`).digest("base64url")}`;
    }
    const value = await this.secrets.get(ref.name, ref.version);
    if (!value) throw new Error(`secret ${ref.name} (version ${ref.version}) is not available`);
    return value.value;
  }

  /** Starts a scheduled rotation (the job): the owner collects the new secret during the overlap. */
  async beginScheduledRotation(tenantId: string, projectId: string, id: string, overlapHours: number, correlationId: string): Promise<string | undefined> {
    const doc = await this.read(tenantId, projectId, id);
    if (!doc || doc.status !== "active" || doc.rotation) return undefined;
    const { rotationId } = await this.beginRotation(this.system(tenantId, correlationId), doc, overlapHours * 3_600_000, true, "scheduled rotation");
    return rotationId;
  }

  /** The job's per-key housekeeping: expiry notices, expiry, and gateway changes not yet confirmed. */
  async housekeep(listed: Versioned<KeyDoc>, correlationId: string): Promise<Versioned<KeyDoc> | undefined> {
    // The job lists keys in pages: act on the listed document, re-read only after acting (every write
    // is conditional, so a listed document gone stale fails the write and the job retries the key).
    const { tenantId, projectId, id } = listed;
    let doc: Versioned<KeyDoc> | undefined = listed;
    const now = this.clock.now().getTime();
    const expiresAt = Date.parse(doc.expiresAt);
    if ((doc.status === "active" || doc.status === "suspended") && expiresAt <= now) {
      await this.kill(this.system(tenantId, correlationId), doc, "expired", "expiresAt reached");
      doc = await this.read(tenantId, projectId, id);
    } else if (doc.status === "active" || doc.status === "suspended") {
      for (const [notice, ms] of [["14d", 14 * 86_400_000], ["1d", 86_400_000]] as const) {
        if (!doc || expiresAt - now > ms || doc.notices[notice]) continue;
        // The 14-day notice is pointless once the 1-day one is due (after downtime): send only the nearer one.
        if (notice === "14d" && expiresAt - now <= 86_400_000) continue;
        const next: KeyDoc = { ...unversioned(doc), notices: { ...doc.notices, [notice]: new Date(now).toISOString() } };
        await this.commit(this.system(tenantId, correlationId), doc, next, `key.expiring.${notice}`, "aigov.key.expiring.v1", { keyId: id, projectId, owner: doc.owner, expiresAt: doc.expiresAt, notice });
        doc = await this.read(tenantId, projectId, id);
      }
    }
    // A rotation's own steps sync the key; otherwise reconcile (unconfirmed changes, exemption moves).
    if (doc && !doc.rotation) await this.sync(tenantId, projectId, id, correlationId);
    return doc;
  }

  /** The key as stored now (a job retrying a key whose listed document went stale). */
  latest(doc: Pick<KeyDoc, "tenantId" | "projectId" | "id">): Promise<Versioned<KeyDoc> | undefined> {
    return this.read(doc.tenantId, doc.projectId, doc.id);
  }

  /** Background only: every key (the lifecycle job's work list). */
  everyKey(): AsyncGenerator<Versioned<KeyDoc>> {
    return everyDoc<KeyDoc>(this.store, "all", { docType: "virtualKey" });
  }

  /** Every key of a tenant's project, for the compiler (key profiles become key tiers). */
  /**
   * After a revision reached the gateway: keys whose change the gateway has not confirmed (most often a
   * new key waiting for its profile's product) are synced now instead of at the lifecycle job's next
   * run. Best effort: a key that fails here stays pending and the job retries it.
   */
  async syncWaiting(tenantId: string, projectIds: string[], correlationId: string): Promise<number> {
    let synced = 0;
    for (const projectId of projectIds) {
      for await (const doc of everyDoc<KeyDoc>(this.store, this.partition(tenantId, projectId), { docType: "virtualKey" })) {
        if (doc.gateway.syncedGen >= doc.gateway.desiredGen || doc.rotation) continue;
        try {
          if ((await this.sync(tenantId, projectId, doc.id, correlationId)) === "synced") synced++;
        } catch {
          // Left pending: the key lifecycle job retries unconfirmed keys.
        }
      }
    }
    return synced;
  }

  async listAllDocs(tenantId: string, projectId: string): Promise<KeyDoc[]> {
    return toArray(everyDoc<KeyDoc>(this.store, this.partition(tenantId, projectId), { docType: "virtualKey" }));
  }

  /** Whether a key exists in the project (exemptions of one key name it). */
  async exists(tenantId: string, projectId: string, id: string): Promise<boolean> {
    return /^key_[0-9a-z]{20}$/.test(id) && (await this.read(tenantId, projectId, id)) !== undefined;
  }


  // ------------------------------------------------------------------------------------------
  // Internals

  private async beginRotation(ctx: RequestContext, doc: Versioned<KeyDoc>, overlap: number, scheduled: boolean, reason?: string) {
    if (doc.status !== "active") fail({ kind: "conflict", detail: `a ${doc.status} key cannot be rotated`, reason: "key_not_active" });
    if (doc.rotation) fail({ kind: "conflict", detail: "a rotation of this key is already in progress", reason: "rotation_in_progress" });
    const tenantId = ctx.principal.tenantId;
    const newSlot = other(doc.current);
    const plaintext = generateKey();
    const secret = await this.secrets.set(secretName(doc.id, newSlot), plaintext, { contentType: "aigov-virtual-key", tags: { keyId: doc.id, projectId: doc.projectId } });
    let committing = false;
    try {
      await this.index(tenantId, doc.projectId, doc.id, newSlot, secret.version, plaintext);
      committing = true;
      return await this.commitRotation(ctx, doc, newSlot, secret.version, plaintext, overlap, scheduled, reason);
    } catch (err) {
      // Nothing references the new secret when the rotation was not recorded: the key changed under
      // us (an ETag race with another rotation, a revocation, …: 412) or the write was refused. It must
      // not stay an enabled version nobody tracks: disable it. A store error of unknown outcome (the
      // write may have landed) leaves it alone — the rotation may be real.
      if (!committing || err instanceof AppError) await this.discardUnusedSecret(tenantId, doc.id, newSlot, secret.version, plaintext);
      throw err;
    }
  }

  /** Records a rotation whose new secret (`version`) is already in the secret store; 412 when the key changed meanwhile. */
  private async commitRotation(ctx: RequestContext, doc: Versioned<KeyDoc>, newSlot: SlotName, version: string, plaintext: string, overlap: number, scheduled: boolean, reason?: string) {
    const at = this.clock.now().toISOString();
    const rotationId = newId("rot");
    const next: KeyDoc = {
      ...unversioned(doc),
      slots: { ...doc.slots, [newSlot]: { kind: "secret", version: version } },
      rotation: { id: rotationId, phase: "overlap", newSlot, overlapMs: overlap, startedAt: at, startedBy: ctx.principal.userId, scheduled },
      ...(scheduled ? { pickup: { slot: newSlot, version: version } } : {}),
      // The hints follow the secret the owner is to use from now on.
      ...keyHints(plaintext),
      secretCreatedAt: at,
      gateway: { ...doc.gateway, desiredGen: doc.gateway.desiredGen + 1 },
      updatedAt: at,
      updatedBy: ctx.principal.userId,
    };
    const etag = await this.commit(ctx, doc, next, "key.rotate", "aigov.key.rotation.started.v1", { keyId: doc.id, projectId: doc.projectId, scheduled, overlapMs: overlap, ...(reason ? { reason } : {}) });
    return { plaintext, rotationId, doc: next, etag };
  }

  /** Revocation and expiry: both slots become fillers (the secrets are never valid again) and the subscription is cancelled. */
  private async kill(ctx: RequestContext, doc: Versioned<KeyDoc>, status: "revoked" | "expired", reason: string): Promise<void> {
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
    await this.commit(ctx, doc, next, status === "revoked" ? "key.revoke" : "key.expire", status === "revoked" ? "aigov.key.revocation.requested.v1" : "aigov.key.expired.v1", {
      keyId: doc.id,
      projectId: doc.projectId,
      reason,
    });
    for (const slot of ["primary", "secondary"] as const) if (doc.slots[slot].kind === "secret") await this.disableRetired(doc.id, slot, doc.slots[slot].version);
  }

  private async setActive(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch: string | undefined, status: "active" | "suspended"): Promise<Key> {
    const doc = await this.mayManage(ctx, projectId, id);
    const spec = parseOrThrow(ReasonSpec, input, "body");
    if (ifMatch !== undefined && !etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    const allowed = status === "suspended" ? doc.status === "active" : doc.status === "suspended";
    if (!allowed) fail({ kind: "conflict", detail: `a ${doc.status} key cannot be ${status === "suspended" ? "suspended" : "resumed"}`, reason: status === "suspended" ? "key_not_active" : "key_not_suspended" });
    if (status === "active" && Date.parse(doc.expiresAt) <= this.clock.now().getTime()) fail({ kind: "conflict", detail: "the key has expired", reason: "key_expired" });
    const next: KeyDoc = {
      ...unversioned(doc),
      status,
      gateway: { ...doc.gateway, desiredGen: doc.gateway.desiredGen + 1 },
      updatedAt: this.clock.now().toISOString(),
      updatedBy: ctx.principal.userId,
    };
    await this.commit(ctx, doc, next, status === "suspended" ? "key.suspend" : "key.resume", status === "suspended" ? "aigov.key.suspended.v1" : "aigov.key.resumed.v1", {
      keyId: id,
      projectId,
      reason: spec.reason,
    });
    const synced = await this.trySync(ctx.principal.tenantId, projectId, id, ctx.correlationId);
    return this.reread(ctx.principal.tenantId, projectId, id, synced);
  }

  private async commit(ctx: RequestContext, before: Versioned<KeyDoc>, after: KeyDoc, action: string, eventType: string, data?: unknown): Promise<string> {
    const [etag] = await this.changes.commit({
      partition: this.partition(ctx.principal.tenantId, before.projectId),
      ctx,
      action,
      resource: keyPath(before.projectId, before.id),
      before: snapshot(before),
      after: snapshot(after),
      ops: [{ kind: "replace", doc: after, ifMatch: before._etag }],
      event: { type: eventType, subject: subjectOf(ctx.principal.tenantId, before.projectId, before.id), data: data ?? snapshot(after) },
      onFailure: () => ({ kind: "preconditionFailed" }),
    });
    return etag ?? "";
  }

  /** A gateway change right away when the gateway answers; otherwise the key stays "pending" and the job retries. */
  private async trySync(tenantId: string, projectId: string, id: string, correlationId: string): Promise<Versioned<KeyDoc> | undefined> {
    try {
      await this.sync(tenantId, projectId, id, correlationId);
    } catch (err) {
      console.warn(`key ${id}: gateway change not confirmed yet (${err instanceof Error ? err.message : String(err)}); the key lifecycle job retries`);
    }
    return this.read(tenantId, projectId, id);
  }

  private async reread(tenantId: string, projectId: string, id: string, doc: Versioned<KeyDoc> | undefined): Promise<Key> {
    const d = doc ?? (await this.load(tenantId, projectId, id));
    return view(d, d._etag);
  }

  private async validate(ctx: RequestContext, project: Project, policy: KeyPolicy, scopes: KeyScopes, limits: KeyLimits, expiresAt: string, now: Date): Promise<void> {
    const errors: { field: string; message: string }[] = [];
    const exp = Date.parse(expiresAt);
    if (exp <= now.getTime()) errors.push({ field: "body.expiresAt", message: "must be in the future" });
    const tooLong = exp > now.getTime() + policy.maxTtlDays * 86_400_000;
    if (tooLong) errors.push({ field: "body.expiresAt", message: `is beyond the project's maximum key lifetime of ${policy.maxTtlDays} days` });
    const models = await this.models.listAll(ctx.principal.tenantId, project.id);
    const byId = new Map(models.map((m) => [m.id, m]));
    (scopes.models ?? []).forEach((m, i) => {
      if (!byId.has(m)) errors.push({ field: `body.scopes.models.${i}`, message: `model ${m} is not registered in this project` });
    });
    if (limits.budget) {
      const scoped: Model[] = scopes.models?.length ? scopes.models.flatMap((m) => byId.get(m) ?? []) : models;
      if (scoped.length === 0 || scoped.some((m) => !m.pricing || m.pricing.currency !== limits.budget!.currency)) {
        errors.push({ field: "body.limits.budget", message: `needs every model the key can reach to be priced in ${limits.budget.currency}` });
      }
      if (limits.tokenQuota && limits.tokenQuota.period !== limits.budget.period) errors.push({ field: "body.limits.budget.period", message: "must equal tokenQuota.period when both are set" });
    }
    if (errors.length > 0) throw new AppError({ kind: "validation", detail: "the key cannot be created as requested", errors, ...(tooLong ? { reason: "key_lifetime_exceeded" as const } : {}) });
  }

  private async index(tenantId: string, projectId: string, keyId: string, slot: SlotName, version: string, plaintext: string): Promise<void> {
    const digest = keyDigest(await this.pepperValue(), plaintext);
    const doc: DigestDoc = { id: digestId(digest), tenantId, scopeId: TENANT_SCOPE, docType: "keyDigest", projectId, keyId, slot, version };
    const r = await this.store.batch({ tenantId, scopeId: TENANT_SCOPE }, [{ kind: "create", doc }]);
    if (!r.ok) throw new Error(`key digest index write failed (${r.status})`);
  }

  /**
   * A secret version made for a rotation that was not recorded: disabled (never readable again, so
   * never publishable) and its digest entry removed. Best effort: a failure is logged (never the value).
   */
  private async discardUnusedSecret(tenantId: string, keyId: string, slot: SlotName, version: string, plaintext: string): Promise<void> {
    try {
      await this.secrets.disableVersion(secretName(keyId, slot), version);
    } catch (err) {
      console.warn(`key ${keyId}: could not disable the unused secret version ${version} of an unrecorded rotation: ${err instanceof Error ? err.message : String(err)}`);
    }
    try {
      await this.store.batch({ tenantId, scopeId: TENANT_SCOPE }, [{ kind: "delete", id: digestId(keyDigest(await this.pepperValue(), plaintext)) }]);
    } catch {
      // A stale digest entry of a secret nobody ever saw only makes a lookup of it answer "retired".
    }
  }

  private async disableRetired(keyId: string, slot: SlotName, version?: string): Promise<void> {
    try {
      const versions = await this.secrets.listVersions(secretName(keyId, slot));
      for (const v of versions) if (v.enabled && (version === undefined || v.version === version)) await this.secrets.disableVersion(secretName(keyId, slot), v.version);
    } catch (err) {
      console.warn(`key ${keyId}: could not disable a retired secret version: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private pepperValue(): Promise<string> {
    this.pepper ??= (async () => {
      if (!(await this.secrets.get(PEPPER_NAME))) await this.secrets.set(PEPPER_NAME, randomBytes(32).toString("base64url"), { contentType: "aigov-pepper" });
      // Instances racing on first use may each write a version: all of them use the OLDEST enabled
      // one, which they agree on (the newest would differ until every write has landed).
      const versions = (await this.secrets.listVersions(PEPPER_NAME)).filter((v) => v.enabled);
      const oldest = versions.sort((a, b) => (a.createdOn?.getTime() ?? 0) - (b.createdOn?.getTime() ?? 0))[0];
      const value = oldest ? await this.secrets.get(PEPPER_NAME, oldest.version) : undefined;
      if (!value) throw new Error("the key pepper is not readable");
      return value.value;
    })().catch((err: unknown) => {
      this.pepper = undefined;
      throw err;
    });
    return this.pepper;
  }

  private async writable(ctx: RequestContext, projectId: string, what: string): Promise<Project> {
    const project = await this.projects.get(ctx, projectId);
    const p = ctx.principal;
    const assigned = project.roleAssignments.some((a) => a.principalId === p.userId && (a.role === "ProjectAdmin" || a.role === "Developer"));
    if (!p.roles.has("TenantAdmin") && !p.roles.has("ProjectAdmin") && !p.roles.has("Developer") && !assigned) {
      fail({ kind: "forbidden", detail: `to ${what} keys requires TenantAdmin, ProjectAdmin or Developer` });
    }
    return project;
  }

  /** The key, if the caller may change it: owners their keys; tenant and project admins every key of the project. */
  private async mayManage(ctx: RequestContext, projectId: string, id: string): Promise<Versioned<KeyDoc>> {
    const project = await this.projects.get(ctx, projectId);
    const doc = await this.load(ctx.principal.tenantId, projectId, id);
    const p = ctx.principal;
    const admin = p.roles.has("TenantAdmin") || p.roles.has("ProjectAdmin") || project.roleAssignments.some((a) => a.principalId === p.userId && a.role === "ProjectAdmin");
    if (!admin && doc.owner !== p.userId) fail({ kind: "forbidden", detail: "only the key's owner or an admin may change it" });
    return doc;
  }

  private async load(tenantId: string, projectId: string, id: string): Promise<Versioned<KeyDoc>> {
    const doc = /^key_[0-9a-z]{20}$/.test(id) ? await this.read(tenantId, projectId, id) : undefined;
    if (!doc) return notFound(keyPath(projectId, id));
    return doc;
  }

  private async read(tenantId: string, projectId: string, id: string): Promise<Versioned<KeyDoc> | undefined> {
    const doc = await this.store.read<KeyDoc>(this.partition(tenantId, projectId), id);
    return doc && doc.docType === "virtualKey" ? doc : undefined;
  }

  private partition(tenantId: string, projectId: string): Partition {
    return { tenantId, scopeId: projectId };
  }

  private system(tenantId: string, correlationId: string): RequestContext {
    return { principal: { tenantId, userId: "system:keys", roles: new Set() }, correlationId };
  }
}

function withoutExemptionTier(g: KeyDoc["gateway"]): KeyDoc["gateway"] {
  const { publishedExemptionTier: _x, ...rest } = g;
  return rest;
}

