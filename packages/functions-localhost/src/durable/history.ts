// History event constructors (DTFx shapes: docs/local-host.md, "History the library reads") and the
// status-API rendering of a
// history (the extension's DurableClient.GetDurableOrchestrationStatusAsync).

import { EVENT_TYPE_NAMES, EventType, type HistoryEvent, OrchestrationStatus, type RuntimeStatus, parseLoose } from "./types.js";

function ev(type: number, timestamp: string, fields: Record<string, unknown> = {}, eventId = -1): HistoryEvent {
  return { EventType: type, EventId: eventId, IsPlayed: false, Timestamp: timestamp, ...fields };
}

export const events = {
  orchestratorStarted: (ts: string) => ev(EventType.OrchestratorStarted, ts),
  orchestratorCompleted: (ts: string) => ev(EventType.OrchestratorCompleted, ts),
  executionStarted: (
    ts: string,
    f: {
      name: string;
      version: string;
      input: string | null;
      instanceId: string;
      executionId: string;
      parent?: { name: string; instanceId: string; executionId: string; taskId: number };
    },
  ) =>
    ev(EventType.ExecutionStarted, ts, {
      Name: f.name,
      Version: f.version,
      Input: f.input,
      OrchestrationInstance: { InstanceId: f.instanceId, ExecutionId: f.executionId },
      ParentInstance: f.parent
        ? {
            Name: f.parent.name,
            OrchestrationInstance: { InstanceId: f.parent.instanceId, ExecutionId: f.parent.executionId },
            TaskScheduleId: f.parent.taskId,
          }
        : null,
    }),
  executionCompleted: (ts: string, status: RuntimeStatus, result: string | null) =>
    ev(EventType.ExecutionCompleted, ts, { OrchestrationStatus: OrchestrationStatus[status], Result: result }),
  executionTerminated: (ts: string, reason: string) => ev(EventType.ExecutionTerminated, ts, { Input: reason }),
  taskScheduled: (ts: string, id: number, name: string, input: string | undefined) =>
    ev(EventType.TaskScheduled, ts, { Name: name, Version: "", Input: input ?? null }, id),
  taskCompleted: (ts: string, taskId: number, result: string) =>
    ev(EventType.TaskCompleted, ts, { TaskScheduledId: taskId, Result: result }),
  taskFailed: (ts: string, taskId: number, reason: string, details: string, failureDetails?: unknown) =>
    ev(EventType.TaskFailed, ts, {
      TaskScheduledId: taskId,
      Reason: reason,
      Details: details,
      ...(failureDetails ? { FailureDetails: failureDetails } : {}),
    }),
  subOrchestrationCreated: (ts: string, id: number, name: string, instanceId: string, input: string | null, version?: string) =>
    ev(EventType.SubOrchestrationInstanceCreated, ts, { Name: name, Version: version ?? "", InstanceId: instanceId, Input: input }, id),
  subOrchestrationCompleted: (ts: string, taskId: number, result: string) =>
    ev(EventType.SubOrchestrationInstanceCompleted, ts, { TaskScheduledId: taskId, Result: result }),
  subOrchestrationFailed: (ts: string, taskId: number, reason: string, details: string) =>
    ev(EventType.SubOrchestrationInstanceFailed, ts, { TaskScheduledId: taskId, Reason: reason, Details: details }),
  timerCreated: (ts: string, id: number, fireAt: string) => ev(EventType.TimerCreated, ts, { FireAt: fireAt }, id),
  timerFired: (ts: string, timerId: number, fireAt: string) => ev(EventType.TimerFired, ts, { TimerId: timerId, FireAt: fireAt }),
  eventRaised: (ts: string, name: string, input: string | null) => ev(EventType.EventRaised, ts, { Name: name, Input: input }),
};

const ORCHESTRATION_STATUS_NAMES = Object.keys(OrchestrationStatus);

/**
 * The `historyEvents` array of the HTTP status API (showHistory=true): EventType as names,
 * TaskScheduled / SubOrchestrationInstanceCreated folded into their completions (FunctionName,
 * ScheduledTime), OrchestratorStarted/Completed removed, inputs dropped, results only with
 * showHistoryOutput. Mirrors EXT DurableClient.GetDurableOrchestrationStatusAsync.
 */
export function renderHistory(history: readonly HistoryEvent[], showHistoryOutput: boolean): Record<string, unknown>[] {
  const out: (Record<string, unknown> | null)[] = [];
  const scheduled = new Map<string, { index: number; name: unknown; ts: unknown }>();
  for (const e of history) {
    const item: Record<string, unknown> = { ...e };
    const type = e.EventType;
    item.EventType = EVENT_TYPE_NAMES[type] ?? type;
    const index = out.length;
    let drop = false;
    switch (type) {
      case EventType.TaskScheduled:
      case EventType.SubOrchestrationInstanceCreated:
        scheduled.set(`${type}_${e.EventId}`, { index, name: e.Name, ts: e.Timestamp });
        delete item.Version;
        delete item.Input;
        break;
      case EventType.TaskCompleted:
      case EventType.TaskFailed:
      case EventType.SubOrchestrationInstanceCompleted:
      case EventType.SubOrchestrationInstanceFailed: {
        const isTask = type === EventType.TaskCompleted || type === EventType.TaskFailed;
        const key = `${isTask ? EventType.TaskScheduled : EventType.SubOrchestrationInstanceCreated}_${String(e.TaskScheduledId)}`;
        const s = scheduled.get(key);
        if (s) {
          item.ScheduledTime = s.ts;
          item.FunctionName = s.name;
          out[s.index] = null;
        }
        delete item.TaskScheduledId;
        const completed = type === EventType.TaskCompleted || type === EventType.SubOrchestrationInstanceCompleted;
        if (completed) {
          if (showHistoryOutput) item.Result = parseLoose(e.Result as string | null);
          else delete item.Result;
        }
        break;
      }
      case EventType.ExecutionStarted:
        item.FunctionName = e.Name;
        delete item.Name;
        delete item.OrchestrationInstance;
        delete item.ParentInstance;
        delete item.Version;
        delete item.Tags;
        delete item.Input;
        break;
      case EventType.ExecutionCompleted:
        item.OrchestrationStatus = ORCHESTRATION_STATUS_NAMES[e.OrchestrationStatus as number] ?? e.OrchestrationStatus;
        if (showHistoryOutput) item.Result = parseLoose(e.Result as string | null);
        else delete item.Result;
        break;
      case EventType.ExecutionTerminated:
      case EventType.EventRaised:
        delete item.Input;
        break;
      case EventType.TimerFired:
        delete item.TimerId;
        break;
      case EventType.OrchestratorStarted:
      case EventType.OrchestratorCompleted:
        drop = true;
        break;
    }
    delete item.EventId;
    delete item.IsPlayed;
    out.push(drop ? null : item);
  }
  return out.filter((x): x is Record<string, unknown> => x !== null);
}
