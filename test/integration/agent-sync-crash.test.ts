import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AigovClient } from "../../src/client/index.js";
import { startBedrockFake, startVertexFake } from "../../src/local-backends/agent-clouds/index.js";
import type { Agent } from "../../src/pillars/agents/schema.js";
import { projectSpec } from "../support/app.js";
import { startChildApp, stopChildApp } from "../support/child-app.js";
import { until } from "../support/until.js";

const ACCESS_KEY = "AKIAFAKEFAKEFAKE0002";

async function allAgents(client: AigovClient, projectId: string): Promise<Agent[]> {
  const out: Agent[] = [];
  let token: string | undefined;
  do {
    const page = await client.agents.list(projectId, { maxPageSize: 100, ...(token ? { continuationToken: token } : {}) });
    out.push(...page.items);
    token = page.continuationToken;
  } while (token);
  return out;
}

describe("agent sync survives a crash of the host", () => {
  it("killed (SIGKILL) mid-sync, the host resumes the orchestrations and converges: no duplicate agent, no lost provenance", { timeout: 240_000 }, async () => {
    // Slow clouds (every request answers after 15 ms) so the kill lands while pages are being applied.
    const [bedrock, vertex] = await Promise.all([
      startBedrockFake({ seed: "crash-b", regions: { "us-east-1": 450, "eu-west-1": 350 }, accessKeyId: ACCESS_KEY }),
      startVertexFake({ seed: "crash-v", regions: { "us-central1": 400 } }),
    ]);
    bedrock.state.setRandomFaults({ delay: 1, delayMs: 15, seed: 1 });
    vertex.state.setRandomFaults({ delay: 1, delayMs: 15, seed: 2 });
    const dataDir = mkdtempSync(join(tmpdir(), "aigov-crash-agent-sync-"));
    const first = await startChildApp(dataDir);
    const anon = new AigovClient({ endpoint: first.url });
    const token = await anon.dev.token({ tenant: "t-crash", user: "tara", roles: ["TenantAdmin"] });
    const admin = anon.withToken(token);
    const project = await admin.projects.create(projectSpec("crash"));
    const aws = await admin.connections.create({
      name: "aws",
      projectId: project.id,
      scope: { cloud: "bedrock", accountId: "123456789012", endpoint: bedrock.endpoint },
      regions: ["us-east-1", "eu-west-1"],
      credentials: { kind: "awsAccessKey", accessKeyId: ACCESS_KEY, secretAccessKey: "fake-secret-access-key-value" },
    });
    const gcp = await admin.connections.create({
      name: "gcp",
      projectId: project.id,
      scope: { cloud: "vertex", projectId: vertex.projectId, endpoint: `http://${vertex.host}:${vertex.port}` },
      regions: ["us-central1"],
      credentials: { kind: "accessToken", token: "fake-google-token" },
    });
    const runs = [await admin.connections.sync(aws.id), await admin.connections.sync(gcp.id)];
    // Some agents are in, the runs are not done: kill the host.
    await until(async () => ((await admin.agents.list(project.id, { maxPageSize: 100 })).continuationToken ? true : undefined), "the first pages applied", 60_000);
    const midway = await Promise.all([admin.connections.run(aws.id, runs[0]!.id), admin.connections.run(gcp.id, runs[1]!.id)]);
    expect(midway.some((r) => r.status === "running")).toBe(true);
    await stopChildApp(first.child, "SIGKILL");

    const second = await startChildApp(dataDir);
    const again = new AigovClient({ endpoint: second.url, token });
    const done = await until(
      async () => {
        const r = await Promise.all([again.connections.run(aws.id, runs[0]!.id), again.connections.run(gcp.id, runs[1]!.id)]);
        return r.every((x) => x.status !== "running") ? r : undefined;
      },
      "both runs finished after the restart",
      180_000,
    );
    expect(done.map((r) => r.status)).toEqual(["completed", "completed"]);

    const agents = await allAgents(again, project.id);
    const expected = [
      ...["us-east-1", "eu-west-1"].flatMap((region) => bedrock.state.list(region).map((a) => `bedrock|${region}|${a.id}`)),
      ...vertex.state.list("us-central1").map((a) => `vertex|us-central1|projects/${vertex.projectId}/locations/us-central1/reasoningEngines/${a.id}`),
    ].sort();
    const got = agents.map((a) => `${a.provenance!.cloud}|${a.provenance!.region}|${a.provenance!.sourceId}`).sort();
    expect(got).toEqual(expected);
    expect(new Set(agents.map((a) => a.id)).size).toBe(agents.length);
    for (const a of agents) {
      expect(a.sync?.state).toBe("present");
      expect(a.provenance).toMatchObject({ connectionId: a.provenance!.cloud === "bedrock" ? aws.id : gcp.id, firstSeenAt: expect.any(String), lastSyncedAt: expect.any(String), lastSeenAt: expect.any(String) });
    }
    // And a sync after the crash changes nothing.
    const third = await again.connections.sync(aws.id);
    const settled = await until(async () => {
      const r = await again.connections.run(aws.id, third.id);
      return r.status === "running" ? undefined : r;
    }, "a sync after the crash", 120_000);
    expect(settled.counts).toMatchObject({ discovered: 0, changed: 0, removedAtSource: 0, unchanged: 800 });
    await stopChildApp(second.child);
    await Promise.all([bedrock.close(), vertex.close()]);
  });
});
