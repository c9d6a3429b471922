/**
 * Client-side pacing for control-plane APIs with documented per-second quotas: requests of one
 * operation in one account and region start at least 1/rate apart, so no one-second window holds more
 * than the quota allows. The SDKs' retries answer throttling; pacing keeps a sync of thousands of agents
 * from causing it in the first place (docs/agent-quotas.md). One pacer per process: every source of the
 * same account and region shares its slots.
 */
export interface PacerClock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const realClock: PacerClock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", stop);
        resolve();
      }, ms);
      const stop = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", stop, { once: true });
    }),
};

export class RequestPacer {
  private readonly next = new Map<string, number>();

  constructor(private readonly clock: PacerClock = realClock) {}

  /** Waits for the next slot of `key` at `perSecond`; resolves at once when the key is idle. */
  async take(key: string, perSecond: number, signal?: AbortSignal): Promise<void> {
    if (!(perSecond > 0)) return;
    const gap = 1000 / perSecond;
    const now = this.clock.now();
    const at = Math.max(now, this.next.get(key) ?? 0);
    // The slot is reserved before waiting: callers arriving meanwhile queue behind it.
    this.next.set(key, at + gap);
    if (at > now) await this.clock.sleep(at - now, signal);
  }
}

/** The process's pacer for cloud control planes. */
export const cloudPacer = new RequestPacer();

/**
 * Amazon Bedrock Agents' documented default quotas (requests per second, per account and Region; AWS
 * General Reference, "Amazon Bedrock endpoints and quotas"), of which the sync uses 80%.
 */
export const BEDROCK_AGENTS_PER_SECOND: Readonly<Record<string, number>> = {
  ListAgents: 10 * 0.8,
  GetAgent: 15 * 0.8,
  ListAgentAliases: 10 * 0.8,
  ListAgentActionGroups: 10 * 0.8,
  ListTagsForResource: 10 * 0.8,
};
