import { app } from "@azure/functions";
import { listAudit, verifyAudit } from "../src/api/operations.js";
import { endpoint } from "../src/http/endpoint.js";
import { pageResult } from "../src/http/paging.js";

app.http(listAudit.operationId, endpoint(listAudit, async ({ query }, ctx, s) => ({
  body: pageResult(listAudit, { query }, await s.audit.list(ctx, query)),
})));

app.http(verifyAudit.operationId, endpoint(verifyAudit, async (_req, ctx, s) => ({ body: await s.audit.verify(ctx) })));
