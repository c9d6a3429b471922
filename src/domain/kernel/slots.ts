import type { BatchOp, Partition, Store, StoredDoc } from "../../ports/store.js";
import { AppError, fail, type DomainError } from "../errors.js";

/** One held slot: a member of a capped collection (its id in resourceId). */
export interface SlotDoc extends StoredDoc {
  docType: "slot";
  kind: string;
  resourceId: string;
}

/**
 * A cap on how many members a collection holds in one partition that concurrent creates cannot pass.
 * A count alone cannot hold it: two creates that both counted max − 1 would both write. So each member
 * also holds a slot, a document with a fixed id (`slot-<kind>-<n>`, n < max) created in the member's
 * own batch: two creates that chose the same free slot collide on its id, and one of them chooses again.
 * Members created before their collection had slots hold none; the count check still covers them.
 */
export class Slots {
  constructor(
    private readonly store: Store,
    private readonly kind: string,
    readonly max: number,
  ) {}

  /** The create op of slot `n` for `resourceId`, to go in the member's batch. */
  claim(partition: Partition, n: number, resourceId: string): BatchOp {
    return { kind: "create", doc: { id: `slot-${this.kind}-${n}`, ...partition, docType: "slot", kind: this.kind, resourceId } satisfies SlotDoc };
  }

  /** The delete ops of the slot `resourceId` holds (none for a member created before slots), for its delete batch. */
  async release(partition: Partition, resourceId: string): Promise<BatchOp[]> {
    const held = await this.held(partition);
    return held.filter((s) => s.resourceId === resourceId).map((s) => ({ kind: "delete" as const, id: s.id }));
  }

  /**
   * Creates a member: `count` members now (the cap), then `create` with a free slot's op. A create
   * that lost its slot to a concurrent one (a 409 on the slot) chooses again, up to five times.
   * `limit` is the refusal when the collection is full.
   */
  async create<T>(partition: Partition, resourceId: string, count: () => Promise<number>, limit: DomainError, create: (slotOp: BatchOp, slotTaken: () => DomainError) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      // The slots first, then the count: a member created between the two reads is in the count (a smaller
      // window) but not among the slots. Read the other way round, such a member's slot was taken while the
      // window was still the larger, older one, so a create could choose a slot past it and, with members
      // that hold no slot, pass the cap. This way every slot chosen is below max − (members holding none).
      const taken = new Set((await this.held(partition)).map((s) => s.id));
      const members = await count();
      if (members >= this.max) fail(limit);
      // One of the lowest (max − members) free slots, at random: creates made side by side (an import)
      // rarely choose the same one, and with members that hold no slot (made before slots) the places
      // left are still the only ones two creates can both take.
      const free = Array.from({ length: this.max }, (_, n) => n)
        .filter((n) => !taken.has(`slot-${this.kind}-${n}`))
        .slice(0, this.max - members);
      const slot = free[Math.floor(Math.random() * free.length)] ?? fail(limit);
      try {
        return await create(this.claim(partition, slot, resourceId), () => SLOT_TAKEN);
      } catch (err) {
        if (!(err instanceof AppError && err.error === SLOT_TAKEN)) throw err;
        if (attempt >= 5) fail({ kind: "conflict", detail: "other creates in this collection kept winning the race: retry", reason: "changed_meanwhile" });
      }
    }
  }

  private async held(partition: Partition): Promise<SlotDoc[]> {
    const page = await this.store.queryPage<SlotDoc>(partition, { docType: "slot", filters: [{ field: "kind", op: "=", value: this.kind }], maxPageSize: this.max + 1 });
    return page.items;
  }
}

/** Internal: the member's batch failed on its slot (a concurrent create took it). Never reaches a client. */
const SLOT_TAKEN: DomainError = { kind: "conflict", detail: "the slot was taken by a concurrent create", reason: "changed_meanwhile" };
