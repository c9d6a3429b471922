import { createHash } from "node:crypto";
import { appendFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Notifier } from "../../ports/notifier.js";

/** Longest base64url name kept whole: with ".ndjson", well inside the 255 bytes a file name may have. */
const MAX_PLAIN_NAME = 128;
const KEPT_PREFIX = 64;

/** Local twin of a notification channel: one NDJSON inbox per recipient under <dataDir>/inbox/. */
export class FileNotifier implements Notifier {
  constructor(private readonly dir: string) {}

  /**
   * `<base64url(recipient)>.ndjson`; for a recipient id too long for that to be a file name (over 96
   * bytes), the first 64 characters of it, ".", and the SHA-256 of the id (base64url) — "." never
   * occurs in base64url, so a long id's inbox can never be a short id's.
   */
  static inboxFile(dir: string, recipient: string): string {
    const plain = Buffer.from(recipient).toString("base64url");
    const name = plain.length <= MAX_PLAIN_NAME ? plain : `${plain.slice(0, KEPT_PREFIX)}.${createHash("sha256").update(recipient).digest("base64url")}`;
    return join(dir, `${name}.ndjson`);
  }

  async deliver(recipient: string, message: { subject: string; body: string; link?: string }): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await appendFile(FileNotifier.inboxFile(this.dir, recipient), `${JSON.stringify({ at: new Date().toISOString(), recipient, ...message })}\n`, { mode: 0o600 });
  }
}
