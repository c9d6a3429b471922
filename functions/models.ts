import { app } from "@azure/functions";
import { createModel, deleteModel, getModel, listModels, updateModel } from "../src/api/operations.js";
import { endpoint } from "../src/http/endpoint.js";
import { pageResult } from "../src/http/paging.js";

app.http(createModel.operationId, endpoint(createModel, async ({ params, body }, ctx, s) => ({ body: await s.models.create(ctx, params.projectId, body) })));

app.http(listModels.operationId, endpoint(listModels, async ({ params, query }, ctx, s) => ({
  body: pageResult({ ...listModels, path: `/projects/${params.projectId}/models` }, query, await s.models.list(ctx, params.projectId, query)),
})));

app.http(getModel.operationId, endpoint(getModel, async ({ params }, ctx, s) => ({ body: await s.models.get(ctx, params.projectId, params.modelId) })));

app.http(updateModel.operationId, endpoint(updateModel, async ({ params, body, ifMatch }, ctx, s) => ({
  body: await s.models.update(ctx, params.projectId, params.modelId, body, ifMatch),
})));

app.http(deleteModel.operationId, endpoint(deleteModel, async ({ params, ifMatch }, ctx, s) => {
  await s.models.delete(ctx, params.projectId, params.modelId, ifMatch);
  return {};
}));
