import { newId } from "../../src/domain/common.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_BODY_BYTES } from "../../src/api/problem.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { fillPath, operationsOf, registerFixturePillar, validBodies, type OpenApiOperation } from "../support/walk.js";

let t: TestApp;
let token: string;
let project: Project;
let approval: { id: string; etag: string };
let model: { id: string; etag: string };
let exemption: { id: string; etag: string };

beforeAll(async () => {
  // A pillar registered through the pillar list alone is walked like the built-in ones.
  registerFixturePillar();
  t = await startTestApp();
  token = await t.token("t1", "alice", ["TenantAdmin", "Auditor"]);
  const admin = await t.as("t1", "alice", ["TenantAdmin"]);
  project = await admin.projects.create(projectSpec("bad input target"));
  approval = await admin.approvals.create(validBodies.createApproval!("target") as never);
  model = await admin.models.create(project.id, validBodies.createModel!("target") as never);
  exemption = await admin.exemptions.request({ ...(validBodies.requestExemption!("target") as object), scope: { level: "project", projectId: project.id } } as never);
});
afterAll(() => t.stop());
const MISSING_REVISION = newId("rev");
const MISSING_KEY = newId("key");
/** Path parameters the walk fills with ids that exist (casesFor's values); the others name nothing. */
const REAL_PARENTS = ["projectId", "approvalId", "modelId", "exemptionId", "targetProjectId"];

interface Case {
  name: string;
  url: URL;
  init: RequestInit;
  expect: number;
  field?: string;
  reason?: string;
}

function casesFor(op: OpenApiOperation): Case[] {
  // A revision id that does not exist: every bad-input case is refused before any lookup.
  const values = { projectId: project.id, approvalId: approval.id, modelId: model.id, exemptionId: exemption.id, revisionId: MISSING_REVISION, keyId: MISSING_KEY, targetProjectId: project.id, widgetId: newId("wdg"), serverId: newId("srv"), toolName: "echo", snapshotId: newId("snp"), toolboxId: newId("tbx"), agentId: newId("agt"), connectionId: newId("con"), runId: newId("syn"), reviewId: newId("arv"), itemId: newId("ari") };
  const url = (path = fillPath(op.path, values)) => new URL(`/api${path}`, t.url);
  const auth: Record<string, string> = { authorization: `Bearer ${token}` };
  const etag = op.path.startsWith("/approvals") ? approval.etag : op.path.includes("/models/") ? model.etag : op.path.startsWith("/exemptions/{") ? exemption.etag : project.etag;
  const ifMatch: Record<string, string> = op.ifMatch ? { "if-match": `"${etag}"` } : {};
  const json: Record<string, string> = { "content-type": "application/json" };
  const valid = op.hasBody ? JSON.stringify(validBodies[op.operationId]!("bad-input")) : undefined;
  const headers: Record<string, string> = { ...auth, ...ifMatch, ...(op.hasBody ? json : {}) };
  const base = { method: op.method, headers, ...(valid ? { body: valid } : {}) };
  const cases: Case[] = [];
  if (!op.anonymous) {
    cases.push({ name: "missing auth", url: url(), init: { ...base, headers: { ...ifMatch, ...(op.hasBody ? json : {}) } }, expect: 401 });
    cases.push({ name: "garbage token", url: url(), init: { ...base, headers: { ...base.headers, authorization: "Bearer a.b.c" } }, expect: 401 });
    cases.push({ name: "unknown query parameter", url: new URL(`${url().href}?bogus=1`), init: base, expect: 400, field: "query.bogus" });
    // A parameter named like an object's prototype is a parameter like any other.
    cases.push({ name: "query parameter __proto__", url: new URL(`${url().href}?__proto__=x`), init: base, expect: 400, field: "query.__proto__" });
  }
  // A parameter the operation takes, twice (the host joins the values with a comma; the app sees the repetition).
  const once = op.queryParams.find((p) => p !== "continuationToken");
  if (once && !op.anonymous && !op.html) {
    cases.push({ name: `${once} twice`, url: new URL(`${url().href}?${once}=a&${once}=b`), init: base, expect: 400, field: `query.${once}` });
    // A query filter is text the client sends like any other: no control characters (a NUL would reach logs and store queries).
    cases.push({ name: `${once} with a NUL`, url: new URL(`${url().href}?${once}=a%00b`), init: base, expect: 400, field: `query.${once}`, reason: "control_characters" });
  }
  if (op.html && op.method === "GET") {
    cases.push({ name: "no token", url: url(), init: base, expect: 400 });
    cases.push({ name: "garbage token", url: new URL(`${url().href}?token=${"z".repeat(40)}`), init: base, expect: 403 });
  }
  if (op.form) {
    const form = { "content-type": "application/x-www-form-urlencoded" };
    cases.push({ name: "form: wrong content type", url: url(), init: { method: "POST", headers: json, body: "{}" }, expect: 415 });
    cases.push({ name: "form: missing fields", url: url(), init: { method: "POST", headers: form, body: "decision=approve" }, expect: 400 });
    cases.push({ name: "form: bad decision", url: url(), init: { method: "POST", headers: form, body: `token=${"z".repeat(40)}&decision=maybe&justification=x` }, expect: 400 });
    cases.push({ name: "form: forged token", url: url(), init: { method: "POST", headers: form, body: `token=${"z".repeat(40)}&decision=approve&justification=x` }, expect: 403 });
    cases.push({ name: "form: oversized", url: url(), init: { method: "POST", headers: form, body: `token=${"z".repeat(MAX_BODY_BYTES)}` }, expect: 413 });
  }
  for (const param of op.pathParams) {
    // Ids get malformed ids; a tool name (a name, not an id: "not-an-id" is a valid one) gets malformed names.
    for (const bad of param === "toolName" ? ["bad name!", "a|b", "x".repeat(300)] : ["not-an-id", "prj_UPPERCASE0000000000", "mdl_x", "x".repeat(300)]) {
      cases.push({ name: `bad ${param} ${bad.slice(0, 20)}`, url: url(fillPath(op.path, { ...values, [param]: bad })), init: base, expect: 400, ...(op.html ? {} : { field: `params.${param}` }) });
    }
  }
  if (op.queryParams.includes("maxPageSize")) {
    for (const bad of ["abc", "0", "101", "1.5", "0x10", "1e1", "%2016", ""]) {
      cases.push({ name: `maxPageSize=${bad}`, url: new URL(`${url().href}?maxPageSize=${bad}`), init: base, expect: 400, field: "query.maxPageSize" });
    }
  }
  if (op.queryParams.includes("continuationToken")) {
    // Tokens the API never issued, shaped like its own and like the store's: each is refused, none reaches the store.
    const forge = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
    for (const bad of ["not-a-token", forge({ v: 1, c: "{}" }), forge({ v: 1, c: "garbage" }), forge({ v: 2, c: '{"token":null,"range":{}}', q: "x" }), forge({ v: 2, c: "[]" })]) {
      const href = new URL(url().href);
      href.searchParams.set("continuationToken", bad);
      // Under a parent the walk has no real id for (a review's items, a server's snapshots), the parent's 404 comes first.
      const parentMissing = op.pathParams.some((p) => !REAL_PARENTS.includes(p));
      cases.push({ name: `continuationToken ${bad.slice(0, 16)}`, url: href, init: base, ...(parentMissing ? { expect: 404 } : { expect: 400, field: "query.continuationToken" }) });
    }
  }
  if (op.ifMatch) {
    cases.push({ name: "missing If-Match", url: url(), init: { ...base, headers: { ...auth, ...(op.hasBody ? json : {}) } }, expect: 428 });
  } else if (!op.takesIfMatch && !op.html) {
    // A precondition the operation cannot evaluate is refused, not ignored (the write would run unconditionally).
    cases.push({ name: "If-Match it takes none", url: url(), init: { ...base, headers: { ...headers, "if-match": `"${project.etag}"` } }, expect: 400, field: "header.if-match", reason: "if_match_not_supported" });
  }
  if (op.hasBody) {
    const h = base.headers;
    cases.push({ name: "malformed JSON", url: url(), init: { ...base, body: "{not json" }, expect: 400 });
    cases.push({ name: "empty body", url: url(), init: { ...base, body: "" }, expect: 400 });
    cases.push({ name: "wrong content type", url: url(), init: { ...base, headers: { ...h, "content-type": "text/plain" } }, expect: 415 });
    cases.push({ name: "no content type", url: url(), init: { ...base, headers: { ...auth, ...ifMatch } }, expect: 415 });
    // JSON is UTF-8: a body declared in another charset is refused, not read as UTF-8; one that is not UTF-8 is malformed.
    cases.push({ name: "Latin-1 charset", url: url(), init: { ...base, headers: { ...h, "content-type": "application/json; charset=iso-8859-1" } }, expect: 415 });
    const sampled = JSON.stringify(validBodies[op.operationId]!("l1n"));
    if (sampled.includes("l1n")) {
      const latin1 = Buffer.from(sampled.replace("l1n", "l1n\u00e9"), "latin1"); // é as one byte, 0xE9: not UTF-8
      cases.push({ name: "bytes that are not UTF-8", url: url(), init: { ...base, body: latin1 }, expect: 400 });
    }
    cases.push({ name: "array body", url: url(), init: { ...base, body: "[]" }, expect: 400 });
    cases.push({ name: "string body", url: url(), init: { ...base, body: '"x"' }, expect: 400 });
    cases.push({ name: "null body", url: url(), init: { ...base, body: "null" }, expect: 400 });
    const withUnknown = { ...(validBodies[op.operationId]!("u") as object), unexpectedField: 1 };
    cases.push({ name: "unknown field", url: url(), init: { ...base, body: JSON.stringify(withUnknown) }, expect: 400, field: "body.unexpectedField" });
    const wrongTypes = Object.fromEntries(Object.keys(validBodies[op.operationId]!("w") as object).map((k) => [k, { nested: [1, 2] }]));
    cases.push({ name: "wrong types", url: url(), init: { ...base, body: JSON.stringify(wrongTypes) }, expect: 400 });
    const big = JSON.stringify({ ...(validBodies[op.operationId]!("big") as object), description: "x".repeat(MAX_BODY_BYTES) });
    cases.push({ name: "oversized body", url: url(), init: { ...base, body: big }, expect: 413 });
    cases.push({ name: "deep nesting", url: url(), init: { ...base, body: "[".repeat(5000) + "]".repeat(5000) }, expect: 400, reason: "body_too_deep" });
    cases.push({ name: "deep objects", url: url(), init: { ...base, body: '{"a":'.repeat(5000) + "1" + "}".repeat(5000) }, expect: 400, reason: "body_too_deep" });
    // A BEL, a NUL or a lone surrogate in any text field is refused at the edge (it would reach documents, logs and the compiler).
    const sample = validBodies[op.operationId]!("ctl") as Record<string, unknown>;
    const text = Object.keys(sample).find((k) => typeof sample[k] === "string");
    if (text) {
      for (const [label, bad] of [["BEL", "a\\u0007b"], ["NUL", "a\\u0000b"], ["lone surrogate", "a\\ud800b"]] as const) {
        const body = JSON.stringify({ ...sample, [text]: "@@" }).replace('"@@"', `"${bad}"`);
        cases.push({ name: `${label} in ${text}`, url: url(), init: { ...base, body }, expect: 400, field: `body.${text}`, reason: "control_characters" });
      }
    }
  }
  return cases;
}

describe("bad input on every route", () => {
  it("gets a 4xx problem+json with field errors, never a 5xx, and changes nothing", async () => {
    const doc = await t.anonymous.openApi();
    const auditBefore = (await (await t.as("t1", "aud", ["Auditor"])).audit.list()).items.length;
    let checked = 0;
    for (const op of operationsOf(doc)) {
      for (const c of casesFor(op)) {
        const res = await fetch(c.url, c.init);
        const text = await res.text();
        const label = `${op.method} ${op.path} [${c.name}] → ${res.status} ${text.slice(0, 300)}`;
        expect(res.status, label).toBe(c.expect);
        if (op.html) {
          expect(res.headers.get("content-type"), label).toMatch(/^text\/html/);
          expect(text, label).toMatch(/<h1>/);
          checked += 1;
          continue;
        }
        expect(res.headers.get("content-type"), label).toMatch(/^application\/problem\+json/);
        const problem = JSON.parse(text) as { status: number; code: string; reason: string; title: string; correlationId: string; errors?: { field: string }[] };
        expect(problem.status, label).toBe(c.expect);
        expect(problem.code, label).toMatch(/^[A-Z][A-Za-z]+$/);
        expect(problem.correlationId, label).toBeTruthy();
        if (c.field) expect(problem.errors?.map((e) => e.field), label).toContain(c.field);
        expect(problem.reason, label).toMatch(/^[a-z][a-z0-9_]*$/);
        if (c.reason) expect(problem.reason, label).toBe(c.reason);
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThan(40);
    const audit = await (await t.as("t1", "aud", ["Auditor"])).audit.list();
    expect(audit.items.length).toBe(auditBefore);
    const admin = await t.as("t1", "alice", ["TenantAdmin"]);
    expect(await admin.projects.get(project.id)).toEqual(project);
  });

  it("echoes a caller's correlation id and generates one otherwise", async () => {
    const res = await fetch(`${t.url}/api/projects/not-an-id`, { headers: { authorization: `Bearer ${token}`, "x-correlation-id": "trace-123" } });
    expect(res.headers.get("x-correlation-id")).toBe("trace-123");
    expect(((await res.json()) as { correlationId: string }).correlationId).toBe("trace-123");
  });

  it("unknown routes and methods are problem+json 4xx from the host", async () => {
    const missing = await fetch(`${t.url}/api/nothing-here`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get("content-type")).toMatch(/problem\+json/);
    const wrongMethod = await fetch(`${t.url}/api/health`, { method: "PUT" });
    expect(wrongMethod.status).toBe(405);
  });
});
