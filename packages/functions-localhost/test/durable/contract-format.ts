// Format of the recorded contract files (test/durable/recorded/*.json): what the engine sent to
// the orchestrator in every episode and what durable-functions returned. Histories are stored
// once per execution; an episode's history is a prefix of it with the first `played` events
// marked IsPlayed.

import { isDeepStrictEqual } from "node:util";
import type { EpisodeRecord, HistoryEvent } from "../../src/durable/index.js";

export interface RecordedEpisode {
  execution: number;
  /** Events sent (a prefix of executions[execution]). */
  length: number;
  /** The first `played` of them had IsPlayed: true. */
  played: number;
  /** The rest of the trigger binding value (input, instanceId, isReplaying, upperSchemaVersion, ...). */
  binding: Record<string, unknown>;
  /** JSON round-trip of the returned OrchestratorState... */
  state?: unknown;
  /** ...or the failure (state.error) and the state carried by the thrown OrchestrationFailureError. */
  error?: string;
  errorState?: unknown;
}

export interface RecordedOrchestration {
  description: string;
  orchestrator: string;
  instanceId: string;
  recordedWith: Record<string, string>;
  executions: Omit<HistoryEvent, "IsPlayed">[][];
  episodes: RecordedEpisode[];
}

function executionIdOf(history: HistoryEvent[]): string {
  const started = history.find((e) => e.EventType === 0) as { OrchestrationInstance?: { ExecutionId?: string } } | undefined;
  const id = started?.OrchestrationInstance?.ExecutionId;
  if (!id) throw new Error("episode history has no ExecutionStarted event");
  return id;
}

export function compact(
  description: string,
  orchestrator: string,
  instanceId: string,
  episodes: EpisodeRecord[],
  recordedWith: Record<string, string>,
): RecordedOrchestration {
  const executions: Omit<HistoryEvent, "IsPlayed">[][] = [];
  const byExecution = new Map<string, number>();
  const out: RecordedEpisode[] = [];
  for (const e of episodes) {
    const trigger = JSON.parse(e.trigger) as { history: HistoryEvent[] } & Record<string, unknown>;
    const { history, ...binding } = trigger;
    const executionId = executionIdOf(history);
    let k = byExecution.get(executionId);
    if (k === undefined) {
      k = executions.length;
      executions.push([]);
      byExecution.set(executionId, k);
    }
    const stripped = history.map(({ IsPlayed: _played, ...rest }) => rest);
    if (stripped.length > (executions[k] as unknown[]).length) executions[k] = stripped;
    const played = history.filter((h) => h.IsPlayed).length;
    out.push({
      execution: k,
      length: history.length,
      played,
      binding,
      ...(e.result !== undefined ? { state: e.result } : {}),
      ...(e.error !== undefined ? { error: e.error } : {}),
      ...(e.errorState !== undefined ? { errorState: e.errorState } : {}),
    });
  }
  const recorded: RecordedOrchestration = { description, orchestrator, instanceId, recordedWith, executions, episodes: out };
  // The compact form must give back exactly what was sent.
  episodes.forEach((e, i) => {
    const again = rebuildTrigger(recorded, recorded.episodes[i] as RecordedEpisode);
    if (!isDeepStrictEqual(again, JSON.parse(e.trigger))) throw new Error(`episode ${i} of ${instanceId} does not round-trip`);
  });
  return recorded;
}

export function rebuildTrigger(r: RecordedOrchestration, ep: RecordedEpisode): Record<string, unknown> {
  const execution = r.executions[ep.execution];
  if (!execution) throw new Error(`no execution ${ep.execution}`);
  const history = execution.slice(0, ep.length).map((e, i) => {
    const { EventType, EventId, ...rest } = e;
    return { EventType, EventId, IsPlayed: i < ep.played, ...rest };
  });
  return { history, ...ep.binding };
}
