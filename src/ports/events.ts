/** A CloudEvents 1.0 event as the app emits it (structured JSON mode). */
export interface CloudEvent {
  specversion: "1.0";
  id: string;
  source: string;
  type: string;
  subject: string;
  time: string;
  datacontenttype: "application/json";
  data: unknown;
}

export interface EventPublisher {
  /** Delivers one batch; the caller keeps each call within the transport's limits. Throws on failure. */
  publish(events: CloudEvent[]): Promise<void>;
}
