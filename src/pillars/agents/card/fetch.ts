import { BlockedAddressError, ResponseTooLargeError } from "../../../adapters/http/addresses.js";
import { CARD_LIMITS } from "./schema.js";

/**
 * Fetches an AgentCard from where its agent publishes it. Given an origin, the well-known path of v0.3 and
 * v1.0 (`/.well-known/agent-card.json`, spec v1.0 §8.2 and §14.3) and, only when that answers 404, v0.2's
 * `/.well-known/agent.json`; given any other URL, that URL. The fetch is injected: in Azure it is the safe
 * fetch (public addresses only, no redirects, bounded); this module bounds size and time again on its own,
 * so a plain fetch in tests or local mode cannot read an unbounded body either.
 */

export const WELL_KNOWN_CARD_PATH = "/.well-known/agent-card.json";
/** v0.2.x's location, tried only when the current one is absent (404). */
export const LEGACY_CARD_PATH = "/.well-known/agent.json";

export type CardFetchErrorCode = "card_fetch_failed" | "card_not_found" | "card_too_large" | "card_not_json" | "card_blocked_address" | "card_redirected";

export class CardFetchError extends Error {
  constructor(
    readonly code: CardFetchErrorCode,
    message: string,
    /** The URL that failed (the last one tried). */
    readonly url: string,
    readonly details: { status?: number; location?: string; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "CardFetchError";
  }
  get status(): number | undefined {
    return this.details.status;
  }
}

export interface FetchAgentCardOptions {
  /** Default CARD_LIMITS.maxBytes (256 KiB). */
  maxBytes?: number;
  /** Per request, body included. Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export async function fetchAgentCard(baseOrCardUrl: string, fetch: typeof globalThis.fetch, options: FetchAgentCardOptions = {}): Promise<{ url: string; raw: unknown }> {
  const targets = cardUrls(baseOrCardUrl);
  const last = targets.length - 1;
  for (const [i, url] of targets.entries()) {
    const result = await getCard(url, fetch, options);
    if (result !== "not_found") return { url, raw: result };
    if (i === last) {
      const tried = targets.length > 1 ? `${targets.join(" and ")} answer` : `${url} answers`;
      throw new CardFetchError("card_not_found", `no AgentCard: ${tried} 404`, url, { status: 404 });
    }
  }
  // Unreachable: cardUrls returns at least one URL and the loop returns or throws on the last.
  throw new CardFetchError("card_fetch_failed", "no URL to fetch", baseOrCardUrl);
}

/**
 * An origin (path "/", no query) means discovery: the well-known path at the origin (RFC 8615 puts
 * well-known URIs at the root), then the legacy one. Anything else is the card's own URL: a path is never
 * guessed at, since the well-known card of the host may well describe another agent.
 */
export function cardUrls(baseOrCardUrl: string): string[] {
  const url = URL.parse(baseOrCardUrl);
  if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) throw new CardFetchError("card_fetch_failed", "the card URL must be an absolute http(s) URL", baseOrCardUrl);
  if (url.username || url.password) throw new CardFetchError("card_fetch_failed", "the card URL must not carry credentials", baseOrCardUrl);
  url.hash = "";
  if (url.pathname === "/" && url.search === "") return [`${url.origin}${WELL_KNOWN_CARD_PATH}`, `${url.origin}${LEGACY_CARD_PATH}`];
  return [url.href];
}

async function getCard(url: string, fetch: typeof globalThis.fetch, options: FetchAgentCardOptions): Promise<unknown> {
  const deadline = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  let response: Response;
  try {
    // A2A-Version: spec v1.0 §3.6.1 has clients send it on every request; servers that predate it ignore it.
    response = await fetch(url, { method: "GET", headers: { accept: "application/json", "a2a-version": "1.0" }, redirect: "manual", signal });
  } catch (error) {
    throw fetchFailure(error, url);
  }
  const discard = () => void response.body?.cancel().catch(() => undefined);
  if (response.type === "opaqueredirect" || (response.status >= 300 && response.status < 400)) {
    discard();
    const location = response.headers.get("location") ?? undefined;
    // A redirect could lead anywhere (another host, a private address): the caller is told where, and decides.
    throw new CardFetchError("card_redirected", `${url} redirects${location ? ` to ${location}` : ""}; redirects are not followed: register the final URL`, url, {
      status: response.status,
      ...(location ? { location } : {}),
    });
  }
  if (response.status === 404) {
    discard();
    return "not_found";
  }
  if (!response.ok) {
    discard();
    throw new CardFetchError("card_fetch_failed", `${url} answers HTTP ${response.status}`, url, { status: response.status });
  }
  const type = response.headers.get("content-type");
  // No Content-Type is tolerated (the body must still parse); a declared non-JSON type (an HTML page) is not a card.
  if (type !== null && !isJsonType(type)) {
    discard();
    throw new CardFetchError("card_not_json", `${url} answers ${type.slice(0, 100)}, not JSON`, url, { status: response.status });
  }
  let bytes: Uint8Array;
  try {
    bytes = await readBodyCapped(response, options.maxBytes ?? CARD_LIMITS.maxBytes);
  } catch (error) {
    throw fetchFailure(error, url);
  }
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) as unknown;
  } catch (error) {
    throw new CardFetchError("card_not_json", `${url} does not answer with JSON: ${error instanceof Error ? error.message : String(error)}`, url, { status: response.status });
  }
}

function isJsonType(contentType: string): boolean {
  const essence = contentType.split(";")[0]!.trim().toLowerCase();
  return essence === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(essence);
}

/**
 * A body, stopped past `maxBytes` with ResponseTooLargeError (the safe fetch's own error, which it may also
 * raise first): the declared length is checked before reading, the bytes while reading.
 */
export async function readBodyCapped(response: Response, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    void response.body?.cancel().catch(() => undefined);
    throw new ResponseTooLargeError(maxBytes);
  }
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      void reader.cancel().catch(() => undefined);
      throw new ResponseTooLargeError(maxBytes);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

function fetchFailure(error: unknown, url: string): CardFetchError {
  if (error instanceof CardFetchError) return error;
  const blocked = causeOf(error, (e) => e instanceof BlockedAddressError || (e as { name?: unknown }).name === "BlockedAddressError");
  if (blocked) return new CardFetchError("card_blocked_address", `${url}: ${(blocked as Error).message}`, url, { cause: error });
  if (causeOf(error, (e) => e instanceof ResponseTooLargeError)) return new CardFetchError("card_too_large", `${url}: the card is larger than the limit`, url, { cause: error });
  const timedOut = causeOf(error, (e) => (e as { name?: unknown }).name === "TimeoutError");
  const text = timedOut ? "timed out" : error instanceof Error ? error.message : String(error);
  return new CardFetchError("card_fetch_failed", `${url}: ${text}`, url, { cause: error });
}

/** The error or one of its causes that matches (fetch wraps what the connection raised in a TypeError). */
function causeOf(error: unknown, match: (e: object) => boolean): object | undefined {
  for (let e = error, hops = 0; e !== null && typeof e === "object" && hops < 8; e = (e as { cause?: unknown }).cause, hops++) {
    if (match(e)) return e;
  }
  return undefined;
}
