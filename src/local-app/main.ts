/**
 * `npm start`: runs the function app on this machine exactly as registered in functions/,
 * on the embedded default — in-process Cosmos-wire server, dev token issuer, NDJSON event sink —
 * all under the data directory (.data/ by default). The host itself is the workspace package
 * @aigov/functions-localhost (packages/functions-localhost), which knows nothing of this app;
 * this file is the app's launcher: it wires the app's settings, stores and dev endpoints into it.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { MAX_BODY_BYTES } from "../api/problem.js";
import { parseConfig } from "../config/index.js";
import { ROLES } from "../domain/common.js";
import type { EmbeddedCosmos } from "../adapters/local/embedded-cosmos.js";
import { installCoreShim, startLocalHost, type BuiltinRoute, type LocalHost } from "@aigov/functions-localhost";
import type { LocalGateway } from "../local-gateway/index.js";
import type { MockBackends } from "../local-backends/index.js";

function findRoot(dir: string): string {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, "package.json")) && existsSync(join(d, "host.json"))) return d;
    if (dirname(d) === d) throw new Error("cannot find the project root (package.json + host.json)");
  }
}

const ROOT = findRoot(__dirname);

/**
 * The function app's entry point, found as the Functions worker finds it: package.json "main" (dist/app/main.js,
 * every registration in one file, built by `npm run build`: docs/adr/020-one-file-function-app.md).
 */
function functionEntry(): string {
  const { main } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { main?: string };
  const file = main ? join(ROOT, main) : "";
  if (!main || !existsSync(file)) throw new Error(`the function app's entry point (package.json "main": ${main ?? "none"}) is missing: run npm run build`);
  return file;
}

const TokenRequest = z.strictObject({
  tenant: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
  user: z.string().min(1).max(256),
  roles: z.array(z.enum(ROLES)).max(ROLES.length),
  ttlSeconds: z.number().int().min(60).max(7 * 24 * 3600).optional(),
});

function sendJson(res: import("node:http").ServerResponse, status: number, body: unknown, type = "application/json") {
  res.writeHead(status, { "content-type": type });
  res.end(JSON.stringify(body));
}

/**
 * The most the local host buffers of a request body before a function runs (413 above, before the body is
 * read). The API refuses more than MAX_BODY_BYTES itself, with its own problem shape (and the approval
 * page with HTML); this bound is above that, so those answers stay the API's, and far below Azure's
 * 100 MiB, so nobody gets the host to buffer megabytes before authentication.
 */
export const LOCAL_HOST_MAX_BODY_BYTES = 4 * MAX_BODY_BYTES;

export interface RunningApp {
  host: LocalHost;
  dataDir: string;
  /** The embedded Cosmos server, when the app runs on it (no COSMOS_ENDPOINT configured). */
  cosmos?: EmbeddedCosmos;
  /** The local gateway serving what publishes wrote under the data dir, one per gateway instance (ADR 009). */
  gateways: Map<string, LocalGateway>;
  /** The local fake backends (OpenAI-compatible models, Content Safety) the gateway reaches through its host map. */
  backends?: MockBackends;
  /** The host's system key the durable HTTP API requires (`?code=` or `x-functions-key`); kept in <dataDir>/durabletask.key. */
  durableKey: string;
  /** After the app's clock (StartOptions.now, or the test clock) moved forward: the durable timers now due fire. */
  wakeTimers(): void;
  stop(): Promise<void>;
}

export interface StartOptions {
  port?: number;
  dataDir?: string;
  env?: NodeJS.ProcessEnv;
  quiet?: boolean;
  /** The local gateway's port (default GATEWAY_PORT or 7072; 0 = any); false: no local gateway. */
  gatewayPort?: number | false;
  /** The fake backends' port (default MOCK_BACKENDS_PORT or 7073; 0 = any); false: none. */
  backendsPort?: number | false;
  /** The clock of the gateway's limits, breakers and caches (tests move it by hand). */
  gatewayClock?: { now: () => number; sleep?: (ms: number) => Promise<void> };
  gatewayRandom?: () => number;
  /**
   * The app's clock (ms epoch) for durable history and timers (default: the real time). A test that moves it
   * gives the same time to the services (ServiceOverrides.clock) and calls RunningApp.wakeTimers() after each move.
   */
  now?: () => number;
}

/** Hosts the local gateway sends to the fake backends instead of the network (ADR 009). */
export const LOCAL_BACKEND_HOSTS = ["*.mock.localhost", "*.cognitiveservices.azure.com"];

export async function startApp(opts: StartOptions = {}): Promise<RunningApp> {
  const env = opts.env ?? process.env;
  const dataDir = resolve(ROOT, opts.dataDir ?? env.AIGOV_DATA_DIR ?? ".data");
  const port = opts.port ?? Number(env.PORT ?? 7071);
  env.AIGOV_DATA_DIR = dataDir;
  env.OUTBOX_RELAY_SCHEDULE ??= "*/2 * * * * *";
  env.APPROVAL_SWEEP_SCHEDULE ??= "0 */5 * * * *";
  env.EXEMPTION_SWEEP_SCHEDULE ??= "0 */5 * * * *";
  env.ACCESS_REVIEW_SWEEP_SCHEDULE ??= "0 */5 * * * *";
  env.PROJECT_LIFECYCLE_SCHEDULE ??= "0 */5 * * * *";
  env.GATEWAY_PUBLISH_SWEEP_SCHEDULE ??= "*/30 * * * * *";
  env.DRIFT_CHECK_SCHEDULE ??= "0 */15 * * * *";
  env.KEY_LIFECYCLE_SCHEDULE ??= "0 * * * * *";
  env.TOOL_DISCOVERY_SCHEDULE ??= "0 */5 * * * *";
  env.AGENT_SYNC_SCHEDULE ??= "0 */5 * * * *";
  env.USAGE_INGEST_SCHEDULE ??= "0 * * * * *";
  const stops: (() => Promise<void>)[] = [];
  let cosmos: EmbeddedCosmos | undefined;

  if (!env.COSMOS_ENDPOINT) {
    const { startEmbeddedCosmos } = await import("../adapters/local/embedded-cosmos.js");
    const { connectCosmos } = await import("../adapters/cosmos/connect.js");
    const embedded = await startEmbeddedCosmos({ dataDir, thread: "worker" });
    cosmos = embedded;
    stops.push(() => embedded.close());
    env.COSMOS_ENDPOINT = embedded.endpoint;
    env.COSMOS_LOCAL_KEY = embedded.key;
    env.AIGOV_LOCAL = "true";
    // What infra/main.bicep provisions in Azure.
    const provisioner = await connectCosmos(
      { endpoint: embedded.endpoint, localKey: embedded.key, database: env.COSMOS_DATABASE ?? "aigov", container: env.COSMOS_CONTAINER ?? "resources" },
      { createIfMissing: true },
    );
    provisioner.dispose();
  }

  const builtinRoutes: BuiltinRoute[] = [];
  if ((env.AUTH_MODE || "dev") === "dev") {
    const { loadOrCreateDevIssuer, DEV_AUDIENCE, DEV_ISSUER } = await import("../auth/dev-issuer.js");
    const issuer = await loadOrCreateDevIssuer(join(dataDir, "dev-issuer.json"));
    env.AUTH_MODE = "dev";
    env.AUTH_ISSUER = DEV_ISSUER;
    env.AUTH_AUDIENCE = DEV_AUDIENCE;
    env.AIGOV_LOCAL = "true";
    builtinRoutes.push(
      { method: "GET", path: "/.dev/jwks.json", handle: (_req, res) => sendJson(res, 200, issuer.jwks, "application/jwk-set+json") },
      {
        method: "POST",
        path: "/.dev/token",
        handle: async (req, res, body) => {
          // Only JSON: a cross-site <form> (text/plain, urlencoded, multipart) cannot mint a token.
          if ((req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase() !== "application/json") {
            return sendJson(res, 415, { title: "Unsupported Media Type", status: 415, detail: "send Content-Type: application/json" }, "application/problem+json");
          }
          let parsed;
          try {
            parsed = TokenRequest.safeParse(JSON.parse(body.toString("utf8") || "null"));
          } catch {
            return sendJson(res, 400, { title: "body is not JSON", status: 400 }, "application/problem+json");
          }
          if (!parsed.success) {
            const errors = parsed.error.issues.map((i) => ({ field: i.path.join("."), message: i.message }));
            return sendJson(res, 400, { title: "invalid token request", status: 400, errors }, "application/problem+json");
          }
          const { tenant, user, roles, ttlSeconds } = parsed.data;
          const token = await issuer.mint({ tenant, user, roles, ...(ttlSeconds ? { ttlSeconds } : {}) });
          sendJson(res, 200, { access_token: token, token_type: "Bearer" });
        },
      },
    );
  }

  // The portal (dist/portal); its playgrounds call the local gateways directly (docs/portal.md).
  const gatewayUrls = new Map<string, string>();
  const { portalRoutes } = await import("./portal.js");
  builtinRoutes.push(
    ...portalRoutes({
      root: join(ROOT, "dist", "portal-site", "portal"),
      gateways: () => gatewayUrls,
      // Entra sign-in needs the deployment's app registration (config.json written by azd): locally, dev tokens only.
      config: () =>
        env.AUTH_MODE === "dev"
          ? { auth: { mode: "dev" }, ...(gatewayUrls.has("default") ? { gatewayUrl: gatewayUrls.get("default") } : {}) }
          : { error: "the local host signs portal users in with dev tokens only: start it with AUTH_MODE=dev (the default)" },
    }),
  );

  // The durable part of the host: orchestrations replayed by durable-functions itself, history under .data/durable/.
  const { createDurableEngine } = await import("@aigov/functions-localhost/durable");
  const log = (level: "debug" | "info" | "warn" | "error", message: string) => {
    if (level === "debug" || (opts.quiet && level === "info")) return;
    console[level === "info" ? "log" : level](message);
  };
  // The app's clock: the real one, or one a test moves (StartOptions.now in-process; in a child process the
  // test clock, AIGOV_LOCAL_TEST_CLOCK=1, honoured in local mode only: docs/local-host.md, "The test clock").
  let now = opts.now;
  if (env.AIGOV_LOCAL_TEST_CLOCK === "1") {
    if (env.AIGOV_LOCAL !== "true") {
      for (const stop of stops.reverse()) await stop();
      throw new Error("AIGOV_LOCAL_TEST_CLOCK=1 is honoured in local mode only (the embedded store or dev tokens)");
    }
    const { loadTestClock } = await import("./test-clock.js");
    const { overrideServices } = await import("../app/services.js");
    const clock = loadTestClock(dataDir);
    now = clock.now;
    overrideServices({ clock: { now: () => new Date(clock.now()) } });
    builtinRoutes.push({
      method: "POST",
      path: "/.dev/clock",
      handle: (req, res, body) => {
        if ((req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase() !== "application/json") {
          return sendJson(res, 415, { title: "Unsupported Media Type", status: 415, detail: "send Content-Type: application/json" }, "application/problem+json");
        }
        try {
          const { advanceMs = 0 } = JSON.parse(body.toString("utf8") || "{}") as { advanceMs?: number };
          clock.advance(advanceMs);
        } catch (err) {
          return sendJson(res, 400, { title: "invalid clock request", status: 400, detail: err instanceof Error ? err.message : String(err) }, "application/problem+json");
        }
        durable.wakeTimers();
        sendJson(res, 200, { now: new Date(clock.now()).toISOString(), offsetMs: clock.offsetMs() });
      },
    });
  }
  const durable = createDurableEngine({ dataDir, log, ...(now ? { now } : {}) });

  installCoreShim();
  // Requests addressed to loopback names are served, and those to the configured public URL's host.
  let publicHost: string | undefined;
  try {
    publicHost = env.AIGOV_PUBLIC_URL ? new URL(env.AIGOV_PUBLIC_URL).hostname : undefined;
  } catch {
    publicHost = undefined; // the config check below reports the bad URL
  }
  const host = await startLocalHost({
    port,
    ...(publicHost ? { allowedHosts: [publicHost] } : {}),
    maxRequestBodyBytes: LOCAL_HOST_MAX_BODY_BYTES,
    functionFiles: [functionEntry()],
    builtinRoutes: [...builtinRoutes, ...durable.builtinRoutes],
    inputBindingProviders: durable.inputBindingProviders,
    log,
  });
  // Settings that need the bound port are set before any function runs (config is parsed lazily).
  if (env.AUTH_MODE === "dev") env.AUTH_JWKS_URI ||= `${host.url}/.dev/jwks.json`;
  // The durable client only keeps the binding's URLs when WEBSITE_HOSTNAME is set (else it assumes localhost:7071).
  env.WEBSITE_HOSTNAME = `127.0.0.1:${host.port}`;
  env.AIGOV_PUBLIC_URL ||= host.url;
  // The portal's pages (this origin, by either loopback name) call the local gateways from the browser:
  // the compiled APIs' cors policies allow exactly these origins unless GATEWAY_BROWSER_ORIGINS says otherwise.
  const publicOrigin = URL.canParse(env.AIGOV_PUBLIC_URL) ? [new URL(env.AIGOV_PUBLIC_URL).origin] : [];
  env.GATEWAY_BROWSER_ORIGINS ||= [...new Set([...publicOrigin, host.url, `http://localhost:${host.port}`])].join(",");
  // Fail at start, not on the first request, when the settings are wrong.
  try {
    parseConfig(env);
  } catch (err) {
    await host.close();
    for (const stop of stops.reverse()) await stop();
    throw err;
  }
  // Resumes persisted orchestrations: pending timers re-armed, unfinished activities run again.
  await durable.attach(host);
  stops.push(() => durable.close());

  // The data path: fake backends, then a local gateway per instance over the files publishes write.
  let backends: MockBackends | undefined;
  const gateways = new Map<string, LocalGateway>();
  if (opts.backendsPort !== false) {
    const { startMockBackends } = await import("../local-backends/index.js");
    const started = await startMockBackends({ port: opts.backendsPort ?? Number(env.MOCK_BACKENDS_PORT ?? 7073) });
    backends = started;
    stops.push(() => started.close());
  }
  if (opts.gatewayPort !== false) {
    const config = parseConfig(env);
    const { startLocalGateway } = await import("../local-gateway/index.js");
    const { EncryptedFileSecretStore } = await import("../adapters/local/encrypted-secret-store.js");
    const { localGatewayFolder } = await import("../app/services.js");
    // The gateway reads the same secret store as the app: subscription keys by exact version (a filler,
    // never stored, reads as no key: nobody holds it), Key Vault-backed named values by their identifier.
    const secrets = new EncryptedFileSecretStore(join(dataDir, "secrets"));
    const sources = {
      resolveSecret: async (ref: { name: string; version: string }) => {
        const v = await secrets.get(ref.name, ref.version);
        if (!v) throw new Error(`no secret ${ref.name}@${ref.version}`);
        return v.value;
      },
      resolveKeyVaultSecret: async (id: string) => {
        // https://<vault>/secrets/<name>[/<version>]: a version pins it, as Key Vault's identifiers do.
        const [name, version] = new URL(id).pathname.split("/").filter(Boolean).slice(1);
        return (await secrets.get(name ?? "", version))?.value;
      },
    };
    const target = backends?.url;
    const hosts = target ? LOCAL_BACKEND_HOSTS.map((host) => ({ host, target })) : [];
    const instances = ["default", ...Object.keys(config.gatewayInstances).filter((n) => !("serviceName" in config.gatewayInstances[n]!))];
    const gatewayPort = opts.gatewayPort ?? Number(env.GATEWAY_PORT ?? 7072);
    const { FilePublisher } = await import("../adapters/local/file-publisher.js");
    const { instanceBaseline } = await import("../policy/compile/instance.js");
    for (const [i, instance] of instances.entries()) {
      const root = localGatewayFolder(dataDir, instance);
      // The instance's own set-up, as infra/ deploys it in Azure: the baseline global policy (ADR 023).
      await new FilePublisher(root).publish([instanceBaseline()], {});
      const gw = await startLocalGateway({
        root,
        logDir: join(dataDir, "gateway", ...(instance === "default" ? [] : [instance])),
        port: i === 0 ? gatewayPort : 0,
        sources,
        hosts,
        ...(opts.gatewayClock ? { now: opts.gatewayClock.now, ...(opts.gatewayClock.sleep ? { sleep: opts.gatewayClock.sleep } : {}) } : {}),
        ...(opts.gatewayRandom ? { random: opts.gatewayRandom } : {}),
        serviceName: instance === "default" ? "aigov-local" : `aigov-local-${instance}`,
        log: (m) => log("warn", m),
      });
      gateways.set(instance, gw);
      gatewayUrls.set(instance, gw.url);
      stops.push(() => gw.close());
    }
  }

  return {
    host,
    dataDir,
    durableKey: durable.systemKey,
    wakeTimers: () => durable.wakeTimers(),
    gateways,
    ...(backends ? { backends } : {}),
    ...(cosmos ? { cosmos } : {}),
    stop: async () => {
      await host.close();
      for (const stop of stops.reverse()) await stop();
    },
  };
}

if (require.main === module) {
  const started = Date.now();
  const envFile = join(ROOT, ".env");
  if (existsSync(envFile)) process.loadEnvFile(envFile);
  startApp()
    .then((app) => {
      console.log(`aigov local host listening on ${app.host.url} (data in ${app.dataDir}, Node ${process.version}) — ready in ${Date.now() - started} ms`);
      console.log(`  portal:  ${app.host.url}/portal/`);
      console.log(`  health:  ${app.host.url}/api/health`);
      console.log(`  openapi: ${app.host.url}/api/openapi.json`);
      for (const [name, gw] of app.gateways) console.log(`  gateway${name === "default" ? "" : ` (${name})`}: ${gw.url}/aigov/<key>/<projectId>/… (serves ${join(app.dataDir, name === "default" ? "apim" : `apim-${name}`)})`);
      if (app.backends) console.log(`  fake backends: ${app.backends.url} (https://<name>.mock.localhost, https://<name>.cognitiveservices.azure.com through the gateway)`);
      if (app.cosmos) console.log(`  cosmos (embedded): ${app.cosmos.endpoint}`);
      console.log(`  durable API: ${app.host.url}/runtime/webhooks/durabletask/… (x-functions-key or ?code= from ${join(app.dataDir, "durabletask.key")})`);
      let stopping = false;
      const shutdown = (signal: string) => {
        if (stopping) return;
        stopping = true;
        console.log(`${signal}: stopping`);
        void app.stop().then(() => process.exit(0));
      };
      process.on("SIGINT", () => shutdown("SIGINT"));
      process.on("SIGTERM", () => shutdown("SIGTERM"));
    })
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    });
}
