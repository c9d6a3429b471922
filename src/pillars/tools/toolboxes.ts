/**
 * Toolboxes: named sets of tools from a project's servers, each served as its own MCP API (a virtual
 * MCP server developers connect to). A toolbox holds converted (REST) tools of any servers, or tools of
 * one remote server: the gateway can serve nothing else as one MCP server (toolbox_mixes_sources).
 */
import type { ChangeWriter } from "../../domain/changes.js";
import { etagMatches, newId, type Page, type RequestContext } from "../../domain/common.js";
import { AppError, fail } from "../../domain/errors.js";
import type { Versioned } from "../../ports/store.js";
import { Collection } from "../../domain/kernel/collection.js";
import { Slots } from "../../domain/kernel/slots.js";
import { toArray } from "../../domain/paging.js";
import type { ProjectService } from "../../domain/projects/service.js";
import { parseOrThrow } from "../../domain/validation.js";
import { MAX_PROJECT_TOOLBOXES } from "../../policy/input.js";
import type { Clock } from "../../ports/clock.js";
import type { Store } from "../../ports/store.js";
import { toolboxNameId, toolboxPath, type ServerDoc, type StoredTool, type ToolboxDoc } from "./documents.js";
import { ToolboxPatch, ToolboxSpec, type Toolbox } from "./schema.js";

export type ToolsOf = (server: ServerDoc) => Promise<StoredTool[]>;

export class Toolboxes {
  readonly boxes: Collection<ToolboxDoc, Toolbox>;
  /** The project's cap on toolboxes, held against concurrent creates. */
  private readonly slots: Slots;

  constructor(
    store: Store,
    changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly projects: ProjectService,
  ) {
    this.boxes = new Collection<ToolboxDoc, Toolbox>(store, changes, { docType: "toolbox", path: (d) => toolboxPath(d.scopeId, d.id) });
    this.slots = new Slots(store, "toolbox", MAX_PROJECT_TOOLBOXES);
  }

  async create(ctx: RequestContext, projectId: string, input: unknown, servers: ServerDoc[], toolsOf: ToolsOf): Promise<Toolbox> {
    const spec = parseOrThrow(ToolboxSpec, input, "body");
    await checkMembers(spec.tools, servers, toolsOf, "body.tools");
    const limit = { kind: "conflict", detail: `a project holds at most ${MAX_PROJECT_TOOLBOXES} toolboxes`, reason: "project_limit_reached" } as const;
    const count = async () => (await this.listAll(ctx.principal.tenantId, projectId)).length;
    if ((await count()) >= MAX_PROJECT_TOOLBOXES) fail(limit);
    const id = newId("tbx");
    const now = this.clock.now().toISOString();
    const partition = { tenantId: ctx.principal.tenantId, scopeId: projectId };
    const doc: ToolboxDoc = { ...spec, tools: dedupe(spec.tools), id, projectId, ...partition, docType: "toolbox", createdAt: now, createdBy: ctx.principal.userId, updatedAt: now, updatedBy: ctx.principal.userId };
    const created = await this.slots.create(partition, id, count, limit, (slotOp, slotTaken) =>
      this.boxes.create(ctx, doc, {
        action: "toolbox.create",
        event: "aigov.mcp.toolbox.created.v1",
        extraOps: [{ kind: "create", doc: { id: toolboxNameId(spec.name), ...partition, docType: "nameReservation", resourceId: id } }, slotOp],
        onFailure: (index, status) => (status !== 409 ? undefined : index === 1 ? { kind: "conflict", detail: `a toolbox named '${spec.name}' already exists in this project`, reason: "name_taken" } : index === 2 ? slotTaken() : undefined),
      }),
    );
    // The project was deleted while this was written (its delete marked it first): withdrawn.
    await this.projects.withdrawUnlessStanding(ctx, projectId, async (system) => {
      const written = await this.boxes.read(partition, id);
      if (written) await this.remove(system, written);
    });
    return created;
  }

  async get(ctx: RequestContext, projectId: string, id: string): Promise<Toolbox> {
    await this.projects.get(ctx, projectId);
    return this.boxes.view(await this.load(ctx.principal.tenantId, projectId, id));
  }

  async list(ctx: RequestContext, projectId: string, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<Toolbox>> {
    await this.projects.get(ctx, projectId);
    return this.boxes.page({ tenantId: ctx.principal.tenantId, scopeId: projectId }, { orderBy: { field: "name", direction: "ASC" } }, page);
  }

  /** Whether the project holds any (one is enough for a delete to refuse). */
  async count(tenantId: string, projectId: string): Promise<number> {
    return (await this.boxes.page({ tenantId, scopeId: projectId }, {}, { maxPageSize: 1 })).items.length;
  }

  listAll(tenantId: string, projectId: string): Promise<ToolboxDoc[]> {
    return toArray(this.boxes.every({ tenantId, scopeId: projectId }));
  }

  async update(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch: string, servers: ServerDoc[], toolsOf: ToolsOf): Promise<Toolbox> {
    const patch = parseOrThrow(ToolboxPatch, input, "body");
    const current = await this.load(ctx.principal.tenantId, projectId, id);
    if (!etagMatches(current._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (patch.tools) await checkMembers(patch.tools, servers, toolsOf, "body.tools");
    const { _etag, ...rest } = current;
    const next: ToolboxDoc = { ...rest, ...(patch.tools ? { tools: dedupe(patch.tools) } : {}), updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
    if (patch.description === null) delete next.description;
    else if (patch.description !== undefined) next.description = patch.description;
    return this.boxes.replace(ctx, current, next, { action: "toolbox.update", event: "aigov.mcp.toolbox.updated.v1" });
  }

  async delete(ctx: RequestContext, projectId: string, id: string, ifMatch: string): Promise<void> {
    const current = await this.load(ctx.principal.tenantId, projectId, id);
    if (!etagMatches(current._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    await this.remove(ctx, current);
  }

  private async remove(ctx: RequestContext, current: Versioned<ToolboxDoc>): Promise<void> {
    const partition = { tenantId: current.tenantId, scopeId: current.scopeId };
    await this.boxes.delete(ctx, current, {
      action: "toolbox.delete",
      event: "aigov.mcp.toolbox.deleted.v1",
      data: { id: current.id, projectId: current.projectId, name: current.name },
      extraOps: [{ kind: "delete", id: toolboxNameId(current.name) }, ...(await this.slots.release(partition, current.id))],
    });
  }

  private load(tenantId: string, projectId: string, id: string) {
    return this.boxes.load({ tenantId, scopeId: projectId }, id, toolboxPath(projectId, id));
  }
}

const dedupe = (tools: { server: string; tool: string }[]) => [...new Map(tools.map((t) => [`${t.server}/${t.tool}`, t])).values()];

/** Every member is a tool the server's latest discovery lists, and the members can be served as one MCP server. */
async function checkMembers(tools: { server: string; tool: string }[], servers: ServerDoc[], toolsOf: ToolsOf, field: string): Promise<void> {
  const byName = new Map(servers.map((s) => [s.name, s]));
  const listed = new Map<string, Set<string>>();
  const errors: { field: string; message: string }[] = [];
  for (const [i, t] of tools.entries()) {
    const server = byName.get(t.server);
    if (!server) {
      errors.push({ field: `${field}.${i}.server`, message: `no MCP server named ${t.server} in this project` });
      continue;
    }
    if (!listed.has(server.name)) listed.set(server.name, new Set((await toolsOf(server)).map((x) => x.name)));
    if (!listed.get(server.name)!.has(t.tool)) errors.push({ field: `${field}.${i}.tool`, message: `${t.server}'s latest discovery does not list ${t.tool}` });
  }
  if (errors.length) throw new AppError({ kind: "validation", detail: "a toolbox can hold only tools its servers list", errors, reason: "tool_unknown" });
  const members = [...new Set(tools.map((t) => t.server))].map((n) => byName.get(n)!);
  const remotes = members.filter((s) => s.source.kind === "remote");
  if (remotes.length > 1 || (remotes.length === 1 && members.length > 1)) {
    throw new AppError({
      kind: "validation",
      detail: "a toolbox holds converted (REST) tools of any servers, or tools of one remote server",
      errors: [{ field, message: `mixes ${members.map((s) => `${s.name} (${s.source.kind})`).join(", ")}` }],
      reason: "toolbox_mixes_sources",
    });
  }
}
