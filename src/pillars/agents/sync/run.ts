/**
 * The steps of one sync of a connection (the activities of functions/workflows/agent-sync.ts):
 * - begin: the run starts, or is skipped when a switch is off (nothing else is touched);
 * - page: one page of one region listed from the cloud and applied to the registry, and the source ids it
 *   held recorded for the run (a replayed page writes the same records: agents have ids derived from
 *   their source, and unchanged agents are not written);
 * - sweep: once a region's listing is complete, its agents the run did not see become `removedAtSource`
 *   (never deleted; only after a complete listing, never after a failed or switched-off one);
 * - finish: the run's report (counts, errors, duration) on the run and the connection, one event.
 */
import { newId, type RequestContext } from "../../../domain/common.js";
import { AppError } from "../../../domain/errors.js";
import { systemContext } from "../../../domain/kernel/system.js";
import { everyDoc, toArray } from "../../../domain/paging.js";
import type { ChangeWriter } from "../../../domain/changes.js";
import type { Clock } from "../../../ports/clock.js";
import { TENANT_SCOPE, unversioned, type Store } from "../../../ports/store.js";
import type { AgentRegistry } from "../agents.js";
import type { CardRecorder } from "../card-record.js";
import { ConnectionService } from "../connections.js";
import { runPath, seenId, type AgentDoc, type ConnectionDoc, type SeenDoc, type SyncRunDoc } from "../documents.js";
import type { SyncCounts, SyncRun } from "../schema.js";
import { reportableMessage, secretsOf, type AgentSource, type AgentSourceFactory, type SourceError } from "../sources/source.js";
import { SyncApplier } from "./apply.js";
import { syncDrive, type AgentSyncInput, type AgentSyncRegionInput, type RegionOutcome } from "./drive.js";
import type { DriveRequest } from "../../../domain/kernel/drive.js";
import { Collection } from "../../../domain/kernel/collection.js";

export const ZERO_COUNTS: SyncCounts = { listed: 0, discovered: 0, changed: 0, unchanged: 0, removedAtSource: 0, returned: 0, malformed: 0, conflicts: 0 };
const PAGE_SIZE = 50;
const SOURCE_IDLE_MS = 10 * 60_000;
const SOURCE_CACHE_MAX = 100;
const REPORT_LIST_MAX = 100;
/** Seen records outlive a run that never finished by this much, then any later run's finish removes them. */
const SEEN_TTL_MS = 7 * 86_400_000;

export type PageResult = { next?: string; listed: number; stopped?: string } | { failed: { kind: string; code?: string; message: string } };

const add = (a: SyncCounts, b: Partial<SyncCounts>): SyncCounts => Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v + (b[k as keyof SyncCounts] ?? 0)])) as SyncCounts;

export class SyncRunner {
  readonly runs: Collection<SyncRunDoc, SyncRun>;
  private readonly sourceCache = new Map<string, { source: Promise<AgentSource>; usedAt: number }>();
  /** Each source's credential values (sources.secretsOf), its failures' messages are cleaned of. */
  private readonly sourceSecrets = new WeakMap<AgentSource, string[]>();
  private readonly applier: SyncApplier;
  /** Tests and local fakes swap the factory (a Foundry fake is an in-process HTTP client). */
  sources: AgentSourceFactory;

  constructor(
    private readonly store: Store,
    changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly registry: AgentRegistry,
    private readonly connections: ConnectionService,
    cards: CardRecorder,
    sources: AgentSourceFactory,
  ) {
    this.runs = new Collection<SyncRunDoc, SyncRun>(store, changes, { docType: "agentSyncRun", path: (d) => runPath((d as SyncRunDoc).connectionId, d.id), internal: ["pages"] });
    this.applier = new SyncApplier(registry.agents, cards, () => this.clock.now().toISOString());
    this.sources = sources;
  }

  /**
   * Asks for a sync of a connection: a running one is joined (its run and driver), otherwise a new run is
   * recorded and its driver returned for the edge (or the schedule) to start.
   */
  async request(ctx: RequestContext, connection: ConnectionDoc, trigger: "manual" | "schedule"): Promise<{ run: SyncRun; drive: DriveRequest }> {
    if (connection.lastSync?.status === "running") {
      const running = await this.runs.read({ tenantId: connection.tenantId, scopeId: TENANT_SCOPE }, connection.lastSync.runId);
      if (running && running.status === "running") return { run: this.runs.view(running), drive: syncDrive(connection.tenantId, connection.id, running.id) };
    }
    const now = this.clock.now().toISOString();
    const id = newId("syn");
    const doc: SyncRunDoc = {
      id,
      tenantId: connection.tenantId,
      scopeId: TENANT_SCOPE,
      docType: "agentSyncRun",
      connectionId: connection.id,
      trigger,
      status: "running",
      startedAt: now,
      counts: ZERO_COUNTS,
      regions: [],
      malformed: [],
      conflicts: [],
      by: ctx.principal.userId,
    };
    const run = await this.runs.create(ctx, doc, { action: "agentSync.start", event: "aigov.agent.sync.started.v1", data: { runId: id, connectionId: connection.id, trigger } });
    // The connection names its running run (a second request joins it); a lost race only means two runs recorded, one driver.
    for (;;) {
      const cur = await this.connections.read(connection.tenantId, connection.id);
      if (!cur) break;
      if (await this.store.batch({ tenantId: cur.tenantId, scopeId: TENANT_SCOPE }, [{ kind: "replace", doc: { ...unversioned(cur), lastSync: { runId: id, status: "running", startedAt: now } }, ifMatch: cur._etag }]).then((r) => r.ok)) break;
    }
    return { run, drive: syncDrive(connection.tenantId, connection.id, id) };
  }

  /** Connections whose interval has passed since their last run started (jobs only). */
  async *due(): AsyncGenerator<ConnectionDoc> {
    const now = this.clock.now().getTime();
    for await (const c of this.connections.connections.every("all")) {
      // A damaged connection (written around the API) holds up no other connection's run, nor the driver sweep after this.
      let due = false;
      try {
        if (!c.enabled) continue;
        const last = c.lastSync ? Date.parse(c.lastSync.startedAt) : 0;
        if (c.lastSync?.status === "running" && now - last < 6 * 3_600_000) continue;
        due = now - last >= c.schedule?.intervalMinutes * 60_000;
      } catch (err) {
        console.error(`agent sync: connection ${c.id} of tenant ${c.tenantId}: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (due) yield c;
    }
  }

  /** Runs still running, with their driver and whether they still need it (jobs only: the sweep restarts lost drivers). */
  async *running(): AsyncGenerator<{ drive: DriveRequest; stillRunning: () => Promise<boolean> }> {
    for await (const run of this.runs.every("all", { filters: [{ field: "status", op: "=", value: "running" }] })) {
      const partition = { tenantId: run.tenantId, scopeId: TENANT_SCOPE };
      yield { drive: syncDrive(run.tenantId, run.connectionId, run.id), stillRunning: async () => (await this.runs.read(partition, run.id))?.status === "running" };
    }
  }

  /** The run starts, or is skipped (a switch is off; the connection is gone): the regions to list. */
  async begin(input: AgentSyncInput): Promise<{ regions: string[]; skip?: string }> {
    const connection = await this.connections.read(input.tenantId, input.connectionId);
    if (!connection) return { regions: [], skip: "connection_deleted" };
    const off = await this.connections.switchedOff(connection);
    return off ? { regions: [], skip: off } : { regions: connection.regions };
  }

  /** One page of a region: listed, applied, recorded for the run. Throws a retryable source failure (the orchestration retries). */
  async page(input: AgentSyncRegionInput & { cursor?: string | undefined; page: number }, correlationId: string): Promise<PageResult> {
    const connection = await this.connections.read(input.tenantId, input.connectionId);
    if (!connection) return { listed: 0, stopped: "connection_deleted" };
    // A switch turned off mid-run stops the listing; the region then ends without a sweep (nothing is marked removed).
    const off = await this.connections.switchedOff(connection);
    if (off) return { listed: 0, stopped: off };
    const source = await this.sourceFor(connection);
    let listed;
    try {
      listed = await source.listPage(input.region, input.cursor, { pageSize: PAGE_SIZE });
    } catch (err) {
      // By name, not instanceof: a source from another copy of this module (a test's) throws its own class.
      const e = err as Partial<SourceError> & Error;
      // Cleaned again with the connection's own secret values: a cloud may quote them in forms no pattern knows.
      const secrets = this.sourceSecrets.get(source) ?? [];
      const message = reportableMessage(e instanceof Error ? e.message : String(err), secrets);
      if (e?.name === "SourceError" && e.retryable === false) return { failed: { kind: e.kind!, ...(e.code ? { code: e.code } : {}), message } };
      // Retried, and at last reported from its message: one that quoted a secret is not thrown on.
      if (e instanceof Error && message !== reportableMessage(e.message)) throw new Error(message);
      throw err;
    }
    const ctx = systemContext(input.tenantId, "system:agent-sync", correlationId);
    const account = ConnectionService.account(connection);
    const counts: Partial<SyncCounts> = { listed: listed.agents.length, malformed: listed.malformed.length };
    const conflicts: SeenDoc["conflicts"] = [];
    const seen = new Set<string>();
    const discovered: string[] = [];
    // Applied a few at a time: each agent is its own change (state, audit, event), batched by the change writer.
    const queue = listed.agents.filter((a) => !seen.has(a.sourceId) && seen.add(a.sourceId));
    const workers = Array.from({ length: 8 }, async () => {
      for (let a = queue.shift(); a; a = queue.shift()) {
        const r = await this.applier.apply(ctx, connection, account, input.region, a);
        counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
        // Back at its source: the key its removal held comes back (unless a block, a switch-off or a person holds it).
        if (r.outcome === "returned") {
          const back = await this.registry.agents.read({ tenantId: connection.tenantId, scopeId: connection.projectId }, r.agentId);
          if (back) await this.keyInStep(ctx, back);
        }
        if (r.outcome === "discovered") discovered.push(r.agentId);
        for (const field of r.conflicts) conflicts.push({ agentId: r.agentId, field });
      }
    });
    await Promise.all(workers);
    // Nothing outlives its project: agents discovered after its delete began are withdrawn, and the run stops.
    if (!(await this.registry.keepDiscovered(ctx, connection.projectId, discovered))) return { listed: 0, stopped: "project_deleted" };
    // A record the cloud still lists, however broken, is not gone: the sweep must not mark its agent removed.
    for (const m of listed.malformed) if (m.sourceId) seen.add(m.sourceId);
    counts.conflicts = conflicts.length;
    const doc: SeenDoc = {
      id: seenId(input.runId, input.region, input.page),
      tenantId: input.tenantId,
      scopeId: TENANT_SCOPE,
      docType: "agentSyncSeen",
      runId: input.runId,
      connectionId: input.connectionId,
      region: input.region,
      page: input.page,
      sourceIds: [...seen],
      counts: counts as Record<string, number>,
      malformed: listed.malformed.slice(0, REPORT_LIST_MAX),
      conflicts: conflicts.slice(0, REPORT_LIST_MAX),
      expiresAt: new Date(this.clock.now().getTime() + SEEN_TTL_MS).toISOString(),
    };
    await this.store.batch({ tenantId: input.tenantId, scopeId: TENANT_SCOPE }, [{ kind: "upsert", doc }]);
    return { ...(listed.next ? { next: listed.next } : {}), listed: listed.agents.length };
  }

  /**
   * The connection's source, kept between pages (its SDK clients, their connections and the pacing of
   * their requests live in it; a Vertex client costs a few hundred ms to build). A change of the
   * connection or its credential makes a new one; sources unused for 10 minutes are closed.
   */
  private async sourceFor(connection: ConnectionDoc): Promise<AgentSource> {
    const now = this.clock.now().getTime();
    for (const [k, v] of this.sourceCache) {
      if (now - v.usedAt > SOURCE_IDLE_MS || this.sourceCache.size > SOURCE_CACHE_MAX) {
        this.sourceCache.delete(k);
        void v.source.then((x) => x.close?.()).catch(() => undefined);
      }
    }
    const key = `${connection.tenantId}|${connection.id}|${connection.updatedAt}|${JSON.stringify(connection.credentials)}`;
    let entry = this.sourceCache.get(key);
    if (!entry) {
      entry = { source: this.connections.target(connection).then(async (t) => { const source = await this.sources(t); this.sourceSecrets.set(source, secretsOf(t)); return source; }), usedAt: now };
      this.sourceCache.set(key, entry);
      entry.source.catch(() => this.sourceCache.delete(key));
    }
    entry.usedAt = now;
    return entry.source;
  }

  /** After a complete listing of a region: its present agents the run did not see are removed at the source. */
  async sweep(input: AgentSyncRegionInput, correlationId: string): Promise<{ removed: number; completedAt: string }> {
    const completedAt = this.clock.now().toISOString();
    const connection = await this.connections.read(input.tenantId, input.connectionId);
    if (!connection) return { removed: 0, completedAt };
    const seen = new Set<string>();
    for (const d of await this.seenOf(input.tenantId, input.runId, input.region)) for (const id of d.sourceIds) seen.add(id);
    const ctx = systemContext(input.tenantId, "system:agent-sync", correlationId);
    const partition = { tenantId: input.tenantId, scopeId: connection.projectId };
    let removed = 0;
    const stale = await toArray(
      this.registry.agents.every(partition, {
        filters: [
          { field: "provenance.connectionId", op: "=", value: connection.id },
          { field: "provenance.region", op: "=", value: input.region },
          { field: "sync.state", op: "=", value: "present" },
        ],
      }),
    );
    for (const agent of stale) {
      if (seen.has(agent.provenance!.sourceId)) continue;
      if (await this.markRemoved(ctx, agent, completedAt)) removed += 1;
    }
    await this.store.batch({ tenantId: input.tenantId, scopeId: TENANT_SCOPE }, [{ kind: "upsert", doc: { id: seenId(input.runId, input.region, -1), tenantId: input.tenantId, scopeId: TENANT_SCOPE, docType: "agentSyncSeen", runId: input.runId, connectionId: input.connectionId, region: input.region, page: -1, sourceIds: [], counts: { removedAtSource: removed }, malformed: [], conflicts: [], expiresAt: new Date(Date.parse(completedAt) + SEEN_TTL_MS).toISOString() } satisfies SeenDoc }]);
    return { removed, completedAt };
  }

  private async markRemoved(ctx: RequestContext, agent: AgentDoc & { _etag: string }, at: string): Promise<boolean> {
    let current: (AgentDoc & { _etag: string }) | undefined = agent;
    for (let attempt = 0; attempt < 8 && current; attempt++) {
      if (current.sync?.state !== "present") return false;
      const next: AgentDoc = { ...unversioned(current), sync: { ...current.sync, state: "removedAtSource" }, provenance: { ...current.provenance!, removedAtSourceAt: at }, updatedAt: at, updatedBy: ctx.principal.userId };
      try {
        await this.registry.agents.replace(ctx, current, next, { action: "agent.sync.removedAtSource", event: "aigov.agent.removedAtSource.v1", data: { agentId: current.id, projectId: current.projectId, connectionId: current.provenance!.connectionId, sourceId: current.provenance!.sourceId } });
      } catch {
        current = await this.registry.agents.read({ tenantId: agent.tenantId, scopeId: agent.scopeId }, agent.id);
        continue;
      }
      // Gone at its source, the agent stops acting too: its own key is held (docs/agents.md, "Blocked, disabled or removed at its source").
      await this.keyInStep(ctx, next);
      return true;
    }
    return false;
  }

  /**
   * The agent's own key in step with what the sync wrote (held once it is removed at its source, released
   * when it returns). A failure is left to the hold's sweep on the schedule, which converges every key to
   * its agent's stored state: the agent's write is the record.
   */
  private async keyInStep(ctx: RequestContext, doc: AgentDoc): Promise<void> {
    if (!doc.key) return;
    try {
      await this.registry.keyInStep(ctx, doc);
    } catch (err) {
      console.warn(`agent sync: the key of agent ${doc.id}: ${err instanceof Error ? err.message : String(err)} (the hold's sweep finishes it)`);
    }
  }

  /** The run's report: counts and lists from its pages, regions from the orchestration; the connection records it. */
  async finish(input: AgentSyncInput & { regions: RegionOutcome[]; skipped?: string }, correlationId: string): Promise<SyncRun["status"]> {
    const ctx = systemContext(input.tenantId, "system:agent-sync", correlationId);
    const partition = { tenantId: input.tenantId, scopeId: TENANT_SCOPE };
    const run = await this.runs.read(partition, input.runId);
    if (!run) return "failed";
    // Finished by an earlier attempt that stopped before the connection recorded it: record it now (a
    // connection left saying `running` would skip its scheduled syncs).
    if (run.status !== "running") {
      await this.recordOnConnection(input, run, run.status, run.finishedAt ?? this.clock.now().toISOString());
      await this.forget(input.tenantId, input.runId, this.clock.now());
      return run.status;
    }
    const pages = await this.seenOf(input.tenantId, input.runId);
    const byRegion = new Map<string, SyncCounts>();
    for (const p of pages) byRegion.set(p.region, add(byRegion.get(p.region) ?? ZERO_COUNTS, p.counts));
    const counts = [...byRegion.values()].reduce(add, ZERO_COUNTS);
    const now = this.clock.now();
    const failed = input.regions.filter((r) => r.status === "failed").length;
    const status: SyncRun["status"] = input.skipped ? "skipped" : failed === 0 ? "completed" : failed === input.regions.length ? "failed" : "partial";
    const next: SyncRunDoc = {
      ...unversioned(run),
      status,
      ...(input.skipped ? { skippedBecause: input.skipped } : {}),
      finishedAt: now.toISOString(),
      durationMs: Math.max(0, now.getTime() - Date.parse(run.startedAt)),
      counts,
      regions: input.regions.map((r) => ({ region: r.region, status: r.status, pages: r.pages, counts: byRegion.get(r.region) ?? ZERO_COUNTS, ...(r.error ? { error: r.error } : {}) })),
      malformed: pages.flatMap((p) => p.malformed.map((m) => ({ region: p.region, ...m }))).slice(0, REPORT_LIST_MAX),
      conflicts: pages.flatMap((p) => p.conflicts).slice(0, REPORT_LIST_MAX),
    };
    // The run's report and the connection's last sync in one batch: no crash can leave a finished run
    // whose connection still says `running` (it would skip its scheduled syncs).
    for (let attempt = 0; ; attempt++) {
      const cur = await this.connections.read(input.tenantId, input.connectionId);
      const connectionOps = cur ? [{ kind: "replace" as const, doc: withLastSync(cur, input.regions, run, status, next.finishedAt!), ifMatch: cur._etag }] : [];
      try {
        await this.runs.replace(ctx, run, next, {
          action: "agentSync.finish",
          event: "aigov.agent.sync.completed.v1",
          data: { runId: run.id, connectionId: run.connectionId, status, counts, durationMs: next.durationMs, errors: next.regions.filter((r) => r.error).map((r) => ({ region: r.region, ...r.error })) },
          extraOps: connectionOps,
          onFailure: (index) => ({ kind: "conflict", detail: index === 1 ? "the connection changed meanwhile" : "the run changed meanwhile", reason: "changed_meanwhile" }),
        });
        break;
      } catch (err) {
        // The connection was edited meanwhile (its schedule, say): read it again; anything else is the retry's.
        if (!(err instanceof AppError && err.error.kind === "conflict" && err.error.detail === "the connection changed meanwhile") || attempt >= 8) throw err;
      }
    }
    await this.forget(input.tenantId, input.runId, now);
    // No system publish: agents are registry input, which a system publish never takes (it ships keys and
    // exemptions on the registry people published). What a sync changed waits for a person's publish.
    return status;
  }

  /** A run finished before its connection recorded it (by a version that wrote them apart): record it now, never over a newer run. */
  private async recordOnConnection(input: AgentSyncInput & { regions: RegionOutcome[] }, run: SyncRunDoc, status: SyncRun["status"], finishedAt: string): Promise<void> {
    const partition = { tenantId: input.tenantId, scopeId: TENANT_SCOPE };
    for (;;) {
      const cur = await this.connections.read(input.tenantId, input.connectionId);
      if (!cur || (cur.lastSync?.runId === run.id && cur.lastSync.status === status) || (cur.lastSync && cur.lastSync.runId !== run.id && cur.lastSync.startedAt > run.startedAt)) return;
      if ((await this.store.batch(partition, [{ kind: "replace", doc: withLastSync(cur, input.regions, run, status, finishedAt), ifMatch: cur._etag }])).ok) return;
    }
  }

  private async seenOf(tenantId: string, runId: string, region?: string): Promise<SeenDoc[]> {
    const filters = [{ field: "runId", op: "=" as const, value: runId }, ...(region ? [{ field: "region", op: "=" as const, value: region }] : [])];
    return toArray(everyDoc<SeenDoc>(this.store, { tenantId, scopeId: TENANT_SCOPE }, { docType: "agentSyncSeen", filters }));
  }

  /** The run's seen records go (and any run's left past their time). */
  private async forget(tenantId: string, runId: string, now: Date): Promise<void> {
    const partition = { tenantId, scopeId: TENANT_SCOPE };
    for (const d of await this.seenOf(tenantId, runId)) await this.store.delete(partition, d.id).catch(() => false);
    const old = await this.store.queryPage<SeenDoc>(partition, { docType: "agentSyncSeen", filters: [{ field: "expiresAt", op: "<", value: now.toISOString() }], maxPageSize: 100 });
    for (const d of old.items) await this.store.delete(partition, d.id).catch(() => false);
  }
}

export type { RegionOutcome };

/** The connection with a run as its last sync, and the regions that run listed completely. */
function withLastSync(cur: ConnectionDoc, regions: RegionOutcome[], run: SyncRunDoc, status: SyncRun["status"], finishedAt: string): ConnectionDoc {
  const seenAt = { ...(cur.regionsSeenAt ?? {}) };
  for (const r of regions) if (r.status === "completed" && r.completedAt) seenAt[r.region] = r.completedAt;
  return { ...unversioned(cur), lastSync: { runId: run.id, status, startedAt: run.startedAt, finishedAt }, regionsSeenAt: seenAt };
}
