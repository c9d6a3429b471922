// Timer-trigger scheduling for the local host.
//
// Azure Functions schedules are NCRONTAB expressions with six fields (seconds first), e.g.
// "0 */5 * * * *"; croner understands the same syntax (it also accepts five fields). As in
// NCrontab, day-of-month and day-of-week are combined with AND (croner legacyMode: false).
// A TimeSpan schedule ("hh:mm:ss" or "d.hh:mm:ss", App Service plans only) runs at a fixed
// interval. `%Setting%` references are resolved from the environment, as the host does for
// every binding property. Schedules run in UTC unless WEBSITE_TIME_ZONE names an IANA zone.
// TimerTriggers (below) runs the host's timer functions on those schedules.

import { Cron } from "croner";
import type { RegisteredFunction } from "./core-shim.js";
import type { Log } from "./log.js";

export class TimerScheduleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TimerScheduleError";
  }
}

/** Replaces every `%Name%` with process.env.Name. Throws when a setting is missing. */
export function resolveAppSettingReferences(value: string, env: NodeJS.ProcessEnv = process.env): string {
  return value.replace(/%([^%\s]+)%/g, (_m, name: string) => {
    const v = env[name];
    if (v === undefined) throw new TimerScheduleError(`app setting "${name}" referenced as %${name}% is not defined`);
    return v;
  });
}

/** Milliseconds of a TimeSpan schedule ("hh:mm:ss", "d.hh:mm:ss"), or null when `expr` is not one. */
export function parseTimeSpan(expr: string): number | null {
  const m = /^(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(expr.trim());
  if (!m) return null;
  const days = Number(m[1] ?? 0);
  const hours = Number(m[2]);
  const minutes = Number(m[3]);
  const seconds = Number(m[4] ?? 0);
  if (hours > 23 || minutes > 59 || seconds > 59) return null;
  const ms = (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000;
  return ms > 0 ? ms : null;
}

export interface TimerSchedule {
  /** The resolved expression. */
  readonly expression: string;
  readonly kind: "cron" | "interval";
  /** Next occurrence strictly after `from` (default now). */
  nextRun(from?: Date): Date | null;
  /** Starts calling `onTick` at each occurrence. Timers are unref'd. Idempotent. */
  start(onTick: (scheduledAt: Date) => void): void;
  stop(): void;
}

function timeZone(): string {
  return process.env.WEBSITE_TIME_ZONE?.trim() || "Etc/UTC";
}

/** Parses a (resolved) schedule. Throws TimerScheduleError when invalid. */
export function createTimerSchedule(expression: string): TimerSchedule {
  const expr = expression.trim();
  const interval = parseTimeSpan(expr);
  if (interval !== null) return intervalSchedule(expr, interval);

  const tz = timeZone();
  const makeCron = (fn?: () => void): Cron => {
    const options = { timezone: tz, legacyMode: false, unref: true, paused: fn === undefined };
    return fn ? new Cron(expr, options, fn) : new Cron(expr, options);
  };
  let probe: Cron;
  try {
    probe = makeCron();
  } catch (err) {
    throw new TimerScheduleError(`invalid timer schedule "${expression}": ${(err as Error).message}`);
  }
  let job: Cron | undefined;
  return {
    expression: expr,
    kind: "cron",
    nextRun(from?: Date): Date | null {
      return probe.nextRun(from ?? new Date());
    },
    start(onTick): void {
      if (job) return;
      job = makeCron(() => onTick(job?.currentRun() ?? new Date()));
    },
    stop(): void {
      job?.stop();
      job = undefined;
      probe.stop();
    },
  };
}

function intervalSchedule(expr: string, ms: number): TimerSchedule {
  let handle: NodeJS.Timeout | undefined;
  let anchor = Date.now();
  return {
    expression: expr,
    kind: "interval",
    nextRun(from?: Date): Date | null {
      const t = (from ?? new Date()).getTime();
      const n = Math.floor((t - anchor) / ms) + 1;
      return new Date(anchor + Math.max(1, n) * ms);
    },
    start(onTick): void {
      if (handle) return;
      anchor = Date.now();
      handle = setInterval(() => onTick(new Date()), ms);
      handle.unref();
    },
    stop(): void {
      if (handle) clearInterval(handle);
      handle = undefined;
    },
  };
}

/**
 * The raw timer payload as the host sends it (PascalCase; the library camel-cases it into
 * `Timer { isPastDue, schedule: { adjustForDST }, scheduleStatus: { last, next, lastUpdated } }`).
 */
export function buildTimerPayload(opts: { last: Date; next: Date | null; lastUpdated: Date; isPastDue?: boolean }): {
  Schedule: { AdjustForDST: boolean };
  ScheduleStatus: { Last: string; Next: string | null; LastUpdated: string };
  IsPastDue: boolean;
} {
  return {
    Schedule: { AdjustForDST: true },
    ScheduleStatus: {
      Last: opts.last.toISOString(),
      Next: opts.next ? opts.next.toISOString() : null,
      LastUpdated: opts.lastUpdated.toISOString(),
    },
    IsPastDue: opts.isPastDue ?? false,
  };
}

export interface TimerEntry {
  fn: RegisteredFunction;
  schedule: TimerSchedule | undefined;
  running: number;
  lastRun: Date | null;
}

export interface TimerTriggersOptions {
  log: Log;
  /** ScheduleStatus.Last of each timer's first run. */
  startedAt: Date;
  /** Runs the function with this timer payload (JSON) as its trigger; rejects when the run fails. */
  invoke(fn: RegisteredFunction, payloadJson: string, reason: string): Promise<unknown>;
  /** True once the host is closing: ticks are ignored. */
  closed(): boolean;
}

/**
 * The host's timer triggers: one entry per timer function (its schedule, last run, runs in progress).
 * A tick while the previous run is still going is skipped, as the host does; a failing run never
 * crashes the host (the invocation already logged it).
 */
export class TimerTriggers {
  readonly #entries = new Map<RegisteredFunction, TimerEntry>();
  readonly #o: TimerTriggersOptions;

  constructor(o: TimerTriggersOptions) {
    this.#o = o;
  }

  /** The function's entry, made (and its schedule parsed, an invalid one logged) on first use. */
  entry(fn: RegisteredFunction): TimerEntry {
    let e = this.#entries.get(fn);
    if (!e) {
      let schedule: TimerSchedule | undefined;
      try {
        schedule = createTimerSchedule(resolveAppSettingReferences(String(fn.trigger.binding.schedule ?? "")));
      } catch (err) {
        this.#o.log("error", `[${fn.name}] ${(err as Error).message}`);
      }
      e = { fn, schedule, running: 0, lastRun: null };
      this.#entries.set(fn, e);
    }
    return e;
  }

  /** The next run's payload; records the run as the last one. */
  payload(e: TimerEntry): ReturnType<typeof buildTimerPayload> {
    const now = new Date();
    const payload = buildTimerPayload({
      last: e.lastRun ?? this.#o.startedAt,
      next: e.schedule?.nextRun(now) ?? null,
      lastUpdated: now,
    });
    e.lastRun = now;
    return payload;
  }

  async run(e: TimerEntry, reason: string): Promise<void> {
    e.running++;
    try {
      const payload = this.payload(e);
      const json = JSON.stringify(payload);
      await this.#o.invoke(e.fn, json, reason);
    } finally {
      e.running--;
    }
  }

  tick(e: TimerEntry, reason: string): void {
    if (this.#o.closed()) return;
    if (e.running > 0) {
      this.#o.log("debug", `[${e.fn.name}] previous run still in progress; skipping this occurrence`);
      return;
    }
    // The invocation already logged the failure; a timer never crashes the host.
    this.run(e, reason).catch(() => undefined);
  }

  /** Arms the entry's schedule (and runs it now when runOnStartup). */
  arm(e: TimerEntry, runOnStartup: boolean): void {
    if (!e.schedule) return;
    e.schedule.start(() => this.tick(e, "Timer fired"));
    if (runOnStartup) this.tick(e, "Timer fired on startup (runOnStartup)");
  }

  stopAll(): void {
    for (const e of this.#entries.values()) e.schedule?.stop();
  }
}
