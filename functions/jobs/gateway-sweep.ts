import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";
import { ensureDriver } from "../../src/workflows/drive.js";
import { durableClient, durableClientInput } from "../../src/workflows/registration.js";

// Failed system revisions are asked for again with backoff (PublishService.retryFailedSystemPublishes).
// Revisions made without an HTTP request (exemption activation and expiry, automation), revisions
// whose orchestration failed to start, and revisions whose orchestration failed or was terminated
// before it could mark them published or failed are pending without a live driver: start one, with the
// revision's id as instance id, so a revision can never be applied by two orchestrations (applying is
// idempotent and resumes from what the gateway holds).
app.timer("gatewayPublishSweep", {
  schedule: "%GATEWAY_PUBLISH_SWEEP_SCHEDULE%",
  extraInputs: [durableClientInput()],
  handler: async (_timer, context) => {
    const { publishing } = await getServices();
    const client = durableClient(context);
    // System publishes that failed are asked for again first, so their new revision gets its driver below.
    try {
      const { asked, failed } = await publishing.retryFailedSystemPublishes(`timer:${context.invocationId}`);
      if (asked > 0) context.warn(`gateway publish sweep asked again for ${asked} failed system publish(es)`);
      for (const f of failed) context.error(`gateway publish sweep: retrying revision ${f.revisionId} of tenant ${f.tenantId}: ${f.error}`);
    } catch (err) {
      context.error(`gateway publish sweep: retrying failed system publishes: ${err instanceof Error ? err.message : String(err)}`);
    }
    let restarted = 0;
    for await (const pending of publishing.pendingRevisions()) {
      try {
        const outcome = await ensureDriver(client, pending.drive, () => publishing.isPending(pending.tenantId, pending.revisionId));
        if (outcome === "restarted") restarted += 1;
      } catch (err) {
        context.error(`gateway publish sweep: revision ${pending.revisionId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (restarted > 0) context.warn(`gateway publish sweep started ${restarted} failed or terminated publish orchestration(s) again`);
  },
});

// Operators may still edit in the APIM portal: read the gateway back and report what differs from the
// last published revision ("gateway-first, not gateway-only").
app.timer("gatewayDriftCheck", {
  schedule: "%DRIFT_CHECK_SCHEDULE%",
  handler: async (_timer, context) => {
    const { publishing } = await getServices();
    for await (const tenantId of publishing.drift.publishedTenants()) {
      try {
        const report = await publishing.drift.check(tenantId, `timer:${context.invocationId}`);
        if (report.status === "drifted") context.warn(`gateway drift in tenant ${tenantId}: ${report.items.length} artifact(s) differ from revision ${report.revisionNumber}`);
      } catch (err) {
        // One tenant's unreachable gateway must not stop the others' checks.
        context.error(`drift check failed for tenant ${tenantId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  },
});
