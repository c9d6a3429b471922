import { app } from "@azure/functions";
import { createProject, deleteProject, getProject, listProjects, updateProject } from "../src/api/operations.js";
import { endpoint } from "../src/http/endpoint.js";
import { pageResult } from "../src/http/paging.js";

app.http(createProject.operationId, endpoint(createProject, async ({ body }, ctx, s) => ({ body: await s.projects.create(ctx, body) })));

app.http(listProjects.operationId, endpoint(listProjects, async ({ query }, ctx, s) => ({
  body: pageResult(listProjects, query, await s.projects.list(ctx, query)),
})));

app.http(getProject.operationId, endpoint(getProject, async ({ params }, ctx, s) => ({ body: await s.projects.get(ctx, params.projectId) })));

app.http(updateProject.operationId, endpoint(updateProject, async ({ params, body, ifMatch }, ctx, s) => ({
  body: await s.projects.update(ctx, params.projectId, body, ifMatch),
})));

app.http(deleteProject.operationId, endpoint(deleteProject, async ({ params, ifMatch }, ctx, s) => {
  await s.projects.delete(ctx, params.projectId, ifMatch);
  return {};
}));
