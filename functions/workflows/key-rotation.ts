import type { ActivityHandler, OrchestrationContext, OrchestrationHandler } from "durable-functions";
import { getServices } from "../../src/app/services.js";
import { KEY_ROTATION_ORCHESTRATOR, type KeyRotationInput } from "../../src/domain/keys/rotation.js";
import { activity, orchestration, retryOptions } from "../../src/workflows/registration.js";

/** After the retries of a step ran out, wait this long and start the step's retries again: a rotation always finishes. */
const STEP_PAUSE_MS = 60_000;

/**
 * Drives one key rotation (ADR 008): the new secret, already in the standby slot, is published and
 * confirmed at the gateway (both secrets valid) → the overlap passes on a durable timer → the old
 * secret is replaced by a filler, published and confirmed (never valid again). Each step is an
 * idempotent activity keyed by the rotation id; a crash or a failing gateway only repeats a step.
 * Deterministic: no clock, randomness or I/O here.
 */
const orchestrator: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput<KeyRotationInput>();
  const retry = retryOptions(input.retry.firstIntervalMs, input.retry.maxAttempts);
  retry.backoffCoefficient = 2;
  const step = { ...input, instanceId: context.df.instanceId };

  let confirmed: { state: "gone" } | { state: "overlap"; until: string } | undefined;
  while (!confirmed) {
    try {
      confirmed = yield context.df.callActivityWithRetry("keyRotationConfirm", retry, step);
    } catch {
      yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + STEP_PAUSE_MS));
    }
  }
  if (confirmed.state === "gone") return "gone";
  const until = new Date(confirmed.until);
  if (until.getTime() > context.df.currentUtcDateTime.getTime()) yield context.df.createTimer(until);

  for (;;) {
    try {
      const done: string = yield context.df.callActivityWithRetry("keyRotationRetire", retry, step);
      return done;
    } catch {
      yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + STEP_PAUSE_MS));
    }
  }
};

orchestration(KEY_ROTATION_ORCHESTRATOR, orchestrator);

const confirm: ActivityHandler = async (i: KeyRotationInput & { instanceId: string }) =>
  (await getServices()).keys.rotation.confirm(i.tenantId, i.projectId, i.keyId, i.rotationId, `orchestration:${i.instanceId}`);
activity("keyRotationConfirm", confirm);

const retire: ActivityHandler = async (i: KeyRotationInput & { instanceId: string }) =>
  (await getServices()).keys.rotation.retire(i.tenantId, i.projectId, i.keyId, i.rotationId, `orchestration:${i.instanceId}`);
activity("keyRotationRetire", retire);
