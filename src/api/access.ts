import { ROLES, type Role } from "../domain/common.js";
import { PROJECT_ROLES } from "../domain/projects/schema.js";

/** A role a project assigns to a user (the project's roleAssignments). */
export type ProjectRole = (typeof PROJECT_ROLES)[number];

/**
 * Who may call an operation: the one table of who may do what. The endpoint gate enforces it
 * (src/http/endpoint.ts), the OpenAPI description and the table in docs/api.md are generated from it
 * (`npm run docs:roles`), and test/integration/role-matrix.test.ts calls every route as every role
 * and checks the answer against it.
 */
export interface Access {
  /** Tenant roles (the token's `roles` claim) that may call it. */
  tenant: readonly Role[];
  /**
   * Roles assigned on the project named by the path's `{projectId}` (its `roleAssignments`, for the
   * caller's `oid`) that may call it, whatever the caller's tenant roles. Only for paths with a `{projectId}`.
   */
  project?: readonly ProjectRole[];
  /**
   * Callers the roles above do not admit who may still call it on resources of their own (the key's
   * owner, the request's requester). The gate lets them through; the service checks the relation and
   * refuses (403) anyone else before it changes anything.
   */
  own?: {
    /** Whose resources, in words: "the key's owner". */
    who: string;
    /** Tenant roles that may try. */
    tenant?: readonly Role[];
    /** Project assignments (as above) that may try. */
    project?: readonly ProjectRole[];
    /** Any caller with a valid token may try, with or without roles (named approvers need none). */
    anyone?: true;
    /** A list: the service leaves out what is not the caller's instead of refusing. */
    lists?: true;
  };
  /** A further rule the service applies to the request's content (for the description). */
  note?: string;
}

export const ANY_TENANT_ROLE: readonly Role[] = ROLES;
export const ANY_PROJECT_ROLE: readonly ProjectRole[] = PROJECT_ROLES;
/** Anonymous operations (no token): the gate is not involved. */
export const NO_TOKEN: Access = { tenant: [] };

/** What a caller may do: call it, call it on their own resources only, or nothing (403). */
export type Verdict = "yes" | "own" | "no";

const hasAny = (held: ReadonlySet<string>, allowed: readonly string[] | undefined) => (allowed ?? []).some((r) => held.has(r));

/** Whether an operation's path names a project whose role assignments can count. */
export const isProjectScoped = (op: { path: string }): boolean => op.path.includes("{projectId}");

/**
 * The rule: effective roles are the token's tenant roles and, for operations on a project, the roles
 * assigned to the caller on that project. `projectRoles` is empty for operations without a project.
 */
export function verdict(access: Access, tenantRoles: ReadonlySet<string>, projectRoles: ReadonlySet<string>): Verdict {
  if (hasAny(tenantRoles, access.tenant) || hasAny(projectRoles, access.project)) return "yes";
  const own = access.own;
  if (own && (own.anyone || hasAny(tenantRoles, own.tenant) || hasAny(projectRoles, own.project))) return "own";
  return "no";
}

/** Whether the gate needs the caller's roles on the path's project to decide (only when the tenant roles do not settle it). */
export function needsProjectRoles(access: Access, tenantRoles: ReadonlySet<string>): boolean {
  if (verdict(access, tenantRoles, new Set()) === "yes") return false;
  return (access.project?.length ?? 0) > 0 || (access.own?.project?.length ?? 0) > 0;
}

const list = (roles: readonly string[]) => (roles.length <= 2 ? roles.join(" or ") : `${roles.slice(0, -1).join(", ")} or ${roles.at(-1)}`);
const tenantText = (roles: readonly Role[]) => (roles.length === ANY_TENANT_ROLE.length ? "any tenant role" : list(roles));
const projectText = (roles: readonly ProjectRole[]) =>
  roles.length === ANY_PROJECT_ROLE.length ? "any role assignment on the project" : `${list(roles)} on the project`;

/** The access rule in words (the OpenAPI description). */
export function describeAccess(access: Access, anonymous = false): string {
  if (anonymous) return `anonymous (no token)${access.note ? `: ${access.note}` : ""}`;
  const parts: string[] = [];
  if (access.tenant.length) parts.push(tenantText(access.tenant));
  if (access.project?.length) parts.push(projectText(access.project));
  const own = access.own;
  if (own) {
    const via = own.anyone ? "" : [own.tenant?.length ? tenantText(own.tenant) : "", own.project?.length ? projectText(own.project) : ""].filter(Boolean).join(" or ");
    parts.push(own.lists ? `any other caller${via ? ` with ${via}` : ""}, who sees only ${own.who}` : `${own.who}${via ? ` (with ${via})` : ""}`);
  }
  const text = parts.length ? parts.join("; or ") : "nobody";
  return access.note ? `${text} — ${access.note}` : text;
}

/** The callers of the table: each tenant role alone, and each project assignment alone (no tenant role). */
export interface Caller {
  /** Column heading. */
  label: string;
  tenantRoles: readonly Role[];
  projectRoles: readonly ProjectRole[];
}

export const CALLERS: readonly Caller[] = [
  ...ROLES.map((r) => ({ label: r, tenantRoles: [r], projectRoles: [] })),
  ...PROJECT_ROLES.map((r) => ({ label: `project ${r}`, tenantRoles: [], projectRoles: [r] })),
];

/** What the table says for one caller: project assignments count only on operations with a project in the path. */
export function verdictFor(op: { path: string; access: Access }, caller: Caller): Verdict {
  return verdict(op.access, new Set(caller.tenantRoles), new Set(isProjectScoped(op) ? caller.projectRoles : []));
}

const CELL: Record<Verdict, string> = { yes: "✓", own: "own", no: "–" };

/** The table of who may do what, as Markdown: every operation × every caller. */
export function renderAccessTable(ops: readonly { method: string; path: string; anonymous?: boolean; access: Access }[]): string {
  const head = ["Operation", ...CALLERS.map((c) => c.label.replace(/^project /, "project<br>")), "own / notes"];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map((_, i) => (i === 0 || i === head.length - 1 ? "---" : ":-:")).join("|")}|`];
  for (const op of ops) {
    const cells = CALLERS.map((c) => (op.anonymous ? "any" : CELL[verdictFor(op, c)]));
    const notes = op.anonymous
      ? `no token${op.access.note ? `: ${op.access.note}` : ""}`
      : [op.access.own ? `own: ${op.access.own.who}${op.access.own.lists ? " (a list: the rest is left out)" : ""}` : "", op.access.note ?? ""].filter(Boolean).join("; ");
    lines.push(`| \`${op.method} ${op.path}\` | ${cells.join(" | ")} | ${notes.replaceAll("|", "\\|")} |`);
  }
  return lines.join("\n");
}

export const TABLE_BEGIN = "<!-- access-table:begin (generated by `npm run docs:roles` from the operation declarations; do not edit) -->";
export const TABLE_END = "<!-- access-table:end -->";

/** The document with the generated table between the markers (which must both be there once). */
export function withAccessTable(doc: string, table: string): string {
  const begin = doc.indexOf(TABLE_BEGIN);
  const end = doc.indexOf(TABLE_END);
  if (begin < 0 || end < begin || doc.indexOf(TABLE_BEGIN, begin + 1) >= 0) throw new Error("docs/api.md needs the access-table markers once each, begin before end");
  return `${doc.slice(0, begin + TABLE_BEGIN.length)}\n${table}\n${doc.slice(end)}`;
}
