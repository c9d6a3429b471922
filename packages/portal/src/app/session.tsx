import { useQueryClient } from "@tanstack/react-query";
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import type { AuthConfig } from "./config.js";
import { readToken, type Session } from "./token.js";

export type { Session };

interface SessionState {
  session: Session | undefined;
  auth: AuthConfig;
  /** Local dev issuer only: a token for any tenant, user and roles. */
  signInDev(claims: { tenant: string; user: string; roles: string[] }): Promise<void>;
  signInEntra(): Promise<void>;
  signOut(): Promise<void>;
  /**
   * The token for the next call: Entra's got again each time (MSAL answers from its cache and refreshes a
   * token near its end), so a tab left open past the first token's hour keeps working; dev's as signed in.
   */
  token(): Promise<string | undefined>;
}

/** What a signed-in user's screens leave in the tab, besides the cache of answers (cleared at sign-out). */
export const LAST_PROJECT = "aigov.lastProject";

const SessionContext = createContext<SessionState | undefined>(undefined);

// Dev tokens live for the browser tab (sessionStorage, as MSAL keeps Entra tokens by default); virtual keys never do.
const DEV_SESSION = "aigov.devSession";

function storedDevSession(): Session | undefined {
  const token = sessionStorage.getItem(DEV_SESSION);
  if (!token) return undefined;
  try {
    const s = readToken(token);
    return s.expiresAt > Date.now() ? s : undefined;
  } catch {
    return undefined;
  }
}

type Msal = import("@azure/msal-browser").PublicClientApplication;

export function SessionProvider({ auth, children }: { auth: AuthConfig; children: ReactNode }) {
  const queryClient = useQueryClient();
  const [session, setSession] = useState<Session | undefined>(() => (auth.mode === "dev" ? storedDevSession() : undefined));
  const [msal, setMsal] = useState<Msal>();

  // Entra: MSAL (authorization code with PKCE), loaded only when the portal runs against Entra.
  useEffect(() => {
    if (auth.mode !== "entra") return;
    let cancelled = false;
    void (async () => {
      const { PublicClientApplication } = await import("@azure/msal-browser");
      const app = new PublicClientApplication({
        auth: { clientId: auth.clientId, authority: auth.authority, redirectUri: auth.redirectUri ?? new URL(import.meta.env.BASE_URL, location.origin).href },
        cache: { cacheLocation: "sessionStorage" },
      });
      await app.initialize();
      const result = await app.handleRedirectPromise();
      const account = result?.account ?? app.getAllAccounts()[0];
      if (account) {
        app.setActiveAccount(account);
        const token = await app.acquireTokenSilent({ scopes: auth.scopes, account });
        if (!cancelled) setSession(readToken(token.accessToken));
      }
      if (!cancelled) setMsal(app);
    })();
    return () => {
      cancelled = true;
    };
  }, [auth]);

  const signInDev = useCallback(
    async (claims: { tenant: string; user: string; roles: string[] }) => {
      if (auth.mode !== "dev") throw new Error("dev sign-in is available only on the local host in dev mode");
      // The client (and the schemas it carries) loads here, not with the sign-in screen.
      const { AigovClient } = await import("../../../../src/client/index.js");
      const token = await new AigovClient({ endpoint: location.origin }).dev.token(claims);
      sessionStorage.setItem(DEV_SESSION, token);
      setSession(readToken(token));
    },
    [auth],
  );
  const signInEntra = useCallback(async () => {
    if (auth.mode !== "entra" || !msal) return;
    await msal.loginRedirect({ scopes: auth.scopes });
  }, [auth, msal]);
  // Nothing the last user saw outlives their session in this tab: the next one to sign in (dev sign-out
  // does not reload the page) starts from no cached answer and no remembered project.
  const signOut = useCallback(async () => {
    sessionStorage.removeItem(DEV_SESSION);
    sessionStorage.removeItem(LAST_PROJECT);
    setSession(undefined);
    queryClient.clear();
    if (msal) await msal.logoutRedirect();
  }, [msal, queryClient]);
  const token = useCallback(async () => {
    const account = msal?.getActiveAccount();
    if (auth.mode !== "entra" || !msal || !account) return session?.token;
    try {
      return (await msal.acquireTokenSilent({ scopes: auth.scopes, account })).accessToken;
    } catch (err) {
      // The session ended (a sign-out elsewhere, a revoked refresh token, a new consent): sign in again
      // rather than fail every call. The redirect leaves the page; the call fails meanwhile.
      const { InteractionRequiredAuthError } = await import("@azure/msal-browser");
      if (err instanceof InteractionRequiredAuthError) await msal.acquireTokenRedirect({ scopes: auth.scopes, account });
      throw err;
    }
  }, [auth, msal, session?.token]);

  const value = useMemo(() => ({ session, auth, signInDev, signInEntra, signOut, token }), [session, auth, signInDev, signInEntra, signOut, token]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionState {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside SessionProvider");
  return s;
}

export const hasAny = (session: Session | undefined, roles: readonly string[] | undefined) => !roles || roles.some((r) => session?.roles.includes(r));
