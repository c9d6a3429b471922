import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CosmosClient } from "@azure/cosmos";
import { describe, expect, it } from "vitest";
import { EncryptedFileSecretStore } from "../../src/adapters/local/encrypted-secret-store.js";
import { FilePublisher } from "../../src/adapters/local/file-publisher.js";
import { loadTestClock } from "../../src/local-app/test-clock.js";
import { gatewayNames } from "../../src/policy/names.js";
import { AigovClient } from "../../src/client/index.js";
import type { KeyDoc } from "../../src/domain/keys/service.js";
import { subscriptionFingerprint } from "../../src/ports/gateway-content.js";
import type { SubscriptionReadBack } from "../../src/ports/gateway.js";
import { durableKeyHeader, startChildApp, stopChildApp, type ChildApp } from "../support/child-app.js";
import { until } from "../support/until.js";

/**
 * Acceptance of key rotation under crashes: with the host SIGKILLed mid-orchestration (right after the
 * rotate call, during the overlap timer, during retire, while the rotate request is in flight), the
 * recorded gateway state (the FilePublisher's subscription files) never holds more than two valid
 * secrets for a key, never holds a retired secret again once it was replaced, and every rotation
 * completes after a restart on the same data directory. No timed assertions: only eventual states.
 *
 * Time is the child's test clock (docs/local-host.md, "The test clock"): overlaps are an hour long and
 * end when the test moves the clock, so each crash falls where it is meant to on any machine; the host
 * comes back from each crash some minutes later on that clock, so what the killed process held (a key's
 * sync claim, a paused step) has lapsed as it would have, without waiting for it; the publish sweep and the
 * key lifecycle job run when the test invokes them, as their timers would.
 */

const CHILD_ENV = {
  AIGOV_LOCAL_TEST_CLOCK: "1",
  GATEWAY_PUBLISH_SWEEP_SCHEDULE: "0 0 0 1 1 *",
  KEY_LIFECYCLE_SCHEDULE: "0 0 0 1 1 *",
  PUBLISH_RETRY_FIRST_INTERVAL_MS: "200",
  PUBLISH_RETRY_MAX_ATTEMPTS: "10",
};
const OVERLAP = "PT1H";
const HOUR = 3_600_000;
/** How long the host stays down after each crash, on its clock (well inside an overlap). */
const DOWNTIME_MS = 5 * 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


interface Ref {
  name: string;
  version: string;
}
const refText = (r: Ref) => `${r.name}@${r.version}`;
type Slot = "primary" | "secondary";

/**
 * Watches <dataDir>/apim/subscriptions/*.json (what the gateway holds, locally) and records, per key,
 * every distinct (primary, secondary) pair of secret refs it sees, in order.
 */
/** The subscription ids of the suite's tenant ("t-crash"): <gateway key prefix>-<key id>. */
const NAMES = gatewayNames("t-crash");

class GatewayWatcher {
  readonly seen = new Map<string, { primary: string; secondary: string }[]>();
  readonly violations: string[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly dir: string) {}

  start(): void {
    this.timer = setInterval(() => this.observe(), 15);
  }

  stop(): void {
    clearInterval(this.timer);
    this.observe();
  }

  /** The refs the file holds now, or undefined. */
  current(keyId: string): { primary: string; secondary: string } | undefined {
    const file = join(this.dir, `${NAMES.subscription(keyId)}.json`);
    if (!existsSync(file)) return undefined;
    let props: { primaryKey?: { secretRef?: Ref }; secondaryKey?: { secretRef?: Ref } };
    try {
      props = (JSON.parse(readFileSync(file, "utf8")) as { properties: typeof props }).properties;
    } catch {
      return undefined; // replaced between the directory listing and the read
    }
    const p = props.primaryKey?.secretRef;
    const s = props.secondaryKey?.secretRef;
    if (!p || !s) {
      this.violations.push(`${keyId}: a slot without a secret ref: ${JSON.stringify(props)}`);
      return undefined;
    }
    return { primary: refText(p), secondary: refText(s) };
  }

  observe(): void {
    if (!existsSync(this.dir)) return;
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith(".json")) continue; // temp files of an atomic write
      const keyId = name.slice(NAMES.subscription("").length, -".json".length);
      const now = this.current(keyId);
      if (!now) continue;
      const list = this.seen.get(keyId) ?? [];
      const last = list.at(-1);
      if (last && last.primary === now.primary && last.secondary === now.secondary) continue;
      if (now.primary === now.secondary) this.violations.push(`${keyId}: both slots hold ${now.primary}`);
      for (const slot of ["primary", "secondary"] as const) {
        // A ref that left a slot (a secret replaced by a filler or another secret) never comes back.
        const earlier = list.map((o) => o[slot]);
        if (earlier.includes(now[slot]) && earlier.at(-1) !== now[slot]) this.violations.push(`${keyId}: ${slot} holds ${now[slot]} again after it was replaced`);
      }
      list.push(now);
      this.seen.set(keyId, list);
    }
  }

  /** The refs a slot held, in order (consecutive repeats collapsed). */
  slotHistory(keyId: string, slot: Slot): string[] {
    const out: string[] = [];
    for (const o of this.seen.get(keyId) ?? []) if (out.at(-1) !== o[slot]) out.push(o[slot]);
    return out;
  }
}

describe("key rotation survives crashes of the host", () => {
  it(
    "SIGKILL right after rotate, during the overlap, during retire and mid-request: every rotation completes, no retired secret is ever valid again",
    { timeout: 180_000 },
    async () => {
      const dataDir = mkdtempSync(join(tmpdir(), "aigov-crash-rotation-"));
      const watcher = new GatewayWatcher(join(dataDir, "apim", "subscriptions"));
      let app: ChildApp = await startChildApp(dataDir, "node", CHILD_ENV);
      const restart = async () => {
        await stopChildApp(app.child, "SIGKILL");
        loadTestClock(dataDir).advance(DOWNTIME_MS); // the clock file the next process starts from
        app = await startChildApp(dataDir, "node", CHILD_ENV);
      };
      const anon = () => new AigovClient({ endpoint: app.url });
      // Dev tokens are signed by the issuer kept in the data dir: they stay valid across restarts.
      const adminToken = await anon().dev.token({ tenant: "t-crash", user: "carol", roles: ["TenantAdmin", "Auditor"] });
      const admin = () => anon().withToken(adminToken);
      const timer = (name: string) => fetch(`${app.url}/admin/functions/${name}`, { method: "POST" }).then(() => undefined);
      /** Moves the child's clock (services and durable timers) forward; it stays moved across restarts. */
      const advance = async (ms: number) => {
        const r = await fetch(`${app.url}/.dev/clock`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ advanceMs: ms }) });
        expect(r.status).toBe(200);
      };

      try {
        const project = await admin().projects.create({ name: "rotation crash", environment: "dev", owner: "carol" });
        await admin().models.create(project.id, {
          name: "gpt-4o",
          provider: "azure-openai",
          modelName: "gpt-4o",
          backends: [{ id: "weu", url: "https://gpt-4o.openai.azure.com", region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
        });
        // A TenantAdmin publishes the project first (automation never publishes a project).
        await admin().policy.publish({ reason: "rotation crash" });
        /** Every plaintext each key ever had (from the API responses), oldest first. */
        const plaintexts = new Map<string, string[]>();
        const ids: string[] = [];
        for (let i = 1; i <= 6; i++) {
          const k = await admin().keys.create(project.id, { name: `k${i}` });
          ids.push(k.id);
          plaintexts.set(k.id, [k.key]);
        }
        const [k1, k2, k3, k4, k5, k6] = ids as [string, string, string, string, string, string];
        const getKey = (id: string) => admin().keys.get(project.id, id);
        const inOverlap = (id: string) => until(async () => ((await getKey(id)).rotation?.overlapUntil ? true : undefined), `${id} in its overlap`);
        // The keys follow once the project API is at the gateway.
        for (const id of ids) {
          await until(async () => {
            await timer("gatewayPublishSweep");
            return (await getKey(id)).gateway.state === "synced" ? true : undefined;
          }, `key ${id} synced`);
        }
        watcher.start();
        const rotate = async (id: string, overlap: string) => {
          const r = await admin().keys.rotate(project.id, id, { overlap }, (await getKey(id)).etag);
          plaintexts.get(id)!.push(r.key);
          return r;
        };

        // 1. Killed right after the rotate call returned (the orchestration has just been started).
        await rotate(k1, OVERLAP);
        await restart();

        // 2. Killed during the overlap timer (k2 confirmed: both secrets at the gateway), while k3 has just started.
        await rotate(k2, OVERLAP);
        await inOverlap(k2);
        await rotate(k3, OVERLAP);
        await restart();

        // 3. Killed during retire: the moment the gateway shows the filler in k4's old slot, before the
        //    rotation is recorded as complete.
        //    A new key's secret is in its primary slot: that is the one k4's rotation retires.
        //    The hour ends the overlaps of k1–k3 too (their restarted drivers wait on their timers): they retire alongside.
        await rotate(k4, OVERLAP);
        for (const id of [k1, k2, k3, k4]) await inOverlap(id);
        await advance(HOUR);
        await until(() => (watcher.current(k4)?.primary.startsWith("vkfill-") ? true : undefined), "k4's old secret replaced at the gateway", 60_000);
        await restart();

        // 4. Killed while the rotate request of k5 is in flight: either the rotation was recorded (and then
        //    completes) or it was not (and the key is untouched).
        const etag5 = (await getKey(k5)).etag;
        const inFlight = fetch(`${app.url}/api/projects/${project.id}/keys/${k5}:rotate`, {
          method: "POST",
          headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json", "if-match": `"${etag5}"` },
          body: JSON.stringify({ overlap: "PT0S" }),
        }).catch(() => undefined);
        await sleep(25);
        await restart();
        await inFlight;

        // Every recorded rotation completes on the last host (the lifecycle job starts a missing driver).
        const expected = new Map(ids.map((id) => [id, id === k6 ? 0 : 1]));
        const k5now = await getKey(k5);
        if (k5now.rotation === undefined && k5now.rotationCount === 0) {
          // Not recorded before the crash: the key is as it was; rotate it now.
          expect(k5now.last4).toBe(plaintexts.get(k5)![0]!.slice(-4));
          await rotate(k5, "PT0S");
        }
        // Every overlap is over on the app's clock; the job runs as its timer would (it starts a missing driver).
        for (const id of ids) {
          await until(async () => {
            const k = await getKey(id);
            if (k.rotation === undefined && k.rotationCount >= expected.get(id)! && k.gateway.state === "synced") return true;
            await timer("keyLifecycle");
            return undefined;
          }, `the rotation of ${id} completes`, 90_000, 500).catch(async (err: Error) => {
            const instances = await (await fetch(`${app.url}/runtime/webhooks/durabletask/instances?instanceIdPrefix=${id}&showInput=false`, { headers: durableKeyHeader(dataDir) })).text();
            throw new Error(`${err.message} (k${ids.indexOf(id) + 1}): ${JSON.stringify(await getKey(id))}\norchestrations: ${instances}\ngateway: ${JSON.stringify(watcher.seen.get(id))}`);
          });
        }
        watcher.stop();

        // What happened is what was meant to happen.
        for (const id of ids) {
          const k = await getKey(id);
          expect(k, id).toMatchObject({ status: "active", rotationCount: expected.get(id), gateway: { state: "synced" } });
          expect(k.rotation).toBeUndefined();
          const known = plaintexts.get(id)!;
          if (id !== k5 || known.length > 1) expect(k.last4, id).toBe(known.at(-1)!.slice(-4));
        }
        // The recorded gateway state: no violations while it ran, and per rotated key the old secret's slot
        // went secret → filler, never back.
        expect(watcher.violations).toEqual([]);
        const docs = await keyDocs(app, ids);
        const secrets = new EncryptedFileSecretStore(join(dataDir, "secrets"));
        const pepper = (await secrets.get("vkey-pepper"))!.value;
        const { createHmac } = await import("node:crypto");
        const resolveSecret = async (ref: Ref): Promise<string> => {
          if (ref.name.startsWith("vkfill-")) return `unused-${createHmac("sha256", pepper).update(`${ref.name}/${ref.version}`).digest("base64url")}`;
          const v = await secrets.get(ref.name, ref.version);
          if (!v) throw new Error(`the gateway references ${ref.name}@${ref.version}, which is not an enabled secret`);
          return v.value;
        };
        const publisher = new FilePublisher(join(dataDir, "apim"), { resolveSecret });
        for (const id of ids) {
          const doc = docs.get(id)!;
          const retired: Slot = doc.current === "primary" ? "secondary" : "primary";
          expect(doc.slots[doc.current].kind, id).toBe("secret");
          expect(doc.slots[retired].kind, id).toBe("filler");
          // The file holds exactly the doc's slots: the current secret and a filler.
          const file = watcher.current(id)!;
          expect(file[doc.current], id).toBe(`vkey-${id.replace("_", "-")}-${doc.current}@${doc.slots[doc.current].version}`);
          expect(file[retired], id).toMatch(/^vkfill-/);
          if (expected.get(id)! > 0) {
            // The old secret was in the retired slot at first, then (after the overlap) a filler, and never again.
            const history = watcher.slotHistory(id, retired);
            const firstFiller = history.findIndex((r) => r.startsWith("vkfill-"));
            expect(firstFiller, `${id}: ${JSON.stringify(history)}`).toBeGreaterThan(0);
            expect(history.slice(firstFiller).every((r) => r.startsWith("vkfill-")), `${id}: ${JSON.stringify(history)}`).toBe(true);
            // Both secrets were valid together at some point (the overlap), unless the crash fell inside it unobserved.
            const both = (watcher.seen.get(id) ?? []).some((o) => o.primary.startsWith("vkey-") && o.secondary.startsWith("vkey-"));
            if (id !== k5) expect(both, `${id}: ${JSON.stringify(watcher.seen.get(id))}`).toBe(true);
          }
          // Fingerprints, as the gateway read-back reports them, equal the secrets the key doc says are valid.
          const ref = `subscription:${NAMES.subscription(id)}`;
          const back = (await publisher.read([ref]))[ref] as SubscriptionReadBack;
          const fp = { primary: back.primaryKeyFingerprint, secondary: back.secondaryKeyFingerprint };
          const valid = (await secrets.get(`vkey-${id.replace("_", "-")}-${doc.current}`, doc.slots[doc.current].version))!.value;
          expect(valid.slice(-4)).toBe(doc.last4);
          expect(fp[doc.current], id).toBe(subscriptionFingerprint(valid));
          // No secret the key ever had, other than the current one, is among them.
          for (const old of plaintexts.get(id)!.filter((p) => p !== valid)) {
            expect([fp.primary, fp.secondary], id).not.toContain(subscriptionFingerprint(old));
          }
        }
        // Every rotation orchestration ended Completed (none failed or left running).
        const instances = (await (await fetch(`${app.url}/runtime/webhooks/durabletask/instances?instanceIdPrefix=key_`, { headers: durableKeyHeader(dataDir) })).json()) as { instanceId: string; runtimeStatus: string }[];
        expect(instances.length).toBeGreaterThanOrEqual(5);
        expect(instances.filter((i) => i.runtimeStatus !== "Completed")).toEqual([]);
      } catch (err) {
        // What the host said helps more than the assertion alone.
        console.error(app.output().split("\n").slice(-60).join("\n"));
        throw err;
      } finally {
        watcher.stop();
        await stopChildApp(app.child);
      }
    },
  );
});

/** The key documents, straight from the child's embedded Cosmos. */
async function keyDocs(app: ChildApp, ids: string[]): Promise<Map<string, KeyDoc>> {
  const endpoint = /cosmos \(embedded\): (http:\/\/\S+)/.exec(app.output())![1]!;
  const client = new CosmosClient({ endpoint, key: "local-embedded-server-accepts-any-key", connectionPolicy: { enableEndpointDiscovery: false } });
  try {
    const container = client.database("aigov").container("resources");
    const { resources } = await container.items
      .query<KeyDoc>({ query: "SELECT * FROM c WHERE c.docType = 'virtualKey'" })
      .fetchAll();
    return new Map(resources.filter((d) => ids.includes(d.id)).map((d) => [d.id, d]));
  } finally {
    client.dispose();
  }
}
