import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROLES } from "../../src/domain/common.js";

/**
 * The deployment contract, checked without Azure and without a Bicep compiler (docs/deploy.md, "The contract
 * test"). Approach: structured extraction from text.
 *
 * - infra/main.bicep: a scanner finds each top-level `resource <name> '<type>@<version>' = [if (…)] [[for …:] {`
 *   and its balanced `{ … }` body, skipping single-quoted strings (with `${…}` interpolation), ''' strings
 *   and comments. Properties are read from the body with line-anchored patterns (`scope:`, `principalId:`…).
 *   Role assignments must stay literal resources for this to see them (the template says so).
 * - src/config/index.ts: the keys of the `ConfigSchema` object and whether each has `.default(`. Read from
 *   the source so a new setting cannot be forgotten here.
 * - docs/deploy.md: the tables between `<!-- contract:roles -->` and `<!-- contract:unset-settings -->` markers.
 * - infra/modules/app-registration.bicep (the Entra app registrations, Microsoft Graph Bicep extension): the same
 *   scanner; the app roles are the objects of its literal `var appRoles = [ … ]`.
 */

const ROOT = join(__dirname, "..", "..");
const read = (...p: string[]) => readFileSync(join(ROOT, ...p), "utf8");
const BICEP = read("infra", "main.bicep");
const CONFIG_SOURCE = read("src", "config", "index.ts");
const DOC = read("docs", "deploy.md");
const APP_REGISTRATION = read("infra", "modules", "app-registration.bicep");
const NETWORK = read("infra", "modules", "network.bicep");

// ----------------------------------------------------------------------------------------------------------
// Bicep, as text
// ----------------------------------------------------------------------------------------------------------

interface BicepResource {
  symbol: string;
  type: string;
  apiVersion: string;
  body: string;
}

/** Index just past the `}` that closes the `{` at `open`, skipping strings and comments. */
function closeBrace(text: string, open: number): number {
  // A stack of contexts: "code" (counts braces), "str" (a '…' string), "interp" (${…} inside a string).
  const stack: ("code" | "str" | "interp")[] = ["code"];
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    const top = stack[stack.length - 1];
    if (top === "str") {
      if (c === "\\") i++;
      else if (c === "'") stack.pop();
      else if (c === "$" && text[i + 1] === "{") {
        stack.push("interp");
        i++;
      }
      continue;
    }
    if (text.startsWith("'''", i)) {
      const end = text.indexOf("'''", i + 3);
      i = end < 0 ? text.length : end + 2;
      continue;
    }
    if (text.startsWith("//", i)) {
      const end = text.indexOf("\n", i);
      i = end < 0 ? text.length : end;
      continue;
    }
    if (text.startsWith("/*", i)) {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 1;
      continue;
    }
    if (c === "'") stack.push("str");
    else if (c === "{") {
      if (top === "interp") stack.push("interp");
      else depth++;
    } else if (c === "}") {
      if (top === "interp") stack.pop();
      else if (--depth === 0) return i + 1;
    }
  }
  throw new Error(`unbalanced braces from offset ${open}`);
}

function resources(text: string): BicepResource[] {
  const out: BicepResource[] = [];
  const head = /^resource\s+(\w+)\s+'([^'@]+)@([^']+)'\s*=\s*(?:if\s*\([^\n]*?\)\s*)?(?:\[\s*for\s[^\n]*?:\s*)?\{/gm;
  for (const m of text.matchAll(head)) {
    const open = (m.index ?? 0) + m[0].length - 1;
    out.push({ symbol: m[1] as string, type: m[2] as string, apiVersion: m[3] as string, body: text.slice(open, closeBrace(text, open)) });
  }
  return out;
}

/** The expression after `<key>:` on its own line in a body (first match), or undefined. */
const prop = (body: string, key: string): string | undefined => new RegExp(`^\\s*${key}:\\s*(.+?)\\s*$`, "m").exec(body)?.[1];

const RESOURCES = resources(BICEP);
const GRAPH_RESOURCES = resources(APP_REGISTRATION);

/** The `= <expression>` of `var <name>` (one line) in a Bicep text, or undefined. */
const bicepVar = (text: string, name: string): string | undefined => new RegExp(`^var\\s+${name}\\s*=\\s*(.+?)\\s*$`, "m").exec(text)?.[1];

/** The `{ … }` objects of a multi-line literal array `var <name> = [ … ]` (each object's body, braces included). */
function literalObjects(text: string, name: string): string[] {
  const start = text.search(new RegExp(`^var\\s+${name}\\s*=\\s*\\[\\s*$`, "m"));
  if (start < 0) throw new Error(`no multi-line \`var ${name} = [\` (update this test's reader)`);
  const end = text.indexOf("\n]", start);
  const out: string[] = [];
  for (let i = text.indexOf("{", start); i >= 0 && i < end; i = text.indexOf("{", i)) {
    const close = closeBrace(text, i);
    out.push(text.slice(i, close));
    i = close;
  }
  return out;
}

const GUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const unquote = (v: string | undefined) => /^'([^']*)'$/.exec(v ?? "")?.[1];
const stringList = (v: string | undefined) => [...(/^\[(.*)\]$/.exec(v ?? "")?.[1] ?? "").matchAll(/'([^']*)'/g)].map((m) => m[1] as string);
const byType = (type: string) => RESOURCES.filter((r) => r.type.toLowerCase() === type.toLowerCase());

/** The function app's app settings: `{ name: 'X', value: … }` entries of its `appSettings: [ … ]`. */
function appSettings(): Map<string, string> {
  const app = RESOURCES.find((r) => r.type === "Microsoft.Web/sites" && /functionAppConfig:/.test(r.body));
  if (!app) throw new Error("no Microsoft.Web/sites resource with functionAppConfig in infra/main.bicep");
  const start = app.body.indexOf("appSettings: [");
  if (start < 0) throw new Error("the function app has no appSettings array");
  const list = app.body.slice(start, app.body.indexOf("\n      ]", start));
  return new Map([...list.matchAll(/\{\s*name:\s*'([^']+)'\s*,\s*value:\s*(.+?)\s*\}\s*$/gm)].map((m) => [m[1] as string, m[2] as string]));
}

// ----------------------------------------------------------------------------------------------------------
// src/config, as text
// ----------------------------------------------------------------------------------------------------------

/** Every key of the ConfigSchema object (the environment variables parseConfig reads) and whether it has a default. */
function configSettings(): { name: string; hasDefault: boolean }[] {
  const start = CONFIG_SOURCE.indexOf("const ConfigSchema = z");
  if (start < 0) throw new Error("src/config/index.ts: no `const ConfigSchema = z` (update this test's reader)");
  const open = CONFIG_SOURCE.indexOf(".object({", start) + ".object(".length;
  const body = CONFIG_SOURCE.slice(open, closeBrace(CONFIG_SOURCE, open));
  const keys = [...body.matchAll(/^ {4}(\w+):/gm)];
  if (keys.length === 0) throw new Error("src/config/index.ts: no keys found in ConfigSchema");
  return keys
    .map((m, i) => {
      const from = m.index ?? 0;
      const to = keys[i + 1]?.index ?? body.length;
      const definition = body.slice(from, to).replace(/^\s*\/\/.*$/gm, "");
      return { name: m[1] as string, hasDefault: /\.default\(/.test(definition) };
    })
    // `__azureSignal` is computed by parseConfig, not read from the environment.
    .filter((s) => !s.name.startsWith("__"));
}

/** `%NAME%` app-setting references of the timer triggers in functions/. */
function timerSettings(): string[] {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith(".ts")) for (const m of readFileSync(join(dir, e.name), "utf8").matchAll(/"%(\w+)%"/g)) names.add(m[1] as string);
    }
  };
  walk(join(ROOT, "functions"));
  return [...names].sort();
}

// ----------------------------------------------------------------------------------------------------------
// docs/deploy.md tables
// ----------------------------------------------------------------------------------------------------------

function table(marker: string): Record<string, string>[] {
  const start = DOC.indexOf(`<!-- contract:${marker} -->`);
  const end = DOC.indexOf(`<!-- /contract:${marker} -->`);
  if (start < 0 || end < start) throw new Error(`docs/deploy.md: no <!-- contract:${marker} --> … <!-- /contract:${marker} --> table`);
  const lines = DOC.slice(start, end).split("\n").filter((l) => l.trim().startsWith("|"));
  const cells = (l: string) => l.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
  const header = cells(lines[0] ?? "");
  return lines.slice(2).map((l) => Object.fromEntries(cells(l).map((c, i) => [header[i] ?? String(i), c])));
}

// ----------------------------------------------------------------------------------------------------------
// Role assignments
// ----------------------------------------------------------------------------------------------------------

interface Assignment {
  symbol: string;
  kind: "arm" | "cosmos";
  scope: string | undefined;
  roleDefinitionId: string;
  principalId: string;
}

function assignments(): Assignment[] {
  const arm = byType("Microsoft.Authorization/roleAssignments").map((r) => ({
    symbol: r.symbol,
    kind: "arm" as const,
    scope: prop(r.body, "scope"),
    roleDefinitionId: prop(r.body, "roleDefinitionId") ?? "",
    principalId: prop(r.body, "principalId") ?? "",
  }));
  const cosmos = byType("Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments").map((r) => ({
    symbol: r.symbol,
    kind: "cosmos" as const,
    scope: prop(r.body, "scope"),
    roleDefinitionId: prop(r.body, "roleDefinitionId") ?? "",
    principalId: prop(r.body, "principalId") ?? "",
  }));
  return [...arm, ...cosmos];
}

const PRINCIPALS: Record<string, string> = {
  app: "identity.properties.principalId",
  gateway: "apim.identity.principalId",
};

/** Whether an assignment is the one a roles-table row describes. */
function matches(a: Assignment, row: Record<string, string>): boolean {
  const id = row["Role definition ID"] ?? "";
  const principal = PRINCIPALS[row["Principal"] ?? ""];
  const scope = row["Scope"] ?? "";
  const role = id.startsWith("custom:")
    ? new RegExp(`\\b${id.slice("custom:".length)}\\b`).test(a.roleDefinitionId)
    : a.roleDefinitionId.toLowerCase().includes(id.toLowerCase());
  if (!role || principal === undefined || a.principalId !== principal) return false;
  // A Cosmos DB data-plane scope is a path; "container" means /dbs/<database>/colls/<container>.
  if (a.kind === "cosmos") return scope === "container" && /\/dbs\/\$\{database\.name\}\/colls\/\$\{container\.name\}'$/.test(a.scope ?? "");
  return a.scope === scope;
}

const BROAD_ROLES: Record<string, string> = {
  "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
  "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
  "312a565d-c81f-4fd8-895a-4e21e48d571c": "API Management Service Contributor",
  "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
};

// ----------------------------------------------------------------------------------------------------------

describe("deployment contract: infra/main.bicep against src/config, docs/deploy.md and package.json", () => {
  it("reads the template, the config module and the doc tables (the readers still work)", () => {
    expect(RESOURCES.length).toBeGreaterThan(10);
    expect(appSettings().size).toBeGreaterThan(10);
    expect(configSettings().map((s) => s.name)).toContain("COSMOS_ENDPOINT");
    expect(table("roles").length).toBeGreaterThan(5);
    expect(table("unset-settings").length).toBeGreaterThan(0);
  });

  describe("(a) settings", () => {
    it("every setting src/config reads is an app setting, has a default in src/config, or is documented as not set", () => {
      const set = appSettings();
      const documented = new Map(table("unset-settings").map((r) => [r["Setting"] ?? "", r["Why the template does not set it"] ?? ""]));
      const missing = configSettings().filter((s) => !set.has(s.name) && !s.hasDefault && !documented.get(s.name));
      expect(missing.map((s) => s.name), "set them in infra/main.bicep or explain them in docs/deploy.md (contract:unset-settings)").toEqual([]);
    });

    it("the unset-settings table lists only settings the app reads and the template does not set", () => {
      const read = new Set(configSettings().map((s) => s.name));
      const set = appSettings();
      const stale = table("unset-settings")
        .map((r) => r["Setting"] ?? "")
        .filter((name) => !read.has(name) || set.has(name));
      expect(stale).toEqual([]);
    });

    it("every timer schedule (%SETTING% in functions/) is an app setting", () => {
      const timers = timerSettings();
      expect(timers).toContain("TOOL_DISCOVERY_SCHEDULE");
      const set = appSettings();
      expect(timers.filter((t) => !set.has(t))).toEqual([]);
    });

    it("app settings hold no keys or connection secrets (identity-based access)", () => {
      const names = [...appSettings().keys()];
      expect(names.filter((n) => /KEY$|PASSWORD|SECRET|_SAS\b/i.test(n) && n !== "KEY_ROTATIONS_PER_RUN")).toEqual([]);
      expect(names).not.toContain("AzureWebJobsStorage");
    });
  });

  describe("(b) data-plane roles", () => {
    it("every roles-table row is a role assignment to that principal, with that role, at that scope", () => {
      const all = assignments();
      const missing = table("roles").filter((row) => !all.some((a) => matches(a, row)));
      expect(missing.map((r) => `${r["Role"]} for ${r["Principal"]} on ${r["Scope"]}`), "add the role assignment to infra/main.bicep").toEqual([]);
    });

    it("every role assignment in the template is a row of the roles table (no undocumented access)", () => {
      const rows = table("roles");
      const undocumented = assignments().filter((a) => !rows.some((row) => matches(a, row)));
      expect(undocumented.map((a) => a.symbol), "document it in docs/deploy.md (contract:roles)").toEqual([]);
    });

    it("role IDs in the table are GUIDs or name a custom role definition of the template", () => {
      const customRoles = new Set(byType("Microsoft.Authorization/roleDefinitions").map((r) => r.symbol));
      for (const row of table("roles")) {
        const id = row["Role definition ID"] ?? "";
        if (id.startsWith("custom:")) expect(customRoles.has(id.slice("custom:".length)), id).toBe(true);
        else expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      }
    });

    it("every Azure role assignment names its scope (none lands on the whole resource group)", () => {
      expect(assignments().filter((a) => a.kind === "arm" && !a.scope).map((a) => a.symbol)).toEqual([]);
    });

    it("no broad role is assigned (Owner, Contributor, API Management Service Contributor, Key Vault Administrator)", () => {
      const broad = assignments().flatMap((a) => Object.entries(BROAD_ROLES).filter(([id]) => a.roleDefinitionId.includes(id)).map(([, name]) => `${a.symbol}: ${name}`));
      expect(broad).toEqual([]);
    });

    it("the gateway has no role on the control plane's vault (signing keys, peppers)", () => {
      const gatewayOnVault = assignments().filter((a) => a.principalId === PRINCIPALS.gateway && a.scope === "vault");
      expect(gatewayOnVault.map((a) => a.symbol)).toEqual([]);
    });

    it("the custom APIM role writes only entity types below the service, and reads the service", () => {
      const start = BICEP.indexOf("var apimPublisherActions = [");
      expect(start, "infra/main.bicep: var apimPublisherActions").toBeGreaterThanOrEqual(0);
      const actions = [...BICEP.slice(start, BICEP.indexOf("]", start)).matchAll(/'([^']+)'/g)].map((m) => m[1] as string);
      expect(actions).toContain("Microsoft.ApiManagement/service/read");
      for (const a of actions) {
        expect(a).toMatch(/^Microsoft\.ApiManagement\/service\/[a-zA-Z]+/);
        expect(a).not.toMatch(/^Microsoft\.ApiManagement\/service\/(\*|write|delete)$/);
      }
      // The role definition uses this list, and only assigns at the resource group.
      const role = byType("Microsoft.Authorization/roleDefinitions").find((r) => r.symbol === "apimPublisherRole");
      expect(role?.body).toMatch(/actions:\s*apimPublisherActions/);
      expect(role?.body).toMatch(/assignableScopes:\s*\[\s*resourceGroup\(\)\.id\s*\]/);
    });
  });

  describe("(b2) the instance baseline (ADR 023)", () => {
    it("the APIM service's global policy is infra/apim/global-policy.xml, sent as format xml", () => {
      const policies = byType("Microsoft.ApiManagement/service/policies");
      expect(policies.map((p) => p.symbol)).toEqual(["apimInstanceBaseline"]);
      const body = policies[0]!.body;
      expect(body).toMatch(/parent:\s*apim\b/);
      expect(body).toMatch(/name:\s*'policy'/);
      expect(body).toMatch(/format:\s*'xml'/);
      expect(body).toMatch(/value:\s*loadTextContent\('apim\/global-policy\.xml'\)/);
      expect(read("infra", "apim", "global-policy.xml")).toMatch(/^<policies>/);
    });
  });

  describe("(c) runtime", () => {
    it("the Flex Consumption runtime is node at package.json engines' major version", () => {
      const engines = (JSON.parse(read("package.json")) as { engines: { node: string } }).engines.node;
      const major = /(\d+)/.exec(engines)?.[1];
      const runtime = /runtime:\s*\{\s*name:\s*'(\w+)'\s*,\s*version:\s*'([^']+)'\s*\}/.exec(BICEP);
      expect(runtime?.[1]).toBe("node");
      expect(runtime?.[2]).toBe(major);
      expect(major).toBe("22");
    });
  });
  describe("(d) Entra app registration (infra/modules/app-registration.bicep)", () => {
    const appRoles = () =>
      literalObjects(APP_REGISTRATION, "appRoles").map((body) => ({
        id: unquote(prop(body, "id")),
        value: unquote(prop(body, "value")),
        displayName: unquote(prop(body, "displayName")),
        description: prop(body, "description"),
        allowedMemberTypes: stringList(prop(body, "allowedMemberTypes")),
        isEnabled: prop(body, "isEnabled"),
      }));
    const applications = () => GRAPH_RESOURCES.filter((r) => r.type === "Microsoft.Graph/applications");
    const apiUniqueName = "apiUniqueName";
    /** Every declaration of the API application (the same uniqueName: the second completes the first). */
    const apiDeclarations = () => applications().filter((r) => prop(r.body, "uniqueName") === apiUniqueName);

    it("uses the Microsoft Graph Bicep extension, registered in infra/bicepconfig.json at a released v1.0 type version", () => {
      expect(APP_REGISTRATION).toMatch(/^extension\s+microsoftGraphV1\s*$/m);
      const config = JSON.parse(read("infra", "bicepconfig.json").replace(/^\s*\/\/.*$/gm, "")) as { extensions?: Record<string, string> };
      expect(config.extensions?.["microsoftGraphV1"]).toMatch(/^br:mcr\.microsoft\.com\/bicep\/extensions\/microsoftgraph\/v1\.0:\d+\.\d+\.\d+$/);
      expect(GRAPH_RESOURCES.map((r) => `${r.type}@${r.apiVersion}`).sort()).toEqual([
        "Microsoft.Graph/applications@v1.0",
        "Microsoft.Graph/applications@v1.0",
        "Microsoft.Graph/applications@v1.0",
        "Microsoft.Graph/servicePrincipals@v1.0",
        "Microsoft.Graph/servicePrincipals@v1.0",
      ]);
      for (const app of applications()) expect(prop(app.body, "uniqueName"), app.symbol).toMatch(/^\w+$/);
    });

    it("declares exactly the app roles of src/domain/common.ts ROLES, each complete, with a fixed unique GUID", () => {
      const roles = appRoles();
      expect(roles.map((r) => r.value).sort()).toEqual([...ROLES].sort());
      for (const r of roles) {
        expect(r.id, r.value).toMatch(GUID_SHAPE);
        expect(r.displayName, r.value).toBeTruthy();
        expect(r.description, r.value).toMatch(/^'.+'$/);
        expect(r.allowedMemberTypes, r.value).toContain("User");
        expect(r.allowedMemberTypes.filter((t) => t !== "User" && t !== "Application"), r.value).toEqual([]);
        expect(r.isEnabled, r.value).toBe("true");
      }
      expect(new Set(roles.map((r) => r.id)).size).toBe(roles.length);
      // Approvals are a person's decision; the tenant's administrator is a person.
      for (const human of ["TenantAdmin", "Approver"]) expect(roles.find((r) => r.value === human)?.allowedMemberTypes).toEqual(["User"]);
    });

    it("the API is multi-tenant, asks for v2 access tokens, carries the app roles, and gets api://{appId}", () => {
      expect(bicepVar(APP_REGISTRATION, apiUniqueName)).toMatch(/^'aigov-api-\$\{uniqueSuffix\}'$/);
      expect(bicepVar(APP_REGISTRATION, "apiSignInAudience")).toBe("'AzureADMultipleOrgs'");
      const declarations = apiDeclarations();
      expect(declarations.length).toBe(2);
      for (const d of declarations) {
        expect(prop(d.body, "signInAudience"), d.symbol).toBe("apiSignInAudience");
        expect(prop(d.body, "requestedAccessTokenVersion"), d.symbol).toBe("2");
        expect(prop(d.body, "appRoles"), d.symbol).toBe("appRoles");
      }
      const [first, last] = declarations as [(typeof declarations)[0], (typeof declarations)[0]];
      expect(prop(first.body, "identifierUris")).toBeUndefined();
      expect(prop(last.body, "identifierUris")).toBe(`[ 'api://\${${first.symbol}.appId}' ]`);
    });

    it("the client is a multi-tenant public client (device code, localhost) with a SPA platform, and may call the API", () => {
      const client = applications().find((r) => prop(r.body, "uniqueName") === "clientUniqueName");
      expect(client, "an application with uniqueName: clientUniqueName").toBeDefined();
      const body = client?.body ?? "";
      expect(prop(body, "signInAudience")).toBe("'AzureADMultipleOrgs'");
      expect(prop(body, "isFallbackPublicClient")).toBe("true");
      expect(body).toMatch(/publicClient:\s*\{\s*redirectUris:\s*\[[^\]]*'http:\/\/localhost'/);
      expect(body).toMatch(/spa:\s*\{\s*redirectUris:\s*portalRedirectUris\s*\}/);
      const api = apiDeclarations()[0]?.symbol ?? "";
      expect(prop(body, "resourceAppId")).toBe(`${api}.appId`);
      const last = apiDeclarations()[1]?.body ?? "";
      expect(prop(last, "knownClientApplications")).toBe(`[ ${client?.symbol}.appId ]`);
    });

    it("the module's apiClientId output is the completed API's appId, and AUTH_AUDIENCE comes from it when the registration is created", () => {
      const last = apiDeclarations()[1]?.symbol ?? "";
      expect(APP_REGISTRATION).toMatch(new RegExp(`^output apiClientId string = ${last}\\.appId$`, "m"));
      expect(GRAPH_RESOURCES.filter((r) => r.type === "Microsoft.Graph/servicePrincipals").map((r) => prop(r.body, "appId"))).toContain(`${last}.appId`);

      expect(BICEP).toMatch(/^param createAppRegistration bool = true$/m);
      expect(BICEP).toMatch(/^module appRegistration 'modules\/app-registration\.bicep' = if \(createAppRegistration\) \{$/m);
      expect(bicepVar(BICEP, "apiClientId")).toBe("createAppRegistration ? appRegistration!.outputs.apiClientId : authAudience");
      expect(appSettings().get("AUTH_AUDIENCE")).toBe("apiClientId");
      expect(BICEP).toMatch(/^output AUTH_AUDIENCE string = apiClientId$/m);
      const parameters = (JSON.parse(read("infra", "main.parameters.json")) as { parameters: Record<string, unknown> }).parameters;
      expect(Object.keys(parameters)).toEqual(expect.arrayContaining(["createAppRegistration", "authAudience"]));
    });
  });

  describe("(e) networkIsolation = private (infra/modules/network.bicep)", () => {
    /** The data services the app reaches, and the sub-resources each needs a private endpoint for. */
    const SERVICES: { symbol: string; type: string; groupIds: string[]; param: string }[] = [
      { symbol: "storage", type: "Microsoft.Storage/storageAccounts", groupIds: ["blob", "queue", "table"], param: "storageAccountId" },
      { symbol: "cosmos", type: "Microsoft.DocumentDB/databaseAccounts", groupIds: ["Sql"], param: "cosmosAccountId" },
      { symbol: "vault", type: "Microsoft.KeyVault/vaults", groupIds: ["vault"], param: "vaultId" },
      { symbol: "providerVault", type: "Microsoft.KeyVault/vaults", groupIds: ["vault"], param: "providerVaultId" },
      { symbol: "topic", type: "Microsoft.EventGrid/topics", groupIds: ["topic"], param: "topicId" },
    ];
    const endpoints = literalObjects(NETWORK, "endpoints").map((o) => ({ target: /target:\s*(\w+)/.exec(o)?.[1], groupId: /groupId:\s*'([^']+)'/.exec(o)?.[1], zone: /zone:\s*'([^']+)'/.exec(o)?.[1] }));

    it("is an allowed value, and the network module is deployed exactly then", () => {
      expect(BICEP).toMatch(/@allowed\(\[ 'none', 'private' \]\)\nparam networkIsolation string = 'none'/);
      expect(BICEP).toMatch(/var isPrivate = networkIsolation == 'private'/);
      expect(BICEP).toMatch(/module network 'modules\/network\.bicep' = if \(isPrivate\)/);
    });

    it("every data service gets a private endpoint per sub-resource, with its private DNS zone, and turns public access off", () => {
      for (const svc of SERVICES) {
        const r = RESOURCES.find((x) => x.symbol === svc.symbol);
        expect(r?.type, svc.symbol).toBe(svc.type);
        expect(prop(r!.body, "publicNetworkAccess") ?? /publicNetworkAccess:\s*([^,}\n]+)/.exec(r!.body)?.[1], svc.symbol).toMatch(/^isPrivate \? '[Dd]isabled' : '[Ee]nabled'/);
        expect(BICEP, `${svc.symbol} passed to the network module`).toMatch(new RegExp(`${svc.param}: ${svc.symbol}\\.id`));
        const mine = endpoints.filter((e) => e.target === svc.param);
        expect(mine.map((e) => e.groupId).sort(), svc.symbol).toEqual([...svc.groupIds].sort());
        for (const e of mine) expect(e.zone, `${svc.symbol}/${e.groupId}`).toMatch(/^privatelink\./);
      }
      // Every endpoint's zone is created, linked to the VNet and used by the endpoint's zone group.
      expect(NETWORK).toMatch(/resource zones 'Microsoft\.Network\/privateDnsZones@[^']+' = \[for z in zoneNames:/);
      expect(NETWORK).toMatch(/resource zoneLinks 'Microsoft\.Network\/privateDnsZones\/virtualNetworkLinks@[^']+' = \[for \(z, i\) in zoneNames:/);
      expect(NETWORK).toMatch(/privateDnsZoneId: resourceId\('Microsoft\.Network\/privateDnsZones', e\.zone\)/);
    });

    it("the function app and the gateway reach them through VNet integration on delegated subnets", () => {
      const app = RESOURCES.find((r) => r.type === "Microsoft.Web/sites" && /functionAppConfig:/.test(r.body))!;
      expect(prop(app.body, "virtualNetworkSubnetId")).toBe("isPrivate ? network.outputs.appSubnetId : null");
      const apim = RESOURCES.find((r) => r.symbol === "apim")!;
      expect(prop(apim.body, "virtualNetworkType")).toBe("isPrivate ? 'External' : 'None'");
      expect(prop(apim.body, "virtualNetworkConfiguration")).toBe("isPrivate ? { subnetResourceId: network.outputs.apimSubnetId } : null");
      expect(NETWORK).toMatch(/name: 'snet-app'[\s\S]*?serviceName: 'Microsoft\.App\/environments'/);
      expect(NETWORK).toMatch(/name: 'snet-apim'[\s\S]*?serviceName: 'Microsoft\.Web\/serverFarms'/);
    });
  });
});

