import type { Container, CosmosClient, JSONObject, OperationInput, SqlParameter } from "@azure/cosmos";
import {
  ContinuationTokenRefused,
  type BatchOp,
  type BatchResult,
  type Filter,
  type Partition,
  type QuerySpec,
  type Store,
  type StoredDoc,
  type Versioned,
} from "../../ports/store.js";

const FIELD = /^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$/;
const SYSTEM_FIELDS: ReadonlySet<string> = new Set(["_rid", "_self", "_attachments", "_ts", "_lsn"]);

function strip<T extends StoredDoc>(doc: Record<string, unknown>): Versioned<T> {
  // A copy without the system fields: `delete` would leave every document read a slow dictionary object.
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(doc)) if (!SYSTEM_FIELDS.has(k)) out[k] = doc[k];
  return out as Versioned<T>;
}

function fieldRef(field: string): string {
  // Field names come from code, never from callers; the check keeps it that way.
  if (!FIELD.test(field)) throw new Error(`invalid field name ${field}`);
  return `c.${field}`;
}

function buildSql(spec: QuerySpec, partition: Partition | undefined): { query: string; parameters: SqlParameter[] } {
  const where: string[] = ["c.docType = @docType"];
  const parameters: SqlParameter[] = [{ name: "@docType", value: spec.docType }];
  if (partition) {
    // The embedded server ignores the partition key on queries, and defence in depth is cheap:
    // every request-path query names its tenant and scope explicitly.
    where.unshift("c.tenantId = @tenantId", "c.scopeId = @scopeId");
    parameters.push({ name: "@tenantId", value: partition.tenantId }, { name: "@scopeId", value: partition.scopeId });
  }
  (spec.filters ?? []).forEach((f: Filter, i) => {
    const p = `@p${i}`;
    parameters.push({ name: p, value: f.value });
    const field = fieldRef(f.field);
    where.push(
      f.op === "startsWith" ? `STARTSWITH(${field}, ${p})` : f.op === "contains" ? `CONTAINS(${field}, ${p})` : f.op === "arrayContains" ? `ARRAY_CONTAINS(${field}, ${p})` : `${field} ${f.op} ${p}`,
    );
  });
  let query = `SELECT * FROM c WHERE ${where.join(" AND ")}`;
  if (spec.orderBy) query += ` ORDER BY ${fieldRef(spec.orderBy.field)} ${spec.orderBy.direction}`;
  return { query, parameters };
}

function toOperation(op: BatchOp): OperationInput {
  const body = (doc: StoredDoc) => doc as unknown as JSONObject;
  switch (op.kind) {
    case "create":
      return { operationType: "Create", resourceBody: body(op.doc) };
    case "upsert":
      return { operationType: "Upsert", resourceBody: body(op.doc) };
    case "replace":
      return { operationType: "Replace", id: op.doc.id, resourceBody: body(op.doc), ...(op.ifMatch ? { ifMatch: op.ifMatch } : {}) };
    case "delete":
      return { operationType: "Delete", id: op.id, ...(op.ifMatch ? { ifMatch: op.ifMatch } : {}) };
  }
}

function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === "number" ? code : undefined;
}

/** The production Store: the same code talks to Azure Cosmos DB and to the embedded local server. */
export class CosmosStore implements Store {
  constructor(
    private readonly client: CosmosClient,
    private readonly container: Container,
  ) {}

  async read<T extends StoredDoc>(p: Partition, id: string): Promise<Versioned<T> | undefined> {
    try {
      const { resource } = await this.container.item(id, [p.tenantId, p.scopeId]).read<Record<string, unknown>>();
      return resource ? strip<T>(resource) : undefined;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  async batch(p: Partition, ops: BatchOp[]): Promise<BatchResult> {
    if (ops.length === 0 || ops.length > 100) throw new Error(`a batch holds 1..100 operations, got ${ops.length}`);
    for (const op of ops) {
      if ("doc" in op && (op.doc.tenantId !== p.tenantId || op.doc.scopeId !== p.scopeId)) {
        throw new Error("batch document outside its partition");
      }
    }
    let results;
    try {
      const response = await this.container.items.batch(ops.map(toOperation), [p.tenantId, p.scopeId]);
      results = response.result ?? [];
    } catch (err) {
      // The SDK throws for some whole-batch failures; report them as a failure of the first operation.
      const status = statusOf(err);
      if (status !== undefined && status < 500) return { ok: false, failedIndex: 0, status };
      throw err;
    }
    const failedIndex = results.findIndex((r) => r.statusCode >= 400 && r.statusCode !== 424);
    if (failedIndex >= 0) return { ok: false, failedIndex, status: results[failedIndex]!.statusCode };
    return { ok: true, etags: results.map((r) => r.eTag) };
  }

  async queryPage<T extends StoredDoc>(p: Partition, spec: QuerySpec) {
    return this.runQuery<T>(buildSql(spec, p), spec, [p.tenantId, p.scopeId]);
  }

  async queryAcrossPartitions<T extends StoredDoc>(spec: QuerySpec) {
    return this.runQuery<T>(buildSql(spec, undefined), spec, undefined);
  }

  private async runQuery<T extends StoredDoc>(
    sql: { query: string; parameters: SqlParameter[] },
    spec: QuerySpec,
    partitionKey: [string, string] | undefined,
  ): Promise<{ items: Versioned<T>[]; continuationToken?: string }> {
    const iterator = this.container.items.query<Record<string, unknown>>(sql, {
      maxItemCount: spec.maxPageSize,
      ...(spec.continuationToken ? { continuationToken: spec.continuationToken } : {}),
      ...(partitionKey ? { partitionKey } : {}),
    });
    let page;
    try {
      page = await iterator.fetchNext();
    } catch (err) {
      // With a token, a 400 (Cosmos DB: "invalid continuation token") or the SDK failing to read the token
      // before it sends anything (a TypeError or SyntaxError of its own, no network cause) is the token's
      // fault: the query itself is built here and is valid.
      const parsing = (err instanceof TypeError || err instanceof SyntaxError) && err.cause === undefined;
      if (spec.continuationToken !== undefined && (statusOf(err) === 400 || parsing)) throw new ContinuationTokenRefused({ cause: err });
      throw err;
    }
    const items = page.resources.map((r) => strip<T>(r));
    return page.continuationToken && page.hasMoreResults
      ? { items, continuationToken: page.continuationToken }
      : { items };
  }

  async delete(p: Partition, id: string, ifMatch?: string): Promise<boolean> {
    try {
      await this.container
        .item(id, [p.tenantId, p.scopeId])
        .delete(ifMatch ? { accessCondition: { type: "IfMatch", condition: ifMatch } } : {});
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw err;
    }
  }

  async ping(): Promise<void> {
    await this.container.read();
  }

  dispose(): void {
    this.client.dispose();
  }
}
