// Wall-clock timers for durable timers. setTimeout caps its delay at 2^31-1 ms (~24.8 days) and
// fires *immediately* beyond that, so long delays are slept in chunks and re-checked against the
// clock on every wake-up (docs/local-host.md, "Timers and external events"). A due time in the past
// fires on the next turn. A `now` clock that jumps (a test's) is re-read for every timer by recheck().

export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class TimerScheduler {
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #armed = new Map<string, { dueAt: number; fire: () => void }>();
  readonly #now: () => number;
  readonly #maxChunk: number;

  constructor(now: () => number = Date.now, maxChunk = MAX_TIMEOUT_MS) {
    this.#now = now;
    this.#maxChunk = Math.max(1, Math.min(maxChunk, MAX_TIMEOUT_MS));
  }

  /** (Re)arms `key` to call `fire` once the clock reaches `dueAt` (ms epoch). */
  schedule(key: string, dueAt: number, fire: () => void): void {
    this.cancel(key);
    this.#armed.set(key, { dueAt, fire });
    const fireNow = (): void => {
      this.#timers.delete(key);
      this.#armed.delete(key);
      fire();
    };
    const wake = (): void => {
      const delay = dueAt - this.#now();
      if (delay <= 0) {
        fireNow();
        return;
      }
      const t = setTimeout(wake, Math.min(delay, this.#maxChunk));
      t.unref?.();
      this.#timers.set(key, t);
    };
    const delay = dueAt - this.#now();
    // Never call back synchronously from schedule(): a due time in the past fires on the next turn.
    const t = delay <= 0 ? setTimeout(fireNow, 0) : setTimeout(wake, Math.min(delay, this.#maxChunk));
    t.unref?.();
    this.#timers.set(key, t);
  }

  cancel(key: string): void {
    const t = this.#timers.get(key);
    if (t) {
      clearTimeout(t);
      this.#timers.delete(key);
    }
    this.#armed.delete(key);
  }

  /**
   * Re-reads the clock for every armed timer, as if each were scheduled again now: those already due
   * fire on the next turn, the others sleep until their due time. For a `now` clock that a test moves
   * forward (a real clock never needs it).
   */
  recheck(): void {
    for (const [key, { dueAt, fire }] of [...this.#armed]) this.schedule(key, dueAt, fire);
  }

  has(key: string): boolean {
    return this.#timers.has(key);
  }

  get size(): number {
    return this.#timers.size;
  }

  cancelAll(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#armed.clear();
  }
}
