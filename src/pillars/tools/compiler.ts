/**
 * The tools pillar's part of the compiler input. Registrations, toolboxes and the approval mode are
 * registry (published by a person, like models); what discovery found (each server's tools and their
 * definition hashes) and what approvals granted are live state, added at every compile — system
 * publishes included — so a suspended approval reaches the gateway without waiting for anyone.
 */
import { createHash } from "node:crypto";
import type { InputContributor } from "../../domain/policy/compiler-input.js";
import type { PolicyMcpServer } from "../../policy/input.js";
import { keyVaultReference } from "../key-vault-reference.js";
import type { ProjectInput } from "../pillar.js";
import { bindingHolds, endpointOf } from "./definitions.js";
import { exemptAsReadOnly } from "./grants.js";
import { servedAtGateway, sourceKey, type ServerDoc, type ToolboxDoc } from "./documents.js";
import type { ToolsService } from "./service.js";

const nvId = (serverId: string) => `nv-mcp-${createHash("sha256").update(serverId).digest("hex").slice(0, 20)}`;

type ToolsInput = NonNullable<ProjectInput["tools"]>;
type ServerInput = Omit<PolicyMcpServer, "tools" | "limits" | "auth" | "status"> & Partial<Pick<PolicyMcpServer, "limits" | "auth" | "status">>;

function serverInput(s: ServerDoc, vaultUri: string | undefined): ServerInput {
  return {
    id: s.id,
    name: s.name,
    ...(s.displayName ? { displayName: s.displayName } : {}),
    status: s.status,
    ...(s.sunsetDate ? { sunsetDate: s.sunsetDate } : {}),
    ...(s.status === "deprecated" && s.deprecatedAt ? { deprecatedAt: s.deprecatedAt } : {}),
    source: s.source.kind === "remote" ? { kind: "remote", url: s.source.url, transport: s.source.transport } : { kind: "openapi", baseUrl: s.source.baseUrl },
    // OAuth client credentials are used by discovery only: the gateway does not fetch tokens (docs/tools.md).
    auth:
      s.auth.type === "header"
        ? { type: "header", header: s.auth.header, ...keyVaultReference(vaultUri, nvId(s.id), s.auth.secretRef) }
        : s.auth.type === "managedIdentity"
          ? { type: "managedIdentity", audience: s.auth.audience, ...(s.auth.clientId ? { clientId: s.auth.clientId } : {}) }
          : { type: "none" },
    limits: { ...(s.limits.perTool ? { perTool: s.limits.perTool } : {}), ...(s.limits.tools ? { tools: s.limits.tools } : {}) },
  };
}

/** The registry part: servers (without tools), toolboxes and the approval mode. */
export function toToolsInput(mode: ToolsInput["approvalMode"], servers: ServerDoc[], boxes: ToolboxDoc[], vaultUri: string | undefined): ToolsInput {
  return {
    approvalMode: mode,
    servers: [...servers].sort((a, b) => (a.name < b.name ? -1 : 1)).map((s) => serverInput(s, vaultUri)) as ToolsInput["servers"],
    toolboxes: [...boxes].sort((a, b) => (a.name < b.name ? -1 : 1)).map((b) => ({ id: b.id, name: b.name, tools: b.tools })),
    grants: [],
  };
}

/** The live part: each server's tools from its latest snapshot, and the approvals in force. */
export const liveTools =
  (service: ToolsService): InputContributor =>
  async (input, run) => {
    const projects = await Promise.all(
      input.projects.map(async (p) => {
        const tools = p.tools;
        if (!tools?.servers?.length) return p;
        const partition = { tenantId: run.tenantId, scopeId: p.id };
        const recorded = await service.grants.all(partition);
        // A tool with an approval record is never exempt as read-only (grants.ts, exemptAsReadOnly).
        const hasGrant = new Set(recorded.map((g) => `${g.serverId}/${g.tool}`));
        const servers = await Promise.all(
          tools.servers.map(async (s) => {
            const doc = await service.registry.servers.read(partition, s.id);
            const latest = doc ? await service.latestSnapshot(doc) : undefined;
            // Tools listed from another source than the one being compiled (a new URL not published yet) are not this server's: none.
            const snapshot = latest && (latest.header.sourceKey ?? sourceKey(s.source)) === sourceKey(s.source) ? latest : undefined;
            const listed = snapshot?.tools ?? [];
            return {
              ...s,
              ...(snapshot?.header.restSchemas ? { restSchemas: snapshot.header.restSchemas } : {}),
              tools: listed
                .filter(servedAtGateway)
                .map((t) => ({ name: t.name, hash: t.hash, readOnly: exemptAsReadOnly(t.annotations.readOnly, hasGrant.has(`${s.id}/${t.name}`)), ...(t.operation ? { operation: t.operation as never } : {}) })),
            };
          }),
        );
        // Approvals are the server's (by id): a server registered again under the same name starts without them.
        const ids = new Set(tools.servers.map((s) => s.id));
        // An approval holds for the binding it pinned: the same definition served from another URL, or bound to another operation, is not approved.
        const bindings = new Map(servers.flatMap((s) => s.tools.map((t) => [`${s.id}/${t.name}`, { operation: t.operation as Record<string, unknown> | undefined, endpoint: endpointOf(s.source) }] as const)));
        const holds = (g: { serverId: string; tool: string; pinnedBinding?: string | undefined }) => {
          const b = bindings.get(`${g.serverId}/${g.tool}`);
          return b !== undefined && bindingHolds(g.pinnedBinding, b.operation, b.endpoint);
        };
        const grants = recorded
          .filter((g) => g.state === "approved" && g.pinnedHash && ids.has(g.serverId) && holds(g))
          .map((g) => ({ server: g.server, tool: g.tool, hash: g.pinnedHash! }));
        return { ...p, tools: { ...tools, servers, grants } };
      }),
    );
    return { ...input, projects };
  };
