import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";
import { DEFAULT_KEY_POLICY } from "../../src/domain/projects/schema.js";
import { durableClient, durableClientInput, ensureDriver } from "../../src/workflows/registration.js";
import { KEY_ROTATION_ORCHESTRATOR, rotationInstanceId, startRotation, type KeyRotationInput } from "../workflows/key-rotation.js";

// Every run looks at every key and does what its state calls for, so a missed run is simply caught up
// by the next one and running twice changes nothing: expiry notices (14 days, 1 day; once each),
// expiry, scheduled rotation by the project's key policy, rotations whose driver is missing, failed or terminated, and
// gateway changes not yet confirmed (a revocation that could not reach the gateway is retried here).
// Scheduled rotations are paced: at most KEY_ROTATIONS_PER_RUN start per run.
app.timer("keyLifecycle", {
  schedule: "%KEY_LIFECYCLE_SCHEDULE%",
  extraInputs: [durableClientInput()],
  handler: async (_timer, context) => {
    const s = await getServices();
    const client = durableClient(context);
    const correlationId = `timer:${context.invocationId}`;
    const policies = new Map<string, Promise<{ rotateAfterDays?: number; rotationOverlapHours: number } | undefined>>();
    const policyOf = (tenantId: string, projectId: string) => {
      const k = `${tenantId}/${projectId}`;
      if (!policies.has(k)) policies.set(k, s.projects.keyPolicyOf(tenantId, projectId).then((p) => p ?? DEFAULT_KEY_POLICY));
      return policies.get(k)!;
    };
    const now = Date.now();
    let rotations = 0;
    let deferred = 0;
    type KeyRef = Parameters<typeof s.keys.housekeep>[0];
    const visit = async (listed: KeyRef) => {
      const key = await s.keys.housekeep(listed, correlationId);
      if (!key) return;
      const rotationId = key.rotation?.id;
      if (rotationId) {
        // Its driver must be alive: a missing one is started, a failed or terminated one started again
        // (every step is idempotent and keyed by the rotation id, so a restart repeats at most one step).
        const input: KeyRotationInput = { tenantId: key.tenantId, projectId: key.projectId, keyId: key.id, rotationId, retry: { ...s.config.publishRetry } };
        const stillRotating = async () => (await s.keys.latest(key))?.rotation?.id === rotationId;
        const outcome = await ensureDriver(client, KEY_ROTATION_ORCHESTRATOR, rotationInstanceId(key.id, rotationId), input, stillRotating);
        if (outcome === "restarted") context.warn(`key lifecycle: the rotation ${rotationId} of key ${key.id} had lost its orchestration; started it again`);
        return;
      }
      const policy = await policyOf(key.tenantId, key.projectId);
      if (key.status !== "active" || !policy?.rotateAfterDays) return;
      if (now - Date.parse(key.secretCreatedAt) < policy.rotateAfterDays * 86_400_000) return;
      // Paced to what the management plane allows (KEY_ROTATIONS_PER_RUN); the rest start next run.
      if (rotations >= s.config.keyRotationsPerRun) {
        deferred += 1;
        return;
      }
      const started = await s.keys.beginScheduledRotation(key.tenantId, key.projectId, key.id, policy.rotationOverlapHours, correlationId);
      if (started) {
        await startRotation(client, s, { tenantId: key.tenantId, projectId: key.projectId, keyId: key.id, rotationId: started });
        rotations += 1;
      }
    };
    // A key that fails (a concurrent write to it, a store hiccup) gets a second go at the end of the
    // run; what still fails is retried by the next run.
    const retry: KeyRef[] = [];
    for await (const key of s.keys.everyKey()) {
      await visit(key).catch((err: unknown) => {
        context.warn(`key lifecycle: key ${key.id}: ${err instanceof Error ? err.message : String(err)} (retried in this run)`);
        retry.push(key);
      });
    }
    let failures = 0;
    for (const listed of retry) {
      const key = await s.keys.latest(listed);
      if (!key) continue;
      await visit(key).catch((err: unknown) => {
        failures += 1;
        context.error(`key lifecycle: key ${key.id}: ${err instanceof Error ? err.message : String(err)} (retried next run)`);
      });
    }
    if (rotations > 0 || failures > 0 || deferred > 0 || retry.length > 0) {
      context.log(
        `key lifecycle: ${rotations} scheduled rotation(s) started, ${deferred} due ones left for the next run, ${retry.length} key(s) retried, ${failures} failed (retried next run)`,
      );
    }
  },
});
