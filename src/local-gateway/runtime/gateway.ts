/**
 * One request through the gateway: API and operation matching, subscription keys, the policy
 * pipeline over the scopes (global → product → API → operation, `<base/>` placing the parent's
 * statements), the backend call, the answer (buffered or streamed), and the logs.
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
import { HeaderBag } from "./message.js";
import { type Outbound, OutboundError, readAll } from "./outbound.js";
import { type LoadedApi, type LoadedSubscription, type Snapshot } from "./snapshot.js";
import { estimateTokens, promptText, StreamUsage, usageOf } from "./tokens.js";

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

/** The implicit global policy of an instance nobody changed: forward in backend, nothing else. */
const FORWARD: Step = { element: "forward-request", line: 0, run: (r) => r.services.forward(r, { timeoutMs: 300_000 }) };
const DEFAULT_GLOBAL: PolicyDocument = { file: "(default global policy)", sections: new Map<Section, Step[]>([["backend", [FORWARD]]]) };

export class Pipeline {
  constructor(private readonly deps: PipelineDeps) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const d = this.deps;
    const snap = d.snapshot();
    const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`);
    const method = (req.method ?? "GET").toUpperCase();
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
      CallerIpAddress: req.socket.remoteAddress ?? "",
      LastErrorSource: "",
      LastErrorReason: "",
      LastErrorMessage: "",
      LastErrorSection: "",
      LastErrorScope: "",
      RequestSize: 0,
      ResponseSize: 0,
    };
    const finish = (status: number, bytes: number) => {
      record.ResponseCode = status;
      record.IsRequestSuccess = status >= 200 && status < 400;
      record.ResponseSize = bytes;
      record.TotalTime = Math.round(performance.now() - started);
      d.logs.write(TABLES.gateway, record);
    };
    const refuse = (spec: { status: number; headers: Record<string, string>; body: string }, reason: string, source: string) => {
      record.LastErrorReason = reason;
      record.LastErrorSource = source;
      record.LastErrorMessage = (JSON.parse(spec.body) as { message: string }).message;
      res.writeHead(spec.status, spec.headers);
      res.end(spec.body);
      finish(spec.status, Buffer.byteLength(spec.body));
    };

    const api = snap.apis.find((a) => a.path === "" || url.pathname === `/${a.path}` || url.pathname.startsWith(`/${a.path}/`));
    if (!api) return refuse(json(404, "Resource not found"), "OperationNotFound", "configuration");
    record.ApiId = api.id;
    const opPath = api.path ? url.pathname.slice(api.path.length + 1) || "/" : url.pathname;
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
    if (!op) return refuse(json(404, "Resource not found"), "OperationNotFound", "configuration");
    record.OperationId = op.id;

    let body: Buffer | undefined;
    try {
      body = await readAll(req, d.maxRequestBytes);
    } catch {
      return refuse(json(413, `The request body exceeds the ${d.maxRequestBytes} bytes the gateway buffers.`), "RequestEntityTooLarge", "configuration");
    }
    record.RequestSize = body.length;

    const headers = HeaderBag.fromIncoming(req.headers);
    let subscription: LoadedSubscription | undefined;
    if (api.subscriptionRequired) {
      const key = headers.get(api.keyHeader)?.[0] ?? url.searchParams.get(api.keyQuery) ?? undefined;
      const challenge = { "WWW-Authenticate": `AzureApiManagementKey realm="${url.origin}/${api.path}",name="${api.keyHeader}",type="header"` };
      if (!key) {
        const r = json(401, "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.");
        return refuse({ ...r, headers: { ...r.headers, ...challenge } }, "SubscriptionKeyNotFound", "authorization");
      }
      subscription = snap.subscriptionsByKey.get(key);
      if (!subscription || subscription.state !== "active" || !covers(subscription, api, snap)) {
        const r = json(401, "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.");
        return refuse({ ...r, headers: { ...r.headers, ...challenge } }, "SubscriptionKeyInvalid", "authorization");
      }
      record.ApimSubscriptionId = subscription.id;
    }
    const product = subscription?.scope.type === "product" ? snap.products.get(subscription.scope.id) : undefined;
    record.ProductId = product?.id ?? "";

    const chain: { scope: Scope; file: string; doc: PolicyDocument | undefined }[] = [
      { scope: "global", file: "policies/policy.xml", doc: snap.global ?? DEFAULT_GLOBAL },
      ...(product ? [{ scope: "product" as const, file: `products/${product.id}/policies/policy.xml`, doc: product.policy }] : []),
      { scope: "api", file: `apis/${api.id}/policies/policy.xml`, doc: api.policy },
      { scope: "operation", file: `apis/${api.id}/operations/${op.id}/policies/policy.xml`, doc: op.policy },
    ];
    const broken = chain.flatMap((c) => snap.broken.get(c.file) ?? []);
    if (broken.length) {
      const first = broken[0]!;
      return refuse(json(500, `The local gateway could not load ${first.file} (line ${first.line}): ${first.message}`), "PolicyLoadFailure", "configuration");
    }

    const state: RequestState = {
      requestId,
      ip: record.CallerIpAddress,
      method,
      originalUrl: url,
      path: opPath,
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
    };
    const env: EvalEnv = { context: contextObject(state), random: d.random };
    const r: Run = {
      state,
      env,
      section: "inbound",
      scope: "operation",
      services: this.services(),
      backend: {},
      onComplete: [],
      trace: { backendMs: 0, cache: "none", streamed: false },
      afterBackend: [],
      streamChecks: [],
      base: async () => undefined,
    };
    const promptTokens = estimateTokens(promptText(parseJson(body)));

    const runSection = async (section: Section) => {
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
    };

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
    const out: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(response.headers.toRecord())) if (!/^(content-length|transfer-encoding|connection|keep-alive)$/i.test(k)) out[k] = v;
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
      res.writeHead(response.status, response.reason || undefined, out);
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
          if (!res.write(chunk)) await new Promise((ok) => res.once("drain", ok));
        }
      } catch {
        // The backend's stream broke off: the client gets what arrived.
      }
      res.end();
      finish(response.status, sent);
      await complete(watch.result(promptTokens), watch.model);
      return;
    }

    const bytes = response.body ?? Buffer.alloc(0);
    res.writeHead(response.status, response.reason || undefined, { ...out, "content-length": String(bytes.length) });
    res.end(bytes);
    finish(response.status, bytes.length);
    const answer = parseJson(bytes) as { model?: unknown } | undefined;
    await complete(r.usage, typeof answer?.model === "string" ? answer.model : undefined);
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

  private services(): RunServices {
    const d = this.deps;
    return {
      ...d.services,
      backendUrl: (id) => d.backends.get(id)?.url ?? (d.backends.get(id) ? `pool:${id}` : undefined),
      forward: (r, opts) => this.forward(r, opts.timeoutMs),
      callBackend: (id, path, bodyJson, headers) => this.callBackend(id, path, bodyJson, headers),
    };
  }

  private async forward(r: Run, timeoutMs: number): Promise<void> {
    const d = this.deps;
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
    } else {
      throw new PolicyError("forward-request", "BackendNotSet", "no backend is set for the request (set-backend-service)", json(500, "Internal server error"));
    }
    const q = r.state.query.toString();
    const target = new URL(`${base.replace(/\/+$/, "")}${r.state.path}${q ? `?${q}` : ""}`);
    const headers = r.state.headers.toRecord();
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
      r.state.response = { status: res.status, reason: res.body.statusMessage ?? "", headers: hdrs, body: undefined, stream: res.body };
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
