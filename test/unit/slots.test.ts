/**
 * The slots that hold a collection's cap against concurrent creates (src/domain/kernel/slots.ts), with
 * members made before slots existed (which hold none): a create that counted before a concurrent one
 * committed and listed the slots after it must not choose a slot past the cap.
 */
import { describe, expect, it } from "vitest";
import { AppError, type DomainError } from "../../src/domain/errors.js";
import { Slots } from "../../src/domain/kernel/slots.js";
import type { Partition, Store } from "../../src/ports/store.js";

const PARTITION: Partition = { tenantId: "t1", scopeId: "p1" };
const LIMIT: DomainError = { kind: "conflict", detail: "full", reason: "project_limit_reached" };

/** 99 members that hold no slot, a cap of 100, and a concurrent create that commits slot 0 between this create's two reads. */
function raced() {
  const slots = new Set<string>();
  let reads = 0;
  // The concurrent create commits right after this create's first read, whichever read comes first.
  const read = () => {
    reads += 1;
    if (reads === 2) slots.add("slot-server-0");
  };
  const store = {
    queryPage: async () => {
      read();
      return { items: [...slots].map((id) => ({ id, ...PARTITION, docType: "slot", kind: "server", resourceId: `of-${id}` })) };
    },
  } as unknown as Store;
  const count = async () => {
    read();
    return 99 + slots.size;
  };
  const created: string[] = [];
  const create = async (op: { kind: string; doc?: { id: string } }, taken: () => DomainError) => {
    const id = op.doc!.id;
    if (slots.has(id)) throw new AppError(taken());
    slots.add(id);
    created.push(id);
    return id;
  };
  return { slots: new Slots(store, "server", 100), count, create, created, total: () => 99 + slots.size };
}

describe("slots", () => {
  it("a create racing another at the cap's edge, with members that hold no slot, is refused: the cap is never passed", async () => {
    const r = raced();
    const outcome = await r.slots.create(PARTITION, "mine", r.count, LIMIT, r.create).then(
      (id) => id,
      (err: unknown) => (err instanceof AppError && "reason" in err.error ? err.error.reason : String(err)),
    );
    expect(outcome).toBe("project_limit_reached");
    expect(r.created).toEqual([]);
    expect(r.total()).toBe(100);
  });
});
