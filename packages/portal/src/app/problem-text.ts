import type { ApiError } from "../../../../src/client/index.js";
import { REASONS } from "../../../../src/domain/reasons.js";

/**
 * The client's ApiError, recognised by shape: this module is on the sign-in screen's path, which does not
 * load the client and its schemas (they come with the first screen that calls the API).
 */
const isApiError = (err: unknown): err is ApiError => err instanceof Error && err.name === "ApiError" && typeof (err as { status?: unknown }).status === "number";

const MEANINGS = new Map<string, string>(Object.entries(REASONS).map(([reason, r]) => [reason, r.meaning.replace(/`/g, "")]));

export interface ProblemText {
  title: string;
  detail?: string | undefined;
  reason?: string | undefined;
  /** The reason in words (the API's own catalog). */
  meaning?: string | undefined;
  fields: { field: string; message: string }[];
}

/** A failed call in words: problem+json title, detail, reason and field errors. */
export function describeError(err: unknown): ProblemText {
  if (isApiError(err) && err.problem) {
    const p = err.problem as { title?: string; detail?: string; reason?: string; errors?: { field: string; message: string }[] };
    return {
      title: p.title ?? `HTTP ${err.status}`,
      detail: p.detail,
      reason: p.reason,
      meaning: p.reason ? MEANINGS.get(p.reason) : undefined,
      fields: p.errors ?? [],
    };
  }
  if (isApiError(err)) return { title: `HTTP ${err.status}`, fields: [] };
  return { title: err instanceof Error ? err.message : String(err), fields: [] };
}

