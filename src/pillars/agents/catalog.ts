/**
 * One search across the three pillars: the tenant's models, tools (the tools pillar's catalog index) and
 * agents, as a developer looks for what to use. Words match case-insensitively and all must appear.
 * Models are filtered in memory (a project holds at most 1,000); agents by a lower-case `searchText`
 * field the registry keeps on each agent, queried per project; tools through the tool catalog's own
 * index and continuation. The continuation token names the kind and where in it the next page starts.
 */
import { z } from "zod";
import { PageQuery, type Page, type RequestContext } from "../../domain/common.js";
import { AppError, fail } from "../../domain/errors.js";
import { everyDoc } from "../../domain/paging.js";
import { ProjectId, type Project } from "../../domain/projects/schema.js";
import type { Store } from "../../ports/store.js";
import type { AgentDoc } from "./documents.js";

export const CATALOG_KINDS = ["models", "tools", "agents"] as const;
type Kind = (typeof CATALOG_KINDS)[number];

export const CatalogSearchQuery = z.strictObject({
  q: z.string().trim().min(1).max(100).optional().meta({ description: "Words that must all appear (case-insensitive): names, descriptions, owners, models, skills" }),
  kind: z.enum(CATALOG_KINDS).optional(),
  projectId: ProjectId.optional().meta({ description: "Only this project's entries" }),
  ...PageQuery.shape,
});
export type CatalogSearchQuery = z.output<typeof CatalogSearchQuery>;

export const CatalogSearchEntry = z
  .strictObject({
    kind: z.enum(CATALOG_KINDS),
    projectId: z.string(),
    id: z.string().meta({ description: "Model id, MCP server id, or agent id" }),
    name: z.string().meta({ description: "Model name, the tool's namespaced name (server.tool), or the agent's name" }),
    description: z.string().optional(),
    status: z.string().meta({ description: "Model status, the tool's approval state, or the agent's lifecycle state" }),
    detail: z.record(z.string(), z.unknown()).meta({ description: "Kind-specific: provider and model name; read-only and server; origin, cloud and skills" }),
  })
  .meta({ id: "CatalogSearchEntry" });
export type CatalogSearchEntry = z.output<typeof CatalogSearchEntry>;
export const CatalogSearchPage = z.strictObject({ items: z.array(CatalogSearchEntry), continuationToken: z.string().optional() }).meta({ id: "CatalogSearchPage" });

/** The lower-case text an agent is found by. */
export function searchTextOf(doc: Pick<AgentDoc, "name" | "description" | "owner" | "source" | "card">): string {
  const skills = ((doc.card?.card?.skills ?? []) as { name?: string; tags?: string[] }[]).flatMap((s) => [s.name ?? "", ...(s.tags ?? [])]);
  return [doc.name, doc.description ?? "", doc.owner, doc.source?.model ?? "", ...skills].join(" ").toLowerCase().slice(0, 8000);
}

/** What the catalog reads of the other pillars. */
export interface CatalogReaders {
  projects(tenantId: string): Promise<Project[]>;
  models(tenantId: string, projectId: string): Promise<{ id: string; name: string; displayName?: string | undefined; provider: string; modelName: string; status: string }[]>;
  /** The tools pillar's catalog (absent when the pillar is not there). */
  tools?(ctx: RequestContext, query: { q?: string | undefined; projectId?: string | undefined; maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<{ projectId: string; serverId: string; namespacedName: string; description?: string | undefined; approval: string; annotations: { readOnly: boolean }; server: string }>>;
}

interface Cursor {
  k: Kind;
  /** Offset within models or agents; the tool catalog's own token for tools. */
  o?: number;
  t?: string;
}

const encode = (c: Cursor) => Buffer.from(JSON.stringify(c)).toString("base64url");
function decode(token: string | undefined, first: Kind): Cursor {
  if (!token) return { k: first };
  try {
    const c = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Cursor;
    if (CATALOG_KINDS.includes(c.k) && (c.o === undefined || (Number.isInteger(c.o) && c.o >= 0)) && (c.t === undefined || typeof c.t === "string")) return c;
  } catch {
    // fall through to the refusal
  }
  throw new AppError({ kind: "validation", detail: "the continuation token is not one this search issued", errors: [{ field: "query.continuationToken", message: "is invalid" }] });
}

const MAX_PER_KIND = 5_000;

export class UnifiedCatalog {
  constructor(
    private readonly store: Store,
    private readonly readers: CatalogReaders,
  ) {}

  async search(ctx: RequestContext, query: CatalogSearchQuery): Promise<Page<CatalogSearchEntry>> {
    if (ctx.principal.roles.size === 0) fail({ kind: "forbidden", detail: "the catalog needs a tenant role" });
    const kinds = query.kind ? [query.kind] : [...CATALOG_KINDS];
    let cursor = decode(query.continuationToken, kinds[0]!);
    if (!kinds.includes(cursor.k)) fail({ kind: "validation", detail: "the continuation token belongs to another search", errors: [{ field: "query.continuationToken", message: "is invalid" }] });
    const words = (query.q ?? "").toLowerCase().split(/\s+/).filter(Boolean);
    const items: CatalogSearchEntry[] = [];
    const tenantId = ctx.principal.tenantId;
    const projects = (await this.readers.projects(tenantId)).filter((p) => !query.projectId || p.id === query.projectId).sort((a, b) => (a.id < b.id ? -1 : 1));
    for (let i = kinds.indexOf(cursor.k); i < kinds.length; i++) {
      const kind = kinds[i]!;
      const room = query.maxPageSize - items.length;
      if (room <= 0) return { items, continuationToken: encode(cursor) };
      if (kind === "tools") {
        if (!this.readers.tools) {
          cursor = { k: kinds[i + 1] ?? kind };
          continue;
        }
        const page = await this.readers.tools(ctx, { ...(query.q ? { q: query.q } : {}), ...(query.projectId ? { projectId: query.projectId } : {}), maxPageSize: room, ...(cursor.t ? { continuationToken: cursor.t } : {}) });
        items.push(...page.items.map((t) => ({ kind: "tools" as const, projectId: t.projectId, id: t.serverId, name: t.namespacedName, ...(t.description ? { description: t.description } : {}), status: t.approval, detail: { server: t.server, readOnly: t.annotations.readOnly } })));
        if (page.continuationToken) return { items, continuationToken: encode({ k: "tools", t: page.continuationToken }) };
      } else {
        const all = kind === "models" ? await this.models(tenantId, projects, words) : await this.agents(tenantId, projects, words);
        const from = cursor.k === kind ? (cursor.o ?? 0) : 0;
        const slice = all.slice(from, from + room);
        items.push(...slice);
        if (from + slice.length < all.length) return { items, continuationToken: encode({ k: kind, o: from + slice.length }) };
      }
      const nextKind = kinds[i + 1];
      if (nextKind) cursor = { k: nextKind };
    }
    return { items };
  }

  private async models(tenantId: string, projects: Project[], words: string[]): Promise<CatalogSearchEntry[]> {
    const out: CatalogSearchEntry[] = [];
    for (const p of projects) {
      for (const m of await this.readers.models(tenantId, p.id)) {
        const text = [m.name, m.displayName ?? "", m.provider, m.modelName].join(" ").toLowerCase();
        if (words.every((w) => text.includes(w))) out.push({ kind: "models", projectId: p.id, id: m.id, name: m.name, status: m.status, detail: { provider: m.provider, modelName: m.modelName } });
        if (out.length >= MAX_PER_KIND) return out;
      }
    }
    return out.sort((a, b) => (a.projectId === b.projectId ? (a.name < b.name ? -1 : 1) : a.projectId < b.projectId ? -1 : 1));
  }

  private async agents(tenantId: string, projects: Project[], words: string[]): Promise<CatalogSearchEntry[]> {
    const out: CatalogSearchEntry[] = [];
    for (const p of projects) {
      const filters = words.map((w) => ({ field: "searchText", op: "contains" as const, value: w }));
      for await (const a of everyDoc<AgentDoc & { searchText?: string }>(this.store, { tenantId, scopeId: p.id }, { docType: "agent", filters, orderBy: { field: "name", direction: "ASC" } })) {
        out.push({
          kind: "agents",
          projectId: p.id,
          id: a.id,
          name: a.name,
          ...(a.description ? { description: a.description.slice(0, 500) } : {}),
          status: a.lifecycle.state,
          detail: { origin: a.origin, ...(a.provenance ? { cloud: a.provenance.cloud, region: a.provenance.region } : {}), enabled: a.enabled, skills: ((a.card?.card?.skills ?? []) as { name?: string }[]).map((s) => s.name).filter(Boolean).slice(0, 20) },
        });
        if (out.length >= MAX_PER_KIND) return out;
      }
    }
    return out;
  }
}
