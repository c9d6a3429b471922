import { appendFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { CloudEvent, EventPublisher } from "../../ports/events.js";

/** Local twin of Event Grid: appends CloudEvents to an NDJSON file and optionally POSTs them to a webhook. */
export class NdjsonEventSink implements EventPublisher {
  constructor(
    private readonly file: string,
    private readonly webhookUrl?: string,
  ) {}

  async publish(events: CloudEvent[]): Promise<void> {
    if (events.length === 0) return;
    await mkdir(dirname(this.file), { recursive: true });
    await appendFile(this.file, events.map((e) => JSON.stringify(e)).join("\n") + "\n");
    if (this.webhookUrl) {
      const res = await fetch(this.webhookUrl, {
        method: "POST",
        headers: { "content-type": "application/cloudevents-batch+json; charset=utf-8" },
        body: JSON.stringify(events),
      });
      if (res.status < 200 || res.status > 204) throw new Error(`webhook answered ${res.status}`);
    }
  }
}
