/**
 * Cloud connections: where a tenant's agents run outside Azure API Management's reach (Amazon Bedrock,
 * Google Vertex AI Agent Engine, Azure AI Foundry), as whom the control plane lists them (credentials
 * write-only, in the control plane's secret store, or none with workload identity federation), which
 * regions, which project the agents land in, how often, and the switches that stop sync without touching
 * any agent: per connection, per project and per tenant.
 */
import { createHash } from "node:crypto";
import { type FederatedToken, managedIdentityToken } from "./federation.js";
import type { ChangeWriter } from "../../domain/changes.js";
import { etagMatches, etagValue, newId, type Page, type RequestContext } from "../../domain/common.js";
import { AppError, fail } from "../../domain/errors.js";
import { Collection } from "../../domain/kernel/collection.js";
import { holdsAny, TENANT_ADMINS, ANY_TENANT_ROLE, PROJECT_MANAGERS, holdsOn } from "../../domain/kernel/roles.js";
import { INITIAL_ETAG, TenantSingleton } from "../../domain/kernel/singleton.js";
import type { ProjectService } from "../../domain/projects/service.js";
import { parseOrThrow } from "../../domain/validation.js";
import type { Clock } from "../../ports/clock.js";
import type { SecretStore } from "../../ports/secrets.js";
import { TENANT_SCOPE, unversioned, type Partition, type Store, type Versioned } from "../../ports/store.js";
import { connectionNameId, connectionPath, connectionSecretName, projectSyncSettingsPath, syncSettingsId, TENANT_SYNC_SETTINGS_PATH, type ConnectionDoc, type SyncSwitchDoc } from "./documents.js";
import { AgentSyncSettings, ConnectionPatch, ConnectionSpec, type Connection, type ConnectionSpecInput } from "./schema.js";
import type { SourceTarget } from "./sources/source.js";
import type { z } from "zod";

type CredentialsSpec = z.output<typeof ConnectionSpec>["credentials"];
type ScopeSpec = z.output<typeof ConnectionSpec>["scope"];

/** Which credentials each cloud takes (a static token only for local fakes). */
const CREDENTIALS_BY_CLOUD: Record<ScopeSpec["cloud"], readonly CredentialsSpec["kind"][]> = {
  bedrock: ["workloadIdentity", "awsAccessKey"],
  vertex: ["workloadIdentity", "gcpServiceAccountKey", "accessToken"],
  foundry: ["workloadIdentity", "accessToken"],
};

/** A Foundry project endpoint (the only hosts a connection may name outside local mode). */
const FOUNDRY_PROJECT_ENDPOINT = /^https:\/\/[a-z0-9][a-z0-9-]{0,62}\.services\.ai\.azure\.com\/api\/projects\/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\/?$/;

export class ConnectionService {
  readonly connections: Collection<ConnectionDoc, Connection>;
  private readonly tenantSwitch: TenantSingleton<{ syncEnabled: boolean }>;

  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly secrets: SecretStore,
    private readonly projects: ProjectService,
    /** Local mode: endpoint overrides (local fakes) and static tokens are accepted. */
    private readonly local: boolean,
    /** The identity token presented to other clouds (workload identity federation); the managed identity's by default. */
    private readonly federatedToken: () => FederatedToken = () => managedIdentityToken,
    /**
     * Whether a tenant may reach other clouds as the platform's own identity. Every tenant would present
     * the same identity (one managed identity, one Entra token `sub`), so a tenant naming a role or
     * project that another tenant trusts would read that tenant's agents: the operator names who may.
     */
    private readonly platformIdentity: (tenantId: string) => boolean = () => true,
  ) {
    this.connections = new Collection<ConnectionDoc, Connection>(store, changes, { docType: "agentConnection", path: (d) => connectionPath(d.id), internal: ["regionAccounts"] });
    this.tenantSwitch = new TenantSingleton(store, changes, clock, { id: syncSettingsId, docType: "agentSyncSettings", path: TENANT_SYNC_SETTINGS_PATH, event: "aigov.agent.sync.settings.changed.v1", action: "agentSync.settings.update" });
  }

  private partition(tenantId: string): Partition {
    return { tenantId, scopeId: TENANT_SCOPE };
  }

  async create(ctx: RequestContext, input: ConnectionSpecInput): Promise<Connection> {
    this.admin(ctx);
    const spec = parseOrThrow(ConnectionSpec, input, "body");
    this.check(spec.scope, spec.credentials, spec.regions, "body");
    this.mayUsePlatformIdentity(ctx.principal.tenantId, spec.credentials.kind);
    await this.projects.get(ctx, spec.projectId);
    // A name already taken is refused before a secret is written (the batch below still decides a race).
    if (await this.store.read(this.partition(ctx.principal.tenantId), connectionNameId(spec.name))) {
      fail({ kind: "conflict", detail: `a connection named '${spec.name}' already exists`, reason: "name_taken" });
    }
    const id = newId("con");
    const credentials = await this.storeCredentials(id, spec.credentials);
    const now = this.clock.now().toISOString();
    const { scope, credentials: _c, ...fields } = spec;
    const doc: ConnectionDoc = {
      ...fields,
      id,
      ...this.partition(ctx.principal.tenantId),
      docType: "agentConnection",
      cloud: scope.cloud,
      scope,
      ...(scope.cloud === "foundry" ? { regionAccounts: normalisedEndpoints(scope.projectEndpoints) } : {}),
      credentials,
      owner: spec.owner ?? ctx.principal.userId,
      createdAt: now,
      createdBy: ctx.principal.userId,
      updatedAt: now,
      updatedBy: ctx.principal.userId,
    };
    let created: Connection;
    try {
      created = await this.connections.create(ctx, doc, {
        action: "agentConnection.create",
        event: "aigov.agent.connection.created.v1",
        extraOps: [{ kind: "create", doc: { id: connectionNameId(spec.name), ...this.partition(ctx.principal.tenantId), docType: "nameReservation", resourceId: id } }],
        onFailure: (index, status) => (index === 1 && status === 409 ? { kind: "conflict", detail: `a connection named '${spec.name}' already exists`, reason: "name_taken" } : undefined),
      });
    } catch (err) {
      // No connection names the secret (unless the write took effect after all, its reply lost): it goes.
      if (credentials.kind !== "workloadIdentity" && !(await this.read(ctx.principal.tenantId, id).catch(() => "unknown"))) {
        await this.secrets.delete(credentials.secretRef.name).catch(() => undefined);
      }
      throw err;
    }
    // The project was deleted while this was written (its delete marked it first): withdrawn, with its
    // secret, before any sync writes agents into a project nobody can see.
    await this.projects.withdrawUnlessStanding(ctx, spec.projectId, async (system) => {
      // Whatever it became meanwhile: an update between the read and the delete (412) is read again.
      for (let attempt = 0; ; attempt++) {
        const written = await this.read(ctx.principal.tenantId, id);
        if (!written) return;
        try {
          return await this.remove(system, written);
        } catch (err) {
          if (attempt >= 4 || !(err instanceof AppError && err.error.kind === "preconditionFailed")) throw err;
        }
      }
    });
    return created;
  }

  async get(ctx: RequestContext, id: string): Promise<Connection> {
    this.reader(ctx);
    return this.connections.view(await this.load(ctx.principal.tenantId, id));
  }

  async list(ctx: RequestContext, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<Connection>> {
    this.reader(ctx);
    return this.connections.page(this.partition(ctx.principal.tenantId), { orderBy: { field: "name", direction: "ASC" } }, page);
  }

  load(tenantId: string, id: string) {
    return this.connections.load(this.partition(tenantId), id, connectionPath(id));
  }

  /** Connections that sync into a project (a project with one cannot be deleted: its runs would write agents nobody can see). */
  async countFor(tenantId: string, projectId: string): Promise<number> {
    return (await this.connections.page(this.partition(tenantId), { filters: [{ field: "projectId", op: "=", value: projectId }] }, { maxPageSize: 1 })).items.length;
  }

  read(tenantId: string, id: string) {
    return this.connections.read(this.partition(tenantId), id);
  }

  async update(ctx: RequestContext, id: string, input: unknown, ifMatch: string): Promise<Connection> {
    this.admin(ctx);
    const patch: ConnectionPatch = parseOrThrow(ConnectionPatch, input, "body");
    const current = await this.load(ctx.principal.tenantId, id);
    if (!etagMatches(current._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (patch.scope && patch.scope.cloud !== current.cloud) fail({ kind: "validation", detail: "a connection's cloud cannot change", errors: [{ field: "body.scope.cloud", message: `stays ${current.cloud}` }] });
    const scope = (patch.scope ?? current.scope) as ScopeSpec;
    const regions = patch.regions ?? current.regions;
    if (patch.scope) this.sameAccount(current, scope);
    const next: ConnectionDoc = { ...unversioned(current), scope, regions, updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
    if (scope.cloud === "foundry") next.regionAccounts = { ...normalisedEndpoints((current.scope as ScopeSpec & { cloud: "foundry" }).projectEndpoints), ...(current.regionAccounts ?? {}), ...normalisedEndpoints(scope.projectEndpoints) };
    if (patch.credentials) {
      this.check(scope, patch.credentials, regions, "body");
      this.mayUsePlatformIdentity(ctx.principal.tenantId, patch.credentials.kind);
      next.credentials = await this.storeCredentials(id, patch.credentials);
    } else this.check(scope, { kind: current.credentials.kind } as CredentialsSpec, regions, "body", true);
    if (patch.description === null) delete next.description;
    else if (patch.description !== undefined) next.description = patch.description;
    if (patch.owner !== undefined) next.owner = patch.owner;
    if (patch.schedule !== undefined) next.schedule = patch.schedule;
    if (patch.enabled !== undefined) next.enabled = patch.enabled;
    let updated: Connection;
    try {
      updated = await this.connections.replace(ctx, current, next, { action: "agentConnection.update", event: "aigov.agent.connection.updated.v1" });
    } catch (err) {
      // The new version is nobody's (a concurrent change won the replace, say): it stops working; the
      // document still names the version it had, which stays enabled.
      const stored = patch.credentials && next.credentials.kind !== "workloadIdentity" ? next.credentials.secretRef : undefined;
      if (stored) {
        const named = await this.read(ctx.principal.tenantId, id).then((d) => (d && d.credentials.kind !== "workloadIdentity" ? d.credentials.secretRef.version === stored.version : false), () => true);
        if (!named) await this.secrets.disableVersion(stored.name, stored.version).catch(() => undefined);
      }
      throw err;
    }
    // Once the document names the new credentials, the replaced secret stops working for reads (a rollback is re-sending it).
    if (patch.credentials && current.credentials.kind !== "workloadIdentity") await this.secrets.disableVersion(current.credentials.secretRef.name, current.credentials.secretRef.version).catch(() => undefined);
    return updated;
  }

  /** The connection goes; its agents stay in the registry with their provenance and local governance (they may then be deleted). */
  async delete(ctx: RequestContext, id: string, ifMatch: string): Promise<void> {
    this.admin(ctx);
    const current = await this.load(ctx.principal.tenantId, id);
    if (!etagMatches(current._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    await this.remove(ctx, current);
  }

  private async remove(ctx: RequestContext, current: Versioned<ConnectionDoc>): Promise<void> {
    await this.connections.delete(ctx, current, { action: "agentConnection.delete", event: "aigov.agent.connection.deleted.v1", extraOps: [{ kind: "delete", id: connectionNameId(current.name) }] });
    // Whatever its credentials now: a connection moved to workload identity keeps its earlier secret's versions (disabled) under the name.
    await this.secrets.delete(connectionSecretName(current.id)).catch(() => undefined);
  }

  // ---- the switches

  async getTenantSettings(ctx: RequestContext): Promise<{ syncEnabled: boolean; etag: string }> {
    this.reader(ctx);
    const s = await this.tenantSwitch.read(ctx.principal.tenantId);
    return s ? { syncEnabled: s.syncEnabled, etag: s.etag } : { syncEnabled: true, etag: INITIAL_ETAG };
  }

  async putTenantSettings(ctx: RequestContext, input: unknown, ifMatch: string): Promise<{ syncEnabled: boolean; etag: string }> {
    this.admin(ctx);
    const spec = parseOrThrow(AgentSyncSettings, input, "body");
    const w = await this.tenantSwitch.write(ctx, { syncEnabled: spec.syncEnabled }, ifMatch);
    return { syncEnabled: w.syncEnabled, etag: w.etag };
  }

  async getProjectSettings(ctx: RequestContext, projectId: string): Promise<{ syncEnabled: boolean; etag: string }> {
    await this.projects.get(ctx, projectId);
    const doc = await this.store.read<SyncSwitchDoc>({ tenantId: ctx.principal.tenantId, scopeId: projectId }, syncSettingsId);
    return doc?.docType === "agentSyncSettings" ? { syncEnabled: doc.syncEnabled, etag: etagValue(doc._etag) } : { syncEnabled: true, etag: INITIAL_ETAG };
  }

  async putProjectSettings(ctx: RequestContext, projectId: string, input: unknown, ifMatch: string): Promise<{ syncEnabled: boolean; etag: string }> {
    const project = await this.projects.get(ctx, projectId);
    if (!holdsOn(ctx.principal, project, PROJECT_MANAGERS)) fail({ kind: "forbidden", detail: "needs TenantAdmin or ProjectAdmin" });
    const spec = parseOrThrow(AgentSyncSettings, input, "body");
    const partition = { tenantId: ctx.principal.tenantId, scopeId: projectId };
    const current = await this.store.read<SyncSwitchDoc>(partition, syncSettingsId);
    if (!etagMatches(current?._etag ?? INITIAL_ETAG, ifMatch)) fail({ kind: "preconditionFailed" });
    const doc: SyncSwitchDoc = { id: syncSettingsId, ...partition, docType: "agentSyncSettings", syncEnabled: spec.syncEnabled, updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
    const path = projectSyncSettingsPath(projectId);
    const [etag] = await this.changes.commit({
      partition,
      ctx,
      action: "agentSync.settings.update",
      resource: path,
      ...(current ? { before: { syncEnabled: current.syncEnabled } } : {}),
      after: { syncEnabled: spec.syncEnabled },
      ops: [current ? { kind: "replace", doc, ifMatch: current._etag } : { kind: "create", doc }],
      event: { type: "aigov.agent.sync.settings.changed.v1", subject: `/tenants/${ctx.principal.tenantId}${path}`, data: { projectId, syncEnabled: spec.syncEnabled } },
      onFailure: (_i, status) => (status === 409 ? { kind: "preconditionFailed" } : undefined),
    });
    return { syncEnabled: spec.syncEnabled, etag: etagValue(etag ?? "") };
  }

  /** Why a connection does not sync now (a switch), or undefined when it does. */
  async switchedOff(connection: ConnectionDoc): Promise<string | undefined> {
    if (!connection.enabled) return "connection_disabled";
    const tenant = await this.tenantSwitch.read(connection.tenantId);
    if (tenant && !tenant.syncEnabled) return "tenant_sync_disabled";
    const project = await this.store.read<SyncSwitchDoc>({ tenantId: connection.tenantId, scopeId: connection.projectId }, syncSettingsId);
    if (project?.docType === "agentSyncSettings" && !project.syncEnabled) return "project_sync_disabled";
    return undefined;
  }

  /**
   * A connection's agents are identified by the cloud's own ids within its account (a Foundry agent by its
   * name within its project): pointed at another account, its next run would take over the agents of the
   * same ids — an approved agent served from an unreviewed card. Another account is another connection.
   */
  private sameAccount(current: ConnectionDoc, after: ScopeSpec): void {
    const before = current.scope as ScopeSpec;
    const errors: { field: string; message: string }[] = [];
    if (before.cloud === "bedrock" && after.cloud === "bedrock" && before.accountId !== after.accountId) errors.push({ field: "body.scope.accountId", message: "stays the connection's account" });
    if (before.cloud === "vertex" && after.cloud === "vertex" && before.projectId !== after.projectId) errors.push({ field: "body.scope.projectId", message: "stays the connection's Google Cloud project" });
    if (before.cloud === "foundry" && after.cloud === "foundry") {
      // Every endpoint the region has had, not only the current ones: dropping a region and adding it
      // back with another project would take over the same way.
      const known = { ...normalisedEndpoints(before.projectEndpoints), ...(current.regionAccounts ?? {}) };
      for (const [region, url] of Object.entries(normalisedEndpoints(after.projectEndpoints))) {
        const was = known[region];
        if (was !== undefined && was !== url) errors.push({ field: `body.scope.projectEndpoints.${region}`, message: "stays the region's Foundry project (another project is another connection)" });
      }
    }
    if (errors.length) fail({ kind: "validation", detail: "a connection's account cannot change: create another connection", errors });
  }

  private mayUsePlatformIdentity(tenantId: string, kind: CredentialsSpec["kind"]): void {
    if (kind !== "workloadIdentity" || this.platformIdentity(tenantId)) return;
    fail({ kind: "forbidden", detail: "this deployment lends its own identity only to the tenants its operator lists (AGENT_PLATFORM_IDENTITY_TENANTS): give a Bedrock or Vertex AI connection its own credentials; a Foundry connection (which takes no other) needs the operator to list the tenant", reason: "platform_identity_not_allowed" });
  }

  /** Where and as whom the sync reaches the cloud (secrets read now, never kept). */
  async target(connection: ConnectionDoc): Promise<SourceTarget> {
    const scope = connection.scope as ScopeSpec;
    // Checked again at every sync: an operator who takes a tenant off the list stops its syncs at once.
    if (connection.credentials.kind === "workloadIdentity" && !this.platformIdentity(connection.tenantId)) {
      throw new Error(`connection ${connection.id}: this deployment no longer lends its identity to the tenant (AGENT_PLATFORM_IDENTITY_TENANTS)`);
    }
    const secret = connection.credentials.kind === "workloadIdentity" ? undefined : await this.secrets.get(connection.credentials.secretRef.name, connection.credentials.secretRef.version);
    if (connection.credentials.kind !== "workloadIdentity" && !secret) throw new Error(`connection ${connection.id}: its credential is missing from the secret store`);
    const value = secret?.value ?? "";
    if (scope.cloud === "bedrock") {
      const credentials =
        connection.credentials.kind === "awsAccessKey"
          ? { accessKeyId: connection.credentials.accessKeyId, secretAccessKey: value }
          : scope.roleArn
            ? { kind: "webIdentity" as const, roleArn: scope.roleArn, sessionName: roleSessionNameOf(connection.tenantId), token: this.federatedToken() }
            : ({ kind: "default" } as const);
      return { cloud: "bedrock", accountId: scope.accountId, credentials, agentCore: scope.agentCore, ...(scope.endpoint && this.local ? { endpoint: scope.endpoint } : {}) };
    }
    if (scope.cloud === "vertex") {
      const credentials =
        connection.credentials.kind === "gcpServiceAccountKey"
          ? ({ kind: "serviceAccountKey", json: value } as const)
          : connection.credentials.kind === "accessToken"
            ? ({ kind: "accessToken", token: value } as const)
            : scope.workloadIdentityProvider
              ? { kind: "workloadIdentity" as const, provider: scope.workloadIdentityProvider, ...(scope.serviceAccount ? { serviceAccount: scope.serviceAccount } : {}), token: this.federatedToken() }
              : ({ kind: "default" } as const);
      const endpoint = scope.endpoint && this.local ? new URL(scope.endpoint) : undefined;
      return { cloud: "vertex", projectId: scope.projectId, credentials, ...(endpoint ? { endpoint: { host: endpoint.hostname, port: Number(endpoint.port || (endpoint.protocol === "https:" ? 443 : 80)) } } : {}) };
    }
    return { cloud: "foundry", projectEndpoints: scope.projectEndpoints, credentials: connection.credentials.kind === "accessToken" ? { kind: "staticToken", token: value } : { kind: "default" } };
  }

  /** The account a connection's agents are recorded under (provenance). */
  static account(connection: ConnectionDoc): string {
    const scope = connection.scope as ScopeSpec;
    return scope.cloud === "bedrock" ? scope.accountId : scope.cloud === "vertex" ? scope.projectId : Object.values(scope.projectEndpoints)[0]!.replace(/\/+$/, "");
  }

  private check(scope: ScopeSpec, credentials: Pick<CredentialsSpec, "kind">, regions: string[], at: string, kept = false): void {
    const errors: { field: string; message: string }[] = [];
    if (!CREDENTIALS_BY_CLOUD[scope.cloud].includes(credentials.kind)) errors.push({ field: `${at}.credentials.kind`, message: `${scope.cloud} takes ${CREDENTIALS_BY_CLOUD[scope.cloud].join(" or ")}` });
    else if (credentials.kind === "accessToken" && !this.local && !kept) errors.push({ field: `${at}.credentials.kind`, message: "a static access token is for local fakes only" });
    if (new Set(regions).size !== regions.length) errors.push({ field: `${at}.regions`, message: "regions must be distinct" });
    // The role's credentials act in the role's account: a role of another account would list that account's
    // agents under this one's (and a role change would take over another account's agents of the same ids).
    if (scope.cloud === "bedrock" && scope.roleArn && scope.roleArn.split(":")[4] !== scope.accountId) {
      errors.push({ field: `${at}.scope.roleArn`, message: `must be a role of account ${scope.accountId} (the connection's account)` });
    }
    if (scope.cloud === "vertex" && scope.serviceAccount && !scope.workloadIdentityProvider) errors.push({ field: `${at}.scope.serviceAccount`, message: "is impersonated after a workload identity token exchange: give workloadIdentityProvider too" });
    if (scope.cloud === "foundry") {
      const keys = Object.keys(scope.projectEndpoints).sort();
      if (JSON.stringify(keys) !== JSON.stringify([...regions].sort())) errors.push({ field: `${at}.regions`, message: "must be exactly the regions of scope.projectEndpoints" });
      // The SDK sends the control plane's Entra token to this URL: only Foundry's own hosts, outside local mode.
      if (!this.local) {
        for (const [region, url] of Object.entries(scope.projectEndpoints)) {
          if (!FOUNDRY_PROJECT_ENDPOINT.test(url)) errors.push({ field: `${at}.scope.projectEndpoints.${region}`, message: "must be https://<resource>.services.ai.azure.com/api/projects/<project>" });
        }
      }
    }
    if (errors.length) throw new AppError({ kind: "validation", detail: "the connection is invalid", errors });
    if ("endpoint" in scope && scope.endpoint && !this.local) {
      throw new AppError({ kind: "validation", detail: "endpoint overrides reach local fakes only", reason: "endpoint_override_not_allowed", errors: [{ field: `${at}.scope.endpoint`, message: "accepted only when the control plane runs locally" }] });
    }
  }

  /** The secret parts go to the secret store (a new version of the connection's secret); the document keeps a reference. */
  private async storeCredentials(id: string, spec: CredentialsSpec): Promise<ConnectionDoc["credentials"]> {
    if (spec.kind === "workloadIdentity") return { kind: "workloadIdentity" };
    const name = connectionSecretName(id);
    const value = spec.kind === "awsAccessKey" ? spec.secretAccessKey : spec.kind === "gcpServiceAccountKey" ? spec.json : spec.token;
    const stored = await this.secrets.set(name, value, { contentType: `aigov/agent-connection-${spec.kind}`, tags: { connectionId: id } });
    const secretRef = { name, version: stored.version };
    return spec.kind === "awsAccessKey" ? { kind: "awsAccessKey", accessKeyId: spec.accessKeyId, secretRef } : { kind: spec.kind, secretRef };
  }

  private admin(ctx: RequestContext): void {
    if (!holdsAny(ctx.principal.roles, TENANT_ADMINS)) fail({ kind: "forbidden", detail: "cloud connections are the TenantAdmin's" });
  }

  private reader(ctx: RequestContext): void {
    if (!holdsAny(ctx.principal.roles, ANY_TENANT_ROLE)) fail({ kind: "forbidden", detail: "needs a tenant role" });
  }
}

/**
 * The AWS role session name of a tenant's syncs (`aigov-<tenant id>`, or a digest of an id AWS would
 * not take): a role's trust policy can require it (`"StringEquals": {"sts:RoleSessionName": …}`), so a
 * role trusted for one tenant cannot be assumed for another through the shared identity.
 */
export function roleSessionNameOf(tenantId: string): string {
  return /^[\w+=,.@-]{1,58}$/.test(tenantId) ? `aigov-${tenantId}` : `aigov-${createHash("sha256").update(tenantId).digest("hex").slice(0, 32)}`;
}

/** Foundry project endpoints by region, without trailing slashes (how they are compared). */
function normalisedEndpoints(endpoints: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(endpoints).map(([region, url]) => [region, url.replace(/\/+$/, "")]));
}
