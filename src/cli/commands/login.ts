/**
 * `aigov login`: a profile for the CLI. --entra: sign in with Microsoft Entra ID (device code; entra.ts);
 * --dev: mint a token from the local dev issuer; --token: keep a token obtained elsewhere. Profiles: ../profiles.ts.
 */
import { CommanderError } from "commander";
import { AigovClient } from "../../client/index.js";
import { ROLES } from "../../domain/common.js";
import { type CliKit } from "../kit.js";
import { DEFAULT_ENDPOINT, type Profile, profilePath, resolveProfile, saveProfile, tokenCachePath } from "../profiles.js";

interface LoginOptions {
  entra?: boolean;
  clientId?: string;
  scope?: string;
  authority?: string;
  dev?: boolean;
  tenant?: string;
  user?: string;
  roles: string;
  token?: string;
  name?: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function loginCommands({ program, io, globals }: CliKit): void {
  program
    .command("login")
    .description("sign the CLI in: --entra (Microsoft Entra ID, device code), --dev (the local dev issuer) or --token")
    .option("--entra", "sign in with Microsoft Entra ID (device code flow)")
    .option("--client-id <guid>", "Entra: the client registration's id (azd output AUTH_CLIENT_ID; env AIGOV_CLIENT_ID)")
    .option("--scope <scope>", "Entra: the API's scope, api://<api app id>/access_as_user (azd output AUTH_API_SCOPE; env AIGOV_API_SCOPE)")
    .option("--authority <url>", "Entra: the authority (default https://login.microsoftonline.com/organizations; …/<tenant id> for one tenant)")
    .option("--dev", "use the local host's dev token issuer")
    .option("--tenant <id>", "tenant id (dev; with --entra, the tenant whose authority to use)")
    .option("--user <id>", "user id (dev)")
    .option("--roles <list>", `comma-separated roles (dev): ${ROLES.join(", ")}`, "")
    .option("--token <jwt>", "an Entra ID access token obtained elsewhere (e.g. az account get-access-token)")
    .option("--name <profile>", "profile name (default: -p, else 'default')")
    .action(async (o: LoginOptions) => {
      const name = o.name ?? globals().profile ?? "default";
      const endpoint = globals().endpoint ?? resolveProfile(profilePath(io.env), name).endpoint ?? DEFAULT_ENDPOINT;
      const ways = [o.entra, o.dev, o.token !== undefined].filter(Boolean).length;
      if (ways !== 1) throw new CommanderError(2, "aigov.login", "pass one of --entra, --dev or --token");
      let profile: Profile;
      if (o.entra) {
        profile = { endpoint, entra: await entraSignIn(o, { io }) };
      } else if (o.dev) {
        if (!o.tenant || !o.user) throw new CommanderError(2, "aigov.login", "login --dev needs --tenant and --user");
        const roles = o.roles.split(",").map((r) => r.trim()).filter(Boolean);
        profile = { endpoint, token: await new AigovClient({ endpoint, ...(io.fetch ? { fetch: io.fetch } : {}) }).dev.token({ tenant: o.tenant, user: o.user, roles }) };
      } else {
        profile = { endpoint, token: o.token! };
      }
      saveProfile(profilePath(io.env), name, profile);
      io.err(`logged in; profile '${name}' → ${endpoint}`);
    });
}

async function entraSignIn(o: LoginOptions, { io }: Pick<CliKit, "io">) {
  const clientId = o.clientId ?? io.env.AIGOV_CLIENT_ID;
  const scope = o.scope ?? io.env.AIGOV_API_SCOPE;
  if (!clientId || !GUID.test(clientId)) throw new CommanderError(2, "aigov.login", "login --entra needs --client-id <guid> (the azd output AUTH_CLIENT_ID)");
  if (!scope || !/^api:\/\/[0-9a-f-]{36}\/[\w.-]+$/i.test(scope)) throw new CommanderError(2, "aigov.login", "login --entra needs --scope api://<api app id>/access_as_user (the azd output AUTH_API_SCOPE)");
  const { DEFAULT_AUTHORITY, entraLogin } = await import("../entra.js");
  const authority = o.authority ?? (o.tenant ? `https://login.microsoftonline.com/${o.tenant}` : DEFAULT_AUTHORITY);
  if (!/^https:\/\/[^/]+\/[^/]+\/?$/.test(authority)) throw new CommanderError(2, "aigov.login", "--authority must be https://<host>/<tenant or organizations>");
  const entra = { clientId: clientId.toLowerCase(), authority: authority.replace(/\/$/, ""), scopes: [scope] };
  const signedIn = await entraLogin(entra, { cachePath: tokenCachePath(io.env), prompt: (m) => io.err(m), ...(io.msalNetwork ? { networkClient: io.msalNetwork } : {}) });
  io.err(`signed in as ${signedIn.username} (tenant ${signedIn.tenantId})`);
  return { ...entra, homeAccountId: signedIn.homeAccountId };
}
