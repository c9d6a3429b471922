// Reading what the library's orchestrator returned (docs/local-host.md, "What the orchestrator
// returns" and "Task ids"): the OrchestratorState,
// its action tree, the failure carried by OrchestrationFailureError, and payload encodings.

import { ActionType, type LeafRecord, type RetryPolicy, actionTypeName } from "./types.js";

/** An action object as the library builds it (live instance, not a JSON copy). */
export interface LiveAction {
  actionType: number;
  functionName?: string;
  input?: unknown;
  instanceId?: string;
  version?: string;
  retryOptions?: RetryPolicy;
  fireAt?: Date | string;
  isCanceled?: boolean;
  externalEventName?: string;
  compoundActions?: LiveAction[];
}

/** The library's OrchestratorState (TaskOrchestrationExecutor.execute's return value). */
export interface OrchestratorStateLike {
  isDone: boolean;
  actions: LiveAction[][];
  output?: unknown;
  error?: string;
  customStatus?: unknown;
  schemaVersion?: number;
}

export function isOrchestratorState(v: unknown): v is OrchestratorStateLike {
  return !!v && typeof v === "object" && Array.isArray((v as { actions?: unknown }).actions) && "isDone" in v;
}

export interface WalkedActions {
  /** Leaves in depth-first order, WhenAll/WhenAny flattened, duplicates (by identity) dropped. */
  leaves: LiveAction[];
  continueAsNew?: LiveAction;
}

/** docs/local-host.md, "Task ids", step 1. */
export function walkActions(actions: unknown): WalkedActions {
  const seen = new Set<object>();
  const leaves: LiveAction[] = [];
  let continueAsNew: LiveAction | undefined;
  const visit = (a: unknown): void => {
    if (!a || typeof a !== "object" || seen.has(a)) return;
    seen.add(a);
    const action = a as LiveAction;
    if (action.actionType === ActionType.WhenAll || action.actionType === ActionType.WhenAny) {
      for (const c of action.compoundActions ?? []) visit(c);
    } else if (action.actionType === ActionType.ContinueAsNew) {
      continueAsNew = action;
    } else {
      leaves.push(action);
    }
  };
  if (Array.isArray(actions)) {
    for (const group of actions) {
      if (Array.isArray(group)) for (const a of group) visit(a);
      else visit(group);
    }
  }
  return continueAsNew ? { leaves, continueAsNew } : { leaves };
}

export function leafName(a: LiveAction): string {
  if (a.actionType === ActionType.WaitForExternalEvent) return String(a.externalEventName ?? "");
  if (a.actionType === ActionType.CreateTimer) return "";
  return String(a.functionName ?? "");
}

export function describeLeaf(type: number, name: string): string {
  if (type === ActionType.CreateTimer) return "CreateTimer";
  return `${actionTypeName(type)}('${name}')`;
}

export function sameLeaf(known: LeafRecord, live: LiveAction): boolean {
  return known.t === live.actionType && known.n === leafName(live);
}

export const SUPPORTED_LEAVES: ReadonlySet<number> = new Set<number>([
  ActionType.CallActivity,
  ActionType.CallActivityWithRetry,
  ActionType.CallSubOrchestrator,
  ActionType.CallSubOrchestratorWithRetry,
  ActionType.CreateTimer,
  ActionType.WaitForExternalEvent,
]);

/**
 * JSON text of an activity / continueAsNew input. The library passes string inputs through
 * `JSON.stringify` (Utils.processInput), so a string already *is* the JSON text: this undoes
 * the double encoding (docs/local-host.md, "What the orchestrator returns"). undefined stays undefined.
 */
export function processedInputToJson(input: unknown): string | undefined {
  if (input === undefined) return undefined;
  if (typeof input === "string") {
    try {
      JSON.parse(input);
      return input;
    } catch {
      return JSON.stringify(input);
    }
  }
  return safeStringify(input) ?? "null";
}

/** JSON text of a raw (not processInput'd) value: sub-orchestration inputs, results. */
export function rawToJson(value: unknown): string | null {
  if (value === undefined) return null;
  return safeStringify(value) ?? "null";
}

export function safeStringify(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

/**
 * The value to hand to `host.invoke*` so that the activity receives exactly `JSON.parse(json)`:
 * the host sends strings as {string} which the library JSON-parses, so a string value travels as
 * its JSON text; anything else travels as itself ({json}/{int}/{double}).
 */
export function activityTriggerValue(json: string | undefined): unknown {
  if (json === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return json;
  }
  return typeof value === "string" ? json : value;
}

const OUT_OF_PROC_LABEL = "\n\n$OutOfProcData$:";

/**
 * The orchestrator's failure message. The handler throws OrchestrationFailureError whose message
 * is `<x>\n\n$OutOfProcData$:<state JSON>`; in 3.5.0 `<x>` is literally "false" (library bug),
 * so the real message is state.error (docs/local-host.md, "What the orchestrator returns").
 */
export function orchestratorFailureMessage(err: unknown): { message: string; state?: Record<string, unknown> } {
  const raw = err instanceof Error ? err.message : typeof err === "string" ? err : safeStringify(err) ?? String(err);
  const at = raw.indexOf(OUT_OF_PROC_LABEL);
  if (at >= 0) {
    try {
      const state = JSON.parse(raw.slice(at + OUT_OF_PROC_LABEL.length)) as Record<string, unknown>;
      const message = typeof state.error === "string" ? state.error : raw.slice(0, at);
      return { message, state };
    } catch {
      return { message: raw.slice(0, at) };
    }
  }
  return { message: raw };
}

/** Fields of a TaskFailed event for an error thrown by an activity (docs/local-host.md, "History the library reads"). */
export function activityFailure(
  name: string,
  err: unknown,
): { reason: string; details: string; failureDetails?: Record<string, unknown> } {
  const e = err instanceof Error ? err : undefined;
  const message = e ? e.message : typeof err === "string" ? err : safeStringify(err) ?? String(err);
  // With an exception-properties provider registered, wrapActivityHandler replaces the message
  // by a JSON payload {errorType, errorMessage, stackTrace?, properties}: pass it on as
  // FailureDetails, which the library turns into a TaskFailedError.
  if (message.startsWith("{")) {
    try {
      const p = JSON.parse(message) as Record<string, unknown>;
      if (typeof p.errorType === "string" && typeof p.errorMessage === "string") {
        return {
          reason: `Activity function '${name}' failed: ${p.errorMessage}`,
          details: typeof p.stackTrace === "string" ? p.stackTrace : "",
          failureDetails: {
            ErrorType: p.errorType,
            ErrorMessage: p.errorMessage,
            StackTrace: p.stackTrace ?? null,
            IsNonRetriable: p.isNonRetriable === true,
            Properties: p.properties ?? null,
          },
        };
      }
    } catch {
      // not the provider payload
    }
  }
  return { reason: `Activity function '${name}' failed: ${message}`, details: e?.stack ?? "" };
}

/** Delay before retry number `attempts` (1-based count of failed attempts), capped (docs/local-host.md, "Task ids", Retries). */
export function retryDelayMs(policy: RetryPolicy, attempts: number): number {
  const first = Number(policy.firstRetryIntervalInMilliseconds) || 0;
  const coefficient = typeof policy.backoffCoefficient === "number" && policy.backoffCoefficient > 0 ? policy.backoffCoefficient : 1;
  let delay = first * Math.pow(coefficient, Math.max(0, attempts - 1));
  const cap = policy.maxRetryIntervalInMilliseconds;
  if (typeof cap === "number" && cap > 0 && delay > cap) delay = cap;
  return Number.isFinite(delay) && delay > 0 ? delay : 0;
}
