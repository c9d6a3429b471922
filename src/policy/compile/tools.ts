/**
 * The tools pillar at the gateway: a project's MCP servers and toolboxes as APIM MCP APIs (ARM
 * `apis` with `type: "mcp"`, api-version 2025-09-01-preview — preview; docs/adr/013-tools-at-the-gateway.md).
 *
 * - A **remote** server is a pass-through MCP API at `aigov/<key>/<project>/mcp/<server>`.
 * - A server **converted from OpenAPI** is a REST API (`…/rest/<server>`, its operations and schema
 *   document, the registered base URL as its service URL) plus an MCP API whose tools name those
 *   operations (REST-as-MCP). A tier that reaches any of its tools is linked to the REST API too, whose
 *   own policy allows exactly those tools' operations: a key calling it directly gets no more than
 *   through the MCP API.
 * - A **toolbox** is an MCP API of its own at `…/toolboxes/<name>`: REST tools of any converted servers
 *   (a true subset: `tools/list` shows only them), or tools of one remote server (a pass-through whose
 *   `tools/call` is limited to the toolbox's tools; `tools/list` is the server's, since a policy must
 *   not read an MCP response body).
 *
 * Every MCP API's policy reads the JSON-RPC request (method, and the tool of a `tools/call`), refuses
 * batches, and refuses a `tools/call` that the key's tier does not grant (key tool scopes), that the
 * server's last discovery did not list (pass-through servers forward any name), that the
 * project's approval mode does not allow (approvals pin a tool's definition hash: a changed tool is not
 * callable until approved again), or that a toolbox does not hold; then counts per-key, per-tool rate
 * limits and authenticates to the upstream (a Key Vault-backed header or the gateway's managed
 * identity). Lists of tool names are set-variable literals (data): tool names never enter an expression.
 * A deprecated server's APIs (MCP and REST) answer with `Sunset` and `Deprecation` (when it was
 * deprecated: RFC 9745) and, from the sunset instant on by the
 * gateway's clock, refuse every call (410 `tool_server_sunset`); a toolbox does the same from the earliest
 * sunset of its servers (410 `toolbox_sunset`).
 *
 * Keys reach tools only through a tier that grants them (KeyTier.tools): its product links the MCP APIs
 * it grants, and the product of a tier without tools links none, so a document of a project without
 * tools is what it was before the pillar existed.
 */
import { artifactRef, type ApiArtifact, type ApiOperation, type McpToolArtifact, type NamedValueArtifact } from "../../ports/gateway.js";

/** The REST API's one schema document (its operations' representations name its components). */
const REST_SCHEMA_ID = "components";
import * as X from "../expressions.js";
import { type KeyTier, type PolicyMcpServer, type PolicyProject, type PolicyTool } from "../input.js";
import { SUBSCRIPTION_KEY_HEADER, VAR } from "../names.js";
import { el, textEl, type Why, type XNode } from "../xml.js";
import { byCodePoint, type Collector, forbidden, JSON_ERROR, jsonResponse, readingBody, sortBy, STRUCTURE } from "./collector.js";
import { browserAccess } from "./cors.js";
import { keyIsolation } from "./routing.js";
import { tiersApplied } from "./tiers.js";

const LIST = { allowed: VAR.mcpAllowed, listed: VAR.mcpListed, tier: VAR.mcpTierTools, toolbox: VAR.mcpToolbox, toolsOnly: VAR.mcpToolsOnly } as const;

/** What a key tier grants in a project: servers whole, single tools, toolboxes. */
interface TierGrant {
  servers: Set<string>;
  tools: Map<string, Set<string>>;
  toolboxes: Set<string>;
}

function grantOf(tier: KeyTier): TierGrant {
  const g: TierGrant = { servers: new Set(), tools: new Map(), toolboxes: new Set() };
  for (const entry of tier.tools ?? []) {
    const [kind, rest] = [entry.slice(0, entry.indexOf(":")), entry.slice(entry.indexOf(":") + 1)];
    if (kind === "server") g.servers.add(rest);
    else if (kind === "toolbox") g.toolboxes.add(rest);
    else {
      const [server, tool] = [rest.slice(0, rest.indexOf("/")), rest.slice(rest.indexOf("/") + 1)];
      g.tools.set(server, new Set([...(g.tools.get(server) ?? []), tool]));
    }
  }
  return g;
}

/** Servers the gateway serves: tools pillar on, not blocked. */
const servedServers = (project: PolicyProject) => (project.pillars.tools ? sortBy(project.tools.servers, (s) => s.name).filter((s) => s.status !== "blocked") : []);

/** Toolboxes the gateway serves: those whose tools all come from served servers of one kind (see the header). */
function servedToolboxes(project: PolicyProject): { name: string; id: string; kind: "rest" | "remote"; tools: { server: PolicyMcpServer; tool: PolicyTool; exposed: string }[] }[] {
  if (!project.pillars.tools) return [];
  const servers = new Map(servedServers(project).map((s) => [s.name, s]));
  const out: ReturnType<typeof servedToolboxes> = [];
  for (const box of sortBy(project.tools.toolboxes, (b) => b.name)) {
    const members = box.tools.flatMap((t) => {
      const server = servers.get(t.server);
      const tool = server?.tools.find((x) => x.name === t.tool);
      return server && tool ? [{ server, tool }] : [];
    });
    if (!members.length) continue;
    const kinds = new Set(members.map((m) => m.server.source.kind));
    const remotes = new Set(members.filter((m) => m.server.source.kind === "remote").map((m) => m.server.name));
    if (kinds.size > 1 || remotes.size > 1) continue; // refused when written (toolbox_mixes_sources); never half-served
    // Names collide only across servers: then every colliding tool is exposed as <server>_<tool>, and a
    // name that still collides (with a tool really called so) gets a number: one exposed name, one tool.
    const count = new Map<string, number>();
    for (const m of members) count.set(m.tool.name, (count.get(m.tool.name) ?? 0) + 1);
    const named = sortBy(
      members.map((m) => ({ ...m, exposed: (count.get(m.tool.name) ?? 0) > 1 ? `${m.server.name}_${m.tool.name}` : m.tool.name })),
      (m) => `${m.exposed}\u0000${m.server.name}`,
    );
    const taken = new Set<string>();
    const tools = named.map((m) => {
      let exposed = m.exposed;
      for (let n = 2; taken.has(exposed); n++) exposed = `${m.exposed.slice(0, 120)}_${n}`;
      taken.add(exposed);
      return { ...m, exposed };
    });
    out.push({ name: box.name, id: box.id, kind: kinds.has("openapi") ? "rest" : "remote", tools });
  }
  return out;
}

/** The MCP API ids a tier's keys reach in a project (what its product links). */
export function toolApisFor(c: Collector, project: PolicyProject, tier: KeyTier): string[] {
  if (!tier.tools?.length) return [];
  const g = grantOf(tier);
  const ids: string[] = [];
  for (const s of servedServers(project)) if (g.servers.has(s.name) || g.tools.has(s.name)) ids.push(c.n.mcpApi(project.id, s.name));
  for (const b of servedToolboxes(project)) if (g.toolboxes.has(b.name)) ids.push(c.n.toolboxApi(project.id, b.name));
  // A REST tool's call reaches its operation through the REST API with the caller's key: a tier that
  // reaches any tool of a converted server is linked to its REST API too (whose policy allows those operations only).
  for (const s of servedServers(project)) if (s.source.kind === "openapi" && restReach(project, s, g) !== undefined) ids.push(c.n.restApi(project.id, s.name));
  return ids.sort(byCodePoint);
}

/** The tools of a converted server a tier reaches, directly or through toolboxes: all, some (names), or none. */
function restReach(project: PolicyProject, server: PolicyMcpServer, g: TierGrant): "all" | string[] | undefined {
  if (g.servers.has(server.name)) return "all";
  const names = new Set(g.tools.get(server.name) ?? []);
  for (const b of servedToolboxes(project)) if (g.toolboxes.has(b.name)) for (const t of b.tools) if (t.server.name === server.name) names.add(t.tool.name);
  return names.size ? [...names].sort(byCodePoint) : undefined;
}

/** Whether a project's approval mode lets keys call a tool now (approvals pin the definition hash). */
function callable(project: PolicyProject, server: string, tool: PolicyTool): boolean {
  const mode = project.tools.approvalMode;
  if (mode === "none") return true;
  if (mode === "destructive" && tool.readOnly) return true;
  return project.tools.grants.some((g) => g.server === server && g.tool === tool.name && g.hash === tool.hash);
}

const INVALID_REQUESTS = {
  mcp_batch_refused: `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"JSON-RPC batches are not accepted","data":{"reason":"mcp_batch_refused"}}}`,
  mcp_body_not_allowed: `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Only a POST may carry a JSON-RPC message","data":{"reason":"mcp_body_not_allowed"}}}`,
  mcp_message_invalid: `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"A POST must carry one JSON-RPC request, notification or response","data":{"reason":"mcp_message_invalid"}}}`,
  mcp_header_mismatch: `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Mcp-Method or Mcp-Name does not match the message","data":{"reason":"mcp_header_mismatch"}}}`,
  mcp_parse_error: `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: the body is not a JSON object","data":{"reason":"mcp_parse_error"}}}`,
} as const;

/**
 * A session the caller's key did not open: 404, which the Streamable HTTP transport reserves for a session
 * the server no longer knows — the client starts a new one (initialize) under its own key.
 */
const SESSION_UNKNOWN = `{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found","data":{"reason":"mcp_session_unknown"}}}`;

/** Refusals of a server or toolbox past its sunset: 410, as a model's or an agent's (the rest are 403). */
const GONE: ReadonlySet<string> = new Set<keyof typeof X.MCP_REFUSALS>(["tool_server_sunset", "toolbox_sunset"]);

/** A refusal as MCP clients read it: an HTTP status and a JSON-RPC error with a stable reason in `data`. */
const jsonRpcRefusal = (reason: keyof typeof X.MCP_REFUSALS | keyof typeof INVALID_REQUESTS, why: Why | Why[]): XNode => {
  if (reason in INVALID_REQUESTS) return jsonResponse(400, "Bad Request", INVALID_REQUESTS[reason as keyof typeof INVALID_REQUESTS], why);
  const body = X.mcpErrorBody(reason as keyof typeof X.MCP_REFUSALS);
  return GONE.has(reason) ? jsonResponse(410, "Gone", body, why) : jsonResponse(403, "Forbidden", body, why);
};

const when = (condition: string, body: XNode[], why: Why | Why[]) => el("choose", undefined, [el("when", { condition }, body, why)], why);

interface McpPolicyParts {
  /** The tools this API exposes: (server, tool, exposed name). */
  tools: { server: PolicyMcpServer; tool: PolicyTool; exposed: string }[];
  /** The upstream's auth (pass-through APIs); REST tools authenticate in their REST API's policy. */
  upstream?: PolicyMcpServer;
  /** A pass-through toolbox: calls limited to its tools. */
  toolbox?: string;
  /** The tiers whose keys reach this API, with the exposed names each may call (undefined: all). */
  tiers: { tier: KeyTier; allowed?: string[] }[];
  /** The servers the API's tools come from (their rate limits, their sunsets). */
  servers: PolicyMcpServer[];
  /** A server's own MCP API, or a toolbox's (which reason its sunset is refused with). */
  kind: "server" | "toolbox";
}

const MCP_METHODS = ["GET", "POST", "DELETE"];
/** Headers by which frameworks let a request name another method than its own. */
const METHOD_OVERRIDE_HEADERS = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"];

function mcpPolicy(c: Collector, project: PolicyProject, apiId: string, parts: McpPolicyParts) {
  const pid = project.id;
  const scope = { level: "project" as const, projectId: pid };
  const why = (note: string): Why => ({ control: "tools", scope, note });
  // Streamable HTTP: POST a message, GET a stream, DELETE a session.
  const inbound: XNode[] = [...browserAccess(c, { kind: "mcp", methods: MCP_METHODS, scope }), el("base", undefined, undefined, STRUCTURE)];
  // Batches first: reading a JSON array as an object fails the expression (a 500 instead of this 400).
  inbound.push(when(X.MCP_IS_BATCH, [jsonRpcRefusal("mcp_batch_refused", why("batches would carry calls past the checks"))], why("batches refused")));
  inbound.push(when(X.MCP_BODY_OFF_POST, [jsonRpcRefusal("mcp_body_not_allowed", why("only a POST's message is checked"))], why("bodies on POST only")));
  // The first reading of the message as JSON; it throws on a body that is not JSON: on-error answers -32700.
  inbound.push(...readingBody([when(X.MCP_MESSAGE_INVALID, [jsonRpcRefusal("mcp_message_invalid", why("a message the checks cannot read is not forwarded"))], why("one readable message per POST"))]));
  inbound.push(el("set-variable", { name: VAR.mcpMethod, value: X.MCP_METHOD }, undefined, why("the JSON-RPC method")));
  inbound.push(el("set-variable", { name: VAR.mcpTool, value: X.MCP_TOOL }, undefined, why("the tool a tools/call names")));
  inbound.push(when(X.MCP_HEADERS_DIFFER, [jsonRpcRefusal("mcp_header_mismatch", why("a server may route by Mcp-Method/Mcp-Name"))], why("routing headers match the message")));
  // From the sunset on (00:00 UTC of the date, by the gateway's clock: no publish needed) a deprecated
  // server is gone, and so is a toolbox from the earliest sunset of its servers (the Sunset it answers
  // with): every call, whatever its method — after the message is read, so the error answers its id.
  const sunset = sunsetOf(parts.servers);
  if (sunset) {
    const gone = why(`deprecated; sunset ${sunset}: refused from then on`);
    inbound.push(when(X.sunsetPassed(sunset), [jsonRpcRefusal(parts.kind === "toolbox" ? "toolbox_sunset" : "tool_server_sunset", gone)], gone));
  }
  const deprecated = deprecatedAtOf(parts.servers);
  if (deprecated) inbound.push(deprecationVariable(deprecated, why(`deprecated on ${deprecated}`)));
  // Fail closed: only keys of a tier that grants this API get further (others are not linked, but a
  // product policy and an API policy can come from different revisions for a moment).
  const tierIds = parts.tiers.map((t) => t.tier.id).sort(byCodePoint);
  const notInScope = (w: Why) => jsonRpcRefusal("tool_not_in_scope", w);
  if (!tierIds.length) inbound.push(notInScope(why("no key tier grants this API")));
  else inbound.push(when(X.tierNotAmong(tierIds), [notInScope(why(`key tiers: ${tierIds.join(", ")}`))], why("key tool scope")));
  if (parts.upstream) {
    // The server's session ids reach clients sealed for the key that opened them (expressions.ts, MCP_SESSION_SEALED):
    // a name that does not open under the caller's key is an unknown session; one that does goes upstream as the server's id.
    const w = why("a session belongs to the key that opened it");
    // Bracketed like the body's reading: a name that fails to decrypt fails the expression, and on-error reads the bracket.
    inbound.push(el("set-variable", { name: VAR.mcpSessionState, value: "reading" }, undefined, w));
    inbound.push(el("set-variable", { name: VAR.mcpSession, value: X.MCP_SESSION_OF_REQUEST }, undefined, w));
    inbound.push(el("set-variable", { name: VAR.mcpSessionState, value: "read" }, undefined, w));
    inbound.push(when(X.MCP_SESSION_FOREIGN, [jsonResponse(404, "Not Found", SESSION_UNKNOWN, w)], w));
    inbound.push(when(X.MCP_SESSION_NAMED, [el("set-header", { name: "Mcp-Session-Id", "exists-action": "override" }, [textEl("value", X.MCP_SESSION_UPSTREAM)], w)], w));
  }
  const narrowing = parts.tiers.filter((t) => t.allowed !== undefined);
  if (narrowing.length) {
    const whens = narrowing.map((t) => {
      const w: Why = { control: "tools", scope: { level: "tier", tierId: t.tier.id }, note: `${t.allowed!.length} tools` };
      const set = [el("set-variable", { name: LIST.tier, value: t.allowed!.join("|") }, undefined, w), el("set-variable", { name: LIST.toolsOnly, value: "1" }, undefined, w)];
      return el("when", { condition: X.tierIs(t.tier.id) }, set, w);
    });
    inbound.push(el("choose", undefined, whens, whens.flatMap((w) => w.why ?? [])));
    inbound.push(when(X.mcpCallOutside(LIST.tier, true), [notInScope(why("key tool scope"))], why("key tool scope")));
  }
  if (parts.toolbox !== undefined) {
    const names = parts.tools.map((t) => t.exposed);
    inbound.push(el("set-variable", { name: LIST.toolsOnly, value: "1" }, undefined, why(`toolbox ${parts.toolbox}: its tools only`)));
    inbound.push(el("set-variable", { name: LIST.toolbox, value: names.join("|") }, undefined, why(`toolbox ${parts.toolbox}: ${names.length} tools`)));
    inbound.push(when(X.mcpCallOutside(LIST.toolbox), [jsonRpcRefusal("tool_not_in_toolbox", why("toolbox"))], why("toolbox")));
  }
  // A grant of some tools (a narrowed tier, a pass-through toolbox) is a grant of tools, not of the
  // server's resources, prompts or completions: only the lifecycle and tool methods pass.
  if (narrowing.length || parts.toolbox !== undefined) {
    inbound.push(when(X.MCP_BEYOND_TOOLS, [jsonRpcRefusal("method_not_in_scope", why("tools only"))], why("tools only")));
  }
  // A pass-through server forwards any name it is sent, so what no discovery listed (a tool the server
  // added since, a name listed twice or one the lists cannot hold) is refused: the tools a project can see,
  // approve and scope are the only ones called. Under approval mode none with a list of its own; under the
  // other modes the callable list below is a subset of the listed one and refuses them already (a second
  // list would only double the policy's size). A toolbox's list is narrower still; a converted server's
  // MCP API serves its listed tools only.
  if (parts.upstream && parts.toolbox === undefined && project.tools.approvalMode === "none") {
    const listed = parts.tools.map((t) => t.exposed);
    const w = why(`${listed.length} tools listed by the last discovery`);
    inbound.push(el("set-variable", { name: LIST.listed, value: listed.join("|") }, undefined, w));
    inbound.push(when(X.mcpCallOutside(LIST.listed), [jsonRpcRefusal("tool_not_discovered", w)], w));
  }
  if (project.tools.approvalMode !== "none") {
    const allowed = parts.tools.filter((t) => callable(project, t.server.name, t.tool)).map((t) => t.exposed);
    const w = why(`approval mode ${project.tools.approvalMode}: ${allowed.length} of ${parts.tools.length} tools callable`);
    inbound.push(el("set-variable", { name: LIST.allowed, value: allowed.join("|") }, undefined, w));
    inbound.push(when(X.mcpCallOutside(LIST.allowed), [jsonRpcRefusal("tool_not_approved", w)], w));
  }
  // Per-tool rate limits, per key: a tool's own limit (its server's, by the name it is exposed under),
  // else a per-tool default — in a toolbox of several servers, the strictest of theirs.
  const named = new Map<string, { calls: number; renewalPeriodSeconds: number }>();
  let perTool: { calls: number; renewalPeriodSeconds: number } | undefined;
  const rate = (l: { calls: number; renewalPeriodSeconds: number }) => l.calls / l.renewalPeriodSeconds;
  for (const server of parts.servers) {
    for (const [tool, limit] of Object.entries(server.limits.tools ?? {}).sort(([a], [b]) => byCodePoint(a, b))) {
      const exposed = parts.tools.find((t) => t.server.name === server.name && t.tool.name === tool)?.exposed ?? (parts.servers.length === 1 ? tool : undefined);
      if (exposed !== undefined && !named.has(exposed)) named.set(exposed, limit);
    }
    const d = server.limits.perTool;
    if (d && (!perTool || rate(d) < rate(perTool))) perTool = d;
  }
  const limitEl = (limit: { calls: number; renewalPeriodSeconds: number }, w: Why) =>
    el("rate-limit-by-key", { calls: limit.calls, "renewal-period": limit.renewalPeriodSeconds, "counter-key": X.MCP_TOOL_COUNTER_KEY, "increment-condition": X.MCP_CALL }, undefined, w);
  if (named.size || perTool) {
    // One budget per key and tool of a server, whichever of its APIs (the server, its toolboxes) is called.
    const only = parts.servers.length === 1 ? parts.servers[0]! : undefined;
    const limitScope = only ? c.n.mcpApi(pid, only.name) : apiId;
    inbound.push(el("set-variable", { name: VAR.mcpLimitScope, value: limitScope }, undefined, why(only ? `per-tool budgets of ${only.name}, shared by its toolboxes` : "per-tool budgets of this toolbox")));
    const whens = [...named.entries()].map(([tool, limit]) => {
      const w = why(`rate limit of ${tool}: ${limit.calls} calls per ${limit.renewalPeriodSeconds} s per key`);
      return el("when", { condition: X.mcpCallOf(tool) }, [limitEl(limit, w)], w);
    });
    const other = perTool ? [el("otherwise", undefined, [limitEl(perTool, why(`per-tool rate limit: ${perTool.calls} calls per ${perTool.renewalPeriodSeconds} s per key`))])] : [];
    inbound.push(el("choose", undefined, [...whens, ...other], why("per-tool rate limits")));
  }
  inbound.push(when(X.MCP_IS_POST, [textEl("set-body", X.MCP_MESSAGE_REBUILT)], why("the message forwarded is the message checked")));
  inbound.push(...keyIsolation(pid));
  const auth = parts.upstream?.auth;
  if (auth?.type === "header") {
    const nv = upstreamNamedValue(c, auth);
    inbound.push(el("set-header", { name: auth.header, "exists-action": "override" }, [textEl("value", `{{${nv}}}`)], why("upstream credential (Key Vault)")));
  } else if (auth?.type === "managedIdentity") {
    inbound.push(el("authentication-managed-identity", { resource: auth.audience, ...(auth.clientId ? { "client-id": auth.clientId } : {}) }, undefined, why("upstream credential (managed identity)")));
  }
  const outbound: XNode[] = [el("base", undefined, undefined, STRUCTURE)];
  if (parts.upstream) {
    const w = why("the server's session id, sealed for the caller's key");
    outbound.push(when(X.MCP_RESPONSE_SESSION, [el("set-header", { name: "Mcp-Session-Id", "exists-action": "override" }, [textEl("value", X.MCP_SESSION_SEALED)], w)], w));
  }
  // Deprecated servers' answers carry their Sunset and Deprecation, remote or converted (a toolbox: the
  // earliest of its servers').
  if (sunset) outbound.push(sunsetHeader(sunset, why(`deprecated; sunset ${sunset}`)));
  if (deprecated) outbound.push(deprecationHeader(why(`deprecated on ${deprecated}`)));
  const doc = el(
    "policies",
    undefined,
    [
      el("inbound", undefined, inbound, STRUCTURE),
      el("backend", undefined, [el("base")], STRUCTURE),
      el("outbound", undefined, outbound, STRUCTURE),
      el(
        "on-error",
        undefined,
        [
          el("base"),
          when(X.BODY_UNREADABLE, [jsonRpcRefusal("mcp_parse_error", why("a body that is not JSON"))], why("a body that is not JSON")),
          ...(parts.upstream ? [when(X.MCP_SESSION_UNREADABLE, [jsonResponse(404, "Not Found", SESSION_UNKNOWN, why("a session name no key of this caller made"))], why("a session name that does not decrypt"))] : []),
        ],
        STRUCTURE,
      ),
    ],
    STRUCTURE,
  );
  c.addPolicy({ type: "api", apiId }, doc, []);
}

/** The earliest sunset date of the deprecated servers among `servers`, if any (RFC 8594 `Sunset`). */
const sunsetOf = (servers: PolicyMcpServer[]): string | undefined =>
  servers
    .flatMap((s) => (s.status === "deprecated" && s.sunsetDate ? [s.sunsetDate] : []))
    .sort(byCodePoint)
    .at(0);

const sunsetHeader = (date: string, why: Why): XNode => el("set-header", { name: "Sunset", "exists-action": "override" }, [textEl("value", new Date(`${date}T00:00:00Z`).toUTCString())], why);

/**
 * When the deprecated servers among `servers` were deprecated, the earliest (RFC 9745 `Deprecation`): a
 * toolbox is deprecated from the day its first server was, as its Sunset is the earliest of theirs. Only
 * servers with a sunset date count, as for the Sunset header.
 */
const deprecatedAtOf = (servers: PolicyMcpServer[]): string | undefined =>
  servers
    .flatMap((s) => (s.status === "deprecated" && s.sunsetDate && s.deprecatedAt ? [s.deprecatedAt] : []))
    .sort(byCodePoint)
    .at(0);

/**
 * The Deprecation header's value is `@<unix seconds>`: a literal starting with `@` would be a policy
 * expression, so inbound sets the digits in a variable and outbound writes them with X.DEPRECATION (as a
 * model's and an agent's). The variable is set unconditionally in inbound: every answer that reaches
 * outbound passed it.
 */
const deprecationVariable = (isoDate: string, why: Why): XNode => el("set-variable", { name: VAR.deprecation, value: String(Date.parse(`${isoDate}T00:00:00Z`) / 1000) }, undefined, why);
const deprecationHeader = (why: Why): XNode => el("set-header", { name: "Deprecation", "exists-action": "override" }, [textEl("value", X.DEPRECATION)], why);

function upstreamNamedValue(c: Collector, auth: Extract<PolicyMcpServer["auth"], { type: "header" }>): string {
  const nv = c.n.namedValue(auth.namedValueId);
  if (!c.namedValues.has(nv)) {
    const artifact: NamedValueArtifact = { kind: "namedValue", id: nv, displayName: nv, secret: true, keyVault: { secretIdentifier: auth.secretIdentifier }, tags: ["aigov"] };
    c.namedValues.set(nv, artifact);
    c.explainArtifact({ ref: artifactRef(artifact), path: "/", control: "tools", scope: { level: "tenant" }, note: "Key Vault-backed MCP upstream credential" });
  }
  return nv;
}

/** The tiers that reach an API, and what each may call there (exposed names; undefined = all). */
function tiersReaching(c: Collector, project: PolicyProject, reaches: (g: TierGrant) => string[] | "all" | undefined) {
  const out: { tier: KeyTier; allowed?: string[] }[] = [];
  // The project's own tiers only: a tier another project's keys are on (a share) names that project's tools.
  for (const tier of tiersApplied(c, new Set(project.keyTiers))) {
    if (!tier.tools?.length) continue;
    const r = reaches(grantOf(tier));
    if (r === undefined) continue;
    out.push(r === "all" ? { tier } : { tier, allowed: r });
  }
  return out;
}

const mcpApiBase = (c: Collector, id: string, path: string, displayName: string, description: string | undefined): Omit<ApiArtifact, "mcp"> => ({
  kind: "api",
  id,
  displayName,
  ...(description ? { description } : {}),
  path,
  protocols: ["https"],
  subscriptionRequired: true,
  subscriptionKeyHeaderName: SUBSCRIPTION_KEY_HEADER,
  operations: [],
});

/** A remote server's pass-through source: the service URL and the endpoint(s) below it. */
function passThrough(server: PolicyMcpServer & { source: { kind: "remote" } }): NonNullable<ApiArtifact["mcp"]> {
  const url = new URL(server.source.url);
  const path = url.pathname.replace(/\/+$/, "");
  const cut = path.lastIndexOf("/");
  const serviceUrl = `${url.origin}${path.slice(0, Math.max(cut, 0))}`;
  const endpoint = path.slice(cut) || "/";
  if (server.source.transport === "sse") {
    return { type: "passThrough", serviceUrl, transportType: "sse", endpoints: [{ name: "sse", uriTemplate: endpoint }, { name: "message", uriTemplate: "/messages" }] };
  }
  return { type: "passThrough", serviceUrl, transportType: "streamable", endpoints: [{ name: "message", uriTemplate: endpoint }] };
}

/** Tool resource names of one MCP API (1–80, `^\w+$|^\w[\w-]+\w$`), unique ignoring case as ARM compares them. */
function toolResourceIds(names: string[]): string[] {
  const taken = new Set<string>();
  return names.map((name) => {
    const base = name.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 80).replace(/^-+|-+$/g, "_") || "tool";
    let id = base;
    for (let n = 2; taken.has(id.toLowerCase()); n++) id = `${base.slice(0, 80 - String(n).length - 1)}_${n}`;
    taken.add(id.toLowerCase());
    return id;
  });
}

const WHOLE_PARAM = /^\{[A-Za-z0-9_-]{1,80}\}$/;
const SHADOW_LITERAL = /^[a-z0-9_~-][a-z0-9._~-]{0,99}$/;

/**
 * Path parameters a literal segment of another operation could hide behind with an extension: `{id}` in
 * `/items/{id}` next to `/items/admin`, where Rails reads `/items/admin.json` as `/items/admin`. Per
 * operation and parameter, the literals (lower case), when there are any.
 */
function pathShadows(operations: readonly ApiOperation[]): { operationId: string; param: string; literals: string[] }[] {
  // Each template split once (a large server has hundreds of operations, each compared with every other).
  const split = operations.map((op) => op.urlTemplate.split("?")[0]!.split("/").filter((s) => s !== ""));
  const out: { operationId: string; param: string; literals: string[] }[] = [];
  operations.forEach((op, k) => {
    const mine = split[k]!;
    mine.forEach((segment, i) => {
      if (!WHOLE_PARAM.test(segment)) return;
      const literals = new Set<string>();
      split.forEach((theirs, m) => {
        if (m === k || theirs.length <= i || theirs[i]!.includes("{")) return;
        for (let j = 0; j < i; j++) if (mine[j] !== theirs[j] && !mine[j]!.includes("{") && !theirs[j]!.includes("{")) return;
        const literal = theirs[i]!.toLowerCase();
        if (SHADOW_LITERAL.test(literal)) literals.add(literal);
      });
      if (literals.size) out.push({ operationId: op.id, param: segment.slice(1, -1), literals: [...literals].sort(byCodePoint) });
    });
  });
  return out.sort((a, b) => byCodePoint(a.operationId, b.operationId) || byCodePoint(a.param, b.param));
}

/** REST-as-MCP: the server's REST API (operations from its tools) and the tool resources naming them. */
function restApi(c: Collector, project: PolicyProject, server: PolicyMcpServer & { source: { kind: "openapi" } }): ApiArtifact {
  const operations: ApiOperation[] = sortBy(
    server.tools.filter((t) => t.operation),
    (t) => t.operation!.id,
  ).map((t) => ({ ...(t.operation as unknown as ApiOperation), displayName: t.name }));
  const schemas = server.restSchemas ?? {};
  const api: ApiArtifact = {
    kind: "api",
    id: c.n.restApi(project.id, server.name),
    displayName: `${server.displayName ?? server.name} (REST, project ${project.id})`,
    path: c.n.restApiPath(project.id, server.name),
    protocols: ["https"],
    subscriptionRequired: true,
    subscriptionKeyHeaderName: SUBSCRIPTION_KEY_HEADER,
    operations,
    serviceUrl: server.source.baseUrl,
    ...(Object.keys(schemas).length ? { schemas: [{ id: REST_SCHEMA_ID, contentType: "application/vnd.oai.openapi.components+json" as const, document: { components: { schemas } } }] } : {}),
  };
  // The REST API's own policy: its operations are the server's tools, so a key may call an operation
  // exactly when it may call the tool (tier scope, approvals) — also when it calls the REST API
  // directly; then the key never travels on and the upstream credential is added here.
  const why: Why = { control: "tools", scope: { level: "project", projectId: project.id }, note: `REST API of ${server.name}` };
  const opOf = new Map(server.tools.flatMap((t) => (t.operation ? [[t.name, t.operation.id] as const] : [])));
  const ops = (names: string[]) => names.flatMap((n) => (opOf.has(n) ? [opOf.get(n)!] : [])).sort(byCodePoint);
  const inbound: XNode[] = [...browserAccess(c, { kind: "rest", methods: operations.map((o) => o.method), scope: why.scope }), el("base", undefined, undefined, STRUCTURE)];
  // Past its sunset (by the gateway's clock) the server's operations are gone as its MCP API is: called
  // directly or as a tool's internal call, before anything else of its own.
  const sunset = sunsetOf([server]);
  if (sunset) {
    const gone: Why = { ...why, note: `deprecated; sunset ${sunset}: refused from then on` };
    inbound.push(when(X.sunsetPassed(sunset), [jsonResponse(410, "Gone", JSON_ERROR("tool_server_sunset", X.MCP_REFUSALS.tool_server_sunset), gone)], gone));
  }
  const deprecated = deprecatedAtOf([server]);
  if (deprecated) inbound.push(deprecationVariable(deprecated, { ...why, note: `deprecated on ${deprecated}` }));
  const tiers = tiersReaching(c, project, (g) => restReach(project, server, g));
  const notInScope = (w: Why) => forbidden("tool_not_in_scope", X.MCP_REFUSALS.tool_not_in_scope, w);
  const tierIds = tiers.map((t) => t.tier.id).sort(byCodePoint);
  if (!tierIds.length) inbound.push(notInScope(why));
  else inbound.push(when(X.tierNotAmong(tierIds), [notInScope(why)], why));
  const narrowing = tiers.filter((t) => t.allowed !== undefined);
  if (narrowing.length) {
    inbound.push(el("choose", undefined, narrowing.map((t) => el("when", { condition: X.tierIs(t.tier.id) }, [el("set-variable", { name: LIST.tier, value: ops(t.allowed!).join("|") })], why)), why));
    inbound.push(when(X.operationOutside(LIST.tier, true), [notInScope(why)], why));
  }
  if (project.tools.approvalMode !== "none") {
    const allowed = server.tools.filter((t) => callable(project, server.name, t)).map((t) => t.name);
    inbound.push(el("set-variable", { name: LIST.allowed, value: ops(allowed).join("|") }, undefined, why));
    inbound.push(when(X.operationOutside(LIST.allowed, false), [forbidden("tool_not_approved", X.MCP_REFUSALS.tool_not_approved, why)], why));
  }
  // The server's per-tool rate limits, per key, also here: a call of the operation itself (direct, or a
  // tool call's internal request) counts in one budget per tool, however the key reaches it.
  const limits = Object.entries(server.limits.tools ?? {})
    .filter(([tool]) => opOf.has(tool))
    .sort(([a], [b]) => byCodePoint(opOf.get(a)!, opOf.get(b)!));
  const perTool = server.limits.perTool;
  if (limits.length || perTool) {
    const limitEl = (l: { calls: number; renewalPeriodSeconds: number }, w: Why) => el("rate-limit-by-key", { calls: l.calls, "renewal-period": l.renewalPeriodSeconds, "counter-key": X.REST_TOOL_COUNTER_KEY }, undefined, w);
    const whens = limits.map(([tool, l]) => {
      const w: Why = { ...why, note: `rate limit of ${tool}: ${l.calls} calls per ${l.renewalPeriodSeconds} s per key` };
      return el("when", { condition: X.operationIs(opOf.get(tool)!) }, [limitEl(l, w)], w);
    });
    const fallback = perTool && limitEl(perTool, { ...why, note: `per-tool rate limit: ${perTool.calls} calls per ${perTool.renewalPeriodSeconds} s per key` });
    if (!whens.length) inbound.push(fallback!);
    else inbound.push(el("choose", undefined, [...whens, ...(fallback ? [el("otherwise", undefined, [fallback])] : [])], why));
  }
  inbound.push(...keyIsolation(project.id));
  // An operation is approved and scoped as its method and path: a backend that honours a method override
  // would run another operation under this one's approval (a GET tool becoming a DELETE).
  const override: Why = { ...why, note: "method overrides removed: the operation called is the one checked" };
  for (const h of METHOD_OVERRIDE_HEADERS) inbound.push(el("set-header", { name: h, "exists-action": "delete" }, undefined, override));
  inbound.push(el("set-query-parameter", { name: "_method", "exists-action": "delete" }, undefined, override));
  // A field cannot be removed from a body as a header can: a body the gateway cannot read as plain JSON is
  // refused (a form, however its names are encoded; a compressed body), and a JSON one that names a method.
  const notJson = jsonResponse(415, "Unsupported Media Type", JSON_ERROR("body_not_json", "This API takes JSON bodies only (application/json), uncompressed."), override);
  inbound.push(when(X.REST_BODY_NOT_PLAIN_JSON, [notJson], override));
  const jsonOverride = jsonResponse(400, "Bad Request", JSON_ERROR("method_override_refused", "A body may not name another method (_method): the operation called is the one checked."), override);
  const unreadable = jsonResponse(400, "Bad Request", JSON_ERROR("invalid_body", "The request body is not valid JSON."), override);
  inbound.push(when(X.REST_BODY_BOM, [unreadable], override));
  // Parsed: a body that is not JSON fails the expression, and on-error reads the bracket (400, not 500).
  inbound.push(...readingBody([when(X.REST_JSON_METHOD_OVERRIDE, [jsonOverride], override)]));
  const queryOverride = jsonResponse(400, "Bad Request", JSON_ERROR("method_override_refused", "A query may not name another method (_method, however its name is encoded): the operation called is the one checked."), override);
  inbound.push(when(X.REST_QUERY_METHOD_OVERRIDE, [queryOverride], override));
  const ambiguous: Why = { ...why, note: "a path whose ;params a backend drops before routing is refused: the operation called is the one checked" };
  inbound.push(when(X.REST_PATH_PARAMETERS, [jsonResponse(400, "Bad Request", JSON_ERROR("path_ambiguous", "A path may not carry ;parameters: a backend may route it to another operation than the one checked."), ambiguous)], ambiguous));
  for (const shadow of pathShadows(operations)) {
    const w: Why = { ...why, note: `a ${shadow.param} that names a sibling operation with an extension (${shadow.literals.join(", ")}) is refused: a backend may route it there` };
    const refusal = jsonResponse(400, "Bad Request", JSON_ERROR("path_ambiguous", "This path value names another operation with an extension: a backend may route it there instead of the one checked."), w);
    inbound.push(when(X.operationIs(shadow.operationId), [when(X.pathParamShadows(shadow.param, shadow.literals), [refusal], w)], w));
  }
  if (server.auth.type === "header") inbound.push(el("set-header", { name: server.auth.header, "exists-action": "override" }, [textEl("value", `{{${upstreamNamedValue(c, server.auth)}}}`)], why));
  else if (server.auth.type === "managedIdentity") inbound.push(el("authentication-managed-identity", { resource: server.auth.audience, ...(server.auth.clientId ? { "client-id": server.auth.clientId } : {}) }, undefined, why));
  c.addPolicy(
    { type: "api", apiId: api.id },
    el("policies", undefined, [el("inbound", undefined, inbound, STRUCTURE), el("backend", undefined, [el("base")], STRUCTURE), el("outbound", undefined, [el("base"), ...(sunset ? [sunsetHeader(sunset, { ...why, note: `deprecated; sunset ${sunset}` })] : []), ...(deprecated ? [deprecationHeader({ ...why, note: `deprecated on ${deprecated}` })] : [])], STRUCTURE), el("on-error", undefined, [el("base"), when(X.BODY_UNREADABLE, [unreadable], override)], STRUCTURE)], STRUCTURE),
    [],
  );
  return api;
}

/** A project's tool APIs (servers, their REST APIs, toolboxes) and their policies. */
export function compileTools(c: Collector, project: PolicyProject) {
  const servers = servedServers(project);
  for (const server of servers) {
    const tools = sortBy(server.tools, (t) => t.name).map((tool) => ({ server, tool, exposed: tool.name }));
    const tiers = tiersReaching(c, project, (g) => (g.servers.has(server.name) ? "all" : g.tools.has(server.name) ? [...g.tools.get(server.name)!].sort(byCodePoint) : undefined));
    const id = c.n.mcpApi(project.id, server.name);
    const base = mcpApiBase(c, id, c.n.mcpApiPath(project.id, server.name), `${server.displayName ?? server.name} (MCP, project ${project.id})`, undefined);
    let api: ApiArtifact;
    if (server.source.kind === "remote") {
      api = { ...base, mcp: passThrough(server as PolicyMcpServer & { source: { kind: "remote" } }) };
    } else {
      const rest = restApi(c, project, server as PolicyMcpServer & { source: { kind: "openapi" } });
      c.apis.push(rest);
      const served = tools.filter((t) => t.tool.operation);
      const ids = toolResourceIds(served.map((t) => t.exposed));
      const mcpTools: McpToolArtifact[] = served.map((t, i) => ({ id: ids[i]!, displayName: t.exposed, apiId: rest.id, operationId: t.tool.operation!.id, ...(t.tool.operation!.description ? { description: t.tool.operation!.description } : {}) }));
      api = { ...base, mcp: { type: "restTools", tools: mcpTools } };
    }
    c.apis.push(api);
    c.explainArtifact({ ref: artifactRef(api), path: "/", control: "tools", scope: { level: "project", projectId: project.id }, note: `MCP server ${server.name} (${server.source.kind})` });
    mcpPolicy(c, project, id, { tools, ...(server.source.kind === "remote" ? { upstream: server } : {}), tiers, servers: [server], kind: "server" });
  }
  for (const box of servedToolboxes(project)) {
    const id = c.n.toolboxApi(project.id, box.name);
    const tiers = tiersReaching(c, project, (g) => (g.toolboxes.has(box.name) ? "all" : undefined));
    const base = mcpApiBase(c, id, c.n.toolboxApiPath(project.id, box.name), `Toolbox ${box.name} (MCP, project ${project.id})`, undefined);
    const first = box.tools[0]!.server;
    const boxIds = toolResourceIds(box.tools.map((x) => x.exposed));
    const api: ApiArtifact =
      box.kind === "remote"
        ? { ...base, mcp: passThrough(first as PolicyMcpServer & { source: { kind: "remote" } }) }
        : {
            ...base,
            mcp: {
              type: "restTools",
              tools: box.tools.map((t, i) => ({ id: boxIds[i]!, displayName: t.exposed, apiId: c.n.restApi(project.id, t.server.name), operationId: t.tool.operation!.id, ...(t.tool.operation!.description ? { description: t.tool.operation!.description } : {}) })),
            },
          };
    c.apis.push(api);
    c.explainArtifact({ ref: artifactRef(api), path: "/", control: "tools", scope: { level: "project", projectId: project.id }, note: `toolbox ${box.name}: ${box.tools.length} tools` });
    const servers = [...new Map(box.tools.map((t) => [t.server.name, t.server])).values()];
    mcpPolicy(c, project, id, { tools: box.tools, ...(box.kind === "remote" ? { upstream: first, toolbox: box.name } : {}), tiers, servers, kind: "toolbox" });
  }
}
