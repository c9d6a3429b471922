import type { SettingsGuard } from "../policy/settings-guard.js";
import type { Clock } from "../../ports/clock.js";
import { TENANT_SCOPE, type Partition, type Store, type StoredDoc, type Versioned } from "../../ports/store.js";
import { sha256 } from "../audit/chain.js";
import type { ChangeWriter } from "../changes.js";
import { etagMatches, etagValue, newId, type Page, type Principal, type RequestContext, type Role } from "../common.js";
import { AppError, fail } from "../errors.js";
import { systemContext } from "../kernel/system.js";
import { ANY_TENANT_ROLE, holdsAny, KEY_HOLDERS, PROJECT_MANAGERS, TENANT_ADMINS } from "../kernel/roles.js";
import { everyDoc, listPage, toArray } from "../paging.js";
import { canonicalUser, sameUser } from "../users.js";
import { parseOrThrow } from "../validation.js";
import { DELETE_MARK_MS, DeletionMarks } from "./deletion-marks.js";
import { DEFAULT_KEY_POLICY, ENVIRONMENTS, lockedNow, ProjectSpec, sandboxDateError, type KeyPolicy, type Project, type ProjectPatch, type ProjectSpecInput } from "./schema.js";

export interface ProjectDoc extends StoredDoc, Omit<Project, "etag"> {
  docType: "project";
  scopeId: typeof TENANT_SCOPE;
  /** When each role assignment (`<principal>/<role>`) was made (access reviews leave newer ones without a recommendation). */
  roleAssignedAt?: Record<string, string>;
  /** Keys the sandbox lock suspended (an extension resumes exactly these). */
  suspendedByLock?: string[];
  /** Expiry notices sent, for the review date they were about (a new date starts over). */
  sandboxNotices?: { reviewDate?: string; "14d"?: string; "1d"?: string };
  /**
   * People whose last project role that may hold keys was removed, whose keys in the project are still to
   * be suspended (written with the removal; cleared once their keys are; the key lifecycle job finishes
   * what a crash left). `leaversPending` marks such a project for the job's query.
   */
  keyHoldersLeft?: string[];
  leaversPending?: true;
}

/** Project roles that may hold keys (KEY_HOLDERS as assigned on a project). */
const KEY_HOLDING_ROLES: ReadonlySet<string> = new Set(KEY_HOLDERS);
/** The principals (canonical) holding a project role that may hold keys. */
const keyHoldersOf = (assignments: readonly { principalId: string; role: string }[]): Set<string> =>
  new Set(assignments.filter((a) => KEY_HOLDING_ROLES.has(a.role)).map((a) => canonicalUser(a.principalId)));

/**
 * What the control plane does to a person's keys in a project when the project takes away, or gives back,
 * their last role that may hold keys (wired in the composition root: keys depend on projects, not the
 * reverse). Both idempotent; `ctx` is a system context.
 */
export interface KeyHolderHooks {
  left(ctx: RequestContext, projectId: string, principalId: string): Promise<void>;
  returned(ctx: RequestContext, projectId: string, principalId: string): Promise<void>;
}

/** Server-owned fields a PATCH keeps as they are (the lifecycle's: ./lifecycle.ts). */
const SERVER_OWNED = ["lock", "promotion", "lastPromotion", "gateDrift", "extension", "suspendedByLock", "sandboxNotices", "keyHoldersLeft", "leaversPending"] as const;
const INTERNAL = ["roleAssignedAt", "suspendedByLock", "sandboxNotices", "keyHoldersLeft", "leaversPending"] as const;

/** `<principal>/<role>`, the principal as tokens carry it (users.ts): one spelling for every way an id was written. */
const assignmentKey = (a: { principalId: string; role: string }) => `${canonicalUser(a.principalId)}/${a.role}`;
/** When each assignment was made, by canonical key (dates stored before ids were kept canonical have capitals). */
const assignedAt = (dates: Record<string, string> | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(dates ?? {}).map(([k, v]) => [assignmentKey({ principalId: k.slice(0, k.lastIndexOf("/")), role: k.slice(k.lastIndexOf("/") + 1) }), v]));

interface NameReservationDoc extends StoredDoc {
  docType: "nameReservation";
  resourceId: string;
}

export const tenantPartition = (tenantId: string): Partition => ({ tenantId, scopeId: TENANT_SCOPE });
const nameId = (name: string) => `name.project.${sha256(name.trim().toLowerCase()).slice(0, 48)}`;
export const projectPath = (id: string) => `/projects/${id}`;
export const projectSubject = (tenantId: string, id: string) => `/tenants/${tenantId}${projectPath(id)}`;

function hasAny(p: Principal, roles: readonly Role[]): boolean {
  return holdsAny(p.roles, roles);
}

function projectRoles(doc: ProjectDoc, p: Principal): Set<string> {
  return new Set(doc.roleAssignments.filter((a) => sameUser(a.principalId, p.userId)).map((a) => a.role));
}

const HIDDEN: ReadonlySet<string> = new Set(["docType", "scopeId", "_etag", ...INTERNAL]);

export function toProject(doc: Omit<ProjectDoc, "_etag">, etag: string): Project {
  // Copied field by field: \`delete\` would turn the object into a slow dictionary on every read.
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(doc)) if (!HIDDEN.has(k)) out[k] = (doc as Record<string, unknown>)[k];
  out.etag = etagValue(etag);
  return out as Project;
}

function projectDoc(
  spec: ProjectSpec,
  id: string,
  by: Principal,
  created: { createdAt: string; createdBy: string; roleAssignedAt?: Record<string, string> | undefined; roleAssignments?: readonly { principalId: string; role: string }[] },
  now: string,
): ProjectDoc {
  // An assignment the project already had keeps its date; one from before dates were kept counts from the project's creation.
  const had = new Set((created.roleAssignments ?? []).map(assignmentKey));
  const dated = assignedAt(created.roleAssignedAt);
  const since = (key: string) => dated[key] ?? (had.has(key) ? created.createdAt : now);
  // Kept as tokens carry the user (an object id in lower case, users.ts): an id written in capitals is the same
  // person, given the access and held to separation of duties as such; two spellings of one are one assignment.
  const roleAssignments = [...new Map(spec.roleAssignments.map((a) => ({ ...a, principalId: canonicalUser(a.principalId) })).map((a) => [assignmentKey(a), a])).values()];
  const roleAssignedAt = Object.fromEntries(roleAssignments.map((a) => [assignmentKey(a), since(assignmentKey(a))]));
  return {
    ...spec,
    roleAssignments,
    roleAssignedAt,
    id,
    tenantId: by.tenantId,
    scopeId: TENANT_SCOPE,
    docType: "project",
    createdAt: created.createdAt,
    createdBy: created.createdBy,
    updatedAt: now,
    updatedBy: by.userId,
  };
}

/** The project as audit digests and events see it: no version field. */
export function projectSnapshot(doc: Omit<ProjectDoc, "_etag">): Omit<Project, "etag"> {
  const { etag: _e, ...rest } = toProject(doc, "");
  return rest;
}

/** Who loses their last key-holding role on the project with these assignments, and who gets one back. */
interface HolderChange {
  left: string[];
  returned: string[];
}
function holderChange(current: ProjectDoc, next: readonly { principalId: string; role: string }[]): HolderChange {
  const before = keyHoldersOf(current.roleAssignments);
  const after = keyHoldersOf(next);
  return { left: [...before].filter((p) => !after.has(p)), returned: [...after].filter((p) => !before.has(p)) };
}
/** The project with the leavers listed (and anyone given a role back taken off the list), in the write that removes the roles. */
function withLeavers(doc: ProjectDoc, change: HolderChange): ProjectDoc {
  const { keyHoldersLeft: was, leaversPending: _p, ...rest } = doc;
  const list = [...new Set([...(was ?? []).filter((p) => !change.returned.includes(p)), ...change.left])];
  return list.length ? { ...rest, keyHoldersLeft: list, leaversPending: true } : rest;
}

const forbidden = (detail: string) => new AppError({ kind: "forbidden", detail });

export class ProjectService {
  /** Resources registered inside a project, per pillar (models, tools, agents): any blocks its deletion. A
   * counter gives a number, or counts by kind (what the refusal names) when its pillar holds several kinds. */
  private readonly dependents = new Map<string, (tenantId: string, projectId: string) => Promise<number | Record<string, number>>>();

  private readonly marks: DeletionMarks;

  private keyHolderHooks?: KeyHolderHooks;

  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
    /** Checks project settings against the tenant's (services a control needs). */
    private readonly settingsGuard?: SettingsGuard,
  ) {
    this.marks = new DeletionMarks(store, clock);
  }

  /** What happens to a person's keys when they lose (or get back) their last key-holding role on a project. */
  onKeyHolders(hooks: KeyHolderHooks): void {
    this.keyHolderHooks = hooks;
  }

  /** Adds (or replaces, by name) a counter of what a pillar holds in a project. */
  countDependentsWith(name: string, count: (tenantId: string, projectId: string) => Promise<number | Record<string, number>>): void {
    this.dependents.set(name, count);
  }

  async create(ctx: RequestContext, input: ProjectSpecInput): Promise<Project> {
    const { principal } = ctx;
    if (!hasAny(principal, TENANT_ADMINS)) throw forbidden("creating projects requires TenantAdmin");
    const spec = parseOrThrow(ProjectSpec, input, "body");
    if (spec.settings) await this.settingsGuard?.check(principal.tenantId, spec.settings, undefined, "body.settings");
    await this.settingsGuard?.checkEnvironment(principal.tenantId, spec.environment, { project: spec });
    await this.settingsGuard?.checkServiceRegions(principal.tenantId, { project: spec }, undefined, "body.settings");
    const now = this.clock.now().toISOString();
    const id = newId("prj");
    const partition = tenantPartition(principal.tenantId);
    const doc = projectDoc(spec, id, principal, { createdAt: now, createdBy: principal.userId }, now);
    const reservation: NameReservationDoc = { id: nameId(spec.name), ...partition, docType: "nameReservation", resourceId: id };
    const after = projectSnapshot(doc);
    const [etag] = await this.changes.commit({
      partition,
      ctx,
      action: "project.create",
      resource: projectPath(id),
      after,
      ops: [
        { kind: "create", doc },
        { kind: "create", doc: reservation },
        // Never deleted: the project's audit chain stays verifiable after the project is gone.
        { kind: "create", doc: { id: `auditscope.${id}`, ...partition, docType: "auditScope", scope: id } },
      ],
      event: { type: "aigov.project.created.v1", subject: projectSubject(principal.tenantId, id), data: after },
      onFailure: (index, status) =>
        index === 1 && status === 409 ? { kind: "conflict", detail: `a project named '${spec.name}' already exists`, reason: "name_taken" } : undefined,
    });
    return toProject(doc, etag ?? "");
  }

  async get(ctx: RequestContext, id: string): Promise<Project> {
    const doc = await this.load(ctx.principal, id);
    this.authorize(ctx.principal, doc, ANY_TENANT_ROLE, ["ProjectAdmin", "Developer", "Approver", "Reader"], "read");
    return toProject(doc, doc._etag);
  }

  async list(ctx: RequestContext, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<Project>> {
    if (!hasAny(ctx.principal, ANY_TENANT_ROLE)) throw forbidden("listing projects requires a tenant role");
    const result = await listPage<ProjectDoc>(this.store, tenantPartition(ctx.principal.tenantId), { docType: "project", orderBy: { field: "createdAt", direction: "ASC" } }, page);
    return { ...result, items: result.items.map((d) => toProject(d, d._etag)) };
  }

  /** The project's virtual key policy (background jobs); undefined when the project is gone. */
  async keyPolicyOf(tenantId: string, projectId: string): Promise<KeyPolicy | undefined> {
    const doc = await this.store.read<ProjectDoc>(tenantPartition(tenantId), projectId);
    if (!doc || doc.docType !== "project") return undefined;
    return doc.keyPolicy ?? DEFAULT_KEY_POLICY;
  }

  /** Every project of a tenant (the publisher compiles them all); not a request path. */
  async listAll(tenantId: string): Promise<Project[]> {
    const docs = await toArray(everyDoc<ProjectDoc>(this.store, tenantPartition(tenantId), { docType: "project", orderBy: { field: "createdAt", direction: "ASC" } }));
    return docs.map((d) => toProject(d, d._etag));
  }

  /** The tenant's locked projects (sandboxes past their review date): the compiler input's live lock state. */
  async lockedIds(tenantId: string): Promise<Set<string>> {
    const locked = new Set<string>();
    for await (const d of everyDoc<ProjectDoc>(this.store, tenantPartition(tenantId), { docType: "project", filters: [{ field: "environment", op: "=", value: "sandbox" }] })) if (d.lock) locked.add(d.id);
    return locked;
  }

  async update(ctx: RequestContext, id: string, patch: ProjectPatch, ifMatch: string): Promise<Project> {
    const { principal } = ctx;
    const current = await this.load(principal, id);
    this.authorize(principal, current, PROJECT_MANAGERS, ["ProjectAdmin"], "update");
    if (!etagMatches(current._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    // A sandbox past its review date is locked already, whether or not the hourly sweep has marked it.
    const locked = lockedNow(current, this.clock.now());
    if (locked) fail({ kind: "conflict", detail: `${locked}; an extension through approval unlocks it`, reason: "project_locked" });
    // Out of test or prod is out of their gates (the project keeps serving the same callers): the tenant's call.
    if (patch.environment && ENVIRONMENTS.indexOf(patch.environment) < ENVIRONMENTS.indexOf(current.environment) && (current.environment === "test" || current.environment === "prod") && !hasAny(principal, TENANT_ADMINS)) {
      throw forbidden(`moving a ${current.environment} project to ${patch.environment} takes it out of its environment's gates: it requires TenantAdmin`);
    }
    if (patch.environment && ENVIRONMENTS.indexOf(patch.environment) > ENVIRONMENTS.indexOf(current.environment)) {
      fail({ kind: "conflict", detail: `moving from ${current.environment} to ${patch.environment} is a promotion: POST /api/projects/${id}:promote checks its gates and asks for approval`, reason: "promotion_required" });
    }
    const { _etag, ...currentDoc } = current;
    const merged: Record<string, unknown> = { ...currentDoc };
    for (const [key, value] of Object.entries(patch)) {
      if (value === undefined) continue;
      if (value === null) delete merged[key];
      else if (key === "pillars") merged.pillars = { ...current.pillars, ...(value as object) };
      else merged[key] = value;
    }
    const specFields = Object.fromEntries(
      Object.keys(ProjectSpec.shape).filter((k) => k in merged).map((k) => [k, merged[k]]),
    );
    const spec = parseOrThrow(ProjectSpec, specFields, "body");
    if (spec.environment === "sandbox" && current.environment === "sandbox" && current.reviewDate && spec.reviewDate && spec.reviewDate > current.reviewDate) {
      fail({ kind: "conflict", detail: `a later review date extends the sandbox: POST /api/projects/${id}:extend asks for approval`, reason: "extension_required" });
    }
    // Entering the sandbox by an edit sets its review date within the bound an extension has: a date years
    // ahead would be a sandbox nobody reviews, set without the approval an extension needs.
    const outOfRange = spec.environment === "sandbox" && current.environment !== "sandbox" && spec.reviewDate ? sandboxDateError(spec.reviewDate, this.clock.now()) : undefined;
    if (outOfRange) fail({ kind: "validation", detail: "the review date is out of range", errors: [outOfRange] });
    if (patch.settings !== undefined && spec.settings) await this.settingsGuard?.check(principal.tenantId, spec.settings, undefined, "body.settings");
    // Compared in the environment the project ends up in: a demotion is held to its new environment's gates.
    await this.settingsGuard?.checkEnvironment(principal.tenantId, spec.environment, { project: spec }, { project: current }, id);
    if (patch.settings !== undefined) await this.settingsGuard?.checkServiceRegions(principal.tenantId, { project: spec }, { project: current }, "body.settings", id);
    const carried = Object.fromEntries(SERVER_OWNED.filter((k) => current[k] !== undefined).map((k) => [k, current[k]]));
    const built = projectDoc(spec, id, principal, current, this.clock.now().toISOString());
    const holders = holderChange(current, built.roleAssignments);
    const doc: ProjectDoc = withLeavers({ ...built, ...carried }, holders);
    const partition = tenantPartition(principal.tenantId);
    const renamed = nameId(spec.name) !== nameId(current.name);
    const before = projectSnapshot(current);
    const after = projectSnapshot(doc);
    const [etag] = await this.changes.commit({
      partition,
      ctx,
      action: "project.update",
      resource: projectPath(id),
      before,
      after,
      ops: [
        { kind: "replace", doc, ifMatch: current._etag },
        ...(renamed
          ? [
              { kind: "delete", id: nameId(current.name) } as const,
              { kind: "create", doc: { id: nameId(spec.name), ...partition, docType: "nameReservation", resourceId: id } } as const,
            ]
          : []),
      ],
      event: { type: "aigov.project.updated.v1", subject: projectSubject(principal.tenantId, id), data: after },
      onFailure: (index, status) =>
        index === 2 && status === 409 ? { kind: "conflict", detail: `a project named '${spec.name}' already exists`, reason: "name_taken" } : undefined,
    });
    const settled = await this.settleKeyHolders(principal.tenantId, id, holders, ctx.correlationId);
    // The project as it is now (the leavers' list cleared since), read without the caller's check: a
    // ProjectAdmin who took away their own role is answered all the same.
    const fresh = settled ? await this.readDoc(principal.tenantId, id) : undefined;
    return fresh ? toProject(fresh, fresh._etag) : toProject(doc, etag ?? "");
  }

  async delete(ctx: RequestContext, id: string, ifMatch: string): Promise<void> {
    const { principal } = ctx;
    const current = await this.load(principal, id);
    this.authorize(principal, current, TENANT_ADMINS, [], "delete");
    if (!etagMatches(current._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    const locked = lockedNow(current, this.clock.now());
    if (locked) fail({ kind: "conflict", detail: `${locked}: nothing in it is deleted`, reason: "project_locked" });
    // Marked before counting: a child created from now on finds the project not standing and withdraws
    // (standing(); its create re-reads the marks after its own write), and one created before is counted.
    // Without the marks, a model or key created while this delete counted would outlive its project.
    const tenantId = principal.tenantId;
    const partition = tenantPartition(tenantId);
    const marks = await this.marks.place(tenantId, id);
    if (marks === "gone") return fail({ kind: "notFound", resource: projectPath(id) });
    if (marks === "busy") return fail({ kind: "unavailable", detail: "another delete of this project is under way; try again" });
    let counts;
    try {
      counts = await Promise.all([...this.dependents].map(async ([name, count]) => [name, await count(tenantId, id)] as const));
    } catch (err) {
      await marks.release();
      throw err;
    }
    const held = counts.flatMap(([name, n]) => (typeof n === "number" ? [[name, n] as const] : Object.entries(n))).filter(([, n]) => n > 0);
    if (held.length) {
      await marks.release();
      fail({ kind: "conflict", detail: `the project still holds ${held.map(([name, n]) => `${n} ${name}`).join(", ")}; delete them first`, reason: "project_has_dependents" });
    }
    // Counting took longer than a mark holds: creates may have gone ahead meanwhile. Count again.
    if (this.clock.now().getTime() - Date.parse(marks.since) >= DELETE_MARK_MS / 2) {
      await marks.release();
      fail({ kind: "unavailable", detail: "counting what the project holds took too long; try again" });
    }
    try {
      await this.changes.commit({
        partition,
        ctx,
        action: "project.delete",
        resource: projectPath(id),
        before: projectSnapshot(current),
        ops: [
          { kind: "delete", id, ifMatch: current._etag },
          { kind: "delete", id: nameId(current.name) },
          // The tenant's mark goes with the project, and only while it is still this delete's.
          { kind: "delete", id: DeletionMarks.id(id), ifMatch: marks.tenantEtag },
        ],
        event: { type: "aigov.project.deleted.v1", subject: projectSubject(tenantId, id), data: { id, name: current.name } },
        onFailure: (index) => (index === 2 ? { kind: "unavailable", detail: "another delete of this project is under way; try again" } : undefined),
      });
    } catch (err) {
      // Refused (the project changed meanwhile): the marks must not hold creates back. Gone (another delete
      // got there first): the project's own mark becomes its tombstone instead.
      const still = await this.store.read<ProjectDoc>(partition, id).catch(() => "unknown" as const);
      if (still === undefined) await marks.bury();
      else await marks.release();
      throw err;
    }
    await marks.bury();
  }

  /**
   * After a create inside the project: when the project no longer stands, `withdraw` undoes the create as
   * the system; the caller gets the project's 404 when it is gone, a retryable 409 `project_being_deleted`
   * while a delete is under way (it may yet be refused).
   */
  async withdrawUnlessStanding(ctx: RequestContext, projectId: string, withdraw: (system: RequestContext) => Promise<void>): Promise<void> {
    const state = await this.standing(ctx.principal.tenantId, projectId);
    if (state === "standing") return;
    await withdraw(systemContext(ctx.principal.tenantId, "system:project-delete", ctx.correlationId));
    // Gone: the project's 404. Being deleted: the delete may still be refused, so the caller may try again.
    if (state === "gone") fail({ kind: "notFound", resource: projectPath(projectId) });
    fail({ kind: "conflict", detail: `project ${projectId} was being deleted as this was created: nothing was kept; try again`, reason: "project_being_deleted" });
  }

  /**
   * Whether the project stands: there, and no delete under way (delete() marks it before counting what it
   * holds). A create of something inside a project asks after its own write: not standing, it withdraws
   * what it made, so nothing outlives its project.
   */
  async stands(tenantId: string, projectId: string): Promise<boolean> {
    return (await this.standing(tenantId, projectId)) === "standing";
  }

  private async standing(tenantId: string, projectId: string): Promise<"standing" | "deleting" | "gone"> {
    const [doc, marked] = await Promise.all([this.store.read<ProjectDoc>(tenantPartition(tenantId), projectId), this.marks.state(tenantId, projectId)]);
    if (!doc || doc.docType !== "project" || marked === "gone") return "gone";
    return marked === "deleting" ? "deleting" : "standing";
  }

  /** A project's role assignments with when each was made, its owner and its admins (access reviews; undefined when the project is gone). */
  async assignmentsOf(tenantId: string, projectId: string): Promise<{ owner: string; createdAt: string; assignments: { principalId: string; role: string; since: string }[] } | undefined> {
    const doc = await this.store.read<ProjectDoc>(tenantPartition(tenantId), projectId);
    if (!doc || doc.docType !== "project") return undefined;
    const dated = assignedAt(doc.roleAssignedAt);
    const since = (a: { principalId: string; role: string }) => dated[assignmentKey(a)] ?? doc.createdAt;
    return { owner: doc.owner, createdAt: doc.createdAt, assignments: doc.roleAssignments.map((a) => ({ ...a, since: since(a) })) };
  }

  /**
   * Removes one role assignment on behalf of automation (an access review's outcome; `ctx` is a system
   * context, audited as such). Idempotent: "alreadyGone" when the assignment or the project is gone, or
   * when `since` is given and the assignment there now was made at another time (removed and made again
   * since: not the one that was reviewed).
   */
  async removeAssignment(ctx: RequestContext, projectId: string, assignment: { principalId: string; role: string }, since?: string): Promise<"removed" | "alreadyGone"> {
    const key = assignmentKey(assignment);
    let holders: HolderChange = { left: [], returned: [] };
    const removed = await this.onCurrent(ctx.principal.tenantId, projectId, async (current) => {
      if (!current.roleAssignments.some((a) => assignmentKey(a) === key)) return "alreadyGone" as const;
      const roleAssignedAt = assignedAt(current.roleAssignedAt);
      if (since !== undefined && (roleAssignedAt[key] ?? current.createdAt) !== since) return "alreadyGone" as const;
      const { _etag, ...currentDoc } = current;
      delete roleAssignedAt[key];
      const roleAssignments = current.roleAssignments.filter((a) => assignmentKey(a) !== key);
      holders = holderChange(current, roleAssignments);
      const doc: ProjectDoc = withLeavers({ ...currentDoc, roleAssignments, roleAssignedAt, updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId }, holders);
      const after = projectSnapshot(doc);
      await this.changes.commit({
        partition: tenantPartition(ctx.principal.tenantId),
        ctx,
        action: "project.roleAssignment.remove",
        resource: projectPath(projectId),
        before: projectSnapshot(current),
        after,
        ops: [{ kind: "replace", doc, ifMatch: _etag }],
        event: { type: "aigov.project.updated.v1", subject: projectSubject(ctx.principal.tenantId, projectId), data: after },
      });
      return "removed" as const;
    });
    if (removed === "removed") await this.settleKeyHolders(ctx.principal.tenantId, projectId, holders, ctx.correlationId);
    return removed ?? "alreadyGone";
  }

  /**
   * After a change of role assignments: the keys of those who lost their last role that may hold keys are
   * suspended, those who got one back have theirs (suspended for that reason) resumed. The change is
   * already written, with the leavers listed on the project: trouble here is logged, and the key lifecycle
   * job (finishLeavers) finishes it. True when something was done (the project was written again).
   */
  private async settleKeyHolders(tenantId: string, projectId: string, change: HolderChange, correlationId: string): Promise<boolean> {
    const hooks = this.keyHolderHooks;
    if (!hooks || (!change.left.length && !change.returned.length)) return false;
    const ctx = systemContext(tenantId, "system:project-roles", correlationId);
    try {
      for (const principalId of change.returned) await hooks.returned(ctx, projectId, principalId);
      await this.finishLeaversOf(tenantId, projectId, ctx);
    } catch (err) {
      console.warn(`project ${projectId}: the keys of people whose role changed: ${err instanceof Error ? err.message : String(err)} (the key lifecycle job finishes it)`);
    }
    return true;
  }

  /**
   * Suspends the keys of the project's listed leavers and clears the list (idempotent). A leaver given a
   * key-holding role back meanwhile is not suspended, and has back what a suspension running at the same
   * time took.
   */
  private async finishLeaversOf(tenantId: string, projectId: string, ctx: RequestContext): Promise<void> {
    const hooks = this.keyHolderHooks;
    const doc = await this.readDoc(tenantId, projectId);
    if (!hooks || !doc?.keyHoldersLeft?.length) return;
    const done: string[] = [];
    for (const principalId of doc.keyHoldersLeft) {
      if (keyHoldersOf(doc.roleAssignments).has(principalId)) {
        done.push(principalId);
        continue;
      }
      await hooks.left(ctx, projectId, principalId);
      done.push(principalId);
      // Given back while the suspension ran (the update that gave it resumed before this suspended).
      const now = await this.readDoc(tenantId, projectId);
      if (now && keyHoldersOf(now.roleAssignments).has(principalId)) await hooks.returned(ctx, projectId, principalId);
    }
    // Bookkeeping of work the audited suspensions did (like a key's syncedGen): a conditional write, not audited.
    await this.onCurrent(tenantId, projectId, async (current) => {
      const rest = (current.keyHoldersLeft ?? []).filter((p) => !done.includes(p));
      const { _etag, keyHoldersLeft: _l, leaversPending: _p, ...currentDoc } = current;
      const next: ProjectDoc = { ...currentDoc, ...(rest.length ? { keyHoldersLeft: rest, leaversPending: true as const } : {}) };
      const result = await this.store.batch(tenantPartition(tenantId), [{ kind: "replace", doc: next, ifMatch: _etag }]);
      if (!result.ok) fail({ kind: "preconditionFailed" });
    });
  }

  /**
   * Whether `principalId` held a project role that may hold keys in `before` (the project as a write inside it
   * read it) and holds none on the project as stored now: their role was removed meanwhile, and the removal's
   * suspensions (settleKeyHolders) may have listed their keys before that write landed (ADR 026).
   */
  async leftSince(tenantId: string, projectId: string, principalId: string, before: readonly { principalId: string; role: string }[]): Promise<boolean> {
    const principal = canonicalUser(principalId);
    if (!keyHoldersOf(before).has(principal)) return false;
    const now = await this.readDoc(tenantId, projectId);
    return now !== undefined && !keyHoldersOf(now.roleAssignments).has(principal);
  }

  /** Finishes the suspensions of leavers' keys that a crash or a failure left (the key lifecycle job, every run). */
  async finishLeavers(correlationId: string): Promise<number> {
    let projects = 0;
    for await (const listed of everyDoc<ProjectDoc>(this.store, "all", { docType: "project", filters: [{ field: "leaversPending", op: "=", value: true }] })) {
      try {
        await this.finishLeaversOf(listed.tenantId, listed.id, systemContext(listed.tenantId, "system:project-roles", correlationId));
        projects += 1;
      } catch (err) {
        console.warn(`project ${listed.id}: the keys of people whose role was removed: ${err instanceof Error ? err.message : String(err)} (retried next run)`);
      }
    }
    return projects;
  }

  /**
   * A key that would become active while the project is locked stays suspended and joins the keys the
   * lock suspended, so that the extension resumes it with the others (automation: `ctx` is a system
   * context). A sandbox past its review date that the hourly sweep has not locked yet holds it too: the
   * key joins the list the coming lock takes over (or an extension settled before it resumes). True
   * when the project is locked now; false when it is not (or gone). Idempotent.
   */
  async holdKeyWhileLocked(ctx: RequestContext, projectId: string, keyId: string): Promise<boolean> {
    const held = await this.onCurrent(ctx.principal.tenantId, projectId, async (current) => {
      if (!lockedNow(current, this.clock.now())) return false;
      const listed = current.suspendedByLock ?? [];
      if (listed.includes(keyId)) return true;
      const { _etag, ...currentDoc } = current;
      const doc: ProjectDoc = { ...currentDoc, suspendedByLock: [...listed, keyId], updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
      const subject = projectSubject(ctx.principal.tenantId, projectId);
      await this.changes.commit({
        partition: tenantPartition(ctx.principal.tenantId),
        ctx,
        action: current.lock ? "project.lock" : "project.holdKey",
        resource: projectPath(projectId),
        before: projectSnapshot(current),
        after: projectSnapshot(doc),
        ops: [{ kind: "replace", doc, ifMatch: _etag }],
        event: current.lock
          ? { type: "aigov.project.locked.v1", subject, data: { projectId, reason: current.lock.reason, reviewDate: current.reviewDate, keys: listed.length + 1 } }
          : { type: "aigov.project.keyHeld.v1", subject, data: { projectId, keyId, reviewDate: current.reviewDate } },
      });
      return true;
    });
    return held ?? false;
  }

  /**
   * Runs `step` on the project as stored now, again on a lost race (a 412 from its conditional write),
   * at most 5 times; undefined when the project is not in the tenant. For automation, which has no
   * caller to send back for a fresh read.
   */
  async onCurrent<T>(tenantId: string, projectId: string, step: (doc: Versioned<ProjectDoc>) => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const doc = await this.readDoc(tenantId, projectId);
      if (!doc) return undefined;
      try {
        return await step(doc);
      } catch (err) {
        if (!(err instanceof AppError && err.error.kind === "preconditionFailed")) throw err;
      }
    }
    return fail({ kind: "conflict", detail: "the project kept changing meanwhile", reason: "changed_meanwhile" });
  }

  /** The stored project (the lifecycle's reads; no caller checks): undefined when it is not in the tenant. */
  async readDoc(tenantId: string, projectId: string): Promise<Versioned<ProjectDoc> | undefined> {
    const doc = await this.store.read<ProjectDoc>(tenantPartition(tenantId), projectId);
    return doc && doc.docType === "project" ? doc : undefined;
  }

  /** The project roles assigned to a user (empty when the project does not exist in the tenant). */
  async assignedRoles(tenantId: string, projectId: string, userId: string): Promise<Set<string>> {
    const doc = await this.store.read<ProjectDoc>(tenantPartition(tenantId), projectId);
    if (!doc || doc.docType !== "project") return new Set();
    return new Set(doc.roleAssignments.filter((a) => sameUser(a.principalId, userId)).map((a) => a.role));
  }

  /**
   * Every project scope that ever held an audit chain in the tenant, deleted projects included
   * (one query page at a time). Projects from before scope records existed are found by their document.
   */
  async listAuditScopes(tenantId: string): Promise<string[]> {
    const scopes = new Set<string>();
    for (const docType of ["auditScope", "project"] as const) {
      for await (const d of everyDoc<StoredDoc>(this.store, tenantPartition(tenantId), { docType })) scopes.add(docType === "project" ? d.id : String(d.scope));
    }
    return [...scopes].sort();
  }

  private async load(principal: Principal, id: string) {
    // The partition comes from the token: another tenant's project is simply not there.
    const doc = await this.store.read<ProjectDoc>(tenantPartition(principal.tenantId), id);
    if (!doc || doc.docType !== "project") return fail({ kind: "notFound", resource: projectPath(id) });
    return doc;
  }

  private authorize(p: Principal, doc: ProjectDoc, tenantRoles: readonly Role[], projectRoleNames: string[], verb: string): void {
    if (hasAny(p, tenantRoles)) return;
    const assigned = projectRoles(doc, p);
    if (projectRoleNames.some((r) => assigned.has(r))) return;
    throw forbidden(`you may not ${verb} this project`);
  }
}
