import { sameUser } from "../users.js";
import type { Versioned } from "../../ports/store.js";
import type { RequestContext } from "../common.js";
import { fail } from "../errors.js";
import { holdsOn, KEY_HOLDERS, PROJECT_MANAGERS } from "../kernel/roles.js";
import { lockedNow, type Project } from "../projects/schema.js";
import type { Clock } from "../../ports/clock.js";
import type { ProjectService } from "../projects/service.js";
import type { KeyDoc, KeyDocuments } from "./documents.js";

/**
 * A locked project (an expired sandbox, locked by the hourly sweep or not yet) takes nothing that adds
 * access; revoking and suspending stay possible.
 */
function unlocked(project: Project, what: string, now: Date): void {
  const why = lockedNow(project, now);
  if (why) fail({ kind: "conflict", detail: `${why}: cannot ${what} keys until an extension is approved`, reason: "project_locked" });
}

/** Who may do what with a project's keys: the project is resolved through the caller's tenant first (404 otherwise). */
export class KeyAccess {
  constructor(
    private readonly projects: Pick<ProjectService, "get">,
    private readonly docs: KeyDocuments,
    private readonly clock: Clock,
  ) {}

  /** The project, if the caller may hold keys in it (a tenant role or the same role assigned on the project). */
  async writable(ctx: RequestContext, projectId: string, what: string): Promise<Project> {
    const project = await this.projects.get(ctx, projectId);
    if (!holdsOn(ctx.principal, project, KEY_HOLDERS)) fail({ kind: "forbidden", detail: `to ${what} keys requires TenantAdmin, ProjectAdmin or Developer` });
    unlocked(project, what, this.clock.now());
    return project;
  }

  /**
   * The key, if the caller may change it: owners their keys; tenant and project admins every key of the
   * project. `adds` names a change that adds access (resume, rotate, share): refused on a locked project.
   */
  async mayManage(ctx: RequestContext, projectId: string, id: string, adds?: string): Promise<Versioned<KeyDoc>> {
    return (await this.mayManageAs(ctx, projectId, id, adds)).doc;
  }

  /** mayManage, whether the caller manages the project (an admin) rather than only owning the key, and the project as it was read. */
  async mayManageAs(ctx: RequestContext, projectId: string, id: string, adds?: string): Promise<{ doc: Versioned<KeyDoc>; admin: boolean; project: Project }> {
    const project = await this.projects.get(ctx, projectId);
    const doc = await this.docs.load(ctx.principal.tenantId, projectId, id);
    const p = ctx.principal;
    const admin = holdsOn(p, project, PROJECT_MANAGERS);
    if (!admin && !sameUser(doc.owner, p.userId)) fail({ kind: "forbidden", detail: "only the key's owner or an admin may change it" });
    if (adds) unlocked(project, adds, this.clock.now());
    return { doc, admin, project };
  }

  /** Whether the caller manages the project (TenantAdmin, or ProjectAdmin on it). */
  manages(ctx: RequestContext, project: Project): boolean {
    return holdsOn(ctx.principal, project, PROJECT_MANAGERS);
  }

  /** The project, if the caller may read it. */
  project(ctx: RequestContext, projectId: string): Promise<Project> {
    return this.projects.get(ctx, projectId);
  }

  /** The key, if the caller may read the project. */
  async readable(ctx: RequestContext, projectId: string, id: string): Promise<Versioned<KeyDoc>> {
    await this.projects.get(ctx, projectId);
    return this.docs.load(ctx.principal.tenantId, projectId, id);
  }
}
