// Stand-in for the `@azure/functions-core` module that the Azure Functions Node.js worker
// injects at run time. @azure/functions v4 `require`s it lazily the first time an `app.*`
// call is made and caches the answer forever: when the require fails the library latches
// into "test mode" and silently skips every registration. So installCoreShim() must run
// before the first `app.*` / `df.app.*` call of the app.
//
// The contract is `types-core/index.d.ts` of azure-functions-nodejs-library:
// registerFunction, setProgrammingModel/getProgrammingModel, registerHook, log, version,
// hostVersion and class Disposable. See docs/local-host.md, "Worker contract".
//
// Only node built-ins are imported here: this module is on the cold-start path.

import Module from "node:module";
import path from "node:path";

export const CORE_MODULE_ID = "@azure/functions-core";

export interface Binding {
  type: string;
  direction: "in" | "out" | string;
  [k: string]: unknown;
}

export interface RegisteredFunction {
  name: string;
  metadata: { name: string; bindings: Record<string, Binding>; retryOptions?: unknown };
  callback: (...args: unknown[]) => unknown;
  /** The binding with direction 'in' whose type ends with 'Trigger'. */
  trigger: { key: string; binding: Binding };
}

/** RpcLogLevel of the core API. */
export type CoreLogLevel = "trace" | "debug" | "information" | "warning" | "error" | "critical" | "none";
/** RpcLogCategory of the core API. */
export type CoreLogCategory = "user" | "system" | "customMetric";
export type CoreLogSink = (level: CoreLogLevel, category: CoreLogCategory, message: string) => void;
export type HookCallback = (context: unknown) => unknown;

/** Same semantics as the worker's (VS Code's) Disposable. */
export class Disposable {
  static from(...disposables: { dispose(): unknown }[]): Disposable {
    let pending: { dispose(): unknown }[] | undefined = disposables;
    return new Disposable(() => {
      if (pending) {
        for (const d of pending) {
          if (d && typeof d.dispose === "function") d.dispose();
        }
        pending = undefined;
      }
    });
  }

  #callOnDispose: (() => unknown) | undefined;

  constructor(callOnDispose: () => unknown) {
    this.#callOnDispose = callOnDispose;
  }

  dispose(): unknown {
    const fn = this.#callOnDispose;
    this.#callOnDispose = undefined;
    return typeof fn === "function" ? fn() : undefined;
  }
}

const KNOWN_HOOKS = new Set(["preInvocation", "postInvocation", "appStart", "appTerminate", "log"]);

interface ShimState {
  installed: boolean;
  functions: RegisteredFunction[];
  programmingModel: unknown;
  hooks: Map<string, HookCallback[]>;
  /** Shared by all hooks (HookContext.appHookData). */
  appHookData: Record<string, unknown>;
  /** hookData of appStart/appTerminate hooks (the worker keeps it separate from appHookData). */
  appLevelOnlyHookData: Record<string, unknown>;
  /** Where logs made outside an invocation go (coreApi.log). Set by the host. */
  logSink: CoreLogSink;
  /** Bumped on every registration change so consumers can rebuild derived tables. */
  revision: number;
  api: Record<string, unknown>;
}

// Kept on globalThis so that two copies of this module (e.g. the compiled one and a
// vitest-transformed one) share a single registry: there is only one @azure/functions.
const STATE_KEY = Symbol.for("aigov.localhost.core-shim");

function defaultLogSink(level: CoreLogLevel, category: CoreLogCategory, message: string): void {
  if (level === "error" || level === "critical") console.error(`[${category}] ${message}`);
  else if (level === "warning") console.warn(`[${category}] ${message}`);
}

function state(): ShimState {
  const g = globalThis as unknown as Record<symbol, ShimState | undefined>;
  let s = g[STATE_KEY];
  if (!s) {
    s = {
      installed: false,
      functions: [],
      programmingModel: undefined,
      hooks: new Map(),
      appHookData: {},
      appLevelOnlyHookData: {},
      logSink: defaultLogSink,
      revision: 0,
      api: {},
    };
    s.api = createCoreApi(s);
    g[STATE_KEY] = s;
  }
  return s;
}

function findTrigger(bindings: Record<string, Binding>): { key: string; binding: Binding } | undefined {
  for (const [key, binding] of Object.entries(bindings)) {
    if (binding && binding.direction === "in" && typeof binding.type === "string" && /trigger$/i.test(binding.type)) {
      return { key, binding };
    }
  }
  return undefined;
}

function createCoreApi(s: ShimState): Record<string, unknown> {
  function registerFunction(metadata: unknown, callback: unknown): Disposable {
    const meta = metadata as { name?: unknown; bindings?: unknown; retryOptions?: unknown } | null;
    if (!meta || typeof meta.name !== "string" || meta.name === "") {
      throw new Error("registerFunction: metadata.name is required");
    }
    if (typeof callback !== "function") {
      throw new Error(`registerFunction: the callback of function "${meta.name}" is not a function`);
    }
    if (!meta.bindings || typeof meta.bindings !== "object") {
      throw new Error(`registerFunction: function "${meta.name}" has no bindings`);
    }
    const name = meta.name;
    const lower = name.toLowerCase();
    if (s.functions.some((f) => f.name.toLowerCase() === lower)) {
      throw new Error(`A function with name "${name}" has already been registered.`);
    }
    const bindings = meta.bindings as Record<string, Binding>;
    const trigger = findTrigger(bindings);
    if (!trigger) {
      throw new Error(`registerFunction: function "${name}" has no trigger binding (direction "in", type "*Trigger")`);
    }
    const fn: RegisteredFunction = {
      name,
      metadata: meta.retryOptions === undefined ? { name, bindings } : { name, bindings, retryOptions: meta.retryOptions },
      callback: callback as (...args: unknown[]) => unknown,
      trigger,
    };
    s.functions.push(fn);
    s.revision++;
    return new Disposable(() => {
      const i = s.functions.indexOf(fn);
      if (i >= 0) {
        s.functions.splice(i, 1);
        s.revision++;
      }
    });
  }

  function registerHook(hookName: unknown, callback: unknown): Disposable {
    if (typeof hookName !== "string" || !KNOWN_HOOKS.has(hookName)) {
      // The worker throws a RangeError for unknown hooks; the library relies on that for 'log'.
      throw new RangeError(`Unrecognized hook "${String(hookName)}"`);
    }
    if (typeof callback !== "function") throw new TypeError(`Hook "${hookName}" callback must be a function`);
    const list = s.hooks.get(hookName) ?? [];
    s.hooks.set(hookName, list);
    const cb = callback as HookCallback;
    list.push(cb);
    return new Disposable(() => {
      const i = list.indexOf(cb);
      if (i >= 0) list.splice(i, 1);
    });
  }

  return {
    version: "4.0.0-aigov-localhost",
    hostVersion: "4.1000.0",
    registerFunction,
    registerHook,
    setProgrammingModel(pm: unknown): void {
      s.programmingModel = pm;
    },
    getProgrammingModel(): unknown {
      return s.programmingModel;
    },
    log(level: CoreLogLevel, category: CoreLogCategory, message: string): void {
      s.logSink(level, category, message);
    },
    Disposable,
  };
}

type ResolveFilename = (request: string, parent: unknown, isMain: boolean, options?: unknown) => string;
interface ModuleInternals {
  _resolveFilename: ResolveFilename;
  _cache: Record<string, unknown>;
}

/** The (non-existent) file name `require('@azure/functions-core')` resolves to. */
export const CORE_SHIM_FILENAME = path.resolve(path.sep, "__aigov_localhost__", "node_modules", "@azure", "functions-core", "index.js");

/**
 * Makes `require('@azure/functions-core')` return this shim. Idempotent.
 * Must run before the first `app.*` call of @azure/functions (see file header).
 */
export function installCoreShim(): void {
  const s = state();
  const internals = Module as unknown as ModuleInternals;
  // (Re)seeded on every resolution: cheap, and survives someone clearing require.cache.
  const seed = (): void => {
    if (internals._cache[CORE_SHIM_FILENAME]) return;
    const m = new Module(CORE_SHIM_FILENAME);
    m.filename = CORE_SHIM_FILENAME;
    m.exports = s.api;
    m.loaded = true;
    internals._cache[CORE_SHIM_FILENAME] = m;
  };
  seed();
  if (s.installed) return;
  const original = internals._resolveFilename;
  internals._resolveFilename = function (this: unknown, request, parent, isMain, options) {
    if (request === CORE_MODULE_ID) {
      seed();
      return CORE_SHIM_FILENAME;
    }
    return original.call(this, request, parent, isMain, options);
  };
  s.installed = true;
}

/** True once installCoreShim() has run in this process. */
export function isCoreShimInstalled(): boolean {
  return state().installed;
}

/** The object `require('@azure/functions-core')` returns. */
export function getCoreApi(): Record<string, unknown> {
  return state().api;
}

/** Captured registerFunction calls, in registration order. */
export function getRegisteredFunctions(): RegisteredFunction[] {
  return state().functions.slice();
}

/** Changes whenever a function is registered or disposed. */
export function getRegistrationRevision(): number {
  return state().revision;
}

/** Whatever setProgrammingModel received (the library's ProgrammingModel). */
export function getProgrammingModel(): unknown {
  return state().programmingModel;
}

/** Callbacks registered for a hook, in order (a copy). */
export function getHooks(hookName: string): HookCallback[] {
  return (state().hooks.get(hookName) ?? []).slice();
}

export function getAppHookData(): Record<string, unknown> {
  return state().appHookData;
}

export function getAppLevelOnlyHookData(): Record<string, unknown> {
  return state().appLevelOnlyHookData;
}

/** Routes logs made outside an invocation (library system logs). Returns the previous sink. */
export function setCoreLogSink(sink: CoreLogSink | undefined): CoreLogSink {
  const s = state();
  const prev = s.logSink;
  s.logSink = sink ?? defaultLogSink;
  return prev;
}
