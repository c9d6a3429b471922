// The portal: bytes each route loads (its chunk and everything it imports statically, beside the entry's
// own closure), raw and gzip, and the time to interactive of the first screens in Debian's Chromium on a
// running app (sign-in; a project list when signed in), cold cache each run. Reports medians of RUNS runs.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { root, startApp } from "./lib.mjs";

const dir = join(root, "dist", "portal-site", "portal");
const assets = join(dir, "assets");
const files = readdirSync(assets).filter((f) => f.endsWith(".js"));
const size = (f) => {
  const b = readFileSync(join(assets, f));
  return { raw: b.length, gzip: gzipSync(b).length };
};
// Static imports of a built chunk (minified `from"./x.js"` / `import"./x.js"`), not `import("./x.js")`.
const staticImports = (f) => [...readFileSync(join(assets, f), "utf8").matchAll(/(?<!import\()(?:from|import)\s*"\.\/([\w.-]+\.js)"/g)].map((m) => m[1]);
const closure = (start) => {
  const seen = new Set();
  const walk = (f) => {
    if (seen.has(f)) return;
    seen.add(f);
    for (const i of staticImports(f)) walk(i);
  };
  start.forEach(walk);
  return seen;
};
const total = (set) => [...set].reduce((a, f) => ({ raw: a.raw + size(f).raw, gzip: a.gzip + size(f).gzip }), { raw: 0, gzip: 0 });
const entry = /src="\/portal\/assets\/([\w.-]+\.js)"/.exec(readFileSync(join(dir, "index.html"), "utf8"))[1];
const shared = closure([entry]);
const kb = (n) => +(n / 1024).toFixed(1);
// The screens: one lazily loaded chunk per page (packages/portal/src/pages/<Page>.tsx), the sign-in in the entry.
const pages = new Set(readdirSync(join(root, "packages", "portal", "src", "pages")).map((f) => f.replace(/\.tsx$/, "")));
const routes = {};
for (const f of files.filter((f) => pages.has(f.split("-")[0]) && !shared.has(f))) {
  const name = f.split("-")[0];
  const own = [...closure([f])].filter((x) => !shared.has(x));
  const t = total(new Set(own));
  routes[name] = { chunksBeyondEntry: own.length, rawKB: kb(t.raw), gzipKB: kb(t.gzip) };
}
const entryTotal = total(shared);

const runs = Number(process.env.RUNS ?? 7);
const { child, url } = await startApp();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const token = await fetch(`${url}/.dev/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ tenant: "bench", user: "bench", roles: ["TenantAdmin", "Auditor"] }) })
  .then((r) => r.json())
  .then((b) => b.access_token);
const time = async (path, ready, signedIn) => {
  const context = await browser.newContext();
  if (signedIn) await context.addInitScript((t) => sessionStorage.setItem("aigov.devSession", t), token);
  const page = await context.newPage();
  await page.goto(`${url}/portal${path}`, { waitUntil: "commit" });
  await page.getByRole(ready.role, { name: ready.name }).waitFor();
  const ms = await page.evaluate(() => performance.now());
  await context.close();
  return ms;
};
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const signIn = [];
const projects = [];
for (let i = 0; i < runs; i++) {
  signIn.push(await time("/", { role: "button", name: "Sign in" }, false));
  projects.push(await time("/projects", { role: "heading", name: "Your projects" }, true));
}
await browser.close();
child.kill();
console.log(
  JSON.stringify(
    {
      entry: { chunks: shared.size, rawKB: kb(entryTotal.raw), gzipKB: kb(entryTotal.gzip) },
      routes,
      timeToInteractiveMs: { signInScreen: +median(signIn).toFixed(0), projectsScreenSignedIn: +median(projects).toFixed(0), runs },
      note: "interactive = the screen's first control is on the page, from navigation start (performance.now()), cold cache, loopback",
    },
    null,
    2,
  ),
);
