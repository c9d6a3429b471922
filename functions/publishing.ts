import { app, type InvocationContext } from "@azure/functions";
import { checkDrift, getDriftReport, getGatewayDiff, getRevision, listRevisions, publishGateway, rollbackRevision } from "../src/api/operations.js";
import type { Services } from "../src/app/services.js";
import type { PublishResult } from "../src/domain/publishing/schema.js";
import { endpoint } from "../src/http/endpoint.js";
import { pageResult } from "../src/http/paging.js";
import { durableClient, durableClientInput } from "../src/workflows/registration.js";
import { PUBLISH_ORCHESTRATOR, publishInput } from "./workflows/publish.js";

const clientInput = durableClientInput();

/** One orchestration per revision, with the revision's id: starting it twice is harmless. */
async function start(invocation: InvocationContext, s: Services, tenantId: string, result: PublishResult): Promise<void> {
  if (!result.changed || !result.revision || result.revision.status !== "pending") return;
  const input = publishInput(tenantId, result.revision.id, s.config.publishRetry);
  await durableClient(invocation).startNew(PUBLISH_ORCHESTRATOR, { instanceId: result.revision.id, input });
}

app.http(publishGateway.operationId, {
  ...endpoint(publishGateway, async ({ body }, ctx, s, invocation) => {
    const result = await s.publishing.publish(ctx, body);
    await start(invocation, s, ctx.principal.tenantId, result);
    return { body: result };
  }),
  extraInputs: [clientInput],
});

app.http(rollbackRevision.operationId, {
  ...endpoint(rollbackRevision, async ({ params, body }, ctx, s, invocation) => {
    const result = await s.publishing.rollback(ctx, params.revisionId, body);
    await start(invocation, s, ctx.principal.tenantId, result);
    return { body: result };
  }),
  extraInputs: [clientInput],
});

app.http(listRevisions.operationId, endpoint(listRevisions, async ({ query }, ctx, s) => ({
  body: pageResult(listRevisions, query, await s.publishing.list(ctx, query)),
})));

app.http(getRevision.operationId, endpoint(getRevision, async ({ params, query }, ctx, s) => ({
  body: await s.publishing.get(ctx, params.revisionId, query.diff === "true"),
})));

app.http(getGatewayDiff.operationId, endpoint(getGatewayDiff, async (_req, ctx, s) => ({ body: await s.publishing.diff(ctx) })));

app.http(getDriftReport.operationId, endpoint(getDriftReport, async (_req, ctx, s) => ({ body: await s.publishing.driftReport(ctx) })));

app.http(checkDrift.operationId, endpoint(checkDrift, async (_req, ctx, s) => ({ body: await s.publishing.checkDriftNow(ctx) })));
