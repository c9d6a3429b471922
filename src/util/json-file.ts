import { readFileSync } from "node:fs";

/**
 * A JSON file's value. A file that does not parse is reported by its name and the error's position only:
 * the parser's own message quotes the text around the error, which in a file of credentials (a private key,
 * a token, a cloud secret in a connection spec) is part of a secret.
 */
export function readJsonFile(path: string): unknown {
  return parseJsonText(readFileSync(path, "utf8"), path);
}

/** JSON text's value; text that does not parse is reported as `<source> is not valid JSON`, quoting none of it (see readJsonFile). */
export function parseJsonText(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const at = /position (\d+)/.exec(err instanceof Error ? err.message : "")?.[1];
    throw new Error(`${source} is not valid JSON${at === undefined ? "" : ` (at character ${at})`}`);
  }
}
