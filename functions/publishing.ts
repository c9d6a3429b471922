import { app } from "@azure/functions";
import { checkDrift, getDriftReport, getGatewayDiff, getRevision, listRevisions, publishGateway, rollbackRevision } from "../src/api/operations.js";
import { endpoint } from "../src/http/endpoint.js";
import { pageResult } from "../src/http/paging.js";
import { driven } from "../src/workflows/drive.js";
import { durableClientInput } from "../src/workflows/registration.js";

// A publish or rollback that made a pending revision starts its driver (the gateway publish sweep starts any that is missing).
const clientInput = durableClientInput();

app.http(publishGateway.operationId, {
  ...endpoint(publishGateway, async ({ body }, ctx, s, invocation) => {
    return { body: await driven(invocation, await s.publishing.publish(ctx, body)) };
  }),
  extraInputs: [clientInput],
});

app.http(rollbackRevision.operationId, {
  ...endpoint(rollbackRevision, async ({ params, body }, ctx, s, invocation) => {
    return { body: await driven(invocation, await s.publishing.rollback(ctx, params.revisionId, body)) };
  }),
  extraInputs: [clientInput],
});

app.http(listRevisions.operationId, endpoint(listRevisions, async ({ query }, ctx, s) => ({
  body: pageResult(listRevisions, { query }, await s.publishing.list(ctx, query)),
})));

app.http(getRevision.operationId, endpoint(getRevision, async ({ params, query }, ctx, s) => ({
  body: await s.publishing.get(ctx, params.revisionId, query.diff === "true"),
})));

app.http(getGatewayDiff.operationId, endpoint(getGatewayDiff, async (_req, ctx, s) => ({ body: await s.publishing.diff(ctx) })));

app.http(getDriftReport.operationId, endpoint(getDriftReport, async (_req, ctx, s) => ({ body: await s.publishing.driftReport(ctx) })));

app.http(checkDrift.operationId, endpoint(checkDrift, async (_req, ctx, s) => ({ body: await s.publishing.checkDriftNow(ctx) })));
