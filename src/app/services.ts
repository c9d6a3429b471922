import type { IdentityGrants } from "../policy/identity.js";
import { join } from "node:path";
import type { TokenVerifier } from "../auth/verifier.js";
import { getConfig, type Config } from "../config/index.js";
import type { AuditService } from "../domain/audit/service.js";
import type { OutboxRelay } from "../domain/outbox/relay.js";
import type { ApprovalService } from "../domain/approvals/service.js";
import type { ApprovalRouteService } from "../domain/approvals/routes.js";
import type { ExemptionService } from "../domain/exemptions/service.js";
import type { ModelService } from "../pillars/models/service.js";
import type { PillarRuntime } from "../pillars/pillar.js";
import type { PolicyPreviewService, TenantGatewayInput } from "../domain/policy/preview.js";
import type { PublishService } from "../domain/publishing/service.js";
import type { KeyAgentScopes, KeyService, KeyToolScopes } from "../domain/keys/service.js";
import type { SecretResolver } from "../domain/keys/secrets.js";
import type { TenantGateways } from "../domain/publishing/tenant-gateways.js";
import type { GatewayPublisher } from "../ports/gateway.js";
import type { TenantSettingsService } from "../domain/policy/tenant-settings.js";
import type { ProjectService } from "../domain/projects/service.js";
import type { UsageService } from "../domain/usage/service.js";
import type { AccessReviewService } from "../domain/reviews/service.js";
import type { ProjectLifecycle } from "../domain/projects/lifecycle.js";
import type { Adoption } from "../domain/usage/adoption.js";
import type { TargetDeps } from "../domain/reviews/targets.js";
import type { UsageLogSource } from "../ports/usage-logs.js";
import type { Notifier } from "../ports/notifier.js";
import type { SecretStore } from "../ports/secrets.js";
import { systemClock as realClock, type Clock } from "../ports/clock.js";
import { mapLimit } from "../util/map-limit.js";
import type { EventPublisher } from "../ports/events.js";
import type { BatchOp, Partition, Store } from "../ports/store.js";

export interface Services {
  config: Config;
  store: Store;
  verifier: TokenVerifier;
  projects: ProjectService;
  audit: AuditService;
  relay: OutboxRelay;
  approvals: ApprovalService;
  /** The tenant's approval routes: who approves what. */
  approvalRoutes: ApprovalRouteService;
  models: ModelService;
  /** A pillar's runtime (its service and hooks), by name. */
  pillar(name: string): Promise<PillarRuntime>;
  policy: PolicyPreviewService;
  settings: TenantSettingsService;
  secrets: SecretStore;
  exemptions: ExemptionService;
  publishing: PublishService;
  /** Each tenant's gateway instance, artifact names and publisher. */
  gateways: TenantGateways;
  keys: KeyService;
  usage: UsageService;
  accessReviews: AccessReviewService;
  projectLifecycle: ProjectLifecycle;
  adoption: Adoption;
}

/**
 * Test seams: adapters a test supplies instead of the configured ones (e.g. the ARM publisher on an
 * in-process fake). Kept on globalThis because tests load src/ while the app runs the compiled dist/.
 */
export interface ServiceOverrides {
  /** Gets the app's own secret resolver (real secrets from the store, key fillers derived). */
  gatewayPublisher?: (resolveSecret: SecretResolver) => GatewayPublisher;
  /**
   * The services' clock (deadlines, expiries, audit times), read on every call: a test moves the
   * domain's time past a deadline. Durable timers keep the real time (a test drives the sweeps).
   */
  clock?: Clock;
  /** Seams of pillars by name (the agents pillar's `agentSources`: a cloud SDK on an in-process fake). */
  pillarSeams?: Record<string, unknown>;
  /** The channel to people, read on every delivery (e.g. Azure's, which has none). */
  notifier?: Notifier;
  /**
   * Called before every batch the services write, read on every batch: a test forces an interleaving (another
   * request's write lands just before this one) deterministically, instead of by timing. The change writer
   * commits one batch at a time per partition: a hook that waits for an audited write to the same partition waits forever.
   */
  beforeBatch?: (partition: Partition, ops: readonly BatchOp[]) => Promise<void>;
}
const OVERRIDES = Symbol.for("aigov.serviceOverrides");
const overridesNow = (): ServiceOverrides => ((globalThis as Record<symbol, unknown>)[OVERRIDES] as ServiceOverrides | undefined) ?? {};
export function overrideServices(o: ServiceOverrides): void {
  (globalThis as Record<symbol, unknown>)[OVERRIDES] = o;
}
/** The store the services use: `store`, with the test seam ServiceOverrides.beforeBatch looked up on every batch. */
function withBatchSeam(store: Store): Store {
  return {
    read: (partition, id) => store.read(partition, id),
    batch: async (partition, ops) => {
      const hook = overridesNow().beforeBatch;
      if (hook) await hook(partition, ops);
      return store.batch(partition, ops);
    },
    queryPage: (partition, spec) => store.queryPage(partition, spec),
    queryAcrossPartitions: (spec) => store.queryAcrossPartitions(spec),
    delete: (partition, id, ifMatch) => store.delete(partition, id, ifMatch),
    ping: () => store.ping(),
  };
}
/** The clock every service gets: the real one unless a test overrides it (ServiceOverrides.clock). */
const systemClock: Clock = { now: () => (overridesNow().clock ?? realClock).now() };

/** The local folder of a gateway instance: .data/apim/ for the default one, .data/apim-<name>/ for others. */
export const localGatewayFolder = (dataDir: string, instance: string) => join(dataDir, instance === "default" ? "apim" : `apim-${instance}`);

/** Each instance's publisher, built on first use (the ARM SDK is heavy: not on the cold-start path). */
function gatewayPublishers(config: Config, resolveSecret: SecretResolver): (instance: string) => Promise<GatewayPublisher> {
  const publishers = new Map<string, Promise<GatewayPublisher>>();
  const build = async (instance: string): Promise<GatewayPublisher> => {
    const override = overridesNow().gatewayPublisher;
    if (override && instance === "default") return override(resolveSecret);
    const named = config.gatewayInstances[instance];
    const arm = instance === "default" ? config.apim : named && "serviceName" in named ? named : undefined;
    if (arm) {
      const { ArmGatewayPublisher } = await import("../adapters/apim/arm-publisher.js");
      return new ArmGatewayPublisher({ ...arm, resolveSecret });
    }
    if (instance !== "default" && !named) throw new Error(`unknown gateway instance '${instance}'`);
    const { FilePublisher } = await import("../adapters/local/file-publisher.js");
    return new FilePublisher(localGatewayFolder(config.dataDir, instance), { resolveSecret });
  };
  return (instance) => {
    let p = publishers.get(instance);
    if (!p) {
      p = build(instance).catch((err: unknown) => {
        publishers.delete(instance);
        throw err;
      });
      publishers.set(instance, p);
    }
    return p;
  };
}

async function notifierFor(config: Config): Promise<Notifier> {
  if (config.local) {
    // Locally, each person's channel is a file under .data/inbox/.
    const { FileNotifier } = await import("../adapters/local/file-notifier.js");
    return new FileNotifier(join(config.dataDir, "inbox"));
  }
  // No mail/Teams channel yet in Azure: every delivery is reported undelivered; approvers use the API or CLI.
  const { NoChannelNotifier } = await import("../adapters/notify/no-channel.js");
  return new NoChannelNotifier();
}

async function secretStore(config: Config): Promise<SecretStore> {
  if (config.keyVaultUri) {
    const { KeyVaultSecretStore } = await import("../adapters/keyvault/secret-store.js");
    return new KeyVaultSecretStore(config.keyVaultUri);
  }
  const { EncryptedFileSecretStore } = await import("../adapters/local/encrypted-secret-store.js");
  return new EncryptedFileSecretStore(join(config.dataDir, "secrets"));
}

/** The provider keys' store: its own vault when configured (the gateway reads only it), else the one store. */
async function providerSecretStore(config: Config, secrets: SecretStore): Promise<SecretStore> {
  if (!config.providerKeyVaultUri || config.providerKeyVaultUri === config.keyVaultUri) return secrets;
  const { KeyVaultSecretStore } = await import("../adapters/keyvault/secret-store.js");
  return new KeyVaultSecretStore(config.providerKeyVaultUri);
}

/** The gateways' logs: Log Analytics in Azure (one source per APIM instance), the local gateways' files locally. */
function usageSourceNames(config: Config): string[] {
  return ["default", ...Object.keys(config.gatewayInstances)];
}
async function usageSources(config: Config): Promise<UsageLogSource[]> {
  const sources: UsageLogSource[] = [];
  for (const name of usageSourceNames(config)) {
    const named = config.gatewayInstances[name];
    const arm = name === "default" ? config.apim : named && "serviceName" in named ? named : undefined;
    if (arm && config.usage.workspaceId) {
      const { LogAnalyticsUsageSource } = await import("../adapters/monitor/log-analytics-source.js");
      sources.push(new LogAnalyticsUsageSource(name, config.usage.workspaceId, arm));
    } else if (!arm) {
      const { LocalGatewayLogSource } = await import("../adapters/local/gateway-log-source.js");
      sources.push(new LocalGatewayLogSource(name, join(config.dataDir, "gateway", ...(name === "default" ? [] : [name])), () => systemClock.now().getTime()));
    }
  }
  return sources;
}

async function eventPublisher(config: Config): Promise<EventPublisher> {
  if (config.events.eventGridEndpoint) {
    const { EventGridPublisher } = await import("../adapters/eventgrid/publisher.js");
    return new EventGridPublisher(config.events.eventGridEndpoint);
  }
  const { NdjsonEventSink } = await import("../adapters/local/ndjson-events.js");
  return new NdjsonEventSink(join(config.dataDir, "events.ndjson"), config.events.webhookUrl);
}

/**
 * The composition root: builds every service from the configuration, once, on first use. It only
 * wires: the rules live in the domain. Construction order is acyclic — readers first (key documents,
 * key secrets, active exemptions), then the gateways and the compiler that read through them, then
 * publishing, approvals, keys and exemptions.
 */
export async function buildServices(config: Config): Promise<Services> {
  // The domain loads here, on the first request, not when the registrations load (cold start).
  const [
    { connectCosmos },
    { createTokenVerifier },
    { AuditService },
    { ChangeWriter },
    { OutboxRelay },
    { ApprovalLinks },
    { ApprovalService },
    { ApprovalRouteService },
    { ExemptionService },
    { ExemptionDocuments },
    { ActiveExemptions },
    { PolicyPreviewService, TenantCompiler },
    { browserOrigins, compilerInput, registryContributors },
    { PublishService },
    { TenantGateways },
    { KeyService },
    { KeyDocuments },
    { KeyPlacement },
    { KeySecrets },
    { gatewayAccess },
    { pillarKeys },
    { keysScreeningIn },
    { TenantSettingsService, belowTenant },
    { SettingsGuard },
    { ProjectService },
    { UsageService },
    { AccessReviewService },
    { ReviewDocuments },
    { reviewTargets },
    { ProjectLifecycle },
    { Adoption },
  ] = await Promise.all([
    import("../adapters/cosmos/connect.js"),
    import("../auth/verifier.js"),
    import("../domain/audit/service.js"),
    import("../domain/changes.js"),
    import("../domain/outbox/relay.js"),
    import("../domain/approvals/links.js"),
    import("../domain/approvals/service.js"),
    import("../domain/approvals/routes.js"),
    import("../domain/exemptions/service.js"),
    import("../domain/exemptions/documents.js"),
    import("../domain/exemptions/active.js"),
    import("../domain/policy/preview.js"),
    import("../domain/policy/compiler-input.js"),
    import("../domain/publishing/service.js"),
    import("../domain/publishing/tenant-gateways.js"),
    import("../domain/keys/service.js"),
    import("../domain/keys/documents.js"),
    import("../domain/keys/placement.js"),
    import("../domain/keys/secrets.js"),
    import("../domain/keys/gateway-access.js"),
    import("../domain/keys/pillar-keys.js"),
    import("../domain/keys/screening.js"),
    import("../domain/policy/tenant-settings.js"),
    import("../domain/policy/settings-guard.js"),
    import("../domain/projects/service.js"),
    import("../domain/usage/service.js"),
    import("../domain/reviews/service.js"),
    import("../domain/reviews/documents.js"),
    import("../domain/reviews/targets.js"),
    import("../domain/projects/lifecycle.js"),
    import("../domain/usage/adoption.js"),
  ]);
  // No I/O here: the database and container are provisioned by infra (Azure) or by the local host.
  const clock = systemClock;
  const store = withBatchSeam(await connectCosmos(config.cosmos, { createIfMissing: false }));
  const changes = new ChangeWriter(store, clock);
  // What an operator granted each tenant at its gateway: the user-assigned identities its credentials may
  // name, and the Azure AI resources the gateway's own identity may call for it (policy/identity.ts).
  const gatewayGrants = (tenantId: string): IdentityGrants => {
    const assigned = config.gatewayAssignments[tenantId];
    return {
      identities: assigned?.identities ?? [],
      sharedHosts: config.sharedIdentityHosts === "any" ? "any" : [...config.sharedIdentityHosts, ...(assigned?.sharedIdentityHosts ?? [])],
    };
  };
  const tenantSettings = new TenantSettingsService(store, changes, clock, gatewayGrants);
  const settingsGuard = new SettingsGuard(tenantSettings);
  const projects = new ProjectService(store, changes, clock, settingsGuard);
  const secrets = await secretStore(config);
  const providerSecrets = await providerSecretStore(config, secrets);
  const configured = await notifierFor(config);
  // A test may swap the channel while the app runs (ServiceOverrides.notifier), as it moves the clock.
  const notifier: Notifier = { deliver: (recipient, message) => (overridesNow().notifier ?? configured).deliver(recipient, message) };
  // The approval engine depends on no pillar; pillars register their subject types' settle handlers on it.
  const approvalRoutes = new ApprovalRouteService(store, changes, clock);
  const approvals = new ApprovalService(store, changes, clock, new ApprovalLinks(secrets, clock), notifier, projects, () => config.publicUrl, approvalRoutes);
  // Every pillar's service, and what it holds in a project (project deletion asks each).
  const { pillars } = await import("../pillars/index.js");
  const pillarRuntimes = new Map<string, PillarRuntime>();
  for (const pillar of pillars()) {
    const runtime = await pillar.build({ store, changes, clock, secrets, providerSecrets, projects, settingsGuard, approvals, allowLoopback: config.local, platformIdentity: (tenantId) => config.platformIdentityTenants === "all" || config.platformIdentityTenants.includes(tenantId), gatewayGrants, seam: (name) => overridesNow().pillarSeams?.[name] });
    pillarRuntimes.set(pillar.name, runtime);
    projects.countDependentsWith(pillar.name, (tenantId, projectId) => runtime.countDependents(tenantId, projectId));
  }
  const models = pillarRuntimes.get("models")!.service as ModelService;
  settingsGuard.modelsOf((tenantId, projectId) => models.listAll(tenantId, projectId));
  const pillarInputs = [...pillarRuntimes.values()].flatMap((r) => (r.compilerInput ? [r.compilerInput.bind(r)] : []));

  // Readers: what the gateways and the compiler input read, before the services that write it.
  const keyDocuments = new KeyDocuments(store, changes, clock);
  projects.countDependentsWith("keys", (tenantId, projectId) => keyDocuments.countHeld(tenantId, projectId));
  const keySecrets = new KeySecrets(store, secrets);
  const exemptionDocuments = new ExemptionDocuments(store, changes);
  const activeExemptions = new ActiveExemptions(exemptionDocuments, clock);
  // A key exemption's tier is one of its project's key tiers: the caps on key profiles count it (ADR 008).
  keyDocuments.exemptedKeysWith((tenantId, projectId) => exemptionDocuments.openKeyExemptions(tenantId, projectId));
  // The gateways resolve subscription keys through the key secrets (real secrets from the store, fillers derived).
  const gateways = new TenantGateways(store, config.gatewayAssignments, gatewayPublishers(config, keySecrets.resolveSecret));
  const gatewayInput: TenantGatewayInput = (tenantId) => {
    const key = gateways.explicitKey(tenantId);
    const { identities, sharedHosts } = gatewayGrants(tenantId);
    return { ...(key ? { gatewayKey: key } : {}), ...(identities.length ? { gatewayIdentities: [...identities] } : {}), ...(sharedHosts !== "any" ? { gatewaySharedHosts: [...sharedHosts] } : {}) };
  };
  // Key profiles → exemptions → published exemption tiers, for previews and publishes alike.
  const pillarContributors = [...pillarRuntimes.values()].flatMap((r) => (r.contributor ? [r.contributor] : []));
  const registryInput = compilerInput([...registryContributors({ keys: keyDocuments, exemptions: activeExemptions, projects }), ...pillarContributors, browserOrigins(config.browserOrigins)]);
  const compiler = new TenantCompiler(projects, pillarInputs, tenantSettings, config.providerKeyVaultUri, registryInput, gatewayInput);
  // A tenant write that drops a service or changes settings asks what below the tenant needs: the registry, the keys, the environments.
  tenantSettings.needsOf(async (tenantId, settings, previous, services) => {
    const reg = await compiler.registry(tenantId);
    const keys = (await mapLimit(reg.projects, 8, (p) => keyDocuments.listAll(tenantId, p.id))).flat();
    const environments = new Map((await projects.listAll(tenantId)).map((p) => [p.id, p.environment]));
    return belowTenant(settings, reg.projects, keys, { previous, environments }, services);
  });

  // A tenant moved to another instance takes its keys along (their subscriptions are not in a publish).
  const keyPlacement = new KeyPlacement(keyDocuments, async (tenantId) => (await projects.listAll(tenantId)).map((p) => p.id), (tenantId, instance) => gateways.keysOn(tenantId, instance));
  const publishing = new PublishService({
    store,
    changes,
    clock,
    compiler,
    gateways,
    keys: keyPlacement,
    // A rollback holds the keys whose tier screens prompts to the region rules it restores (ADR 024).
    keyDocs: async (tenantId, projectIds) => (await mapLimit([...projectIds], 8, (id) => keyDocuments.listAll(tenantId, id))).flat(),
    retry: config.publishRetry,
    sliceMs: config.publishSliceSeconds * 1000,
  });
  let sources: Promise<UsageLogSource[]> | undefined;
  const usage = new UsageService({ store, changes, clock, projects, sources: () => (sources ??= usageSources(config)), sourceNames: usageSourceNames(config), retentionDays: config.usage.retentionDays });
  const toolScopes = pillarRuntimes.get("tools")?.service as KeyToolScopes | undefined;
  const keys = new KeyService({
    clock,
    documents: keyDocuments,
    secrets: keySecrets,
    projects,
    models,
    tools: toolScopes,
    agents: pillarRuntimes.get("agents")?.service as KeyAgentScopes | undefined,
    approvals,
    gateway: gatewayAccess({ gateways, publishing, exemptions: activeExemptions, compilerInput: (tenantId) => compiler.input(tenantId) }),
    rotations: { retry: config.publishRetry, perRun: config.keyRotationsPerRun },
    lastUse: (tenantId, projectId) => usage.keysLastUsed(tenantId, projectId),
    tenantServices: async (tenantId) => (await tenantSettings.scope(tenantId)).services,
    keyRegions: (tenantId, projectId, projectSettings, key, field) => settingsGuard.checkKeyRegions(tenantId, projectId, projectSettings, key, field),
  });
  // A person who loses their last key-holding project role loses the use of their keys there (ADR 026).
  projects.onKeyHolders({
    left: async (ctx, projectId, principalId) => void (await keys.suspendForLeaver(ctx, projectId, principalId)),
    returned: async (ctx, projectId, principalId) => void (await keys.resumeForReturner(ctx, projectId, principalId)),
  });
  // A region rule written to a project or model is held on the keys whose tier screens prompts there (ADR 024):
  // the project's own and those shared into it, with the names of the models each reaches.
  settingsGuard.keysOf((tenantId, projectId) => keysScreeningIn(keyDocuments, models, tenantId, projectId));
  // Pillars meet the services built after them here (no forward references).
  const keysForPillars = pillarKeys(keys, models, toolScopes);
  for (const runtime of pillarRuntimes.values()) {
    runtime.connect?.({
      requestPublish: (tenantId, cause) => publishing.requestPublish(tenantId, cause),
      keys: keysForPillars,
      pillar: (name) => pillarRuntimes.get(name),
      lastUse: (tenantId, projectId) => usage.activity(tenantId, projectId),
    });
  }
  // Activation, expiry and revocation make a pending revision (a system publish); the gateway publish
  // sweep starts its orchestration (ADR 006), so the sweep and the settle activity need no durable client.
  const exemptions = new ExemptionService({
    store,
    changes,
    clock,
    approvals,
    projects,
    models,
    tenantSettings: (tenantId) => tenantSettings.current(tenantId),
    notifier,
    requestPublish: (tenantId, cause) => publishing.requestPublish(tenantId, cause),
    keys: keyDocuments,
    // The compiler input built now (every contributor, the exemptions in force applied) says whether a key exemption is applied.
    keyExemptionOutcomes: async (tenantId, exemptions) => {
      const { keyExemptionOutcome } = await import("../policy/exemptions.js");
      const input = await compiler.input(tenantId);
      return exemptions.map((e) => keyExemptionOutcome(input, e));
    },
    documents: exemptionDocuments,
    active: activeExemptions,
  });
  // Access reviews see each kind of access through the service that owns it.
  const accessReviews = new AccessReviewService({
    docs: new ReviewDocuments(store, changes),
    clock,
    notifier,
    publicUrl: () => config.publicUrl,
    targets: reviewTargets({
      store,
      activity: (tenantId, projectId) => usage.activity(tenantId, projectId),
      keys: {
        inProject: (tenantId, projectId) => keyDocuments.inProject(tenantId, projectId),
        read: (tenantId, projectId, id) => keyDocuments.read(tenantId, projectId, id),
        revokeBySystem: (ctx, projectId, id, reason) => keys.revokeBySystem(ctx, projectId, id, reason),
        endShare: (ctx, projectId, id, target) => keys.sharing.endShare(ctx, projectId, id, target),
      },
      projects,
      exemptions: {
        openInProject: (tenantId, projectId) => exemptions.openInProject(tenantId, projectId),
        inForceAtTenant: (tenantId) => exemptions.inForceAtTenant(tenantId),
        revokeBySystem: (ctx, id, reason) => exemptions.revokeBySystem(ctx, id, reason),
        read: (tenantId, id) => exemptionDocuments.read(tenantId, id),
      },
      tools: pillarRuntimes.get("tools")?.service as TargetDeps["tools"],
    }),
    projectIds: async (tenantId) => (await projects.listAll(tenantId)).map((p) => p.id),
    projectOwners: async (tenantId, projectId) => {
      const found = await projects.assignmentsOf(tenantId, projectId);
      return found && [...new Set([found.owner, ...found.assignments.filter((a) => a.role === "ProjectAdmin").map((a) => a.principalId)])];
    },
    projectRoles: async (tenantId, projectId) => (await projects.assignmentsOf(tenantId, projectId))?.assignments,
    coverage: () => usage.coverage(),
  });
  // Promotions and sandbox expiry read each gate from the service that owns it.
  const projectLifecycle = new ProjectLifecycle({
    store,
    changes,
    clock,
    notifier,
    approvals,
    projects,
    requestPublish: (tenantId, cause) => publishing.requestPublish(tenantId, cause),
    gates: {
      tenantSettings: (tenantId) => tenantSettings.current(tenantId),
      exemptionsInForce: (tenantId, projectId) => exemptions.inForceAt(tenantId, projectId),
      liveKeys: async (tenantId, projectId) => (await keyDocuments.listAll(tenantId, projectId)).filter((k) => k.status === "active" || k.status === "suspended"),
      lastReviewCompletedAt: (tenantId, projectId) => accessReviews.lastCompletedFor(tenantId, projectId),
      models: (tenantId, projectId) => models.listAll(tenantId, projectId),
    },
    keys: {
      liveKeyIds: async (tenantId, projectId) => (await keyDocuments.listAll(tenantId, projectId)).filter((k) => k.status === "active").map((k) => k.id),
      setActiveBySystem: (ctx, projectId, id, status, reason, by) => keys.setActiveBySystem(ctx, projectId, id, status, reason, by),
      lockSuspendedIds: (tenantId, projectId) => keys.lockSuspendedIds(tenantId, projectId),
    },
  });
  const earliest = (dates: string[]) => dates.sort()[0];
  const adoption = new Adoption({
    clock,
    projects: (tenantId) => projects.listAll(tenantId),
    firstModelAt: async (tenantId, projectId) => earliest((await models.listAll(tenantId, projectId)).map((m) => m.createdAt)),
    firstPublishedSince: (tenantId, since) => publishing.firstPublishedSince(tenantId, since),
    firstKeyAt: async (tenantId, projectId) => earliest((await keyDocuments.listAll(tenantId, projectId)).map((k) => k.createdAt)),
    activity: (tenantId, projectId) => usage.activity(tenantId, projectId),
    approvalMetrics: (ctx) => approvals.metrics(ctx),
  });
  return {
    config,
    store,
    verifier: createTokenVerifier(config.auth),
    projects,
    audit: new AuditService(store, (tenantId) => projects.listAuditScopes(tenantId)),
    relay: new OutboxRelay(store, await eventPublisher(config)),
    approvals,
    approvalRoutes,
    models,
    policy: new PolicyPreviewService(projects, pillarInputs, tenantSettings, config.providerKeyVaultUri, registryInput, gatewayInput),
    pillar: async (name) => pillarRuntimes.get(name) ?? Promise.reject(new Error(`no pillar named ${name}`)),
    settings: tenantSettings,
    secrets,
    exemptions,
    publishing,
    gateways,
    keys,
    usage,
    accessReviews,
    projectLifecycle,
    adoption,
  };
}

let services: Promise<Services> | undefined;

export function getServices(): Promise<Services> {
  services ??= buildServices(getConfig()).catch((err: unknown) => {
    services = undefined;
    throw err;
  });
  return services;
}
