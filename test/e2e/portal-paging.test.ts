/**
 * The portal's lists past the API's first page (100 items), in a real browser against a fresh app: a table
 * shows the first page and loads the next with "Load more"; a picker offers every item (it follows each
 * page's nextLink). And an access review's Keep/Remove buttons are shown only to who may decide the item.
 */
import type { Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { until } from "../support/until.js";
import { chromiumAvailable as available, openPortal, type PortalBrowser } from "./portal-browser.js";

const TENANT = "t-portal-paging";
/** One more than the API's largest page, and a few. */
const MANY = 104;

let t: TestApp;
let portal: PortalBrowser;
let page: Page;
let admin: AigovClient;

beforeAll(async () => {
  if (!available) return;
  t = await startTestApp();
  admin = await t.as(TENANT, "alice", ["TenantAdmin", "Auditor"]);
  portal = await openPortal(t);
  page = portal.page;
}, 60_000);
afterAll(async () => {
  await portal?.close();
  await t?.stop();
});

const label = (name: string): Locator => portal.label(name);
const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(3, "0")}`);

/** Creates each of `items` with `create`, `batch` at a time in parallel. */
async function inBatches<T, R>(items: T[], create: (item: T) => Promise<R>, batch = 16): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += batch) out.push(...(await Promise.all(items.slice(i, i + batch).map(create))));
  return out;
}

/** The option labels of a <select>. */
const optionsOf = (select: Locator) => select.locator("option").allTextContents();

describe.skipIf(!available)("lists past the first page, and who may decide a review item, in a real browser", { timeout: 180_000 }, () => {
  let projectId = "";
  let modelNames: string[] = [];

  it("the models table loads past its first page with Load more; the model pickers (add a backend, a key's scope) offer every model", async () => {
    projectId = (await admin.projects.create(projectSpec("paging shop"))).id;
    modelNames = names("model", MANY);
    await inBatches(modelNames, (name) =>
      admin.models.create(projectId, { name, provider: "openai", modelName: name, backends: [{ id: "primary", url: "https://paging.openai.azure.com/openai", region: "eastus", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }] }),
    );
    // The API pages them: a first page of 100, and a link to the rest.
    const first = await admin.models.list(projectId, { maxPageSize: 100 });
    expect(first.items).toHaveLength(100);
    expect(first.nextLink).toBeDefined();

    await portal.signIn(TENANT, "alice", ["TenantAdmin", "Auditor"]);
    await page.goto(portal.url(`/projects/${projectId}/models`));
    const table = page.getByRole("table", { name: "Models" });
    // The header row and the first page.
    await expect.poll(() => table.getByRole("row").count()).toBe(101);
    // The backend form's model picker offers them all already (every page, not the table's).
    await expect.poll(async () => (await optionsOf(label("Model"))).filter((o) => o !== "Choose a model").sort()).toEqual(modelNames);
    await page.getByRole("button", { name: "Load more models" }).click();
    await expect.poll(() => table.getByRole("row").count()).toBe(MANY + 1);
    const shown = await table.getByRole("row").allTextContents();
    for (const name of modelNames) expect(shown.some((row) => row.startsWith(name)), name).toBe(true);
    // The last page loaded: nothing more to load.
    await expect.poll(() => page.getByRole("button", { name: "Load more models" }).count()).toBe(0);

    // A key may be scoped to any of them.
    await page.goto(portal.url(`/projects/${projectId}/keys`));
    const scope = page.getByRole("group", { name: /^Models/ });
    await expect.poll(() => scope.getByRole("checkbox").count()).toBe(MANY);
    expect(await scope.getByRole("checkbox", { name: modelNames.at(-1)!, exact: true }).count()).toBe(1);
  });

  it("the project pickers offer every project, and the project list loads past its first page with Load more", async () => {
    const projectNames = names("paging project", MANY);
    await inBatches(projectNames, (name) => admin.projects.create(projectSpec(name)));
    const all = [...projectNames, "paging shop"];
    const first = await admin.projects.list({ maxPageSize: 100 });
    expect(first.items).toHaveLength(100);
    expect(first.nextLink).toBeDefined();

    // The picker of a project's screens (the URL's project).
    await page.goto(portal.url(`/projects/${projectId}/models`));
    await expect.poll(async () => (await optionsOf(label("Project"))).filter((o) => o !== "Choose a project").sort(), { timeout: 20_000 }).toEqual(all.map((n) => `${n} (dev)`).sort());
    // A project chosen in a form (here, the scope of an access review).
    await page.goto(portal.url("/reviews"));
    await expect.poll(async () => (await optionsOf(label("Project (empty: every project)"))).filter((o) => o !== "Whole tenant").sort(), { timeout: 20_000 }).toEqual([...all].sort());

    // The project list: a page, then the rest.
    await page.goto(portal.url("/projects"));
    const table = page.getByRole("table", { name: "Projects" });
    await expect.poll(() => table.getByRole("row").count()).toBe(101);
    await page.getByRole("button", { name: "Load more projects" }).click();
    await expect.poll(() => table.getByRole("row").count()).toBe(all.length + 1);
    expect(await page.getByRole("button", { name: "Load more projects" }).count()).toBe(0);
  });

  it("an access review's Keep and Remove are shown only to who may decide the item; others see who reviews it", async () => {
    // olivia owns the project; paula is its ProjectAdmin (she reads the whole campaign, and reviews dora's
    // access but not her own); alice oversees as TenantAdmin but reviews nothing.
    const reviewed = await admin.projects.create(projectSpec("reviewed", { owner: "olivia", roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }, { principalId: "dora", role: "Developer" }] }));
    const created = await admin.reviews.create({ name: "who decides", kind: "roleAssignments", scope: { level: "project", projectId: reviewed.id }, stages: [{ reviewers: { type: "projectOwners" }, durationDays: 14 }] });
    await until(async () => ((await admin.reviews.get(created.id)).status === "inProgress" ? true : undefined), "the review in progress");
    const items = (await admin.reviews.items(created.id)).items;
    const byLabel = Object.fromEntries(items.map((i) => [i.target.label, i]));
    expect(byLabel["Developer 'dora'"]?.reviewers).toEqual(["olivia", "paula"]);
    expect(byLabel["ProjectAdmin 'paula'"]?.reviewers).toEqual(["olivia"]);

    const keep = (what: string) => page.getByRole("button", { name: `Keep ${what}`, exact: true });
    const remove = (what: string) => page.getByRole("button", { name: `Remove ${what}`, exact: true });
    const itemsTable = page.getByRole("table", { name: "Items to review" });

    // The TenantAdmin reads every item and decides none: no buttons, the reviewers instead.
    await page.goto(portal.url(`/reviews/${created.id}`));
    await expect.poll(() => itemsTable.getByRole("row").count()).toBe(3);
    expect(await page.getByTestId("reviewers-Developer 'dora'").textContent()).toBe("Reviewed by olivia, paula");
    expect(await page.getByTestId("reviewers-ProjectAdmin 'paula'").textContent()).toBe("Reviewed by olivia");
    expect(await page.getByRole("button", { name: /^(Keep|Remove) / }).count()).toBe(0);

    // paula decides dora's access, never her own.
    await portal.signIn(TENANT, "paula", []);
    await page.goto(portal.url(`/reviews/${created.id}`));
    await expect.poll(() => itemsTable.getByRole("row").count()).toBe(3);
    await keep("Developer 'dora'").waitFor();
    expect(await remove("Developer 'dora'").count()).toBe(1);
    expect(await keep("ProjectAdmin 'paula'").count()).toBe(0);
    expect(await remove("ProjectAdmin 'paula'").count()).toBe(0);
    expect(await page.getByTestId("reviewers-ProjectAdmin 'paula'").textContent()).toBe("Your own access, reviewed by olivia");

    // The owner decides both; a decision she makes is recorded.
    await portal.signIn(TENANT, "olivia", []);
    await page.goto(portal.url(`/reviews/${created.id}`));
    await keep("ProjectAdmin 'paula'").waitFor();
    expect(await keep("Developer 'dora'").count()).toBe(1);
    await remove("Developer 'dora'").click();
    await expect.poll(async () => (await admin.reviews.items(created.id)).items.find((i) => i.target.label === "Developer 'dora'")?.decisions.at(-1)).toMatchObject({ decision: "deny", by: "olivia" });
    await portal.check("review-items");
  });
});
