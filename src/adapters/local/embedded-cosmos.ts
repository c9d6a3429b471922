/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-require-imports --
   this file adapts the untyped internals of @vercel/cosmosdb-server, a local test double. */
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

/**
 * The embedded, Cosmos-wire-compatible server behind `npm start` and the tests.
 *
 * It wraps @vercel/cosmosdb-server with three things the package lacks:
 *  - atomic transactional batches (the package applies the operations before a failing one);
 *  - persistence: a snapshot under the data directory, written shortly after every change and on close;
 *  - request counting by kind, so tests can prove how many round trips an API call costs.
 */
/** queryPlan: the SDK's query-plan lookup, which it starts beside every query page (it does not wait for it on single-partition queries). */
export type RequestKind = "read" | "query" | "queryPlan" | "batch" | "write" | "metadata";

export interface EmbeddedCosmos {
  endpoint: string;
  key: string;
  counts: Record<RequestKind, number>;
  resetCounts(): void;
  flush(): void;
  close(): Promise<void>;
}

const PKG = "@vercel/cosmosdb-server/lib";

function loadPackage(): { Account: any; routes: (req: IncomingMessage) => any } {
  // Replace the batch handler before routes.js captures it.
  const batchModule = require(`${PKG}/handler/batch-documents`);
  if (!batchModule.__aigovAtomic) {
    batchModule.default = atomicBatch;
    batchModule.__aigovAtomic = true;
  }
  return { Account: require(`${PKG}/account`).default, routes: require(`${PKG}/routes`).default };
}

async function atomicBatch(account: any, req: IncomingMessage, res: ServerResponse, { dbId, collId }: any) {
  const json = require(`${PKG}/json`).default;
  const ops = require(`${PKG}/handler/_document-operations`);
  const { parsePartitionKey } = require(`${PKG}/utils/get-partition-from-header`);
  const body = await json(req);
  const collection = account.database(dbId).collection(collId);
  if (!collection.read()) {
    res.statusCode = 404;
    return {};
  }
  if (!Array.isArray(body)) {
    res.statusCode = 400;
    return { message: "Invalid request body" };
  }
  // The SDK sends the batch's partition key as a request header, not on each operation.
  const headerKey = req.headers["x-ms-documentdb-partitionkey"];
  for (const input of body) if (input && input.partitionKey === undefined && typeof headerKey === "string") input.partitionKey = headerKey;
  const targetOf = (input: any): [string, string] => {
    const id = input?.resourceBody?.id ?? input?.id;
    return [id, parsePartitionKey(input.partitionKey, id)];
  };
  const before = new Map<string, { id: string; pk: string; doc: any }>();
  for (const input of body) {
    const [id, pk] = targetOf(input);
    if (id === undefined) continue;
    const key = JSON.stringify([pk, id]);
    if (!before.has(key)) before.set(key, { id, pk, doc: collection.document(id, pk).read() });
  }
  const results: any[] = [];
  let failedAt = -1;
  for (let i = 0; i < body.length; i += 1) {
    const input = body[i];
    let result: any;
    switch (input?.operationType) {
      case "Create": result = ops.createOperation(collection, input); break;
      case "Upsert": result = ops.upsertOperation(collection, input); break;
      case "Read": result = ops.readOperation(collection, input); break;
      case "Delete": result = ops.deleteOperation(collection, input); break;
      case "Replace": result = ops.replaceOperation(collection, input); break;
      default: result = { statusCode: 400, body: { message: `Operation type '${input?.operationType}' is not supported in Batch.` } };
    }
    results.push(result);
    if (result.statusCode >= 400) {
      failedAt = i;
      break;
    }
  }
  if (failedAt >= 0) {
    // Roll back: put every touched document back exactly as it was.
    for (const { id, pk, doc } of before.values()) {
      if (collection.document(id, pk).read()) collection.documents.delete(id, pk);
      if (doc) collection.documents._set(doc);
    }
    return body.map((_: unknown, i: number) =>
      i === failedAt ? { statusCode: results[i].statusCode, requestCharge: 0 } : { statusCode: 424, requestCharge: 0 },
    );
  }
  return results.map((r) => ({ statusCode: r.statusCode, requestCharge: 1, eTag: r.body?._etag, resourceBody: r.body }));
}

function kindOf(req: IncomingMessage): RequestKind {
  const h = req.headers;
  if (h["x-ms-cosmos-is-batch-request"] === "True" || h["x-ms-cosmos-is-batch-request"] === "true") return "batch";
  if (h["x-ms-cosmos-is-query-plan-request"] === "True" || h["x-ms-cosmos-is-query-plan-request"] === "true") return "queryPlan";
  if (h["x-ms-documentdb-isquery"] === "True" || h["x-ms-documentdb-isquery"] === "true") return "query";
  const isDoc = /\/docs\/[^/]+$/.test((req.url ?? "").split("?")[0] ?? "");
  if (req.method === "GET") return isDoc ? "read" : "metadata";
  return /\/docs(\/|$)/.test(req.url ?? "") ? "write" : "metadata";
}

interface Snapshot {
  databases: { meta: any; collections: { meta: any; docs: any[] }[] }[];
}

const SYSTEM = ["_rid", "_self", "_etag", "_ts", "_docs", "_sprocs", "_triggers", "_udfs", "_conflicts"];
const withoutSystem = (o: any) => Object.fromEntries(Object.entries(o).filter(([k]) => !SYSTEM.includes(k)));

function dump(account: any): Snapshot {
  const databases = [...account.databases._data.values()].map((dbItem: any) => {
    const meta = dbItem.read();
    const db = account.database(meta.id);
    const collections = [...db.collections._data.values()].map((collItem: any) => {
      const cmeta = collItem.read();
      const docs = [...db.collection(cmeta.id).documents._data.values()].map((d: any) => d.read());
      return { meta: withoutSystem(cmeta), docs };
    });
    return { meta: withoutSystem(meta), collections };
  });
  return { databases };
}

function restore(account: any, snapshot: Snapshot): void {
  for (const db of snapshot.databases) {
    account.databases.create(db.meta);
    const database = account.database(db.meta.id);
    for (const coll of db.collections) {
      database.collections.create(coll.meta);
      const documents = database.collection(coll.meta.id).documents;
      for (const doc of coll.docs) {
        // create() assigns fresh system fields; keep the stored ETag and timestamp so
        // clients' If-Match values stay valid across a restart.
        const stored = documents.create(withoutSystem(doc));
        stored._etag = doc._etag;
        stored._ts = doc._ts;
      }
    }
  }
}

export async function startEmbeddedCosmos(opts: { dataDir?: string; port?: number; persistDebounceMs?: number } = {}): Promise<EmbeddedCosmos> {
  const { Account, routes } = loadPackage();
  const counts: Record<RequestKind, number> = { read: 0, query: 0, queryPlan: 0, batch: 0, write: 0, metadata: 0 };
  let account: any;
  const snapshotFile = opts.dataDir ? join(opts.dataDir, "cosmos.json") : undefined;
  let dirty = false;
  let timer: NodeJS.Timeout | undefined;

  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (!dirty || !snapshotFile || !account) return;
    dirty = false;
    const tmp = `${snapshotFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(dump(account)));
    renameSync(tmp, snapshotFile);
  };
  const markDirty = () => {
    dirty = true;
    timer ??= setTimeout(flush, opts.persistDebounceMs ?? 200);
  };

  const server: Server = createServer({ keepAlive: true }, (req, res) => {
    const kind = kindOf(req);
    counts[kind] += 1;
    const route = routes(req);
    void (async () => {
      let body: any;
      if (route) {
        const [params, handler] = route;
        try {
          body = await handler(account, req, res, params);
        } catch (err) {
          body = { message: (err as Error).message };
          res.statusCode = 500;
        }
        if (res.statusCode > 399 && body && !body.message) body.message = "";
      } else {
        res.statusCode = 400;
        body = { message: "no route" };
      }
      if (body?._etag) res.setHeader("etag", body._etag);
      res.setHeader("content-type", "application/json");
      res.setHeader("x-ms-activity-id", randomUUID());
      res.setHeader("x-ms-request-charge", "1");
      if (req.headers["a-im"] && res.statusCode === 200) {
        if (req.headers["if-none-match"]) res.statusCode = 304;
        res.setHeader("etag", "1");
      }
      if (res.statusCode < 400 && req.method !== "GET" && kind !== "query" && kind !== "queryPlan") markDirty();
      res.end(JSON.stringify(body));
    })().catch(() => {
      if (!res.writableEnded) {
        res.statusCode = 500;
        res.end("");
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  account = new Account("127.0.0.1", port);
  // The account advertises https locations; clients connect with endpoint discovery off.
  if (snapshotFile) {
    mkdirSync(opts.dataDir!, { recursive: true });
    if (existsSync(snapshotFile)) restore(account, JSON.parse(readFileSync(snapshotFile, "utf8")) as Snapshot);
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    key: "local-embedded-server-accepts-any-key",
    counts,
    resetCounts: () => {
      for (const k of Object.keys(counts) as RequestKind[]) counts[k] = 0;
    },
    flush,
    close: async () => {
      flush();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
