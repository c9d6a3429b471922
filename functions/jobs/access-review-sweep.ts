import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";
import { accessReviewDrive } from "../../src/domain/reviews/service.js";
import { ensureDriver } from "../../src/workflows/drive.js";
import { durableClient, durableClientInput } from "../../src/workflows/registration.js";

// Every campaign that is scheduled, in progress or applying has a live orchestration (docs/durable.md,
// "Drivers and sweeps"): a missing one (its start failed, it was purged, or it is the next occurrence
// of a recurring review, which nothing else starts) is started, a failed or terminated one is started
// again — always with the campaign's id as instance id, so a campaign never has two.
app.timer("accessReviewSweep", {
  schedule: "%ACCESS_REVIEW_SWEEP_SCHEDULE%",
  extraInputs: [durableClientInput()],
  handler: async (_timer, context) => {
    const { accessReviews } = await getServices();
    const client = durableClient(context);
    const count = { started: 0, restarted: 0 };
    for await (const review of accessReviews.unfinishedEverywhere()) {
      try {
        const outcome = await ensureDriver(client, accessReviewDrive(review), () => accessReviews.needsDriver(review.tenantId, review.id));
        if (outcome === "started" || outcome === "restarted") count[outcome] += 1;
      } catch (err) {
        // One campaign's trouble must not stop the others.
        context.error(`access review sweep: ${review.id}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (count.started + count.restarted > 0) context.log(`access review sweep: ${count.started} missing and ${count.restarted} ended orchestration(s) started`);
  },
});
