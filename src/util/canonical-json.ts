/**
 * Canonical JSON, the one form every hash and comparison in the app is taken over (artifact and read-back
 * hashes, audit digests, tool definition pins, settings comparisons): equal values always give equal text.
 */

/** RFC 8785 orders keys by UTF-16 code units, which is what the default string comparison does (not localeCompare). */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

type Frame =
  | { kind: "array"; items: readonly unknown[]; index: number }
  | { kind: "object"; source: Record<string, unknown>; keys: string[]; index: number; wrote: boolean };

/**
 * RFC 8785 (JCS) canonical JSON: keys sorted by code units, no whitespace, numbers and strings as ECMAScript
 * serializes them. Iterative, so depth costs heap rather than stack. Values JSON cannot carry are treated as
 * JSON.stringify treats them (dropped in objects, null in arrays, non-finite numbers as null), and an object
 * that contains itself is written as null there, so the function never throws.
 */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  const stack: Frame[] = [];
  const open = new Set<object>();

  const emitValue = (v: unknown): void => {
    const scalar = scalarJson(v);
    if (scalar !== undefined) {
      out.push(scalar);
      return;
    }
    if (v === null || typeof v !== "object" || open.has(v)) {
      out.push("null");
      return;
    }
    open.add(v);
    if (Array.isArray(v)) {
      out.push("[");
      stack.push({ kind: "array", items: v, index: 0 });
    } else {
      const source = v as Record<string, unknown>;
      out.push("{");
      stack.push({ kind: "object", source, keys: Object.keys(source).sort(compareCodeUnits), index: 0, wrote: false });
    }
  };

  if (isOmitted(value)) return "null";
  emitValue(value);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.kind === "array") {
      if (frame.index >= frame.items.length) {
        out.push("]");
        open.delete(frame.items);
        stack.pop();
        continue;
      }
      if (frame.index > 0) out.push(",");
      const item = frame.items[frame.index++];
      if (isOmitted(item)) out.push("null");
      else emitValue(item);
    } else {
      if (frame.index >= frame.keys.length) {
        out.push("}");
        open.delete(frame.source);
        stack.pop();
        continue;
      }
      const key = frame.keys[frame.index++]!;
      const item = frame.source[key];
      if (isOmitted(item)) continue;
      if (frame.wrote) out.push(",");
      frame.wrote = true;
      out.push(JSON.stringify(key), ":");
      emitValue(item);
    }
  }
  return out.join("");
}

/** Values JSON.stringify leaves out of an object (and writes as null in an array). */
function isOmitted(v: unknown): boolean {
  return v === undefined || typeof v === "function" || typeof v === "symbol";
}

function scalarJson(v: unknown): string | undefined {
  switch (typeof v) {
    case "string":
      return JSON.stringify(v);
    case "number":
      // ECMAScript's Number-to-string is JCS's number format; -0 comes out as 0.
      return Number.isFinite(v) ? JSON.stringify(v) : "null";
    case "boolean":
      return v ? "true" : "false";
    case "bigint":
      return v.toString();
    default:
      return v === null ? "null" : undefined;
  }
}
