import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";

// Delivers outbox records as CloudEvents. Timer triggers are singletons, so runs never overlap.
app.timer("outboxRelay", {
  schedule: "%OUTBOX_RELAY_SCHEDULE%",
  handler: async (_timer, context) => {
    const { relay } = await getServices();
    const { delivered, setAside } = await relay.runOnce();
    if (delivered > 0) context.log(`outbox relay delivered ${delivered} event(s)`);
    if (setAside > 0) context.warn(`outbox relay set aside ${setAside} undeliverable record(s)`);
  },
});
