// Local stand-in for the Azure Functions host + Node.js worker.
//
// Loads compiled v4-model function files (their `app.http` / `app.timer` / `df.app.*` calls are
// captured by the @azure/functions-core shim), then serves them:
// - HTTP triggers on `/{routePrefix}/{route}` with ASP.NET route templates (http-server.ts, routing.ts);
// - timer triggers on their NCRONTAB schedule (timers.ts);
// - `POST /admin/functions/{name}` to run a non-HTTP function, as Core Tools does;
// - `invoke()` for any trigger type (used by the local durable engine).
//
// Every invocation goes through the library's own ProgrammingModel exactly like the worker's
// InvocationHandler (worker.ts). This file holds the host's public types and puts the parts together.
//
// Only node built-ins, croner and sibling modules are imported: this is on the cold-start path.

import type http from "node:http";
import {
  type Binding,
  type CoreLogCategory,
  type CoreLogLevel,
  type RegisteredFunction,
  getRegisteredFunctions,
  installCoreShim,
  setCoreLogSink,
} from "./core-shim.js";
import { FunctionRoutes, type HttpServer, startHttpServer } from "./http-server.js";
import { type LogLevel, defaultLog, mapLevel } from "./log.js";
import { type RpcHttpData, type RpcTypedData, isHttpTriggerType, isTimerTriggerType, toRpcTypedData } from "./rpc.js";
import { TimerTriggers } from "./timers.js";
import { createWorker, findFunction, loadApp, outcomeOf, terminateApp, toTriggerMetadata } from "./worker.js";

export type { Binding, RegisteredFunction } from "./core-shim.js";
export type { LogLevel } from "./log.js";
export { hostNameOf } from "./http-server.js";
export { fromRpcTypedData, toRpcTypedData } from "./rpc.js";

export interface BuiltinRoute {
  /** HTTP method, or "*" for any. */
  method: string;
  /** Exact path like "/.dev/jwks.json", or a prefix ending in "/*" (matches "/prefix/..."). */
  path: string;
  /**
   * Checked before the body is read: returns why the request is refused (401 problem+json), or undefined.
   * An unauthenticated caller never gets to send a body the host buffers.
   */
  authorize?(req: http.IncomingMessage, url: URL): string | undefined;
  handle(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void | Promise<void>;
}

/**
 * Returns the RpcTypedData-compatible *value* for a non-trigger input binding (e.g. a JSON
 * string for "durableClient"); the host wraps it ({string}, {json}, {bytes}, {int}/{double})
 * as the worker would receive it. Returning undefined omits the binding. May return a promise.
 */
export type InputBindingProvider = (binding: Binding, fn: RegisteredFunction, host: LocalHost) => unknown;

export interface LocalHostOptions {
  /** 0 = ephemeral. */
  port: number;
  /** Default "127.0.0.1". */
  hostname?: string;
  /**
   * Host names (as in a URL: "app.example.com", "[fd00::1]") requests may be addressed to besides the
   * loopback ones (localhost, 127.0.0.1, [::1]) and a specific `hostname` the host listens on. A request
   * whose Host header names anything else is refused with 421: a web page on another origin cannot reach
   * the host through DNS rebinding (its requests carry the attacker's host name).
   */
  allowedHosts?: string[];
  /** Absolute paths of JS modules to require (in order) after installing the shim. */
  functionFiles: string[];
  /** Default "api". */
  routePrefix?: string;
  /**
   * Default 100 MiB (Azure's limit). A larger declared Content-Length is refused with 413 problem+json
   * before the body is read; a chunked body is read only until it passes the limit (413, connection closed).
   */
  maxRequestBodyBytes?: number;
  builtinRoutes?: BuiltinRoute[];
  /** Keyed by binding type. */
  inputBindingProviders?: Record<string, InputBindingProvider>;
  /** Default true: arm timer triggers. */
  timers?: boolean;
  /** Default: console, info and above. */
  log?: (level: LogLevel, message: string) => void;
}

export interface InvokeOptions {
  triggerMetadata?: Record<string, unknown>;
}

/** Everything one invocation produced (superset of what invoke() returns). */
export interface InvocationOutcome {
  invocationId: string;
  /** response.returnValue converted back to a plain JS value (see invoke()). */
  returnValue: unknown;
  /** response.returnValue as RpcTypedData, unconverted. */
  rawReturnValue: unknown;
  /**
   * The handler's live result (after postInvocation hooks), before serialization. Useful when
   * object identity matters (durable actions yielded twice appear twice in the JSON).
   */
  result: unknown;
  /** Non-$return output bindings (response.outputData) converted to plain values, by binding name. */
  outputs: Record<string, unknown>;
}

export interface LocalHost {
  /** e.g. http://127.0.0.1:7071 */
  url: string;
  port: number;
  /** Registered functions (live view, registration order). */
  functions: RegisteredFunction[];
  /**
   * Invokes any registered function (name is case-insensitive) through the worker path.
   * triggerValue: a string is sent as {string} (the library JSON-parses it when it can), a
   * Buffer/Uint8Array as {bytes}, a number as {int}/{double}, anything else as {json}. For an
   * httpTrigger pass an RpcHttpData object; for a timerTrigger undefined builds the usual payload.
   * Returns response.returnValue as a plain value: {string} → string, {json} → parsed,
   * {bytes} → Buffer, {int}/{double} → number, {http} → the RpcHttpData object.
   * Throws if the function is unknown or the handler throws.
   */
  invoke(name: string, triggerValue: unknown, opts?: InvokeOptions): Promise<unknown>;
  /** Like invoke() but returns the whole outcome, including the live result. */
  invokeDetailed(name: string, triggerValue: unknown, opts?: InvokeOptions): Promise<InvocationOutcome>;
  /** Runs a timer function now (ignores the overlap guard). Logs and rethrows handler errors. */
  invokeTimer(name: string): Promise<void>;
  /** Stops the server and all timers; runs appTerminate hooks. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_MAX_BODY = 100 * 1024 * 1024;
const BY_HOST_API = "This function was programmatically called via the host APIs.";

export async function startLocalHost(opts: LocalHostOptions): Promise<LocalHost> {
  installCoreShim();
  const log = opts.log ?? defaultLog;
  const hostname = opts.hostname ?? "127.0.0.1";
  const providers = opts.inputBindingProviders ?? {};

  // Library logs made outside an invocation (e.g. its system warnings) go to this host's log.
  const ownSink = (level: CoreLogLevel, category: CoreLogCategory, message: string): void => {
    const l = mapLevel(level);
    if (l) log(l, `[${category}] ${message}`);
  };
  const previousSink = setCoreLogSink(ownSink);
  const restoreSink = (): void => {
    // Only if no other host has installed its own sink since.
    const current = setCoreLogSink(previousSink);
    if (current !== ownSink) setCoreLogSink(current);
  };

  // -- load the app ---------------------------------------------------------------------------
  const startedAt = new Date();
  try {
    await loadApp(opts.functionFiles, log);
  } catch (err) {
    restoreSink();
    throw err;
  }

  // -- the parts: worker path, timers, HTTP ---------------------------------------------------
  let host: LocalHost | undefined;
  let closed = false;
  let closing: Promise<void> | undefined;
  const worker = createWorker({ log, providers, host: () => host as LocalHost });
  const timers = new TimerTriggers({
    log,
    startedAt,
    invoke: (fn, json, reason) => worker.invoke(fn, { json }, { Timer: { json } }, reason),
    closed: () => closed,
  });
  const routes = new FunctionRoutes(opts.routePrefix ?? "api", log);

  async function invokeDetailed(name: string, triggerValue: unknown, o?: InvokeOptions): Promise<InvocationOutcome> {
    const fn = findFunction(name);
    if (!fn) throw new Error(`No function named '${name}' is registered`);
    const type = fn.trigger.binding.type;
    let data: RpcTypedData | undefined;
    if (isHttpTriggerType(type) && triggerValue && typeof triggerValue === "object" && !Buffer.isBuffer(triggerValue)) {
      data = { http: triggerValue as RpcHttpData };
    } else if (isTimerTriggerType(type) && triggerValue === undefined) {
      data = { json: JSON.stringify(timers.payload(timers.entry(fn))) };
    } else {
      data = toRpcTypedData(triggerValue);
    }
    const r = await worker.invoke(fn, data, toTriggerMetadata(o?.triggerMetadata), BY_HOST_API);
    return outcomeOf(r);
  }

  let httpServer: HttpServer;
  try {
    httpServer = await startHttpServer({
      port: opts.port,
      hostname,
      allowedHosts: opts.allowedHosts ?? [],
      maxRequestBodyBytes: opts.maxRequestBodyBytes ?? DEFAULT_MAX_BODY,
      builtinRoutes: opts.builtinRoutes ?? [],
      routes,
      worker,
      findFunction,
      startFunction: (fn, input) => {
        if (isTimerTriggerType(fn.trigger.binding.type)) timers.run(timers.entry(fn), BY_HOST_API).catch(() => undefined);
        else invokeDetailed(fn.name, input ?? null).catch(() => undefined);
      },
      log,
    });
  } catch (err) {
    restoreSink();
    throw err;
  }
  const baseUrl = httpServer.url;

  host = {
    url: baseUrl,
    port: httpServer.port,
    get functions(): RegisteredFunction[] {
      return getRegisteredFunctions();
    },
    async invoke(name, triggerValue, o) {
      return (await invokeDetailed(name, triggerValue, o)).returnValue;
    },
    invokeDetailed,
    async invokeTimer(name) {
      const fn = findFunction(name);
      if (!fn) throw new Error(`No function named '${name}' is registered`);
      if (!isTimerTriggerType(fn.trigger.binding.type)) throw new Error(`'${fn.name}' is not a timer function`);
      await timers.run(timers.entry(fn), BY_HOST_API);
    },
    close() {
      closing ??= (async () => {
        closed = true;
        timers.stopAll();
        await terminateApp(log);
        await httpServer.close();
        restoreSink();
      })();
      return closing;
    },
  };

  // -- arm timers and report ------------------------------------------------------------------
  const lines: string[] = [];
  for (const fn of getRegisteredFunctions()) {
    const b = fn.trigger.binding;
    if (isHttpTriggerType(b.type)) {
      const methods = Array.isArray(b.methods) && b.methods.length > 0 ? b.methods.join(",") : "*";
      lines.push(`  ${fn.name}: [${methods}] ${baseUrl}${routes.routeOf(fn)}`);
    } else if (isTimerTriggerType(b.type)) {
      const e = timers.entry(fn);
      lines.push(`  ${fn.name}: timerTrigger ${e.schedule ? `(${e.schedule.expression})` : "(invalid schedule)"}`);
      if (opts.timers !== false) timers.arm(e, b.runOnStartup === true);
    } else {
      lines.push(`  ${fn.name}: ${b.type}`);
    }
  }
  routes.table(); // reports invalid route templates now rather than on the first request
  log("info", `Local host listening on ${baseUrl}\nFunctions:\n${lines.join("\n")}`);
  return host;
}
