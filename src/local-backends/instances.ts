import { DEFAULT_BEHAVIOUR, parseBehaviourPatch } from "./behaviour.js";
import { type InstanceBehaviour, type RecordedRequest } from "./types.js";

/** Bounds memory when the fakes run for hours under a hand-driven app; tests never get near it. */
const MAX_LOG = 5000;

interface Instance {
  behaviour: InstanceBehaviour;
  log: RecordedRequest[];
}

export interface InjectedFailure {
  status: number;
  retryAfterSeconds?: number;
}

/** Behaviour and request log per host name; an instance exists as soon as it is configured or called. */
export class Instances {
  private readonly byHost = new Map<string, Instance>();

  /** `patch` is checked here, since it may come straight from a control request body. */
  configure(host: string, patch: unknown): InstanceBehaviour {
    const instance = this.instance(host);
    const checked = parseBehaviourPatch(patch);
    const merged: Record<string, unknown> = { ...instance.behaviour, ...checked };
    if (checked.failNext?.count === 0) delete merged.failNext;
    // Cleared fields are dropped rather than kept as undefined, so the control route shows what is in force.
    for (const key of Object.keys(merged)) if (merged[key] === undefined) delete merged[key];
    // A copy, so that the caller's objects and the remaining failNext count cannot alias each other.
    instance.behaviour = structuredClone(merged) as unknown as InstanceBehaviour;
    return this.behaviour(host);
  }

  behaviour(host: string): InstanceBehaviour {
    return structuredClone(this.byHost.get(normaliseHost(host))?.behaviour ?? DEFAULT_BEHAVIOUR);
  }

  record(host: string, request: RecordedRequest): void {
    const log = this.instance(host).log;
    log.push(request);
    if (log.length > MAX_LOG) log.splice(0, log.length - MAX_LOG);
  }

  requests(host: string): RecordedRequest[] {
    return structuredClone(this.byHost.get(normaliseHost(host))?.log ?? []);
  }

  /** The failure this request must get, if any; consumes one failNext. failAlways wins, so it does not eat the count. */
  takeFailure(host: string): InjectedFailure | undefined {
    const behaviour = this.byHost.get(normaliseHost(host))?.behaviour;
    if (!behaviour) return undefined;
    if (behaviour.failAlways) return { ...behaviour.failAlways };
    const next = behaviour.failNext;
    if (!next) return undefined;
    next.count -= 1;
    if (next.count <= 0) delete behaviour.failNext;
    const { status, retryAfterSeconds } = next;
    return retryAfterSeconds === undefined ? { status } : { status, retryAfterSeconds };
  }

  reset(): void {
    this.byHost.clear();
  }

  private instance(host: string): Instance {
    const key = normaliseHost(host);
    let instance = this.byHost.get(key);
    if (!instance) {
      instance = { behaviour: structuredClone(DEFAULT_BEHAVIOUR), log: [] };
      this.byHost.set(key, instance);
    }
    return instance;
  }
}

/** "EastUS.mock.localhost:8080" → "eastus.mock.localhost"; "[::1]:80" → "[::1]". */
export function normaliseHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    h = end < 0 ? h : h.slice(0, end + 1);
  } else if (h.split(":").length === 2) {
    h = h.slice(0, h.indexOf(":"));
  }
  return h.endsWith(".") ? h.slice(0, -1) : h;
}
