import { ROLES, type Principal, type Role } from "../common.js";
import { sameUser } from "../users.js";

/**
 * The tenant role sets the domain checks, defined once. Operations declare who may call them with the
 * same sets (src/api/access.ts), and the services check them again as a second layer.
 */
export const ANY_TENANT_ROLE: readonly Role[] = ROLES;
/** May change tenant-wide governance (settings, routes, policy maxima) and publish. */
export const TENANT_ADMINS: readonly Role[] = ["TenantAdmin"];
/** May manage a project's registry and keys when the role is held at tenant scope. */
export const PROJECT_MANAGERS: readonly Role[] = ["TenantAdmin", "ProjectAdmin"];
/** May read the audit log. */
export const AUDIT_READERS: readonly Role[] = ["Auditor", "TenantAdmin"];
/** Decide for the tenant's governance (not for a project, not as peers): a route's governance stage. */
export const GOVERNANCE_DECIDERS: readonly Role[] = ["TenantAdmin", "Approver"];
/** May read approval metrics. */
export const APPROVAL_OVERSEERS: readonly Role[] = ["TenantAdmin", "Auditor", "Approver"];
/** May request an exemption. */
export const EXEMPTION_REQUESTERS: readonly Role[] = ["TenantAdmin", "ProjectAdmin", "Developer"];
/** May create and hold virtual keys in a project (tenant roles; the same roles assigned on the project count too). */
export const KEY_HOLDERS: readonly Role[] = ["TenantAdmin", "ProjectAdmin", "Developer"];
/** May look up which key a (leaked) secret belongs to. */
export const KEY_INVESTIGATORS: readonly Role[] = ["TenantAdmin", "Auditor"];
/** Roles a requester may name for a whole extra approval stage (roles with approval authority). */
export const STAGE_ROLES: readonly Role[] = ["TenantAdmin", "Approver", "ProjectAdmin"];

/** Whether the principal holds any of the roles. */
export const holdsAny = (held: ReadonlySet<Role>, roles: readonly Role[]): boolean => roles.some((r) => held.has(r));

/**
 * Whether the principal holds one of the roles in the tenant, or has one of them assigned on the project
 * (its `roleAssignments`): the one rule services apply beside the gate's (src/api/access.ts).
 */
export const holdsOn = (principal: Pick<Principal, "roles" | "userId">, project: { roleAssignments: readonly { principalId: string; role: string }[] }, roles: readonly Role[]): boolean =>
  holdsAny(principal.roles, roles) || project.roleAssignments.some((a) => sameUser(a.principalId, principal.userId) && (roles as readonly string[]).includes(a.role));
