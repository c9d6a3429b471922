import { type InstanceBehaviour } from "./types.js";

export const DEFAULT_BEHAVIOUR: InstanceBehaviour = { latencyMs: 0 };

export class BehaviourError extends Error {}

const KEYS = new Set(["latencyMs", "failNext", "failAlways", "requireKey", "requireBearer"]);

/**
 * Checks a behaviour change from the control route or from configure(). `null` clears a field, because
 * JSON cannot carry `undefined`; unknown keys are refused so that a typo does not silently do nothing.
 */
export function parseBehaviourPatch(input: unknown): Partial<InstanceBehaviour> {
  if (!isRecord(input)) throw new BehaviourError("the behaviour must be a JSON object");
  for (const key of Object.keys(input)) {
    if (!KEYS.has(key)) throw new BehaviourError(`unknown behaviour field "${key}" (known: ${[...KEYS].join(", ")})`);
  }
  const patch: Partial<InstanceBehaviour> = {};
  if ("latencyMs" in input) {
    const v = input.latencyMs;
    if (v === null || v === undefined) patch.latencyMs = 0;
    else if (typeof v === "number" && Number.isFinite(v) && v >= 0) patch.latencyMs = v;
    else throw new BehaviourError("latencyMs must be a number ≥ 0");
  }
  if ("failNext" in input) {
    const v = input.failNext;
    if (v === null || v === undefined) patch.failNext = undefined;
    else {
      if (!isRecord(v)) throw new BehaviourError("failNext must be an object");
      const count = v.count;
      if (typeof count !== "number" || !Number.isInteger(count) || count < 0) throw new BehaviourError("failNext.count must be an integer ≥ 0");
      patch.failNext = { ...failure(v, "failNext"), count };
    }
  }
  if ("failAlways" in input) {
    const v = input.failAlways;
    if (v === null || v === undefined) patch.failAlways = undefined;
    else if (isRecord(v)) patch.failAlways = failure(v, "failAlways");
    else throw new BehaviourError("failAlways must be an object");
  }
  if ("requireKey" in input) {
    const v = input.requireKey;
    if (v === null || v === undefined) patch.requireKey = undefined;
    else if (typeof v === "string" && v.length > 0) patch.requireKey = v;
    else throw new BehaviourError("requireKey must be a non-empty string");
  }
  if ("requireBearer" in input) {
    const v = input.requireBearer;
    if (v === null || v === undefined) patch.requireBearer = undefined;
    else if (typeof v === "boolean") patch.requireBearer = v;
    else throw new BehaviourError("requireBearer must be a boolean");
  }
  return patch;
}

function failure(v: Record<string, unknown>, name: string): { status: number; retryAfterSeconds?: number } {
  const { status, retryAfterSeconds } = v;
  if (typeof status !== "number" || !Number.isInteger(status) || status < 400 || status > 599) {
    throw new BehaviourError(`${name}.status must be an HTTP error status (400-599)`);
  }
  if (retryAfterSeconds === undefined || retryAfterSeconds === null) return { status };
  if (typeof retryAfterSeconds !== "number" || !Number.isInteger(retryAfterSeconds) || retryAfterSeconds < 0) {
    throw new BehaviourError(`${name}.retryAfterSeconds must be an integer ≥ 0`);
  }
  return { status, retryAfterSeconds };
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
