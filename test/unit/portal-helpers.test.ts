import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/client/index.js";
import { parseConfig } from "../../packages/portal/src/app/config.js";
import { isCurrent, NAV } from "../../packages/portal/src/app/navigation.js";
import { describeError } from "../../packages/portal/src/app/problem-text.js";
import { revisionNotes } from "../../packages/portal/src/app/revision-notes.js";
import type { Revision } from "../../src/domain/publishing/schema.js";
import { readToken } from "../../packages/portal/src/app/token.js";
import { loadOrCreateDevIssuer } from "../../src/auth/dev-issuer.js";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

describe("portal helpers", () => {
  it("marks the current screen: a project's page under its pillar, the list and a project under Projects", () => {
    const current = (path: string) => NAV.filter((n) => isCurrent(n.path, path)).map((n) => n.label);
    expect(current("/")).toEqual(["Dashboard"]);
    expect(current("/projects")).toEqual(["Projects"]);
    expect(current("/projects/prj_1")).toEqual(["Projects"]);
    expect(current("/projects/prj_1/policy")).toEqual(["Policy"]);
    expect(current("/projects/prj_1/keys")).toEqual(["Keys"]);
    expect(current("/approvals/apr_1")).toEqual(["Approvals"]);
    expect(current("/build/playground")).toEqual(["Playground"]);
  });

  it("reads who is signed in from a token the dev issuer minted (UTF-8 names included)", async () => {
    const issuer = await loadOrCreateDevIssuer(join(mkdtempSync(join(tmpdir(), "portal-")), "issuer.json"));
    const s = readToken(await issuer.mint({ tenant: "t1", user: "zoë", roles: ["TenantAdmin", "Auditor"], ttlSeconds: 600 }));
    expect(s).toMatchObject({ tenant: "t1", user: "zoë", roles: ["TenantAdmin", "Auditor"] });
    expect(s.expiresAt - Date.now()).toBeGreaterThan(590_000);
  });

  it("puts a problem in words: title, detail, the reason's meaning from the API's catalog, field errors", () => {
    const problem = { type: "about:blank", title: "Bad Request", status: 400, code: "ValidationFailed", detail: "the settings loosen tenant controls", reason: "loosens_tenant_control", errors: [{ field: "body.settings.tokens.perMinute.limit", message: "above the tenant's 1000" }] };
    const text = describeError(new ApiError(400, problem as never, JSON.stringify(problem)));
    expect(text).toMatchObject({ title: "Bad Request", detail: problem.detail, reason: "loosens_tenant_control", fields: problem.errors });
    expect(text.meaning).toMatch(/loosen a tenant control/);
    expect(describeError(new ApiError(502, undefined, "<html>"))).toEqual({ title: "HTTP 502", fields: [] });
    expect(describeError(new TypeError("Failed to fetch"))).toEqual({ title: "Failed to fetch", fields: [] });
  });

  it("takes the config the deployment's hook writes (Entra) and refuses one without a sign-in mode", () => {
    const dir = mkdtempSync(join(tmpdir(), "portal-hook-"));
    // The hook writes beside the built site: run a copy of it from a folder laid out like the repository.
    const hook = readFileSync(join(__dirname, "..", "..", "infra", "hooks", "portal-config.sh"), "utf8");
    execFileSync("sh", ["-c", hook.replace('site="$here/../../dist/portal-site/portal"', `site="${dir}"`)], {
      env: { ...process.env, AUTH_CLIENT_ID: "11111111-2222-3333-4444-555555555555", AUTH_API_SCOPE: "api://aigov-api/access_as_user", API_ORIGIN: "https://func-aigov.azurewebsites.net", APIM_GATEWAY_URL: "https://apim-aigov.azure-api.net" },
    });
    const config = parseConfig(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")));
    expect(config).toEqual({
      auth: { mode: "entra", clientId: "11111111-2222-3333-4444-555555555555", authority: "https://login.microsoftonline.com/organizations", scopes: ["api://aigov-api/access_as_user"] },
      apiUrl: "https://func-aigov.azurewebsites.net",
      gatewayUrl: "https://apim-aigov.azure-api.net",
    });
    expect(parseConfig({ auth: { mode: "dev" } })).toEqual({ auth: { mode: "dev" } });
    expect(() => parseConfig({ error: "dev tokens only" })).toThrow("config.json: dev tokens only");
  });

  it("says what a revision's status does not: why it failed, what a system publish left staged or out, and whose registry is not at the gateway", () => {
    const rev = (number: number, over: Partial<Revision>): Revision => ({
      id: `rev_${number}`,
      number,
      kind: "publish",
      origin: "person",
      status: "published",
      createdAt: "2026-12-06T10:00:00.000Z",
      createdBy: "alice",
      artifactCount: 3,
      counts: { added: 0, modified: 1, removed: 0 },
      changes: [],
      ...over,
    });
    const person = rev(4, { status: "superseded" });
    const failed = rev(5, { origin: "system", status: "failed", error: `gateway refused: ${"x".repeat(400)}`, registryFrom: "rev_4" });
    const retry = rev(6, {
      origin: "system",
      retry: { of: "rev_5", attempt: 2 },
      registryLeftOut: "rev_4",
      staged: { tenant: true, projects: ["prj_a", "prj_gone"] },
      isolated: [{ projectId: "prj_b", name: "beta", error: "tier t1 names model m9, which does not exist", outcome: "keptPublished" }],
    });
    const listed = [retry, failed, person];
    const names = (id: string) => ({ prj_a: "shop" })[id];
    expect(revisionNotes(retry, listed, names)).toEqual([
      "Retry 2 of #5",
      "Project beta did not compile; its last published registry went out instead: tier t1 names model m9, which does not exist",
      "Leaves out the registry of #4, which the gateway refused: it waits for a person's publish",
      "Not shipped, waiting for a person's publish: tenant settings, project shop, project prj_gone",
    ]);
    const [failure] = revisionNotes(failed, listed, names);
    expect(failure).toMatch(/^Failed: gateway refused: x+…$/);
    expect(failure!.length).toBe("Failed: ".length + 300 + 1);
    expect(revisionNotes(person, listed, names)).toEqual(["Not at the gateway: #6 left its registry out after the gateway refused it; publish again"]);
    // Until a person's publish reaches the gateway: it ships the registry as it is, that change included.
    expect(revisionNotes(person, [rev(7, { status: "published" }), ...listed], names)).toEqual([]);
    expect(revisionNotes(person, [rev(7, { status: "failed" }), ...listed], names)).toHaveLength(1);
    // Off the page, a revision is named by its id; a plain publish needs no note.
    expect(revisionNotes(retry, [retry], names)[0]).toBe("Retry 2 of rev_5");
    expect(revisionNotes(rev(9, {}), listed, names)).toEqual([]);
    expect(revisionNotes(rev(8, { kind: "rollback", rollbackOf: "rev_4" }), listed, names)).toEqual(["Rolls back to #4"]);
  });
});
