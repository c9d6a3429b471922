// The local durable engine: stores orchestration history, runs episodes through the library's own
// orchestrator (the registered orchestrationTrigger handler), turns the returned actions into
// history events and work (activities, timers, sub-orchestrations), and delivers completions back,
// one new event per episode. Protocol details: /work/shared/notes/durable-local-host.md §2.

import { randomUUID } from "node:crypto";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { getCoreApi } from "../core-shim.js";
import type { LocalHost, RegisteredFunction } from "../host.js";
import {
  type LiveAction,
  type OrchestratorStateLike,
  SUPPORTED_LEAVES,
  activityFailure,
  activityTriggerValue,
  describeLeaf,
  isOrchestratorState,
  leafName,
  orchestratorFailureMessage,
  processedInputToJson,
  rawToJson,
  retryDelayMs,
  safeStringify,
  sameLeaf,
  walkActions,
} from "./actions.js";
import { events } from "./history.js";
import { TimerScheduler } from "./scheduler.js";
import { InstanceStore } from "./store.js";
import {
  ActionType,
  EventType,
  type HistoryEvent,
  type InboxItem,
  type InstanceRecord,
  type InstanceStatus,
  type LeafRecord,
  type ParentLink,
  type RetryPolicy,
  type RetryState,
  type RuntimeStatus,
  actionTypeName,
  isTerminal,
  parseLoose,
} from "./types.js";

export type DurableLogLevel = "debug" | "info" | "warn" | "error";

/** What one episode sent to the orchestrator and got back (for contract recording). */
export interface EpisodeRecord {
  instanceId: string;
  name: string;
  /** The orchestrationTrigger binding value exactly as sent (a JSON string). */
  trigger: string;
  /** JSON round-trip of the returned OrchestratorState (undefined when the handler threw). */
  result?: unknown;
  /** The failure message when the handler threw. */
  error?: string;
  /** The OrchestratorState carried by the thrown OrchestrationFailureError, when there was one. */
  errorState?: Record<string, unknown>;
}

export interface EngineCoreOptions {
  dataDir?: string;
  taskHub: string;
  log: (level: DurableLogLevel, message: string) => void;
  now: () => number;
  selfCheck: boolean;
  onEpisode?: (episode: EpisodeRecord) => void;
}

export interface EngineStats {
  episodes: number;
  /** Duration of the last episode (invoke + bookkeeping + persistence), ms. */
  lastEpisodeMs: number;
  selfCheckOk: number;
  selfCheckFail: number;
  instances: number;
  /** Durable timers currently armed (wall-clock timers). */
  armedTimers: number;
}

export class DurableApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

interface Inst {
  rec: InstanceRecord;
  draining: boolean;
  drained: Promise<void> | null;
  /** An episode is being computed for rec.inbox[0] (which stays there until it is committed). */
  busy: boolean;
  /** Comma-joined JSON of history[0..playedCount), each with IsPlayed: true. */
  playedJson: string;
  playedCount: number;
  /** Open retry tasks by the id of their running attempt or retry timer. */
  retryById: Map<number, RetryState>;
  /** Replaced (restarted with the same id) or purged: drop whatever is still in flight. */
  gone: boolean;
}

/** One episode's new history and the work to start once it is persisted. */
interface Episode {
  ts: string;
  startedMs: number;
  events: HistoryEvent[];
  after: (() => void)[];
  /** The execution ended (or continued as new) in this episode. */
  ended: boolean;
}

interface Waiter {
  instanceId: string;
  statuses: Set<string>;
  resolve: (s: InstanceStatus) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const DEFAULT_CONNECTION = "Storage";

export function newGuid(): string {
  return randomUUID().replace(/-/g, "");
}

function validateInstanceId(id: string): void {
  if (id.length === 0) throw new DurableApiError(400, "Instance IDs must not be empty.");
  if (id.startsWith("@")) throw new DurableApiError(400, "Orchestration instance ids must not start with @.");
  if (/[/\\?#\u0000-\u001f\u007f-\u009f]/.test(id)) {
    throw new DurableApiError(400, "Orchestration instance ids must not contain /, \\, #, ?, or control characters.");
  }
  if (id.length > 256) throw new DurableApiError(400, "Instance ID lengths must not exceed 256 characters.");
}

function sameLink(a: ParentLink | undefined, b: ParentLink): boolean {
  return !!a && a.instanceId === b.instanceId && a.executionId === b.executionId && a.taskId === b.taskId;
}

export class EngineCore {
  readonly taskHub: string;
  readonly connectionName = DEFAULT_CONNECTION;
  readonly #opts: EngineCoreOptions;
  readonly #instances = new Map<string, Inst>();
  readonly #orchestrators = new Map<string, string>();
  readonly #activities = new Map<string, string>();
  readonly #timers: TimerScheduler;
  readonly #store: InstanceStore | undefined;
  readonly #waiters = new Set<Waiter>();
  readonly #libSnapshots = new Map<string, { seq: number; open: number[] }>();
  #host: LocalHost | undefined;
  #closed = false;
  #hook: { dispose(): unknown } | undefined;
  #stats: EngineStats = { episodes: 0, lastEpisodeMs: 0, selfCheckOk: 0, selfCheckFail: 0, instances: 0, armedTimers: 0 };

  constructor(opts: EngineCoreOptions) {
    this.#opts = opts;
    this.taskHub = opts.taskHub;
    this.#timers = new TimerScheduler(opts.now);
    this.#store = opts.dataDir
      ? new InstanceStore(path.join(path.resolve(opts.dataDir), "durable", opts.taskHub), (l, m) => opts.log(l, m))
      : undefined;
  }

  get host(): LocalHost | undefined {
    return this.#host;
  }

  get ready(): boolean {
    return this.#host !== undefined && !this.#closed;
  }

  #iso(ms = this.#opts.now()): string {
    return new Date(ms).toISOString();
  }

  // -- lifecycle ------------------------------------------------------------------------------

  async attach(host: LocalHost): Promise<void> {
    if (this.#host) throw new Error("The durable engine is already attached to a host");
    if (this.#closed) throw new Error("The durable engine is closed");
    for (const fn of host.functions) {
      const type = fn.trigger.binding.type.toLowerCase();
      if (type === "orchestrationtrigger") this.#orchestrators.set(fn.name.toLowerCase(), fn.name);
      else if (type === "activitytrigger") this.#activities.set(fn.name.toLowerCase(), fn.name);
      else if (type === "entitytrigger") this.#opts.log("warn", `durable: entity function '${fn.name}' is not supported by the local host`);
    }
    const loaded = this.#store ? await this.#store.loadAll() : [];
    if (this.#opts.selfCheck) {
      const api = getCoreApi() as { registerHook(name: string, cb: (ctx: unknown) => void): { dispose(): unknown } };
      this.#hook = api.registerHook("postInvocation", (ctx) => this.#captureLibraryState(ctx));
    }
    this.#host = host;
    const resumed: Inst[] = [];
    for (const rec of loaded) {
      const inst = this.#wrap(rec);
      this.#instances.set(rec.instanceId, inst);
      if (!isTerminal(rec.status)) resumed.push(inst);
    }
    if (loaded.length > 0) {
      this.#opts.log("info", `durable: loaded ${loaded.length} instance(s) from ${this.#store?.dir}, resuming ${resumed.length}`);
    }
    for (const inst of resumed) this.#resume(inst);
  }

  /** Re-arms timers, re-runs activities whose completion was not recorded, restarts children. */
  #resume(inst: Inst): void {
    const rec = inst.rec;
    for (const [key, p] of Object.entries(rec.pending)) {
      const id = Number(key);
      if (p.kind === "activity") {
        this.#opts.log("info", `durable: re-running activity '${p.name}' (task ${id}) of '${rec.instanceId}' scheduled before the restart`);
        this.#runActivity(inst, id);
      } else if (p.kind === "timer") {
        if (!p.cancelled) this.#armTimer(inst, id);
      } else {
        this.#startChild(inst, id);
      }
    }
    this.#drain(inst);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#timers.cancelAll();
    const drains = [...this.#instances.values()].map((i) => i.drained).filter((d): d is Promise<void> => d !== null);
    await Promise.allSettled(drains);
    await this.#store?.flush();
    this.#hook?.dispose();
    this.#hook = undefined;
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new Error("The durable engine was closed"));
    }
    this.#waiters.clear();
  }

  stats(): EngineStats {
    return { ...this.#stats, instances: this.#instances.size, armedTimers: this.#timers.size };
  }

  // -- queries ------------------------------------------------------------------------------

  record(instanceId: string): InstanceRecord | undefined {
    return this.#instances.get(instanceId)?.rec;
  }

  records(): InstanceRecord[] {
    return [...this.#instances.values()].map((i) => i.rec);
  }

  status(instanceId: string): InstanceStatus | undefined {
    const rec = this.record(instanceId);
    return rec ? toStatus(rec) : undefined;
  }

  history(instanceId: string): HistoryEvent[] | undefined {
    const rec = this.record(instanceId);
    return rec ? (JSON.parse(JSON.stringify(rec.history)) as HistoryEvent[]) : undefined;
  }

  waitForStatus(instanceId: string, statuses: string[], timeoutMs: number): Promise<InstanceStatus> {
    const now = this.status(instanceId);
    if (now && statuses.includes(now.runtimeStatus)) return Promise.resolve(now);
    return new Promise<InstanceStatus>((resolve, reject) => {
      const w: Waiter = {
        instanceId,
        statuses: new Set(statuses),
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w);
          const s = this.status(instanceId);
          reject(
            new Error(
              `Timed out after ${timeoutMs} ms waiting for '${instanceId}' to be ${statuses.join("/")}; it is ${s ? s.runtimeStatus : "unknown"}` +
                (s && s.output !== null ? ` (output: ${JSON.stringify(s.output)})` : ""),
            ),
          );
        }, timeoutMs),
      };
      this.#waiters.add(w);
    });
  }

  #statusChanged(rec: InstanceRecord): void {
    if (this.#waiters.size === 0) return;
    for (const w of [...this.#waiters]) {
      if (w.instanceId !== rec.instanceId || !w.statuses.has(rec.status)) continue;
      this.#waiters.delete(w);
      clearTimeout(w.timer);
      w.resolve(toStatus(rec));
    }
  }

  hasOrchestrator(name: string): boolean {
    return this.#orchestrators.has(name.toLowerCase());
  }

  // -- client operations ----------------------------------------------------------------------

  /** Creates and starts an instance. inputJson must be JSON text (or null). */
  async start(name: string, o: { instanceId?: string; inputJson?: string | null; version?: string; parent?: ParentLink }): Promise<string> {
    this.#requireReady();
    const fnName = this.#orchestrators.get(name.toLowerCase());
    if (!fnName) {
      throw new DurableApiError(400, `The function '${name}' doesn't exist, is disabled, or is not an orchestrator function.`);
    }
    const instanceId = o.instanceId ?? newGuid();
    validateInstanceId(instanceId);
    const existing = this.#instances.get(instanceId);
    if (existing && !isTerminal(existing.rec.status)) {
      throw new DurableApiError(409, `An Orchestration instance with the status ${existing.rec.status} already exists.`);
    }
    const inst = this.#create(fnName, instanceId, o.inputJson ?? null, o.version ?? "", o.parent);
    await this.#persist(inst);
    this.#drain(inst);
    return instanceId;
  }

  #create(name: string, instanceId: string, inputJson: string | null, version: string, parent?: ParentLink): Inst {
    const old = this.#instances.get(instanceId);
    if (old) old.gone = true;
    const now = this.#iso();
    const executionId = newGuid();
    const rec: InstanceRecord = {
      v: 1,
      instanceId,
      name,
      version,
      executionId,
      status: "Pending",
      createdTime: now,
      lastUpdatedTime: now,
      input: inputJson,
      output: null,
      customStatus: null,
      ...(parent ? { parent } : {}),
      history: [],
      inbox: [{ kind: "event", event: events.executionStarted(now, { name, version, input: inputJson, instanceId, executionId, parent }) }],
      leaves: [],
      nextId: 0,
      pending: {},
      retries: [],
      lastStartedAt: 0,
    };
    const inst = this.#wrap(rec);
    this.#instances.set(instanceId, inst);
    this.#opts.log("debug", `durable: created '${instanceId}' (${name})`);
    return inst;
  }

  #wrap(rec: InstanceRecord): Inst {
    const inst: Inst = {
      rec,
      draining: false,
      drained: null,
      busy: false,
      playedJson: "",
      playedCount: 0,
      retryById: new Map(),
      gone: false,
    };
    for (const r of rec.retries) inst.retryById.set(r.currentId, r);
    return inst;
  }

  #get(instanceId: string): Inst {
    this.#requireReady();
    const inst = this.#instances.get(instanceId);
    if (!inst) throw new DurableApiError(404, `No instance with ID '${instanceId}' found.`);
    return inst;
  }

  #requireReady(): void {
    if (this.#closed) throw new DurableApiError(503, "The durable engine is closed.");
    if (!this.#host) throw new DurableApiError(503, "The durable engine is not attached to the host yet.");
  }

  /** raiseEvent: 404 unknown, 410 finished, else queued (delivered when a waiter exists, §2.4). */
  async raise(instanceId: string, eventName: string, inputJson: string | null): Promise<void> {
    const inst = this.#get(instanceId);
    const rec = inst.rec;
    if (isTerminal(rec.status)) throw new DurableApiError(410, `The instance '${instanceId}' is ${rec.status}.`);
    rec.inbox.push({ kind: "event", event: events.eventRaised(this.#iso(), eventName, inputJson) });
    rec.lastUpdatedTime = this.#iso();
    await this.#persist(inst);
    this.#drain(inst);
  }

  async terminate(instanceId: string, reason: string): Promise<void> {
    const inst = this.#get(instanceId);
    const rec = inst.rec;
    if (isTerminal(rec.status)) throw new DurableApiError(410, `The instance '${instanceId}' is ${rec.status}.`);
    if (!rec.inbox.some((i) => i.kind === "terminate")) {
      const item: InboxItem = { kind: "terminate", reason };
      rec.inbox.splice(inst.busy ? 1 : 0, 0, item);
      await this.#persist(inst);
    }
    this.#drain(inst);
  }

  async suspend(instanceId: string): Promise<void> {
    const inst = this.#get(instanceId);
    const rec = inst.rec;
    if (isTerminal(rec.status)) throw new DurableApiError(410, `The instance '${instanceId}' is ${rec.status}.`);
    if (rec.status === "Suspended") return;
    rec.status = "Suspended";
    rec.lastUpdatedTime = this.#iso();
    await this.#persist(inst);
    this.#statusChanged(rec);
  }

  async resume(instanceId: string): Promise<void> {
    const inst = this.#get(instanceId);
    const rec = inst.rec;
    if (isTerminal(rec.status)) throw new DurableApiError(410, `The instance '${instanceId}' is ${rec.status}.`);
    if (rec.status !== "Suspended") return;
    rec.status = rec.history.length > 0 ? "Running" : "Pending";
    rec.lastUpdatedTime = this.#iso();
    await this.#persist(inst);
    this.#statusChanged(rec);
    this.#drain(inst);
  }

  /** Purges one finished instance. false when unknown; 412 when still running. */
  async purge(instanceId: string): Promise<boolean> {
    this.#requireReady();
    const inst = this.#instances.get(instanceId);
    if (!inst) return false;
    if (!isTerminal(inst.rec.status)) {
      throw new DurableApiError(
        412,
        `Only orchestrations in a terminal state can be purged, but the orchestration with instance ID ${instanceId} has status ${inst.rec.status}`,
      );
    }
    inst.gone = true;
    this.#instances.delete(instanceId);
    await this.#store?.remove(inst.rec);
    return true;
  }

  async restart(instanceId: string, withNewInstanceId: boolean): Promise<string> {
    const inst = this.#instances.get(instanceId);
    if (!inst) throw new DurableApiError(400, "InstanceId does not match a valid orchestration instance.");
    const rec = inst.rec;
    if (!withNewInstanceId && !isTerminal(rec.status)) {
      throw new DurableApiError(409, "A non-terminal instance with this instance ID already exists.");
    }
    return this.start(rec.name, {
      instanceId: withNewInstanceId ? newGuid() : instanceId,
      inputJson: rec.input,
      version: rec.version,
    });
  }

  // -- the episode loop -----------------------------------------------------------------------

  #persist(inst: Inst): Promise<void> {
    if (!this.#store || inst.gone) return Promise.resolve();
    return this.#store.save(inst.rec).catch(() => undefined); // already logged by the store
  }

  #drain(inst: Inst): void {
    if (inst.draining || this.#closed || !this.#host || inst.gone) return;
    inst.draining = true;
    const run = async (): Promise<void> => {
      for (;;) {
        if (this.#closed || inst.gone) return;
        const rec = inst.rec;
        const item = rec.inbox[0];
        if (!item) return;
        if (isTerminal(rec.status)) {
          rec.inbox = [];
          await this.#persist(inst);
          return;
        }
        if (item.kind === "terminate") {
          await this.#terminateNow(inst, item.reason);
          continue;
        }
        if (rec.status === "Suspended") return;
        try {
          await this.#episode(inst, item.event);
        } catch (err) {
          // A bug in the engine, not in the orchestrator: fail the instance instead of looping.
          const message = `Local durable host error while running '${rec.name}': ${(err as Error)?.stack ?? String(err)}`;
          this.#opts.log("error", `durable: ${message}`);
          inst.busy = false;
          if (rec.inbox[0] === item) rec.inbox.shift();
          const ep = this.#newEpisode();
          this.#finish(inst, ep, "Failed", message, message);
          await this.#commit(inst, ep);
        }
      }
    };
    inst.drained = run().finally(() => {
      inst.draining = false;
    });
  }

  #newEpisode(): Episode {
    const now = this.#opts.now();
    return { ts: this.#iso(now), startedMs: now, events: [], after: [], ended: false };
  }

  async #commit(inst: Inst, ep: Episode): Promise<void> {
    const rec = inst.rec;
    for (const e of ep.events) rec.history.push(e);
    rec.lastUpdatedTime = this.#iso();
    await this.#persist(inst);
    if (inst.gone) return;
    for (const f of ep.after) f();
    this.#statusChanged(rec);
  }

  /** Marks history from earlier episodes as played and extends the cached JSON of it. */
  #markPlayed(inst: Inst): void {
    const h = inst.rec.history;
    let json = inst.playedJson;
    for (let i = inst.playedCount; i < h.length; i++) {
      const e = h[i] as HistoryEvent;
      e.IsPlayed = true;
      json += (json.length > 0 ? "," : "") + JSON.stringify(e);
    }
    inst.playedJson = json;
    inst.playedCount = h.length;
  }

  async #terminateNow(inst: Inst, reason: string): Promise<void> {
    const rec = inst.rec;
    rec.inbox.shift();
    const ep = this.#newEpisode();
    ep.events.push(events.executionTerminated(ep.ts, reason));
    ep.events.push(events.executionCompleted(ep.ts, "Terminated", reason));
    this.#finish(inst, ep, "Terminated", reason);
    this.#opts.log("info", `durable: '${rec.instanceId}' terminated: ${reason}`);
    await this.#commit(inst, ep);
  }

  async #episode(inst: Inst, newEvent: HistoryEvent): Promise<void> {
    const host = this.#host as LocalHost;
    const rec = inst.rec;
    const t0 = performance.now();
    const executionId = rec.executionId;
    inst.busy = true;

    // Strictly increasing, persisted OrchestratorStarted timestamps (notes §2.4, §5.7).
    const startedMs = Math.max(this.#opts.now(), rec.lastStartedAt + 1);
    const ep: Episode = { ts: new Date(startedMs).toISOString(), startedMs, events: [], after: [], ended: false };
    const started = events.orchestratorStarted(ep.ts);
    const incoming: HistoryEvent = { ...newEvent, IsPlayed: false };
    this.#markPlayed(inst);
    const sep = inst.playedJson.length > 0 ? "," : "";
    const input = rec.input !== null && rec.input !== undefined ? rec.input : "null";
    const trigger =
      `{"history":[${inst.playedJson}${sep}${JSON.stringify(started)},${JSON.stringify(incoming)}],` +
      `"input":${input},"instanceId":${JSON.stringify(rec.instanceId)},"isReplaying":${inst.playedCount > 0},` +
      (rec.parent ? `"parentInstanceId":${JSON.stringify(rec.parent.instanceId)},` : "") +
      `"upperSchemaVersion":1,"defaultHttpAsyncRequestSleepTimeMillseconds":30000}`;

    let state: OrchestratorStateLike | undefined;
    let failure: string | undefined;
    let failureState: Record<string, unknown> | undefined;
    let invocationId: string | undefined;
    try {
      const outcome = await host.invokeDetailed(rec.name, trigger);
      invocationId = outcome.invocationId;
      if (isOrchestratorState(outcome.result)) state = outcome.result;
      else failure = `The function '${rec.name}' did not return an orchestration state; is it registered with df.app.orchestration()?`;
    } catch (err) {
      const f = orchestratorFailureMessage(err);
      failure = f.message;
      failureState = f.state;
    }
    const snapshot = invocationId !== undefined ? this.#libSnapshots.get(invocationId) : undefined;
    if (invocationId !== undefined) this.#libSnapshots.delete(invocationId);
    if (this.#opts.onEpisode) {
      this.#opts.onEpisode({
        instanceId: rec.instanceId,
        name: rec.name,
        trigger,
        ...(state ? { result: JSON.parse(safeStringify(state) ?? "null") as unknown } : {}),
        ...(failure !== undefined ? { error: failure } : {}),
        ...(failureState ? { errorState: failureState } : {}),
      });
    }
    inst.busy = false;
    if (inst.gone || rec.executionId !== executionId || this.#closed) return;

    // Commit: everything below is synchronous up to the persist in #commit.
    rec.inbox.shift();
    rec.lastStartedAt = startedMs;
    ep.events.push(started, incoming);
    if (rec.status === "Pending") rec.status = "Running";

    if (state === undefined) {
      const message = failure ?? "unknown failure";
      this.#opts.log("warn", `durable: orchestration '${rec.instanceId}' (${rec.name}) failed: ${message}`);
      this.#finish(inst, ep, "Failed", `Orchestrator function '${rec.name}' failed: ${message}`, message);
    } else {
      this.#apply(inst, ep, incoming, state);
    }
    if (!ep.ended) {
      ep.events.push(events.orchestratorCompleted(this.#iso()));
      if (snapshot) this.#selfCheck(inst, snapshot);
    }
    await this.#commit(inst, ep);
    this.#stats.lastEpisodeMs = performance.now() - t0;
    this.#stats.episodes++;
  }

  /** Turns the orchestrator's state into history and work (notes §2.5). */
  #apply(inst: Inst, ep: Episode, incoming: HistoryEvent, state: OrchestratorStateLike): void {
    const rec = inst.rec;
    // 1. Retry bookkeeping: the library numbers retry timers / attempts while it processes the
    //    new event, before user code can yield anything new.
    this.#onRetryEvent(inst, ep, incoming);

    // 2. Known leaves must match history; a known timer may have been cancelled since.
    const walked = walkActions(state.actions);
    const known = rec.leaves;
    const n = Math.min(known.length, walked.leaves.length);
    for (let k = 0; k < n; k++) {
      const kl = known[k] as LeafRecord;
      const live = walked.leaves[k] as LiveAction;
      if (!sameLeaf(kl, live)) {
        this.#nonDeterministic(
          inst,
          ep,
          `action #${k} was ${describeLeaf(kl.t, kl.n)} when the orchestration ran before, but replay now yields ${describeLeaf(live.actionType, leafName(live))} there. Orchestrator code must be deterministic.`,
        );
        return;
      }
      if (kl.t === ActionType.CreateTimer && live.isCanceled === true && kl.id !== null) this.#cancelTimer(inst, kl.id);
    }
    if (walked.leaves.length < known.length) {
      const kl = known[walked.leaves.length] as LeafRecord;
      this.#nonDeterministic(
        inst,
        ep,
        `action #${walked.leaves.length} was ${describeLeaf(kl.t, kl.n)} when the orchestration ran before, but replay ${state.isDone ? "completed" : "stopped"} without yielding it. Orchestrator code must be deterministic.`,
      );
      return;
    }

    // 3. Custom status is whatever the last episode set.
    rec.customStatus = state.customStatus === undefined || state.customStatus === null ? null : rawToJson(state.customStatus);

    // 4. New leaves.
    const fresh = walked.leaves.slice(known.length);
    const unsupported = fresh.find((a) => !SUPPORTED_LEAVES.has(a.actionType));
    if (unsupported) {
      const message = `${actionTypeName(unsupported.actionType)} is not supported by the local durable host (schema V2; no entities, callHttp or locks).`;
      this.#finish(inst, ep, "Failed", `Orchestrator function '${rec.name}' failed: ${message}`, message);
      return;
    }
    if (!state.isDone) for (const a of fresh) rec.leaves.push(this.#scheduleLeaf(inst, ep, a));

    // 5. Completion.
    if (state.isDone) {
      if (walked.continueAsNew) this.#continueAsNew(inst, ep, walked.continueAsNew);
      else this.#finish(inst, ep, "Completed", rawToJson(state.output) ?? "null");
    }
  }

  #nonDeterministic(inst: Inst, ep: Episode, detail: string): void {
    const message = `Non-Deterministic workflow detected: ${detail}`;
    this.#opts.log("error", `durable: '${inst.rec.instanceId}' (${inst.rec.name}): ${message}`);
    this.#finish(inst, ep, "Failed", message, message);
  }

  #scheduleLeaf(inst: Inst, ep: Episode, a: LiveAction): LeafRecord {
    const rec = inst.rec;
    const name = leafName(a);
    switch (a.actionType) {
      case ActionType.CallActivity:
      case ActionType.CallActivityWithRetry: {
        const id = rec.nextId++;
        const input = processedInputToJson(a.input);
        this.#scheduleActivity(inst, ep, id, name, input);
        if (a.actionType === ActionType.CallActivityWithRetry) {
          this.#addRetry(inst, {
            kind: "activity",
            name,
            ...(input !== undefined ? { input } : {}),
            policy: retryPolicy(a.retryOptions),
            attempts: 1,
            phase: "attempt",
            currentId: id,
          });
        }
        return { t: a.actionType, n: name, id };
      }
      case ActionType.CallSubOrchestrator:
      case ActionType.CallSubOrchestratorWithRetry: {
        const id = rec.nextId++;
        const input = rawToJson(a.input);
        const explicitId = typeof a.instanceId === "string" && a.instanceId !== "" ? a.instanceId : undefined;
        const version = typeof a.version === "string" ? a.version : undefined;
        this.#scheduleSub(inst, ep, id, name, explicitId ?? `${rec.instanceId}:${id}`, input, version);
        if (a.actionType === ActionType.CallSubOrchestratorWithRetry) {
          this.#addRetry(inst, {
            kind: "sub",
            name,
            input,
            ...(explicitId ? { instanceId: explicitId } : {}),
            ...(version ? { version } : {}),
            policy: retryPolicy(a.retryOptions),
            attempts: 1,
            phase: "attempt",
            currentId: id,
          });
        }
        return { t: a.actionType, n: name, id };
      }
      case ActionType.CreateTimer: {
        const id = rec.nextId++;
        const fireAt = new Date(a.fireAt ?? ep.startedMs).toISOString();
        ep.events.push(events.timerCreated(ep.ts, id, fireAt));
        const cancelled = a.isCanceled === true;
        rec.pending[id] = { kind: "timer", fireAt, ...(cancelled ? { cancelled } : {}) };
        if (!cancelled) ep.after.push(() => this.#armTimer(inst, id));
        return { t: a.actionType, n: name, id };
      }
      default:
        // WaitForExternalEvent: no id; the library matches EventRaised by name.
        return { t: a.actionType, n: name, id: null };
    }
  }

  #scheduleActivity(inst: Inst, ep: Episode, id: number, name: string, input: string | undefined): void {
    ep.events.push(events.taskScheduled(ep.ts, id, name, input));
    inst.rec.pending[id] = { kind: "activity", name, ...(input !== undefined ? { input } : {}) };
    ep.after.push(() => this.#runActivity(inst, id));
  }

  #scheduleSub(inst: Inst, ep: Episode, id: number, name: string, instanceId: string, input: string | null, version?: string): void {
    ep.events.push(events.subOrchestrationCreated(ep.ts, id, name, instanceId, input, version));
    inst.rec.pending[id] = { kind: "sub", name, instanceId, input, ...(version ? { version } : {}) };
    ep.after.push(() => this.#startChild(inst, id));
  }

  #addRetry(inst: Inst, r: RetryState): void {
    inst.rec.retries.push(r);
    inst.retryById.set(r.currentId, r);
  }

  #dropRetry(inst: Inst, r: RetryState): void {
    const i = inst.rec.retries.indexOf(r);
    if (i >= 0) inst.rec.retries.splice(i, 1);
  }

  #onRetryEvent(inst: Inst, ep: Episode, e: HistoryEvent): void {
    const rec = inst.rec;
    const t = e.EventType;
    if (
      t === EventType.TaskCompleted ||
      t === EventType.TaskFailed ||
      t === EventType.SubOrchestrationInstanceCompleted ||
      t === EventType.SubOrchestrationInstanceFailed
    ) {
      const id = e.TaskScheduledId as number;
      const r = inst.retryById.get(id);
      if (!r || r.phase !== "attempt" || r.currentId !== id) return;
      inst.retryById.delete(id);
      if (t === EventType.TaskCompleted || t === EventType.SubOrchestrationInstanceCompleted) {
        this.#dropRetry(inst, r);
        return;
      }
      // Every failed attempt is followed by a retry timer, even the last one (notes §2.5).
      const timerId = rec.nextId++;
      const fireAt = new Date(ep.startedMs + retryDelayMs(r.policy, r.attempts)).toISOString();
      ep.events.push(events.timerCreated(ep.ts, timerId, fireAt));
      rec.pending[timerId] = { kind: "timer", fireAt, retry: true };
      r.phase = "timer";
      r.currentId = timerId;
      inst.retryById.set(timerId, r);
      ep.after.push(() => this.#armTimer(inst, timerId));
    } else if (t === EventType.TimerFired) {
      const id = e.TimerId as number;
      const r = inst.retryById.get(id);
      if (!r || r.phase !== "timer" || r.currentId !== id) return;
      inst.retryById.delete(id);
      if (r.attempts >= r.policy.maxNumberOfAttempts) {
        this.#dropRetry(inst, r); // the library fails the task now
        return;
      }
      const attemptId = rec.nextId++;
      r.attempts++;
      r.phase = "attempt";
      r.currentId = attemptId;
      inst.retryById.set(attemptId, r);
      if (r.kind === "activity") this.#scheduleActivity(inst, ep, attemptId, r.name, r.input ?? undefined);
      else this.#scheduleSub(inst, ep, attemptId, r.name, r.instanceId ?? `${rec.instanceId}:${attemptId}`, r.input ?? null, r.version);
    }
  }

  #continueAsNew(inst: Inst, ep: Episode, action: LiveAction): void {
    const rec = inst.rec;
    const input = processedInputToJson(action.input) ?? null;
    ep.ended = true;
    this.#cancelAllTimers(inst);
    // External events that were received but not processed yet carry over to the new execution.
    const carried = rec.inbox.filter((i) => i.kind === "event" && i.event.EventType === EventType.EventRaised);
    const terminate = rec.inbox.find((i) => i.kind === "terminate");
    const executionId = newGuid();
    rec.executionId = executionId;
    rec.input = input;
    rec.leaves = [];
    rec.nextId = 0;
    rec.pending = {};
    rec.retries = [];
    inst.retryById.clear();
    rec.status = "Running";
    rec.inbox = [
      ...(terminate ? [terminate] : []),
      {
        kind: "event",
        event: events.executionStarted(ep.ts, { name: rec.name, version: rec.version, input, instanceId: rec.instanceId, executionId, parent: rec.parent }),
      },
      ...carried,
    ];
    // The episode's events belong to the old execution: dropped with it (only the current
    // execution's history is kept, as the status API shows).
    ep.events.length = 0;
    rec.history = [];
    inst.playedJson = "";
    inst.playedCount = 0;
    this.#opts.log("debug", `durable: '${rec.instanceId}' continued as new`);
  }

  /** Ends the instance: status, output, and no more work. */
  #finish(inst: Inst, ep: Episode, status: "Completed" | "Failed" | "Terminated", output: string | null, failure?: string): void {
    const rec = inst.rec;
    if (status !== "Terminated") ep.events.push(events.executionCompleted(ep.ts, status, output));
    ep.events.push(events.orchestratorCompleted(ep.ts));
    ep.ended = true;
    rec.status = status;
    rec.output = output;
    if (failure !== undefined) rec.failure = failure;
    else delete rec.failure;
    this.#cancelAllTimers(inst);
    rec.pending = {};
    rec.retries = [];
    inst.retryById.clear();
    rec.inbox = [];
    ep.after.push(() => this.#notifyParent(inst));
  }

  // -- work: activities, timers, sub-orchestrations ------------------------------------------

  #timerKey(rec: InstanceRecord, id: number): string {
    return `${rec.instanceId}\u0000${rec.executionId}\u0000${id}`;
  }

  #armTimer(inst: Inst, id: number): void {
    if (this.#closed || inst.gone) return;
    const rec = inst.rec;
    const p = rec.pending[id];
    if (!p || p.kind !== "timer" || p.cancelled) return;
    const executionId = rec.executionId;
    const fireAt = p.fireAt;
    this.#timers.schedule(this.#timerKey(rec, id), Date.parse(fireAt), () =>
      this.#deliver(rec.instanceId, executionId, id, events.timerFired(this.#iso(), id, fireAt)),
    );
  }

  #cancelTimer(inst: Inst, id: number): void {
    const p = inst.rec.pending[id];
    if (!p || p.kind !== "timer" || p.cancelled) return;
    p.cancelled = true;
    this.#timers.cancel(this.#timerKey(inst.rec, id));
  }

  #cancelAllTimers(inst: Inst): void {
    for (const [key, p] of Object.entries(inst.rec.pending)) {
      if (p.kind === "timer") this.#timers.cancel(this.#timerKey(inst.rec, Number(key)));
    }
  }

  #findFunction(name: string, map: Map<string, string>): RegisteredFunction | undefined {
    const fnName = map.get(name.toLowerCase());
    return fnName ? this.#host?.functions.find((f) => f.name === fnName) : undefined;
  }

  #runActivity(inst: Inst, id: number): void {
    if (this.#closed || inst.gone || !this.#host) return;
    const host = this.#host;
    const rec = inst.rec;
    const p = rec.pending[id];
    if (!p || p.kind !== "activity") return;
    const executionId = rec.executionId;
    const run = async (): Promise<HistoryEvent> => {
      const fn = this.#findFunction(p.name, this.#activities);
      if (!fn) {
        return events.taskFailed(
          this.#iso(),
          id,
          `The function '${p.name}' doesn't exist, is disabled, or is not an activity function.`,
          "",
        );
      }
      try {
        const outcome = await host.invokeDetailed(fn.name, activityTriggerValue(p.input));
        const json = outcome.result === undefined ? "null" : safeStringify(outcome.result);
        if (json === undefined) {
          return events.taskFailed(this.#iso(), id, `Activity function '${p.name}' failed: its result is not serializable to JSON`, "");
        }
        return events.taskCompleted(this.#iso(), id, json);
      } catch (err) {
        const f = activityFailure(p.name, err);
        return events.taskFailed(this.#iso(), id, f.reason, f.details, f.failureDetails);
      }
    };
    void run().then((e) => this.#deliver(rec.instanceId, executionId, id, e));
  }

  #startChild(parent: Inst, id: number): void {
    if (this.#closed || parent.gone) return;
    const prec = parent.rec;
    const p = prec.pending[id];
    if (!p || p.kind !== "sub") return;
    const link: ParentLink = { instanceId: prec.instanceId, executionId: prec.executionId, taskId: id, name: prec.name };
    const fail = (reason: string): void =>
      this.#deliver(prec.instanceId, prec.executionId, id, events.subOrchestrationFailed(this.#iso(), id, reason, ""));
    const existing = this.#instances.get(p.instanceId);
    if (existing && sameLink(existing.rec.parent, link)) {
      // Already started (we are resuming after a restart).
      if (isTerminal(existing.rec.status)) this.#notifyParent(existing);
      return;
    }
    if (existing && !isTerminal(existing.rec.status)) {
      fail(`Sub-orchestration '${p.name}' failed: an orchestration with instance ID '${p.instanceId}' already exists and is ${existing.rec.status}.`);
      return;
    }
    const fnName = this.#orchestrators.get(p.name.toLowerCase());
    if (!fnName) {
      fail(`Sub-orchestration '${p.name}' failed: the function '${p.name}' doesn't exist, is disabled, or is not an orchestrator function.`);
      return;
    }
    try {
      validateInstanceId(p.instanceId);
    } catch (err) {
      fail(`Sub-orchestration '${p.name}' failed: ${(err as Error).message}`);
      return;
    }
    const child = this.#create(fnName, p.instanceId, p.input, p.version ?? "", link);
    void this.#persist(child).then(() => this.#drain(child));
  }

  #notifyParent(child: Inst): void {
    const c = child.rec;
    if (!c.parent || !isTerminal(c.status)) return;
    const { instanceId, executionId, taskId } = c.parent;
    const ts = this.#iso();
    let e: HistoryEvent;
    if (c.status === "Completed") e = events.subOrchestrationCompleted(ts, taskId, c.output ?? "null");
    else if (c.status === "Terminated") e = events.subOrchestrationFailed(ts, taskId, `Sub-orchestration '${c.name}' was terminated: ${c.output ?? ""}`, "");
    else e = events.subOrchestrationFailed(ts, taskId, `Sub-orchestration '${c.name}' failed: ${c.failure ?? c.output ?? ""}`, "");
    this.#deliver(instanceId, executionId, taskId, e);
  }

  /** A completion for task `taskId`: queued once, if the execution still waits for it. */
  #deliver(instanceId: string, executionId: string, taskId: number, e: HistoryEvent): void {
    if (this.#closed) return;
    const inst = this.#instances.get(instanceId);
    if (!inst || inst.gone) return;
    const rec = inst.rec;
    if (rec.executionId !== executionId || isTerminal(rec.status)) return;
    if (!(taskId in rec.pending)) return;
    delete rec.pending[taskId];
    rec.inbox.push({ kind: "event", event: e });
    rec.lastUpdatedTime = this.#iso();
    void this.#persist(inst);
    this.#drain(inst);
  }

  // -- debug self-check (notes §2.5 "Checking the numbering") ---------------------------------

  #captureLibraryState(ctx: unknown): void {
    const ic = (ctx as { invocationContext?: { invocationId?: string; df?: { taskOrchestratorExecutor?: unknown } } }).invocationContext;
    const ex = ic?.df?.taskOrchestratorExecutor as { sequenceNumber?: unknown; openTasks?: Record<string, unknown> } | undefined;
    if (!ic?.invocationId || !ex || typeof ex.sequenceNumber !== "number") return;
    const open = Object.keys(ex.openTasks ?? {})
      .filter((k) => /^\d+$/.test(k))
      .map(Number);
    this.#libSnapshots.set(ic.invocationId, { seq: ex.sequenceNumber, open });
  }

  #selfCheck(inst: Inst, lib: { seq: number; open: number[] }): void {
    const rec = inst.rec;
    const expected = new Set<number>(Object.keys(rec.pending).map(Number));
    for (const item of rec.inbox) {
      if (item.kind !== "event") continue;
      const e = item.event;
      if (typeof e.TaskScheduledId === "number") expected.add(e.TaskScheduledId);
      if (typeof e.TimerId === "number") expected.add(e.TimerId);
    }
    const libOpen = new Set(lib.open);
    const same = lib.seq === rec.nextId && libOpen.size === expected.size && [...expected].every((id) => libOpen.has(id));
    if (same) {
      this.#stats.selfCheckOk++;
      return;
    }
    this.#stats.selfCheckFail++;
    this.#opts.log(
      "error",
      `durable self-check failed for '${rec.instanceId}': engine nextId=${rec.nextId} open=[${[...expected].sort((a, b) => a - b).join(",")}], ` +
        `library sequenceNumber=${lib.seq} openTasks=[${[...libOpen].sort((a, b) => a - b).join(",")}]`,
    );
  }
}

function retryPolicy(o: RetryPolicy | undefined): RetryPolicy {
  const first = Number(o?.firstRetryIntervalInMilliseconds);
  const max = Number(o?.maxNumberOfAttempts);
  return {
    firstRetryIntervalInMilliseconds: Number.isFinite(first) ? first : 0,
    maxNumberOfAttempts: Number.isFinite(max) ? max : 1,
    ...(typeof o?.backoffCoefficient === "number" ? { backoffCoefficient: o.backoffCoefficient } : {}),
    ...(typeof o?.maxRetryIntervalInMilliseconds === "number" ? { maxRetryIntervalInMilliseconds: o.maxRetryIntervalInMilliseconds } : {}),
    ...(typeof o?.retryTimeoutInMilliseconds === "number" ? { retryTimeoutInMilliseconds: o.retryTimeoutInMilliseconds } : {}),
  };
}

export function toStatus(rec: InstanceRecord): InstanceStatus {
  return {
    instanceId: rec.instanceId,
    name: rec.name,
    runtimeStatus: rec.status as RuntimeStatus,
    input: parseLoose(rec.input),
    output: parseLoose(rec.output),
    customStatus: parseLoose(rec.customStatus),
    createdTime: rec.createdTime,
    lastUpdatedTime: rec.lastUpdatedTime,
    executionId: rec.executionId,
    parentInstanceId: rec.parent?.instanceId ?? null,
    historyLength: rec.history.length,
    pendingWork: Object.keys(rec.pending).length,
  };
}
