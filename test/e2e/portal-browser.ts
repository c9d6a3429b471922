/**
 * The portal in Debian's Chromium (playwright-core) for the end-to-end tests: a page on a test app, form
 * fields by label, dev sign-in, axe-core on each screen with a screenshot (.data/portal-screenshots/), and
 * everything the browser keeps (storages, the portal's query caches).
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { expect } from "vitest";
import type { TestApp } from "../support/app.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const chromiumAvailable = existsSync(CHROMIUM);
if (!chromiumAvailable) console.warn(`[e2e] ${CHROMIUM} not found: portal tests skipped (apt-get install chromium, or run .ci/run)`);
const AXE = require.resolve("axe-core/axe.min.js");
export const SHOTS = join(process.cwd(), ".data", "portal-screenshots");

export interface PortalBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** What the page printed to its console. */
  consoleLines: string[];
  /** A form field by its label ("Name", or "Name *" when required). */
  label(name: string): Locator;
  /** A portal path on the app's origin. */
  url(path: string): string;
  /** axe-core on the current screen: no serious or critical violation; then a screenshot named `name`. */
  check(name: string): Promise<void>;
  signIn(tenant: string, user: string, roles: string[]): Promise<void>;
  /** Everything the browser keeps: both storages and the portal's query and mutation caches, as JSON. */
  kept(): Promise<string>;
  close(): Promise<void>;
}

export async function openPortal(t: TestApp): Promise<PortalBrowser> {
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  // bypassCSP: axe-core is injected as an inline script, which the portal's CSP (rightly) refuses.
  const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const consoleLines: string[] = [];
  page.on("console", (m) => consoleLines.push(m.text()));

  const label = (name: string) => page.getByLabel(new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*\\*?$`));
  const url = (path: string) => `${t.app.host.url}/portal${path}`;

  async function check(name: string): Promise<void> {
    await page.addScriptTag({ path: AXE });
    const run = () =>
      page.evaluate(async () => {
        const g = globalThis as unknown as { document: unknown; axe: { run: (ctx: unknown, o: object) => Promise<{ violations: { id: string; impact: string; nodes: { target: string[]; html: string }[] }[] }> } };
        const r = await g.axe.run(g.document, { resultTypes: ["violations"] });
        // Fluent UI's focus sentinels (tabster's data-tabster-dummy: aria-hidden, focusable, they pass focus on at
        // once) are aria-hidden-focus false positives by design; Accessibility Insights suppresses them the same way.
        return r.violations
          .filter((v) => v.impact === "serious" || v.impact === "critical")
          .map((v) => ({ ...v, nodes: v.nodes.filter((n) => !(v.id === "aria-hidden-focus" && n.html.includes("data-tabster-dummy"))) }))
          .filter((v) => v.nodes.length > 0)
          .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
      });
    // The settled screen: a dialog's or a list's transition still running is looked at again a second later.
    let violations = await run();
    if (violations.length) {
      await page.waitForTimeout(1000);
      violations = await run();
    }
    expect(violations, `accessibility of ${name}`).toEqual([]);
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  }

  async function signIn(tenant: string, user: string, roles: string[]): Promise<void> {
    await page.goto(url("/"));
    // Signed in already, or the sign-in form: wait for the page to say which before deciding.
    const signOut = page.getByRole("button", { name: "Sign out" });
    await signOut.or(label("Tenant")).first().waitFor();
    if (await signOut.isVisible()) await signOut.click();
    await label("Tenant").fill(tenant);
    await label("User").fill(user);
    for (const r of ["TenantAdmin", "ProjectAdmin", "Developer", "Auditor", "Reader"]) await page.getByLabel(r, { exact: true }).setChecked(roles.includes(r));
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByTestId("signed-in-user").textContent()).resolves.toBe(user);
  }

  const kept = () =>
    page.evaluate(() => {
      const g = globalThis as unknown as { localStorage: object; sessionStorage: object; aigovQueryCache?: () => unknown };
      return JSON.stringify({ local: { ...g.localStorage }, session: { ...g.sessionStorage }, cache: g.aigovQueryCache?.() ?? null });
    });

  return { browser, context, page, consoleLines, label, url, check, signIn, kept, close: () => browser.close() };
}
