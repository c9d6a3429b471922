import { z } from "zod";
import { USAGE_READERS } from "../domain/usage/analytics.js";
import { AdoptionReport, BudgetList, UsageQuery, UsageReport } from "../domain/usage/schema.js";
import { AUTH_ERRORS, PROJECT_READERS, ProjectParams } from "./common.js";
import { defineOperation } from "./contract.js";

export const getProjectUsage = defineOperation({
  operationId: "getProjectUsage",
  method: "GET",
  path: "/projects/{projectId}/usage",
  summary: "A project's gateway usage over a time range: requests, tokens, cost, errors by class, latency percentiles, cache hits; as a series and grouped",
  tag: "usage",
  access: PROJECT_READERS,
  params: ProjectParams,
  query: UsageQuery,
  success: { status: 200, schema: UsageReport, description: "Totals, one entry per bucket that had requests, and the groups asked for" },
  errors: [...AUTH_ERRORS, 404],
  cli: "usage show",
});

export const getTenantUsage = defineOperation({
  operationId: "getTenantUsage",
  method: "GET",
  path: "/usage",
  summary: "The whole tenant's gateway usage over a time range (every project), as a series and grouped (by project, key, model…)",
  tag: "usage",
  access: { tenant: USAGE_READERS },
  query: UsageQuery,
  success: { status: 200, schema: UsageReport, description: "Totals, one entry per bucket that had requests, and the groups asked for" },
  errors: AUTH_ERRORS,
  cli: "usage tenant",
});

export const listProjectBudgets = defineOperation({
  operationId: "listProjectBudgets",
  method: "GET",
  path: "/projects/{projectId}/budgets",
  summary: "Budget burn this period of a project and of its keys that have budgets, with a forecast",
  tag: "usage",
  access: PROJECT_READERS,
  params: ProjectParams,
  query: z.strictObject({}),
  success: { status: 200, schema: BudgetList, description: "One entry per budget (the project's, each key's)" },
  errors: [...AUTH_ERRORS, 404],
  cli: "usage budgets",
});

export const getAdoption = defineOperation({
  operationId: "getAdoption",
  method: "GET",
  path: "/adoption",
  summary: "Funnel and adoption: per project the time from creation to first model, publish, key and governed request; gateway and key use across projects; approval turnaround against its 24-hour objective",
  tag: "usage",
  access: { tenant: USAGE_READERS },
  query: z.strictObject({}),
  success: { status: 200, schema: AdoptionReport, description: "The tenant's adoption report" },
  errors: AUTH_ERRORS,
  cli: "usage adoption",
});

export const usageOperations = [getProjectUsage, getTenantUsage, listProjectBudgets, getAdoption] as const;
