/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-require-imports --
   this file adapts the untyped internals of @vercel/cosmosdb-server, a local test double. */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import {
  JOURNAL_FILE,
  SNAPSHOT_FILE,
  type JournalLine,
  type Snapshot,
  type StoredEntry,
  StoreDamagedError,
  parseSnapshot,
  repairCommand,
  splitJournal,
} from "./cosmos-files.js";

export { StoreDamagedError } from "./cosmos-files.js";

/**
 * The embedded, Cosmos-wire-compatible server behind `npm start` and the tests.
 *
 * It wraps @vercel/cosmosdb-server with three things the package lacks:
 *  - atomic transactional batches (the package applies the operations before a failing one);
 *  - persistence under the data directory: every document change is appended to a journal before the
 *    request that made it is answered (cost proportional to the change, not to the data; no fsync, so it
 *    survives a killed process, not a power cut), folded into a snapshot at start and close. A store it
 *    cannot read completely is never opened (StoreDamagedError: file, line, `npm run store:repair`), and
 *    compaction never discards journal content this server did not read or write itself;
 *  - request counting by kind, so tests can prove how many round trips an API call costs.
 */
/** queryPlan: the SDK's query-plan lookup, which it starts beside every query page (it does not wait for it on single-partition queries). */
export type RequestKind = "read" | "query" | "queryPlan" | "batch" | "write" | "metadata";

export interface EmbeddedCosmos {
  endpoint: string;
  key: string;
  /** Requests served since start (or the last reset), by kind. */
  counts(): Record<RequestKind, number>;
  resetCounts(): void;
  close(): Promise<void>;
}

export interface EmbeddedCosmosOptions {
  dataDir?: string;
  port?: number;
  /**
   * "worker": serve from a worker thread of this process, so the store and the app each get a core
   * (`npm start` uses it: measured ~3× the API throughput of sharing one thread). Needs the compiled
   * module; from TypeScript sources (vitest) it falls back to "same".
   */
  thread?: "same" | "worker";
}

const KINDS: RequestKind[] = ["read", "query", "queryPlan", "batch", "write", "metadata"];
const countsOf = (shared: Int32Array) => Object.fromEntries(KINDS.map((k, i) => [k, Atomics.load(shared, i)])) as Record<RequestKind, number>;

const PKG = "@vercel/cosmosdb-server/lib";

function loadPackage(): { Account: any; routes: (req: IncomingMessage) => any } {
  // Replace the batch handler before routes.js captures it.
  const batchModule = require(`${PKG}/handler/batch-documents`);
  if (!batchModule.__aigovAtomic) {
    batchModule.default = atomicBatch;
    batchModule.__aigovAtomic = true;
  }
  // Hierarchical partition keys: the package knows only the first path of a key (and the first value of
  // a key header), so two documents with the same id in [tenant, scopeA] and [tenant, scopeB] would be
  // one document — unlike Cosmos DB, where an id is unique per full logical partition key. Here the
  // partition of a document and of a request is the JSON of all its key values.
  const pkUtil = require(`${PKG}/utils/get-partition-from-header`);
  if (!pkUtil.__aigovHierarchical) {
    const parse = pkUtil.parsePartitionKey;
    pkUtil.parsePartitionKey = (partitionKey: string, defaultValue: unknown) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(partitionKey);
      } catch {
        return parse(partitionKey, defaultValue);
      }
      return Array.isArray(parsed) && parsed.length > 1 ? JSON.stringify(parsed) : parse(partitionKey, defaultValue);
    };
    const Items = require(`${PKG}/account/items`).default;
    const partitionOfDoc = Items.prototype._getPartition;
    Items.prototype._getPartition = function (this: { _partitionKeyPath: string[] }, data: any) {
      if (this._partitionKeyPath.length < 2) return partitionOfDoc.call(this, data);
      return JSON.stringify(this._partitionKeyPath.map((path) => path.slice(1).split("/").reduce((v: any, k) => (v === null || v === undefined ? undefined : v[k]), data)));
    };
    pkUtil.__aigovHierarchical = true;
  }
  const Documents = require(`${PKG}/account/documents`).default;
  if (!Documents.prototype.__aigovJournal) {
    const set = Documents.prototype._set;
    const del = Documents.prototype.delete;
    Documents.prototype._set = function (data: any) {
      const result = set.call(this, data);
      partitionOf(this, this._getPartition(data)).set(data._rid, data);
      if (data.docType !== undefined) {
        docTypeOf(this, data.docType).set(data._rid, data);
        partitionTypeOf(this, this._getPartition(data), data.docType).set(data._rid, data);
      }
      for (const hook of journalHooks) hook(this, { op: "set", doc: data });
      return result;
    };
    Documents.prototype.delete = function (idOrRid: string, partition: unknown) {
      const data = this._item("/id", idOrRid, partition).read();
      const result = del.call(this, idOrRid, partition);
      if (data) {
        partitionOf(this, this._getPartition(data)).delete(data._rid);
        if (data.docType !== undefined) {
          docTypeOf(this, data.docType).delete(data._rid);
          partitionTypeOf(this, this._getPartition(data), data.docType).delete(data._rid);
        }
        for (const hook of journalHooks) hook(this, { op: "del", id: data.id, pk: partition });
      }
      return result;
    };
    Documents.prototype.__aigovJournal = true;
  }
  return { Account: require(`${PKG}/account`).default, routes: require(`${PKG}/routes`).default };
}

/**
 * The package's helpers the handlers below use, required once: a require() on every query or batch
 * resolved the path again each time (the nearest package.json looked up on disk), a measurable share of
 * a query's cost. `parsePartitionKey` reads the module's export at call time: loadPackage replaces it.
 */
let helpers: { readItems: any; json: any; ops: any; parsePartitionKey: (partitionKey: string, defaultValue?: unknown) => any } | undefined;
function packageHelpers(): NonNullable<typeof helpers> {
  if (!helpers) {
    const pkUtil = require(`${PKG}/utils/get-partition-from-header`);
    helpers = {
      readItems: require(`${PKG}/handler/_read-items`).default,
      json: require(`${PKG}/json`).default,
      ops: require(`${PKG}/handler/_document-operations`),
      parsePartitionKey: (partitionKey, defaultValue) => pkUtil.parsePartitionKey(partitionKey, defaultValue),
    };
  }
  return helpers;
}

/**
 * Two indexes the package lacks (it interprets every query over every document of a container):
 * documents by (full, hierarchical) partition key, so a partition-scoped query reads one partition as in
 * Cosmos DB; and by `docType`, the discriminator our store adapter puts in every query, so a
 * cross-partition query (the outbox relay's) reads only the documents of its type; and both together,
 * so a partition-scoped query of one type (a project's models, beside thousands of its keys, audit
 * records and outbox events) does not read the whole partition — Cosmos DB answers it from its index.
 */
type Index = WeakMap<object, Map<unknown, Map<string, any>>>;
const byPartition: Index = new WeakMap();
const byDocType: Index = new WeakMap();
function bucket(index: Index, documents: object, key: unknown): Map<string, any> {
  let keys = index.get(documents);
  if (!keys) index.set(documents, (keys = new Map()));
  let docs = keys.get(key);
  if (!docs) keys.set(key, (docs = new Map()));
  return docs;
}
const partitionOf = (documents: object, pk: unknown) => bucket(byPartition, documents, pk);
const docTypeOf = (documents: object, docType: unknown) => bucket(byDocType, documents, docType);
const byPartitionType: Index = new WeakMap();
const partitionTypeOf = (documents: object, pk: unknown, docType: unknown) => bucket(byPartitionType, documents, JSON.stringify([pk, docType]));

/**
 * Query handler that honours the partition-key header like Cosmos DB does (the package ignores it and
 * scans the whole container): a single-partition query reads only that partition's documents.
 */
async function scopedQuery(account: any, req: IncomingMessage, res: ServerResponse, { dbId, collId }: any) {
  const { readItems, json, parsePartitionKey } = packageHelpers();
  return readItems(req, res, "Documents", async ({ continuation, maxItemCount }: any) => {
    const body = await json(req);
    // The package reads a token it cannot parse as none (the first page again); Cosmos DB refuses it.
    if (req.headers["x-ms-continuation"] !== undefined && (continuation === null || typeof continuation !== "object")) {
      res.statusCode = 400;
      return { code: "BadRequest", message: "Invalid Continuation Token" };
    }
    if (!body.query) {
      res.statusCode = 400;
      return { message: "missing query" };
    }
    const collection = account.database(dbId).collection(collId);
    const meta = collection.read();
    if (!meta) return null;
    const documents = collection.documents;
    const header = req.headers["x-ms-documentdb-partitionkey"];
    const docType = (body.parameters as { name: string; value: unknown }[] | undefined)?.find((p) => p.name === "@docType")?.value;
    const typed = docType !== undefined && /c\.docType = @docType/.test(body.query);
    const data =
      typeof header === "string"
        ? [...(typed ? partitionTypeOf(documents, parsePartitionKey(header), docType) : partitionOf(documents, parsePartitionKey(header))).values()]
        : typed
          ? [...docTypeOf(documents, docType).values()]
          : [...documents._data.values()].map((item: any) => item.read());
    try {
      return linear(documents._getQuery(body.query)).exec(data, {
        parameters: body.parameters,
        udf: documents._userDefinedFunctions(),
        maxItemCount,
        continuation,
        compositeIndexes: meta.indexingPolicy?.compositeIndexes ?? [],
      });
    } catch (err) {
      res.statusCode = 400;
      return { message: (err as Error).message };
    }
  });
}

/**
 * The package's generated query code gathers the documents with `reduce((acc, c) => [...acc, { c }], [])`,
 * which copies the array once per document: quadratic (a partition of 50,000 documents took ~20 s a
 * query). The same gathering, linear; applied once per cached query, and only where the code has that
 * exact shape (anything else runs as generated).
 */
const QUADRATIC_GATHER = /\$c\.reduce\(\(\$, c\) => typeof c !== "undefined" \? \[\.\.\.\$, \{\s*c: c\s*\}\] : \$, \[\]\)/;
const linearized = new WeakSet<object>();
function linear<Q extends { code: string; _code?: string | null }>(query: Q): Q {
  if (linearized.has(query)) return query;
  linearized.add(query);
  const code = query.code;
  if (QUADRATIC_GATHER.test(code)) query._code = code.replace(QUADRATIC_GATHER, '$c.filter((c) => typeof c !== "undefined").map((c) => ({ c: c }))');
  return query;
}

/**
 * The SDK asks for a query plan beside every query page. The package answered that by running the
 * query over the whole container (and the SDK ignored the result). With one partition key range the
 * plan never changes how a query runs here, so answer with the trivial plan, cheaply.
 */
async function queryPlan() {
  return {
    partitionedQueryExecutionInfoVersion: 2,
    queryInfo: {
      distinctType: "None", top: null, offset: null, limit: null, orderBy: [], orderByExpressions: [],
      groupByExpressions: [], groupByAliases: [], aggregates: [], groupByAliasToAggregateType: {},
      rewrittenQuery: "", hasSelectValue: false, dCountInfo: null, hasNonStreamingOrderBy: false,
    },
    queryRanges: [{ min: "", max: "FF", isMinInclusive: true, isMaxInclusive: false }],
  };
}

type JournalEntry = { op: "set"; doc: any } | { op: "del"; id: string; pk: unknown };
/** One per running server: each journals the changes of its own account's documents. */
const journalHooks = new Set<(documents: any, entry: JournalEntry) => void>();

async function atomicBatch(account: any, req: IncomingMessage, res: ServerResponse, { dbId, collId }: any) {
  const { json, ops, parsePartitionKey } = packageHelpers();
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

const SYSTEM = ["_rid", "_self", "_etag", "_ts", "_docs", "_sprocs", "_triggers", "_udfs", "_conflicts"];
const withoutSystem = (o: any) => Object.fromEntries(Object.entries(o).filter(([k]) => !SYSTEM.includes(k)));

function dump(account: any, opts: { withDocuments: boolean } = { withDocuments: true }): Snapshot {
  const databases = [...account.databases._data.values()].map((dbItem: any) => {
    const meta = dbItem.read();
    const db = account.database(meta.id);
    const collections = [...db.collections._data.values()].map((collItem: any) => {
      const cmeta = collItem.read();
      const docs = opts.withDocuments ? [...db.collection(cmeta.id).documents._data.values()].map((d: any) => d.read()) : [];
      return { meta: withoutSystem(cmeta), docs };
    });
    return { meta: withoutSystem(meta), collections };
  });
  return { databases };
}

function putDocument(documents: any, doc: any): void {
  // create() assigns fresh system fields; keep the stored ETag and timestamp so
  // clients' If-Match values stay valid across a restart.
  const stored = documents.create(withoutSystem(doc));
  stored._etag = doc._etag;
  stored._ts = doc._ts;
}

/** Applies one journal entry; returns why it cannot be applied, or undefined. */
function apply(account: any, e: StoredEntry): string | undefined {
  if (e.op === "group") {
    for (const inner of e.entries) {
      const problem = apply(account, inner);
      if (problem) return problem;
    }
    return undefined;
  }
  if (e.op === "schema") {
    for (const db of e.databases) {
      if (!account.database(db.meta.id).read()) account.databases.create(db.meta);
      const database = account.database(db.meta.id);
      for (const c of db.collections) if (!database.collection(c.meta.id).read()) database.collections.create(c.meta);
    }
    return undefined;
  }
  const coll = account.database(e.d).collection(e.c);
  if (!coll?.read()) return `cannot be applied: it changes container ${e.d}/${e.c}, which neither the snapshot nor an earlier journal line defines`;
  const documents = coll.documents;
  try {
    if (e.op === "del") {
      if (coll.document(e.id, e.pk).read()) documents.delete(e.id, e.pk);
    } else {
      const pk = documents._getPartition(e.doc);
      if (coll.document(e.doc.id, pk).read()) documents.delete(e.doc.id, pk);
      putDocument(documents, e.doc);
    }
  } catch (err) {
    return `cannot be applied: ${(err as Error).message}`;
  }
  return undefined;
}

function restore(account: any, snapshot: Snapshot): void {
  for (const db of snapshot.databases) {
    account.databases.create(db.meta);
    const database = account.database(db.meta.id);
    for (const coll of db.collections) {
      database.collections.create(coll.meta);
      const documents = database.collection(coll.meta.id).documents;
      for (const doc of coll.docs) putDocument(documents, doc);
    }
  }
}

/**
 * Loads a snapshot and the journal lines written after it into an account, in order. Returns the lines
 * that could not be used (unreadable, or not applicable), having applied every other one; torn tails
 * (see splitJournal) are skipped. Throws when the snapshot itself cannot be restored.
 */
export function loadStore(account: any, snapshot: Snapshot | undefined, lines: JournalLine[]): JournalLine[] {
  if (snapshot) restore(account, snapshot);
  const bad: JournalLine[] = [];
  for (const line of lines) {
    if (line.torn) continue;
    if (line.problem) {
      bad.push(line);
      continue;
    }
    if (!line.entry) continue; // a blank line
    const problem = apply(account, line.entry);
    if (problem) bad.push({ ...line, problem });
  }
  return bad;
}

/** An empty in-memory account of the package (no server), e.g. for a repair's dry run. */
export function newAccount(): any {
  const { Account } = loadPackage();
  return new Account("127.0.0.1", 0);
}

/** The documents of every container of an account, with their container's definition. */
export function documentsOf(account: any): { db: string; container: string; meta: any; docs: any[] }[] {
  return dump(account).databases.flatMap((db) => db.collections.map((c) => ({ db: db.meta.id as string, container: c.meta.id as string, meta: c.meta, docs: c.docs })));
}

function damagedJournalMessage(dataDir: string, file: string, bad: JournalLine[]): string {
  const shown = bad.slice(0, 5).map((l) => `line ${l.no}: ${l.problem}`);
  if (bad.length > 5) shown.push(`and ${bad.length - 5} more`);
  const what =
    bad.length === 1
      ? `line ${bad[0]!.no} is unusable (${bad[0]!.problem})`
      : `lines ${bad.map((l) => l.no).slice(0, 20).join(", ")}${bad.length > 20 ? ", …" : ""} are unusable (${shown.join("; ")})`;
  return (
    `The embedded Cosmos store in ${dataDir} was not opened: ${file} ${what}. ` +
    "Nothing was changed or deleted. Opening it would silently lose the documents those lines hold.\n" +
    "Move the damaged lines to a quarantine file beside the store, keep every readable line and list the documents affected with:\n" +
    `  ${repairCommand(dataDir)}`
  );
}

function damagedSnapshotMessage(dataDir: string, file: string, problem: string): string {
  return (
    `The embedded Cosmos store in ${dataDir} was not opened: the snapshot ${file} is unreadable (${problem}). ` +
    "Nothing was changed or deleted.\n" +
    "Move it to a quarantine file beside the store, keep what can still be read of it and of the journal, and list the documents affected with:\n" +
    `  ${repairCommand(dataDir)}`
  );
}

/** Reads the store's files into the account, or throws StoreDamagedError. Returns the journal's length in bytes and its torn tail, if any. */
function openStore(account: any, dataDir: string): { journalBytes: number; torn?: JournalLine } {
  const snapshotFile = join(dataDir, SNAPSHOT_FILE);
  const journalFile = join(dataDir, JOURNAL_FILE);
  let snapshot: Snapshot | undefined;
  if (existsSync(snapshotFile)) {
    const parsed = parseSnapshot(readFileSync(snapshotFile, "utf8"));
    if ("problem" in parsed) throw new StoreDamagedError(damagedSnapshotMessage(dataDir, snapshotFile, parsed.problem), snapshotFile);
    snapshot = parsed.snapshot;
  }
  const bytes = existsSync(journalFile) ? readFileSync(journalFile) : Buffer.alloc(0);
  const lines = splitJournal(bytes.toString("utf8"));
  let bad: JournalLine[];
  try {
    bad = loadStore(account, snapshot, lines);
  } catch (err) {
    throw new StoreDamagedError(damagedSnapshotMessage(dataDir, snapshotFile, `it cannot be restored: ${(err as Error).message}`), snapshotFile);
  }
  if (bad.length > 0) throw new StoreDamagedError(damagedJournalMessage(dataDir, journalFile, bad), journalFile, bad.map((l) => l.no));
  const torn = lines.find((l) => l.torn);
  return { journalBytes: bytes.length, ...(torn ? { torn } : {}) };
}

export async function startEmbeddedCosmos(opts: EmbeddedCosmosOptions = {}): Promise<EmbeddedCosmos> {
  const shared = new Int32Array(new SharedArrayBuffer(4 * KINDS.length));
  if (opts.thread === "worker" && __filename.endsWith(".js")) return startInWorker(opts, shared);
  const server = await serve(opts, shared);
  return {
    endpoint: server.endpoint,
    key: LOCAL_KEY,
    counts: () => countsOf(shared),
    resetCounts: () => shared.fill(0),
    close: server.close,
  };
}

const LOCAL_KEY = "local-embedded-server-accepts-any-key";

/** A timestamp for file names: 20250102T030405Z. */
const stamp = () => new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");

async function startInWorker(opts: EmbeddedCosmosOptions, shared: Int32Array): Promise<EmbeddedCosmos> {
  const worker = new Worker(__filename, { workerData: { aigovEmbeddedCosmos: { ...opts, thread: "same" }, shared } });
  const endpoint = await new Promise<string>((resolve, reject) => {
    worker.once("message", (m: { endpoint?: string; error?: string }) => (m.endpoint ? resolve(m.endpoint) : reject(new Error(m.error))));
    worker.once("error", reject);
  });
  return {
    endpoint,
    key: LOCAL_KEY,
    counts: () => countsOf(shared),
    resetCounts: () => shared.fill(0),
    close: async () => {
      const closed = new Promise((resolve) => worker.once("message", resolve));
      worker.postMessage("close");
      await closed; // the worker has written its snapshot
      await worker.terminate();
    },
  };
}

// Worker entry point: serve, report the endpoint, close (compacting the journal) when told to.
if (!isMainThread && (workerData as { aigovEmbeddedCosmos?: unknown } | null)?.aigovEmbeddedCosmos) {
  const data = workerData as { aigovEmbeddedCosmos: EmbeddedCosmosOptions; shared: Int32Array };
  serve(data.aigovEmbeddedCosmos, data.shared).then(
    (server) => {
      parentPort!.postMessage({ endpoint: server.endpoint });
      parentPort!.on("message", (m) => {
        if (m === "close") void server.close().then(() => parentPort!.postMessage("closed"));
      });
    },
    (err: unknown) => parentPort!.postMessage({ error: err instanceof Error ? err.message : String(err) }),
  );
}

async function serve(opts: EmbeddedCosmosOptions, shared: Int32Array): Promise<{ endpoint: string; close(): Promise<void> }> {
  const { Account, routes } = loadPackage();
  const routeQuery = (req: IncomingMessage) => {
    const m = /^\/dbs\/([^/]+)\/colls\/([^/]+)\/docs$/.exec((req.url ?? "").split("?")[0] ?? "");
    return m ? [{ dbId: decodeURIComponent(m[1]!), collId: decodeURIComponent(m[2]!) }, scopedQuery] : routes(req);
  };
  let account: any;
  const snapshotFile = opts.dataDir ? join(opts.dataDir, SNAPSHOT_FILE) : undefined;
  const journalFile = opts.dataDir ? join(opts.dataDir, JOURNAL_FILE) : undefined;
  const where = new WeakMap<object, [string, string]>();
  /** Serialised entries (no newline) not yet appended. */
  let pending: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  /**
   * The journal's length as this server knows it: what it read at start plus what it appended since.
   * All of it is in memory, so compaction may fold it into the snapshot and empty the file. When the file
   * is longer or shorter (another process appended to it, compacted it, or someone edited it), compaction
   * refuses: it would discard content this server never read.
   */
  let journalBytes = 0;

  const locate = (documents: any): [string, string] | undefined => {
    let found = where.get(documents);
    if (!found) {
      for (const dbItem of account.databases._data.values()) {
        const db = account.database(dbItem.read().id);
        for (const collItem of db.collections._data.values()) {
          const coll = db.collection(collItem.read().id);
          where.set(coll.documents, [dbItem.read().id, collItem.read().id]);
        }
      }
      found = where.get(documents);
    }
    return found;
  };
  const compact = () => {
    if (!snapshotFile || !journalFile || !account) return;
    const size = existsSync(journalFile) ? statSync(journalFile).size : 0;
    if (size !== journalBytes) {
      throw new Error(
        `not compacting the embedded Cosmos store: ${journalFile} holds ${size} bytes, but this server read or wrote ${journalBytes}. ` +
          "Something else changed it, and compacting would discard what this server never read; the snapshot and the journal are left as they are, and the next start replays the journal.",
      );
    }
    const tmp = `${snapshotFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(dump(account)));
    renameSync(tmp, snapshotFile);
    writeFileSync(journalFile, "");
    journalBytes = 0;
  };
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (!journalFile) return;
    // No compaction while serving: it would stall the server for as long as the whole data takes to
    // serialise. The journal is folded into the snapshot at start and at close.
    if (pending.length === 0) return;
    // One line per append: the changes of a batch (and of any request answered with it) are applied
    // together or, when a crash tears the line, not at all (see splitJournal).
    const text = pending.length === 1 ? `${pending[0]}\n` : `{"op":"group","entries":[${pending.join(",")}]}\n`;
    try {
      appendFileSync(journalFile, text);
    } catch (err) {
      // A partial append (disk full) must not stay: the next one would be glued to it into a damaged line.
      // The request fails (500): its change was not acknowledged, and is retried with the next append.
      try {
        truncateSync(journalFile, journalBytes);
      } catch {
        // the journal keeps an incomplete last line: a torn tail, ignored at the next start
      }
      throw err;
    }
    journalBytes += Buffer.byteLength(text);
    pending = [];
  };
  const schedule = () => {
    timer ??= setTimeout(() => {
      try {
        flush();
      } catch (err) {
        console.error(`embedded Cosmos: appending to ${journalFile} failed: ${(err as Error).message}`);
      }
    }, 100);
  };
  let replaying = false;
  const journal = (documents: any, entry: JournalEntry) => {
    if (replaying) return;
    const at = locate(documents);
    if (!at) return; // another server's account
    pending.push(JSON.stringify({ d: at[0], c: at[1], ...entry }));
    schedule();
  };
  /** Databases and containers are journaled as a whole (they are few and rarely change). */
  const journalSchema = () => {
    if (!journalFile) return;
    pending.push(JSON.stringify({ op: "schema", databases: dump(account, { withDocuments: false }).databases }));
    schedule();
  };

  const server: Server = createServer({ keepAlive: true }, (req, res) => {
    const kind = kindOf(req);
    Atomics.add(shared, KINDS.indexOf(kind), 1);
    const isDocs = /\/docs$/.test((req.url ?? "").split("?")[0] ?? "");
    const route = kind === "queryPlan" && isDocs ? [{}, queryPlan] : kind === "query" && isDocs ? routeQuery(req) : routes(req);
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
      if (res.statusCode < 400 && kind === "metadata" && req.method !== "GET") journalSchema();
      // Journaled before acknowledged: a write the client saw succeed survives the process being killed
      // (one append per request that changed something; reads find nothing pending).
      flush();
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
    // The SDK keeps connections open and reuses them; Node closes an idle one after 5 s by default,
    // and a request sent on a socket just as the server closes it fails with ECONNRESET — which the SDK
    // does not retry for a transactional batch. Cosmos DB keeps idle connections far longer.
    server.keepAliveTimeout = 10 * 60_000;
    server.headersTimeout = 10 * 60_000 + 1000;
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  account = new Account("127.0.0.1", port);
  // The account advertises https locations; clients connect with endpoint discovery off.
  if (snapshotFile && journalFile) {
    try {
      mkdirSync(opts.dataDir!, { recursive: true });
      replaying = true;
      const opened = openStore(account, opts.dataDir!);
      replaying = false;
      journalBytes = opened.journalBytes;
      if (opened.torn) {
        // Not damage (see splitJournal): a crash interrupted that append, so it was never acknowledged.
        // Compaction below drops it from the journal; a copy is kept, so nothing is deleted unseen.
        let copy = `${journalFile}.torn-${stamp()}`;
        for (let i = 1; existsSync(copy); i++) copy = `${journalFile}.torn-${stamp()}-${i}`;
        writeFileSync(copy, opened.torn.text);
        console.warn(`embedded Cosmos: ignored the incomplete last line ${opened.torn.no} of ${journalFile} (a write interrupted by a crash, never acknowledged); copied to ${copy}`);
      }
      compact();
    } catch (err) {
      replaying = false;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw err;
    }
    journalHooks.add(journal);
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: async () => {
      try {
        flush();
        compact();
      } catch (err) {
        console.error(`embedded Cosmos: ${(err as Error).message}`);
      }
      journalHooks.delete(journal);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
