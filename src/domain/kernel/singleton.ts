import type { Clock } from "../../ports/clock.js";
import { TENANT_SCOPE, type Partition, type Store, type StoredDoc } from "../../ports/store.js";
import type { ChangeWriter } from "../changes.js";
import { etagMatches, etagValue, type RequestContext } from "../common.js";
import { fail } from "../errors.js";

/** The ETag of a tenant document never written: send it in If-Match to write it the first time. */
export const INITIAL_ETAG = "initial";

/** What a tenant singleton stores beyond its own fields. */
interface SingletonDoc extends StoredDoc {
  updatedAt: string;
  updatedBy: string;
}

/** A written singleton: its fields, who wrote them when, and its version. */
export type Written<T> = T & { updatedAt: string; updatedBy: string; etag: string };

/**
 * One document per tenant that is read whole and replaced whole with If-Match (tenant settings, the
 * exemption policy, approval routes): `"initial"` before the first write, every write audited and
 * announced like any change. The owner supplies the defaults, the checks and the event.
 */
export class TenantSingleton<T extends object> {
  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly spec: {
      id: string;
      docType: string;
      /** The API path (audit `resource`, event subject below the tenant). */
      path: string;
      event: string;
      action: string;
      /** The event's data (defaults to the stored fields): say less when the fields are large or sensitive. */
      eventData?: (value: T) => unknown;
    },
  ) {}

  /** The stored fields, or undefined before the first write. */
  async read(tenantId: string): Promise<Written<T> | undefined> {
    const doc = await this.store.read<SingletonDoc>(this.partition(tenantId), this.spec.id);
    if (!doc || doc.docType !== this.spec.docType) return undefined;
    return { ...this.fields(doc), updatedAt: doc.updatedAt, updatedBy: doc.updatedBy, etag: etagValue(doc._etag) } as Written<T>;
  }

  /** Replaces the document (If-Match against its version, or "initial" before the first write). */
  async write(ctx: RequestContext, value: T, ifMatch: string): Promise<Written<T>> {
    const { principal } = ctx;
    const partition = this.partition(principal.tenantId);
    const current = await this.store.read<SingletonDoc>(partition, this.spec.id);
    if (!etagMatches(current?._etag ?? INITIAL_ETAG, ifMatch)) fail({ kind: "preconditionFailed" });
    const doc: SingletonDoc = { ...value, id: this.spec.id, ...partition, docType: this.spec.docType, updatedAt: this.clock.now().toISOString(), updatedBy: principal.userId };
    const plain = (d: SingletonDoc) => ({ ...this.fields(d), updatedAt: d.updatedAt, updatedBy: d.updatedBy });
    const [etag] = await this.changes.commit({
      partition,
      ctx,
      action: this.spec.action,
      resource: this.spec.path,
      ...(current ? { before: plain(current) } : {}),
      after: plain(doc),
      ops: [current ? { kind: "replace", doc, ifMatch: current._etag } : { kind: "create", doc }],
      event: { type: this.spec.event, subject: `/tenants/${principal.tenantId}${this.spec.path}`, data: this.spec.eventData ? this.spec.eventData(value) : plain(doc) },
      // Two first writes at once: the second is told to read again, like any stale If-Match.
      onFailure: (_i, status) => (status === 409 ? { kind: "preconditionFailed" } : undefined),
    });
    return { ...value, updatedAt: doc.updatedAt, updatedBy: doc.updatedBy, etag: etagValue(etag ?? "") };
  }

  private fields(doc: SingletonDoc & { _etag?: string }): T {
    const { id: _i, tenantId: _t, scopeId: _s, docType: _d, updatedAt: _u, updatedBy: _b, _etag: _e, ...rest } = doc;
    return rest as unknown as T;
  }

  private partition(tenantId: string): Partition {
    return { tenantId, scopeId: TENANT_SCOPE };
  }
}
