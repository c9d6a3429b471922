import { TENANT_SCOPE, type BatchOp, type Filter, type Partition, type Store, type StoredDoc, type Versioned } from "../../ports/store.js";
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
  /** A key exemption in force the gateway configuration does not apply, as the sweep last recorded it (the view reads it live: `gateway`). */
  gatewayNotApplied?: { since: string; why: string };
}

/**
 * The tenant's guard on key exemptions' places (ADR 007, ADR 008): every key-scope request is written in
 * one batch with a conditional write of this document, after it has read it and counted the places, so of
 * two requests made at the same moment the second is counted again with the first (never both on one place).
 */
export interface KeyExemptionGuardDoc extends StoredDoc {
  docType: "keyExemptionGuard";
  /** How many key-scope requests were written under the guard. */
  seq: number;
}
const KEY_EXEMPTION_GUARD = "keyExemptionGuard";

export const DAY_MS = 24 * 3600 * 1000;
export const exemptionPath = (id: string) => `/exemptions/${id}`;
const partitionOf = (tenantId: string): Partition => ({ tenantId, scopeId: TENANT_SCOPE });

/** Event data: what routes and correlates; never the free-text reason. */
function eventData(doc: ExemptionDoc, extra: Record<string, unknown> = {}) {
  return { id: doc.id, status: doc.status, control: doc.control, scope: doc.scope, category: doc.category, owner: doc.owner, expiresAt: doc.expiresAt, approvalId: doc.approvalId, ...extra };
}

/** A conditional write of the guard on key exemptions' places, for the batch that writes a key-scope request. */
export interface KeyExemptionGuard {
  op: BatchOp;
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

  constructor(
    private readonly store: Store,
    changes: ChangeWriter,
  ) {
    this.exemptions = new Collection<ExemptionDoc, Exemption>(store, changes, { docType: "exemption", path: (d) => exemptionPath(d.id), internal: ["projectId", "scopeLevel", "gatewayNotApplied"] });
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
      // A latent one is never applied: it makes no tier.
      if (d.scope.level === "key" && OPEN.includes(d.status) && !d.latent) out.add(d.scope.keyId);
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

  create(ctx: RequestContext, doc: ExemptionDoc, change: Omit<ExemptionChange, "next">, guard?: KeyExemptionGuard): Promise<Exemption> {
    return this.exemptions.create(ctx, doc, {
      action: change.action,
      event: change.event,
      data: eventData(doc, change.extra),
      ...(guard
        ? {
            extraOps: [guard.op],
            // The guard moved since it was read: another key-scope request was written meanwhile (counted again by the caller).
            onFailure: (index: number) => (index === 1 ? { kind: "conflict" as const, detail: "another key exemption was requested meanwhile; try again", reason: "changed_meanwhile" as const } : undefined),
          }
        : {}),
    });
  }

  /** The guard on key exemptions' places as it reads now, and the write that takes it (read it before counting). */
  async keyExemptionGuard(tenantId: string): Promise<KeyExemptionGuard> {
    const partition = partitionOf(tenantId);
    const current = await this.store.read<KeyExemptionGuardDoc>(partition, KEY_EXEMPTION_GUARD);
    const doc: KeyExemptionGuardDoc = { id: KEY_EXEMPTION_GUARD, ...partition, docType: "keyExemptionGuard", seq: (current?.docType === "keyExemptionGuard" ? current.seq : 0) + 1 };
    return { op: current ? { kind: "replace", doc, ifMatch: current._etag } : { kind: "create", doc } };
  }

  /** Replaces `before` (If-Match on its version) with the change's document. */
  commit(ctx: RequestContext, before: Versioned<ExemptionDoc>, change: ExemptionChange): Promise<Exemption> {
    return this.exemptions.replace(ctx, before, change.next, { action: change.action, event: change.event, data: eventData(change.next, change.extra) });
  }
}
