import type { z } from "zod";
import { AppError, type FieldError } from "./errors.js";

export function fieldErrors(error: z.ZodError, location: string): FieldError[] {
  return error.issues.map((issue) => {
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [undefined];
    return keys.map((key) => ({
      field: [location, ...issue.path.map(String), ...(key !== undefined ? [key] : [])].join("."),
      message: issue.code === "unrecognized_keys" ? "is not a known field" : issue.message,
    }));
  }).flat();
}

/** Parses with a zod schema or throws a `validation` AppError carrying field-level errors. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, location: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new AppError({
    kind: "validation",
    detail: `the request ${location} is invalid`,
    errors: fieldErrors(result.error, location),
  });
}
