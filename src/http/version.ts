import { readFileSync } from "node:fs";
import { join } from "node:path";

function readVersion(): string {
  for (const dir of [join(__dirname, "..", ".."), join(__dirname, "..", "..", "..")]) {
    try {
      return (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version;
    } catch {
      // try the next candidate (src/ vs dist/src/)
    }
  }
  return "0.0.0";
}

export const version = readVersion();
