import { z } from "zod";
import { ANY_TENANT_ROLE } from "../../api/access.js";
import { AUTH_ERRORS, JSON_TYPES, PATCH_TYPES, PROJECT_READERS, PROJECT_WRITERS, ProjectParams } from "../../api/common.js";
import { defineOperation } from "../../api/contract.js";
import { Approval } from "../../domain/approvals/schema.js";
import { PageQuery } from "../../domain/common.js";
import { ProjectId } from "../../domain/projects/schema.js";
import {
  CatalogPage,
  CatalogQuery,
  McpServer,
  McpServerList,
  McpServerPatch,
  McpServerSpec,
  ServerId,
  Snapshot,
  SnapshotId,
  SnapshotList,
  Tool,
  ToolApprovalSpec,
  Toolbox,
  ToolboxId,
  ToolboxList,
  ToolboxPatch,
  ToolboxSpec,
  ToolList,
  ToolName,
  ToolsSettings,
  ToolsSettingsView,
} from "./schema.js";

const ServerParams = z.strictObject({ projectId: ProjectId, serverId: ServerId });
const ToolParams = z.strictObject({ projectId: ProjectId, serverId: ServerId, toolName: ToolName });
const SnapshotParams = z.strictObject({ projectId: ProjectId, serverId: ServerId, snapshotId: SnapshotId });
const ToolboxParams = z.strictObject({ projectId: ProjectId, toolboxId: ToolboxId });
/** Requesting an approval of a tool: whoever may hold keys in the project. */
const TOOL_REQUESTERS = { tenant: ["TenantAdmin", "ProjectAdmin", "Developer"], project: ["ProjectAdmin", "Developer"] } as const;
const tag = "tools";

export const createMcpServer = defineOperation({
  operationId: "createMcpServer",
  method: "POST",
  path: "/projects/{projectId}/mcp-servers",
  summary: "Register an MCP server (remote, or a REST API from an OpenAPI document) and start its discovery; upstream secrets are write-only",
  tag,
  access: PROJECT_WRITERS,
  params: ProjectParams,
  body: McpServerSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 201, schema: McpServer, description: "The server; discoveryState tells how its first discovery goes" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "tools register",
});

export const importMcpServer = defineOperation({
  operationId: "importMcpServer",
  method: "POST",
  path: "/projects/{projectId}/mcp-servers:import",
  summary: "Register an MCP server from the MCP registry's server.json (one of its remotes; packages are kept as metadata)",
  tag,
  access: PROJECT_WRITERS,
  params: ProjectParams,
  body: z.strictObject({
    serverJson: z.record(z.string(), z.unknown()),
    name: z.string().max(40).optional().meta({ description: "The registration's name (default: from the server.json name)" }),
    remote: z.int().min(0).max(19).optional().meta({ description: "Which of remotes[] (default 0)" }),
  }),
  bodyTypes: JSON_TYPES,
  success: { status: 201, schema: McpServer, description: "The registered server" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "tools import",
});

export const listMcpServers = defineOperation({
  operationId: "listMcpServers",
  method: "GET",
  path: "/projects/{projectId}/mcp-servers",
  summary: "List a project's MCP servers",
  tag,
  access: PROJECT_READERS,
  params: ProjectParams,
  query: PageQuery,
  success: { status: 200, schema: McpServerList, description: "One page of servers, by name" },
  errors: [...AUTH_ERRORS, 404],
  cli: "tools list",
});

export const getMcpServer = defineOperation({
  operationId: "getMcpServer",
  method: "GET",
  path: "/projects/{projectId}/mcp-servers/{serverId}",
  summary: "Get an MCP server and the state of its discovery",
  tag,
  access: PROJECT_READERS,
  params: ServerParams,
  success: { status: 200, schema: McpServer, description: "The server" },
  errors: [...AUTH_ERRORS, 404],
  cli: "tools show",
});

export const updateMcpServer = defineOperation({
  operationId: "updateMcpServer",
  method: "PATCH",
  path: "/projects/{projectId}/mcp-servers/{serverId}",
  summary: "Update an MCP server (merge patch; If-Match required); a new source or credential starts a discovery",
  tag,
  access: PROJECT_WRITERS,
  params: ServerParams,
  body: McpServerPatch,
  bodyTypes: PATCH_TYPES,
  ifMatch: true,
  success: { status: 200, schema: McpServer, description: "The updated server" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 413, 415, 428],
  cli: "tools update",
});

export const deleteMcpServer = defineOperation({
  operationId: "deleteMcpServer",
  method: "DELETE",
  path: "/projects/{projectId}/mcp-servers/{serverId}",
  summary: "Delete an MCP server, its stored secret and its catalog entries (If-Match required)",
  tag,
  access: PROJECT_WRITERS,
  params: ServerParams,
  ifMatch: true,
  success: { status: 204, description: "Deleted" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 428],
  cli: "tools delete",
});

export const discoverMcpServer = defineOperation({
  operationId: "discoverMcpServer",
  method: "POST",
  path: "/projects/{projectId}/mcp-servers/{serverId}:discover",
  summary: "Discover the server's tools now (a durable orchestration; the server's discoveryState tells the outcome)",
  tag,
  access: PROJECT_WRITERS,
  params: ServerParams,
  success: { status: 202, schema: McpServer, description: "The server; the discovery runs" },
  errors: [...AUTH_ERRORS, 404, 409],
  cli: "tools discover",
});

export const exportMcpServer = defineOperation({
  operationId: "exportMcpServer",
  method: "GET",
  path: "/projects/{projectId}/mcp-servers/{serverId}/server.json",
  summary: "The server as the MCP registry's server.json",
  tag,
  access: PROJECT_READERS,
  params: ServerParams,
  success: { status: 200, schema: z.record(z.string(), z.unknown()), description: "server.json (schema 2025-12-11)" },
  errors: [...AUTH_ERRORS, 404],
  cli: "tools export",
});

export const listMcpSnapshots = defineOperation({
  operationId: "listMcpSnapshots",
  method: "GET",
  path: "/projects/{projectId}/mcp-servers/{serverId}/snapshots",
  summary: "List a server's discovery snapshots, newest first, each with its diff against the one before",
  tag,
  access: PROJECT_READERS,
  params: ServerParams,
  query: PageQuery,
  success: { status: 200, schema: SnapshotList, description: "One page of snapshots" },
  errors: [...AUTH_ERRORS, 404],
  cli: "tools snapshots",
});

export const getMcpSnapshot = defineOperation({
  operationId: "getMcpSnapshot",
  method: "GET",
  path: "/projects/{projectId}/mcp-servers/{serverId}/snapshots/{snapshotId}",
  summary: "Get a discovery snapshot",
  tag,
  access: PROJECT_READERS,
  params: SnapshotParams,
  success: { status: 200, schema: Snapshot, description: "The snapshot" },
  errors: [...AUTH_ERRORS, 404],
  cli: "tools snapshot",
});

export const listMcpTools = defineOperation({
  operationId: "listMcpTools",
  method: "GET",
  path: "/projects/{projectId}/mcp-servers/{serverId}/tools",
  summary: "List the server's tools (latest snapshot) with their validation findings and approval state",
  tag,
  access: PROJECT_READERS,
  params: ServerParams,
  query: PageQuery,
  success: { status: 200, schema: ToolList, description: "One page of tools, in the order the server listed them" },
  errors: [...AUTH_ERRORS, 404],
  cli: "tools tools",
});

export const getMcpTool = defineOperation({
  operationId: "getMcpTool",
  method: "GET",
  path: "/projects/{projectId}/mcp-servers/{serverId}/tools/{toolName}",
  summary: "Get a tool: its definition, hash, findings and approval state",
  tag,
  access: PROJECT_READERS,
  params: ToolParams,
  success: { status: 200, schema: Tool, description: "The tool" },
  errors: [...AUTH_ERRORS, 404],
  cli: "tools tool",
});

export const requestMcpToolApproval = defineOperation({
  operationId: "requestMcpToolApproval",
  method: "POST",
  path: "/projects/{projectId}/mcp-servers/{serverId}/tools/{toolName}/approval",
  summary: "Ask for a tool to be approved in the project (its current definition is what the approval pins)",
  tag,
  access: TOOL_REQUESTERS,
  params: ToolParams,
  body: ToolApprovalSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 202, schema: z.strictObject({ tool: Tool, approval: Approval }), description: "The tool (approval pending) and the approval request" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "tools approve",
});

export const getToolsSettings = defineOperation({
  operationId: "getToolsSettings",
  method: "GET",
  path: "/projects/{projectId}/tools-settings",
  summary: "The project's tool approval mode",
  tag,
  access: PROJECT_READERS,
  params: ProjectParams,
  success: { status: 200, schema: ToolsSettingsView, description: "The approval mode (etag \"initial\" before the first write)" },
  errors: [...AUTH_ERRORS, 404],
  cli: "tools settings",
});

export const putToolsSettings = defineOperation({
  operationId: "putToolsSettings",
  method: "PUT",
  path: "/projects/{projectId}/tools-settings",
  summary: "Set the project's tool approval mode (If-Match: the etag, or \"initial\"); takes effect at the next publish",
  tag,
  access: PROJECT_WRITERS,
  params: ProjectParams,
  body: ToolsSettings,
  bodyTypes: JSON_TYPES,
  ifMatch: true,
  success: { status: 200, schema: ToolsSettingsView, description: "The approval mode" },
  errors: [...AUTH_ERRORS, 404, 412, 413, 415, 428],
  cli: "tools set-approval-mode",
});

export const createToolbox = defineOperation({
  operationId: "createToolbox",
  method: "POST",
  path: "/projects/{projectId}/toolboxes",
  summary: "Create a toolbox: a named set of the project's tools, served as its own MCP server",
  tag,
  access: PROJECT_WRITERS,
  params: ProjectParams,
  body: ToolboxSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 201, schema: Toolbox, description: "The toolbox" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "toolboxes create",
});

export const listToolboxes = defineOperation({
  operationId: "listToolboxes",
  method: "GET",
  path: "/projects/{projectId}/toolboxes",
  summary: "List a project's toolboxes",
  tag,
  access: PROJECT_READERS,
  params: ProjectParams,
  query: PageQuery,
  success: { status: 200, schema: ToolboxList, description: "One page of toolboxes, by name" },
  errors: [...AUTH_ERRORS, 404],
  cli: "toolboxes list",
});

export const getToolbox = defineOperation({
  operationId: "getToolbox",
  method: "GET",
  path: "/projects/{projectId}/toolboxes/{toolboxId}",
  summary: "Get a toolbox",
  tag,
  access: PROJECT_READERS,
  params: ToolboxParams,
  success: { status: 200, schema: Toolbox, description: "The toolbox" },
  errors: [...AUTH_ERRORS, 404],
  cli: "toolboxes show",
});

export const updateToolbox = defineOperation({
  operationId: "updateToolbox",
  method: "PATCH",
  path: "/projects/{projectId}/toolboxes/{toolboxId}",
  summary: "Change a toolbox's tools or description (merge patch; If-Match required)",
  tag,
  access: PROJECT_WRITERS,
  params: ToolboxParams,
  body: ToolboxPatch,
  bodyTypes: PATCH_TYPES,
  ifMatch: true,
  success: { status: 200, schema: Toolbox, description: "The toolbox" },
  errors: [...AUTH_ERRORS, 404, 412, 413, 415, 428],
  cli: "toolboxes update",
});

export const deleteToolbox = defineOperation({
  operationId: "deleteToolbox",
  method: "DELETE",
  path: "/projects/{projectId}/toolboxes/{toolboxId}",
  summary: "Delete a toolbox (If-Match required)",
  tag,
  access: PROJECT_WRITERS,
  params: ToolboxParams,
  ifMatch: true,
  success: { status: 204, description: "Deleted" },
  errors: [...AUTH_ERRORS, 404, 412, 428],
  cli: "toolboxes delete",
});

export const searchToolCatalog = defineOperation({
  operationId: "searchToolCatalog",
  method: "GET",
  path: "/tools/catalog",
  summary: "Search the tenant's tool catalog (words, project, server, read-only, approval state, tag); one page per call",
  tag,
  access: { tenant: ANY_TENANT_ROLE },
  query: CatalogQuery,
  success: { status: 200, schema: CatalogPage, description: "One page of tools, by namespaced name" },
  errors: [...AUTH_ERRORS],
  cli: "tools catalog",
});
