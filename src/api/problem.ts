import { z } from "zod";
import { DEFAULT_REASONS, REASONS } from "../domain/reasons.js";

/** Every reason a problem may carry, for the OpenAPI document: the catalog's, then the defaults (a code's own). */
export const KNOWN_REASONS: readonly { reason: string; status: number; meaning: string }[] = [
  ...Object.entries(REASONS).map(([reason, r]) => ({ reason, status: r.status, meaning: r.meaning })),
  ...Object.entries(DEFAULT_REASONS).map(([reason, status]) => ({ reason, status, meaning: "the default: the code's own, when the refusal has no more specific reason" })),
];

/** The reason table of docs/api.md (Markdown), from the catalog: test/unit/reasons.test.ts holds the docs to it. */
export function renderReasonTable(): string {
  const rows = Object.entries(REASONS).map(([reason, r]) => `| \`${reason}\` | ${r.status} | ${r.meaning.replaceAll("|", "\\|")} |`);
  return ["| reason | status | meaning |", "|---|---|---|", ...rows].join("\n");
}

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string().optional(),
    code: z.string().meta({ description: "Stable, machine-readable error code" }),
    reason: z.string().meta({
      description:
        "Stable, machine-readable reason (snake_case): the code's own (validation_failed, conflict, …) unless the refusal has a more specific one a client can act on, e.g. name_taken or rotation_in_progress. The known values, with their status and meaning, are listed in x-aigov-reasons (and docs/api.md); new ones may be added, so treat an unknown value like the code's own.",
      "x-aigov-reasons": KNOWN_REASONS,
    }),
    correlationId: z.string(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: "Problem", description: "RFC 9457 problem details" });
export type Problem = z.output<typeof Problem>;

/** Request bodies above this size are refused with 413 before parsing. */
export const MAX_BODY_BYTES = 256 * 1024;
