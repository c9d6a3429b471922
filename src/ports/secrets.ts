/**
 * Secrets (upstream provider keys, the HMAC pepper, ...) as the domain sees them.
 * Implemented by Key Vault in Azure and by an encrypted directory locally; both follow Key Vault's rules,
 * so what passes locally behaves the same in Azure:
 *  - names match KEYVAULT_SECRET_NAME and are case-insensitive ("Api-Key" and "api-key" are one secret);
 *  - every set() creates a new version; old versions stay readable until disabled;
 *  - get(name) returns the newest ENABLED version (Key Vault itself refuses a read of a disabled latest
 *    version; the adapters fall back to the newest enabled one so a rollback is just "disable the bad one");
 *  - expiresOn is informational, as in Key Vault: get() still returns an expired secret, and the caller
 *    decides (the gateway must enforce expiry itself);
 *  - delete() is a soft delete: the secret disappears from get()/listVersions(), and its name cannot be
 *    set again (Key Vault keeps it for the retention period; recovery/purge are operator actions).
 * Values are never logged and never part of an error message.
 */
export interface SecretValue {
  name: string;
  value: string;
  version: string;
  /** When this version's properties last changed (disabling a version changes it). */
  updatedOn: Date;
  /** When this version was created: the order of versions. */
  createdOn?: Date;
  expiresOn?: Date;
  enabled: boolean;
  tags: Record<string, string>;
  contentType?: string;
}

export interface SetSecretOptions {
  expiresOn?: Date;
  tags?: Record<string, string>;
  contentType?: string;
}

export interface SecretStore {
  /** undefined when the secret (or that version) is missing, deleted or disabled. */
  get(name: string, version?: string): Promise<SecretValue | undefined>;
  /** Creates a new version. Throws if the name is soft-deleted. */
  set(name: string, value: string, opts?: SetSecretOptions): Promise<SecretValue>;
  /** Every version, disabled ones included, newest first; [] when missing or deleted. */
  listVersions(name: string): Promise<Omit<SecretValue, "value">[]>;
  /** A disabled version is never returned by get(). Throws if the version does not exist. */
  disableVersion(name: string, version: string): Promise<void>;
  /** Soft delete; get() then returns undefined. A no-op when the secret is missing or already deleted. */
  delete(name: string): Promise<void>;
}

/** Key Vault's rule for object names. */
export const KEYVAULT_SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;
/** Key Vault versions are 32 hex characters; accepting any short alphanumeric id keeps callers honest about paths. */
const SECRET_VERSION = /^[0-9a-zA-Z]{1,64}$/;

/** Callers build names from ids: reject early, with the name (never a value) in the message. */
export function assertValidSecretName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !KEYVAULT_SECRET_NAME.test(name)) {
    const shown = typeof name === "string" ? JSON.stringify(name.length > 140 ? `${name.slice(0, 140)}…` : name) : typeof name;
    throw new Error(`invalid secret name ${shown}: use 1-127 characters from 0-9, a-z, A-Z and "-"`);
  }
}

export function assertValidSecretVersion(version: unknown): asserts version is string {
  if (typeof version !== "string" || !SECRET_VERSION.test(version)) {
    const shown = typeof version === "string" ? JSON.stringify(version.slice(0, 70)) : typeof version;
    throw new Error(`invalid secret version ${shown}: expected a version id as returned by set() or listVersions()`);
  }
}

/** Key Vault's documented limits (about-secrets.md), enforced locally too so the local store cannot accept what Azure refuses. */
export const SECRET_LIMITS = { valueBytes: 25 * 1024, tags: 15, contentTypeChars: 255 } as const;

/** Shared by the adapters so both reject the same input before touching storage. */
export function assertValidSetInput(value: unknown, opts: SetSecretOptions | undefined): void {
  if (typeof value !== "string") throw new Error("secret value must be a string");
  if (Buffer.byteLength(value, "utf8") > SECRET_LIMITS.valueBytes) {
    throw new Error(`secret value exceeds ${SECRET_LIMITS.valueBytes} bytes`);
  }
  if (opts?.expiresOn !== undefined && (!(opts.expiresOn instanceof Date) || Number.isNaN(opts.expiresOn.getTime()))) {
    throw new Error("expiresOn must be a valid Date");
  }
  if (opts?.contentType !== undefined && (typeof opts.contentType !== "string" || opts.contentType.length > SECRET_LIMITS.contentTypeChars)) {
    throw new Error(`contentType must be a string of at most ${SECRET_LIMITS.contentTypeChars} characters`);
  }
  if (opts?.tags !== undefined) {
    const entries = Object.entries(opts.tags);
    if (entries.length > SECRET_LIMITS.tags) throw new Error(`at most ${SECRET_LIMITS.tags} tags per secret`);
    for (const [k, v] of entries) {
      if (typeof v !== "string") throw new Error(`tag ${JSON.stringify(k)} must have a string value`);
    }
  }
}
