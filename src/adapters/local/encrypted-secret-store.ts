import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { chmod, link, mkdir, open, readFile, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { systemClock, type Clock } from "../../ports/clock.js";
import {
  assertValidSecretName,
  assertValidSecretVersion,
  assertValidSetInput,
  type SecretStore,
  type SecretValue,
  type SetSecretOptions,
} from "../../ports/secrets.js";

/**
 * The local twin of Key Vault (`npm start`, tests): one file per secret under a private directory.
 *
 * File format: "AGS1" | 12-byte IV | 16-byte GCM tag | AES-256-GCM ciphertext of the JSON record (all
 * versions, tags, flags). The lower-cased secret name is authenticated as AAD, so a file copied over
 * another secret's file fails like a tampered one. A fresh IV per write; a random 96-bit IV stays far
 * below GCM's collision bound at local-development write volumes.
 *
 * The 32-byte key lives in <dir>/master.key (0600, directory 0700): it protects against the data
 * directory being copied, committed or attached to a bug report without the key, not against someone
 * who can read both files as the same user.
 *
 * Writes are serialized per secret within a process and atomic on disk (temp file, fsync, rename).
 * Two processes writing the same secret at once can lose one of the versions (no cross-process lock).
 */
const MAGIC = Buffer.from("AGS1", "ascii");
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const HEADER_BYTES = MAGIC.length + IV_BYTES + TAG_BYTES;
const SECRET_SUFFIX = ".secret";
const KEY_FILE = "master.key";

interface StoredVersion {
  id: string;
  value: string;
  createdOn: string;
  updatedOn: string;
  enabled: boolean;
  expiresOn?: string;
  tags: Record<string, string>;
  contentType?: string;
}

interface StoredSecret {
  /** As first created: names are case-insensitive, the first spelling is kept (as Key Vault does). */
  name: string;
  deletedOn?: string;
  /** Oldest first; creation order is the version order, so equal timestamps cannot reorder them. */
  versions: StoredVersion[];
}

export class SecretStoreCorruptError extends Error {
  constructor(message: string) {
    super(`secret store is corrupt: ${message}`);
    this.name = "SecretStoreCorruptError";
  }
}

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

function isStoredSecret(x: unknown): x is StoredSecret {
  if (typeof x !== "object" || x === null) return false;
  const r = x as Partial<StoredSecret>;
  return (
    typeof r.name === "string" &&
    (r.deletedOn === undefined || typeof r.deletedOn === "string") &&
    Array.isArray(r.versions) &&
    r.versions.every(
      (v: Partial<StoredVersion>) =>
        typeof v === "object" &&
        v !== null &&
        typeof v.id === "string" &&
        typeof v.value === "string" &&
        typeof v.createdOn === "string" &&
        typeof v.updatedOn === "string" &&
        typeof v.enabled === "boolean" &&
        typeof v.tags === "object" &&
        v.tags !== null,
    )
  );
}

function propsOf(name: string, v: StoredVersion): Omit<SecretValue, "value"> {
  const out: Omit<SecretValue, "value"> = {
    name,
    version: v.id,
    createdOn: new Date(v.createdOn),
    updatedOn: new Date(v.updatedOn),
    enabled: v.enabled,
    tags: { ...v.tags },
  };
  if (v.expiresOn !== undefined) out.expiresOn = new Date(v.expiresOn);
  if (v.contentType !== undefined) out.contentType = v.contentType;
  return out;
}

const valueOf = (name: string, v: StoredVersion): SecretValue => ({ ...propsOf(name, v), value: v.value });

/** Temp file, fsync, rename: a reader sees the old file or the new one, never a partial write. */
async function writeAtomic(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    const fh = await open(tmp, "wx", 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** link() fails if the name exists: processes starting together all end up reading the one key that won. */
async function createKeyFile(keyFile: string): Promise<Buffer> {
  const tmp = `${keyFile}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeAtomic(tmp, randomBytes(KEY_BYTES));
    await link(tmp, keyFile).catch((e: unknown) => {
      if (errno(e) !== "EEXIST") throw e;
    });
  } finally {
    await rm(tmp, { force: true });
  }
  return readFile(keyFile);
}

export class EncryptedFileSecretStore implements SecretStore {
  private key: Promise<Buffer> | undefined;
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly clock: Clock;

  constructor(
    private readonly dir: string,
    opts: { clock?: Clock } = {},
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  async get(name: string, version?: string): Promise<SecretValue | undefined> {
    assertValidSecretName(name);
    if (version !== undefined) assertValidSecretVersion(version);
    const rec = await this.read(name);
    if (!rec || rec.deletedOn !== undefined) return undefined;
    const found =
      version === undefined ? rec.versions.findLast((v) => v.enabled) : rec.versions.find((v) => v.id === version && v.enabled);
    return found ? valueOf(rec.name, found) : undefined;
  }

  async set(name: string, value: string, opts: SetSecretOptions = {}): Promise<SecretValue> {
    assertValidSecretName(name);
    assertValidSetInput(value, opts);
    return this.exclusive(name, async () => {
      const rec: StoredSecret = (await this.read(name)) ?? { name, versions: [] };
      if (rec.deletedOn !== undefined) {
        throw new Error(`secret "${name}" is soft-deleted: its name cannot be set again (as in Key Vault before a purge)`);
      }
      const now = this.clock.now().toISOString();
      const v: StoredVersion = { id: randomBytes(16).toString("hex"), value, createdOn: now, updatedOn: now, enabled: true, tags: { ...opts.tags } };
      if (opts.expiresOn) v.expiresOn = opts.expiresOn.toISOString();
      if (opts.contentType !== undefined) v.contentType = opts.contentType;
      rec.versions.push(v);
      await this.write(name, rec);
      return valueOf(rec.name, v);
    });
  }

  async listVersions(name: string): Promise<Omit<SecretValue, "value">[]> {
    assertValidSecretName(name);
    const rec = await this.read(name);
    if (!rec || rec.deletedOn !== undefined) return [];
    return rec.versions.map((v) => propsOf(rec.name, v)).reverse();
  }

  async disableVersion(name: string, version: string): Promise<void> {
    assertValidSecretName(name);
    assertValidSecretVersion(version);
    await this.exclusive(name, async () => {
      const rec = await this.read(name);
      const v = rec?.deletedOn === undefined ? rec?.versions.find((x) => x.id === version) : undefined;
      if (!rec || !v) throw new Error(`secret "${name}" has no version "${version}"`);
      v.enabled = false;
      v.updatedOn = this.clock.now().toISOString();
      await this.write(name, rec);
    });
  }

  async delete(name: string): Promise<void> {
    assertValidSecretName(name);
    await this.exclusive(name, async () => {
      const rec = await this.read(name);
      if (!rec || rec.deletedOn !== undefined) return;
      // Soft delete keeps the versions (encrypted) as Key Vault's retention does; nothing reads them back.
      rec.deletedOn = this.clock.now().toISOString();
      await this.write(name, rec);
    });
  }

  private fileOf(name: string): string {
    // Validated names hold no path characters; lower case makes names case-insensitive, as in Key Vault.
    return join(this.dir, `${name.toLowerCase()}${SECRET_SUFFIX}`);
  }

  private aadOf(name: string): Buffer {
    return Buffer.concat([MAGIC, Buffer.from(name.toLowerCase(), "ascii")]);
  }

  private async read(name: string): Promise<StoredSecret | undefined> {
    const key = await this.masterKey();
    const file = this.fileOf(name);
    let blob: Buffer;
    try {
      blob = await readFile(file);
    } catch (e) {
      if (errno(e) === "ENOENT") return undefined;
      throw e;
    }
    if (blob.length < HEADER_BYTES || !blob.subarray(0, MAGIC.length).equals(MAGIC)) {
      throw new SecretStoreCorruptError(`${file} is not a secret file (bad header or truncated)`);
    }
    const iv = blob.subarray(MAGIC.length, MAGIC.length + IV_BYTES);
    const tag = blob.subarray(MAGIC.length + IV_BYTES, HEADER_BYTES);
    const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(this.aadOf(name));
    decipher.setAuthTag(tag);
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(blob.subarray(HEADER_BYTES)), decipher.final()]);
    } catch {
      throw new SecretStoreCorruptError(`${file} failed authentication (modified, truncated, or written with another master.key)`);
    }
    let rec: unknown;
    try {
      rec = JSON.parse(plain.toString("utf8"));
    } catch {
      // No cause attached: JSON.parse's message quotes the text, which holds secret values.
      throw new SecretStoreCorruptError(`${file} decrypted to an unreadable record`);
    }
    if (!isStoredSecret(rec)) throw new SecretStoreCorruptError(`${file} decrypted to an unexpected record shape`);
    return rec;
  }

  private async write(name: string, rec: StoredSecret): Promise<void> {
    const key = await this.masterKey();
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(this.aadOf(name));
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify(rec), "utf8"), cipher.final()]);
    await writeAtomic(this.fileOf(name), Buffer.concat([MAGIC, iv, cipher.getAuthTag(), ciphertext]));
  }

  private masterKey(): Promise<Buffer> {
    this.key ??= this.loadOrCreateKey().catch((e: unknown) => {
      this.key = undefined;
      throw e;
    });
    return this.key;
  }

  private async loadOrCreateKey(): Promise<Buffer> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // mode only applies to a directory mkdir creates; an existing one may have been created wider.
    await chmod(this.dir, 0o700);
    const keyFile = join(this.dir, KEY_FILE);
    const readKey = () =>
      readFile(keyFile).catch((e: unknown) => {
        if (errno(e) === "ENOENT") return undefined;
        throw e;
      });
    let key: Buffer | undefined = await readKey();
    if (!key) {
      const orphans = (await readdir(this.dir)).filter((f) => f.endsWith(SECRET_SUFFIX));
      if (orphans.length === 0) {
        key = await createKeyFile(keyFile);
      } else {
        // Re-read after listing: a concurrent process links its key before it writes any secret file.
        key = await readKey();
        // Minting a new key here would silently make every existing secret unreadable.
        if (!key) throw new SecretStoreCorruptError(`${keyFile} is missing but ${orphans.length} secret file(s) exist; restore the key file`);
      }
    }
    if (key.length !== KEY_BYTES) throw new SecretStoreCorruptError(`${keyFile} must hold exactly ${KEY_BYTES} bytes`);
    return key;
  }

  /** Read-modify-write of one secret's file, one at a time per (case-insensitive) name. */
  private exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const k = name.toLowerCase();
    const run = (this.queues.get(k) ?? Promise.resolve()).then(fn);
    const tail = run.catch(() => undefined);
    this.queues.set(k, tail);
    void tail.then(() => {
      if (this.queues.get(k) === tail) this.queues.delete(k);
    });
    return run;
  }
}
