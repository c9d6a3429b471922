/**
 * The local gateway: the data path on a developer's machine. It serves exactly what a publish wrote
 * under the gateway folder (ARM resource paths), running the policies with the semantics the APIM
 * policy reference documents, against backends reached through the host mappings (the local fakes)
 * or the network. docs/adr/009-local-gateway.md says what it emulates, what it cannot, and how it is
 * kept honest; MCP servers (pass-through, and made of REST tools: runtime/mcp.ts) are described in
 * docs/gateway.md, "MCP servers at the gateway".
 */
import { mkdir } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { type AddressInfo } from "node:net";
import { initExpressions } from "./expressions/engine.js";
import { type LoadIssue, type TokenUsage } from "./policy/types.js";
import { Backends } from "./runtime/backends.js";
import { Counters } from "./runtime/counters.js";
import { Pipeline } from "./runtime/gateway.js";
import { GatewayLogs, TABLES } from "./runtime/logs.js";
import { Outbound, type HostMapping } from "./runtime/outbound.js";
import { SemanticCache } from "./runtime/semantic-cache.js";
import { folderStamp, publishedStamp, scanFolder, unsettled, type FolderScan } from "./runtime/folder.js";
import { loadSnapshot, SnapshotCache, type Snapshot, type SnapshotSources } from "./runtime/snapshot.js";

export type { HostMapping } from "./runtime/outbound.js";
export type { LoadIssue } from "./policy/types.js";
export type { SnapshotSources } from "./runtime/snapshot.js";

/** Every how many ticks the poller looks at every file, not only at the publish marker (hand edits). */
const FULL_LOOK_EVERY = 5;

export interface LocalGatewayOptions {
  /** The gateway's folder: what the file publisher writes (.data/apim/). */
  root: string;
  port?: number;
  /** Where the APIM-shaped logs go (.data/gateway/); none when absent. */
  logDir?: string;
  sources: SnapshotSources;
  hosts?: HostMapping[];
  /** The clock of limits, breakers and caches (tests pass a virtual one). */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** Reload when the folder changes (default true). */
  watch?: boolean;
  /** How often the folder's publish marker is looked at (default 200 ms); every file, five times as seldom. */
  pollMs?: number;
  region?: string;
  serviceName?: string;
  /** Requests larger than this are refused (v2 tiers buffer at most 2 MiB). */
  maxRequestBytes?: number;
  log?: (message: string) => void;
}

export interface LocalGateway {
  url: string;
  port: number;
  /** Loads the folder again now; resolves with the load issues (empty when everything loaded). */
  reload(): Promise<LoadIssue[]>;
  issues(): LoadIssue[];
  flushLogs(): Promise<void>;
  close(): Promise<void>;
}

export async function startLocalGateway(opts: LocalGatewayOptions): Promise<LocalGateway> {
  await initExpressions();
  await mkdir(opts.root, { recursive: true });
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const log = opts.log ?? ((m: string) => console.warn(m));
  const cache = new SnapshotCache();
  let snapshot: Snapshot = await loadSnapshot(opts.root, opts.sources, cache);
  const backends = new Backends(snapshot.backends, now, random);
  const logs = new GatewayLogs(opts.logDir);
  const report = (issues: LoadIssue[]) => {
    for (const i of issues.slice(0, 20)) log(`local gateway: ${i.file}:${i.line}:${i.column}: ${i.message}`);
    if (issues.length > 20) log(`local gateway: … and ${issues.length - 20} more load issues`);
  };
  report(snapshot.issues);

  const pipeline = new Pipeline({
    snapshot: () => snapshot,
    backends,
    outbound: new Outbound(opts.hosts ?? []),
    logs,
    random,
    region: opts.region ?? "local",
    serviceName: opts.serviceName ?? "aigov-local",
    maxRequestBytes: opts.maxRequestBytes ?? 2 * 1024 * 1024,
    maxResponseBytes: 32 * 1024 * 1024,
    services: {
      now,
      sleep: opts.sleep ?? ((ms) => new Promise((ok) => setTimeout(ok, ms))),
      counters: new Counters(now),
      semanticCache: new SemanticCache(now),
      managedIdentityToken: (resource, clientId) => localIdentityToken(resource, clientId),
      metric: (namespace, dimensions, usage: TokenUsage) => {
        const at = new Date(now()).toISOString();
        for (const [name, value] of [["Prompt Tokens", usage.promptTokens], ["Completion Tokens", usage.completionTokens], ["Total Tokens", usage.totalTokens]] as const) {
          logs.write(TABLES.metrics, { TimeGenerated: at, Namespace: namespace, Name: name, Value: value, Dimensions: dimensions });
        }
      },
    },
  });

  let reloading: Promise<LoadIssue[]> | undefined;
  let again = false;
  /** `scan`: the poller's look at the folder, taken just now (a reload asked for by anyone else looks itself). */
  const reload = (scan?: FolderScan): Promise<LoadIssue[]> => {
    if (reloading) {
      again = true;
      return reloading;
    }
    reloading = (async () => {
      let seen = scan;
      do {
        again = false;
        const next = await loadSnapshot(opts.root, opts.sources, cache, seen);
        seen = undefined;
        backends.update(next.backends);
        snapshot = next;
        report(next.issues);
      } while (again);
      return snapshot.issues;
    })().finally(() => (reloading = undefined));
    return reloading;
  };

  // The folder is watched by polling its files' stamps (folder.ts): Node's recursive fs.watch on
  // Linux reads new folders synchronously in its own event handler and throws (uncaught) when a publish
  // removes one in between — which a publish that deletes an API does. Each tick looks at the publish
  // marker only (one stat: a publish is seen at the next tick); every FULL_LOOK_EVERY-th tick, and after
  // a change, at every file (a hand edit is seen within about a second). Looking at every file five times
  // a second cost a twentieth of a busy test's CPU.
  let poller: NodeJS.Timeout | undefined;
  if (opts.watch !== false) {
    const first = await scanFolder(opts.root);
    let last = folderStamp(first);
    let marker = await publishedStamp(opts.root);
    // A file modified as the folder was last looked at may have changed again since, unstamped: reload once more.
    let recheck = unsettled(first);
    let busy = false;
    let ticks = 0;
    poller = setInterval(() => {
      if (busy) return;
      busy = true;
      const everyFile = ++ticks % FULL_LOOK_EVERY === 0 || recheck;
      void (async () => {
        const now = await publishedStamp(opts.root);
        if (!everyFile && now === marker) return;
        marker = now;
        const scan = await scanFolder(opts.root);
        const stamp = folderStamp(scan);
        if (stamp === last && !recheck) return;
        last = stamp;
        recheck = unsettled(scan);
        await reload(scan);
      })()
        .catch((err: unknown) => {
          // A publish removed a file while it was being read: the folder is changing, so read it again on
          // the next tick (its stamp may already be the final one) rather than serve what was there before.
          if ((err as NodeJS.ErrnoException).code === "ENOENT") {
            last = "";
            recheck = true;
          } else log(`local gateway: reload failed: ${String(err)}`);
        })
        .finally(() => (busy = false));
    }, opts.pollMs ?? 200);
    poller.unref();
  }

  const server: Server = createServer((req, res) => {
    pipeline.handle(req, res).catch((err: unknown) => {
      log(`local gateway: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ statusCode: 500, message: "Internal server error" }));
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(opts.port ?? 0, "127.0.0.1", () => ok());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    reload,
    issues: () => snapshot.issues,
    flushLogs: () => logs.flush(),
    close: async () => {
      clearInterval(poller);
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
      await logs.flush();
    },
  };
}

/**
 * What authentication-managed-identity and managed-identity backend credentials send locally: an
 * unsigned token naming the audience. The local fakes only check that a bearer token is present; a
 * real Azure resource would refuse it (use API-key backends against real endpoints locally).
 */
export function localIdentityToken(resource: string, clientId?: string): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "none", typ: "JWT" })}.${part({ aud: resource, iss: "aigov-local-gateway", ...(clientId ? { appid: clientId } : {}) })}.`;
}
