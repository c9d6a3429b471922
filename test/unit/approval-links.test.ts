import { createHmac } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EncryptedFileSecretStore } from "../../src/adapters/local/encrypted-secret-store.js";
import { ApprovalLinks, LINK_KEY_SECRET } from "../../src/domain/approvals/links.js";
import { durationMs } from "../../src/domain/approvals/schema.js";

const dirs: string[] = [];
/** The local secret store (Key Vault's rules: versions, disabled versions unreadable), in a fresh folder. */
async function secretStore() {
  const dir = await mkdtemp(join(tmpdir(), "aigov-links-"));
  dirs.push(dir);
  return new EncryptedFileSecretStore(dir);
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("approver links", () => {
  const now = { t: Date.parse("2026-11-23T12:00:00Z") };
  const clock = { now: () => new Date(now.t) };
  const claims = { tid: "t1", aid: "apr_x", st: 0, ap: "bob", exp: Math.floor(now.t / 1000) + 60 };

  it("round-trips, with a key created once in the secret store, named by the token, and a fresh nonce per link", async () => {
    const secrets = await secretStore();
    const links = new ApprovalLinks(secrets, clock);
    const a = await links.issue(claims);
    const b = await links.issue(claims);
    expect(a.nonce).not.toBe(b.nonce);
    expect(await links.verify(a.token)).toEqual({ ok: true, claims: { ...claims, n: a.nonce } });
    const versions = await secrets.listVersions(LINK_KEY_SECRET);
    expect(versions).toHaveLength(1);
    expect(a.token.split(".").slice(0, 2)).toEqual(["v2", versions[0]!.version]);
    expect(Buffer.from((await secrets.get(LINK_KEY_SECRET))!.value, "base64")).toHaveLength(32);
    // Another instance with the same secret store verifies the same links.
    expect((await new ApprovalLinks(secrets, clock).verify(a.token)).ok).toBe(true);
  });

  it("a version disabled in an emergency signs no new link, even before the instance would look again: the next link is signed with a version that verifies", async () => {
    const secrets = await secretStore();
    const links = new ApprovalLinks(secrets, clock);
    const leaked = await links.issue(claims);
    await secrets.disableVersion(LINK_KEY_SECRET, leaked.token.split(".")[1]!);
    expect(await links.verify(leaked.token)).toMatchObject({ ok: false });
    // Well within the ten minutes the instance keeps the version it read.
    const next = await links.issue(claims);
    expect(next.token.split(".")[1]).not.toBe(leaked.token.split(".")[1]);
    expect(await links.verify(next.token)).toEqual({ ok: true, claims: { ...claims, n: next.nonce } });
  });

  it("a version holding less than 32 bytes of key material (added by hand, or not base64) neither signs nor verifies", async () => {
    const secrets = await secretStore();
    const links = new ApprovalLinks(secrets, clock);
    const good = await links.issue({ ...claims, exp: Math.floor(now.t / 1000) + 3600 });
    const weak = await secrets.set(LINK_KEY_SECRET, Buffer.from("short").toString("base64"));
    now.t += 11 * 60_000; // the instance looks again and finds the weak version newest
    try {
      await expect(new ApprovalLinks(secrets, clock).issue(claims)).rejects.toThrow(/less than 32 bytes/);
      await expect(links.issue(claims)).rejects.toThrow(/less than 32 bytes/);
      // A token forged with the weak key (its id is in every link it would sign) is refused.
      const body = `v2.${weak.version}.${Buffer.from(JSON.stringify({ ...claims, exp: Math.floor(now.t / 1000) + 60, n: "x" })).toString("base64url")}`;
      const forged = `${body}.${createHmac("sha256", Buffer.from("short")).update(body).digest("base64url")}`;
      expect(await links.verify(forged)).toMatchObject({ ok: false });
      // Links signed before with a proper version still verify.
      expect((await links.verify(good.token)).ok).toBe(true);
    } finally {
      now.t -= 11 * 60_000;
    }
  });

  it("instances racing to create the key each verify the other's links (tokens name their version)", async () => {
    const secrets = await secretStore();
    const [one, two] = [new ApprovalLinks(secrets, clock), new ApprovalLinks(secrets, clock)];
    const [a, b] = await Promise.all([one.issue(claims), two.issue(claims)]);
    expect((await secrets.listVersions(LINK_KEY_SECRET)).length).toBeGreaterThan(1); // both wrote a version
    expect([(await one.verify(b.token)).ok, (await two.verify(a.token)).ok]).toEqual([true, true]);
  });

  it("rotation: a new version signs new links once instances look again; the old one's links verify until it is disabled, then nowhere", async () => {
    const started = now.t;
    const secrets = await secretStore();
    const links = new ApprovalLinks(secrets, clock);
    const old = await links.issue({ ...claims, exp: Math.floor(now.t / 1000) + 3600 });
    await secrets.set(LINK_KEY_SECRET, Buffer.alloc(32, 7).toString("base64"));
    now.t += 11 * 60_000; // past the time an instance keeps the version it read
    const fresh = await links.issue({ ...claims, exp: Math.floor(now.t / 1000) + 3600 });
    expect(fresh.token.split(".")[1]).not.toBe(old.token.split(".")[1]);
    expect([(await links.verify(old.token)).ok, (await links.verify(fresh.token)).ok]).toEqual([true, true]);
    await secrets.disableVersion(LINK_KEY_SECRET, old.token.split(".")[1]!);
    // The instance that signed it refuses it at once too (tokens are checked against the store).
    expect(await links.verify(old.token)).toEqual({ ok: false, reason: "forged" });
    expect((await links.verify(fresh.token)).ok).toBe(true);
    now.t = started;
  });

  it("a link signed with a disabled key version is void; links from before key ids still verify", async () => {
    const secrets = await secretStore();
    const { token } = await new ApprovalLinks(secrets, clock).issue(claims);
    const key = Buffer.from((await secrets.get(LINK_KEY_SECRET))!.value, "base64");
    const payload = token.split(".")[2]!;
    const legacy = `v1.${payload}.${createHmac("sha256", key).update(payload).digest("base64url")}`;
    expect(await new ApprovalLinks(secrets, clock).verify(legacy)).toMatchObject({ ok: true, claims: { aid: "apr_x" } });
    await secrets.disableVersion(LINK_KEY_SECRET, token.split(".")[1]!);
    const after = new ApprovalLinks(secrets, clock);
    expect(await after.verify(token)).toEqual({ ok: false, reason: "forged" });
    expect(await after.verify(legacy)).toEqual({ ok: false, reason: "forged" });
    // The next link is signed with a new version.
    const next = await after.issue(claims);
    expect(next.token.split(".")[1]).not.toBe(token.split(".")[1]);
    expect((await after.verify(next.token)).ok).toBe(true);
  });

  it("refuses tampered, forged, malformed and expired links", async () => {
    const links = new ApprovalLinks(await secretStore(), clock);
    const { token } = await links.issue(claims);
    const [v, kid, payload, sig] = token.split(".");
    const tampered = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, "base64url").toString()), ap: "mallory" })).toString("base64url");
    expect(await links.verify(`${v}.${kid}.${tampered}.${sig}`)).toEqual({ ok: false, reason: "forged" });
    expect(await links.verify((await new ApprovalLinks(await secretStore(), clock).issue(claims)).token)).toEqual({ ok: false, reason: "forged" });
    expect(await links.verify(`${v}.${"0".repeat(32)}.${payload}.${sig}`)).toEqual({ ok: false, reason: "forged" });
    expect(await links.verify(`${v}.../x.${payload}.${sig}`)).toEqual({ ok: false, reason: "malformed" });
    expect(await links.verify("garbage")).toEqual({ ok: false, reason: "malformed" });
    now.t += 61_000;
    // Expired, but authentic: the claims come along (a late decision through it expires the request it names).
    expect(await links.verify(token)).toMatchObject({ ok: false, reason: "expired", claims: { aid: "apr_x", st: 0, ap: "bob" } });
  });

  it("parses ISO-8601 durations", () => {
    expect(durationMs("PT2S")).toBe(2000);
    expect(durationMs("P1DT1H30M")).toBe((24 * 3600 + 5400) * 1000);
    expect(durationMs("P")).toBeUndefined();
    expect(durationMs("PT")).toBeUndefined();
    expect(durationMs("1 day")).toBeUndefined();
  });
});
