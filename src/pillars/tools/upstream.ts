/**
 * Where the control plane (discovery, OpenAPI import) and the gateway may be sent. Checked when a
 * server is registered (a 400 with the field) and again at connect time on the resolved address
 * (src/adapters/http/safe-fetch.ts), so a name that resolves to a private address later is still refused.
 */
import { isIP } from "node:net";
import { hostOf, isLoopbackName, isPublicAddress } from "../../adapters/http/addresses.js";

/** Why an upstream URL is refused, or undefined when it may be used. Locally, loopback is allowed (and nothing else private). */
export function refuseUpstream(url: string, allowLoopback: boolean): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "is not a URL";
  }
  if (u.username || u.password) return "must not carry credentials (use auth)";
  if (u.protocol === "http:" && !allowLoopback) return "must use https";
  const host = hostOf(u);
  if (isIP(host)) return isPublicAddress(host, { allowLoopback }) ? undefined : `${host} is a private, loopback or link-local address`;
  if (isLoopbackName(host)) return allowLoopback ? undefined : "localhost is not reachable from the control plane";
  if (u.protocol === "http:" && allowLoopback) return "plain http is allowed for loopback addresses only";
  return undefined;
}
