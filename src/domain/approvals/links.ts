import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Clock } from "../../ports/clock.js";
import type { SecretStore } from "../../ports/secrets.js";

/** What a signed approver link proves: this approver may decide this stage of this request until exp. */
export interface LinkClaims {
  tid: string;
  aid: string;
  st: number;
  ap: string;
  exp: number; // epoch seconds
  n: string; // single-use nonce
}

/** An expired link still carries its (authentic) claims: a late decision through it expires the request it names. */
export type LinkCheck = { ok: true; claims: LinkClaims } | { ok: false; reason: "malformed" | "forged" } | { ok: false; reason: "expired"; claims: LinkClaims };

export const LINK_KEY_SECRET = "approval-link-signing-key";

const b64 = (b: Buffer | string) => Buffer.from(b).toString("base64url");
/** A secret version as a token names it (Key Vault: 32 hex characters; the local store: alphanumeric). */
const KEY_ID = /^[0-9A-Za-z]{1,64}$/;
/** Tokens issued before key ids (`v1.<payload>.<sig>`) are checked against this many enabled versions at most. */
const MAX_LEGACY_KEYS = 5;
/** How long an instance signs with the version it read before it looks for a newer one. */
const SIGNING_KEY_TTL_MS = 10 * 60 * 1000;
/** The least key material a version may hold (HMAC-SHA-256's block of security): a shorter one an operator added is no key. */
const MIN_KEY_BYTES = 32;
/** A version's value as key material (base64), or undefined when it is too short to sign with (or not base64 at all). */
const keyMaterial = (value: string): Buffer | undefined => {
  const key = Buffer.from(value, "base64");
  return key.length >= MIN_KEY_BYTES ? key : undefined;
};

interface SigningKey {
  id: string;
  key: Buffer;
}

/**
 * HMAC-SHA-256 signed, expiring, single-use approver links: `v2.<key id>.<claims>.<signature>`, the
 * signature over everything before it. The key lives in the secret store and the token names the
 * version that signed it, so every instance verifies every instance's links, and a rotation (a new
 * version; the old one disabled once its links have expired) needs no flag day. The nonce is burnt when
 * the link is used (recorded on the approval), so a link works once.
 *
 * The key is created on first use; instances racing on it may each write a version, and since tokens
 * name their version, every enabled one verifies. Links are signed with the NEWEST enabled version (read
 * again every SIGNING_KEY_TTL_MS), so a rotation is: add a version, wait a week (the longest a link
 * lives), disable the old one. A token is always checked against the store, so a disabled version's
 * links are void everywhere at once.
 */
export class ApprovalLinks {
  private signing: { key: Promise<SigningKey>; at: number } | undefined;

  constructor(
    private readonly secrets: SecretStore,
    private readonly clock: Clock,
  ) {}

  async issue(claims: Omit<LinkClaims, "n">): Promise<{ token: string; nonce: string }> {
    const full: LinkClaims = { ...claims, n: randomBytes(16).toString("base64url") };
    let signing = await this.signingKey();
    // The version this instance read may have been disabled since (a revocation): its links would be void
    // on arrival. Checked against the store, as verify() does, and read again when it is gone.
    if (!(await this.keyVersion(signing.id))) {
      this.signing = undefined;
      signing = await this.signingKey();
    }
    const { id, key } = signing;
    const signed = `v2.${id}.${b64(JSON.stringify(full))}`;
    return { token: `${signed}.${b64(hmac(key, signed))}`, nonce: full.n };
  }

  async verify(token: string): Promise<LinkCheck> {
    const parts = token.split(".");
    let payload: string;
    if (parts.length === 4 && parts[0] === "v2" && KEY_ID.test(parts[1] ?? "") && parts[2] && parts[3]) {
      const key = await this.keyVersion(parts[1]!);
      if (!key || !sameMac(hmac(key, parts.slice(0, 3).join(".")), parts[3])) return { ok: false, reason: "forged" };
      payload = parts[2];
    } else if (parts.length === 3 && parts[0] === "v1" && parts[1] && parts[2]) {
      // Links issued before key ids: signed over the claims alone, with whichever version that instance read.
      const keys = await this.legacyKeys();
      if (!keys.some((key) => sameMac(hmac(key, parts[1]!), parts[2]!))) return { ok: false, reason: "forged" };
      payload = parts[1];
    } else {
      return { ok: false, reason: "malformed" };
    }
    let claims: LinkClaims;
    try {
      claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as LinkClaims;
    } catch {
      return { ok: false, reason: "malformed" };
    }
    if (typeof claims !== "object" || claims === null || typeof claims.exp !== "number") return { ok: false, reason: "malformed" };
    if (claims.exp * 1000 <= this.clock.now().getTime()) return { ok: false, reason: "expired", claims };
    return { ok: true, claims };
  }

  private signingKey(): Promise<SigningKey> {
    const now = this.clock.now().getTime();
    if (!this.signing || now - this.signing.at >= SIGNING_KEY_TTL_MS) {
      const key = (async () => {
        const newest = (await this.secrets.get(LINK_KEY_SECRET)) ?? (await this.secrets.set(LINK_KEY_SECRET, randomBytes(32).toString("base64"), { contentType: "application/octet-stream;base64" }));
        const key = keyMaterial(newest.value);
        // Fail closed: no link is signed with a weak key (a version added by hand); links are not sent until it is fixed.
        if (!key) throw new Error(`the newest version of ${LINK_KEY_SECRET} holds less than ${MIN_KEY_BYTES} bytes of base64 key material: add a proper version`);
        return { id: newest.version, key };
      })();
      this.signing = { key, at: now };
      key.catch(() => {
        if (this.signing?.key === key) this.signing = undefined;
      });
    }
    return this.signing.key;
  }

  /** The key version a token names, read from the store; undefined when it does not exist or is disabled (its links are void). */
  private async keyVersion(id: string): Promise<Buffer | undefined> {
    const value = await this.secrets.get(LINK_KEY_SECRET, id);
    return value ? keyMaterial(value.value) : undefined;
  }

  private async legacyKeys(): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (const version of (await this.enabledVersions()).slice(0, MAX_LEGACY_KEYS)) {
      const value = await this.secrets.get(LINK_KEY_SECRET, version);
      const key = value ? keyMaterial(value.value) : undefined;
      if (key) out.push(key);
    }
    return out;
  }

  /** Enabled versions, oldest first (listed newest first: reversed, then a stable sort by creation time, so equal times keep creation order). */
  private async enabledVersions(): Promise<string[]> {
    const versions = (await this.secrets.listVersions(LINK_KEY_SECRET)).filter((v) => v.enabled).reverse();
    return versions.sort((a, b) => (a.createdOn?.getTime() ?? 0) - (b.createdOn?.getTime() ?? 0)).map((v) => v.version);
  }
}

const hmac = (key: Buffer, data: string) => createHmac("sha256", key).update(data).digest();

function sameMac(expected: Buffer, given: string): boolean {
  const g = Buffer.from(given, "base64url");
  return g.length === expected.length && timingSafeEqual(g, expected);
}
