import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";
import { systemContext } from "../../src/domain/kernel/system.js";
import type { AgentsService } from "../../src/pillars/agents/service.js";
import { ensureDriver, startDrive } from "../../src/workflows/drive.js";
import { durableClient, durableClientInput } from "../../src/workflows/registration.js";

// Scheduled agent sync: every enabled connection whose interval has passed since its last run gets a
// run and its orchestration (a running run is joined). The switches are checked by the run itself, so a
// switched-off connection records a skipped run and touches nothing. Then every running run's driver
// must be alive (docs/durable.md, "Drivers and sweeps").
app.timer("agentSyncSchedule", {
  schedule: "%AGENT_SYNC_SCHEDULE%",
  extraInputs: [durableClientInput()],
  handler: async (_timer, context) => {
    const agents = (await (await getServices()).pillar("agents")).service as AgentsService;
    // The keys of blocked, disabled or past-sunset agents: suspended while they are, resumed once they are
    // not (what a request left unfinished, and a sunset that came; src/pillars/agents/agents.ts, sweepKeyHolds).
    try {
      const { held, released } = await agents.registry.sweepKeyHolds(`timer:${context.invocationId}`);
      if (held + released > 0) context.log(`agent key holds: ${held} key(s) suspended, ${released} resumed`);
    } catch (err) {
      context.error(`agent key holds: ${err instanceof Error ? err.message : String(err)}`);
    }
    const client = durableClient(context);
    let started = 0;
    for await (const connection of agents.sync.due()) {
      try {
        const { drive } = await agents.sync.request(systemContext(connection.tenantId, "system:agent-sync", `timer:${context.invocationId}`), connection, "schedule");
        await startDrive(client, drive);
        started += 1;
      } catch (err) {
        context.error(`agent sync: connection ${connection.id}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    // A run whose orchestration was lost (the process died before starting it, it was terminated, it
    // failed) gets it back: the run lists again from the start, which writes nothing already applied.
    let restarted = 0;
    for await (const { drive, stillRunning } of agents.sync.running()) {
      try {
        const outcome = await ensureDriver(client, drive, stillRunning);
        if (outcome === "started" || outcome === "restarted") restarted += 1;
      } catch (err) {
        context.error(`agent sync: ${drive.instanceId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (started > 0) context.log(`agent sync started ${started} run(s)`);
    if (restarted > 0) context.log(`agent sync restarted the orchestration of ${restarted} run(s)`);
  },
});
