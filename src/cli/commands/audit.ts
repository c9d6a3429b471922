/** `aigov audit list|verify`. */
import { CommanderError } from "commander";
import { type CliKit } from "../kit.js";

export function auditCommands({ program, client, print, render, out, err, json }: CliKit): void {
  const audit = program.command("audit").description("read and verify the audit log");
  audit
    .command("list")
    .description("list audit records, newest first")
    .option("--scope <scope>", "'tenant' or a project id", "tenant")
    .option("--resource <path>", "e.g. /projects/prj_...")
    .option("--actor <user>")
    .option("--from <iso>")
    .option("--to <iso>")
    .option("--max-page-size <n>")
    .option("--continuation-token <token>")
    .action(async (o: Record<string, string | undefined>) => {
      const query = Object.fromEntries(
        Object.entries({ ...o, maxPageSize: o.maxPageSize ? Number(o.maxPageSize) : undefined }).filter(([, v]) => v !== undefined),
      );
      const page = await client().audit.list(query);
      if (page.continuationToken) err(`more: --continuation-token ${page.continuationToken}`);
      print(page.items, ["seq", "at", "actor", "action", "resource", "correlationId"]);
    });
  audit
    .command("verify")
    .description("recompute the hash chains; exits 3 when a chain is broken")
    .action(async () => {
      const result = await client().audit.verify();
      if (json()) out(JSON.stringify(result, null, 2));
      else {
        render("table", result.scopes, ["scope", "records", "ok"]);
        out(result.ok ? `OK: ${result.recordsChecked} records verified` : `BROKEN: ${JSON.stringify(result.firstBreak)}`);
      }
      if (!result.ok) throw new CommanderError(3, "aigov.auditBroken", "the audit chain is broken");
    });
}
