/** Who is signed in, read from the access token the API checks (the server still decides everything). */
export interface Session {
  token: string;
  tenant: string;
  user: string;
  roles: string[];
  expiresAt: number;
}

/** Claims of a JWT, not verified: the server verifies; the portal only decides what to show. */
export function readToken(token: string): Session {
  const part = token.split(".")[1] ?? "";
  const bytes = Uint8Array.from(atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=")), (ch) => ch.charCodeAt(0));
  const json = new TextDecoder().decode(bytes); // UTF-8: names are not ASCII everywhere
  const c = JSON.parse(json) as { tid?: string; oid?: string; preferred_username?: string; roles?: string[]; exp?: number };
  return { token, tenant: c.tid ?? "", user: c.oid ?? c.preferred_username ?? "", roles: c.roles ?? [], expiresAt: (c.exp ?? 0) * 1000 };
}

