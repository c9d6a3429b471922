/**
 * `aigov`: builds the program, lets each command group add its commands (built-in groups in
 * commands/<area>.ts, pillar groups through the pillar list) and runs it.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { operations } from "../api/all-operations.js";
import { AigovClient, ApiError } from "../client/index.js";
import { pillars } from "../pillars/index.js";
import { approvalCommands } from "./commands/approvals.js";
import { auditCommands } from "./commands/audit.js";
import { exemptionCommands } from "./commands/exemptions.js";
import { keyCommands } from "./commands/keys.js";
import { usageCommands } from "./commands/usage.js";
import { reviewCommands } from "./commands/reviews.js";
import { loginCommands } from "./commands/login.js";
import { policyCommands } from "./commands/policy.js";
import { projectCommands } from "./commands/projects.js";
import { serviceCommands } from "./commands/service.js";
import { settingsCommands } from "./commands/settings.js";
import { type CliIo, type CliKit, type Globals, problemLine, render } from "./kit.js";
import { profilePath, readProfiles, resolveProfile, tokenCachePath } from "./profiles.js";
import { parseJsonText, readJsonFile } from "../util/json-file.js";

export type { CliIo } from "./kit.js";

/** Builds the `aigov` program. Every operation's `cli` verb is implemented by a command group (a test checks it). */
export function buildProgram(io: CliIo): Command {
  const program = new Command("aigov")
    .description("Govern models, tools and agents through Azure API Management")
    .option("-p, --profile <name>", "profile to use (default: the last one logged in)")
    .option("-e, --endpoint <url>", "API endpoint (overrides the profile)")
    .addOption(new Option("-o, --output <format>", "output format").choices(["table", "json"]).default("table"))
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .exitOverride();

  const globals = () => program.opts<Globals>();
  const stdin = () => (io.stdin ? io.stdin() : process.stdin.isTTY ? undefined : readFileSync(0, "utf8"));
  const kit: CliKit = {
    program,
    io,
    globals,
    client: () => {
      const g = globals();
      // A profile named with -p must exist: falling back to the default endpoint without a token would
      // send the command somewhere else than meant.
      if (g.profile !== undefined && !Object.hasOwn(readProfiles(profilePath(io.env)).profiles, g.profile)) {
        throw new CommanderError(2, "aigov.profile", `no profile '${g.profile}' (aigov -p ${g.profile} login … creates it)`);
      }
      const profile = resolveProfile(profilePath(io.env), g.profile);
      const entra = profile.entra;
      const token = entra
        ? async () => (await import("./entra.js")).entraToken(entra, { cachePath: tokenCachePath(io.env), ...(io.msalNetwork ? { networkClient: io.msalNetwork } : {}) })
        : profile.token;
      return new AigovClient({ endpoint: g.endpoint ?? profile.endpoint, token, ...(io.fetch ? { fetch: io.fetch } : {}) });
    },
    print: (value, columns) => render(io, globals().output, value, columns),
    render: (format, value, columns) => render(io, format, value, columns),
    out: (text) => io.out(text),
    err: (text) => io.err(text),
    json: () => globals().output === "json",
    // `--file -`: the body piped on stdin (`aigov projects create --file - < spec.json`); never a terminal's.
    readJson: (path) => {
      if (path !== "-") return readJsonFile(path);
      const piped = stdin();
      if (piped === undefined) throw new CommanderError(2, "aigov.stdin", "--file -: pipe the JSON on stdin, e.g. --file - < spec.json");
      return parseJsonText(piped, "stdin");
    },
    stdin,
  };

  // In this order in `aigov --help`.
  loginCommands(kit);
  serviceCommands(kit);
  projectCommands(kit);
  auditCommands(kit);
  // Each pillar adds its own commands (models register|list|show|update|deprecate|block|delete, …).
  for (const pillar of pillars()) pillar.cli?.(kit);
  settingsCommands(kit);
  policyCommands(kit);
  keyCommands(kit);
  approvalCommands(kit);
  exemptionCommands(kit);
  usageCommands(kit);
  reviewCommands(kit);

  return program;
}

/** Every CLI verb the program implements, e.g. "projects create" (for the coverage test). */
export function cliVerbs(program: Command): string[] {
  const walk = (cmd: Command, prefix: string[]): string[] =>
    cmd.commands.flatMap((c) => {
      const path = [...prefix, c.name()];
      return c.commands.length ? walk(c, path) : [path.join(" ")];
    });
  return walk(program, []);
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof ApiError) {
      const p = err.problem;
      // Scripts branch on the reason; with -o json they get the whole problem document, as one line on
      // stderr so that stdout holds only results.
      if (p && program.opts<Globals>().output === "json") {
        io.err(JSON.stringify(p));
        return 1;
      }
      // The client takes any document with a status and a code for a problem: a reason may be missing.
      io.err(p ? `error ${problemLine(err)}` : `error: HTTP ${err.status}`);
      for (const e of p?.errors ?? []) io.err(`  ${e.field}: ${e.message}`);
      if (p?.correlationId) io.err(`  correlation id: ${p.correlationId}`);
      return 1;
    }
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.exitCode === 0) return 0;
      if (err.code.startsWith("aigov.")) io.err(`error: ${err.message}`);
      return err.exitCode || 2;
    }
    io.err(`error: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

export const allOperationVerbs = () => operations.map((o) => o.cli);

if (require.main === module) {
  void runCli(process.argv.slice(2), {
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    env: process.env,
  }).then((code) => process.exit(code));
}
