/**
 * The MCP server registry's rules: upstream secrets are write-only and bound to where they go; the
 * gateway's identity is a TenantAdmin's to give; server.json in and out; toolboxes the gateway can
 * serve; every change audited and evented.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { statusOf } from "../support/errors.js";
import { convertedServer, ITEMS_API } from "../support/tools.js";
import { until } from "../support/until.js";
import { startGovernanceServer } from "../fixtures/mcp/governance.js";

let t: TestApp;
let admin: AigovClient;
let projectAdmin: AigovClient;
let projectId: string;
const SECRET = "upstream-s3cr3t-9f2c1a";

const TENANT_IDENTITY = "5f2d7a1c-8e4b-4c3a-9b6d-1a2e3f4c5d6e";

beforeAll(async () => {
  // The operator gave this tenant one identity of its own on the gateway (GATEWAY_ASSIGNMENTS identities).
  process.env.GATEWAY_ASSIGNMENTS = JSON.stringify({ "t-tools-reg": { identities: [TENANT_IDENTITY.toUpperCase()] } });
  t = await startTestApp();
  admin = await t.as("t-tools-reg", "tina", ["TenantAdmin", "Auditor"]);
  projectId = (await admin.projects.create({ ...projectSpec("tools registry"), roleAssignments: [{ principalId: "pat", role: "ProjectAdmin" }] })).id;
  projectAdmin = await t.as("t-tools-reg", "pat", []);
});
afterAll(() => t.stop());

const problem = async (p: Promise<unknown>) => p.then(() => undefined, (e: { status: number; problem?: { reason?: string; errors?: { field: string }[] } }) => ({ status: e.status, reason: e.problem?.reason, fields: e.problem?.errors?.map((x) => x.field) }));

describe("the MCP server registry", () => {
  it("an upstream header secret is write-only: never in the response, the store, the audit log or an event", async () => {
    const s = await projectAdmin.tools.createServer(projectId, { name: "secretive", source: { kind: "remote", url: "https://mcp.example.com/mcp" }, auth: { type: "header", header: "x-api-key", value: SECRET }, discovery: { enabled: false, intervalHours: 24 } });
    expect(s.auth).toMatchObject({ type: "header", header: "x-api-key", secretRef: { name: expect.any(String) as string } });
    expect(JSON.stringify(await projectAdmin.tools.getServer(projectId, s.id))).not.toContain(SECRET);
    const { resources } = await t.container().items.query({ query: "SELECT * FROM c WHERE c.tenantId = 't-tools-reg'" }).fetchAll();
    expect(JSON.stringify(resources)).not.toContain(SECRET);
    await t.relay();
    expect(JSON.stringify(t.events())).not.toContain(SECRET);
    const audit = await admin.audit.list({ scope: projectId, maxPageSize: 100 });
    expect(audit.items.some((r) => r.action === "mcpServer.register")).toBe(true);
    expect(t.events().some((e) => e.type === "aigov.mcp.server.registered.v1" && e.subject?.endsWith(s.id))).toBe(true);
  });

  it("a kept secret stays with its origin, header and token endpoint unless the secret is sent again", async () => {
    const created = await projectAdmin.tools.createServer(projectId, {
      name: "oauthy",
      source: { kind: "remote", url: "https://mcp.example.com/mcp" },
      auth: { type: "oauthClientCredentials", tokenUrl: "https://login.example.com/token", clientId: "app", clientSecret: SECRET },
      discovery: { enabled: false, intervalHours: 24 },
    });
    // Registration discovers once (it fails here: nothing answers at example.com); then the version is stable.
    const settled = await until(async () => {
      const x = await projectAdmin.tools.getServer(projectId, created.id);
      return x.discoveryState.status !== "never" ? x : undefined;
    }, "the first discovery");
    const s = settled;
    const moved = await problem(projectAdmin.tools.updateServer(projectId, s.id, { auth: { type: "oauthClientCredentials", tokenUrl: "https://attacker.example.net/token", clientId: "app", keep: true } }, s.etag));
    expect(moved).toMatchObject({ status: 400, reason: "credential_rebind_requires_key", fields: ["body.auth.tokenUrl"] });
    const elsewhere = await problem(projectAdmin.tools.updateServer(projectId, s.id, { source: { kind: "remote", url: "https://other.example.net/mcp" } }, s.etag));
    expect(elsewhere).toMatchObject({ status: 400, reason: "credential_rebind_requires_key" });
    const resent = await projectAdmin.tools.updateServer(projectId, s.id, { auth: { type: "oauthClientCredentials", tokenUrl: "https://login2.example.com/token", clientId: "app", clientSecret: "another-secret-value" } }, s.etag);
    expect(resent.auth).toMatchObject({ type: "oauthClientCredentials", tokenUrl: "https://login2.example.com/token" });
  });

  it("refuses private and link-local upstreams and token endpoints; only a TenantAdmin gives a server the gateway's identity", async () => {
    const linkLocal = await problem(admin.tools.createServer(projectId, { name: "imds", source: { kind: "remote", url: "https://169.254.169.254/mcp" } }));
    expect(linkLocal).toMatchObject({ status: 400, reason: "upstream_address_refused", fields: ["body.source.url"] });
    const token = await problem(admin.tools.createServer(projectId, { name: "imds-token", source: { kind: "remote", url: "https://mcp.example.com/mcp" }, auth: { type: "oauthClientCredentials", tokenUrl: "https://10.0.0.5/token", clientId: "a", clientSecret: "b" } }));
    expect(token).toMatchObject({ status: 400, reason: "upstream_address_refused", fields: ["body.auth.tokenUrl"] });
    const query = await problem(admin.tools.createServer(projectId, { name: "queried", source: { kind: "remote", url: "https://mcp.example.com/mcp?tenant=a" } }));
    expect(query).toMatchObject({ status: 400, reason: "upstream_address_refused", fields: ["body.source.url"] });
    // The gateway's own identity holds what no tenant may wield (the providers' vault): a token of it for a
    // host the tenant runs — here for Key Vault's audience — is refused; so is another identity than the tenant's own.
    const mi = { name: "vaulted", source: { kind: "remote" as const, url: "https://mcp.example.com/mcp" }, auth: { type: "managedIdentity" as const, audience: "https://vault.azure.net" }, discovery: { enabled: false, intervalHours: 24 } };
    expect(await statusOf(projectAdmin.tools.createServer(projectId, mi))).toBe(403);
    expect(await problem(admin.tools.createServer(projectId, mi))).toMatchObject({ status: 400, reason: "managed_identity_not_allowed", fields: ["body.auth"] });
    const foreign = { ...mi, auth: { ...mi.auth, clientId: "0b1e7c3a-5d2f-4a8e-9c61-7f3d2e1a9b05" } };
    expect(await problem(admin.tools.createServer(projectId, foreign))).toMatchObject({ status: 400, reason: "managed_identity_not_allowed", fields: ["body.auth"] });
    const own = { ...mi, auth: { type: "managedIdentity" as const, audience: "api://weather-mcp", clientId: TENANT_IDENTITY } };
    const created = await admin.tools.createServer(projectId, own);
    expect(created.auth).toEqual({ type: "managedIdentity", audience: "api://weather-mcp", clientId: TENANT_IDENTITY });
    // Pointing it elsewhere is a TenantAdmin's to do, as giving it the identity was.
    expect(await statusOf(projectAdmin.tools.updateServer(projectId, created.id, { source: { kind: "remote", url: "https://elsewhere.example.com/mcp" } }, created.etag))).toBe(403);
    const nothing = (await t.container().items.query({ query: "SELECT c.id FROM c WHERE c.tenantId = 't-tools-reg' AND c.docType = 'mcpServer' AND c.name = 'vaulted'" }).fetchAll()).resources;
    expect(nothing).toHaveLength(1);
  });

  it("server.json: a remote becomes a registration, packages are kept as metadata, and it exports back", async () => {
    const serverJson = {
      $schema: "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
      name: "io.github.example/weather-tools",
      description: "Weather tools",
      version: "1.2.3",
      remotes: [{ type: "streamable-http", url: "https://{region}.weather.example.com/mcp", variables: { region: { default: "eu" } } }],
      packages: [{ registryType: "npm", identifier: "@example/weather-mcp", version: "1.2.3", transport: { type: "stdio" } }],
    };
    const s = await admin.tools.importServer(projectId, { serverJson });
    expect(s).toMatchObject({ name: "weather-tools", source: { kind: "remote", url: "https://eu.weather.example.com/mcp", transport: "streamable-http" }, registry: { name: "io.github.example/weather-tools", version: "1.2.3" } });
    expect(s.registry!.packages[0]).toMatchObject({ registryType: "npm", identifier: "@example/weather-mcp", routable: false });
    const out = await admin.tools.exportServer(projectId, s.id);
    expect(out).toMatchObject({ name: serverJson.name, version: "1.2.3", remotes: [{ type: "streamable-http", url: "https://eu.weather.example.com/mcp" }], packages: [{ registryType: "npm", identifier: "@example/weather-mcp" }] });
    const onlyPackages = await problem(admin.tools.importServer(projectId, { serverJson: { ...serverJson, remotes: [] } }));
    expect(onlyPackages).toMatchObject({ status: 400, fields: ["body.serverJson.remotes"] });
  });

  it("server.json: inputs marked secret are never kept: a secret URL variable is refused, a package's secret values are dropped", async () => {
    const base = { name: "io.github.example/vaulted-tools", description: "Vaulted tools", version: "1.0.0" };
    const secretInUrl = await problem(
      admin.tools.importServer(projectId, {
        serverJson: { ...base, remotes: [{ type: "streamable-http", url: "https://mcp.example.com/{apiKey}/mcp", variables: { apiKey: { value: "sk-in-the-path-0123456789", isSecret: true } } }] },
      }),
    );
    expect(secretInUrl).toMatchObject({ status: 400, fields: ["body.serverJson.remotes.0.variables.apiKey"] });
    const s = await admin.tools.importServer(projectId, {
      serverJson: {
        ...base,
        remotes: [{ type: "streamable-http", url: "https://mcp.example.com/mcp" }],
        packages: [
          {
            registryType: "npm",
            identifier: "@example/vaulted-mcp",
            environmentVariables: [
              { name: "VAULT_TOKEN", description: "token", isSecret: true, value: "hvs.package-secret-value", default: "hvs.default-secret" },
              { name: "REGION", value: "eu" },
            ],
          },
        ],
      },
    });
    expect(s.registry!.packages[0]).toMatchObject({ environmentVariables: [{ name: "VAULT_TOKEN", description: "token", isSecret: true }, { name: "REGION", value: "eu" }] });
    await t.relay();
    const { resources } = await t.container().items.query({ query: "SELECT * FROM c WHERE c.tenantId = 't-tools-reg'" }).fetchAll();
    const everywhere = JSON.stringify([s, await admin.tools.getServer(projectId, s.id), await admin.tools.exportServer(projectId, s.id), t.events(), resources]);
    expect(everywhere).not.toMatch(/package-secret-value|default-secret|sk-in-the-path/);
  });

  it("the catalog pages with opaque tokens and filters by words, server, read-only and approval state", async () => {
    const s = await convertedServer(admin, projectId, "catalogued");
    const first = await admin.tools.searchCatalog({ server: "catalogued", maxPageSize: 1 });
    expect(first.items.map((e) => e.namespacedName)).toEqual(["catalogued/deleteItem"]);
    const second = await admin.tools.searchCatalog({ server: "catalogued", maxPageSize: 1, continuationToken: first.continuationToken! });
    expect(second.items.map((e) => e.namespacedName)).toEqual(["catalogued/getItem"]);
    expect(second.continuationToken).toBeUndefined();
    expect(await problem(admin.tools.searchCatalog({ continuationToken: "not-a-token" }))).toMatchObject({ status: 400, fields: ["query.continuationToken"] });
    expect((await admin.tools.searchCatalog({ q: "DELETE item", server: "catalogued" })).items.map((e) => e.tool)).toEqual(["deleteItem"]);
    expect((await admin.tools.searchCatalog({ server: "catalogued", readOnly: "true" })).items.map((e) => e.tool)).toEqual(["getItem"]);
    expect((await admin.tools.searchCatalog({ server: "catalogued", approval: "notRequired" })).items).toHaveLength(2);
    // Another tenant's catalog is its own.
    const other = await t.as("t-tools-other", "olga", ["TenantAdmin"]);
    expect((await other.tools.searchCatalog({ server: "catalogued" })).items).toEqual([]);
    await admin.tools.deleteServer(projectId, s.id, (await admin.tools.getServer(projectId, s.id)).etag);
  });

  it("scheduled re-discovery: a server whose interval has passed is discovered again; a blocked one is not contacted", async () => {
    const created = await admin.tools.createServer(projectId, { name: "scheduled", source: { kind: "openapi", baseUrl: "https://items.example.com", document: ITEMS_API }, discovery: { enabled: true, intervalHours: 1 } });
    const first = await until(async () => {
      const x = await admin.tools.getServer(projectId, created.id);
      return x.discoveryState.status === "succeeded" ? x : undefined;
    }, "the first discovery");
    // Two hours pass for this server: its last attempt moves back (the store, not the API).
    const back = async (id: string) => {
      const { resource } = await t.container().item(id, ["t-tools-reg", projectId]).read<{ discoveryState: { lastAttemptAt: string } }>();
      resource!.discoveryState.lastAttemptAt = new Date(Date.now() - 2 * 3_600_000).toISOString();
      await t.container().items.upsert(resource!);
      return resource!.discoveryState.lastAttemptAt;
    };
    const stale = await back(first.id);
    // The first discovery's orchestration may still be publishing what it found: a start joins a live
    // one (one driver per server), so the timer ticks until a run starts after it.
    await until(async () => {
      await t.app.host.invokeTimer("toolRediscovery");
      return (await admin.tools.getServer(projectId, first.id)).discoveryState.lastAttemptAt! > stale ? true : undefined;
    }, "a second discovery", 60_000, 200);
    const now = await admin.tools.getServer(projectId, first.id);
    const blocked = await admin.tools.updateServer(projectId, first.id, { status: "blocked" }, now.etag);
    const staleAgain = await back(blocked.id);
    await t.app.host.invokeTimer("toolRediscovery");
    await new Promise((r) => setTimeout(r, 300));
    expect((await admin.tools.getServer(projectId, first.id)).discoveryState.lastAttemptAt).toBe(staleAgain);
  }, 90_000);

  it("a blocked server is not contacted on demand either: discover is refused, and a new credential is not sent to it", async () => {
    const upstream = await startGovernanceServer();
    try {
      const created = await admin.tools.createServer(projectId, { name: "blocked-on-demand", source: { kind: "remote", url: upstream.url }, auth: { type: "header", header: "x-upstream-key", value: "first-credential" }, discovery: { enabled: false, intervalHours: 24 } });
      const first = await until(async () => {
        const x = await admin.tools.getServer(projectId, created.id);
        return x.discoveryState.status === "succeeded" ? x : undefined;
      }, "the first discovery");
      const blocked = await admin.tools.updateServer(projectId, first.id, { status: "blocked" }, first.etag);
      const reached = upstream.received.length;
      expect(await problem(admin.tools.discover(projectId, blocked.id))).toMatchObject({ status: 409, reason: "server_blocked" });
      // A credential changed on a blocked server is stored, not tried on the server.
      const rekeyed = await admin.tools.updateServer(projectId, blocked.id, { auth: { type: "header", header: "x-upstream-key", value: "second-credential" } }, blocked.etag);
      await new Promise((r) => setTimeout(r, 1_000));
      expect(upstream.received.length).toBe(reached);
      expect(upstream.received.some((r) => r.headers["x-upstream-key"] === "second-credential")).toBe(false);
      expect((await admin.tools.getServer(projectId, rekeyed.id)).discoveryState.lastAttemptAt).toBe(first.discoveryState.lastAttemptAt);
    } finally {
      await upstream.close();
    }
  });

  it("toolboxes hold tools their servers list, never remote tools of two servers or remote with converted ones", async () => {
    await convertedServer(admin, projectId, "items");
    const unknown = await problem(admin.toolboxes.create(projectId, { name: "bad", tools: [{ server: "items", tool: "noSuchTool" }] }));
    expect(unknown).toMatchObject({ status: 400, reason: "tool_unknown", fields: ["body.tools.0.tool"] });
    const box = await admin.toolboxes.create(projectId, { name: "reads", tools: [{ server: "items", tool: "getItem" }] });
    expect(box.tools).toEqual([{ server: "items", tool: "getItem" }]);
    // A server a toolbox uses cannot be deleted under it.
    const items = (await admin.tools.listServers(projectId)).items.find((x) => x.name === "items")!;
    expect(await problem(admin.tools.deleteServer(projectId, items.id, items.etag))).toMatchObject({ status: 409, reason: "project_has_dependents" });
    await admin.toolboxes.delete(projectId, box.id, box.etag);
    await admin.tools.deleteServer(projectId, items.id, items.etag);
    await until(async () => ((await admin.tools.searchCatalog({ server: "items", projectId })).items.length === 0 ? true : undefined), "catalog entries gone with the server");
  });

  it("a toolbox left without its servers (a create that raced the server's delete) still holds its project: the delete is refused", async () => {
    const holder = (await admin.projects.create(projectSpec("toolbox holder"))).id;
    const server = await convertedServer(admin, holder, "lonely");
    const box = await admin.toolboxes.create(holder, { name: "orphan", tools: [{ server: "lonely", tool: "getItem" }] });
    // The race, made certain: the server's documents are gone while the toolbox stands.
    const container = t.container();
    const { resources } = await container.items.query<{ id: string }>({ query: "SELECT c.id FROM c WHERE c.tenantId = 't-tools-reg' AND c.scopeId = @p AND c.docType = 'mcpServer'", parameters: [{ name: "@p", value: holder }] }).fetchAll();
    expect(resources.map((r) => r.id)).toEqual([server.id]);
    await container.item(server.id, ["t-tools-reg", holder]).delete();
    const project = await admin.projects.get(holder);
    expect(await problem(admin.projects.delete(holder, project.etag))).toMatchObject({ status: 409, reason: "project_has_dependents" });
    expect((await admin.toolboxes.get(holder, box.id)).name).toBe("orphan");
    await admin.toolboxes.delete(holder, box.id, box.etag);
    await admin.projects.delete(holder, (await admin.projects.get(holder)).etag);
  });

  it("a project's cap on MCP servers holds against concurrent registrations: creates at the cap get 409, a delete frees a place", async () => {
    const capped = (await admin.projects.create(projectSpec("capped tools"))).id;
    const register = (n: number) => admin.tools.createServer(capped, { name: `s${n}`, source: { kind: "remote", url: `https://mcp${n}.example.com/mcp` }, discovery: { enabled: false, intervalHours: 24 } });
    for (let n = 0; n < 96; n += 8) await Promise.all(Array.from({ length: 8 }, (_, i) => register(n + i)));
    // Six at once for the last four places: each counted 96, so a count alone would let all six in.
    const last = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => register(96 + i)));
    expect(last.filter((r) => r.status === "fulfilled")).toHaveLength(4);
    const refused = await Promise.all(last.filter((r) => r.status === "rejected").map((r) => problem(Promise.reject((r as PromiseRejectedResult).reason))));
    expect(refused).toEqual([
      { status: 409, reason: "project_limit_reached", fields: undefined },
      { status: 409, reason: "project_limit_reached", fields: undefined },
    ]);
    const all = await admin.tools.listServers(capped, { maxPageSize: 100 });
    expect(all.items).toHaveLength(100);
    expect(all.continuationToken).toBeUndefined();
    const first = all.items[0]!;
    await admin.tools.deleteServer(capped, first.id, first.etag);
    expect((await register(200)).name).toBe("s200");
    expect((await problem(register(201)))?.reason).toBe("project_limit_reached");
  });

  it("the cap holds at its edge for servers registered before members held slots too", async () => {
    const older = (await admin.projects.create(projectSpec("older tools"))).id;
    const register = (n: number) => admin.tools.createServer(older, { name: `o${n}`, source: { kind: "remote", url: `https://old${n}.example.com/mcp` }, discovery: { enabled: false, intervalHours: 24 } });
    for (let n = 0; n < 99; n += 9) await Promise.all(Array.from({ length: 9 }, (_, i) => register(n + i)));
    // They were registered before slots: none holds one.
    const { resources: slots } = await t.container().items.query<{ id: string }>({ query: "SELECT c.id FROM c WHERE c.tenantId = 't-tools-reg' AND c.scopeId = @p AND c.docType = 'slot'", parameters: [{ name: "@p", value: older }] }).fetchAll();
    expect(slots).toHaveLength(99);
    for (const s of slots) await t.container().item(s.id, ["t-tools-reg", older]).delete();
    const last = await Promise.allSettled([register(100), register(101), register(102)]);
    expect(last.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect((await admin.tools.listServers(older, { maxPageSize: 100 })).items).toHaveLength(100);
  });
});
