import { randomBytes } from "node:crypto";
import { copyFile, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyVaultSecretStore } from "../../src/adapters/keyvault/secret-store.js";
import { EncryptedFileSecretStore } from "../../src/adapters/local/encrypted-secret-store.js";
import type { SecretStore } from "../../src/ports/secrets.js";
import { startKeyVaultFake, type KeyVaultFake } from "../support/keyvault-fake.js";
import { errorOf } from "../support/errors.js";

const fakeCredential = { getToken: async () => ({ token: "fake", expiresOnTimestamp: Date.now() + 3600_000 }) };
const insecure = { allowInsecureConnection: true, disableChallengeResourceVerification: true };
/** Key Vault keeps whole seconds; round trips are compared at that resolution. */
const wholeSecond = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
const uniqueName = (prefix: string) => `${prefix}-${randomBytes(4).toString("hex")}`;


/** Key Vault timestamps have 1 s resolution: a clock that ticks a second per read keeps versions ordered without sleeping. */
function tickingClock(): () => Date {
  let t = Date.now();
  return () => new Date((t += 1000));
}

interface Harness {
  name: string;
  setup(): Promise<{ store: SecretStore; teardown(): Promise<void> }>;
}

const harnesses: Harness[] = [
  {
    name: "KeyVaultSecretStore (SDK → local Key Vault fake)",
    async setup() {
      const fake = await startKeyVaultFake({ clock: tickingClock() });
      const store = new KeyVaultSecretStore(fake.url, { credential: fakeCredential, clientOptions: insecure });
      return { store, teardown: () => fake.close() };
    },
  },
  {
    name: "EncryptedFileSecretStore (temp dir)",
    async setup() {
      const dir = await mkdtemp(join(tmpdir(), "aigov-secrets-"));
      const store = new EncryptedFileSecretStore(join(dir, "secrets"));
      return { store, teardown: () => rm(dir, { recursive: true, force: true }) };
    },
  },
];

for (const h of harnesses) {
  describe(`SecretStore contract: ${h.name}`, () => {
    let store: SecretStore;
    let teardown: () => Promise<void>;
    beforeAll(async () => {
      ({ store, teardown } = await h.setup());
    });
    afterAll(() => teardown());

    it("sets and gets a secret", async () => {
      const name = uniqueName("basic");
      const value = "s3cr3t value\nwith newline, ünïcødé and \"quotes\"";
      const created = await store.set(name, value);
      expect(created).toMatchObject({ name, value, enabled: true, tags: {} });
      expect(created.version).toMatch(/^[0-9a-f]{32}$/);
      expect(created.updatedOn).toBeInstanceOf(Date);
      expect(created.expiresOn).toBeUndefined();
      const got = await store.get(name);
      expect(got).toMatchObject({ name, value, version: created.version, enabled: true, tags: {} });
    });

    it("returns undefined for a missing secret; listVersions is empty; disabling a missing version throws", async () => {
      const name = uniqueName("missing");
      expect(await store.get(name)).toBeUndefined();
      expect(await store.get(name, "0123456789abcdef0123456789abcdef")).toBeUndefined();
      expect(await store.listVersions(name)).toEqual([]);
      await expect(store.disableVersion(name, "0123456789abcdef0123456789abcdef")).rejects.toThrow(/has no version/);
    });

    it("creates a new version on every set; old versions stay readable; listVersions is newest first, without values", async () => {
      const name = uniqueName("versions");
      const v1 = await store.set(name, "one");
      const v2 = await store.set(name, "two");
      const v3 = await store.set(name, "three");
      expect(new Set([v1.version, v2.version, v3.version]).size).toBe(3);
      expect((await store.get(name))?.value).toBe("three");
      expect((await store.get(name, v1.version))?.value).toBe("one");
      expect((await store.get(name, v2.version))?.value).toBe("two");
      expect(await store.get(name, "ffffffffffffffffffffffffffffffff")).toBeUndefined();
      const versions = await store.listVersions(name);
      expect(versions.map((v) => v.version)).toEqual([v3.version, v2.version, v1.version]);
      for (const v of versions) {
        expect(v).not.toHaveProperty("value");
        expect(v).toMatchObject({ name, enabled: true });
      }
    });

    it("never returns a disabled version; get(name) falls back to the newest enabled version", async () => {
      const name = uniqueName("disable");
      const v1 = await store.set(name, "one");
      const v2 = await store.set(name, "two");
      const v3 = await store.set(name, "three");

      await store.disableVersion(name, v3.version);
      expect(await store.get(name, v3.version)).toBeUndefined();
      expect(await store.get(name)).toMatchObject({ value: "two", version: v2.version });

      // A disabled version in the middle is skipped too.
      await store.disableVersion(name, v2.version);
      expect(await store.get(name)).toMatchObject({ value: "one", version: v1.version });

      const listed = await store.listVersions(name);
      expect(listed.map((v) => [v.version, v.enabled])).toEqual([
        [v3.version, false],
        [v2.version, false],
        [v1.version, true],
      ]);

      // Disabling twice is harmless; with every version disabled, nothing is readable.
      await store.disableVersion(name, v3.version);
      await store.disableVersion(name, v1.version);
      expect(await store.get(name)).toBeUndefined();
      expect(await store.get(name, v1.version)).toBeUndefined();

      // A new set makes the secret readable again.
      const v4 = await store.set(name, "four");
      expect(await store.get(name)).toMatchObject({ value: "four", version: v4.version });
    });

    it("soft-deletes: get and listVersions then see nothing; delete is idempotent; the name cannot be set again", async () => {
      const name = uniqueName("delete");
      const v1 = await store.set(name, "doomed");
      await store.set(name, "doomed too");
      await store.delete(name);
      expect(await store.get(name)).toBeUndefined();
      expect(await store.get(name, v1.version)).toBeUndefined();
      expect(await store.listVersions(name)).toEqual([]);
      await expect(store.disableVersion(name, v1.version)).rejects.toThrow(/has no version/);
      await store.delete(name);
      await store.delete(uniqueName("never-existed"));
      const err = await errorOf(store.set(name, "resurrected"));
      expect(err.message).toMatch(/soft-deleted/);
      expect(err.message).not.toContain("resurrected");
    });

    it("round-trips tags, expiresOn and contentType (on set, get and listVersions)", async () => {
      const name = uniqueName("attrs");
      const expiresOn = wholeSecond(Date.now() + 60 * 86_400_000);
      const tags = { CredentialId: "key1", ProviderAddress: "openai/acme", ValidityPeriodDays: "60" };
      const created = await store.set(name, "v", { expiresOn, tags, contentType: "text/plain" });
      expect(created).toMatchObject({ tags, expiresOn, contentType: "text/plain" });
      expect(await store.get(name)).toMatchObject({ tags, expiresOn, contentType: "text/plain", value: "v" });
      const [listed] = await store.listVersions(name);
      expect(listed).toMatchObject({ version: created.version, tags, expiresOn, contentType: "text/plain" });
      // Tags belong to a version: the next version starts without them.
      const next = await store.set(name, "w");
      expect(next.tags).toEqual({});
      expect(next.expiresOn).toBeUndefined();
      expect((await store.get(name, created.version))?.tags).toEqual(tags);
    });

    it("still returns an expired secret (expiry is informational, as in Key Vault: callers enforce it)", async () => {
      const name = uniqueName("expired");
      const expiresOn = wholeSecond(Date.now() - 86_400_000);
      await store.set(name, "old", { expiresOn });
      expect(await store.get(name)).toMatchObject({ value: "old", expiresOn });
    });

    it("treats names case-insensitively", async () => {
      const name = uniqueName("Mixed-Case");
      await store.set(name, "one");
      await store.set(name.toUpperCase(), "two");
      expect((await store.get(name.toLowerCase()))?.value).toBe("two");
      expect(await store.listVersions(name)).toHaveLength(2);
    });

    it("rejects invalid names and versions before doing anything", async () => {
      const bad = ["", "a/b", "a.b", "with space", "ünï", "../etc", "x".repeat(128), "a_b"];
      for (const name of bad) {
        await expect(store.get(name), name).rejects.toThrow(/invalid secret name/);
        await expect(store.set(name, "top-secret-value"), name).rejects.toThrow(/invalid secret name/);
        await expect(store.listVersions(name), name).rejects.toThrow(/invalid secret name/);
        await expect(store.disableVersion(name, "abc"), name).rejects.toThrow(/invalid secret name/);
        await expect(store.delete(name), name).rejects.toThrow(/invalid secret name/);
      }
      await expect(store.set("ok-name", "top-secret-value")).resolves.toBeDefined();
      const longest = "a".repeat(127);
      await expect(store.set(longest, "v")).resolves.toMatchObject({ value: "v" });
      for (const version of ["", "../x", "a/b", "v 1"]) {
        await expect(store.get("ok-name", version), version).rejects.toThrow(/invalid secret version/);
        await expect(store.disableVersion("ok-name", version), version).rejects.toThrow(/invalid secret version/);
      }
    });

    it("enforces Key Vault's limits locally too, without echoing the value", async () => {
      const name = uniqueName("limits");
      const huge = "Z".repeat(25 * 1024 + 1);
      const err = await errorOf(store.set(name, huge));
      expect(err.message).toMatch(/exceeds/);
      expect(err.message).not.toContain("ZZZZ");
      const tags = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`t${i}`, "x"]));
      await expect(store.set(name, "v", { tags })).rejects.toThrow(/at most 15 tags/);
      await expect(store.set(name, "v", { expiresOn: new Date("nope") })).rejects.toThrow(/valid Date/);
      expect(await store.get(name)).toBeUndefined();
    });
  });
}

describe("KeyVaultSecretStore specifics", () => {
  let fake: KeyVaultFake;
  beforeAll(async () => {
    fake = await startKeyVaultFake({ clock: tickingClock() });
  });
  afterAll(() => fake.close());
  const newStore = (retryOptions?: { maxRetries?: number; retryDelayInMs?: number }) =>
    new KeyVaultSecretStore(fake.url, {
      credential: fakeCredential,
      clientOptions: { ...insecure, ...(retryOptions ? { retryOptions } : {}) },
    });

  it("does the challenge handshake: first request without a token, answered 401, then retried with the bearer token", async () => {
    const store = newStore();
    const before = fake.requests.length;
    const name = uniqueName("handshake");
    await store.set(name, "v");
    await store.get(name);
    const seen = fake.requests.slice(before);
    expect(seen[0]).toMatchObject({ method: "PUT", path: `/secrets/${name}`, authorized: false, status: 401 });
    expect(seen[1]).toMatchObject({ method: "PUT", path: `/secrets/${name}`, authorized: true, status: 200 });
    // Once the challenge is known, later requests carry the token from the start.
    expect(seen.slice(1).every((r) => r.authorized)).toBe(true);
    expect(seen.slice(2)).toEqual([{ method: "GET", path: `/secrets/${name}/`, authorized: true, status: 200 }]);
  });

  it("lists more than one page of versions (nextLink) and still sorts them newest first", async () => {
    const store = newStore();
    const name = uniqueName("paged");
    const versions: string[] = [];
    for (let i = 0; i < 30; i++) versions.push((await store.set(name, `v${i}`)).version);
    const before = fake.requests.length;
    const listed = await store.listVersions(name);
    expect(listed.map((v) => v.version)).toEqual(versions.reverse());
    expect(fake.requests.slice(before).filter((r) => r.path.endsWith("/versions"))).toHaveLength(2);
  });

  it("leaves retries to the SDK's policy (a 503 with Retry-After is retried)", async () => {
    const store = newStore();
    const name = uniqueName("retry");
    await store.set(name, "v");
    fake.failNext({ status: 503, retryAfterSeconds: 0 });
    const before = fake.requests.length;
    expect((await store.get(name))?.value).toBe("v");
    expect(fake.requests.slice(before).map((r) => r.status)).toEqual([503, 200]);
  });

  it("surfaces a 403 that is not 'disabled' (e.g. RBAC) instead of reading it as missing", async () => {
    const store = newStore();
    const name = uniqueName("rbac");
    await store.set(name, "v");
    fake.failNext({
      status: 403,
      body: JSON.stringify({ error: { code: "Forbidden", message: "Caller is not authorized to perform action on resource.", innererror: { code: "ForbiddenByRbac" } } }),
    });
    await expect(store.get(name)).rejects.toThrow(/HTTP 403, ForbiddenByRbac.*not authorized/);
  });

  it("keeps secret values out of errors, even when the SDK would quote a response body", async () => {
    const store = newStore({ maxRetries: 0 });
    const name = uniqueName("leak");
    const value = `leak-${randomBytes(8).toString("hex")}`;
    await store.set(name, value);
    // A truncated 200 response: the SDK's PARSE_ERROR message quotes the body, value included.
    fake.failNext({ status: 200, body: `{"value":"${value}","id":` });
    const err = await errorOf(store.get(name));
    expect(err.message).toMatch(/Key Vault get of secret/);
    expect(err.message).not.toContain(value);
    expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain(value);
    expect(err.cause).toBeUndefined();

    // A failed set: the SDK's RestError keeps the request (and its body, the value); ours does not.
    fake.failNext({ status: 500, body: JSON.stringify({ error: { code: "InternalError", message: "boom" } }) });
    const setErr = await errorOf(store.set(name, value));
    expect(setErr.message).toMatch(/Key Vault set of secret .*HTTP 500.*boom/);
    expect(Object.getOwnPropertyNames(setErr)).not.toContain("request");
    expect(JSON.stringify(setErr, Object.getOwnPropertyNames(setErr))).not.toContain(value);
  });
});

describe("EncryptedFileSecretStore specifics", () => {
  let root: string;
  let dir: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "aigov-secrets-file-"));
    dir = join(root, "secrets");
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  const allBytes = async (d: string): Promise<Buffer> =>
    Buffer.concat(await Promise.all((await readdir(d)).map((f) => readFile(join(d, f)))));

  it("keeps nothing in plaintext: not the value, not the tags, not the content type", async () => {
    const store = new EncryptedFileSecretStore(dir);
    const value = `plaintext-canary-${randomBytes(8).toString("hex")}`;
    const tagValue = `tag-canary-${randomBytes(8).toString("hex")}`;
    await store.set("canary", value, { tags: { owner: tagValue }, contentType: "application/x-canary" });
    await store.set("canary", value + "-2");
    const bytes = await allBytes(dir);
    for (const needle of [value, tagValue, "application/x-canary"]) {
      expect(bytes.includes(Buffer.from(needle, "utf8"))).toBe(false);
      expect(bytes.includes(Buffer.from(needle, "utf16le"))).toBe(false);
      expect(bytes.includes(Buffer.from(Buffer.from(needle).toString("base64")))).toBe(false);
    }
    // No temp files left behind by the atomic writes.
    expect((await readdir(dir)).sort()).toEqual(["canary.secret", "master.key"]);
  });

  it.skipIf(process.platform === "win32")("creates master.key with mode 0600 inside a 0700 directory", async () => {
    const store = new EncryptedFileSecretStore(dir);
    await store.get("anything");
    expect((await stat(join(dir, "master.key"))).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, "master.key"))).size).toBe(32);
    expect((await stat(join(dir, "canary.secret"))).mode & 0o077).toBe(0);
  });

  it("survives re-opening: a new instance on the same directory reads versions, flags and deletions", async () => {
    const first = new EncryptedFileSecretStore(dir);
    const a1 = await first.set("reopen-a", "a1", { tags: { k: "v" } });
    const a2 = await first.set("reopen-a", "a2");
    await first.disableVersion("reopen-a", a2.version);
    await first.set("reopen-b", "b1");
    await first.delete("reopen-b");

    const second = new EncryptedFileSecretStore(dir);
    expect(await second.get("reopen-a")).toMatchObject({ value: "a1", version: a1.version, tags: { k: "v" } });
    expect(await second.get("reopen-a", a2.version)).toBeUndefined();
    expect((await second.listVersions("reopen-a")).map((v) => [v.version, v.enabled])).toEqual([
      [a2.version, false],
      [a1.version, true],
    ]);
    expect(await second.get("reopen-b")).toBeUndefined();
    await expect(second.set("reopen-b", "b2")).rejects.toThrow(/soft-deleted/);
  });

  it("detects tampering anywhere in a file (header, IV, tag, ciphertext) and never returns garbage", async () => {
    const store = new EncryptedFileSecretStore(dir);
    const value = `tamper-${randomBytes(8).toString("hex")}`;
    await store.set("tamper", value);
    const file = join(dir, "tamper.secret");
    const original = await readFile(file);
    for (const at of [0, 4, 16, 20, 32, 40, original.length - 1]) {
      const flipped = Buffer.from(original);
      flipped[at] = (flipped[at] ?? 0) ^ 0x01;
      await writeFile(file, flipped);
      const err = await errorOf(store.get("tamper"));
      expect(err.message, `byte ${at}`).toMatch(/secret store is corrupt/);
      expect(err.message).not.toContain(value);
      // Writes refuse to build on a corrupt file too.
      await expect(store.set("tamper", "new")).rejects.toThrow(/secret store is corrupt/);
    }
    await writeFile(file, original.subarray(0, 20));
    await expect(store.get("tamper")).rejects.toThrow(/secret store is corrupt/);
    await writeFile(file, original);
    expect((await store.get("tamper"))?.value).toBe(value);
  });

  it("binds each file to its secret name: a file copied over another secret's file is rejected", async () => {
    const store = new EncryptedFileSecretStore(dir);
    await store.set("swap-a", "a");
    await store.set("swap-b", "b");
    await copyFile(join(dir, "swap-a.secret"), join(dir, "swap-b.secret"));
    await expect(store.get("swap-b")).rejects.toThrow(/secret store is corrupt/);
    expect((await store.get("swap-a"))?.value).toBe("a");
  });

  it("rejects files written under another master.key, and refuses to mint a new key over existing secrets", async () => {
    const other = await mkdtemp(join(tmpdir(), "aigov-secrets-other-"));
    try {
      await new EncryptedFileSecretStore(other).set("foreign", "x");
      await copyFile(join(other, "foreign.secret"), join(dir, "foreign.secret"));
      await expect(new EncryptedFileSecretStore(dir).get("foreign")).rejects.toThrow(/secret store is corrupt/);

      await unlink(join(other, "master.key"));
      await expect(new EncryptedFileSecretStore(other).get("foreign")).rejects.toThrow(/master\.key is missing/);
      await expect(readdir(other)).resolves.toEqual(["foreign.secret"]);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("serializes concurrent writes to one secret (no lost versions) and agrees on one key when started concurrently", async () => {
    const fresh = join(root, "concurrent");
    const stores = Array.from({ length: 4 }, () => new EncryptedFileSecretStore(fresh));
    // Four instances racing to create master.key: all must end up with the same key.
    await Promise.all(stores.map((s, i) => s.set(`race-${i}`, `r${i}`)));
    const store = stores[0]!;
    for (let i = 0; i < 4; i++) expect((await store.get(`race-${i}`))?.value).toBe(`r${i}`);

    const created = await Promise.all(Array.from({ length: 20 }, (_, i) => store.set("busy", `v${i}`)));
    expect(await store.listVersions("busy")).toHaveLength(20);
    expect((await store.get("busy"))?.version).toBe(created.at(-1)?.version);
  });
});
