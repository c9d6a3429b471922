import type { Operation } from "../api/contract.js";
import type { Page } from "../domain/common.js";

/**
 * Adds nextLink to a page: the operation's path with the request's path parameters filled in, the same
 * query, and the next token.
 */
export function pageResult<T>(op: Operation, request: { params?: Record<string, unknown>; query: Record<string, unknown> }, page: Page<T>) {
  if (!page.continuationToken) return { items: page.items };
  const path = op.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = request.params?.[name];
    // A route that lists under a path parameter must pass it: a link with a template in it is a bug here.
    if (value === undefined) throw new Error(`pageResult: ${op.operationId} has no value for path parameter ${name}`);
    return encodeURIComponent(String(value));
  });
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(request.query)) if (v !== undefined && k !== "continuationToken") search.set(k, String(v));
  search.set("continuationToken", page.continuationToken);
  return { ...page, nextLink: `/api${path}?${search.toString()}` };
}
