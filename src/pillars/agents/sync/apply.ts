/**
 * How a source's agent meets the registry (docs/agents.md, "What a sync may change"):
 * - the source owns the fields it carries: provenance, the source's details (model, endpoint, aliases,
 *   actions, labels), the card it stores, and name and description — unless a person changed those here
 *   (a card a person supplied or had fetched is theirs too);
 * - a person owns everything else: lifecycle (a block or retirement is never undone), the enabled switch,
 *   guardrails, owner, environment, data classes and the agent's key. A sync never writes them, except
 *   the defaults of an agent it records for the first time;
 * - a field changed here and at the source since the last sync keeps the local value, and the source's is
 *   recorded with the conflict (on the agent and in the run's report).
 * An unchanged agent is not written at all (its source hash is equal), so a second run changes nothing.
 */
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import type { RequestContext } from "../../../domain/common.js";
import { AppError } from "../../../domain/errors.js";
import type { Collection } from "../../../domain/kernel/collection.js";
import { unversioned, type Partition, type Versioned } from "../../../ports/store.js";
import type { CardRecorder } from "../card-record.js";
import { searchTextOf } from "../catalog.js";
import { syncedAgentId, type AgentDoc, type ConnectionDoc } from "../documents.js";
import { ENVIRONMENTS, type Agent } from "../schema.js";
import type { Cloud, SourceAgent } from "../sources/source.js";

export type ApplyOutcome = "discovered" | "changed" | "returned" | "unchanged";

export interface ApplyResult {
  outcome: ApplyOutcome;
  agentId: string;
  conflicts: string[];
}

const MAX_ATTEMPTS = 8;
const LABEL_MAX = 256;

/** What the registry takes from a source agent, normalised so its hash only moves when the source does. */
function sourceFields(agent: SourceAgent) {
  const labels = agent.labels ? Object.fromEntries(Object.entries(agent.labels).sort(([a], [b]) => (a < b ? -1 : 1)).slice(0, 64).map(([k, v]) => [k.slice(0, LABEL_MAX), String(v).slice(0, LABEL_MAX)])) : undefined;
  return {
    name: agent.name.slice(0, 200),
    ...(agent.description ? { description: agent.description.slice(0, 4000) } : {}),
    ...(agent.sourceVersion ? { sourceVersion: agent.sourceVersion } : {}),
    ...(agent.sourceStatus ? { sourceStatus: agent.sourceStatus } : {}),
    ...(agent.updatedAt ? { sourceUpdatedAt: agent.updatedAt } : {}),
    details: {
      ...(agent.model ? { model: agent.model } : {}),
      ...(agent.endpoint ? { endpoint: agent.endpoint } : {}),
      ...(labels && Object.keys(labels).length ? { labels } : {}),
      ...(agent.aliases?.length ? { aliases: [...agent.aliases].sort((a, b) => (a.id < b.id ? -1 : 1)).slice(0, 100) } : {}),
      ...(agent.actions?.length ? { actions: [...agent.actions].sort((a, b) => (a.id < b.id ? -1 : 1)).slice(0, 200) } : {}),
    },
    ...(agent.card !== undefined ? { card: agent.card } : {}),
  };
}

const hashOf = (value: unknown) => createHash("sha256").update(canonicalize(value) ?? "").digest("hex");

/** What the source said of the fields a person may override here, as of this sync (conflicts compare against it). */
const sourceValuesOf = (fields: { name: string; description?: string | undefined; card?: unknown }): NonNullable<AgentDoc["sourceValues"]> => ({
  name: fields.name,
  ...(fields.description !== undefined ? { description: fields.description } : {}),
  ...(fields.card !== undefined ? { cardHash: hashOf(fields.card) } : {}),
});

/** An environment from the source's labels (`environment` or `env`), else prod: an agent a cloud runs is treated as production until someone says otherwise. */
function environmentOf(labels: Record<string, string> | undefined): Agent["environment"] {
  const value = (labels?.environment ?? labels?.env ?? "").toLowerCase();
  return (ENVIRONMENTS as readonly string[]).includes(value) ? (value as Agent["environment"]) : "prod";
}

export class SyncApplier {
  constructor(
    private readonly agents: Collection<AgentDoc, Agent>,
    private readonly cards: CardRecorder,
    private readonly now: () => string,
  ) {}

  async apply(ctx: RequestContext, connection: ConnectionDoc, account: string, region: string, source: SourceAgent): Promise<ApplyResult> {
    const partition: Partition = { tenantId: connection.tenantId, scopeId: connection.projectId };
    const id = syncedAgentId(connection.tenantId, connection.id, region, source.sourceId);
    const fields = sourceFields(source);
    const hash = hashOf({ sourceId: source.sourceId, ...fields });
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.agents.read(partition, id);
      try {
        if (!current) return await this.create(ctx, connection, account, region, source, id, fields, hash, partition);
        if (current.sourceHash === hash && current.sync?.state === "present") return { outcome: "unchanged", agentId: id, conflicts: [] };
        return await this.update(ctx, current, fields, hash);
      } catch (err) {
        // Another writer got there first (a person's edit, an overlapping page): read again and merge again.
        if (err instanceof AppError && (err.error.kind === "preconditionFailed" || err.error.kind === "conflict")) continue;
        throw err;
      }
    }
    throw new Error(`agent ${id}: still contended after ${MAX_ATTEMPTS} attempts`);
  }

  private async create(ctx: RequestContext, connection: ConnectionDoc, account: string, region: string, source: SourceAgent, id: string, fields: ReturnType<typeof sourceFields>, hash: string, partition: Partition): Promise<ApplyResult> {
    const now = this.now();
    const card = fields.card !== undefined ? await this.cards.assess(fields.card, "cloud") : undefined;
    const doc: AgentDoc = {
      id,
      ...partition,
      docType: "agent",
      projectId: connection.projectId,
      name: fields.name,
      ...(fields.description !== undefined ? { description: fields.description } : {}),
      owner: connection.owner,
      environment: environmentOf(fields.details.labels),
      dataClasses: ["public", "internal"],
      // Recorded, not trusted: a person activates it (and gives it guardrails) before the gateway serves it.
      lifecycle: { state: "draft" },
      enabled: true,
      ...(card ? { card } : {}),
      guardrails: { models: [], tools: [], limits: {}, contentSafety: "project", dataClasses: ["public", "internal"] },
      origin: "synced",
      provenance: {
        connectionId: connection.id,
        cloud: connection.cloud as Cloud,
        account,
        region,
        sourceId: source.sourceId,
        ...(fields.sourceVersion ? { sourceVersion: fields.sourceVersion } : {}),
        ...(fields.sourceStatus ? { sourceStatus: fields.sourceStatus } : {}),
        ...(fields.sourceUpdatedAt ? { sourceUpdatedAt: fields.sourceUpdatedAt } : {}),
        firstSeenAt: now,
        lastSyncedAt: now,
      },
      source: fields.details,
      sync: { state: "present", conflicts: [] },
      sourceValues: sourceValuesOf(fields),
      sourceHash: hash,
      createdAt: now,
      createdBy: ctx.principal.userId,
      updatedAt: now,
      updatedBy: ctx.principal.userId,
    };
    doc.searchText = searchTextOf(doc);
    await this.agents.create(ctx, doc, { action: "agent.discover", event: "aigov.agent.discovered.v1" });
    return { outcome: "discovered", agentId: id, conflicts: [] };
  }

  private async update(ctx: RequestContext, current: Versioned<AgentDoc>, fields: ReturnType<typeof sourceFields>, hash: string): Promise<ApplyResult> {
    const now = this.now();
    const next: AgentDoc = { ...unversioned(current) };
    const overrides = new Set(current.localOverrides ?? []);
    const conflicts: string[] = [];
    const recorded = [...(current.sync?.conflicts ?? [])];
    /** A field changed here and at the source: the newest conflict of each field is kept. */
    const conflict = (entry: (typeof recorded)[number]) => {
      conflicts.push(entry.field);
      const at = recorded.findIndex((c) => c.field === entry.field);
      if (at >= 0) recorded[at] = entry;
      else recorded.push(entry);
    };
    for (const field of ["name", "description"] as const) {
      const sourceValue = fields[field];
      const lastSynced = current.sourceValues?.[field];
      if (overrides.has(field)) {
        // Changed here; changed at the source too since the last sync → a conflict, the local value stays.
        if (sourceValue !== lastSynced) {
          conflict({ field, ...(current[field] !== undefined ? { localValue: current[field] } : {}), ...(sourceValue !== undefined ? { sourceValue } : {}), at: now });
        }
        continue;
      }
      if (sourceValue === undefined) delete next[field];
      else next[field] = sourceValue;
    }
    const cloudCardHash = fields.card !== undefined ? hashOf(fields.card) : undefined;
    if (current.card && current.card.origin !== "cloud") {
      // A card a person set here (supplied or fetched) is a local override, as a name is: it stays, and a
      // change of the source's card since the last sync is a conflict (the cards compared by their hashes).
      if (cloudCardHash !== current.sourceValues?.cardHash) {
        conflict({ field: "card", localValue: current.card.hash, ...(cloudCardHash !== undefined ? { sourceValue: cloudCardHash } : {}), at: now });
      }
    } else {
      const card = fields.card !== undefined ? (current.card?.origin === "cloud" && current.card.hash === cloudCardHash && (!current.card.valid || current.card.document) ? current.card : await this.cards.assess(fields.card, "cloud")) : undefined;
      if (card) next.card = card;
      else if (current.card?.origin === "cloud") delete next.card;
    }
    const returned = current.sync?.state === "removedAtSource";
    const { removedAtSourceAt: _r, ...provenance } = current.provenance!;
    next.provenance = {
      ...provenance,
      sourceVersion: fields.sourceVersion,
      sourceStatus: fields.sourceStatus,
      sourceUpdatedAt: fields.sourceUpdatedAt,
      lastSyncedAt: now,
    } as NonNullable<AgentDoc["provenance"]>;
    for (const k of ["sourceVersion", "sourceStatus", "sourceUpdatedAt"] as const) if (next.provenance[k] === undefined) delete next.provenance[k];
    next.source = fields.details;
    next.sync = { state: "present", conflicts: recorded };
    next.sourceValues = sourceValuesOf(fields);
    next.sourceHash = hash;
    next.updatedAt = now;
    next.updatedBy = ctx.principal.userId;
    next.searchText = searchTextOf(next);
    const changedFields = diffFields(current, next);
    await this.agents.replace(ctx, current, next, {
      action: "agent.sync.change",
      event: "aigov.agent.changed.v1",
      data: { agentId: current.id, projectId: current.projectId, fields: changedFields, ...(returned ? { returnedAtSource: true } : {}), ...(conflicts.length ? { conflicts } : {}) },
    });
    return { outcome: returned ? "returned" : "changed", agentId: current.id, conflicts };
  }
}

/** The top-level fields a sync changed (the event says which). */
function diffFields(before: AgentDoc, after: AgentDoc): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  const skip = new Set(["_etag", "updatedAt", "updatedBy", "sourceHash", "sourceValues", "searchText"]);
  return [...keys].filter((k) => !skip.has(k) && JSON.stringify((before as Record<string, unknown>)[k]) !== JSON.stringify((after as Record<string, unknown>)[k])).sort();
}
