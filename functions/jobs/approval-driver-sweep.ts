import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";
import { approvalDrive } from "../../src/domain/approvals/drive.js";
import { ensureDriver } from "../../src/workflows/drive.js";
import { durableClient, durableClientInput } from "../../src/workflows/registration.js";
import { DECISION_EVENT } from "../workflows/approval.js";

// Deadlines hold without the orchestration (docs/durable.md, "Drivers and sweeps"). For every pending
// request: past its stage's deadline → expired now (the stage timer's own transition), whatever state
// its orchestration is in; a request its subject never recorded (a crash between the two writes) →
// withdrawn; otherwise its orchestration must be alive — a missing one (its start failed,
// it was purged) is started, a failed or terminated one is started again — always with the request's
// id as instance id, so a request never has two. Then finished requests are settled.
app.timer("approvalDriverSweep", {
  schedule: "%APPROVAL_SWEEP_SCHEDULE%",
  extraInputs: [durableClientInput()],
  handler: async (_timer, context) => {
    const { approvals } = await getServices();
    const client = durableClient(context);
    const correlationId = `sweep:${context.invocationId}`;
    const count = { expired: 0, withdrawn: 0, started: 0, restarted: 0 };
    for await (const pending of approvals.pendingEverywhere()) {
      try {
        const { approval, expired } = await approvals.expireIfDue(pending.tenantId, pending.id, correlationId);
        if (expired) {
          count.expired += 1;
          // A live orchestration looks again and winds down (settles) now, not at its own timer.
          await client.raiseEvent(pending.id, DECISION_EVENT, { expired: true }).catch(() => undefined);
        }
        if (approval.status !== "pending") continue;
        if (await approvals.withdrawIfOrphaned(pending.tenantId, pending.id, correlationId)) {
          count.withdrawn += 1;
          await client.raiseEvent(pending.id, DECISION_EVENT, { withdrawn: true }).catch(() => undefined);
          continue;
        }
        const outcome = await ensureDriver(client, approvalDrive(pending), async () => (await approvals.state(pending.tenantId, pending.id)).status === "pending");
        if (outcome === "started" || outcome === "restarted") count[outcome] += 1;
      } catch (err) {
        // One request's trouble (a store hiccup, the status endpoint) must not stop the others.
        context.error(`approval driver sweep: ${pending.id}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (count.expired + count.withdrawn + count.started + count.restarted > 0) {
      context.warn(
        `approval driver sweep: ${count.expired} past-due request(s) expired, ${count.withdrawn} request(s) their subject never recorded withdrawn, ${count.started} missing and ${count.restarted} failed or terminated orchestration(s) started`,
      );
    }
    // Crash safety for the settle hook: finished requests whose subject never learned the outcome.
    let settled = 0;
    for await (const done of approvals.unsettledEverywhere()) {
      try {
        if ((await approvals.settle(done.tenantId, done.id, correlationId)) === "settled") settled += 1;
      } catch (err) {
        context.error(`settling approval ${done.id} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (settled > 0) context.warn(`approval driver sweep settled ${settled} finished approval(s)`);
  },
});
