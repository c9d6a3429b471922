import type { ActivityHandler, OrchestrationContext, OrchestrationHandler } from "durable-functions";
import { getServices } from "../../src/app/services.js";
import { PUBLISH_ORCHESTRATOR, type ApplyResult, type PublishInput } from "../../src/domain/publishing/applier.js";
import { failureReason } from "../../src/workflows/failure.js";
import { activity, orchestration, retryOptions } from "../../src/workflows/registration.js";

/** While another revision holds the tenant's gateway, wait this long between attempts, at most this often. */
const BUSY_WAIT_MS = 5000;
const MAX_BUSY_WAITS = 240;
/** Apply calls one publish may take (each sends for up to PUBLISH_SLICE_SECONDS): bounds the history. */
const MAX_SLICES = 500;

/**
 * Applies one revision to the gateway (instance id = revision id, so never twice). The apply activity
 * is retried with back-off when the gateway refuses a call (5xx, 409/412, time-outs); each retry
 * resumes from what the gateway holds. When the retries run out the revision is marked failed. An
 * apply that needs longer than one activity may run (the host's function timeout) stops part-way
 * ("continue") and is called again at once, resuming the same way.
 * Deterministic: no clock, randomness or I/O here — only activities and durable timers.
 */
const orchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput<PublishInput>();
  const retry = retryOptions(input.retry.firstIntervalMs, input.retry.maxAttempts);
  retry.backoffCoefficient = 2;
  for (let waits = 0, slices = 0; ; ) {
    let result: ApplyResult;
    try {
      result = yield context.df.callActivityWithRetry("gatewayApply", retry, { ...input, instanceId: context.df.instanceId });
    } catch (err) {
      yield context.df.callActivity("gatewayPublishFailed", { ...input, instanceId: context.df.instanceId, error: failureReason(err, 2000) });
      return "failed";
    }
    if (result === "continue") {
      if (++slices < MAX_SLICES) continue;
      yield context.df.callActivity("gatewayPublishFailed", { ...input, instanceId: context.df.instanceId, error: `the publish did not finish in ${MAX_SLICES} steps` });
      return "failed";
    }
    if (result === "published") yield context.df.callActivity("gatewayKeysCatchUp", { ...input, instanceId: context.df.instanceId });
    if (result !== "busy") return result;
    if (waits++ >= MAX_BUSY_WAITS) {
      yield context.df.callActivity("gatewayPublishFailed", { ...input, instanceId: context.df.instanceId, error: "another revision held the gateway for too long" });
      return "failed";
    }
    yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + BUSY_WAIT_MS));
  }
};

orchestration(PUBLISH_ORCHESTRATOR, orchestrator);

const apply: ActivityHandler = async (input: PublishInput & { instanceId: string }) =>
  (await getServices()).publishing.applier.apply(input.tenantId, input.revisionId, `orchestration:${input.instanceId}`);
activity("gatewayApply", apply);

/** Keys waiting for what this revision published (a new profile's product) are synced at once. */
const keysCatchUp: ActivityHandler = async (input: PublishInput & { instanceId: string }) => {
  const s = await getServices();
  const projects = await s.projects.listAll(input.tenantId);
  return s.keys.sync.syncWaiting(input.tenantId, projects.map((p) => p.id), `orchestration:${input.instanceId}`);
};
activity("gatewayKeysCatchUp", keysCatchUp);

const failed: ActivityHandler = async (input: PublishInput & { instanceId: string; error: string }) =>
  (await getServices()).publishing.applier.markFailed(input.tenantId, input.revisionId, input.error, `orchestration:${input.instanceId}`);
activity("gatewayPublishFailed", failed);
