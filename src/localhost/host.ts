// Local stand-in for the Azure Functions host + Node.js worker.
//
// Loads compiled v4-model function files (their `app.http` / `app.timer` / `df.app.*` calls are
// captured by the @azure/functions-core shim), then serves them:
// - HTTP triggers on `/{routePrefix}/{route}` with ASP.NET route templates (routing.ts);
// - timer triggers on their NCRONTAB schedule (timers.ts);
// - `POST /admin/functions/{name}` to run a non-HTTP function, as Core Tools does;
// - `invoke()` for any trigger type (used by the local durable engine).
//
// Every invocation goes through the library's own ProgrammingModel exactly like the worker's
// InvocationHandler: getInvocationModel(coreCtx) → getArguments() → preInvocation hooks →
// invokeFunction → postInvocation hooks → getResponse. Inputs are RpcTypedData as the host
// sends them (http → RpcHttpData, timer → PascalCase JSON the library camel-cases).
//
// Only node built-ins, croner and sibling modules are imported: this is on the cold-start path.

import { randomUUID } from "node:crypto";
import http from "node:http";
import Module from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import {
  type Binding,
  type CoreLogCategory,
  type CoreLogLevel,
  type RegisteredFunction,
  getAppHookData,
  getAppLevelOnlyHookData,
  getHooks,
  getProgrammingModel,
  getRegisteredFunctions,
  getRegistrationRevision,
  installCoreShim,
  setCoreLogSink,
} from "./core-shim.js";
import { RouteTable, RouteTemplateError, splitPath } from "./routing.js";
import { type TimerSchedule, buildTimerPayload, createTimerSchedule, resolveAppSettingReferences } from "./timers.js";

export type { Binding, RegisteredFunction } from "./core-shim.js";

export type LogLevel = "debug" | "info" | "warn" | "error";

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

// ---------------------------------------------------------------------------------------------
// RPC shapes (subset of @azure/functions-core's types, which are not shipped in the package).

interface RpcHttpCookie {
  name?: string | null;
  value?: string | null;
  domain?: { value?: string | null } | null;
  path?: { value?: string | null } | null;
  expires?: { value?: { seconds?: number | null; nanos?: number | null } | null } | null;
  secure?: { value?: boolean | null } | null;
  httpOnly?: { value?: boolean | null } | null;
  sameSite?: "none" | "lax" | "strict" | "explicitNone" | null;
  maxAge?: { value?: number | null } | null;
}

interface RpcHttpData {
  method?: string | null;
  url?: string | null;
  headers?: Record<string, string> | null;
  body?: RpcTypedData | null;
  params?: Record<string, string> | null;
  statusCode?: string | null;
  query?: Record<string, string> | null;
  cookies?: RpcHttpCookie[] | null;
  enableContentNegotiation?: boolean | null;
}

interface RpcTypedData {
  string?: string | null;
  json?: string | null;
  bytes?: Uint8Array | null;
  stream?: Uint8Array | null;
  http?: RpcHttpData | null;
  int?: number | null;
  double?: number | null;
  collectionBytes?: { bytes?: Uint8Array[] | null } | null;
  collectionString?: { string?: string[] | null } | null;
  collectionDouble?: { double?: number[] | null } | null;
  collectionSint64?: { sint64?: number[] | null } | null;
}

interface RpcParameterBinding {
  name: string;
  data?: RpcTypedData;
}

interface RpcInvocationResponse {
  invocationId?: string | null;
  outputData?: { name?: string | null; data?: RpcTypedData | null }[] | null;
  returnValue?: RpcTypedData | null;
}

interface InvocationModelLike {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], callback: (...args: unknown[]) => unknown): Promise<unknown>;
  getResponse(context: unknown, result: unknown): Promise<RpcInvocationResponse>;
}

interface ProgrammingModelLike {
  name?: string;
  version?: string;
  getInvocationModel(coreCtx: unknown): InvocationModelLike | Promise<InvocationModelLike>;
  getCapabilities?(caps: Record<string, string>): Record<string, string> | Promise<Record<string, string>>;
}

type InvocationState = "preInvocationHooks" | "postInvocationHooks" | "invocation" | undefined;

// ---------------------------------------------------------------------------------------------
// Value conversions

function isHttpTriggerType(type: string): boolean {
  return type.toLowerCase() === "httptrigger";
}

function isTimerTriggerType(type: string): boolean {
  return type.toLowerCase() === "timertrigger";
}

/** Wraps a plain value as RpcTypedData the way the host would send it. */
export function toRpcTypedData(value: unknown): RpcTypedData | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string") return { string: value };
  if (Buffer.isBuffer(value)) return { bytes: value };
  if (value instanceof Uint8Array) return { bytes: value };
  if (value instanceof ArrayBuffer) return { bytes: new Uint8Array(value) };
  if (typeof value === "number") return Number.isInteger(value) ? { int: value } : { double: value };
  return { json: JSON.stringify(value) };
}

function tryJsonParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

/** Converts RpcTypedData coming back from the library into a plain value (see LocalHost.invoke). */
export function fromRpcTypedData(data: RpcTypedData | null | undefined): unknown {
  if (data === null) return null;
  if (data === undefined) return undefined;
  if (data.string !== undefined && data.string !== null) return data.string;
  if (data.json !== undefined && data.json !== null) return JSON.parse(data.json);
  if (data.bytes) return Buffer.from(data.bytes);
  if (data.stream) return Buffer.from(data.stream);
  if (data.http) return data.http;
  if (data.int !== undefined && data.int !== null) return Number(data.int);
  if (data.double !== undefined && data.double !== null) return data.double;
  if (data.collectionBytes?.bytes) return data.collectionBytes.bytes.map((b) => Buffer.from(b));
  if (data.collectionString?.string) return data.collectionString.string.map(tryJsonParse);
  if (data.collectionDouble?.double) return data.collectionDouble.double;
  if (data.collectionSint64?.sint64) return data.collectionSint64.sint64.map(Number);
  return undefined;
}

function bodyBytes(body: RpcTypedData | null | undefined): Buffer {
  if (!body) return Buffer.alloc(0);
  if (body.bytes) return Buffer.from(body.bytes.buffer, body.bytes.byteOffset, body.bytes.byteLength);
  if (body.stream) return Buffer.from(body.stream);
  if (typeof body.string === "string") return Buffer.from(body.string, "utf8");
  if (typeof body.json === "string") return Buffer.from(body.json, "utf8");
  if (body.int !== undefined && body.int !== null) return Buffer.from(String(body.int));
  if (body.double !== undefined && body.double !== null) return Buffer.from(String(body.double));
  return Buffer.alloc(0);
}

/** Set-Cookie value as ASP.NET Core's SetCookieHeaderValue writes it. */
function serializeCookie(c: RpcHttpCookie): string {
  let s = `${encodeURIComponent(c.name ?? "")}=${encodeURIComponent(c.value ?? "")}`;
  const seconds = c.expires?.value?.seconds;
  if (seconds !== undefined && seconds !== null) s += `; expires=${new Date(Number(seconds) * 1000).toUTCString()}`;
  const maxAge = c.maxAge?.value;
  if (maxAge !== undefined && maxAge !== null) s += `; max-age=${Math.trunc(maxAge)}`;
  if (c.domain?.value) s += `; domain=${c.domain.value}`;
  if (c.path?.value) s += `; path=${c.path.value}`;
  if (c.secure?.value) s += "; secure";
  if (c.sameSite === "lax") s += "; samesite=lax";
  else if (c.sameSite === "strict") s += "; samesite=strict";
  else if (c.sameSite === "explicitNone") s += "; samesite=none";
  if (c.httpOnly?.value) s += "; httponly";
  return s;
}

const STATUS_TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Payload Too Large",
  421: "Misdirected Request",
  500: "Internal Server Error",
};

/** Host names that reach this machine's loopback interface only (in URL form). */
const LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"];

/** The host name of a Host header value ("Example.com:7071" → "example.com", "[::1]:80" → "[::1]"), or undefined when malformed. */
export function hostNameOf(header: string): string | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::\d{1,5})?$/.exec(header.trim());
  return m ? m[1]!.toLowerCase() : undefined;
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const text = err.stack ?? `${err.name}: ${err.message}`;
    // durable-functions 3.5 throws "false\n\n$OutOfProcData$:<state>" for a failed orchestrator; the
    // state (with the real reason, which the durable engine logs) is too much for a log line.
    const cut = text.indexOf("\n\n$OutOfProcData$:");
    return cut >= 0 ? `${text.slice(0, cut)} (orchestrator failed; see the durable engine's log)` : text;
  }
  try {
    return typeof err === "string" ? err : JSON.stringify(err);
  } catch {
    return String(err);
  }
}

function mapLevel(level: CoreLogLevel): LogLevel | undefined {
  switch (level) {
    case "trace":
    case "debug":
      return "debug";
    case "information":
      return "info";
    case "warning":
      return "warn";
    case "error":
    case "critical":
      return "error";
    default:
      return undefined;
  }
}

function defaultLog(level: LogLevel, message: string): void {
  if (level === "debug") return;
  if (level === "error") console.error(message);
  else if (level === "warn") console.warn(message);
  else console.log(message);
}

function readOnly(name: string): never {
  throw new Error(`Cannot assign to read only property '${name}'`);
}

/** Adds getter-only properties that throw on assignment, as the worker's hook contexts do. */
function withReadOnly<T extends object, G extends Record<string, () => unknown>>(target: T, getters: G): T & { readonly [K in keyof G]: ReturnType<G[K]> } {
  for (const [name, get] of Object.entries(getters)) {
    Object.defineProperty(target, name, { get, set: () => readOnly(name), enumerable: true });
  }
  return target as T & { readonly [K in keyof G]: ReturnType<G[K]> };
}

const DEFAULT_MAX_BODY = 100 * 1024 * 1024;

interface TimerEntry {
  fn: RegisteredFunction;
  schedule: TimerSchedule | undefined;
  running: number;
  lastRun: Date | null;
}

// ---------------------------------------------------------------------------------------------

export async function startLocalHost(opts: LocalHostOptions): Promise<LocalHost> {
  installCoreShim();
  const log = opts.log ?? defaultLog;
  const hostname = opts.hostname ?? "127.0.0.1";
  const routePrefixSegments = splitPath(opts.routePrefix ?? "api").map((s) => s.toLowerCase());
  const maxBody = opts.maxRequestBodyBytes ?? DEFAULT_MAX_BODY;
  const allowedHosts = new Set([
    ...LOOPBACK_HOSTS,
    ...(opts.allowedHosts ?? []).map((h) => h.toLowerCase()),
    ...(hostname === "0.0.0.0" || hostname === "::" ? [] : [hostname.includes(":") ? `[${hostname.toLowerCase()}]` : hostname.toLowerCase()]),
  ]);
  const providers = opts.inputBindingProviders ?? {};
  const builtins = opts.builtinRoutes ?? [];

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
    await loadApp();
  } catch (err) {
    restoreSink();
    throw err;
  }

  async function loadApp(): Promise<void> {
    for (const file of opts.functionFiles) {
      const abs = path.resolve(file);
      const req = Module.createRequire(abs);
      try {
        req(abs);
      } catch (err) {
        if ((err as { code?: string }).code === "ERR_REQUIRE_ESM") {
          await import(pathToFileURL(abs).href);
        } else {
          throw new Error(`Failed to load function file ${abs}: ${(err as Error)?.message ?? String(err)}`, {
            cause: err,
          });
        }
      }
    }

    const pm = getProgrammingModel() as ProgrammingModelLike | undefined;
    if (getRegisteredFunctions().length === 0 && opts.functionFiles.length > 0) {
      log(
        "warn",
        "No functions were registered. If @azure/functions was used before installCoreShim() ran, it latched into test mode.",
      );
    }
    if (pm && typeof pm.getCapabilities === "function") {
      // Like the worker after loading the app: locks app.setup() and reveals HTTP streaming.
      const caps = await pm.getCapabilities({});
      if (caps && typeof caps === "object" && "HttpUri" in caps) {
        throw new Error("app.setup({ enableHttpStream: true }) is not supported by the local host");
      }
    }

    const appStartCtx = withReadOnly({ functionAppDirectory: process.cwd() }, { hookData: getAppLevelOnlyHookData, appHookData: getAppHookData });
    for (const hook of getHooks("appStart")) await hook(appStartCtx);
  }

  // -- invocation (worker path) ---------------------------------------------------------------
  function requireProgrammingModel(): ProgrammingModelLike {
    const pm = getProgrammingModel() as ProgrammingModelLike | undefined;
    if (!pm || typeof pm.getInvocationModel !== "function") {
      throw new Error("No programming model was registered (did the app call app.* before installCoreShim()?)");
    }
    return pm;
  }

  function findFunction(name: string): RegisteredFunction | undefined {
    const lower = name.toLowerCase();
    return getRegisteredFunctions().find((f) => f.name.toLowerCase() === lower);
  }

  function runLogHooks(level: CoreLogLevel, category: CoreLogCategory, message: string, logContext: unknown) {
    const hooks = getHooks("log");
    if (hooks.length === 0) return { level, message };
    const lc = logContext as { hookData: Record<string, unknown>; invocationContext: unknown } | undefined;
    const ctx = withReadOnly(
      { level, message },
      {
        category: () => category,
        hookData: () => lc?.hookData ?? {},
        appHookData: getAppHookData,
        invocationContext: () => lc?.invocationContext,
      },
    );
    for (const hook of hooks) {
      try {
        hook(ctx);
      } catch (err) {
        log("error", `log hook failed: ${errorText(err)}`);
      }
    }
    // Only user-generated logs may be changed by hooks.
    return category === "user" ? { level: ctx.level, message: String(ctx.message) } : { level, message };
  }

  async function executeHooks(name: string, ctx: unknown): Promise<void> {
    for (const hook of getHooks(name)) await hook(ctx);
  }

  async function invokeCore(
    fn: RegisteredFunction,
    triggerData: RpcTypedData | undefined,
    triggerMetadata: Record<string, RpcTypedData>,
    reason: string,
  ): Promise<{ invocationId: string; response: RpcInvocationResponse; result: unknown }> {
    const invocationId = randomUUID();
    const started = Date.now();
    log("debug", `Executing 'Functions.${fn.name}' (Reason='${reason}', Id=${invocationId})`);
    try {
      const r = await invokeWorkerPath(fn, invocationId, triggerData, triggerMetadata);
      log("debug", `Executed 'Functions.${fn.name}' (Succeeded, Id=${invocationId}, Duration=${Date.now() - started}ms)`);
      return r;
    } catch (err) {
      // Covers input binding providers too: a failing timer run is always reported.
      log(
        "error",
        `Executed 'Functions.${fn.name}' (Failed, Id=${invocationId}, Duration=${Date.now() - started}ms): ${errorText(err)}`,
      );
      throw err;
    }
  }

  async function invokeWorkerPath(
    fn: RegisteredFunction,
    invocationId: string,
    triggerData: RpcTypedData | undefined,
    triggerMetadata: Record<string, RpcTypedData>,
  ): Promise<{ invocationId: string; response: RpcInvocationResponse; result: unknown }> {
    const pm = requireProgrammingModel();
    const inputData: RpcParameterBinding[] = [];
    inputData.push(triggerData === undefined ? { name: fn.trigger.key } : { name: fn.trigger.key, data: triggerData });
    for (const [key, binding] of Object.entries(fn.metadata.bindings)) {
      if (key === fn.trigger.key || (binding.direction !== "in" && binding.direction !== "inout")) continue;
      const provider = providers[binding.type];
      if (!provider) continue;
      const value = await provider(binding, fn, host);
      if (value === undefined) continue;
      const data = toRpcTypedData(value);
      inputData.push(data === undefined ? { name: key } : { name: key, data });
    }

    const sys = { MethodName: fn.name, UtcNow: new Date().toISOString(), RandGuid: randomUUID() };
    const request = {
      invocationId,
      functionId: fn.name,
      inputData,
      triggerMetadata: { ...triggerMetadata, sys: { json: JSON.stringify(sys) } },
    };
    let logContext: { hookData: Record<string, unknown>; invocationContext: unknown } | undefined;
    const coreCtx = {
      invocationId,
      request,
      metadata: { name: fn.name, bindings: fn.metadata.bindings, retryOptions: fn.metadata.retryOptions },
      state: undefined as InvocationState,
      log(level: CoreLogLevel, category: CoreLogCategory, message: string): void {
        const out = runLogHooks(level, category, message, logContext);
        const l = mapLevel(out.level);
        if (l) log(l, `[${fn.name}] ${out.message}`);
      },
    };

    const model = await pm.getInvocationModel(coreCtx);
    const hookData: Record<string, unknown> = {};
    const args = await model.getArguments();
    const context = args.context;
    let inputs = args.inputs;
    let callback = fn.callback;
    logContext = { hookData, invocationContext: context };

    // Hook contexts expose hookData, appHookData and invocationContext read-only, as the worker does.
    const hookContext = <T extends object>(fields: T) =>
      withReadOnly(fields, { hookData: () => hookData, appHookData: getAppHookData, invocationContext: () => context });
    const preCtx = hookContext({ functionCallback: callback, inputs });
    coreCtx.state = "preInvocationHooks";
    try {
      await executeHooks("preInvocation", preCtx);
    } finally {
      coreCtx.state = undefined;
    }
    inputs = preCtx.inputs;
    callback = preCtx.functionCallback;

    const postCtx = hookContext({ inputs, result: null as unknown, error: null as unknown });
    coreCtx.state = "invocation";
    try {
      postCtx.result = await model.invokeFunction(context, inputs, callback);
    } catch (err) {
      postCtx.error = err;
    } finally {
      coreCtx.state = undefined;
    }
    coreCtx.state = "postInvocationHooks";
    try {
      await executeHooks("postInvocation", postCtx);
    } finally {
      coreCtx.state = undefined;
    }
    if (postCtx.error !== null && postCtx.error !== undefined) throw postCtx.error;

    const response = await model.getResponse(context, postCtx.result);
    return { invocationId, response, result: postCtx.result };
  }

  function outcomeOf(r: { invocationId: string; response: RpcInvocationResponse; result: unknown }): InvocationOutcome {
    const outputs: Record<string, unknown> = {};
    for (const o of r.response.outputData ?? []) {
      if (o.name) outputs[o.name] = fromRpcTypedData(o.data);
    }
    return {
      invocationId: r.invocationId,
      returnValue: fromRpcTypedData(r.response.returnValue),
      rawReturnValue: r.response.returnValue,
      result: r.result,
      outputs,
    };
  }

  function toTriggerMetadata(meta: Record<string, unknown> | undefined): Record<string, RpcTypedData> {
    const out: Record<string, RpcTypedData> = {};
    for (const [k, v] of Object.entries(meta ?? {})) {
      const d = toRpcTypedData(v);
      if (d) out[k] = d;
    }
    return out;
  }

  // -- timers ---------------------------------------------------------------------------------
  const timerEntries = new Map<RegisteredFunction, TimerEntry>();

  function timerEntry(fn: RegisteredFunction): TimerEntry {
    let e = timerEntries.get(fn);
    if (!e) {
      let schedule: TimerSchedule | undefined;
      try {
        schedule = createTimerSchedule(resolveAppSettingReferences(String(fn.trigger.binding.schedule ?? "")));
      } catch (err) {
        log("error", `[${fn.name}] ${(err as Error).message}`);
      }
      e = { fn, schedule, running: 0, lastRun: null };
      timerEntries.set(fn, e);
    }
    return e;
  }

  function timerPayload(e: TimerEntry): ReturnType<typeof buildTimerPayload> {
    const now = new Date();
    const payload = buildTimerPayload({
      last: e.lastRun ?? startedAt,
      next: e.schedule?.nextRun(now) ?? null,
      lastUpdated: now,
    });
    e.lastRun = now;
    return payload;
  }

  async function runTimer(e: TimerEntry, reason: string): Promise<void> {
    e.running++;
    try {
      const payload = timerPayload(e);
      const json = JSON.stringify(payload);
      await invokeCore(e.fn, { json }, { Timer: { json } }, reason);
    } finally {
      e.running--;
    }
  }

  function onTimerTick(e: TimerEntry, reason: string): void {
    if (closed) return;
    if (e.running > 0) {
      log("debug", `[${e.fn.name}] previous run still in progress; skipping this occurrence`);
      return;
    }
    // invokeCore already logged the failure; a timer never crashes the host.
    runTimer(e, reason).catch(() => undefined);
  }

  // -- HTTP -----------------------------------------------------------------------------------
  let routeRevision = -1;
  let routes = new RouteTable<RegisteredFunction>();
  const badRoutes = new Set<RegisteredFunction>();

  function routeTable(): RouteTable<RegisteredFunction> {
    const rev = getRegistrationRevision();
    if (rev === routeRevision) return routes;
    const table = new RouteTable<RegisteredFunction>();
    for (const fn of getRegisteredFunctions()) {
      const b = fn.trigger.binding;
      if (!isHttpTriggerType(b.type)) continue;
      const route = typeof b.route === "string" && b.route !== "" ? b.route : fn.name;
      const methods = Array.isArray(b.methods) ? b.methods.map((m) => String(m)) : null;
      try {
        table.add(route, methods, fn);
      } catch (err) {
        if (!badRoutes.has(fn)) {
          badRoutes.add(fn);
          log("error", `[${fn.name}] ${err instanceof RouteTemplateError ? err.message : errorText(err)}; function disabled`);
        }
      }
    }
    routes = table;
    routeRevision = rev;
    return routes;
  }

  function routeOf(fn: RegisteredFunction): string {
    const b = fn.trigger.binding;
    const route = typeof b.route === "string" && b.route !== "" ? b.route : fn.name;
    const prefix = routePrefixSegments.join("/");
    return `/${prefix ? `${prefix}/` : ""}${route.replace(/^\/+/, "")}`;
  }

  function sendProblem(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    status: number,
    detail: string,
    headers: Record<string, string> = {},
  ): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const title = STATUS_TITLES[status] ?? http.STATUS_CODES[status] ?? "Error";
    const body = Buffer.from(JSON.stringify({ type: "about:blank", title, status, detail }));
    res.writeHead(status, {
      ...headers,
      "content-type": "application/problem+json",
      "content-length": String(body.length),
    });
    res.end(req.method === "HEAD" ? undefined : body);
  }

  /** The body, or null as soon as it passes the limit (reading stops there; answer with sendTooLarge). */
  function readBody(req: http.IncomingMessage): Promise<Buffer | null> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let tooLarge = false;
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBody) {
          // Stop reading here: nothing more is buffered or pulled off the wire; the 413 closes the connection.
          tooLarge = true;
          chunks.length = 0;
          req.off("data", onData);
          req.pause();
          resolve(null);
          return;
        }
        chunks.push(chunk);
      };
      req.on("data", onData);
      req.on("end", () => {
        if (!tooLarge) resolve(Buffer.concat(chunks, size));
      });
      req.on("error", (err) => {
        if (!tooLarge) reject(err);
      });
    });
  }

  function sendTooLarge(req: http.IncomingMessage, res: http.ServerResponse): void {
    sendProblem(req, res, 413, `The request body exceeds the maximum of ${maxBody} bytes.`, { connection: "close" });
  }

  /** A refusal sent before the body is read: the connection closes, so the body is never read either. */
  function refuseUnread(req: http.IncomingMessage, res: http.ServerResponse, status: number, detail: string, headers: Record<string, string> = {}): void {
    const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? "0") > 0;
    sendProblem(req, res, status, detail, { ...headers, ...(hasBody ? { connection: "close" } : {}) });
  }

  function requestUrl(req: http.IncomingMessage): URL {
    const raw = req.url ?? "/";
    const host = req.headers.host ?? `${hostname}:${actualPort}`;
    try {
      return raw.startsWith("/") ? new URL(`http://${host}${raw}`) : new URL(raw);
    } catch {
      return new URL(`http://${hostname}:${actualPort}${raw.startsWith("/") ? raw : "/"}`);
    }
  }

  function flatHeaders(req: http.IncomingMessage): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined) continue;
      out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
    }
    return out;
  }

  function queryRecord(url: URL): Record<string, string> {
    // The host sends IQueryCollection values as StringValues.ToString(): repeated keys comma-joined.
    const out: Record<string, string> = {};
    for (const [k, v] of url.searchParams) out[k] = k in out ? `${out[k]},${v}` : v;
    return out;
  }

  function writeHttpResponse(req: http.IncomingMessage, res: http.ServerResponse, data: RpcHttpData): void {
    const status = Number.parseInt(String(data.statusCode ?? "200"), 10) || 200;
    const setCookies: string[] = [];
    for (const [k, v] of Object.entries(data.headers ?? {})) {
      const key = k.toLowerCase();
      if (key === "content-length" || key === "transfer-encoding" || key === "connection") continue;
      if (key === "set-cookie") setCookies.push(String(v));
      else res.setHeader(k, String(v));
    }
    for (const c of data.cookies ?? []) setCookies.push(serializeCookie(c));
    if (setCookies.length > 0) res.setHeader("set-cookie", setCookies);
    const noBody = status === 204 || status === 304 || (status >= 100 && status < 200);
    const body = noBody ? Buffer.alloc(0) : bodyBytes(data.body);
    if (!noBody) res.setHeader("content-length", String(body.length));
    res.writeHead(status);
    res.end(req.method === "HEAD" || noBody ? undefined : body);
  }

  function httpOutputKey(fn: RegisteredFunction): string | undefined {
    if (fn.metadata.bindings.$return?.type?.toLowerCase() === "http") return "$return";
    for (const [k, b] of Object.entries(fn.metadata.bindings)) {
      if (b.direction === "out" && b.type.toLowerCase() === "http") return k;
    }
    return undefined;
  }

  async function handleFunction(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    fn: RegisteredFunction,
    url: URL,
    params: Record<string, string>,
  ): Promise<void> {
    const method = (req.method ?? "GET").toUpperCase();
    const body = await readBody(req);
    if (body === null) {
      sendTooLarge(req, res);
      return;
    }
    const headers = flatHeaders(req);
    const query = queryRecord(url);
    const httpData: RpcHttpData = { method, url: url.href, headers, query, params };
    if (method !== "GET" && method !== "HEAD") httpData.body = { bytes: body };
    const triggerMetadata: Record<string, RpcTypedData> = {
      Query: { json: JSON.stringify(query) },
      Headers: { json: JSON.stringify(headers) },
    };
    for (const [k, v] of Object.entries(params)) triggerMetadata[k] ??= { string: v };

    let r: { invocationId: string; response: RpcInvocationResponse };
    try {
      r = await invokeCore(fn, { http: httpData }, triggerMetadata, "This function was programmatically called via the host APIs.");
    } catch {
      sendProblem(req, res, 500, "An unhandled error occurred while executing the function.");
      return;
    }
    const key = httpOutputKey(fn);
    let out: RpcTypedData | null | undefined;
    if (key === "$return") out = r.response.returnValue;
    else if (key) out = r.response.outputData?.find((o) => o.name === key)?.data;
    if (out === null || out === undefined) {
      res.writeHead(204);
      res.end();
      return;
    }
    if (!out.http) {
      log("error", `[${fn.name}] the HTTP output is not an HTTP response (Id=${r.invocationId})`);
      sendProblem(req, res, 500, "An unhandled error occurred while executing the function.");
      return;
    }
    writeHttpResponse(req, res, out.http);
  }

  async function handleAdmin(req: http.IncomingMessage, res: http.ServerResponse, name: string): Promise<void> {
    if ((req.method ?? "").toUpperCase() !== "POST") {
      sendProblem(req, res, 405, `Method ${req.method ?? ""} is not allowed here.`, { allow: "POST" });
      return;
    }
    const body = await readBody(req);
    if (body === null) {
      sendTooLarge(req, res);
      return;
    }
    const fn = findFunction(name);
    if (!fn) {
      sendProblem(req, res, 404, `No function named '${name}'.`);
      return;
    }
    const type = fn.trigger.binding.type;
    if (isHttpTriggerType(type)) {
      sendProblem(req, res, 400, `'${fn.name}' is an HTTP function; call ${routeOf(fn)} instead.`);
      return;
    }
    if (isTimerTriggerType(type)) {
      runTimer(timerEntry(fn), "This function was programmatically called via the host APIs.").catch(() => undefined);
    } else {
      let input: unknown;
      if (body.length > 0) {
        const parsed = tryJsonParse(body.toString("utf8"));
        if (parsed && typeof parsed === "object" && "input" in parsed) input = (parsed as { input: unknown }).input;
      }
      invokeDetailed(fn.name, input ?? null).catch(() => undefined);
    }
    res.writeHead(202, { "content-length": "0" });
    res.end();
  }

  async function handleRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // DNS rebinding: a page of another origin whose name now resolves to 127.0.0.1 sends its own name.
    // (HTTP/1.1 requires a Host header, which node:http enforces; HTTP/1.0 without one is not a browser's.)
    const hostHeader = req.headers.host;
    if (hostHeader !== undefined) {
      const name = hostNameOf(hostHeader);
      if (name === undefined || !allowedHosts.has(name)) {
        refuseUnread(req, res, 421, `This host answers requests addressed to ${[...allowedHosts].join(", ")} only, not to '${hostHeader.slice(0, 100)}'.`);
        return;
      }
    }

    const method = (req.method ?? "GET").toUpperCase();
    const url = requestUrl(req);
    const pathname = url.pathname;

    const cl = req.headers["content-length"];
    if (cl !== undefined && Number(cl) > maxBody) {
      sendTooLarge(req, res);
      return;
    }

    // Built-in routes (dev endpoints supplied by the caller).
    const builtinAllow = new Set<string>();
    for (const b of builtins) {
      const pathMatches = b.path.endsWith("/*")
        ? pathname.startsWith(b.path.slice(0, -1)) || pathname === b.path.slice(0, -2)
        : pathname === b.path;
      if (!pathMatches) continue;
      if (b.method === "*" || b.method.toUpperCase() === method) {
        const denied = b.authorize?.(req, url);
        if (denied !== undefined) {
          refuseUnread(req, res, 401, denied);
          return;
        }
        const body = await readBody(req);
        if (body === null) {
          sendTooLarge(req, res);
          return;
        }
        await b.handle(req, res, body);
        return;
      }
      builtinAllow.add(b.method.toUpperCase());
    }

    const segments = splitPath(pathname);

    // Core Tools' admin endpoint for non-HTTP functions.
    if (segments.length === 3 && segments[0]?.toLowerCase() === "admin" && segments[1]?.toLowerCase() === "functions") {
      await handleAdmin(req, res, segments[2] as string);
      return;
    }

    if (routePrefixSegments.every((p, i) => segments[i]?.toLowerCase() === p)) {
      const match = routeTable().match(segments.slice(routePrefixSegments.length), method);
      if (match.status === "matched") {
        await handleFunction(req, res, match.value, url, match.params);
        return;
      }
      if (match.status === "method-not-allowed") {
        const allow = [...new Set([...match.allow, ...builtinAllow])].join(", ");
        sendProblem(req, res, 405, `Method ${method} is not allowed for ${pathname}.`, { allow });
        return;
      }
    }
    if (builtinAllow.size > 0) {
      sendProblem(req, res, 405, `Method ${method} is not allowed for ${pathname}.`, { allow: [...builtinAllow].join(", ") });
      return;
    }
    sendProblem(req, res, 404, `No function or endpoint matches ${method} ${pathname}.`);
  }

  const server = http.createServer((req, res) => {
    handleRequest(req, res).catch((err: unknown) => {
      log("error", `Unhandled error serving ${req.method ?? ""} ${req.url ?? ""}: ${errorText(err)}`);
      try {
        sendProblem(req, res, 500, "An unexpected error occurred in the local host.");
      } catch {
        res.destroy();
      }
    });
  });

  let actualPort = opts.port;
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once("error", onError);
      server.listen(opts.port, hostname, () => {
        server.off("error", onError);
        resolve();
      });
    });
  } catch (err) {
    restoreSink();
    throw err;
  }
  server.on("error", (err) => log("error", `HTTP server error: ${errorText(err)}`));
  const address = server.address();
  if (address && typeof address === "object") actualPort = address.port;
  const urlHost =
    hostname === "0.0.0.0" || hostname === "::" ? "127.0.0.1" : hostname.includes(":") ? `[${hostname}]` : hostname;
  const baseUrl = `http://${urlHost}:${actualPort}`;

  let closed = false;
  let closing: Promise<void> | undefined;

  async function invokeDetailed(name: string, triggerValue: unknown, o?: InvokeOptions): Promise<InvocationOutcome> {
    const fn = findFunction(name);
    if (!fn) throw new Error(`No function named '${name}' is registered`);
    const type = fn.trigger.binding.type;
    let data: RpcTypedData | undefined;
    if (isHttpTriggerType(type) && triggerValue && typeof triggerValue === "object" && !Buffer.isBuffer(triggerValue)) {
      data = { http: triggerValue as RpcHttpData };
    } else if (isTimerTriggerType(type) && triggerValue === undefined) {
      data = { json: JSON.stringify(timerPayload(timerEntry(fn))) };
    } else {
      data = toRpcTypedData(triggerValue);
    }
    const r = await invokeCore(fn, data, toTriggerMetadata(o?.triggerMetadata), "This function was programmatically called via the host APIs.");
    return outcomeOf(r);
  }

  const host: LocalHost = {
    url: baseUrl,
    port: actualPort,
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
      await runTimer(timerEntry(fn), "This function was programmatically called via the host APIs.");
    },
    close() {
      closing ??= (async () => {
        closed = true;
        for (const e of timerEntries.values()) e.schedule?.stop();
        try {
          const ctx = {
            get hookData() {
              return getAppLevelOnlyHookData();
            },
            get appHookData() {
              return getAppHookData();
            },
          };
          for (const hook of getHooks("appTerminate")) await hook(ctx);
        } catch (err) {
          log("error", `appTerminate hook failed: ${errorText(err)}`);
        }
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
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
      lines.push(`  ${fn.name}: [${methods}] ${baseUrl}${routeOf(fn)}`);
    } else if (isTimerTriggerType(b.type)) {
      const e = timerEntry(fn);
      lines.push(`  ${fn.name}: timerTrigger ${e.schedule ? `(${e.schedule.expression})` : "(invalid schedule)"}`);
      if (opts.timers !== false && e.schedule) {
        e.schedule.start(() => onTimerTick(e, "Timer fired"));
        if (b.runOnStartup === true) onTimerTick(e, "Timer fired on startup (runOnStartup)");
      }
    } else {
      lines.push(`  ${fn.name}: ${b.type}`);
    }
  }
  routeTable(); // reports invalid route templates now rather than on the first request
  log("info", `Local host listening on ${baseUrl}\nFunctions:\n${lines.join("\n")}`);
  return host;
}
