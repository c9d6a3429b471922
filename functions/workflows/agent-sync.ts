import type { ActivityHandler, OrchestrationContext, OrchestrationHandler, Task } from "durable-functions";
import { getServices } from "../../src/app/services.js";
import type { AgentsService } from "../../src/pillars/agents/service.js";
import { AGENT_SYNC_ORCHESTRATOR, AGENT_SYNC_REGION_ORCHESTRATOR, type AgentSyncInput, type AgentSyncRegionInput, type RegionOutcome } from "../../src/pillars/agents/sync/drive.js";
import type { PageResult } from "../../src/pillars/agents/sync/run.js";
import { failureReason } from "../../src/workflows/failure.js";
import { activity, orchestration, retryOptions } from "../../src/workflows/registration.js";

/**
 * One sync of a cloud connection: the run starts (or is skipped when a switch is off), one
 * sub-orchestration per region lists its pages in parallel with the others, and the run's report is
 * written. A region that fails (after the SDK's retries and these) fails alone: the others complete and
 * its agents are never marked removed. Deterministic: no clock, randomness or I/O here.
 */
const sync: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput<AgentSyncInput>();
  const begun: { regions: string[]; skip?: string } = yield context.df.callActivityWithRetry("agentSyncBegin", retryOptions(2000, 5), input);
  let regions: RegionOutcome[] = [];
  if (!begun.skip) {
    // Ids unique per execution (its start time is replay-stable): a run whose driver the sweep restarts
    // must not reuse the ids of the region orchestrations its lost driver started.
    const execution = context.df.currentUtcDateTime.getTime();
    const tasks: Task[] = begun.regions.map((region) => context.df.callSubOrchestrator(AGENT_SYNC_REGION_ORCHESTRATOR, { ...input, region } satisfies AgentSyncRegionInput, `${input.runId}-${region}-${execution}`));
    regions = yield context.df.Task.all(tasks);
  }
  const status: string = yield context.df.callActivityWithRetry("agentSyncFinish", retryOptions(2000, 8), { ...input, regions, ...(begun.skip ? { skipped: begun.skip } : {}), instanceId: context.df.instanceId });
  return status;
};
orchestration(AGENT_SYNC_ORCHESTRATOR, sync);

/** One region: its pages in order (the cursor carries from one to the next), then the sweep. Never fails: a failure is its outcome. */
const region: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput<AgentSyncRegionInput>();
  let cursor: string | undefined;
  let page = 0;
  for (;;) {
    let result: PageResult;
    try {
      // Throttling, 5xx and time-outs that outlast the SDK's own retries are retried here with back-off.
      result = yield context.df.callActivityWithRetry("agentSyncPage", retryOptions(2000, 5), { ...input, cursor, page, instanceId: context.df.instanceId });
    } catch (err) {
      return { region: input.region, status: "failed", pages: page, error: { kind: "unavailable", message: failureReason(err) } } satisfies RegionOutcome;
    }
    if ("failed" in result) return { region: input.region, status: "failed", pages: page, error: result.failed } satisfies RegionOutcome;
    if (result.stopped) return { region: input.region, status: "failed", pages: page, error: { kind: "stopped", message: result.stopped } } satisfies RegionOutcome;
    page += 1;
    if (!result.next) break;
    cursor = result.next;
  }
  const swept: { removed: number; completedAt: string } = yield context.df.callActivityWithRetry("agentSyncSweep", retryOptions(2000, 5), { ...input, instanceId: context.df.instanceId });
  return { region: input.region, status: "completed", pages: page, completedAt: swept.completedAt } satisfies RegionOutcome;
};
orchestration(AGENT_SYNC_REGION_ORCHESTRATOR, region);

const agents = async () => (await (await getServices()).pillar("agents")).service as AgentsService;

const begin: ActivityHandler = async (i: AgentSyncInput) => (await agents()).sync.begin(i);
activity("agentSyncBegin", begin);

const page: ActivityHandler = async (i: AgentSyncRegionInput & { cursor?: string; page: number; instanceId: string }) => (await agents()).sync.page(i, `orchestration:${i.instanceId}`);
activity("agentSyncPage", page);

const sweep: ActivityHandler = async (i: AgentSyncRegionInput & { instanceId: string }) => (await agents()).sync.sweep(i, `orchestration:${i.instanceId}`);
activity("agentSyncSweep", sweep);

const finish: ActivityHandler = async (i: AgentSyncInput & { regions: RegionOutcome[]; skipped?: string; instanceId: string }) => (await agents()).sync.finish(i, `orchestration:${i.instanceId}`);
activity("agentSyncFinish", finish);
