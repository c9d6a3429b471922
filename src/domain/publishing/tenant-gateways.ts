import { GatewayNames, gatewayNames } from "../../policy/names.js";
import { instanceBaseline } from "../../policy/compile/instance.js";
import { artifactRef, expectedReadBack, readBackHash, type GatewayPublisher } from "../../ports/gateway.js";
import type { Partition, Store, StoredDoc } from "../../ports/store.js";
import { fail } from "../errors.js";
import { everyDoc } from "../paging.js";

/** Where a tenant's artifacts go: a gateway instance, optionally an operator-assigned key, and the tenant's own identities on it. */
export interface GatewayAssignment {
  instance?: string;
  key?: string;
  /** Client ids of user-assigned identities attached to the instance for this tenant alone (policy/identity.ts). */
  identities?: string[];
}

export const DEFAULT_INSTANCE = "default";

/** How long a check that an instance holds the baseline stands before it is made again. */
const BASELINE_CHECK_MS = 15 * 60_000;

/** System documents live outside every tenant's partitions (no tenant id can start with '_'). */
const SYSTEM: Partition = { tenantId: "_system", scopeId: "gateway" };

interface KeyReservation extends StoredDoc {
  docType: "gatewayKeyReservation";
  owner: string;
  instance: string;
  key: string;
}

/**
 * Each tenant's gateway: the instance it is assigned to (GATEWAY_ASSIGNMENTS; the default instance
 * otherwise) and the key its artifact ids start with (names.ts). Before the first write of a tenant to
 * an instance its key is reserved there (one system document per instance and key, created or found
 * owned by the tenant), so two tenants can never write under the same ids on one gateway: a key that
 * another tenant holds is refused (409 `gateway_key_collision`; an operator then assigns an explicit key).
 */
export class TenantGateways {
  private readonly reserved = new Map<string, Promise<void>>();
  private readonly baselined = new Map<string, { at: number; done: Promise<void> }>();

  constructor(
    private readonly store: Store,
    private readonly assignments: Record<string, GatewayAssignment>,
    private readonly publisherFor: (instance: string) => Promise<GatewayPublisher>,
  ) {}

  instance(tenantId: string): string {
    return this.assignments[tenantId]?.instance ?? DEFAULT_INSTANCE;
  }

  /** The operator-assigned key, when there is one (the compiler derives the key otherwise). */
  explicitKey(tenantId: string): string | undefined {
    return this.assignments[tenantId]?.key;
  }

  names(tenantId: string): GatewayNames {
    return gatewayNames(tenantId, this.explicitKey(tenantId));
  }

  /**
   * Every gateway key the tenant has held on an instance, its current one included: a reservation stays
   * its owner's for good. Where a key document from before subscription ids were recorded had its
   * subscription is one of these keys' names for it.
   */
  async keysOn(tenantId: string, instance: string): Promise<string[]> {
    const keys = new Set<string>();
    for await (const r of everyDoc<KeyReservation>(this.store, SYSTEM, { docType: "gatewayKeyReservation", filters: [{ field: "owner", op: "=", value: tenantId }] })) {
      if (r.instance === instance) keys.add(r.key);
    }
    return [...keys].sort();
  }

  /** Every instance the tenant reserved a key on: it wrote there (applier.ts, for states from before instances were recorded). */
  async instancesHeld(tenantId: string): Promise<string[]> {
    const instances = new Set<string>();
    for await (const r of everyDoc<KeyReservation>(this.store, SYSTEM, { docType: "gatewayKeyReservation", filters: [{ field: "owner", op: "=", value: tenantId }] })) instances.add(r.instance);
    return [...instances].sort();
  }

  /** A key's subscription under each key the tenant held on its instance before the current one (see keysOn). */
  async formerSubscriptions(tenantId: string, keyId: string): Promise<string[]> {
    const current = this.names(tenantId).key;
    return (await this.keysOn(tenantId, this.instance(tenantId))).filter((k) => k !== current).map((k) => new GatewayNames(k).subscription(keyId));
  }

  /** The publisher of an instance (a tenant leaving it: its key is reserved there since it published there). */
  publisherOn(instance: string): Promise<GatewayPublisher> {
    return this.publisherFor(instance);
  }

  /**
   * The tenant's publisher, after its key is reserved on its instance and the instance holds the baseline.
   * A publish does not go on without the baseline (it fails and is retried); a key's sync does, with the
   * failure logged: a revocation must never wait on the instance's global policy.
   */
  async publisher(tenantId: string, baseline: "required" | "bestEffort" = "required"): Promise<GatewayPublisher> {
    await this.reserve(tenantId);
    const instance = this.instance(tenantId);
    const publisher = await this.publisherFor(instance);
    const ensured = this.ensureBaseline(instance, publisher);
    if (baseline === "required") await ensured;
    else await ensured.catch((err: unknown) => console.error(`gateway instance ${instance}: the instance baseline (ADR 023) could not be checked or written: ${err instanceof Error ? err.message : String(err)}`));
    return publisher;
  }

  /**
   * The instance's global policy is aigov's baseline (ADR 023): without it the instance tells anyone which
   * paths another tenant's APIs serve. `infra/` deploys it; an instance an operator added, or a global policy
   * changed by hand, gets it again here before a tenant's artifacts or keys are written there. Checked at
   * most every 15 minutes per instance (a read); written only when it differs.
   */
  private ensureBaseline(instance: string, publisher: GatewayPublisher): Promise<void> {
    const now = Date.now();
    const checked = this.baselined.get(instance);
    if (checked && now - checked.at < BASELINE_CHECK_MS) return checked.done;
    const done = (async () => {
      const baseline = instanceBaseline();
      const ref = artifactRef(baseline);
      const held = (await publisher.read([ref]))[ref];
      const wanted = await expectedReadBack(baseline, async () => "");
      if (held && readBackHash(held) === readBackHash(wanted)) return;
      await publisher.publish([baseline], { [ref]: "unconfirmed" });
    })().catch((err: unknown) => {
      this.baselined.delete(instance);
      throw err;
    });
    this.baselined.set(instance, { at: now, done });
    return done;
  }

  reserve(tenantId: string): Promise<void> {
    let p = this.reserved.get(tenantId);
    if (!p) {
      p = this.claim(tenantId).catch((err: unknown) => {
        this.reserved.delete(tenantId);
        throw err;
      });
      this.reserved.set(tenantId, p);
    }
    return p;
  }

  private async claim(tenantId: string): Promise<void> {
    const instance = this.instance(tenantId);
    const key = this.names(tenantId).key;
    const id = `gatewaykey.${instance}.${key}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await this.store.read<KeyReservation>(SYSTEM, id);
      if (existing) {
        if (existing.owner === tenantId) return;
        return fail({
          kind: "conflict",
          reason: "gateway_key_collision",
          detail: `this tenant's gateway key '${key}' is held by another tenant on gateway '${instance}'; an operator must assign this tenant an explicit key (GATEWAY_ASSIGNMENTS)`,
        });
      }
      const doc: KeyReservation = { id, ...SYSTEM, docType: "gatewayKeyReservation", owner: tenantId, instance, key };
      const r = await this.store.batch(SYSTEM, [{ kind: "create", doc }]);
      if (r.ok) return;
      // Created concurrently: read again and see whose it is.
    }
    fail({ kind: "unavailable", detail: "could not reserve the tenant's gateway key; try again" });
  }
}
