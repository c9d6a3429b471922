import { describe, expect, it } from "vitest";

describe("orchestrator determinism check", () => {
  it("rejects clocks, randomness, timers and I/O inside orchestrator bodies, and accepts activities that use them", async () => {
    const { orchestratorProblems } = (await import("../../scripts/check-layering.mjs")) as {
      orchestratorProblems: (text: string, name: string) => string[];
    };
    const bad = `
      const o = function* (context) {
        const now = Date.now();
        const d = new Date();
        const r = Math.random();
        const s = await getServices();
        setTimeout(() => 1, 10);
        yield context.df.callActivity("x", process.env.FOO);
      };
      const activity = async () => { await fetch("http://x"); return new Date(); };`;
    const problems = orchestratorProblems(bad, "bad.ts");
    for (const what of ["Date.now()", "new Date() without arguments", "Math.random()", "services", "timers", "process.env", "await"]) {
      expect(problems.some((p) => p.includes(what)), what).toBe(true);
    }
    const good = `
      const o = function* (context) {
        const at = new Date(context.df.currentUtcDateTime.getTime() + 1000); // an argument: deterministic
        yield context.df.createTimer(at);
        return yield context.df.callActivity("x", context.df.getInput());
      };
      const activity = async () => { await fetch("http://x"); return Date.now(); };`;
    expect(orchestratorProblems(good, "good.ts")).toEqual([]);
  });
});
