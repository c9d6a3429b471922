import { GatewayNames } from "../../policy/names.js";
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
    /** Every gateway key the tenant held on an instance (tenant-gateways.ts keysOn). */
    private readonly keysOn: (tenantId: string, instance: string) => Promise<string[]>,
  ) {}

  async subscriptionIds(tenantId: string, instance: string): Promise<string[]> {
    const out = new Set<string>();
    let keys: string[] | undefined;
    for (const projectId of await this.projectIds(tenantId)) {
      for await (const k of this.docs.inProject(tenantId, projectId)) {
        if (k.gateway.subscriptionId) out.add(k.gateway.subscriptionId);
        // Synced before ids were recorded: under any key the tenant held on that instance.
        else for (const key of (keys ??= await this.keysOn(tenantId, instance))) out.add(new GatewayNames(key).subscription(k.id));
      }
    }
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
