/**
 * The agents pillar's service: the agent registry (agents.ts), cloud connections and the sync switches
 * (connections.ts), the sync's steps (sync/run.ts) and the catalog across pillars (catalog.ts). This
 * class is the API they answer through; the parts hold the rules.
 */
import { type FederatedToken, managedIdentityToken } from "./federation.js";
import type { ChangeWriter } from "../../domain/changes.js";
import type { Page, RequestContext } from "../../domain/common.js";
import { fail } from "../../domain/errors.js";
import type { Driven } from "../../domain/kernel/drive.js";
import { holdsAny, TENANT_ADMINS } from "../../domain/kernel/roles.js";
import type { ProjectService } from "../../domain/projects/service.js";
import type { Clock } from "../../ports/clock.js";
import type { SecretStore } from "../../ports/secrets.js";
import { TENANT_SCOPE, type Store } from "../../ports/store.js";
import { AgentRegistry, type HeldReason } from "./agents.js";
import { Cards } from "./card-record.js";
import { UnifiedCatalog, type CatalogReaders, type CatalogSearchQuery } from "./catalog.js";
import { ConnectionService } from "./connections.js";
import { runPath } from "./documents.js";
import type { SyncRun } from "./schema.js";
import { createAgentSource } from "./sources/index.js";
import type { AgentSourceFactory } from "./sources/source.js";
import { SyncRunner } from "./sync/run.js";

export interface AgentsDeps {
  store: Store;
  changes: ChangeWriter;
  clock: Clock;
  /** The control plane's secrets (cloud credentials). */
  secrets: SecretStore;
  projects: ProjectService;
  allowLoopback: boolean;
  /** Whether a tenant may reach other clouds as the platform's own identity (the kit's platformIdentity). */
  platformIdentity: (tenantId: string) => boolean;
  /** A test's sources (a cloud SDK on an in-process fake), asked at every sync page; the real SDKs otherwise. */
  testSources?: () => AgentSourceFactory | undefined;
  /** A test's identity token for workload identity federation; the managed identity's otherwise. */
  testFederatedToken?: () => FederatedToken | undefined;
}

export class AgentsService {
  readonly registry: AgentRegistry;
  readonly connections: ConnectionService;
  readonly sync: SyncRunner;
  readonly cards: Cards;
  /** Wired once the other pillars exist (the composition root). */
  catalog: UnifiedCatalog | undefined;

  constructor(private readonly deps: AgentsDeps) {
    this.cards = new Cards(deps.clock, deps.allowLoopback);
    this.registry = new AgentRegistry(deps.store, deps.changes, deps.clock, deps.projects, this.cards, deps.allowLoopback);
    this.connections = new ConnectionService(deps.store, deps.changes, deps.clock, deps.secrets, deps.projects, deps.allowLoopback, () => deps.testFederatedToken?.() ?? managedIdentityToken, deps.platformIdentity);
    this.sync = new SyncRunner(deps.store, deps.changes, deps.clock, this.registry, this.connections, this.cards, (target) => (deps.testSources?.() ?? createAgentSource)(target));
  }

  useCatalog(readers: CatalogReaders): void {
    this.catalog = new UnifiedCatalog(this.deps.store, readers);
  }

  async requestSync(ctx: RequestContext, connectionId: string): Promise<Driven<SyncRun>> {
    if (!holdsAny(ctx.principal.roles, TENANT_ADMINS)) fail({ kind: "forbidden", detail: "syncing a connection is the TenantAdmin's" });
    const connection = await this.connections.load(ctx.principal.tenantId, connectionId);
    const { run, drive } = await this.sync.request(ctx, connection, "manual");
    return { ...run, drive };
  }

  async listRuns(ctx: RequestContext, connectionId: string, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<SyncRun>> {
    await this.connections.get(ctx, connectionId);
    return this.sync.runs.page({ tenantId: ctx.principal.tenantId, scopeId: TENANT_SCOPE }, { filters: [{ field: "connectionId", op: "=", value: connectionId }], orderBy: { field: "startedAt", direction: "DESC" } }, page);
  }

  async getRun(ctx: RequestContext, connectionId: string, runId: string): Promise<SyncRun> {
    await this.connections.get(ctx, connectionId);
    const run = await this.sync.runs.load({ tenantId: ctx.principal.tenantId, scopeId: TENANT_SCOPE }, runId, runPath(connectionId, runId));
    if (run.connectionId !== connectionId) fail({ kind: "notFound", resource: runPath(connectionId, runId) });
    return this.sync.runs.view(run);
  }

  async deleteAgent(ctx: RequestContext, projectId: string, id: string, ifMatch: string): Promise<void> {
    await this.registry.delete(ctx, projectId, id, ifMatch, async (connectionId) => (await this.connections.read(ctx.principal.tenantId, connectionId)) !== undefined);
  }

  async searchCatalog(ctx: RequestContext, query: CatalogSearchQuery) {
    const catalog = this.catalog ?? fail({ kind: "unavailable", detail: "the catalog is not wired" });
    return catalog.search(ctx, query);
  }

  /** Key scopes: the agent ids that name no agent of the project. */
  async unknownAgents(tenantId: string, projectId: string, ids: string[]): Promise<string[]> {
    const out: string[] = [];
    for (const id of ids) if (!(await this.registry.agents.read(this.registry.partition(tenantId, projectId), id))) out.push(id);
    return out;
  }

  /** Keys: when the key is the own key of a blocked, disabled, removed-at-source or past-sunset agent, why and the refusal's reason (it stays suspended). */
  async heldKey(tenantId: string, projectId: string, keyId: string): Promise<{ detail: string; reason: HeldReason } | undefined> {
    const agent = await this.registry.holderOf(tenantId, projectId, keyId);
    return agent ? this.registry.heldRefusalOf(agent) : undefined;
  }

  /** What keeps a project from being deleted: its agents, and the connections that sync into it. */
  async count(tenantId: string, projectId: string): Promise<{ agents: number; "agent connections": number }> {
    return { agents: await this.registry.count(tenantId, projectId), "agent connections": await this.connections.countFor(tenantId, projectId) };
  }
}
