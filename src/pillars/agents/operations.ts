import { z } from "zod";
import { ANY_TENANT_ROLE } from "../../api/access.js";
import { AUTH_ERRORS, JSON_TYPES, PATCH_TYPES, PROJECT_READERS, PROJECT_WRITERS, ProjectParams } from "../../api/common.js";
import { defineOperation } from "../../api/contract.js";
import { PageQuery } from "../../domain/common.js";
import { KeyWithSecret } from "../../domain/keys/schema.js";
import { ProjectId } from "../../domain/projects/schema.js";
import {
  Agent,
  AgentId,
  AgentList,
  AgentPatch,
  AgentQuery,
  AgentSpec,
  AgentSyncSettings,
  AgentSyncSettingsView,
  Connection,
  ConnectionId,
  ConnectionList,
  ConnectionPatch,
  ConnectionSpec,
  LifecycleChange,
  SyncRun,
  SyncRunId,
  SyncRunList,
} from "./schema.js";
import { CatalogSearchPage, CatalogSearchQuery } from "./catalog.js";

const AgentParams = z.strictObject({ projectId: ProjectId, agentId: AgentId });
const ConnectionParams = z.strictObject({ connectionId: ConnectionId });
const RunParams = z.strictObject({ connectionId: ConnectionId, runId: SyncRunId });
const TENANT_ADMIN = { tenant: ["TenantAdmin"] } as const;
const TENANT_READERS = { tenant: ANY_TENANT_ROLE };
const tag = "agents";

export const createAgent = defineOperation({
  operationId: "createAgent",
  method: "POST",
  path: "/projects/{projectId}/agents",
  summary: "Register an agent (draft): its AgentCard (inline or fetched; checked, signatures verified), owner, environment, data classes, endpoint and guardrails",
  tag,
  access: PROJECT_WRITERS,
  params: ProjectParams,
  body: AgentSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 201, schema: Agent, description: "The agent, in draft" },
  errors: [...AUTH_ERRORS, 404, 413, 415],
  cli: "agents register",
});

export const listAgents = defineOperation({
  operationId: "listAgents",
  method: "GET",
  path: "/projects/{projectId}/agents",
  summary: "List a project's agents (registered here and synced), optionally by lifecycle state, origin or connection",
  tag,
  access: PROJECT_READERS,
  params: ProjectParams,
  query: AgentQuery,
  success: { status: 200, schema: AgentList, description: "One page of agents, by name" },
  errors: [...AUTH_ERRORS, 404],
  cli: "agents list",
});

export const getAgent = defineOperation({
  operationId: "getAgent",
  method: "GET",
  path: "/projects/{projectId}/agents/{agentId}",
  summary: "Get an agent with its card, guardrails, lifecycle and provenance",
  tag,
  access: PROJECT_READERS,
  params: AgentParams,
  success: { status: 200, schema: Agent, description: "The agent" },
  errors: [...AUTH_ERRORS, 404],
  cli: "agents show",
});

export const updateAgent = defineOperation({
  operationId: "updateAgent",
  method: "PATCH",
  path: "/projects/{projectId}/agents/{agentId}",
  summary: "Update an agent (merge patch; If-Match required): guardrails (its key follows), enabled, owner, card, endpoint…; a synced agent's edited name or description stays local",
  tag,
  access: PROJECT_WRITERS,
  params: AgentParams,
  body: AgentPatch,
  bodyTypes: PATCH_TYPES,
  ifMatch: true,
  success: { status: 200, schema: Agent, description: "The updated agent" },
  errors: [...AUTH_ERRORS, 404, 412, 413, 415, 428],
  cli: "agents update",
});

export const deleteAgent = defineOperation({
  operationId: "deleteAgent",
  method: "DELETE",
  path: "/projects/{projectId}/agents/{agentId}",
  summary: "Delete an agent and revoke its key (If-Match required); a synced agent only once its connection is gone",
  tag,
  access: PROJECT_WRITERS,
  params: AgentParams,
  ifMatch: true,
  success: { status: 204, description: "Deleted" },
  errors: [...AUTH_ERRORS, 404, 409, 412, 428],
  cli: "agents delete",
});

export const transitionAgent = defineOperation({
  operationId: "transitionAgent",
  method: "POST",
  path: "/projects/{projectId}/agents/{agentId}:transition",
  summary: "Move an agent through its lifecycle: draft → active → deprecated (sunset date) → retired; blocked, and back (project managers)",
  tag,
  access: PROJECT_WRITERS,
  params: AgentParams,
  body: LifecycleChange,
  bodyTypes: JSON_TYPES,
  success: { status: 200, schema: Agent, description: "The agent in its new state" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "agents transition",
});

export const issueAgentKey = defineOperation({
  operationId: "issueAgentKey",
  method: "POST",
  path: "/projects/{projectId}/agents/{agentId}:issueKey",
  summary: "Issue the agent its virtual key: scope and limits derived from its guardrails (and kept in step with them); the secret is in this response only",
  tag,
  access: PROJECT_WRITERS,
  params: AgentParams,
  body: z.strictObject({ expiresAt: z.iso.datetime().optional() }).meta({ id: "AgentKeySpec" }),
  bodyTypes: JSON_TYPES,
  success: { status: 201, schema: KeyWithSecret, description: "The key, with its secret (shown once)" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "agents issue-key",
});

export const getProjectAgentSettings = defineOperation({
  operationId: "getProjectAgentSettings",
  method: "GET",
  path: "/projects/{projectId}/agent-settings",
  summary: "Whether connections sync agents into this project",
  tag,
  access: PROJECT_READERS,
  params: ProjectParams,
  success: { status: 200, schema: AgentSyncSettingsView, description: "The switch (etag \"initial\" before the first write)" },
  errors: [...AUTH_ERRORS, 404],
  cli: "agents settings",
});

export const putProjectAgentSettings = defineOperation({
  operationId: "putProjectAgentSettings",
  method: "PUT",
  path: "/projects/{projectId}/agent-settings",
  summary: "Switch agent sync into this project on or off (If-Match: the etag, or \"initial\"); agents keep their state and governance",
  tag,
  access: PROJECT_WRITERS,
  params: ProjectParams,
  body: AgentSyncSettings,
  bodyTypes: JSON_TYPES,
  ifMatch: true,
  success: { status: 200, schema: AgentSyncSettingsView, description: "The switch" },
  errors: [...AUTH_ERRORS, 404, 412, 413, 415, 428],
  cli: "agents set-sync",
});

export const createAgentConnection = defineOperation({
  operationId: "createAgentConnection",
  method: "POST",
  path: "/agent-connections",
  summary: "Connect a cloud's agents (Amazon Bedrock, Google Vertex AI Agent Engine, Azure AI Foundry): regions, target project, credentials (write-only) or workload identity, schedule",
  tag,
  access: TENANT_ADMIN,
  body: ConnectionSpec,
  bodyTypes: JSON_TYPES,
  success: { status: 201, schema: Connection, description: "The connection" },
  errors: [...AUTH_ERRORS, 404, 409, 413, 415],
  cli: "connections create",
});

export const listAgentConnections = defineOperation({
  operationId: "listAgentConnections",
  method: "GET",
  path: "/agent-connections",
  summary: "List the tenant's cloud connections",
  tag,
  access: TENANT_READERS,
  query: PageQuery,
  success: { status: 200, schema: ConnectionList, description: "One page of connections, by name" },
  errors: [...AUTH_ERRORS],
  cli: "connections list",
});

export const getAgentConnection = defineOperation({
  operationId: "getAgentConnection",
  method: "GET",
  path: "/agent-connections/{connectionId}",
  summary: "Get a cloud connection and its last sync",
  tag,
  access: TENANT_READERS,
  params: ConnectionParams,
  success: { status: 200, schema: Connection, description: "The connection" },
  errors: [...AUTH_ERRORS, 404],
  cli: "connections show",
});

export const updateAgentConnection = defineOperation({
  operationId: "updateAgentConnection",
  method: "PATCH",
  path: "/agent-connections/{connectionId}",
  summary: "Update a cloud connection (merge patch; If-Match required): regions, credentials, schedule, the on/off switch",
  tag,
  access: TENANT_ADMIN,
  params: ConnectionParams,
  body: ConnectionPatch,
  bodyTypes: PATCH_TYPES,
  ifMatch: true,
  success: { status: 200, schema: Connection, description: "The connection" },
  errors: [...AUTH_ERRORS, 404, 412, 413, 415, 428],
  cli: "connections update",
});

export const deleteAgentConnection = defineOperation({
  operationId: "deleteAgentConnection",
  method: "DELETE",
  path: "/agent-connections/{connectionId}",
  summary: "Delete a cloud connection (If-Match required); its agents stay in the registry with their provenance and governance",
  tag,
  access: TENANT_ADMIN,
  params: ConnectionParams,
  ifMatch: true,
  success: { status: 204, description: "Deleted" },
  errors: [...AUTH_ERRORS, 404, 412, 428],
  cli: "connections delete",
});

export const syncAgentConnection = defineOperation({
  operationId: "syncAgentConnection",
  method: "POST",
  path: "/agent-connections/{connectionId}:sync",
  summary: "Sync the connection's agents now (a durable orchestration per connection, fanned out per region); a running sync is joined",
  tag,
  access: TENANT_ADMIN,
  params: ConnectionParams,
  success: { status: 202, schema: SyncRun, description: "The run (poll GET …/runs/{runId})" },
  errors: [...AUTH_ERRORS, 404],
  cli: "connections sync",
});

export const listAgentSyncRuns = defineOperation({
  operationId: "listAgentSyncRuns",
  method: "GET",
  path: "/agent-connections/{connectionId}/runs",
  summary: "A connection's sync runs, newest first, with their reports",
  tag,
  access: TENANT_READERS,
  params: ConnectionParams,
  query: PageQuery,
  success: { status: 200, schema: SyncRunList, description: "One page of runs" },
  errors: [...AUTH_ERRORS, 404],
  cli: "connections runs",
});

export const getAgentSyncRun = defineOperation({
  operationId: "getAgentSyncRun",
  method: "GET",
  path: "/agent-connections/{connectionId}/runs/{runId}",
  summary: "One sync run's report: status, counts, errors per region, malformed records, conflicts, duration",
  tag,
  access: TENANT_READERS,
  params: RunParams,
  success: { status: 200, schema: SyncRun, description: "The run" },
  errors: [...AUTH_ERRORS, 404],
  cli: "connections run",
});

export const getAgentSyncSettings = defineOperation({
  operationId: "getAgentSyncSettings",
  method: "GET",
  path: "/agent-settings",
  summary: "Whether the tenant's connections sync at all",
  tag,
  access: TENANT_READERS,
  success: { status: 200, schema: AgentSyncSettingsView, description: "The switch (etag \"initial\" before the first write)" },
  errors: [...AUTH_ERRORS],
  cli: "connections settings",
});

export const putAgentSyncSettings = defineOperation({
  operationId: "putAgentSyncSettings",
  method: "PUT",
  path: "/agent-settings",
  summary: "Switch agent sync on or off for the whole tenant (If-Match: the etag, or \"initial\"); agents keep their state and governance",
  tag,
  access: TENANT_ADMIN,
  body: AgentSyncSettings,
  bodyTypes: JSON_TYPES,
  ifMatch: true,
  success: { status: 200, schema: AgentSyncSettingsView, description: "The switch" },
  errors: [...AUTH_ERRORS, 412, 413, 415, 428],
  cli: "connections set-sync",
});

export const searchCatalog = defineOperation({
  operationId: "searchCatalog",
  method: "GET",
  path: "/catalog",
  summary: "Search the tenant's models, tools and agents together (words, kind, project); one page per call",
  tag: "catalog",
  access: TENANT_READERS,
  query: CatalogSearchQuery,
  success: { status: 200, schema: CatalogSearchPage, description: "One page of entries, models first, then tools, then agents" },
  errors: [...AUTH_ERRORS],
  cli: "catalog search",
});
