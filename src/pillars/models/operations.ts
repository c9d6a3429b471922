import { z } from "zod";
import { AUTH_ERRORS, JSON_TYPES, PATCH_TYPES, PROJECT_READERS, PROJECT_WRITERS, ProjectParams } from "../../api/common.js";
import { defineOperation } from "../../api/contract.js";
import { PageQuery } from "../../domain/common.js";
import { ProjectId } from "../../domain/projects/schema.js";
import { Model, ModelId, ModelList, ModelPatch, ModelSpec } from "./schema.js";

const ModelParams = z.strictObject({ projectId: ProjectId, modelId: ModelId });

export const createModel = defineOperation({
  operationId: "createModel",
  method: "POST",
  path: "/projects/{projectId}/models",
  summary: "Register a model (platform or external) with its backends; provider keys are write-only",
  tag: "models",
  access: PROJECT_WRITERS,
  params: ProjectParams,
  body: ModelSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 201, schema: Model, description: "The model; keys appear only as secret references" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "models register",
});

export const listModels = defineOperation({
  operationId: "listModels",
  method: "GET",
  path: "/projects/{projectId}/models",
  summary: "List a project's models",
  tag: "models",
  access: PROJECT_READERS,
  params: ProjectParams,
  query: PageQuery,
  success: { status: 200, schema: ModelList, description: "One page of models, by name" },
  errors: [...AUTH_ERRORS, 404],
  cli: "models list",
});

export const getModel = defineOperation({
  operationId: "getModel",
  method: "GET",
  path: "/projects/{projectId}/models/{modelId}",
  summary: "Get a model",
  tag: "models",
  access: PROJECT_READERS,
  params: ModelParams,
  success: { status: 200, schema: Model, description: "The model" },
  errors: [...AUTH_ERRORS, 404],
  cli: "models show",
});

export const updateModel = defineOperation({
  operationId: "updateModel",
  method: "PATCH",
  path: "/projects/{projectId}/models/{modelId}",
  summary: "Update a model — e.g. status deprecated (with sunsetDate) or blocked (merge patch; If-Match required)",
  tag: "models",
  access: PROJECT_WRITERS,
  params: ModelParams,
  body: ModelPatch,
  bodyTypes: PATCH_TYPES,
  ifMatch: true,
  success: { status: 200, schema: Model, description: "The updated model" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 413, 415, 428],
  cli: "models update",
});

export const deleteModel = defineOperation({
  operationId: "deleteModel",
  method: "DELETE",
  path: "/projects/{projectId}/models/{modelId}",
  summary: "Delete a model and its stored keys (If-Match required)",
  tag: "models",
  access: PROJECT_WRITERS,
  params: ModelParams,
  ifMatch: true,
  success: { status: 204, description: "Deleted" },
  errors: [...AUTH_ERRORS, 404, 412, 428],
  cli: "models delete",
});

