import { app } from "@azure/functions";
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
import { endpoint } from "../src/http/endpoint.js";
import { pageResult } from "../src/http/paging.js";
import { driven } from "../src/workflows/drive.js";
import { durableClientInput } from "../src/workflows/registration.js";

// A request and a renewal each start their approval's driver (the approval sweep starts any that is missing).
const clientInput = durableClientInput();

app.http(requestExemption.operationId, {
  ...endpoint(requestExemption, async ({ body }, ctx, s, invocation) => {
    const { exemption } = await driven(invocation, await s.exemptions.request(ctx, body));
    return { body: exemption };
  }),
  extraInputs: [clientInput],
});

app.http(listExemptions.operationId, endpoint(listExemptions, async ({ query }, ctx, s) => ({
  body: pageResult(listExemptions, { query }, await s.exemptions.list(ctx, query)),
})));

app.http(getExemptionReview.operationId, endpoint(getExemptionReview, async ({ query }, ctx, s) => ({ body: await s.exemptions.review(ctx, query) })));

app.http(getExemptionPolicy.operationId, endpoint(getExemptionPolicy, async (_req, ctx, s) => ({ body: await s.exemptions.getPolicy(ctx) })));

app.http(putExemptionPolicy.operationId, endpoint(putExemptionPolicy, async ({ body, ifMatch }, ctx, s) => ({ body: await s.exemptions.putPolicy(ctx, body, ifMatch) })));

app.http(getExemption.operationId, endpoint(getExemption, async ({ params }, ctx, s) => ({ body: await s.exemptions.get(ctx, params.exemptionId) })));

app.http(renewExemption.operationId, {
  ...endpoint(renewExemption, async ({ params, body, ifMatch }, ctx, s, invocation) => {
    const { exemption } = await driven(invocation, await s.exemptions.renew(ctx, params.exemptionId, body, ifMatch));
    return { body: exemption };
  }),
  extraInputs: [clientInput],
});

app.http(revokeExemption.operationId, endpoint(revokeExemption, async ({ params, body, ifMatch }, ctx, s) => ({
  body: await s.exemptions.revoke(ctx, params.exemptionId, body, ifMatch),
})));
