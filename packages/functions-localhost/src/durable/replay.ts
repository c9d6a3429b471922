// Replay: runs an instance's inbox one episode at a time. An episode sends the orchestrator its whole
// history plus one new event (durable-functions replays it itself), checks the actions it returns
// against those of earlier episodes (non-determinism), and turns the new ones into history events
// and work for dispatch.ts — committed (persisted) before any of that work starts.

import { performance } from "node:perf_hooks";
import type { LocalHost } from "../host.js";
import {
  type LiveAction,
  type OrchestratorStateLike,
  SUPPORTED_LEAVES,
  describeLeaf,
  isOrchestratorState,
  leafName,
  orchestratorFailureMessage,
  processedInputToJson,
  rawToJson,
  safeStringify,
  sameLeaf,
  walkActions,
} from "./actions.js";
import type { Dispatch } from "./dispatch.js";
import { type EngineContext, type Episode, type Inst, newGuid } from "./engine-state.js";
import { events } from "./history.js";
import { ActionType, EventType, type HistoryEvent, type LeafRecord, actionTypeName, isTerminal } from "./types.js";

export class Replay {
  readonly #ctx: EngineContext;
  readonly #work: Dispatch;
  readonly #libSnapshots = new Map<string, { seq: number; open: number[] }>();

  constructor(ctx: EngineContext, work: Dispatch) {
    this.#ctx = ctx;
    this.#work = work;
  }

  // -- the episode loop -----------------------------------------------------------------------

  drain(inst: Inst): void {
    if (inst.draining || this.#ctx.closed() || !this.#ctx.host() || inst.gone) return;
    inst.draining = true;
    const run = async (): Promise<void> => {
      for (;;) {
        if (this.#ctx.closed() || inst.gone) return;
        const rec = inst.rec;
        const item = rec.inbox[0];
        if (!item) return;
        if (isTerminal(rec.status)) {
          rec.inbox = [];
          await this.#ctx.persist(inst);
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
          this.#ctx.opts.log("error", `durable: ${message}`);
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
    const now = this.#ctx.opts.now();
    return { ts: this.#ctx.iso(now), startedMs: now, events: [], after: [], ended: false };
  }

  async #commit(inst: Inst, ep: Episode): Promise<void> {
    const rec = inst.rec;
    for (const e of ep.events) rec.history.push(e);
    rec.lastUpdatedTime = this.#ctx.iso();
    await this.#ctx.persist(inst);
    if (inst.gone) return;
    for (const f of ep.after) f();
    this.#ctx.statusChanged(rec);
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
    this.#ctx.opts.log("info", `durable: '${rec.instanceId}' terminated: ${reason}`);
    await this.#commit(inst, ep);
  }

  async #episode(inst: Inst, newEvent: HistoryEvent): Promise<void> {
    const host = this.#ctx.host() as LocalHost;
    const rec = inst.rec;
    const t0 = performance.now();
    const executionId = rec.executionId;
    inst.busy = true;

    // Strictly increasing, persisted OrchestratorStarted timestamps (docs/local-host.md, "Timestamps").
    const startedMs = Math.max(this.#ctx.opts.now(), rec.lastStartedAt + 1);
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
    if (this.#ctx.opts.onEpisode) {
      this.#ctx.opts.onEpisode({
        instanceId: rec.instanceId,
        name: rec.name,
        trigger,
        ...(state ? { result: JSON.parse(safeStringify(state) ?? "null") as unknown } : {}),
        ...(failure !== undefined ? { error: failure } : {}),
        ...(failureState ? { errorState: failureState } : {}),
      });
    }
    inst.busy = false;
    if (inst.gone || rec.executionId !== executionId || this.#ctx.closed()) return;

    // Commit: everything below is synchronous up to the persist in #commit.
    rec.inbox.shift();
    rec.lastStartedAt = startedMs;
    ep.events.push(started, incoming);
    if (rec.status === "Pending") rec.status = "Running";

    if (state === undefined) {
      const message = failure ?? "unknown failure";
      this.#ctx.opts.log("warn", `durable: orchestration '${rec.instanceId}' (${rec.name}) failed: ${message}`);
      this.#finish(inst, ep, "Failed", `Orchestrator function '${rec.name}' failed: ${message}`, message);
    } else {
      this.#apply(inst, ep, incoming, state);
    }
    if (!ep.ended) {
      ep.events.push(events.orchestratorCompleted(this.#ctx.iso()));
      if (snapshot) this.#selfCheck(inst, snapshot);
    }
    await this.#commit(inst, ep);
    this.#ctx.stats.lastEpisodeMs = performance.now() - t0;
    this.#ctx.stats.episodes++;
  }

  /** Turns the orchestrator's state into history and work (docs/local-host.md, "Task ids"). */
  #apply(inst: Inst, ep: Episode, incoming: HistoryEvent, state: OrchestratorStateLike): void {
    const rec = inst.rec;
    // 1. Retry bookkeeping: the library numbers retry timers / attempts while it processes the
    //    new event, before user code can yield anything new.
    this.#work.onRetryEvent(inst, ep, incoming);

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
      if (kl.t === ActionType.CreateTimer && live.isCanceled === true && kl.id !== null) this.#work.cancelTimer(inst, kl.id);
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
    if (!state.isDone) for (const a of fresh) rec.leaves.push(this.#work.scheduleLeaf(inst, ep, a));

    // 5. Completion.
    if (state.isDone) {
      if (walked.continueAsNew) this.#continueAsNew(inst, ep, walked.continueAsNew);
      else this.#finish(inst, ep, "Completed", rawToJson(state.output) ?? "null");
    }
  }

  #nonDeterministic(inst: Inst, ep: Episode, detail: string): void {
    const message = `Non-Deterministic workflow detected: ${detail}`;
    this.#ctx.opts.log("error", `durable: '${inst.rec.instanceId}' (${inst.rec.name}): ${message}`);
    this.#finish(inst, ep, "Failed", message, message);
  }

  #continueAsNew(inst: Inst, ep: Episode, action: LiveAction): void {
    const rec = inst.rec;
    const input = processedInputToJson(action.input) ?? null;
    ep.ended = true;
    this.#work.cancelAllTimers(inst);
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
    this.#ctx.opts.log("debug", `durable: '${rec.instanceId}' continued as new`);
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
    this.#work.cancelAllTimers(inst);
    rec.pending = {};
    rec.retries = [];
    inst.retryById.clear();
    rec.inbox = [];
    ep.after.push(() => this.#work.notifyParent(inst));
  }

  // -- debug self-check (docs/local-host.md, "Task ids", Checking the numbering) -------------

  captureLibraryState(ctx: unknown): void {
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
      this.#ctx.stats.selfCheckOk++;
      return;
    }
    this.#ctx.stats.selfCheckFail++;
    this.#ctx.opts.log(
      "error",
      `durable self-check failed for '${rec.instanceId}': engine nextId=${rec.nextId} open=[${[...expected].sort((a, b) => a - b).join(",")}], ` +
        `library sequenceNumber=${lib.seq} openTasks=[${[...libOpen].sort((a, b) => a - b).join(",")}]`,
    );
  }
}
