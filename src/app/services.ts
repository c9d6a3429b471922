import { join } from "node:path";
import { connectCosmos } from "../adapters/cosmos/connect.js";
import { createTokenVerifier, type TokenVerifier } from "../auth/verifier.js";
import { getConfig, type Config } from "../config/index.js";
import { AuditService } from "../domain/audit/service.js";
import { ChangeWriter } from "../domain/changes.js";
import { OutboxRelay } from "../domain/outbox/relay.js";
import { ProjectService } from "../domain/projects/service.js";
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
  return {
    config,
    store,
    verifier: createTokenVerifier(config.auth),
    projects,
    audit: new AuditService(store, (tenantId) => projects.listIds(tenantId)),
    relay: new OutboxRelay(store, await eventPublisher(config)),
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
