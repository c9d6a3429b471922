/**
 * The tools and agents screens in a real browser (Debian's Chromium) against a fresh app, a real MCP
 * server (the SDK's), an A2A agent and the Bedrock fake: register a server and watch its discovery, build
 * a toolbox, call a tool from the playground through the local gateway (across origins: the gateway's cors
 * policy) and be refused one outside the key's scope; register an agent from its card, activate it, switch
 * it off and issue its key (shown once); create a cloud connection and follow a sync to its end.
 */
import type { Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBedrockFake, type BedrockFake } from "../../src/local-backends/agent-clouds/index.js";
import { startA2aAgent, type A2aAgent } from "../fixtures/agents/a2a-server.js";
import { startGovernanceServer, type GovernanceServer } from "../fixtures/mcp/governance.js";
import { overrideServices } from "../../src/app/services.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { Governed, keyExemptionSpec } from "../support/governed.js";
import { until } from "../support/until.js";
import { chromiumAvailable as available, openPortal, type PortalBrowser } from "./portal-browser.js";

const ACCESS_KEY = "AKIAPORTALFAKE000001";

let t: TestApp;
let g: Governed;
let portal: PortalBrowser;
let page: Page;
let upstream: GovernanceServer;
let agentServer: A2aAgent;
let bedrock: BedrockFake;

beforeAll(async () => {
  if (!available) return;
  t = await startTestApp();
  g = await Governed.start("t-portal-pillars", t);
  [upstream, agentServer, bedrock] = await Promise.all([startGovernanceServer(), startA2aAgent(), startBedrockFake({ seed: "portal", regions: { "us-east-1": 12 }, accessKeyId: ACCESS_KEY })]);
  portal = await openPortal(t);
  page = portal.page;
}, 60_000);
afterAll(async () => {
  overrideServices({});
  await portal?.close();
  await Promise.all([upstream?.close(), agentServer?.close(), bedrock?.close()]);
  await t?.stop();
});

const label = (name: string): Locator => portal.label(name);

describe.skipIf(!available)("the tools and agents screens in a real browser", { timeout: 120_000 }, () => {
  let projectId = "";

  it("registers an MCP server, shows its discovered tools, builds a toolbox; the playground calls a tool through the gateway and is refused another", async () => {
    projectId = (await g.project("portal tools")).id;
    await portal.signIn("t-portal-pillars", "alice", ["TenantAdmin", "Auditor"]);
    await page.goto(portal.url(`/projects/${projectId}/tools`));
    await label("Server name").fill("fixture");
    await label("MCP endpoint URL").fill(upstream.url);
    await page.getByRole("button", { name: "Register server" }).click();
    // Discovery runs in the background; the screen follows it.
    await expect.poll(() => page.getByTestId("discovery-fixture").textContent(), { timeout: 20_000 }).toMatch(/^2 tools, MCP 2025-11-25/);
    const tools = page.getByRole("table", { name: "Tools" });
    await expect.poll(() => tools.textContent()).toContain("fixture/get_weather");
    expect(await page.getByTestId("approval-fixture/delete_file").textContent()).toBe("notRequired");
    await page.getByRole("checkbox", { name: "fixture/get_weather" }).check();
    await label("Toolbox name").fill("weather");
    await page.getByRole("button", { name: "Create toolbox" }).click();
    await expect.poll(() => page.getByRole("table", { name: "Toolboxes" }).textContent()).toContain("fixture/get_weather");
    const [server] = (await g.admin.tools.listServers(projectId)).items;
    expect((await g.admin.toolboxes.list(projectId)).items.map((b) => [b.name, b.tools])).toEqual([["weather", [{ server: "fixture", tool: "get_weather" }]]]);
    await portal.check("tools");

    // Published, with a key that may call get_weather only; the connect URL is the gateway's.
    await g.publish("tools from the portal");
    const key = await g.key(g.admin, projectId, { name: "weather key", scopes: { tools: [`${server!.id}/get_weather`] } });
    await page.reload();
    await expect.poll(() => page.getByRole("table", { name: "MCP servers" }).textContent(), { timeout: 15_000 }).toContain(`${t.gateway.url}/${g.names.mcpApiPath(projectId, "fixture")}/mcp`);

    await page.getByRole("link", { name: "Playground" }).click();
    await page.getByRole("radio", { name: "A tool" }).check();
    await label("Project").selectOption(projectId);
    await label("Your key").fill(key.key);
    await label("MCP API").selectOption(g.names.mcpApiPath(projectId, "fixture"));
    await label("Tool").fill("get_weather");
    await label("Arguments (JSON)").fill('{"city":"Oslo"}');
    const before = upstream.calls.get("get_weather") ?? 0;
    await page.getByRole("button", { name: "Call tool" }).click();
    await expect.poll(() => page.getByTestId("playground-status").textContent(), { timeout: 15_000 }).toBe("200");
    expect(await page.getByTestId("playground-body").textContent()).toContain("Sunny in Oslo");
    expect(upstream.calls.get("get_weather")).toBe(before + 1);
    // Outside the key's tool scope: the gateway's refusal, readable in the page; the server never hears of it.
    const deletes = upstream.calls.get("delete_file") ?? 0;
    await label("Tool").fill("delete_file");
    await label("Arguments (JSON)").fill('{"path":"/etc/passwd"}');
    await page.getByRole("button", { name: "Call tool" }).click();
    await expect.poll(() => page.getByTestId("playground-status").textContent(), { timeout: 15_000 }).toBe("403");
    expect(await page.getByTestId("playground-body").textContent()).toContain("tool_not_in_scope");
    expect(upstream.calls.get("delete_file") ?? 0).toBe(deletes);
    await portal.check("playground-tool");
  });

  it("registers an agent from its card, activates it, switches it off and on, and issues its key once", async () => {
    const planner = await g.model(projectId, "planner");
    await page.goto(portal.url(`/projects/${projectId}/agents`));
    await label("Agent name").fill("travel");
    await label("Models its key may call").selectOption(planner.id);
    await label("Agent URL").fill(agentServer.url);
    await page.getByRole("button", { name: "Register agent" }).click();
    await expect.poll(() => page.getByTestId("agent-state-travel").textContent()).toBe("draft");
    expect(await page.getByRole("table", { name: "Agents" }).textContent()).toContain("A2A 1.0, unsigned");
    const [agent] = (await g.admin.agents.list(projectId)).items;
    expect(agent).toMatchObject({ name: "travel", endpoint: { url: `${agentServer.url}/a2a`, protocol: "a2a" }, card: { origin: "fetched", valid: true }, guardrails: { models: [planner.id] } });

    await label("Agent").selectOption(agent!.id);
    await label("New state").selectOption("active");
    await label("Reason").fill("reviewed");
    await page.getByRole("button", { name: "Change state" }).click();
    await expect.poll(() => page.getByTestId("agent-state-travel").textContent()).toBe("active");
    await page.getByRole("button", { name: "Switch off: travel" }).click();
    await expect.poll(async () => (await g.admin.agents.get(projectId, agent!.id)).enabled).toBe(false);
    await page.getByRole("button", { name: "Switch on: travel" }).click();
    await expect.poll(async () => (await g.admin.agents.get(projectId, agent!.id)).enabled).toBe(true);

    await page.getByRole("button", { name: "Issue key: travel" }).click();
    const secret = await page.getByTestId("secret-value").inputValue();
    expect(secret.length).toBeGreaterThan(20);
    await portal.check("agents-key");
    await page.getByRole("button", { name: "I have stored it" }).click();
    await page.getByTestId("secret-value").waitFor({ state: "detached" });
    expect((await g.admin.agents.get(projectId, agent!.id)).key?.keyId).toMatch(/^key_/);
    await expect.poll(() => page.getByRole("button", { name: "Issue key: travel" }).count()).toBe(0);
    expect(await portal.kept()).not.toContain(secret);
    expect(await page.content()).not.toContain(secret);
    await portal.check("agents");
  });

  it("creates a Bedrock connection, syncs it now and follows the run to its end; the synced agents are listed", async () => {
    await page.getByRole("link", { name: "Cloud connections", exact: true }).click();
    await label("Connection name").fill("aws");
    await label("Cloud").selectOption("bedrock");
    await label("Register agents in").selectOption(projectId);
    await label("AWS account id").fill("123456789012");
    await label("Regions").fill("us-east-1");
    await label("Service endpoint (local fakes only)").fill(bedrock.endpoint);
    await label("Credentials").selectOption("awsAccessKey");
    await label("Access key id").fill(ACCESS_KEY);
    const awsSecret = "portal-fake-secret-access-key";
    await label("Secret").fill(awsSecret);
    await label("Sync every (minutes)").fill("60");
    await page.getByRole("button", { name: "Create connection" }).click();
    await expect.poll(() => page.getByRole("table", { name: "Cloud connections" }).textContent()).toContain("every 60 min");
    // The secret left the form with the request, and is in no storage or cache.
    expect(await label("Secret").count()).toBe(1);
    expect(await label("Secret").inputValue()).toBe("");
    expect(await portal.kept()).not.toContain(awsSecret);

    await page.getByRole("button", { name: "Sync now: aws" }).click();
    await expect.poll(() => page.getByTestId("sync-status").textContent(), { timeout: 30_000 }).toBe("completed");
    expect(await page.getByRole("region", { name: "Sync of aws" }).textContent()).toMatch(/1 region done; 12 listed, 12 new/);
    await portal.check("connections");
    const synced = await until(async () => {
      const items = (await g.admin.agents.list(projectId, { origin: "synced" })).items;
      return items.length === 12 ? items : undefined;
    }, "12 synced agents");
    expect(synced.every((a) => a.provenance?.cloud === "bedrock" && a.provenance.region === "us-east-1")).toBe(true);
    await page.goto(portal.url(`/projects/${projectId}/agents`));
    await expect.poll(() => page.getByRole("table", { name: "Agents" }).textContent()).toContain("bedrock us-east-1");
  });

  it("get credentials through approval: a project's keys need one; a developer's key is shown once and works once a project admin approves", async () => {
    await g.publish("the planner model");
    // The platform team turns the policy on in the project's page.
    await portal.signIn("t-portal-pillars", "alice", ["TenantAdmin", "Auditor"]);
    await page.goto(portal.url(`/projects/${projectId}`));
    await page.getByRole("checkbox", { name: "Keys need an approval (unless a project admin creates them)" }).check();
    await page.getByRole("button", { name: "Save key policy" }).click();
    await expect.poll(async () => (await g.admin.projects.get(projectId)).keyPolicy?.requireApproval).toBe(true);

    // A developer asks from the catalog: "Get credentials" leads to the project's keys.
    await portal.signIn("t-portal-pillars", "dana", ["Developer"]);
    await page.goto(portal.url("/build/catalog"));
    await page.getByRole("link", { name: "Get credentials" }).first().click();
    await page.waitForURL(new RegExp(`/projects/${projectId}/keys$`));
    await label("Name").fill("dana's key");
    await label("Justification").fill("the travel planner's evaluation");
    await page.getByRole("button", { name: "Request key" }).click();
    const secret = await page.getByTestId("secret-value").inputValue();
    await page.getByRole("button", { name: "I have stored it" }).click();
    await expect.poll(() => page.getByTestId("key-status-dana's key").textContent()).toBe("awaiting approval");
    const key = (await g.admin.keys.list(projectId)).items.find((k) => k.name === "dana's key")!;
    expect(key).toMatchObject({ status: "suspended", owner: "dana", approval: { state: "pending" } });
    await g.synced(projectId, key.id);
    expect((await g.chat(projectId, secret, "planner")).status).toBe(401);
    expect(await portal.kept()).not.toContain(secret);
    await portal.check("keys-requested");

    await portal.signIn("t-portal-pillars", "alice", ["TenantAdmin", "Auditor"]);
    await page.goto(portal.url(`/approvals/${key.approval!.approvalId}`));
    await label("Justification").fill("evaluation agreed");
    await page.getByRole("button", { name: "Approve" }).click();
    await expect.poll(() => page.getByTestId("approval-status").textContent(), { timeout: 10_000 }).toBe("approved");
    await expect.poll(async () => (await g.admin.keys.get(projectId, key.id)).status, { timeout: 15_000 }).toBe("active");
    await g.synced(projectId, key.id);
    expect((await g.chat(projectId, secret, "planner")).status).toBe(200);
  });

  it("shows the governance signals where a platform engineer looks: a prod project's gate drift, a key exemption the gateway does not apply and why, a leaver's key and the refusal to resume it", async () => {
    await portal.signIn("t-portal-pillars", "alice", ["TenantAdmin", "Auditor"]);

    // Gate drift: a prod project no access review has looked at; the lifecycle sweep records it on the project.
    const s = await g.admin.settings.get();
    await g.admin.settings.put({ settings: s.settings, services: { ...s.services, contentSafety: { url: "https://safety.cognitiveservices.azure.com" } } }, s.etag);
    const prod = await g.project("portal prod", { environment: "prod", costCenter: "CC-7", owner: "olivia", settings: { contentSafety: { categories: { Violence: 4 } }, tokens: { perMinute: { limit: 10_000 } } }, keyPolicy: { rotateAfterDays: 30 } });
    await page.goto(portal.url(`/projects/${prod.id}`));
    await page.getByRole("heading", { name: "portal prod" }).waitFor();
    expect(await page.getByTestId("gate-drift").count()).toBe(0);
    await t.app.host.invokeTimer("projectLifecycle");
    const drift = (await g.admin.projects.get(prod.id)).gateDrift;
    expect(drift?.gates.map((x) => x.gate)).toEqual(["accessReview"]);
    await page.reload();
    await expect.poll(() => page.getByTestId("gate-drift").textContent()).toMatch(/^Out of its prod gates since .+: accessReview\. Nothing is locked/);
    const failing = page.getByRole("table", { name: "Failing gates" });
    expect(await failing.textContent()).toContain(drift!.gates[0]!.detail);
    expect(drift!.gates[0]!.detail).toContain("no access review");
    await portal.check("project-gate-drift");

    // A key exemption in force that relaxes nothing once the project's per-key limit is raised past it: the
    // gateway configuration does not apply it, and the exemptions list says so, and why.
    const dora = await g.as("dora", ["Developer"]);
    const ex = await g.project("portal exempt", { settings: { tokens: { perMinute: { limit: 20, per: "key" } } } });
    const exKey = await dora.keys.create(ex.id, { name: "bulk" });
    const requested = await dora.exemptions.request(keyExemptionSpec(ex.id, exKey.id));
    const approval = await g.admin.approvals.get(requested.approvalId);
    await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await g.admin.exemptions.get(requested.id)).status === "active" ? true : undefined), "exemption active");
    expect((await g.admin.exemptions.get(requested.id)).gateway).toEqual({ applied: true });
    await page.goto(portal.url("/exemptions"));
    await expect.poll(() => page.getByTestId(`exemption-gateway-${requested.id}`).textContent()).toBe("applied");
    await g.admin.projects.update(ex.id, { settings: { tokens: { perMinute: { limit: 5000, per: "key" } } } }, (await g.admin.projects.get(ex.id)).etag);
    const outcome = (await g.admin.exemptions.get(requested.id)).gateway;
    expect(outcome?.applied).toBe(false);
    await page.reload();
    await expect.poll(() => page.getByTestId(`exemption-gateway-${requested.id}`).textContent()).toBe(`not applied ${outcome!.why}`);
    await portal.check("exemptions-not-applied");

    // A leaver's key: dora loses her project role; her key reads suspended because of it, and an admin's
    // resume is refused with the problem's detail and the reason in words.
    const leavers = await g.project("portal leavers", { owner: "olivia", roleAssignments: [{ principalId: "dora", role: "Developer" }] });
    const doras = await dora.keys.create(leavers.id, { name: "doras key" });
    await g.admin.projects.update(leavers.id, { roleAssignments: [{ principalId: "dora", role: "Reader" }] }, (await g.admin.projects.get(leavers.id)).etag);
    expect(await g.admin.keys.get(leavers.id, doras.id)).toMatchObject({ status: "suspended", suspendedBy: "roleRemoved" });
    await page.goto(portal.url(`/projects/${leavers.id}/keys`));
    await expect.poll(() => page.getByTestId("key-status-doras key").textContent()).toBe("suspended (its owner lost their project role: giving it back resumes it)");
    await label("Reason for the next change").fill("she needs it");
    await page.getByRole("button", { name: "Resume doras key" }).click();
    const refusal = page.locator("[role=alert]").filter({ hasText: "key_owner_without_role" });
    await expect.poll(() => refusal.textContent()).toContain("the key's owner dora no longer holds a role on the project that may hold keys");
    expect(await refusal.textContent()).toContain("it is resumed by giving the owner a role that may hold keys");
    expect((await g.admin.keys.get(leavers.id, doras.id)).status).toBe("suspended");
    await portal.check("keys-leaver");
  });

  it("another tenant sees none of it: no server, tool, toolbox, agent or connection on any of these screens", async () => {
    await portal.signIn("t-portal-pillars-other", "bea", ["TenantAdmin", "Auditor"]);
    for (const path of ["/connections", "/build/catalog", `/projects/${projectId}/tools`, `/projects/${projectId}/agents`, `/projects/${projectId}/keys`]) {
      await page.goto(portal.url(path));
      await page.waitForLoadState("networkidle");
      const text = (await page.locator("main").textContent()) ?? "";
      for (const secret of ["fixture", "get_weather", "weather", "travel", "aws", "dana's key", "portal tools"]) expect(text, `${path}: ${secret}`).not.toContain(secret);
    }
    await page.goto(portal.url(`/projects/${projectId}/agents`));
    await expect.poll(() => page.locator("[role=alert]").first().textContent(), { timeout: 10_000 }).toMatch(/not found/i);
  });

  // Last: it moves the app's clock past an agent's sunset.
  it("an agent past its sunset: its own key reads held for its agent, and resuming it is refused with the problem's detail and the reason in words", async () => {
    const DAY = 86_400_000;
    overrideServices({ clock: t.appClock }); // the sunset is judged by the services' clock, which the test moves
    const p = await g.project("portal sunset");
    const m = await g.model(p.id, "sunset-model");
    const agent = await g.admin.agents.create(p.id, { name: "retiring", guardrails: { models: [m.id] } });
    await g.admin.agents.transition(p.id, agent.id, { to: "active" });
    const issued = await g.admin.agents.issueKey(p.id, agent.id, {});
    await g.admin.agents.transition(p.id, agent.id, { to: "deprecated", sunsetDate: new Date(t.appClock.ms() + 2 * DAY).toISOString().slice(0, 10) });
    t.appClock.advance(3 * DAY);
    await t.app.host.invokeTimer("agentSyncSchedule");
    expect(await g.admin.keys.get(p.id, issued.id)).toMatchObject({ status: "suspended", suspendedBy: "agentHold" });

    await portal.signIn("t-portal-pillars", "alice", ["TenantAdmin", "Auditor"]);
    await page.goto(portal.url(`/projects/${p.id}/keys`));
    await expect.poll(() => page.getByTestId(`key-status-${issued.name}`).textContent()).toBe("suspended (its agent is held)");
    await page.getByRole("button", { name: `Resume ${issued.name}` }).click();
    const refusal = page.locator("[role=alert]").filter({ hasText: "agent_sunset_passed" });
    await expect.poll(() => refusal.textContent()).toContain(`agent ${agent.id} is past its sunset`);
    expect(await refusal.textContent()).toContain("the agent is deprecated and its sunset has come");
    expect((await g.admin.keys.get(p.id, issued.id)).status).toBe("suspended");
    await portal.check("keys-agent-sunset");
  });
});

