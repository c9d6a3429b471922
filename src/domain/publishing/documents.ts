import { TENANT_SCOPE, unversioned, type Partition, type Store, type StoredDoc, type Versioned } from "../../ports/store.js";
import type { ArtifactRef } from "../../ports/gateway.js";
import type { ChangeWriter } from "../changes.js";
import type { Page } from "../common.js";
import { Collection } from "../kernel/collection.js";
import { notFound } from "../errors.js";
import { everyDoc, listPage } from "../paging.js";
import type { DriftReport, Revision } from "./schema.js";

/** Entries per manifest (and registry) part: a manifest of a large tenant does not fit one document (2 MB). */
export const PART_SIZE = 2000;
export const READ_CONCURRENCY = 16;
const STATE_ID = "gateway.state";
export const DRIFT_ID = "gateway.drift";

export const revisionPath = (id: string) => `/gateway/revisions/${id}`;
export const subjectOf = (tenantId: string, path: string) => `/tenants/${tenantId}${path}`;
/** Publishing's documents live in the tenant partition. */
export const partitionOf = (tenantId: string): Partition => ({ tenantId, scopeId: TENANT_SCOPE });

/** A revision's manifest: artifact ref → content hash. */
export type Manifest = Map<ArtifactRef, string>;

export interface GatewayStateDoc extends StoredDoc {
  docType: "gatewayState";
  revisionCount: number;
  /** The newest revision made (pending, published, failed or superseded). */
  latest?: { revisionId: string; number: number };
  /** The revision the gateway was last brought to, completely. */
  published?: { revisionId: string; number: number; at: string };
  /**
   * The gateway instance `published` and `overrides` describe (tenant-gateways.ts). Recorded by every
   * publish; when the tenant's assigned instance differs, the next publish moves the tenant (applier.ts).
   * Absent in states written before it was recorded: see ManifestStore.describes.
   */
  instance?: string;
  /** After a publish stopped part-way: what the gateway holds beyond `published` (ref → hash; null = removed). */
  overrides: Record<ArtifactRef, string | null>;
  /**
   * Artifacts whose last write or delete failed in a way that may still have taken effect (a lost answer,
   * a time-out, a long-running operation whose polling failed): the next publish sends them again,
   * whatever `overrides` says. Cleared by a complete publish.
   */
  unsure?: ArtifactRef[];
  lease?: { revisionId: string; until: string };
  /**
   * While one revision is applied in more than one call (steps, retries after a refusal): what its
   * earlier calls did, so its outcome counts the whole publish. `unchanged` is from its first call.
   */
  progress?: {
    revisionId: string;
    sent: number;
    deleted: number;
    unchanged: number;
    /** Drifted artifacts its calls have sent again: no longer marked for the next call (ManifestStore.heldManifest). */
    resent?: ArtifactRef[];
  };
}

export interface RevisionDoc extends StoredDoc, Omit<Revision, "diff" | "id"> {
  docType: "revision";
  /** A failed system revision the publish sweep has asked for again (once each: a retry that made no revision must not be asked every sweep). */
  retryAskedAt?: string;
  parts: number;
  /** Chunks of the registry snapshot's entries (absent on revisions made before snapshots were kept). */
  registryParts?: number;
}

export interface DriftDoc extends StoredDoc, Omit<DriftReport, "checkedAt"> {
  docType: "driftReport";
  checkedAt: string;
  fingerprint: string;
}

/** A revision as the API shows it. */
export function toRevision(doc: RevisionDoc): Revision {
  return {
    id: doc.id,
    number: doc.number,
    kind: doc.kind,
    ...(doc.rollbackOf ? { rollbackOf: doc.rollbackOf } : {}),
    ...(doc.basedOn ? { basedOn: doc.basedOn } : {}),
    ...(doc.reason ? { reason: doc.reason } : {}),
    origin: doc.origin ?? "person",
    ...(doc.registryFrom ? { registryFrom: doc.registryFrom } : {}),
    ...(doc.registryLeftOut ? { registryLeftOut: doc.registryLeftOut } : {}),
    ...(doc.isolated ? { isolated: doc.isolated } : {}),
    ...(doc.staged ? { staged: doc.staged } : {}),
    status: doc.status,
    createdAt: doc.createdAt,
    createdBy: doc.createdBy,
    ...(doc.publishedAt ? { publishedAt: doc.publishedAt } : {}),
    ...(doc.failedAt ? { failedAt: doc.failedAt } : {}),
    ...(doc.error ? { error: doc.error } : {}),
    ...(doc.retry ? { retry: doc.retry } : {}),
    artifactCount: doc.artifactCount,
    counts: doc.counts,
    changes: doc.changes,
    ...(doc.outcome ? { outcome: doc.outcome } : {}),
  };
}

/**
 * The revision documents and the two tenant documents publishing keeps (the gateway state, the drift
 * report): typed reads, and the gateway state's unaudited conditional writes (leases, progress).
 */
export class PublishingDocuments {
  /** Typed reads only: revisions are shown without a version (toRevision) and audited by status. */
  private readonly revisions: Collection<RevisionDoc, Revision & { etag: string }>;

  constructor(
    private readonly store: Store,
    changes: ChangeWriter,
  ) {
    this.revisions = new Collection<RevisionDoc, Revision & { etag: string }>(store, changes, { docType: "revision", path: (d) => revisionPath(d.id) });
  }

  /** The revision, or a 404 (an id that is not a revision id never reaches the store). */
  async loadRevision(tenantId: string, id: string): Promise<Versioned<RevisionDoc>> {
    return /^rev_[0-9a-z]{20}$/.test(id) ? this.revisions.load(partitionOf(tenantId), id, revisionPath(id)) : notFound(revisionPath(id));
  }

  /** One page of revisions, newest first. */
  async revisionPage(tenantId: string, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<Revision>> {
    const result = await listPage<RevisionDoc>(this.store, partitionOf(tenantId), { docType: "revision", orderBy: { field: "number", direction: "DESC" } }, page);
    return { ...result, items: result.items.map(toRevision) };
  }

  /** When the first revision published at or after `since` went live (adoption: a project's first publish). */
  async firstPublishedSince(tenantId: string, since: string): Promise<string | undefined> {
    const page = await this.store.queryPage<RevisionDoc>(partitionOf(tenantId), {
      docType: "revision",
      // publishedAt stays when a later revision supersedes this one: every revision that ever went live counts.
      filters: [{ field: "publishedAt", op: ">=", value: since }],
      orderBy: { field: "publishedAt", direction: "ASC" },
      maxPageSize: 1,
    });
    return page.items[0]?.publishedAt;
  }

  /** Pending revisions everywhere (jobs only). */
  pendingRevisions(): AsyncGenerator<Versioned<RevisionDoc>> {
    return this.revisions.every("all", { filters: [{ field: "status", op: "=", value: "pending" }] });
  }

  /** Every tenant's system revisions that failed at or after `since` (the publish sweep asks for them again). */
  failedSystemRevisions(since: string): AsyncGenerator<Versioned<RevisionDoc>> {
    return this.revisions.every("all", {
      filters: [
        { field: "status", op: "=", value: "failed" },
        { field: "origin", op: "=", value: "system" },
        { field: "failedAt", op: ">=", value: since },
      ],
    });
  }

  /** The tenant's gateway state (a fresh one, without a version, before the first publish). */
  async state(tenantId: string): Promise<GatewayStateDoc & { _etag?: string }> {
    const doc = await this.store.read<GatewayStateDoc>(partitionOf(tenantId), STATE_ID);
    return doc ?? { id: STATE_ID, ...partitionOf(tenantId), docType: "gatewayState", revisionCount: 0, overrides: {} };
  }

  /** Every tenant's gateway state (jobs only). */
  everyState(): AsyncGenerator<Versioned<GatewayStateDoc>> {
    return everyDoc<GatewayStateDoc>(this.store, "all", { docType: "gatewayState" });
  }

  /** A conditional replace of the gateway state outside any audited change (leases, progress); its new version, or undefined when it lost a race. */
  async replaceState(doc: GatewayStateDoc, ifMatch: string | undefined): Promise<string | undefined> {
    const clean = unversioned(doc);
    const result = await this.store.batch(partitionOf(doc.tenantId), [ifMatch ? { kind: "replace", doc: clean, ifMatch } : { kind: "create", doc: clean }]);
    return result.ok ? result.etags[0] : undefined;
  }

  /** Marks a failed system revision as asked for again (the sweep's bookkeeping, not a change: no audit record); false when it lost a race. */
  async markRetryAsked(revision: Versioned<RevisionDoc>, at: string): Promise<boolean> {
    const result = await this.store.batch(partitionOf(revision.tenantId), [{ kind: "replace", doc: { ...unversioned(revision), retryAskedAt: at }, ifMatch: revision._etag }]);
    return result.ok;
  }

  /** Writes the drift report without an audit record (the same finding again: only the time of the check moves on). */
  async putDrift(doc: DriftDoc, ifMatch?: string): Promise<void> {
    await this.store.batch(partitionOf(doc.tenantId), [ifMatch ? { kind: "replace", doc, ifMatch } : { kind: "create", doc }]);
  }

  /** The last drift report, if a check ever wrote one. */
  drift(tenantId: string): Promise<Versioned<DriftDoc> | undefined> {
    return this.store.read<DriftDoc>(partitionOf(tenantId), DRIFT_ID);
  }
}
