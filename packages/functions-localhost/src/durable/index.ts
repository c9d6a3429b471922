// Durable Functions for the local host: plug the engine's builtin routes and `durableClient`
// input binding into startLocalHost, then attach() it to the running host.
//
//   const durable = createDurableEngine({ dataDir });
//   const host = await startLocalHost({ ..., builtinRoutes: durable.builtinRoutes,
//                                        inputBindingProviders: durable.inputBindingProviders });
//   await durable.attach(host);      // resumes persisted instances
//   ...
//   await host.close(); await durable.close();
//
// Replay is done by durable-functions itself (the registered orchestrationTrigger handler); the
// engine stores history, turns actions into history events, runs activities, fires timers and
// serves the extension's HTTP API under /runtime/webhooks/durabletask/. See docs/local-host.md,
// "Durable protocol". Only node built-ins and sibling modules are imported.

import type { BuiltinRoute, InputBindingProvider, LocalHost } from "../host.js";
import { type EngineStats, type EpisodeRecord, EngineCore } from "./engine.js";
import { bindingProvider, createRoutes } from "./http-api.js";
import { loadOrCreateSystemKey, newSystemKey } from "./system-key.js";
import type { HistoryEvent, InstanceStatus } from "./types.js";

export type { EngineStats, EpisodeRecord } from "./engine.js";
export type { HistoryEvent, InstanceStatus, RuntimeStatus } from "./types.js";
export { EventType, ActionType } from "./types.js";
export { WEBHOOK_PATH } from "./http-api.js";
export { SYSTEM_KEY_FILE } from "./system-key.js";

export interface DurableEngineOptions {
  /** Persist instances under <dataDir>/durable/<taskHub>/ (atomic writes); undefined = memory only. */
  dataDir?: string;
  /** Default "aigov". */
  taskHub?: string;
  log?: (level: "debug" | "info" | "warn" | "error", message: string) => void;
  /**
   * Clock (ms epoch), default Date.now. Used for history timestamps and timer due times. A clock that
   * jumps forward (a test's) calls wakeTimers() after each jump.
   */
  now?: () => number;
  /**
   * Debug: after every episode compare the engine's task ids with the library's internal
   * sequence numbers (private fields, so only an assertion; mismatches are logged as errors and
   * counted in stats()). Default: process.env.AIGOV_DURABLE_SELFCHECK === "1".
   */
  selfCheck?: boolean;
  /** Include rpcBaseUrl in the durableClient binding (default true); false = URL-template mode. */
  useRpcBaseUrl?: boolean;
  /** Called after every orchestrator invocation (contract recording). */
  onEpisode?: (episode: EpisodeRecord) => void;
  /**
   * The system key the durable HTTP API requires (`code` or `x-functions-key`). Default: <dataDir>/durabletask.key,
   * made at first start (mode 0600); a random key per engine without a data directory.
   */
  systemKey?: string;
}

export interface DurableEngine {
  /** Pass to startLocalHost. */
  builtinRoutes: BuiltinRoute[];
  /** The key callers of /runtime/webhooks/durabletask/* present (`?code=` or `x-functions-key`). */
  systemKey: string;
  /** Pass to startLocalHost ({ durableClient, orchestrationClient }). */
  inputBindingProviders: Record<string, InputBindingProvider>;
  /** After startLocalHost: finds orchestrator/activity functions and resumes persisted instances. */
  attach(host: LocalHost): Promise<void>;
  getStatus(instanceId: string): InstanceStatus | undefined;
  waitForStatus(instanceId: string, statuses: string[], timeoutMs: number): Promise<InstanceStatus>;
  /** Stops timers and flushes persistence. Work still in flight is redone after a restart. */
  close(): Promise<void>;

  // -- extras (tests and tooling) --
  /** Starts an orchestration without going through HTTP. */
  startNew(name: string, opts?: { instanceId?: string; input?: unknown; version?: string }): Promise<string>;
  raiseEvent(instanceId: string, eventName: string, data?: unknown): Promise<void>;
  terminate(instanceId: string, reason: string): Promise<void>;
  /** A copy of the current execution's history. */
  getHistory(instanceId: string): HistoryEvent[] | undefined;
  stats(): EngineStats;
  /** After the `now` clock jumped forward: re-reads it for every armed timer, and the due ones fire. */
  wakeTimers(): void;
}

export function createDurableEngine(opts: DurableEngineOptions = {}): DurableEngine {
  const log = opts.log ?? ((level, message) => (level === "error" ? console.error(message) : level === "warn" ? console.warn(message) : undefined));
  const core = new EngineCore({
    ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}),
    taskHub: opts.taskHub ?? "aigov",
    log,
    now: opts.now ?? Date.now,
    selfCheck: opts.selfCheck ?? process.env.AIGOV_DURABLE_SELFCHECK === "1",
    ...(opts.onEpisode ? { onEpisode: opts.onEpisode } : {}),
  });
  const systemKey = opts.systemKey ?? (opts.dataDir !== undefined ? loadOrCreateSystemKey(opts.dataDir) : newSystemKey());
  const provider = bindingProvider(core, opts.useRpcBaseUrl !== false, systemKey) as InputBindingProvider;
  const toJson = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v));
  return {
    builtinRoutes: createRoutes(core, systemKey),
    systemKey,
    inputBindingProviders: { durableClient: provider, orchestrationClient: provider },
    attach: (host) => core.attach(host),
    getStatus: (id) => core.status(id),
    waitForStatus: (id, statuses, timeoutMs) => core.waitForStatus(id, statuses, timeoutMs),
    close: () => core.close(),
    startNew: (name, o = {}) =>
      core.start(name, {
        ...(o.instanceId !== undefined ? { instanceId: o.instanceId } : {}),
        inputJson: toJson(o.input),
        ...(o.version !== undefined ? { version: o.version } : {}),
      }),
    raiseEvent: (id, name, data) => core.raise(id, name, toJson(data)),
    terminate: (id, reason) => core.terminate(id, reason),
    getHistory: (id) => core.history(id),
    stats: () => core.stats(),
    wakeTimers: () => core.wakeTimers(),
  };
}
