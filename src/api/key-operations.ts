import { z } from "zod";
import { PageQuery } from "../domain/common.js";
import { Approval } from "../domain/approvals/schema.js";
import { Key, KeyId, KeyList, KeySpec, KeyWithSecret, LookupResult, LookupSpec, ReasonSpec, RotateSpec, ShareSpec } from "../domain/keys/schema.js";
import { ProjectId } from "../domain/projects/schema.js";
import { ANY_PROJECT_ROLE, ANY_TENANT_ROLE, type Access } from "./access.js";
import { AUTH_ERRORS, JSON_TYPES, PROJECT_READERS, ProjectParams } from "./common.js";
import { defineOperation } from "./contract.js";

const KeyParams = z.strictObject({ projectId: ProjectId, keyId: KeyId });
/** A key's owner may manage it with any role that lets them read the project (the key service checks ownership). */
const KEY_OWNER = { who: "the key's owner", tenant: ANY_TENANT_ROLE, project: ANY_PROJECT_ROLE } as const;
/** Rotating, revoking, suspending, resuming, sharing: tenant and project admins every key of the project, owners their own. */
const KEY_MANAGERS: Access = { tenant: ["TenantAdmin", "ProjectAdmin"], project: ["ProjectAdmin"], own: KEY_OWNER };

export const createKey = defineOperation({
  operationId: "createKey",
  method: "POST",
  path: "/projects/{projectId}/keys",
  summary: "Create a virtual key (scoped, limited, expiring); the key itself is in this response only. `owner` other than the caller: TenantAdmin or the project's ProjectAdmin only (403 key_owner_not_caller)",
  tag: "keys",
  access: { tenant: ["TenantAdmin", "ProjectAdmin", "Developer"], project: ["ProjectAdmin", "Developer"] },
  params: ProjectParams,
  body: KeySpec,
  bodyTypes: JSON_TYPES,
  success: { status: 201, schema: KeyWithSecret, description: "The key with its secret (shown once); gateway.state tells whether the gateway holds it yet" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "keys create",
});

export const listKeys = defineOperation({
  operationId: "listKeys",
  method: "GET",
  path: "/projects/{projectId}/keys",
  summary: "List the project's virtual keys (never their secrets)",
  tag: "keys",
  access: PROJECT_READERS,
  params: ProjectParams,
  query: PageQuery,
  success: { status: 200, schema: KeyList, description: "One page of keys, oldest first" },
  errors: [...AUTH_ERRORS, 404],
  cli: "keys list",
});

export const getKey = defineOperation({
  operationId: "getKey",
  method: "GET",
  path: "/projects/{projectId}/keys/{keyId}",
  summary: "A virtual key: scopes, limits, expiry, status, gateway state, rotation (never its secret)",
  tag: "keys",
  access: PROJECT_READERS,
  params: KeyParams,
  success: { status: 200, schema: Key, description: "The key; its ETag is also in the ETag header" },
  errors: [...AUTH_ERRORS, 404],
  cli: "keys show",
});

export const rotateKey = defineOperation({
  operationId: "rotateKey",
  method: "POST",
  path: "/projects/{projectId}/keys/{keyId}:rotate",
  summary: "Rotate: a new secret (in this response only) works once the gateway confirms it; the old one works for the overlap, then never again",
  tag: "keys",
  access: KEY_MANAGERS,
  params: KeyParams,
  body: RotateSpec,
  bodyTypes: JSON_TYPES,
  ifMatch: true,
  success: { status: 202, schema: KeyWithSecret, description: "The key with its new secret; a durable orchestration publishes, waits the overlap and retires the old secret" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 413, 415, 428],
  cli: "keys rotate",
});

/** Revoke, suspend and resume share their shape: a reason, If-Match, the key back. */
const keyAction = <Id extends string>(operationId: Id, verb: "revoke" | "suspend" | "resume", summary: string, description: string) =>
  defineOperation({
    operationId,
    method: "POST",
    path: `/projects/{projectId}/keys/{keyId}:${verb}`,
    summary,
    tag: "keys",
    access: KEY_MANAGERS,
    params: KeyParams,
    body: ReasonSpec,
    bodyTypes: JSON_TYPES,
    ifMatch: true,
    success: { status: 200, schema: Key, description },
    errors: [...AUTH_ERRORS, 404, 409, 412, 413, 415, 428],
    cli: `keys ${verb}`,
  });

export const revokeKey = keyAction(
  "revokeKey",
  "revoke",
  "Revoke for good: status revoked once the gateway confirms (revocationPending until then)",
  "The key: revoked, or revocationPending when the gateway has not confirmed yet",
);
export const suspendKey = keyAction("suspendKey", "suspend", "Suspend (reversible); gateway.state is synced once the gateway refuses the key", "The suspended key");
export const resumeKey = keyAction("resumeKey", "resume", "Resume a suspended key (one an admin suspended: an admin only, 403 key_suspended_by_admin; one suspended when its owner lost their project role: only once they hold a key-holding role again, 409 key_owner_without_role)", "The active key");

export const collectKey = defineOperation({
  operationId: "collectKey",
  method: "POST",
  path: "/projects/{projectId}/keys/{keyId}:collect",
  summary: "The owner collects the new secret of a scheduled rotation, once, during its overlap",
  tag: "keys",
  access: { tenant: [], own: KEY_OWNER },
  params: KeyParams,
  success: { status: 200, schema: KeyWithSecret, description: "The key with its new secret (shown once)" },
  errors: [...AUTH_ERRORS, 404, 409],
  cli: "keys collect",
});

export const lookupKey = defineOperation({
  operationId: "lookupKey",
  method: "POST",
  path: "/keys:lookup",
  summary: "Which key a (leaked) secret belongs to; format and checksum are checked before anything is looked up",
  tag: "keys",
  access: { tenant: ["TenantAdmin", "Auditor"] },
  body: LookupSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 200, schema: LookupResult, description: "The key and which of its secrets this is" },
  errors: [...AUTH_ERRORS, 404, 413, 415],
  cli: "keys lookup",
});

export const shareKey = defineOperation({
  operationId: "shareKey",
  method: "POST",
  path: "/projects/{projectId}/keys/{keyId}:share",
  summary: "Ask to use the key with another project of the tenant; an approval decides (default approvers: that project's admins)",
  tag: "keys",
  access: { ...KEY_MANAGERS, note: "the caller must also be able to read the other project" },
  params: KeyParams,
  body: ShareSpec,
  bodyTypes: JSON_TYPES,
  ifMatch: true,
  success: { status: 202, schema: z.object({ key: Key, approval: Approval }).meta({ id: "KeyShareRequest" }), description: "The key with the pending share, and the approval request" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 413, 415, 428],
  cli: "keys share",
});

export const unshareKey = defineOperation({
  operationId: "unshareKey",
  method: "DELETE",
  path: "/projects/{projectId}/keys/{keyId}/shares/{targetProjectId}",
  summary: "End a share: the key stops working with that project once the gateway confirms",
  tag: "keys",
  // The project shared with may end what reaches into it: its admin may hold no role on the key's project
  // (a ProjectAdmin assigned on the other project only), so the gate lets any caller try and the service
  // checks the key's owner, or an admin of either project (404 to anyone else, as for a key not shared there).
  access: { ...KEY_MANAGERS, own: { who: "the key's owner, or an admin of the project it is shared with (ProjectAdmin assigned on that project alone is enough)", anyone: true } },
  params: z.strictObject({ projectId: ProjectId, keyId: KeyId, targetProjectId: ProjectId }),
  ifMatch: true,
  success: { status: 200, schema: Key, description: "The key with the share revoked; to an admin of the project it was shared with (not of the key's own), the key as that project sees it: sharedFrom set, and only the share into that project" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 428],
  cli: "keys unshare",
});

export const listSharedKeys = defineOperation({
  operationId: "listSharedKeys",
  method: "GET",
  path: "/projects/{projectId}/shared-keys",
  summary: "Keys of other projects that are shared with this project (active shares)",
  tag: "keys",
  access: PROJECT_READERS,
  params: ProjectParams,
  success: { status: 200, schema: KeyList, description: "The shared keys, each with sharedFrom and only its share into this project" },
  errors: [...AUTH_ERRORS, 404],
  cli: "keys shared",
});

export const keyOperations = [createKey, listKeys, getKey, rotateKey, revokeKey, suspendKey, resumeKey, collectKey, lookupKey, shareKey, unshareKey, listSharedKeys] as const;
