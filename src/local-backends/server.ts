import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import { type AddressInfo } from "node:net";
import { CONTROL_PREFIX, control } from "./control.js";
import { serveInstance } from "./dispatch.js";
import { decodePath, flatHeaders, readBody, writeAnswer } from "./http-io.js";
import { Instances, normaliseHost } from "./instances.js";
import { type Call, parseJsonBody } from "./service.js";
import { type MockBackends } from "./types.js";

/** One plain-HTTP server on 127.0.0.1 for every fake; instances are told apart by the Host header. */
export async function startMockBackends(opts: { port?: number } = {}): Promise<MockBackends> {
  const instances = new Instances();
  // Cancels latency sleeps on close, so a slow instance cannot keep the process alive.
  const closing = new AbortController();

  const server = createServer((req, res) => {
    handle(req, res, instances, closing.signal).catch((e: unknown) => {
      if (closing.signal.aborted) {
        res.destroy();
        return;
      }
      const message = e instanceof Error ? e.message : String(e);
      void writeAnswer(res, { status: 500, json: { error: { message: `mock backend failure: ${message}`, type: "server_error", code: "mock_failure" } } });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    configure: (host, behaviour) => void instances.configure(host, behaviour),
    requests: (host) => instances.requests(host),
    reset: () => instances.reset(),
    close: () =>
      new Promise<void>((resolve, reject) => {
        closing.abort();
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, instances: Instances, signal: AbortSignal): Promise<void> {
  const url = new URL(req.url ?? "/", "http://mock.invalid");
  const path = decodePath(url.pathname);
  const method = (req.method ?? "GET").toUpperCase();
  const raw = await readBody(req);
  if (path.startsWith(CONTROL_PREFIX)) {
    await writeAnswer(res, control(method, path, raw, instances));
    return;
  }
  const json = parseJsonBody(raw);
  const call: Call = {
    host: normaliseHost(req.headers.host ?? ""),
    method,
    path,
    query: Object.fromEntries(url.searchParams),
    headers: flatHeaders(req),
    json,
  };
  instances.record(call.host, {
    method: call.method,
    path: call.path,
    query: call.query,
    headers: call.headers,
    body: json.ok ? json.value : json.empty ? undefined : raw,
    at: Date.now(),
  });
  await writeAnswer(res, await serveInstance(call, instances, signal));
}
