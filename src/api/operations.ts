import { z } from "zod";
import { PageQuery } from "../domain/common.js";
import { AuditList, AuditQuery, AuditVerification } from "../domain/audit/schema.js";
import { Project, ProjectId, ProjectList, ProjectPatch, ProjectSpec } from "../domain/projects/schema.js";
import { defineOperation, type Operation } from "./contract.js";

export const Health = z
  .object({
    status: z.enum(["ok", "degraded"]),
    checks: z.object({ store: z.object({ status: z.enum(["ok", "unreachable"]), latencyMs: z.number() }) }),
    version: z.string(),
  })
  .meta({ id: "Health" });

const ProjectParams = z.strictObject({ projectId: ProjectId });
const JSON_TYPES = ["application/json"] as const;
const PATCH_TYPES = ["application/json", "application/merge-patch+json"] as const;
const AUTH_ERRORS = [400, 401, 403] as const;

export const getHealth = defineOperation({
  operationId: "getHealth",
  method: "GET",
  path: "/health",
  summary: "Liveness and store reachability",
  tag: "health",
  anonymous: true,
  access: "anonymous",
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
  access: "anonymous",
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
  roles: ["TenantAdmin"],
  access: "TenantAdmin",
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
  roles: ["TenantAdmin", "ProjectAdmin", "Developer", "Approver", "Auditor", "Reader"],
  access: "any tenant role",
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
  access: "any tenant role, or a role assignment on the project",
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
  access: "TenantAdmin, ProjectAdmin, or ProjectAdmin on the project",
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
  roles: ["TenantAdmin"],
  access: "TenantAdmin",
  params: ProjectParams,
  ifMatch: true,
  success: { status: 204, description: "Deleted" },
  errors: [...AUTH_ERRORS, 404, 412, 428],
  cli: "projects delete",
});

export const listAudit = defineOperation({
  operationId: "listAudit",
  method: "GET",
  path: "/audit",
  summary: "Read the audit log of one scope (the tenant, or a project), newest first",
  tag: "audit",
  roles: ["Auditor", "TenantAdmin"],
  access: "Auditor, TenantAdmin",
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
  roles: ["Auditor", "TenantAdmin"],
  access: "Auditor, TenantAdmin",
  success: { status: 200, schema: AuditVerification, description: "The verification result" },
  errors: AUTH_ERRORS,
  cli: "audit verify",
});

/** Every operation of the admin API. The OpenAPI document, the client and the CLI are built from this list. */
export const operations: readonly Operation[] = [
  getHealth,
  getOpenApi,
  createProject,
  listProjects,
  getProject,
  updateProject,
  deleteProject,
  listAudit,
  verifyAudit,
];
