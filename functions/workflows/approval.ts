import type { ActivityHandler, OrchestrationContext, OrchestrationHandler } from "durable-functions";
import { getServices } from "../../src/app/services.js";
import { APPROVAL_ORCHESTRATOR, type ApprovalInput } from "../../src/domain/approvals/drive.js";
import type { ApprovalState } from "../../src/domain/approvals/service.js";
import { activity, orchestration, retryOptions } from "../../src/workflows/registration.js";

/** Raised on the orchestration (instance id = the request's id) when a decision was stored: it looks again. */
export const DECISION_EVENT = "decision";

/**
 * Drives one approval request: sends approver links for each stage, waits for a decision or the
 * stage's timer, escalates once, expires. Decisions themselves are written by the API (one
 * conditional write each); this orchestration never decides and never approves.
 * Deterministic: no clock, randomness or I/O here — only activities (checked by scripts/check-layering.mjs).
 */
const orchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput<ApprovalInput>();
  const retry = retryOptions(2000, 5);
  let state: ApprovalState = yield context.df.callActivityWithRetry("approvalIssueLinks", retry, { ...input, stage: 0, escalation: false });
  // The stage whose links this run has sent. Compared with the request's stage after every activity, not
  // only after a decision: a timer that lost a race with a decision, or a driver started again for a
  // request already past stage 1, still sends the current stage's links.
  let notified = 0;
  while (state.status === "pending") {
    if (state.currentStage !== notified) {
      notified = state.currentStage;
      state = yield context.df.callActivityWithRetry("approvalIssueLinks", retry, { ...input, stage: notified, escalation: false });
      continue;
    }
    const stage = state.currentStage;
    const escalating = !state.escalated && state.escalateAt !== undefined;
    const timer = context.df.createTimer(new Date(escalating ? state.escalateAt! : state.deadline!));
    const decision = context.df.waitForExternalEvent(DECISION_EVENT);
    const winner: unknown = yield context.df.Task.any([decision, timer]);
    if (winner === decision) {
      if (!timer.isCompleted) timer.cancel();
      state = yield context.df.callActivityWithRetry("approvalState", retry, input);
    } else {
      state = yield context.df.callActivityWithRetry("approvalTimeout", retry, { ...input, stage, kind: escalating ? "escalate" : "expire", instanceId: context.df.instanceId });
    }
  }
  // The subject's owner (e.g. exemptions) learns the outcome; idempotent, and the sweep repeats it after a crash.
  yield context.df.callActivityWithRetry("approvalSettle", retry, { ...input, instanceId: context.df.instanceId });
  return state.status;
};

orchestration(APPROVAL_ORCHESTRATOR, orchestrator);

const issueLinks: ActivityHandler = async (input: ApprovalInput & { stage: number; escalation: boolean }) =>
  (await getServices()).approvals.issueLinks(input.tenantId, input.approvalId, input.stage, input.escalation);
activity("approvalIssueLinks", issueLinks);

const readState: ActivityHandler = async (input: ApprovalInput) => (await getServices()).approvals.state(input.tenantId, input.approvalId);
activity("approvalState", readState);

const onTimeout: ActivityHandler = async (input: ApprovalInput & { stage: number; kind: "escalate" | "expire"; instanceId: string }) =>
  (await getServices()).approvals.timeout(input.tenantId, input.approvalId, input.stage, input.kind, `orchestration:${input.instanceId}`);
activity("approvalTimeout", onTimeout);

const onSettle: ActivityHandler = async (input: ApprovalInput & { instanceId: string }) =>
  (await getServices()).approvals.settle(input.tenantId, input.approvalId, `orchestration:${input.instanceId}`);
activity("approvalSettle", onSettle);
