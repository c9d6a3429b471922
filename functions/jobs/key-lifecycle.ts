import { app } from "@azure/functions";
import { getServices } from "../../src/app/services.js";
import { DEFAULT_KEY_POLICY } from "../../src/domain/projects/schema.js";
import { durableClient, durableClientInput } from "../../src/workflows/registration.js";
import { startRotation } from "../keys.js";
import { rotationInstanceId } from "../workflows/key-rotation.js";

// Every run looks at every key and does what its state calls for, so a missed run is simply caught up
// by the next one and running twice changes nothing: expiry notices (14 days, 1 day; once each),
// expiry, scheduled rotation by the project's key policy, rotations whose driver is missing, and
// gateway changes not yet confirmed (a revocation that could not reach the gateway is retried here).
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
    let failures = 0;
    for await (const key of s.keys.everyKey()) {
      try {
        await s.keys.housekeep(key.tenantId, key.projectId, key.id, correlationId);
        const rotationId = await s.keys.rotationOf(key.tenantId, key.projectId, key.id);
        if (rotationId) {
          const exists = await client.getStatus(rotationInstanceId(key.id, rotationId)).then(() => true, () => false);
          if (!exists) await startRotation(client, s, { tenantId: key.tenantId, projectId: key.projectId, keyId: key.id, rotationId });
          continue;
        }
        const policy = await policyOf(key.tenantId, key.projectId);
        if (key.status !== "active" || !policy?.rotateAfterDays) continue;
        if (now - Date.parse(key.secretCreatedAt) < policy.rotateAfterDays * 86_400_000) continue;
        const started = await s.keys.beginScheduledRotation(key.tenantId, key.projectId, key.id, policy.rotationOverlapHours, correlationId);
        if (started) {
          await startRotation(client, s, { tenantId: key.tenantId, projectId: key.projectId, keyId: key.id, rotationId: started });
          rotations += 1;
        }
      } catch (err) {
        failures += 1;
        context.error(`key lifecycle: key ${key.id}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (rotations > 0 || failures > 0) context.log(`key lifecycle: ${rotations} scheduled rotation(s) started, ${failures} key(s) failed (retried next run)`);
  },
});
