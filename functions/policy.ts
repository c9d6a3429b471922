import { app } from "@azure/functions";
import { getProjectPolicy } from "../src/api/operations.js";
import { endpoint } from "../src/http/endpoint.js";

app.http(getProjectPolicy.operationId, endpoint(getProjectPolicy, async ({ params, query }, ctx, s) => ({
  body: await s.policy.preview(ctx, params.projectId, query.explain === "true"),
})));
