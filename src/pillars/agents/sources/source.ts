/**
 * The port between agent sync and a cloud's agent service: one page of a region's agents, already
 * normalised to what the registry keeps. Adapters (bedrock.ts, vertex.ts, foundry.ts) wrap each
 * cloud's own SDK unmodified; the sync never sees an SDK type.
 */

export type Cloud = "bedrock" | "vertex" | "foundry";

/** One agent as a cloud runs it, normalised. Every field the registry keeps comes from here. */
export interface SourceAgent {
  /** The cloud's own id, stable for the agent's life: Bedrock agentId, Vertex's full resource name, Foundry's agent id. */
  sourceId: string;
  name: string;
  description?: string;
  /** The cloud's version of the agent (Bedrock latest version, Foundry latest version) or its etag (Vertex). */
  sourceVersion?: string;
  /** The cloud's status text as it gives it (e.g. Bedrock PREPARED). */
  sourceStatus?: string;
  /** When the cloud last changed it (ISO 8601). */
  updatedAt?: string;
  /** The foundation model it runs on, when the cloud says. */
  model?: string;
  /** Where it is invoked, when the cloud says (an https URL). */
  endpoint?: string;
  /** Labels / tags / metadata (string values only). */
  labels?: Record<string, string>;
  /** Bedrock: aliases. */
  aliases?: { id: string; name: string; status: string; agentVersion?: string }[];
  /** Bedrock: the action groups of the agent's draft/latest version; Foundry: tool types; Vertex: class methods. */
  actions?: { id: string; name: string; state?: string }[];
  /** An A2A AgentCard the cloud stores for it (Foundry agent_card, AgentCore registry), as given. */
  card?: unknown;
}

/** A record the cloud returned that cannot be an agent (missing id or name, wrong types): reported, never stored. */
export interface MalformedRecord {
  sourceId?: string;
  reason: string;
}

export interface SourcePage {
  agents: SourceAgent[];
  malformed: MalformedRecord[];
  /** The cursor of the next page; absent on the last page. Opaque to the sync (stored between activities). */
  next?: string;
}

/**
 * Why a call to a cloud failed, as the sync decides on it:
 * - throttled: the cloud said slow down (HTTP 429, ThrottlingException, RESOURCE_EXHAUSTED) after the SDK's own retries;
 * - unavailable: 5xx, a time-out or a broken connection after the SDK's own retries;
 * - refused: credentials or permissions (401/403), a missing account/project/region (404), bad configuration — retrying will not help.
 */
export type SourceFailureKind = "throttled" | "unavailable" | "refused";

/** Longest message a SourceError keeps: sync runs store it, emit it in events and return it. */
const MAX_MESSAGE = 500;
/** Credential-bearing fragments an SDK message might quote: header lines, query parameters, auth schemes. */
const CREDENTIAL = /\b(x-amz-security-token\s*[:=]\s*|x-amz-signature=|x-amz-credential=|signature=|credential=|authorization\s*[:=]\s*(?:[A-Za-z0-9-]+\s+)?|bearer\s+|access_token=|sig=)[^\s,;&'"]+/gi;

/**
 * A cloud's error message as a report may keep it: its first line, credential-looking fragments removed,
 * at most MAX_MESSAGE characters. Some services quote the request back from the second line on: AWS's
 * signature errors give the canonical request with every signed header, x-amz-security-token included.
 */
export function reportableMessage(message: string, secrets: readonly string[] = []): string {
  const first = message.split(/\r?\n/).find((line) => line.trim() !== "") ?? "";
  let redacted = first.trim().replace(CREDENTIAL, (_all, name: string) => `${name}[redacted]`);
  for (const secret of secrets) redacted = redacted.split(secret).join("[redacted]");
  // A message shortened before the secrets were known may end in the start of one: that is blotted out too.
  if (redacted.endsWith("…")) {
    const body = redacted.slice(0, -1);
    const cut = secrets.reduce((n, secret) => Math.max(n, ...Array.from({ length: Math.min(secret.length, body.length) - 3 }, (_, i) => i + 4).filter((len) => body.endsWith(secret.slice(0, len)))), 0);
    if (cut) redacted = `${body.slice(0, -cut)}[redacted]…`;
  }
  return redacted.length > MAX_MESSAGE ? `${redacted.slice(0, MAX_MESSAGE - 1)}…` : redacted;
}

/**
 * The secret values of a target's credential (every string in it but those naming which it is, and each line of one that has several —
 * a service account key's PEM, which a first-line report could quote alone), longest first: a cloud's error
 * may quote them in forms no CREDENTIAL pattern knows. Shorter than eight characters a value is no secret.
 */
export function secretsOf(target: SourceTarget): string[] {
  // What says which credential, not what it is (the connection's document holds them): never blotted out.
  const PUBLIC = new Set(["kind", "roleArn", "sessionName", "provider", "serviceAccount"]);
  const values: string[] = [];
  // A multi-line secret (a PEM) may be quoted a line at a time; a JSON document's lines are mostly not
  // secret (`"type": "service_account",`): its secret members are added parsed, below. PEM armour is public.
  const linesOf = (value: string): string[] => {
    try {
      JSON.parse(value);
      return [];
    } catch {
      return value.split(/\r?\n|\\n/).map((line) => line.trim()).filter((line) => !line.startsWith("-----"));
    }
  };
  const add = (value: unknown): void => {
    if (typeof value === "string") values.push(value, encodeURIComponent(value), ...linesOf(value));
    else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) if (!PUBLIC.has(k)) add(v);
  };
  add(target.credentials);
  // A service account key is JSON: its private key is quoted parsed (real new lines) as often as escaped.
  if (target.cloud === "vertex" && target.credentials.kind === "serviceAccountKey") {
    try {
      const key = JSON.parse(target.credentials.json) as Record<string, unknown>;
      add([key.private_key, key.private_key_id]);
    } catch {
      // not JSON: the source refuses it, quoting nothing of it
    }
  }
  return [...new Set(values.filter((v) => v.length >= 8))].sort((a, b) => b.length - a.length);
}

export class SourceError extends Error {
  constructor(
    readonly kind: SourceFailureKind,
    message: string,
    /** The cloud's own code (e.g. ThrottlingException, RESOURCE_EXHAUSTED, 503). */
    readonly code?: string,
  ) {
    super(reportableMessage(message));
    this.name = "SourceError";
  }
  get retryable(): boolean {
    return this.kind !== "refused";
  }
}

export interface AgentSource {
  readonly cloud: Cloud;
  /**
   * One page of the agents in `region`, with the details the list lacks fetched (Bedrock: GetAgent,
   * aliases, action groups). `cursor` is undefined for the first page. Throws SourceError.
   */
  listPage(region: string, cursor: string | undefined, options?: { pageSize?: number; signal?: AbortSignal }): Promise<SourcePage>;
  /** Releases connections the SDK holds. */
  close?(): Promise<void>;
}

/** Where and as whom to reach a cloud (from a connection; secrets already read from the secret store). */
export type SourceTarget =
  | {
      cloud: "bedrock";
      /** AWS account id (recorded in provenance; the credentials decide what is listed). */
      accountId: string;
      /** An access key; a role assumed with an Entra ID token (workload identity federation); or the SDK's default chain. */
      credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | { kind: "webIdentity"; roleArn: string; sessionName: string; token: () => Promise<string> } | { kind: "default" };
      /** Local fakes and tests: the SDK's `endpoint` setting (one endpoint for every region). */
      endpoint?: string;
      /** Also list AgentCore runtimes (bedrock-agentcore-control). */
      agentCore?: boolean;
      /** How the SDK retries and times out each request: attempts (first included), first back-off delay, time-out per attempt. Absent: 4 attempts, the adapter's back-off, 10 s. Tests shorten them. */
      retry?: { maxAttempts?: number; baseDelayMs?: number; requestTimeoutMs?: number };
    }
  | {
      cloud: "vertex";
      /** Google Cloud project id. */
      projectId: string;
      /** A service account key (JSON) or an access token (tests), or the default credentials (ADC / workload identity federation). */
      credentials:
        | { kind: "serviceAccountKey"; json: string }
        | { kind: "accessToken"; token: string }
        /** Workload identity federation: the pool provider, the service account to impersonate, the Entra ID token's source. */
        | { kind: "workloadIdentity"; provider: string; serviceAccount?: string; token: () => Promise<string> }
        | { kind: "default" };
      /** Local fakes: host and port served over plain HTTP with the SDK's REST fallback. */
      endpoint?: { host: string; port: number };
      /** How the SDK retries and times out each request: attempts (first included), first back-off delay, time-out per attempt. Absent: 4 attempts, the adapter's back-off, 10 s. Tests shorten them. */
      retry?: { maxAttempts?: number; baseDelayMs?: number; requestTimeoutMs?: number };
    }
  | {
      cloud: "foundry";
      /** Foundry project endpoints by region: https://<resource>.services.ai.azure.com/api/projects/<project>. A region without one lists nothing (refused). */
      projectEndpoints: Record<string, string>;
      /** A Microsoft Entra token credential comes from the control plane's managed identity; tests give a static token. */
      credentials: { kind: "default" } | { kind: "staticToken"; token: string };
      /** Local fakes: the HTTP client the SDK sends through (an in-process fake), as the SDK's `httpClient` option. */
      httpClient?: unknown;
      /** How the SDK retries and times out each request: attempts (first included), first back-off delay, time-out per attempt. Absent: 4 attempts, the adapter's back-off, 10 s. Tests shorten them. */
      retry?: { maxAttempts?: number; baseDelayMs?: number; requestTimeoutMs?: number };
    };

/** Builds a cloud's source (adapters load their SDK lazily: none is on the cold-start path). */
export type AgentSourceFactory = (target: SourceTarget) => Promise<AgentSource>;
