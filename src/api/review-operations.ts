import { z } from "zod";
import {
  AccessReview,
  AccessReviewId,
  AccessReviewList,
  AccessReviewListQuery,
  AccessReviewSpec,
  ReviewDecisionSpec,
  ReviewItem,
  ReviewItemId,
  ReviewItemList,
  ReviewItemListQuery,
  ReviewStopSpec,
} from "../domain/reviews/schema.js";
import { ANY_TENANT_ROLE, type Access } from "./access.js";
import { AUTH_ERRORS, JSON_TYPES } from "./common.js";
import { defineOperation, type Operation } from "./contract.js";

const ReviewParams = z.strictObject({ reviewId: AccessReviewId });
const ItemParams = z.strictObject({ reviewId: AccessReviewId, itemId: ReviewItemId });

/**
 * Starting, stopping and applying: TenantAdmin; for a campaign of a project, its ProjectAdmins, by tenant role
 * or assigned on the project. These paths name no project, so the gate cannot see project assignments: it
 * lets everyone through and the service decides (mayManage).
 */
const REVIEW_MANAGERS: Access = { tenant: ["TenantAdmin"], own: { who: "a ProjectAdmin of the campaign's project (tenant role, or assigned on the project)", anyone: true } };
/** Reading a campaign: its overseers, and its reviewers and its project's ProjectAdmins (the service checks which). */
const REVIEW_READERS: Access = { tenant: ["TenantAdmin", "Auditor"], own: { who: "the campaign's reviewers and its project's ProjectAdmins", anyone: true } };

export const createAccessReview = defineOperation({
  operationId: "createAccessReview",
  method: "POST",
  path: "/access-reviews",
  summary: "Start (or schedule) an access review of one kind of access in a project or the tenant; an orchestration runs its stages",
  tag: "access reviews",
  access: { ...REVIEW_MANAGERS, note: "a tenant-wide campaign: TenantAdmin only" },
  body: AccessReviewSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 201, schema: AccessReview, description: "The campaign, scheduled; it starts at startAt (now by default)" },
  errors: [...AUTH_ERRORS, 404, 413, 415],
  cli: "reviews create",
});

export const listAccessReviews = defineOperation({
  operationId: "listAccessReviews",
  method: "GET",
  path: "/access-reviews",
  summary: "List access reviews, newest first (filters: status, projectId, reviewer=me)",
  tag: "access reviews",
  access: { tenant: ANY_TENANT_ROLE, own: { who: "the campaigns they review now", anyone: true, lists: true }, note: "TenantAdmin and Auditor see every campaign, a project's ProjectAdmin that project's; everyone else the ones they review" },
  query: AccessReviewListQuery,
  success: { status: 200, schema: AccessReviewList, description: "One page of campaigns" },
  errors: AUTH_ERRORS,
  cli: "reviews list",
});

export const getAccessReview = defineOperation({
  operationId: "getAccessReview",
  method: "GET",
  path: "/access-reviews/{reviewId}",
  summary: "Get an access review: its stages, status and, once completed, its report",
  tag: "access reviews",
  access: REVIEW_READERS,
  params: ReviewParams,
  success: { status: 200, schema: AccessReview, description: "The campaign" },
  errors: [...AUTH_ERRORS, 404],
  cli: "reviews show",
});

export const listAccessReviewItems = defineOperation({
  operationId: "listAccessReviewItems",
  method: "GET",
  path: "/access-reviews/{reviewId}/items",
  summary: "The items of an access review with their recommendations, decisions and outcomes (a reviewer sees the items they review)",
  tag: "access reviews",
  access: REVIEW_READERS,
  params: ReviewParams,
  query: ReviewItemListQuery,
  success: { status: 200, schema: ReviewItemList, description: "One page of items" },
  errors: [...AUTH_ERRORS, 404],
  cli: "reviews items",
});

export const decideAccessReviewItem = defineOperation({
  operationId: "decideAccessReviewItem",
  method: "POST",
  path: "/access-reviews/{reviewId}/items/{itemId}:decide",
  summary: "Decide an item in the current stage: approve keeps the access, deny removes it when the outcomes are applied",
  tag: "access reviews",
  access: { tenant: [], own: { who: "the item's reviewers in the current stage (never its holder)", anyone: true } },
  params: ItemParams,
  body: ReviewDecisionSpec,
  bodyTypes: JSON_TYPES,
  // Optional: a reviewer who sends the item's ETag decides only on what they read (two reviewers of a stage race).
  ifMatch: "optional",
  success: { status: 200, schema: ReviewItem, description: "The item with the decision" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 413, 415],
  cli: "reviews decide",
});

export const applyAccessReview = defineOperation({
  operationId: "applyAccessReview",
  method: "POST",
  path: "/access-reviews/{reviewId}:apply",
  summary: "Apply a completed campaign's removals (when it did not auto-apply, or to retry failed ones); If-Match required",
  tag: "access reviews",
  access: REVIEW_MANAGERS,
  params: ReviewParams,
  ifMatch: true,
  success: { status: 202, schema: AccessReview, description: "The campaign, applying" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 428],
  cli: "reviews apply",
});

export const stopAccessReview = defineOperation({
  operationId: "stopAccessReview",
  method: "POST",
  path: "/access-reviews/{reviewId}:stop",
  summary: "Stop a campaign: a scheduled one is canceled, one in progress completes now with its completion settings; If-Match required",
  tag: "access reviews",
  access: REVIEW_MANAGERS,
  params: ReviewParams,
  body: ReviewStopSpec,
  bodyTypes: JSON_TYPES,
  ifMatch: true,
  success: { status: 200, schema: AccessReview, description: "The campaign, canceled or stopping" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 413, 415, 428],
  cli: "reviews stop",
});

export const reviewOperations: readonly Operation[] = [createAccessReview, listAccessReviews, getAccessReview, listAccessReviewItems, decideAccessReviewItem, applyAccessReview, stopAccessReview];
