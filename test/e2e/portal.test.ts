/**
 * The portal in a real browser (Debian's Chromium through playwright-core) against a fresh app: every
 * step is done by clicking and typing in the portal, and checked in the page, through the API, and by
 * requests through the local gateway. Screenshots of each screen go to .data/portal-screenshots/.
 */
import type { Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { until } from "../support/until.js";
import { chromiumAvailable as available, openPortal, type PortalBrowser } from "./portal-browser.js";

let t: TestApp;
let portal: PortalBrowser;
let page: Page;
let admin: AigovClient;
let consoleLines: string[] = [];

beforeAll(async () => {
  if (!available) return;
  t = await startTestApp();
  admin = await t.as("t-portal", "alice", ["TenantAdmin", "Auditor"]);
  portal = await openPortal(t);
  ({ page, consoleLines } = portal);
}, 60_000);
afterAll(async () => {
  await portal?.close();
  await t?.stop();
});

const label = (name: string): Locator => portal.label(name);
const url = (path: string) => portal.url(path);
const check = (name: string) => portal.check(name);
const signIn = (tenant: string, user: string, roles: string[]) => portal.signIn(tenant, user, roles);
const kept = () => portal.kept();

describe.skipIf(!available)("the portal in a real browser", { timeout: 120_000 }, () => {
  let projectId = "";
  let secret = "";

  it("signs in (dev), creates a project and registers a model", async () => {
    await page.goto(url("/"));
    await expect(page.locator("h1").first().textContent()).resolves.toContain("Sign in");
    await check("sign-in");
    await signIn("t-portal", "alice", ["TenantAdmin", "Auditor"]);
    await check("dashboard");

    await page.getByRole("link", { name: "Projects" }).click();
    await label("Name").fill("portal shop");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.waitForURL(/\/portal\/projects\/prj_/);
    projectId = page.url().split("/").pop()!;
    await expect(admin.projects.get(projectId)).resolves.toMatchObject({ name: "portal shop", owner: "alice" });
    await check("projects");

    await page.goto(url(`/projects/${projectId}/models`));
    await label("Name").fill("gpt-4o");
    await label("Provider").selectOption("openai");
    await label("Backend URL").fill("https://portal.mock.localhost/v1");
    await label("Provider key").fill("sk-portal-provider-key-1234567890");
    await page.getByRole("button", { name: "Register model" }).click();
    await page.getByRole("cell", { name: "gpt-4o", exact: true }).waitFor();
    expect((await admin.models.list(projectId)).items.map((m) => m.name)).toEqual(["gpt-4o"]);
    expect(await page.content()).not.toContain("sk-portal-provider-key");
    // A failover backend (priority 2) in another region; the first backend's key is kept, not re-entered.
    await label("Model").selectOption({ label: "gpt-4o" });
    await label("Backend id").fill("failover");
    await label("New backend URL").fill("https://portal-failover.mock.localhost/v1");
    await label("Backend region").fill("westus");
    await label("Its provider key").fill("sk-portal-failover-key-1234567890");
    await page.getByRole("button", { name: "Add backend" }).click();
    await expect.poll(() => page.getByTestId("backends-gpt-4o").textContent()).toContain("failover (westus, priority 2, weight 1)");
    const [model] = (await admin.models.list(projectId)).items;
    expect(model!.backends.map((b) => [b.id, b.priority, b.credential.type])).toEqual([
      ["primary", 1, "apiKey"],
      ["failover", 2, "apiKey"],
    ]);
    expect(await page.content()).not.toContain("sk-portal-failover-key");
    await check("models");
  });

  it("edits a token limit and sees the XML change, saves, publishes and sees the revision", async () => {
    await page.goto(url(`/projects/${projectId}/policy`));
    const xml = page.getByTestId("policy-xml");
    await expect.poll(() => xml.textContent(), { timeout: 15_000 }).toContain("<policies>");
    expect(await xml.textContent()).not.toContain('tokens-per-minute="1234"');
    await label("Tokens per minute").fill("1234");
    await expect.poll(() => xml.textContent(), { timeout: 15_000 }).toContain('tokens-per-minute="1234"');
    expect((await admin.projects.get(projectId)).settings).toBeUndefined(); // a draft until saved
    await page.getByRole("button", { name: "Save project settings" }).click();
    await expect.poll(async () => (await admin.projects.get(projectId)).settings, { timeout: 10_000 }).toMatchObject({ tokens: { perMinute: { limit: 1234 } } });
    // The model's own settings, the same way.
    await page.getByRole("radio", { name: "Model settings" }).check();
    await label("Model").selectOption({ label: "gpt-4o" });
    await label("Tokens per minute").fill("777");
    await expect.poll(() => xml.textContent(), { timeout: 15_000 }).toContain('tokens-per-minute="777"');
    await page.getByRole("button", { name: "Save model settings" }).click();
    await expect.poll(async () => (await admin.models.list(projectId)).items[0]!.settings, { timeout: 10_000 }).toMatchObject({ tokens: { perMinute: { limit: 777 } } });
    await label("Reason").fill("first publish from the portal");
    await page.getByRole("button", { name: "Publish", exact: true }).click();
    await expect.poll(() => page.getByTestId("revision-1-status").textContent().catch(() => null), { timeout: 30_000 }).toBe("published");
    expect((await admin.policy.revisions()).items[0]).toMatchObject({ number: 1, status: "published", reason: "first publish from the portal", createdBy: "alice" });
    await check("policy");

    // Content filtering: the tenant's Content Safety resource, then the project's filter in the form; the XML follows (a draft, not saved).
    await page.getByRole("radio", { name: "Tenant settings (floors)" }).check();
    await label("Content Safety endpoint").fill("https://portal-cs.cognitiveservices.azure.com");
    await label("Content Safety region").fill("westeurope");
    await page.getByRole("button", { name: "Save services" }).click();
    await expect.poll(async () => (await admin.settings.get()).services, { timeout: 10_000 }).toMatchObject({ contentSafety: { url: "https://portal-cs.cognitiveservices.azure.com", region: "westeurope" } });
    await page.getByRole("radio", { name: "Project settings" }).check();
    await page.getByRole("checkbox", { name: "Check prompts" }).check();
    await label("Block at severity").selectOption("2");
    await page.getByRole("checkbox", { name: "Prompt Shields (jailbreak attacks)" }).check();
    await expect.poll(() => xml.textContent(), { timeout: 15_000 }).toContain("<llm-content-safety");
    // The preview follows each change of the form: the shield's may land after the filter's.
    await expect.poll(() => xml.textContent(), { timeout: 15_000 }).toContain('shield-prompt="true"');
    expect(await xml.textContent()).toMatch(/<category name="Hate" threshold="2"/);
    await check("policy-content-filtering");
    expect((await admin.projects.get(projectId)).settings).not.toHaveProperty("contentSafety");
  });

  it("creates a key and reads it once; the plaintext is in no storage, cache or log after leaving; the playground succeeds and is refused", async () => {
    await page.goto(url(`/projects/${projectId}/keys`));
    await label("Name").fill("playground key");
    await page.getByRole("button", { name: "Create key" }).click();
    secret = await page.getByTestId("secret-value").inputValue();
    expect(secret.length).toBeGreaterThan(20);
    await check("keys-secret");
    await page.getByRole("button", { name: "I have stored it" }).click();
    await page.getByTestId("secret-value").waitFor({ state: "detached" });
    const key = (await admin.keys.list(projectId)).items.find((k) => k.name === "playground key")!;
    await check("keys");

    await page.getByRole("link", { name: "Audit" }).click();
    await page.getByRole("heading", { name: "Audit" }).waitFor();
    expect(await kept()).not.toContain(secret);
    expect(await page.content()).not.toContain(secret);
    expect(consoleLines.join("\n")).not.toContain(secret);

    // The key at the gateway (the publish sweep and key lifecycle run on timers), then the playground.
    await until(async () => {
      await t.app.host.invokeTimer("gatewayPublishSweep");
      await t.app.host.invokeTimer("keyLifecycle");
      return (await admin.keys.get(projectId, key.id)).gateway.state === "synced" ? true : undefined;
    }, "key synced");
    await t.gateway.reload();
    await page.getByRole("link", { name: "Playground" }).click();
    await label("Project").selectOption(projectId);
    await label("Your key").fill(secret);
    await label("Model").selectOption("gpt-4o");
    // A long prompt: its tokens use up the minute's budget, so the next call is refused by the token limit.
    await label("Prompt").fill(Array.from({ length: 1300 }, (_, i) => `w${i}`).join(" "));
    await page.getByRole("button", { name: "Send" }).click();
    await expect.poll(() => page.getByTestId("playground-status").textContent(), { timeout: 15_000 }).toBe("200");
    expect(await page.getByTestId("playground-body").textContent()).toContain("chat.completion");
    // The governance headers: what is left of the project's 1234 tokens a minute (per key), before this call.
    const headers = await page.getByRole("table", { name: "Governance headers" }).textContent();
    expect(headers).toContain("x-aigov-tokens-remaining-minute-key1234");
    expect(t.backends.requests("portal.mock.localhost").length).toBe(1);
    await check("playground");
    // Refused by policy: a 429 from the token limit, readable in the page with its Retry-After.
    await page.getByRole("button", { name: "Send" }).click();
    await expect.poll(() => page.getByTestId("playground-status").textContent(), { timeout: 15_000 }).toBe("429");
    expect(await page.getByRole("table", { name: "Governance headers" }).textContent()).toMatch(/retry-after\d+/);
    expect(t.backends.requests("portal.mock.localhost").length).toBe(1);
    await check("playground-refused");
    // A wrong key is refused before any policy runs, so without CORS headers: the page says so, in words.
    await label("Your key").fill("not-a-key-at-all");
    await page.getByRole("button", { name: "Send" }).click();
    await page.getByText(/carries no CORS headers/).waitFor({ timeout: 15_000 });
    expect(await page.getByTestId("playground-status").count()).toBe(0);
    expect(t.backends.requests("portal.mock.localhost").length).toBe(1);
    // Leaving the playground drops the key typed there.
    await page.getByRole("link", { name: "Catalog" }).click();
    await page.getByRole("heading", { name: "Catalog" }).waitFor();
    expect(await kept()).not.toContain(secret);
    await check("catalog");
  });

  it("rotates and revokes the key", async () => {
    await page.goto(url(`/projects/${projectId}/keys`));
    await page.getByRole("button", { name: "Rotate playground key" }).click();
    const rotated = await page.getByTestId("secret-value").inputValue();
    expect(rotated).not.toBe(secret);
    await page.getByRole("button", { name: "I have stored it" }).click();
    await page.getByTestId("secret-value").waitFor({ state: "detached" });
    // The new secret reaches the gateway (timers run by hand here); the list follows until it is confirmed.
    const id = (await admin.keys.list(projectId)).items.find((k) => k.name === "playground key")!.id;
    await until(async () => {
      await t.app.host.invokeTimer("gatewayPublishSweep");
      await t.app.host.invokeTimer("keyLifecycle");
      return (await admin.keys.get(projectId, id)).gateway.state === "synced" ? true : undefined;
    }, "rotation synced");
    await expect.poll(() => page.getByRole("row", { name: /playground key/ }).getByText("synced").count(), { timeout: 10_000 }).toBe(1);
    // Sharing it with another project asks for an approval; the list shows the pending share.
    const other = await admin.projects.create({ name: "portal other", environment: "dev", owner: "alice" });
    await page.reload();
    await label("Share with project").selectOption(other.id);
    await page.getByRole("button", { name: "Share playground key" }).click();
    await page.getByText("Share requested").waitFor();
    await page.getByRole("cell", { name: `${other.id} (pending)` }).waitFor();
    expect((await admin.keys.get(projectId, id)).shares).toMatchObject([{ projectId: other.id, status: "pending" }]);
    await page.getByRole("button", { name: "Revoke playground key" }).click();
    await page.waitForLoadState("networkidle");
    expect(await page.locator("main [role=alert]").allTextContents()).toEqual([]);
    await expect.poll(async () => (await admin.keys.list(projectId)).items.find((k) => k.name === "playground key")?.status, { timeout: 10_000 }).toMatch(/revoked/);
    await expect.poll(() => page.getByTestId("key-status-playground key").textContent(), { timeout: 10_000 }).toMatch(/revoked/);
    expect(await kept()).not.toContain(rotated);
  });

  it("a list longer than a page loads the rest on request: the 101st key is there to act on", async () => {
    const crowded = await admin.projects.create({ name: "portal crowded", environment: "dev", owner: "alice" });
    for (let i = 1; i <= 101; i++) await admin.keys.create(crowded.id, { name: `k${String(i).padStart(3, "0")}` });
    await page.goto(url(`/projects/${crowded.id}/keys`));
    const table = page.getByRole("table", { name: "Keys" });
    await expect.poll(() => table.getByRole("row").count(), { timeout: 10_000 }).toBe(101); // a header and one page
    await page.getByRole("button", { name: "Load more keys" }).click();
    await expect.poll(() => table.getByRole("row").count(), { timeout: 10_000 }).toBe(102);
    await page.getByRole("button", { name: "Load more keys" }).waitFor({ state: "detached" });
    const names = (await admin.keys.list(crowded.id, { maxPageSize: 100 })).items.map((k) => k.name);
    const last = ["k001", "k002"].concat(Array.from({ length: 101 }, (_, i) => `k${String(i + 1).padStart(3, "0")}`)).find((n) => !names.includes(n))!;
    await page.getByRole("button", { name: `Suspend ${last}` }).click();
    await expect.poll(() => page.getByTestId(`key-status-${last}`).textContent(), { timeout: 10_000 }).toBe("suspended");
  });

  it("another user requests an exemption; alice approves it; the revisions say what its publish left staged; the audit chain verifies", async () => {
    await signIn("t-portal", "dora", ["ProjectAdmin"]);
    await page.goto(url("/exemptions"));
    await label("Control").selectOption("tokens.perMinute");
    await label("Project (empty: tenant)").selectOption(projectId);
    await label("Limit").fill("5000");
    await label("What it blocks").fill("load test of the portal");
    await label("How the control is in the way").fill("1234 tokens a minute is too low");
    await label("Expected end state").fill("limits reviewed");
    await label("Compensating control").fill("watched by the team");
    await page.getByRole("button", { name: "Request exemption" }).click();
    await page.getByRole("link", { name: "its approval" }).waitFor();
    const requested = (await admin.exemptions.list()).items[0]!;
    expect(requested).toMatchObject({ status: "requested", owner: "dora" });
    await check("exemptions");

    await signIn("t-portal", "alice", ["TenantAdmin", "Auditor"]);
    await page.goto(url("/approvals"));
    await page.getByRole("link", { name: new RegExp(requested.id) }).or(page.getByRole("link", { name: /exemption/ })).first().click();
    await label("Justification").fill("reviewed the load test plan");
    await page.getByRole("button", { name: "Approve" }).click();
    await expect.poll(() => page.getByTestId("approval-status").textContent(), { timeout: 10_000 }).toBe("approved");
    await expect.poll(async () => (await admin.exemptions.get(requested.id)).status, { timeout: 15_000 }).toBe("active");
    await check("approvals");

    // The exemption's system publish ships the exemption alone: the tenant's services saved above and the
    // projects created since (never published) wait for a person's publish, and the revisions table says so.
    const system = await until(async () => (await admin.policy.revisions()).items.find((r) => r.origin === "system" && r.reason?.includes(requested.id)), "the exemption's system publish");
    const unpublished = (await admin.projects.list()).items.filter((p) => p.id !== projectId);
    expect(unpublished.map((p) => p.name).sort()).toEqual(["portal crowded", "portal other"]);
    expect(system.staged).toEqual({ tenant: true, projects: unpublished.map((p) => p.id).sort() });
    const names = system.staged!.projects.map((id) => `project ${unpublished.find((p) => p.id === id)!.name}`);
    await page.goto(url(`/projects/${projectId}/policy`));
    await expect.poll(() => page.getByTestId(`revision-${system.number}-notes`).textContent(), { timeout: 15_000 }).toBe(`Not shipped, waiting for a person's publish: tenant settings, ${names.join(", ")}`);

    // Renewing it asks for another approval, with new evidence.
    await page.goto(url("/exemptions"));
    await label("Renewal: new evidence link").fill("https://tickets.example.com/LOAD-2");
    await page.getByRole("button", { name: "Renew tokens.perMinute exemption" }).click();
    await page.getByText("Renewal requested").waitFor();
    expect((await admin.exemptions.get(requested.id)).renewals).toMatchObject([{ evidence: ["https://tickets.example.com/LOAD-2"], requestedBy: "alice" }]);

    await page.goto(url("/audit"));
    await page.getByRole("button", { name: "Verify the chain" }).click();
    await expect.poll(() => page.getByTestId("audit-verification").textContent(), { timeout: 10_000 }).toMatch(/^Chain intact/);
    await check("audit");
  });

  it("works from the keyboard alone, and in the dark theme too", async () => {
    await page.goto(url("/"));
    await page.getByRole("heading", { level: 1 }).waitFor();
    // The first Tab reaches the skip link; Enter moves focus into the main region.
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { textContent: string } } }).document.activeElement.textContent)).toBe("Skip to content");
    await page.keyboard.press("Enter");
    expect(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } } }).document.activeElement.id)).toBe("main");
    // The navigation is reachable by Tab and followed with Enter.
    const nav = page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Audit" });
    await nav.focus();
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Audit" }).waitFor();
    await page.getByRole("button", { name: "Verify the chain" }).focus();
    await page.keyboard.press("Enter");
    await expect.poll(() => page.getByTestId("audit-verification").textContent(), { timeout: 10_000 }).toMatch(/^Chain intact/);

    await page.getByRole("switch", { name: "Dark theme" }).check();
    for (const [name, path] of [["dark-policy", `/projects/${projectId}/policy`], ["dark-keys", `/projects/${projectId}/keys`], ["dark-dashboard", "/"]] as const) {
      await page.goto(url(path));
      await page.getByRole("heading", { level: 1 }).waitFor();
      await page.waitForLoadState("networkidle");
      await check(name);
    }
    await page.getByRole("switch", { name: "Dark theme" }).uncheck();
  });

  it("tenant isolation holds through the portal: tenant B sees nothing of tenant A", async () => {
    // Signing out leaves nothing for the next user of the tab: no cached answer, no remembered project
    // (dev sign-out does not reload the page, so this is checked without a reload).
    await signIn("t-portal", "alice", ["TenantAdmin", "Auditor"]);
    await page.goto(url(`/projects/${projectId}/models`));
    await page.getByText("gpt-4o").first().waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await label("Tenant").fill("t-other");
    await label("User").fill("bea");
    for (const r of ["TenantAdmin", "ProjectAdmin", "Developer", "Auditor", "Reader"]) await page.getByLabel(r, { exact: true }).setChecked(r === "TenantAdmin");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByTestId("signed-in-user").textContent()).resolves.toBe("bea");
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Models" }).click();
    await expect.poll(() => new URL(page.url()).pathname).toBe("/portal/projects");
    const left = await kept();
    expect(left).not.toContain(projectId);
    expect(left).not.toContain("portal shop");
    expect(left).not.toContain("gpt-4o");

    await signIn("t-other", "bea", ["TenantAdmin", "Auditor"]);
    await page.goto(url("/projects"));
    await page.getByText("No project yet").waitFor();
    const screens = ["/", "/projects", "/approvals", "/exemptions", "/reviews", "/audit", "/build/catalog", "/build/playground"];
    for (const page of ["models", "policy", "keys", "tools", "agents"]) screens.push(`/projects/${projectId}/${page}`);
    for (const path of screens) {
      await page.goto(url(path));
      await page.waitForLoadState("networkidle");
      const text = (await page.locator("main").textContent()) ?? "";
      expect(text, path).not.toContain("gpt-4o");
      expect(text, path).not.toContain("portal shop");
      expect(text, path).not.toContain("playground key");
      expect(text, path).not.toContain("load test of the portal");
    }
    await page.goto(url(`/projects/${projectId}/models`));
    await expect.poll(() => page.locator("[role=alert]").first().textContent(), { timeout: 10_000 }).toMatch(/not found/i);
    await check("isolation");
  });
});
