import { readFileSync } from "node:fs";

/**
 * A JSON file's value. A file that does not parse is reported by its name and the error's position only:
 * the parser's own message quotes the text around the error, which in a file of credentials (a private key,
 * a token, a cloud secret in a connection spec) is part of a secret.
 */
export function readJsonFile(path: string): unknown {
  const text = readFileSync(path, "utf8");
  try {
    return JSON.parse(text);
  } catch (err) {
    const at = /position (\d+)/.exec(err instanceof Error ? err.message : "")?.[1];
    throw new Error(`${path} is not valid JSON${at === undefined ? "" : ` (at character ${at})`}`);
  }
}
