import { isIP } from "node:net";
import { hostOf, isLoopbackName, isPublicAddress } from "../../adapters/http/addresses.js";
import type { IdentityGrants } from "../../policy/identity.js";
import { checkManagedIdentity } from "../../domain/policy/managed-identity.js";
import type { SettingsGuard } from "../../domain/policy/settings-guard.js";
import type { Clock } from "../../ports/clock.js";
import type { SecretStore } from "../../ports/secrets.js";
import type { Partition, Store, StoredDoc } from "../../ports/store.js";
import { sha256 } from "../../domain/audit/chain.js";
import type { ChangeWriter } from "../../domain/changes.js";
import { etagMatches, newId, type Page, type RequestContext } from "../../domain/common.js";
import { AppError, fail } from "../../domain/errors.js";
import { Collection } from "../../domain/kernel/collection.js";
import { holdsAny, holdsOn, PROJECT_MANAGERS, TENANT_ADMINS } from "../../domain/kernel/roles.js";
import { toArray } from "../../domain/paging.js";
import type { Project } from "../../domain/projects/schema.js";
import type { ProjectService } from "../../domain/projects/service.js";
import { parseOrThrow } from "../../domain/validation.js";
import { ModelSpec, type Model, type ModelPatch, type ModelSpecInput } from "./schema.js";

interface ModelDoc extends StoredDoc, Omit<Model, "etag"> {
  docType: "model";
  /** Every price the model had and since when ("" = before records began): usage is costed at the price in force when a request was made. */
  pricingHistory?: { from: string; pricing: Model["pricing"] | null }[];
}

type Backend = Model["backends"][number];
type BackendInput = ModelSpec["backends"][number] | NonNullable<ModelPatch["backends"]>[number];

export const modelPath = (projectId: string, id: string) => `/projects/${projectId}/models/${id}`;
const nameId = (name: string) => `name.model.${sha256(name).slice(0, 48)}`;

/**
 * The prices of the models a project had under a name and deleted: usage ingestion costs a request at the
 * price in force when it was made, also when its hour is read again after its model was deleted (or
 * replaced by another under the same name). Internal: never in a response.
 */
export interface RetiredPricesDoc extends StoredDoc {
  docType: "retiredModelPrices";
  name: string;
  pricingHistory: { from: string; pricing: Model["pricing"] | null }[];
}
export const retiredPricesId = (name: string) => `model.retiredPrices.${name}`;
/** Key Vault secret names allow letters, digits and '-': ids are mapped accordingly. */
export const backendSecretName = (modelId: string, backendId: string) => `model-${modelId.replace("_", "-")}-${backendId}`;

const originOf = (url: string) => new URL(url).origin.toLowerCase();

/**
 * A stored provider key is bound to where it goes: its backend's origin (scheme, host, port) and the
 * header it is sent in. Keeping the key while pointing the backend elsewhere would send a key someone
 * else registered to a host of the editor's choosing; so that takes the key again (whoever knows it
 * may send it anywhere) or a TenantAdmin (checked by the caller).
 */
function checkCredentialBinding(patch: NonNullable<ModelPatch["backends"]>, existing: Backend[]): void {
  const errors: { field: string; message: string }[] = [];
  patch.forEach((b, i) => {
    if (!("keep" in b.credential)) return;
    const was = existing.find((e) => e.id === b.id);
    if (!was || was.credential.type !== "apiKey") return;
    if (originOf(b.url) !== originOf(was.url)) {
      errors.push({ field: `body.backends.${i}.url`, message: `the stored key was registered for ${originOf(was.url)}; send the key again (credential.key) to use it with ${originOf(b.url)}` });
    }
    if (b.credential.header !== was.credential.header) {
      errors.push({ field: `body.backends.${i}.credential.header`, message: `the stored key is sent in ${was.credential.header}; send the key again to send it in ${b.credential.header}` });
    }
  });
  if (errors.length) {
    throw new AppError({ kind: "validation", detail: "a kept provider key cannot move to another endpoint or header without the key", errors, reason: "credential_rebind_requires_key" });
  }
}

/**
 * Where the gateway may send a model's prompts. A backend URL naming a loopback, link-local (the cloud
 * metadata endpoint, 169.254.169.254), unspecified or reserved address, Azure's platform address or a
 * `localhost` name would have APIM call its own host's endpoints with the tenant's prompts and the
 * gateway's credentials: refused (locally, loopback and `*.localhost` stand for the fake backends).
 * Private networks stay allowed: a gateway in a virtual network reaches self-hosted models there. A name
 * is judged as written: what it resolves to is the gateway's network's to decide (docs/gateway.md).
 */
function checkBackendAddresses(backends: readonly { url: string }[], allowLoopback: boolean): void {
  const errors = backends.flatMap((b, i) => {
    let host: string;
    try {
      host = hostOf(new URL(b.url));
    } catch {
      return [];
    }
    if (isIP(host)) return isPublicAddress(host, { allowLoopback, allowPrivate: true }) ? [] : [{ field: `body.backends.${i}.url`, message: `${host} is a loopback, link-local or reserved address: the gateway must not call it` }];
    if (isLoopbackName(host) && !allowLoopback) return [{ field: `body.backends.${i}.url`, message: "localhost is the gateway's own host" }];
    return [];
  });
  if (errors.length) throw new AppError({ kind: "validation", detail: "a backend's address is not allowed", errors, reason: "backend_address_refused" });
}

/** A model's managed-identity backends use the gateway's own identity (models name no clientId): the Azure AI resources listed for it only. */
function checkBackendIdentities(backends: readonly { url: string; credential: { type: string; audience?: string } }[], grants: IdentityGrants): void {
  backends.forEach((b, i) => {
    if (b.credential.type === "managedIdentity") checkManagedIdentity({ url: b.url, audience: b.credential.audience ?? "" }, grants, `body.backends.${i}.credential`);
  });
}

/**
 * The model registry of a project. Models live in the project's own partition (tenant, project), so
 * their writes and audit chain do not contend with other projects'. Provider keys go to the secret
 * store on write and are referenced, never stored or returned.
 */
export class ModelService {
  private readonly models: Collection<ModelDoc, Model>;

  constructor(
    private readonly store: Store,
    changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly secrets: SecretStore,
    private readonly projects: ProjectService,
    private readonly settingsGuard?: SettingsGuard,
    private readonly gatewayGrants: (tenantId: string) => IdentityGrants = () => ({ identities: [], sharedHosts: [] }),
    /** Locally (the fake backends): loopback addresses and `*.localhost` names are backends too. */
    private readonly allowLoopback = false,
  ) {
    this.models = new Collection<ModelDoc, Model>(store, changes, { docType: "model", path: (d) => modelPath(d.scopeId, d.id), internal: ["pricingHistory"] });
  }

  /**
   * A sunset date being set (deprecating, or a new date) must be after today (UTC): the gateway refuses a
   * deprecated model's calls from 00:00 UTC of its sunset date on (410 `model_sunset`), so today or earlier
   * would cut it off at once — blocking does that, and says so. A date already stored stays as it is: while
   * the model stays deprecated, and when a model blocked from deprecated (it keeps `deprecatedAt`) is
   * deprecated again — it returns to what it had, past its sunset if that has come (as an agent unblocked).
   */
  private checkSunset(spec: { status?: string | undefined; sunsetDate?: string | undefined }, current: { status?: string | undefined; sunsetDate?: string | undefined; deprecatedAt?: string | undefined } | undefined): void {
    if (spec.status !== "deprecated" || !spec.sunsetDate) return;
    if (current?.sunsetDate === spec.sunsetDate && (current.status === "deprecated" || (current.status === "blocked" && current.deprecatedAt))) return;
    const today = this.clock.now().toISOString().slice(0, 10);
    if (spec.sunsetDate <= today) fail({ kind: "validation", detail: "the request body is invalid", errors: [{ field: "body.sunsetDate", message: "must be after today: calls are refused from the sunset date on (block the model to stop it now)" }] });
  }

  async create(ctx: RequestContext, projectId: string, input: ModelSpecInput): Promise<Model> {
    const project = await this.writable(ctx, projectId);
    const spec = parseOrThrow(ModelSpec, input, "body");
    checkBackendAddresses(spec.backends, this.allowLoopback);
    checkBackendIdentities(spec.backends, this.gatewayGrants(ctx.principal.tenantId));
    if (spec.settings) await this.settingsGuard?.check(ctx.principal.tenantId, project.settings, spec.settings, "body.settings");
    const label = `model ${spec.name}`;
    await this.settingsGuard?.checkEnvironment(ctx.principal.tenantId, project.environment, { project, model: { label, settings: spec.settings } }, { project, model: { label } });
    await this.settingsGuard?.checkServiceRegions(ctx.principal.tenantId, { project, model: { label, name: spec.name, settings: spec.settings } }, { project, model: { label, name: spec.name } }, "body.settings", projectId);
    this.checkSunset(spec, undefined);
    const id = newId("mdl");
    const now = this.clock.now().toISOString();
    const backends = await this.storeCredentials(id, spec.backends, []);
    const { backends: _b, ...fields } = spec;
    const doc: ModelDoc = {
      ...fields,
      ...(spec.status === "deprecated" ? { deprecatedAt: now.slice(0, 10) } : {}),
      backends,
      pricingHistory: [{ from: now, pricing: spec.pricing ?? null }],
      id,
      projectId: project.id,
      tenantId: ctx.principal.tenantId,
      scopeId: project.id,
      docType: "model",
      createdAt: now,
      createdBy: ctx.principal.userId,
      updatedAt: now,
      updatedBy: ctx.principal.userId,
    };
    const partition = this.partition(ctx, project.id);
    let created: Model;
    try {
      created = await this.models.create(ctx, doc, {
        action: "model.register",
        event: "aigov.model.registered.v1",
        extraOps: [{ kind: "create", doc: { id: nameId(spec.name), ...partition, docType: "nameReservation", resourceId: id } }],
        onFailure: (index, status) => (index === 1 && status === 409 ? { kind: "conflict", detail: `a model named '${spec.name}' already exists in this project`, reason: "name_taken" } : undefined),
      });
    } catch (err) {
      // Refused (a name taken meanwhile): the keys stored for a model that does not exist go too — unless
      // the answer was lost and the model was recorded after all (or the store cannot say: kept, then).
      const recorded = await this.models.read(partition, id).then((d) => d !== undefined, () => true);
      if (!recorded) await this.forgetCredentials(backends);
      throw err;
    }
    // The project was deleted while this was written (its delete marked it first): the model goes with it.
    await this.projects.withdrawUnlessStanding(ctx, project.id, async (system) => {
      const written = await this.models.read(partition, id);
      if (written) await this.models.delete(system, written, { action: "model.delete", event: "aigov.model.deleted.v1", data: { id, projectId: project.id, name: written.name }, extraOps: [{ kind: "delete", id: nameId(written.name) }] });
      await this.forgetCredentials(backends);
    });
    return created;
  }

  /** Deletes the secrets of credentials stored for a model that was never recorded (best effort: logged). */
  private async forgetCredentials(backends: readonly Backend[]): Promise<void> {
    for (const b of backends) {
      const name = b.credential.type === "apiKey" && "secretRef" in b.credential ? b.credential.secretRef.name : undefined;
      if (name) await this.secrets.delete(name).catch((e: unknown) => console.warn(`secret ${name} of a refused model was not deleted: ${e instanceof Error ? e.message : String(e)}`));
    }
  }

  async get(ctx: RequestContext, projectId: string, id: string): Promise<Model> {
    await this.projects.get(ctx, projectId); // readable project, same tenant, or 404/403
    return this.models.view(await this.load(ctx, projectId, id));
  }

  async list(ctx: RequestContext, projectId: string, page: { maxPageSize: number; continuationToken?: string | undefined }): Promise<Page<Model>> {
    await this.projects.get(ctx, projectId);
    return this.models.page(this.partition(ctx, projectId), { orderBy: { field: "name", direction: "ASC" } }, page);
  }

  /** How many models a project has (blocks deleting the project). One single-partition query page. */
  async count(tenantId: string, projectId: string): Promise<number> {
    return (await this.models.page({ tenantId, scopeId: projectId }, {}, { maxPageSize: 100 })).items.length;
  }

  /** Every model of a project (for the policy compiler). */
  async listAll(tenantId: string, projectId: string): Promise<Model[]> {
    return (await toArray(this.models.every({ tenantId, scopeId: projectId }))).map((d) => this.models.view(d));
  }

  async update(ctx: RequestContext, projectId: string, id: string, patch: ModelPatch, ifMatch: string): Promise<Model> {
    await this.writable(ctx, projectId);
    const current = await this.load(ctx, projectId, id);
    if (!etagMatches(current._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    const merged: Record<string, unknown> = { ...this.models.snapshot(current) };
    for (const [key, value] of Object.entries(patch)) {
      if (key === "backends" || value === undefined) continue;
      if (value === null) delete merged[key];
      else merged[key] = value;
    }
    // Validate the merged model as a whole (with placeholder keys: stored keys are referenced, not re-sent).
    const backendsIn = patch.backends ?? current.backends.map((b) => ({ ...b, credential: b.credential.type === "apiKey" ? { type: "apiKey" as const, header: b.credential.header, keep: true as const } : b.credential }));
    const specView = Object.fromEntries(Object.keys(ModelSpec.shape).filter((k) => k in merged).map((k) => [k, merged[k]]));
    const spec = parseOrThrow(
      ModelSpec,
      { ...specView, backends: backendsIn.map((b) => ({ ...b, credential: "keep" in b.credential ? { type: "apiKey", header: b.credential.header, key: "placeholder" } : b.credential })) },
      "body",
    );
    for (const b of backendsIn) {
      if ("keep" in b.credential && !current.backends.some((c) => c.id === b.id && c.credential.type === "apiKey")) {
        fail({ kind: "validation", detail: "the request body is invalid", errors: [{ field: `body.backends.${b.id}.credential`, message: "keep: true needs an existing key for this backend" }], reason: "credential_not_stored" });
      }
    }
    this.checkSunset(spec, current);
    if (patch.backends) checkBackendAddresses(spec.backends, this.allowLoopback);
    if (patch.backends) checkBackendIdentities(spec.backends, this.gatewayGrants(ctx.principal.tenantId));
    if (patch.backends && !holdsAny(ctx.principal.roles, TENANT_ADMINS)) checkCredentialBinding(patch.backends, current.backends);
    if (patch.settings !== undefined) {
      const project = await this.projects.get(ctx, projectId);
      if (spec.settings) await this.settingsGuard?.check(ctx.principal.tenantId, project.settings, spec.settings, "body.settings");
      const label = `model ${spec.name}`;
      await this.settingsGuard?.checkEnvironment(ctx.principal.tenantId, project.environment, { project, model: { label, settings: spec.settings } }, { project, model: { label, settings: current.settings } });
      await this.settingsGuard?.checkServiceRegions(ctx.principal.tenantId, { project, model: { label, name: spec.name, settings: spec.settings } }, { project, model: { label, name: current.name, settings: current.settings } }, "body.settings", projectId);
    }
    const backends = await this.storeCredentials(id, backendsIn, current.backends);
    const { backends: _b, ...fields } = spec;
    // When the model became deprecated (the Deprecation response header, RFC 9745), as a server's and an
    // agent's: set the day it becomes deprecated, kept while it stays deprecated or is blocked (deprecated
    // again, it was deprecated then), dropped when it is active again. A model deprecated before the date
    // was recorded gets none by a later write: the day of that write is not the day it was deprecated.
    const becomes = spec.status === "deprecated" && current.status !== "deprecated";
    const deprecatedAt = spec.status === "active" ? undefined : (current.deprecatedAt ?? (becomes ? this.clock.now().toISOString().slice(0, 10) : undefined));
    const updatedAt = this.clock.now().toISOString();
    const history = current.pricingHistory ?? (current.pricing ? [{ from: "", pricing: current.pricing }] : []);
    const repriced = JSON.stringify(spec.pricing ?? null) !== JSON.stringify(current.pricing ?? null);
    const doc: ModelDoc = {
      ...fields,
      ...(deprecatedAt ? { deprecatedAt } : {}),
      backends,
      pricingHistory: repriced ? [...history, { from: updatedAt, pricing: spec.pricing ?? null }] : history,
      id,
      projectId,
      tenantId: ctx.principal.tenantId,
      scopeId: projectId,
      docType: "model",
      createdAt: current.createdAt,
      createdBy: current.createdBy,
      updatedAt,
      updatedBy: ctx.principal.userId,
    };
    return this.models.replace(ctx, current, doc, { action: "model.update", event: "aigov.model.updated.v1" });
  }

  async delete(ctx: RequestContext, projectId: string, id: string, ifMatch: string): Promise<void> {
    await this.writable(ctx, projectId);
    const current = await this.load(ctx, projectId, id);
    if (!etagMatches(current._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    // Its prices stay with the project (one live model per name: no concurrent writer of this document).
    const partition = this.partition(ctx, projectId);
    const retired = await this.store.read<RetiredPricesDoc>(partition, retiredPricesId(current.name));
    const history = current.pricingHistory ?? (current.pricing ? [{ from: "", pricing: current.pricing }] : []);
    const prices: RetiredPricesDoc = {
      id: retiredPricesId(current.name),
      ...partition,
      docType: "retiredModelPrices",
      name: current.name,
      pricingHistory: [...(retired?.pricingHistory ?? []), ...history, { from: this.clock.now().toISOString(), pricing: null }],
    };
    await this.models.delete(ctx, current, {
      action: "model.delete",
      event: "aigov.model.deleted.v1",
      data: { id, projectId, name: current.name },
      extraOps: [{ kind: "delete", id: nameId(current.name) }, { kind: "upsert", doc: prices }],
    });
    for (const b of current.backends) if (b.credential.type === "apiKey") await this.secrets.delete(b.credential.secretRef.name);
  }

  /** Keys go to the secret store (a new version when re-sent); the model keeps only a reference. */
  private async storeCredentials(modelId: string, inputs: BackendInput[], existing: Backend[]): Promise<Backend[]> {
    const out: Backend[] = [];
    for (const b of inputs) {
      const { credential, ...rest } = b;
      const base = { ...rest, priority: rest.priority ?? 1, weight: rest.weight ?? 1 };
      if (credential.type === "managedIdentity") {
        out.push({ ...base, credential });
      } else if ("keep" in credential) {
        const kept = existing.find((e) => e.id === b.id)!.credential;
        out.push({ ...base, credential: { ...kept, header: credential.header } as Backend["credential"] });
      } else {
        const name = backendSecretName(modelId, b.id);
        const saved = await this.secrets.set(name, credential.key, { contentType: "text/plain", tags: { model: modelId, backend: b.id } });
        out.push({ ...base, credential: { type: "apiKey", header: credential.header, secretRef: { name, version: saved.version } } });
      }
    }
    return out;
  }

  private async writable(ctx: RequestContext, projectId: string): Promise<Project> {
    const project = await this.projects.get(ctx, projectId);
    if (!holdsOn(ctx.principal, project, PROJECT_MANAGERS)) fail({ kind: "forbidden", detail: "registering models requires TenantAdmin or ProjectAdmin" });
    return project;
  }

  private partition(ctx: RequestContext, projectId: string): Partition {
    return { tenantId: ctx.principal.tenantId, scopeId: projectId };
  }

  private load(ctx: RequestContext, projectId: string, id: string) {
    return this.models.load(this.partition(ctx, projectId), id, modelPath(projectId, id));
  }
}
