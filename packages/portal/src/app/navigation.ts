/** The portal's screens: Operate for platform teams, Build for developers. `roles`: who sees the entry (the server still decides). */
export interface NavItem {
  path: string;
  label: string;
  group: "Operate" | "Build";
  roles?: readonly string[];
}

const GOVERNORS = ["TenantAdmin", "Auditor"] as const;

export const NAV: readonly NavItem[] = [
  { path: "/", label: "Dashboard", group: "Operate", roles: GOVERNORS },
  { path: "/projects", label: "Projects", group: "Operate" },
  { path: "/models", label: "Models", group: "Operate" },
  { path: "/policy", label: "Policy", group: "Operate" },
  { path: "/keys", label: "Keys", group: "Operate" },
  { path: "/tools", label: "Tools", group: "Operate" },
  { path: "/agents", label: "Agents", group: "Operate" },
  { path: "/connections", label: "Cloud connections", group: "Operate", roles: GOVERNORS },
  { path: "/approvals", label: "Approvals", group: "Operate" },
  { path: "/exemptions", label: "Exemptions", group: "Operate" },
  { path: "/reviews", label: "Access reviews", group: "Operate", roles: ["TenantAdmin", "Auditor", "ProjectAdmin"] },
  { path: "/audit", label: "Audit", group: "Operate", roles: GOVERNORS },
  { path: "/build/catalog", label: "Catalog", group: "Build" },
  { path: "/build/playground", label: "Playground", group: "Build" },
];

/** A project's screens live under /projects/:id/<page>: "Models" is current there, "Projects" on the list and a project. */
export function isCurrent(item: string, pathname: string): boolean {
  const inProject = /^\/projects\/[^/]+\/([^/]+)/.exec(pathname);
  if (inProject) return item === `/${inProject[1]}`;
  if (item === "/projects") return /^\/projects(\/[^/]+)?\/?$/.test(pathname);
  if (item === "/") return pathname === "/";
  return pathname === item || pathname.startsWith(`${item}/`);
}
