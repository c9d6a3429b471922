import type { CloudEvent, EventPublisher } from "../../ports/events.js";
import type { Store, Versioned } from "../../ports/store.js";
import type { OutboxDoc } from "../changes.js";

/** Event Grid accepts at most 5,000 events and 1 MB per request. */
export const EVENT_GRID_LIMITS = { maxEvents: 5000, maxBytes: 1024 * 1024 };

/** Splits events into requests that respect the limits, keeping order. */
export function chunkEvents(events: CloudEvent[], limits = EVENT_GRID_LIMITS): CloudEvent[][] {
  const chunks: CloudEvent[][] = [];
  let current: CloudEvent[] = [];
  let bytes = 2; // "[" and "]"
  for (const event of events) {
    const size = Buffer.byteLength(JSON.stringify(event)) + 1;
    if (size + 2 > limits.maxBytes) throw new Error(`event ${event.id} alone exceeds ${limits.maxBytes} bytes`);
    if (current.length > 0 && (current.length >= limits.maxEvents || bytes + size > limits.maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 2;
    }
    current.push(event);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** The docType of an outbox record the relay set aside (it can never be delivered). */
export const UNDELIVERABLE = "outbox-undeliverable";

/** Why a record can never be delivered (undefined: it can). */
function undeliverable(d: OutboxDoc, limits: typeof EVENT_GRID_LIMITS): string | undefined {
  const event = d.event as CloudEvent | undefined;
  if (!event || typeof event !== "object" || typeof event.id !== "string" || !event.id) return "no event with an id";
  try {
    if (Buffer.byteLength(JSON.stringify(event)) + 3 > limits.maxBytes) return `event ${event.id} alone exceeds ${limits.maxBytes} bytes`;
  } catch (err) {
    return `event ${event.id} is not serializable: ${err instanceof Error ? err.message : String(err)}`;
  }
  return undefined;
}

/**
 * Delivers outbox records at least once: publish, then delete. A crash in between re-sends the
 * same event with the same id, which consumers de-duplicate on (CloudEvents source + id).
 * Runs from a timer job, never from a request path, so it may query across partitions.
 */
export class OutboxRelay {
  constructor(
    private readonly store: Store,
    private readonly publisher: EventPublisher,
    private readonly limits = EVENT_GRID_LIMITS,
  ) {}

  async runOnce(maxRecords = 5000): Promise<{ delivered: number; setAside: number }> {
    let delivered = 0;
    let setAside = 0;
    while (delivered + setAside < maxRecords) {
      const page = await this.store.queryAcrossPartitions<OutboxDoc>({ docType: "outbox", maxPageSize: 500 });
      // A record that can never be delivered (damaged, written around the API; or too large for Event Grid)
      // holds up no other event: it is set aside in its partition, named in the log once, and the rest are
      // delivered. Left in place, a page's worth of them would hide every record behind them for good.
      const deliverable: Versioned<OutboxDoc>[] = [];
      let setAsideNow = 0;
      for (const d of page.items) {
        const unusable = undeliverable(d, this.limits);
        if (!unusable) deliverable.push(d);
        else if (await this.setAside(d, unusable)) setAsideNow += 1;
      }
      setAside += setAsideNow;
      if (deliverable.length === 0) {
        if (setAsideNow > 0) continue;
        break;
      }
      const byId = new Map(deliverable.map((d) => [d.event.id, d]));
      for (const chunk of chunkEvents(deliverable.map((d) => d.event), this.limits)) {
        await this.publisher.publish(chunk);
        await this.forget(chunk.map((e) => byId.get(e.id)!));
        delivered += chunk.length;
      }
    }
    return { delivered, setAside };
  }

  /**
   * Moves an undeliverable record out of the relay's way: same id and partition, docType
   * `outbox-undeliverable`, with the reason and when — kept for an operator to inspect, never relayed.
   * False when the store refused (the record stays pending and is tried again next run).
   */
  private async setAside(d: Versioned<OutboxDoc>, reason: string): Promise<boolean> {
    console.error(`outbox relay: record ${d.id} of tenant ${d.tenantId}: ${reason} (set aside as ${UNDELIVERABLE})`);
    const { _etag, ...doc } = d;
    const aside = { ...doc, docType: UNDELIVERABLE, undeliverable: { reason, at: new Date().toISOString() } };
    try {
      const result = await this.store.batch({ tenantId: d.tenantId, scopeId: d.scopeId }, [{ kind: "replace", doc: aside, ifMatch: _etag }]);
      // 404/412: another relay run moved or delivered it first.
      return result.ok || result.status === 404 || result.status === 412;
    } catch (err) {
      console.error(`outbox relay: could not set aside record ${d.id} of tenant ${d.tenantId}: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
  }

  /** Deletes delivered records: one batch per partition and 100 records. */
  private async forget(docs: OutboxDoc[]): Promise<void> {
    const byPartition = new Map<string, OutboxDoc[]>();
    for (const d of docs) {
      const key = JSON.stringify([d.tenantId, d.scopeId]);
      byPartition.set(key, [...(byPartition.get(key) ?? []), d]);
    }
    for (const group of byPartition.values()) {
      const partition = { tenantId: group[0]!.tenantId, scopeId: group[0]!.scopeId };
      for (let i = 0; i < group.length; i += 100) {
        const result = await this.store.batch(partition, group.slice(i, i + 100).map((d) => ({ kind: "delete", id: d.id }) as const));
        // A record already gone (another relay run got there first) is fine; anything else is retried next run.
        if (!result.ok && result.status !== 404) throw new Error(`could not clear delivered outbox records (status ${result.status})`);
      }
    }
  }
}
