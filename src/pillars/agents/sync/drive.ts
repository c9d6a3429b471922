import type { DriveRequest } from "../../../domain/kernel/drive.js";

/** The sync orchestrations (functions/workflows/agent-sync.ts); kept light: registrations import it at start-up. */
export const AGENT_SYNC_ORCHESTRATOR = "agentSync";
export const AGENT_SYNC_REGION_ORCHESTRATOR = "agentSyncRegion";

export interface AgentSyncInput {
  tenantId: string;
  connectionId: string;
  runId: string;
}

export interface AgentSyncRegionInput extends AgentSyncInput {
  region: string;
}

/** What one region's listing came to (the region orchestration's result). */
export interface RegionOutcome {
  region: string;
  status: "completed" | "failed";
  pages: number;
  /** When the sweep ran: the agents still present were all seen by then. */
  completedAt?: string;
  error?: { kind: string; code?: string; message: string };
}

/**
 * One driver per run (its id): a request while a run is running joins that run (SyncRunner.request).
 * Not one id per connection: a run recorded in the moment between the previous run's report and its
 * orchestration's completion would find that orchestration alive and never be driven.
 */
export const syncDrive = (tenantId: string, connectionId: string, runId: string): DriveRequest<AgentSyncInput> => ({
  orchestrator: AGENT_SYNC_ORCHESTRATOR,
  instanceId: `agent-sync-${runId}`,
  input: { tenantId, connectionId, runId },
});
