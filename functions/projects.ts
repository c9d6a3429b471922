import { app } from "@azure/functions";
import { createProject, deleteProject, extendProject, getProject, getPromotionGates, listProjects, promoteProject, updateProject } from "../src/api/operations.js";
import { endpoint } from "../src/http/endpoint.js";
import { pageResult } from "../src/http/paging.js";
import { driven } from "../src/workflows/drive.js";
import { durableClientInput } from "../src/workflows/registration.js";

app.http(createProject.operationId, endpoint(createProject, async ({ body }, ctx, s) => ({ body: await s.projects.create(ctx, body) })));

app.http(listProjects.operationId, endpoint(listProjects, async ({ query }, ctx, s) => ({
  body: pageResult(listProjects, { query }, await s.projects.list(ctx, query)),
})));

app.http(getProject.operationId, endpoint(getProject, async ({ params }, ctx, s) => ({ body: await s.projects.get(ctx, params.projectId) })));

app.http(updateProject.operationId, endpoint(updateProject, async ({ params, body, ifMatch }, ctx, s) => ({
  body: await s.projects.update(ctx, params.projectId, body, ifMatch),
})));

app.http(deleteProject.operationId, endpoint(deleteProject, async ({ params, ifMatch }, ctx, s) => {
  await s.projects.delete(ctx, params.projectId, ifMatch);
  return {};
}));

app.http(getPromotionGates.operationId, endpoint(getPromotionGates, async ({ params, query }, ctx, s) => ({ body: await s.projectLifecycle.gates(ctx, params.projectId, query.to) })));

// A promotion or an extension opens an approval and starts its driver (the approval sweep starts any that is missing).
app.http(promoteProject.operationId, {
  ...endpoint(promoteProject, async ({ params, body }, ctx, s, invocation) => ({ body: await driven(invocation, await s.projectLifecycle.promote(ctx, params.projectId, body)) })),
  extraInputs: [durableClientInput()],
});

app.http(extendProject.operationId, {
  ...endpoint(extendProject, async ({ params, body }, ctx, s, invocation) => ({ body: await driven(invocation, await s.projectLifecycle.extend(ctx, params.projectId, body)) })),
  extraInputs: [durableClientInput()],
});
