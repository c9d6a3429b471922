/**
 * The local gateway's network: requests to backends. Hosts matched by a mapping (the local fakes:
 * `*.mock.localhost`, `*.cognitiveservices.azure.com`) go to a local address over plain HTTP with the
 * original Host header, the way a hosts-file entry and a TLS-terminating proxy would route them;
 * every other host is reached over HTTPS as it is (a real Azure OpenAI endpoint works too).
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";

export interface HostMapping {
  /** A host name, or `*.suffix` for every host under a domain. */
  host: string;
  /** Where matching requests go, e.g. http://127.0.0.1:7073. */
  target: string;
}

export interface OutboundResponse {
  status: number;
  headers: Record<string, string[]>;
  body: IncomingMessage;
}

export class OutboundError extends Error {
  constructor(
    message: string,
    readonly timeout: boolean,
  ) {
    super(message);
  }
}

/** Headers a proxy never forwards (RFC 9110 §7.6.1), plus the ones the connection sets itself. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"]);

export function matchesHost(pattern: string, host: string): boolean {
  const h = host.toLowerCase();
  const p = pattern.toLowerCase();
  return p.startsWith("*.") ? h.endsWith(p.slice(1)) : h === p;
}

export class Outbound {
  constructor(private readonly hosts: HostMapping[]) {}

  send(url: URL, method: string, headers: Record<string, string[]>, body: Buffer | undefined, timeoutMs: number): Promise<OutboundResponse> {
    const mapped = this.hosts.find((m) => matchesHost(m.host, url.hostname));
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k.toLowerCase())) out[k] = v;
    out.host = url.host;
    if (body !== undefined) out["content-length"] = String(body.length);
    const target = mapped ? new URL(mapped.target) : url;
    const send = mapped || url.protocol === "http:" ? httpRequest : httpsRequest;
    return new Promise((resolve, reject) => {
      const req = send(
        {
          protocol: target.protocol,
          hostname: target.hostname,
          port: target.port || (target.protocol === "https:" ? 443 : 80),
          method,
          path: `${url.pathname}${url.search}`,
          headers: out,
          ...(mapped ? {} : { servername: url.hostname }),
        },
        (res) => {
          clearTimeout(timer);
          const h: Record<string, string[]> = {};
          for (let i = 0; i < res.rawHeaders.length; i += 2) {
            const k = res.rawHeaders[i]!;
            (h[k] ??= []).push(res.rawHeaders[i + 1]!);
          }
          resolve({ status: res.statusCode ?? 502, headers: h, body: res });
        },
      );
      const timer = setTimeout(() => {
        req.destroy(new OutboundError(`the backend did not answer within ${timeoutMs} ms`, true));
      }, timeoutMs);
      req.on("error", (err) => {
        clearTimeout(timer);
        reject(err instanceof OutboundError ? err : new OutboundError(err.message, false));
      });
      req.end(body);
    });
  }
}

export async function readAll(body: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > limit) throw new OutboundError(`the backend's answer exceeds ${limit} bytes`, false);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}
