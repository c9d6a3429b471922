/** `aigov settings show|set`: the tenant's governance settings. */
import { type CliKit } from "../kit.js";

export function settingsCommands({ program, client, out, readJson }: CliKit): void {
  const settings = program.command("settings").description("the tenant's governance settings (policy as code)");
  settings.command("show").description("print the tenant settings").action(async () => out(JSON.stringify(await client().settings.get(), null, 2)));
  settings
    .command("set")
    .description("replace the tenant settings from a JSON file ({\"settings\": {...}}; reads the current ETag unless --if-match)")
    .requiredOption("--file <path>")
    .option("--if-match <etag>")
    .action(async (o: { file: string; ifMatch?: string }) => {
      const c = client();
      const etag = o.ifMatch ?? (await c.settings.get()).etag;
      out(JSON.stringify(await c.settings.put(readJson(o.file) as never, etag), null, 2));
    });
}
