import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileNotifier } from "../../src/adapters/local/file-notifier.js";
import { AigovClient } from "../../src/client/index.js";
import { durableKeyHeader, startChildApp, stopChildApp } from "../support/child-app.js";
import { until } from "../support/until.js";


describe("an approval survives a crash of the host", () => {
  it("the process is killed while the orchestration waits; after a restart the decision completes it and no activity ran twice", { timeout: 120_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "aigov-crash-approval-"));
    const inbox = (user: string) => {
      const file = FileNotifier.inboxFile(join(dataDir, "inbox"), user);
      return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
    };
    const first = await startChildApp(dataDir);
    const anon = new AigovClient({ endpoint: first.url });
    const aliceToken = await anon.dev.token({ tenant: "t1", user: "alice", roles: ["Developer"] });
    const bobToken = await anon.dev.token({ tenant: "t1", user: "bob", roles: ["Reader"] });
    // The tenant routes tool approvals to bob.
    const admin = anon.withToken(await anon.dev.token({ tenant: "t1", user: "tara", roles: ["TenantAdmin"] }));
    await admin.approvals.putRoutes({ routes: [{ name: "tools", match: { subjectType: "model" }, stages: [{ approvers: [{ user: "bob" }], decisionTimeout: "P1D" }] }] }, "initial");
    const created = await anon.withToken(aliceToken).approvals.create({
      subject: { resourceType: "model", resourceId: "crash-me", change: { enable: true } },
      justification: "crash test",
    });
    // The first activity (sending bob his link) has run: the orchestration now waits for a decision or its timer.
    await until(() => (inbox("bob").length === 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300)); // let the engine record the activity's completion
    await stopChildApp(first.child, "SIGKILL");

    const second = await startChildApp(dataDir);
    const bob = new AigovClient({ endpoint: second.url, token: bobToken });
    const decided = await bob.approvals.decide(created.id, { decision: "approve", justification: "after the crash" }, created.etag);
    expect(decided.status).toBe("approved");
    const status = await until(async () => {
      const res = await fetch(`${second.url}/runtime/webhooks/durabletask/instances/${created.id}`, { headers: durableKeyHeader(dataDir) });
      const body = (await res.json()) as { runtimeStatus: string; output: unknown };
      return body.runtimeStatus === "Completed" ? body : undefined;
    });
    expect(status.output).toBe("approved");
    // Sending the link is the activity's side effect: it happened exactly once across the crash.
    expect(inbox("bob")).toHaveLength(1);
    await stopChildApp(second.child);
  });
});
