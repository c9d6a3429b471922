import { z } from "zod";
import { PageQuery } from "../domain/common.js";
import { AuditList, AuditQuery, AuditVerification } from "../domain/audit/schema.js";
import { Approval, ApprovalId, ApprovalList, ApprovalListQuery, ApprovalMetrics, ApprovalSpec, DecisionSpec } from "../domain/approvals/schema.js";
import { PolicyDraft, PolicyPreview } from "../domain/policy/preview-schema.js";
import { TenantSettings, TenantSettingsSpec } from "../domain/policy/tenant-settings.js";
import { ExtendSpec, PromoteSpec, Project, ProjectList, ProjectPatch, ProjectSpec, PromotionGates, PromotionGatesQuery } from "../domain/projects/schema.js";
import { ANY_TENANT_ROLE, NO_TOKEN } from "./access.js";
import { AUTH_ERRORS, JSON_TYPES, PATCH_TYPES, PROJECT_READERS, ProjectParams } from "./common.js";
import { defineOperation, type Operation } from "./contract.js";
import { approvalRouteOperations } from "./approval-route-operations.js";
import { exemptionOperations } from "./exemption-operations.js";
import { gatewayOperations } from "./gateway-operations.js";
import { keyOperations } from "./key-operations.js";
import { usageOperations } from "./usage-operations.js";
import { reviewOperations } from "./review-operations.js";

export * from "./gateway-operations.js";
export * from "./key-operations.js";
export * from "./usage-operations.js";
export * from "./review-operations.js";
export * from "../pillars/models/operations.js";
export * from "../pillars/tools/operations.js";
export * from "../pillars/agents/operations.js";

export const Health = z
  .object({
    status: z.enum(["ok", "degraded"]),
    checks: z.object({ store: z.object({ status: z.enum(["ok", "unreachable"]), latencyMs: z.number() }) }),
    version: z.string(),
  })
  .meta({ id: "Health" });


export const getHealth = defineOperation({
  operationId: "getHealth",
  method: "GET",
  path: "/health",
  summary: "Liveness and store reachability",
  tag: "health",
  anonymous: true,
  access: NO_TOKEN,
  success: { status: 200, schema: Health, description: "The app and its store are reachable" },
  errors: [503],
  cli: "health",
});

export const getOpenApi = defineOperation({
  operationId: "getOpenApi",
  method: "GET",
  path: "/openapi.json",
  summary: "This OpenAPI 3.1 document",
  tag: "meta",
  anonymous: true,
  access: NO_TOKEN,
  success: { status: 200, schema: z.record(z.string(), z.unknown()), description: "OpenAPI 3.1 document" },
  errors: [],
  cli: "openapi",
});

export const createProject = defineOperation({
  operationId: "createProject",
  method: "POST",
  path: "/projects",
  summary: "Create a project",
  tag: "projects",
  access: { tenant: ["TenantAdmin"] },
  body: ProjectSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 201, schema: Project, description: "The project, with its ETag" },
  errors: [...AUTH_ERRORS, 409, 413, 415],
  cli: "projects create",
});

export const listProjects = defineOperation({
  operationId: "listProjects",
  method: "GET",
  path: "/projects",
  summary: "List the tenant's projects",
  tag: "projects",
  access: { tenant: ANY_TENANT_ROLE },
  query: PageQuery,
  success: { status: 200, schema: ProjectList, description: "One page of projects" },
  errors: AUTH_ERRORS,
  cli: "projects list",
});

export const getProject = defineOperation({
  operationId: "getProject",
  method: "GET",
  path: "/projects/{projectId}",
  summary: "Get a project",
  tag: "projects",
  access: PROJECT_READERS,
  params: ProjectParams,
  success: { status: 200, schema: Project, description: "The project; its ETag is also in the ETag header" },
  errors: [...AUTH_ERRORS, 404],
  cli: "projects get",
});

export const updateProject = defineOperation({
  operationId: "updateProject",
  method: "PATCH",
  path: "/projects/{projectId}",
  summary: "Update a project (merge patch; If-Match required)",
  tag: "projects",
  access: { tenant: ["TenantAdmin", "ProjectAdmin"], project: ["ProjectAdmin"] },
  params: ProjectParams,
  body: ProjectPatch,
  bodyTypes: PATCH_TYPES,
  ifMatch: true,
  success: { status: 200, schema: Project, description: "The updated project" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 413, 415, 428],
  cli: "projects update",
});

export const deleteProject = defineOperation({
  operationId: "deleteProject",
  method: "DELETE",
  path: "/projects/{projectId}",
  summary: "Delete a project (If-Match required)",
  tag: "projects",
  access: { tenant: ["TenantAdmin"] },
  params: ProjectParams,
  ifMatch: true,
  success: { status: 204, description: "Deleted" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 428],
  cli: "projects delete",
});

export const getPromotionGates = defineOperation({
  operationId: "getPromotionGates",
  method: "GET",
  path: "/projects/{projectId}/promotion-gates",
  summary: "The checklist a promotion of the project to `to` must pass, evaluated now",
  tag: "projects",
  access: PROJECT_READERS,
  params: ProjectParams,
  query: PromotionGatesQuery,
  success: { status: 200, schema: PromotionGates, description: "Each gate, passed or not, and why" },
  errors: [...AUTH_ERRORS, 404],
  cli: "projects gates",
});

export const promoteProject = defineOperation({
  operationId: "promoteProject",
  method: "POST",
  path: "/projects/{projectId}:promote",
  summary: "Ask to move the project to a later environment: refused with the failing gates, otherwise an approval decides (and the gates are checked again)",
  tag: "projects",
  access: { tenant: ["TenantAdmin", "ProjectAdmin"], project: ["ProjectAdmin"] },
  params: ProjectParams,
  body: PromoteSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 202, schema: Project, description: "The project with its promotion awaiting approval" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "projects promote",
});

export const extendProject = defineOperation({
  operationId: "extendProject",
  method: "POST",
  path: "/projects/{projectId}:extend",
  summary: "Ask for a later review date of a sandbox (an expired one is unlocked and its keys resumed once approved)",
  tag: "projects",
  access: { tenant: ["TenantAdmin", "ProjectAdmin"], project: ["ProjectAdmin"] },
  params: ProjectParams,
  body: ExtendSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 202, schema: Project, description: "The project with its extension awaiting approval" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "projects extend",
});

export const listAudit = defineOperation({
  operationId: "listAudit",
  method: "GET",
  path: "/audit",
  summary: "Read the audit log of one scope (the tenant, or a project), newest first",
  tag: "audit",
  access: { tenant: ["Auditor", "TenantAdmin"] },
  query: AuditQuery,
  success: { status: 200, schema: AuditList, description: "One page of audit records" },
  errors: AUTH_ERRORS,
  cli: "audit list",
});

export const verifyAudit = defineOperation({
  operationId: "verifyAudit",
  method: "GET",
  path: "/audit/verify",
  summary: "Recompute the tenant's audit hash chains and report the first break",
  tag: "audit",
  access: { tenant: ["Auditor", "TenantAdmin"] },
  success: { status: 200, schema: AuditVerification, description: "The verification result" },
  errors: AUTH_ERRORS,
  cli: "audit verify",
});

export const getTenantSettings = defineOperation({
  operationId: "getTenantSettings",
  method: "GET",
  path: "/settings",
  summary: "The tenant's governance settings (tenant scope of the policy-as-code)",
  tag: "policy",
  access: { tenant: ANY_TENANT_ROLE },
  success: { status: 200, schema: TenantSettings, description: "The settings and their ETag (\"initial\" before the first write)" },
  errors: AUTH_ERRORS,
  cli: "settings show",
});

export const putTenantSettings = defineOperation({
  operationId: "putTenantSettings",
  method: "PUT",
  path: "/settings",
  summary: "Replace the tenant's governance settings (If-Match required; \"initial\" for the first write)",
  tag: "policy",
  access: { tenant: ["TenantAdmin"] },
  body: TenantSettingsSpec,
  bodyTypes: JSON_TYPES,
  ifMatch: true,
  success: { status: 200, schema: TenantSettings, description: "The new settings" },
  errors: [...AUTH_ERRORS, 412, 413, 415, 428],
  cli: "settings set",
});

export const getProjectPolicy = defineOperation({
  operationId: "getProjectPolicy",
  method: "GET",
  path: "/projects/{projectId}/policy",
  summary: "What the gateway would get for this project: the compiled APIM artifacts (explain=true: which setting produced each element)",
  tag: "policy",
  access: PROJECT_READERS,
  params: ProjectParams,
  query: z.strictObject({ explain: z.enum(["true", "false"]).default("false") }),
  success: { status: 200, schema: PolicyPreview, description: "Artifacts in publish order, document sizes, and optionally the explanation" },
  errors: [...AUTH_ERRORS, 404, 409],
  cli: "policy show",
});

export const previewProjectPolicy = defineOperation({
  operationId: "previewProjectPolicy",
  method: "POST",
  path: "/projects/{projectId}/policy:preview",
  summary: "What the gateway would get for this project with drafted (unsaved) tenant, project or model settings; nothing is saved or published",
  tag: "policy",
  access: PROJECT_READERS,
  params: ProjectParams,
  body: PolicyDraft,
  bodyTypes: JSON_TYPES,
  success: { status: 200, schema: PolicyPreview, description: "Artifacts in publish order, document sizes, and optionally the explanation" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "policy preview",
});

const ApprovalParams = z.strictObject({ approvalId: ApprovalId });

export const createApproval = defineOperation({
  operationId: "createApproval",
  method: "POST",
  path: "/approvals",
  summary: "Request an approval; a durable orchestration drives it (stages, escalation, expiry, approver links)",
  tag: "approvals",
  access: { tenant: ANY_TENANT_ROLE, note: "the caller is the requester" },
  body: ApprovalSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 201, schema: Approval, description: "The request, pending at stage 1" },
  errors: [...AUTH_ERRORS, 404, 413, 415],
  cli: "approvals create",
});

export const listApprovals = defineOperation({
  operationId: "listApprovals",
  method: "GET",
  path: "/approvals",
  summary: "List approval requests (approver=me: those awaiting the caller's decision)",
  tag: "approvals",
  access: { tenant: ANY_TENANT_ROLE, own: { who: "requests they made or that name them as an approver", anyone: true, lists: true } },
  query: ApprovalListQuery,
  success: { status: 200, schema: ApprovalList, description: "One page of requests, newest first" },
  errors: AUTH_ERRORS,
  cli: "approvals list",
});

export const getApprovalMetrics = defineOperation({
  operationId: "getApprovalMetrics",
  method: "GET",
  path: "/approvals/metrics",
  summary: "Counts, time to decision (p50/p95) and the share decided within 24 h",
  tag: "approvals",
  access: { tenant: ["TenantAdmin", "Auditor", "Approver"] },
  success: { status: 200, schema: ApprovalMetrics, description: "Metrics over the tenant's requests" },
  errors: AUTH_ERRORS,
  cli: "approvals metrics",
});

export const getApproval = defineOperation({
  operationId: "getApproval",
  method: "GET",
  path: "/approvals/{approvalId}",
  summary: "Get an approval request with its full timeline",
  tag: "approvals",
  access: { tenant: ANY_TENANT_ROLE, own: { who: "the requester or a named approver", anyone: true } },
  params: ApprovalParams,
  success: { status: 200, schema: Approval, description: "The request" },
  errors: [...AUTH_ERRORS, 404],
  cli: "approvals show",
});

export const decideApproval = defineOperation({
  operationId: "decideApproval",
  method: "POST",
  path: "/approvals/{approvalId}/decisions",
  summary: "Approve or reject the current stage (If-Match required)",
  tag: "approvals",
  access: { tenant: [], own: { who: "an approver of the current stage (named, or holding its role on the tenant or on the subject's project) who is not the requester and has not decided before", anyone: true } },
  params: ApprovalParams,
  body: DecisionSpec,
  bodyTypes: JSON_TYPES,
  ifMatch: true,
  success: { status: 200, schema: Approval, description: "The request after the decision" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 413, 415, 428],
  cli: "approvals approve",
});

/** Query of the approval page: the signed approver link's token. */
/**
 * The approver link's query. Unlike the admin API's, other parameters are ignored, not refused: mail
 * gateways and trackers append their own (utm_*, safelinks markers), and the approver only has the link.
 */
export const ReviewQuery = z.object({ token: z.string().min(10).max(4096) });

export const getApprovalReview = defineOperation({
  operationId: "getApprovalReview",
  method: "GET",
  path: "/approvals/{approvalId}/review",
  summary: "The approval page an approver link opens (HTML)",
  tag: "approvals",
  anonymous: true,
  html: true,
  access: { tenant: [], note: "the holder of a valid, unused, unexpired approver link" },
  params: ApprovalParams,
  query: ReviewQuery,
  success: { status: 200, description: "text/html page with the frozen subject, the change, the justification and an Approve/Reject form" },
  errors: [400, 403, 404, 409],
  cli: "approvals review",
});

export const submitApprovalReview = defineOperation({
  operationId: "submitApprovalReview",
  method: "POST",
  path: "/approvals/{approvalId}/review",
  summary: "Submit the approval page's form (application/x-www-form-urlencoded: token, decision, justification) (HTML)",
  tag: "approvals",
  anonymous: true,
  html: true,
  access: { tenant: [], note: "the holder of a valid, unused, unexpired approver link" },
  params: ApprovalParams,
  formBody: z.strictObject({
    token: z.string().min(10).max(4096),
    decision: z.enum(["approve", "reject"]),
    justification: z.string().trim().min(1).max(4000),
  }),
  success: { status: 200, description: "text/html confirmation" },
  errors: [400, 403, 404, 409, 413, 415],
  cli: "approvals review",
});

/** The operations outside the pillars (api/all-operations.ts adds each pillar's). */
export const coreOperations: readonly Operation[] = [
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
];
