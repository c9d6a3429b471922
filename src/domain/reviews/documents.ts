import { TENANT_SCOPE, type Filter, type Partition, type Store, type StoredDoc, type Versioned } from "../../ports/store.js";
import { derivedId } from "../common.js";
import { Collection } from "../kernel/collection.js";
import type { ChangeWriter } from "../changes.js";
import { everyDoc } from "../paging.js";
import type { AccessReview, ReviewItem, ReviewKind, ReviewStatus } from "./schema.js";

/** A campaign (tenant partition: lists and "what do I review" are single-partition queries). */
export interface ReviewDoc extends StoredDoc, Omit<AccessReview, "etag"> {
  docType: "accessReview";
  /** The scope's project, "" for the tenant (query field). */
  scopeProjectId: string;
  /** Everyone who may decide an item in the current stage (query field for `reviewer=me`). */
  currentReviewers: string[];
  /** Set by a stop: the orchestration completes the campaign at its next look. */
  stopRequestedAt?: string;
  /** A recurring review's first start, from which each occurrence's start is counted (set on successors). */
  seriesStartAt?: string;
}

/** One reviewed piece of access (tenant partition, beside its campaign). */
export interface ItemDoc extends StoredDoc, Omit<ReviewItem, "etag"> {
  docType: "accessReviewItem";
  /** A removal still to apply (query field): set at completion, cleared when applied; applying again re-marks failed ones. */
  applyDue?: boolean;
  /** Others with a stake in keeping it (an exemption's requester and renewers): never its reviewers either. */
  parties?: string[];
}

/** Statuses in which a campaign still needs its orchestration. */
export const UNFINISHED: readonly ReviewStatus[] = ["scheduled", "inProgress", "applying"];

export const reviewPath = (id: string) => `/access-reviews/${id}`;
export const itemPath = (reviewId: string, id: string) => `${reviewPath(reviewId)}/items/${id}`;
export const reviewPartition = (tenantId: string): Partition => ({ tenantId, scopeId: TENANT_SCOPE });
/** An item's id is derived from what it reviews: snapshotting a campaign twice (a retried start) writes the same items. */
export const itemId = (reviewId: string, kind: ReviewKind, projectId: string, targetId: string) => derivedId("ari", `${reviewId}\u0000${kind}\u0000${projectId}\u0000${targetId}`);
/** The next campaign of a recurring review: derived, so completing a campaign twice schedules one successor. */
export const nextReviewId = (id: string) => derivedId("arv", `${id}\u0000next`);

export class ReviewDocuments {
  readonly reviews: Collection<ReviewDoc, AccessReview>;
  readonly items: Collection<ItemDoc, ReviewItem>;

  constructor(
    private readonly store: Store,
    changes: ChangeWriter,
  ) {
    this.reviews = new Collection<ReviewDoc, AccessReview>(store, changes, { docType: "accessReview", path: (d) => reviewPath(d.id), internal: ["scopeProjectId", "currentReviewers", "stopRequestedAt", "seriesStartAt"] });
    this.items = new Collection<ItemDoc, ReviewItem>(store, changes, { docType: "accessReviewItem", path: (d) => itemPath((d as ItemDoc).reviewId, d.id), internal: ["applyDue", "parties"] });
  }

  readReview(tenantId: string, id: string): Promise<Versioned<ReviewDoc> | undefined> {
    return this.reviews.read(reviewPartition(tenantId), id);
  }

  loadReview(tenantId: string, id: string): Promise<Versioned<ReviewDoc>> {
    return this.reviews.load(reviewPartition(tenantId), id, reviewPath(id));
  }

  /** An item of the campaign, or a 404 (an item of another campaign is not this one's). */
  async loadItem(tenantId: string, reviewId: string, id: string): Promise<Versioned<ItemDoc>> {
    const doc = await this.items.load(reviewPartition(tenantId), id, itemPath(reviewId, id));
    if (doc.reviewId !== reviewId) return this.items.load(reviewPartition(tenantId), "", itemPath(reviewId, id));
    return doc;
  }

  /** Every item of a campaign (jobs and orchestration steps). */
  itemsOf(tenantId: string, reviewId: string, filters: Filter[] = []): AsyncGenerator<Versioned<ItemDoc>> {
    return this.items.every(reviewPartition(tenantId), { filters: [{ field: "reviewId", op: "=", value: reviewId }, ...filters] });
  }

  /** Campaigns that still need their orchestration, in every tenant (the sweep). */
  async *unfinishedEverywhere(): AsyncGenerator<Versioned<ReviewDoc>> {
    for (const status of UNFINISHED) yield* everyDoc<ReviewDoc>(this.store, "all", { docType: "accessReview", filters: [{ field: "status", op: "=", value: status }] });
  }

  /**
   * Writes a derived change of an item (its stage's reviewers, its outcome, what applying it did): not a
   * decision, so no audit record of its own — the campaign's transition that causes it is audited.
   * Re-reads and re-derives on a concurrent change (a decision landing meanwhile): `change` must derive
   * from the document it is given. Returns the item as stored afterwards (undefined: it is gone).
   */
  async updateItem(doc: Versioned<ItemDoc>, change: (d: ItemDoc) => ItemDoc | undefined): Promise<ItemDoc | undefined> {
    let current: Versioned<ItemDoc> | undefined = doc;
    for (let attempt = 0; attempt < 5 && current; attempt++) {
      const { _etag, ...plain } = current;
      const next = change(plain as ItemDoc);
      if (!next) return plain as ItemDoc;
      const r = await this.store.batch(reviewPartition(doc.tenantId), [{ kind: "replace", doc: next, ifMatch: _etag }]);
      if (r.ok) return next;
      current = await this.items.read(reviewPartition(doc.tenantId), doc.id);
    }
    if (current) throw new Error(`access review item ${doc.id}: too many concurrent changes`);
    return undefined;
  }

  /** Writes items as they are (a campaign's snapshot), 100 per batch. */
  async putItems(tenantId: string, docs: ItemDoc[]): Promise<void> {
    for (let i = 0; i < docs.length; i += 100) {
      const r = await this.store.batch(reviewPartition(tenantId), docs.slice(i, i + 100).map((doc) => ({ kind: "upsert", doc }) as const));
      if (!r.ok) throw new Error(`access review items: batch failed with ${r.status}`);
    }
  }

  async deleteItems(tenantId: string, ids: string[]): Promise<void> {
    for (const id of ids) await this.store.delete(reviewPartition(tenantId), id).catch(() => false);
  }
}
