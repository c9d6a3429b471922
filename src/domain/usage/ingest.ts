/**
 * Usage ingestion (ADR 016): the gateway's logs → rollups, exactly once by construction. A run asks the
 * source which hours received records since its position, recomputes each such hour from all of the
 * hour's records (its minutes, the hour, then the day from its hours) and replaces those buckets whole;
 * only then does it move the position. Replaying, overlapping windows, late and out-of-order records,
 * a record read twice (one CorrelationId) and a crash between reading and committing all end in the same
 * rollups, because a bucket is a function of the records of its hour, never a sum of deliveries.
 */
import type { Clock } from "../../ports/clock.js";
import { TENANT_SCOPE, type Partition, type Store, type StoredDoc } from "../../ports/store.js";
import type { GatewayCall, UsageHour, UsageLogSource } from "../../ports/usage-logs.js";
import { backendId } from "../../pillars/models/compiler.js";
import type { RetiredPricesDoc } from "../../pillars/models/service.js";
import { everyDoc } from "../paging.js";
import { bucketStart, RollupDocuments, type Retention } from "./documents.js";
import { Attribution, callMetrics, HourRollup, priceAt, RowSet, type Owner, type PriceBook, type UsageRow } from "./rollup.js";

/** A project's models as ingestion needs them. */
interface ModelBook {
  prices: PriceBook;
  /** Gateway backend id → 'model/backend'. */
  backends: Map<string, string>;
}

export const USAGE_SYSTEM: Partition = { tenantId: "_system", scopeId: "usage" };
const GATEWAY_SYSTEM: Partition = { tenantId: "_system", scopeId: "gateway" };

interface StateDoc extends StoredDoc {
  docType: "usageIngestion";
  source: string;
  position?: string;
  lastRun?: IngestReport;
  /** Since when each activity field has been recorded from this source (the first run that kept it). */
  tracking?: Partial<Record<ActivityField, string>>;
  /**
   * What `afterRun` still owes (the projects and hours read), written with the position and cleared once
   * it has run: its hours are not read again, so a crash or a failing check in between would otherwise
   * leave a budget threshold unannounced until the project's next traffic — or for good once its period ended.
   */
  owed?: { tenantId: string; projectId: string; hours: UsageHour[] }[];
}

/** The per-project activity fields (ActivityMaps' maps). */
export const ACTIVITY_FIELDS = ["keys", "model", "tool", "toolbox", "agent", "toolCall", "toolboxCall"] as const;
export type ActivityField = (typeof ACTIVITY_FIELDS)[number];

/** Since when a source has recorded each activity field: before that, "never used" means "not known". */
export async function trackingOf(store: Store, source: string): Promise<Partial<Record<ActivityField, string>> | undefined> {
  return (await store.read<StateDoc>(USAGE_SYSTEM, stateId(source)))?.tracking;
}

/** The last run of a source, from its state document. */
export async function lastRunOf(store: Store, source: string): Promise<IngestReport | undefined> {
  return (await store.read<StateDoc>(USAGE_SYSTEM, stateId(source)))?.lastRun;
}
const stateId = (source: string) => `usage.state.${source}`;

export interface IngestReport {
  source: string;
  startedAt: string;
  durationMs: number;
  hours: UsageHour[];
  requests: number;
  unattributed: number;
  projects: number;
}

/** When a project was last used through the gateway, per key, model, tool server, toolbox and agent. */
export interface ActivityMaps {
  keys: Record<string, string>;
  model: Record<string, string>;
  tool: Record<string, string>;
  toolbox: Record<string, string>;
  agent: Record<string, string>;
  /** By `<server name>/<tool>`: an MCP tool (tools/call) or a REST tool's operation, that reached the tool (not refused at the gateway). */
  toolCall: Record<string, string>;
  /** By `<toolbox name>/<tool>`: a tools/call through a toolbox that reached the tool (the tools pillar maps it to its server's tool). */
  toolboxCall: Record<string, string>;
  /** The project's first request through the gateway (it only moves back). */
  firstRequestAt?: string;
}
export interface ActivityDoc extends StoredDoc, ActivityMaps {
  docType: "usageActivity";
}
export const ACTIVITY_ID = "usage.activity";

/**
 * A project that has rollups, in the tenant's partition: the tenant's report reads its projects from
 * here as well as from the live ones, so a deleted project's spend stays in the tenant's totals for as
 * long as its rollups are kept (the report may not query across partitions).
 */
export interface UsageProjectDoc extends StoredDoc {
  docType: "usageProject";
  projectId: string;
  /** The latest hour ingested for it: the index goes when the day rollups of that hour do. */
  lastHour: UsageHour;
  expiresAt: string;
  ttl: number;
}
const usageProjectId = (projectId: string) => `usage.project.${projectId}`;

interface ModelPriceDoc extends StoredDoc {
  name: string;
  backends?: { id: string }[];
  pricing?: { currency: string; inputPer1kTokens: number; outputPer1kTokens: number };
  pricingHistory?: { from: string; pricing: { currency: string; inputPer1kTokens: number; outputPer1kTokens: number } | null }[];
}

/** Where a run's rollups went: the projects (and days) it recomputed. */
export interface Touched {
  owner: Owner;
  days: Set<string>;
  hours: Set<UsageHour>;
}

export interface IngestOptions {
  retention: Retention;
  /**
   * After the rollups: what reacts to new usage (budget thresholds). Errors there do not undo the run. What
   * it answers is still owed (a project whose check failed): kept with the position for the next run.
   */
  afterRun?: (touched: Touched[]) => Promise<Touched[] | void>;
}

export class UsageIngestion {
  readonly rollups: RollupDocuments;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly opts: IngestOptions,
  ) {
    this.rollups = new RollupDocuments(store, opts.retention);
  }

  /** One run over one source. */
  async run(source: UsageLogSource): Promise<IngestReport> {
    const started = this.clock.now().getTime();
    const t0 = performance.now();
    const id = stateId(source.name);
    const state = await this.store.read<StateDoc>(USAGE_SYSTEM, id);
    const { hours, position } = await source.changes(state?.position);
    const owners = await this.owners(source.name);
    const attribution = new Attribution(owners);
    const books = new Map<string, Promise<ModelBook>>();
    const touched = new Map<string, Touched>();
    let requests = 0;
    let unattributed = 0;

    for (const hour of hours) {
      const rollup = new HourRollup();
      const pending: { call: GatewayCall; owner: Owner; prefix: string; rest: string }[] = [];
      for await (const page of source.readHour(hour)) {
        for (const call of page) {
          requests += 1;
          const o = attribution.owner(call);
          if (!o) {
            unattributed += 1;
            continue;
          }
          pending.push({ call, owner: { tenantId: o.tenantId, projectId: o.projectId }, prefix: o.prefix, rest: o.rest });
        }
        for (const p of pending) {
          const book = await this.book(books, p.owner);
          const dims = attribution.dims(p.call, p.prefix, p.rest);
          dims.backend = book.backends.get(dims.backend) ?? dims.backend;
          const price = dims.kind === "model" && dims.resource ? priceAt(book.prices, dims.resource, p.call.time) : undefined;
          const priced = price?.currency ? price : undefined;
          rollup.add(p.owner, { ...dims, currency: priced?.currency ?? "" }, callMetrics(p.call, priced), p.call.time);
        }
        pending.length = 0;
      }
      for (const p of rollup.projects.values()) {
        await this.writeHour(source.name, p.owner, hour, p.minutes, p.hour);
        const k = `${p.owner.tenantId}|${p.owner.projectId}`;
        const t = touched.get(k) ?? { owner: p.owner, days: new Set<string>(), hours: new Set<UsageHour>() };
        t.days.add(hour.slice(0, 10));
        t.hours.add(hour);
        touched.set(k, t);
        await this.recordActivity(p.owner, p.hour.list());
      }
    }
    for (const t of touched.values()) for (const day of t.days) await this.rollDay(source.name, t.owner, day);
    for (const t of touched.values()) await this.indexProject(t);

    const report: IngestReport = {
      source: source.name,
      startedAt: new Date(started).toISOString(),
      durationMs: Math.round(performance.now() - t0),
      hours,
      requests,
      unattributed,
      projects: touched.size,
    };
    // What the previous run read but did not get to react to, with what this one read.
    const owed = new Map(touched);
    for (const o of this.opts.afterRun && Array.isArray(state?.owed) ? state.owed : []) {
      const k = `${o.tenantId}|${o.projectId}`;
      const t = owed.get(k) ?? { owner: { tenantId: o.tenantId, projectId: o.projectId }, days: new Set<string>(), hours: new Set<UsageHour>() };
      // Hours whose rollups retention has removed are owed no more: a check that keeps failing owes a bounded list.
      const kept = o.hours.filter((h) => bucketStart(h.slice(0, 10)) + (this.opts.retention.day + 1) * 86_400_000 > started);
      if (!kept.length && !owed.has(k)) continue;
      owed.set(k, { ...t, hours: new Set([...t.hours, ...kept]) });
    }
    // The position moves last: a run that stops before this point is simply done again.
    const startedAt = report.startedAt;
    const tracking = Object.fromEntries(ACTIVITY_FIELDS.map((f) => [f, state?.tracking?.[f] ?? startedAt]));
    const next: StateDoc = { id, ...USAGE_SYSTEM, docType: "usageIngestion", source: source.name, position, lastRun: report, tracking };
    if (this.opts.afterRun && owed.size) next.owed = [...owed.values()].map((t) => ({ ...t.owner, hours: [...t.hours].sort() }));
    const r = await this.store.batch(USAGE_SYSTEM, [state ? { kind: "replace", doc: next, ifMatch: state._etag } : { kind: "create", doc: next }]);
    // Another run moved it meanwhile: its rollups are the same function of the logs; nothing to undo (it owes their check).
    if (!r.ok && r.status !== 412 && r.status !== 409) throw new Error(`usage ingestion state write failed with ${r.status}`);
    if (this.opts.afterRun && owed.size) {
      const still = (await this.opts.afterRun([...owed.values()])) ?? [];
      const etag = r.ok ? r.etags[0] : undefined;
      if (etag) {
        const { owed: _paid, ...rest } = next;
        // Paid, but for the checks that failed: those stay owed.
        const paid: StateDoc = still.length ? { ...rest, owed: still.map((t) => ({ ...t.owner, hours: [...t.hours].sort() })) } : rest;
        // Moved again meanwhile: that run took over what was owed and checks it again (announcing nothing twice).
        await this.store.batch(USAGE_SYSTEM, [{ kind: "replace", doc: paid, ifMatch: etag }]);
      }
    }
    return report;
  }

  /** Deletes rollups (and the index of projects that had them) past their retention (at most `max` per call). */
  async sweep(max = 2000): Promise<number> {
    const now = new Date(this.clock.now().getTime()).toISOString();
    let deleted = 0;
    for (const docType of ["usageRollup", "usageProject"]) {
      for await (const d of everyDoc<StoredDoc>(this.store, "all", { docType, filters: [{ field: "expiresAt", op: "<", value: now }] })) {
        await this.store.delete({ tenantId: d.tenantId, scopeId: d.scopeId }, d.id);
        if (++deleted >= max) return deleted;
      }
    }
    return deleted;
  }

  /** Keeps the project in its tenant's index of projects with usage, until its latest day rollup expires. */
  private async indexProject(t: Touched): Promise<void> {
    const partition = { tenantId: t.owner.tenantId, scopeId: TENANT_SCOPE };
    const lastHour = [...t.hours].sort().at(-1)!;
    const current = await this.store.read<UsageProjectDoc>(partition, usageProjectId(t.owner.projectId));
    if (current && current.lastHour >= lastHour) return;
    const expires = bucketStart(lastHour.slice(0, 10)) + 86_400_000 + this.opts.retention.day * 86_400_000;
    const doc: UsageProjectDoc = {
      id: usageProjectId(t.owner.projectId),
      ...partition,
      docType: "usageProject",
      projectId: t.owner.projectId,
      lastHour,
      expiresAt: new Date(expires).toISOString(),
      // Cosmos counts ttl from the write's _ts, the store's real time: so the real clock, not the app's.
      ttl: Math.max(60, Math.ceil((expires - Date.now()) / 1000)),
    };
    const r = await this.store.batch(partition, [{ kind: "upsert", doc }]);
    // Before the position moves: a run that could not index is done again, or the project could drop out of its tenant's report once deleted.
    if (!r.ok) throw new Error(`usage project index write failed with ${r.status}`);
  }

  /** Gateway keys reserved on this instance → their tenants (tenants-never-share-a-key is enforced there). */
  private async owners(instance: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for await (const d of everyDoc<StoredDoc & { owner: string; instance: string; key: string }>(this.store, GATEWAY_SYSTEM, { docType: "gatewayKeyReservation", filters: [{ field: "instance", op: "=", value: instance }] })) {
      out.set(d.key, d.owner);
    }
    return out;
  }

  /** A project's prices per model name, as they were over time (the registry keeps each change), and its backends' names. */
  private book(books: Map<string, Promise<ModelBook>>, owner: Owner): Promise<ModelBook> {
    const k = `${owner.tenantId}|${owner.projectId}`;
    let b = books.get(k);
    if (!b) {
      b = (async () => {
        const book: PriceBook = new Map();
        const backends = new Map<string, string>();
        const partition = { tenantId: owner.tenantId, scopeId: owner.projectId };
        const prices = (history: { from: string; pricing?: { currency: string; inputPer1kTokens: number; outputPer1kTokens: number } | null }[]) =>
          history.map((h) => ({ from: h.from, currency: h.pricing?.currency ?? "", inputPer1kTokens: h.pricing?.inputPer1kTokens ?? 0, outputPer1kTokens: h.pricing?.outputPer1kTokens ?? 0 }));
        // Deleted models' prices first (they all precede the live model of the same name): their requests keep their cost.
        for await (const r of everyDoc<RetiredPricesDoc>(this.store, partition, { docType: "retiredModelPrices" })) {
          try {
            if (Array.isArray(r.pricingHistory)) book.set(r.name, prices(r.pricingHistory));
          } catch (err) {
            console.error(`usage ingestion: retired prices ${r.id} of tenant ${owner.tenantId} (project ${owner.projectId}): ${err instanceof Error ? err.message : String(err)}`);
          }
        }
        for await (const m of everyDoc<ModelPriceDoc>(this.store, partition, { docType: "model" })) {
          // A damaged model (written around the API) fails no run: the run is every tenant's on this gateway.
          try {
            const history = Array.isArray(m.pricingHistory) ? m.pricingHistory : m.pricing ? [{ from: "", pricing: m.pricing }] : [];
            book.set(m.name, [...(book.get(m.name) ?? []), ...prices(history)]);
            // Backends are reported by the registry's names (model/backend), not the gateway's hashed ids.
            for (const be of Array.isArray(m.backends) ? m.backends : []) backends.set(backendId(m, be.id), `${m.name}/${be.id}`);
          } catch (err) {
            console.error(`usage ingestion: model ${m.id} of tenant ${owner.tenantId} (project ${owner.projectId}): ${err instanceof Error ? err.message : String(err)}`);
          }
        }
        return { prices: book, backends };
      })();
      books.set(k, b);
    }
    return b;
  }

  private async writeHour(source: string, owner: Owner, hour: UsageHour, minutes: Map<string, RowSet>, rows: RowSet): Promise<void> {
    const partition = { tenantId: owner.tenantId, scopeId: owner.projectId };
    const next = `${hour.slice(0, 11)}${String(Number(hour.slice(11, 13)) + 1).padStart(2, "0")}`;
    const minuteParts = await this.rollups.partCounts(partition, source, "minute", `${hour}:00`, `${next}:00`);
    const hourParts = await this.rollups.partCounts(partition, source, "hour", hour, `${hour}~`);
    const ops = [...minutes].flatMap(([minute, set]) => this.rollups.bucketOps(partition, source, "minute", minute, set.list(), minuteParts.get(minute) ?? 0));
    ops.push(...this.rollups.bucketOps(partition, source, "hour", hour, rows.list(), hourParts.get(hour) ?? 0));
    await this.rollups.write(partition, ops);
  }

  /** A day is the sum of its hours (of this source). */
  private async rollDay(source: string, owner: Owner, day: string): Promise<void> {
    const partition = { tenantId: owner.tenantId, scopeId: owner.projectId };
    const set = new RowSet();
    for (const rows of (await this.rollups.rowsByBucket(partition, "hour", day, `${day}~`, source)).values()) set.addRows(rows.list());
    const dayParts = await this.rollups.partCounts(partition, source, "day", day, `${day}~`);
    await this.rollups.write(partition, this.rollups.bucketOps(partition, source, "day", day, set.list(), dayParts.get(day) ?? 0));
  }

  /** Latest request per key, model, tool, toolbox and agent (refused ones too: someone holds the key): only ever moves forward. */
  private async recordActivity(owner: Owner, rows: UsageRow[]): Promise<void> {
    const partition = { tenantId: owner.tenantId, scopeId: owner.projectId };
    const latest: ActivityMaps = { keys: {}, model: {}, tool: {}, toolbox: {}, agent: {}, toolCall: {}, toolboxCall: {} };
    const bump = (map: Record<string, string>, id: string, at: string) => {
      if (id && at && (!map[id] || map[id] < at)) map[id] = at;
    };
    let first: string | undefined;
    for (const r of rows) {
      // Only calls with one of the tenant's own keys say anything about its use: a call without a key, or
      // with another tenant's, is counted in the usage (the API answered it) but moves no activity and no
      // adoption milestone — anyone on the internet could otherwise make a resource look used.
      if (!r.d.keyId) continue;
      if (r.m.firstAt && (!first || r.m.firstAt < first)) first = r.m.firstAt;
      bump(latest.keys, r.d.keyId, r.m.lastAt);
      bump(latest[r.d.kind], r.d.resource, r.m.lastAt);
      // A tool is used when a call reached it: a call the gateway refused (no key, not in scope, not approved, limited) is not a use.
      const reached = r.m.succeeded + (r.m.errors.backend ?? 0) > 0;
      if (reached && r.d.kind === "tool" && r.d.resource && r.d.tool) bump(latest.toolCall, `${r.d.resource}/${r.d.tool}`, r.m.lastAt);
      if (reached && r.d.kind === "toolbox" && r.d.resource && r.d.tool) bump(latest.toolboxCall, `${r.d.resource}/${r.d.tool}`, r.m.lastAt);
    }
    for (let attempt = 0; attempt < 5; attempt++) {
      const doc = await this.store.read<ActivityDoc>(partition, ACTIVITY_ID);
      const next: ActivityDoc = { id: ACTIVITY_ID, ...partition, docType: "usageActivity", keys: {}, model: {}, tool: {}, toolbox: {}, agent: {}, toolCall: {}, toolboxCall: {}, ...(doc ? activityMaps(doc) : {}) };
      let changed = !doc;
      if (first && (!next.firstRequestAt || first < next.firstRequestAt)) {
        next.firstRequestAt = first;
        changed = true;
      }
      for (const field of ACTIVITY_FIELDS) {
        for (const [id, at] of Object.entries(latest[field])) {
          if (!next[field][id] || next[field][id] < at) {
            next[field] = { ...next[field], [id]: at };
            changed = true;
          }
        }
      }
      if (!changed) return;
      const r = await this.store.batch(partition, [doc ? { kind: "replace", doc: next, ifMatch: doc._etag } : { kind: "create", doc: next }]);
      if (r.ok) return;
    }
    throw new Error("usage activity: too many concurrent updates");
  }
}

export const activityMaps = (d: ActivityDoc): ActivityMaps => ({
  keys: d.keys ?? {},
  model: d.model ?? {},
  tool: d.tool ?? {},
  toolbox: d.toolbox ?? {},
  agent: d.agent ?? {},
  toolCall: d.toolCall ?? {},
  toolboxCall: d.toolboxCall ?? {},
  ...(d.firstRequestAt ? { firstRequestAt: d.firstRequestAt } : {}),
});

/** Buckets a time falls in. */
