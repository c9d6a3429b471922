import type { ActivityHandler, OrchestrationContext, OrchestrationHandler } from "durable-functions";
import { getServices } from "../../src/app/services.js";
import { isFinal, type CampaignState } from "../../src/domain/reviews/campaign.js";
import { ACCESS_REVIEW_ORCHESTRATOR, type AccessReviewInput } from "../../src/domain/reviews/service.js";
import { activity, orchestration, retryOptions } from "../../src/workflows/registration.js";

/** Raised on the orchestration (instance id = the campaign's id) when it should look now (a stop). */
export const WAKE_EVENT = "wake";

/** The longest single timer: long stages and far starts are waited out in steps (timers of some storage providers are capped). */
const MAX_WAIT_MS = 6 * 24 * 3600 * 1000;

/**
 * Drives one access review: one idempotent step (accessReviewAdvance) whenever something is due —
 * the start, the halfway reminder, a stage's end, completion, the removals in chunks — and in between
 * a timer, or a wake-up from a stop. The step decides everything from the stored campaign and the
 * clock; this orchestrator only waits. Deterministic: no clock, randomness or I/O here.
 */
const orchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput<AccessReviewInput>();
  const retry = retryOptions(2000, 5);
  const step = { ...input, instanceId: context.df.instanceId };
  let state: CampaignState = yield context.df.callActivityWithRetry("accessReviewAdvance", retry, step);
  // One wait for a wake-up at a time, kept across timers until it is used: an event goes to the newest
  // open wait, so a fresh wait per loop would leave a raised wake-up with one that is no longer watched.
  let wake = context.df.waitForExternalEvent(WAKE_EVENT);
  while (!isFinal(state.status)) {
    if (state.wakeAt !== undefined) {
      const cap = context.df.currentUtcDateTime.getTime() + MAX_WAIT_MS;
      const timer = context.df.createTimer(new Date(Math.min(Date.parse(state.wakeAt), cap)));
      const winner: unknown = yield context.df.Task.any([timer, wake]);
      if (winner === wake) {
        if (!timer.isCompleted) timer.cancel();
        wake = context.df.waitForExternalEvent(WAKE_EVENT);
      }
    }
    state = yield context.df.callActivityWithRetry("accessReviewAdvance", retry, step);
  }
  return state.status;
};

orchestration(ACCESS_REVIEW_ORCHESTRATOR, orchestrator);

const advance: ActivityHandler = async (input: AccessReviewInput & { instanceId: string }) =>
  (await getServices()).accessReviews.advance(input.tenantId, input.reviewId, `orchestration:${input.instanceId}`);
activity("accessReviewAdvance", advance);
