// Wire shapes shared by the local durable engine: history events as DTFx serializes them
// (PascalCase, numeric EventType), the action types durable-functions 3.x returns, and the
// engine's persisted instance record. See docs/local-host.md, "Durable protocol".

/** DurableTask.Core EventType (durable-functions `HistoryEventType`). Numbers are the wire format. */
export const EventType = {
  ExecutionStarted: 0,
  ExecutionCompleted: 1,
  ExecutionFailed: 2,
  ExecutionTerminated: 3,
  TaskScheduled: 4,
  TaskCompleted: 5,
  TaskFailed: 6,
  SubOrchestrationInstanceCreated: 7,
  SubOrchestrationInstanceCompleted: 8,
  SubOrchestrationInstanceFailed: 9,
  TimerCreated: 10,
  TimerFired: 11,
  OrchestratorStarted: 12,
  OrchestratorCompleted: 13,
  EventSent: 14,
  EventRaised: 15,
  ContinueAsNew: 16,
  GenericEvent: 17,
  HistoryState: 18,
  ExecutionSuspended: 19,
  ExecutionResumed: 20,
} as const;

export const EVENT_TYPE_NAMES: readonly string[] = Object.keys(EventType);

/** durable-functions `ActionType`. */
export const ActionType = {
  CallActivity: 0,
  CallActivityWithRetry: 1,
  CallSubOrchestrator: 2,
  CallSubOrchestratorWithRetry: 3,
  ContinueAsNew: 4,
  CreateTimer: 5,
  WaitForExternalEvent: 6,
  CallEntity: 7,
  CallHttp: 8,
  SignalEntity: 9,
  WhenAny: 11,
  WhenAll: 12,
  LockEntities: 13,
  ReleaseEntities: 14,
} as const;

export function actionTypeName(type: number): string {
  for (const [k, v] of Object.entries(ActionType)) if (v === type) return k;
  return `ActionType(${type})`;
}

/** DurableTask.Core OrchestrationStatus (as written in ExecutionCompleted.OrchestrationStatus). */
export const OrchestrationStatus = {
  Running: 0,
  Completed: 1,
  ContinuedAsNew: 2,
  Failed: 3,
  Canceled: 4,
  Terminated: 5,
  Pending: 6,
  Suspended: 7,
} as const;

export type RuntimeStatus = keyof typeof OrchestrationStatus;

export const RUNTIME_STATUSES = Object.keys(OrchestrationStatus) as RuntimeStatus[];

export function isTerminal(status: RuntimeStatus): boolean {
  return status === "Completed" || status === "Failed" || status === "Terminated" || status === "Canceled";
}

/**
 * One history event. Common fields are typed; the rest (Name, Input, Result, TaskScheduledId,
 * TimerId, FireAt, Reason, Details, ...) depend on EventType, exactly as DTFx writes them.
 */
export interface HistoryEvent {
  EventType: number;
  EventId: number;
  IsPlayed: boolean;
  /** ISO 8601. The library turns these into Dates in its own (parsed) copy. */
  Timestamp: string;
  [field: string]: unknown;
}

/** Something the instance has to process in an episode of its own (or a control operation). */
export type InboxItem =
  | { kind: "event"; event: HistoryEvent }
  | { kind: "terminate"; reason: string };

/** Work the engine started and whose completion has not reached the inbox yet. */
export type PendingWork =
  | { kind: "activity"; name: string; input?: string }
  | { kind: "timer"; fireAt: string; cancelled?: boolean; retry?: boolean }
  | { kind: "sub"; name: string; instanceId: string; input: string | null; version?: string };

export interface RetryPolicy {
  firstRetryIntervalInMilliseconds: number;
  maxNumberOfAttempts: number;
  backoffCoefficient?: number;
  maxRetryIntervalInMilliseconds?: number;
  retryTimeoutInMilliseconds?: number;
}

/** State of one CallActivityWithRetry / CallSubOrchestratorWithRetry task (docs/local-host.md, "Task ids", Retries). */
export interface RetryState {
  kind: "activity" | "sub";
  name: string;
  input?: string | null;
  /** Explicit sub-orchestration instance id (undefined: `<parent>:<taskId>` per attempt). */
  instanceId?: string;
  version?: string;
  policy: RetryPolicy;
  /** Attempts started so far. */
  attempts: number;
  /** Task id of the running attempt ("attempt") or of the retry timer ("timer"). */
  phase: "attempt" | "timer";
  currentId: number;
}

/** A leaf action already turned into history, for the determinism check (docs/local-host.md, "Task ids"). */
export interface LeafRecord {
  /** ActionType */
  t: number;
  /** functionName / externalEventName ("" for timers) */
  n: string;
  /** Task id (null for WaitForExternalEvent) */
  id: number | null;
}

export interface ParentLink {
  instanceId: string;
  executionId: string;
  taskId: number;
  name: string;
}

/** Everything persisted about one instance (one JSON file per instance). */
export interface InstanceRecord {
  v: 1;
  instanceId: string;
  name: string;
  version: string;
  executionId: string;
  status: RuntimeStatus;
  createdTime: string;
  lastUpdatedTime: string;
  /** JSON text of the current execution's input, or null. */
  input: string | null;
  /** As DTFx stores it: JSON text when Completed, plain text (message/reason) when Failed/Terminated. */
  output: string | null;
  /** JSON text, or null. */
  customStatus: string | null;
  /** Raw failure message (Failed only), used for SubOrchestrationInstanceFailed.Reason. */
  failure?: string;
  parent?: ParentLink;
  /** History of the current execution. */
  history: HistoryEvent[];
  inbox: InboxItem[];
  leaves: LeafRecord[];
  nextId: number;
  /** By task id. */
  pending: Record<string, PendingWork>;
  retries: RetryState[];
  /** ms epoch of the last OrchestratorStarted (strictly increasing, kept across continueAsNew). */
  lastStartedAt: number;
}

/** Snapshot returned by DurableEngine.getStatus (for tests and tooling). */
export interface InstanceStatus {
  instanceId: string;
  name: string;
  runtimeStatus: RuntimeStatus;
  input: unknown;
  output: unknown;
  customStatus: unknown;
  /** ISO 8601 with milliseconds. */
  createdTime: string;
  lastUpdatedTime: string;
  executionId: string;
  parentInstanceId: string | null;
  historyLength: number;
  /** Activities, timers and sub-orchestrations started but not completed. */
  pendingWork: number;
}

/** DTFx `ParseToJToken`: JSON when it parses, the raw string otherwise, null for null. */
export function parseLoose(value: string | null | undefined): unknown {
  if (value === null || value === undefined) return null;
  const v = value.trim();
  if (v.length === 0) return "";
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}
