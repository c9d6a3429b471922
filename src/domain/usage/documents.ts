/**
 * Rollup documents: one per project partition, source, granularity and bucket, split into parts of at
 * most {@link ROWS_PER_PART} rows (a busy project's minute can hold thousands of keys × models). A
 * bucket is always written whole (every part, stale parts deleted), so writing it again with the same
 * rows changes nothing: ingestion recomputes buckets, it never adds to them (ADR 016).
 */
import type { BatchOp, Partition, Store, StoredDoc } from "../../ports/store.js";
import { everyDoc } from "../paging.js";
import { RowSet, type UsageRow } from "./rollup.js";

export const GRANULARITIES = ["minute", "hour", "day"] as const;
export type Granularity = (typeof GRANULARITIES)[number];

/** Bucket keys: 'yyyy-mm-ddThh:mm', 'yyyy-mm-ddThh', 'yyyy-mm-dd' (UTC). */
export const BUCKET_LENGTH: Record<Granularity, number> = { minute: 16, hour: 13, day: 10 };
export const BUCKET_MS: Record<Granularity, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
const SHORT: Record<Granularity, string> = { minute: "m", hour: "h", day: "d" };

export const ROWS_PER_PART = 400;
const MAX_BATCH_OPS = 100;
const MAX_BATCH_BYTES = 1_500_000;

export interface RollupDoc extends StoredDoc {
  docType: "usageRollup";
  source: string;
  granularity: Granularity;
  bucket: string;
  part: number;
  parts: number;
  rows: UsageRow[];
  /** When retention removes it (the ingestion job's sweep; Cosmos's own TTL in Azure, `ttl`). */
  expiresAt: string;
  ttl: number;
}

export const rollupId = (source: string, g: Granularity, bucket: string, part: number) => `usage.${source}.${SHORT[g]}.${bucket}.${part}`;

export interface Retention {
  minute: number;
  hour: number;
  day: number;
}

/** Bucket start as a time (ms). */
export function bucketStart(bucket: string): number {
  const iso = bucket.length === 10 ? `${bucket}T00:00` : bucket.length === 13 ? `${bucket}:00` : bucket;
  return Date.parse(`${iso}:00.000Z`);
}

export class RollupDocuments {
  constructor(
    private readonly store: Store,
    private readonly retentionDays: Retention,
  ) {}

  /** The docs of one bucket (every part), written whole; parts it had before and no longer needs are deleted. */
  bucketOps(partition: Partition, source: string, g: Granularity, bucket: string, rows: UsageRow[], previousParts: number): BatchOp[] {
    const parts = Math.max(1, Math.ceil(rows.length / ROWS_PER_PART));
    const expires = bucketStart(bucket) + BUCKET_MS[g] + this.retentionDays[g] * 86_400_000;
    const ops: BatchOp[] = [];
    for (let part = 0; part < parts; part++) {
      const doc: RollupDoc = {
        id: rollupId(source, g, bucket, part),
        ...partition,
        docType: "usageRollup",
        source,
        granularity: g,
        bucket,
        part,
        parts,
        rows: rows.slice(part * ROWS_PER_PART, (part + 1) * ROWS_PER_PART),
        expiresAt: new Date(expires).toISOString(),
        // Cosmos counts ttl from the write's _ts, the store's real time: so the real clock, not the app's.
        ttl: Math.max(60, Math.ceil((expires - Date.now()) / 1000)),
      };
      ops.push({ kind: "upsert", doc });
    }
    for (let part = parts; part < previousParts; part++) ops.push({ kind: "delete", id: rollupId(source, g, bucket, part) });
    return ops;
  }

  /** Writes operations in batches within Cosmos's limits (each batch all or nothing; the set is idempotent). */
  async write(partition: Partition, ops: BatchOp[]): Promise<void> {
    let batch: BatchOp[] = [];
    let bytes = 0;
    const flush = async () => {
      if (!batch.length) return;
      const r = await this.store.batch(partition, batch);
      // A delete of a part already gone (404) is fine; anything else is a failure to retry.
      if (!r.ok && !(r.status === 404 && batch[r.failedIndex]?.kind === "delete")) throw new Error(`usage rollup write failed with ${r.status}`);
      if (!r.ok) {
        const rest = batch.filter((_, i) => i !== r.failedIndex);
        batch = [];
        bytes = 0;
        if (rest.length) await this.write(partition, rest);
        return;
      }
      batch = [];
      bytes = 0;
    };
    for (const op of ops) {
      const size = op.kind === "delete" ? 200 : Buffer.byteLength(JSON.stringify(op.doc));
      if (batch.length >= MAX_BATCH_OPS || (batch.length && bytes + size > MAX_BATCH_BYTES)) await flush();
      batch.push(op);
      bytes += size;
    }
    await flush();
  }

  /** The parts count of each bucket of a granularity in [from, to) (bucket keys), for one source. */
  async partCounts(partition: Partition, source: string, g: Granularity, from: string, to: string): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for await (const d of this.list(partition, g, from, to, source)) out.set(d.bucket, Math.max(out.get(d.bucket) ?? 0, d.parts));
    return out;
  }

  /** Every rollup doc of a granularity with bucket in [from, to), any source unless one is named. */
  list(partition: Partition, g: Granularity, from: string, to: string, source?: string): AsyncGenerator<RollupDoc> {
    return everyDoc<RollupDoc>(this.store, partition, {
      docType: "usageRollup",
      filters: [
        { field: "granularity", op: "=", value: g },
        { field: "bucket", op: ">=", value: from },
        { field: "bucket", op: "<", value: to },
        ...(source ? [{ field: "source", op: "=" as const, value: source }] : []),
      ],
    });
  }

  /** The rows of the buckets in [from, to), merged per bucket. */
  async rowsByBucket(partition: Partition, g: Granularity, from: string, to: string, source?: string): Promise<Map<string, RowSet>> {
    const out = new Map<string, RowSet>();
    for await (const d of this.list(partition, g, from, to, source)) {
      let set = out.get(d.bucket);
      if (!set) {
        set = new RowSet();
        out.set(d.bucket, set);
      }
      set.addRows(d.rows);
    }
    return out;
  }
}
