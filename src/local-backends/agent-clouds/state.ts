/**
 * What the three agent-cloud fakes share: one cloud's agents by region (seeded deterministically, changed by
 * tests between syncs), faults to inject into the next requests (or at random, for the benchmark), hooks that
 * run just before a request is served (to race a deletion against the adapter), and request counters.
 *
 * An agent is kept in a cloud-neutral shape; each fake renders it in its cloud's wire format. A malformed
 * record is an ordinary agent with a `wire` patch that the fake applies to what it sends (a key set to
 * undefined is left out), so a test breaks exactly the field it means to.
 */
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import { type AddressInfo } from "node:net";

export type FakeCloud = "bedrock" | "vertex" | "foundry";

export interface FakeAgent {
  /** Bedrock agentId / AgentCore runtime id, the last segment of a Vertex resource name, Foundry's id (its name). */
  id: string;
  name: string;
  description?: string;
  /** Bedrock latestAgentVersion, Foundry latest version; Vertex renders it into the etag. */
  version: string;
  /** Bedrock agentStatus / runtime status; Foundry version status. */
  status: string;
  /** ISO 8601. */
  createdAt: string;
  /** ISO 8601. */
  updatedAt: string;
  model?: string;
  labels: Record<string, string>;
  aliases: FakeAlias[];
  actions: FakeAction[];
  card?: unknown;
  /** "runtime": an AgentCore runtime, listed by the Bedrock fake's ListAgentRuntimes only. */
  kind: "agent" | "runtime";
  /** Applied to the record a list returns (Bedrock: the summary). Keys set to undefined are removed. */
  wire?: Record<string, unknown>;
  /** Bedrock: applied to GetAgent's `agent`. */
  wireDetail?: Record<string, unknown>;
}

export interface FakeAlias {
  id: string;
  name: string;
  status: string;
  agentVersion?: string;
}

export interface FakeAction {
  id: string;
  name: string;
  state?: string;
}

export type Fault =
  /** Bedrock ThrottlingException, Vertex RESOURCE_EXHAUSTED, Foundry 429 with Retry-After (default 0). */
  | { type: "throttle"; retryAfterSeconds?: number }
  /** A server error with this status (500, 502, 503, 504). */
  | { type: "error"; status: number }
  /** The answer comes after `ms` (past the client's timeout: the client gives up first). */
  | { type: "delay"; ms: number }
  /** Permission denied (403) or unauthenticated (401). */
  | { type: "deny"; status?: 401 | 403 }
  /**
   * The signature does not match: Bedrock answers 403 InvalidSignatureException as AWS does, with the
   * canonical request it expected (the signed headers and their values) in the message; the others, whose
   * requests carry no signature, answer as to a rejected token (401).
   */
  | { type: "badSignature" };

/** Which requests a fault or hook applies to: every field given must match. */
export interface RequestMatch {
  /** The operation, as the fake names it (e.g. "ListAgents", "GetAgent", "ListReasoningEngines"). */
  kind?: string;
  region?: string;
  /** The agent the request is about (detail calls), when it is about one. */
  agentId?: string;
}

/** Probabilities per request, for load runs; drawn from a seeded generator so runs repeat. */
export interface RandomFaults {
  throttle?: number;
  error?: number;
  /** Status of the random errors (default 503). */
  errorStatus?: number;
  delay?: number;
  delayMs?: number;
  seed?: number | string;
}

export interface FakeStats {
  /** Every request that reached the fake, faulted ones included (so retries show). */
  total: number;
  byKind: Record<string, number>;
  byRegion: Record<string, number>;
  /** "<kind> <region>" → count. */
  byKindRegion: Record<string, number>;
  byStatus: Record<string, number>;
  /** Faults served, by type. */
  faults: Record<Fault["type"], number>;
  /** When the first and the last request arrived (Date.now()), for rates. */
  firstAt?: number;
  lastAt?: number;
}

export interface SeedOptions {
  /** Makes ids and contents repeatable: the same seed gives the same agents. */
  seed?: number | string;
  /** Regions and how many agents each holds. */
  regions?: Record<string, number>;
  /** Bedrock: AgentCore runtimes per region. */
  runtimesPerRegion?: number;
}

interface PendingFault {
  match: RequestMatch;
  fault: Fault;
  remaining: number;
}

interface Hook {
  match: RequestMatch;
  run: () => void;
}

/** Where seeded timestamps start: fixed, so seeded agents compare equal across runs. */
const EPOCH = Date.parse("2026-01-01T00:00:00.000Z");

export class AgentCloudState {
  private readonly byRegion = new Map<string, Map<string, FakeAgent>>();
  private readonly faults: PendingFault[] = [];
  private readonly hooks: Hook[] = [];
  private random: RandomFaults | undefined;
  private draw: () => number = () => 1;
  private counters: FakeStats = emptyStats();
  private clock = 0;
  private readonly seeded = new Map<string, number>();
  private readonly seedText: string;

  constructor(
    readonly cloud: FakeCloud,
    options: SeedOptions = {},
  ) {
    this.seedText = String(options.seed ?? 1);
    for (const [region, count] of Object.entries(options.regions ?? {})) {
      this.seed(region, count);
      if (options.runtimesPerRegion) this.seed(region, options.runtimesPerRegion, "runtime");
    }
  }

  /** Adds `count` generated agents (or runtimes) to a region; the same seed, region and index give the same agent. */
  seed(region: string, count: number, kind: FakeAgent["kind"] = "agent"): FakeAgent[] {
    // Indices continue where the last seeding of this region stopped, so reseeding never regenerates (and
    // overwrites) an agent a test has since changed.
    const key = `${region}\u0000${kind}`;
    const start = this.seeded.get(key) ?? 0;
    this.seeded.set(key, start + count);
    const out: FakeAgent[] = [];
    for (let i = start; i < start + count; i++) out.push(this.put(region, generateAgent(this.cloud, this.seedText, region, i, kind)));
    return out;
  }

  regions(): string[] {
    return [...this.byRegion.keys()];
  }

  /** A region's agents (or runtimes) in the order every fake pages them: by id. */
  list(region: string, kind: FakeAgent["kind"] = "agent"): FakeAgent[] {
    const agents = [...(this.byRegion.get(region)?.values() ?? [])].filter((a) => a.kind === kind);
    return agents.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(region: string, id: string): FakeAgent | undefined {
    return this.byRegion.get(region)?.get(id);
  }

  /** Adds or replaces an agent as given. */
  put(region: string, agent: FakeAgent): FakeAgent {
    let agents = this.byRegion.get(region);
    if (!agents) this.byRegion.set(region, (agents = new Map()));
    agents.set(agent.id, agent);
    return agent;
  }

  /** Adds an agent with defaults for what `fields` leaves out (a fresh id, version 1, now). */
  add(region: string, fields: Partial<FakeAgent> & { name: string }): FakeAgent {
    const at = this.tick();
    const id = fields.id ?? idFor(this.cloud, `${this.seedText}/${region}/added/${fields.name}/${at}`, fields.name);
    return this.put(region, {
      id,
      version: "1",
      status: this.cloud === "bedrock" ? "PREPARED" : "active",
      createdAt: at,
      updatedAt: at,
      labels: {},
      aliases: [],
      actions: [],
      kind: "agent",
      ...fields,
    });
  }

  /** Changes an agent as the cloud would on an edit: a new version and update time unless `change` sets them. */
  update(region: string, id: string, change: Partial<Omit<FakeAgent, "id">>): FakeAgent {
    const agent = this.get(region, id);
    if (!agent) throw new Error(`no agent ${id} in ${region}`);
    const next: FakeAgent = { ...agent, version: String(Number(agent.version) + 1 || 1), updatedAt: this.tick(), ...change };
    return this.put(region, next);
  }

  remove(region: string, id: string): boolean {
    return this.byRegion.get(region)?.delete(id) ?? false;
  }

  /** The next `times` requests that match get this fault instead of their answer. */
  inject(fault: Fault, options: RequestMatch & { times?: number } = {}): void {
    const { times = 1, ...match } = options;
    this.faults.push({ match, fault, remaining: times });
  }

  /** Faults at random from now on (undefined: none). */
  setRandomFaults(random: RandomFaults | undefined): void {
    this.random = random;
    this.draw = random ? mulberry32(hash(String(random.seed ?? this.seedText))) : () => 1;
  }

  /** Runs `fn` once, just before the next matching request is served (e.g. deletes the agent it asks about). */
  beforeNext(match: RequestMatch, fn: () => void): void {
    this.hooks.push({ match, run: fn });
  }

  /**
   * Called by a fake for every request: counts it, runs a due hook, and returns the fault to serve, if any
   * (an injected one first, then a random one).
   */
  arrive(request: Required<Pick<RequestMatch, "kind" | "region">> & Pick<RequestMatch, "agentId">): Fault | undefined {
    const c = this.counters;
    const now = Date.now();
    c.firstAt ??= now;
    c.lastAt = now;
    c.total++;
    bump(c.byKind, request.kind);
    bump(c.byRegion, request.region);
    bump(c.byKindRegion, `${request.kind} ${request.region}`);
    const hook = this.hooks.findIndex((h) => matches(h.match, request));
    if (hook >= 0) this.hooks.splice(hook, 1)[0]?.run();
    const pending = this.faults.find((f) => f.remaining > 0 && matches(f.match, request));
    let fault: Fault | undefined;
    if (pending) {
      pending.remaining--;
      if (pending.remaining === 0) this.faults.splice(this.faults.indexOf(pending), 1);
      fault = pending.fault;
    } else if (this.random) {
      fault = this.randomFault(this.random);
    }
    if (fault) c.faults[fault.type]++;
    return fault;
  }

  /** Called by a fake with the status it answered. */
  answered(status: number): void {
    bump(this.counters.byStatus, String(status));
  }

  stats(): FakeStats {
    return structuredClone(this.counters);
  }

  /** Forgets counters, pending faults and hooks; keeps the agents. */
  resetStats(): void {
    this.counters = emptyStats();
    this.faults.length = 0;
    this.hooks.length = 0;
  }

  private randomFault(r: RandomFaults): Fault | undefined {
    const x = this.draw();
    let edge = r.throttle ?? 0;
    if (x < edge) return { type: "throttle", retryAfterSeconds: 0 };
    edge += r.error ?? 0;
    if (x < edge) return { type: "error", status: r.errorStatus ?? 503 };
    edge += r.delay ?? 0;
    if (x < edge) return { type: "delay", ms: r.delayMs ?? 1_000 };
    return undefined;
  }

  /** A logical clock: every change is one second after the previous one, so runs repeat. */
  private tick(): string {
    this.clock++;
    return new Date(EPOCH + 86_400_000 + this.clock * 1_000).toISOString();
  }
}

/** Applies a `wire` patch: undefined values remove the key. */
export function patchWire(record: Record<string, unknown>, patch: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!patch) return record;
  const out = { ...record };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) delete out[key];
    else out[key] = value;
  }
  return out;
}

/** An opaque page token that survives deletions between pages: the last id served, base64url. */
export function pageToken(lastId: string): string {
  return Buffer.from(lastId, "utf8").toString("base64url");
}

export function afterToken(token: string): string {
  return Buffer.from(token, "base64url").toString("utf8");
}

/** One page of `items` (sorted by id) after the id `after`, and the id to continue after when more remain. */
export function pageAfter<T extends { id: string }>(items: T[], after: string | undefined, size: number): { page: T[]; last?: string } {
  const rest = after === undefined ? items : items.filter((a) => a.id > after);
  const page = rest.slice(0, Math.max(1, size));
  return { page, last: rest.length > page.length ? page[page.length - 1]?.id : undefined };
}

export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

function generateAgent(cloud: FakeCloud, seed: string, region: string, i: number, kind: FakeAgent["kind"]): FakeAgent {
  const n = String(i).padStart(4, "0");
  const name = kind === "runtime" ? `runtime_${region.replaceAll("-", "_")}_${n}` : `agent-${region}-${n}`;
  const rand = mulberry32(hash(`${seed}/${region}/${kind}/${i}`));
  const version = String(1 + (i % 4));
  const at = new Date(EPOCH + i * 60_000).toISOString();
  const agent: FakeAgent = {
    id: idFor(cloud, `${seed}/${region}/${kind}/${i}`, name, kind),
    name,
    description: i % 5 === 4 ? undefined : `Seeded ${kind} ${i} in ${region}`,
    version,
    status: kind === "runtime" ? "READY" : cloud === "bedrock" ? (i % 7 === 6 ? "NOT_PREPARED" : "PREPARED") : "active",
    createdAt: at,
    updatedAt: at,
    model: kind === "runtime" || cloud === "vertex" ? undefined : cloud === "bedrock" ? "anthropic.claude-3-haiku-20240307-v1:0" : "gpt-4o-mini",
    labels: { team: `t${i % 3}`, seed: `s${Math.floor(rand() * 1000)}` },
    aliases: [],
    actions: [],
    kind,
  };
  if (kind === "agent") {
    for (let a = 0; a < i % 3; a++) agent.aliases.push({ id: `AL${n}${a}`.slice(0, 10).padEnd(10, "X"), name: `alias-${a}`, status: "PREPARED", agentVersion: version });
    // Foundry tools: the type, and the name of the function / OpenAPI definition where the tool has one.
    const tools: FakeAction[] = [
      { id: "code_interpreter", name: "code_interpreter" },
      { id: "file_search", name: "file_search" },
      { id: "function", name: "lookup_order" },
      { id: "openapi", name: "weather" },
    ];
    for (let a = 0; a <= i % 4; a++) {
      agent.actions.push(
        cloud === "foundry"
          ? (tools[a] as FakeAction)
          : cloud === "vertex"
            ? { id: a === 0 ? "query" : `method_${a}`, name: a === 0 ? "query" : `method_${a}` }
            : { id: `AG${n}${a}`.slice(0, 10).padEnd(10, "X"), name: `actions-${a}`, state: a % 2 ? "DISABLED" : "ENABLED" },
      );
    }
    if (cloud === "foundry" && i % 2 === 0) {
      agent.card = {
        name,
        version: "1.0.0",
        description: `Card of ${name}`,
        url: `https://${region}.example.test/a2a/${name}`,
        capabilities: { streaming: false },
        skills: [{ id: "answer", name: "Answer", description: "Answers questions", tags: ["qa"] }],
      };
    }
  }
  return agent;
}

/** Ids in each cloud's own form: Bedrock 10 upper-case alphanumerics, Vertex a long number, Foundry the name. */
function idFor(cloud: FakeCloud, key: string, name: string, kind: FakeAgent["kind"] = "agent"): string {
  const rand = mulberry32(hash(key));
  if (cloud === "foundry") return name;
  if (cloud === "vertex") return String(1_000_000_000 + Math.floor(rand() * 8_999_999_999)) + String(Math.floor(rand() * 1e9)).padStart(9, "0");
  const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  let id = "";
  for (let k = 0; k < 10; k++) id += alphabet[Math.floor(rand() * alphabet.length)];
  return kind === "runtime" ? `${name}-${id}` : id;
}

function matches(match: RequestMatch, request: RequestMatch): boolean {
  return (
    (match.kind === undefined || match.kind === request.kind) &&
    (match.region === undefined || match.region === request.region) &&
    (match.agentId === undefined || match.agentId === request.agentId)
  );
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

function emptyStats(): FakeStats {
  return { total: 0, byKind: {}, byRegion: {}, byKindRegion: {}, byStatus: {}, faults: { throttle: 0, error: 0, delay: 0, deny: 0, badSignature: 0 } };
}

/** FNV-1a, to turn a seed text into a generator state. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function mulberry32(state: number): () => number {
  let a = state;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A fake served over plain HTTP on 127.0.0.1. */
export interface HttpFakeServer {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `handle` on 127.0.0.1. The signal handed to it aborts on close, so a delayed answer cannot keep the
 * process alive; close also drops kept-alive connections (the SDKs keep theirs open).
 */
export async function listen(
  handle: (req: IncomingMessage, res: ServerResponse, closing: AbortSignal) => Promise<void>,
  port = 0,
): Promise<HttpFakeServer> {
  const closing = new AbortController();
  const server = createServer((req, res) => {
    handle(req, res, closing.signal).catch((e: unknown) => {
      if (res.headersSent || closing.signal.aborted) {
        res.destroy();
        return;
      }
      sendJson(res, 500, { message: `fake failure: ${e instanceof Error ? e.message : String(e)}` });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve, reject) => {
        closing.abort();
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections();
      }),
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  // The client may have given up (a delay past its timeout): nothing to answer then.
  if (res.destroyed || res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}
