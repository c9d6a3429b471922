import { z } from "zod";
import { PageQuery } from "../domain/common.js";
import { DriftReport, GatewayDiff, PublishResult, PublishSpec, Revision, RevisionId, RevisionList, RevisionQuery } from "../domain/publishing/schema.js";
import { ANY_TENANT_ROLE } from "./access.js";
import { AUTH_ERRORS, JSON_TYPES } from "./common.js";
import { defineOperation } from "./contract.js";

const RevisionParams = z.strictObject({ revisionId: RevisionId });

export const publishGateway = defineOperation({
  operationId: "publishGateway",
  method: "POST",
  path: "/gateway/publish",
  summary: "Compile the tenant and publish it to the gateway as a new revision (nothing is made or sent when nothing changed)",
  tag: "gateway",
  access: { tenant: ["TenantAdmin"] },
  body: PublishSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 202, schema: PublishResult, description: "The pending revision (a durable orchestration applies it), or changed=false" },
  errors: [...AUTH_ERRORS, 409, 413, 415],
  cli: "policy publish",
});

export const listRevisions = defineOperation({
  operationId: "listRevisions",
  method: "GET",
  path: "/gateway/revisions",
  summary: "List publish revisions, newest first",
  tag: "gateway",
  access: { tenant: ANY_TENANT_ROLE },
  query: PageQuery,
  success: { status: 200, schema: RevisionList, description: "One page of revisions" },
  errors: AUTH_ERRORS,
  cli: "policy revisions",
});

export const getRevision = defineOperation({
  operationId: "getRevision",
  method: "GET",
  path: "/gateway/revisions/{revisionId}",
  summary: "One revision: who, when, what changed; diff=true adds the unified diff against the revision it was based on",
  tag: "gateway",
  access: { tenant: ANY_TENANT_ROLE },
  params: RevisionParams,
  query: RevisionQuery,
  success: { status: 200, schema: Revision, description: "The revision" },
  errors: [...AUTH_ERRORS, 404],
  cli: "policy revision",
});

export const rollbackRevision = defineOperation({
  operationId: "rollbackRevision",
  method: "POST",
  path: "/gateway/revisions/{revisionId}/rollback",
  summary: "Republish the artifacts of an earlier published revision, as a new revision",
  tag: "gateway",
  access: { tenant: ["TenantAdmin"] },
  params: RevisionParams,
  body: PublishSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 202, schema: PublishResult, description: "The pending rollback revision, or changed=false when the gateway already holds it" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "policy rollback",
});

export const getGatewayDiff = defineOperation({
  operationId: "getGatewayDiff",
  method: "GET",
  path: "/gateway/diff",
  summary: "What a publish would change now: the published state against the compiled registry, as a unified diff",
  tag: "gateway",
  access: { tenant: ANY_TENANT_ROLE },
  success: { status: 200, schema: GatewayDiff, description: "Changed artifacts and their unified diff" },
  errors: [...AUTH_ERRORS, 409],
  cli: "policy diff",
});

export const getDriftReport = defineOperation({
  operationId: "getDriftReport",
  method: "GET",
  path: "/gateway/drift",
  summary: "The last drift check: differences between what the gateway holds and the last published revision",
  tag: "gateway",
  access: { tenant: ANY_TENANT_ROLE },
  success: { status: 200, schema: DriftReport, description: "The report (a scheduled job refreshes it)" },
  errors: AUTH_ERRORS,
  cli: "policy drift",
});

export const checkDrift = defineOperation({
  operationId: "checkDrift",
  method: "POST",
  path: "/gateway/drift/check",
  summary: "Read the gateway back now and compare it with the last published revision",
  tag: "gateway",
  access: { tenant: ["TenantAdmin"] },
  success: { status: 200, schema: DriftReport, description: "The fresh report" },
  errors: AUTH_ERRORS,
  cli: "policy drift",
});

export const gatewayOperations = [publishGateway, listRevisions, getRevision, rollbackRevision, getGatewayDiff, getDriftReport, checkDrift] as const;
