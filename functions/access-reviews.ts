import { app } from "@azure/functions";
import {
  applyAccessReview,
  createAccessReview,
  decideAccessReviewItem,
  getAccessReview,
  listAccessReviewItems,
  listAccessReviews,
  stopAccessReview,
} from "../src/api/review-operations.js";
import { endpoint } from "../src/http/endpoint.js";
import { pageResult } from "../src/http/paging.js";
import { driven } from "../src/workflows/drive.js";
import { durableClient, durableClientInput } from "../src/workflows/registration.js";
import { WAKE_EVENT } from "./workflows/access-review.js";

// Creating and applying start the campaign's orchestration (the access review sweep starts any that is missing).
const clientInput = durableClientInput();

app.http(createAccessReview.operationId, {
  ...endpoint(createAccessReview, async ({ body }, ctx, s, invocation) => ({ body: await driven(invocation, await s.accessReviews.create(ctx, body)) })),
  extraInputs: [clientInput],
});

app.http(listAccessReviews.operationId, endpoint(listAccessReviews, async ({ query }, ctx, s) => ({ body: pageResult(listAccessReviews, { query }, await s.accessReviews.list(ctx, query)) })));

app.http(getAccessReview.operationId, endpoint(getAccessReview, async ({ params }, ctx, s) => ({ body: await s.accessReviews.get(ctx, params.reviewId) })));

app.http(listAccessReviewItems.operationId, endpoint(listAccessReviewItems, async ({ params, query }, ctx, s) => ({
  body: pageResult(listAccessReviewItems, { params, query }, await s.accessReviews.listItems(ctx, params.reviewId, query)),
})));

app.http(decideAccessReviewItem.operationId, endpoint(decideAccessReviewItem, async ({ params, body, ifMatch }, ctx, s) => ({
  body: await s.accessReviews.decide(ctx, params.reviewId, params.itemId, body, ifMatch),
})));

app.http(applyAccessReview.operationId, {
  ...endpoint(applyAccessReview, async ({ params, ifMatch }, ctx, s, invocation) => ({ body: await driven(invocation, await s.accessReviews.apply(ctx, params.reviewId, ifMatch)) })),
  extraInputs: [clientInput],
});

app.http(stopAccessReview.operationId, {
  ...endpoint(stopAccessReview, async ({ params, body, ifMatch }, ctx, s, invocation) => {
    const review = await s.accessReviews.stop(ctx, params.reviewId, body, ifMatch);
    // The stop is stored; the orchestration only needs to look now (it would at its next timer anyway).
    if (review.status !== "canceled") {
      await durableClient(invocation)
        .raiseEvent(review.id, WAKE_EVENT, {})
        .catch((err: unknown) => invocation.warn(`could not wake access review ${review.id}: ${err instanceof Error ? err.message : String(err)}`));
    }
    return { body: review };
  }),
  extraInputs: [clientInput],
});
