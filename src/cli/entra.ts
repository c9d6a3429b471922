/**
 * The CLI's Microsoft Entra ID sign-in (`aigov login --entra`): the device code flow of MSAL Node against
 * the deployment's client registration (a multi-tenant public client, infra/modules/app-registration.bicep),
 * asking for the API's delegated scope (`api://{apiAppId}/access_as_user`, azd output AUTH_API_SCOPE).
 *
 * MSAL's token cache (access, refresh and id tokens, accounts) is kept in a file beside the profiles,
 * readable by the user only, as the Azure CLI keeps its own; each command gets its access token from it
 * silently (MSAL refreshes it when it is about to expire). The profile holds no token, only the client id,
 * authority, scopes and the signed-in account's id.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Configuration, ICachePlugin, INetworkModule, TokenCacheContext } from "@azure/msal-node";

export interface EntraProfile {
  clientId: string;
  /** https://login.microsoftonline.com/organizations (any work account) or …/<tenant id>. */
  authority: string;
  scopes: string[];
  /** The signed-in account (MSAL's home account id): which cached account this profile uses. */
  homeAccountId?: string;
}

export const DEFAULT_AUTHORITY = "https://login.microsoftonline.com/organizations";

export interface EntraOptions {
  /** MSAL's token cache file (0600). */
  cachePath: string;
  /** MSAL's HTTP client; the default is MSAL's own. Tests point it at a local fake of Entra ID. */
  networkClient?: INetworkModule;
}

/** MSAL's cache in one file, written only when MSAL changed it, readable by the user alone. */
function fileCache(path: string): ICachePlugin {
  return {
    beforeCacheAccess: async (ctx: TokenCacheContext) => {
      if (existsSync(path)) ctx.tokenCache.deserialize(readFileSync(path, "utf8"));
    },
    afterCacheAccess: async (ctx: TokenCacheContext) => {
      if (!ctx.cacheHasChanged) return;
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, ctx.tokenCache.serialize(), { mode: 0o600 });
      chmodSync(path, 0o600);
    },
  };
}

async function application(p: EntraProfile, o: EntraOptions) {
  const { PublicClientApplication } = await import("@azure/msal-node");
  const config: Configuration = {
    auth: { clientId: p.clientId, authority: p.authority },
    cache: { cachePlugin: fileCache(o.cachePath) },
    ...(o.networkClient ? { system: { networkClient: o.networkClient } } : {}),
  };
  return new PublicClientApplication(config);
}

/** Signs a user in with a device code; `prompt` shows MSAL's message (the URL and the code to enter). */
export async function entraLogin(p: EntraProfile, o: EntraOptions & { prompt: (message: string) => void; timeoutSeconds?: number }): Promise<{ homeAccountId: string; username: string; tenantId: string }> {
  const app = await application(p, o);
  const result = await app.acquireTokenByDeviceCode({
    scopes: p.scopes,
    deviceCodeCallback: (r) => o.prompt(r.message),
    ...(o.timeoutSeconds ? { timeout: o.timeoutSeconds } : {}),
  });
  if (!result?.account) throw new Error("Entra ID returned no account for the sign-in");
  return { homeAccountId: result.account.homeAccountId, username: result.account.username, tenantId: result.account.tenantId };
}

/** An access token for the profile's account from the cache, refreshed by MSAL when needed. */
export async function entraToken(p: EntraProfile, o: EntraOptions): Promise<string> {
  const app = await application(p, o);
  const accounts = await app.getTokenCache().getAllAccounts();
  const account = accounts.find((a) => a.homeAccountId === p.homeAccountId);
  if (!account) throw new EntraSignInRequired("no signed-in account for this profile in the token cache");
  try {
    const result = await app.acquireTokenSilent({ account, scopes: p.scopes });
    return result.accessToken;
  } catch (err) {
    const { InteractionRequiredAuthError } = await import("@azure/msal-node");
    if (err instanceof InteractionRequiredAuthError) throw new EntraSignInRequired(err.errorMessage || err.errorCode);
    throw err;
  }
}

/** The cached sign-in cannot be used any more (expired refresh token, revoked consent, a policy asks for MFA). */
export class EntraSignInRequired extends Error {
  constructor(reason: string) {
    super(`sign in again with aigov login --entra (${reason})`);
  }
}
