import type { ActiveExemption } from "../../policy/exemptions.js";
import type { Clock } from "../../ports/clock.js";
import type { ExemptionDocuments } from "./documents.js";
import { IN_FORCE } from "./schema.js";

/** How long a tenant's active exemptions are reused by `recent` (the lifecycle job asks for every key). */
const RECENT_MS = 5000;

/**
 * The exemptions in force: what the compiler input relaxes and the key-scope exemptions the gateway
 * sync moves keys for. A read-only view of the exemption documents (no approvals, no publishing).
 */
export class ActiveExemptions {
  private readonly cache = new Map<string, { at: number; value: Promise<ActiveExemption[]> }>();

  constructor(
    private readonly docs: ExemptionDocuments,
    private readonly clock: Clock,
  ) {}

  /** The exemptions in force at `at` (what applyExemptions needs). Expiry is decided here, not by the sweep, so a publish after `expiresAt` never carries an expired exemption. */
  async listActive(tenantId: string, at: Date): Promise<ActiveExemption[]> {
    const out: ActiveExemption[] = [];
    for await (const d of this.docs.matching(tenantId, [{ field: "expiresAt", op: ">", value: at.toISOString() }])) {
      // A latent exemption (requested when its control applied nowhere in the project) never takes effect.
      if (IN_FORCE.includes(d.status) && d.activatedAt !== undefined && Date.parse(d.activatedAt) <= at.getTime() && !d.latent) {
        out.push({ id: d.id, control: d.control, scope: d.scope, relaxation: d.relaxation });
      }
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** The exemptions in force now. */
  active(tenantId: string): Promise<ActiveExemption[]> {
    return this.listActive(tenantId, this.clock.now());
  }

  /**
   * The exemptions in force, read at most once every few seconds per tenant (key syncs ask for every
   * key). Freshness is measured on the process's own time, not the services' clock (a test moves that).
   */
  recent(tenantId: string): Promise<ActiveExemption[]> {
    const hit = this.cache.get(tenantId);
    if (hit && Date.now() - hit.at < RECENT_MS) return hit.value;
    const value = this.active(tenantId);
    this.cache.set(tenantId, { at: Date.now(), value });
    return value;
  }
}
