/** The public shapes of the local fake backends (re-exported by index.ts). */

export interface MockBackends {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  /** Behaviour of one instance (by host name); merged over the current one. */
  configure(host: string, behaviour: Partial<InstanceBehaviour>): void;
  /** Requests an instance received, oldest first (copies). */
  requests(host: string): RecordedRequest[];
  /** Forget behaviours and request logs (all instances). */
  reset(): void;
  close(): Promise<void>;
}

export interface InstanceBehaviour {
  /** Added before answering (default 0). */
  latencyMs: number;
  /** The next `count` requests fail with `status` (and `Retry-After: retryAfterSeconds` if set), with a JSON error body in OpenAI shape. */
  failNext?: { status: number; count: number; retryAfterSeconds?: number };
  /** Every request fails with this status while set (until configure(...{ failAlways: undefined })). */
  failAlways?: { status: number; retryAfterSeconds?: number };
  /** When set, requests without this exact `api-key` header value (or `Authorization: Bearer <value>`) get 401. */
  requireKey?: string;
  /** When true, requests without an `Authorization: Bearer <anything>` header get 401 (managed identity). */
  requireBearer?: boolean;
}

export interface RecordedRequest {
  method: string;
  /** Decoded path, without the query string. */
  path: string;
  query: Record<string, string>;
  /** Lower-cased names, as received. */
  headers: Record<string, string>;
  /** Parsed JSON; the raw text when it is not JSON; undefined when empty. */
  body: unknown;
  /** Date.now() on arrival. */
  at: number;
}
