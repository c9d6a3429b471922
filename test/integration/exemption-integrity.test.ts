/**
 * Exemptions keep to their approval and their time box: an expiry reaches the gateway however damaged
 * another tenant's records are ("one bad record never blocks a tenant", docs/governance.md); a renewal
 * whose risk rose while it waited extends nothing on a standard approval (ADR 007); and whoever asked for
 * an exemption does not decide on keeping it in an access review, as they could not approve it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { AigovClient } from "../../src/client/index.js";
import type { ExemptionSpecInput } from "../../src/domain/exemptions/schema.js";
import type { AccessReview } from "../../src/domain/reviews/schema.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { reasonOf } from "../support/errors.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T = "t-renew";
let t: TestApp;
let root: AigovClient;
let dana: AigovClient;
let admin: AigovClient;
let paula: AigovClient;

beforeAll(async () => {
  t = await startTestApp();
  overrideServices({ clock: t.appClock });
  root = await t.as(T, "root", ["TenantAdmin"]);
  dana = await t.as(T, "dana", ["Developer"]);
  admin = await t.as("t1", "tina", ["TenantAdmin"]);
  paula = await t.as("t1", "paula", ["Developer"]);
});
afterAll(async () => {
  overrideServices({});
  await t.stop();
});

const approve = async (approvalId: string) => {
  const a = await root.approvals.get(approvalId);
  await root.approvals.decide(a.id, { decision: "approve", justification: "fine" }, a.etag);
};

async function reaches(id: string, status: AccessReview["status"]): Promise<AccessReview> {
  return until(async () => {
    const r = await admin.reviews.get(id);
    return r.status === status ? r : undefined;
  }, `access review ${id} ${status}`);
}

/** `n` calls of 2 + 8 tokens each (their statuses), then a minute passes at the gateway. */
async function burst(g: Governed, projectId: string, key: string, n: number): Promise<number[]> {
  const statuses = [];
  for (let i = 0; i < n; i++) statuses.push((await g.chat(projectId, key, "gpt-4o", { words: 2, maxTokens: 8 })).status);
  g.t.clock.advance(61_000);
  return statuses;
}

/** A project exemption raising tokens.perMinute to `value`, owned by `owner`, ending `ms` from now (app clock). */
const raise = (projectId: string, value: number, ms: number, owner = "dora"): ExemptionSpecInput => ({
  control: "tokens.perMinute",
  scope: { level: "project", projectId },
  relaxation: { kind: "limit", value },
  category: "waiver",
  owner,
  reason: { deliveryBlocker: "load test", affectedControl: "tokens.perMinute too low", expectedEndState: "limits reviewed" },
  compensatingControls: ["watched"],
  evidence: ["https://tickets.example.com/LOAD-1"],
  expiresAt: new Date(t.appClock.ms() + ms).toISOString(),
});

/** A project exemption raising tokens.perMinute to `value`, ending `hours` from now (app clock), approved and active. */
async function exempt(g: Governed, requester: AigovClient, projectId: string, value: number, hours: number): Promise<string> {
  const requested = await requester.exemptions.request(raise(projectId, value, hours * HOUR));
  const a = await g.admin.approvals.get(requested.approvalId);
  await g.admin.approvals.decide(a.id, { decision: "approve", justification: "load test" }, a.etag);
  await until(async () => ((await g.admin.exemptions.get(requested.id)).status === "active" ? true : undefined), "exemption active");
  return requested.id;
}

describe("renewals whose risk rose while they waited", () => {
  it("a renewal approved on the standard route that is high risk now (the tenant lowered its floor) does not extend the exemption", async () => {
    const settings = await root.settings.get();
    await root.settings.put({ settings: { tokens: { perMinute: { limit: 1000 } } } }, settings.etag);
    const p = await root.projects.create(projectSpec("renewal risk", { settings: { tokens: { perMinute: { limit: 800 } } } }));
    // 6.25× the 800 in force: standard, one TenantAdmin.
    const req = await dana.exemptions.request(raise(p.id, 5000, 10 * DAY, "olga"));
    expect((await root.approvals.get(req.approvalId)).route?.risk).toBe("standard");
    await approve(req.approvalId);
    const active = await until(async () => {
      const e = await dana.exemptions.get(req.id);
      return e.status === "active" ? e : undefined;
    });
    // The renewal is asked for while the raise is still standard.
    const renewed = await dana.exemptions.renew(active.id, { expiresAt: new Date(t.appClock.ms() + 25 * DAY).toISOString(), evidence: ["https://tickets.example.com/LOAD-2"], justification: "longer" }, active.etag);
    const renewalApproval = renewed.renewals.at(-1)!.approvalId;
    expect((await root.approvals.get(renewalApproval)).route?.risk).toBe("standard");
    // While it waits the tenant lowers its floor to 400: the project's 800 is held to it, 5000 is a 12.5× raise now.
    const now = await root.settings.get();
    await root.settings.put({ settings: { tokens: { perMinute: { limit: 400 } } } }, now.etag);
    await approve(renewalApproval);
    const after = await until(async () => {
      const e = await dana.exemptions.get(req.id);
      return e.renewals.at(-1)?.status !== "pending" ? e : undefined;
    });
    // Like a request whose risk rose while it waited: not on one standard approval.
    expect(after.renewals.at(-1)?.status).toBe("rejected");
    expect(after.expiresAt).toBe(active.expiresAt);
  });
});

describe("reviewing an exemption", () => {
  it("its requester, a ProjectAdmin of the project, does not review it (keep) in the project's access review", async () => {
    const project = await admin.projects.create(projectSpec("exempted", { owner: "olivia", settings: { tokens: { perMinute: { limit: 1000 } } }, roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] }));
    // paula asks; dora owns it; a TenantAdmin approves.
    const requested = await paula.exemptions.request(raise(project.id, 2000, 20 * DAY));
    const a = await admin.approvals.get(requested.approvalId);
    await admin.approvals.decide(a.id, { decision: "approve", justification: "ok" }, a.etag);
    await until(async () => ((await admin.exemptions.get(requested.id)).status === "active" ? true : undefined), "exemption active");

    const created = await admin.reviews.create({ name: "exemptions", kind: "exemptions", scope: { level: "project", projectId: project.id }, stages: [{ reviewers: { type: "projectOwners" }, durationDays: 7 }], completion: { autoApply: true, defaultDecision: "remove" } });
    await reaches(created.id, "inProgress");
    const item = (await admin.reviews.items(created.id)).items.find((i) => i.target.id === requested.id)!;
    expect(item.target.holder).toBe("dora");
    // The requester keeps what she asked for: refused, as at approval.
    expect(item.reviewers).not.toContain("paula");
    expect(await reasonOf(paula.reviews.decide(created.id, item.id, { decision: "approve", justification: "still needed" }))).toBe("403 reviewer_is_party");
  });
});

// Last: it moves the app's clock three hours on.
describe("an exemption's end at the gateway", () => {
  it("another tenant's damaged exemption record does not keep an expired exemption relaxing the gateway", async () => {
    // Tenant "other": an exemption in force whose record was damaged around the API (no renewals list).
    const other = await Governed.start("t-damaged-other", t);
    const op = await other.project("other");
    const odev = await other.as("otto", ["Developer"]);
    const damaged = await exempt(other, odev, op.id, 1000, 24 * 30);
    const container = t.container();
    const { resources } = await container.items.query<Record<string, unknown>>({ query: "SELECT * FROM c WHERE c.id = @id", parameters: [{ name: "@id", value: damaged }] }).fetchAll();
    const { _rid: _r, _self: _s, _etag: _e, _attachments: _a, _ts: _t, renewals: _rn, ...rest } = resources[0]!;
    await container.items.upsert(rest);

    // Tenant "gw": a floor of 20 tokens a minute per key; an exemption raises it for two hours.
    const g = await Governed.start("t-expiring", t);
    const s = await g.admin.settings.get();
    await g.admin.settings.put({ settings: { tokens: { perMinute: { limit: 20, per: "key" } } } }, s.etag);
    const p = await g.project("expiring");
    await g.model(p.id, "gpt-4o");
    await g.publish("baseline");
    const dev = await g.as("dora", ["Developer"]);
    const k = (await g.key(dev, p.id, { name: "k" })).key;
    expect(await burst(g, p.id, k, 4)).toEqual([200, 200, 429, 429]);
    const id = await exempt(g, dev, p.id, 100, 2);
    await g.systemPublish(id);
    expect(await burst(g, p.id, k, 4)).toEqual([200, 200, 200, 200]);

    // Three hours on: the sweep runs (as its timer would, every 5 minutes), the gateway settles.
    t.appClock.advance(3 * HOUR);
    g.t.clock.advance(3 * HOUR);
    await t.app.host.invokeTimer("exemptionSweep").catch((err: unknown) => console.warn(`exemptionSweep: ${String(err)}`));
    await g.settle();
    expect(await burst(g, p.id, k, 4)).toEqual([200, 200, 429, 429]);
    expect((await g.admin.exemptions.get(id)).status).toBe("expired");
  }, 240_000);
});
