import { z } from "zod";
import { ProjectId } from "../domain/projects/schema.js";
import { ANY_PROJECT_ROLE, ANY_TENANT_ROLE, type Access } from "./access.js";

/** What the operation files share: request content types, the usual refusals, the project path parameter. */
export const JSON_TYPES = ["application/json"] as const;
export const PATCH_TYPES = ["application/json", "application/merge-patch+json"] as const;
export const AUTH_ERRORS = [400, 401, 403] as const;
export const ProjectParams = z.strictObject({ projectId: ProjectId });
/** Reading a project and what it holds: any tenant role, or any role assignment on the project. */
export const PROJECT_READERS: Access = { tenant: ANY_TENANT_ROLE, project: ANY_PROJECT_ROLE };
/** Changing what a project holds: TenantAdmin or ProjectAdmin (tenant role), or ProjectAdmin on the project. */
export const PROJECT_WRITERS: Access = { tenant: ["TenantAdmin", "ProjectAdmin"], project: ["ProjectAdmin"] };
