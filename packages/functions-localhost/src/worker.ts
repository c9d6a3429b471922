// What the Azure Functions Node.js worker does with the app: load its files, then run each invocation
// through the library's own ProgrammingModel exactly like the worker's InvocationHandler:
// getInvocationModel(coreCtx) → getArguments() → preInvocation hooks → invokeFunction →
// postInvocation hooks → getResponse. Inputs are RpcTypedData as the host sends them
// (http → RpcHttpData, timer → PascalCase JSON the library camel-cases).

import { randomUUID } from "node:crypto";
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
} from "./core-shim.js";
import type { InputBindingProvider, InvocationOutcome, LocalHost } from "./host.js";
import { directHttpOutput } from "./http-output.js";
import { type Log, errorText, mapLevel } from "./log.js";
import {
  LazyJson,
  type InvocationState,
  type ProgrammingModelLike,
  type RpcInvocationResponse,
  type RpcParameterBinding,
  type RpcTypedData,
  fromRpcTypedData,
  isHttpTriggerType,
  toRpcTypedData,
} from "./rpc.js";

/** What the worker path needs to know of a function, worked out once from its (fixed) registration. */
interface FunctionPlan {
  /** The non-trigger input bindings: a provider may supply their values. */
  inputs: [string, Binding][];
  /**
   * The library converts the return value as an HTTP response (an HTTP trigger whose `$return` is an
   * `http` output), so a plain HttpResponseInit may take the direct conversion (http-output.ts).
   */
  httpReturn: boolean;
  /** ...and `$return` is the only output: the library's getResponse would add nothing to it. */
  httpReturnOnly: boolean;
}

const plans = new WeakMap<RegisteredFunction, FunctionPlan>();

function planOf(fn: RegisteredFunction): FunctionPlan {
  let plan = plans.get(fn);
  if (plan) return plan;
  const inputs: [string, Binding][] = [];
  let outputs = 0;
  for (const [key, binding] of Object.entries(fn.metadata.bindings)) {
    if (binding.direction === "out") outputs++;
    if (key !== fn.trigger.key && (binding.direction === "in" || binding.direction === "inout")) inputs.push([key, binding]);
  }
  const ret = fn.metadata.bindings.$return;
  const httpReturn =
    ret !== undefined && ret.direction === "out" && typeof ret.type === "string" && ret.type.toLowerCase() === "http" && isHttpTriggerType(fn.trigger.binding.type);
  plan = { inputs, httpReturn, httpReturnOnly: httpReturn && outputs === 1 };
  plans.set(fn, plan);
  return plan;
}

/** What one invocation returned through the worker path. */
export interface WorkerResult {
  invocationId: string;
  response: RpcInvocationResponse;
  result: unknown;
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

/** Requires the function files (their `app.*` calls register through the shim), then runs appStart hooks. */
export async function loadApp(functionFiles: string[], log: Log): Promise<void> {
  for (const file of functionFiles) {
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
  if (getRegisteredFunctions().length === 0 && functionFiles.length > 0) {
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

/** Runs the appTerminate hooks, as the worker does when the host shuts down. */
export async function terminateApp(log: Log): Promise<void> {
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
}

/** A registered function by name (case-insensitive). */
export function findFunction(name: string): RegisteredFunction | undefined {
  const lower = name.toLowerCase();
  return getRegisteredFunctions().find((f) => f.name.toLowerCase() === lower);
}

export function outcomeOf(r: WorkerResult): InvocationOutcome {
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

export function toTriggerMetadata(meta: Record<string, unknown> | undefined): Record<string, RpcTypedData> {
  const out: Record<string, RpcTypedData> = {};
  for (const [k, v] of Object.entries(meta ?? {})) {
    const d = toRpcTypedData(v);
    if (d) out[k] = d;
  }
  return out;
}

export interface Worker {
  /** One invocation, logged as the host logs it ("Executing"/"Executed"); rethrows the handler's error. */
  invoke(fn: RegisteredFunction, triggerData: RpcTypedData | undefined, triggerMetadata: Record<string, RpcTypedData>, reason: string): Promise<WorkerResult>;
}

export function createWorker(o: { log: Log; providers: Record<string, InputBindingProvider>; host: () => LocalHost }): Worker {
  const { log, providers } = o;

  function requireProgrammingModel(): ProgrammingModelLike {
    const pm = getProgrammingModel() as ProgrammingModelLike | undefined;
    if (!pm || typeof pm.getInvocationModel !== "function") {
      throw new Error("No programming model was registered (did the app call app.* before installCoreShim()?)");
    }
    return pm;
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

  async function invoke(
    fn: RegisteredFunction,
    triggerData: RpcTypedData | undefined,
    triggerMetadata: Record<string, RpcTypedData>,
    reason: string,
  ): Promise<WorkerResult> {
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
  ): Promise<WorkerResult> {
    const pm = requireProgrammingModel();
    const plan = planOf(fn);
    const inputData: RpcParameterBinding[] = [];
    inputData.push(triggerData === undefined ? { name: fn.trigger.key } : { name: fn.trigger.key, data: triggerData });
    for (const [key, binding] of plan.inputs) {
      const provider = providers[binding.type];
      if (!provider) continue;
      const value = await provider(binding, fn, o.host());
      if (value === undefined) continue;
      const data = toRpcTypedData(value);
      inputData.push(data === undefined ? { name: key } : { name: key, data });
    }

    const now = Date.now();
    const sys = new LazyJson(() => ({ MethodName: fn.name, UtcNow: new Date(now).toISOString(), RandGuid: randomUUID() }));
    const request = {
      invocationId,
      functionId: fn.name,
      inputData,
      triggerMetadata: { ...triggerMetadata, sys },
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

    // Hook contexts expose hookData, appHookData and invocationContext read-only, as the worker does; they
    // are only built for hooks that exist.
    const hookContext = <T extends object>(fields: T) =>
      withReadOnly(fields, { hookData: () => hookData, appHookData: getAppHookData, invocationContext: () => context });
    const preHooks = getHooks("preInvocation");
    if (preHooks.length > 0) {
      const preCtx = hookContext({ functionCallback: callback, inputs });
      coreCtx.state = "preInvocationHooks";
      try {
        for (const hook of preHooks) await hook(preCtx);
      } finally {
        coreCtx.state = undefined;
      }
      inputs = preCtx.inputs;
      callback = preCtx.functionCallback;
    }

    let result: unknown = null;
    let error: unknown = null;
    coreCtx.state = "invocation";
    try {
      result = await model.invokeFunction(context, inputs, callback);
    } catch (err) {
      error = err;
    } finally {
      coreCtx.state = undefined;
    }
    const postHooks = getHooks("postInvocation");
    if (postHooks.length > 0) {
      const postCtx = hookContext({ inputs, result, error });
      coreCtx.state = "postInvocationHooks";
      try {
        for (const hook of postHooks) await hook(postCtx);
      } finally {
        coreCtx.state = undefined;
      }
      result = postCtx.result;
      error = postCtx.error;
    }
    if (error !== null && error !== undefined) throw error;

    // A plain HttpResponseInit is converted here, without the library's round trip through a fetch Response
    // (http-output.ts). The library still converts any other output, handed null for the HTTP one.
    const direct = plan.httpReturn ? directHttpOutput(result) : undefined;
    if (direct === undefined) return { invocationId, response: await model.getResponse(context, result), result };
    if (plan.httpReturnOnly) return { invocationId, response: { invocationId, outputData: [], returnValue: direct }, result };
    const response = await model.getResponse(context, null);
    response.returnValue = direct;
    return { invocationId, response, result };
  }

  return { invoke };
}
