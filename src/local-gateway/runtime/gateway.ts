/**
 * One request through the gateway: API and operation matching, subscription keys, the policy
 * pipeline over the scopes (global → product → API → operation, `<base/>` placing the parent's
 * statements), the backend call, the answer (buffered or streamed), and the logs.
 *
 * MCP servers run the same pipeline; only what forward-request reaches differs (mcp.ts): a pass-through
 * server's remote server, or the gateway's own server of REST tools, whose calls come back in here as
 * requests to the tools' operations (an internal exchange with a buffered answer).
 */
import { randomUUID } from "node:crypto";
import { type IncomingMessage, type ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { type EvalEnv } from "../expressions/engine.js";
import { type PolicyDocument } from "../policy/load.js";
import { EndPipeline, PolicyError, type CompletedCall, type Run, type RunServices, type Scope, type Section, type Step, type TokenUsage } from "../policy/types.js";
import { type Backends } from "./backends.js";
import { contextObject, type RequestState } from "./context.js";
import { type GatewayLogs, TABLES } from "./logs.js";
import { describeMessage, rewriteEndpointEvent, serveTools, toolRequest, type JsonObject, type ToolAnswer } from "./mcp.js";
import { HeaderBag } from "./message.js";
import { type CorsRule, originAllowed } from "../policy/elements/cors.js";
import { type Outbound, OutboundError, readAll } from "./outbound.js";
import { type LoadedApi, type LoadedOperation, type LoadedSubscription, type LoadedTool, type Snapshot } from "./snapshot.js";
import { estimateTokens, promptText, StreamUsage, usageOf } from "./tokens.js";

/** A request as the pipeline takes it: from a client (handle) or from the gateway itself (a tool's call). */
interface Exchange {
  method: string;
  url: URL;
  headers: HeaderBag;
  ip: string;
  readBody(limit: number): Promise<Buffer>;
}

/** Where the answer goes: the client's response, or a buffer (a tool's call). */
interface Sink {
  head(status: number, reason: string | undefined, headers: Record<string, string[]>): void;
  /** Resolves when the chunk is written or the receiver is gone (never waits on a closed client). */
  write(chunk: Buffer): Promise<void>;
  end(chunk?: Buffer): void;
  /** Runs once the receiver goes away (a client hanging up on a stream), or after the end. */
  onClose(fn: () => void): void;
}

function httpSink(res: ServerResponse): Sink {
  return {
    head: (status, reason, headers) => void res.writeHead(status, reason || undefined, headers),
    write: (chunk) =>
      new Promise((ok) => {
        if (res.destroyed || res.writableEnded || res.write(chunk)) return ok();
        const done = () => {
          res.off("drain", done);
          res.off("close", done);
          ok();
        };
        res.once("drain", done);
        res.once("close", done);
      }),
    end: (chunk) => void res.end(chunk),
    // A client gone before the upstream answered has already closed: stop at once (else an SSE upstream streams on forever).
    onClose: (fn) => (res.destroyed || res.writableEnded ? fn() : void res.once("close", fn)),
  };
}

/** Collects an answer (the gateway's own call to a tool's operation), up to a size. */
class BufferSink implements Sink {
  status = 0;
  private chunks: Buffer[] = [];
  private size = 0;
  tooLarge = false;
  constructor(private readonly limit: number) {}
  head(status: number): void {
    this.status = status;
  }
  private add(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size > this.limit) this.tooLarge = true;
    else this.chunks.push(chunk);
  }
  async write(chunk: Buffer): Promise<void> {
    this.add(chunk);
  }
  end(chunk?: Buffer): void {
    if (chunk) this.add(chunk);
  }
  onClose(): void {}
  body(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Headers of an MCP request that belong to its transport, not to the REST call a tool makes. */
const TRANSPORT_HEADERS = new Set([
  "accept",
  "accept-encoding",
  "connection",
  "content-length",
  "content-type",
  "host",
  "keep-alive",
  "last-event-id",
  "mcp-method",
  "mcp-name",
  "mcp-protocol-version",
  "mcp-session-id",
  "transfer-encoding",
]);

export interface PipelineDeps {
  snapshot: () => Snapshot;
  backends: Backends;
  outbound: Outbound;
  services: Omit<RunServices, "forward" | "backendUrl" | "callBackend">;
  logs: GatewayLogs;
  random: () => number;
  region: string;
  serviceName: string;
  maxRequestBytes: number;
  maxResponseBytes: number;
}

const json = (status: number, message: string): { status: number; reason?: string; headers: Record<string, string>; body: string } => ({
  status,
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ statusCode: status, message }),
});

/** The policy documents in force for a request, outermost (global) first. */
interface ChainLink {
  scope: Scope;
  file: string;
  doc: PolicyDocument | undefined;
}

/** Runs a section over the chain, innermost scope first, `<base/>` running the parent's statements. */
async function runChain(r: Run, chain: readonly ChainLink[], section: Section): Promise<void> {
  r.section = section;
  const runScope = async (i: number): Promise<void> => {
    if (i < 0) return;
    const { doc, scope } = chain[i]!;
    // A scope without a document inherits its parent's statements, as if it held only <base/>.
    if (!doc) return runScope(i - 1);
    const prev = { base: r.base, scope: r.scope };
    r.base = () => runScope(i - 1);
    r.scope = scope;
    try {
      for (const step of doc.sections.get(section) ?? []) await step.run(r);
    } finally {
      r.base = prev.base;
      r.scope = prev.scope;
    }
  };
  await runScope(chain.length - 1);
}

/** The headers of an answer as the client gets them: the framing ones are the gateway's own. */
function answerHeaders(headers: HeaderBag): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(headers.toRecord())) if (!/^(content-length|transfer-encoding|connection|keep-alive)$/i.test(k)) out[k] = v;
  return out;
}

/** A request's run through the pipeline, before any statement ran. */
function newRun(state: RequestState, env: EvalEnv, section: Section, scope: Scope, services: RunServices): Run {
  return { state, env, section, scope, services, backend: {}, onComplete: [], trace: { backendMs: 0, cache: "none", streamed: false }, afterBackend: [], streamChecks: [], base: async () => undefined };
}

/** forward-request is not allowed in on-error (the policy loader refuses it there). */
const NO_FORWARD = (): Promise<void> => Promise.reject(new Error("forward-request does not run in on-error"));

/** The implicit global policy of an instance nobody changed: forward in backend, nothing else. */
const FORWARD: Step = { element: "forward-request", line: 0, run: (r) => r.services.forward(r, { timeoutMs: 300_000 }) };
const DEFAULT_GLOBAL: PolicyDocument = { file: "(default global policy)", sections: new Map<Section, Step[]>([["backend", [FORWARD]]]) };

/**
 * The request's URL as the gateway reads it: percent-encoded unreserved characters (RFC 3986 §2.3:
 * letters, digits, `-_~`) decoded in the path, as .NET's Uri does (RFC 3986 §6.2.2.2 makes them the same
 * URL). Operations are matched, and the backend is called, with that path: `/items/%70urge` is
 * `/items/purge`, never an `{id}` of `/items/{id}` that a backend decoding it would route elsewhere. An
 * encoded `.` is left as it is: decoded inside a segment it could make one a dot segment after parsing
 * (a whole `%2e%2e` segment is one already: the URL parser removes it with its parent).
 */
export function requestUrl(target: string, host: string | undefined): URL {
  const url = new URL(target, `http://${host ?? "localhost"}`);
  const path = url.pathname.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9\-_~]/.test(c) ? c : escape;
  });
  if (path !== url.pathname) url.pathname = path;
  return url;
}

export class Pipeline {
  constructor(private readonly deps: PipelineDeps) {}

  handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return this.run(
      {
        method: (req.method ?? "GET").toUpperCase(),
        url: requestUrl(req.url ?? "/", req.headers.host),
        headers: HeaderBag.fromIncoming(req.headers),
        ip: req.socket.remoteAddress ?? "",
        readBody: (limit) => readAll(req, limit),
      },
      httpSink(res),
    );
  }

  private async run(ex: Exchange, sink: Sink): Promise<void> {
    const started = performance.now();
    const d = this.deps;
    const snap = d.snapshot();
    const url = ex.url;
    const method = ex.method;
    const requestId = randomUUID();
    const record = {
      TimeGenerated: new Date(d.services.now()).toISOString(),
      CorrelationId: requestId,
      Region: d.region,
      Method: method,
      Url: url.pathname,
      ApiId: "",
      OperationId: "",
      ProductId: "",
      ApimSubscriptionId: "",
      BackendId: "",
      BackendUrl: "",
      BackendMethod: "",
      ResponseCode: 0,
      BackendResponseCode: 0,
      IsRequestSuccess: false,
      TotalTime: 0,
      BackendTime: 0,
      Cache: "none" as "hit" | "miss" | "none",
      CallerIpAddress: ex.ip,
      LastErrorSource: "",
      LastErrorReason: "",
      LastErrorMessage: "",
      LastErrorSection: "",
      LastErrorScope: "",
      RequestSize: 0,
      ResponseSize: 0,
    };
    // An MCP server's requests are also described in the MCP log (once the body is read).
    let mcpLog: (() => void) | undefined;
    const finish = (status: number, bytes: number) => {
      record.ResponseCode = status;
      record.IsRequestSuccess = status >= 200 && status < 400;
      record.ResponseSize = bytes;
      record.TotalTime = Math.round(performance.now() - started);
      d.logs.write(TABLES.gateway, record);
      mcpLog?.();
    };
    const refuse = (spec: { status: number; headers: Record<string, string>; body: string }, reason: string, source: string) => {
      record.LastErrorReason = reason;
      record.LastErrorSource = source;
      record.LastErrorMessage = (JSON.parse(spec.body) as { message: string }).message;
      sink.head(spec.status, undefined, Object.fromEntries(Object.entries(spec.headers).map(([k, v]) => [k, [v]])));
      sink.end(Buffer.from(spec.body));
      finish(spec.status, Buffer.byteLength(spec.body));
    };
    /**
     * APIM's predefined errors of its built-in steps — no API or operation matches (OperationNotFound), a
     * missing or invalid key (SubscriptionKeyNotFound, SubscriptionKeyInvalid) — jump to on-error as a
     * policy's failure does, with context.LastError set and the scopes in force: the global policy alone
     * when no API matches, the API's (and its operation's) otherwise; never a product's, since no valid key
     * names one. Without an on-error statement in those scopes the answer is APIM's own. A document that
     * did not load is left out (APIM would have refused to store it), so the global answer still holds.
     */
    const predefined = async (spec: ReturnType<typeof json>, reason: string, source: string, api?: LoadedApi, op?: LoadedOperation): Promise<void> => {
      const chain: ChainLink[] = [
        { scope: "global" as const, file: "policies/policy.xml", doc: snap.global ?? DEFAULT_GLOBAL },
        ...(api ? [{ scope: "api" as const, file: `apis/${api.id}/policies/policy.xml`, doc: api.policy }] : []),
        ...(api && op ? [{ scope: "operation" as const, file: `apis/${api.id}/operations/${op.id}/policies/policy.xml`, doc: op.policy }] : []),
      ].filter((c) => !snap.broken.has(c.file));
      if (!chain.some((c) => (c.doc?.sections.get("on-error")?.length ?? 0) > 0)) return refuse(spec, reason, source);
      // context.LastError.Message as APIM documents it for the step (the body's text is the default answer's).
      const message = reason === "OperationNotFound" ? "Unable to match incoming request to an operation." : (JSON.parse(spec.body) as { message: string }).message;
      const state: RequestState = {
        requestId,
        ip: record.CallerIpAddress,
        method,
        originalUrl: url,
        path: api?.path ? url.pathname.slice(api.path.length + 1) || "/" : url.pathname,
        query: new URLSearchParams(url.search),
        headers: ex.headers,
        body: undefined,
        bodyConsumed: false,
        matched: {},
        ...(api ? { api: { id: api.id, name: api.name, path: api.path } } : {}),
        ...(op ? { operation: { id: op.id, name: op.name, method: op.method, urlTemplate: op.urlTemplate } } : {}),
        variables: new Map(),
        response: { status: spec.status, reason: "", headers: new HeaderBag(Object.entries(spec.headers)), body: Buffer.from(spec.body) },
        lastError: { source, reason, message, scope: "", section: "" },
        deployment: { region: d.region, serviceName: d.serviceName },
      };
      const services = { ...d.services, backendUrl: (id: string) => d.backends.get(id)?.url, forward: NO_FORWARD, callBackend: this.callBackend.bind(this) };
      const r = newRun(state, { context: contextObject(state), random: d.random, now: d.services.now }, "on-error", "global", services);
      try {
        await runChain(r, chain, "on-error");
      } catch (err) {
        // An error inside on-error ends the request with what is set.
        if (!(err instanceof EndPipeline) && !(err instanceof PolicyError)) console.error(`local gateway: on-error failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      record.LastErrorReason = reason;
      record.LastErrorSource = source;
      record.LastErrorMessage = message;
      const response = state.response!;
      const bytes = response.body ?? Buffer.alloc(0);
      sink.head(response.status, response.reason || undefined, { ...answerHeaders(response.headers), "content-length": [String(bytes.length)] });
      sink.end(bytes);
      finish(response.status, bytes.length);
    };

    const api = snap.apis.find((a) => a.path === "" || url.pathname === `/${a.path}` || url.pathname.startsWith(`/${a.path}/`));
    if (!api) return predefined(json(404, "Resource not found"), "OperationNotFound", "configuration");
    record.ApiId = api.id;
    const opPath = api.path ? url.pathname.slice(api.path.length + 1) || "/" : url.pathname;
    // A CORS preflight to an API without an OPTIONS operation is the cors policies' alone (docs/gateway.md).
    if (method === "OPTIONS" && ex.headers.has("origin") && ex.headers.has("access-control-request-method") && !api.operations.some((o) => o.method === "OPTIONS" && o.match(opPath))) {
      const answer = preflight(snap, api, opPath, ex.headers);
      if (answer) {
        record.OperationId = answer.operationId;
        // Header names as every other answer of the gateway writes them (a preflight must not differ by their case).
        sink.head(200, undefined, Object.fromEntries(Object.entries({ ...answer.headers, "content-length": "0" }).map(([k, v]) => [k, [v]])));
        sink.end();
        return finish(200, 0);
      }
    }
    let op: LoadedApi["operations"][number] | undefined;
    let matched: Record<string, string> = {};
    for (const o of api.operations) {
      if (o.method !== method) continue;
      const m = o.match(opPath);
      if (m) {
        op = o;
        matched = m;
        break;
      }
    }
    // APIM answers 404 for a path it does not serve and for a method the path does not accept alike.
    if (!op) return predefined(json(404, "Resource not found"), "OperationNotFound", "configuration", api);
    record.OperationId = op.id;

    const headers = ex.headers;
    // The body is read (and, for an MCP server, parsed for the log) only once the key is known good: APIM
    // checks the key first, and a body read before it would tell served paths from unserved ones (ADR 023).
    let body: Buffer | undefined;
    // Filled in as the request goes; written with the gateway log record.
    const mcp = { toolCount: 0, operation: "", error: "", errorType: "" };
    if (api.mcp) {
      const mcpApi = api.mcp;
      mcpLog = () => {
        const m = describeMessage(method === "POST" ? body : undefined);
        d.logs.write(TABLES.mcp, {
          TimeGenerated: record.TimeGenerated,
          CorrelationId: requestId,
          Region: d.region,
          ApiType: mcpApi.type === "passThrough" ? "passthrough" : "rest",
          TransportType: mcpApi.type === "passThrough" ? mcpApi.transportType : "streamable",
          McpServerEndpoint: url.pathname,
          Method: m.method,
          ToolName: m.tool,
          ToolCount: mcp.toolCount,
          SessionId: headers.joined("mcp-session-id") ?? "",
          ProtocolVersion: headers.joined("mcp-protocol-version") ?? m.protocolVersion,
          ClientName: m.clientName,
          ClientVersion: m.clientVersion,
          ServerName: mcpApi.type === "restTools" ? api.id : "",
          ServerVersion: "",
          AuthenticationMethod: api.subscriptionRequired ? "api_key" : "none",
          OperationName: mcp.operation || (op?.id ?? ""),
          Error: mcp.error || record.LastErrorMessage,
          ErrorType: mcp.errorType || record.LastErrorReason,
        });
      };
    }
    let subscription: LoadedSubscription | undefined;
    if (api.subscriptionRequired) {
      const key = headers.get(api.keyHeader)?.[0] ?? url.searchParams.get(api.keyQuery) ?? undefined;
      const challenge = { "WWW-Authenticate": `AzureApiManagementKey realm="${url.origin}/${api.path}",name="${api.keyHeader}",type="header"` };
      if (!key) {
        const r = json(401, "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.");
        return predefined({ ...r, headers: { ...r.headers, ...challenge } }, "SubscriptionKeyNotFound", "authorization", api, op);
      }
      subscription = snap.subscriptionsByKey.get(key);
      if (!subscription || subscription.state !== "active" || !covers(subscription, api, snap)) {
        const r = json(401, "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.");
        return predefined({ ...r, headers: { ...r.headers, ...challenge } }, "SubscriptionKeyInvalid", "authorization", api, op);
      }
      record.ApimSubscriptionId = subscription.id;
    }

    try {
      body = await ex.readBody(d.maxRequestBytes);
    } catch {
      // What is left of the body is never read: the connection cannot carry another request.
      const r = json(413, `The request body exceeds the ${d.maxRequestBytes} bytes the gateway buffers.`);
      return refuse({ ...r, headers: { ...r.headers, Connection: "close" } }, "RequestEntityTooLarge", "configuration");
    }
    record.RequestSize = body.length;
    const product = subscription?.scope.type === "product" ? snap.products.get(subscription.scope.id) : undefined;
    record.ProductId = product?.id ?? "";

    const chain: ChainLink[] = [
      { scope: "global", file: "policies/policy.xml", doc: snap.global ?? DEFAULT_GLOBAL },
      ...(product ? [{ scope: "product" as const, file: `products/${product.id}/policies/policy.xml`, doc: product.policy }] : []),
      { scope: "api", file: `apis/${api.id}/policies/policy.xml`, doc: api.policy },
      { scope: "operation", file: `apis/${api.id}/operations/${op.id}/policies/policy.xml`, doc: op.policy },
    ];
    const broken = [...api.issues, ...chain.flatMap((c) => snap.broken.get(c.file) ?? [])];
    if (broken.length) {
      const first = broken[0]!;
      return refuse(json(500, `The local gateway could not load ${first.file} (line ${first.line}): ${first.message}`), "PolicyLoadFailure", "configuration");
    }

    const state: RequestState = {
      requestId,
      ip: record.CallerIpAddress,
      method,
      originalUrl: url,
      // A pass-through MCP endpoint's path is the remote server's (its mcpProperties endpoint).
      path: op.mcp?.upstreamPath ?? opPath,
      query: new URLSearchParams(url.search),
      headers,
      body,
      bodyConsumed: false,
      matched,
      api: { id: api.id, name: api.name, path: api.path },
      operation: { id: op.id, name: op.name, method: op.method, urlTemplate: op.urlTemplate },
      ...(product ? { product: { id: product.id, name: product.name } } : {}),
      ...(subscription ? { subscription: { id: subscription.id, name: subscription.name, key: headers.get(api.keyHeader)?.[0] ?? url.searchParams.get(api.keyQuery) ?? "", primaryKey: subscription.primaryKey, secondaryKey: subscription.secondaryKey } } : {}),
      variables: new Map(),
      response: undefined,
      lastError: undefined,
      deployment: { region: d.region, serviceName: d.serviceName },
      ...(api.mcp ? { mcp: true } : {}),
    };
    const env: EvalEnv = { context: contextObject(state), random: d.random, now: d.services.now };
    const target = { api, op, ex, log: mcp };
    const r = newRun(state, env, "inbound", "operation", this.services(target));
    const promptTokens = estimateTokens(promptText(parseJson(body)));

    const runSection = (section: Section) => runChain(r, chain, section);

    try {
      await runSection("inbound");
      await runSection("backend");
      for (const h of r.afterBackend) await h(r);
      await runSection("outbound");
    } catch (err) {
      if (!(err instanceof EndPipeline)) await this.onError(err, r, runSection);
    }

    record.BackendId = r.trace.backendId ?? "";
    record.BackendUrl = r.trace.backendUrl ?? "";
    record.BackendMethod = r.trace.backendId ? method : "";
    record.BackendResponseCode = r.trace.backendStatus ?? 0;
    record.BackendTime = Math.round(r.trace.backendMs);
    record.Cache = r.trace.cache;
    if (state.lastError) {
      record.LastErrorSource = state.lastError.source;
      record.LastErrorReason = state.lastError.reason;
      record.LastErrorMessage = state.lastError.message;
      record.LastErrorSection = state.lastError.section;
      record.LastErrorScope = state.lastError.scope;
    }

    const response = state.response ?? { status: 200, reason: "OK", headers: new HeaderBag(), body: undefined };
    const out = answerHeaders(response.headers);
    for (const [k, v] of Object.entries(state.cors?.headers ?? {})) out[k] = [v];
    // Token usage is the LLM policies' business; an MCP server's answers carry none.
    const llm = !api.mcp;
    const complete = async (usage: TokenUsage | undefined, model: string | undefined) => {
      const call: CompletedCall = { status: response.status, usage, streamed: r.trace.streamed, ...(model ? { model } : {}) };
      for (const f of r.onComplete) await f(call);
      if (usage && r.trace.backendId) {
        const req = parseJson(body) as { model?: unknown } | undefined;
        d.logs.write(TABLES.llm, {
          TimeGenerated: record.TimeGenerated,
          CorrelationId: requestId,
          Region: d.region,
          OperationName: op.id,
          ApiVersion: url.searchParams.get("api-version") ?? "",
          DeploymentName: matched["deployment-id"] ?? (typeof req?.model === "string" ? req.model : ""),
          ModelName: model ?? "",
          PromptTokens: usage.promptTokens,
          CompletionTokens: usage.completionTokens,
          TotalTokens: usage.totalTokens,
          IsStreamCompletion: r.trace.streamed,
          SequenceNumber: 0,
        });
      }
    };

    if (response.stream) {
      sink.head(response.status, response.reason || undefined, out);
      // A client that hangs up ends the backend's stream too (an MCP server's GET stream never ends by itself).
      const cancel = response.cancel;
      if (cancel) sink.onClose(cancel);
      const watch = new StreamUsage();
      let sent = 0;
      let checkedAt = 0;
      try {
        for await (const chunk of response.stream) {
          watch.push(chunk);
          const text = watch.completionText();
          let stop = false;
          for (const c of r.streamChecks) {
            if (text.length - checkedAt >= c.windowSize) {
              if (!(await c.check(text.slice(checkedAt)))) stop = true;
            }
          }
          if (r.streamChecks.length && text.length - checkedAt >= Math.min(...r.streamChecks.map((c) => c.windowSize))) checkedAt = text.length;
          if (stop) break;
          sent += chunk.length;
          await sink.write(chunk);
        }
      } catch {
        // The backend's stream broke off (or the client left): the client gets what arrived.
      }
      sink.end();
      // The LLM record before the request's: a log reader that sees the request sees its tokens.
      await complete(llm ? watch.result(promptTokens) : undefined, watch.model);
      finish(response.status, sent);
      return;
    }

    const bytes = response.body ?? Buffer.alloc(0);
    sink.head(response.status, response.reason || undefined, { ...out, "content-length": [String(bytes.length)] });
    sink.end(bytes);
    const answer = llm ? (parseJson(bytes) as { model?: unknown } | undefined) : undefined;
    await complete(llm ? r.usage : undefined, typeof answer?.model === "string" ? answer.model : undefined);
    finish(response.status, bytes.length);
  }

  /** A failure jumps to on-error with context.LastError; the response is the policy's, else 500. */
  private async onError(err: unknown, r: Run, runSection: (s: Section) => Promise<void>): Promise<void> {
    const e =
      err instanceof PolicyError
        ? err
        : new PolicyError("gateway", "InternalError", err instanceof Error ? err.message : String(err), json(500, "Internal server error"));
    if (!(err instanceof PolicyError)) console.error(`local gateway: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    r.state.lastError = { source: e.source, reason: e.reason, message: e.message, scope: r.scope, section: r.section };
    const spec = e.response ?? json(500, "Internal server error");
    r.state.response = { status: spec.status, reason: spec.reason ?? "", headers: new HeaderBag(Object.entries(spec.headers ?? {})), body: spec.body === undefined ? undefined : Buffer.from(spec.body) };
    try {
      await runSection("on-error");
    } catch (inner) {
      if (inner instanceof EndPipeline) return;
      // An error inside on-error ends the request with what is set.
      if (!(inner instanceof PolicyError)) console.error(`local gateway: on-error failed: ${inner instanceof Error ? inner.message : String(inner)}`);
    }
  }

  private services(t: Target): RunServices {
    const d = this.deps;
    return {
      ...d.services,
      backendUrl: (id) => d.backends.get(id)?.url ?? (d.backends.get(id) ? `pool:${id}` : undefined),
      forward: (r, opts) => (t.api.mcp?.type === "restTools" ? this.serveTools(r, t, t.api.mcp.tools) : this.forward(r, opts.timeoutMs, t)),
      callBackend: (id, path, bodyJson, headers) => this.callBackend(id, path, bodyJson, headers),
    };
  }

  /**
   * An MCP server made of tools answers itself (mcp.ts serveTools); a `tools/call` is sent as a request to
   * the tool's operation, through that operation's API: the caller's key (as that API's key header),
   * that API's subscription check and policies, its backend. So a tool works for a key exactly when the
   * key may call the operation itself (docs/gateway.md).
   */
  private async serveTools(r: Run, t: Target, tools: LoadedTool[]): Promise<void> {
    const t0 = performance.now();
    const answer = await serveTools({ method: r.state.method, headers: r.state.headers, body: r.state.body }, { name: t.api.id, title: t.api.name, tools }, async (name, args) => {
      const tool = tools.find((x) => x.name === name)!;
      t.log.operation = tool.operation.id;
      return this.callTool(r, t, tool, args);
    });
    r.trace.backendMs += performance.now() - t0;
    t.log.toolCount = answer.log.toolCount;
    t.log.error = answer.log.error;
    t.log.errorType = answer.log.errorType;
    r.state.response = { status: answer.status, reason: "", headers: new HeaderBag(Object.entries(answer.headers)), body: Buffer.from(answer.body) };
  }

  private async callTool(r: Run, t: Target, tool: LoadedTool, args: JsonObject): Promise<ToolAnswer | { error: string }> {
    const built = toolRequest(tool.operation.shape, args);
    if ("error" in built) return built;
    const target = tool.api;
    const url = new URL(`${target.path ? `/${target.path}` : ""}${built.path}`, t.ex.url.origin);
    url.search = built.query.toString();
    const headers = new HeaderBag();
    const ownKey = t.api.keyHeader.toLowerCase();
    for (const name of r.state.headers.names()) {
      if (!TRANSPORT_HEADERS.has(name.toLowerCase()) && name.toLowerCase() !== ownKey) headers.set(name, r.state.headers.get(name) ?? []);
    }
    for (const [k, v] of Object.entries(built.headers)) headers.set(k, [v]);
    headers.set("Accept", ["application/json"]);
    if (built.contentType) headers.set("Content-Type", [built.contentType]);
    if (r.state.subscription) headers.set(target.keyHeader, [r.state.subscription.key]);
    const sink = new BufferSink(this.deps.maxResponseBytes);
    await this.run({ method: built.method, url, headers, ip: t.ex.ip, readBody: async () => built.body ?? Buffer.alloc(0) }, sink);
    r.trace.backendUrl = url.href;
    r.trace.backendStatus = sink.status;
    if (sink.tooLarge) return { error: `the operation's answer exceeds ${this.deps.maxResponseBytes} bytes` };
    return { status: sink.status, body: sink.body() };
  }

  private async forward(r: Run, timeoutMs: number, t: Target): Promise<void> {
    const d = this.deps;
    const mcp = t.api.mcp?.type === "passThrough" ? t.api.mcp : undefined;
    let base: string;
    let backendId: string | undefined;
    let extra: Record<string, string[]> = {};
    if (r.backend.id) {
      const picked = d.backends.pick(r.backend.id);
      if (!picked?.url) throw new PolicyError("forward-request", "BackendUnavailable", `backend '${r.backend.id}' is unavailable (circuit breaker open)`, json(503, "Service Unavailable"));
      backendId = picked.id;
      base = picked.url;
      extra = { ...(picked.headers ?? {}) };
      if (picked.managedIdentity) extra.Authorization = [`Bearer ${d.services.managedIdentityToken(picked.managedIdentity.resource, picked.managedIdentity.clientId)}`];
    } else if (r.backend.baseUrl) {
      base = r.backend.baseUrl;
    } else if (mcp ?? t.api.serviceUrl) {
      // No policy chose a backend: the API's service URL (a pass-through MCP server's remote server).
      base = mcp?.serviceUrl ?? t.api.serviceUrl!;
    } else {
      throw new PolicyError("forward-request", "BackendNotSet", "no backend is set for the request (set-backend-service)", json(500, "Internal server error"));
    }
    const query = new URLSearchParams(r.state.query);
    const headers = r.state.headers.toRecord();
    if (mcp) {
      // The gateway's key stays at the gateway: a remote MCP server is another party (an HTTP API's
      // backend gets what the policy leaves, as in APIM).
      query.delete(t.api.keyQuery);
      for (const k of Object.keys(headers)) if (k.toLowerCase() === t.api.keyHeader.toLowerCase()) delete headers[k];
    }
    const q = query.toString();
    const target = new URL(`${base.replace(/\/+$/, "")}${r.state.path}${q ? `?${q}` : ""}`);
    for (const [k, v] of Object.entries(extra)) {
      for (const existing of Object.keys(headers)) if (existing.toLowerCase() === k.toLowerCase()) delete headers[existing];
      headers[k] = v;
    }
    r.trace.backendId = backendId ?? "";
    r.trace.backendUrl = target.href;
    const t0 = performance.now();
    let res;
    try {
      const body = r.state.method === "GET" || r.state.method === "HEAD" ? undefined : (r.state.body ?? Buffer.alloc(0));
      res = await d.outbound.send(target, r.state.method, headers, body, timeoutMs);
    } catch (err) {
      r.trace.backendMs += performance.now() - t0;
      if (backendId) d.backends.record(backendId, { connectionFailure: true });
      const timeout = err instanceof OutboundError && err.timeout;
      throw new PolicyError("forward-request", timeout ? "Timeout" : "BackendConnectionFailure", err instanceof Error ? err.message : String(err), json(timeout ? 504 : 500, timeout ? "Gateway Timeout" : "Internal server error"));
    }
    r.trace.backendStatus = res.status;
    const retryAfter = Number(res.headers["Retry-After"]?.[0] ?? res.headers["retry-after"]?.[0]);
    if (backendId) d.backends.record(backendId, { status: res.status, ...(Number.isFinite(retryAfter) ? { retryAfterSeconds: retryAfter } : {}) });
    const hdrs = new HeaderBag(Object.entries(res.headers));
    const type = hdrs.joined("content-type") ?? "";
    if (type.startsWith("text/event-stream") && res.status < 300) {
      // The SSE transport's stream tells the client where to post: back through the gateway.
      const stream = t.op.mcp?.endpoint === "sse" ? rewriteEndpointEvent(res.body, `${t.api.path ? `/${t.api.path}` : ""}/messages`) : res.body;
      r.state.response = { status: res.status, reason: res.body.statusMessage ?? "", headers: hdrs, body: undefined, stream, cancel: () => res.body.destroy() };
      r.trace.streamed = true;
      r.trace.backendMs += performance.now() - t0;
      return;
    }
    const bytes = await readAll(res.body, d.maxResponseBytes);
    r.trace.backendMs += performance.now() - t0;
    r.state.response = { status: res.status, reason: res.body.statusMessage ?? "", headers: hdrs, body: bytes };
    const usage = type.includes("json") ? usageOf(parseJson(bytes)) : undefined;
    if (usage) r.usage = usage;
    else delete r.usage;
  }

  /** A policy's own call to a backend (Content Safety, embeddings): backend URL + path, its credentials. */
  private async callBackend(id: string, path: string, bodyJson: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown }> {
    const d = this.deps;
    const b = d.backends.get(id);
    if (!b?.url) throw new PolicyError("backend", "BackendNotFound", `backend '${id}' does not exist or is not a single backend`);
    const h: Record<string, string[]> = { "Content-Type": ["application/json"], ...Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])), ...(b.headers ?? {}) };
    if (b.managedIdentity) h.Authorization = [`Bearer ${d.services.managedIdentityToken(b.managedIdentity.resource, b.managedIdentity.clientId)}`];
    try {
      const res = await d.outbound.send(new URL(`${b.url.replace(/\/+$/, "")}${path}`), "POST", h, Buffer.from(JSON.stringify(bodyJson)), 30_000);
      const bytes = await readAll(res.body, d.maxResponseBytes);
      return { status: res.status, json: parseJson(bytes) };
    } catch (err) {
      if (err instanceof PolicyError) throw err;
      throw new PolicyError("backend", "BackendConnectionFailure", `backend '${id}': ${err instanceof Error ? err.message : String(err)}`, json(500, "Internal server error"));
    }
  }
}

/** What a request is for: forward-request needs it (the API's service URL, an MCP server's kind). */
interface Target {
  api: LoadedApi;
  op: LoadedOperation;
  ex: Exchange;
  /** What the MCP log records beyond the request itself. */
  log: { toolCount: number; operation: string; error: string; errorType: string };
}

function covers(sub: LoadedSubscription, api: LoadedApi, snap: Snapshot): boolean {
  if (sub.scope.type === "all") return true;
  if (sub.scope.type === "api") return sub.scope.id === api.id;
  return snap.products.get(sub.scope.id)?.apis.has(api.id) ?? false;
}

function parseJson(bytes: Buffer | undefined): unknown {
  if (!bytes?.length) return undefined;
  try {
    return JSON.parse(bytes.toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * A CORS preflight: the cors statements that are direct children of the effective inbound of the
 * operation the browser asks for (global → API → operation; no product, since a preflight carries no
 * key), in evaluation order. The first whose origin, method and headers match answers; one that does
 * not match ends it with an empty 200 when terminate-unmatched-request is "true", else the next is
 * tried; none matching is an empty 200 without CORS headers. No cors statement at all: undefined (the
 * request is an ordinary OPTIONS request, which no operation serves).
 */
function preflight(snap: Snapshot, api: LoadedApi, opPath: string, headers: HeaderBag): { operationId: string; headers: Record<string, string> } | undefined {
  const requested = (headers.get("access-control-request-method")?.[0] ?? "").trim().toUpperCase();
  const op = api.operations.find((o) => o.method === requested && o.match(opPath));
  const docs = [snap.global, api.policy, op?.policy];
  const rules: CorsRule[] = [];
  const collect = (i: number): void => {
    if (i < 0) return;
    const doc = docs[i];
    if (!doc) return collect(i - 1);
    for (const step of doc.sections.get("inbound") ?? []) {
      if (step.element === "base") collect(i - 1);
      else if (step.cors) rules.push(step.cors);
    }
  };
  collect(docs.length - 1);
  if (rules.length === 0) return undefined;
  const origin = headers.get("origin")?.[0] ?? "";
  const asked = (headers.joined("access-control-request-headers") ?? "").split(",").map((h) => h.trim().toLowerCase()).filter(Boolean);
  for (const rule of rules) {
    const allowed = originAllowed(rule, origin);
    const methodOk = rule.methods.includes("*") || rule.methods.includes(requested);
    const headersOk = rule.headers.includes("*") || asked.every((h) => rule.headers.includes(h));
    if (allowed && methodOk && headersOk && op) {
      return {
        operationId: op.id,
        headers: {
          "Access-Control-Allow-Origin": allowed,
          ...(rule.allowCredentials ? { "Access-Control-Allow-Credentials": "true" } : {}),
          "Access-Control-Allow-Methods": requested,
          ...(asked.length ? { "Access-Control-Allow-Headers": asked.join(",") } : {}),
          ...(rule.maxAge ? { "Access-Control-Max-Age": String(rule.maxAge) } : {}),
        },
      };
    }
    if (rule.terminateUnmatched) break;
  }
  return { operationId: op?.id ?? "", headers: {} };
}
