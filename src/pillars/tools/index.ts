import { pageResult } from "../../http/paging.js";
import type { Pillar } from "../pillar.js";
import { drivenRoute, route } from "../pillar.js";
import * as op from "./operations.js";
import type { ToolsService } from "./service.js";

const SERVER_COLUMNS = ["id", "name", "status", "source.kind", "discoveryState.status", "discoveryState.toolCount", "discoveryState.protocolVersion"];
const TOOL_COLUMNS = ["name", "annotations.readOnly", "approval.state", "callable", "hash"];
const page = (query: { maxPageSize: number; continuationToken?: string | undefined }) => query;

/**
 * The tools pillar: a project's MCP servers (remote, or REST APIs converted from OpenAPI), their
 * discovery snapshots and tools, approvals of tools pinned to their definitions, toolboxes, and the
 * tenant's tool catalog; compiled into MCP APIs at the gateway (src/policy/compile/tools.ts).
 * docs/tools.md is the tour.
 */
export const toolsPillar: Pillar<ToolsService> = {
  name: "tools",
  routes: [
    drivenRoute(op.createMcpServer, async ({ params, body }, ctx, s) => {
      const { drive, ...server } = await s.createServer(ctx, params.projectId, body);
      return { body: server, drive };
    }),
    drivenRoute(op.importMcpServer, async ({ params, body }, ctx, s) => {
      const { drive, ...server } = await s.importServer(ctx, params.projectId, body.serverJson, { name: body.name, remote: body.remote });
      return { body: server, drive };
    }),
    route(op.listMcpServers, async ({ params, query }, ctx, s) => ({
      body: pageResult(op.listMcpServers, { params, query }, await s.registry.list(ctx, params.projectId, page(query))),
    })),
    route(op.getMcpServer, async ({ params }, ctx, s) => ({ body: await s.registry.get(ctx, params.projectId, params.serverId) })),
    drivenRoute(op.updateMcpServer, async ({ params, body, ifMatch }, ctx, s) => {
      const { drive, ...server } = await s.updateServer(ctx, params.projectId, params.serverId, body, ifMatch);
      return { body: server, drive };
    }),
    route(op.deleteMcpServer, async ({ params, ifMatch }, ctx, s) => {
      await s.deleteServer(ctx, params.projectId, params.serverId, ifMatch);
      return {};
    }),
    drivenRoute(op.discoverMcpServer, async ({ params }, ctx, s) => {
      const { drive, ...server } = await s.discover(ctx, params.projectId, params.serverId);
      return { body: server, drive };
    }),
    route(op.exportMcpServer, async ({ params }, ctx, s) => ({ body: await s.exportServer(ctx, params.projectId, params.serverId) })),
    route(op.listMcpSnapshots, async ({ params, query }, ctx, s) => ({
      body: pageResult(op.listMcpSnapshots, { params, query }, await s.listSnapshots(ctx, params.projectId, params.serverId, page(query))),
    })),
    route(op.getMcpSnapshot, async ({ params }, ctx, s) => ({ body: await s.getSnapshot(ctx, params.projectId, params.serverId, params.snapshotId) })),
    route(op.listMcpTools, async ({ params, query }, ctx, s) => ({
      body: pageResult(op.listMcpTools, { params, query }, await s.listTools(ctx, params.projectId, params.serverId, page(query))),
    })),
    route(op.getMcpTool, async ({ params }, ctx, s) => ({ body: await s.getTool(ctx, params.projectId, params.serverId, params.toolName) })),
    drivenRoute(op.requestMcpToolApproval, async ({ params, body }, ctx, s) => {
      const { drive, ...result } = await s.requestApproval(ctx, params.projectId, params.serverId, params.toolName, body);
      return { body: result, drive };
    }),
    route(op.getToolsSettings, async ({ params }, ctx, s) => ({ body: await s.getSettings(ctx, params.projectId) })),
    route(op.putToolsSettings, async ({ params, body, ifMatch }, ctx, s) => ({ body: await s.putSettings(ctx, params.projectId, body, ifMatch) })),
    route(op.createToolbox, async ({ params, body }, ctx, s) => ({ body: await s.createToolbox(ctx, params.projectId, body) })),
    route(op.listToolboxes, async ({ params, query }, ctx, s) => ({
      body: pageResult(op.listToolboxes, { params, query }, await s.toolboxes.list(ctx, params.projectId, page(query))),
    })),
    route(op.getToolbox, async ({ params }, ctx, s) => ({ body: await s.toolboxes.get(ctx, params.projectId, params.toolboxId) })),
    route(op.updateToolbox, async ({ params, body, ifMatch }, ctx, s) => ({ body: await s.updateToolbox(ctx, params.projectId, params.toolboxId, body, ifMatch) })),
    route(op.deleteToolbox, async ({ params, ifMatch }, ctx, s) => {
      await s.deleteToolbox(ctx, params.projectId, params.toolboxId, ifMatch);
      return {};
    }),
    route(op.searchToolCatalog, async ({ query }, ctx, s) => ({ body: pageResult(op.searchToolCatalog, { query }, await s.searchCatalog(ctx, query)) })),
  ],

  async build(kit) {
    const [{ ToolsService }, { toToolsInput, liveTools }] = await Promise.all([import("./service.js"), import("./compiler.js")]);
    const service = new ToolsService({ store: kit.store, changes: kit.changes, clock: kit.clock, secrets: kit.secrets, providerSecrets: kit.providerSecrets, projects: kit.projects, approvals: kit.approvals, allowLoopback: kit.allowLoopback, gatewayGrants: (tenantId) => kit.gatewayGrants(tenantId) });
    return {
      service,
      countDependents: (tenantId, projectId) => service.count(tenantId, projectId),
      compilerInput: async (tenantId, project, vaultUri) => ({
        tools: toToolsInput(await service.approvalMode(tenantId, project.id), await service.registry.listAll(tenantId, project.id), await service.toolboxes.listAll(tenantId, project.id), vaultUri),
      }),
      contributor: liveTools(service),
      connect: ({ requestPublish, lastUse }) => {
        service.onGatewayChange = requestPublish;
        service.lastUse = lastUse;
      },
    };
  },

  examples: {
    createMcpServer: (u) => ({ name: `walk-${u.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 30)}x`, source: { kind: "remote", url: "https://mcp.example.com/mcp" }, discovery: { enabled: false, intervalHours: 24 } }),
    importMcpServer: (u) => ({
      serverJson: { name: "io.example/weather", description: "Weather tools", version: "1.0.0", remotes: [{ type: "streamable-http", url: "https://mcp.example.com/mcp" }] },
      name: `imp-${u.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 30)}x`,
    }),
    updateMcpServer: () => ({ description: "walked" }),
    requestMcpToolApproval: () => ({ justification: "walk" }),
    putToolsSettings: () => ({ approvalMode: "destructive" }),
    createToolbox: (u) => ({ name: `box-${u.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 30)}x`, tools: [{ server: "walk", tool: "echo" }] }),
    updateToolbox: () => ({ description: "walked" }),
  },

  cli({ program, client, print, err, readJson }) {
    const tools = program.command("tools").description("register MCP servers, discover and approve their tools, search the catalog");
    const c = () => client().tools;
    const list = (o: { maxPageSize?: string; continuationToken?: string }) => ({ ...(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {}), ...(o.continuationToken ? { continuationToken: o.continuationToken } : {}) });
    const more = (p: { continuationToken?: string | undefined }) => p.continuationToken && err(`more: --continuation-token ${p.continuationToken}`);
    tools.command("register <projectId>").description("register an MCP server from a JSON McpServerSpec (secrets are write-only)").requiredOption("--file <path>").action(async (projectId: string, o: { file: string }) => print(await c().createServer(projectId, readJson(o.file) as never), SERVER_COLUMNS));
    tools
      .command("import <projectId>")
      .description("register a server from the MCP registry's server.json")
      .requiredOption("--file <path>", "the server.json")
      .option("--name <name>")
      .option("--remote <n>")
      .action(async (projectId: string, o: { file: string; name?: string; remote?: string }) => print(await c().importServer(projectId, { serverJson: readJson(o.file) as Record<string, unknown>, ...(o.name ? { name: o.name } : {}), ...(o.remote ? { remote: Number(o.remote) } : {}) }), SERVER_COLUMNS));
    tools.command("list <projectId>").option("--max-page-size <n>").option("--continuation-token <token>").description("list a project's MCP servers").action(async (projectId: string, o: { maxPageSize?: string; continuationToken?: string }) => {
      const p = await c().listServers(projectId, list(o));
      more(p);
      print(p.items, SERVER_COLUMNS);
    });
    tools.command("show <projectId> <serverId>").description("show a server and its discovery state").action(async (projectId: string, serverId: string) => print(await c().getServer(projectId, serverId)));
    tools
      .command("update <projectId> <serverId>")
      .description("apply a JSON merge patch to a server")
      .requiredOption("--file <path>")
      .option("--if-match <etag>")
      .action(async (projectId: string, serverId: string, o: { file: string; ifMatch?: string }) => print(await c().updateServer(projectId, serverId, readJson(o.file) as never, o.ifMatch ?? (await c().getServer(projectId, serverId)).etag), SERVER_COLUMNS));
    tools.command("delete <projectId> <serverId>").option("--if-match <etag>").description("delete a server").action(async (projectId: string, serverId: string, o: { ifMatch?: string }) => {
      await c().deleteServer(projectId, serverId, o.ifMatch ?? (await c().getServer(projectId, serverId)).etag);
      err(`deleted ${serverId}`);
    });
    tools.command("discover <projectId> <serverId>").description("discover the server's tools now").action(async (projectId: string, serverId: string) => print(await c().discover(projectId, serverId), SERVER_COLUMNS));
    tools.command("export <projectId> <serverId>").description("print the server as a server.json").action(async (projectId: string, serverId: string) => print(await c().exportServer(projectId, serverId)));
    tools.command("snapshots <projectId> <serverId>").option("--max-page-size <n>").option("--continuation-token <token>").description("list discovery snapshots, newest first").action(async (projectId: string, serverId: string, o: { maxPageSize?: string; continuationToken?: string }) => {
      const p = await c().listSnapshots(projectId, serverId, list(o));
      more(p);
      print(p.items.map((x) => ({ ...x, added: x.diff.added.length, removed: x.diff.removed.length, changed: x.diff.changed.length })), ["id", "seq", "createdAt", "protocolVersion", "toolCount", "added", "removed", "changed"]);
    });
    tools.command("snapshot <projectId> <serverId> <snapshotId>").description("show a snapshot").action(async (projectId: string, serverId: string, snapshotId: string) => print(await c().getSnapshot(projectId, serverId, snapshotId)));
    tools.command("tools <projectId> <serverId>").option("--max-page-size <n>").option("--continuation-token <token>").description("list a server's tools with their approval state").action(async (projectId: string, serverId: string, o: { maxPageSize?: string; continuationToken?: string }) => {
      const p = await c().listTools(projectId, serverId, list(o));
      more(p);
      print(p.items, TOOL_COLUMNS);
    });
    tools.command("tool <projectId> <serverId> <toolName>").description("show a tool").action(async (projectId: string, serverId: string, toolName: string) => print(await c().getTool(projectId, serverId, toolName)));
    tools
      .command("approve <projectId> <serverId> <toolName>")
      .description("ask for a tool's current definition to be approved in the project")
      .requiredOption("--justification <text>")
      .action(async (projectId: string, serverId: string, toolName: string, o: { justification: string }) => print(await c().requestApproval(projectId, serverId, toolName, { justification: o.justification })));
    tools.command("settings <projectId>").description("show the project's tool approval mode").action(async (projectId: string) => print(await c().getSettings(projectId)));
    tools
      .command("set-approval-mode <projectId> <mode>")
      .description("set the approval mode: none, all or destructive")
      .option("--if-match <etag>")
      .action(async (projectId: string, mode: string, o: { ifMatch?: string }) => print(await c().putSettings(projectId, { approvalMode: mode as never }, o.ifMatch ?? (await c().getSettings(projectId)).etag)));
    tools
      .command("catalog")
      .description("search the tenant's tool catalog")
      .option("--q <words>")
      .option("--project <projectId>")
      .option("--server <name>")
      .option("--read-only <true|false>")
      .option("--approval <state>")
      .option("--tag <tag>")
      .option("--max-page-size <n>")
      .option("--continuation-token <token>")
      .action(async (o: { q?: string; project?: string; server?: string; readOnly?: string; approval?: string; tag?: string; maxPageSize?: string; continuationToken?: string }) => {
        const p = await c().searchCatalog({ ...(o.q ? { q: o.q } : {}), ...(o.project ? { projectId: o.project } : {}), ...(o.server ? { server: o.server } : {}), ...(o.readOnly ? { readOnly: o.readOnly as never } : {}), ...(o.approval ? { approval: o.approval as never } : {}), ...(o.tag ? { tag: o.tag } : {}), ...list(o) });
        more(p);
        print(p.items, ["namespacedName", "projectId", "annotations.readOnly", "approval", "protocolVersion", "findingCount"]);
      });
    const boxes = program.command("toolboxes").description("named sets of a project's tools, each its own MCP server");
    const b = () => client().toolboxes;
    boxes.command("create <projectId>").requiredOption("--file <path>", "a JSON ToolboxSpec").description("create a toolbox").action(async (projectId: string, o: { file: string }) => print(await b().create(projectId, readJson(o.file) as never)));
    boxes.command("list <projectId>").option("--max-page-size <n>").option("--continuation-token <token>").description("list toolboxes").action(async (projectId: string, o: { maxPageSize?: string; continuationToken?: string }) => {
      const p = await b().list(projectId, list(o));
      more(p);
      print(p.items, ["id", "name", "description"]);
    });
    boxes.command("show <projectId> <toolboxId>").description("show a toolbox").action(async (projectId: string, id: string) => print(await b().get(projectId, id)));
    boxes
      .command("update <projectId> <toolboxId>")
      .requiredOption("--file <path>", "a JSON ToolboxPatch")
      .option("--if-match <etag>")
      .description("change a toolbox")
      .action(async (projectId: string, id: string, o: { file: string; ifMatch?: string }) => print(await b().update(projectId, id, readJson(o.file) as never, o.ifMatch ?? (await b().get(projectId, id)).etag)));
    boxes.command("delete <projectId> <toolboxId>").option("--if-match <etag>").description("delete a toolbox").action(async (projectId: string, id: string, o: { ifMatch?: string }) => {
      await b().delete(projectId, id, o.ifMatch ?? (await b().get(projectId, id)).etag);
      err(`deleted ${id}`);
    });
  },
};
