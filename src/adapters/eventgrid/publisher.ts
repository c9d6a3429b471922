import type { CloudEvent, EventPublisher } from "../../ports/events.js";

/** Event Grid topic (CloudEvents 1.0 schema), authenticated with managed identity. */
export class EventGridPublisher implements EventPublisher {
  private client: import("@azure/eventgrid").EventGridPublisherClient<"CloudEvent"> | undefined;

  constructor(private readonly endpoint: string) {}

  async publish(events: CloudEvent[]): Promise<void> {
    if (events.length === 0) return;
    if (!this.client) {
      // Loaded on first use: keeps cold start cheap and the CommonJS copy of the SDK the only one.
      /* eslint-disable @typescript-eslint/no-require-imports */
      const { EventGridPublisherClient } = require("@azure/eventgrid") as typeof import("@azure/eventgrid");
      const { DefaultAzureCredential } = require("@azure/identity") as typeof import("@azure/identity");
      /* eslint-enable @typescript-eslint/no-require-imports */
      this.client = new EventGridPublisherClient(this.endpoint, "CloudEvent", new DefaultAzureCredential());
    }
    const client = this.client;
    // The SDK sends the whole array in one request; OutboxRelay already sized it for Event Grid's limits.
    await client.send(
      events.map((e) => ({
        id: e.id,
        source: e.source,
        type: e.type,
        subject: e.subject,
        time: new Date(e.time),
        datacontenttype: e.datacontenttype,
        data: e.data,
      })),
    );
  }
}
