/** What the request pipeline (dispatch.ts) needs from each faked service, and what handlers exchange. */

export interface Call {
  /** Normalised Host header: lower-case, no port. */
  host: string;
  method: string;
  /** Decoded, without the query string. */
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  json: JsonBody;
}

export type JsonBody = { ok: true; value: unknown } | { ok: false; empty: boolean };

/** Handlers return answers instead of writing them, so that one writer owns flushing and closed sockets. */
export type Answer =
  | { status: number; headers?: Record<string, string>; json: unknown }
  /** Server-sent events: each payload goes out as `data: <payload>\n\n`, flushed on its own. */
  | { status: number; headers?: Record<string, string>; events: string[] };

export type Handler = (call: Call) => Answer;

export interface FakeService {
  /** The handler for this call, or undefined when the real service has no such operation. */
  route(call: Call): Handler | undefined;
  notFound(call: Call): Answer;
  /** The real service's 401, in its own error shape. */
  unauthorized(message: string): Answer;
  /** Authentication the real service always requires: a refusal message, or undefined when accepted. */
  builtinAuth(call: Call): string | undefined;
  /** Headers that go on every answer to this call, errors included. */
  headers(call: Call): Record<string, string>;
}

export function parseJsonBody(raw: string): JsonBody {
  if (raw.trim() === "") return { ok: false, empty: true };
  try {
    return { ok: true, value: JSON.parse(raw) as unknown };
  } catch {
    return { ok: false, empty: false };
  }
}

export function bearerToken(headers: Record<string, string>): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? "");
  return m?.[1];
}
