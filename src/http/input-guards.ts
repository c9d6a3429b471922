import { AppError } from "../domain/errors.js";

/** Deeper bodies than any operation takes are refused before validation walks them. */
export const MAX_JSON_DEPTH = 32;
/** C0 controls other than tab, line feed and carriage return, DEL, and lone surrogates. */
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * No text a client sends may carry control characters (a BEL or NUL in a description would reach
 * documents, logs and the gateway compiler; in a query filter, logs and store queries): every string value
 * and key is checked here, at the edge, before any service sees it, and answered with a 400 naming the
 * fields. Depth is bounded too.
 */
export function checkJsonValues(root: unknown, where: "body" | "form" | "query"): void {
  const errors: { field: string; message: string }[] = [];
  const stack: { v: unknown; path: string; depth: number }[] = [{ v: root, path: where, depth: 0 }];
  while (stack.length) {
    const { v, path, depth } = stack.pop()!;
    if (depth > MAX_JSON_DEPTH) throw new AppError({ kind: "validation", detail: `the request ${where} is nested too deeply`, errors: [{ field: path, message: `nested deeper than ${MAX_JSON_DEPTH} levels` }], reason: "body_too_deep" });
    if (typeof v === "string") {
      if (CONTROL.test(v)) errors.push({ field: path, message: "must not contain control characters" });
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => stack.push({ v: x, path: `${path}.${i}`, depth: depth + 1 }));
    } else if (v !== null && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if (CONTROL.test(k)) errors.push({ field: path, message: "a field name contains control characters" });
        stack.push({ v: x, path: `${path}.${k}`, depth: depth + 1 });
      }
    }
  }
  if (errors.length) throw new AppError({ kind: "validation", detail: `the request ${where} contains control characters`, errors: errors.slice(0, 20), reason: "control_characters" });
}

