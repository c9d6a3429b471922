/**
 * A fake of Amazon Bedrock Agents (bedrock-agent) and AgentCore control (bedrock-agentcore-control), for the
 * unmodified AWS SDK clients pointed at it with `endpoint`. One server answers every region: the region (and
 * the service) is read from the SigV4 credential scope of the Authorization header
 * (`Credential=AKID/20260101/<region>/<service>/aws4_request`), which the SDK signs with its configured
 * region. Signatures are not verified; the access key id is checked when `accessKeyId` is set.
 *
 * With `webIdentity`, it also answers AWS STS AssumeRoleWithWebIdentity (query protocol, unsigned: the web
 * identity token is the proof) for that role and audience with temporary credentials, and then accepts
 * only requests signed with them (their access key id, and their session token in X-Amz-Security-Token).
 *
 * Wire behaviour the SDK depends on (restJson1): errors carry `x-amzn-ErrorType` and a `{message}` body;
 * timestamps are RFC 3339 strings (the SDK throws on epoch numbers); an absent `nextToken` ends a list.
 * bedrock-agent's lists send maxResults/nextToken in a JSON body; AgentCore's ListAgentRuntimes in the query.
 */
import { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { decodePath, readBody } from "../http-io.js";
import {
  AgentCloudState,
  type FakeAgent,
  type FakeStats,
  type Fault,
  type SeedOptions,
  afterToken,
  delay,
  listen,
  pageAfter,
  pageToken,
  patchWire,
  sendJson,
} from "./state.js";

export type BedrockRequestKind = "ListAgents" | "GetAgent" | "ListAgentAliases" | "ListAgentActionGroups" | "ListTagsForResource" | "ListAgentRuntimes";

export interface BedrockFakeOptions extends SeedOptions {
  /** Shared with the test, to change agents and inject faults; a fresh seeded one when absent. */
  state?: AgentCloudState;
  /** When set, requests signed with another access key id get 403 UnrecognizedClientException. */
  accessKeyId?: string;
  /** The account in ARNs. */
  accountId?: string;
  /** At most this many items per page of a list, whatever maxResults asks (real services may return fewer). */
  pageCaps?: Partial<Record<BedrockRequestKind, number>>;
  /** Workload identity federation: the role that may be assumed, and the `aud` its web identity tokens must carry. */
  webIdentity?: { roleArn: string; audience: string; lifetimeSeconds?: number };
  port?: number;
}

/** An AssumeRoleWithWebIdentity call the fake answered (or refused). */
export interface StsCall {
  roleArn: string;
  roleSessionName: string;
  /** The token's claims (its signature is not checked here: the test's issuer made it). */
  claims: Record<string, unknown>;
  granted: boolean;
}

export interface BedrockFake {
  state: AgentCloudState;
  /** The SDK's `endpoint` (both clients). */
  endpoint: string;
  port: number;
  stats(): FakeStats;
  /** The STS calls so far (webIdentity). */
  stsCalls: StsCall[];
  close(): Promise<void>;
}

const SCOPE = /Credential=([^/,\s]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/;

export async function startBedrockFake(options: BedrockFakeOptions = {}): Promise<BedrockFake> {
  const state = options.state ?? new AgentCloudState("bedrock", options);
  const accountId = options.accountId ?? "123456789012";
  const server = await listen((req, res, closing) => serve(req, res, closing), options.port);
  const stsCalls: StsCall[] = [];
  /** Temporary credentials issued by STS: access key id → session token. */
  const issued = new Map<string, string>();
  return { state, endpoint: server.url, port: server.port, stats: () => state.stats(), stsCalls, close: server.close };

  /** STS AssumeRoleWithWebIdentity: form-encoded in, XML out (errors as ErrorResponse). */
  function sts(res: ServerResponse, form: URLSearchParams): void {
    const xml = (status: number, body: string) => {
      res.writeHead(status, { "content-type": "text/xml", "x-amzn-requestid": crypto.randomUUID() });
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);
    };
    const error = (status: number, code: string, message: string) =>
      xml(status, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>${crypto.randomUUID()}</RequestId></ErrorResponse>`);
    const roleArn = form.get("RoleArn") ?? "";
    const roleSessionName = form.get("RoleSessionName") ?? "";
    let claims: Record<string, unknown> = {};
    try {
      claims = JSON.parse(Buffer.from((form.get("WebIdentityToken") ?? "").split(".")[1] ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
    } catch {
      claims = {};
    }
    const wanted = options.webIdentity!;
    const granted = roleArn === wanted.roleArn && claims.aud === wanted.audience && typeof claims.sub === "string";
    stsCalls.push({ roleArn, roleSessionName, claims, granted });
    if (roleArn !== wanted.roleArn) return error(403, "AccessDenied", `Not authorized to perform sts:AssumeRoleWithWebIdentity on ${roleArn}`);
    if (!granted) return error(400, "InvalidIdentityToken", "Incorrect token audience");
    const accessKeyId = `ASIA${crypto.randomUUID().replace(/-/g, "").slice(0, 16).toUpperCase()}`;
    const sessionToken = `fake-session-${crypto.randomUUID()}`;
    issued.set(accessKeyId, sessionToken);
    const expiration = new Date(Date.now() + (wanted.lifetimeSeconds ?? 3600) * 1000).toISOString();
    xml(
      200,
      `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>` +
        `<Credentials><AccessKeyId>${accessKeyId}</AccessKeyId><SecretAccessKey>fake-secret-${accessKeyId}</SecretAccessKey><SessionToken>${sessionToken}</SessionToken><Expiration>${expiration}</Expiration></Credentials>` +
        `<SubjectFromWebIdentityToken>${String(claims.sub)}</SubjectFromWebIdentityToken><AssumedRoleUser><Arn>${roleArn.replace(":role/", ":assumed-role/").replace(/^arn:aws:iam:/, "arn:aws:sts:")}/${roleSessionName}</Arn><AssumedRoleId>AROAFAKE:${roleSessionName}</AssumedRoleId></AssumedRoleUser>` +
        `<Audience>${String(claims.aud)}</Audience></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>${crypto.randomUUID()}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`,
    );
  }

  async function serve(req: IncomingMessage, res: ServerResponse, closing: AbortSignal): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake.invalid");
    const segments = decodePath(url.pathname).split("/").filter(Boolean);
    const method = (req.method ?? "GET").toUpperCase();
    const raw = await readBody(req);
    const answer = (status: number, body: unknown, errorType?: string) => {
      state.answered(status);
      sendJson(res, status, body, { "x-amzn-requestid": crypto.randomUUID(), ...(errorType ? { "x-amzn-errortype": errorType } : {}) });
    };
    const fail = (status: number, errorType: string, message: string) => answer(status, { message }, errorType);

    if (options.webIdentity && method === "POST" && segments.length === 0 && /Action=AssumeRoleWithWebIdentity/.test(raw)) return sts(res, new URLSearchParams(raw));
    const scope = SCOPE.exec(req.headers.authorization ?? "");
    const route = routeOf(method, segments);
    const region = scope?.[2] ?? "unknown";
    const fault = state.arrive({ kind: route?.kind ?? "Unknown", region, agentId: route?.agentId });
    if (!scope) return fail(403, "MissingAuthenticationTokenException", "Missing Authentication Token");
    if (options.accessKeyId !== undefined && scope[1] !== options.accessKeyId) {
      return fail(403, "UnrecognizedClientException", "The security token included in the request is invalid.");
    }
    // Federated callers: only credentials STS issued here, each with its own session token.
    if (options.webIdentity && (!issued.has(scope[1]!) || req.headers["x-amz-security-token"] !== issued.get(scope[1]!))) {
      return fail(403, "UnrecognizedClientException", "The security token included in the request is invalid.");
    }
    if (!route) return fail(404, "UnknownOperationException", `no operation at ${method} ${url.pathname}`);
    const service = route.kind === "ListAgentRuntimes" ? "bedrock-agentcore" : "bedrock";
    if (scope[3] !== service) return fail(403, "InvalidSignatureException", `credential scope names ${scope[3]}, expected ${service}`);
    if (fault?.type === "badSignature") return fail(403, "InvalidSignatureException", signatureMismatch(method, url.pathname, req.headers));
    if (fault) {
      const served = await applyFault(fault, closing, fail);
      if (served) return;
    }

    let body: { maxResults?: unknown; nextToken?: unknown } = {};
    if (raw) {
      try {
        body = JSON.parse(raw) as typeof body;
      } catch {
        return fail(400, "SerializationException", "body is not JSON");
      }
    }
    // AgentCore's ListAgentRuntimes sends its paging in the query string, bedrock-agent's lists in the body.
    const queryMax = url.searchParams.get("maxResults");
    if (queryMax !== null) body.maxResults = Number(queryMax);
    const queryToken = url.searchParams.get("nextToken");
    if (queryToken !== null) body.nextToken = queryToken;
    const max = body.maxResults;
    if (max !== undefined && (typeof max !== "number" || !Number.isInteger(max) || max < 1 || max > 1000)) {
      return fail(400, "ValidationException", "maxResults must be an integer from 1 to 1000");
    }
    if (body.nextToken !== undefined && typeof body.nextToken !== "string") return fail(400, "ValidationException", "nextToken must be a string");
    const size = Math.min(max ?? 100, options.pageCaps?.[route.kind] ?? Infinity);
    const after = body.nextToken === undefined ? undefined : afterToken(body.nextToken);

    if (route.kind === "ListAgents" || route.kind === "ListAgentRuntimes") {
      const { page, last } = pageAfter(state.list(region, route.kind === "ListAgents" ? "agent" : "runtime"), after, size);
      const items = route.kind === "ListAgents" ? page.map(summary) : page.map((a) => runtime(a, region));
      return answer(200, { [route.kind === "ListAgents" ? "agentSummaries" : "agentRuntimes"]: items, ...(last ? { nextToken: pageToken(last) } : {}) });
    }
    const agent = state.get(region, route.agentId ?? "");
    if (!agent || agent.kind !== "agent") return fail(404, "ResourceNotFoundException", `Agent ${route.agentId} not found`);
    if (route.kind === "GetAgent") return answer(200, { agent: detail(agent, region) });
    if (route.kind === "ListTagsForResource") return answer(200, { tags: agent.labels });
    if (route.kind === "ListAgentAliases") {
      const { page, last } = pageAfter(agent.aliases, after, size);
      return answer(200, { agentAliasSummaries: page.map((a) => alias(a, agent)), ...(last ? { nextToken: pageToken(last) } : {}) });
    }
    if (route.agentVersion !== "DRAFT" && route.agentVersion !== agent.version) {
      return fail(404, "ResourceNotFoundException", `Version ${route.agentVersion} of agent ${agent.id} not found`);
    }
    const { page, last } = pageAfter(agent.actions, after, size);
    return answer(200, {
      actionGroupSummaries: page.map((g) => ({ actionGroupId: g.id, actionGroupName: g.name, actionGroupState: g.state ?? "ENABLED", updatedAt: agent.updatedAt })),
      ...(last ? { nextToken: pageToken(last) } : {}),
    });
  }

  function summary(a: FakeAgent): Record<string, unknown> {
    return patchWire(
      { agentId: a.id, agentName: a.name, agentStatus: a.status, description: a.description, updatedAt: a.updatedAt, latestAgentVersion: a.version },
      a.wire,
    );
  }

  function detail(a: FakeAgent, region: string): Record<string, unknown> {
    return patchWire(
      {
        agentId: a.id,
        agentName: a.name,
        agentArn: `arn:aws:bedrock:${region}:${accountId}:agent/${a.id}`,
        // GetAgent describes the working draft; the summary's latestAgentVersion is the newest numbered version.
        agentVersion: "DRAFT",
        agentStatus: a.status,
        foundationModel: a.model,
        description: a.description,
        instruction: `You are ${a.name}.`,
        orchestrationType: "DEFAULT",
        idleSessionTTLInSeconds: 600,
        agentResourceRoleArn: `arn:aws:iam::${accountId}:role/AmazonBedrockExecutionRoleForAgents_${a.id}`,
        createdAt: a.createdAt,
        updatedAt: a.updatedAt,
        preparedAt: a.updatedAt,
      },
      a.wireDetail,
    );
  }

  function alias(x: FakeAgent["aliases"][number], a: FakeAgent): Record<string, unknown> {
    return {
      agentAliasId: x.id,
      agentAliasName: x.name,
      agentAliasStatus: x.status,
      routingConfiguration: x.agentVersion === undefined ? [] : [{ agentVersion: x.agentVersion }],
      createdAt: a.createdAt,
      updatedAt: a.updatedAt,
    };
  }

  function runtime(a: FakeAgent, region: string): Record<string, unknown> {
    return patchWire(
      {
        agentRuntimeArn: `arn:aws:bedrock-agentcore:${region}:${accountId}:runtime/${a.id}`,
        agentRuntimeId: a.id,
        agentRuntimeVersion: a.version,
        agentRuntimeName: a.name,
        description: a.description ?? "",
        lastUpdatedAt: a.updatedAt,
        status: a.status,
      },
      a.wire,
    );
  }

  /** Serves the fault; false when the request should then be answered normally (a delay). */
  async function applyFault(fault: Fault, closing: AbortSignal, fail: (status: number, type: string, message: string) => void): Promise<boolean> {
    switch (fault.type) {
      case "throttle":
        fail(429, "ThrottlingException", "Rate exceeded");
        return true;
      case "error":
        fail(fault.status, fault.status === 503 ? "ServiceUnavailableException" : "InternalServerException", `injected ${fault.status}`);
        return true;
      case "deny":
        if (fault.status === 401) fail(401, "UnrecognizedClientException", "The security token included in the request is invalid.");
        else fail(403, "AccessDeniedException", "User is not authorized to perform this action");
        return true;
      case "badSignature":
        return false; // answered before (it needs the request)
      case "delay":
        await delay(fault.ms, closing);
        return false;
    }
  }
}

function routeOf(method: string, s: string[]): { kind: BedrockRequestKind; agentId?: string; agentVersion?: string } | undefined {
  if (method === "POST" && s.length === 1 && s[0] === "agents") return { kind: "ListAgents" };
  if (method === "POST" && s.length === 1 && s[0] === "runtimes") return { kind: "ListAgentRuntimes" };
  // GET /tags/{resourceArn}: the SDK escapes the ARN's "/" (agent/<id>), which decodePath has turned back.
  if (method === "GET" && s[0] === "tags" && s.length >= 2) {
    const arn = /^arn:aws:bedrock:[a-z0-9-]+:[0-9]{12}:agent\/([^/]+)$/.exec(s.slice(1).join("/"));
    return { kind: "ListTagsForResource", agentId: arn?.[1] ?? "" };
  }
  if (s[0] !== "agents" || s[1] === undefined) return undefined;
  if (method === "GET" && s.length === 2) return { kind: "GetAgent", agentId: s[1] };
  if (method === "POST" && s.length === 3 && s[2] === "agentaliases") return { kind: "ListAgentAliases", agentId: s[1] };
  if (method === "POST" && s.length === 5 && s[2] === "agentversions" && s[4] === "actiongroups") {
    return { kind: "ListAgentActionGroups", agentId: s[1], agentVersion: s[3] };
  }
  return undefined;
}

/**
 * The message of AWS's InvalidSignatureException: a first line, then the canonical request the service
 * expected, every signed header with its value (the session token of temporary credentials among them),
 * and the string to sign.
 */
function signatureMismatch(method: string, path: string, headers: IncomingHttpHeaders): string {
  const signed = /SignedHeaders=([^,\s]+)/.exec(String(headers.authorization ?? ""))?.[1]?.split(";") ?? [];
  const canonical = [method, path, "", ...signed.map((h) => `${h}:${String(headers[h] ?? "")}`), "", signed.join(";"), String(headers["x-amz-content-sha256"] ?? "UNSIGNED-PAYLOAD")].join("\n");
  return (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\n" +
    `The Canonical String for this request should have been\n'${canonical}'\n\n` +
    `The String-to-Sign should have been\n'AWS4-HMAC-SHA256\n${String(headers["x-amz-date"] ?? "")}\n…'\n`
  );
}
