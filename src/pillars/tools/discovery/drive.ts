import type { DriveRequest } from "../../../domain/kernel/drive.js";

/** The discovery orchestration (functions/workflows/tool-discovery.ts); kept light: registrations import it at start-up. */
export const TOOL_DISCOVERY_ORCHESTRATOR = "toolDiscovery";

export interface ToolDiscoveryInput {
  tenantId: string;
  projectId: string;
  serverId: string;
}

/** One discovery driver per server (its id): a second request while one runs joins it. */
export const discoveryDrive = (tenantId: string, projectId: string, serverId: string): DriveRequest<ToolDiscoveryInput> => ({
  orchestrator: TOOL_DISCOVERY_ORCHESTRATOR,
  instanceId: `tool-discovery-${serverId}`,
  input: { tenantId, projectId, serverId },
});
