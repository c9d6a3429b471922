import { join } from "node:path";
import { connectCosmos } from "../adapters/cosmos/connect.js";
import { createTokenVerifier, type TokenVerifier } from "../auth/verifier.js";
import { getConfig, type Config } from "../config/index.js";
import { AuditService } from "../domain/audit/service.js";
import { ChangeWriter } from "../domain/changes.js";
import { OutboxRelay } from "../domain/outbox/relay.js";
import { ApprovalLinks } from "../domain/approvals/links.js";
import { ApprovalService } from "../domain/approvals/service.js";
import { ModelService } from "../domain/models/service.js";
import { PolicyPreviewService } from "../domain/policy/preview.js";
import { TenantSettingsService } from "../domain/policy/tenant-settings.js";
import { ProjectService } from "../domain/projects/service.js";
import type { Notifier } from "../ports/notifier.js";
import type { SecretStore } from "../ports/secrets.js";
import { systemClock } from "../ports/clock.js";
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
  models: ModelService;
  policy: PolicyPreviewService;
  settings: TenantSettingsService;
  secrets: SecretStore;
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
  // No I/O here: the database and container are provisioned by infra (Azure) or by the local host.
  const store = await connectCosmos(config.cosmos, { createIfMissing: false });
  const changes = new ChangeWriter(store, systemClock);
  const projects = new ProjectService(store, changes, systemClock);
  const secrets = await secretStore(config);
  const notifier = await notifierFor(config);
  const tenantSettings = new TenantSettingsService(store, changes, systemClock);
  const models = new ModelService(store, changes, systemClock, secrets, projects);
  projects.countDependentsWith((tenantId, projectId) => models.count(tenantId, projectId));
  const approvals = new ApprovalService(store, changes, systemClock, new ApprovalLinks(secrets, systemClock), notifier, projects, () => config.publicUrl);
  return {
    config,
    store,
    verifier: createTokenVerifier(config.auth),
    projects,
    audit: new AuditService(store, (tenantId) => projects.listAuditScopes(tenantId)),
    relay: new OutboxRelay(store, await eventPublisher(config)),
    approvals,
    models,
    policy: new PolicyPreviewService(projects, models, tenantSettings, config.keyVaultUri),
    settings: tenantSettings,
    secrets,
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
