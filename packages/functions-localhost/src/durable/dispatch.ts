// Dispatch: the work an episode schedules — activities, sub-orchestrations, durable timers, and the
// retry timers and attempts of the *WithRetry calls — and the delivery of its completions back to the
// instance's inbox (once, and only while that execution still waits for it).

import type { RegisteredFunction } from "../host.js";
import { type LiveAction, activityFailure, activityTriggerValue, leafName, processedInputToJson, rawToJson, retryDelayMs, safeStringify } from "./actions.js";
import { type EngineContext, type Episode, type Inst, sameLink, validateInstanceId } from "./engine-state.js";
import { events } from "./history.js";
import {
  ActionType,
  EventType,
  type HistoryEvent,
  type InstanceRecord,
  type LeafRecord,
  type ParentLink,
  type RetryPolicy,
  type RetryState,
  isTerminal,
} from "./types.js";

export class Dispatch {
  readonly #ctx: EngineContext;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  // -- scheduling what an episode yielded -----------------------------------------------------

  scheduleLeaf(inst: Inst, ep: Episode, a: LiveAction): LeafRecord {
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
        if (!cancelled) ep.after.push(() => this.armTimer(inst, id));
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
    ep.after.push(() => this.runActivity(inst, id));
  }

  #scheduleSub(inst: Inst, ep: Episode, id: number, name: string, instanceId: string, input: string | null, version?: string): void {
    ep.events.push(events.subOrchestrationCreated(ep.ts, id, name, instanceId, input, version));
    inst.rec.pending[id] = { kind: "sub", name, instanceId, input, ...(version ? { version } : {}) };
    ep.after.push(() => this.startChild(inst, id));
  }

  #addRetry(inst: Inst, r: RetryState): void {
    inst.rec.retries.push(r);
    inst.retryById.set(r.currentId, r);
  }

  #dropRetry(inst: Inst, r: RetryState): void {
    const i = inst.rec.retries.indexOf(r);
    if (i >= 0) inst.rec.retries.splice(i, 1);
  }

  onRetryEvent(inst: Inst, ep: Episode, e: HistoryEvent): void {
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
      // Every failed attempt is followed by a retry timer, even the last one (docs/local-host.md, "Task ids", Retries).
      const timerId = rec.nextId++;
      const fireAt = new Date(ep.startedMs + retryDelayMs(r.policy, r.attempts)).toISOString();
      ep.events.push(events.timerCreated(ep.ts, timerId, fireAt));
      rec.pending[timerId] = { kind: "timer", fireAt, retry: true };
      r.phase = "timer";
      r.currentId = timerId;
      inst.retryById.set(timerId, r);
      ep.after.push(() => this.armTimer(inst, timerId));
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

  // -- running the work: timers, activities, sub-orchestrations; delivering their completions --

  #timerKey(rec: InstanceRecord, id: number): string {
    return `${rec.instanceId}\u0000${rec.executionId}\u0000${id}`;
  }

  armTimer(inst: Inst, id: number): void {
    if (this.#ctx.closed() || inst.gone) return;
    const rec = inst.rec;
    const p = rec.pending[id];
    if (!p || p.kind !== "timer" || p.cancelled) return;
    const executionId = rec.executionId;
    const fireAt = p.fireAt;
    this.#ctx.timers.schedule(this.#timerKey(rec, id), Date.parse(fireAt), () =>
      this.#deliver(rec.instanceId, executionId, id, events.timerFired(this.#ctx.iso(), id, fireAt)),
    );
  }

  cancelTimer(inst: Inst, id: number): void {
    const p = inst.rec.pending[id];
    if (!p || p.kind !== "timer" || p.cancelled) return;
    p.cancelled = true;
    this.#ctx.timers.cancel(this.#timerKey(inst.rec, id));
  }

  cancelAllTimers(inst: Inst): void {
    for (const [key, p] of Object.entries(inst.rec.pending)) {
      if (p.kind === "timer") this.#ctx.timers.cancel(this.#timerKey(inst.rec, Number(key)));
    }
  }

  #findFunction(name: string, map: Map<string, string>): RegisteredFunction | undefined {
    const fnName = map.get(name.toLowerCase());
    return fnName ? this.#ctx.host()?.functions.find((f) => f.name === fnName) : undefined;
  }

  runActivity(inst: Inst, id: number): void {
    const host = this.#ctx.host();
    if (this.#ctx.closed() || inst.gone || !host) return;
    const rec = inst.rec;
    const p = rec.pending[id];
    if (!p || p.kind !== "activity") return;
    const executionId = rec.executionId;
    const run = async (): Promise<HistoryEvent> => {
      const fn = this.#findFunction(p.name, this.#ctx.activities);
      if (!fn) {
        return events.taskFailed(
          this.#ctx.iso(),
          id,
          `The function '${p.name}' doesn't exist, is disabled, or is not an activity function.`,
          "",
        );
      }
      try {
        const outcome = await host.invokeDetailed(fn.name, activityTriggerValue(p.input));
        const json = outcome.result === undefined ? "null" : safeStringify(outcome.result);
        if (json === undefined) {
          return events.taskFailed(this.#ctx.iso(), id, `Activity function '${p.name}' failed: its result is not serializable to JSON`, "");
        }
        return events.taskCompleted(this.#ctx.iso(), id, json);
      } catch (err) {
        const f = activityFailure(p.name, err);
        return events.taskFailed(this.#ctx.iso(), id, f.reason, f.details, f.failureDetails);
      }
    };
    void run().then((e) => this.#deliver(rec.instanceId, executionId, id, e));
  }

  startChild(parent: Inst, id: number): void {
    if (this.#ctx.closed() || parent.gone) return;
    const prec = parent.rec;
    const p = prec.pending[id];
    if (!p || p.kind !== "sub") return;
    const link: ParentLink = { instanceId: prec.instanceId, executionId: prec.executionId, taskId: id, name: prec.name };
    const fail = (reason: string): void =>
      this.#deliver(prec.instanceId, prec.executionId, id, events.subOrchestrationFailed(this.#ctx.iso(), id, reason, ""));
    const existing = this.#ctx.instances.get(p.instanceId);
    if (existing && sameLink(existing.rec.parent, link)) {
      // Already started (we are resuming after a restart).
      if (isTerminal(existing.rec.status)) this.notifyParent(existing);
      return;
    }
    if (existing && !isTerminal(existing.rec.status)) {
      fail(`Sub-orchestration '${p.name}' failed: an orchestration with instance ID '${p.instanceId}' already exists and is ${existing.rec.status}.`);
      return;
    }
    const fnName = this.#ctx.orchestrators.get(p.name.toLowerCase());
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
    const child = this.#ctx.create(fnName, p.instanceId, p.input, p.version ?? "", link);
    void this.#ctx.persist(child).then(() => this.#ctx.drain(child));
  }

  notifyParent(child: Inst): void {
    const c = child.rec;
    if (!c.parent || !isTerminal(c.status)) return;
    const { instanceId, executionId, taskId } = c.parent;
    const ts = this.#ctx.iso();
    let e: HistoryEvent;
    if (c.status === "Completed") e = events.subOrchestrationCompleted(ts, taskId, c.output ?? "null");
    else if (c.status === "Terminated") e = events.subOrchestrationFailed(ts, taskId, `Sub-orchestration '${c.name}' was terminated: ${c.output ?? ""}`, "");
    else e = events.subOrchestrationFailed(ts, taskId, `Sub-orchestration '${c.name}' failed: ${c.failure ?? c.output ?? ""}`, "");
    this.#deliver(instanceId, executionId, taskId, e);
  }

  /** A completion for task `taskId`: queued once, if the execution still waits for it. */
  #deliver(instanceId: string, executionId: string, taskId: number, e: HistoryEvent): void {
    if (this.#ctx.closed()) return;
    const inst = this.#ctx.instances.get(instanceId);
    if (!inst || inst.gone) return;
    const rec = inst.rec;
    if (rec.executionId !== executionId || isTerminal(rec.status)) return;
    if (!(taskId in rec.pending)) return;
    delete rec.pending[taskId];
    rec.inbox.push({ kind: "event", event: e });
    rec.lastUpdatedTime = this.#ctx.iso();
    void this.#ctx.persist(inst);
    this.#ctx.drain(inst);
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
