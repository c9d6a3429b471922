// JSON-file persistence of durable instances: one file per instance under
// <dataDir>/durable/<taskHub>/, rewritten atomically (write a temp file, then rename) after every
// change. Writes of the same instance are serialized and coalesced: save() resolves once a write
// that started after the call is on disk, so callers can "persist, then dispatch side effects".

import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import path from "node:path";
import type { InstanceRecord } from "./types.js";

interface Slot {
  /** The write in progress, if any. */
  writing: Promise<void> | null;
  /** A newer state must be written after the current write. */
  dirty: boolean;
  /** Resolved when the next write (the one that will pick up `dirty`) has finished. */
  waiters: { resolve: () => void; reject: (err: unknown) => void }[];
  removed: boolean;
  rec: InstanceRecord;
}

export function instanceFileName(instanceId: string): string {
  const readable = instanceId.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 80);
  const hash = createHash("sha256").update(instanceId).digest("hex").slice(0, 16);
  return `${readable}~${hash}.json`;
}

export class InstanceStore {
  readonly dir: string;
  readonly #slots = new Map<string, Slot>();
  readonly #log: (level: "warn" | "error", message: string) => void;
  #dirReady: Promise<void> | null = null;

  constructor(dir: string, log: (level: "warn" | "error", message: string) => void) {
    this.dir = dir;
    this.#log = log;
  }

  #ensureDir(): Promise<void> {
    this.#dirReady ??= fsp.mkdir(this.dir, { recursive: true }).then(() => undefined);
    return this.#dirReady;
  }

  fileOf(instanceId: string): string {
    return path.join(this.dir, instanceFileName(instanceId));
  }

  /** Reads every instance file (skipping unreadable ones with a warning) and removes stale temp files. */
  async loadAll(): Promise<InstanceRecord[]> {
    await this.#ensureDir();
    const out: InstanceRecord[] = [];
    for (const name of (await fsp.readdir(this.dir)).sort()) {
      const full = path.join(this.dir, name);
      if (name.endsWith(".tmp")) {
        await fsp.rm(full, { force: true });
        continue;
      }
      if (!name.endsWith(".json")) continue;
      try {
        const rec = JSON.parse(await fsp.readFile(full, "utf8")) as InstanceRecord;
        if (rec && rec.v === 1 && typeof rec.instanceId === "string" && Array.isArray(rec.history)) out.push(rec);
        else this.#log("warn", `durable: ignoring ${full}: not an instance record`);
      } catch (err) {
        this.#log("warn", `durable: ignoring unreadable ${full}: ${(err as Error).message}`);
      }
    }
    return out;
  }

  /** Persists the record's current state (coalesced with other saves of the same instance). */
  save(rec: InstanceRecord): Promise<void> {
    let slot = this.#slots.get(rec.instanceId);
    if (!slot) {
      slot = { writing: null, dirty: false, waiters: [], removed: false, rec };
      this.#slots.set(rec.instanceId, slot);
    }
    slot.rec = rec;
    slot.removed = false;
    const done = new Promise<void>((resolve, reject) => slot.waiters.push({ resolve, reject }));
    if (slot.writing) slot.dirty = true;
    else this.#pump(rec.instanceId, slot);
    return done;
  }

  #pump(instanceId: string, slot: Slot): void {
    const waiters = slot.waiters.splice(0);
    slot.dirty = false;
    const write = slot.removed ? this.#unlink(instanceId) : this.#write(instanceId, JSON.stringify(slot.rec));
    slot.writing = write.then(
      () => {
        for (const w of waiters) w.resolve();
      },
      (err: unknown) => {
        this.#log("error", `durable: could not persist instance '${instanceId}': ${(err as Error).message}`);
        for (const w of waiters) w.reject(err);
      },
    );
    void slot.writing.then(() => {
      slot.writing = null;
      if (slot.dirty || slot.waiters.length > 0) this.#pump(instanceId, slot);
      else if (this.#slots.get(instanceId) === slot) this.#slots.delete(instanceId);
    });
  }

  async #write(instanceId: string, json: string): Promise<void> {
    await this.#ensureDir();
    const file = this.fileOf(instanceId);
    const tmp = `${file}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, json, "utf8");
    await fsp.rename(tmp, file);
  }

  async #unlink(instanceId: string): Promise<void> {
    await fsp.rm(this.fileOf(instanceId), { force: true });
  }

  /** Deletes the instance's file (after any write in progress). */
  remove(rec: InstanceRecord): Promise<void> {
    let slot = this.#slots.get(rec.instanceId);
    if (!slot) {
      slot = { writing: null, dirty: false, waiters: [], removed: true, rec };
      this.#slots.set(rec.instanceId, slot);
    }
    slot.removed = true;
    const done = new Promise<void>((resolve, reject) => slot.waiters.push({ resolve, reject }));
    if (slot.writing) slot.dirty = true;
    else this.#pump(rec.instanceId, slot);
    return done;
  }

  /** Resolves when every write requested so far has finished. */
  async flush(): Promise<void> {
    for (;;) {
      const pending = [...this.#slots.values()].map((s) => s.writing).filter((w): w is Promise<void> => w !== null);
      if (pending.length === 0) return;
      await Promise.allSettled(pending);
      // the pump chains the next write in a microtask after `writing` settles
      await new Promise((r) => setImmediate(r));
    }
  }
}
