/**
 * One discovery of a server (the activity of the toolDiscovery orchestration): connect, list, validate
 * and hash every tool, and — when anything differs from the previous snapshot — write a new immutable
 * snapshot, point the server at it, suspend approvals whose pinned definition changed, refresh the
 * catalog, and say that the gateway needs a publish. A failure of the server is recorded on the server
 * (never thrown): a hostile or broken server cannot crash it or leave a half-written snapshot.
 */
import type { RequestContext } from "../../../domain/common.js";
import { systemContext } from "../../../domain/kernel/system.js";
import type { Clock } from "../../../ports/clock.js";
import { diffTools, toolHash } from "../definitions.js";
import { sourceKey, type ServerDoc, type SnapshotDoc, type StoredTool } from "../documents.js";
import type { ServerRegistry } from "../servers.js";
import type { SnapshotStore } from "../snapshots.js";
import type { DiscoveryLimits } from "./client.js";

/**
 * The MCP client, the bounded fetch (and the HTTP client under it) and the tool validator are loaded by the
 * first discovery, not with the tools service: most requests never discover, and a cold start (the first
 * request of an instance) should not pay for them.
 */
const discoveryClient = () => import("./client.js");
const safeFetch = () => import("../../../adapters/http/safe-fetch.js");

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
  | { outcome: "blocked" }
  | { outcome: "restart" }
  | { outcome: "failed"; code: string; message: string }
  | { outcome: "unchanged"; snapshotId: string | undefined; suspended: string[] }
  | { outcome: "changed"; snapshotId: string; diff: SnapshotDoc["diff"]; suspended: string[] };

/** The protocol version REST tools are served with (the gateway answers as an MCP server for them). */
export const REST_TOOLS_PROTOCOL = "2025-06-18";
const OPENAPI_MAX_BYTES = 4 << 20;
/** The schema document rides on the snapshot's header (a Cosmos item): well below the 2 MB item limit. */
const REST_SCHEMAS_MAX_BYTES = 1 << 20;

export interface DiscoveryHooks {
  /** Approvals pinned to another definition than the tool's now are suspended (and the catalog told); returns the tools suspended. */
  /** `beforeSource`: the source the previous snapshot was listed from (its sourceKey), when it says. */
  suspendChanged(ctx: RequestContext, server: ServerDoc, tools: StoredTool[], before: StoredTool[], beforeSource: string | undefined): Promise<string[]>;
  /** The catalog follows the new snapshot. */
  catalog(tenantId: string, server: ServerDoc, protocolVersion: string, tools: StoredTool[], removed: string[]): Promise<void>;
  /** A deleted server's catalog entries go. */
  forget(tenantId: string, serverId: string): Promise<void>;
}

export class DiscoveryRunner {
  constructor(
    private readonly registry: ServerRegistry,
    private readonly snapshots: SnapshotStore,
    private readonly clock: Clock,
    private readonly hooks: DiscoveryHooks,
    private readonly allowLoopback: boolean,
    /** The discovery client's own (DEFAULT_DISCOVERY_LIMITS) when not given. */
    private readonly limits?: DiscoveryLimits,
  ) {}

  async run(tenantId: string, projectId: string, serverId: string, correlationId: string): Promise<DiscoveryResult> {
    const ctx = systemContext(tenantId, "system:tool-discovery", correlationId);
    const partition = this.registry.partition(tenantId, projectId);
    let server = await this.registry.servers.read(partition, serverId);
    if (!server) return this.gone(tenantId, serverId);
    // A blocked server is not contacted (nor sent its credentials), whatever started the run: a change of
    // its source or credential, or a request that was already queued when it was blocked. Nothing is recorded.
    if (server.status === "blocked") return { outcome: "blocked" };
    // What the listing was made from: if the server's source or credential changes before the commit,
    // these tools are the old upstream's and the run starts again (the orchestrator repeats it).
    const madeFrom = fingerprintOf(server);
    const listed = await this.list(server).catch(async (err: unknown) => ({ failed: { code: "internal", message: err instanceof Error ? await this.reportable(server!, err.message) : "discovery failed" } }));
    const at = this.clock.now().toISOString();
    // A failure or an unchanged listing is the old upstream's if the source or credential changed meanwhile
    // (an edit whose discovery joined this run): that is never recorded on the new registration; list again.
    const failed = async (failure: { code: string; message: string }): Promise<DiscoveryResult> => {
      const recorded = await this.record(ctx, serverId, partition, (x) => ({ ...x.discoveryState, status: "failed", lastAttemptAt: at, failure }), "aigov.mcp.discovery.failed.v1", failure, madeFrom);
      return recorded === "restart" ? { outcome: "restart" } : { outcome: "failed", ...failure };
    };
    if ("failed" in listed) return failed(listed.failed);
    const { annotationsOf, validateTool } = await import("../validation.js");
    const counts = new Map<string, number>();
    for (const { definition } of listed.tools) counts.set(String(definition.name ?? ""), (counts.get(String(definition.name ?? "")) ?? 0) + 1);
    const tools: StoredTool[] = listed.tools.map(({ definition, operation }) => {
      const name = typeof definition.name === "string" ? definition.name : "";
      // A name listed twice could hide a changed definition behind an approved one: neither copy is callable.
      const duplicate = (counts.get(name) ?? 0) > 1 ? [{ severity: "error" as const, code: "duplicate_name", path: "name", message: `the server lists ${name} ${counts.get(name)} times; none of them is callable` }] : [];
      return {
        name,
        hash: toolHash(definition),
        definition,
        findings: [...duplicate, ...validateTool(definition, listed.protocolVersion)],
        annotations: annotationsOf(definition),
        ...(operation ? { operation: cleanOperation(operation) } : {}),
      };
    });
    const tooLarge = tools.find((t) => Buffer.byteLength(JSON.stringify(t)) > MAX_TOOL_BYTES);
    if (tooLarge) return failed({ code: "manifest_too_large", message: `the tool ${tooLarge.name.slice(0, 128)} is larger than ${MAX_TOOL_BYTES} bytes` });
    const previous = server.discoveryState.snapshotId ? await this.snapshots.header(partition, server.discoveryState.snapshotId) : undefined;
    const before = previous ? await this.snapshots.tools(partition, previous) : [];
    const diff = diffTools(before, tools);
    const key = sourceKey(server.source);
    const same =
      previous &&
      !diff.added.length &&
      !diff.removed.length &&
      !diff.changed.length &&
      previous.protocolVersion === listed.protocolVersion &&
      previous.transport === listed.transport &&
      previous.sourceKey === key &&
      sameJson(previous.restSchemas, listed.restSchemas) &&
      sameOperations(before, tools);
    if (same) {
      const recorded = await this.record(ctx, serverId, partition, (x) => ({ ...x.discoveryState, status: "succeeded", lastAttemptAt: at, lastSuccessAt: at, failure: undefined }), "aigov.mcp.discovery.unchanged.v1", { snapshotId: previous.id }, madeFrom);
      if (recorded === "restart") return { outcome: "restart" };
      // Approvals are checked on every run, so a run retried after a commit that was not followed by its suspensions still makes them.
      const suspended = await this.hooks.suspendChanged(ctx, server, tools, before, previous?.sourceKey);
      return { outcome: "unchanged", snapshotId: previous.id, suspended };
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
        return this.gone(tenantId, serverId);
      }
      if (fingerprintOf(server) !== madeFrom) {
        await this.snapshots.deleteChunks(partition, chunks);
        return { outcome: "restart" };
      }
      const header: SnapshotDoc = {
        id: snapshotId,
        ...partition,
        docType: "mcpSnapshot",
        serverId,
        projectId,
        seq: server.snapshotSeq + 1,
        createdAt: at,
        sourceKey: key,
        transport: listed.transport,
        protocolVersion: listed.protocolVersion,
        serverInfo: bounded(listed.serverInfo),
        capabilities: bounded(listed.capabilities),
        toolCount: tools.length,
        resourceCount: listed.resources.length,
        promptCount: listed.prompts.length,
        resources: listed.resources.slice(0, 200).map((r) => r.slice(0, 500)),
        prompts: listed.prompts.slice(0, 200).map((r) => r.slice(0, 200)),
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
          data: { serverId, projectId, snapshotId, protocolVersion: listed.protocolVersion, toolCount: tools.length, diff: { added: diff.added.length, removed: diff.removed.length, changed: diff.changed.map((c) => c.name).slice(0, 100) } },
          extraOps: [{ kind: "create", doc: header }],
        });
        break;
      } catch (err) {
        // The server changed meanwhile (someone edited it): read it again, keep the same chunks.
        if (attempt < 3 && err instanceof Error && "error" in err && (err as { error: { kind: string } }).error.kind === "preconditionFailed") continue;
        await this.snapshots.deleteChunks(partition, chunks);
        // A document the store refuses (too large, …) is the server's failure, recorded; anything else is retried.
        if (err instanceof Error && /\b413\b|too large|RequestEntityTooLarge/i.test(err.message)) return failed({ code: "manifest_too_large", message: "the snapshot is larger than the store accepts" });
        throw err;
      }
    }
    const suspended = await this.hooks.suspendChanged(ctx, server, tools, before, previous?.sourceKey);
    return { outcome: "changed", snapshotId, diff, suspended };
  }

  /** The server was deleted meanwhile: its catalog entries go too (a discovery may have written them). */
  private async gone(tenantId: string, serverId: string): Promise<DiscoveryResult> {
    await this.hooks.forget(tenantId, serverId);
    return { outcome: "gone" };
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
      const { discoverServer, DEFAULT_DISCOVERY_LIMITS } = await discoveryClient();
      const outcome = await discoverServer({ url: server.source.url, transport: server.source.transport, headers }, this.limits ?? DEFAULT_DISCOVERY_LIMITS, { allowLoopback: this.allowLoopback });
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
    // The document's own members never say how the fetch went: a fetched or stored document may hold any (a top-level `failed`).
    const source = server.source.documentUrl ? await this.fetchDocument(server.source.documentUrl) : { document: await this.registry.openApiDocument(server.tenantId, server.projectId, server.id) };
    if ("failed" in source) return source;
    const { document } = source;
    if (!document) return { failed: { code: "openapi_missing", message: "the server's OpenAPI document is missing" } };
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

  /** The document as JSON, or its text (YAML: the converter reads it, bounded), or why it could not be fetched. */
  private async fetchDocument(url: string): Promise<{ document: Record<string, unknown> | string } | { failed: { code: string; message: string } }> {
    const fetch = (await safeFetch()).createSafeFetch({ allowLoopback: this.allowLoopback, maxBodyBytes: OPENAPI_MAX_BYTES, timeoutMs: 15_000 });
    try {
      const res = await fetch(url, { headers: { Accept: "application/json, application/yaml;q=0.9, */*;q=0.1" } });
      if (!res.ok) return { failed: { code: "http_error", message: `the OpenAPI document answered ${res.status}` } };
      const text = await res.text();
      try {
        const json = JSON.parse(text) as unknown;
        if (json !== null && typeof json === "object" && !Array.isArray(json)) return { document: json as Record<string, unknown> };
      } catch {
        // not JSON: YAML, read by the converter
      }
      return { document: text };
    } catch (err) {
      return { failed: fetchFailure(err, "the OpenAPI document") };
    } finally {
      await fetch.close();
    }
  }

  private async clientCredentialsToken(auth: Extract<ServerDoc["auth"], { type: "oauthClientCredentials" }>, secret: string): Promise<{ accessToken: string } | { failed: { code: string; message: string } }> {
    const fetch = (await safeFetch()).createSafeFetch({ allowLoopback: this.allowLoopback, maxBodyBytes: 64 * 1024, timeoutMs: 10_000 });
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

  /**
   * An internal error's message as the server's record and its event may keep it: redacted as discoverServer
   * redacts its failures, of the server's credential (read again: the error may have come before or while
   * it was read) and of its URL's, then shortened.
   */
  private async reportable(server: ServerDoc, message: string): Promise<string> {
    const secret = await this.registry.secretOf(server.auth).catch(() => undefined);
    const url = server.source.kind === "remote" ? server.source.url : server.source.baseUrl;
    return (await discoveryClient()).reportableText(message, { url, transport: "auto", headers: secret ? { credential: secret } : {} });
  }

  /** Records a run's outcome on the server; "restart" (nothing recorded) when its source or credential is no longer `madeFrom`. */
  private async record(ctx: RequestContext, serverId: string, partition: { tenantId: string; scopeId: string }, state: (s: ServerDoc) => ServerDoc["discoveryState"], event: string, data: unknown, madeFrom: string): Promise<"recorded" | "restart" | "gone"> {
    for (let attempt = 0; attempt < 4; attempt++) {
      const server = await this.registry.servers.read(partition, serverId);
      if (!server) return "gone";
      if (fingerprintOf(server) !== madeFrom) return "restart";
      const { _etag, ...rest } = server;
      const next: ServerDoc = { ...rest, discoveryState: stripUndefined(state(server)), updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
      try {
        await this.registry.servers.replace(ctx, server, next, { action: "mcpServer.discover", event, data: { serverId, projectId: server.projectId, ...(data as object) } });
        return "recorded";
      } catch (err) {
        if (!(err instanceof Error && "error" in err && (err as { error: { kind: string } }).error.kind === "preconditionFailed")) throw err;
      }
    }
    // Never reported as recorded when it was not: the activity's retry runs the discovery again.
    throw new Error(`discovery of ${serverId}: the server kept changing while its outcome was recorded`);
  }
}

/** Why a bounded fetch failed, as discovery codes say it (the discovery client's codes): a refused address, a body past its limit, the deadline, or the network. */
function fetchFailure(err: unknown, what: string): { code: string; message: string } {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "blocked_address") return { code: "blocked_address", message: (err as Error).message.slice(0, 300) };
  if (code === "response_too_large") return { code: "manifest_too_large", message: `${what}: ${(err as Error).message}` };
  const name = (err as { name?: unknown } | null)?.name;
  if (name === "TimeoutError" || name === "AbortError") return { code: "timeout", message: `${what} did not answer in time` };
  return { code: "connect_failed", message: err instanceof Error ? err.message.slice(0, 300) : "fetch failed" };
}

/** A tool's stored form beyond this cannot fit a chunk document (Cosmos items are ≤ 2 MB). */
const MAX_TOOL_BYTES = 1_000_000;
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g;

/** The upstream a listing came from, with its credential and document: a change means the listing is not this server's any more. */
const fingerprintOf = (s: ServerDoc) => JSON.stringify([sourceKey(s.source), s.auth, s.sourceRevision ?? 0]);

/** Server-supplied objects kept on the header, bounded (a header is one Cosmos item). */
const bounded = (o: Record<string, unknown>): Record<string, unknown> => (Buffer.byteLength(JSON.stringify(o)) <= 16_384 ? o : { truncated: true });

/** An operation's text fields become gateway artifact text: no control characters, within APIM's lengths. */
function cleanOperation(op: Record<string, unknown>): Record<string, unknown> {
  const out = { ...op };
  if (typeof out.description === "string") out.description = out.description.replace(CONTROL, " ").slice(0, 1000);
  return out;
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
/** REST tools: the operation behind a tool can change while its definition does not (a new path): that is a change too. */
const sameOperations = (a: StoredTool[], b: StoredTool[]) => sameJson(a.map((t) => t.operation ?? null), b.map((t) => t.operation ?? null));
const stripUndefined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
