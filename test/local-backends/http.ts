import { type IncomingHttpHeaders, request } from "node:http";

/**
 * Plain node:http, because global fetch (undici) will not let a test override the Host header, and the
 * fakes pick the instance by Host.
 */
export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json<T = unknown>(): T;
}

export interface Send {
  host?: string;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  /** Serialised as JSON; use `raw` to send anything else. */
  body?: unknown;
  raw?: string;
}

export function send(port: number, s: Send): Promise<Reply> {
  const payload = s.raw ?? (s.body === undefined ? undefined : JSON.stringify(s.body));
  const headers: Record<string, string> = { host: s.host ?? "eastus.mock.localhost", ...s.headers };
  if (payload !== undefined) headers["content-type"] ??= "application/json";
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method: s.method ?? (payload === undefined ? "GET" : "POST"), path: s.path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: <T>() => JSON.parse(text) as T });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** The `data:` payloads of an SSE body, in order; asserts the framing on the way. */
export function ssePayloads(text: string): string[] {
  if (!text.endsWith("\n\n")) throw new Error(`SSE body does not end with a blank line: ${JSON.stringify(text.slice(-40))}`);
  return text
    .slice(0, -2)
    .split("\n\n")
    .map((event) => {
      if (!event.startsWith("data: ")) throw new Error(`not a data event: ${JSON.stringify(event)}`);
      return event.slice("data: ".length);
    });
}
