import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileNotifier } from "../../src/adapters/local/file-notifier.js";
import { startTestApp, type TestApp } from "../support/app.js";

// Debian's chromium (installed by .ci/run). Without it this suite is skipped — loudly.
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const available = existsSync(CHROMIUM);
if (!available) console.warn(`[e2e] ${CHROMIUM} not found: browser tests skipped (apt-get install chromium, or run .ci/run)`);

let t: TestApp;
let browser: Browser;

beforeAll(async () => {
  if (!available) return;
  t = await startTestApp();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await t?.stop();
});

describe.skipIf(!available)("approval page in a real browser", () => {
  it("an approver opens the link, approves with a justification, the request completes, and the link is then refused", async () => {
    const alice = await t.as("t1", "alice", ["Developer"]);
    const auditor = await t.as("t1", "audrey", ["Auditor"]);
    await (await t.as("t1", "tara", ["TenantAdmin"])).approvals.putRoutes({ routes: [{ name: "agents", match: { subjectType: "agent" }, stages: [{ approvers: [{ user: "bob" }], decisionTimeout: "P1D" }] }] }, "initial");
    const created = await alice.approvals.create({
      subject: { resourceType: "agent", resourceId: "claims-triage", change: { publish: "v3", region: "westeurope" } },
      justification: "quarterly release of the triage agent",
    });
    const inbox = FileNotifier.inboxFile(join(t.app.dataDir, "inbox"), "bob");
    let link: string | undefined;
    for (let i = 0; i < 150 && !link; i++) {
      if (existsSync(inbox)) link = readFileSync(inbox, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { link: string }).find((m) => m.link.includes(created.id))?.link;
      if (!link) await new Promise((r) => setTimeout(r, 100));
    }
    expect(link).toBeDefined();

    const page = await browser.newPage();
    await page.goto(link!);
    await expect(page.locator("h1").textContent()).resolves.toBe("Approval requested");
    await expect(page.locator("body").textContent()).resolves.toContain("quarterly release of the triage agent");
    await expect(page.locator("pre").textContent()).resolves.toContain('"region": "westeurope"');
    await page.fill("#justification", "reviewed the release notes");
    await Promise.all([page.waitForLoadState("load"), page.click('button[value="approve"]')]);
    await page.waitForSelector("#status");
    await expect(page.locator("#status").textContent()).resolves.toBe("approved");

    const approval = await auditor.approvals.get(created.id);
    expect(approval).toMatchObject({ status: "approved", decisions: [{ approver: "bob", via: "link", justification: "reviewed the release notes" }] });

    const again = await page.goto(link!);
    expect(again?.status()).toBe(409);
    await expect(page.locator("h1").textContent()).resolves.toBe("Conflict");
    await expect(page.locator("body").textContent()).resolves.toContain("already been used");
    await page.close();
  }, 60_000);
});
