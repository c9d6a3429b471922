import type { Partition, QuerySpec, Store, StoredDoc, Versioned } from "../ports/store.js";
import { AppError, type FieldError } from "./errors.js";

/** Continuation tokens are opaque to callers: the store's token, wrapped and versioned. */
export function wrapToken(storeToken: string | undefined): string | undefined {
  return storeToken === undefined ? undefined : Buffer.from(JSON.stringify({ v: 1, c: storeToken })).toString("base64url");
}

export function unwrapToken(token: string | undefined): string | undefined {
  if (token === undefined) return undefined;
  const invalid: FieldError = { field: "query.continuationToken", message: "is not a token this API issued" };
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { v?: unknown; c?: unknown };
    if (parsed.v === 1 && typeof parsed.c === "string") return parsed.c;
  } catch {
    // fall through
  }
  throw new AppError({ kind: "validation", detail: "invalid continuation token", errors: [invalid] });
}

/**
 * Every document a query matches, page after page: for jobs and compiles that need them all. Request
 * paths page with continuation tokens instead. `partition` "all" is a cross-partition query (jobs only).
 */
export async function* everyDoc<T extends StoredDoc>(store: Store, partition: Partition | "all", spec: Omit<QuerySpec, "maxPageSize" | "continuationToken">): AsyncGenerator<Versioned<T>> {
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

/** One page of a list endpoint: the caller's opaque token in, the next opaque token out. */
export async function listPage<T extends StoredDoc>(
  store: Store,
  partition: Partition,
  spec: Omit<QuerySpec, "maxPageSize" | "continuationToken">,
  page: { maxPageSize: number; continuationToken?: string | undefined },
): Promise<{ items: Versioned<T>[]; continuationToken?: string }> {
  const token = unwrapToken(page.continuationToken);
  const result = await store.queryPage<T>(partition, { ...spec, maxPageSize: page.maxPageSize, ...(token ? { continuationToken: token } : {}) });
  const next = wrapToken(result.continuationToken);
  return { items: result.items, ...(next ? { continuationToken: next } : {}) };
}
