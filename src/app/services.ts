import { join } from "node:path";
import { mapLimit } from "../util/map-limit.js";
import type { TokenVerifier } from "../auth/verifier.js";
import { getConfig, type Config } from "../config/index.js";
import type { AuditService } from "../domain/audit/service.js";
import type { OutboxRelay } from "../domain/outbox/relay.js";
import type { ApprovalService } from "../domain/approvals/service.js";
import type { ApprovalRouteService } from "../domain/approvals/routes.js";
import type { ExemptionService, RequestPublish } from "../domain/exemptions/service.js";
import type { ModelService } from "../pillars/models/service.js";
import type { PillarRuntime } from "../pillars/pillar.js";
import type { InputTransform, PolicyPreviewService } from "../domain/policy/preview.js";
import type { PublishService } from "../domain/publishing/service.js";
import type { KeyDoc, KeyService } from "../domain/keys/service.js";
import type { TenantGateways } from "../domain/publishing/tenant-gateways.js";
import type { GatewayPublisher } from "../ports/gateway.js";
import type { TenantSettingsService } from "../domain/policy/tenant-settings.js";
import type { ProjectService } from "../domain/projects/service.js";
import type { Notifier } from "../ports/notifier.js";
import type { SecretStore } from "../ports/secrets.js";
import { systemClock as realClock, type Clock } from "../ports/clock.js";
import type { EventPublisher } from "../ports/events.js";
import type { Store } from "../ports/store.js";

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
}

/**
 * Test seams: adapters a test supplies instead of the configured ones (e.g. the ARM publisher on an
 * in-process fake). Kept on globalThis because tests load src/ while the app runs the compiled dist/.
 */
export interface ServiceOverrides {
  /** Gets the app's own secret resolver (real secrets from the store, key fillers derived). */
  gatewayPublisher?: (resolveSecret: (ref: { name: string; version: string }) => Promise<string>) => GatewayPublisher;
  /**
   * The services' clock (deadlines, expiries, audit times), read on every call: a test moves the
   * domain's time past a deadline. Durable timers keep the real time (a test drives the sweeps).
   */
  clock?: Clock;
}
const OVERRIDES = Symbol.for("aigov.serviceOverrides");
const overridesNow = (): ServiceOverrides => ((globalThis as Record<symbol, unknown>)[OVERRIDES] as ServiceOverrides | undefined) ?? {};
export function overrideServices(o: ServiceOverrides): void {
  (globalThis as Record<symbol, unknown>)[OVERRIDES] = o;
}
/** The clock every service gets: the real one unless a test overrides it (ServiceOverrides.clock). */
const systemClock: Clock = { now: () => (overridesNow().clock ?? realClock).now() };

/** The local folder of a gateway instance: .data/apim/ for the default one, .data/apim-<name>/ for others. */
export const localGatewayFolder = (dataDir: string, instance: string) => join(dataDir, instance === "default" ? "apim" : `apim-${instance}`);

/** Each instance's publisher, built on first use (the ARM SDK is heavy: not on the cold-start path). */
function gatewayPublishers(config: Config, resolveSecret: (ref: { name: string; version: string }) => Promise<string>): (instance: string) => Promise<GatewayPublisher> {
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
  // No mail/Teams channel yet in Azure: say so (without the link), approvers use the API or CLI.
  return {
    deliver: async (recipient, message) => {
      console.warn(`no notification channel configured; '${message.subject}' for ${recipient} was not delivered`);
    },
  };
}

async function secretStore(config: Config): Promise<SecretStore> {
  if (config.keyVaultUri) {
    const { KeyVaultSecretStore } = await import("../adapters/keyvault/secret-store.js");
    return new KeyVaultSecretStore(config.keyVaultUri);
  }
  const { EncryptedFileSecretStore } = await import("../adapters/local/encrypted-secret-store.js");
  return new EncryptedFileSecretStore(join(config.dataDir, "secrets"));
}

async function eventPublisher(config: Config): Promise<EventPublisher> {
  if (config.events.eventGridEndpoint) {
    const { EventGridPublisher } = await import("../adapters/eventgrid/publisher.js");
    return new EventGridPublisher(config.events.eventGridEndpoint);
  }
  const { NdjsonEventSink } = await import("../adapters/local/ndjson-events.js");
  return new NdjsonEventSink(join(config.dataDir, "events.ndjson"), config.events.webhookUrl);
}

/** The composition root: builds every service from the configuration, once, on first use. */
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
    { PolicyPreviewService, TenantCompiler },
    { PublishService },
    { TenantGateways },
    { KeyService },
    { TenantSettingsService },
    { SettingsGuard },
    { ProjectService },
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
    import("../domain/policy/preview.js"),
    import("../domain/publishing/service.js"),
    import("../domain/publishing/tenant-gateways.js"),
    import("../domain/keys/service.js"),
    import("../domain/policy/tenant-settings.js"),
    import("../domain/policy/settings-guard.js"),
    import("../domain/projects/service.js"),
  ]);
  // No I/O here: the database and container are provisioned by infra (Azure) or by the local host.
  const store = await connectCosmos(config.cosmos, { createIfMissing: false });
  const changes = new ChangeWriter(store, systemClock);
  const tenantSettings = new TenantSettingsService(store, changes, systemClock);
  const settingsGuard = new SettingsGuard(tenantSettings);
  const projects = new ProjectService(store, changes, systemClock, settingsGuard);
  const secrets = await secretStore(config);
  const notifier = await notifierFor(config);
  // Every pillar's service, and what it holds in a project (project deletion asks each).
  const { pillars } = await import("../pillars/index.js");
  const pillarRuntimes = new Map<string, PillarRuntime>();
  for (const pillar of pillars()) {
    const runtime = await pillar.build({ store, changes, clock: systemClock, secrets, projects, settingsGuard });
    pillarRuntimes.set(pillar.name, runtime);
    projects.countDependentsWith(pillar.name, (tenantId, projectId) => runtime.countDependents(tenantId, projectId));
  }
  const models = pillarRuntimes.get("models")!.service as ModelService;
  const pillarInputs = [...pillarRuntimes.values()].flatMap((r) => (r.compilerInput ? [r.compilerInput.bind(r)] : []));
  // The gateway resolves subscription keys through the key service (real secrets from the store, fillers derived).
  let keys: KeyService | undefined;
  const ensuring = new Map<string, Promise<{ needsPublish?: boolean }>>();
  const gateways = new TenantGateways(store, config.gatewayAssignments, gatewayPublishers(config, (ref) => keys!.resolveSecret(ref)));
  const gatewayKey = (tenantId: string) => gateways.explicitKey(tenantId);
  // Active exemptions relax their controls in the compiler input, for previews and publishes alike.
  let exemptions: ExemptionService | undefined;
  const withExemptions: InputTransform = async (tenantId, input) => {
    const active = await exemptions!.listActive(tenantId, systemClock.now());
    if (active.length === 0) return input;
    const { applyExemptions } = await import("../policy/exemptions.js");
    return applyExemptions(input, active);
  };
  // The key lifecycle job asks for every key; the tenant's active exemptions are read once a few seconds.
  const activeCache = new Map<string, { at: number; value: ReturnType<ExemptionService["listActive"]> }>();
  const activeExemptions = (tenantId: string) => {
    const hit = activeCache.get(tenantId);
    if (hit && Date.now() - hit.at < 5000) return hit.value;
    const value = exemptions!.listActive(tenantId, systemClock.now());
    activeCache.set(tenantId, { at: Date.now(), value });
    return value;
  };
  // Virtual key profiles become key tiers (ADR 008), then exemptions relax controls; exemption tiers a
  // key's subscription is still on stay compiled until it has moved (a product is never deleted under it).
  const withKeysAndExemptions: InputTransform = async (tenantId, input) => {
    const byProject = new Map<string, KeyDoc[]>(await mapLimit(input.projects, 8, async (p) => [p.id, await keys!.listAllDocs(tenantId, p.id)] as const));
    const { withKeyProfiles, withPublishedExemptionTiers } = await import("../domain/keys/profiles.js");
    return withPublishedExemptionTiers(await withExemptions(tenantId, withKeyProfiles(input, byProject)), byProject);
  };
  const compiler = new TenantCompiler(projects, pillarInputs, tenantSettings, config.keyVaultUri, withKeysAndExemptions, gatewayKey);
  const publishing = new PublishService(store, changes, systemClock, compiler, (tenantId) => gateways.publisher(tenantId), (tenantId) => gateways.reserve(tenantId));
  const approvalRoutes = new ApprovalRouteService(store, changes, systemClock);
  const approvals = new ApprovalService(store, changes, systemClock, new ApprovalLinks(secrets, systemClock), notifier, projects, () => config.publicUrl, approvalRoutes);
  // Activation, expiry and revocation make a pending revision; the gateway publish sweep starts its
  // orchestration (ADR 006), so the sweep and the settle activity need no durable client.
  const requestPublish: RequestPublish = async (tenantId, cause) => {
    try {
      await publishing.requestPublish(tenantId, cause);
    } catch (err) {
      // The exemption's own transition stands; the gateway catches up with the next publish.
      console.error(`republish after '${cause.reason}' failed for tenant ${tenantId}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  keys = new KeyService(store, changes, systemClock, secrets, projects, models, {
    publisher: (tenantId) => gateways.publisher(tenantId),
    names: (tenantId) => gateways.names(tenantId),
    holds: (tenantId, ref) => publishing.holds(tenantId, ref),
    ensurePublished: async (tenantId, cause) => {
      // Many keys waiting for products ask together (a bulk create): callers while one compile of the
      // tenant is under way share it; a key it started too early to see is picked up by the next
      // lifecycle run (the key stays gateway.state "pending" until then).
      const running = ensuring.get(tenantId);
      if (running) return running;
      const run = publishing
        .ensurePublished(tenantId, cause)
        .then((r) => (r.needsPublish ? { needsPublish: true } : {}))
        .finally(() => ensuring.delete(tenantId));
      ensuring.set(tenantId, run);
      return run;
    },
    exemptionTier: async (tenantId, projectId, keyId) => {
      const active = await activeExemptions(tenantId);
      if (!active.some((e) => e.scope.level === "key" && e.scope.keyId === keyId)) return undefined;
      // Rare: derive the tier exactly as the compiler input does, so the subscription and the products agree.
      const input = await compiler.input(tenantId);
      const id = input.virtualKeys?.find((k) => k.id === keyId && k.projectId === projectId)?.tier;
      const { EXEMPTION_TIER_PREFIX } = await import("../policy/exemptions.js");
      const tier = id?.startsWith(EXEMPTION_TIER_PREFIX) ? input.keyTiers?.find((t) => t.id === id) : undefined;
      return tier ? { id: tier.id, tier: { ...tier, limits: { ...tier.limits } } } : undefined;
    },
  }, approvals);
  exemptions = new ExemptionService(store, changes, systemClock, approvals, projects, models, notifier, requestPublish, keys);
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
    policy: new PolicyPreviewService(projects, pillarInputs, tenantSettings, config.keyVaultUri, withKeysAndExemptions, gatewayKey),
    pillar: async (name) => pillarRuntimes.get(name) ?? Promise.reject(new Error(`no pillar named ${name}`)),
    settings: tenantSettings,
    secrets,
    exemptions,
    publishing,
    gateways,
    keys,
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
