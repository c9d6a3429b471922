/**
 * Backends as APIM runs them: Single backends (URL, header credentials, a managed-identity
 * credential, a circuit breaker) and Pools of Single backends. A pool sends to the lowest priority
 * number that still has a backend whose breaker is closed, choosing by weight within it; lower
 * priorities are used only when every backend of the higher ones has tripped. A tripped breaker
 * keeps its backend out for the trip duration, or for the backend's Retry-After when the rule
 * accepts it. State is per gateway instance, as in APIM.
 */
export interface CircuitBreakerRule {
  name: string;
  failureCondition: { count?: number; percentage?: number; interval: string; statusCodeRanges?: { min: number; max: number }[]; errorReasons?: string[] };
  tripDuration: string;
  acceptRetryAfter?: boolean;
}

export interface BackendDef {
  id: string;
  type: "Single" | "Pool";
  url?: string;
  /** Header credentials with named values already substituted. */
  headers?: Record<string, string[]>;
  managedIdentity?: { resource: string; clientId?: string };
  circuitBreaker?: { rules: CircuitBreakerRule[] };
  pool?: { id: string; priority: number; weight: number }[];
}

/** ISO-8601 durations as the breaker uses them (PT30S, PT1M, PT1H, P1D…). */
export function isoDurationMs(d: string): number {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(d);
  if (!m || d === "P" || d.endsWith("T")) throw new Error(`not an ISO-8601 duration: ${d}`);
  return ((Number(m[1] ?? 0) * 24 + Number(m[2] ?? 0)) * 60 + Number(m[3] ?? 0)) * 60_000 + Number(m[4] ?? 0) * 1000;
}

interface BreakerState {
  failures: number[];
  trippedUntil: number;
}

export class Backends {
  private readonly state = new Map<string, BreakerState>();

  constructor(
    private defs: Map<string, BackendDef>,
    private readonly now: () => number,
    private readonly random: () => number,
  ) {}

  /** Replaces the definitions (a reload); breaker state of backends that still exist is kept. */
  update(defs: Map<string, BackendDef>): void {
    this.defs = defs;
    for (const id of this.state.keys()) if (!defs.has(id)) this.state.delete(id);
  }

  get(id: string): BackendDef | undefined {
    return this.defs.get(id);
  }

  isAvailable(id: string): boolean {
    const s = this.state.get(id);
    return !s || s.trippedUntil <= this.now();
  }

  /** The Single backend to send to, or undefined when the backend (every pool member) is unavailable. */
  pick(id: string): BackendDef | undefined {
    const def = this.defs.get(id);
    if (!def) return undefined;
    if (def.type === "Single") return this.isAvailable(id) ? def : undefined;
    const members = (def.pool ?? []).filter((m) => this.defs.get(m.id)?.type === "Single" && this.isAvailable(m.id));
    if (!members.length) return undefined;
    const top = Math.min(...members.map((m) => m.priority));
    const group = members.filter((m) => m.priority === top);
    const total = group.reduce((s, m) => s + Math.max(0, m.weight), 0);
    let roll = this.random() * (total || group.length);
    for (const m of group) {
      roll -= total ? Math.max(0, m.weight) : 1;
      if (roll < 0) return this.defs.get(m.id);
    }
    return this.defs.get(group[group.length - 1]!.id);
  }

  /** Records a backend's answer (a status, or a connection failure) against its circuit breaker. */
  record(id: string, outcome: { status?: number; retryAfterSeconds?: number; connectionFailure?: boolean }): void {
    const rule = this.defs.get(id)?.circuitBreaker?.rules[0];
    if (!rule) return;
    const fc = rule.failureCondition;
    const failed =
      outcome.connectionFailure === true
        ? (fc.errorReasons?.length ?? 0) > 0 || !fc.statusCodeRanges?.length
        : outcome.status !== undefined && (fc.statusCodeRanges ?? []).some((r) => outcome.status! >= r.min && outcome.status! <= r.max);
    if (!failed) return;
    const now = this.now();
    const s = this.state.get(id) ?? { failures: [], trippedUntil: 0 };
    const window = isoDurationMs(fc.interval);
    s.failures = [...s.failures.filter((t) => t > now - window), now];
    if (s.failures.length >= (fc.count ?? 1)) {
      const trip = rule.acceptRetryAfter && outcome.retryAfterSeconds !== undefined ? outcome.retryAfterSeconds * 1000 : isoDurationMs(rule.tripDuration);
      s.trippedUntil = now + trip;
      s.failures = [];
    }
    this.state.set(id, s);
  }
}
