/**
 * Microsoft Foundry agents through `@azure/ai-projects` 2.x (`AIProjectClient.agents.list`, api-version v1):
 * one client per region's project endpoint, sharing one credential.
 *
 * A page is exactly one request: the first page of `agents.list({limit, after: cursor}).byPage()`, never the
 * next one (the 2.x pager does follow has_more/last_id, unlike @azure/ai-agents 1.x, but following it here would
 * list the whole project in one activity). The next cursor comes from the body's has_more and last_id.
 *
 * The records are read from the raw body (the `onResponse` callback), not from the SDK's deserialised models:
 * the deserialiser throws on the first record without `versions.latest`, losing the whole page for one bad
 * record, and it keeps only three fields of agent_card, which the registry wants as given. The SDK still does
 * everything else: the token, the api-version, retries, time-outs and the errors of a failed request.
 *
 * Retries are the Azure core pipeline's: 5xx, 408 and connection errors with exponential back-off, 429/503 after
 * the Retry-After they carry. It retries neither a 429 without Retry-After nor a request that timed out.
 */
import { AIProjectClient } from "@azure/ai-projects";
import { RecordCheck, errorText, pageSizeOf, throwIfAborted, tuning } from "./shared.js";
import { type AgentSource, type MalformedRecord, type SourceAgent, SourceError, type SourcePage, type SourceTarget } from "./source.js";

export type FoundryTarget = Extract<SourceTarget, { cloud: "foundry" }>;

type Credential = ConstructorParameters<typeof AIProjectClient>[1];
type ClientOptions = NonNullable<ConstructorParameters<typeof AIProjectClient>[2]>;

/** The agents list accepts 1 to 100. */
const MAX_PAGE = 100;

export function createFoundrySource(target: FoundryTarget): AgentSource {
  const { maxAttempts, baseDelayMs, requestTimeoutMs } = tuning(target.retry);
  const clients = new Map<string, AIProjectClient>();
  let credential: Promise<Credential> | undefined;

  const credentialOf = (): Promise<Credential> => {
    const given = target.credentials;
    if (given.kind === "staticToken") {
      return Promise.resolve({ getToken: async () => ({ token: given.token, expiresOnTimestamp: Date.now() + 3_600_000 }) });
    }
    // Loaded only here: @azure/identity is large, and tests never need it.
    return import("@azure/identity").then(({ DefaultAzureCredential }) => new DefaultAzureCredential());
  };

  const clientFor = async (region: string): Promise<AIProjectClient> => {
    const endpoint = target.projectEndpoints[region];
    if (!endpoint) throw new SourceError("refused", `no Foundry project endpoint is configured for region ${region}`, "NoProjectEndpoint");
    const token = await (credential ??= credentialOf());
    let client = clients.get(region);
    if (!client) {
      const options: ClientOptions = {
        retryOptions: {
          maxRetries: maxAttempts - 1,
          ...(baseDelayMs !== undefined ? { retryDelayInMs: baseDelayMs, maxRetryDelayInMs: Math.max(baseDelayMs, 1_000) } : {}),
        },
        ...(target.httpClient ? { httpClient: target.httpClient as ClientOptions["httpClient"] } : {}),
      };
      clients.set(region, (client = new AIProjectClient(endpoint, token, options)));
    }
    return client;
  };

  return {
    cloud: "foundry",
    async listPage(region, cursor, options = {}) {
      const { signal } = options;
      throwIfAborted(signal);
      const client = await clientFor(region);
      let status: number | undefined;
      let body: unknown;
      const pages = client.agents
        .list({
          limit: pageSizeOf(options.pageSize, MAX_PAGE),
          // Oldest first: an agent created during a sync lands after the cursor and is listed in the same sync.
          order: "asc",
          ...(cursor ? { after: cursor } : {}),
          ...(signal ? { abortSignal: signal } : {}),
          requestOptions: { timeout: requestTimeoutMs },
          onResponse: (raw) => {
            status = raw.status;
            body = raw.parsedBody;
          },
        })
        .byPage();
      try {
        await pages.next();
      } catch (e) {
        throwIfAborted(signal);
        // A 200 the deserialiser choked on: the raw body is read record by record below.
        if (status !== 200) throw toSourceError(e, body);
      }
      return readPage(body, cursor);
    },
    async close() {
      clients.clear();
    },
  };
}

function readPage(body: unknown, cursor: string | undefined): SourcePage {
  const page = body as { data?: unknown; has_more?: unknown; last_id?: unknown } | undefined;
  if (!page || typeof page !== "object" || !Array.isArray(page.data)) {
    throw new SourceError("unavailable", "ListAgents: the answer has no data list", "Undecodable");
  }
  const agents: SourceAgent[] = [];
  const malformed: MalformedRecord[] = [];
  for (const [i, item] of page.data.entries()) {
    const outcome = normalise(item as Record<string, unknown>, i);
    if ("agent" in outcome) agents.push(outcome.agent);
    else malformed.push(outcome.malformed);
  }
  if (page.has_more !== true) return { agents, malformed };
  const lastItem = page.data[page.data.length - 1] as { id?: unknown } | undefined;
  const next = typeof page.last_id === "string" && page.last_id ? page.last_id : typeof lastItem?.id === "string" ? lastItem.id : undefined;
  // Without a way forward, or with one that does not move, the sync would ask for this page again forever.
  if (!next || next === cursor) throw new SourceError("unavailable", "ListAgents: has_more without a new last_id", "Undecodable");
  return { agents, malformed, next };
}

function normalise(item: Record<string, unknown>, i: number): { agent: SourceAgent } | { malformed: MalformedRecord } {
  const check = new RecordCheck(`ListAgents item ${i}`);
  // The API addresses an agent by name (/agents/{agent_name}); its id is the same stable key.
  const id = check.id(item?.id, "id");
  const name = check.id(item?.name, "name");
  const versions = item?.versions && typeof item.versions === "object" ? (item.versions as { latest?: unknown }) : undefined;
  const latest = versions?.latest && typeof versions.latest === "object" ? (versions.latest as Record<string, unknown>) : undefined;
  if (!latest) check.problems.push("versions.latest is missing");
  const definition = latest?.definition && typeof latest.definition === "object" ? (latest.definition as Record<string, unknown>) : undefined;
  const createdAt = latest?.created_at;
  const updatedAt =
    typeof createdAt === "number" && Number.isFinite(createdAt)
      ? // Unix seconds, as the API sends every time.
        new Date(createdAt * 1_000).toISOString()
      : check.time(createdAt, "versions.latest.created_at");
  const card = item?.agent_card;
  return check.result(
    {
      sourceId: id,
      name,
      description: check.text(latest?.description, "versions.latest.description"),
      sourceVersion: check.text(latest?.version, "versions.latest.version"),
      sourceStatus: check.text(latest?.status, "versions.latest.status") ?? check.text(item?.state, "state"),
      // The latest version's creation is when the agent last changed: versions are immutable.
      updatedAt,
      model: check.text(definition?.model, "definition.model"),
      labels: check.labels(latest?.metadata, "versions.latest.metadata"),
      actions: tools(check, definition?.tools),
      card: card === null ? undefined : card,
    },
    id || undefined,
  );
}

/**
 * Tool definitions as actions: the type, named by the tool's own name when it has one. No tools
 * listed is no actions ([]); a definition without the field (not a prompt agent) says nothing (undefined).
 */
function tools(check: RecordCheck, value: unknown): SourceAgent["actions"] {
  const seen = new Map<string, number>();
  if (value === undefined || value === null) return undefined;
  const out = check.list(value, "definition.tools").flatMap((tool, i) => {
    const t = (tool ?? {}) as Record<string, unknown>;
    const type = check.id(t.type, `definition.tools[${i}].type`);
    if (!type) return [];
    const count = (seen.get(type) ?? 0) + 1;
    seen.set(type, count);
    // A function tool names itself; an MCP tool has a server label; an OpenAPI tool names its definition (`openapi.name`).
    const own = t[type] && typeof t[type] === "object" ? (t[type] as { name?: unknown }).name : undefined;
    const label = [t.name, t.server_label, own].find((v): v is string => typeof v === "string" && v !== "") ?? type;
    return [{ id: count === 1 ? type : `${type}#${count}`, name: label }];
  });
  return out;
}

/** `body`: the error response's body, whose message the pager's RestError ("Pagination failed with …") leaves out. */
function toSourceError(e: unknown, body?: unknown): SourceError {
  const err = e as { name?: string; code?: string; statusCode?: number };
  const said = (body as { error?: { message?: unknown } } | undefined)?.error?.message;
  const message = `ListAgents: ${errorText(e)}${typeof said === "string" ? `: ${said}` : ""}`;
  const status = err.statusCode;
  const code = err.code ?? (status !== undefined ? String(status) : (err.name ?? "Error"));
  if (status === 429) return new SourceError("throttled", message, code);
  if (status !== undefined && status >= 500) return new SourceError("unavailable", message, code);
  if (status === 408) return new SourceError("unavailable", message, code);
  if (status !== undefined && status >= 400) return new SourceError("refused", message, code);
  // A project endpoint whose host does not resolve is a configuration error, not an outage (that is EAI_AGAIN).
  if (err.code === "ENOTFOUND") return new SourceError("refused", message, code);
  // The pipeline's time-out aborts the request: an AbortError the caller did not ask for.
  if (err.name === "AbortError") return new SourceError("unavailable", `ListAgents: no answer within the time-out (${errorText(e)})`, "Timeout");
  // Credentials that cannot produce a token (no managed identity, a bad client secret) fail before any request.
  if (err.name === "CredentialUnavailableError" || err.name === "AuthenticationRequiredError" || err.name === "AuthenticationError") {
    return new SourceError("refused", message, err.name);
  }
  return new SourceError("unavailable", message, code);
}
