/* eslint-disable @typescript-eslint/no-explicit-any -- stored documents are arbitrary JSON */
/**
 * The embedded Cosmos server's files under the data directory, read without the server:
 *  - `cosmos.json`, the snapshot (every database, container and document, written at start and close);
 *  - `cosmos.journal.ndjson`, the journal: one line per append, each appended before the request that
 *    made the change is answered, folded into the snapshot at the next start or close.
 *
 * Nothing here changes a file. The server refuses to open a store whose files it cannot read
 * (`StoreDamagedError`, naming the file, the line and the repair command); `npm run store:repair`
 * (src/local-app/store-repair.ts) moves the damaged part aside and keeps the rest.
 */
import { join } from "node:path";

export const SNAPSHOT_FILE = "cosmos.json";
export const JOURNAL_FILE = "cosmos.journal.ndjson";

export interface Snapshot {
  databases: { meta: any; collections: { meta: any; docs: any[] }[] }[];
}

export type DocEntry = { d: string; c: string } & ({ op: "set"; doc: any } | { op: "del"; id: string; pk?: unknown });
export type SchemaEntry = { op: "schema"; databases: Snapshot["databases"] };
/** Everything one append wrote (several changes, e.g. a transactional batch): applied whole or not at all. */
export type GroupEntry = { op: "group"; entries: (DocEntry | SchemaEntry)[] };
export type StoredEntry = DocEntry | SchemaEntry | GroupEntry;

export interface JournalLine {
  /** 1-based line number in the journal file. */
  no: number;
  /** The line's text, without its newline. */
  text: string;
  /** Present when the line is readable. */
  entry?: StoredEntry;
  /** Why the line cannot be used (unreadable, or it cannot be applied). */
  problem?: string;
  /** The incomplete final line a crash leaves behind (no newline): never acknowledged, see splitJournal. */
  torn?: boolean;
}

/** The command that repairs the store in dataDir, as an operator types it. */
export function repairCommand(dataDir: string): string {
  const quoted = /^[\w@%+=:,./-]+$/.test(dataDir) ? dataDir : `'${dataDir.replace(/'/g, `'\\''`)}'`;
  return `npm run store:repair -- ${quoted}`;
}

/** The server will not open a store it cannot read completely: this says what, where, and how to repair it. */
export class StoreDamagedError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly lines: number[] = [],
  ) {
    super(message);
    this.name = "StoreDamagedError";
  }
}

const isObject = (v: unknown): v is Record<string, any> => typeof v === "object" && v !== null && !Array.isArray(v);

function docEntryProblem(e: Record<string, any>): string | undefined {
  if (typeof e.d !== "string" || typeof e.c !== "string") return "names no database and container";
  if (e.op === "set") return isObject(e.doc) && typeof e.doc.id === "string" ? undefined : "a write without a document id";
  if (e.op === "del") return typeof e.id === "string" ? undefined : "a delete without a document id";
  return `unknown operation ${JSON.stringify(e.op)}`;
}

function schemaProblem(databases: unknown): string | undefined {
  if (!Array.isArray(databases)) return "no list of databases";
  for (const db of databases) {
    if (!isObject(db) || !isObject(db.meta) || typeof db.meta.id !== "string") return "a database without an id";
    if (!Array.isArray(db.collections)) return `database ${db.meta.id}: no list of containers`;
    for (const c of db.collections) if (!isObject(c) || !isObject(c.meta) || typeof c.meta.id !== "string") return `database ${db.meta.id}: a container without an id`;
  }
  return undefined;
}

/** Why a parsed journal line is not an entry this server wrote, or undefined when it is one. */
export function entryProblem(e: unknown): string | undefined {
  if (!isObject(e)) return "not a JSON object";
  if (e.op === "schema") return schemaProblem(e.databases);
  if (e.op === "group") {
    if (!Array.isArray(e.entries)) return "a group without entries";
    for (const inner of e.entries) {
      if (!isObject(inner) || inner.op === "group") return "a group holding something other than changes";
      const p = inner.op === "schema" ? schemaProblem(inner.databases) : docEntryProblem(inner);
      if (p) return p;
    }
    return undefined;
  }
  return docEntryProblem(e);
}

/**
 * The journal's lines, each parsed and checked. A complete line (one that ends with a newline) that is not
 * an entry is damage: `problem` says why, and the server refuses to open the store.
 *
 * Torn tail: every append ends with a newline, and a request is answered only after its append returned.
 * A final line without its newline is therefore an append that a crash (kill -9, power cut) interrupted:
 * none of the writes in it were acknowledged, and each append is one line (a batch's changes share it), so
 * ignoring the whole line loses nothing a client was told was saved and never applies half a batch. It is
 * marked `torn`, not damaged, whether or not its text happens to parse.
 */
export function splitJournal(text: string): JournalLine[] {
  const parts = text.split("\n");
  const last = parts.pop() ?? "";
  const lines: JournalLine[] = parts.map((t, i) => {
    const line: JournalLine = { no: i + 1, text: t };
    if (t.trim() === "") return line; // blank: nothing to apply
    let value: unknown;
    try {
      value = JSON.parse(t);
    } catch (err) {
      line.problem = `unreadable: not JSON (${(err as Error).message})`;
      return line;
    }
    const problem = entryProblem(value);
    if (problem) line.problem = `unreadable: ${problem}`;
    else line.entry = value as StoredEntry;
    return line;
  });
  if (last !== "") lines.push({ no: parts.length + 1, text: last, torn: true });
  return lines;
}

/** Why a parsed snapshot is not one this server wrote, or undefined when it is one. */
export function snapshotProblem(s: unknown): string | undefined {
  if (!isObject(s)) return "not a JSON object";
  const p = schemaProblem(s.databases);
  if (p) return p;
  for (const db of s.databases as any[]) {
    for (const c of db.collections) {
      if (!Array.isArray(c.docs)) return `container ${db.meta.id}/${c.meta.id}: no list of documents`;
      if (c.docs.some((d: unknown) => !isObject(d) || typeof d.id !== "string")) return `container ${db.meta.id}/${c.meta.id}: a document without an id`;
    }
  }
  return undefined;
}

export function parseSnapshot(text: string): { snapshot: Snapshot } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { problem: `not JSON (${(err as Error).message})` };
  }
  const problem = snapshotProblem(value);
  return problem ? { problem } : { snapshot: value as Snapshot };
}

// ---------------------------------------------------------------------------------------------
// Salvage and recognition, for the repair: best effort over text that no longer parses.

/** End (exclusive) of the JSON value starting at s[i], or -1 when it is incomplete. Does not validate. */
function valueEnd(s: string, i: number): number {
  const c = s[i];
  if (c === '"') {
    for (let j = i + 1; j < s.length; j++) {
      if (s[j] === "\\") j++;
      else if (s[j] === '"') return j + 1;
    }
    return -1;
  }
  if (c === "{" || c === "[") {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      const ch = s[j];
      if (ch === '"') {
        const end = valueEnd(s, j);
        if (end < 0) return -1;
        j = end - 1;
      } else if (ch === "{" || ch === "[") depth++;
      else if ((ch === "}" || ch === "]") && --depth === 0) return j + 1;
    }
    return -1;
  }
  let j = i;
  while (j < s.length && !",]} \t\r\n".includes(s[j]!)) j++;
  return j > i && j < s.length ? j : -1; // a number at the very end may have lost digits
}

class Stop extends Error {}

/** A reader of the snapshot's known shape that keeps everything complete before the first damage. */
class Salvager {
  i = 0;
  /** Reading stopped because the text ended (a truncated file) rather than at damaged text. */
  ended = false;
  constructor(readonly s: string) {}
  stop(): never {
    this.ws();
    if (this.i >= this.s.length || valueEnd(this.s, this.i) < 0) this.ended = true;
    throw new Stop();
  }
  ws(): void {
    while (this.i < this.s.length && " \t\r\n".includes(this.s[this.i]!)) this.i++;
  }
  eat(ch: string): boolean {
    this.ws();
    if (this.s[this.i] !== ch) return false;
    this.i++;
    return true;
  }
  expect(ch: string): void {
    if (!this.eat(ch)) this.stop();
  }
  value(): unknown {
    this.ws();
    const end = valueEnd(this.s, this.i);
    if (end < 0) this.stop();
    let v: unknown;
    try {
      v = JSON.parse(this.s.slice(this.i, end));
    } catch {
      throw new Stop();
    }
    this.i = end;
    return v;
  }
  key(): string {
    const at = this.i;
    const k = this.value();
    if (typeof k !== "string") {
      this.i = at;
      throw new Stop();
    }
    this.expect(":");
    return k;
  }
  /** Calls each() for every element of an array, then expects its end. */
  array(each: () => void): void {
    this.expect("[");
    if (this.eat("]")) return;
    for (;;) {
      each();
      if (this.eat("]")) return;
      this.expect(",");
    }
  }
  /** Calls field(key) for every key of an object (which reads the value), then expects its end. */
  object(field: (key: string) => void): void {
    this.expect("{");
    if (this.eat("}")) return;
    for (;;) {
      field(this.key());
      if (this.eat("}")) return;
      this.expect(",");
    }
  }
}

export interface Salvage {
  /** Databases and containers whose definitions were read, with the documents read completely. */
  snapshot: Snapshot;
  documents: number;
  /** Where reading stopped (the damage starts there); the text's length when nothing is damaged. */
  damagedAt: number;
  /** The text ends before the snapshot does (truncated): what was stored after it cannot be named. */
  truncated: boolean;
}

/** Reads what it can of a damaged snapshot: every definition and document complete before the damage. */
export function salvageSnapshot(text: string): Salvage {
  const r = new Salvager(text);
  const out: Snapshot = { databases: [] };
  let documents = 0;
  const validDoc = (d: unknown): boolean => isObject(d) && typeof d.id === "string";
  try {
    r.object((k) => {
      if (k !== "databases") return void r.value();
      r.array(() => {
        const db: Snapshot["databases"][number] = { meta: undefined, collections: [] };
        let added = false;
        const add = () => {
          if (!added && isObject(db.meta) && typeof db.meta.id === "string") {
            out.databases.push(db);
            added = true;
          }
        };
        r.object((dk) => {
          if (dk === "meta") {
            db.meta = r.value();
            add();
          } else if (dk === "collections") {
            r.array(() => {
              const coll: Snapshot["databases"][number]["collections"][number] = { meta: undefined, docs: [] };
              let pushed = false;
              const keep = () => {
                if (!pushed && isObject(coll.meta) && typeof coll.meta.id === "string") {
                  db.collections.push(coll);
                  pushed = true;
                  documents += coll.docs.length;
                }
              };
              r.object((ck) => {
                if (ck === "meta") {
                  coll.meta = r.value();
                  keep();
                } else if (ck === "docs") {
                  r.array(() => {
                    const at = r.i;
                    const d = r.value();
                    if (!validDoc(d)) {
                      r.i = at;
                      throw new Stop();
                    }
                    coll.docs.push(d);
                    if (pushed) documents++;
                  });
                } else r.value();
              });
              keep();
            });
          } else r.value();
        });
      });
    });
    r.ws();
    if (r.i !== text.length) throw new Stop();
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
    return { snapshot: out, documents, damagedAt: r.i, truncated: r.ended };
  }
  return { snapshot: out, documents, damagedAt: text.length, truncated: false };
}

export interface Recognised {
  id: string;
  /** The partition key values found beside the id (JSON), or "unknown". */
  partition: string;
  /** For journal lines: what the line did to it, when that can still be read. */
  op?: "set" | "del";
}

const STRING = String.raw`"(?:[^"\\]|\\.)*"`;
const SCALAR = String.raw`(?:${STRING}|-?\d+(?:\.\d+)?|true|false|null)`;

/**
 * Documents named in damaged text, best effort: every `"id": "…"` with the partition key fields found
 * between it and the next id (the fields of the containers' partition keys, e.g. tenantId and scopeId).
 * Journal text is first cut into its entries (`{"d": …`), so a delete's `pk` and each entry's operation
 * stay with their id. Nested objects with an `id` of their own show up too; nothing recognisable gives [].
 */
export function recogniseDocuments(text: string, partitionFields: string[]): Recognised[] {
  const parse = (v: string): unknown => {
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  };
  const starts = [...text.matchAll(/\{\s*"d"\s*:/g)].map((m) => m.index);
  const chunks = starts.length === 0 ? [text] : [text.slice(0, starts[0]), ...starts.map((at, k) => text.slice(at, starts[k + 1] ?? text.length))];
  const out: Recognised[] = [];
  const seen = new Set<string>();
  for (const chunk of chunks) {
    const op = /"op"\s*:\s*"del"/.test(chunk) ? "del" : /"op"\s*:\s*"set"/.test(chunk) ? "set" : undefined;
    const pk = op === "del" ? new RegExp(String.raw`"pk"\s*:\s*(${STRING}|\[[^\]]*\])`).exec(chunk)?.[1] : undefined;
    const ids = [...chunk.matchAll(new RegExp(String.raw`"id"\s*:\s*(${STRING})`, "g"))];
    ids.forEach((m, k) => {
      const id = parse(m[1]!);
      if (typeof id !== "string") return;
      const window = chunk.slice((ids[k - 1]?.index ?? -1) + 1, ids[k + 1]?.index ?? chunk.length);
      const values = partitionFields.map((f) => new RegExp(String.raw`"${f.replace(/[^\w]/g, "")}"\s*:\s*(${SCALAR})`).exec(window)?.[1]);
      const partition =
        pk !== undefined
          ? String(parse(pk))
          : values.length > 0 && values.every((v) => v !== undefined)
            ? JSON.stringify(values.map((v) => parse(v!)))
            : "unknown";
      const key = `${id}\u0000${partition}\u0000${op ?? ""}`;
      if (seen.has(key)) return;
      seen.add(key);
      out.push({ id, partition, ...(op ? { op } : {}) });
    });
  }
  return out;
}

/** The top-level field names of the containers' partition keys (e.g. ["tenantId", "scopeId"]). */
export function partitionFieldsOf(snapshot: Snapshot | undefined, lines: JournalLine[]): string[] {
  const fields = new Set<string>();
  const collect = (dbs: Snapshot["databases"]) => {
    for (const db of dbs) for (const c of db.collections) for (const p of (c.meta?.partitionKey?.paths ?? []) as string[]) fields.add(p.split("/").filter(Boolean).pop() ?? "");
  };
  if (snapshot) collect(snapshot.databases);
  for (const l of lines) {
    const e = l.entry;
    if (e?.op === "schema") collect(e.databases);
    if (e?.op === "group") for (const inner of e.entries) if (inner.op === "schema") collect(inner.databases);
  }
  fields.delete("");
  return [...fields];
}

/** The partition key of a document in a container (as JSON of the key's values), or "unknown". */
export function partitionOfDoc(doc: any, containerMeta: any): string {
  const paths = (containerMeta?.partitionKey?.paths ?? []) as string[];
  if (paths.length === 0) return "unknown";
  const values = paths.map((p) => p.split("/").filter(Boolean).reduce((v: any, k) => (v === null || v === undefined ? undefined : v[k]), doc));
  return JSON.stringify(values.length === 1 ? values[0] : values);
}

export const storeFiles = (dataDir: string) => ({ snapshot: join(dataDir, SNAPSHOT_FILE), journal: join(dataDir, JOURNAL_FILE) });
