import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { startLocalGateway, type LocalGateway, type LocalGatewayOptions } from "../../src/local-gateway/index.js";
import { startMockBackends, type MockBackends } from "../../src/local-backends/index.js";

/** A gateway folder written by hand, the way the file publisher writes one (ARM paths, `{ properties }`). */
export class GatewayFolder {
  readonly root = mkdtempSync(join(tmpdir(), "aigov-gw-"));
  json(path: string, properties: unknown): this {
    const file = join(this.root, `${path}.json`);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify({ properties }, null, 2));
    return this;
  }
  xml(path: string, text: string): this {
    const file = join(this.root, `${path}.xml`);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    return this;
  }
}

/** A virtual clock: limits, breakers and caches move only when the test says so. */
export class VirtualClock {
  t = Date.UTC(2026, 11, 3, 12, 0, 0);
  now = () => this.t;
  advance(ms: number) {
    this.t += ms;
  }
}

export interface Harness {
  gateway: LocalGateway;
  mocks: MockBackends;
  clock: VirtualClock;
  logDir: string;
  close(): Promise<void>;
}

export async function startHarness(folder: GatewayFolder, over: Partial<LocalGatewayOptions> = {}): Promise<Harness> {
  const mocks = await startMockBackends();
  const clock = new VirtualClock();
  const logDir = mkdtempSync(join(tmpdir(), "aigov-gwlog-"));
  const gateway = await startLocalGateway({
    root: folder.root,
    logDir,
    watch: false,
    now: clock.now,
    sleep: async () => undefined,
    hosts: [
      { host: "*.mock.localhost", target: mocks.url },
      { host: "*.cognitiveservices.azure.com", target: mocks.url },
    ],
    sources: { resolveSecret: async (ref) => `secret:${ref.name}:${ref.version}`, resolveKeyVaultSecret: async (id) => `kv:${id.split("/").pop()}` },
    log: () => undefined,
    ...over,
  });
  return { gateway, mocks, clock, logDir, close: async () => (await gateway.close(), await mocks.close()) };
}

export const policies = (inbound: string, backend = "<base />", outbound = "<base />", onError = "<base />") =>
  `<policies><inbound><base />${inbound}</inbound><backend>${backend}</backend><outbound>${outbound}</outbound><on-error>${onError}</on-error></policies>`;

export async function call(gw: LocalGateway, path: string, init: { method?: string; key?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${gw.url}${path}`, {
    method: init.method ?? "POST",
    headers: { "content-type": "application/json", ...(init.key ? { "api-key": init.key } : {}), ...init.headers },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json: json as Record<string, unknown> };
}
