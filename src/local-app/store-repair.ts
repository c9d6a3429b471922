/**
 * `npm run store:repair -- [data dir]`: repairs the embedded Cosmos store the local host refused to open
 * (a damaged journal line or snapshot). Moves the damaged part to quarantine files beside the store,
 * keeps everything readable, and prints every document affected. Stop the app first.
 *
 * Exit codes: 0 repaired (or nothing to repair), 1 the store still does not open, 2 usage.
 */
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { repairStore } from "../adapters/local/cosmos-repair.js";

function main(argv: string[]): number {
  const args = argv.filter((a) => a !== "--");
  if (args.length > 1 || args.some((a) => a === "-h" || a === "--help")) {
    console.error("usage: npm run store:repair -- [data dir]   (default: $AIGOV_DATA_DIR or .data)");
    return 2;
  }
  const dataDir = resolve(args[0] ?? process.env.AIGOV_DATA_DIR ?? ".data");
  if (!existsSync(dataDir) || !statSync(dataDir).isDirectory()) {
    console.error(`store:repair: ${dataDir} is not a directory`);
    return 2;
  }
  const result = repairStore(dataDir);
  for (const line of result.report) console.log(line);
  return result.opens ? 0 : 1;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    console.error(`store:repair failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}
