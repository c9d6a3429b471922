/**
 * The 40-profile cap of a project's gateway document (ADR 008): the profiles its own keys use (revoked and
 * expired keys' included, their products stay), and the (project, profile) pairs of keys shared into it.
 */
import { describe, expect, it } from "vitest";
import { acceptedInUse, profileOf, profilesHeldBy, profilesInUse, type KeyDoc } from "../../src/domain/keys/documents.js";

const key = (id: string, projectId: string, tokensPerMinute: number, extra: Partial<KeyDoc> = {}): KeyDoc =>
  ({ id, projectId, scopes: {}, limits: { tokensPerMinute }, shares: [], status: "active", gateway: { desiredGen: 1, syncedGen: 1 }, ...extra }) as unknown as KeyDoc;

describe("room for key profiles", () => {
  it("a project's own profiles: 40 distinct ones fill it; a profile in use still fits; revoked keys count", async () => {
    const keys = Array.from({ length: 40 }, (_, i) => key(`k${i}`, "p1", 1000 + i, i === 0 ? { status: "revoked" } : {}));
    const docs = { listAll: async () => keys };
    expect(await profilesInUse(docs, "t", key("new", "p1", 5000))).toBe(40);
    expect(await profilesInUse(docs, "t", key("new", "p1", 1000))).toBeUndefined();
    expect(await profilesInUse(docs, "t", { ...key("new", "p1", 0), limits: {} })).toBeUndefined();
    // A key whose subscription is still on its previous profile's product holds both.
    const moving = [...keys.slice(0, 38), key("m", "p1", 7000, { gateway: { desiredGen: 2, syncedGen: 1, publishedProfile: { id: "kp_previous", models: [], limits: {}, sharedWith: [] } } as unknown as KeyDoc["gateway"] })];
    expect(await profilesInUse({ listAll: async () => moving }, "t", key("new", "p1", 5000))).toBe(40);
  });

  it("the profiles shared into a project: 40 (project, profile) pairs fill it", async () => {
    // Each actively shared into the target, as its key document says (the document decides, not the target's record).
    const into = { shares: [{ projectId: "target", status: "active", approvalId: "apr_x", requestedAt: "2026-01-01T00:00:00.000Z" }] } as unknown as Partial<KeyDoc>;
    const shared = Array.from({ length: 40 }, (_, i) => key(`s${i}`, `src${i % 2}`, 2000 + i, into));
    const docs = {
      sharedIntoAll: async function* () {
        for (const k of shared) yield { fromProject: k.projectId, keyId: k.id };
      },
      read: async (_t: string, _p: string, id: string) => shared.find((k) => k.id === id) as KeyDoc & { _etag: string },
    };
    const candidate = (tokensPerMinute: number) => key("new", "src0", tokensPerMinute, into);
    expect(await acceptedInUse(docs, "t", "target", candidate(9999))).toBe(40);
    expect(await acceptedInUse(docs, "t", "target", candidate(2000))).toBeUndefined();
    expect(await acceptedInUse({ ...docs, sharedIntoAll: async function* () {} }, "t", "target", candidate(9999))).toBeUndefined();
    // Records a crash left behind after their shares ended take no room.
    const ended = shared.map((k) => ({ ...k, shares: [{ ...k.shares![0]!, status: "revoked" as const }] }));
    expect(await acceptedInUse({ ...docs, read: async (_t: string, _p: string, id: string) => ended.find((k) => k.id === id) as KeyDoc & { _etag: string } }, "t", "target", candidate(9999))).toBeUndefined();
  });

  it("a shared key holds the profiles the ends of its shares would leave it with, so ending one never needs room", async () => {
    const share = (projectId: string) => ({ projectId, status: "active", approvalId: `apr_${projectId}`, requestedAt: "2026-01-01T00:00:00.000Z" });
    const twice = key("k", "p1", 1000, { shares: [share("a"), share("b")] } as unknown as Partial<KeyDoc>);
    const held = profilesHeldBy(twice).map((d) => d.id);
    // Shared with a and b: its own profile, and those of a alone, b alone and no share.
    expect(new Set(held).size).toBe(4);
    for (const left of [[], ["a"], ["b"]]) expect(held).toContain(profileOf({ ...twice, shares: twice.shares.filter((x) => left.includes(x.projectId)) }));
    // An ended key's shares end with it: it holds its own profile only.
    expect(profilesHeldBy({ ...twice, status: "revoked" }).map((d) => d.id)).toEqual([profileOf(twice)]);
    // 36 other profiles and this key's 4 fill the project; a new one does not fit, and the key's own end of a share (a profile it holds) does.
    const others = Array.from({ length: 36 }, (_, i) => key(`o${i}`, "p1", 3000 + i));
    const docs = { listAll: async () => [...others, twice] };
    expect(await profilesInUse(docs, "t", key("new", "p1", 5000))).toBe(40);
    expect(await profilesInUse(docs, "t", { ...twice, shares: [twice.shares[0]!] })).toBeUndefined();
  });
});
