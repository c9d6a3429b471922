import type { BatchOp, Partition, QuerySpec, Store, StoredDoc, Versioned } from "../../ports/store.js";
import type { ChangeWriter } from "../changes.js";
import { etagValue, type RequestContext } from "../common.js";
import { fail, type DomainError } from "../errors.js";
import { everyDoc, listPage } from "../paging.js";

/** What a collection of documents is: its type, where its resources are, and what stays inside. */
export interface CollectionSpec<D extends StoredDoc, V extends { etag: string } = { etag: string }> {
  docType: D["docType"];
  /** A resource's API path below the tenant, e.g. `/projects/prj_…/models/mdl_…` (audit records, 404s, event subjects). */
  path(doc: Pick<D, "id" | "scopeId">): string;
  /** Fields kept in the document but never shown or audited (beyond docType, scopeId and the version). */
  internal?: readonly string[];
  /**
   * The resource as shown, when it is not simply the document without its internal fields (computed
   * fields, a chosen subset): `view` adds the version as `etag`, `snapshot` is this as it is.
   */
  present?: (doc: D) => Omit<V, "etag">;
}

/** How a change is recorded: the audit action and the event; `data` defaults to the snapshot after the change. */
export interface ChangeNote {
  action: string;
  event: string;
  data?: unknown;
  /** More operations in the same batch (a name reservation, a scope record…), after the document's own. */
  extraOps?: BatchOp[];
  /** Maps a failed operation of the batch (by index: 0 is the document's) to the error callers see. */
  onFailure?: (index: number, status: number) => DomainError | undefined;
}

const ALWAYS_HIDDEN = ["docType", "scopeId", "_etag"];

/**
 * One kind of document and the resource it is: the view callers get (server-internal fields
 * stripped, the version as `etag`), typed reads that check the document type, list pages, and every
 * write through the one change writer (state, audit record and event in one batch). Services keep
 * their rules; the kit every service used to rebuild lives here once.
 */
export class Collection<D extends StoredDoc, V extends { etag: string }> {
  private readonly hidden: ReadonlySet<string>;

  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    readonly spec: CollectionSpec<D, V>,
  ) {
    this.hidden = new Set([...ALWAYS_HIDDEN, ...(spec.internal ?? [])]);
  }

  /** The resource as the API shows it. */
  view(doc: D & { _etag?: string }, etag = doc._etag ?? ""): V {
    if (this.spec.present) return { ...this.spec.present(doc), etag: etagValue(etag) } as V;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(doc)) if (!this.hidden.has(k)) out[k] = v;
    out.etag = etagValue(etag);
    return out as V;
  }

  /** The resource as audit records and events see it: the view without its version. */
  snapshot(doc: D & { _etag?: string }): Omit<V, "etag"> {
    const { etag: _e, ...rest } = this.view(doc, "");
    return rest;
  }

  /** The event subject of a resource: `/tenants/<tenant><path>`. */
  subject(doc: Pick<D, "id" | "scopeId" | "tenantId">): string {
    return `/tenants/${doc.tenantId}${this.spec.path(doc)}`;
  }

  /** The document, or undefined when it is missing or another type. */
  async read(partition: Partition, id: string): Promise<Versioned<D> | undefined> {
    const doc = await this.store.read<D>(partition, id);
    return doc && doc.docType === this.spec.docType ? doc : undefined;
  }

  /** The document, or a 404 naming `path` (another tenant's document is simply not in the partition). */
  async load(partition: Partition, id: string, path: string): Promise<Versioned<D>> {
    return (await this.read(partition, id)) ?? fail({ kind: "notFound", resource: path });
  }

  /** One page of views, with the caller's opaque continuation token. */
  async page(
    partition: Partition,
    query: Omit<QuerySpec, "docType" | "maxPageSize" | "continuationToken">,
    page: { maxPageSize: number; continuationToken?: string | undefined },
  ): Promise<{ items: V[]; continuationToken?: string }> {
    const result = await listPage<D>(this.store, partition, { docType: this.spec.docType, ...query }, page);
    return { ...result, items: result.items.map((d) => this.view(d)) };
  }

  /** Every document of the partition, or of every partition ("all": jobs only; request paths page instead). */
  every(partition: Partition | "all", query: Omit<QuerySpec, "docType" | "maxPageSize" | "continuationToken"> = {}): AsyncGenerator<Versioned<D>> {
    return everyDoc<D>(this.store, partition, { docType: this.spec.docType, ...query });
  }

  async create(ctx: RequestContext, doc: D, note: ChangeNote): Promise<V> {
    const after = this.snapshot(doc);
    const [etag] = await this.changes.commit({
      partition: { tenantId: doc.tenantId, scopeId: doc.scopeId },
      ctx,
      action: note.action,
      resource: this.spec.path(doc),
      after,
      ops: [{ kind: "create", doc }, ...(note.extraOps ?? [])],
      event: { type: note.event, subject: this.subject(doc), data: note.data ?? after },
      ...(note.onFailure ? { onFailure: note.onFailure } : {}),
    });
    return this.view(doc, etag ?? "");
  }

  /** Replaces `before` (If-Match on its version) with `after`. */
  async replace(ctx: RequestContext, before: Versioned<D>, after: D, note: ChangeNote): Promise<V> {
    const snap = this.snapshot(after);
    const [etag] = await this.changes.commit({
      partition: { tenantId: before.tenantId, scopeId: before.scopeId },
      ctx,
      action: note.action,
      resource: this.spec.path(before),
      before: this.snapshot(before),
      after: snap,
      ops: [{ kind: "replace", doc: after, ifMatch: before._etag }, ...(note.extraOps ?? [])],
      event: { type: note.event, subject: this.subject(before), data: note.data ?? snap },
      ...(note.onFailure ? { onFailure: note.onFailure } : {}),
    });
    return this.view(after, etag ?? "");
  }

  /** Deletes `before` (If-Match on its version); the event data defaults to the deleted resource. */
  async delete(ctx: RequestContext, before: Versioned<D>, note: ChangeNote): Promise<void> {
    await this.changes.commit({
      partition: { tenantId: before.tenantId, scopeId: before.scopeId },
      ctx,
      action: note.action,
      resource: this.spec.path(before),
      before: this.snapshot(before),
      ops: [{ kind: "delete", id: before.id, ifMatch: before._etag }, ...(note.extraOps ?? [])],
      event: { type: note.event, subject: this.subject(before), data: note.data ?? this.snapshot(before) },
      ...(note.onFailure ? { onFailure: note.onFailure } : {}),
    });
  }
}
