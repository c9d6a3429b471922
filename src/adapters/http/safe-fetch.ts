import dns from "node:dns";
import net from "node:net";
import { Agent, fetch as undiciFetch, type RequestInit as UndiciRequestInit } from "undici";
import { BlockedAddressError, hostOf, isLoopbackName, isPublicAddress, ResponseTooLargeError } from "./addresses.js";

export { BlockedAddressError, isPublicAddress, ResponseTooLargeError } from "./addresses.js";

/**
 * An outbound `fetch` for URLs that come from tenants (MCP servers, OpenAPI documents): it connects only to
 * public addresses, follows no redirects, ends every request at a deadline and stops reading a body past a
 * byte limit. The address is checked where the socket is opened, on the address actually used, so a name
 * that resolves differently between a check and the connection (DNS rebinding) gains nothing.
 */

export interface SafeFetchOptions {
  /** Admits 127/8 and ::1: local mode and tests, never a deployed control plane. */
  allowLoopback: boolean;
  /** Admits private networks (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10) for servers inside a private network. */
  allowPrivate?: boolean;
  /** The most bytes read from one response body (after decompression); more fails the body with ResponseTooLargeError. */
  maxBodyBytes: number;
  /** Deadline for a whole request, body included (an SSE stream ends there too). */
  timeoutMs: number;
  connectTimeoutMs?: number;
  /** Told when a body passes maxBodyBytes: a consumer that reads the body in the background may swallow the error. */
  onBodyLimit?: (error: ResponseTooLargeError) => void;
}

export type SafeFetch = typeof fetch & {
  /** Ends the connections this fetch holds open (idle keep-alive sockets and anything still in flight). */
  close(): Promise<void>;
};

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

function guardedLookup(policy: { allowLoopback: boolean; allowPrivate?: boolean }) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      // Every address must pass, not just the first: the socket may try any of them (happy eyeballs).
      const blocked = addresses.find((a) => !isPublicAddress(a.address, policy));
      // Which address is not said: a tenant would learn what names in the control plane's private DNS zones resolve to.
      if (blocked) return callback(new BlockedAddressError(`${hostname} resolves to a private, loopback, link-local or otherwise blocked address`), []);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" }), []);
      if (options.all) callback(null, addresses);
      else callback(null, first.address, first.family);
    });
  };
}

/** A Request input carries its own method, headers and body; the explicit init wins where both say something. */
function splitInput(input: string | URL | Request, init: RequestInit | undefined): { url: string; init: RequestInit } {
  if (typeof input === "string") return { url: input, init: init ?? {} };
  if (input instanceof URL) return { url: input.href, init: init ?? {} };
  const fromRequest: RequestInit & { duplex?: "half" } = { method: input.method, headers: input.headers, signal: input.signal };
  if (input.body) Object.assign(fromRequest, { body: input.body, duplex: "half" });
  return { url: input.url, init: { ...fromRequest, ...init } };
}

function blockedCause(error: unknown): BlockedAddressError | undefined {
  for (let e = error, hops = 0; e !== null && typeof e === "object" && hops < 8; e = (e as { cause?: unknown }).cause, hops++) {
    if (e instanceof BlockedAddressError) return e;
  }
  return undefined;
}

/** Statuses whose Response must have a null body (the constructor refuses a stream for them). */
const NULL_BODY = new Set([204, 205, 304]);

export function createSafeFetch(options: SafeFetchOptions): SafeFetch {
  const policy = { allowLoopback: options.allowLoopback, allowPrivate: options.allowPrivate ?? false };
  const { maxBodyBytes, timeoutMs } = options;
  const dispatcher = new Agent({
    connect: { lookup: guardedLookup(policy) as unknown as typeof dns.lookup, timeout: options.connectTimeoutMs ?? Math.min(timeoutMs, 10_000) },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });

  const safeFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = splitInput(input, init);
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      throw new TypeError("invalid URL");
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new BlockedAddressError(`scheme ${url.protocol} is not allowed`);
    // The lookup hook never sees an IP literal: net.connect skips DNS for those.
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (net.isIP(host) !== 0 && !isPublicAddress(host, policy)) throw new BlockedAddressError(`address ${host} is blocked`);
    if (!policy.allowLoopback && isLoopbackName(hostOf(url))) throw new BlockedAddressError(`${host} is a loopback name`);

    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = request.init.signal ? AbortSignal.any([request.init.signal, deadline]) : deadline;
    let upstream: Awaited<ReturnType<typeof undiciFetch>>;
    try {
      upstream = await undiciFetch(url, { ...(request.init as UndiciRequestInit), signal, dispatcher, redirect: "manual" });
    } catch (error) {
      throw blockedCause(error) ?? error;
    }

    const declared = Number(upstream.headers.get("content-length"));
    if (Number.isFinite(declared) && declared > maxBodyBytes) {
      void upstream.body?.cancel().catch(() => undefined);
      const error = new ResponseTooLargeError(maxBodyBytes);
      options.onBodyLimit?.(error);
      throw error;
    }
    if (upstream.status < 200) return upstream as unknown as Response;
    const body = upstream.body && !NULL_BODY.has(upstream.status) ? capped(upstream.body, maxBodyBytes, options.onBodyLimit) : null;
    const response = new Response(body, { status: upstream.status, statusText: upstream.statusText, headers: upstream.headers as unknown as Headers });
    // Callers resolve relative Location headers and log against the URL that answered.
    Object.defineProperty(response, "url", { value: upstream.url || url.href });
    return response;
  };

  return Object.assign(safeFetch, {
    close: async () => {
      await dispatcher.destroy().catch(() => undefined);
    },
  }) as SafeFetch;
}

/** Passes chunks through as they arrive (an SSE stream keeps streaming) and fails the stream past the limit. */
function capped(source: ReadableStream<Uint8Array>, limit: number, onBodyLimit?: (error: ResponseTooLargeError) => void): ReadableStream<Uint8Array> {
  let seen = 0;
  return source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > limit) {
          const error = new ResponseTooLargeError(limit);
          onBodyLimit?.(error);
          controller.error(error);
          return;
        }
        controller.enqueue(chunk);
      },
    }),
  );
}
