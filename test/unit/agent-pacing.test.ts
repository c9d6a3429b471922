/**
 * Pacing of cloud control-plane requests (documented per-second quotas): on a virtual clock, requests of
 * one operation start at least 1/rate apart — no one-second window holds more than the rate — while other
 * operations and other accounts or regions keep their own slots.
 */
import { describe, expect, it } from "vitest";
import { BEDROCK_AGENTS_PER_SECOND, RequestPacer } from "../../src/pillars/agents/sources/pacing.js";


describe("request pacing", () => {
  it("spreads a burst of one operation at the rate; another key is not held back", async () => {
    const starts: Record<string, number[]> = { a: [], b: [] };
    let now = 0;
    const clock = { now: () => now, sleep: async (ms: number) => void (now += ms) };
    const pacer = new RequestPacer(clock);
    // Sequential callers on a virtual clock: each waits for its slot, then "sends".
    for (let i = 0; i < 25; i++) {
      await pacer.take("acct|us-east-1|GetAgent", 10);
      starts.a!.push(now);
    }
    const windows = starts.a!.map((t0) => starts.a!.filter((t) => t >= t0 && t < t0 + 1000).length);
    expect(Math.max(...windows)).toBeLessThanOrEqual(10);
    expect(starts.a!.at(-1)).toBe(2400);
    const before = now;
    await pacer.take("acct|eu-west-1|GetAgent", 10);
    expect(now).toBe(before);
  });

  it("concurrent callers queue behind reserved slots; a zero or missing rate does not pace", async () => {
    let now = 0;
    const woken: number[] = [];
    const clock = { now: () => now, sleep: (ms: number) => new Promise<void>((r) => setTimeout(() => r(woken.push(now + ms) as unknown as void), 0)) };
    const pacer = new RequestPacer(clock);
    await Promise.all(Array.from({ length: 5 }, () => pacer.take("k", 5)));
    expect(woken).toEqual([200, 400, 600, 800]);
    now = 10_000;
    await pacer.take("free", 0);
    expect(BEDROCK_AGENTS_PER_SECOND).toEqual({ ListAgents: 8, GetAgent: 12, ListAgentAliases: 8, ListAgentActionGroups: 8, ListTagsForResource: 8 });
  });
});
