import type { JWK, JWTPayload, JWTVerifyGetKey } from "jose";
import { ConfigError, type Config } from "../config/index.js";
import { ROLES, type Principal, type Role } from "../domain/common.js";
import { AppError } from "../domain/errors.js";

export interface TokenVerifier {
  /** Validates the bearer token of a request; throws an `unauthenticated` AppError otherwise. */
  verify(authorization: string | null): Promise<Principal>;
}

const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Entra tenant, object and client ids: GUIDs, lower case as Entra writes them. */
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** The tenant of personal Microsoft accounts: not an organisation, so not an aigov tenant. */
const MSA_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad";
const KNOWN_ROLES: ReadonlySet<string> = new Set(ROLES);

const unauthenticated = (detail: string) => new AppError({ kind: "unauthenticated", detail });

/**
 * Validates bearer tokens: signature from the issuer's JWKS, issuer, audience, expiry (with clock skew).
 * The tenant is the token's tenant claim, nothing else.
 *
 * AUTH_MODE=entra accepts exactly the v2.0 access tokens Microsoft Entra ID issues for a multi-tenant app
 * registration of this API (see `verifyEntraToken`); AUTH_MODE=dev accepts the local dev issuer's tokens.
 */
export function createTokenVerifier(auth: Config["auth"], opts: { cacheSize?: number; now?: () => number } = {}): TokenVerifier {
  // Loaded here, not at module load: keeps the function app's cold start cheap.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createRemoteJWKSet, errors: joseErrors, jwtVerify } = require("jose") as typeof import("jose");
  const entra = auth.mode === "entra" ? entraSettings(auth) : undefined;
  const jwks = createRemoteJWKSet(new URL(auth.jwksUri), { cooldownDuration: 30_000, cacheMaxAge: 600_000 });
  const templated = auth.issuer.includes("{tenantid}");
  const now = opts.now ?? Date.now;
  // Signature checks dominate a cheap request's CPU; a client reuses one token for many calls.
  // Only successfully validated tokens are cached, and never past their expiry (plus allowed skew).
  const cache = new Map<string, { principal: Principal; until: number }>();
  const cacheSize = opts.cacheSize ?? 10_000;
  return {
    async verify(authorization) {
      const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(authorization?.trim() ?? "");
      if (!match) throw unauthenticated("a bearer token is required");
      const token = match[1]!;
      const hit = cache.get(token);
      if (hit && hit.until > now()) return hit.principal;
      if (hit) cache.delete(token);
      const principal = entra ? await verifyEntraToken(token, entra) : await verifyToken(token);
      const exp = (JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as { exp: number }).exp;
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
      cache.set(token, { principal, until: Math.min(exp * 1000 + auth.clockSkewSeconds * 1000, now() + 5 * 60_000) });
      return principal;
    },
  };

  /** The local dev issuer's tokens (AUTH_MODE=dev). */
  async function verifyToken(token: string): Promise<Principal> {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, jwks, {
          audience: auth.audience,
          ...(templated ? {} : { issuer: auth.issuer }),
          clockTolerance: auth.clockSkewSeconds,
          algorithms: ["RS256", "ES256"],
          requiredClaims: ["exp", "iss", auth.tenantClaim],
        }));
      } catch (err) {
        if (err instanceof joseErrors.JOSEError) throw unauthenticated(`invalid token (${err.code})`);
        throw err; // JWKS endpoint unreachable etc.: not the caller's fault
      }
      const tenantId = payload[auth.tenantClaim];
      if (typeof tenantId !== "string" || !TENANT_ID.test(tenantId)) throw unauthenticated("the token has no valid tenant claim");
      if (templated && payload.iss !== auth.issuer.replace("{tenantid}", tenantId)) {
        throw unauthenticated("invalid token (issuer does not match tenant)");
      }
      const userId = typeof payload.oid === "string" ? payload.oid : payload.sub;
      if (!userId) throw unauthenticated("the token names no user (oid/sub)");
      const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is Role => KNOWN_ROLES.has(r as string)) : [];
      const name = typeof payload.preferred_username === "string" ? payload.preferred_username : undefined;
      return { tenantId, userId, roles: new Set(roles), ...(name ? { name } : {}) };
  }

  /**
   * A v2.0 access token of Microsoft Entra ID for this API, following
   * https://learn.microsoft.com/entra/identity-platform/access-tokens ("Validate the issuer", "Validate the
   * signature") and https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference:
   * - RS256, signed by a key of the tenant-independent JWKS (AUTH_JWKS_URI); a key that names an `issuer`
   *   (e.g. `https://login.microsoftonline.com/{tenantid}/v2.0`) signs only for that issuer;
   * - `ver` "2.0" (v1.0 tokens carry `https://sts.windows.net/{tid}/` and may carry an app ID URI as `aud`);
   * - `tid` a GUID, and `iss` exactly the issuer template with that `tid`: the tenant comes from `tid` only;
   * - `aud` exactly the app registration's client id: "In v2.0 tokens, this value is always the client ID
   *   of the API" (claims reference), so an `api://…` identifier URI is never a v2.0 audience;
   * - `exp`, `nbf` (and `iat`) present, checked with AUTH_CLOCK_SKEW_SECONDS; `oid` a GUID (the user id);
   * - the tenant on AUTH_ALLOWED_TENANTS when that is set; never the personal Microsoft account tenant.
   */
  async function verifyEntraToken(token: string, settings: EntraSettings): Promise<Principal> {
    let payload: JWTPayload;
    let keyIssuers: unknown[] = [];
    const key: JWTVerifyGetKey = async (header, input) => {
      if (typeof header.kid !== "string" || header.kid === "") throw unauthenticated("invalid token (no key id)");
      const found = await jwks(header, input);
      keyIssuers = (jwks.jwks()?.keys ?? []).filter((k: JWK) => k.kid === header.kid).map((k) => (k as { issuer?: unknown }).issuer);
      return found;
    };
    try {
      ({ payload } = await jwtVerify(token, key, {
        clockTolerance: auth.clockSkewSeconds,
        algorithms: ["RS256"],
        requiredClaims: ["iss", "aud", "exp", "nbf", "iat", "ver", "tid", "oid"],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JOSEError) throw unauthenticated(`invalid token (${err.code})`);
      throw err; // JWKS endpoint unreachable etc.: not the caller's fault
    }
    if (payload.ver !== "2.0") throw unauthenticated("invalid token (only v2.0 access tokens are accepted)");
    const tenantId = payload.tid;
    if (typeof tenantId !== "string" || !GUID.test(tenantId)) throw unauthenticated("the token has no valid tenant claim");
    const issuer = settings.issuer.replace("{tenantid}", tenantId);
    if (payload.iss !== issuer) throw unauthenticated("invalid token (issuer does not match tenant)");
    for (const keyIssuer of keyIssuers) {
      if (keyIssuer !== undefined && (typeof keyIssuer !== "string" || keyIssuer.replace("{tenantid}", tenantId) !== issuer)) {
        throw unauthenticated("invalid token (the signing key is not for this issuer)");
      }
    }
    if (payload.aud !== settings.audience) throw unauthenticated("invalid token (audience is not this API)");
    if (tenantId === MSA_TENANT) throw unauthenticated("invalid token (personal Microsoft accounts are not accepted)");
    if (settings.allowedTenants && !settings.allowedTenants.has(tenantId)) throw unauthenticated("the token's tenant is not allowed");
    const userId = payload.oid;
    if (typeof userId !== "string" || !GUID.test(userId)) throw unauthenticated("the token names no user (oid)");
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is Role => KNOWN_ROLES.has(r as string)) : [];
    const name = typeof payload.preferred_username === "string" ? payload.preferred_username : undefined;
    return { tenantId, userId, roles: new Set(roles), ...(name ? { name } : {}) };
  }
}

interface EntraSettings {
  issuer: string;
  audience: string;
  allowedTenants?: ReadonlySet<string>;
}

/** What AUTH_MODE=entra needs of the AUTH_* settings; a ConfigError names what is wrong. */
function entraSettings(auth: Config["auth"]): EntraSettings {
  const problems: string[] = [];
  const audience = auth.audience.toLowerCase();
  if (!GUID.test(audience)) problems.push("AUTH_AUDIENCE: must be the app registration's client id (a GUID), the `aud` of its v2.0 access tokens");
  if (!/^https:\/\/[^/]+\/\{tenantid\}\/v2\.0$/.test(auth.issuer)) {
    problems.push("AUTH_ISSUER: must be the v2.0 issuer template, e.g. https://login.microsoftonline.com/{tenantid}/v2.0");
  }
  if (auth.tenantClaim !== "tid") problems.push("AUTH_TENANT_CLAIM: Entra ID tokens name their tenant in `tid`");
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  return {
    issuer: auth.issuer,
    audience,
    ...(auth.allowedTenants && auth.allowedTenants.length > 0 ? { allowedTenants: new Set(auth.allowedTenants) } : {}),
  };
}
