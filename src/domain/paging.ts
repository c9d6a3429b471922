import { createHash } from "node:crypto";
import { ContinuationTokenRefused, type Partition, type QuerySpec, type Store, type StoredDoc, type Versioned } from "../ports/store.js";
import { AppError } from "./errors.js";

/** A list page's query: everything but the page size and the token, which the caller's request carries. */
export type PageQuery = Omit<QuerySpec, "maxPageSize" | "continuationToken">;

/**
 * What a token resumes: this partition and this query, whatever the page size. A token the API issued
 * for another list (another project, another filter) is refused here rather than handed to the store,
 * which might resume it somewhere or fail on it. The binding is a digest, not a signature: anyone can
 * compute it, so a token crafted with it reaches the store — which answers within the same partition and
 * query, or refuses the token (ContinuationTokenRefused, a 400 too).
 */
function bindingOf(partition: Partition, spec: PageQuery): string {
  return createHash("sha256").update(JSON.stringify([partition.tenantId, partition.scopeId, spec])).digest("base64url").slice(0, 22);
}

/** Continuation tokens are opaque to callers: the store's token, wrapped, versioned and bound to the list it continues. */
function wrapToken(storeToken: string | undefined, binding: string): string | undefined {
  return storeToken === undefined ? undefined : Buffer.from(JSON.stringify({ v: 2, c: storeToken, q: binding })).toString("base64url");
}

const INVALID_TOKEN = () => new AppError({ kind: "validation", detail: "invalid continuation token", errors: [{ field: "query.continuationToken", message: "is not a token this API issued for this list" }] });

function unwrapToken(token: string | undefined, binding: string): string | undefined {
  if (token === undefined) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { v?: unknown; c?: unknown; q?: unknown };
    // v1 tokens (unbound, issued before 2026-12) are refused like any other: a client restarts its listing.
    if (parsed.v === 2 && parsed.q === binding && typeof parsed.c === "string" && parsed.c !== "") return parsed.c;
  } catch {
    // fall through
  }
  throw INVALID_TOKEN();
}

/**
 * Every document a query matches, page after page: for jobs and compiles that need them all. Request
 * paths page with continuation tokens instead. `partition` "all" is a cross-partition query (jobs only).
 */
export async function* everyDoc<T extends StoredDoc>(store: Store, partition: Partition | "all", spec: PageQuery): AsyncGenerator<Versioned<T>> {
  let token: string | undefined;
  do {
    const query: QuerySpec = { ...spec, maxPageSize: 100, ...(token ? { continuationToken: token } : {}) };
    const page = partition === "all" ? await store.queryAcrossPartitions<T>(query) : await store.queryPage<T>(partition, query);
    yield* page.items;
    token = page.continuationToken;
  } while (token);
}

/** All of an async sequence, as an array. */
export async function toArray<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/**
 * One page of a list endpoint: the caller's opaque token in, the next opaque token out. A token this list
 * did not issue, or one the store cannot resume from, is the caller's 400, never the store's 500.
 */
export async function listPage<T extends StoredDoc>(
  store: Store,
  partition: Partition,
  spec: PageQuery,
  page: { maxPageSize: number; continuationToken?: string | undefined },
): Promise<{ items: Versioned<T>[]; continuationToken?: string }> {
  const binding = bindingOf(partition, spec);
  const token = unwrapToken(page.continuationToken, binding);
  let result;
  try {
    result = await store.queryPage<T>(partition, { ...spec, maxPageSize: page.maxPageSize, ...(token ? { continuationToken: token } : {}) });
  } catch (err) {
    if (err instanceof ContinuationTokenRefused) throw INVALID_TOKEN();
    throw err;
  }
  const next = wrapToken(result.continuationToken, binding);
  return { items: result.items, ...(next ? { continuationToken: next } : {}) };
}
