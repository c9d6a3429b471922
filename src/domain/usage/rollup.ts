/**
 * From gateway requests to rollup rows: whose request it was (tenant, project, key, model / tool /
 * agent, backend — read from the artifact ids the compiler gave the API, subscription and backend,
 * policy/names.ts) and what it cost, summed per minute and per hour.
 */
import type { GatewayCall } from "../../ports/usage-logs.js";
import { addTo, emptyMetrics, errorClass, mergeInto, type UsageMetrics } from "./metrics.js";

export const USAGE_KINDS = ["model", "tool", "toolbox", "agent"] as const;
export type UsageKind = (typeof USAGE_KINDS)[number];

/** What a rollup row is about. "" where a request has no such thing (no key, refused before a model was chosen). */
export interface UsageDims {
  keyId: string;
  kind: UsageKind;
  /** A model's name, an MCP server's name, a toolbox's name or an agent's id. */
  resource: string;
  /** An MCP tool (tools/call) or a REST tool's operation. */
  tool: string;
  operation: string;
  backend: string;
  /** The currency of `cost` (the model's price's); "" when unpriced. */
  currency: string;
}

export interface UsageRow {
  d: UsageDims;
  m: UsageMetrics;
}

export interface Owner {
  tenantId: string;
  projectId: string;
}

export interface Price {
  from: string;
  currency: string;
  inputPer1kTokens: number;
  outputPer1kTokens: number;
}

/** A project's price lists per model name, oldest first; the one in force at a time is the last that began before it. */
export type PriceBook = Map<string, Price[]>;

export function priceAt(book: PriceBook | undefined, model: string, time: string): Price | undefined {
  const list = book?.get(model);
  if (!list?.length) return undefined;
  let found = list[0];
  for (const p of list) if (p.from <= time) found = p;
  return found;
}

const ID = /^[a-z]{3}_[0-9a-z]{20}$/;

/**
 * Reads artifact ids back: `aigov-<gatewayKey>-…` names a tenant through the key reserved for it on the
 * gateway instance (tenants never share a key there), then the project and what the API serves.
 */
export class Attribution {
  constructor(private readonly owners: ReadonlyMap<string, string>) {}

  /** The tenant and project a request was made to, or undefined (not an aigov API, an unknown tenant). */
  owner(call: GatewayCall): (Owner & { prefix: string; rest: string }) | undefined {
    const m = /^aigov-([a-z0-9]{1,10})-(prj_[0-9a-z]{20})(?:-(.*))?$/.exec(call.apiId);
    if (!m) return undefined;
    const tenantId = this.owners.get(m[1]!);
    if (!tenantId) return undefined;
    return { tenantId, projectId: m[2]!, prefix: `aigov-${m[1]}-`, rest: m[3] ?? "" };
  }

  dims(call: GatewayCall, prefix: string, rest: string): Omit<UsageDims, "currency"> {
    const strip = (id: string, marker = "") => (id.startsWith(prefix + marker) ? id.slice(prefix.length + marker.length) : "");
    const keyId = strip(call.subscriptionId);
    const base = { keyId: ID.test(keyId) ? keyId : "", operation: call.operationId, backend: strip(call.backendId, "be-") || strip(call.backendId) };
    let kind: UsageKind = "model";
    let resource = call.model ?? "";
    const tool = call.tool ?? "";
    if (rest.startsWith("mcp-") || rest.startsWith("rest-")) {
      kind = "tool";
      resource = rest.slice(rest.indexOf("-") + 1);
    } else if (rest.startsWith("tbx-")) {
      kind = "toolbox";
      resource = rest.slice(4);
    } else if (rest.startsWith("agt_")) {
      kind = "agent";
      resource = rest;
    }
    return { ...base, kind, resource, tool: kind === "tool" && rest.startsWith("rest-") && !tool ? call.operationId : tool };
  }
}

export const rowKey = (d: UsageDims) => `${d.keyId}|${d.kind}|${d.resource}|${d.tool}|${d.operation}|${d.backend}|${d.currency}`;

/** The metrics of one request. */
export function callMetrics(call: GatewayCall, price: Price | undefined): UsageMetrics {
  const m = emptyMetrics();
  m.requests = 1;
  if (call.responseCode >= 200 && call.responseCode < 400) m.succeeded = 1;
  const cls = errorClass(call.responseCode, call.lastErrorReason, call.backendResponseCode);
  if (cls) m.errors[cls] = 1;
  if (call.lastErrorReason === "BackendUnavailable") m.circuitOpen = 1;
  const prompt = call.promptTokens ?? 0;
  const completion = call.completionTokens ?? 0;
  m.promptTokens = prompt;
  m.completionTokens = completion;
  if (price) m.cost = (prompt * price.inputPer1kTokens + completion * price.outputPer1kTokens) / 1000;
  else m.unpricedTokens = prompt + completion;
  if (call.cache !== "none") m.cacheLookups = 1;
  if (call.cache === "hit") m.cacheHits = 1;
  addTo(m.gatewayMs, call.totalTime);
  if (call.backendTime > 0 || call.backendResponseCode > 0) addTo(m.backendMs, call.backendTime);
  m.lastAt = call.time;
  m.firstAt = call.time;
  return m;
}

/** Rows keyed by their dimensions. */
export class RowSet {
  readonly rows = new Map<string, UsageRow>();

  add(d: UsageDims, m: UsageMetrics): void {
    const k = rowKey(d);
    const row = this.rows.get(k);
    if (row) mergeInto(row.m, m);
    else this.rows.set(k, { d, m: mergeInto(emptyMetrics(), m) });
  }

  addRows(rows: Iterable<UsageRow>): void {
    for (const r of rows) this.add(r.d, r.m);
  }

  list(): UsageRow[] {
    return [...this.rows.values()].sort((a, b) => rowKey(a.d).localeCompare(rowKey(b.d)));
  }
}

/** One hour of one source, summed per project: its minutes and the hour itself. */
export class HourRollup {
  readonly projects = new Map<string, { owner: Owner; minutes: Map<string, RowSet>; hour: RowSet }>();
  /** Requests that named no aigov API of a known tenant (refused at the door, another product's API). */
  unattributed = 0;
  /** Requests seen (each once). */
  requests = 0;

  add(owner: Owner, dims: UsageDims, metrics: UsageMetrics, time: string): void {
    const k = `${owner.tenantId}|${owner.projectId}`;
    let p = this.projects.get(k);
    if (!p) {
      p = { owner, minutes: new Map(), hour: new RowSet() };
      this.projects.set(k, p);
    }
    const minute = time.slice(0, 16);
    let rows = p.minutes.get(minute);
    if (!rows) {
      rows = new RowSet();
      p.minutes.set(minute, rows);
    }
    rows.add(dims, metrics);
    p.hour.add(dims, metrics);
  }
}
