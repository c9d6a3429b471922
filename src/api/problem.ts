import { z } from "zod";

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string().optional(),
    code: z.string().meta({ description: "Stable, machine-readable error code" }),
    reason: z.string().meta({ description: "Stable, machine-readable reason (snake_case), more specific than code where the API tells refusals apart, e.g. content_safety_service_missing; see docs/api.md" }),
    correlationId: z.string(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: "Problem", description: "RFC 9457 problem details" });
export type Problem = z.output<typeof Problem>;

/** Request bodies above this size are refused with 413 before parsing. */
export const MAX_BODY_BYTES = 256 * 1024;
