import { randomUUID } from "node:crypto";
import type { Clock } from "../ports/clock.js";
import type { CloudEvent } from "../ports/events.js";
import type { BatchOp, Partition, Store, StoredDoc } from "../ports/store.js";
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

const MAX_HEAD_RETRIES = 8;

/**
 * Commits a change as ONE transactional batch: state + audit record + outbox event + chain head.
 * The audit chain is per partition (tenant, scope) — see docs/adr/002-audit-chain.md. The chain head
 * is cached per process; a stale cache only costs a retry, because the head is replaced with If-Match.
 */
export class ChangeWriter {
  private readonly heads = new Map<string, Head>();
  /** Per-partition queue: commits from one process never race each other for the chain head. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  commit(change: Change): Promise<(string | undefined)[]> {
    const key = `${change.partition.tenantId}\u0000${change.partition.scopeId}`;
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.commitNow(change, key));
    const settled = next.catch(() => undefined);
    this.queues.set(key, settled);
    void settled.then(() => {
      if (this.queues.get(key) === settled) this.queues.delete(key);
    });
    return next;
  }

  private async commitNow(change: Change, key: string): Promise<(string | undefined)[]> {
    const { partition } = change;
    for (let attempt = 0; ; attempt++) {
      const head = this.heads.get(key) ?? (await this.readHead(partition));
      const at = this.clock.now().toISOString();
      const fields: ChainedFields = {
        tenantId: partition.tenantId,
        scopeId: partition.scopeId,
        seq: head.seq + 1,
        actor: change.ctx.principal.userId,
        action: change.action,
        resource: change.resource,
        correlationId: change.ctx.correlationId,
        at,
        beforeDigest: digestOf(change.before),
        afterDigest: digestOf(change.after),
        prevHash: head.hash,
      };
      const hash = recordHash(fields);
      const audit: AuditDoc = { id: auditId(partition.scopeId, fields.seq), docType: "audit", ...fields, hash };
      const headDoc: ChainHeadDoc = { id: chainHeadId(partition.scopeId), ...partition, docType: "chainHead", seq: fields.seq, hash };
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
      const headOp: BatchOp = head.etag ? { kind: "replace", doc: headDoc, ifMatch: head.etag } : { kind: "create", doc: headDoc };
      const ops = [...change.ops, headOp, { kind: "create", doc: audit } as const, { kind: "create", doc: outbox } as const];
      const result = await this.store.batch(partition, ops);
      if (result.ok) {
        const headEtag = result.etags[change.ops.length];
        this.heads.set(key, { seq: fields.seq, hash, ...(headEtag ? { etag: headEtag } : {}) });
        return result.etags.slice(0, change.ops.length);
      }
      if (result.failedIndex < change.ops.length) {
        this.heads.delete(key);
        throw new AppError(change.onFailure?.(result.failedIndex, result.status) ?? defaultFailure(result.status, change.resource));
      }
      // The chain head moved (another writer): reload it and try again.
      this.heads.delete(key);
      if (attempt >= MAX_HEAD_RETRIES) {
        throw new AppError({ kind: "unavailable", detail: "the audit chain is busy; retry the request" });
      }
    }
  }

  private async readHead(partition: Partition): Promise<Head> {
    const doc = await this.store.read<ChainHeadDoc>(partition, chainHeadId(partition.scopeId));
    return doc ? { seq: doc.seq, hash: doc.hash, etag: doc._etag } : { seq: 0, hash: GENESIS_HASH };
  }
}

function defaultFailure(status: number, resource: string): DomainError {
  if (status === 412) return { kind: "preconditionFailed" };
  if (status === 404) return { kind: "notFound", resource };
  if (status === 409) return { kind: "conflict", detail: `${resource} already exists` };
  if (status === 413) return { kind: "payloadTooLarge", limitBytes: 2 * 1024 * 1024 };
  return { kind: "unavailable", detail: `the store refused the change (status ${status})` };
}
