import { describe, expect, it } from "vitest";
import { isServed, toAgentsInput } from "../../src/pillars/agents/compiler.js";
import type { AgentDoc } from "../../src/pillars/agents/documents.js";
import { MAX_PROJECT_AGENTS, PolicyAgent } from "../../src/policy/input.js";

const agent = (i: number, over: Partial<Record<string, unknown>> = {}): AgentDoc =>
  ({
    id: `agt_${String(i).padStart(20, "0")}`,
    lifecycle: { state: "active" },
    enabled: true,
    endpoint: { url: `https://agents.example.com/a${i}/a2a` },
    guardrails: { models: [], tools: [], dataClasses: ["internal"], limits: {} },
    ...over,
  }) as unknown as AgentDoc;

describe("the agents a project's gateway serves (compiler input)", () => {
  it("serves active and deprecated agents that are enabled, present at their source and have a servable endpoint", () => {
    const docs = [
      agent(1),
      agent(2, { lifecycle: { state: "deprecated", sunsetDate: "2027-01-01" } }),
      agent(3, { lifecycle: { state: "draft" } }),
      agent(4, { enabled: false }),
      agent(5, { sync: { state: "removedAtSource" } }),
      agent(6, { endpoint: { url: "http://10.0.0.1/a2a" } }),
      agent(7, { endpoint: { url: `https://agents.example.com/${"a".repeat(2001)}` } }),
    ];
    expect(docs.map((d) => isServed(d, false))).toEqual([true, true, false, false, false, false, false]);
    expect(toAgentsInput(docs, false).map((a) => [a.id, a.status, a.sunsetDate])).toEqual([
      [docs[0]!.id, "active", undefined],
      [docs[1]!.id, "deprecated", "2027-01-01"],
    ]);
  });

  it("holds at most what the compiler takes, the first by id: more never makes the project's input invalid (which would freeze it at the gateway)", () => {
    const docs = Array.from({ length: MAX_PROJECT_AGENTS + 2 }, (_, i) => agent(MAX_PROJECT_AGENTS + 2 - i)).concat(agent(9999, { enabled: false }));
    const served = toAgentsInput(docs, false);
    expect(served).toHaveLength(MAX_PROJECT_AGENTS);
    expect(served.map((a) => a.id)).toEqual(docs.filter((d) => d.enabled).map((d) => d.id).sort().slice(0, MAX_PROJECT_AGENTS));
    for (const a of served) expect(PolicyAgent.safeParse(a).success).toBe(true);
  });
});
