import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CosmosClient, type Container } from "@azure/cosmos";
import { AigovClient } from "../../src/client/index.js";
import type { Role } from "../../src/domain/common.js";
import type { CloudEvent } from "../../src/ports/events.js";
import { startApp, type RunningApp } from "../../src/local-app/main.js";
import type { LocalGateway } from "../../src/local-gateway/index.js";
import type { MockBackends } from "../../src/local-backends/index.js";

export interface TestApp {
  url: string;
  app: RunningApp;
  anonymous: AigovClient;
  /** A client with a dev token for (tenant, user, roles). */
  as(tenant: string, user: string, roles: Role[]): Promise<AigovClient>;
  token(tenant: string, user: string, roles: Role[]): Promise<string>;
  /** Runs the outbox relay once, as its timer would. */
  relay(): Promise<void>;
  /** Every event delivered to the local sink so far. */
  events(): CloudEvent[];
  /** Direct access to the stored documents (bypassing the API), for checks and tampering. */
  container(): Container;
  /** The local gateway (default instance), serving what publishes wrote under the data dir. */
  gateway: LocalGateway;
  /** The fake backends behind the gateway (https://<name>.mock.localhost, *.cognitiveservices.azure.com). */
  backends: MockBackends;
  /** The gateway's clock: limits, breakers and caches move only when a test advances it. */
  clock: GatewayClock;
  /**
   * The app's clock: durable history and timers (rotation overlaps, approval escalations and deadlines,
   * retries) and, when the test gives it to the services (`overrideServices({ clock: t.appClock })`), the
   * domain's time. Real time until a test moves it forward; `advance` wakes the durable timers now due.
   */
  appClock: AppClock;
  stop(): Promise<void>;
}

/**
 * The app's clock in tests: the real time plus an offset that only moves forward. It keeps flowing (retry
 * back-offs and short waits work as usual) and jumps when a test advances it, instead of sleeping through
 * an overlap, an escalation or an expiry.
 */
export class AppClock {
  offsetMs = 0;
  private readonly moved: (() => void)[] = [];
  /** ms epoch, for the durable engine (StartOptions.now). */
  ms = (): number => Date.now() + this.offsetMs;
  /** The services' Clock port (ServiceOverrides.clock). */
  now = (): Date => new Date(this.ms());
  /** Moves the clock forward; the durable timers now due fire (their completion is asynchronous: wait for its effect). */
  advance(ms: number): void {
    if (ms < 0) throw new RangeError("the app's clock only moves forward");
    this.offsetMs += ms;
    for (const f of this.moved) f();
  }
  onAdvance(f: () => void): void {
    this.moved.push(f);
  }
}

/** A virtual clock for the local gateway. It starts at the real time, so quota windows line up with what the app writes. */
export class GatewayClock {
  t = Date.now();
  now = () => this.t;
  sleep = async (ms: number) => void (this.t += ms);
  advance(ms: number): void {
    this.t += ms;
  }
}

/**
 * Starts the real app in this process on the embedded default (fresh data dir, ephemeral port),
 * loading the function app's entry point (package.json "main", dist/app/main.js) exactly as `npm start` does.
 * The outbox relay timer is parked so tests drive delivery deterministically.
 */
export async function startTestApp(opts: { appClock?: AppClock } = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), "aigov-test-"));
  process.env.OUTBOX_RELAY_SCHEDULE = "0 0 0 1 1 *";
  process.env.APPROVAL_SWEEP_SCHEDULE = "0 0 0 1 1 *";
  process.env.GATEWAY_PUBLISH_SWEEP_SCHEDULE = "0 0 0 1 1 *";
  process.env.DRIFT_CHECK_SCHEDULE = "0 0 0 1 1 *";
  process.env.KEY_LIFECYCLE_SCHEDULE = "0 0 0 1 1 *";
  process.env.TOOL_DISCOVERY_SCHEDULE = "0 0 0 1 1 *";
  process.env.AGENT_SYNC_SCHEDULE = "0 0 0 1 1 *";
  process.env.USAGE_INGEST_SCHEDULE = "0 0 0 1 1 *";
  process.env.PUBLISH_RETRY_FIRST_INTERVAL_MS = "100";
  process.env.PUBLISH_RETRY_MAX_ATTEMPTS = "4";
  for (const k of ["COSMOS_ENDPOINT", "AUTH_MODE", "AUTH_JWKS_URI", "EVENTGRID_TOPIC_ENDPOINT", "KEYVAULT_URI", "AIGOV_PUBLIC_URL", "WEBSITE_HOSTNAME", "GATEWAY_BROWSER_ORIGINS"]) delete process.env[k];
  const clock = new GatewayClock();
  const appClock = opts.appClock ?? new AppClock();
  const app = await startApp({ port: 0, dataDir, quiet: true, gatewayPort: 0, backendsPort: 0, gatewayClock: clock, now: appClock.ms });
  appClock.onAdvance(() => app.wakeTimers());
  const url = app.host.url;
  const anonymous = new AigovClient({ endpoint: url });
  const tokens = new Map<string, string>();
  const token = async (tenant: string, user: string, roles: Role[]) => {
    const key = JSON.stringify([tenant, user, roles]);
    let t = tokens.get(key);
    if (!t) {
      t = await anonymous.dev.token({ tenant, user, roles });
      tokens.set(key, t);
    }
    return t;
  };
  let cosmosClient: CosmosClient | undefined;
  return {
    url,
    app,
    anonymous,
    token,
    as: async (tenant, user, roles) => anonymous.withToken(await token(tenant, user, roles)),
    relay: () => app.host.invokeTimer("outboxRelay"),
    events: () => {
      const file = join(dataDir, "events.ndjson");
      if (!existsSync(file)) return [];
      return readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as CloudEvent);
    },
    container: () => {
      cosmosClient ??= new CosmosClient({
        endpoint: app.cosmos!.endpoint,
        key: app.cosmos!.key,
        connectionPolicy: { enableEndpointDiscovery: false },
      });
      return cosmosClient.database("aigov").container("resources");
    },
    gateway: app.gateways.get("default")!,
    backends: app.backends!,
    clock,
    appClock,
    stop: async () => {
      cosmosClient?.dispose();
      await app.stop();
    },
  };
}

export const projectSpec = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  environment: "dev" as const,
  owner: "alice",
  ...extra,
});
