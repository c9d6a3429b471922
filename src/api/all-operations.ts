import type { Operation } from "./contract.js";
import {
  getHealth,
  getOpenApi,
  createProject,
  listProjects,
  getProject,
  updateProject,
  deleteProject,
  getPromotionGates,
  promoteProject,
  extendProject,
  getProjectPolicy,
  previewProjectPolicy,
  getTenantSettings,
  putTenantSettings,
  listAudit,
  verifyAudit,
  createApproval,
  listApprovals,
  getApprovalMetrics,
  getApproval,
  decideApproval,
  getApprovalReview,
  submitApprovalReview,
} from "./operations.js";
import { approvalRouteOperations } from "./approval-route-operations.js";
import { exemptionOperations } from "./exemption-operations.js";
import { gatewayOperations } from "./gateway-operations.js";
import { keyOperations } from "./key-operations.js";
import { usageOperations } from "./usage-operations.js";
import { reviewOperations } from "./review-operations.js";
import { pillarOperations } from "../pillars/index.js";

/**
 * Every operation of the admin API. The OpenAPI document, the registrations check and the CLI are built
 * from this list. It loads the pillar modules (their services and SDKs), so the typed client, which the
 * browser portal bundles, imports the operation definitions (operations.ts) and never this list.
 */
export const operations: readonly Operation[] = [
  getHealth,
  getOpenApi,
  createProject,
  listProjects,
  getProject,
  updateProject,
  deleteProject,
  getPromotionGates,
  promoteProject,
  extendProject,
  getProjectPolicy,
  previewProjectPolicy,
  getTenantSettings,
  putTenantSettings,
  listAudit,
  verifyAudit,
  createApproval,
  listApprovals,
  getApprovalMetrics,
  getApproval,
  decideApproval,
  getApprovalReview,
  submitApprovalReview,
  ...gatewayOperations,
  ...keyOperations,
  ...exemptionOperations,
  ...approvalRouteOperations,
  ...usageOperations,
  ...reviewOperations,
  ...pillarOperations(),
];
