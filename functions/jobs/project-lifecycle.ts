import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";

// Sandboxes expire at their review date (docs/project-lifecycle.md): notices 14 days and 1 day before,
// then the project is locked and its keys suspended (nothing is deleted). Idempotent and catch-up
// safe: every step is a conditional write decided from the stored project and the clock.
app.timer("projectLifecycle", {
  schedule: "%PROJECT_LIFECYCLE_SCHEDULE%",
  handler: async (_timer, context) => {
    const { projectLifecycle } = await getServices();
    const { notified, locked, suspended, resumed } = await projectLifecycle.sweep(`sweep:${context.invocationId}`);
    if (notified + locked + suspended + resumed > 0) {
      context.log(`project lifecycle: ${notified} expiry notice(s), ${locked} sandbox(es) locked, ${suspended} key(s) suspended, ${resumed} key(s) of unlocked sandboxes resumed`);
    }
  },
});
