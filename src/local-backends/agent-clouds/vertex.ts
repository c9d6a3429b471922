/**
 * A fake of Vertex AI Agent Engine (ReasoningEngineService v1) for the unmodified
 * `@google-cloud/aiplatform` client in REST fallback mode (`fallback: true, protocol: "http"`), which sends
 * `GET /v1/projects/{p}/locations/{l}/reasoningEngines?pageSize&pageToken&$alt=json;enum-encoding=int` with
 * `Authorization: Bearer <token>`. One server answers every location (the location is in the path).
 *
 * Wire behaviour the client depends on: protobuf JSON (camelCase names, Timestamps as RFC 3339 strings, which
 * the client turns into `{seconds, nanos}` objects); errors as a google.rpc.Status in `{error: {code, status,
 * message}}`, which gax maps to a gRPC code; an absent or empty `nextPageToken` ends the list.
 *
 * With `workloadIdentity`, it also answers Google's Security Token Service token exchange (`POST /v1/token`,
 * RFC 8693 form) for that pool provider and subject-token audience, and IAM Credentials'
 * `generateAccessToken` for the service account, and then accepts only the access tokens it issued.
 */
import { type IncomingMessage, type ServerResponse } from "node:http";
import { decodePath } from "../http-io.js";
import { AgentCloudState, type FakeAgent, type FakeStats, type SeedOptions, afterToken, delay, listen, pageAfter, pageToken, patchWire, sendJson } from "./state.js";

export type VertexRequestKind = "ListReasoningEngines" | "GetReasoningEngine";

export interface VertexFakeOptions extends SeedOptions {
  state?: AgentCloudState;
  /** Requests for another project get 403 PERMISSION_DENIED. */
  projectId?: string;
  /** When set, requests with another bearer token get 401 UNAUTHENTICATED. */
  token?: string;
  /** Workload identity federation: the pool provider (STS `audience`), the `aud` a subject token must carry, and the service account impersonated (if any). */
  workloadIdentity?: { provider: string; subjectAudience: string; serviceAccount?: string };
  port?: number;
}

/** A token exchange (or impersonation) the fake answered. */
export interface GoogleStsCall {
  endpoint: "sts" | "impersonation";
  /** sts: the pool provider; impersonation: the service account. */
  audience: string;
  subjectClaims?: Record<string, unknown>;
  granted: boolean;
}

export interface VertexFake {
  state: AgentCloudState;
  /** For the target's `endpoint`. */
  host: string;
  port: number;
  projectId: string;
  stats(): FakeStats;
  /** Token exchanges so far (workloadIdentity). */
  stsCalls: GoogleStsCall[];
  close(): Promise<void>;
}

const STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  501: "NOT_IMPLEMENTED",
  502: "UNAVAILABLE",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

export async function startVertexFake(options: VertexFakeOptions = {}): Promise<VertexFake> {
  const state = options.state ?? new AgentCloudState("vertex", options);
  const projectId = options.projectId ?? "fake-project";
  const server = await listen((req, res, closing) => serve(req, res, closing), options.port);
  const stsCalls: GoogleStsCall[] = [];
  /** Access tokens the token exchange issued (federated), and those impersonation issued (the service account's). */
  const federated = new Set<string>();
  const impersonated = new Set<string>();
  return { state, host: "127.0.0.1", port: server.port, projectId, stats: () => state.stats(), stsCalls, close: server.close };

  /** STS token exchange and IAM Credentials generateAccessToken; undefined when the request is neither. */
  async function federation(req: IncomingMessage, res: ServerResponse, path: string): Promise<true | undefined> {
    const wi = options.workloadIdentity;
    if (!wi || req.method !== "POST") return undefined;
    const isSts = path === "/v1/token";
    const impersonation = /^\/v1\/projects\/-\/serviceAccounts\/([^/:]+):generateAccessToken$/.exec(path);
    if (!isSts && !impersonation) return undefined;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    if (isSts) {
      const form = new URLSearchParams(raw);
      let claims: Record<string, unknown> = {};
      try {
        claims = JSON.parse(Buffer.from((form.get("subject_token") ?? "").split(".")[1] ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
      } catch {
        claims = {};
      }
      const granted =
        form.get("grant_type") === "urn:ietf:params:oauth:grant-type:token-exchange" &&
        form.get("audience") === wi.provider &&
        form.get("subject_token_type") === "urn:ietf:params:oauth:token-type:jwt" &&
        claims.aud === wi.subjectAudience &&
        typeof claims.sub === "string";
      stsCalls.push({ endpoint: "sts", audience: form.get("audience") ?? "", subjectClaims: claims, granted });
      if (!granted) {
        sendJson(res, 400, { error: "invalid_grant", error_description: "The audience in the subject token or the pool provider does not match." });
        return true;
      }
      const token = `federated-${crypto.randomUUID()}`;
      federated.add(token);
      sendJson(res, 200, { access_token: token, issued_token_type: "urn:ietf:params:oauth:token-type:access_token", token_type: "Bearer", expires_in: 3600 });
      return true;
    }
    const account = decodeURIComponent(impersonation![1]!);
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const granted = account === wi.serviceAccount && bearer !== undefined && federated.has(bearer);
    stsCalls.push({ endpoint: "impersonation", audience: account, granted });
    if (!granted) {
      sendJson(res, 403, { error: { code: 403, message: "Permission 'iam.serviceAccounts.getAccessToken' denied", status: "PERMISSION_DENIED" } });
      return true;
    }
    const token = `impersonated-${crypto.randomUUID()}`;
    impersonated.add(token);
    sendJson(res, 200, { accessToken: token, expireTime: new Date(Date.now() + 3_600_000).toISOString() });
    return true;
  }

  async function serve(req: IncomingMessage, res: ServerResponse, closing: AbortSignal): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake.invalid");
    if (await federation(req, res, url.pathname)) return;
    const s = decodePath(url.pathname).split("/").filter(Boolean);
    const listing = s.length === 6 && s[5] === "reasoningEngines";
    const getting = s.length === 7 && s[5] === "reasoningEngines";
    const valid = (listing || getting) && s[0] === "v1" && s[1] === "projects" && s[3] === "locations" && req.method === "GET";
    const region = s[4] ?? "unknown";
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      state.answered(status);
      sendJson(res, status, body, headers);
    };
    const fail = (status: number, message: string, headers: Record<string, string> = {}) =>
      answer(status, { error: { code: status, message, status: STATUS[status] ?? (status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION") } }, headers);

    const fault = state.arrive({ kind: getting ? "GetReasoningEngine" : listing ? "ListReasoningEngines" : "Unknown", region, agentId: getting ? s[6] : undefined });
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    // Federated callers: the service account's token when it is impersonated, else the exchanged token itself.
    const wi = options.workloadIdentity;
    const federatedOk = wi ? (wi.serviceAccount ? impersonated.has(bearer ?? "") : federated.has(bearer ?? "")) : true;
    if (!bearer || (options.token !== undefined && bearer !== options.token) || !federatedOk) {
      return fail(401, "Request had invalid authentication credentials. Expected OAuth 2 access token.", { "www-authenticate": 'Bearer realm="https://accounts.google.com/"' });
    }
    if (!valid) return fail(404, `The requested URL ${url.pathname} was not found on this server.`);
    if (s[2] !== projectId) return fail(403, `Permission 'aiplatform.reasoningEngines.list' denied on resource '//aiplatform.googleapis.com/projects/${s[2]}/locations/${region}'`);
    if (fault) {
      if (fault.type === "throttle") return fail(429, "Quota exceeded for aiplatform.googleapis.com/reasoning_engine_service_requests.");
      if (fault.type === "error") return fail(fault.status, `injected ${fault.status}`);
      if (fault.type === "deny") return fault.status === 401 ? fail(401, "Request had invalid authentication credentials.") : fail(403, "Permission denied on resource.");
      if (fault.type === "badSignature") return fail(401, "Request had invalid authentication credentials.");
      await delay(fault.ms, closing);
    }

    const parent = `projects/${projectId}/locations/${region}`;
    if (getting) {
      const agent = state.get(region, s[6] ?? "");
      if (!agent || agent.kind !== "agent") return fail(404, `ReasoningEngine ${parent}/reasoningEngines/${s[6]} not found.`);
      return answer(200, engine(agent, parent));
    }
    const size = Number(url.searchParams.get("pageSize") ?? "0");
    if (!Number.isInteger(size) || size < 0) return fail(400, "Invalid page size.");
    const token = url.searchParams.get("pageToken") || undefined;
    const after = token === undefined ? undefined : afterToken(token);
    if (token !== undefined && !after) return fail(400, "Invalid page token.");
    const { page, last } = pageAfter(state.list(region), after, size === 0 ? 50 : Math.min(size, 100));
    return answer(200, { reasoningEngines: page.map((a) => engine(a, parent)), ...(last ? { nextPageToken: pageToken(last) } : {}) });
  }
}

/** The etag the fake gives an agent: it changes with every version, as Vertex's changes with every update. */
export function engineEtag(a: FakeAgent): string {
  return `"${Buffer.from(`${a.id}:${a.version}`).toString("base64url")}"`;
}

function engine(a: FakeAgent, parent: string): Record<string, unknown> {
  return patchWire(
    {
      name: `${parent}/reasoningEngines/${a.id}`,
      displayName: a.name,
      description: a.description,
      createTime: a.createdAt,
      updateTime: a.updatedAt,
      etag: engineEtag(a),
      labels: a.labels,
      spec: {
        agentFramework: "langchain",
        // Struct values, as the Agent Engine SDK registers them.
        classMethods: a.actions.map((m) => ({ name: m.name, api_mode: "", description: `${m.name} of ${a.name}` })),
        packageSpec: { pickleObjectGcsUri: `gs://fake-bucket/${a.id}/agent.pkl`, pythonVersion: "3.12" },
      },
    },
    a.wire,
  );
}
