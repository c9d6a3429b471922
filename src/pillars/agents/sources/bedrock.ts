/**
 * Amazon Bedrock Agents through the AWS SDK (`@aws-sdk/client-bedrock-agent`), and optionally AgentCore
 * runtimes (`@aws-sdk/client-bedrock-agentcore-control`, loaded only when a target asks for them).
 *
 * ListAgents gives summaries without the foundation model, so every listed agent costs a GetAgent, its aliases
 * (every page), its action groups (every page) and its tags (ListTagsForResource on the agent's ARN). Those run
 * one agent at a time per worker, eight workers per page, so a page keeps at most eight requests in flight: Bedrock's control-plane quotas are a few requests
 * per second per account, and a wider fan-out only buys throttling.
 *
 * Retries are the SDK's own (standard mode, token bucket per client); each attempt has a hard time-out. A
 * cursor names the list it continues (agents, then runtimes), so the sync can store it between activities.
 */
import {
  type ActionGroupSummary,
  type AgentAliasSummary,
  type AgentSummary,
  BedrockAgentClient,
  type BedrockAgentClientConfig,
  GetAgentCommand,
  ListAgentActionGroupsCommand,
  ListAgentAliasesCommand,
  ListAgentsCommand,
  ListTagsForResourceCommand,
} from "@aws-sdk/client-bedrock-agent";
import { ConfiguredRetryStrategy } from "@smithy/core/retry";
import { mapLimit } from "../../../util/map-limit.js";
import { BEDROCK_AGENTS_PER_SECOND, cloudPacer } from "./pacing.js";
import { DEFAULT_REQUEST_TIMEOUT_MS, RecordCheck, decodeCursor, encodeCursor, errorText, pageSizeOf, throwIfAborted, tuning } from "./shared.js";
import { type AgentSource, type MalformedRecord, type SourceAgent, SourceError, type SourcePage, type SourceTarget } from "./source.js";

export type BedrockTarget = Extract<SourceTarget, { cloud: "bedrock" }>;

/** Agents whose details are fetched at once (each worker makes one request at a time). */
const DETAIL_CONCURRENCY = 8;
/** Page size for aliases and action groups (the service allows up to 1000; agents rarely have more than a few). */
const DETAIL_PAGE = 100;
/** ListAgents / ListAgentRuntimes accept at most 1000 per page. */
const MAX_PAGE = 1000;

type AgentCoreModule = typeof import("@aws-sdk/client-bedrock-agentcore-control");
type AgentCoreClient = InstanceType<AgentCoreModule["BedrockAgentCoreControlClient"]>;

interface Cursor {
  l: "agents" | "runtimes";
  t?: string;
}

export function createBedrockSource(target: BedrockTarget): AgentSource {
  const { maxAttempts, baseDelayMs, requestTimeoutMs } = tuning(target.retry);
  const agentClients = new Map<string, BedrockAgentClient>();
  const runtimeClients = new Map<string, AgentCoreClient>();
  let agentCore: Promise<AgentCoreModule> | undefined;

  /** One configuration for both SDK clients of a region. */
  const config = (region: string): BedrockAgentClientConfig => ({
    region,
    ...(target.endpoint ? { endpoint: target.endpoint } : {}),
    ...credentialsOf(target, region),
    maxAttempts,
    // Standard rather than adaptive: adaptive's client-side rate limiter can slow a client to a request every
    // two seconds after a burst of throttling, which would stretch one page past the activity's time budget.
    retryMode: "standard",
    // Tests shorten the back-off (the SDK waits about a second per throttled attempt); the strategy is still
    // the SDK's own, with its retry quota, only the delays differ.
    ...(baseDelayMs !== undefined
      ? { retryStrategy: new ConfiguredRetryStrategy(maxAttempts, (attempt) => Math.floor(Math.random() * baseDelayMs * 2 ** attempt)) }
      : {}),
    requestHandler: {
      requestTimeout: requestTimeoutMs,
      // Without this the handler only logs a warning when requestTimeout passes and keeps waiting.
      throwOnRequestTimeout: true,
      connectionTimeout: Math.min(requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS),
    },
  });

  // The documented quotas are the real service's: a local fake (an endpoint override) is not paced.
  const pace = (region: string, operation: string, signal: AbortSignal | undefined) =>
    target.endpoint ? Promise.resolve() : cloudPacer.take(`bedrock|${target.accountId}|${region}|${operation}`, BEDROCK_AGENTS_PER_SECOND[operation] ?? 0, signal);

  const agentsIn = (region: string): BedrockAgentClient => {
    let client = agentClients.get(region);
    if (!client) agentClients.set(region, (client = new BedrockAgentClient(config(region))));
    return client;
  };

  const runtimesIn = async (region: string): Promise<{ client: AgentCoreClient; sdk: AgentCoreModule }> => {
    const sdk = await (agentCore ??= import("@aws-sdk/client-bedrock-agentcore-control"));
    let client = runtimeClients.get(region);
    if (!client) runtimeClients.set(region, (client = new sdk.BedrockAgentCoreControlClient(config(region))));
    return { client, sdk };
  };

  async function listAgents(region: string, token: string | undefined, pageSize: number, signal: AbortSignal | undefined): Promise<SourcePage> {
    const client = agentsIn(region);
    await pace(region, "ListAgents", signal);
    const listed = await aws(signal, "ListAgents", () => client.send(new ListAgentsCommand({ maxResults: pageSize, nextToken: token }), { abortSignal: signal }));
    const agents: SourceAgent[] = [];
    const malformed: MalformedRecord[] = [];
    const valid: { summary: AgentSummary; id: string }[] = [];
    for (const [i, summary] of (listed.agentSummaries ?? []).entries()) {
      const check = new RecordCheck(`ListAgents item ${i}`);
      const id = check.id(summary?.agentId, "agentId");
      check.id(summary?.agentName, "agentName");
      check.text(summary?.latestAgentVersion, "latestAgentVersion");
      if (check.problems.length) malformed.push({ ...(id ? { sourceId: id } : {}), reason: `ListAgents item ${i}: ${check.problems.join("; ")}` });
      else valid.push({ summary, id });
    }

    // One failure fails the page: stop the other workers from starting new requests.
    const page = new AbortController();
    const stop = () => page.abort(signal?.reason);
    signal?.addEventListener("abort", stop, { once: true });
    try {
      const outcomes = await mapLimit(valid, DETAIL_CONCURRENCY, async ({ summary, id }) => {
        throwIfAborted(page.signal);
        try {
          return await details(client, region, summary, id, page.signal);
        } catch (e) {
          page.abort(e);
          throw e;
        }
      });
      for (const outcome of outcomes) {
        if ("agent" in outcome) agents.push(outcome.agent);
        else if ("malformed" in outcome) malformed.push(outcome.malformed);
      }
    } finally {
      signal?.removeEventListener("abort", stop);
    }

    const next = listed.nextToken ? encodeCursor({ l: "agents", t: listed.nextToken } satisfies Cursor) : target.agentCore ? encodeCursor({ l: "runtimes" } satisfies Cursor) : undefined;
    return { agents, malformed, ...(next ? { next } : {}) };
  }

  /** GetAgent, then every page of aliases and of action groups; a deleted agent (404 on any of them) is skipped. */
  async function details(
    client: BedrockAgentClient,
    region: string,
    summary: AgentSummary,
    agentId: string,
    signal: AbortSignal,
  ): Promise<{ agent: SourceAgent } | { malformed: MalformedRecord } | { skipped: true }> {
    let detail: Record<string, unknown>;
    let aliases: AgentAliasSummary[];
    let groups: ActionGroupSummary[];
    let tags: unknown;
    try {
      await pace(region, "GetAgent", signal);
      const got = await aws(signal, "GetAgent", () => client.send(new GetAgentCommand({ agentId }), { abortSignal: signal }));
      if (!got.agent || typeof got.agent !== "object") return { malformed: { sourceId: agentId, reason: "GetAgent: the answer has no agent" } };
      detail = got.agent as unknown as Record<string, unknown>;
      aliases = await all(signal, "ListAgentAliases", (nextToken) =>
        pace(region, "ListAgentAliases", signal)
          .then(() => client.send(new ListAgentAliasesCommand({ agentId, maxResults: DETAIL_PAGE, nextToken }), { abortSignal: signal }))
          .then((r) => ({ items: r.agentAliasSummaries, next: r.nextToken })),
      );
      const agentVersion = summary.latestAgentVersion ?? "DRAFT";
      groups = await all(signal, "ListAgentActionGroups", (nextToken) =>
        pace(region, "ListAgentActionGroups", signal)
          .then(() => client.send(new ListAgentActionGroupsCommand({ agentId, agentVersion, maxResults: DETAIL_PAGE, nextToken }), { abortSignal: signal }))
          .then((r) => ({ items: r.actionGroupSummaries, next: r.nextToken })),
      );
      // Tags are the agent's labels (an `environment` tag sets the registry's environment): one more call. A role
      // without bedrock:ListTagsForResource still syncs its agents, unlabelled, as it did before tags were read.
      const arn = typeof detail.agentArn === "string" ? detail.agentArn : undefined;
      if (arn) {
        await pace(region, "ListTagsForResource", signal);
        tags = await aws(signal, "ListTagsForResource", () => client.send(new ListTagsForResourceCommand({ resourceArn: arn }), { abortSignal: signal })).then(
          (r) => r.tags,
          (e: unknown) => {
            if (e instanceof SourceError && e.code === "AccessDeniedException") return undefined;
            throw e;
          },
        );
      }
    } catch (e) {
      if (e instanceof SourceError && e.code === UNDECODABLE) return { malformed: { sourceId: agentId, reason: e.message } };
      if (e instanceof SourceError && e.code === "ResourceNotFoundException") return { skipped: true };
      throw e;
    }

    const check = new RecordCheck(`agent ${agentId}`);
    check.id(detail.agentId, "GetAgent agentId");
    const name = check.id(detail.agentName, "GetAgent agentName");
    const agent: SourceAgent = {
      sourceId: agentId,
      name,
      description: check.text(detail.description, "description") ?? check.text(summary.description, "summary description"),
      sourceVersion: summary.latestAgentVersion ?? check.text(detail.agentVersion, "agentVersion"),
      sourceStatus: check.text(detail.agentStatus, "agentStatus") ?? check.text(summary.agentStatus, "summary agentStatus"),
      updatedAt: check.time(detail.updatedAt, "updatedAt") ?? check.time(summary.updatedAt, "summary updatedAt"),
      model: check.text(detail.foundationModel, "foundationModel"),
      labels: check.labels(tags, "ListTagsForResource tags"),
      aliases: aliases.map((a, i) => {
        const route = check.list(a?.routingConfiguration, `alias ${i} routingConfiguration`)[0] as { agentVersion?: unknown } | undefined;
        const agentVersion = check.text(route?.agentVersion, `alias ${i} agentVersion`);
        return {
          id: check.id(a?.agentAliasId, `alias ${i} agentAliasId`),
          name: check.id(a?.agentAliasName, `alias ${i} agentAliasName`),
          status: check.id(a?.agentAliasStatus, `alias ${i} agentAliasStatus`),
          ...(agentVersion !== undefined ? { agentVersion } : {}),
        };
      }),
      actions: groups.map((g, i) => {
        const state = check.text(g?.actionGroupState, `action group ${i} actionGroupState`);
        return {
          id: check.id(g?.actionGroupId, `action group ${i} actionGroupId`),
          name: check.id(g?.actionGroupName, `action group ${i} actionGroupName`),
          ...(state !== undefined ? { state } : {}),
        };
      }),
    };
    return check.result(agent, agentId);
  }

  async function listRuntimes(region: string, token: string | undefined, pageSize: number, signal: AbortSignal | undefined): Promise<SourcePage> {
    const { client, sdk } = await runtimesIn(region);
    const listed = await aws(signal, "ListAgentRuntimes", () =>
      client.send(new sdk.ListAgentRuntimesCommand({ maxResults: pageSize, nextToken: token }), { abortSignal: signal }),
    ).catch((e: unknown) => {
      // AgentCore is offered in fewer regions than Bedrock Agents; where it is not, its endpoint's name does not
      // resolve. That region simply has no runtimes: the agents listed before stand.
      if (e instanceof SourceError && e.code === "ENOTFOUND" && !target.endpoint) return undefined;
      throw e;
    });
    if (!listed) return { agents: [], malformed: [] };
    const agents: SourceAgent[] = [];
    const malformed: MalformedRecord[] = [];
    for (const [i, r] of (listed.agentRuntimes ?? []).entries()) {
      const check = new RecordCheck(`ListAgentRuntimes item ${i}`);
      const arn = check.text(r?.agentRuntimeArn, "agentRuntimeArn");
      const runtimeId = check.text(r?.agentRuntimeId, "agentRuntimeId");
      const sourceId = arn ?? (runtimeId ? `runtime/${runtimeId}` : check.id(undefined, "agentRuntimeArn and agentRuntimeId"));
      const outcome = check.result(
        {
          sourceId,
          name: check.id(r?.agentRuntimeName, "agentRuntimeName"),
          description: check.text(r?.description, "description"),
          sourceVersion: check.text(r?.agentRuntimeVersion, "agentRuntimeVersion"),
          sourceStatus: check.text(r?.status, "status"),
          updatedAt: check.time(r?.lastUpdatedAt, "lastUpdatedAt"),
        },
        sourceId || undefined,
      );
      if ("agent" in outcome) agents.push(outcome.agent);
      else malformed.push(outcome.malformed);
    }
    const next = listed.nextToken ? encodeCursor({ l: "runtimes", t: listed.nextToken } satisfies Cursor) : undefined;
    return { agents, malformed, ...(next ? { next } : {}) };
  }

  return {
    cloud: "bedrock",
    async listPage(region, cursor, options = {}) {
      throwIfAborted(options.signal);
      const at = cursor === undefined ? ({ l: "agents" } satisfies Cursor) : parseCursor(cursor);
      const pageSize = pageSizeOf(options.pageSize, MAX_PAGE);
      if (at.l === "agents") return listAgents(region, at.t, pageSize, options.signal);
      // A cursor into runtimes from before the connection stopped asking for them: nothing more to list.
      if (!target.agentCore) return { agents: [], malformed: [] };
      return listRuntimes(region, at.t, pageSize, options.signal);
    },
    async close() {
      for (const client of [...agentClients.values(), ...runtimeClients.values()]) client.destroy();
      agentClients.clear();
      runtimeClients.clear();
    },
  };
}

function parseCursor(cursor: string): Cursor {
  const value = decodeCursor(cursor);
  if ((value.l === "agents" || value.l === "runtimes") && (value.t === undefined || typeof value.t === "string")) {
    return { l: value.l, ...(value.t !== undefined ? { t: value.t } : {}) };
  }
  throw new SourceError("refused", "the cursor is not one this source issued", "InvalidCursor");
}

/**
 * The code of an answer the SDK received (2xx) but could not deserialise, e.g. an epoch number where a date
 * belongs: one agent's detail that fails so is malformed; a list page that fails so is unavailable (the whole
 * page is unreadable, and a later attempt may read).
 */
const UNDECODABLE = "Undecodable";

/** Runs an SDK call; its failure, after the SDK's retries, becomes a SourceError. */
async function aws<T>(signal: AbortSignal | undefined, operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throwIfAborted(signal);
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status !== undefined && status >= 200 && status < 300) {
      throw new SourceError("unavailable", `${operation}: the answer could not be read: ${errorText(e)}`, UNDECODABLE);
    }
    throw toSourceError(e, operation, status);
  }
}

/** Follows every page of a detail list. */
async function all<T>(signal: AbortSignal, operation: string, page: (nextToken: string | undefined) => Promise<{ items?: T[]; next?: string }>): Promise<T[]> {
  const out: T[] = [];
  let token: string | undefined;
  do {
    const got = await aws(signal, operation, () => page(token));
    out.push(...(got.items ?? []));
    // A service that hands back the token it was given would loop forever.
    token = got.next && got.next !== token ? got.next : undefined;
  } while (token);
  return out;
}

const THROTTLED = new Set(["ThrottlingException", "TooManyRequestsException", "Throttling", "ThrottledException", "RequestLimitExceeded", "SlowDown"]);
const REFUSED = new Set([
  "AccessDeniedException",
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "ExpiredTokenException",
  "MissingAuthenticationTokenException",
  "ResourceNotFoundException",
  "ValidationException",
  "CredentialsProviderError",
  "InvalidClientTokenId",
]);
const UNAVAILABLE_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE", "EAI_AGAIN", "ECONNABORTED"]);

function toSourceError(e: unknown, operation: string, status?: number): SourceError {
  const err = e as { name?: string; code?: string; message?: string; $retryable?: { throttling?: boolean } };
  const name = err.name ?? "Error";
  const message = `${operation}: ${errorText(e)}`;
  if (THROTTLED.has(name) || status === 429 || err.$retryable?.throttling) return new SourceError("throttled", message, name);
  if (REFUSED.has(name)) return new SourceError("refused", message, name);
  if (status !== undefined && status >= 400 && status < 500 && status !== 408) return new SourceError("refused", message, name);
  // A regional endpoint that does not resolve is a region the service is not offered in (a passing DNS failure
  // is EAI_AGAIN): asking again will not help.
  if (err.code === "ENOTFOUND") return new SourceError("refused", message, "ENOTFOUND");
  if (name === "TimeoutError" || name === "RequestTimeout" || (err.code && UNAVAILABLE_CODES.has(err.code))) {
    return new SourceError("unavailable", message, err.code ?? name);
  }
  // 5xx, InternalServerException, ServiceUnavailable, and anything unrecognised: worth another try later.
  return new SourceError("unavailable", message, name);
}

/**
 * The SDK's credentials: an access key as it is; with workload identity federation, the AWS SDK's own web
 * identity provider, which assumes the role with STS AssumeRoleWithWebIdentity (anonymous: the Entra ID
 * token is the proof) and renews the temporary credentials when they expire; otherwise the default chain.
 */
function credentialsOf(target: BedrockTarget, region: string): Pick<BedrockAgentClientConfig, "credentials"> {
  const c = target.credentials;
  if (!("kind" in c)) return { credentials: { ...c } };
  if (c.kind === "default") return {};
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { fromWebToken } = require("@aws-sdk/credential-provider-web-identity") as typeof import("@aws-sdk/credential-provider-web-identity");
  // The SDK asks again only when the temporary credentials near their expiry: each time with a fresh identity
  // token (the source outlives one token's lifetime; the token is never kept here).
  return {
    credentials: async () =>
      fromWebToken({
        roleArn: c.roleArn,
        webIdentityToken: await c.token(),
        roleSessionName: c.sessionName,
        // STS of the region the client lists (a local fake's endpoint serves STS too).
        clientConfig: { region, ...(target.endpoint ? { endpoint: target.endpoint } : {}) },
      })(),
  };
}
