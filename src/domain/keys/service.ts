import { canonicalUser, sameUser } from "../users.js";
import type { Clock } from "../../ports/clock.js";
import { unversioned, type Versioned } from "../../ports/store.js";
import type { Model } from "../../pillars/models/schema.js";
import type { ModelService } from "../../pillars/models/service.js";
import type { Approval } from "../approvals/schema.js";
import type { ApprovalService } from "../approvals/service.js";
import { approvalDrive } from "../approvals/drive.js";
import { canonicalJson } from "../../util/canonical-json.js";
import { etagMatches, newId, type Page, type RequestContext } from "../common.js";
import { AppError, fail, notFound } from "../errors.js";
import type { Driven, DriveRetry } from "../kernel/drive.js";
import { systemContext } from "../kernel/system.js";
import { holdsAny, holdsOn, KEY_HOLDERS, KEY_INVESTIGATORS } from "../kernel/roles.js";
import { DEFAULT_KEY_POLICY, lockedNow, type KeyPolicy, type Project } from "../projects/schema.js";
import type { ProjectService } from "../projects/service.js";
import { parseOrThrow } from "../validation.js";
import { KeyAccess } from "./access.js";
import { lostTierGuard, profileOf, roomForProfile, roomForShared, statusOf, type KeyDoc, type KeyDocuments, type ProfileHolder, type TierGuard } from "./documents.js";
import { generateKey, isWellFormedKey, keyHints } from "./format.js";
import type { GatewayAccess } from "./gateway-access.js";
import { KeyGatewaySync } from "./gateway-sync.js";
import { KeyLifecycle, READBACKS_PER_RUN } from "./lifecycle.js";
import { KeyRotation } from "./rotation.js";
import { KeySpec, LookupSpec, overlapMs, ReasonSpec, RotateSpec, type Key, type KeyLimits, type KeyScopes, type KeySpecInput, type KeyWithSecret, type LookupResult } from "./schema.js";
import type { KeySecrets } from "./secrets.js";
import { KeyRequests } from "./requests.js";
import { KeySharing } from "./sharing.js";

/** The stored key (tests and tools read documents directly). */
export type { KeyDoc } from "./documents.js";

/** What the key service is built from. */
export interface KeyKit {
  clock: Clock;
  /** The key documents (also the compiler input's and the exemptions' read-only view of keys). */
  documents: KeyDocuments;
  /** The key material (also the gateway publishers' secret resolver). */
  secrets: KeySecrets;
  projects: ProjectService;
  models: Pick<ModelService, "listAll">;
  /** The tools pillar, when it is there: which tool scope entries name nothing in a project. */
  tools?: KeyToolScopes | undefined;
  /** The agents pillar, when it is there: which agent ids name nothing in a project. */
  agents?: KeyAgentScopes | undefined;
  gateway: GatewayAccess;
  approvals: ApprovalService;
  /** Rotation orchestrations' retry (PUBLISH_RETRY_*) and scheduled rotations per lifecycle run (KEY_ROTATIONS_PER_RUN). */
  rotations?: { retry: DriveRetry; perRun: number };
  /** When each key of a project was last used at the gateway (usage ingestion), by key id. */
  lastUse?: (tenantId: string, projectId: string) => Promise<Record<string, string> | undefined>;
  /** Which services the tenant names: a key's content safety needs the tenant's (or the project's publishes fail). */
  tenantServices?: (tenantId: string) => Promise<{ contentSafety?: unknown } | undefined>;
  /**
   * A key with a content-safety level in a project (its own, or one it is shared with): its tier screens every
   * prompt it sends there, so a region rule of the project, or of a model it reaches (`models`: their names;
   * absent: every one), that excludes the content-safety service's region refuses it (400, ADR 024).
   */
  keyRegions?: KeyRegionCheck | undefined;
}

/** See {@link KeyKit.keyRegions}. */
export type KeyRegionCheck = (tenantId: string, projectId: string, projectSettings: Project["settings"], key: { label: string; level: string; models?: readonly string[] | undefined }, field: string) => Promise<void>;

/** What keys ask the tools pillar: the entries of a tool scope that name no server, tool or toolbox of the project. */
export interface KeyToolScopes {
  unknownScopes(tenantId: string, projectId: string, entries: string[]): Promise<string[]>;
}

/** What keys ask the agents pillar: the agent ids that name no agent of the project; whether a key is a held agent's. */
export interface KeyAgentScopes {
  unknownAgents(tenantId: string, projectId: string, ids: string[]): Promise<string[]>;
  /**
   * When the key is the own key of an agent that is blocked, disabled, removed at its source or past its
   * sunset: why ("agent agt_… is blocked: …") and the refusal's reason. Such a key stays suspended
   * (`suspendedBy: "agentHold"`) until the agent is unblocked, enabled again, listed by its cloud again or
   * made active again.
   */
  heldKey(tenantId: string, projectId: string, keyId: string): Promise<{ detail: string; reason: "agent_blocked_or_disabled" | "agent_removed_at_source" | "agent_sunset_passed" } | undefined>;
}

/**
 * Whether a leaver's key is one their role's removal suspends (ADR 026): active, held by a lock or an agent's
 * hold (their end would bring it back), or waiting for its request's approval. A person's suspension stays theirs.
 */
const leaverMaySuspend = (doc: KeyDoc): boolean =>
  doc.status === "active" || (doc.status === "suspended" && (doc.suspendedBy === "projectLock" || doc.suspendedBy === "agentHold" || (doc.suspendedBy === undefined && doc.approval?.state === "pending")));

/**
 * Whether a leaver's key is one their role's removal holds for them (KeyDoc.leaverHold, ADR 026): a person's
 * suspension (the owner's or an admin's), which stays the person's but must not be resumed for a leaver.
 */
const leaverMayHold = (doc: KeyDoc): boolean =>
  doc.status === "suspended" && doc.leaverHold !== true && (doc.suspendedBy === undefined || doc.suspendedBy === "admin") && (doc.approval === undefined || doc.approval.state === "approved");

/** How often a collection is tried when the key changes under it (see pickup). */
const PICKUP_ATTEMPTS = 3;
const DEFAULT_ROTATIONS = { retry: { firstIntervalMs: 2000, maxAttempts: 6 }, perRun: 120 };

/**
 * Virtual keys: one APIM subscription per key (docs/adr/008-virtual-keys.md). The key material lives
 * only in the secret store (for the gateway) and, once, in the creation or rotation response; Cosmos
 * holds an HMAC digest (peppered), the prefix and the last four characters.
 *
 * This is the API; the parts it is made of do the rest: `documents` (reads, view, writes), `sync`
 * (confirmed gateway sync), `rotation` (the rotation's steps, for its orchestration), `lifecycle`
 * (expiry, scheduled rotation: the lifecycle job), `sharing` (shares and their approvals).
 */
export class KeyService {
  readonly documents: KeyDocuments;
  readonly sync: KeyGatewaySync;
  readonly rotation: KeyRotation;
  readonly lifecycle: KeyLifecycle;
  readonly sharing: KeySharing;
  readonly requests: KeyRequests;
  private readonly access: KeyAccess;
  private readonly secrets: KeySecrets;
  private readonly clock: Clock;
  private readonly models: Pick<ModelService, "listAll">;
  private readonly tools: KeyToolScopes | undefined;
  private readonly agents: KeyAgentScopes | undefined;
  private readonly lastUse: KeyKit["lastUse"];
  private readonly tenantServices: KeyKit["tenantServices"];
  private readonly keyRegions: KeyKit["keyRegions"];
  private readonly gateway: GatewayAccess;
  private readonly projects: ProjectService;
  private readonly approvals: ApprovalService;

  constructor(kit: KeyKit) {
    const { clock, documents, secrets, projects, gateway } = kit;
    const rotations = kit.rotations ?? DEFAULT_ROTATIONS;
    this.projects = projects;
    this.approvals = kit.approvals;
    this.documents = documents;
    this.secrets = secrets;
    this.clock = clock;
    this.models = kit.models;
    this.tools = kit.tools;
    this.agents = kit.agents;
    this.lastUse = kit.lastUse;
    this.tenantServices = kit.tenantServices;
    this.keyRegions = kit.keyRegions;
    this.gateway = gateway;
    this.access = new KeyAccess(projects, documents, clock);
    this.sync = new KeyGatewaySync(documents, secrets.resolveSecret, gateway, clock);
    this.rotation = new KeyRotation(documents, secrets, this.sync, clock, rotations.retry);
    this.lifecycle = new KeyLifecycle(documents, secrets, this.sync, this.rotation, projects, clock, rotations.perRun, READBACKS_PER_RUN, kit.approvals);
    this.sharing = new KeySharing(documents, this.access, projects, kit.approvals, this.sync, gateway, clock, kit.models, kit.keyRegions);
    this.requests = new KeyRequests(documents, kit.approvals, this.sync, this.lifecycle, projects, clock);
  }

  /**
   * A new key, its secret in this answer only. Where the project's keys need an approval and the caller
   * does not manage the project, the key is created suspended with its request's approval (`drive`: the
   * approval's orchestration); the approval activates it (requests.ts).
   */
  async create(ctx: RequestContext, projectId: string, input: KeySpecInput): Promise<Driven<KeyWithSecret>> {
    const project = await this.access.writable(ctx, projectId, "create");
    // A key held in someone else's name is an admin's to make: its holder answers for it (access reviews,
    // notices, collecting rotated secrets), and a developer must not make a key that is theirs in all but name.
    const named = (input as { owner?: unknown } | undefined)?.owner;
    if (typeof named === "string" && !sameUser(canonicalUser(named), ctx.principal.userId) && !this.access.manages(ctx, project)) {
      fail({ kind: "forbidden", detail: "only a TenantAdmin or the project's ProjectAdmin creates a key for someone else", reason: "key_owner_not_caller" });
    }
    const spec = parseOrThrow(KeySpec, input, "body");
    const policy = project.keyPolicy ?? DEFAULT_KEY_POLICY;
    const now = this.clock.now();
    const expiresAt = spec.expiresAt ?? new Date(now.getTime() + policy.defaultTtlDays * 86_400_000).toISOString();
    await this.validate(ctx, project, policy, spec.scopes, spec.limits, expiresAt, now);
    // A key with a profile of its own may add one to the project's key tiers: the place is counted under the
    // project's guard, taken again in the key's own write (a key or key exemption written meanwhile is counted then).
    const holder = { projectId: project.id, scopes: spec.scopes, limits: spec.limits, status: "active" as const };
    const guarded = profileOf(holder) !== "";
    const guard = guarded ? await this.documents.tierGuard(ctx.principal.tenantId, project.id) : undefined;
    await roomForProfile(this.documents, ctx.principal.tenantId, holder);

    const id = newId("key");
    // The approval first: a key never exists that waits for an approval nobody was asked for.
    const approval = this.requests.needsApproval(ctx, project) ? await this.requests.open(ctx, project, { id, name: spec.name, scopes: spec.scopes, justification: spec.justification }) : undefined;
    const plaintext = generateKey();
    const version = await this.secrets.write(id, projectId, "primary", plaintext);
    await this.secrets.index(ctx.principal.tenantId, projectId, id, "primary", version, plaintext);
    const at = now.toISOString();
    const doc: KeyDoc = {
      id,
      tenantId: ctx.principal.tenantId,
      scopeId: projectId,
      docType: "virtualKey",
      projectId,
      name: spec.name,
      ...(spec.description ? { description: spec.description } : {}),
      owner: canonicalUser(spec.owner ?? ctx.principal.userId),
      scopes: spec.scopes,
      limits: spec.limits,
      expiresAt,
      status: approval ? "suspended" : "active",
      ...(approval ? { approval: { approvalId: approval.id, state: "pending" as const, requestedBy: ctx.principal.userId, requestedAt: now.toISOString() } } : {}),
      ...keyHints(plaintext),
      current: "primary",
      slots: { primary: { kind: "secret", version }, secondary: { kind: "filler", version: "g1" } },
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
    const created = await this.createUnderGuard(ctx, doc, guard, holder).catch(async (err: unknown) => {
      // Refused (no place left once counted again): the request's approval awaits nothing; the secret's digest is dropped.
      if (approval) await this.approvals.withdraw(ctx.principal.tenantId, approval.id, "its key was not made", ctx.correlationId).catch(() => undefined);
      await this.secrets.discardUnused(ctx.principal.tenantId, id, "primary", version, plaintext).catch(() => undefined);
      throw err;
    });
    // The project was deleted while this was written (its delete marked it first): the key is revoked
    // before it ever reaches the gateway, and the caller gets the project's 404 (no secret handed out).
    await this.projects.withdrawUnlessStanding(ctx, projectId, async (system) => {
      // A sync (a publish's, the job's) may claim the key meanwhile: read again until the revocation is written.
      for (let attempt = 0; attempt < 8; attempt++) {
        const written = await this.documents.read(ctx.principal.tenantId, projectId, id);
        if (!written || written.status === "revoked") break;
        try {
          await this.lifecycle.end(system, written, "revoked", "its project was deleted as it was created");
          break;
        } catch (err) {
          if (!(err instanceof AppError && err.error.kind === "preconditionFailed")) throw err;
        }
      }
      if (approval) await this.approvals.withdraw(ctx.principal.tenantId, approval.id, "its key's project was deleted", ctx.correlationId).catch(() => undefined);
    });
    // The owner's last key-holding project role was removed while this was written: the removal's suspensions
    // may have listed the owner's keys before this one landed, and it would stay active (ADR 026). Read after
    // the write, the project says so: the key is suspended as the leaver's (giving the role back resumes it).
    if (await this.projects.leftSince(ctx.principal.tenantId, projectId, doc.owner, project.roleAssignments)) {
      await this.suspendOneForLeaver(systemContext(ctx.principal.tenantId, "system:project-roles", ctx.correlationId), projectId, id, doc.owner);
    }
    const synced = await this.sync.trySync(ctx.principal.tenantId, projectId, id, ctx.correlationId);
    return { ...(synced ? this.documents.view(synced) : created), key: plaintext, ...(approval ? { drive: approvalDrive(approval) } : {}) };
  }

  /** Writes a new key under the project's guard on key tiers (when it has a profile), counting its place again each time another writer took the guard first. */
  private async createUnderGuard(ctx: RequestContext, doc: KeyDoc, first: TierGuard | undefined, holder: ProfileHolder): Promise<Key> {
    let guard = first;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.documents.create(ctx, doc, guard);
      } catch (err) {
        if (!guard || !lostTierGuard(err) || attempt >= 20) throw err;
        guard = await this.documents.tierGuard(ctx.principal.tenantId, doc.projectId);
        await roomForProfile(this.documents, ctx.principal.tenantId, holder);
      }
    }
  }

  async get(ctx: RequestContext, projectId: string, id: string): Promise<Key> {
    const [key] = await this.withLastUse(ctx.principal.tenantId, projectId, [this.documents.view(await this.access.readable(ctx, projectId, id))]);
    return key!;
  }

  async list(ctx: RequestContext, projectId: string, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<Key>> {
    await this.access.project(ctx, projectId);
    const listed = await this.documents.page(ctx.principal.tenantId, projectId, page);
    return { ...listed, items: await this.withLastUse(ctx.principal.tenantId, projectId, listed.items) };
  }

  /** `lastUsedAt` from usage ingestion's record of the project's gateway traffic. */
  private async withLastUse(tenantId: string, projectId: string, keys: Key[]): Promise<Key[]> {
    const used = this.lastUse ? await this.lastUse(tenantId, projectId) : undefined;
    if (!used) return keys;
    return keys.map((k) => (used[k.id] && (!k.lastUsedAt || used[k.id]! > k.lastUsedAt) ? { ...k, lastUsedAt: used[k.id]! } : k));
  }

  /** Starts a rotation: the new secret goes into the standby slot now; the orchestration (`drive`) publishes, waits the overlap, retires. */
  async rotate(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch?: string): Promise<Driven<KeyWithSecret & { rotationId: string }>> {
    const doc = await this.access.mayManage(ctx, projectId, id, "rotate");
    const spec = parseOrThrow(RotateSpec, input ?? {}, "body");
    if (ifMatch !== undefined && !etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    const { plaintext, rotationId, key, drive } = await this.rotation.begin(ctx, doc, overlapMs(spec.overlap)!, false, spec.reason);
    return { ...key, key: plaintext, rotationId, drive };
  }

  async revoke(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch?: string): Promise<Key> {
    const doc = await this.access.mayManage(ctx, projectId, id);
    const spec = parseOrThrow(ReasonSpec, input, "body");
    if (ifMatch !== undefined && !etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (doc.status === "revoked") fail({ kind: "conflict", detail: "the key is already revoked", reason: "key_revoked" });
    await this.lifecycle.end(ctx, doc, "revoked", spec.reason);
    return this.synced(ctx, projectId, id);
  }

  /**
   * Revokes a key on behalf of automation (an access review's outcome; `ctx` is a system context, audited
   * as such), then tries its gateway change like any revocation. Idempotent: "alreadyGone" when the key
   * is gone or already ended.
   */
  async revokeBySystem(ctx: RequestContext, projectId: string, id: string, reason: string): Promise<"removed" | "alreadyGone"> {
    const doc = await this.documents.read(ctx.principal.tenantId, projectId, id);
    if (!doc || doc.status === "revoked" || doc.status === "expired") return "alreadyGone";
    await this.lifecycle.end(ctx, doc, "revoked", reason);
    await this.synced(ctx, projectId, id);
    return "removed";
  }

  async suspend(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch?: string): Promise<Key> {
    return this.setActive(ctx, projectId, id, input, ifMatch, "suspended");
  }

  async resume(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch?: string): Promise<Key> {
    return this.setActive(ctx, projectId, id, input, ifMatch, "active");
  }

  /**
   * New scopes and limits for a key whose scope another resource owns (an agent's key follows the
   * agent's guardrails): the key keeps its secret, and its subscription moves to its new profile's
   * product (confirmed at the gateway like any key change). Project managers only.
   */
  async rescope(ctx: RequestContext, projectId: string, id: string, scopes: KeyScopes, limits: KeyLimits): Promise<Key> {
    const project = await this.access.writable(ctx, projectId, "rescope");
    const doc = await this.access.mayManage(ctx, projectId, id);
    if (doc.status === "revoked" || doc.status === "expired") return this.documents.view(doc);
    // Already so: nothing to change, audit or publish (callers converge by asking again).
    if (canonicalJson({ scopes: doc.scopes, limits: doc.limits }) === canonicalJson({ scopes, limits })) return this.documents.view(doc);
    const policy = project.keyPolicy ?? DEFAULT_KEY_POLICY;
    await this.validate(ctx, project, policy, scopes, limits, doc.expiresAt, this.clock.now(), false, (doc.shares ?? []).filter((x) => x.status === "active" || x.status === "pending").map((x) => x.projectId));
    const next: KeyDoc = {
      ...unversioned(doc),
      scopes,
      limits,
      gateway: { ...doc.gateway, desiredGen: doc.gateway.desiredGen + 1 },
      updatedAt: this.clock.now().toISOString(),
      updatedBy: ctx.principal.userId,
    };
    // A shared key's new profiles are accepted by the projects it is shared with too. Counted under the
    // project's guard on key tiers, taken in the key's write (a profile or key exemption made meanwhile is counted then).
    // The tiers those projects accept are reserved in their own guards first (the key is written in its own
    // partition; their records of it exist already, so the key counts there once written: released then).
    await this.documents.underTierGuard(ctx.principal.tenantId, projectId, async (guard) => {
      await roomForShared(this.documents, ctx.principal.tenantId, { ...doc, scopes, limits });
      const reserved = await this.documents.reserveAccepted(ctx.principal.tenantId, { ...doc, scopes, limits });
      try {
        await this.documents.commitGuarded(ctx, doc, next, "key.rescope", "aigov.key.rescoped.v1", { keyId: id, projectId, scopes, limits }, guard);
      } finally {
        await reserved.release();
      }
    });
    return this.synced(ctx, projectId, id);
  }

  /**
   * The key passes to another owner (an agent's key follows its agent's owner): the previous owner may no
   * longer rotate, collect, suspend or resume it. Project managers only; nothing changes at the gateway.
   */
  async reassign(ctx: RequestContext, projectId: string, id: string, owner: string): Promise<Key> {
    // Not refused on a locked project: a new owner adds no access.
    const { doc, admin } = await this.access.mayManageAs(ctx, projectId, id);
    if (!admin) fail({ kind: "forbidden", detail: "only a TenantAdmin or the project's ProjectAdmin gives a key to someone else", reason: "key_owner_not_caller" });
    const next = canonicalUser(owner);
    if (doc.owner === next || doc.status === "revoked" || doc.status === "expired") return this.documents.view(doc);
    await this.documents.commit(ctx, doc, { ...unversioned(doc), owner: next, updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId }, "key.reassign", "aigov.key.reassigned.v1", { keyId: id, projectId, owner: next, previousOwner: doc.owner });
    return this.get(ctx, projectId, id);
  }

  /**
   * The new secret of a scheduled rotation, handed to the key's owner exactly once. The owner asks for "the
   * waiting secret", not for a version of the key (no If-Match): a concurrent change by the system (the
   * rotation's gateway bookkeeping) is read again and checked again, a few times, instead of reported.
   */
  async pickup(ctx: RequestContext, projectId: string, id: string): Promise<KeyWithSecret> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.pickupOnce(ctx, projectId, id);
      } catch (err) {
        const changed = err instanceof AppError && err.error.kind === "conflict" && err.error.reason === "changed_meanwhile";
        if (!changed || attempt === PICKUP_ATTEMPTS) throw err;
      }
    }
  }

  private async pickupOnce(ctx: RequestContext, projectId: string, id: string): Promise<KeyWithSecret> {
    const doc = await this.access.readable(ctx, projectId, id);
    if (!sameUser(doc.owner, ctx.principal.userId)) fail({ kind: "forbidden", detail: "only the key's owner collects a rotated secret", reason: "key_owner_only" });
    const pick = doc.pickup;
    // Collectable while that secret is still the key's (a later rotation or a revocation ends it).
    if (!pick || doc.slots[pick.slot].kind !== "secret" || doc.slots[pick.slot].version !== pick.version) {
      fail({ kind: "conflict", detail: "no rotated secret is waiting for collection", reason: "rotated_secret_not_waiting" });
    }
    const secret = await this.secrets.read(id, pick!.slot, pick!.version);
    if (secret === undefined) fail({ kind: "conflict", detail: "the rotated secret is no longer available", reason: "rotated_secret_gone" });
    const { pickup: _p, ...rest } = unversioned(doc);
    const next: KeyDoc = { ...rest, updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
    const key = await this.documents.commit(ctx, doc, next, "key.pickup", "aigov.key.secret.collected.v1", { keyId: id, projectId }, () => ({
      kind: "conflict",
      detail: "the key changed meanwhile; try again",
      reason: "changed_meanwhile",
    }));
    return { ...key, key: secret! };
  }

  /** Asks to use the key with another project of the tenant (an approval decides: `drive` is its orchestration). */
  share(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch?: string): Promise<Driven<{ key: Key; approval: Approval }>> {
    return this.sharing.share(ctx, projectId, id, input, ifMatch);
  }

  unshare(ctx: RequestContext, projectId: string, id: string, targetProjectId: string, ifMatch?: string): Promise<Key> {
    return this.sharing.unshare(ctx, projectId, id, targetProjectId, ifMatch);
  }

  listSharedIn(ctx: RequestContext, projectId: string): Promise<Key[]> {
    return this.sharing.listSharedIn(ctx, projectId);
  }

  /** Which key a leaked secret belongs to. Shape and checksum are checked first: a mistyped key never reaches the store. */
  async lookup(ctx: RequestContext, input: unknown): Promise<LookupResult> {
    if (!holdsAny(ctx.principal.roles, KEY_INVESTIGATORS)) fail({ kind: "forbidden", detail: "looking up keys requires TenantAdmin or Auditor" });
    const { key } = parseOrThrow(LookupSpec, input, "body");
    if (!isWellFormedKey(key)) {
      throw new AppError({ kind: "validation", detail: "not a virtual key", errors: [{ field: "body.key", message: "is not an aigw_ key or its checksum does not match" }] });
    }
    const tenantId = ctx.principal.tenantId;
    const entry = await this.secrets.lookup(tenantId, key);
    const doc = entry ? await this.documents.read(tenantId, entry.projectId, entry.keyId) : undefined;
    if (!entry || !doc) return notFound("/keys/lookup");
    const slot = doc.slots[entry.slot];
    const live = slot.kind === "secret" && slot.version === entry.version;
    const secret = !live ? "retired" : entry.slot === doc.current ? "current" : "next";
    return { keyId: doc.id, projectId: doc.projectId, status: statusOf(doc), secret };
  }

  /**
   * Suspends or resumes a key on behalf of automation (a sandbox's lock and its extension, an agent's
   * hold; `ctx` is a system context; `by` marks a suspension as the lock's or the hold's). Idempotent:
   * false when the key is gone or not in the state this would change.
   *
   * Resuming: `agentHold` resumes only a key that hold suspended, and not in a locked project (the hold's
   * sweep resumes it once the project is unlocked); `projectLock` only a key a lock (or a hold) suspended,
   * never one a person suspended. Nothing resumes the key of an agent that is blocked
   * or disabled: such a key (a lock's, say, ending) passes to the agent's hold instead, so the agent's
   * unblocking brings it back.
   */
  async setActiveBySystem(ctx: RequestContext, projectId: string, id: string, status: "active" | "suspended", reason: string, by?: KeyDoc["suspendedBy"]): Promise<boolean> {
    const doc = await this.documents.read(ctx.principal.tenantId, projectId, id);
    if (!doc || doc.status !== (status === "suspended" ? "active" : "suspended")) return false;
    if (status === "active") {
      if (Date.parse(doc.expiresAt) <= this.clock.now().getTime()) return false;
      if (by === "agentHold" && doc.suspendedBy !== "agentHold") return false;
      // The lock's end resumes what a lock (or an agent's hold, which the check below hands on) suspended:
      // never a person's suspension, made before the lock suspended the key or while it was locked.
      if (by === "projectLock" && doc.suspendedBy !== "projectLock" && doc.suspendedBy !== "agentHold") return false;
      // The role given back resumes only what the role's removal suspended.
      if (by === "roleRemoved" && doc.suspendedBy !== "roleRemoved") return false;
      // A request still waiting (or refused) is the approval's to settle: the key only stops being the leaver's.
      if (by === "roleRemoved" && doc.approval !== undefined && doc.approval.state !== "approved") {
        if (doc.approval.state === "pending") await this.writeActive(ctx, doc, "suspended", reason);
        return false;
      }
      const held = await this.agents?.heldKey(ctx.principal.tenantId, projectId, id);
      if (held) {
        if (doc.suspendedBy !== "agentHold") await this.writeActive(ctx, doc, "suspended", `${held.detail} (${reason})`, "agentHold");
        return false;
      }
      if (by === "agentHold") {
        const project = await this.projects.readDoc(ctx.principal.tenantId, projectId);
        if (!project || lockedNow(project, this.clock.now())) return false;
      }
      // A role given back in a locked sandbox: the key passes to the lock, whose end resumes it.
      if (by === "roleRemoved" && (await this.projects.holdKeyWhileLocked(ctx, projectId, id))) {
        await this.writeActive(ctx, doc, "suspended", `${reason} (held while the project is locked)`, "projectLock");
        return false;
      }
    }
    await this.writeActive(ctx, doc, status, reason, by);
    await this.synced(ctx, projectId, id);
    return true;
  }

  /**
   * A person lost their last project role that may hold keys: their keys in the project stop working
   * (suspended, `suspendedBy: "roleRemoved"`, audited and announced as any suspension), not revoked, so
   * the role given back gives them back. Active keys, keys a lock or an agent's hold suspended (those
   * would otherwise come back with the lock's or the hold's end) and keys whose request still waits (an
   * approval would otherwise activate it). A person's suspension stays the person's. Idempotent.
   */
  async suspendForLeaver(ctx: RequestContext, projectId: string, principalId: string): Promise<number> {
    const reason = `${principalId} no longer holds a project role that may hold keys`;
    let suspended = 0;
    for (const listed of await this.documents.listAll(ctx.principal.tenantId, projectId)) {
      if (!sameUser(listed.owner, principalId)) continue;
      const doc = await this.documents.read(ctx.principal.tenantId, projectId, listed.id);
      if (!doc || !sameUser(doc.owner, principalId)) continue;
      // A person's suspension stays the person's, held for the leaver: nobody resumes it until the role is back.
      if (leaverMayHold(doc)) {
        await this.writeLeaverHold(ctx, doc, true, reason);
        continue;
      }
      if (!leaverMaySuspend(doc)) continue;
      await this.writeActive(ctx, doc, "suspended", reason, "roleRemoved");
      await this.synced(ctx, projectId, doc.id);
      suspended += 1;
    }
    return suspended;
  }

  /**
   * One key of a leaver, suspended as suspendForLeaver does (a key written after the removal listed the
   * leaver's keys). Read again when a sync or another change wins the race for the key. True when suspended.
   */
  private async suspendOneForLeaver(ctx: RequestContext, projectId: string, id: string, principalId: string): Promise<boolean> {
    const reason = `${principalId} no longer holds a project role that may hold keys`;
    for (let attempt = 1; ; attempt++) {
      const doc = await this.documents.read(ctx.principal.tenantId, projectId, id);
      if (!doc || !sameUser(doc.owner, principalId) || !leaverMaySuspend(doc)) return false;
      try {
        await this.writeActive(ctx, doc, "suspended", reason, "roleRemoved");
      } catch (err) {
        if (err instanceof AppError && err.error.kind === "preconditionFailed" && attempt < 8) continue;
        throw err;
      }
      await this.synced(ctx, projectId, id);
      return true;
    }
  }

  /** A person got a project role that may hold keys back: the keys its removal suspended work again (idempotent). */
  async resumeForReturner(ctx: RequestContext, projectId: string, principalId: string): Promise<number> {
    const reason = `${principalId} holds a project role that may hold keys again`;
    let resumed = 0;
    for (const listed of await this.documents.listAll(ctx.principal.tenantId, projectId)) {
      // A key held for the leaver is theirs again: the hold ends, its (person's) suspension stays.
      if (sameUser(listed.owner, principalId) && listed.leaverHold) await this.releaseLeaverHold(ctx, projectId, listed.id, principalId, reason);
      if (!sameUser(listed.owner, principalId) || listed.status !== "suspended" || listed.suspendedBy !== "roleRemoved") continue;
      if (await this.setActiveBySystem(ctx, projectId, listed.id, "active", `${principalId} holds a project role that may hold keys again`, "roleRemoved")) resumed += 1;
    }
    return resumed;
  }

  /** Every tenant's keys an agent's hold suspended and nothing has resumed since (the hold's sweep). */
  async *agentHeldKeys(): AsyncGenerator<{ tenantId: string; projectId: string; id: string }> {
    for await (const k of this.documents.agentHeld()) yield { tenantId: k.tenantId, projectId: k.projectId, id: k.id };
  }

  /** The project's keys a sandbox lock suspended (KeyDoc.suspendedBy) and nothing has resumed since. */
  async lockSuspendedIds(tenantId: string, projectId: string): Promise<string[]> {
    const ids: string[] = [];
    for await (const k of this.documents.lockSuspended(tenantId, projectId)) ids.push(k.id);
    return ids;
  }

  private async setActive(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch: string | undefined, status: "active" | "suspended"): Promise<Key> {
    const { doc, admin, project: checked } = await this.access.mayManageAs(ctx, projectId, id, status === "active" ? "resume" : undefined);
    const spec = parseOrThrow(ReasonSpec, input, "body");
    // An admin's suspension (of a key someone else holds) is an admin's to lift, never the holder's.
    if (status === "active" && doc.suspendedBy === "admin" && !admin) fail({ kind: "forbidden", detail: "an admin suspended this key: only an admin resumes it", reason: "key_suspended_by_admin" });
    if (ifMatch !== undefined && !etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (status === "active" && doc.approval?.state === "pending") fail({ kind: "conflict", detail: "the key waits for its request's approval; it works once approved", reason: "key_awaiting_approval" });
    // Refused: the key is (being) revoked; resuming it would give access nobody approved.
    if (status === "active" && doc.approval !== undefined && doc.approval.state !== "approved") fail({ kind: "conflict", detail: `the key's request was ${doc.approval.state}; it never works`, reason: "key_request_refused" });
    // A key suspended because its owner lost their project role works again only for a key holder: the
    // owner while holding a key-holding role (a tenant role in their token, or one given back), never an
    // admin's resume on behalf of an owner the project no longer gives a role (giving it back resumes it).
    // So too a person's suspension that the removal held for the leaver (`leaverHold`): it stays the person's
    // (giving the role back does not resume it), but nobody resumes it for an owner without such a role.
    const heldForLeaver = doc.status === "suspended" && doc.leaverHold === true;
    if (status === "active" && (doc.suspendedBy === "roleRemoved" || heldForLeaver)) {
      const project = await this.access.project(ctx, projectId);
      const owner = { userId: doc.owner, roles: sameUser(doc.owner, ctx.principal.userId) ? ctx.principal.roles : new Set<never>() };
      const remedy = doc.suspendedBy === "roleRemoved" ? "give the role back (which resumes the key) or revoke it" : "give the role back (then its owner or an admin resumes the key) or revoke it";
      if (!holdsOn(owner, project, KEY_HOLDERS)) fail({ kind: "conflict", detail: `the key's owner ${doc.owner} no longer holds a role on the project that may hold keys: ${remedy}`, reason: "key_owner_without_role" });
    }
    // A key its agent's hold, a sandbox's lock or its owner's lost role suspended may be suspended by a person
    // too: then the person's suspension outlives the hold, the lock or the role (their end resumes only what they suspended).
    const systemHeld = doc.status === "suspended" && (doc.suspendedBy === "agentHold" || doc.suspendedBy === "projectLock" || doc.suspendedBy === "roleRemoved");
    const allowed = status === "suspended" ? doc.status === "active" || systemHeld : doc.status === "suspended";
    if (!allowed) fail({ kind: "conflict", detail: `a ${doc.status} key cannot be ${status === "suspended" ? "suspended" : "resumed"}`, reason: status === "suspended" ? "key_not_active" : "key_not_suspended" });
    if (status === "active" && Date.parse(doc.expiresAt) <= this.clock.now().getTime()) fail({ kind: "conflict", detail: "the key has expired", reason: "key_expired" });
    // The key of a blocked, disabled or past-sunset agent stays suspended until the agent is unblocked, enabled or made active again.
    const held = status === "active" ? await this.agents?.heldKey(ctx.principal.tenantId, projectId, id) : undefined;
    if (held) fail({ kind: "conflict", detail: held.detail, reason: held.reason });
    // A person's suspension of a key its owner's lost role suspended takes the key from the role's return: it is
    // held for the leaver (`leaverHold`), as the removal holds a key a person had suspended before it.
    const hold = status === "suspended" && doc.status === "suspended" && doc.suspendedBy === "roleRemoved";
    await this.writeActive(ctx, doc, status, spec.reason, status === "suspended" && admin && !sameUser(doc.owner, ctx.principal.userId) ? "admin" : undefined, hold);
    // The owner's last key-holding project role was removed while this resume was written: the removal's
    // suspensions skipped the key (a person's suspension stays the person's) and it would be active for a
    // leaver (ADR 026). Read after the write, the project says so: the key is suspended as the leaver's.
    if (status === "active" && (await this.projects.leftSince(ctx.principal.tenantId, projectId, doc.owner, checked.roleAssignments))) {
      await this.suspendOneForLeaver(systemContext(ctx.principal.tenantId, "system:project-roles", ctx.correlationId), projectId, id, doc.owner);
    }
    return this.synced(ctx, projectId, id);
  }

  private async writeActive(ctx: RequestContext, doc: Versioned<KeyDoc>, status: "active" | "suspended", reason: string, by?: KeyDoc["suspendedBy"], leaverHold = false): Promise<void> {
    const { suspendedBy: _was, ...rest } = unversioned(doc);
    const next: KeyDoc = {
      ...rest,
      status,
      ...(status === "suspended" && by ? { suspendedBy: by } : {}),
      ...(leaverHold ? { leaverHold: true as const } : {}),
      gateway: { ...doc.gateway, desiredGen: doc.gateway.desiredGen + 1 },
      updatedAt: this.clock.now().toISOString(),
      updatedBy: ctx.principal.userId,
    };
    await this.documents.commit(ctx, doc, next, status === "suspended" ? "key.suspend" : "key.resume", status === "suspended" ? "aigov.key.suspended.v1" : "aigov.key.resumed.v1", {
      keyId: doc.id,
      projectId: doc.projectId,
      reason,
    });
  }

  /**
   * Marks (or clears) a leaver's hold on a key a person suspended (KeyDoc.leaverHold, ADR 026): an audited and
   * announced change of the key (`key.leaverHold`, `aigov.key.leaverHold.changed.v1`); nothing changes at the gateway.
   */
  private async writeLeaverHold(ctx: RequestContext, doc: Versioned<KeyDoc>, held: boolean, reason: string): Promise<void> {
    const { leaverHold: _was, ...rest } = unversioned(doc);
    const next: KeyDoc = { ...rest, ...(held ? { leaverHold: true as const } : {}), updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
    await this.documents.commit(ctx, doc, next, "key.leaverHold", "aigov.key.leaverHold.changed.v1", { keyId: doc.id, projectId: doc.projectId, held, reason });
  }

  /** The hold on a returner's key ends (read again when another change wins the race for the key). Idempotent. */
  private async releaseLeaverHold(ctx: RequestContext, projectId: string, id: string, principalId: string, reason: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const doc = await this.documents.read(ctx.principal.tenantId, projectId, id);
      if (!doc || !sameUser(doc.owner, principalId) || !doc.leaverHold) return;
      try {
        await this.writeLeaverHold(ctx, doc, false, reason);
        return;
      } catch (err) {
        if (err instanceof AppError && err.error.kind === "preconditionFailed" && attempt < 8) continue;
        throw err;
      }
    }
  }

  /** The key after trying its gateway change within the request (the lifecycle job retries what is not confirmed). */
  private async synced(ctx: RequestContext, projectId: string, id: string): Promise<Key> {
    const tenantId = ctx.principal.tenantId;
    const doc = (await this.sync.trySync(tenantId, projectId, id, ctx.correlationId)) ?? (await this.documents.load(tenantId, projectId, id));
    return this.documents.view(doc);
  }

  private async validate(ctx: RequestContext, project: Project, policy: KeyPolicy, scopes: KeyScopes, limits: KeyLimits, expiresAt: string, now: Date, checkLifetime = true, sharedWith: readonly string[] = []): Promise<void> {
    const errors: { field: string; message: string }[] = [];
    const exp = Date.parse(expiresAt);
    if (checkLifetime && exp <= now.getTime()) errors.push({ field: "body.expiresAt", message: "must be in the future" });
    const tooLong = checkLifetime && exp > now.getTime() + policy.maxTtlDays * 86_400_000;
    if (tooLong) errors.push({ field: "body.expiresAt", message: `is beyond the project's maximum key lifetime of ${policy.maxTtlDays} days` });
    const models = await this.models.listAll(ctx.principal.tenantId, project.id);
    const byId = new Map(models.map((m) => [m.id, m]));
    (scopes.models ?? []).forEach((m, i) => {
      if (!byId.has(m)) errors.push({ field: `body.scopes.models.${i}`, message: `model ${m} is not registered in this project` });
    });
    if (scopes.tools?.length) {
      const unknown = this.tools ? await this.tools.unknownScopes(ctx.principal.tenantId, project.id, scopes.tools) : scopes.tools;
      for (const e of unknown) errors.push({ field: `body.scopes.tools.${scopes.tools.indexOf(e)}`, message: `${e} names no MCP server, tool or toolbox of this project` });
    }
    if (scopes.agents?.length) {
      const unknown = this.agents ? await this.agents.unknownAgents(ctx.principal.tenantId, project.id, scopes.agents) : scopes.agents;
      for (const e of unknown) errors.push({ field: `body.scopes.agents.${scopes.agents.indexOf(e)}`, message: `${e} names no agent of this project` });
    }
    if (limits.budget) {
      const scoped: Model[] = scopes.models ? scopes.models.flatMap((m) => byId.get(m) ?? []) : models;
      if (scopes.models?.length === 0) errors.push({ field: "body.limits.budget", message: "the key reaches no model (scopes.models is empty): there is nothing for a budget to buy" });
      else if (scoped.length === 0 || scoped.some((m) => !m.pricing || m.pricing.currency !== limits.budget!.currency)) {
        errors.push({ field: "body.limits.budget", message: `needs every model the key can reach to be priced in ${limits.budget.currency}` });
      }
      if (limits.tokenQuota && limits.tokenQuota.period !== limits.budget.period) errors.push({ field: "body.limits.budget.period", message: "must equal tokenQuota.period when both are set" });
    }
    // Checked here, not left to the compile: a key whose content safety has no service would fail every
    // later publish of its project (the project kept as the gateway holds it), by a Developer's key create.
    const serviceMissing = limits.contentSafety !== undefined && this.tenantServices !== undefined && !(await this.tenantServices(ctx.principal.tenantId))?.contentSafety;
    if (serviceMissing) errors.push({ field: "body.limits.contentSafety", message: "content safety needs the tenant's Azure AI Content Safety service: set services.contentSafety in the tenant settings first" });
    if (errors.length > 0) {
      throw new AppError({ kind: "validation", detail: "the key cannot be created as requested", errors, ...(tooLong || serviceMissing ? { reason: tooLong ? "key_lifetime_exceeded" : "content_safety_service_missing" } : {}) });
    }
    // The key's tier screens its prompts wherever it is applied: in its own project here, and in each project it
    // is shared with (`sharedWith`, on a rescope) — a region rule there that excludes the service refuses it.
    if (limits.contentSafety !== undefined && this.keyRegions) {
      const names = scopes.models?.map((id) => byId.get(id)?.name ?? id);
      await this.keyRegions(ctx.principal.tenantId, project.id, project.settings, { label: "the key", level: limits.contentSafety, models: names }, "body.limits.contentSafety");
      for (const target of sharedWith) {
        const into = await this.projects.readDoc(ctx.principal.tenantId, target);
        if (into) await this.keyRegions(ctx.principal.tenantId, target, into.settings, { label: `the key (shared with ${target})`, level: limits.contentSafety, models: names }, "body.limits.contentSafety");
      }
    }
  }
}
