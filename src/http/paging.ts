import type { Operation } from "../api/contract.js";
import type { Page } from "../domain/common.js";

/** Adds nextLink (same query, next token) to a page. */
export function pageResult<T>(op: Operation, query: Record<string, unknown>, page: Page<T>) {
  if (!page.continuationToken) return { items: page.items };
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && k !== "continuationToken") params.set(k, String(v));
  params.set("continuationToken", page.continuationToken);
  return { ...page, nextLink: `/api${op.path}?${params.toString()}` };
}
