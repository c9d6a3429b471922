import { type IncomingMessage, type ServerResponse } from "node:http";
import { setImmediate as nextTurn } from "node:timers/promises";
import { type Answer } from "./service.js";

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export function flatHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

export function decodePath(pathname: string): string {
  try {
    return decodeURIComponent(pathname);
  } catch {
    return pathname;
  }
}

export async function writeAnswer(res: ServerResponse, answer: Answer): Promise<void> {
  if (res.destroyed || res.headersSent) return;
  if ("events" in answer) {
    res.writeHead(answer.status, { "content-type": "text/event-stream", "cache-control": "no-cache", ...answer.headers });
    res.flushHeaders();
    for (const payload of answer.events) {
      if (res.destroyed) return;
      res.write(`data: ${payload}\n\n`);
      // A turn of the event loop between chunks, so each leaves as its own write and a gateway under
      // test really sees a stream rather than one buffered body.
      await nextTurn();
    }
    res.end();
    return;
  }
  const body = JSON.stringify(answer.json);
  res.writeHead(answer.status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...answer.headers });
  res.end(body);
}
