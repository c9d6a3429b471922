/**
 * The agents pillar's documents. Agents live in their project's partition (local ones and those a
 * connection syncs into the project); connections, sync runs and the tenant's sync switch in the tenant
 * partition; a project's sync switch in the project's partition.
 */
import { createHash } from "node:crypto";
import type { StoredDoc } from "../../ports/store.js";
import type { Agent, Connection, SyncRun } from "./schema.js";

export interface AgentDoc extends StoredDoc, Omit<Agent, "etag"> {
  docType: "agent";
  /** Fields a person changed here that the source also carries: a sync keeps the local value (docs/agents.md, "Conflicts"). */
  localOverrides?: ("name" | "description")[];
  /** The source's values of the shared fields as last synced (what a local edit is compared with). */
  /** The source's values as of the last sync (cardHash: the hash of the card the source stores). */
  sourceValues?: { name: string; description?: string; cardHash?: string };
  /** Hash of everything the registry takes from the source: an equal hash is an unchanged agent (no write). */
  sourceHash?: string;
  /** Lower-case name, description, owner, model and skills: what the catalog finds the agent by. */
  searchText?: string;
}

export interface ConnectionDoc extends StoredDoc, Omit<Connection, "etag"> {
  docType: "agentConnection";
  /** Foundry: every project endpoint each region has had (a region dropped and added back must come back to it). */
  regionAccounts?: Record<string, string>;
}

export interface SyncRunDoc extends StoredDoc, Omit<SyncRun, "etag"> {
  docType: "agentSyncRun";
  /** The regions' listings so far, by region (the orchestration's page activities write here). */
  pages?: Record<string, number>;
}

/** The source ids one page of a run listed (deterministic id: a replayed page overwrites its own). */
export interface SeenDoc extends StoredDoc {
  docType: "agentSyncSeen";
  runId: string;
  connectionId: string;
  region: string;
  page: number;
  sourceIds: string[];
  /** A page's counts, so the run's report adds up however often a page was retried. */
  counts: Record<string, number>;
  malformed: { sourceId?: string; reason: string }[];
  conflicts: { agentId: string; field: string }[];
  expiresAt: string;
}

export interface SyncSwitchDoc extends StoredDoc {
  docType: "agentSyncSettings";
  syncEnabled: boolean;
  updatedAt: string;
  updatedBy: string;
}

export const agentPath = (projectId: string, id: string) => `/projects/${projectId}/agents/${id}`;
export const connectionPath = (id: string) => `/agent-connections/${id}`;
export const runPath = (connectionId: string, id: string) => `${connectionPath(connectionId)}/runs/${id}`;
export const projectSyncSettingsPath = (projectId: string) => `/projects/${projectId}/agent-settings`;
export const TENANT_SYNC_SETTINGS_PATH = "/agent-settings";
export const syncSettingsId = "agent-sync-settings";
export const connectionNameId = (name: string) => `name.agentConnection.${name}`;
export const seenId = (runId: string, region: string, page: number) => `seen.${runId}.${region}.${page}`;
/** Secret names: letters, digits and '-' (Key Vault). */
export const connectionSecretName = (connectionId: string) => `agentcon-${connectionId.replace("_", "-")}`;

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * A synced agent's id, derived from where it comes from: a page listed twice (a retry, a replay after a
 * crash, two overlapping runs) writes the same document, never a second agent.
 */
export function syncedAgentId(tenantId: string, connectionId: string, region: string, sourceId: string): string {
  const digest = createHash("sha256").update(`${tenantId}\u0000${connectionId}\u0000${region}\u0000${sourceId}`).digest();
  let out = "";
  for (let i = 0; i < 20; i++) out += ALPHABET[digest[i]! & 31];
  return `agt_${out}`;
}
