// The Durable extension's HTTP API (EXT HttpApiHandler.cs) as builtin routes of the local host,
// and the `durableClient` binding value that points the library's DurableClient at it
// (docs/local-host.md, "The durable client" and "The HTTP API"). Both rpcBaseUrl mode and URL-template
// mode land on the same handlers.
//
// As in Azure, every call needs the host's system key (system-key.ts): `?code=` or `x-functions-key`,
// else 401 problem+json before the body is read. The binding data carries the key as Azure's does
// (`code=` in the URLs and requiredQueryStringParameters); client-shim.ts adds it in rpcBaseUrl mode.

import type http from "node:http";
import type { BuiltinRoute, LocalHost } from "../host.js";
import { installDurableClientKeyShim } from "./client-shim.js";
import { DurableApiError, type EngineCore } from "./engine.js";
import { renderHistory } from "./history.js";
import { keyMatches, presentedKey } from "./system-key.js";
import { type InstanceRecord, RUNTIME_STATUSES, isTerminal, parseLoose } from "./types.js";

export const WEBHOOK_PATH = "/runtime/webhooks/durabletask";

function querySuffix(core: EngineCore, key: string): string {
  return `taskHub=${encodeURIComponent(core.taskHub)}&connection=${encodeURIComponent(core.connectionName)}&code=${encodeURIComponent(key)}`;
}

/** The `durableClient` binding value (EXT BindingHelper.cs), as a JSON string. */
export function clientBindingData(core: EngineCore, hostUrl: string, useRpcBaseUrl: boolean, key: string): string {
  const base = `${hostUrl.replace(/\/+$/, "")}${WEBHOOK_PATH}`;
  const qs = querySuffix(core, key);
  const instance = `${base}/instances/INSTANCEID`;
  const data: Record<string, unknown> = {
    taskHubName: core.taskHub,
    creationUrls: {
      createNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?code=${encodeURIComponent(key)}`,
      createAndWaitOnNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&code=${encodeURIComponent(key)}`,
    },
    managementUrls: managementUrls(instance, "INSTANCEID", qs),
    baseUrl: base,
    requiredQueryStringParameters: qs,
  };
  if (useRpcBaseUrl) data.rpcBaseUrl = `${base}/`;
  return JSON.stringify(data);
}

function managementUrls(instancePrefix: string, id: string, qs: string): Record<string, string> {
  return {
    id,
    statusQueryGetUri: `${instancePrefix}?${qs}`,
    sendEventPostUri: `${instancePrefix}/raiseEvent/{eventName}?${qs}`,
    terminatePostUri: `${instancePrefix}/terminate?reason={text}&${qs}`,
    rewindPostUri: `${instancePrefix}/rewind?reason={text}&${qs}`,
    purgeHistoryDeleteUri: `${instancePrefix}?${qs}`,
    restartPostUri: `${instancePrefix}/restart?${qs}`,
    suspendPostUri: `${instancePrefix}/suspend?reason={text}&${qs}`,
    resumePostUri: `${instancePrefix}/resume?reason={text}&${qs}`,
  };
}

/** The extension's status payload (HttpApiHandler.ConvertFrom). */
export function statusPayload(
  rec: InstanceRecord,
  o: { showInput?: boolean; showHistory?: boolean; showHistoryOutput?: boolean } = {},
): Record<string, unknown> {
  const payload: Record<string, unknown> = {
    name: rec.name,
    instanceId: rec.instanceId,
    runtimeStatus: rec.status,
    input: o.showInput === false ? null : parseLoose(rec.input),
    customStatus: parseLoose(rec.customStatus),
    output: parseLoose(rec.output),
    createdTime: secondsIso(rec.createdTime),
    lastUpdatedTime: secondsIso(rec.lastUpdatedTime),
  };
  if (o.showHistory && rec.status !== "Pending") payload.historyEvents = renderHistory(rec.history, o.showHistoryOutput === true);
  return payload;
}

/** .NET's `ToString("s") + "Z"`: no fractional seconds. */
function secondsIso(iso: string): string {
  return `${iso.slice(0, 19)}Z`;
}

function boolParam(q: URLSearchParams, name: string): boolean | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  if (/^true$/i.test(v.trim())) return true;
  if (/^false$/i.test(v.trim())) return false;
  return undefined;
}

function dateParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v.trim() === "") return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

/** runtimeStatus=A,B (and repeated keys); unknown names are ignored, as Enum.TryParse would. */
function statusParam(q: URLSearchParams): Set<string> | undefined {
  const out = new Set<string>();
  for (const raw of q.getAll("runtimeStatus")) {
    for (const part of raw.split(",")) {
      const match = RUNTIME_STATUSES.find((s) => s.toLowerCase() === part.trim().toLowerCase());
      if (match) out.add(match);
    }
  }
  return out.size > 0 ? out : undefined;
}

function matches(rec: InstanceRecord, q: URLSearchParams, statuses: Set<string> | undefined): boolean {
  const created = Date.parse(rec.createdTime);
  const from = dateParam(q, "createdTimeFrom");
  const to = dateParam(q, "createdTimeTo");
  if (from !== undefined && created < from) return false;
  if (to !== undefined && created > to) return false;
  if (statuses && !statuses.has(rec.status)) return false;
  const prefix = q.get("instanceIdPrefix");
  if (prefix && !rec.instanceId.startsWith(prefix)) return false;
  return true;
}

function send(res: http.ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) {
    res.writeHead(status, { ...headers, "content-length": "0" });
    res.end();
    return;
  }
  const buf = Buffer.from(JSON.stringify(body), "utf8");
  res.writeHead(status, { ...headers, "content-type": "application/json; charset=utf-8", "content-length": String(buf.length) });
  res.end(buf);
}

function sendError(res: http.ServerResponse, status: number, message: string): void {
  send(res, status, { Message: message });
}

function checkStatusResponse(
  core: EngineCore,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  instanceId: string,
  key: string,
): void {
  const hostHeader = req.headers.host ?? `127.0.0.1:${core.host?.port ?? 7071}`;
  const base = `http://${hostHeader}${WEBHOOK_PATH}`;
  const urls = managementUrls(`${base}/instances/${encodeURIComponent(instanceId)}`, instanceId, querySuffix(core, key));
  send(res, 202, urls, { location: urls.statusQueryGetUri as string, "retry-after": "10" });
}

function isJsonContentType(req: http.IncomingMessage): boolean {
  const ct = req.headers["content-type"];
  return typeof ct === "string" && ct.split(";")[0]?.trim().toLowerCase() === "application/json";
}

/** JSON text of a request body, null when empty; throws 400 when it is not JSON. */
function jsonBody(body: Buffer): string | null {
  const text = body.toString("utf8").trim();
  if (text.length === 0) return null;
  try {
    JSON.parse(text);
  } catch {
    throw new DurableApiError(400, "Invalid JSON content");
  }
  return text;
}

async function waitForCompletion(
  core: EngineCore,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  instanceId: string,
  timeoutMs: number,
  key: string,
): Promise<void> {
  let status = core.status(instanceId);
  if (status && !isTerminal(status.runtimeStatus)) {
    try {
      status = await core.waitForStatus(instanceId, ["Completed", "Failed", "Terminated", "Canceled"], timeoutMs);
    } catch {
      status = core.status(instanceId);
    }
  }
  const rec = core.record(instanceId);
  if (!status || !rec || !isTerminal(status.runtimeStatus)) {
    checkStatusResponse(core, req, res, instanceId, key);
    return;
  }
  if (status.runtimeStatus === "Completed") send(res, 200, status.output);
  else send(res, 200, statusPayload(rec));
}

async function handle(core: EngineCore, req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, key: string): Promise<void> {
  const method = (req.method ?? "GET").toUpperCase();
  const url = new URL(req.url ?? "/", "http://localhost");
  const rest = url.pathname.slice(WEBHOOK_PATH.length);
  const segments = rest.split("/").map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
  if (segments[0] === "") segments.shift();
  if (segments.length > 0 && segments[segments.length - 1] === "") segments.pop();
  const q = url.searchParams;
  const [controller, a, b, c] = segments;

  if (!core.ready) throw new DurableApiError(503, "The local durable engine is not running.");

  if (controller === "orchestrators" && a !== undefined && segments.length <= 3) {
    if (method !== "POST") return send(res, 404);
    const inputJson = jsonBody(body);
    const version = q.get("version");
    const instanceId = await core.start(a, {
      ...(b !== undefined ? { instanceId: b } : {}),
      inputJson,
      ...(version ? { version } : {}),
    });
    const timeout = Number(q.get("timeout"));
    if (q.has("timeout") && q.has("pollingInterval") && Number.isFinite(timeout)) {
      return waitForCompletion(core, req, res, instanceId, Math.max(0, timeout) * 1000, key);
    }
    return checkStatusResponse(core, req, res, instanceId, key);
  }

  if (controller === "instances") {
    if (a === undefined) {
      if (method === "GET") {
        const statuses = statusParam(q);
        const showInput = boolParam(q, "showInput") ?? true;
        const list = core
          .records()
          .filter((r) => matches(r, q, statuses))
          .sort((x, y) => x.createdTime.localeCompare(y.createdTime))
          .map((r) => statusPayload(r, { showInput }));
        // No continuation token: everything fits in one page (the client pages while it is truthy).
        return send(res, 200, list);
      }
      if (method === "DELETE") {
        if (dateParam(q, "createdTimeFrom") === undefined) return send(res, 400, "Please provide value for 'createdTimeFrom' parameter.");
        const statuses = statusParam(q);
        let deleted = 0;
        for (const r of core.records()) {
          if (!isTerminal(r.status) || !matches(r, q, statuses)) continue;
          if (await core.purge(r.instanceId)) deleted++;
        }
        return deleted === 0 ? send(res, 404) : send(res, 200, { instancesDeleted: deleted });
      }
      return send(res, 404);
    }

    if (b === undefined) {
      if (method === "GET") {
        const rec = core.record(a);
        if (!rec) return send(res, 404);
        const showHistory = boolParam(q, "showHistory") ?? false;
        const showHistoryOutput = boolParam(q, "showHistoryOutput") ?? false;
        const showInput = boolParam(q, "showInput") ?? true;
        const failAs500 = boolParam(q, "returnInternalServerErrorOnFailure") ?? false;
        const payload = statusPayload(rec, { showHistory, showHistoryOutput, showInput });
        switch (rec.status) {
          case "Running":
          case "Pending":
          case "ContinuedAsNew":
          case "Suspended":
            return send(res, 202, payload, { location: `http://${req.headers.host ?? "localhost"}${req.url ?? ""}`, "retry-after": "5" });
          case "Failed":
            return send(res, failAs500 ? 500 : 200, payload);
          default:
            return send(res, 200, payload);
        }
      }
      if (method === "DELETE") {
        const deleted = await core.purge(a);
        return deleted ? send(res, 200, { instancesDeleted: 1 }) : send(res, 404);
      }
      return send(res, 404);
    }

    if (b === "raiseEvent" && c !== undefined && segments.length === 4) {
      if (method !== "POST") return send(res, 404);
      const rec = core.record(a);
      if (!rec) return send(res, 404);
      if (isTerminal(rec.status)) return send(res, 410);
      if (!isJsonContentType(req)) return sendError(res, 400, "Only application/json request content is supported");
      await core.raise(a, c, jsonBody(body));
      return send(res, 202);
    }

    if (segments.length === 3 && method === "POST") {
      const op = b.toLowerCase();
      const reason = q.get("reason") ?? "";
      if (op === "terminate") {
        await core.terminate(a, reason);
        return send(res, 202);
      }
      if (op === "suspend") {
        await core.suspend(a);
        return send(res, 202);
      }
      if (op === "resume") {
        await core.resume(a);
        return send(res, 202);
      }
      if (op === "rewind") {
        const rec = core.record(a);
        if (!rec) return send(res, 404, `No orchestration with instance ID "${a}" found.`);
        if (rec.status !== "Failed") {
          return send(res, 412, `This orchestration has status ${rec.status}, but only orchestrations in the "Failed" state can be rewound.`);
        }
        return send(res, 501, "Rewind is not supported by the local durable host.");
      }
      if (op === "restart") {
        const fresh = boolParam(q, "restartWithNewInstanceId") ?? true;
        const id = await core.restart(a, fresh);
        return checkStatusResponse(core, req, res, id, key);
      }
    }
    return send(res, 404);
  }

  if (controller === "entities") return sendError(res, 501, "Durable entities are not supported by the local durable host.");
  return send(res, 404);
}

export function createRoutes(core: EngineCore, key: string): BuiltinRoute[] {
  return [
    {
      method: "*",
      path: `${WEBHOOK_PATH}/*`,
      authorize: (req, url) =>
        keyMatches(presentedKey(req, url), key) ? undefined : "The durable HTTP API requires the host's system key: a 'code' query parameter or an 'x-functions-key' header.",
      handle: async (req, res, body) => {
        try {
          await handle(core, req, res, body, key);
        } catch (err) {
          if (res.headersSent) {
            res.destroy();
            return;
          }
          if (err instanceof DurableApiError) {
            // The extension answers 400 with this wording for ArgumentExceptions.
            const message = err.status === 400 ? "One or more of the arguments submitted is incorrect" : err.message;
            send(res, err.status, err.status === 400 ? { Message: message, ExceptionMessage: err.message } : { Message: message });
            return;
          }
          sendError(res, 500, `Something went wrong while processing your request: ${(err as Error)?.message ?? String(err)}`);
        }
      },
    },
  ];
}

export function bindingProvider(core: EngineCore, useRpcBaseUrl: boolean, key: string) {
  return (_binding: unknown, _fn: unknown, host: LocalHost): string => {
    installDurableClientKeyShim(); // before the function that asked for the client runs
    return clientBindingData(core, host.url, useRpcBaseUrl, key);
  };
}
