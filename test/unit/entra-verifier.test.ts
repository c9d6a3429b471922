import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_AUDIENCE, DEV_ISSUER, loadOrCreateDevIssuer, type DevIssuer } from "../../src/auth/dev-issuer.js";
import { createTokenVerifier, type TokenVerifier } from "../../src/auth/verifier.js";
import { ConfigError, parseConfig, type Config } from "../../src/config/index.js";
import { ROLES } from "../../src/domain/common.js";
import { AppError } from "../../src/domain/errors.js";

/**
 * The verifier against tokens shaped like Microsoft Entra ID's v2.0 access tokens for a multi-tenant app
 * registration, signed by locally generated RS256 keys and published by a JWKS served on 127.0.0.1 in the
 * shape of https://login.microsoftonline.com/common/discovery/v2.0/keys (keys carry an `issuer`).
 */
const CLIENT_ID = "6e74172b-be56-4843-9ff4-e66a39bb12e3"; // the API's app registration
const CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"; // the calling client (azp)
const TID = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const TID2 = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490";
const OID = "690222be-ff1a-4d56-abd1-7e4f7d38e474";
const MSA_TID = "9188040d-6c67-4c5b-b112-36a304b66dad";
const ISSUER = "https://login.microsoftonline.com/{tenantid}/v2.0";
const v2Issuer = (tid: string) => `https://login.microsoftonline.com/${tid}/v2.0`;

let server: Server;
let key: CryptoKey; // kid "k1", issuer template: signs for any tenant
let pinnedKey: CryptoKey; // kid "k-pinned", issuer of TID2 only
let otherKey: CryptoKey; // not published
let ecKey: CryptoKey;
let jwksUri: string;
let devJwksUri: string;
let dev: DevIssuer;

beforeAll(async () => {
  const pair = await generateKeyPair("RS256", { extractable: true });
  const pinned = await generateKeyPair("RS256", { extractable: true });
  key = pair.privateKey;
  pinnedKey = pinned.privateKey;
  ({ privateKey: otherKey } = await generateKeyPair("RS256"));
  ({ privateKey: ecKey } = await generateKeyPair("ES256"));
  const published: JWK[] = [
    { ...(await exportJWK(pair.publicKey)), kty: "RSA", use: "sig", kid: "k1", x5t: "k1", issuer: ISSUER } as JWK,
    { ...(await exportJWK(pinned.publicKey)), kty: "RSA", use: "sig", kid: "k-pinned", x5t: "k-pinned", issuer: v2Issuer(TID2) } as JWK,
  ];
  dev = await loadOrCreateDevIssuer(join(mkdtempSync(join(tmpdir(), "aigov-entra-verifier-")), "dev-issuer.json"));
  server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(req.url === "/dev/jwks.json" ? dev.jwks : { keys: published }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  jwksUri = `${base}/common/discovery/v2.0/keys`;
  devJwksUri = `${base}/dev/jwks.json`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const entraAuth = (over: Partial<Config["auth"]> = {}): Config["auth"] => ({
  mode: "entra",
  issuer: ISSUER,
  audience: CLIENT_ID,
  jwksUri,
  clockSkewSeconds: 60,
  tenantClaim: "tid",
  ...over,
});
const verifier = (over: Partial<Config["auth"]> = {}): TokenVerifier => createTokenVerifier(entraAuth(over));

const nowS = () => Math.floor(Date.now() / 1000);

/** The payload of a delegated (user) v2.0 access token for the API, as Entra issues it. */
function v2Claims(over: Record<string, unknown> = {}): JWTPayload {
  const tid = typeof over.tid === "string" ? over.tid : TID;
  const iat = nowS() - 60;
  return {
    aud: CLIENT_ID,
    iss: v2Issuer(tid),
    iat,
    nbf: iat,
    exp: iat + 75 * 60,
    aio: "AXQAi/8IAAAAtAaZLo3ChMif6KOnttRB7eBq4/DccQzjcJGxPXy/C3jDaNGxXd6wNIIVGRghNRnwJ1lOcAnNZcjvkoyrFxCttv33140RioOFJ4bCCGVuoCag1uOTT22222gHwLPYQ/uf79QX+0KIijdrmp69RctzmQ==",
    azp: CLI_CLIENT_ID,
    azpacr: "0",
    name: "Abe Lincoln",
    oid: OID,
    preferred_username: "abeli@contoso.example",
    rh: "I",
    roles: ["TenantAdmin", "Approver", "NotARole"],
    scp: "access_as_user",
    sub: "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
    tid,
    uti: "fqiBqXLPj0eQa82S-IYFAA",
    ver: "2.0",
    ...over,
  };
}

/** The payload of a v1.0 access token (accessTokenAcceptedVersion null/1) for the same API. */
function v1Claims(over: Record<string, unknown> = {}): JWTPayload {
  const iat = nowS() - 60;
  return {
    aud: `api://${CLIENT_ID}`,
    iss: `https://sts.windows.net/${TID}/`,
    iat,
    nbf: iat,
    exp: iat + 75 * 60,
    acr: "1",
    aio: "AXQAi/8IAAAAFm+E/QTG+gFnVxLjWdw8K+61AGrSOuMMF6ebaMj7XO3IbmD3fGmrOyD+NvZyGn2VaT/kDKXw4MIhrgGVq6Bn8wLXoT1LkIZ+FzQVkJPPLQOV4KcXqSlCVPDS/DiCDgE222TImMvWNaEMaUOTsIGvTQ==",
    amr: ["wia"],
    appid: CLI_CLIENT_ID,
    appidacr: "0",
    name: "Abe Lincoln",
    oid: OID,
    roles: ["TenantAdmin"],
    scp: "user_impersonation",
    sub: "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA",
    tid: TID,
    unique_name: "abeli@contoso.example",
    uti: "FVsGxYXI30-TuikuuUoFAA",
    ver: "1.0",
    ...over,
  };
}

function sign(payload: JWTPayload, opts: { key?: CryptoKey | Uint8Array; kid?: string | null; alg?: string } = {}): Promise<string> {
  const header = { alg: opts.alg ?? "RS256", typ: "JWT", ...(opts.kid === null ? {} : { kid: opts.kid ?? "k1" }) };
  return new SignJWT(payload).setProtectedHeader(header).sign(opts.key ?? key);
}

const bearer = (token: string) => `Bearer ${token}`;

/** The `detail` of the `unauthenticated` AppError the promise rejects with. */
async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    const e = (err as AppError).error;
    expect(e.kind).toBe("unauthenticated");
    return (e as { detail: string }).detail;
  }
  throw new Error("expected the token to be refused");
}

describe("Entra ID v2.0 access tokens (AUTH_MODE=entra)", () => {
  it("accepts a v2.0 token for the API's client id from the token's own tenant: tenant from tid, user from oid, known app roles", async () => {
    const p = await verifier().verify(bearer(await sign(v2Claims())));
    expect(p.tenantId).toBe(TID);
    expect(p.userId).toBe(OID);
    expect(p.name).toBe("abeli@contoso.example");
    expect([...p.roles].sort()).toEqual(["Approver", "TenantAdmin"]);
  });

  it("takes every app role the API defines, and none when the token has no roles claim", async () => {
    const all = await verifier().verify(bearer(await sign(v2Claims({ roles: [...ROLES] }))));
    expect([...all.roles].sort()).toEqual([...ROLES].sort());
    const { roles: _roles, ...noRoles } = v2Claims();
    const none = await verifier().verify(bearer(await sign(noRoles)));
    expect(none.roles.size).toBe(0);
  });

  it("accepts another tenant's token with that tenant's issuer (multi-tenant), and an app-only token", async () => {
    const other = await verifier().verify(bearer(await sign(v2Claims({ tid: TID2, oid: "11111111-2222-4333-8444-555555555555" }))));
    expect(other).toMatchObject({ tenantId: TID2, userId: "11111111-2222-4333-8444-555555555555" });
    // Client credentials: no scp, no user names; roles are the application permissions granted to the client.
    const { scp: _scp, name: _name, preferred_username: _pu, ...appOnly } = v2Claims({ roles: ["Reader"], idtyp: "app", azpacr: "1" });
    const app = await verifier().verify(bearer(await sign(appOnly)));
    expect(app).toMatchObject({ tenantId: TID, userId: OID });
    expect(app.name).toBeUndefined();
    expect([...app.roles]).toEqual(["Reader"]);
  });

  it("refuses v1.0-shaped tokens (sts.windows.net issuer, ver 1.0), whatever their audience", async () => {
    expect(await refusal(verifier().verify(bearer(await sign(v1Claims()))))).toMatch(/only v2\.0 access tokens/);
    expect(await refusal(verifier().verify(bearer(await sign(v1Claims({ aud: CLIENT_ID })))))).toMatch(/only v2\.0 access tokens/);
    // A v1.0 issuer with a 2.0 version claim is no Entra token either.
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims({ iss: `https://sts.windows.net/${TID}/` })))))).toMatch(/issuer does not match tenant/);
    const { ver: _ver, ...noVersion } = v2Claims();
    expect(await refusal(verifier().verify(bearer(await sign(noVersion))))).toMatch(/invalid token/);
  });

  it("refuses any audience but the client id: the app ID URI, another app, a list", async () => {
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims({ aud: `api://${CLIENT_ID}` })))))).toMatch(/audience is not this API/);
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims({ aud: "00000003-0000-0000-c000-000000000000" })))))).toMatch(/audience is not this API/);
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims({ aud: [CLIENT_ID, "api://other"] })))))).toMatch(/audience is not this API/);
  });

  it("refuses a token whose issuer names another tenant than its tid, and malformed or missing tenants and users", async () => {
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims({ tid: TID, iss: v2Issuer(TID2) })))))).toMatch(/issuer does not match tenant/);
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims({ iss: "https://login.microsoftonline.com/common/v2.0" })))))).toMatch(/issuer does not match tenant/);
    const { tid: _tid, ...noTenant } = v2Claims();
    expect(await refusal(verifier().verify(bearer(await sign(noTenant))))).toMatch(/invalid token \(ERR_JWT_CLAIM_VALIDATION_FAILED\)/);
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims({ tid: "contoso", iss: v2Issuer("contoso") })))))).toMatch(/no valid tenant claim/);
    const { oid: _oid, ...noUser } = v2Claims();
    expect(await refusal(verifier().verify(bearer(await sign(noUser))))).toMatch(/invalid token \(ERR_JWT_CLAIM_VALIDATION_FAILED\)/);
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims({ oid: "" })))))).toMatch(/names no user/);
  });

  it("refuses personal Microsoft account tokens", async () => {
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims({ tid: MSA_TID })))))).toMatch(/personal Microsoft accounts/);
  });

  it("refuses expired and not-yet-valid tokens beyond the clock skew, and tolerates skew within it", async () => {
    const t = nowS();
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims({ iat: t - 7200, nbf: t - 7200, exp: t - 120 })))))).toMatch(/ERR_JWT_EXPIRED/);
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims({ iat: t, nbf: t + 600, exp: t + 3600 })))))).toMatch(/ERR_JWT_CLAIM_VALIDATION_FAILED/);
    const { nbf: _nbf, ...noNbf } = v2Claims();
    expect(await refusal(verifier().verify(bearer(await sign(noNbf))))).toMatch(/ERR_JWT_CLAIM_VALIDATION_FAILED/);
    await expect(verifier().verify(bearer(await sign(v2Claims({ iat: t - 3600, nbf: t - 3600, exp: t - 30 }))))).resolves.toMatchObject({ tenantId: TID });
  });

  it("refuses HS256, alg none and other algorithms than RS256", async () => {
    const hs = await sign(v2Claims(), { alg: "HS256", key: new TextEncoder().encode("a-shared-secret-of-at-least-32-bytes!") });
    expect(await refusal(verifier().verify(bearer(hs)))).toMatch(/ERR_JOSE_ALG_NOT_ALLOWED/);
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const none = `${b64({ alg: "none", typ: "JWT", kid: "k1" })}.${b64(v2Claims())}.`;
    expect(await refusal(verifier().verify(bearer(none)))).toMatch(/invalid token/);
    const es = await sign(v2Claims(), { alg: "ES256", key: ecKey });
    expect(await refusal(verifier().verify(bearer(es)))).toMatch(/ERR_JOSE_ALG_NOT_ALLOWED/);
  });

  it("refuses an unknown key id, a token without a key id and a signature by an unpublished key", async () => {
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims(), { kid: "not-published" }))))).toMatch(/ERR_JWKS_NO_MATCHING_KEY/);
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims(), { kid: null }))))).toMatch(/no key id/);
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims(), { key: otherKey }))))).toMatch(/ERR_JWS_SIGNATURE_VERIFICATION_FAILED/);
  });

  it("uses a key that names one issuer only for that issuer", async () => {
    await expect(verifier().verify(bearer(await sign(v2Claims({ tid: TID2 }), { kid: "k-pinned", key: pinnedKey })))).resolves.toMatchObject({ tenantId: TID2 });
    expect(await refusal(verifier().verify(bearer(await sign(v2Claims({ tid: TID }), { kid: "k-pinned", key: pinnedKey }))))).toMatch(/signing key is not for this issuer/);
  });

  it("accepts only the allowed tenants when AUTH_ALLOWED_TENANTS is set", async () => {
    const only = verifier({ allowedTenants: [TID] });
    await expect(only.verify(bearer(await sign(v2Claims())))).resolves.toMatchObject({ tenantId: TID });
    expect(await refusal(only.verify(bearer(await sign(v2Claims({ tid: TID2 })))))).toMatch(/tenant is not allowed/);
  });

  it("refuses missing, malformed and non-bearer credentials", async () => {
    expect(await refusal(verifier().verify(null))).toMatch(/bearer token is required/);
    expect(await refusal(verifier().verify("Basic dXNlcjpwYXNz"))).toMatch(/bearer token is required/);
    expect(await refusal(verifier().verify("Bearer not.a.jwt"))).toMatch(/invalid token/);
  });

  it("needs the client id as AUTH_AUDIENCE, the v2.0 issuer template and the tid claim", () => {
    expect(() => verifier({ audience: `api://${CLIENT_ID}` })).toThrow(ConfigError);
    expect(() => verifier({ audience: "api://aigov" })).toThrow(/AUTH_AUDIENCE: must be the app registration's client id/);
    expect(() => verifier({ issuer: v2Issuer(TID) })).toThrow(/AUTH_ISSUER: must be the v2\.0 issuer template/);
    expect(() => verifier({ issuer: "https://sts.windows.net/{tenantid}/" })).toThrow(/AUTH_ISSUER/);
    expect(() => verifier({ tenantClaim: "azp" })).toThrow(/AUTH_TENANT_CLAIM/);
    expect(() => verifier({ audience: CLIENT_ID.toUpperCase() })).not.toThrow();
  });
});

describe("AUTH_ALLOWED_TENANTS", () => {
  const env = {
    KEYVAULT_URI: "https://kv.vault.azure.net/",
    APIM_SUBSCRIPTION_ID: "00000000-0000-0000-0000-000000000001",
    APIM_RESOURCE_GROUP: "rg-aigov",
    APIM_SERVICE_NAME: "apim-aigov",
    USAGE_LOG_WORKSPACE_ID: "11111111-2222-3333-4444-555555555555",
    COSMOS_ENDPOINT: "https://acct.documents.azure.com:443/",
    AUTH_ISSUER: ISSUER,
    AUTH_AUDIENCE: CLIENT_ID,
    AUTH_JWKS_URI: "https://login.microsoftonline.com/common/discovery/v2.0/keys",
  };

  it("defaults to every tenant and parses a comma- or space-separated list of tenant ids", () => {
    expect(parseConfig(env).auth.allowedTenants).toBeUndefined();
    expect(parseConfig({ ...env, AUTH_ALLOWED_TENANTS: "" }).auth.allowedTenants).toBeUndefined();
    expect(parseConfig({ ...env, AUTH_ALLOWED_TENANTS: `${TID}, ${TID2.toUpperCase()}` }).auth.allowedTenants).toEqual([TID, TID2]);
    expect(() => parseConfig({ ...env, AUTH_ALLOWED_TENANTS: "contoso.onmicrosoft.com" })).toThrow(/AUTH_ALLOWED_TENANTS.*must be tenant ids/);
  });
});

describe("the local dev issuer (AUTH_MODE=dev)", () => {
  it("still verifies the tokens it mints", async () => {
    const devVerifier = createTokenVerifier({ mode: "dev", issuer: DEV_ISSUER, audience: DEV_AUDIENCE, jwksUri: devJwksUri, clockSkewSeconds: 120, tenantClaim: "tid" });
    const p = await devVerifier.verify(bearer(await dev.mint({ tenant: "contoso", user: "alice", roles: ["ProjectAdmin"] })));
    expect(p).toMatchObject({ tenantId: "contoso", userId: "alice", name: "alice" });
    expect([...p.roles]).toEqual(["ProjectAdmin"]);
  });
});
