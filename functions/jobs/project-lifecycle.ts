import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";

// Sandboxes expire at their review date (docs/project-lifecycle.md): notices 14 days and 1 day before,
// then the project is locked and its keys suspended (nothing is deleted). Idempotent and catch-up
// safe: every step is a conditional write decided from the stored project and the clock. It also records
// gate drift: a test or prod project no longer passing the time-bound gates of its environment (nothing locked).
app.timer("projectLifecycle", {
  schedule: "%PROJECT_LIFECYCLE_SCHEDULE%",
  handler: async (_timer, context) => {
    const { projectLifecycle } = await getServices();
    const { notified, locked, suspended, resumed, driftStarted, driftChanged, driftEnded } = await projectLifecycle.sweep(`sweep:${context.invocationId}`);
    if (notified + locked + suspended + resumed > 0) {
      context.log(`project lifecycle: ${notified} expiry notice(s), ${locked} sandbox(es) locked, ${suspended} key(s) suspended, ${resumed} key(s) of unlocked sandboxes resumed`);
    }
    if (driftStarted + driftChanged + driftEnded > 0) {
      context.log(`project lifecycle: gate drift started in ${driftStarted}, changed in ${driftChanged}, ended in ${driftEnded} project(s)`);
    }
  },
});
