import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";
import { durableClient, durableClientInput, startIfMissing } from "../../src/workflows/registration.js";
import { APPROVAL_ORCHESTRATOR, approvalInput } from "../workflows/approval.js";

// A request is committed before its orchestration is started; if that start failed (or the instance
// was purged), the request would wait forever. This job starts the missing driver — with the
// request's id as instance id, so it can never start a second one.
app.timer("approvalDriverSweep", {
  schedule: "%APPROVAL_SWEEP_SCHEDULE%",
  extraInputs: [durableClientInput()],
  handler: async (_timer, context) => {
    const { approvals } = await getServices();
    const client = durableClient(context);
    let started = 0;
    for await (const pending of approvals.pendingEverywhere()) {
      if (!(await startIfMissing(client, APPROVAL_ORCHESTRATOR, pending.id, approvalInput({ tenantId: pending.tenantId, id: pending.id })))) continue;
      started += 1;
    }
    if (started > 0) context.warn(`approval driver sweep started ${started} missing orchestration(s)`);
    // Crash safety for the settle hook: finished requests whose subject never learned the outcome.
    let settled = 0;
    for await (const done of approvals.unsettledEverywhere()) {
      try {
        if ((await approvals.settle(done.tenantId, done.id, `sweep:${context.invocationId}`)) === "settled") settled += 1;
      } catch (err) {
        context.error(`settling approval ${done.id} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (settled > 0) context.warn(`approval driver sweep settled ${settled} finished approval(s)`);
  },
});
