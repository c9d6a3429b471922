// @aigov/functions-localhost: a local stand-in for the Azure Functions host and Node.js worker.
//
//   installCoreShim();                       // before the app's first `app.*` call
//   const durable = createDurableEngine({ dataDir });            // "@aigov/functions-localhost/durable"
//   const host = await startLocalHost({ port, functionFiles, builtinRoutes: durable.builtinRoutes,
//                                       inputBindingProviders: durable.inputBindingProviders });
//   await durable.attach(host);
//
// It imports nothing from any app: it loads compiled v4-model function files and serves them. The
// durable engine is a separate entry point ("./durable") so that an app without orchestrations never
// loads it; "./core-shim" is the shim alone (node built-ins only, for cold-start measurements).

export {
  CORE_MODULE_ID,
  type Binding,
  type CoreLogCategory,
  type CoreLogLevel,
  type RegisteredFunction,
  getCoreApi,
  getProgrammingModel,
  getRegisteredFunctions,
  installCoreShim,
  isCoreShimInstalled,
} from "./core-shim.js";
export {
  type BuiltinRoute,
  type InputBindingProvider,
  type InvocationOutcome,
  type InvokeOptions,
  type LocalHost,
  type LocalHostOptions,
  type LogLevel,
  startLocalHost,
} from "./host.js";
