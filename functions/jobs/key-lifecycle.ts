import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";
import { durableDrivers } from "../../src/workflows/drive.js";
import { durableClient, durableClientInput } from "../../src/workflows/registration.js";

// Every run looks at every key and does what its state calls for (src/domain/keys/lifecycle.ts), so a
// missed run is simply caught up by the next one and running twice changes nothing: expiry notices,
// expiry, scheduled rotations (paced: at most KEY_ROTATIONS_PER_RUN start per run), rotations whose
// driver is missing, failed or terminated, gateway changes not yet confirmed, and a paced read-back of
// key subscriptions (at most READBACKS_PER_RUN a run): one edited at the gateway is reported and put back.
app.timer("keyLifecycle", {
  schedule: "%KEY_LIFECYCLE_SCHEDULE%",
  extraInputs: [durableClientInput()],
  handler: async (_timer, context) => {
    const { keys } = await getServices();
    await keys.lifecycle.run(`timer:${context.invocationId}`, durableDrivers(durableClient(context)), context);
  },
});
