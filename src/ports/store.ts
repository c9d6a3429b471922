/**
 * The document store, as the domain sees it. One container, partitioned by
 * [tenantId, scopeId] (scope = "_tenant" or a project id); every call names its partition,
 * so a request can never reach another tenant's data by forgetting a filter.
 */
export interface Partition {
  tenantId: string;
  scopeId: string;
}

export const TENANT_SCOPE = "_tenant";

export interface StoredDoc {
  id: string;
  tenantId: string;
  scopeId: string;
  docType: string;
  [field: string]: unknown;
}

export type Versioned<T> = T & { _etag: string };

/** A document as read, ready to be written back: without its version (the store adds the new one). */
export function unversioned<T extends StoredDoc>(doc: T & { _etag?: string }): T {
  const { _etag: _e, ...rest } = doc;
  return rest as T;
}

export type BatchOp =
  | { kind: "create"; doc: StoredDoc }
  | { kind: "replace"; doc: StoredDoc; ifMatch?: string }
  | { kind: "upsert"; doc: StoredDoc }
  | { kind: "delete"; id: string; ifMatch?: string };

export type BatchResult =
  | { ok: true; etags: (string | undefined)[] }
  | { ok: false; failedIndex: number; status: number };

export type Filter =
  | { field: string; op: "=" | "<" | "<=" | ">" | ">="; value: string | number | boolean }
  | { field: string; op: "startsWith"; value: string }
  /** A substring of a string field (CONTAINS), or an element of an array field (ARRAY_CONTAINS). */
  | { field: string; op: "contains" | "arrayContains"; value: string };

export interface QuerySpec {
  docType: string;
  filters?: Filter[];
  orderBy?: { field: string; direction: "ASC" | "DESC" };
  maxPageSize: number;
  continuationToken?: string;
}

/**
 * A query page refused because of the continuation token it was given: the store cannot resume from it
 * (Cosmos DB answers 400, or its SDK cannot parse it). Callers page with tokens from outside, so this is
 * the caller's mistake, never the store's failure.
 */
export class ContinuationTokenRefused extends Error {
  constructor(options?: ErrorOptions) {
    super("the store cannot resume a query from this continuation token", options);
    this.name = "ContinuationTokenRefused";
  }
}

export interface Store {
  /** One point read (id + full partition key). */
  read<T extends StoredDoc>(partition: Partition, id: string): Promise<Versioned<T> | undefined>;
  /** One transactional batch: all operations apply, or none. */
  batch(partition: Partition, ops: BatchOp[]): Promise<BatchResult>;
  /**
   * One single-partition query page. Tenant and scope are always part of the WHERE clause. A
   * continuation token the store cannot resume from throws ContinuationTokenRefused.
   */
  queryPage<T extends StoredDoc>(
    partition: Partition,
    spec: QuerySpec,
  ): Promise<{ items: Versioned<T>[]; continuationToken?: string }>;
  /** Background jobs only (never a request path): a page across all partitions. */
  queryAcrossPartitions<T extends StoredDoc>(
    spec: QuerySpec,
  ): Promise<{ items: Versioned<T>[]; continuationToken?: string }>;
  delete(partition: Partition, id: string, ifMatch?: string): Promise<boolean>;
  ping(): Promise<void>;
}
