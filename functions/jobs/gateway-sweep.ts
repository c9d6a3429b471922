import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";
import { durableClient, durableClientInput, startIfMissing } from "../../src/workflows/registration.js";
import { PUBLISH_ORCHESTRATOR, publishInput } from "../workflows/publish.js";

// Revisions made without an HTTP request (exemption activation and expiry, automation) and revisions
// whose orchestration failed to start are pending without a driver: start one, with the revision's id
// as instance id, so a revision can never be applied by two orchestrations.
app.timer("gatewayPublishSweep", {
  schedule: "%GATEWAY_PUBLISH_SWEEP_SCHEDULE%",
  extraInputs: [durableClientInput()],
  handler: async (_timer, context) => {
    const { publishing, config } = await getServices();
    const client = durableClient(context);
    for await (const pending of publishing.pendingRevisions()) {
      await startIfMissing(client, PUBLISH_ORCHESTRATOR, pending.revisionId, publishInput(pending.tenantId, pending.revisionId, config.publishRetry));
    }
  },
});

// Operators may still edit in the APIM portal: read the gateway back and report what differs from the
// last published revision ("gateway-first, not gateway-only").
app.timer("gatewayDriftCheck", {
  schedule: "%DRIFT_CHECK_SCHEDULE%",
  handler: async (_timer, context) => {
    const { publishing } = await getServices();
    for await (const tenantId of publishing.publishedTenants()) {
      try {
        const report = await publishing.checkDrift(tenantId, `timer:${context.invocationId}`);
        if (report.status === "drifted") context.warn(`gateway drift in tenant ${tenantId}: ${report.items.length} artifact(s) differ from revision ${report.revisionNumber}`);
      } catch (err) {
        // One tenant's unreachable gateway must not stop the others' checks.
        context.error(`drift check failed for tenant ${tenantId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  },
});
