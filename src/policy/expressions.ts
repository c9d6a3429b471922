/**
 * The closed vocabulary of policy expressions (`@(...)`) the compiler emits.
 *
 * Rule: an expression is a compiler constant. Its only variable parts are integers the compiler
 * renders itself (limits, indexes, a sunset date's year, month and day: {@link sunsetPassed}), values
 * from the compiler's own enums (a correlation header from CORRELATION_HEADERS, a counter kind) and — the one exception — a key tier id as a C# string
 * literal in the tier comparison ({@link tierIs}, and the fail-closed guard {@link tierNotIn}). A tier id is a validated identifier
 * (identifiers.ts `TIER_ID`: `[a-z0-9_]`, no quote, backslash, `@`, `{`, `<`, `&` or whitespace),
 * checked again here by {@link tierLiteral}, so it can neither leave the literal nor start code or a
 * named-value reference. No other input string — a name, header, model or project id, description —
 * is ever placed in an expression. Per-model data (names, pool ids, the dates of headers) is written as
 * *literal* attribute values (set-variable) that expressions read at run time, the same way they read the request.
 *
 * The property tests check every expression in every compiled document against {@link EXPRESSION_SHAPES}.
 */
import { TIER_ID } from "./identifiers.js";
import { type CORRELATION_HEADERS } from "./settings.js";
import { DATA_CLASS_HEADER, MODEL_CALLS, SUBSCRIPTION_KEY_HEADER, VAR } from "./names.js";

const int = (n: number): string => {
  if (!Number.isSafeInteger(n)) throw new RangeError(`not an integer: ${n}`);
  return String(n);
};
const v = (name: (typeof VAR)[keyof typeof VAR]) => `context.Variables["${name}"]`;
const sub = `(context.Subscription?.Id ?? "none")`;

/** The model named in the path (`/openai/deployments/{deployment-id}/…`), "" on the other routes. */
export const PATH_MODEL = `@(context.Request.MatchedParameters.GetValueOrDefault("deployment-id", ""))`;
/** The model named in the JSON body (`model`), "" when the body names none. */
export const BODY_MODEL = `@(context.Request.Body?.As<JObject>(preserveContent: true)?["model"]?.ToString() ?? "")`;
/**
 * The request failed while its body was being read as JSON (VAR.bodyState): the body is not a JSON object
 * (malformed, an array, a string, empty) — the client's 400. APIM has no JSON check that cannot throw, so
 * the reading is bracketed and on-error looks at the bracket.
 */
export const BODY_UNREADABLE = `@(context.Variables.GetValueOrDefault<string>("${VAR.bodyState}", "") == "reading")`;
/**
 * The request does not declare exactly one data class of VAR.dataClasses ('|'-separated, lower case, set
 * as a literal just before): the header's value, as `Headers.GetValueOrDefault` gives it — repeated header
 * lines joined with commas — must be one of them whole. (`check-header` would do for one value; how it
 * treats several is undocumented, and a request declaring `confidential, public` must not pass as `public`.)
 */
export const DATA_CLASS_OUTSIDE = `@(Array.IndexOf(((string)${v(VAR.dataClasses)}).Split('|'), context.Request.Headers.GetValueOrDefault("${DATA_CLASS_HEADER}", "").Trim().ToLowerInvariant()) < 0)`;
/**
 * A required header (`headers.required`) does not carry exactly one of its allowed values: the value, as
 * `Headers.GetValueOrDefault` gives it (repeated lines joined with commas), trimmed and lower-cased, must be
 * one of VAR.requiredValues (lower case, '|'-separated) whole. The header's name and the values are
 * literals set just before (set-variable), never part of the expression. `check-header` is documented for
 * one value only; with this check `prod, evil` is refused whatever it does with several.
 */
export const REQUIRED_HEADER_OUTSIDE = `@(Array.IndexOf(((string)${v(VAR.requiredValues)}).Split('|'), context.Request.Headers.GetValueOrDefault((string)${v(VAR.requiredHeader)}, "").Trim().ToLowerInvariant()) < 0)`;
/**
 * The data class the request declares, as DATA_CLASS_OUTSIDE compares it (trimmed, lower case), after a
 * `|`: the semantic cache's partition by data class. Where a data-class rule applies only a request of
 * exactly one allowed class gets this far, so an answer cached for one class is never served to another.
 */
export const DATA_CLASS_PARTITION = `@("|" + context.Request.Headers.GetValueOrDefault("${DATA_CLASS_HEADER}", "").Trim().ToLowerInvariant())`;
/** The model the request addresses: the path's, else the body's. */
export const REQUESTED_MODEL = `@((string)${v(VAR.pathModel)} != "" ? (string)${v(VAR.pathModel)} : (string)${v(VAR.bodyModel)})`;
/** The path and the body name different models: refused, so a key cannot pass a check with one and reach the other. */
export const MODEL_MISMATCH = `@((string)${v(VAR.pathModel)} != "" && (string)${v(VAR.bodyModel)} != "" && (string)${v(VAR.pathModel)} != (string)${v(VAR.bodyModel)})`;
export const MODEL_MISSING = `@((string)${v(VAR.model)} == "")`;
export const MODEL_INDEX = `@(Array.IndexOf(((string)${v(VAR.models)}).Split('|'), (string)${v(VAR.model)}))`;
export const MODEL_UNKNOWN = `@((int)${v(VAR.modelIndex)} < 0)`;
const atModel = (list: (typeof VAR)[keyof typeof VAR]) => `((string)${v(list)}).Split('|')[(int)${v(VAR.modelIndex)}]`;
export const MODEL_POOL = `@(${atModel(VAR.pools)})`;
export const MODEL_GROUP = `@(int.Parse(${atModel(VAR.groups)}))`;
export const MODEL_DEPLOYMENT = `@(${atModel(VAR.deployments)})`;
export const MODEL_RETRIES = `@(int.Parse(${atModel(VAR.retryCounts)}))`;
export const ROUTE_IS_AZURE = `@(${atModel(VAR.routes)} == "azure")`;
/** The operation stands for this model call (operation ids end with the call's name: names.ts MODEL_OPERATIONS). */
export const callIs = (name: string) => {
  if (!/^[a-z-]+$/.test(name)) throw new RangeError(`not a model call: ${name}`);
  return `@(context.Operation.Id.EndsWith("-${name}"))`;
};
/** The backend path of an Azure OpenAI deployment call: the governed deployment, never the client's. */
export const AZURE_DEPLOYMENT_PATH = `@("/openai/deployments/" + (string)${v(VAR.deployment)} + "/" + (string)${v(VAR.call)})`;
/** The backend path of an OpenAI-style call, relative to the backend's base URL (…/v1). */
export const V1_PATH = `@("/" + (string)${v(VAR.call)})`;
/** The request body with `model` set to the governed deployment (OpenAI-style backends read the model from the body). */
export const BODY_WITH_DEPLOYMENT = `@{ var body = context.Request.Body.As<JObject>(preserveContent: true); body["model"] = (string)${v(VAR.deployment)}; return body.ToString(); }`;
export const BACKEND = `@((string)${v(VAR.backend)})`;
export const groupIs = (n: number) => `@((int)${v(VAR.group)} == ${int(n)})`;

export const abRoll = (total: number) => `@(new Random().Next(${int(total)}))`;
export const abBelow = (n: number) => `@((int)${v(VAR.abRoll)} < ${int(n)})`;

export type CounterKind = "tpm" | "tq" | "rpm";
/** Counter keys: one counter per (control, key or project[, model]). The kind prefix keeps controls
 * apart, because one counter is shared by every policy that uses the same key value; a model's own
 * limit has its own counter (the model in the key), so a key's limit and a model's limit both count.
 * A project's limits count per project API (`context.Api.Id`); a key tier's are the key's own, one
 * counter per key across every project API it reaches (a shared key gets its limits once, not once per
 * project — as its budget). */
export function counterKey(kind: CounterKind, per: "key" | "project" | "tier", perModel: boolean): string {
  const parts = [`"${kind}-${per}|"`];
  if (per !== "project") parts.push(sub);
  if (per !== "tier") parts.push(...(per === "key" ? [`"|"`] : []), "context.Api.Id");
  if (perModel) parts.push(`"|"`, `(string)${v(VAR.model)}`);
  return `@(${parts.join(" + ")})`;
}

/** A key's budget: one counter per key across every API it reaches (a shared key spends one budget). */
export const BUDGET_COUNTER_KEY = `@("budget|" + ${sub})`;

/** A key tier id as a C# string literal. Throws unless the id matches TIER_ID (identifiers.ts), the
 * character set that cannot end or escape the literal, start an expression or a named value. */
export function tierLiteral(tierId: string): string {
  if (!TIER_ID.test(tierId)) throw new RangeError(`not a key tier id: ${JSON.stringify(tierId)}`);
  return `"${tierId}"`;
}

/** The comparison of the key's tier (the variable its tier product's policy sets) with one tier id. */
const keyTierEquals = (tierId: string) => `context.Variables.GetValueOrDefault<string>("${VAR.keyTier}", "") == ${tierLiteral(tierId)}`;

const OWN = { cs: VAR.ownContentSafety, cache: VAR.noCache } as const;
/** Condition for a project-level element that models with their own value skip (`cs`: their own content
 * safety; `cache`: no semantic cache, the embeddings deployment being outside their region rule),
 * optionally only for the keys of one key tier (by id). */
export function sharedCondition(own: keyof typeof OWN | undefined, tierId: string | undefined): string {
  const parts: string[] = [];
  if (own) parts.push(`!context.Variables.ContainsKey("${OWN[own]}")`);
  if (tierId !== undefined) parts.push(keyTierEquals(tierId));
  if (!parts.length) throw new Error("sharedCondition needs a guard");
  return `@(${parts.join(" && ")})`;
}

/** Keys of the tier `tierId` (the id its tier product's policy sets in `aigov-key-tier`). */
export const tierIs = (tierId: string) => sharedCondition(undefined, tierId);
/**
 * Fail-closed tier guard: the request carries a key tier (some tier product's policy set
 * `aigov-key-tier`) that is none of `tierIds`, the tiers this API applies. Without it such a key would
 * fall through every tier `choose` to the project's per-key limits and full model list. Each id goes
 * through the same literal helper as {@link tierIs}; the ids are sorted by the caller, so the
 * expression depends only on the set of tiers the API applies.
 */
export function tierNotIn(tierIds: readonly string[]): string {
  if (!tierIds.length) throw new Error("tierNotIn needs at least one tier id");
  return `@(context.Variables.ContainsKey("${VAR.keyTier}") && !(${tierIds.map(keyTierEquals).join(" || ")}))`;
}

/** The key is in none of these tiers (a key without a tier is in none): the project's per-key limit
 * applies, except to keys of exemption tiers that relax it. */
export function tierNotAmong(tierIds: readonly string[]): string {
  if (!tierIds.length) throw new Error("tierNotAmong needs at least one tier id");
  return `@(!(${tierIds.map(keyTierEquals).join(" || ")}))`;
}

/** The resolved model is not in the key tier's model list (a set-variable literal, like the project's
 * model list), so tier model names never enter an expression. No list set = no tier restriction. */
export const MODEL_NOT_IN_TIER = `@(context.Variables.ContainsKey("${VAR.tierModels}") && Array.IndexOf(((string)${v(VAR.tierModels)}).Split('|'), (string)${v(VAR.model)}) < 0)`;

export const promptTooLarge = (maxBytes: number) =>
  `@(context.Request.Body != null && context.Request.Body.As<byte[]>(preserveContent: true).Length > ${int(maxBytes)})`;

export const REQUEST_ID = `@(context.RequestId.ToString())`;
export const correlationEcho = (header: (typeof CORRELATION_HEADERS)[number]) =>
  `@(context.Request.Headers.GetValueOrDefault("${header}", context.RequestId.ToString()))`;

/**
 * The gateway's clock has reached a sunset: 00:00 UTC of `isoDate` (YYYY-MM-DD), the instant the `Sunset`
 * header names. The date's year, month and day are integers the compiler renders itself (a validated
 * date, never text), in `System.DateTime`'s constructor with `DateTimeKind.Utc`, compared with
 * `DateTime.UtcNow` (both on APIM's list of types allowed in expressions). Checked at run time on every
 * call, so a sunset takes effect with no publish.
 */
export const sunsetPassed = (isoDate: string) => {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(isoDate);
  const day = m ? new Date(`${isoDate}T00:00:00Z`) : undefined;
  if (!m || !day || Number.isNaN(day.getTime()) || day.toISOString().slice(0, 10) !== isoDate) throw new RangeError(`not a date: ${JSON.stringify(isoDate)}`);
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return `@(DateTime.UtcNow >= new DateTime(${int(y)}, ${int(mo)}, ${int(d)}, 0, 0, 0, DateTimeKind.Utc))`;
};
/** The requested model (VAR.model) is entry `n` of VAR.sunsetModels (a literal list: model names never enter an expression). */
export const sunsetModelIs = (n: number) => `@(Array.IndexOf(((string)${v(VAR.sunsetModels)}).Split('|'), (string)${v(VAR.model)}) == ${int(n)})`;
export const HAS_SUNSET = `@(context.Variables.ContainsKey("${VAR.sunset}"))`;
export const SUNSET = `@((string)${v(VAR.sunset)})`;
export const HAS_DEPRECATION = `@(context.Variables.ContainsKey("${VAR.deprecation}"))`;
/** RFC 9745 structured date: `@` followed by Unix seconds (the digits are stored in the variable). */
export const DEPRECATION = `@("@" + (string)${v(VAR.deprecation)})`;

/**
 * Instance baseline (compile/instance.ts): the predefined errors of APIM's built-in steps that tell whether
 * a path is served or a key may call it — no API or operation matched, no key, a key the API does not take.
 */
export const SERVED_OR_KEY_REFUSED = `@(context.LastError.Reason == "OperationNotFound" || context.LastError.Reason == "SubscriptionKeyNotFound" || context.LastError.Reason == "SubscriptionKeyInvalid")`;
/** A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method. */
export const IS_PREFLIGHT = `@(context.Request.Method == "OPTIONS" && context.Request.Headers.ContainsKey("Origin") && context.Request.Headers.ContainsKey("Access-Control-Request-Method"))`;
/** The request presents a key: the header every aigov API names, or APIM's default query parameter. */
export const KEY_PRESENTED = `@(context.Request.Headers.ContainsKey("${SUBSCRIPTION_KEY_HEADER}") || context.Request.Url.Query.ContainsKey("subscription-key"))`;

export const API_ID = `@(context.Api.Id)`;
export const SUBSCRIPTION_ID = `@${sub}`;
export const MODEL = `@(context.Variables.GetValueOrDefault<string>("${VAR.model}", ""))`;
/** The model call the request makes (chat/completions, embeddings, …: set by the resolve-model fragment). */
export const MODEL_CALL = `@(context.Variables.GetValueOrDefault<string>("${VAR.call}", ""))`;

export const RETRY_COUNT = `@(Math.Max(1, (int)${v(VAR.retries)}))`;
/** Retry on throttling and server errors, for models whose pool has another backend to try. */
export const RETRY_CONDITION = `@((int)${v(VAR.retries)} > 0 && (context.Response.StatusCode == 429 || context.Response.StatusCode >= 500))`;
export const IS_503 = `@(context.Response.StatusCode == 503)`;
/** In outbound: the backend answered 401 (a policy's own refusals end in return-response and never reach outbound). */
export const BACKEND_UNAUTHORIZED = `@(context.Response.StatusCode == 401)`;

/** Where a tier id appears in an expression: the literal right after the `aigov-key-tier` comparison. */
const TIER_COMPARISON = new RegExp(`(context\\.Variables\\.GetValueOrDefault<string>\\("${VAR.keyTier}", ""\\) == ")([^"]*)(")`, "g");
// ---------------------------------------------------------------------------------------------
// MCP APIs: the JSON-RPC request, read from the body (APIM has no MCP-specific context member; only
// the request body may be read in an MCP API's policy — reading the response would buffer streams).

/** The request is a JSON-RPC batch (a JSON array): refused, since one batch could carry calls the checks never see. */
export const MCP_IS_BATCH = `@(context.Request.Method == "POST" && context.Request.Body != null && context.Request.Body.As<string>(preserveContent: true).TrimStart().StartsWith("["))`;
/** A request other than a POST that carries a body: its body is not checked (only a POST's is), so it must not reach the server. */
export const MCP_BODY_OFF_POST = `@(context.Request.Method != "POST" && context.Request.Body != null && context.Request.Body.As<string>(preserveContent: true).Length > 0)`;
/**
 * A POST that is not one JSON-RPC message the checks can read: no body, not a JSON object, a `method`
 * that is not a non-empty string, `params` that are not an object or array (JSON-RPC 2.0: a structured
 * value, or absent), a `tools/call` whose `params` are not an object with a string `name`, or — with no
 * `method` (a client's response to a server request) — any member besides `jsonrpc`, `id`, `result` and
 * `error`. Refused, since a server whose JSON decoder matches keys ignoring case (Go's encoding/json)
 * would run `{"Method":"tools/call", …}` — a message the checks read as a response; and reading the
 * tool's name out of params that are a string or null would fail the expression (a 500, not a refusal).
 */
export const MCP_MESSAGE_INVALID = `@{ if (context.Request.Method != "POST") { return false; } if (context.Request.Body == null || !context.Request.Body.As<string>(preserveContent: true).TrimStart().StartsWith("{")) { return true; } var o = context.Request.Body.As<JObject>(preserveContent: true); var m = o["method"]; if (m != null) { if (m.Type != JTokenType.String || m.ToString() == "") { return true; } var p = o["params"]; if (p != null && p.Type != JTokenType.Object && p.Type != JTokenType.Array) { return true; } if (m.ToString() != "tools/call") { return false; } if (p == null || p.Type != JTokenType.Object) { return true; } var n = p["name"]; return n == null || n.Type != JTokenType.String; } return o.Count != (o.ContainsKey("jsonrpc") ? 1 : 0) + (o.ContainsKey("id") ? 1 : 0) + (o.ContainsKey("result") ? 1 : 0) + (o.ContainsKey("error") ? 1 : 0); }`;
/** The JSON-RPC method of a POST ("" otherwise). */
export const MCP_METHOD = `@(context.Request.Method == "POST" ? (context.Request.Body?.As<JObject>(preserveContent: true)?["method"]?.ToString() ?? "") : "")`;
/** The tool a tools/call names ("" for anything else). */
export const MCP_TOOL = `@((string)${v(VAR.mcpMethod)} == "tools/call" ? (context.Request.Body?.As<JObject>(preserveContent: true)?["params"]?["name"]?.ToString() ?? "") : "")`;
const MCP_IS_CALL = `(string)${v(VAR.mcpMethod)} == "tools/call"`;
/** A tools/call (increments the per-tool counters). */
export const MCP_CALL = `@(${MCP_IS_CALL})`;
type McpList = typeof VAR.mcpAllowed | typeof VAR.mcpTierTools | typeof VAR.mcpToolbox | typeof VAR.mcpListed;
/** A tools/call of a tool outside a '|'-separated list (a set-variable literal: tool names never enter an expression); `onlyIfSet`: no list, no check. */
export const mcpCallOutside = (list: McpList, onlyIfSet = false) =>
  `@(${onlyIfSet ? `context.Variables.ContainsKey("${list}") && ` : ""}${MCP_IS_CALL} && ((string)${v(VAR.mcpTool)} == "" || Array.IndexOf(((string)${v(list)}).Split('|'), (string)${v(VAR.mcpTool)}) < 0))`;
/** A tools/call of exactly this tool (per-tool rate limits); the name is a validated tool name ([A-Za-z0-9_.-]). */
export const mcpCallOf = (tool: string) => {
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(tool)) throw new Error(`not a tool name: ${JSON.stringify(tool)}`);
  return `@(${MCP_IS_CALL} && (string)${v(VAR.mcpTool)} == "${tool}")`;
};
/** A request for a method beyond the lifecycle and tool methods (resources, prompts, completions, …) where only those may pass. */
export const MCP_BEYOND_TOOLS = `@(context.Variables.ContainsKey("${VAR.mcpToolsOnly}") && (string)${v(VAR.mcpMethod)} != "" && !((string)${v(VAR.mcpMethod)}).StartsWith("notifications/") && Array.IndexOf("initialize|ping|tools/list|tools/call".Split('|'), (string)${v(VAR.mcpMethod)}) < 0)`;
/**
 * The 2026-07-28 transport's routing headers say something other than the message checked: `Mcp-Method`
 * is not the body's method (a response carries none), or a tools/call's `Mcp-Name` is not its tool. A
 * server may route by the header, so a mismatch is refused rather than forwarded.
 */
export const MCP_HEADERS_DIFFER = `@(context.Request.Headers.GetValueOrDefault("Mcp-Method", (string)${v(VAR.mcpMethod)}) != (string)${v(VAR.mcpMethod)} || ((string)${v(VAR.mcpMethod)} == "tools/call" && context.Request.Headers.GetValueOrDefault("Mcp-Name", (string)${v(VAR.mcpTool)}) != (string)${v(VAR.mcpTool)}))`;
/** A POST: its message (checked valid) is rebuilt before it is forwarded. */
export const MCP_IS_POST = `@(context.Request.Method == "POST")`;
/**
 * The message rebuilt from exactly the fields the checks read (a tools/call's `arguments`, `_meta` and
 * `task` besides; a response's `jsonrpc`, `id`, `result`, `error`), so a server whose JSON decoder matches
 * keys ignoring case (Go's encoding/json), or takes the first of two equal keys, cannot act on a
 * `"Method"`, a second `"Name"` or a duplicate the checks never saw.
 */
export const MCP_MESSAGE_REBUILT = `@{ var o = context.Request.Body.As<JObject>(preserveContent: true); var m = new JObject(); if ((string)${v(VAR.mcpMethod)} == "") { if (o["jsonrpc"] != null) { m["jsonrpc"] = o["jsonrpc"]; } if (o["id"] != null) { m["id"] = o["id"]; } if (o["result"] != null) { m["result"] = o["result"]; } if (o["error"] != null) { m["error"] = o["error"]; } return m.ToString(Newtonsoft.Json.Formatting.None); } m["jsonrpc"] = o["jsonrpc"]; if (o["id"] != null) { m["id"] = o["id"]; } m["method"] = o["method"]; if ((string)${v(VAR.mcpMethod)} == "tools/call") { var p = new JObject(); p["name"] = o["params"]?["name"]; if (o["params"]?["arguments"] != null) { p["arguments"] = o["params"]["arguments"]; } if (o["params"]?["_meta"] != null) { p["_meta"] = o["params"]["_meta"]; } if (o["params"]?["task"] != null) { p["task"] = o["params"]["task"]; } m["params"] = p; } if ((string)${v(VAR.mcpMethod)} != "tools/call" && o["params"] != null) { m["params"] = o["params"]; } return m.ToString(Newtonsoft.Json.Formatting.None); }`;
/** The per-key, per-tool counter of an MCP API, in the scope its policy set (a server's budget, whichever API calls it). */
export const MCP_TOOL_COUNTER_KEY = `@("mcp|" + (context.Subscription?.Id ?? "none") + "|" + (string)${v(VAR.mcpLimitScope)} + "|" + (string)${v(VAR.mcpTool)})`;
/**
 * MCP sessions are bound to the key that opened them (the MCP specification's security guidance: bind a
 * session id to the user, never take it as authentication). A pass-through server's `Mcp-Session-Id`
 * reaches the client sealed: `<id>|<MAC>` encrypted with AES (APIM's `byte[].Encrypt("Aes", key, iv)`),
 * the key derived from the key the caller presented (HMAC-SHA256 of the API id, keyed with it) and the MAC
 * an HMAC-SHA256 of `<id>|<API id>` under that key. A request's name is opened the same way: only the
 * holder of that key gets the server's id back. Another key decrypts it to garbage or fails the padding;
 * an altered name fails the MAC; the server's id never reaches a client, so nobody can seal it under a
 * key of their own. No store is needed (APIM's built-in cache is absent on the consumption tier) and
 * nothing to rotate. The IV is a constant: the same session gives the same name on every answer.
 */
const sessionKey = `new HMACSHA256(Encoding.UTF8.GetBytes(context.Subscription?.Key ?? "")).ComputeHash(Encoding.UTF8.GetBytes("aigov-mcp-session|" + context.Api.Id))`;
const SESSION_IV = `Encoding.UTF8.GetBytes("aigov-mcp-sess-1")`;
const sessionMac = (id: string) => `Convert.ToBase64String(new HMACSHA256(k).ComputeHash(Encoding.UTF8.GetBytes(${id} + "|" + context.Api.Id)))`;
/**
 * The request's session for the server: "" when it names none, the server's id when the name opens under
 * the caller's key with a MAC that holds, " " (never a session id: those are visible ASCII) otherwise. A
 * name that is not base64, or fails the padding, fails the expression: on-error answers it as an unknown
 * session (VAR.mcpSessionState brackets the reading).
 */
export const MCP_SESSION_OF_REQUEST = `@{ var s = context.Request.Headers.GetValueOrDefault("Mcp-Session-Id", ""); if (s == "") { return ""; } var k = ${sessionKey}; var p = Encoding.UTF8.GetString(Convert.FromBase64String(s).Decrypt("Aes", k, ${SESSION_IV})); var i = p.LastIndexOf("|"); if (i < 1) { return " "; } var id = p.Substring(0, i); return p.Substring(i + 1) == ${sessionMac("id")} ? id : " "; }`;
/** The request names a session this key did not open (another key's, or a forged or bare id). */
export const MCP_SESSION_FOREIGN = `@((string)${v(VAR.mcpSession)} == " ")`;
/** The request names a session of this key: the server's id is forwarded. */
export const MCP_SESSION_NAMED = `@((string)${v(VAR.mcpSession)} != "")`;
export const MCP_SESSION_UPSTREAM = `@((string)${v(VAR.mcpSession)})`;
/** The session's name failed to decrypt while it was read (VAR.mcpSessionState still "reading"): an unknown session. */
export const MCP_SESSION_UNREADABLE = `@(context.Variables.GetValueOrDefault<string>("${VAR.mcpSessionState}", "") == "reading")`;
/** In outbound: the server answered with a session id (initialize's answer, or any answer that repeats it). */
export const MCP_RESPONSE_SESSION = `@(context.Response.Headers.GetValueOrDefault("Mcp-Session-Id", "") != "")`;
/** In outbound: the server's session id sealed for the caller's key, as its holder alone can send it back. */
export const MCP_SESSION_SEALED = `@{ var id = context.Response.Headers.GetValueOrDefault("Mcp-Session-Id", ""); var k = ${sessionKey}; return Convert.ToBase64String(Encoding.UTF8.GetBytes(id + "|" + ${sessionMac("id")}).Encrypt("Aes", k, ${SESSION_IV})); }`;
/** REST tools' APIs: the per-key counter of the operation called (one tool of one server, however it is reached). */
export const REST_TOOL_COUNTER_KEY = `@("tool|" + (context.Subscription?.Id ?? "none") + "|" + context.Api.Id + "|" + context.Operation.Id)`;
/**
 * REST tools' APIs: a body in anything but plain JSON — another media type (a form, which Rails, Laravel,
 * Symfony and Express' method-override read `_method` from, however its name is encoded) or compressed
 * (`Content-Encoding`: a backend inflates what the gateway cannot read). Tools take JSON bodies only (the
 * converter skips any other), so nothing a tool sends is refused. The media type alone is read (up to the first
 * `;` or `,`: `x-www-form-urlencoded; charset=json` is a form), and a body without one is refused (Rack reads it as a form).
 */
export const REST_BODY_NOT_PLAIN_JSON = `@{ var e = context.Request.Headers.GetValueOrDefault("Content-Encoding", "").Trim().ToLowerInvariant(); if (e != "" && e != "identity") { return true; } if (context.Request.Body == null) { return false; } var m = context.Request.Headers.GetValueOrDefault("Content-Type", "").ToLowerInvariant().Split(';')[0].Split(',')[0].Trim(); if (m == "") { return context.Request.Body.As<string>(preserveContent: true).Length > 0; } return m != "application/json" && !(m.StartsWith("application/") && m.EndsWith("+json")); }`;
/**
 * REST tools' APIs: a body that begins with a byte order mark. JSON sent over a network must not carry
 * one (RFC 8259 §8.1), tools never send one, and a backend that skips it would read a `_method` the
 * object check below may not see — refused, not parsed. Compared with `==`, which is ordinal: a
 * culture-aware `StartsWith` ignores U+FEFF, so `StartsWith("\uFEFF")` would hold for every body.
 */
export const REST_BODY_BOM = `@{ if (context.Request.Body == null) { return false; } var s = context.Request.Body.As<string>(preserveContent: true).TrimStart(); return s.Length > 0 && s.Substring(0, 1) == "\\uFEFF"; }`;
/**
 * REST tools' APIs: a JSON object body with a top-level `_method` member (escapes decoded: parsed, not
 * searched), which Laravel and Symfony (and Express' method-override reading the body) take as the method.
 */
export const REST_JSON_METHOD_OVERRIDE = `@(context.Request.Body != null && context.Request.Body.As<string>(preserveContent: true).TrimStart().StartsWith("{") && context.Request.Body.As<JObject>(preserveContent: true).ContainsKey("_method"))`;
/**
 * REST tools' APIs: a query parameter a backend reads as `_method` — PHP (Laravel, Symfony) decodes the
 * name, drops leading spaces and reads a leading `.` or `[` as `_`, so `?.method=`, `?%5Fmethod=` and
 * `?+_method=` all name it there. The query as the client sent it, percent-decoded for the characters that
 * spell it, spaces dropped, compared at parameter boundaries (any case: a refusal too many, never one too few).
 * A NUL anywhere is refused: PHP cuts a decoded name at it (`_method%00x` is `_method`).
 */
export const REST_QUERY_METHOD_OVERRIDE = `@{ var q = ("&" + context.Request.OriginalUrl.QueryString.TrimStart('?') + "&").ToLowerInvariant().Replace("+", "").Replace("%20", "").Replace("%5f", "_").Replace("%2e", ".").Replace("%5b", "[").Replace("%6d", "m").Replace("%65", "e").Replace("%74", "t").Replace("%68", "h").Replace("%6f", "o").Replace("%64", "d").Replace("&.", "&_").Replace("&[", "&_"); return q.Contains("%00") || q.Contains("&_method=") || q.Contains("&_method&") || q.Contains("&_method["); }`;
/**
 * REST tools' APIs: a path with a `;`. Servlet containers (Tomcat, Jetty, Undertow: Spring) drop a
 * segment's `;params` before routing, so `/items/admin;x=1` — `/items/{id}` to the gateway — runs
 * `/items/admin` there: another operation than the one checked.
 */
export const REST_PATH_PARAMETERS = `@(context.Request.OriginalUrl.Path.Contains(";"))`;
/** A literal path segment a {@link pathParamShadows} check names (lower case, safe in a C# string). */
const SHADOWED_SEGMENT = /^[a-z0-9_~-][a-z0-9._~-]{0,99}$/;
/** A path parameter's name as ARM template parameters have them. */
const PATH_PARAM = /^[A-Za-z0-9_-]{1,80}$/;
/**
 * REST tools' APIs: the value of path parameter `param` is one of `literals` with an extension (`admin.json`),
 * which Rails (its optional `.:format` suffix) routes to the literal sibling operation (`/items/admin`), not
 * to the parameter's (`/items/{id}`) that the gateway checked. Percent-encoded dots count too.
 */
export const pathParamShadows = (param: string, literals: readonly string[]) => {
  if (!PATH_PARAM.test(param)) throw new Error(`not a path parameter name: ${JSON.stringify(param)}`);
  const bad = literals.find((l) => !SHADOWED_SEGMENT.test(l));
  if (bad !== undefined || literals.length === 0) throw new Error(`not a literal path segment: ${JSON.stringify(bad)}`);
  return `@{ var v = context.Request.MatchedParameters.GetValueOrDefault("${param}", "").ToLowerInvariant(); return ${literals.map((l) => `v.StartsWith("${l}.") || v.StartsWith("${l}%2e")`).join(" || ")}; }`;
};
/** REST tools' APIs: the operation called is this one (an APIM operation id, ^[A-Za-z0-9_-]{1,80}$). */
export const operationIs = (operationId: string) => {
  if (!/^[A-Za-z0-9_-]{1,80}$/.test(operationId)) throw new Error(`not an operation id: ${JSON.stringify(operationId)}`);
  return `@(context.Operation.Id == "${operationId}")`;
};
/** The per-key counter of an agent's API (its callers' calls per minute). */
export const AGENT_CALL_COUNTER_KEY = `@("agent|" + (context.Subscription?.Id ?? "none") + "|" + context.Api.Id)`;
/** Agent APIs: the operation that serves the agent's card (it needs no data class: it sends the agent nothing). */
export const AGENT_CARD_OPERATION = "agent-card";
export const NOT_AGENT_CARD = `@(context.Operation.Id != "${AGENT_CARD_OPERATION}")`;
/**
 * Agent APIs: a request under a well-known path (any case, any encoding of its dot) other than the card
 * operation. The agent's own metadata describes the agent, not the gateway: its card (the v0.2 path
 * `agent.json`, the card path with a trailing slash or in capitals, which the wildcard operation would
 * forward) names the agent's own URLs and would send clients past the gateway.
 */
export const AGENT_WELL_KNOWN = `@(context.Operation.Id != "${AGENT_CARD_OPERATION}" && context.Request.OriginalUrl.Path.ToLowerInvariant().Contains("well-known"))`;
/**
 * Agent APIs: a request path holding an encoded slash, backslash or dot, or a backslash. The gateway
 * forwards such a path as it is, below the agent's service URL; an agent (or a proxy before it) that
 * decodes it sees other segments — `..%2f..%2fother-agent` leaves the service path for a sibling on the
 * same host, past this agent's guardrails. The same characters an agent endpoint may not hold (endpoint.ts).
 */
export const AGENT_PATH_AMBIGUOUS = `@{ var p = context.Request.OriginalUrl.Path.ToLowerInvariant(); return p.Contains("%2f") || p.Contains("%5c") || p.Contains("%2e") || p.Contains("\\\\"); }`;
/**
 * Where the served card's URLs point before the gateway answers (agent-card.ts): a reserved name
 * (RFC 2606 `.invalid`), replaced by the gateway's own URL for the API as the caller addressed it.
 */
export const AGENT_CARD_PLACEHOLDER = "https://gateway.aigov.invalid";
const ORIGINAL = "context.Request.OriginalUrl";
/**
 * The agent's card: the base64 set-variable literal decoded, its placeholder replaced by scheme://host[:port]/<API path>.
 * Azure does not document whether `context.Api.Path` starts with a slash (the ARM `path` has none):
 * leading slashes are trimmed, so either reads the same.
 */
export const AGENT_CARD_BODY = `@(Encoding.UTF8.GetString(Convert.FromBase64String((string)${v(VAR.agentCard)})).Replace("${AGENT_CARD_PLACEHOLDER}", ${ORIGINAL}.Scheme + "://" + ${ORIGINAL}.Host + ((${ORIGINAL}.Scheme == "https" && ${ORIGINAL}.Port == 443) || (${ORIGINAL}.Scheme == "http" && ${ORIGINAL}.Port == 80) ? "" : ":" + ${ORIGINAL}.Port.ToString()) + "/" + context.Api.Path.TrimStart('/')))`;
/** The refusals an MCP API answers with (403, a JSON-RPC error): a stable reason and a message. */
export const MCP_REFUSALS = {
  tool_not_in_scope: "This key may not call this tool.",
  tool_not_in_toolbox: "This toolbox does not hold this tool.",
  method_not_in_scope: "This key may call tools of this server only.",
  tool_not_approved: "This tool is not approved for this project, or its definition changed since it was approved.",
  tool_not_discovered: "This server's last discovery did not list this tool once under this name: it is not served until a discovery does.",
  // 410, not 403: the server (a toolbox: the first of its servers to go) is gone from its sunset on.
  tool_server_sunset: "This server's sunset has passed: it is no longer served.",
  toolbox_sunset: "This toolbox's sunset (the earliest of its servers') has passed: it is no longer served.",
} as const;
/** A JSON-RPC error answering the request's id (null when it has none), with its reason in `data`. */
export const mcpErrorBody = (reason: keyof typeof MCP_REFUSALS) => {
  const tail = JSON.stringify({ code: -32001, message: MCP_REFUSALS[reason], data: { reason } });
  const quoted = tail.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
  return `@("{\\"jsonrpc\\":\\"2.0\\",\\"id\\":" + (context.Request.Body?.As<JObject>(preserveContent: true)?["id"]?.ToString(Newtonsoft.Json.Formatting.None) ?? "null") + ",\\"error\\":${quoted}}")`;
};
/** REST tools' APIs: the operation called is not in a '|'-separated list of operation ids; `onlyIfSet`: no list, no check. */
export const operationOutside = (list: typeof VAR.mcpAllowed | typeof VAR.mcpTierTools, onlyIfSet: boolean) =>
  `@(${onlyIfSet ? `context.Variables.ContainsKey("${list}") && ` : ""}Array.IndexOf(((string)${v(list)}).Split('|'), context.Operation.Id) < 0)`;

/** A tool name compared in a per-tool rate limit's condition: data, folded to `tool` in a shape. */
const TOOL_COMPARISON = new RegExp(`(\\(string\\)context\\.Variables\\["${VAR.mcpTool}"\\] == ")([^"]*)(")`, "g");
/** An operation id compared in a REST tool's rate limit condition: data, folded to `op` in a shape. */
const OPERATION_COMPARISON = /(context\.Operation\.Id == ")([^"]*)(")/g;
/** A {@link pathParamShadows} check's data: the parameter's name and each literal, folded in a shape (the list's length is data too). */
const SHADOW_PARAM = /(MatchedParameters\.GetValueOrDefault\(")([A-Za-z0-9_-]{1,80})(", ""\)\.ToLowerInvariant\(\); return )/g;
const SHADOW_LITERAL = /v\.StartsWith\("([a-z0-9_~-][a-z0-9._~-]{0,99})\."\) \|\| v\.StartsWith\("\1%2e"\)/g;
const MORE_SHADOWS = / \|\| v\.StartsWith\("segment\."\) \|\| v\.StartsWith\("segment%2e"\)(?= \|\| v\.StartsWith\("segment\.|; \})/g;
/** A tier id that stands for any tier in {@link EXPRESSION_SHAPES}. */
const ANY_TIER = "tier";

/** Further comparisons in a {@link tierNotIn} list once their ids are `tier`: a guard over n tiers has the
 * shape of the guard over one (the list length is data, like the number of models). */
const MORE_TIER_COMPARISONS = new RegExp(
  `(?: \\|\\| context\\.Variables\\.GetValueOrDefault<string>\\("${VAR.keyTier}", ""\\) == "${ANY_TIER}")+(?=\\)\\)$)`,
  "g",
);

/** The shape of an expression: key tier ids replaced by `tier` (only ids that match TIER_ID; anything
 * else is left in place, so it does not match a shape), repeated comparisons of a tier guard folded
 * into one, then integers (whole words: not the 8 of UTF8) replaced by `0`. */
export const expressionShape = (expr: string) =>
  expr
    .replace(TOOL_COMPARISON, (whole, pre: string, name: string, post: string) => (/^[A-Za-z0-9_.-]{1,128}$/.test(name) ? `${pre}tool${post}` : whole))
    .replace(OPERATION_COMPARISON, (whole, pre: string, op: string, post: string) => (/^[A-Za-z0-9_-]{1,80}$/.test(op) ? `${pre}op${post}` : whole))
    .replace(SHADOW_PARAM, (_whole, pre: string, _param: string, post: string) => `${pre}param${post}`)
    .replace(SHADOW_LITERAL, 'v.StartsWith("segment.") || v.StartsWith("segment%2e")')
    .replace(MORE_SHADOWS, "")
    .replace(TIER_COMPARISON, (whole, pre: string, id: string, post: string) => (TIER_ID.test(id) ? `${pre}${ANY_TIER}${post}` : whole))
    .replace(MORE_TIER_COMPARISONS, "")
    .replace(/\b[0-9]+\b/g, "0");

/** The key tier ids compared in an expression (empty for expressions that do not compare a tier). */
export const tierIdsIn = (expr: string): string[] => [...expr.matchAll(TIER_COMPARISON)].map((m) => m[2] ?? "");

/** Every expression shape the compiler can emit, with integers replaced by `0`. */
export const EXPRESSION_SHAPES: ReadonlySet<string> = (() => {
  const shapes = [
    PATH_MODEL,
    BODY_MODEL,
    REQUESTED_MODEL,
    MODEL_MISMATCH,
    MODEL_MISSING,
    MODEL_DEPLOYMENT,
    MODEL_RETRIES,
    ROUTE_IS_AZURE,
    AZURE_DEPLOYMENT_PATH,
    V1_PATH,
    BODY_WITH_DEPLOYMENT,
    BUDGET_COUNTER_KEY,
    RETRY_COUNT,
    MODEL_INDEX,
    MODEL_UNKNOWN,
    MODEL_POOL,
    MODEL_GROUP,
    MODEL_NOT_IN_TIER,
    tierNotIn([ANY_TIER]),
    tierNotAmong([ANY_TIER]),
    groupIs(0),
    BACKEND,
    abRoll(0),
    abBelow(0),
    promptTooLarge(0),
    REQUEST_ID,
    sunsetPassed("2000-01-01"),
    sunsetModelIs(0),
    HAS_SUNSET,
    SUNSET,
    HAS_DEPRECATION,
    DEPRECATION,
    API_ID,
    SERVED_OR_KEY_REFUSED,
    IS_PREFLIGHT,
    KEY_PRESENTED,
    NOT_AGENT_CARD,
    AGENT_WELL_KNOWN,
    AGENT_PATH_AMBIGUOUS,
    AGENT_CARD_BODY,
    SUBSCRIPTION_ID,
    MODEL,
    MODEL_CALL,
    RETRY_CONDITION,
    IS_503,
    BACKEND_UNAUTHORIZED,
    REST_BODY_NOT_PLAIN_JSON,
    REST_BODY_BOM,
    REST_JSON_METHOD_OVERRIDE,
    REST_PATH_PARAMETERS,
    REST_QUERY_METHOD_OVERRIDE,
    pathParamShadows("param", ["segment"]),
    BODY_UNREADABLE,
    DATA_CLASS_OUTSIDE,
    DATA_CLASS_PARTITION,
    REQUIRED_HEADER_OUTSIDE,
    MCP_IS_BATCH,
    MCP_BODY_OFF_POST,
    MCP_METHOD,
    MCP_TOOL,
    MCP_CALL,
    MCP_BEYOND_TOOLS,
    MCP_TOOL_COUNTER_KEY,
    REST_TOOL_COUNTER_KEY,
    operationIs("op"),
    AGENT_CALL_COUNTER_KEY,
    MCP_MESSAGE_INVALID,
    MCP_HEADERS_DIFFER,
    MCP_IS_POST,
    MCP_MESSAGE_REBUILT,
    MCP_SESSION_OF_REQUEST,
    MCP_SESSION_FOREIGN,
    MCP_SESSION_NAMED,
    MCP_SESSION_UPSTREAM,
    MCP_SESSION_UNREADABLE,
    MCP_RESPONSE_SESSION,
    MCP_SESSION_SEALED,
    mcpCallOf("tool"),
    ...(Object.keys(MCP_REFUSALS) as (keyof typeof MCP_REFUSALS)[]).map(mcpErrorBody),
    ...([VAR.mcpAllowed, VAR.mcpTierTools, VAR.mcpToolbox, VAR.mcpListed] as const).flatMap((l) => [mcpCallOutside(l), mcpCallOutside(l, true)]),
    ...([VAR.mcpAllowed, VAR.mcpTierTools] as const).flatMap((l) => [operationOutside(l, false), operationOutside(l, true)]),
  ];
  for (const h of ["x-correlation-id", "x-request-id", "x-ms-client-request-id"] as const) shapes.push(correlationEcho(h));
  for (const c of MODEL_CALLS) shapes.push(callIs(c.name));
  for (const kind of ["tpm", "tq", "rpm"] as const)
    for (const per of ["key", "project", "tier"] as const) for (const perModel of [false, true]) shapes.push(counterKey(kind, per, perModel));
  for (const own of [undefined, "cs", "cache"] as const)
    for (const tier of [undefined, ANY_TIER]) if (own !== undefined || tier !== undefined) shapes.push(sharedCondition(own, tier));
  return new Set(shapes.map(expressionShape));
})();
