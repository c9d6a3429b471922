import net from "node:net";
import ipaddr from "ipaddr.js";

/**
 * Which addresses a tenant's URL may reach, and the errors the bounded fetch (safe-fetch.ts) fails with: kept
 * apart from the fetch, so the checks made when a URL is registered load no HTTP client.
 */

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


/**
 * A URL's host as the address checks read it: without an IPv6 literal's brackets, in lower case, and without a
 * fully qualified name's root dot (resolvers ignore it: "localhost." is localhost).
 */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, "").toLowerCase().replace(/\.+$/, "");
}

/** A loopback name by definition (RFC 6761: localhost and its subdomains), whatever a resolver makes of it. `host`: as hostOf gives it. */
export function isLoopbackName(host: string): boolean {
  return host === "localhost" || host.endsWith(".localhost");
}
