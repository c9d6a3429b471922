import { TENANT_SCOPE, type Filter, type Partition, type Store, type StoredDoc, type Versioned } from "../../ports/store.js";
import type { ChangeWriter } from "../changes.js";
import type { Page, RequestContext } from "../common.js";
import { Collection } from "../kernel/collection.js";
import { toArray } from "../paging.js";
import { OPEN, type Exemption } from "./schema.js";

export interface ExemptionDoc extends StoredDoc, Omit<Exemption, "etag"> {
  docType: "exemption";
  /** Query fields: the scope's project ("" for the tenant) and level. */
  projectId: string;
  scopeLevel: Exemption["scope"]["level"];
}

export const DAY_MS = 24 * 3600 * 1000;
export const exemptionPath = (id: string) => `/exemptions/${id}`;
const partitionOf = (tenantId: string): Partition => ({ tenantId, scopeId: TENANT_SCOPE });

/** Event data: what routes and correlates; never the free-text reason. */
function eventData(doc: ExemptionDoc, extra: Record<string, unknown> = {}) {
  return { id: doc.id, status: doc.status, control: doc.control, scope: doc.scope, category: doc.category, owner: doc.owner, expiresAt: doc.expiresAt, approvalId: doc.approvalId, ...extra };
}

/** One change of an exemption: the document after it, its audit action, its event (and the event's extra data). */
export interface ExemptionChange {
  next: ExemptionDoc;
  action: string;
  event: string;
  extra?: Record<string, unknown>;
}

/**
 * The exemption documents (tenant partition: lists and the portfolio review are single-partition
 * queries): typed reads, the view (query fields stay inside), and every change through the change
 * writer with its audit record and event.
 */
export class ExemptionDocuments {
  private readonly exemptions: Collection<ExemptionDoc, Exemption>;

  constructor(store: Store, changes: ChangeWriter) {
    this.exemptions = new Collection<ExemptionDoc, Exemption>(store, changes, { docType: "exemption", path: (d) => exemptionPath(d.id), internal: ["projectId", "scopeLevel"] });
  }

  view(doc: ExemptionDoc & { _etag?: string }): Exemption {
    return this.exemptions.view(doc);
  }

  read(tenantId: string, id: string): Promise<Versioned<ExemptionDoc> | undefined> {
    return this.exemptions.read(partitionOf(tenantId), id);
  }

  load(tenantId: string, id: string): Promise<Versioned<ExemptionDoc>> {
    return this.exemptions.load(partitionOf(tenantId), id, exemptionPath(id));
  }

  page(tenantId: string, filters: Filter[], page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<Exemption>> {
    return this.exemptions.page(partitionOf(tenantId), { filters, orderBy: { field: "createdAt", direction: "DESC" } }, page);
  }

  /** Every exemption of a tenant (the portfolio, the key-exemption count). */
  all(tenantId: string): Promise<Versioned<ExemptionDoc>[]> {
    return toArray(this.exemptions.every(partitionOf(tenantId)));
  }

  /** The keys of a project that a key exemption is open for (requested, approved or in force): each holds a place among its key tiers. */
  async openKeyExemptions(tenantId: string, projectId: string): Promise<Set<string>> {
    const out = new Set<string>();
    for await (const d of this.matching(tenantId, [{ field: "projectId", op: "=", value: projectId }])) {
      if (d.scope.level === "key" && OPEN.includes(d.status)) out.add(d.scope.keyId);
    }
    return out;
  }

  /** The tenant's exemptions matching `filters`, one by one. */
  matching(tenantId: string, filters: Filter[]): AsyncGenerator<Versioned<ExemptionDoc>> {
    return this.exemptions.every(partitionOf(tenantId), { filters });
  }

  /** Every tenant's exemptions matching `filters` (the sweep; jobs only). */
  everywhere(filters: Filter[]): AsyncGenerator<Versioned<ExemptionDoc>> {
    return this.exemptions.every("all", { filters });
  }

  create(ctx: RequestContext, doc: ExemptionDoc, change: Omit<ExemptionChange, "next">): Promise<Exemption> {
    return this.exemptions.create(ctx, doc, { action: change.action, event: change.event, data: eventData(doc, change.extra) });
  }

  /** Replaces `before` (If-Match on its version) with the change's document. */
  commit(ctx: RequestContext, before: Versioned<ExemptionDoc>, change: ExemptionChange): Promise<Exemption> {
    return this.exemptions.replace(ctx, before, change.next, { action: change.action, event: change.event, data: eventData(change.next, change.extra) });
  }
}
