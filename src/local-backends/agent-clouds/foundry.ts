/**
 * A fake of Microsoft Foundry's agents API (api-version v1, as `@azure/ai-projects` 2.x calls it), in process:
 * an Azure core `HttpClient` to pass as the SDK's `httpClient` option. In process rather than a server because
 * the Azure SDKs refuse bearer tokens over plain HTTP; this way the SDK's whole pipeline (bearer token policy,
 * retry policy, api-version, paging) still runs.
 *
 * One host per region (`https://<region>-res.services.ai.azure.com/api/projects/<project>`). Routes:
 * `GET …/agents?api-version=v1&limit&order&after&before` → `{object: "list", data, first_id, last_id, has_more}`
 * and `GET …/agents/{name}`. Throttling is a 429 with Retry-After (the SDK retries a 429 only when it carries
 * one). A delay longer than the request's `timeout` ends as the SDK's Node client ends one: an AbortError.
 */
import { type HttpClient, type PipelineRequest, type PipelineResponse, RestError, createHttpHeaders } from "@azure/core-rest-pipeline";
import { AgentCloudState, type FakeAction, type FakeAgent, type FakeStats, type Fault, type SeedOptions, delay, patchWire } from "./state.js";

export type FoundryRequestKind = "ListAgents" | "GetAgent";

export interface FoundryFakeOptions extends SeedOptions {
  state?: AgentCloudState;
  /** When set, requests with another bearer token get 401. */
  token?: string;
  project?: string;
}

export interface FoundryFake {
  state: AgentCloudState;
  /** The SDK's `httpClient` option. */
  httpClient: HttpClient;
  /** The project endpoint of a region (any region: the host names it). */
  projectEndpoint(region: string): string;
  /** Endpoints of the regions the state holds, for the target's `projectEndpoints`. */
  projectEndpoints(): Record<string, string>;
  stats(): FakeStats;
  close(): Promise<void>;
}

const HOST = /^([a-z0-9-]+)-res\.services\.ai\.azure\.com$/;

export async function startFoundryFake(options: FoundryFakeOptions = {}): Promise<FoundryFake> {
  const state = options.state ?? new AgentCloudState("foundry", options);
  const project = options.project ?? "fake-project";
  const closing = new AbortController();
  const projectEndpoint = (region: string) => `https://${region}-res.services.ai.azure.com/api/projects/${project}`;

  const httpClient: HttpClient = {
    async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
      const url = new URL(request.url);
      const region = HOST.exec(url.hostname)?.[1];
      // What the SDK's Node client reports for a host that does not resolve (its retry policy retries it).
      if (!region) throw new RestError(`getaddrinfo ENOTFOUND ${url.hostname}`, { code: "ENOTFOUND", request });
      const prefix = `/api/projects/${project}/agents`;
      const rest = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : undefined;
      const name = rest?.startsWith("/") ? decodeURIComponent(rest.slice(1)) : undefined;
      const kind: FoundryRequestKind | undefined = rest === "" ? "ListAgents" : name && !name.includes("/") ? "GetAgent" : undefined;

      const answer = (status: number, body: unknown, headers: Record<string, string> = {}): PipelineResponse => {
        state.answered(status);
        return {
          request,
          status,
          headers: createHttpHeaders({ "content-type": "application/json", "x-ms-request-id": crypto.randomUUID(), ...headers }),
          bodyAsText: JSON.stringify(body),
        };
      };
      const fail = (status: number, code: string, message: string, headers: Record<string, string> = {}) => answer(status, { error: { code, message } }, headers);

      const fault = state.arrive({ kind: kind ?? "Unknown", region, agentId: kind === "GetAgent" ? name : undefined });
      const bearer = /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
      if (!bearer || (options.token !== undefined && bearer !== options.token)) return fail(401, "Unauthorized", "Access token is missing or invalid.");
      if (!kind || request.method !== "GET") return fail(404, "NotFound", `no route ${request.method} ${url.pathname}`);
      if (url.searchParams.get("api-version") !== "v1") return fail(400, "BadRequest", `unsupported api-version ${url.searchParams.get("api-version")}`);
      if (fault) {
        const served = await applyFault(fault, request, fail);
        if (served) return served;
      }

      if (kind === "GetAgent") {
        const agent = state.get(region, name ?? "");
        return agent ? answer(200, render(agent)) : fail(404, "NotFound", `Agent ${name} not found.`);
      }
      const limit = Number(url.searchParams.get("limit") ?? "20");
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) return fail(400, "BadRequest", "limit must be between 1 and 100");
      const order = url.searchParams.get("order") ?? "desc";
      const after = url.searchParams.get("after");
      const before = url.searchParams.get("before");
      // Paged by id (the fake's agents are created in id order, so this is also created_at order).
      let agents = state.list(region);
      if (order === "desc") agents = agents.reverse();
      const beyond = (id: string, cursor: string) => (order === "desc" ? id < cursor : id > cursor);
      if (after) agents = agents.filter((a) => beyond(a.id, after));
      if (before) agents = agents.filter((a) => beyond(before, a.id));
      const page = agents.slice(0, limit);
      return answer(200, {
        object: "list",
        data: page.map(render),
        first_id: page[0]?.id ?? null,
        last_id: page[page.length - 1]?.id ?? null,
        has_more: agents.length > page.length,
      });
    },
  };

  return {
    state,
    httpClient,
    projectEndpoint,
    projectEndpoints: () => Object.fromEntries(state.regions().map((r) => [r, projectEndpoint(r)])),
    stats: () => state.stats(),
    async close() {
      closing.abort();
    },
  };

  async function applyFault(
    fault: Fault,
    request: PipelineRequest,
    fail: (status: number, code: string, message: string, headers?: Record<string, string>) => PipelineResponse,
  ): Promise<PipelineResponse | undefined> {
    switch (fault.type) {
      case "throttle":
        return fail(429, "TooManyRequests", "Rate limit is exceeded. Try again later.", { "retry-after": String(fault.retryAfterSeconds ?? 0) });
      case "error":
        return fail(fault.status, fault.status === 503 ? "ServiceUnavailable" : "InternalServerError", `injected ${fault.status}`);
      case "deny":
        return fault.status === 401 ? fail(401, "Unauthorized", "Access token is invalid.") : fail(403, "PermissionDenied", "The principal lacks the required data action.");
      case "badSignature":
        return fail(401, "Unauthorized", "Access token is invalid.");
      case "delay": {
        const limit = request.timeout > 0 ? request.timeout : Infinity;
        const signals = [closing.signal, ...(request.abortSignal ? [request.abortSignal as AbortSignal] : [])];
        await delay(Math.min(fault.ms, limit), AbortSignal.any(signals));
        if (fault.ms >= limit || signals.some((s) => s.aborted)) {
          // The Node client aborts the request when its timeout passes and rejects with this.
          const error = new Error("The operation was aborted. Rejecting from abort signal callback while making request.");
          error.name = "AbortError";
          throw error;
        }
        return undefined;
      }
    }
  }
}

/** A tool definition as the service returns it (the SDK's deserialiser needs each type's own fields). */
function tool(t: FakeAction): Record<string, unknown> {
  switch (t.id) {
    case "file_search":
      return { type: t.id, vector_store_ids: ["vs_fake"] };
    case "function":
      return { type: t.id, name: t.name, description: `${t.name} function`, parameters: { type: "object", properties: {} } };
    case "openapi":
      return {
        type: t.id,
        openapi: { name: t.name, description: `${t.name} API`, spec: { openapi: "3.0.0", info: { title: t.name, version: "1" }, paths: {} }, auth: { type: "anonymous" } },
      };
    default:
      return { type: t.id, ...(t.name !== t.id ? { name: t.name } : {}) };
  }
}

function render(a: FakeAgent): Record<string, unknown> {
  return patchWire(
    {
      object: "agent",
      id: a.id,
      name: a.name,
      versions: {
        latest: {
          object: "agent.version",
          id: `${a.name}:${a.version}`,
          name: a.name,
          version: a.version,
          description: a.description,
          created_at: Math.floor(Date.parse(a.updatedAt) / 1000),
          metadata: a.labels,
          status: a.status,
          definition: {
            kind: "prompt",
            model: a.model,
            instructions: `You are ${a.name}.`,
            tools: a.actions.map(tool),
          },
        },
      },
      ...(a.card !== undefined ? { agent_card: a.card } : {}),
    },
    a.wire,
  );
}
