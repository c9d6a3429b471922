// The host's system key for the durable HTTP API, as Azure requires one for
// /runtime/webhooks/durabletask/* (the `durabletask_extension` system key): a `code` query parameter or an
// `x-functions-key` header. One random key per data directory, made at first start and kept in
// <dataDir>/durabletask.key (mode 0600); memory only when the engine has no data directory.

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import type http from "node:http";
import path from "node:path";

export const SYSTEM_KEY_FILE = "durabletask.key";

export function newSystemKey(): string {
  return randomBytes(32).toString("base64url");
}

/** Reads <dataDir>/durabletask.key, creating it (0600) at first start; tightens a looser mode. */
export function loadOrCreateSystemKey(dataDir: string): string {
  const file = path.join(dataDir, SYSTEM_KEY_FILE);
  mkdirSync(dataDir, { recursive: true });
  try {
    writeFileSync(file, `${newSystemKey()}\n`, { mode: 0o600, flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  const key = readFileSync(file, "utf8").trim();
  if (key.length < 16) throw new Error(`${file} does not hold a key: delete it to have a new one made`);
  return key;
}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** Constant time (over digests, so the length does not leak either). */
export function keyMatches(candidate: string | undefined, key: string): boolean {
  return candidate !== undefined && timingSafeEqual(digest(candidate), digest(key));
}

/** The key a request presents: `x-functions-key`, else the `code` query parameter. */
export function presentedKey(req: http.IncomingMessage, url: URL): string | undefined {
  const header = req.headers["x-functions-key"];
  if (typeof header === "string") return header;
  return url.searchParams.get("code") ?? undefined;
}
