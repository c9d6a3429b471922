/**
 * The tools pillar's service: the server registry, discovery and its snapshots, the tools of a server
 * with what the project's approvals say about them, approvals of tools, toolboxes, the approval mode,
 * and the tenant catalog. The parts live beside it (servers.ts, discovery/run.ts, snapshots.ts,
 * grants.ts, toolboxes.ts, catalog.ts); this class is the API they answer through.
 */
import type { IdentityGrants } from "../../policy/identity.js";
import { approvalDrive } from "../../domain/approvals/drive.js";
import type { Approval } from "../../domain/approvals/schema.js";
import type { ApprovalService } from "../../domain/approvals/service.js";
import type { ChangeWriter } from "../../domain/changes.js";
import { etagMatches, etagValue, type Page, type RequestContext } from "../../domain/common.js";
import { fail, notFound } from "../../domain/errors.js";
import type { Driven, DriveRequest } from "../../domain/kernel/drive.js";
import { holdsOn, KEY_HOLDERS } from "../../domain/kernel/roles.js";
import type { ProjectService } from "../../domain/projects/service.js";
import { parseOrThrow } from "../../domain/validation.js";
import type { Clock } from "../../ports/clock.js";
import type { SecretStore } from "../../ports/secrets.js";
import type { Partition, Store } from "../../ports/store.js";
import { Catalog, type CatalogDoc } from "./catalog.js";
import { discoveryDrive, type ToolDiscoveryInput } from "./discovery/drive.js";
import { DiscoveryRunner, type DiscoveryResult } from "./discovery/run.js";
import { servedAtGateway, settingsId, settingsPath, snapshotPath, type ServerDoc, type SettingsDoc, type SnapshotDoc, type StoredTool } from "./documents.js";
import { endpointOf } from "./definitions.js";
import { approvalStateOf, ToolGrants, type ApprovalMode } from "./grants.js";
import { exportServerJson, importServerJson } from "./registry-json.js";
import { ToolApprovalSpec, ToolsSettings, type McpServerPatch, type CatalogEntry, type McpServer, type McpServerSpecInput, type Snapshot, type Tool } from "./schema.js";
import { ServerRegistry } from "./servers.js";
import { SnapshotStore } from "./snapshots.js";
import { Toolboxes } from "./toolboxes.js";

export interface ToolsDeps {
  store: Store;
  changes: ChangeWriter;
  clock: Clock;
  /** Secrets only the control plane uses (OAuth client secrets for discovery). */
  secrets: SecretStore;
  /** Secrets the gateway sends upstream (header secrets). */
  providerSecrets: SecretStore;
  projects: ProjectService;
  approvals: ApprovalService;
  /** Local mode: loopback upstreams are allowed (nothing else private, ever). */
  allowLoopback: boolean;
  /** What an operator granted the tenant at its gateway: its own identities, the Azure AI hosts the gateway's own may call. */
  gatewayGrants?: (tenantId: string) => IdentityGrants;
}

export class ToolsService {
  readonly registry: ServerRegistry;
  readonly snapshots: SnapshotStore;
  readonly grants: ToolGrants;
  readonly toolboxes: Toolboxes;
  readonly catalog: Catalog;
  readonly discovery: DiscoveryRunner;
  private readonly store: Store;
  private readonly changes: ChangeWriter;
  private readonly clock: Clock;
  private readonly projects: ProjectService;

  constructor(deps: ToolsDeps) {
    this.store = deps.store;
    this.changes = deps.changes;
    this.clock = deps.clock;
    this.projects = deps.projects;
    this.registry = new ServerRegistry(deps.store, deps.changes, deps.clock, { gateway: deps.providerSecrets, controlPlane: deps.secrets }, deps.projects, deps.allowLoopback, deps.gatewayGrants);
    this.snapshots = new SnapshotStore(deps.store);
    this.grants = new ToolGrants(deps.store, deps.changes, deps.clock, deps.approvals);
    this.toolboxes = new Toolboxes(deps.store, deps.changes, deps.clock, deps.projects);
    this.catalog = new Catalog(deps.store);
    this.discovery = new DiscoveryRunner(this.registry, this.snapshots, deps.clock, { suspendChanged: (ctx, server, tools, before, beforeSource) => this.suspend(ctx, server, tools, before, beforeSource), catalog: (t, s, v, tools, removed) => this.refreshCatalog(t, s, v, tools, removed), forget: (t, id) => this.catalog.removeServer(t, id) }, deps.allowLoopback);
    deps.approvals.onSettled(
      "tool",
      (approval, correlationId) => this.settle(approval, correlationId),
      (approval) => this.grants.awaits(approval),
    );
  }

  // ---- servers

  async createServer(ctx: RequestContext, projectId: string, input: McpServerSpecInput): Promise<Driven<McpServer>> {
    const server = await this.registry.create(ctx, projectId, input);
    return { ...server, drive: discoveryDrive(ctx.principal.tenantId, projectId, server.id) };
  }

  async updateServer(ctx: RequestContext, projectId: string, id: string, patch: McpServerPatch, ifMatch: string): Promise<Driven<McpServer>> {
    const { server, rediscover } = await this.registry.update(ctx, projectId, id, patch, ifMatch);
    if (patch.status !== undefined || patch.tags !== undefined) await this.refreshCatalogOf(ctx.principal.tenantId, projectId, id);
    return rediscover ? { ...server, drive: discoveryDrive(ctx.principal.tenantId, projectId, id) } : server;
  }

  private async suspend(ctx: RequestContext, server: ServerDoc, tools: StoredTool[], before: StoredTool[], beforeSource: string | undefined): Promise<string[]> {
    const suspended = await this.grants.suspendChanged(ctx, server, tools, before, beforeSource);
    for (const tool of suspended) await this.catalog.setApproval(server.tenantId, server.id, tool, "suspended");
    return suspended;
  }

  async deleteServer(ctx: RequestContext, projectId: string, id: string, ifMatch: string): Promise<void> {
    const server = await this.registry.load(ctx.principal.tenantId, projectId, id);
    const holders = (await this.toolboxes.listAll(ctx.principal.tenantId, projectId)).filter((b) => b.tools.some((t) => t.server === server.name));
    if (holders.length) fail({ kind: "conflict", detail: `toolboxes ${holders.map((b) => b.name).join(", ")} hold tools of ${server.name}: change them first`, reason: "project_has_dependents" });
    await this.registry.delete(ctx, projectId, id, ifMatch);
    await this.catalog.removeServer(ctx.principal.tenantId, id);
    await this.grants.forgetServer(ctx, this.partition(ctx, projectId), id);
  }

  /** Starts a discovery now (on demand); the server's discoveryState says how it went. */
  async discover(ctx: RequestContext, projectId: string, id: string): Promise<Driven<McpServer>> {
    const server = await this.registry.get(ctx, projectId, id);
    await this.registry.writable(ctx, projectId);
    // A blocked server is not contacted (nor sent its credentials), on demand no more than on schedule.
    if (server.status === "blocked") fail({ kind: "conflict", detail: `${server.name} is blocked: it is not contacted until it is active or deprecated again`, reason: "server_blocked" });
    return { ...server, drive: discoveryDrive(ctx.principal.tenantId, projectId, id) };
  }

  /** The discovery activity. */
  runDiscovery(input: ToolDiscoveryInput, correlationId: string): Promise<DiscoveryResult> {
    return this.discovery.run(input.tenantId, input.projectId, input.serverId, correlationId);
  }

  /** Servers whose scheduled re-discovery is due (a job: across partitions). */
  async *dueForDiscovery(): AsyncGenerator<DriveRequest<ToolDiscoveryInput>> {
    const now = this.clock.now().getTime();
    for await (const s of this.registry.servers.every("all")) {
      // A damaged server (written around the API) holds up no other server's discovery.
      let due = false;
      try {
        // A blocked server is not contacted (nor sent its credentials).
        if (!s.discovery?.enabled || s.status === "blocked") continue;
        const last = Date.parse(s.discoveryState?.lastAttemptAt ?? s.createdAt);
        due = last + s.discovery.intervalHours * 3_600_000 <= now;
      } catch (err) {
        console.error(`tool rediscovery: server ${s.id} of tenant ${s.tenantId}: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (due) yield discoveryDrive(s.tenantId, s.projectId, s.id);
    }
  }

  async importServer(ctx: RequestContext, projectId: string, serverJson: unknown, options: { name?: string | undefined; remote?: number | undefined }): Promise<Driven<McpServer>> {
    const spec = importServerJson(serverJson, options);
    return this.createServer(ctx, projectId, spec);
  }

  async exportServer(ctx: RequestContext, projectId: string, id: string): Promise<Record<string, unknown>> {
    const server = await this.registry.get(ctx, projectId, id);
    return exportServerJson(server);
  }

  // ---- snapshots and tools

  async listSnapshots(ctx: RequestContext, projectId: string, serverId: string, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<Snapshot>> {
    await this.registry.get(ctx, projectId, serverId);
    const result = await this.snapshots.page(this.partition(ctx, projectId), serverId, page);
    return { items: result.items.map(snapshotView), ...(result.continuationToken ? { continuationToken: result.continuationToken } : {}) };
  }

  async getSnapshot(ctx: RequestContext, projectId: string, serverId: string, id: string): Promise<Snapshot> {
    await this.registry.get(ctx, projectId, serverId);
    const header = await this.snapshots.header(this.partition(ctx, projectId), id);
    if (!header || header.serverId !== serverId) return notFound(snapshotPath(projectId, serverId, id));
    return snapshotView(header);
  }

  /** The server's tools from its latest snapshot, each with its approval state in the project. */
  async listTools(ctx: RequestContext, projectId: string, serverId: string, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<Tool>> {
    await this.projects.get(ctx, projectId);
    const server = await this.registry.load(ctx.principal.tenantId, projectId, serverId);
    const tools = await this.toolsOf(server);
    const start = page.continuationToken ? Number.parseInt(page.continuationToken, 10) : 0;
    if (!Number.isInteger(start) || start < 0 || start > tools.length) fail({ kind: "validation", detail: "the continuation token is invalid", errors: [{ field: "query.continuationToken", message: "is not a token this list gave" }] });
    const mode = await this.approvalMode(ctx.principal.tenantId, projectId);
    const partition = this.partition(ctx, projectId);
    const slice = tools.slice(start, start + page.maxPageSize);
    const used = await this.toolCalls(ctx.principal.tenantId, projectId);
    const items = await Promise.all(slice.map(async (t) => this.toolView(server, t, mode, await this.grants.read(partition, server.id, t.name), used)));
    const next = start + slice.length;
    return { items, ...(next < tools.length ? { continuationToken: String(next) } : {}) };
  }

  async getTool(ctx: RequestContext, projectId: string, serverId: string, name: string): Promise<Tool> {
    await this.projects.get(ctx, projectId);
    const server = await this.registry.load(ctx.principal.tenantId, projectId, serverId);
    const tool = (await this.toolsOf(server)).find((t) => t.name === name);
    if (!tool) return notFound(`/projects/${projectId}/mcp-servers/${serverId}/tools/${encodeURIComponent(name)}`);
    const used = await this.toolCalls(ctx.principal.tenantId, projectId);
    return this.toolView(server, tool, await this.approvalMode(ctx.principal.tenantId, projectId), await this.grants.read(this.partition(ctx, projectId), serverId, name), used);
  }

  /** The tools of a server's latest snapshot (none before its first successful discovery). */
  async toolsOf(server: ServerDoc): Promise<StoredTool[]> {
    return (await this.latestSnapshot(server))?.tools ?? [];
  }

  /** A server's latest snapshot: its header and tools. */
  async latestSnapshot(server: ServerDoc): Promise<{ header: SnapshotDoc; tools: StoredTool[] } | undefined> {
    const id = server.discoveryState.snapshotId;
    if (!id) return undefined;
    const partition = { tenantId: server.tenantId, scopeId: server.scopeId };
    const header = await this.snapshots.header(partition, id);
    return header ? { header, tools: await this.snapshots.tools(partition, header) } : undefined;
  }

  // ---- approvals

  async requestApproval(ctx: RequestContext, projectId: string, serverId: string, name: string, input: unknown): Promise<Driven<{ tool: Tool; approval: Approval }>> {
    const spec = parseOrThrow(ToolApprovalSpec, input, "body");
    const project = await this.projects.get(ctx, projectId);
    if (!holdsOn(ctx.principal, project, KEY_HOLDERS)) fail({ kind: "forbidden", detail: "asking for a tool approval requires a role that may hold keys in the project" });
    const server = await this.registry.load(ctx.principal.tenantId, projectId, serverId);
    // An approval granted while the server is blocked would make its tool callable the moment it is unblocked:
    // approvers judge a server the project may serve, so the request waits until it is active or deprecated.
    if (server.status === "blocked") fail({ kind: "conflict", detail: `${server.name} is blocked: its tools are not put to approvers until it is active or deprecated again`, reason: "server_blocked" });
    if (!server.discoveryState.snapshotId) fail({ kind: "conflict", detail: `${server.name} has no successful discovery yet`, reason: "discovery_not_ready" });
    const tool = (await this.toolsOf(server)).find((t) => t.name === name);
    if (!tool) return notFound(`/projects/${projectId}/mcp-servers/${serverId}/tools/${encodeURIComponent(name)}`);
    const mode = await this.approvalMode(ctx.principal.tenantId, projectId);
    const { grant, approval } = await this.grants.request(ctx, server, tool, mode, spec.justification);
    await this.catalog.setApproval(ctx.principal.tenantId, serverId, name, "pending");
    return { tool: this.toolView(server, tool, mode, grant), approval, drive: approvalDrive(approval) };
  }

  private async settle(approval: Approval, correlationId: string): Promise<void> {
    const grant = await this.grants.settle(approval, correlationId);
    if (!grant) return;
    const server = await this.registry.servers.read({ tenantId: grant.tenantId, scopeId: grant.scopeId }, grant.serverId);
    const tool = server ? (await this.toolsOf(server)).find((t) => t.name === grant.tool) : undefined;
    if (server && tool) await this.catalog.setApproval(grant.tenantId, grant.serverId, grant.tool, approvalStateOf(await this.approvalMode(grant.tenantId, grant.scopeId), tool, grant, endpointOf(server.source)).state);
    // Grants are live compiler input: a system publish takes the new state to the gateway.
    await this.onGatewayChange?.(grant.tenantId, { by: "system:tool-approvals", reason: `tool ${grant.server}/${grant.tool} ${grant.state} (${grant.approvalId})`, correlationId });
  }

  /** The approved tool grants of a project (access reviews). */
  async approvedGrants(tenantId: string, projectId: string): Promise<{ serverId: string; server: string; tool: string; approvedAt: string; requestedBy: string }[]> {
    const grants = await this.grants.all({ tenantId, scopeId: projectId });
    return grants.filter((g) => g.state === "approved").map((g) => ({ serverId: g.serverId, server: g.server, tool: g.tool, approvedAt: g.updatedAt, requestedBy: g.requestedBy }));
  }

  /**
   * Withdraws a tool's approval on behalf of automation (an access review's outcome; `ctx` is a system
   * context): the tool is no longer callable once the system publish it asks for is live. Idempotent.
   */
  async withdrawApproval(ctx: RequestContext, projectId: string, serverId: string, tool: string, reason: string): Promise<"removed" | "alreadyGone"> {
    const partition = { tenantId: ctx.principal.tenantId, scopeId: projectId };
    const grant = await this.grants.withdraw(ctx, partition, serverId, tool, reason);
    if (!grant) {
      // Withdrawn before, but the publish that takes it to the gateway may have failed then (the item was
      // recorded failed and is applied again): ask again. A publish that changes nothing does nothing.
      const current = await this.grants.read(partition, serverId, tool);
      if (current?.state === "withdrawn") await this.onGatewayChange?.(current.tenantId, { by: "system:access-reviews", reason: `tool ${current.server}/${current.tool} approval withdrawn`, correlationId: ctx.correlationId });
      return "alreadyGone";
    }
    await this.catalog.setApproval(grant.tenantId, grant.serverId, grant.tool, "withdrawn");
    await this.onGatewayChange?.(grant.tenantId, { by: "system:access-reviews", reason: `tool ${grant.server}/${grant.tool} approval withdrawn`, correlationId: ctx.correlationId });
    return "removed";
  }

  /** Set by the composition root once usage exists: last calls through the gateway (tools' lastUsedAt). */
  lastUse?: (tenantId: string, projectId: string) => Promise<{ toolCall: Record<string, string>; toolboxCall?: Record<string, string> } | undefined>;

  /**
   * A project's tools' last calls that reached them, by `<server>/<tool>`: directly, and through its
   * pass-through toolboxes (tools of one server, exposed under their own names). A toolbox of several
   * servers' converted tools calls each through its REST API, which records the server's tool itself.
   */
  async toolCalls(tenantId: string, projectId: string): Promise<Record<string, string>> {
    const activity = await this.lastUse?.(tenantId, projectId);
    const out = { ...(activity?.toolCall ?? {}) };
    const viaBoxes = activity?.toolboxCall ?? {};
    if (!Object.keys(viaBoxes).length) return out;
    for (const box of await this.toolboxes.listAll(tenantId, projectId)) {
      if (new Set(box.tools.map((t) => t.server)).size !== 1) continue;
      for (const t of box.tools) {
        const at = viaBoxes[`${box.name}/${t.tool}`];
        const id = `${t.server}/${t.tool}`;
        if (at && (!out[id] || out[id] < at)) out[id] = at;
      }
    }
    return out;
  }

  /** Set by the composition root once publishing exists (a system publish of live tool state). */
  onGatewayChange?: (tenantId: string, cause: { by: `system:${string}`; reason: string; correlationId: string }) => Promise<unknown>;

  // ---- the approval mode

  async getSettings(ctx: RequestContext, projectId: string): Promise<{ approvalMode: ApprovalMode; etag: string }> {
    await this.projects.get(ctx, projectId);
    const doc = await this.store.read<SettingsDoc>(this.partition(ctx, projectId), settingsId);
    return doc?.docType === "toolsSettings" ? { approvalMode: doc.approvalMode, etag: etagValue(doc._etag) } : { approvalMode: "none", etag: "initial" };
  }

  async putSettings(ctx: RequestContext, projectId: string, input: unknown, ifMatch: string): Promise<{ approvalMode: ApprovalMode; etag: string }> {
    await this.registry.writable(ctx, projectId);
    const spec = parseOrThrow(ToolsSettings, input, "body");
    const partition = this.partition(ctx, projectId);
    const current = await this.store.read<SettingsDoc>(partition, settingsId);
    if (!etagMatches(current?._etag ?? "initial", ifMatch)) fail({ kind: "preconditionFailed" });
    const doc: SettingsDoc = { id: settingsId, ...partition, docType: "toolsSettings", approvalMode: spec.approvalMode, updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
    const [etag] = await this.changes.commit({
      partition,
      ctx,
      action: "tools.settings.update",
      resource: settingsPath(projectId),
      ...(current ? { before: { approvalMode: current.approvalMode } } : {}),
      after: { approvalMode: spec.approvalMode },
      ops: [current ? { kind: "replace", doc, ifMatch: current._etag } : { kind: "create", doc }],
      event: { type: "aigov.mcp.settings.updated.v1", subject: `/tenants/${ctx.principal.tenantId}${settingsPath(projectId)}`, data: { projectId, approvalMode: spec.approvalMode } },
    });
    for (const s of await this.registry.listAll(ctx.principal.tenantId, projectId)) await this.refreshCatalogOf(ctx.principal.tenantId, projectId, s.id);
    return { approvalMode: spec.approvalMode, etag: etagValue(etag ?? "") };
  }

  async approvalMode(tenantId: string, projectId: string): Promise<ApprovalMode> {
    const doc = await this.store.read<SettingsDoc>({ tenantId, scopeId: projectId }, settingsId);
    return doc?.docType === "toolsSettings" ? doc.approvalMode : "none";
  }

  // ---- toolboxes

  async createToolbox(ctx: RequestContext, projectId: string, input: unknown) {
    await this.registry.writable(ctx, projectId);
    return this.toolboxes.create(ctx, projectId, input, await this.registry.listAll(ctx.principal.tenantId, projectId), (s) => this.toolsOf(s));
  }

  async updateToolbox(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch: string) {
    await this.registry.writable(ctx, projectId);
    return this.toolboxes.update(ctx, projectId, id, input, ifMatch, await this.registry.listAll(ctx.principal.tenantId, projectId), (s) => this.toolsOf(s));
  }

  async deleteToolbox(ctx: RequestContext, projectId: string, id: string, ifMatch: string) {
    await this.registry.writable(ctx, projectId);
    return this.toolboxes.delete(ctx, projectId, id, ifMatch);
  }

  // ---- the catalog

  async searchCatalog(ctx: RequestContext, query: { q?: string | undefined; projectId?: string | undefined; server?: string | undefined; readOnly?: "true" | "false" | undefined; approval?: string | undefined; tag?: string | undefined; maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<CatalogEntry>> {
    if (ctx.principal.roles.size === 0) fail({ kind: "forbidden", detail: "the tool catalog needs a tenant role" });
    return this.catalog.search(ctx.principal.tenantId, query, query);
  }

  /** Key scopes: the entries of a project that name no server, tool or toolbox it has. */
  async unknownScopes(tenantId: string, projectId: string, entries: string[]): Promise<string[]> {
    if (!entries.length) return [];
    const servers = new Map((await this.registry.listAll(tenantId, projectId)).map((s) => [s.id, s]));
    const boxes = new Set((await this.toolboxes.listAll(tenantId, projectId)).map((b) => b.id));
    const unknown: string[] = [];
    const names = new Map<string, Set<string>>();
    for (const e of entries) {
      if (e.startsWith("tbx_")) {
        if (!boxes.has(e)) unknown.push(e);
        continue;
      }
      const [id, tool] = e.includes("/") ? [e.slice(0, e.indexOf("/")), e.slice(e.indexOf("/") + 1)] : [e, undefined];
      const server = servers.get(id);
      if (server && tool !== undefined && !names.has(server.id)) names.set(server.id, new Set((await this.toolsOf(server)).map((t) => t.name)));
      if (!server || (tool !== undefined && !names.get(server.id)!.has(tool))) unknown.push(e);
    }
    return unknown;
  }

  // ---- project dependents

  /**
   * Servers and toolboxes, each counted: a server a toolbox uses cannot be deleted, but that check reads
   * before it writes, so a toolbox made from a server list read earlier can outlive its servers.
   */
  async count(tenantId: string, projectId: string): Promise<{ "MCP servers": number; toolboxes: number }> {
    const [servers, toolboxes] = await Promise.all([this.registry.count(tenantId, projectId), this.toolboxes.count(tenantId, projectId)]);
    return { "MCP servers": servers, toolboxes };
  }

  // ---- helpers

  private toolView(server: ServerDoc, t: StoredTool, mode: ApprovalMode, grant: Awaited<ReturnType<ToolGrants["read"]>>, used?: Record<string, string>): Tool {
    const a = approvalStateOf(mode, t, grant, endpointOf(server.source));
    const lastUsedAt = used?.[`${server.name}/${t.name}`];
    return {
      name: t.name,
      namespacedName: `${server.name}/${t.name}`,
      ...(typeof t.definition.title === "string" ? { title: t.definition.title } : {}),
      ...(typeof t.definition.description === "string" ? { description: t.definition.description } : {}),
      hash: t.hash,
      annotations: t.annotations,
      findings: t.findings,
      approval: { state: a.state, ...(grant ? { approvalId: grant.approvalId } : {}), ...(grant?.pinnedHash ? { pinnedHash: grant.pinnedHash } : {}), ...(grant?.cause ? { cause: grant.cause } : {}) },
      callable: a.callable && server.status !== "blocked" && servedAtGateway(t),
      ...(lastUsedAt ? { lastUsedAt } : {}),
      definition: t.definition,
    };
  }

  private async refreshCatalog(tenantId: string, server: ServerDoc, protocolVersion: string, tools: StoredTool[], removed: string[]): Promise<void> {
    const mode = await this.approvalMode(tenantId, server.projectId);
    const partition = { tenantId, scopeId: server.scopeId };
    const at = this.clock.now().toISOString();
    const entries: CatalogDoc[] = [];
    const grants = new Map((await this.grants.all(partition)).filter((g) => g.serverId === server.id).map((g) => [g.tool, g]));
    for (const t of tools) {
      if (!t.name) continue;
      entries.push(this.catalog.entryFor(tenantId, { projectId: server.projectId, serverId: server.id, server: server.name, status: server.status, tags: server.tags, protocolVersion }, t, approvalStateOf(mode, t, grants.get(t.name), endpointOf(server.source)).state, at));
    }
    await this.catalog.write(tenantId, entries, removed.map((tool) => ({ serverId: server.id, tool })));
  }

  private async refreshCatalogOf(tenantId: string, projectId: string, serverId: string): Promise<void> {
    const server = await this.registry.servers.read({ tenantId, scopeId: projectId }, serverId);
    if (!server?.discoveryState.snapshotId) return;
    await this.refreshCatalog(tenantId, server, server.discoveryState.protocolVersion ?? "", await this.toolsOf(server), []);
  }

  private partition(ctx: RequestContext, projectId: string): Partition {
    return { tenantId: ctx.principal.tenantId, scopeId: projectId };
  }
}

function snapshotView(d: SnapshotDoc & { _etag?: string }): Snapshot {
  return {
    id: d.id,
    serverId: d.serverId,
    projectId: d.projectId,
    seq: d.seq,
    createdAt: d.createdAt,
    transport: d.transport,
    protocolVersion: d.protocolVersion,
    serverInfo: d.serverInfo,
    capabilities: d.capabilities,
    toolCount: d.toolCount,
    resourceCount: d.resourceCount,
    promptCount: d.promptCount,
    resources: d.resources,
    prompts: d.prompts,
    findingCount: d.findingCount,
    diff: d.diff,
    etag: etagValue(d._etag ?? ""),
  };
}

