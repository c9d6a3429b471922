import { type Answer } from "./service.js";

/** OpenAI's `type` and `code` for the statuses clients branch on; anything else is reported as a server or API error. */
const KINDS: Record<number, { type: string; code: string }> = {
  400: { type: "invalid_request_error", code: "invalid_request" },
  401: { type: "invalid_request_error", code: "invalid_api_key" },
  403: { type: "invalid_request_error", code: "permission_denied" },
  404: { type: "invalid_request_error", code: "not_found" },
  429: { type: "requests", code: "rate_limit_exceeded" },
};

export function openAiError(status: number, message: string, code?: string): Answer {
  const kind = KINDS[status] ?? (status >= 500 ? { type: "server_error", code: "server_error" } : { type: "api_error", code: String(status) });
  return { status, json: { error: { message, type: kind.type, code: code ?? kind.code } } };
}

/** Thrown by request readers; the model fake turns it into a 400. */
export class InvalidRequest extends Error {}
