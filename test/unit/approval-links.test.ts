import { describe, expect, it } from "vitest";
import { ApprovalLinks, LINK_KEY_SECRET } from "../../src/domain/approvals/links.js";
import { durationMs } from "../../src/domain/approvals/schema.js";
import type { SecretStore, SecretValue } from "../../src/ports/secrets.js";

function memorySecrets(): SecretStore & { values: Map<string, string> } {
  const values = new Map<string, string>();
  const value = (name: string): SecretValue => ({ name, value: values.get(name)!, version: "1", updatedOn: new Date(), enabled: true, tags: {} });
  return {
    values,
    get: async (name) => (values.has(name) ? value(name) : undefined),
    set: async (name, v) => (values.set(name, v), value(name)),
    listVersions: async () => [],
    disableVersion: async () => undefined,
    delete: async (name) => void values.delete(name),
  };
}

describe("approver links", () => {
  const now = { t: Date.parse("2026-11-23T12:00:00Z") };
  const clock = { now: () => new Date(now.t) };
  const claims = { tid: "t1", aid: "apr_x", st: 0, ap: "bob", exp: Math.floor(now.t / 1000) + 60 };

  it("round-trips, with a key created once in the secret store and a fresh nonce per link", async () => {
    const secrets = memorySecrets();
    const links = new ApprovalLinks(secrets, clock);
    const a = await links.issue(claims);
    const b = await links.issue(claims);
    expect(a.nonce).not.toBe(b.nonce);
    expect(await links.verify(a.token)).toEqual({ ok: true, claims: { ...claims, n: a.nonce } });
    expect(Buffer.from(secrets.values.get(LINK_KEY_SECRET)!, "base64")).toHaveLength(32);
    // Another instance with the same secret store verifies the same links.
    expect((await new ApprovalLinks(secrets, clock).verify(a.token)).ok).toBe(true);
  });

  it("refuses tampered, forged, malformed and expired links", async () => {
    const links = new ApprovalLinks(memorySecrets(), clock);
    const { token } = await links.issue(claims);
    const [v, payload, sig] = token.split(".");
    const tampered = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, "base64url").toString()), ap: "mallory" })).toString("base64url");
    expect(await links.verify(`${v}.${tampered}.${sig}`)).toEqual({ ok: false, reason: "forged" });
    expect(await links.verify((await new ApprovalLinks(memorySecrets(), clock).issue(claims)).token)).toEqual({ ok: false, reason: "forged" });
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
