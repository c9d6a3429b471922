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

/**
 * HMAC-SHA-256 signed, expiring, single-use approver links. The key lives in the secret store; the
 * nonce is burnt when the link is used (recorded on the approval), so a link works once.
 */
export class ApprovalLinks {
  private key: Promise<Buffer> | undefined;

  constructor(
    private readonly secrets: SecretStore,
    private readonly clock: Clock,
  ) {}

  async issue(claims: Omit<LinkClaims, "n">): Promise<{ token: string; nonce: string }> {
    const full: LinkClaims = { ...claims, n: randomBytes(16).toString("base64url") };
    const payload = b64(JSON.stringify(full));
    return { token: `v1.${payload}.${b64(await this.sign(payload))}`, nonce: full.n };
  }

  async verify(token: string): Promise<LinkCheck> {
    const parts = token.split(".");
    if (parts.length !== 3 || parts[0] !== "v1" || !parts[1] || !parts[2]) return { ok: false, reason: "malformed" };
    const expected = await this.sign(parts[1]);
    const given = Buffer.from(parts[2], "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: "forged" };
    let claims: LinkClaims;
    try {
      claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8")) as LinkClaims;
    } catch {
      return { ok: false, reason: "malformed" };
    }
    if (typeof claims.exp !== "number") return { ok: false, reason: "malformed" };
    if (claims.exp * 1000 <= this.clock.now().getTime()) return { ok: false, reason: "expired", claims };
    return { ok: true, claims };
  }

  private async sign(payload: string): Promise<Buffer> {
    this.key ??= this.loadKey().catch((err: unknown) => {
      this.key = undefined;
      throw err;
    });
    return createHmac("sha256", await this.key).update(payload).digest();
  }

  private async loadKey(): Promise<Buffer> {
    const existing = await this.secrets.get(LINK_KEY_SECRET);
    if (existing) return Buffer.from(existing.value, "base64");
    const created = await this.secrets.set(LINK_KEY_SECRET, randomBytes(32).toString("base64"), { contentType: "application/octet-stream;base64" });
    return Buffer.from(created.value, "base64");
  }
}
