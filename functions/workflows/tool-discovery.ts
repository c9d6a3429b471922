import type { ActivityHandler, OrchestrationContext, OrchestrationHandler } from "durable-functions";
import { getServices } from "../../src/app/services.js";
import { TOOL_DISCOVERY_ORCHESTRATOR, type ToolDiscoveryInput } from "../../src/pillars/tools/discovery/drive.js";
import type { ToolsService } from "../../src/pillars/tools/service.js";
import { activity, orchestration, retryOptions } from "../../src/workflows/registration.js";

/**
 * One discovery of an MCP server: the activity connects, lists, validates and stores a snapshot when
 * anything changed; a failing server is recorded by the activity (never a failed orchestration), and
 * the store's failures are retried. A change the gateway must follow is published by the system.
 * Deterministic: no clock, randomness or I/O here.
 */
const orchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput<ToolDiscoveryInput>();
  let result: { outcome: string; snapshotId?: string; suspended?: string[] } = { outcome: "restart" };
  // "restart": the server's source or credential changed while it was listed; list it again (bounded).
  for (let run = 0; run < 3 && result.outcome === "restart"; run++) {
    result = yield context.df.callActivityWithRetry("toolDiscoveryRun", retryOptions(2000, 3), { ...input, instanceId: context.df.instanceId });
  }
  if (result.outcome === "changed" || (result.suspended?.length ?? 0) > 0) yield context.df.callActivityWithRetry("toolDiscoveryPublish", retryOptions(2000, 5), { ...input, snapshotId: result.snapshotId, instanceId: context.df.instanceId });
  return result.outcome;
};
orchestration(TOOL_DISCOVERY_ORCHESTRATOR, orchestrator);

const tools = async () => (await (await getServices()).pillar("tools")).service as ToolsService;

const run: ActivityHandler = async (i: ToolDiscoveryInput & { instanceId: string }) => (await tools()).runDiscovery(i, `orchestration:${i.instanceId}`);
activity("toolDiscoveryRun", run);

const publish: ActivityHandler = async (i: ToolDiscoveryInput & { snapshotId: string; instanceId: string }) => {
  const s = await getServices();
  const result = await s.publishing.requestPublish(i.tenantId, { by: "system:tool-discovery", reason: `discovery of MCP server ${i.serverId} changed its tools or suspended approvals (snapshot ${i.snapshotId})`, correlationId: `orchestration:${i.instanceId}` });
  return { changed: result.changed };
};
activity("toolDiscoveryPublish", publish);
