/** `aigov health`, `aigov openapi`: the service itself. */
import { type CliKit } from "../kit.js";

export function serviceCommands({ program, client, print, out }: CliKit): void {
  program.command("health").description("GET /api/health").action(async () => print(await client().health(), ["status", "version"]));
  program.command("openapi").description("print the OpenAPI 3.1 document").action(async () => out(JSON.stringify(await client().openApi(), null, 2)));
}
