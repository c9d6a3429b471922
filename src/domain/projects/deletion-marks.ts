import type { Clock } from "../../ports/clock.js";
import { TENANT_SCOPE, type Partition, type Store, type StoredDoc } from "../../ports/store.js";

/**
 * A project delete under way: written before it counts what the project holds, so a child created since
 * withdraws (ProjectService.withdrawUnlessStanding). A document of its own, so a refused delete leaves the
 * project's version as it was. One in each partition that holds the project's children: the tenant's (agent
 * connections name their project) and the project's own (models, keys, servers, toolboxes, agents). Each
 * side reads the mark in the partition it wrote to, where the store's session guarantees it sees everything
 * written there before its own write (ADR 018). The project's own keeps `deletedAt` once the project is
 * gone: a tombstone no stale read of the project outlives.
 */
export interface ProjectDeletionDoc extends StoredDoc {
  docType: "projectDeletion";
  since: string;
  deletedAt?: string;
}

const markId = (projectId: string) => `deleting.${projectId}`;
/** How long a mark stands: a delete that died after marking leaves the project usable again after it. */
export const DELETE_MARK_MS = 60_000;

/** This delete's marks, placed in both partitions. */
export interface PlacedMarks {
  since: string;
  /** The tenant's mark's version: the project's delete batch removes it, If-Match. */
  tenantEtag: string;
  /** Removes this delete's marks (only its own: If-Match), so creates go ahead again. */
  release(): Promise<void>;
  /** The project is gone: its own mark stays as its tombstone. */
  bury(): Promise<void>;
}

export class DeletionMarks {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  static id = markId;

  /**
   * Marks the project in the tenant's partition, then in its own. "busy": another delete holds a mark that
   * has not lapsed (or the store did not answer); "gone": the project's tombstone is there. Created, never
   * overwritten: two deletes never both believe they hold the marks, and a tombstone is never undone.
   */
  async place(tenantId: string, projectId: string): Promise<PlacedMarks | "busy" | "gone"> {
    const tenant: Partition = { tenantId, scopeId: TENANT_SCOPE };
    const own: Partition = { tenantId, scopeId: projectId };
    const since = this.clock.now().toISOString();
    const doc = { id: markId(projectId), docType: "projectDeletion" as const, since };
    const tenantEtag = await this.placeIn(tenant, doc);
    if (tenantEtag === "busy" || tenantEtag === "gone") return tenantEtag;
    const remove = (p: Partition, etag: string) => this.store.batch(p, [{ kind: "delete", id: doc.id, ifMatch: etag }]).then(() => undefined, () => undefined);
    const projectEtag = await this.placeIn(own, doc);
    if (projectEtag === "busy" || projectEtag === "gone") {
      await remove(tenant, tenantEtag);
      return projectEtag;
    }
    return {
      since,
      tenantEtag,
      release: async () => {
        await Promise.all([remove(tenant, tenantEtag), remove(own, projectEtag)]);
      },
      bury: async () => {
        const buried = await this.store.batch(own, [{ kind: "upsert", doc: { ...doc, ...own, deletedAt: this.clock.now().toISOString() } }]).catch((err: unknown) => (err instanceof Error ? err.message : String(err)));
        if (typeof buried === "string" || !buried.ok) console.warn(`project ${projectId} deleted: its tombstone was not written (${typeof buried === "string" ? buried : `status ${buried.status}`}); the mark lapses, the project's absence stands`);
      },
    };
  }

  /** What the marks say: gone (a tombstone), a delete under way (a mark that has not lapsed), or nothing. */
  async state(tenantId: string, projectId: string): Promise<"gone" | "deleting" | "none"> {
    const [inTenant, inProject] = await Promise.all([
      this.store.read<ProjectDeletionDoc>({ tenantId, scopeId: TENANT_SCOPE }, markId(projectId)),
      this.store.read<ProjectDeletionDoc>({ tenantId, scopeId: projectId }, markId(projectId)),
    ]);
    if (inProject?.deletedAt) return "gone";
    return this.live(inTenant) || this.live(inProject) ? "deleting" : "none";
  }

  private live(mark: ProjectDeletionDoc | undefined): boolean {
    return mark !== undefined && !mark.deletedAt && this.clock.now().getTime() - Date.parse(mark.since) < DELETE_MARK_MS;
  }

  private async placeIn(p: Partition, doc: { id: string; docType: "projectDeletion"; since: string }): Promise<string | "busy" | "gone"> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const created = await this.store.batch(p, [{ kind: "create", doc: { ...doc, ...p } }]);
      if (created.ok) return created.etags[0]!;
      if (created.status !== 409) return "busy";
      const existing = await this.store.read<ProjectDeletionDoc>(p, doc.id);
      if (!existing) continue; // removed meanwhile: create again
      if (existing.deletedAt) return "gone";
      if (this.live(existing)) return "busy";
      // A mark a dead delete left (lapsed): taken over, If-Match, so two deletes never both take it.
      const taken = await this.store.batch(p, [{ kind: "replace", doc: { ...doc, ...p }, ifMatch: existing._etag }]);
      if (taken.ok) return taken.etags[0]!;
    }
    return "busy";
  }
}
