/**
 * The MCP server registry of a project: registrations (remote servers and REST APIs converted from
 * OpenAPI), their upstream credentials (write-only, in the secret store, bound to the server's origin
 * and header like models' provider keys), and the registry's server.json in and out.
 */
import type { IdentityGrants } from "../../policy/identity.js";
import { checkManagedIdentity } from "../../domain/policy/managed-identity.js";
import type { ChangeWriter } from "../../domain/changes.js";
import { etagMatches, newId, type Page, type RequestContext } from "../../domain/common.js";
import { AppError, fail } from "../../domain/errors.js";
import { Collection } from "../../domain/kernel/collection.js";
import { holdsAny, holdsOn, PROJECT_MANAGERS, TENANT_ADMINS } from "../../domain/kernel/roles.js";
import { Slots } from "../../domain/kernel/slots.js";
import { toArray } from "../../domain/paging.js";
import type { Project } from "../../domain/projects/schema.js";
import type { ProjectService } from "../../domain/projects/service.js";
import { parseOrThrow } from "../../domain/validation.js";
import type { Clock } from "../../ports/clock.js";
import type { SecretStore } from "../../ports/secrets.js";
import type { BatchOp, Partition, Store, Versioned } from "../../ports/store.js";
import { MAX_PROJECT_MCP_SERVERS } from "../../policy/input.js";
import { refuseUpstream } from "./upstream.js";
import { openApiDocumentId, serverNameId, serverPath, upstreamSecretName, type OpenApiDocumentDoc, type ServerDoc } from "./documents.js";
import { type McpServerPatch, McpServerSpec, type McpServer, type McpServerSpecInput, type UpstreamAuth, type UpstreamAuthSpec } from "./schema.js";

export class ServerRegistry {
  readonly servers: Collection<ServerDoc, McpServer>;
  /** The project's cap on MCP servers, held against concurrent registrations. */
  private readonly slots: Slots;

  constructor(
    private readonly store: Store,
    changes: ChangeWriter,
    private readonly clock: Clock,
    /** Header secrets go where the gateway reads them; OAuth client secrets stay with the control plane. */
    private readonly secrets: { gateway: SecretStore; controlPlane: SecretStore },
    private readonly projects: ProjectService,
    private readonly allowLoopback: boolean,
    /** What an operator granted the tenant at its gateway: its own identities, the Azure AI hosts the gateway's own may call (policy/identity.ts). */
    private readonly gatewayGrants: (tenantId: string) => IdentityGrants = () => ({ identities: [], sharedHosts: [] }),
  ) {
    this.servers = new Collection<ServerDoc, McpServer>(store, changes, { docType: "mcpServer", path: (d) => serverPath(d.scopeId, d.id), internal: ["snapshotSeq", "sourceRevision"] });
    this.slots = new Slots(store, "mcpServer", MAX_PROJECT_MCP_SERVERS);
  }

  partition(tenantId: string, projectId: string): Partition {
    return { tenantId, scopeId: projectId };
  }

  /**
   * A sunset date being set (deprecating, or a new date) must be after today (UTC): the gateway refuses a
   * deprecated server's calls, and its toolboxes', from 00:00 UTC of its sunset date on (410
   * `tool_server_sunset` / `toolbox_sunset`), so today or earlier would cut it off at once — blocking
   * does that, and says so. A date already stored stays as it is (as models' and agents' do): while the
   * server stays deprecated, and when a server blocked from deprecated (it keeps `deprecatedAt`) is
   * deprecated again — it returns to what it had, past its sunset if that has come (as an agent unblocked).
   */
  private checkSunset(spec: { status?: string | undefined; sunsetDate?: string | undefined }, current: { status?: string | undefined; sunsetDate?: string | undefined; deprecatedAt?: string | undefined } | undefined): void {
    if (spec.status !== "deprecated" || !spec.sunsetDate) return;
    if (current?.sunsetDate === spec.sunsetDate && (current.status === "deprecated" || (current.status === "blocked" && current.deprecatedAt))) return;
    const today = this.clock.now().toISOString().slice(0, 10);
    if (spec.sunsetDate <= today) fail({ kind: "validation", detail: "the request body is invalid", errors: [{ field: "body.sunsetDate", message: "must be after today: calls are refused from the sunset date on (block the server to stop it now)" }] });
  }

  async create(ctx: RequestContext, projectId: string, input: McpServerSpecInput): Promise<McpServer> {
    const project = await this.writable(ctx, projectId);
    const spec = parseOrThrow(McpServerSpec, input, "body");
    this.checkSunset(spec, undefined);
    this.checkUrls(spec.source, "body.source", spec.auth);
    this.checkIdentity(ctx, spec.auth, spec.source);
    const limit = { kind: "conflict", detail: `a project holds at most ${MAX_PROJECT_MCP_SERVERS} MCP servers`, reason: "project_limit_reached" } as const;
    if ((await this.count(ctx.principal.tenantId, project.id)) >= MAX_PROJECT_MCP_SERVERS) fail(limit);
    const id = newId("srv");
    const now = this.clock.now().toISOString();
    const partition = this.partition(ctx.principal.tenantId, project.id);
    const auth = await this.storeAuth(id, spec.auth, undefined, "body.auth");
    const { source, auth: _a, ...fields } = spec;
    const extraOps: BatchOp[] = [{ kind: "create", doc: { id: serverNameId(spec.name), ...partition, docType: "nameReservation", resourceId: id } }];
    if (source.kind === "openapi" && source.document) await checkConvertible(source.document, source.include);
    let storedSource: ServerDoc["source"];
    if (source.kind === "openapi") {
      const { document, ...rest } = source;
      if (document) extraOps.push({ kind: "create", doc: { id: openApiDocumentId(id), ...partition, docType: "openApiDocument", serverId: id, document } satisfies OpenApiDocumentDoc });
      storedSource = rest;
    } else storedSource = source;
    const doc: ServerDoc = {
      ...fields,
      // Registered deprecated: deprecated today (server-set, as a model's and an agent's).
      ...(spec.status === "deprecated" ? { deprecatedAt: now.slice(0, 10) } : {}),
      source: storedSource,
      auth,
      discoveryState: { status: "never" },
      snapshotSeq: 0,
      id,
      projectId: project.id,
      ...partition,
      docType: "mcpServer",
      createdAt: now,
      createdBy: ctx.principal.userId,
      updatedAt: now,
      updatedBy: ctx.principal.userId,
    };
    let created: McpServer;
    try {
      created = await this.slots.create(partition, id, () => this.count(ctx.principal.tenantId, project.id), limit, (slotOp, slotTaken) =>
        this.servers.create(ctx, doc, {
          action: "mcpServer.register",
          event: "aigov.mcp.server.registered.v1",
          extraOps: [...extraOps, slotOp],
          onFailure: (index, status) =>
            status !== 409 ? undefined : index === 1 ? { kind: "conflict", detail: `an MCP server named '${spec.name}' already exists in this project`, reason: "name_taken" } : index === extraOps.length + 1 ? slotTaken() : undefined,
        }),
      );
    } catch (err) {
      // Refused (a name or a place taken meanwhile): the credential stored for a server that does not exist
      // goes too — unless the answer was lost and the server was recorded after all.
      const recorded = await this.servers.read(partition, id).then((d) => d !== undefined, () => true);
      if (!recorded && (auth.type === "header" || auth.type === "oauthClientCredentials")) {
        await this.storeOf(auth.type)
          .delete(auth.secretRef.name)
          .catch((e: unknown) => console.warn(`secret ${auth.secretRef.name} of a refused MCP server was not deleted: ${e instanceof Error ? e.message : String(e)}`));
      }
      throw err;
    }
    // The project was deleted while this was written (its delete marked it first): withdrawn.
    await this.projects.withdrawUnlessStanding(ctx, project.id, async (system) => {
      const written = await this.servers.read(partition, id);
      if (written) await this.remove(system, written);
    });
    return created;
  }

  async get(ctx: RequestContext, projectId: string, id: string): Promise<McpServer> {
    await this.projects.get(ctx, projectId);
    return this.servers.view(await this.load(ctx.principal.tenantId, projectId, id));
  }

  async list(ctx: RequestContext, projectId: string, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<McpServer>> {
    await this.projects.get(ctx, projectId);
    return this.servers.page(this.partition(ctx.principal.tenantId, projectId), { orderBy: { field: "name", direction: "ASC" } }, page);
  }

  async listAll(tenantId: string, projectId: string): Promise<ServerDoc[]> {
    return toArray(this.servers.every(this.partition(tenantId, projectId)));
  }

  async count(tenantId: string, projectId: string): Promise<number> {
    return (await this.servers.page(this.partition(tenantId, projectId), {}, { maxPageSize: 100 })).items.length;
  }

  load(tenantId: string, projectId: string, id: string) {
    return this.servers.load(this.partition(tenantId, projectId), id, serverPath(projectId, id));
  }

  /** Merge patch. A change of source or credential asks for a new discovery (the caller starts it). */
  async update(ctx: RequestContext, projectId: string, id: string, patch: McpServerPatch, ifMatch: string): Promise<{ server: McpServer; rediscover: boolean }> {
    await this.writable(ctx, projectId);
    const current = await this.load(ctx.principal.tenantId, projectId, id);
    if (!etagMatches(current._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    const partition = this.partition(ctx.principal.tenantId, projectId);
    const next: ServerDoc = { ...current };
    delete (next as { _etag?: string })._etag;
    for (const [key, value] of Object.entries(patch)) {
      if (key === "source" || key === "auth" || value === undefined) continue;
      if (key === "discovery") {
        next.discovery = { ...current.discovery, ...(value as object) };
        continue;
      }
      if (value === null) delete (next as unknown as Record<string, unknown>)[key];
      else (next as unknown as Record<string, unknown>)[key] = value;
    }
    if (next.status === "deprecated" && !next.sunsetDate) fail({ kind: "validation", detail: "the request body is invalid", errors: [{ field: "body.sunsetDate", message: "is required when status is deprecated" }] });
    this.checkSunset(next, current);
    // When it was deprecated (the Deprecation header, RFC 9745): set the day it becomes deprecated, kept
    // while it stays deprecated or is blocked (deprecated again, it was deprecated then), dropped when it is
    // active again. Server-set: the patch cannot name it. (A server deprecated before the date was recorded
    // gets none by a later write: the day of that write is not the day it was deprecated.)
    const becomes = next.status === "deprecated" && current.status !== "deprecated";
    const deprecatedAt = next.status === "active" ? undefined : (current.deprecatedAt ?? (becomes ? this.clock.now().toISOString().slice(0, 10) : undefined));
    if (deprecatedAt) next.deprecatedAt = deprecatedAt;
    else delete next.deprecatedAt;
    const extraOps: BatchOp[] = [];
    if (patch.source) {
      if (patch.source.kind !== current.source.kind) fail({ kind: "validation", detail: "a server's source kind cannot change", errors: [{ field: "body.source.kind", message: `stays ${current.source.kind}` }] });
      this.checkUrls(patch.source, "body.source");
      if (patch.source.kind === "openapi") {
        const { document, ...rest } = patch.source;
        if (!document === !rest.documentUrl) fail({ kind: "validation", detail: "the request body is invalid", errors: [{ field: "body.source.document", message: "give exactly one of document and documentUrl" }] });
        if (document) await checkConvertible(document, rest.include);
        if (document) extraOps.push({ kind: "upsert", doc: { id: openApiDocumentId(id), ...partition, docType: "openApiDocument", serverId: id, document } satisfies OpenApiDocumentDoc });
        else extraOps.push({ kind: "delete", id: openApiDocumentId(id) });
        next.source = rest;
      } else next.source = patch.source;
    }
    if (patch.auth) this.checkUrls(undefined, "body.source", patch.auth);
    // The gateway's identity goes where the server points: a new source for it is checked (and a TenantAdmin's to give) like a new identity.
    if (patch.auth || patch.source) this.checkIdentity(ctx, patch.auth ?? current.auth, next.source);
    if (patch.auth || patch.source) {
      const authIn: UpstreamAuthSpec = patch.auth ?? keepOf(current.auth);
      if ((authIn.type === "header" || authIn.type === "oauthClientCredentials") && authIn.keep && !holdsAny(ctx.principal.roles, TENANT_ADMINS)) bindingCheck(current, next, authIn);
      next.auth = await this.storeAuth(id, authIn, current.auth, "body.auth");
    }
    if (patch.auth || patch.source) next.sourceRevision = (current.sourceRevision ?? 0) + 1;
    next.updatedAt = this.clock.now().toISOString();
    next.updatedBy = ctx.principal.userId;
    // The openapi document is removed only when it was there (a delete of a missing item fails the batch).
    const ops = extraOps.filter((op) => op.kind !== "delete" || current.source.kind === "openapi");
    const checked = ops.some((op) => op.kind === "delete") ? await this.withExisting(partition, ops) : ops;
    const server = await this.servers.replace(ctx, current, next, { action: "mcpServer.update", event: "aigov.mcp.server.updated.v1", extraOps: checked });
    // A secret the server no longer uses (its auth changed type, or went) leaves the store.
    if ((current.auth.type === "header" || current.auth.type === "oauthClientCredentials") && next.auth.type !== current.auth.type) await this.storeOf(current.auth.type).delete(current.auth.secretRef.name);
    return { server, rediscover: patch.source !== undefined || patch.auth !== undefined };
  }

  async delete(ctx: RequestContext, projectId: string, id: string, ifMatch: string): Promise<ServerDoc> {
    await this.writable(ctx, projectId);
    const current = await this.load(ctx.principal.tenantId, projectId, id);
    if (!etagMatches(current._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    await this.remove(ctx, current);
    return current;
  }

  private async remove(ctx: RequestContext, current: Versioned<ServerDoc>): Promise<void> {
    const { id, projectId } = current;
    const partition = this.partition(current.tenantId, projectId);
    const extraOps = [
      ...(await this.withExisting(partition, [
        { kind: "delete", id: serverNameId(current.name) },
        { kind: "delete", id: openApiDocumentId(id) },
      ])),
      ...(await this.slots.release(partition, id)),
    ];
    await this.servers.delete(ctx, current, { action: "mcpServer.delete", event: "aigov.mcp.server.deleted.v1", data: { id, projectId, name: current.name }, extraOps });
    if (current.auth.type === "header" || current.auth.type === "oauthClientCredentials") await this.storeOf(current.auth.type).delete(current.auth.secretRef.name);
  }

  /** The inline OpenAPI document of a converted server, if it has one. */
  async openApiDocument(tenantId: string, projectId: string, serverId: string): Promise<Record<string, unknown> | undefined> {
    const doc = await this.store.read<OpenApiDocumentDoc>(this.partition(tenantId, projectId), openApiDocumentId(serverId));
    return doc?.docType === "openApiDocument" ? doc.document : undefined;
  }

  /** The header or client secret discovery sends (never logged, never returned). */
  async secretOf(auth: UpstreamAuth): Promise<string | undefined> {
    if (auth.type !== "header" && auth.type !== "oauthClientCredentials") return undefined;
    return (await this.storeOf(auth.type).get(auth.secretRef.name, auth.secretRef.version))?.value;
  }

  async writable(ctx: RequestContext, projectId: string): Promise<Project> {
    const project = await this.projects.get(ctx, projectId);
    if (!holdsOn(ctx.principal, project, PROJECT_MANAGERS)) fail({ kind: "forbidden", detail: "registering MCP servers requires TenantAdmin or ProjectAdmin" });
    return project;
  }

  private checkUrls(source: McpServerSpec["source"] | undefined, field: string, auth?: UpstreamAuthSpec): void {
    const urls: [string, string][] = !source ? [] : source.kind === "remote" ? [[`${field}.url`, source.url]] : [[`${field}.baseUrl`, source.baseUrl], ...(source.documentUrl ? ([[`${field}.documentUrl`, source.documentUrl]] as [string, string][]) : [])];
    if (auth?.type === "oauthClientCredentials") urls.push(["body.auth.tokenUrl", auth.tokenUrl]);
    // The gateway forwards to the service URL's path only (APIM's serviceUrl and endpoints): a query or
    // fragment would be discovered with but not served through the gateway.
    if (source?.kind === "remote") {
      const u = new URL(source.url);
      if (u.search || u.hash) throw new AppError({ kind: "validation", detail: "the server's address is not allowed", errors: [{ field: `${field}.url`, message: "must not carry a query or fragment" }], reason: "upstream_address_refused" });
    }
    const errors = urls.flatMap(([f, url]) => {
      const why = refuseUpstream(url, this.allowLoopback);
      return why ? [{ field: f, message: why }] : [];
    });
    if (errors.length) throw new AppError({ kind: "validation", detail: "the server's address is not allowed", errors, reason: "upstream_address_refused" });
  }

  /**
   * The gateway's own identity sends a token for `audience` to whatever the server's URL is: only a
   * TenantAdmin may point it at a server (a project admin could otherwise collect tokens for any
   * resource the gateway may reach, e.g. Key Vault).
   */
  private checkIdentity(ctx: RequestContext, auth: UpstreamAuthSpec, source?: ServerDoc["source"] | McpServerSpec["source"]): void {
    if (auth.type !== "managedIdentity") return;
    if (!holdsAny(ctx.principal.roles, TENANT_ADMINS)) fail({ kind: "forbidden", detail: "only a TenantAdmin may give an MCP server the gateway's managed identity" });
    if (source) checkManagedIdentity({ url: source.kind === "remote" ? source.url : (source.baseUrl ?? ""), audience: auth.audience, clientId: auth.clientId }, this.gatewayGrants(ctx.principal.tenantId), "body.auth");
  }

  /** Secrets go to the secret store (a new version when re-sent); the server keeps only a reference. */
  private async storeAuth(serverId: string, auth: UpstreamAuthSpec, existing: UpstreamAuth | undefined, field: string): Promise<UpstreamAuth> {
    if (auth.type === "none" || auth.type === "managedIdentity") return auth;
    const name = upstreamSecretName(serverId, auth.type);
    if (auth.keep) {
      if (!existing || existing.type !== auth.type) {
        throw new AppError({ kind: "validation", detail: "the request body is invalid", errors: [{ field, message: "keep: true needs a stored secret of the same type" }], reason: "credential_not_stored" });
      }
      return auth.type === "header" ? { type: "header", header: auth.header, secretRef: existing.secretRef } : { type: "oauthClientCredentials", tokenUrl: auth.tokenUrl, clientId: auth.clientId, ...(auth.scope ? { scope: auth.scope } : {}), secretRef: existing.secretRef };
    }
    const value = (auth.type === "header" ? auth.value : auth.clientSecret)!;
    const saved = await this.storeOf(auth.type).set(name, value, { contentType: "text/plain", tags: { mcpServer: serverId } });
    const secretRef = { name, version: saved.version };
    return auth.type === "header" ? { type: "header", header: auth.header, secretRef } : { type: "oauthClientCredentials", tokenUrl: auth.tokenUrl, clientId: auth.clientId, ...(auth.scope ? { scope: auth.scope } : {}), secretRef };
  }

  private storeOf(type: "header" | "oauthClientCredentials"): SecretStore {
    return type === "header" ? this.secrets.gateway : this.secrets.controlPlane;
  }

  /** Drops deletes of documents that are not there (a transactional batch fails on a missing item). */
  private async withExisting(partition: Partition, ops: BatchOp[]): Promise<BatchOp[]> {
    const out: BatchOp[] = [];
    for (const op of ops) if (op.kind !== "delete" || (await this.store.read(partition, op.id))) out.push(op);
    return out;
  }
}

const keepOf = (auth: UpstreamAuth): UpstreamAuthSpec =>
  auth.type === "header"
    ? { type: "header", header: auth.header, keep: true }
    : auth.type === "oauthClientCredentials"
      ? { type: "oauthClientCredentials", tokenUrl: auth.tokenUrl, clientId: auth.clientId, ...(auth.scope ? { scope: auth.scope } : {}), keep: true }
      : auth;

const originOf = (s: ServerDoc["source"]) => new URL(s.kind === "remote" ? s.url : s.baseUrl).origin.toLowerCase();

/** A kept upstream secret stays with the origin it was registered for (models' rule, ADR 010). */
function bindingCheck(before: ServerDoc, after: ServerDoc, authIn: UpstreamAuthSpec): void {
  if (before.auth.type === "none" || before.auth.type === "managedIdentity") return;
  const errors: { field: string; message: string }[] = [];
  if (originOf(before.source) !== originOf(after.source)) errors.push({ field: "body.source", message: `the stored secret was registered for ${originOf(before.source)}; send it again to use it with ${originOf(after.source)}` });
  if (before.auth.type === "oauthClientCredentials" && authIn.type === "oauthClientCredentials" && new URL(before.auth.tokenUrl).origin.toLowerCase() !== new URL(authIn.tokenUrl).origin.toLowerCase()) {
    errors.push({ field: "body.auth.tokenUrl", message: `the stored client secret was registered for ${new URL(before.auth.tokenUrl).origin}; send it again to use it with another token endpoint` });
  }
  if (before.auth.type === "header" && authIn.type === "header" && before.auth.header !== authIn.header) errors.push({ field: "body.auth.header", message: `the stored secret is sent in ${before.auth.header}; send it again to send it in another header` });
  if (errors.length) throw new AppError({ kind: "validation", detail: "a kept upstream secret cannot move to another endpoint or header without the secret", errors, reason: "credential_rebind_requires_key" });
}

/** An inline OpenAPI document must convert (its problems are the caller's to fix, field by field). */
async function checkConvertible(document: Record<string, unknown>, include: string[] | undefined): Promise<void> {
  const { convertOpenApi } = await import("./openapi/convert.js");
  const converted = await convertOpenApi(document, include ? { include } : {});
  if (!converted.ok) {
    throw new AppError({
      kind: "validation",
      detail: "the OpenAPI document cannot be turned into tools",
      errors: converted.errors.slice(0, 50).map((e) => ({ field: `body.source.document${e.path.startsWith("/") ? e.path.replace(/\//g, ".") : `.${e.path}`}`, message: e.message })),
      reason: "openapi_invalid",
    });
  }
}
