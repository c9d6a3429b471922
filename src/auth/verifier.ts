import type { JWTPayload } from "jose";
import type { Config } from "../config/index.js";
import { ROLES, type Principal, type Role } from "../domain/common.js";
import { AppError } from "../domain/errors.js";

export interface TokenVerifier {
  /** Validates the bearer token of a request; throws an `unauthenticated` AppError otherwise. */
  verify(authorization: string | null): Promise<Principal>;
}

const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const KNOWN_ROLES: ReadonlySet<string> = new Set(ROLES);

const unauthenticated = (detail: string) => new AppError({ kind: "unauthenticated", detail });

/**
 * One validation path for Entra ID tokens and local dev tokens: signature from the issuer's JWKS,
 * issuer, audience, expiry (with clock skew). The tenant is the token's tenant claim, nothing else.
 * AUTH_ISSUER may contain "{tenantid}" for multi-tenant Entra apps
 * (https://login.microsoftonline.com/{tenantid}/v2.0).
 */
export function createTokenVerifier(auth: Config["auth"], opts: { cacheSize?: number; now?: () => number } = {}): TokenVerifier {
  // Loaded here, not at module load: keeps the function app's cold start cheap.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createRemoteJWKSet, errors: joseErrors, jwtVerify } = require("jose") as typeof import("jose");
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
      const principal = await verifyToken(token);
      const exp = (JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as { exp: number }).exp;
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
      cache.set(token, { principal, until: Math.min(exp * 1000 + auth.clockSkewSeconds * 1000, now() + 5 * 60_000) });
      return principal;
    },
  };

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
}
