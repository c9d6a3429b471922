// The local durable engine: stores orchestration history, runs episodes through the library's own
// orchestrator (the registered orchestrationTrigger handler), turns the returned actions into
// history events and work (activities, timers, sub-orchestrations), and delivers completions back,
// one new event per episode. Protocol details: docs/local-host.md, "Durable protocol".
//
// This file is the engine's instance API (start, raise, terminate, suspend/resume, purge, restart,
// status and waiting) and its lifecycle (attach, resume after a restart, close). An instance's
// episodes run in replay.ts; the work they schedule runs in dispatch.ts; engine-state.ts holds what
// the three share.

import path from "node:path";
import { getCoreApi } from "../core-shim.js";
import type { LocalHost } from "../host.js";
import { Dispatch } from "./dispatch.js";
import {
  DEFAULT_CONNECTION,
  DurableApiError,
  type EngineContext,
  type EngineCoreOptions,
  type EngineStats,
  type Inst,
  newGuid,
  toStatus,
  validateInstanceId,
} from "./engine-state.js";
import { events } from "./history.js";
import { Replay } from "./replay.js";
import { TimerScheduler } from "./scheduler.js";
import { InstanceStore } from "./store.js";
import { type HistoryEvent, type InboxItem, type InstanceRecord, type InstanceStatus, type ParentLink, isTerminal } from "./types.js";

export {
  DurableApiError,
  type DurableLogLevel,
  type EngineCoreOptions,
  type EngineStats,
  type EpisodeRecord,
  newGuid,
  toStatus,
} from "./engine-state.js";

interface Waiter {
  instanceId: string;
  statuses: Set<string>;
  resolve: (s: InstanceStatus) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
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
  #host: LocalHost | undefined;
  #closed = false;
  #hook: { dispose(): unknown } | undefined;
  readonly #stats: EngineStats = { episodes: 0, lastEpisodeMs: 0, selfCheckOk: 0, selfCheckFail: 0, instances: 0, armedTimers: 0 };
  /** Runs episodes (replay.ts). */
  readonly #replay: Replay;
  /** Runs the work episodes schedule (dispatch.ts). */
  readonly #work: Dispatch;

  constructor(opts: EngineCoreOptions) {
    this.#opts = opts;
    this.taskHub = opts.taskHub;
    this.#timers = new TimerScheduler(opts.now);
    this.#store = opts.dataDir
      ? new InstanceStore(path.join(path.resolve(opts.dataDir), "durable", opts.taskHub), (l, m) => opts.log(l, m))
      : undefined;
    const ctx: EngineContext = {
      opts,
      instances: this.#instances,
      orchestrators: this.#orchestrators,
      activities: this.#activities,
      timers: this.#timers,
      stats: this.#stats,
      host: () => this.#host,
      closed: () => this.#closed,
      iso: (ms) => this.#iso(ms),
      persist: (inst) => this.#persist(inst),
      create: (name, instanceId, inputJson, version, parent) => this.#create(name, instanceId, inputJson, version, parent),
      drain: (inst) => this.#replay.drain(inst),
      statusChanged: (rec) => this.#statusChanged(rec),
    };
    this.#work = new Dispatch(ctx);
    this.#replay = new Replay(ctx, this.#work);
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
      this.#hook = api.registerHook("postInvocation", (ctx) => this.#replay.captureLibraryState(ctx));
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
        this.#work.runActivity(inst, id);
      } else if (p.kind === "timer") {
        if (!p.cancelled) this.#work.armTimer(inst, id);
      } else {
        this.#work.startChild(inst, id);
      }
    }
    this.#replay.drain(inst);
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

  /** Re-reads the `now` clock for every armed durable timer (a test moved it): the due ones fire. */
  wakeTimers(): void {
    this.#timers.recheck();
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
    this.#replay.drain(inst);
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

  /** raiseEvent: 404 unknown, 410 finished, else queued (delivered when a waiter exists: docs/local-host.md, "Task ids"). */
  async raise(instanceId: string, eventName: string, inputJson: string | null): Promise<void> {
    const inst = this.#get(instanceId);
    const rec = inst.rec;
    if (isTerminal(rec.status)) throw new DurableApiError(410, `The instance '${instanceId}' is ${rec.status}.`);
    rec.inbox.push({ kind: "event", event: events.eventRaised(this.#iso(), eventName, inputJson) });
    rec.lastUpdatedTime = this.#iso();
    await this.#persist(inst);
    this.#replay.drain(inst);
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
    this.#replay.drain(inst);
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
    this.#replay.drain(inst);
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

  // -- persistence ----------------------------------------------------------------------------

  #persist(inst: Inst): Promise<void> {
    if (!this.#store || inst.gone) return Promise.resolve();
    return this.#store.save(inst.rec).catch(() => undefined); // already logged by the store
  }
}
