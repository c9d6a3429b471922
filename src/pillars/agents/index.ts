import { pageResult } from "../../http/paging.js";
import type { Pillar } from "../pillar.js";
import { drivenRoute, route } from "../pillar.js";
import * as op from "./operations.js";
import type { AgentsService } from "./service.js";
import type { FederatedToken } from "./federation.js";
import type { AgentSourceFactory } from "./sources/source.js";

const AGENT_COLUMNS = ["id", "name", "lifecycle.state", "enabled", "origin", "provenance.cloud", "provenance.region", "sync.state", "owner"];
const CONNECTION_COLUMNS = ["id", "name", "cloud", "projectId", "regions", "enabled", "lastSync.status", "lastSync.finishedAt"];
const RUN_COLUMNS = ["id", "status", "trigger", "startedAt", "durationMs", "counts.listed", "counts.discovered", "counts.changed", "counts.removedAtSource", "counts.malformed"];
const page = (query: { maxPageSize: number; continuationToken?: string | undefined }) => query;

/**
 * The agents pillar: a project's agents (registered here, or synced from Amazon Bedrock, Google Vertex
 * AI and Azure AI Foundry through the tenant's connections) with their A2A AgentCards, lifecycle,
 * guardrails and keys; served at the gateway as APIs (src/policy/compile/agents.ts). docs/agents.md is
 * the tour.
 */
export const agentsPillar: Pillar<AgentsService> = {
  name: "agents",
  routes: [
    route(op.createAgent, async ({ params, body }, ctx, s) => ({ body: await s.registry.create(ctx, params.projectId, body) })),
    route(op.listAgents, async ({ params, query }, ctx, s) => ({
      body: pageResult(op.listAgents, { params, query }, await s.registry.list(ctx, params.projectId, query)),
    })),
    route(op.getAgent, async ({ params }, ctx, s) => ({ body: await s.registry.get(ctx, params.projectId, params.agentId) })),
    route(op.updateAgent, async ({ params, body, ifMatch }, ctx, s) => ({ body: await s.registry.update(ctx, params.projectId, params.agentId, body, ifMatch) })),
    route(op.deleteAgent, async ({ params, ifMatch }, ctx, s) => {
      await s.deleteAgent(ctx, params.projectId, params.agentId, ifMatch);
      return {};
    }),
    route(op.transitionAgent, async ({ params, body }, ctx, s) => ({ body: await s.registry.transition(ctx, params.projectId, params.agentId, body) })),
    route(op.issueAgentKey, async ({ params, body }, ctx, s) => ({ body: await s.registry.issueKey(ctx, params.projectId, params.agentId, body) })),
    route(op.getProjectAgentSettings, async ({ params }, ctx, s) => ({ body: await s.connections.getProjectSettings(ctx, params.projectId) })),
    route(op.putProjectAgentSettings, async ({ params, body, ifMatch }, ctx, s) => ({ body: await s.connections.putProjectSettings(ctx, params.projectId, body, ifMatch) })),
    route(op.createAgentConnection, async ({ body }, ctx, s) => ({ body: await s.connections.create(ctx, body) })),
    route(op.listAgentConnections, async ({ query }, ctx, s) => ({ body: pageResult(op.listAgentConnections, { query }, await s.connections.list(ctx, page(query))) })),
    route(op.getAgentConnection, async ({ params }, ctx, s) => ({ body: await s.connections.get(ctx, params.connectionId) })),
    route(op.updateAgentConnection, async ({ params, body, ifMatch }, ctx, s) => ({ body: await s.connections.update(ctx, params.connectionId, body, ifMatch) })),
    route(op.deleteAgentConnection, async ({ params, ifMatch }, ctx, s) => {
      await s.connections.delete(ctx, params.connectionId, ifMatch);
      return {};
    }),
    drivenRoute(op.syncAgentConnection, async ({ params }, ctx, s) => {
      const { drive, ...run } = await s.requestSync(ctx, params.connectionId);
      return { body: run, drive };
    }),
    route(op.listAgentSyncRuns, async ({ params, query }, ctx, s) => ({
      body: pageResult(op.listAgentSyncRuns, { params, query }, await s.listRuns(ctx, params.connectionId, page(query))),
    })),
    route(op.getAgentSyncRun, async ({ params }, ctx, s) => ({ body: await s.getRun(ctx, params.connectionId, params.runId) })),
    route(op.getAgentSyncSettings, async (_req, ctx, s) => ({ body: await s.connections.getTenantSettings(ctx) })),
    route(op.putAgentSyncSettings, async ({ body, ifMatch }, ctx, s) => ({ body: await s.connections.putTenantSettings(ctx, body, ifMatch) })),
    route(op.searchCatalog, async ({ query }, ctx, s) => ({ body: pageResult(op.searchCatalog, { query }, await s.searchCatalog(ctx, query)) })),
  ],

  async build(kit) {
    const [{ AgentsService }, { toAgentsInput }] = await Promise.all([import("./service.js"), import("./compiler.js")]);
    const service = new AgentsService({ store: kit.store, changes: kit.changes, clock: kit.clock, secrets: kit.secrets, projects: kit.projects, allowLoopback: kit.allowLoopback, platformIdentity: (tenantId) => kit.platformIdentity(tenantId), testSources: () => kit.seam("agentSources") as AgentSourceFactory | undefined, testFederatedToken: () => kit.seam("federatedToken") as FederatedToken | undefined });
    return {
      service,
      countDependents: (tenantId, projectId) => service.count(tenantId, projectId),
      compilerInput: async (tenantId, project) => ({ agents: toAgentsInput(await service.registry.listAll(tenantId, project.id), kit.allowLoopback) }),
      connect: ({ keys, pillar, lastUse }) => {
        service.registry.keys = keys;
        service.registry.lastUse = lastUse;
        const models = pillar("models")?.service as { listAll(t: string, p: string): Promise<{ id: string; name: string; displayName?: string | undefined; provider: string; modelName: string; status: string }[]> } | undefined;
        const tools = pillar("tools")?.service as { searchCatalog: NonNullable<import("./catalog.js").CatalogReaders["tools"]> } | undefined;
        service.useCatalog({
          projects: (tenantId) => kit.projects.listAll(tenantId),
          models: (tenantId, projectId) => (models ? models.listAll(tenantId, projectId) : Promise.resolve([])),
          ...(tools ? { tools: (ctx, q) => tools.searchCatalog(ctx, q) } : {}),
        });
      },
    };
  },

  examples: {
    createAgent: (u) => ({ name: `walk ${u}`.slice(0, 200), description: "walked", endpoint: { url: "https://agent.example.com/a2a", protocol: "a2a" } }),
    updateAgent: () => ({ description: "walked again" }),
    transitionAgent: () => ({ to: "active" }),
    issueAgentKey: () => ({ expiresAt: new Date(Date.now() + 30 * 86_400_000).toISOString() }),
    putProjectAgentSettings: () => ({ syncEnabled: true }),
    createAgentConnection: (u) => ({
      name: `con-${u.toLowerCase().replace(/[^a-z0-9-]/g, "-")}`.slice(0, 40).replace(/-+$/, "") || "con-walk",
      projectId: "prj_00000000000000000000",
      scope: { cloud: "bedrock", accountId: "123456789012" },
      regions: ["us-east-1"],
      credentials: { kind: "workloadIdentity" },
    }),
    updateAgentConnection: () => ({ enabled: false }),
    putAgentSyncSettings: () => ({ syncEnabled: true }),
  },

  cli({ program, client, print, err, readJson, out, json }) {
    const agents = program.command("agents").description("register agents, move them through their lifecycle, set guardrails, issue their keys");
    const a = () => client().agents;
    const cn = () => client().connections;
    const list = (o: { maxPageSize?: string; continuationToken?: string }) => ({ ...(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {}), ...(o.continuationToken ? { continuationToken: o.continuationToken } : {}) });
    const more = (p: { continuationToken?: string | undefined }) => p.continuationToken && err(`more: --continuation-token ${p.continuationToken}`);

    agents.command("register <projectId>").description("register an agent from a JSON AgentSpec").requiredOption("--file <path>").action(async (projectId: string, o: { file: string }) => print(await a().create(projectId, readJson(o.file) as never), AGENT_COLUMNS));
    agents
      .command("list <projectId>")
      .description("list a project's agents")
      .option("--state <state>")
      .option("--origin <local|synced>")
      .option("--connection <connectionId>")
      .option("--max-page-size <n>")
      .option("--continuation-token <token>")
      .action(async (projectId: string, o: { state?: string; origin?: string; connection?: string; maxPageSize?: string; continuationToken?: string }) => {
        const p = await a().list(projectId, { ...list(o), ...(o.state ? { state: o.state as never } : {}), ...(o.origin ? { origin: o.origin as never } : {}), ...(o.connection ? { connectionId: o.connection } : {}) });
        more(p);
        print(p.items, AGENT_COLUMNS);
      });
    agents.command("show <projectId> <agentId>").description("show an agent").action(async (projectId: string, agentId: string) => print(await a().get(projectId, agentId)));
    agents
      .command("update <projectId> <agentId>")
      .description("apply a JSON merge patch to an agent (guardrails, enabled, owner, card, endpoint…)")
      .requiredOption("--file <path>")
      .option("--if-match <etag>")
      .action(async (projectId: string, agentId: string, o: { file: string; ifMatch?: string }) => print(await a().update(projectId, agentId, readJson(o.file) as never, o.ifMatch ?? (await a().get(projectId, agentId)).etag), AGENT_COLUMNS));
    for (const [verb, enabled] of [["disable", false], ["enable", true]] as const) {
      agents.command(`${verb} <projectId> <agentId>`).description(`${verb} an agent (a sync never changes this)`).action(async (projectId: string, agentId: string) => print(await a().update(projectId, agentId, { enabled }, (await a().get(projectId, agentId)).etag), AGENT_COLUMNS));
    }
    agents.command("delete <projectId> <agentId>").option("--if-match <etag>").description("delete an agent (and revoke its key)").action(async (projectId: string, agentId: string, o: { ifMatch?: string }) => {
      await a().delete(projectId, agentId, o.ifMatch ?? (await a().get(projectId, agentId)).etag);
      err(`deleted ${agentId}`);
    });
    agents
      .command("transition <projectId> <agentId> <state>")
      .description("move an agent to draft, active, deprecated (--sunset), retired or blocked (and back)")
      .option("--sunset <date>", "YYYY-MM-DD after today, when deprecating: calls are refused from that date on")
      .option("--reason <text>")
      .action(async (projectId: string, agentId: string, state: string, o: { sunset?: string; reason?: string }) =>
        print(await a().transition(projectId, agentId, { to: state as never, ...(o.sunset ? { sunsetDate: o.sunset } : {}), ...(o.reason ? { reason: o.reason } : {}) }), AGENT_COLUMNS),
      );
    agents
      .command("issue-key <projectId> <agentId>")
      .description("issue the agent its key (scope from its guardrails); the secret is printed once")
      .option("--expires-at <iso>")
      .action(async (projectId: string, agentId: string, o: { expiresAt?: string }) => {
        const key = await a().issueKey(projectId, agentId, o.expiresAt ? { expiresAt: o.expiresAt } : {});
        // -o json: the key document (with its secret) is the whole output, as for `keys create`.
        if (json()) return print(key);
        print(key, ["id", "name", "status", "expiresAt"]);
        out(`key (shown once): ${key.key}`);
      });
    agents.command("settings <projectId>").description("whether connections sync agents into the project").action(async (projectId: string) => print(await a().getSettings(projectId)));
    agents
      .command("set-sync")
      .argument("<projectId>")
      .addArgument(program.createArgument("<state>", "on or off").choices(["on", "off"]))
      .description("switch agent sync into the project on or off (state: on|off)")
      .option("--if-match <etag>")
      .action(async (projectId: string, v: string, o: { ifMatch?: string }) => print(await a().putSettings(projectId, { syncEnabled: v === "on" }, o.ifMatch ?? (await a().getSettings(projectId)).etag)));

    const connections = program.command("connections").description("connect clouds whose agents are synced (Amazon Bedrock, Google Vertex AI, Azure AI Foundry)");
    connections.command("create").description("create a connection from a JSON ConnectionSpec (credentials are write-only)").requiredOption("--file <path>").action(async (o: { file: string }) => print(await cn().create(readJson(o.file) as never), CONNECTION_COLUMNS));
    connections.command("list").option("--max-page-size <n>").option("--continuation-token <token>").description("list connections").action(async (o: { maxPageSize?: string; continuationToken?: string }) => {
      const p = await cn().list(list(o));
      more(p);
      print(p.items, CONNECTION_COLUMNS);
    });
    connections.command("show <connectionId>").description("show a connection").action(async (connectionId: string) => print(await cn().get(connectionId)));
    connections
      .command("update <connectionId>")
      .description("apply a JSON merge patch to a connection")
      .requiredOption("--file <path>")
      .option("--if-match <etag>")
      .action(async (connectionId: string, o: { file: string; ifMatch?: string }) => print(await cn().update(connectionId, readJson(o.file) as never, o.ifMatch ?? (await cn().get(connectionId)).etag), CONNECTION_COLUMNS));
    for (const [verb, enabled] of [["disable", false], ["enable", true]] as const) {
      connections.command(`${verb} <connectionId>`).description(`switch the connection's sync ${enabled ? "on" : "off"} (its agents keep their state)`).action(async (connectionId: string) => print(await cn().update(connectionId, { enabled }, (await cn().get(connectionId)).etag), CONNECTION_COLUMNS));
    }
    connections.command("delete <connectionId>").option("--if-match <etag>").description("delete a connection (its agents stay)").action(async (connectionId: string, o: { ifMatch?: string }) => {
      await cn().delete(connectionId, o.ifMatch ?? (await cn().get(connectionId)).etag);
      err(`deleted ${connectionId}`);
    });
    connections
      .command("sync <connectionId>")
      .description("sync the connection's agents now")
      .option("--wait", "wait for the run to finish and print its report")
      .option("--timeout <seconds>", "with --wait", "600")
      .action(async (connectionId: string, o: { wait?: boolean; timeout: string }) => {
        let run = await cn().sync(connectionId);
        const deadline = Date.now() + Number(o.timeout) * 1000;
        while (o.wait && run.status === "running") {
          if (Date.now() > deadline) throw new Error(`run ${run.id} still running after ${o.timeout} s`);
          await new Promise((r) => setTimeout(r, 500));
          run = await cn().run(connectionId, run.id);
        }
        if (o.wait) print(run);
        else print(run, RUN_COLUMNS);
      });
    connections.command("runs <connectionId>").option("--max-page-size <n>").option("--continuation-token <token>").description("list sync runs, newest first").action(async (connectionId: string, o: { maxPageSize?: string; continuationToken?: string }) => {
      const p = await cn().runs(connectionId, list(o));
      more(p);
      print(p.items, RUN_COLUMNS);
    });
    connections.command("run <connectionId> <runId>").description("show a sync run's report").action(async (connectionId: string, runId: string) => print(await cn().run(connectionId, runId)));
    connections.command("settings").description("whether the tenant's connections sync at all").action(async () => print(await cn().getSettings()));
    connections
      .command("set-sync")
      .addArgument(program.createArgument("<state>", "on or off").choices(["on", "off"]))
      .description("switch agent sync on or off for the tenant (state: on|off)")
      .option("--if-match <etag>")
      .action(async (v: string, o: { ifMatch?: string }) => print(await cn().putSettings({ syncEnabled: v === "on" }, o.ifMatch ?? (await cn().getSettings()).etag)));

    const catalog = program.command("catalog").description("search the tenant's models, tools and agents");
    catalog
      .command("search [words...]")
      .description("search models, tools and agents")
      .option("--kind <kind>", "models, tools or agents")
      .option("--project <projectId>")
      .option("--max-page-size <n>")
      .option("--continuation-token <token>")
      .action(async (words: string[], o: { kind?: string; project?: string; maxPageSize?: string; continuationToken?: string }) => {
        const p = await client().catalog.search({ ...(words.length ? { q: words.join(" ") } : {}), ...(o.kind ? { kind: o.kind as never } : {}), ...(o.project ? { projectId: o.project } : {}), ...list(o) });
        more(p);
        print(p.items, ["kind", "projectId", "id", "name", "status"]);
      });
  },
};
