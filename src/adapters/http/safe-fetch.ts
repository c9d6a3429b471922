import dns from "node:dns";
import net from "node:net";
import ipaddr from "ipaddr.js";
import { Agent, fetch as undiciFetch, type RequestInit as UndiciRequestInit } from "undici";

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

export class BlockedAddressError extends Error {
  readonly code = "blocked_address";
  constructor(message: string) {
    super(message);
    this.name = "BlockedAddressError";
  }
}

export class ResponseTooLargeError extends Error {
  readonly code = "response_too_large";
  constructor(readonly limitBytes: number) {
    super(`response body exceeds ${limitBytes} bytes`);
    this.name = "ResponseTooLargeError";
  }
}

/** Private networks an operator may open with allowPrivate; everything else that is not plain unicast stays shut. */
const PRIVATE_RANGES = new Set(["private", "uniqueLocal", "carrierGradeNat"]);

/**
 * Public-looking addresses that are Azure's own platform endpoints, reachable from inside Azure only: 168.63.129.16
 * is the WireServer (VM agent configuration, extension settings), the host agent (port 32526), platform DNS
 * and health probes — the metadata endpoint's neighbour in what a tenant's URL must never reach.
 */
const PLATFORM_ADDRESSES = new Set(["168.63.129.16"]);

/**
 * Whether a connection to `addr` (an IP address in canonical text) is acceptable. IPv4-mapped and IPv4-compatible IPv6 forms are judged as the
 * IPv4 address they carry. Link-local (169.254/16 holds the cloud metadata endpoint, fe80::/10), unspecified
 * (0.0.0.0 reaches the local host), multicast, broadcast, reserved, the translation prefixes (NAT64,
 * 6to4, Teredo, which can tunnel to any IPv4 address) and Azure's platform address are refused whatever the options say.
 */
export function isPublicAddress(addr: string, options: { allowLoopback: boolean; allowPrivate?: boolean }): boolean {
  let range: string;
  try {
    // Only canonical text: ipaddr.js also reads "1.2.3" or "0x7f.1", which resolvers may read differently.
    if (typeof addr !== "string" || net.isIP(addr) === 0) return false;
    let parsed = ipaddr.process(addr);
    // IPv4-compatible (::a.b.c.d, deprecated; a URL parser writes [::127.0.0.1] as [::7f00:1]): judged as the IPv4 address.
    if (parsed.kind() === "ipv6" && isIpv4Compatible(parsed as ipaddr.IPv6)) parsed = ipv4Of(parsed as ipaddr.IPv6);
    if (PLATFORM_ADDRESSES.has(parsed.toString())) return false;
    range = parsed.range();
  } catch {
    return false;
  }
  if (range === "unicast") return true;
  if (range === "loopback") return options.allowLoopback;
  return options.allowPrivate === true && PRIVATE_RANGES.has(range);
}

/** ::/96 but :: and ::1 (the unspecified and loopback addresses, which ipaddr.js names itself). */
function isIpv4Compatible(addr: ipaddr.IPv6): boolean {
  const parts = addr.parts;
  return parts.slice(0, 6).every((p) => p === 0) && (parts[6] !== 0 || (parts[7] ?? 0) > 1);
}

function ipv4Of(addr: ipaddr.IPv6): ipaddr.IPv4 {
  const [hi = 0, lo = 0] = addr.parts.slice(6);
  return new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
}

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
    // Loopback by definition (RFC 6761), whatever a resolver makes of it ("localhost." included).
    if (!policy.allowLoopback && /(^|\.)localhost\.*$/i.test(host)) throw new BlockedAddressError(`${host} is a loopback name`);

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
