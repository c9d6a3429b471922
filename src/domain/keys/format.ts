import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Virtual key material. Format: `aigw_` + 32 base62 characters (24 random bytes = 192 bits) + 6 base62
 * characters of CRC-32 over the prefix and the random part — the shape secret scanners recognise
 * (fixed prefix, fixed length) and can validate offline (the checksum) without calling us. A key with
 * any character changed fails the checksum before anything is looked up.
 */
export const KEY_PREFIX = "aigw_";
const BODY_LENGTH = 32;
const CHECKSUM_LENGTH = 6;
export const KEY_LENGTH = KEY_PREFIX.length + BODY_LENGTH + CHECKSUM_LENGTH;
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
export const KEY_PATTERN = new RegExp(`^${KEY_PREFIX}[0-9A-Za-z]{${BODY_LENGTH + CHECKSUM_LENGTH}}$`);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(text: string): number {
  let c = 0xffffffff;
  for (const b of Buffer.from(text, "utf8")) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function base62(n: number, width: number): string {
  let out = "";
  for (let i = 0; i < width; i++) {
    out = ALPHABET[n % 62]! + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** Uniform base62 from random bytes (rejection sampling: no modulo bias). */
function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < 248 && out.length < length) out += ALPHABET[b % 62];
    }
  }
  return out;
}

const checksumOf = (head: string) => base62(crc32(head), CHECKSUM_LENGTH);

/** A new key: prefix, ≥190 random bits, checksum. */
export function generateKey(): string {
  const head = KEY_PREFIX + randomBase62(BODY_LENGTH);
  return head + checksumOf(head);
}

/** Shape and checksum only: no lookup, no secret needed. */
export function isWellFormedKey(key: string): boolean {
  if (!KEY_PATTERN.test(key)) return false;
  const head = key.slice(0, KEY_LENGTH - CHECKSUM_LENGTH);
  const given = key.slice(KEY_LENGTH - CHECKSUM_LENGTH);
  const expected = checksumOf(head);
  return timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

/** What is stored to find a key again: HMAC-SHA-256 with a pepper that lives only in the secret store. */
export function keyDigest(pepper: string, key: string): string {
  return createHmac("sha256", pepper).update(key, "utf8").digest("hex");
}

/** The parts of a key that may be shown and stored: enough to recognise it, useless to use it. */
export function keyHints(key: string): { prefix: string; last4: string } {
  return { prefix: key.slice(0, KEY_PREFIX.length + 4), last4: key.slice(-4) };
}
