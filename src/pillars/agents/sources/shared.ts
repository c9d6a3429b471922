/**
 * What the three adapters decide the same way: defaults for paging, retries and time-outs, and the checks a
 * cloud's record must pass before it becomes a SourceAgent. The SDKs' types promise shapes their
 * deserialisers do not enforce (the AWS SDK passes a number through where its type says string), so every
 * field is checked here, and a record that fails becomes a MalformedRecord rather than an exception.
 */
import { type MalformedRecord, type SourceAgent, SourceError } from "./source.js";

export const DEFAULT_PAGE_SIZE = 50;
/** Attempts per request, the first included (the SDK's own retry makes the others). */
export const DEFAULT_MAX_ATTEMPTS = 4;
/** Per attempt; a list page of a healthy control plane answers in well under a second. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/** The tuning every target may carry (SourceTarget's optional `retry`). */
export interface RetryTuning {
  maxAttempts?: number;
  baseDelayMs?: number;
  requestTimeoutMs?: number;
}

export function tuning(retry: RetryTuning | undefined): { maxAttempts: number; baseDelayMs: number | undefined; requestTimeoutMs: number } {
  return {
    maxAttempts: Math.max(1, Math.floor(retry?.maxAttempts ?? DEFAULT_MAX_ATTEMPTS)),
    baseDelayMs: retry?.baseDelayMs,
    requestTimeoutMs: Math.max(1, retry?.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS),
  };
}

export function pageSizeOf(requested: number | undefined, max: number): number {
  return Math.min(max, Math.max(1, Math.floor(requested ?? DEFAULT_PAGE_SIZE)));
}

/**
 * A cancelled listPage ends with the caller's own abort reason, not a SourceError: the sync asked for it,
 * and none of throttled / unavailable / refused would be true.
 */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A field's value when it is a string (empty strings count as absent), undefined when absent, or a problem. */
export class RecordCheck {
  readonly problems: string[] = [];

  constructor(private readonly what: string) {}

  /** A required non-empty string. */
  id(value: unknown, field: string): string {
    if (typeof value === "string" && value !== "") return value;
    this.problems.push(value === undefined || value === null || value === "" ? `${field} is missing` : `${field} is ${typeof value}, not a string`);
    return "";
  }

  /** An optional string: undefined (or "", which protobuf uses for absent) is fine, another type is not. */
  text(value: unknown, field: string): string | undefined {
    if (value === undefined || value === null || value === "") return undefined;
    if (typeof value === "string") return value;
    this.problems.push(`${field} is ${typeof value}, not a string`);
    return undefined;
  }

  /** An optional time: a Date, an RFC 3339 string, or a protobuf Timestamp ({seconds, nanos}); ISO 8601 out. Numbers are
   * refused: whether they count seconds or milliseconds is the caller's to say. */
  time(value: unknown, field: string): string | undefined {
    if (value === undefined || value === null || value === "") return undefined;
    const ms =
      value instanceof Date
        ? value.getTime()
        : typeof value === "string"
          ? Date.parse(value)
          : typeof value === "object" && "seconds" in value
            ? timestampMs(value as { seconds?: unknown; nanos?: unknown })
            : NaN;
    if (Number.isFinite(ms)) return new Date(ms).toISOString();
    this.problems.push(`${field} is not a time`);
    return undefined;
  }

  /** String-valued labels: a non-object is a problem; non-string values are dropped (SourceAgent keeps strings only). */
  labels(value: unknown, field: string): Record<string, string> | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "object" || Array.isArray(value)) {
      this.problems.push(`${field} is not an object`);
      return undefined;
    }
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(value)) if (typeof v === "string") out[k] = v;
    return Object.keys(out).length ? out : undefined;
  }

  /** An optional array; another type is a problem. */
  list(value: unknown, field: string): unknown[] {
    if (value === undefined || value === null) return [];
    if (Array.isArray(value)) return value;
    this.problems.push(`${field} is not a list`);
    return [];
  }

  /** The agent, or the record that reports why it is not one. */
  result(agent: SourceAgent, sourceId: string | undefined): { agent: SourceAgent } | { malformed: MalformedRecord } {
    if (this.problems.length === 0) return { agent: dropUndefined(agent) };
    return { malformed: { ...(sourceId ? { sourceId } : {}), reason: `${this.what}: ${this.problems.join("; ")}` } };
  }
}

/** `{seconds, nanos}` as protobufjs gives a Timestamp (seconds as a string when longs are strings). */
function timestampMs(t: { seconds?: unknown; nanos?: unknown }): number {
  const seconds = typeof t.seconds === "string" || typeof t.seconds === "number" || typeof t.seconds === "bigint" ? Number(t.seconds) : NaN;
  const nanos = typeof t.nanos === "number" ? t.nanos : Number(t.nanos ?? 0);
  return seconds * 1_000 + Math.floor(nanos / 1e6);
}

/** The sync stores what it gets: no keys with undefined values, so equal agents compare equal. */
function dropUndefined(agent: SourceAgent): SourceAgent {
  return Object.fromEntries(Object.entries(agent).filter(([, v]) => v !== undefined)) as unknown as SourceAgent;
}

/** Opaque cursors that say which list they continue: base64url JSON, rejected as refused when garbled. */
export function encodeCursor(value: object): string {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64url");
}

export function decodeCursor(cursor: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (value && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // falls through to the refusal below
  }
  throw new SourceError("refused", "the cursor is not one this source issued", "InvalidCursor");
}
