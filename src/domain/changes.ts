import { randomUUID } from "node:crypto";
import type { Clock } from "../ports/clock.js";
import type { CloudEvent } from "../ports/events.js";
import type { BatchOp, BatchResult, Partition, Store, StoredDoc } from "../ports/store.js";
import { GENESIS_HASH, digestOf, recordHash, type ChainedFields } from "./audit/chain.js";
import type { RequestContext } from "./common.js";
import { AppError, type DomainError } from "./errors.js";

export const EVENT_SOURCE = "/aigov";

export interface AuditDoc extends StoredDoc, ChainedFields {
  docType: "audit";
  hash: string;
}

export interface ChainHeadDoc extends StoredDoc {
  docType: "chainHead";
  seq: number;
  hash: string;
}

export interface OutboxDoc extends StoredDoc {
  docType: "outbox";
  event: CloudEvent;
}

export const chainHeadId = (scopeId: string) => `chainhead.${scopeId}`;
export const auditId = (scopeId: string, seq: number) => `audit.${scopeId}.${String(seq).padStart(12, "0")}`;

/** One mutation: the state operations plus what the audit log and the event stream must say about it. */
export interface Change {
  partition: Partition;
  ctx: RequestContext;
  action: string;
  resource: string;
  before?: Record<string, unknown>;
  after?: Record<string, unknown>;
  ops: BatchOp[];
  event: { type: string; subject: string; data: unknown };
  /** Maps a failed state operation (by index and status) to the error callers should see. */
  onFailure?: (index: number, status: number) => DomainError | undefined;
}

interface Head {
  seq: number;
  hash: string;
  etag?: string;
}

interface Pending {
  change: Change;
  resolve(etags: (string | undefined)[]): void;
  reject(err: unknown): void;
}

const MAX_HEAD_RETRIES = 8;
/** Cosmos transactional batch limits: 100 operations and 2 MB; keep a margin on size. */
const MAX_BATCH_OPS = 100;
const MAX_BATCH_BYTES = 1_500_000;
const RECORD_OPS = 2; // audit record + outbox event per change

const opBytes = (change: Change) => Buffer.byteLength(JSON.stringify(change.ops)) + Buffer.byteLength(JSON.stringify(change.event.data)) * 2 + 2048;

/**
 * Commits changes as transactional batches: state + audit record + outbox event + chain head, all or nothing.
 *
 * The audit chain is per partition (tenant, scope) — see docs/adr/002-audit-chain.md — so writes to one
 * partition are sequenced. Within a process they queue per partition, and whatever queued while a batch
 * was in flight goes into the next batch together (group commit): one round trip, one head update, each
 * change with its own consecutive audit record. The chain head is cached; a stale cache (another instance
 * wrote) only costs a retry, because the head is replaced with If-Match.
 */
export class ChangeWriter {
  private readonly heads = new Map<string, Head>();
  private readonly pending = new Map<string, Pending[]>();
  private readonly draining = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** Resolves with the ETags of the change's state operations, in order. */
  commit(change: Change): Promise<(string | undefined)[]> {
    if (change.ops.length + RECORD_OPS + 1 > MAX_BATCH_OPS) {
      return Promise.reject(new Error(`a change holds at most ${MAX_BATCH_OPS - RECORD_OPS - 1} operations`));
    }
    const key = `${change.partition.tenantId}\u0000${change.partition.scopeId}`;
    return new Promise((resolve, reject) => {
      let queue = this.pending.get(key);
      if (!queue) this.pending.set(key, (queue = []));
      queue.push({ change, resolve, reject });
      if (!this.draining.has(key)) void this.drain(key);
    });
  }

  private async drain(key: string): Promise<void> {
    this.draining.add(key);
    try {
      for (;;) {
        const queue = this.pending.get(key);
        if (!queue || queue.length === 0) break;
        const group: Pending[] = [];
        let ops = 1; // the chain head
        let bytes = 0;
        while (queue.length > 0) {
          const next = queue[0]!;
          const nextOps = next.change.ops.length + RECORD_OPS;
          const nextBytes = opBytes(next.change);
          if (group.length > 0 && (ops + nextOps > MAX_BATCH_OPS || bytes + nextBytes > MAX_BATCH_BYTES)) break;
          group.push(queue.shift()!);
          ops += nextOps;
          bytes += nextBytes;
        }
        await this.commitGroup(key, group);
      }
    } finally {
      this.pending.delete(key);
      this.draining.delete(key);
    }
  }

  private async commitGroup(key: string, group: Pending[]): Promise<void> {
    let live = group;
    let headRetries = 0;
    while (live.length > 0) {
      const partition = live[0]!.change.partition;
      let head: Head;
      try {
        head = this.heads.get(key) ?? (await this.readHead(partition));
      } catch (err) {
        for (const p of live) p.reject(err);
        return;
      }
      const at = this.clock.now().toISOString();
      const ops: BatchOp[] = [];
      const stateRanges: [number, number][] = [];
      let prev = head;
      for (const { change } of live) {
        stateRanges.push([ops.length, ops.length + change.ops.length]);
        ops.push(...change.ops);
        const record = this.record(change, prev, at);
        ops.push({ kind: "create", doc: record.audit }, { kind: "create", doc: record.outbox });
        prev = { seq: record.audit.seq, hash: record.audit.hash };
      }
      const headDoc: ChainHeadDoc = { id: chainHeadId(partition.scopeId), ...partition, docType: "chainHead", seq: prev.seq, hash: prev.hash };
      ops.push(head.etag ? { kind: "replace", doc: headDoc, ifMatch: head.etag } : { kind: "create", doc: headDoc });

      let result: BatchResult;
      try {
        result = await this.store.batch(partition, ops);
      } catch (err) {
        this.heads.delete(key);
        for (const p of live) p.reject(err);
        return;
      }
      if (result.ok) {
        const headEtag = result.etags[ops.length - 1];
        this.heads.set(key, { seq: prev.seq, hash: prev.hash, ...(headEtag ? { etag: headEtag } : {}) });
        live.forEach((p, i) => p.resolve(result.etags.slice(stateRanges[i]![0], stateRanges[i]![1])));
        return;
      }
      const culprit = stateRanges.findIndex(([from, to]) => result.failedIndex >= from && result.failedIndex < to);
      if (culprit >= 0) {
        // One change's own state operation failed (stale ETag, name taken, ...): it alone fails;
        // the batch applied nothing, so the others go again without it.
        const failed = live[culprit]!;
        const index = result.failedIndex - stateRanges[culprit]![0];
        failed.reject(new AppError(failed.change.onFailure?.(index, result.status) ?? defaultFailure(result.status, failed.change.resource)));
        live = live.filter((p) => p !== failed);
        continue;
      }
      // The chain head moved (another instance wrote): reload it and try again.
      this.heads.delete(key);
      if (++headRetries > MAX_HEAD_RETRIES) {
        for (const p of live) p.reject(new AppError({ kind: "unavailable", detail: "the audit chain is busy; retry the request" }));
        return;
      }
    }
  }

  private record(change: Change, prev: Head, at: string): { audit: AuditDoc; outbox: OutboxDoc } {
    const { partition } = change;
    const fields: ChainedFields = {
      tenantId: partition.tenantId,
      scopeId: partition.scopeId,
      seq: prev.seq + 1,
      actor: change.ctx.principal.userId,
      action: change.action,
      resource: change.resource,
      correlationId: change.ctx.correlationId,
      at,
      beforeDigest: digestOf(change.before),
      afterDigest: digestOf(change.after),
      prevHash: prev.hash,
    };
    const audit: AuditDoc = { id: auditId(partition.scopeId, fields.seq), docType: "audit", ...fields, hash: recordHash(fields) };
    const eventId = randomUUID();
    const outbox: OutboxDoc = {
      id: `outbox.${eventId}`,
      ...partition,
      docType: "outbox",
      event: {
        specversion: "1.0",
        id: eventId,
        source: EVENT_SOURCE,
        type: change.event.type,
        subject: change.event.subject,
        time: at,
        datacontenttype: "application/json",
        data: change.event.data,
      },
    };
    return { audit, outbox };
  }

  private async readHead(partition: Partition): Promise<Head> {
    const doc = await this.store.read<ChainHeadDoc>(partition, chainHeadId(partition.scopeId));
    return doc ? { seq: doc.seq, hash: doc.hash, etag: doc._etag } : { seq: 0, hash: GENESIS_HASH };
  }
}

function defaultFailure(status: number, resource: string): DomainError {
  if (status === 412) return { kind: "preconditionFailed" };
  if (status === 404) return { kind: "notFound", resource };
  if (status === 409) return { kind: "conflict", detail: `${resource} already exists`, reason: "already_exists" };
  if (status === 413) return { kind: "payloadTooLarge", limitBytes: 2 * 1024 * 1024 };
  return { kind: "unavailable", detail: `the store refused the change (status ${status})` };
}
