import { ApiError } from "../../../../src/client/index.js";
import { KNOWN_REASONS } from "../../../../src/api/problem.js";

const MEANINGS = new Map(KNOWN_REASONS.map((r) => [r.reason, r.meaning.replace(/`/g, "")]));

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
  if (err instanceof ApiError && err.problem) {
    const p = err.problem as { title?: string; detail?: string; reason?: string; errors?: { field: string; message: string }[] };
    return {
      title: p.title ?? `HTTP ${err.status}`,
      detail: p.detail,
      reason: p.reason,
      meaning: p.reason ? MEANINGS.get(p.reason) : undefined,
      fields: p.errors ?? [],
    };
  }
  if (err instanceof ApiError) return { title: `HTTP ${err.status}`, fields: [] };
  return { title: err instanceof Error ? err.message : String(err), fields: [] };
}

