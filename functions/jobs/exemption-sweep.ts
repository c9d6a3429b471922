import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";

// Expiry notices (7 days, 1 day) and expiry of exemptions, with a republish for each expiry; and the
// approvals deciding open exemptions: expired when past their deadline and settled when finished, even
// if their orchestration failed or was terminated (docs/durable.md, "Drivers and sweeps").
// Idempotent and catch-up safe: every step is a conditional write decided from the stored state and
// the clock, so a missed run (downtime) is made good by the next one. Timer triggers are singletons.
app.timer("exemptionSweep", {
  schedule: "%EXEMPTION_SWEEP_SCHEDULE%",
  handler: async (_timer, context) => {
    const { exemptions } = await getServices();
    const { notified, expired, settled } = await exemptions.sweep(`sweep:${context.invocationId}`);
    if (notified + expired + settled > 0) context.log(`exemption sweep: ${notified} notice(s), ${expired} expiry(ies), ${settled} decided approval(s) settled`);
  },
});
