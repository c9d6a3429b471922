/**
 * The tenant's tool catalog: one index document per (server, tool) in the tenant partition, kept by
 * discovery, approvals and settings changes. A catalog page is one single-partition query (filters
 * and words as CONTAINS on a lower-cased search field), whatever the number of projects; the index is
 * derived data, rewritten from the snapshots whenever they change (docs/adr/013-tools-at-the-gateway.md
 * records the cost and why not a cross-partition query).
 */
import { sha256 } from "../../domain/audit/chain.js";
import type { Page } from "../../domain/common.js";
import { listPage } from "../../domain/paging.js";
import { TENANT_SCOPE, type Filter, type Store, type StoredDoc } from "../../ports/store.js";
import type { StoredTool } from "./documents.js";
import type { CatalogEntry } from "./schema.js";

export interface CatalogDoc extends StoredDoc, CatalogEntry {
  docType: "catalogTool";
  /** Lower-cased "server/tool title description": what words are matched against. */
  search: string;
}

export const catalogId = (serverId: string, tool: string) => `cat.${serverId}.${sha256(tool).slice(0, 40)}`;
const MAX_WORDS = 5;

export interface CatalogServer {
  projectId: string;
  serverId: string;
  server: string;
  status: CatalogEntry["serverStatus"];
  tags: string[];
  protocolVersion: string;
}

export class Catalog {
  constructor(private readonly store: Store) {}

  entryFor(tenantId: string, s: CatalogServer, tool: StoredTool, approval: CatalogEntry["approval"], at: string): CatalogDoc {
    const title = typeof tool.definition.title === "string" ? tool.definition.title.slice(0, 200) : undefined;
    const description = typeof tool.definition.description === "string" ? tool.definition.description.slice(0, 1000) : undefined;
    return {
      id: catalogId(s.serverId, tool.name),
      tenantId,
      scopeId: TENANT_SCOPE,
      docType: "catalogTool",
      projectId: s.projectId,
      serverId: s.serverId,
      server: s.server,
      tool: tool.name,
      namespacedName: `${s.server}/${tool.name}`,
      ...(title ? { title } : {}),
      ...(description ? { description } : {}),
      annotations: tool.annotations,
      protocolVersion: s.protocolVersion,
      findingCount: tool.findings.length,
      approval,
      serverStatus: s.status,
      tags: s.tags,
      updatedAt: at,
      search: `${s.server}/${tool.name} ${title ?? ""} ${description ?? ""}`.toLowerCase(),
    };
  }

  /** Writes entries (upserts) and removes those of tools that are gone. Idempotent: a retry converges. */
  async write(tenantId: string, entries: CatalogDoc[], removed: { serverId: string; tool: string }[]): Promise<void> {
    const partition = { tenantId, scopeId: TENANT_SCOPE };
    for (let i = 0; i < entries.length; i += 50) {
      const r = await this.store.batch(partition, entries.slice(i, i + 50).map((doc) => ({ kind: "upsert" as const, doc })));
      if (!r.ok) throw new Error(`catalog write failed with status ${r.status}`);
    }
    for (const x of removed) await this.store.delete(partition, catalogId(x.serverId, x.tool)).catch(() => false);
  }

  /** Removes every entry of a server (it was deleted). */
  async removeServer(tenantId: string, serverId: string): Promise<void> {
    const partition = { tenantId, scopeId: TENANT_SCOPE };
    for (;;) {
      const page = await this.store.queryPage<CatalogDoc>(partition, { docType: "catalogTool", filters: [{ field: "serverId", op: "=", value: serverId }], maxPageSize: 100 });
      if (!page.items.length) return;
      for (const d of page.items) await this.store.delete(partition, d.id).catch(() => false);
    }
  }

  async setApproval(tenantId: string, serverId: string, tool: string, approval: CatalogEntry["approval"]): Promise<void> {
    const partition = { tenantId, scopeId: TENANT_SCOPE };
    const doc = await this.store.read<CatalogDoc>(partition, catalogId(serverId, tool));
    if (!doc || doc.approval === approval) return;
    const { _etag, ...rest } = doc;
    await this.store.batch(partition, [{ kind: "replace", doc: { ...rest, approval }, ifMatch: _etag }]);
  }

  async search(
    tenantId: string,
    q: { q?: string | undefined; projectId?: string | undefined; server?: string | undefined; readOnly?: "true" | "false" | undefined; approval?: string | undefined; tag?: string | undefined },
    page: { maxPageSize: number; continuationToken?: string | undefined },
  ): Promise<Page<CatalogEntry>> {
    const filters: Filter[] = [];
    const words = (q.q ?? "").toLowerCase().split(/\s+/).filter(Boolean).slice(0, MAX_WORDS);
    for (const w of words) filters.push({ field: "search", op: "contains", value: w });
    if (q.projectId) filters.push({ field: "projectId", op: "=", value: q.projectId });
    if (q.server) filters.push({ field: "server", op: "=", value: q.server });
    if (q.readOnly) filters.push({ field: "annotations.readOnly", op: "=", value: q.readOnly === "true" });
    if (q.approval) filters.push({ field: "approval", op: "=", value: q.approval });
    if (q.tag) filters.push({ field: "tags", op: "arrayContains", value: q.tag });
    const result = await listPage<CatalogDoc>(this.store, { tenantId, scopeId: TENANT_SCOPE }, { docType: "catalogTool", filters, orderBy: { field: "namespacedName", direction: "ASC" } }, page);
    return {
      items: result.items.map(({ _etag, id: _i, tenantId: _t, scopeId: _s, docType: _d, search: _q, ...entry }) => entry as CatalogEntry),
      ...(result.continuationToken ? { continuationToken: result.continuationToken } : {}),
    };
  }
}
