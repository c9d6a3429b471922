/**
 * Vertex AI Agent Engine (reasoning engines) through `@google-cloud/aiplatform`'s v1 ReasoningEngineServiceClient:
 * gRPC against `<region>-aiplatform.googleapis.com`, or its REST fallback over plain HTTP against a local fake.
 *
 * One page is one ListReasoningEngines call with `autoPaginate: false`: the default (and the stream and async
 * iterator) would follow every page inside one activity. The client's own config does not retry List (its
 * codes are "non_idempotent"), so each call passes gax retry options: RESOURCE_EXHAUSTED, UNAVAILABLE and
 * DEADLINE_EXCEEDED retried with jittered exponential back-off, a per-attempt time-out, a bounded number of
 * attempts.
 *
 * gax reports retries that ran out as DEADLINE_EXCEEDED ("Exceeded maximum number of retries"), whatever the
 * cloud said, which would turn persistent throttling into "unavailable". So gax makes all attempts but the last,
 * and the last is made without retry: its error is the cloud's own.
 */
import { v1 } from "@google-cloud/aiplatform";
import { IdentityPoolClient, OAuth2Client } from "google-auth-library";
import { RecordCheck, errorText, pageSizeOf, throwIfAborted, tuning } from "./shared.js";
import { type AgentSource, type MalformedRecord, type SourceAgent, SourceError, type SourceFailureKind, type SourcePage, type SourceTarget } from "./source.js";

export type VertexTarget = Extract<SourceTarget, { cloud: "vertex" }>;

type EngineClient = InstanceType<typeof v1.ReasoningEngineServiceClient>;
type ClientOptions = NonNullable<ConstructorParameters<typeof v1.ReasoningEngineServiceClient>[0]>;

/** A bound of our own on pageSize: a bigger page is slower to retry, and the service may cut it down anyway. */
const MAX_PAGE = 100;
/** Back-off when the target does not set one: a throttled project needs seconds, not the client's default 100 ms. */
const DEFAULT_BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;

/** gRPC status codes (google.rpc.Code). */
const Code = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
const CODE_NAME = new Map<number, string>(Object.entries(Code).map(([name, code]) => [code, name]));
const RETRY_CODES = [Code.RESOURCE_EXHAUSTED, Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED];
const KIND_OF_CODE: Partial<Record<number, SourceFailureKind>> = {
  [Code.RESOURCE_EXHAUSTED]: "throttled",
  [Code.UNAVAILABLE]: "unavailable",
  [Code.DEADLINE_EXCEEDED]: "unavailable",
  [Code.INTERNAL]: "unavailable",
  [Code.UNKNOWN]: "unavailable",
  [Code.ABORTED]: "unavailable",
  [Code.CANCELLED]: "unavailable",
  [Code.DATA_LOSS]: "unavailable",
  [Code.PERMISSION_DENIED]: "refused",
  [Code.UNAUTHENTICATED]: "refused",
  [Code.NOT_FOUND]: "refused",
  [Code.INVALID_ARGUMENT]: "refused",
  [Code.FAILED_PRECONDITION]: "refused",
  [Code.OUT_OF_RANGE]: "refused",
  [Code.UNIMPLEMENTED]: "refused",
  [Code.ALREADY_EXISTS]: "refused",
};

export function createVertexSource(target: VertexTarget): AgentSource {
  const { maxAttempts, baseDelayMs, requestTimeoutMs } = tuning(target.retry);
  const clients = new Map<string, EngineClient>();
  // One credential for every region's client: a federated one exchanges its token once, not per region.
  let credentials: ClientOptions | undefined;

  const clientFor = (region: string): EngineClient => {
    let client = clients.get(region);
    if (!client) clients.set(region, (client = new v1.ReasoningEngineServiceClient({ ...endpointOptions(target, region), ...(credentials ??= credentialOptions(target)) })));
    return client;
  };

  const retry = (attempts: number) => ({
    retryCodes: RETRY_CODES,
    backoffSettings: {
      initialRetryDelayMillis: baseDelayMs ?? DEFAULT_BASE_DELAY_MS,
      retryDelayMultiplier: 2,
      maxRetryDelayMillis: Math.max(baseDelayMs ?? DEFAULT_BASE_DELAY_MS, MAX_DELAY_MS),
      initialRpcTimeoutMillis: requestTimeoutMs,
      rpcTimeoutMultiplier: 1,
      maxRpcTimeoutMillis: requestTimeoutMs,
      // gax counts every attempt here, the first included; it refuses maxRetries together with a total time-out.
      maxRetries: attempts,
    },
  });

  return {
    cloud: "vertex",
    async listPage(region, cursor, options = {}) {
      const { signal } = options;
      throwIfAborted(signal);
      const parent = `projects/${target.projectId}/locations/${region}`;
      const request = { parent, pageSize: pageSizeOf(options.pageSize, MAX_PAGE), ...(cursor ? { pageToken: cursor } : {}) };
      const client = clientFor(region);
      const call = (withRetry: boolean) =>
        client.listReasoningEngines(request, {
          autoPaginate: false,
          timeout: requestTimeoutMs,
          retry: withRetry ? retry(maxAttempts - 1) : null,
          ...(signal ? { signal } : {}),
        });

      let answer: Awaited<ReturnType<typeof call>>;
      try {
        try {
          answer = await call(maxAttempts > 1);
        } catch (e) {
          if (!retriesRanOut(e)) throw e;
          answer = await call(false);
        }
      } catch (e) {
        throwIfAborted(signal);
        throw toSourceError(e);
      }

      // With autoPaginate false gax resolves [resources, next request or null, raw response]; the raw response
      // carries nextPageToken ("" on the last page: protobuf's default, not an absent field).
      const [engines, , raw] = answer;
      const agents: SourceAgent[] = [];
      const malformed: MalformedRecord[] = [];
      for (const [i, engine] of (engines ?? []).entries()) {
        const outcome = normalise(engine as Record<string, unknown>, parent, i);
        if ("agent" in outcome) agents.push(outcome.agent);
        else malformed.push(outcome.malformed);
      }
      const next = typeof raw?.nextPageToken === "string" && raw.nextPageToken !== "" ? raw.nextPageToken : undefined;
      return { agents, malformed, ...(next ? { next } : {}) } satisfies SourcePage;
    },
    async close() {
      await Promise.all([...clients.values()].map((c) => c.close()));
      clients.clear();
    },
  };
}

function endpointOptions(target: VertexTarget, region: string): ClientOptions {
  if (target.endpoint) return { fallback: true, protocol: "http", apiEndpoint: target.endpoint.host, port: target.endpoint.port };
  // The global endpoint does not serve a region's reasoning engines.
  return { apiEndpoint: `${region}-aiplatform.googleapis.com` };
}

function credentialOptions(target: VertexTarget): ClientOptions {
  const credentials = target.credentials;
  if (credentials.kind === "workloadIdentity") {
    // Workload identity federation: google-auth-library's identity pool client exchanges the Entra ID token at
    // Google's STS for the pool provider (RFC 8693), then (optionally) impersonates the service account; it
    // asks the supplier again when its token expires. A local fake serves both endpoints.
    const base = target.endpoint ? `http://${target.endpoint.host}:${target.endpoint.port}` : undefined;
    const sa = credentials.serviceAccount;
    const authClient = new IdentityPoolClient({
      type: "external_account",
      audience: credentials.provider,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      token_url: `${base ?? "https://sts.googleapis.com"}/v1/token`,
      ...(sa ? { service_account_impersonation_url: `${base ?? "https://iamcredentials.googleapis.com"}/v1/projects/-/serviceAccounts/${encodeURIComponent(sa)}:generateAccessToken` } : {}),
      subject_token_supplier: { getSubjectToken: () => credentials.token() },
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    });
    return { authClient, projectId: target.projectId };
  }
  if (credentials.kind === "accessToken") {
    const authClient = new OAuth2Client();
    // No refresh token: the client uses this token until the source is rebuilt (expiry far ahead, or it would
    // try, and fail, to refresh it).
    authClient.setCredentials({ access_token: credentials.token, expiry_date: Date.now() + 10 * 365 * 86_400_000 });
    return { authClient };
  }
  if (credentials.kind === "serviceAccountKey") {
    let key: { client_email?: unknown; private_key?: unknown };
    try {
      key = JSON.parse(credentials.json) as typeof key;
    } catch {
      throw new SourceError("refused", "the service account key is not JSON", "InvalidCredentials");
    }
    if (typeof key.client_email !== "string" || typeof key.private_key !== "string") {
      throw new SourceError("refused", "the service account key has no client_email or private_key", "InvalidCredentials");
    }
    return { credentials: { client_email: key.client_email, private_key: key.private_key }, projectId: target.projectId };
  }
  // Application default credentials: workload identity federation, the metadata server, GOOGLE_APPLICATION_CREDENTIALS.
  return { projectId: target.projectId };
}

function normalise(engine: Record<string, unknown>, parent: string, i: number): { agent: SourceAgent } | { malformed: MalformedRecord } {
  const check = new RecordCheck(`ListReasoningEngines item ${i}`);
  const name = check.id(engine?.name, "name");
  if (name && !name.startsWith(`${parent}/reasoningEngines/`)) check.problems.push(`name ${name} is not a reasoning engine of ${parent}`);
  const updatedAt = check.time(engine?.updateTime, "updateTime");
  const spec = engine?.spec && typeof engine.spec === "object" ? (engine.spec as Record<string, unknown>) : undefined;
  // protobuf decoding gives every engine a classMethods list ([] when it declares none); without a spec, unknown.
  const actions = spec
    ? check
        .list(spec.classMethods, "spec.classMethods")
        .map(methodName)
        .filter((m): m is string => m !== undefined)
        .map((m) => ({ id: m, name: m }))
    : undefined;
  return check.result(
    {
      sourceId: name,
      name: check.id(engine?.displayName, "displayName"),
      description: check.text(engine?.description, "description"),
      sourceVersion: check.text(engine?.etag, "etag") ?? updatedAt,
      updatedAt,
      labels: check.labels(engine?.labels, "labels"),
      // The v1 proto has nothing model-like (the model is inside the deployed code); reasoning engines are
      // invoked through :query on the resource itself, not at an endpoint of their own.
      model: undefined,
      endpoint: undefined,
      actions,
    },
    name || undefined,
  );
}

/** A class method is a google.protobuf.Struct: protobufjs gives `{fields: {name: {stringValue}}}`, JSON a plain object. */
function methodName(method: unknown): string | undefined {
  if (!method || typeof method !== "object") return undefined;
  const m = method as { fields?: Record<string, { stringValue?: unknown } | undefined>; name?: unknown };
  const value = m.fields ? m.fields.name?.stringValue : m.name;
  return typeof value === "string" && value !== "" ? value : undefined;
}

function retriesRanOut(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown };
  return err.code === Code.DEADLINE_EXCEEDED && typeof err.message === "string" && err.message.startsWith("Exceeded maximum number of retries");
}

function toSourceError(e: unknown): SourceError {
  if (e instanceof SourceError) return e;
  const err = e as { code?: unknown; httpStatusCode?: unknown };
  const message = `ListReasoningEngines: ${errorText(e)}`;
  if (typeof err.code === "number" && KIND_OF_CODE[err.code]) {
    return new SourceError(KIND_OF_CODE[err.code] as SourceFailureKind, message, CODE_NAME.get(err.code) ?? String(err.code));
  }
  const status = typeof err.httpStatusCode === "number" ? err.httpStatusCode : undefined;
  if (status === 429) return new SourceError("throttled", message, "429");
  if (status !== undefined && status >= 400 && status < 500 && status !== 408) return new SourceError("refused", message, String(status));
  // google-auth-library without usable credentials (no ADC, a revoked key) fails before any request is sent.
  if (/default credentials|invalid_grant|unauthorized_client|invalid_client/i.test(errorText(e))) {
    return new SourceError("refused", message, "InvalidCredentials");
  }
  return new SourceError("unavailable", message, status !== undefined ? String(status) : typeof err.code === "string" ? err.code : "UNKNOWN");
}
