import type { DriveRequest } from "../kernel/drive.js";

export const APPROVAL_ORCHESTRATOR = "approvalOrchestrator";

/** What the approval orchestration is started with. */
export interface ApprovalInput {
  tenantId: string;
  approvalId: string;
}

/** One orchestration per approval request, with the request's id: starting it twice is harmless, and the approval sweep starts any that is missing. */
export const approvalDrive = (a: { tenantId: string; id: string }): DriveRequest<ApprovalInput> => ({
  orchestrator: APPROVAL_ORCHESTRATOR,
  instanceId: a.id,
  input: { tenantId: a.tenantId, approvalId: a.id },
});
