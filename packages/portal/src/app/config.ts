/**
 * What the portal learns from where it is served (load-config.ts fetches it): `config.json` beside index.html. The local host writes
 * it from its own settings (dev sign-in only when the app runs with dev tokens); in Azure the deployment
 * writes it from the Entra app registration and the APIM gateway URL (docs/portal.md).
 */
export type AuthConfig =
  | { mode: "dev" }
  | { mode: "entra"; clientId: string; authority: string; scopes: string[]; redirectUri?: string };

export interface PortalConfig {
  auth: AuthConfig;
  /** The admin API's origin when it is not the portal's (Azure: the function app; locally the same origin). */
  apiUrl?: string;
  /** Where the playgrounds send requests: the gateway's base URL (locally a same-origin path to the local gateway). */
  gatewayUrl?: string;
}

function isConfig(v: unknown): v is PortalConfig {
  if (typeof v !== "object" || v === null) return false;
  const auth = (v as { auth?: { mode?: unknown; clientId?: unknown; authority?: unknown; scopes?: unknown } }).auth;
  if (!auth) return false;
  if (auth.mode === "dev") return true;
  return auth.mode === "entra" && typeof auth.clientId === "string" && typeof auth.authority === "string" && Array.isArray(auth.scopes);
}

/** config.json as the portal takes it: a sign-in mode it knows, or the server's reason why there is none. */
export function parseConfig(body: unknown): PortalConfig {
  if (!isConfig(body)) throw new Error(`config.json: ${(body as { error?: string } | null)?.error ?? "not a portal configuration"}`);
  return body;
}
