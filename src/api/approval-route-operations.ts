import { ApprovalRoutes, ApprovalRoutesSpec } from "../domain/approvals/schema.js";
import { ANY_TENANT_ROLE } from "./access.js";
import { AUTH_ERRORS, JSON_TYPES } from "./common.js";
import { defineOperation, type Operation } from "./contract.js";


export const getApprovalRoutes = defineOperation({
  operationId: "getApprovalRoutes",
  method: "GET",
  path: "/approval-routes",
  summary: "Who approves what: the tenant's approval routes, the product's defaults and the minimums every route is held to",
  tag: "approvals",
  access: { tenant: ANY_TENANT_ROLE },
  success: { status: 200, schema: ApprovalRoutes, description: "The routes (none and ETag \"initial\" before the first write)" },
  errors: AUTH_ERRORS,
  cli: "approvals routes show",
});

export const putApprovalRoutes = defineOperation({
  operationId: "putApprovalRoutes",
  method: "PUT",
  path: "/approval-routes",
  summary: "Replace the tenant's approval routes (If-Match required; \"initial\" for the first write). Requests already made keep their route.",
  tag: "approvals",
  access: { tenant: ["TenantAdmin"] },
  body: ApprovalRoutesSpec,
  bodyTypes: JSON_TYPES,
  ifMatch: true,
  success: { status: 200, schema: ApprovalRoutes, description: "The new routes" },
  errors: [...AUTH_ERRORS, 412, 413, 415, 428],
  cli: "approvals routes set",
});

export const approvalRouteOperations: readonly Operation[] = [getApprovalRoutes, putApprovalRoutes];
