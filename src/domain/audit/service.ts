import { TENANT_SCOPE, type Partition, type Store } from "../../ports/store.js";
import { chainHeadId, type AuditDoc, type ChainHeadDoc } from "../changes.js";
import type { Page, RequestContext } from "../common.js";
import { AppError } from "../errors.js";
import { AUDIT_READERS, holdsAny } from "../kernel/roles.js";
import { listPage } from "../paging.js";
import type { Filter } from "../../ports/store.js";
import { GENESIS_HASH, recordHash } from "./chain.js";
import type { AuditQuery, AuditRecord, AuditVerification } from "./schema.js";

const toScopeId = (scope: string) => (scope === "tenant" ? TENANT_SCOPE : scope);
const toScope = (scopeId: string) => (scopeId === TENANT_SCOPE ? "tenant" : scopeId);

function toRecord(doc: AuditDoc): AuditRecord {
  return {
    id: doc.id,
    tenantId: doc.tenantId,
    scope: toScope(doc.scopeId),
    seq: doc.seq,
    actor: doc.actor,
    action: doc.action,
    resource: doc.resource,
    correlationId: doc.correlationId,
    at: doc.at,
    beforeDigest: doc.beforeDigest,
    afterDigest: doc.afterDigest,
    prevHash: doc.prevHash,
    hash: doc.hash,
  };
}

/**
 * Read side of the append-only audit log. There is no write, update or delete here:
 * records are only ever created by ChangeWriter, in the same batch as the change they describe.
 */
export class AuditService {
  constructor(
    private readonly store: Store,
    /** The scopes (projects) whose chains belong to a tenant, besides the tenant's own. */
    private readonly projectScopes: (tenantId: string) => Promise<string[]>,
  ) {}

  async list(ctx: RequestContext, q: AuditQuery): Promise<Page<AuditRecord>> {
    this.authorize(ctx);
    const filters: Filter[] = [];
    if (q.resource) filters.push({ field: "resource", op: "=", value: q.resource });
    if (q.actor) filters.push({ field: "actor", op: "=", value: q.actor });
    if (q.from) filters.push({ field: "at", op: ">=", value: new Date(q.from).toISOString() });
    if (q.to) filters.push({ field: "at", op: "<", value: new Date(q.to).toISOString() });
    const page = await listPage<AuditDoc>(this.store, this.partition(ctx, q.scope), { docType: "audit", filters, orderBy: { field: "seq", direction: "DESC" } }, q);
    return { items: page.items.map(toRecord), ...(page.continuationToken ? { continuationToken: page.continuationToken } : {}) };
  }

  /** Recomputes every chain of the tenant and reports the first break. */
  async verify(ctx: RequestContext): Promise<AuditVerification> {
    this.authorize(ctx);
    const scopes = ["tenant", ...(await this.projectScopes(ctx.principal.tenantId))];
    const result: AuditVerification = { ok: true, scopes: [], recordsChecked: 0 };
    for (const scope of scopes) {
      const partition = this.partition(ctx, scope);
      let expectedSeq = 1;
      let prevHash = GENESIS_HASH;
      let broken: AuditVerification["firstBreak"];
      let token: string | undefined;
      do {
        const page = await this.store.queryPage<AuditDoc>(partition, {
          docType: "audit",
          orderBy: { field: "seq", direction: "ASC" },
          maxPageSize: 100,
          ...(token ? { continuationToken: token } : {}),
        });
        for (const doc of page.items) {
          if (broken) break;
          result.recordsChecked += 1;
          if (doc.seq !== expectedSeq) broken = { scope, seq: expectedSeq, reason: "missingRecord" };
          else if (doc.prevHash !== prevHash) broken = { scope, seq: doc.seq, recordId: doc.id, reason: "linkMismatch" };
          else if (recordHash(doc) !== doc.hash) broken = { scope, seq: doc.seq, recordId: doc.id, reason: "hashMismatch" };
          prevHash = doc.hash;
          expectedSeq += 1;
        }
        token = broken ? undefined : page.continuationToken;
      } while (token);
      if (!broken) {
        // A truncated tail (last records deleted) shows up against the chain head.
        const head = await this.store.read<ChainHeadDoc>(partition, chainHeadId(partition.scopeId));
        const lastSeq = expectedSeq - 1;
        if ((head?.seq ?? 0) !== lastSeq || (head && head.hash !== prevHash)) {
          broken = { scope, seq: lastSeq + 1, reason: head && head.seq > lastSeq ? "missingRecord" : "headMismatch" };
        }
      }
      result.scopes.push({ scope, records: expectedSeq - 1, ok: !broken });
      if (broken && !result.firstBreak) {
        result.ok = false;
        result.firstBreak = broken;
      }
    }
    return result;
  }

  private partition(ctx: RequestContext, scope: string): Partition {
    return { tenantId: ctx.principal.tenantId, scopeId: toScopeId(scope) };
  }

  private authorize(ctx: RequestContext): void {
    if (!holdsAny(ctx.principal.roles, AUDIT_READERS)) {
      throw new AppError({ kind: "forbidden", detail: "reading the audit log requires Auditor or TenantAdmin" });
    }
  }
}
