import { AppError, type FieldError } from "./errors.js";

/** Continuation tokens are opaque to callers: the store's token, wrapped and versioned. */
export function wrapToken(storeToken: string | undefined): string | undefined {
  return storeToken === undefined ? undefined : Buffer.from(JSON.stringify({ v: 1, c: storeToken })).toString("base64url");
}

export function unwrapToken(token: string | undefined): string | undefined {
  if (token === undefined) return undefined;
  const invalid: FieldError = { field: "query.continuationToken", message: "is not a token this API issued" };
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { v?: unknown; c?: unknown };
    if (parsed.v === 1 && typeof parsed.c === "string") return parsed.c;
  } catch {
    // fall through
  }
  throw new AppError({ kind: "validation", detail: "invalid continuation token", errors: [invalid] });
}
