// What the local durable engine's parts share: the engine's options and stats, the in-memory form
// of an instance (Inst) and of one episode (Episode), and the context (EngineContext) through which
// replay.ts and dispatch.ts reach the instances the engine (engine.ts) owns.

import { randomUUID } from "node:crypto";
import type { LocalHost } from "../host.js";
import type { TimerScheduler } from "./scheduler.js";
import {
  type HistoryEvent,
  type InstanceRecord,
  type InstanceStatus,
  type ParentLink,
  type RetryState,
  type RuntimeStatus,
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

export interface Inst {
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
export interface Episode {
  ts: string;
  startedMs: number;
  events: HistoryEvent[];
  after: (() => void)[];
  /** The execution ended (or continued as new) in this episode. */
  ended: boolean;
}

export const DEFAULT_CONNECTION = "Storage";

export function newGuid(): string {
  return randomUUID().replace(/-/g, "");
}

export function validateInstanceId(id: string): void {
  if (id.length === 0) throw new DurableApiError(400, "Instance IDs must not be empty.");
  if (id.startsWith("@")) throw new DurableApiError(400, "Orchestration instance ids must not start with @.");
  if (/[/\\?#\u0000-\u001f\u007f-\u009f]/.test(id)) {
    throw new DurableApiError(400, "Orchestration instance ids must not contain /, \\, #, ?, or control characters.");
  }
  if (id.length > 256) throw new DurableApiError(400, "Instance ID lengths must not exceed 256 characters.");
}

export function sameLink(a: ParentLink | undefined, b: ParentLink): boolean {
  return !!a && a.instanceId === b.instanceId && a.executionId === b.executionId && a.taskId === b.taskId;
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

/**
 * The engine as its parts see it. The engine (engine.ts) owns the instances and their persistence;
 * replay (replay.ts) runs episodes; dispatch (dispatch.ts) runs the work episodes schedule and
 * delivers its completions.
 */
export interface EngineContext {
  readonly opts: EngineCoreOptions;
  /** Every instance by id (finished ones too, until purged). */
  readonly instances: Map<string, Inst>;
  /** Orchestrator and activity function names, by lower-cased name. */
  readonly orchestrators: Map<string, string>;
  readonly activities: Map<string, string>;
  readonly timers: TimerScheduler;
  /** Counters replay updates (episodes, self-checks). */
  readonly stats: EngineStats;
  host(): LocalHost | undefined;
  closed(): boolean;
  /** ISO time of `ms` (default: the engine's clock now). */
  iso(ms?: number): string;
  persist(inst: Inst): Promise<void>;
  /** A new instance (replacing a finished one with the same id), not yet persisted. */
  create(name: string, instanceId: string, inputJson: string | null, version: string, parent?: ParentLink): Inst;
  /** Runs the instance's inbox, one episode at a time (replay.ts). */
  drain(inst: Inst): void;
  /** Wakes waitForStatus() callers. */
  statusChanged(rec: InstanceRecord): void;
}
