import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { SignJWT, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import type { Role } from "../domain/common.js";
import { readJsonFile } from "../util/json-file.js";

/** Local development only: an ES256 key pair under the data directory that signs dev tokens. */
export const DEV_ISSUER = "urn:aigov:local-dev-issuer";
export const DEV_AUDIENCE = "api://aigov";

export interface DevIssuer {
  jwks: { keys: JWK[] };
  mint(claims: { tenant: string; user: string; roles: Role[]; ttlSeconds?: number }): Promise<string>;
}

interface StoredKey {
  privateJwk: JWK;
  publicJwk: JWK;
}

export async function loadOrCreateDevIssuer(file: string): Promise<DevIssuer> {
  let stored: StoredKey;
  if (existsSync(file)) {
    stored = readJsonFile(file) as StoredKey;
  } else {
    const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
    const kid = `dev-${Date.now().toString(36)}`;
    stored = {
      privateJwk: { ...(await exportJWK(privateKey)), kid, alg: "ES256" },
      publicJwk: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" },
    };
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(stored), { mode: 0o600 });
  }
  const key = await importJWK(stored.privateJwk, "ES256");
  return {
    jwks: { keys: [stored.publicJwk] },
    mint: ({ tenant, user, roles, ttlSeconds = 8 * 3600 }) =>
      new SignJWT({ tid: tenant, oid: user, preferred_username: user, roles })
        .setProtectedHeader({ alg: "ES256", kid: stored.privateJwk.kid!, typ: "JWT" })
        .setIssuer(DEV_ISSUER)
        .setAudience(DEV_AUDIENCE)
        .setSubject(user)
        .setIssuedAt()
        .setExpirationTime(`${ttlSeconds}s`)
        .sign(key),
  };
}
