import { app } from "@azure/functions";
import { getAdoption, getProjectUsage, getTenantUsage, listProjectBudgets } from "../src/api/usage-operations.js";
import { endpoint } from "../src/http/endpoint.js";

app.http(getProjectUsage.operationId, endpoint(getProjectUsage, async ({ params, query }, ctx, s) => ({ body: await s.usage.projectReport(ctx, params.projectId, query) })));

app.http(getTenantUsage.operationId, endpoint(getTenantUsage, async ({ query }, ctx, s) => ({ body: await s.usage.tenantReport(ctx, query) })));

app.http(listProjectBudgets.operationId, endpoint(listProjectBudgets, async ({ params }, ctx, s) => ({ body: await s.usage.budgets(ctx, params.projectId) })));

app.http(getAdoption.operationId, endpoint(getAdoption, async (_req, ctx, s) => ({ body: await s.adoption.report(ctx) })));
