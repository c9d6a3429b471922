import { z } from "zod";
import {
  Exemption,
  ExemptionId,
  ExemptionList,
  ExemptionListQuery,
  ExemptionPolicy,
  ExemptionPolicySpec,
  ExemptionReview,
  ExemptionSpec,
  RenewalSpec,
  ReviewQuery,
  RevokeSpec,
} from "../domain/exemptions/schema.js";
import { ANY_TENANT_ROLE, type Access } from "./access.js";
import { AUTH_ERRORS, JSON_TYPES } from "./common.js";
import { defineOperation, type Operation } from "./contract.js";

/** Renewing and revoking: a TenantAdmin, or the exemption's owner or requester (the service checks which). */
const EXEMPTION_CHANGERS: Access = { tenant: ["TenantAdmin"], own: { who: "the exemption's owner or requester", tenant: ["ProjectAdmin", "Developer"] } };
const ExemptionParams = z.strictObject({ exemptionId: ExemptionId });

export const requestExemption = defineOperation({
  operationId: "requestExemption",
  method: "POST",
  path: "/exemptions",
  summary: "Request an exemption from one governance control at the smallest scope; an approval decides it",
  tag: "exemptions",
  access: { tenant: ["TenantAdmin", "ProjectAdmin", "Developer"], note: "the caller is the requester; a tenant-wide exemption: TenantAdmin only" },
  body: ExemptionSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 201, schema: Exemption, description: "The exemption, requested; its approval is in approvalId" },
  errors: [...AUTH_ERRORS, 404, 413, 415],
  cli: "exemptions request",
});

export const listExemptions = defineOperation({
  operationId: "listExemptions",
  method: "GET",
  path: "/exemptions",
  summary: "List exemptions (filters: status, control, projectId, owner), newest first",
  tag: "exemptions",
  access: { tenant: ANY_TENANT_ROLE },
  query: ExemptionListQuery,
  success: { status: 200, schema: ExemptionList, description: "One page of exemptions" },
  errors: AUTH_ERRORS,
  cli: "exemptions list",
});

export const getExemptionReview = defineOperation({
  operationId: "getExemptionReview",
  method: "GET",
  path: "/exemptions/review",
  summary: "Portfolio review: counts by control, project and owner; ageing; repeat renewals; clusters; missing compensating controls; breadth",
  tag: "exemptions",
  access: { tenant: ANY_TENANT_ROLE },
  query: ReviewQuery,
  success: { status: 200, schema: ExemptionReview, description: "The review of the tenant's exemptions" },
  errors: AUTH_ERRORS,
  cli: "exemptions review",
});

export const getExemptionPolicy = defineOperation({
  operationId: "getExemptionPolicy",
  method: "GET",
  path: "/exemptions/policy",
  summary: "The tenant's exemption maxima (days per category and per control)",
  tag: "exemptions",
  access: { tenant: ANY_TENANT_ROLE },
  success: { status: 200, schema: ExemptionPolicy, description: "The policy (defaults and ETag \"initial\" before the first write)" },
  errors: AUTH_ERRORS,
  cli: "exemptions policy show",
});

export const putExemptionPolicy = defineOperation({
  operationId: "putExemptionPolicy",
  method: "PUT",
  path: "/exemptions/policy",
  summary: "Replace the tenant's exemption maxima (If-Match required; \"initial\" for the first write)",
  tag: "exemptions",
  access: { tenant: ["TenantAdmin"] },
  body: ExemptionPolicySpec,
  bodyTypes: JSON_TYPES,
  ifMatch: true,
  success: { status: 200, schema: ExemptionPolicy, description: "The new policy" },
  errors: [...AUTH_ERRORS, 412, 413, 415, 428],
  cli: "exemptions policy set",
});

export const getExemption = defineOperation({
  operationId: "getExemption",
  method: "GET",
  path: "/exemptions/{exemptionId}",
  summary: "Get an exemption with its renewals and timeline",
  tag: "exemptions",
  access: { tenant: ANY_TENANT_ROLE },
  params: ExemptionParams,
  success: { status: 200, schema: Exemption, description: "The exemption" },
  errors: [...AUTH_ERRORS, 404],
  cli: "exemptions show",
});

export const renewExemption = defineOperation({
  operationId: "renewExemption",
  method: "POST",
  path: "/exemptions/{exemptionId}:renew",
  summary: "Request a renewal: a new approval with updated evidence (If-Match required)",
  tag: "exemptions",
  access: EXEMPTION_CHANGERS,
  params: ExemptionParams,
  body: RenewalSpec,
  bodyTypes: JSON_TYPES,
  ifMatch: true,
  success: { status: 202, schema: Exemption, description: "The exemption with the renewal pending" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 413, 415, 428],
  cli: "exemptions renew",
});

export const revokeExemption = defineOperation({
  operationId: "revokeExemption",
  method: "POST",
  path: "/exemptions/{exemptionId}:revoke",
  summary: "Revoke an exemption now; the control applies again at the next publish (If-Match required)",
  tag: "exemptions",
  access: EXEMPTION_CHANGERS,
  params: ExemptionParams,
  body: RevokeSpec,
  bodyTypes: JSON_TYPES,
  ifMatch: true,
  success: { status: 200, schema: Exemption, description: "The revoked exemption" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 413, 415, 428],
  cli: "exemptions revoke",
});

export const exemptionOperations: readonly Operation[] = [
  requestExemption,
  listExemptions,
  getExemptionReview,
  getExemptionPolicy,
  putExemptionPolicy,
  getExemption,
  renewExemption,
  revokeExemption,
];
