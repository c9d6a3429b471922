/**
 * `aigov login --entra`: MSAL Node's device code flow, unmodified, against a fake of Microsoft Entra ID
 * given to MSAL as its network client. The fake issues tokens shaped like Entra's v2.0 access tokens for
 * the API, signed by a local RS256 key published as a JWKS on 127.0.0.1; the token the CLI then sends is
 * checked by the app's verifier in Entra mode.
 */
import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from "@azure/msal-node";
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenVerifier } from "../../src/auth/verifier.js";
import { runCli } from "../../src/cli/main.js";

const API_ID = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
const CLIENT_ID = "3f1b0c51-8a77-4e0f-9b86-5a9f1f2f6d10";
const TID = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OID = "690222be-ff1a-4d56-abd1-7e4f7d38e474";
const SCOPE = `api://${API_ID}/access_as_user`;
const b64url = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");

let key: CryptoKey;
let jwks: Server;
let jwksUri: string;

beforeAll(async () => {
  const pair = await generateKeyPair("RS256", { extractable: true });
  key = pair.privateKey;
  const published = [{ ...(await exportJWK(pair.publicKey)), kty: "RSA", use: "sig", kid: "k1", issuer: "https://login.microsoftonline.com/{tenantid}/v2.0" }];
  jwks = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: published }));
  });
  await new Promise<void>((r) => jwks.listen(0, "127.0.0.1", r));
  jwksUri = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/common/discovery/v2.0/keys`;
});
afterAll(() => new Promise<void>((r) => jwks.close(() => r())));

/** Entra ID as MSAL talks to it: discovery, the device code endpoint and the token endpoint. */
class FakeEntra implements INetworkModule {
  readonly calls: { url: string; form?: Record<string, string> }[] = [];
  issued = 0;
  /** Seconds the next access tokens live (MSAL refreshes tokens that expire within 5 minutes). */
  lifetime = 3600;
  refreshRefused = false;

  async sendGetRequestAsync<T>(url: string): Promise<NetworkResponse<T>> {
    this.calls.push({ url });
    const u = new URL(url);
    if (u.pathname.endsWith("/discovery/instance")) {
      return this.json({ tenant_discovery_endpoint: "https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration", "api-version": "1.1", metadata: [{ preferred_network: "login.microsoftonline.com", preferred_cache: "login.windows.net", aliases: ["login.microsoftonline.com", "login.windows.net"] }] });
    }
    if (u.pathname.endsWith("/.well-known/openid-configuration")) {
      const tenant = u.pathname.split("/")[1];
      return this.json({
        token_endpoint: `https://login.microsoftonline.com/${tenant}/oauth2/v2.0/token`,
        authorization_endpoint: `https://login.microsoftonline.com/${tenant}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `https://login.microsoftonline.com/${tenant}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `https://login.microsoftonline.com/${tenant}/oauth2/v2.0/logout`,
        issuer: "https://login.microsoftonline.com/{tenantid}/v2.0",
        jwks_uri: "https://login.microsoftonline.com/common/discovery/v2.0/keys",
      });
    }
    return this.json({ error: "not_found" }, 404);
  }

  async sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    const form = Object.fromEntries(new URLSearchParams(String(options?.body ?? "")));
    this.calls.push({ url, form });
    const u = new URL(url);
    if (u.pathname.endsWith("/oauth2/v2.0/devicecode")) {
      return this.json({ device_code: "dc-1", user_code: "ABCD-EFGH", verification_uri: "https://microsoft.com/devicelogin", expires_in: 900, interval: 1, message: "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate." });
    }
    if (u.pathname.endsWith("/oauth2/v2.0/token")) {
      if (form.grant_type === "refresh_token" && this.refreshRefused) {
        return this.json({ error: "invalid_grant", error_description: "AADSTS700082: The refresh token has expired due to inactivity.", error_codes: [700082], suberror: "bad_token" }, 400);
      }
      if (!["device_code", "urn:ietf:params:oauth:grant-type:device_code", "refresh_token"].includes(form.grant_type ?? "")) return this.json({ error: "unsupported_grant_type" }, 400);
      return this.json(await this.tokens());
    }
    return this.json({ error: "not_found" }, 404);
  }

  private async tokens() {
    const n = ++this.issued;
    const now = Math.floor(Date.now() / 1000);
    const issuer = `https://login.microsoftonline.com/${TID}/v2.0`;
    const access = await new SignJWT({ ver: "2.0", tid: TID, oid: OID, azp: CLIENT_ID, scp: "access_as_user", roles: ["TenantAdmin"], preferred_username: "alice@contoso.com", n })
      .setProtectedHeader({ alg: "RS256", kid: "k1", typ: "JWT" })
      .setIssuer(issuer)
      .setAudience(API_ID)
      .setIssuedAt(now - 5)
      .setNotBefore(now - 5)
      .setExpirationTime(now + this.lifetime)
      .sign(key);
    const idToken = `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ aud: CLIENT_ID, iss: issuer, iat: now, nbf: now, exp: now + 3600, oid: OID, sub: "s-1", tid: TID, name: "Alice", preferred_username: "alice@contoso.com", ver: "2.0" })}.`;
    return {
      token_type: "Bearer",
      scope: `${SCOPE} openid profile offline_access`,
      expires_in: this.lifetime,
      ext_expires_in: this.lifetime,
      access_token: access,
      refresh_token: `rt-${n}`,
      id_token: idToken,
      client_info: b64url({ uid: OID, utid: TID }),
    };
  }

  private json<T>(body: unknown, status = 200): NetworkResponse<T> {
    return { status, headers: { "content-type": "application/json" }, body: body as T };
  }
}

function cli(fake: FakeEntra, configDir: string) {
  const sent: string[] = [];
  const fetchImpl = (async (_input: unknown, init?: RequestInit) => {
    sent.push(String((init?.headers as Record<string, string>)?.authorization ?? ""));
    return new Response(JSON.stringify({ items: [] }), { status: 200, headers: { "content-type": "application/json" } });
  }) as typeof fetch;
  const run = async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(args, { out: (s) => out.push(s), err: (s) => err.push(s), env: { AIGOV_CONFIG: join(configDir, "config.json") }, fetch: fetchImpl, msalNetwork: fake });
    return { code, out: out.join("\n"), err: err.join("\n") };
  };
  return { run, sent };
}

const verifier = () => createTokenVerifier({ mode: "entra", issuer: "https://login.microsoftonline.com/{tenantid}/v2.0", audience: API_ID, jwksUri, clockSkewSeconds: 60, tenantClaim: "tid" });

describe("aigov login --entra", () => {
  it("signs in with a device code; commands then send an Entra v2 access token from MSAL's cache, which the API's verifier accepts", async () => {
    const fake = new FakeEntra();
    const dir = mkdtempSync(join(tmpdir(), "aigov-cli-entra-"));
    const { run, sent } = cli(fake, dir);
    const login = await run("--endpoint", "https://func-aigov.azurewebsites.net", "login", "--entra", "--client-id", CLIENT_ID, "--scope", SCOPE, "--name", "prod");
    expect(login.code, login.err).toBe(0);
    // The user is told where to go and which code to enter; then who signed in.
    expect(login.err).toContain("enter the code ABCD-EFGH");
    expect(login.err).toContain("signed in as alice@contoso.com (tenant 72f988bf-86f1-41af-91ab-2d7cd011db47)");
    const deviceCode = fake.calls.find((c) => c.url.endsWith("/organizations/oauth2/v2.0/devicecode"))!;
    expect(deviceCode.form).toMatchObject({ client_id: CLIENT_ID });
    expect(deviceCode.form!.scope!.split(" ")).toEqual(expect.arrayContaining([SCOPE, "offline_access"]));

    // The profile names the registration and the account, and holds no token; MSAL's cache is the user's alone.
    const profiles = readFileSync(join(dir, "config.json"), "utf8");
    expect(JSON.parse(profiles)).toEqual({
      current: "prod",
      profiles: { prod: { endpoint: "https://func-aigov.azurewebsites.net", entra: { clientId: CLIENT_ID, authority: "https://login.microsoftonline.com/organizations", scopes: [SCOPE], homeAccountId: `${OID}.${TID}` } } },
    });
    expect(profiles).not.toMatch(/eyJ|rt-1/);
    const cache = join(dir, "msal-cache.json");
    expect(statSync(cache).mode & 0o777).toBe(0o600);
    expect(readFileSync(cache, "utf8")).toContain("rt-1");

    // A command: the cached access token, no new request to Entra ID; the API's verifier accepts it.
    const before = fake.calls.length;
    expect((await run("-o", "json", "projects", "list")).code).toBe(0);
    expect(fake.calls.length).toBe(before);
    const token = sent[0]!.replace(/^Bearer /, "");
    const principal = await verifier().verify(`Bearer ${token}`);
    expect(principal).toMatchObject({ tenantId: TID, userId: OID });
    expect([...principal.roles]).toEqual(["TenantAdmin"]);
  });

  it("refreshes a token about to expire with the refresh token; a refused refresh asks the user to sign in again", async () => {
    const fake = new FakeEntra();
    fake.lifetime = 120; // within MSAL's 5-minute renewal window: the first command refreshes
    const dir = mkdtempSync(join(tmpdir(), "aigov-cli-entra-"));
    const { run, sent } = cli(fake, dir);
    expect((await run("--endpoint", "https://api.example", "login", "--entra", "--client-id", CLIENT_ID, "--scope", SCOPE)).code).toBe(0);
    fake.lifetime = 3600;
    expect((await run("projects", "list")).code).toBe(0);
    const refresh = fake.calls.filter((c) => c.form?.grant_type === "refresh_token");
    expect(refresh).toHaveLength(1);
    expect(refresh[0]!.form).toMatchObject({ client_id: CLIENT_ID, refresh_token: "rt-1" });
    const claims = (t: string) => JSON.parse(Buffer.from(t.replace(/^Bearer /, "").split(".")[1]!, "base64url").toString()) as { n: number };
    expect(claims(sent[0]!).n).toBe(2);
    // The refreshed token is cached: the next command asks nothing.
    expect((await run("projects", "list")).code).toBe(0);
    expect(fake.calls.filter((c) => c.form?.grant_type === "refresh_token")).toHaveLength(1);
    expect(claims(sent[1]!).n).toBe(2);

    // Expired and refused: an error in words, and no request to the API without a token.
    const expired = new FakeEntra();
    expired.lifetime = 120;
    const dir2 = mkdtempSync(join(tmpdir(), "aigov-cli-entra-"));
    const second = cli(expired, dir2);
    expect((await second.run("--endpoint", "https://api.example", "login", "--entra", "--client-id", CLIENT_ID, "--scope", SCOPE)).code).toBe(0);
    expired.refreshRefused = true;
    const refused = await second.run("projects", "list");
    expect(refused.code).not.toBe(0);
    expect(refused.err).toContain("sign in again with aigov login --entra");
    expect(second.sent).toHaveLength(0);
  });

  it("refuses a login without what Entra needs, and never writes a profile then", async () => {
    const dir = mkdtempSync(join(tmpdir(), "aigov-cli-entra-"));
    const { run } = cli(new FakeEntra(), dir);
    for (const args of [
      ["login", "--entra", "--scope", SCOPE],
      ["login", "--entra", "--client-id", "not-a-guid", "--scope", SCOPE],
      ["login", "--entra", "--client-id", CLIENT_ID, "--scope", "https://graph.microsoft.com/.default"],
      ["login", "--entra", "--dev", "--client-id", CLIENT_ID, "--scope", SCOPE],
      ["login", "--entra", "--client-id", CLIENT_ID, "--scope", SCOPE, "--authority", "http://login.example/organizations"],
    ]) {
      const r = await run(...args);
      expect(r.code, args.join(" ")).toBe(2);
    }
    expect(existsSync(join(dir, "config.json"))).toBe(false);
  });
});
