import { app } from "@azure/functions";
import { getProjectPolicy, getTenantSettings, previewProjectPolicy, putTenantSettings } from "../src/api/operations.js";
import { endpoint } from "../src/http/endpoint.js";

app.http(getProjectPolicy.operationId, endpoint(getProjectPolicy, async ({ params, query }, ctx, s) => ({
  body: await s.policy.preview(ctx, params.projectId, query.explain === "true"),
})));

app.http(previewProjectPolicy.operationId, endpoint(previewProjectPolicy, async ({ params, body }, ctx, s) => {
  const { explain, ...draft } = body;
  return { body: await s.policy.preview(ctx, params.projectId, explain, draft) };
}));

app.http(getTenantSettings.operationId, endpoint(getTenantSettings, async (_req, ctx, s) => ({ body: await s.settings.get(ctx) })));

app.http(putTenantSettings.operationId, endpoint(putTenantSettings, async ({ body, ifMatch }, ctx, s) => ({
  body: await s.settings.put(ctx, body, ifMatch),
})));
