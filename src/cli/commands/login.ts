/** `aigov login`: store a token in a profile (--dev: mint one from the local dev issuer). Profiles: ../profiles.ts. */
import { CommanderError } from "commander";
import { AigovClient } from "../../client/index.js";
import { ROLES } from "../../domain/common.js";
import { type CliKit } from "../kit.js";
import { DEFAULT_ENDPOINT, profilePath, resolveProfile, saveProfile } from "../profiles.js";

export function loginCommands({ program, io, globals }: CliKit): void {
  program
    .command("login")
    .description("store a token for the CLI (--dev: mint one from the local dev issuer)")
    .option("--dev", "use the local host's dev token issuer")
    .option("--tenant <id>", "tenant id (dev)")
    .option("--user <id>", "user id (dev)")
    .option("--roles <list>", `comma-separated roles (dev): ${ROLES.join(", ")}`, "")
    .option("--token <jwt>", "an Entra ID access token obtained elsewhere (e.g. az account get-access-token)")
    .option("--name <profile>", "profile name", "default")
    .action(async (o: { dev?: boolean; tenant?: string; user?: string; roles: string; token?: string; name: string }) => {
      const endpoint = globals().endpoint ?? resolveProfile(profilePath(io.env), o.name).endpoint ?? DEFAULT_ENDPOINT;
      let token = o.token;
      if (o.dev) {
        if (!o.tenant || !o.user) throw new CommanderError(2, "aigov.login", "login --dev needs --tenant and --user");
        const roles = o.roles.split(",").map((r) => r.trim()).filter(Boolean);
        token = await new AigovClient({ endpoint, ...(io.fetch ? { fetch: io.fetch } : {}) }).dev.token({ tenant: o.tenant, user: o.user, roles });
      }
      if (!token) throw new CommanderError(2, "aigov.login", "pass --dev or --token");
      saveProfile(profilePath(io.env), o.name, { endpoint, token });
      io.err(`logged in; profile '${o.name}' → ${endpoint}`);
    });
}
