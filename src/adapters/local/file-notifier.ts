import { appendFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Notifier } from "../../ports/notifier.js";

/** Local twin of a notification channel: one NDJSON inbox per recipient under <dataDir>/inbox/. */
export class FileNotifier implements Notifier {
  constructor(private readonly dir: string) {}

  static inboxFile(dir: string, recipient: string): string {
    return join(dir, `${Buffer.from(recipient).toString("base64url")}.ndjson`);
  }

  async deliver(recipient: string, message: { subject: string; body: string; link?: string }): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await appendFile(FileNotifier.inboxFile(this.dir, recipient), `${JSON.stringify({ at: new Date().toISOString(), recipient, ...message })}\n`, { mode: 0o600 });
  }
}
