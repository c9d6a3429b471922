/**
 * A fake of Vertex AI Agent Engine (ReasoningEngineService v1) for the unmodified
 * `@google-cloud/aiplatform` client in REST fallback mode (`fallback: true, protocol: "http"`), which sends
 * `GET /v1/projects/{p}/locations/{l}/reasoningEngines?pageSize&pageToken&$alt=json;enum-encoding=int` with
 * `Authorization: Bearer <token>`. One server answers every location (the location is in the path).
 *
 * Wire behaviour the client depends on: protobuf JSON (camelCase names, Timestamps as RFC 3339 strings, which
 * the client turns into `{seconds, nanos}` objects); errors as a google.rpc.Status in `{error: {code, status,
 * message}}`, which gax maps to a gRPC code; an absent or empty `nextPageToken` ends the list.
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
  port?: number;
}

export interface VertexFake {
  state: AgentCloudState;
  /** For the target's `endpoint`. */
  host: string;
  port: number;
  projectId: string;
  stats(): FakeStats;
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
  return { state, host: "127.0.0.1", port: server.port, projectId, stats: () => state.stats(), close: server.close };

  async function serve(req: IncomingMessage, res: ServerResponse, closing: AbortSignal): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake.invalid");
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
    if (!bearer || (options.token !== undefined && bearer !== options.token)) {
      return fail(401, "Request had invalid authentication credentials. Expected OAuth 2 access token.", { "www-authenticate": 'Bearer realm="https://accounts.google.com/"' });
    }
    if (!valid) return fail(404, `The requested URL ${url.pathname} was not found on this server.`);
    if (s[2] !== projectId) return fail(403, `Permission 'aiplatform.reasoningEngines.list' denied on resource '//aiplatform.googleapis.com/projects/${s[2]}/locations/${region}'`);
    if (fault) {
      if (fault.type === "throttle") return fail(429, "Quota exceeded for aiplatform.googleapis.com/reasoning_engine_service_requests.");
      if (fault.type === "error") return fail(fault.status, `injected ${fault.status}`);
      if (fault.type === "deny") return fault.status === 401 ? fail(401, "Request had invalid authentication credentials.") : fail(403, "Permission denied on resource.");
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
