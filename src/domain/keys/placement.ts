import { unversioned } from "../../ports/store.js";
import type { TenantKeyPlacement } from "../publishing/applier.js";
import type { KeyDocuments } from "./documents.js";

/**
 * The tenant's keys as a move between gateway instances needs them (publishing/applier.ts): their
 * subscriptions are written by key syncs, never by a publish, so the instance a tenant leaves loses them
 * by id, and the one it moves to gets them when each key is synced again.
 */
export class KeyPlacement implements TenantKeyPlacement {
  constructor(
    private readonly docs: KeyDocuments,
    private readonly projectIds: (tenantId: string) => Promise<string[]>,
    /** The subscription id a key has under the tenant's gateway key now (keys synced before ids were recorded). */
    private readonly subscriptionOf: (tenantId: string, keyId: string) => string,
  ) {}

  async subscriptionIds(tenantId: string): Promise<string[]> {
    const out = new Set<string>();
    for (const projectId of await this.projectIds(tenantId)) for await (const k of this.docs.inProject(tenantId, projectId)) out.add(k.gateway.subscriptionId ?? this.subscriptionOf(tenantId, k.id));
    return [...out].sort();
  }

  async resendAll(tenantId: string): Promise<void> {
    for (const projectId of await this.projectIds(tenantId)) {
      for await (const listed of this.docs.inProject(tenantId, projectId)) {
        // Conditional: a key written meanwhile is read again (its sync may already be under way; "unconfirmed" still sends it).
        for (let doc = listed; doc.gateway.publishedHash !== "unconfirmed"; ) {
          if (await this.docs.put({ ...unversioned(doc), gateway: { ...doc.gateway, publishedHash: "unconfirmed" } }, doc._etag)) break;
          const fresh = await this.docs.read(tenantId, projectId, listed.id);
          if (!fresh) break;
          doc = fresh;
        }
      }
    }
  }
}
