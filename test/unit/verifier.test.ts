import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier, type TokenVerifier } from "../../src/auth/verifier.js";
import { AppError } from "../../src/domain/errors.js";

let server: Server;
let key: CryptoKey;
let otherKey: CryptoKey;
let jwksUri: string;
const ISSUER = "https://login.microsoftonline.com/{tenantid}/v2.0";
const AUD = "api://aigov";

beforeAll(async () => {
  ({ privateKey: otherKey } = await generateKeyPair("RS256"));
  const pair = await generateKeyPair("RS256", { extractable: true });
  key = pair.privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "RS256" };
  server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  jwksUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/keys`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const verifier = (issuer = ISSUER): TokenVerifier =>
  createTokenVerifier({ mode: "entra", issuer, audience: AUD, jwksUri, clockSkewSeconds: 60, tenantClaim: "tid" });

function token(claims: Record<string, unknown>, opts: { key?: CryptoKey; exp?: number; iss?: string; aud?: string } = {}) {
  const tid = (claims.tid as string | undefined) ?? "t1";
  return new SignJWT({ tid, oid: "user-1", roles: ["TenantAdmin", "NotARole"], ...claims })
    .setProtectedHeader({ alg: "RS256", kid: "k1" })
    .setIssuer(opts.iss ?? `https://login.microsoftonline.com/${tid}/v2.0`)
    .setAudience(opts.aud ?? AUD)
    .setExpirationTime(opts.exp ?? Math.floor(Date.now() / 1000) + 600)
    .sign(opts.key ?? key);
}

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    const e = (err as AppError).error;
    expect(e.kind).toBe("unauthenticated");
    return (e as { detail: string }).detail;
  }
  throw new Error("expected rejection");
}

describe("token verification", () => {
  it("accepts a valid Entra token: tenant from tid, user from oid, only known roles", async () => {
    const p = await verifier().verify(`Bearer ${await token({})}`);
    expect(p).toMatchObject({ tenantId: "t1", userId: "user-1" });
    expect([...p.roles]).toEqual(["TenantAdmin"]);
  });

  it("rejects missing, malformed and non-bearer credentials", async () => {
    expect(await rejection(verifier().verify(null))).toMatch(/bearer token is required/);
    expect(await rejection(verifier().verify("Basic dXNlcjpwYXNz"))).toMatch(/bearer token is required/);
    expect(await rejection(verifier().verify("Bearer not.a.jwt"))).toMatch(/invalid token/);
  });

  it("rejects a bad signature, the wrong audience, an expired token and another tenant's issuer", async () => {
    expect(await rejection(verifier().verify(`Bearer ${await token({}, { key: otherKey })}`))).toMatch(/invalid token/);
    expect(await rejection(verifier().verify(`Bearer ${await token({}, { aud: "api://other" })}`))).toMatch(/ERR_JWT_CLAIM_VALIDATION_FAILED/);
    const expired = Math.floor(Date.now() / 1000) - 120;
    expect(await rejection(verifier().verify(`Bearer ${await token({}, { exp: expired })}`))).toMatch(/ERR_JWT_EXPIRED/);
    expect(await rejection(verifier().verify(`Bearer ${await token({ tid: "t1" }, { iss: "https://login.microsoftonline.com/t2/v2.0" })}`))).toMatch(/issuer does not match tenant/);
  });

  it("tolerates clock skew within the configured bound", async () => {
    const justExpired = Math.floor(Date.now() / 1000) - 30;
    await expect(verifier().verify(`Bearer ${await token({}, { exp: justExpired })}`)).resolves.toMatchObject({ tenantId: "t1" });
  });

  it("requires a well-formed tenant claim and a user", async () => {
    expect(await rejection(verifier().verify(`Bearer ${await token({ tid: "../etc" }, { iss: "https://login.microsoftonline.com/../etc/v2.0" })}`))).toMatch(/tenant claim/);
    const fixedIssuer = verifier("https://issuer.example");
    const noUser = await new SignJWT({ tid: "t1" }).setProtectedHeader({ alg: "RS256", kid: "k1" }).setIssuer("https://issuer.example").setAudience(AUD).setExpirationTime("5m").sign(key);
    expect(await rejection(fixedIssuer.verify(`Bearer ${noUser}`))).toMatch(/names no user/);
  });
});
