import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import type { Revision } from "../../src/domain/publishing/schema.js";
import { gatewayNames } from "../../src/policy/names.js";

/** The ids of this suite's tenant's artifacts. */
const N = gatewayNames("t-exp-pub");
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { until } from "../support/until.js";
import { PUBLISHED_MARKER } from "../../src/local-gateway/runtime/folder.js";

let t: TestApp;
let admin: AigovClient;
let dev: AigovClient;
let exempted: Project;
let other: Project;
const DAY = 24 * 3600 * 1000;

/** Every file of the local gateway (.data/apim), path → content (the publish marker, which every publish replaces, aside). */
function gatewayFiles(): Map<string, string> {
  const root = join(t.app.dataDir, "apim");
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (path !== join(root, PUBLISHED_MARKER)) out.set(relative(root, path), readFileSync(path, "utf8"));
    }
  };
  walk(root);
  return out;
}


/** The revision automation made: the publish sweep starts its orchestration, as its timer would. */
async function nextRevision(after: number): Promise<Revision> {
  const made = await until(async () => (await admin.policy.revisions()).items.find((r) => r.number > after));
  await t.app.host.invokeTimer("gatewayPublishSweep");
  return until(async () => {
    const r = await admin.policy.revision(made.id);
    return r.status === "pending" ? undefined : r;
  });
}

beforeAll(async () => {
  t = await startTestApp();
  admin = await t.as("t-exp-pub", "carol", ["TenantAdmin"]);
  dev = await t.as("t-exp-pub", "alice", ["Developer"]);
  const settings = await admin.settings.get();
  await admin.settings.put({ settings: { tokens: { perMinute: { limit: 1000 } } } }, settings.etag);
  for (const name of ["exempted", "other"]) {
    const p = await admin.projects.create(projectSpec(name));
    await admin.models.create(p.id, {
      name: "gpt-4o",
      provider: "azure-openai",
      modelName: "gpt-4o",
      backends: [{ id: "weu", url: `https://${name}.openai.azure.com`, region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
    });
    if (name === "exempted") exempted = p;
    else other = p;
  }
});
afterAll(() => t.stop());

describe("an exemption's effect on the published gateway", () => {
  it("activation republishes only the exempted project's policy; revocation restores the baseline byte for byte", async () => {
    const baselineResult = await admin.policy.publish({ reason: "baseline" });
    await until(async () => ((await admin.policy.revision(baselineResult.revision!.id)).status === "published" ? true : undefined));
    const baseline = gatewayFiles();
    const policyFile = (p: Project) => `apis/${N.api(p.id)}/policies/policy.xml`;
    expect(baseline.get(policyFile(exempted))).toContain('tokens-per-minute="1000"');

    const requested = await dev.exemptions.request({
      control: "tokens.perMinute",
      scope: { level: "project", projectId: exempted.id },
      relaxation: { kind: "limit", value: 50_000 },
      category: "waiver",
      owner: "olga",
      reason: { deliveryBlocker: "load test", affectedControl: "tokens per minute 1000", expectedEndState: "quota raised properly" },
      compensatingControls: ["load test window watched by SRE"],
      evidence: ["https://tickets.example.com/LOAD-7"],
      expiresAt: new Date(Date.now() + 7 * DAY).toISOString(),
    });
    // 50× the limit in force: high risk, so a second TenantAdmin approves too.
    let approval = await admin.approvals.get(requested.approvalId);
    expect(approval.route?.risk).toBe("high");
    approval = await admin.approvals.decide(approval.id, { decision: "approve", justification: "window agreed" }, approval.etag);
    const second = await t.as("t-exp-pub", "tess", ["TenantAdmin"]);
    await second.approvals.decide(approval.id, { decision: "approve", justification: "window agreed" }, approval.etag);
    await until(async () => ((await dev.exemptions.get(requested.id)).status === "active" ? true : undefined));

    const activated = await nextRevision(1);
    expect(activated).toMatchObject({ number: 2, status: "published", createdBy: expect.stringMatching(/^system:|olga|carol/) as unknown });
    expect(activated.changes).toEqual([{ ref: `policy:api/${N.api(exempted.id)}`, change: "modified" }]);
    const during = gatewayFiles();
    expect(during.get(policyFile(exempted))).toContain('tokens-per-minute="50000"');
    // Nothing else moved: every other file of the gateway (the policy's .json twin aside) is as it was.
    const changed = [...baseline].filter(([path, content]) => during.get(path) !== content).map(([path]) => path);
    expect(changed.sort()).toEqual([policyFile(exempted).replace(/\.xml$/, ".json"), policyFile(exempted)]);
    expect(during.get(policyFile(other))).toContain('tokens-per-minute="1000"');

    const active = await dev.exemptions.get(requested.id);
    await admin.exemptions.revoke(requested.id, { reason: "test done" }, active.etag);
    const reverted = await nextRevision(2);
    expect(reverted.status).toBe("published");
    const after = gatewayFiles();
    expect([...after.keys()].sort()).toEqual([...baseline.keys()].sort());
    for (const [path, content] of baseline) expect(after.get(path), path).toBe(content);

    // A rollback restores configuration, never an ended exemption: after a settings change is published,
    // rolling back to the revision made while the exemption was active brings back that revision's
    // settings (1000 tokens per minute) compiled without the exemption it no longer has.
    const settings = await admin.settings.get();
    await admin.settings.put({ settings: { tokens: { perMinute: { limit: 2000 } } } }, settings.etag);
    const raised = await admin.policy.publish({ reason: "raise the limit" });
    await until(async () => ((await admin.policy.revision(raised.revision!.id)).status === "published" ? true : undefined));
    expect(gatewayFiles().get(policyFile(exempted))).toContain('tokens-per-minute="2000"');
    const rolled = await admin.policy.rollback(activated.id, { reason: "back to the exemption's revision" });
    expect(rolled.changed).toBe(true);
    await until(async () => ((await admin.policy.revision(rolled.revision!.id)).status === "published" ? true : undefined));
    const restored = gatewayFiles();
    expect(restored.get(policyFile(exempted))).toContain('tokens-per-minute="1000"');
    expect(restored.get(policyFile(exempted))).not.toContain("50000");
    for (const [path, content] of baseline) expect(restored.get(path), path).toBe(content);
  });
});
