import { app, type InvocationContext } from "@azure/functions";
import {
  getExemption,
  getExemptionPolicy,
  getExemptionReview,
  listExemptions,
  putExemptionPolicy,
  renewExemption,
  requestExemption,
  revokeExemption,
} from "../src/api/exemption-operations.js";
import type { Approval } from "../src/domain/approvals/schema.js";
import { endpoint } from "../src/http/endpoint.js";
import { pageResult } from "../src/http/paging.js";
import { durableClient, durableClientInput } from "../src/workflows/registration.js";
import { APPROVAL_ORCHESTRATOR, approvalInput } from "./workflows/approval.js";

const clientInput = durableClientInput();

/** One orchestration per approval, with the approval's id: starting it twice is harmless, and the sweep starts any that is missing. */
const drive = (invocation: InvocationContext, approval: Approval) =>
  durableClient(invocation).startNew(APPROVAL_ORCHESTRATOR, { instanceId: approval.id, input: approvalInput(approval) });

app.http(requestExemption.operationId, {
  ...endpoint(requestExemption, async ({ body }, ctx, s, invocation) => {
    const { exemption, approval } = await s.exemptions.request(ctx, body);
    await drive(invocation, approval);
    return { body: exemption };
  }),
  extraInputs: [clientInput],
});

app.http(listExemptions.operationId, endpoint(listExemptions, async ({ query }, ctx, s) => ({
  body: pageResult(listExemptions, query, await s.exemptions.list(ctx, query)),
})));

app.http(getExemptionReview.operationId, endpoint(getExemptionReview, async ({ query }, ctx, s) => ({ body: await s.exemptions.review(ctx, query) })));

app.http(getExemptionPolicy.operationId, endpoint(getExemptionPolicy, async (_req, ctx, s) => ({ body: await s.exemptions.getPolicy(ctx) })));

app.http(putExemptionPolicy.operationId, endpoint(putExemptionPolicy, async ({ body, ifMatch }, ctx, s) => ({ body: await s.exemptions.putPolicy(ctx, body, ifMatch) })));

app.http(getExemption.operationId, endpoint(getExemption, async ({ params }, ctx, s) => ({ body: await s.exemptions.get(ctx, params.exemptionId) })));

app.http(renewExemption.operationId, {
  ...endpoint(renewExemption, async ({ params, body, ifMatch }, ctx, s, invocation) => {
    const { exemption, approval } = await s.exemptions.renew(ctx, params.exemptionId, body, ifMatch);
    await drive(invocation, approval);
    return { body: exemption };
  }),
  extraInputs: [clientInput],
});

app.http(revokeExemption.operationId, endpoint(revokeExemption, async ({ params, body, ifMatch }, ctx, s) => ({
  body: await s.exemptions.revoke(ctx, params.exemptionId, body, ifMatch),
})));
