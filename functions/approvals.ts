import { app } from "@azure/functions";
import {
  createApproval,
  decideApproval,
  getApproval,
  getApprovalMetrics,
  getApprovalReview,
  listApprovals,
  submitApprovalReview,
} from "../src/api/operations.js";
import { getApprovalRoutes, putApprovalRoutes } from "../src/api/approval-route-operations.js";
import { AppError } from "../src/domain/errors.js";
import { decidedPage, reviewPage } from "../src/http/approval-page.js";
import { endpoint } from "../src/http/endpoint.js";
import { htmlEndpoint } from "../src/http/html.js";
import { pageResult } from "../src/http/paging.js";
import { driven } from "../src/workflows/drive.js";
import { durableClient, durableClientInput } from "../src/workflows/registration.js";
import { DECISION_EVENT } from "./workflows/approval.js";

const clientInput = durableClientInput();

app.http(createApproval.operationId, {
  // One orchestration per request, with the request's id: starting it twice is harmless.
  ...endpoint(createApproval, async ({ body }, ctx, s, invocation) => {
    const { approval } = await driven(invocation, await s.approvals.create(ctx, body));
    return { body: approval };
  }),
  extraInputs: [clientInput],
});

app.http(listApprovals.operationId, endpoint(listApprovals, async ({ query }, ctx, s) => ({
  body: pageResult(listApprovals, { query }, await s.approvals.list(ctx, query)),
})));

app.http(getApprovalMetrics.operationId, endpoint(getApprovalMetrics, async (_req, ctx, s) => ({ body: await s.approvals.metrics(ctx) })));

app.http(getApproval.operationId, endpoint(getApproval, async ({ params }, ctx, s) => ({ body: await s.approvals.get(ctx, params.approvalId) })));

app.http(decideApproval.operationId, {
  ...endpoint(decideApproval, async ({ params, body, ifMatch }, ctx, s, invocation) => {
    const approval = await lateDecisionWakes(invocation, params.approvalId, () => s.approvals.decide(ctx, params.approvalId, body, ifMatch));
    await notifyOrchestration(invocation, approval.id);
    return { body: approval };
  }),
  extraInputs: [clientInput],
});

app.http(getApprovalReview.operationId, htmlEndpoint(getApprovalReview, async ({ params, query }, s) => {
  // The link must have been issued for the request in the URL (403 approval_link_mismatch otherwise).
  const { approval, approver, stage } = await s.approvals.inspectLink(params.approvalId!, query.token!);
  return { html: reviewPage(approval, approver, stage, query.token!) };
}));

app.http(submitApprovalReview.operationId, {
  ...htmlEndpoint(submitApprovalReview, async ({ params, form }, s, correlationId, invocation) => {
    const decision = form.decision as "approve" | "reject";
    const id = params.approvalId!;
    const approval = await lateDecisionWakes(invocation, id, () => s.approvals.decideByLink(id, form.token!, { decision, justification: form.justification! }, correlationId));
    await notifyOrchestration(invocation, approval.id);
    return { html: decidedPage(approval, decision) };
  }),
  extraInputs: [clientInput],
});

/**
 * A decision after the stage's deadline expires the request instead (409 approval_deadline_passed):
 * the orchestration, if it is still waiting, is told to look again, so it winds down and settles.
 */
async function lateDecisionWakes<T>(invocation: import("@azure/functions").InvocationContext, id: string, decide: () => Promise<T>): Promise<T> {
  try {
    return await decide();
  } catch (err) {
    if (err instanceof AppError && err.error.kind === "conflict" && err.error.reason === "approval_deadline_passed") await notifyOrchestration(invocation, id);
    throw err;
  }
}

/** The decision is already stored; the orchestration only needs to look again (410: it has finished). */
async function notifyOrchestration(invocation: import("@azure/functions").InvocationContext, id: string): Promise<void> {
  try {
    await durableClient(invocation).raiseEvent(id, DECISION_EVENT, { at: new Date().toISOString() });
  } catch (err) {
    invocation.warn(`could not notify orchestration ${id}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

app.http(getApprovalRoutes.operationId, endpoint(getApprovalRoutes, async (_req, ctx, s) => ({ body: await s.approvalRoutes.get(ctx) })));

app.http(putApprovalRoutes.operationId, endpoint(putApprovalRoutes, async ({ body, ifMatch }, ctx, s) => ({ body: await s.approvalRoutes.put(ctx, body, ifMatch) })));
