/**
 * One discovery of a server (the activity of the toolDiscovery orchestration): connect, list, validate
 * and hash every tool, and — when anything differs from the previous snapshot — write a new immutable
 * snapshot, point the server at it, suspend approvals whose pinned definition changed, refresh the
 * catalog, and say that the gateway needs a publish. A failure of the server is recorded on the server
 * (never thrown): a hostile or broken server cannot crash it or leave a half-written snapshot.
 */
import { createSafeFetch } from "../../../adapters/http/safe-fetch.js";
import type { RequestContext } from "../../../domain/common.js";
import { systemContext } from "../../../domain/kernel/system.js";
import type { Clock } from "../../../ports/clock.js";
import { diffTools, toolHash } from "../definitions.js";
import type { ServerDoc, SnapshotDoc, StoredTool } from "../documents.js";
import { annotationsOf, validateTool } from "../validation.js";
import type { ServerRegistry } from "../servers.js";
import type { SnapshotStore } from "../snapshots.js";
import { DEFAULT_DISCOVERY_LIMITS, discoverServer, type DiscoveryLimits } from "./client.js";

/** What the tools a server offers come from: an MCP endpoint's lists, or a converted OpenAPI document. */
export interface ListedServer {
  transport: "streamable-http" | "sse" | "openapi";
  protocolVersion: string;
  serverInfo: Record<string, unknown>;
  capabilities: Record<string, unknown>;
  tools: { definition: Record<string, unknown>; operation?: Record<string, unknown> }[];
  resources: string[];
  prompts: string[];
  /** REST tools: the component schemas their operations name (kept on the snapshot). */
  restSchemas?: Record<string, unknown>;
}

export type DiscoveryResult =
  | { outcome: "gone" }
  | { outcome: "failed"; code: string; message: string }
  | { outcome: "unchanged"; snapshotId: string | undefined }
  | { outcome: "changed"; snapshotId: string; diff: SnapshotDoc["diff"]; suspended: string[] };

/** The protocol version REST tools are served with (the gateway answers as an MCP server for them). */
export const REST_TOOLS_PROTOCOL = "2025-06-18";
const OPENAPI_MAX_BYTES = 4 << 20;
/** The schema document rides on the snapshot's header (a Cosmos item): well below the 2 MB item limit. */
const REST_SCHEMAS_MAX_BYTES = 1 << 20;

export interface DiscoveryHooks {
  /** Approvals pinned to a definition that changed are suspended; returns the tools suspended. */
  suspendChanged(ctx: RequestContext, server: ServerDoc, changed: Map<string, string>): Promise<string[]>;
  /** The catalog follows the new snapshot. */
  catalog(tenantId: string, server: ServerDoc, protocolVersion: string, tools: StoredTool[], removed: string[]): Promise<void>;
}

export class DiscoveryRunner {
  constructor(
    private readonly registry: ServerRegistry,
    private readonly snapshots: SnapshotStore,
    private readonly clock: Clock,
    private readonly hooks: DiscoveryHooks,
    private readonly allowLoopback: boolean,
    private readonly limits: DiscoveryLimits = DEFAULT_DISCOVERY_LIMITS,
  ) {}

  async run(tenantId: string, projectId: string, serverId: string, correlationId: string): Promise<DiscoveryResult> {
    const ctx = systemContext(tenantId, "system:tool-discovery", correlationId);
    const partition = this.registry.partition(tenantId, projectId);
    let server = await this.registry.servers.read(partition, serverId);
    if (!server) return { outcome: "gone" };
    const listed = await this.list(server).catch((err: unknown) => ({ failed: { code: "internal", message: err instanceof Error ? err.message.slice(0, 500) : "discovery failed" } }));
    const at = this.clock.now().toISOString();
    if ("failed" in listed) {
      await this.record(ctx, serverId, partition, (s) => ({ ...s.discoveryState, status: "failed", lastAttemptAt: at, failure: listed.failed }), "aigov.mcp.discovery.failed.v1", listed.failed);
      return { outcome: "failed", ...listed.failed };
    }
    const tools: StoredTool[] = listed.tools.map(({ definition, operation }) => ({
      name: typeof definition.name === "string" ? definition.name : "",
      hash: toolHash(definition),
      definition,
      findings: validateTool(definition, listed.protocolVersion),
      annotations: annotationsOf(definition),
      ...(operation ? { operation } : {}),
    }));
    const previous = server.discoveryState.snapshotId ? await this.snapshots.header(partition, server.discoveryState.snapshotId) : undefined;
    const before = previous ? await this.snapshots.tools(partition, previous) : [];
    const diff = diffTools(before, tools);
    const same = previous && !diff.added.length && !diff.removed.length && !diff.changed.length && previous.protocolVersion === listed.protocolVersion && previous.transport === listed.transport && sameJson(previous.restSchemas, listed.restSchemas) && sameOperations(before, tools);
    if (same) {
      await this.record(ctx, serverId, partition, (s) => ({ ...s.discoveryState, status: "succeeded", lastAttemptAt: at, lastSuccessAt: at, failure: undefined }), "aigov.mcp.discovery.unchanged.v1", { snapshotId: previous.id });
      return { outcome: "unchanged", snapshotId: previous.id };
    }
    // The catalog first: once the server says "succeeded", a search finds what it found. (The catalog is
    // derived: should the commit below fail, the next discovery rewrites it.)
    await this.hooks.catalog(tenantId, server, listed.protocolVersion, tools, diff.removed);
    const { snapshotId, chunks } = await this.snapshots.writeChunks(partition, tools);
    const findingCount = tools.reduce((n, t) => n + t.findings.length, 0);
    for (let attempt = 0; ; attempt++) {
      server = await this.registry.servers.read(partition, serverId);
      if (!server) {
        await this.snapshots.deleteChunks(partition, chunks);
        return { outcome: "gone" };
      }
      const header: SnapshotDoc = {
        id: snapshotId,
        ...partition,
        docType: "mcpSnapshot",
        serverId,
        projectId,
        seq: server.snapshotSeq + 1,
        createdAt: at,
        transport: listed.transport,
        protocolVersion: listed.protocolVersion,
        serverInfo: listed.serverInfo,
        capabilities: listed.capabilities,
        toolCount: tools.length,
        resourceCount: listed.resources.length,
        promptCount: listed.prompts.length,
        resources: listed.resources.slice(0, 200),
        prompts: listed.prompts.slice(0, 200),
        findingCount,
        diff,
        chunks,
        ...(listed.restSchemas ? { restSchemas: listed.restSchemas } : {}),
      };
      const { _etag, ...rest } = server;
      const next: ServerDoc = {
        ...rest,
        snapshotSeq: header.seq,
        discoveryState: { status: "succeeded", lastAttemptAt: at, lastSuccessAt: at, snapshotId, protocolVersion: listed.protocolVersion, transport: listed.transport, toolCount: tools.length },
        updatedAt: at,
        updatedBy: ctx.principal.userId,
      };
      try {
        await this.registry.servers.replace(ctx, server, next, {
          action: "mcpServer.discover",
          event: "aigov.mcp.discovery.changed.v1",
          data: { serverId, projectId, snapshotId, protocolVersion: listed.protocolVersion, toolCount: tools.length, diff },
          extraOps: [{ kind: "create", doc: header }],
        });
        break;
      } catch (err) {
        // The server changed meanwhile (someone edited it): read it again, keep the same chunks.
        if (attempt < 3 && err instanceof Error && "error" in err && (err as { error: { kind: string } }).error.kind === "preconditionFailed") continue;
        await this.snapshots.deleteChunks(partition, chunks);
        throw err;
      }
    }
    const changed = new Map(tools.filter((t) => diff.changed.some((c) => c.name === t.name)).map((t) => [t.name, t.hash]));
    const suspended = changed.size ? await this.hooks.suspendChanged(ctx, server, changed) : [];
    // Suspensions change the catalog's approval states of those tools.
    if (suspended.length) await this.hooks.catalog(tenantId, server, listed.protocolVersion, tools.filter((t) => suspended.includes(t.name)), []);
    return { outcome: "changed", snapshotId, diff, suspended };
  }

  /** The server's tools now, or why they could not be listed. */
  private async list(server: ServerDoc): Promise<ListedServer | { failed: { code: string; message: string } }> {
    if (server.source.kind === "remote") {
      const headers: Record<string, string> = {};
      const secret = await this.registry.secretOf(server.auth);
      if (server.auth.type === "header" && secret) headers[server.auth.header] = secret;
      if (server.auth.type === "oauthClientCredentials" && secret) {
        const token = await this.clientCredentialsToken(server.auth, secret);
        if ("failed" in token) return token;
        headers.Authorization = `Bearer ${token.accessToken}`;
      }
      const outcome = await discoverServer({ url: server.source.url, transport: server.source.transport, headers }, this.limits, { allowLoopback: this.allowLoopback });
      if (!outcome.ok) return { failed: { code: outcome.code, message: outcome.message } };
      const s = outcome.server;
      return {
        transport: s.transport,
        protocolVersion: s.protocolVersion,
        serverInfo: { ...s.serverInfo },
        capabilities: s.capabilities,
        tools: s.tools.map((definition) => ({ definition })),
        resources: s.resources.map((r) => String(r.uri ?? r.name ?? "")),
        prompts: s.prompts.map((p) => String(p.name ?? "")),
      };
    }
    const document = server.source.documentUrl ? await this.fetchDocument(server.source.documentUrl) : await this.registry.openApiDocument(server.tenantId, server.projectId, server.id);
    if (!document) return { failed: { code: "openapi_missing", message: "the server's OpenAPI document is missing" } };
    if ("failed" in document) return document as { failed: { code: string; message: string } };
    const { convertOpenApi } = await import("../openapi/convert.js");
    const converted = await convertOpenApi(document, { ...(server.source.include ? { include: server.source.include } : {}) });
    if (!converted.ok) return { failed: { code: "openapi_invalid", message: converted.errors.slice(0, 5).map((e) => `${e.path}: ${e.message}`).join("; ").slice(0, 1000) } };
    const { restApiParts } = await import("../openapi/artifacts.js");
    // The REST API's operations and its one schema document, as APIM takes them (representations name components).
    const parts = restApiParts(converted.tools);
    const restSchemas = (parts.schemas[0]?.document.components.schemas ?? {}) as Record<string, unknown>;
    if (Buffer.byteLength(JSON.stringify(restSchemas)) > REST_SCHEMAS_MAX_BYTES) return { failed: { code: "manifest_too_large", message: `the converted schemas exceed ${REST_SCHEMAS_MAX_BYTES} bytes` } };
    return {
      transport: "openapi",
      protocolVersion: REST_TOOLS_PROTOCOL,
      serverInfo: { name: converted.title, version: converted.version },
      capabilities: { tools: {} },
      restSchemas,
      tools: converted.tools.map((t, i) => {
        const { displayName: _d, ...operation } = parts.operations[i]!;
        return {
          definition: { name: t.name, ...(t.title ? { title: t.title } : {}), ...(t.description ? { description: t.description } : {}), inputSchema: t.inputSchema, ...(t.outputSchema ? { outputSchema: t.outputSchema } : {}), annotations: t.annotations },
          operation: operation as unknown as Record<string, unknown>,
        };
      }),
      resources: [],
      prompts: [],
    };
  }

  private async fetchDocument(url: string): Promise<Record<string, unknown> | { failed: { code: string; message: string } }> {
    const fetch = createSafeFetch({ allowLoopback: this.allowLoopback, maxBodyBytes: OPENAPI_MAX_BYTES, timeoutMs: 15_000 });
    try {
      const res = await fetch(url, { headers: { Accept: "application/json, application/yaml;q=0.9, */*;q=0.1" } });
      if (!res.ok) return { failed: { code: "http_error", message: `the OpenAPI document answered ${res.status}` } };
      const text = await res.text();
      try {
        return JSON.parse(text) as Record<string, unknown>;
      } catch {
        return { text } as unknown as Record<string, unknown>;
      }
    } catch (err) {
      return { failed: { code: (err as { code?: string }).code === "blocked_address" ? "blocked_address" : "connect_failed", message: err instanceof Error ? err.message.slice(0, 300) : "fetch failed" } };
    } finally {
      await fetch.close();
    }
  }

  private async clientCredentialsToken(auth: Extract<ServerDoc["auth"], { type: "oauthClientCredentials" }>, secret: string): Promise<{ accessToken: string } | { failed: { code: string; message: string } }> {
    const fetch = createSafeFetch({ allowLoopback: this.allowLoopback, maxBodyBytes: 64 * 1024, timeoutMs: 10_000 });
    try {
      const body = new URLSearchParams({ grant_type: "client_credentials", client_id: auth.clientId, client_secret: secret, ...(auth.scope ? { scope: auth.scope } : {}) });
      const res = await fetch(auth.tokenUrl, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body });
      const json = (await res.json().catch(() => ({}))) as { access_token?: unknown };
      if (!res.ok || typeof json.access_token !== "string") return { failed: { code: "upstream_auth_failed", message: `the token endpoint answered ${res.status}` } };
      return { accessToken: json.access_token };
    } catch (err) {
      return { failed: { code: "upstream_auth_failed", message: err instanceof Error ? err.message.slice(0, 300) : "token request failed" } };
    } finally {
      await fetch.close();
    }
  }

  private async record(ctx: RequestContext, serverId: string, partition: { tenantId: string; scopeId: string }, state: (s: ServerDoc) => ServerDoc["discoveryState"], event: string, data: unknown): Promise<void> {
    for (let attempt = 0; attempt < 4; attempt++) {
      const server = await this.registry.servers.read(partition, serverId);
      if (!server) return;
      const { _etag, ...rest } = server;
      const next: ServerDoc = { ...rest, discoveryState: stripUndefined(state(server)), updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
      try {
        await this.registry.servers.replace(ctx, server, next, { action: "mcpServer.discover", event, data: { serverId, projectId: server.projectId, ...(data as object) } });
        return;
      } catch (err) {
        if (!(err instanceof Error && "error" in err && (err as { error: { kind: string } }).error.kind === "preconditionFailed")) throw err;
      }
    }
  }
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
/** REST tools: the operation behind a tool can change while its definition does not (a new path): that is a change too. */
const sameOperations = (a: StoredTool[], b: StoredTool[]) => sameJson(a.map((t) => t.operation ?? null), b.map((t) => t.operation ?? null));
const stripUndefined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
