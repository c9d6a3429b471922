import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport, SseError } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { ErrorCode, McpError, type JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { JsonSchemaValidatorResult, jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";
import { z } from "zod";
import { BlockedAddressError, ResponseTooLargeError, createSafeFetch } from "../../../adapters/http/safe-fetch.js";
import { canonicalJson } from "../../../util/canonical-json.js";

/**
 * Discovery of what an MCP server offers (tools, resources, resource templates, prompts), over the network,
 * from a URL a tenant gave. The server is untrusted: every step is bounded (connect, each request, the
 * whole run, pages, items, bytes), the outbound fetch refuses non-public addresses, and lists are fetched
 * raw, so a registry keeps every field a server sent and one odd tool does not sink the page (the SDK's
 * typed listTools strips unknown fields, rejects a page over one bad tool and compiles each outputSchema).
 */

export type McpTransport = "streamable-http" | "sse";

export interface DiscoveryTarget {
  url: string;
  transport: McpTransport | "auto";
  headers?: Record<string, string>;
}

export interface DiscoveryLimits {
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  totalTimeoutMs: number;
  maxTools: number;
  maxPages: number;
  maxManifestBytes: number;
  /** Resources, resource templates and prompts, each. */
  maxItems: number;
}

export const DEFAULT_DISCOVERY_LIMITS: DiscoveryLimits = Object.freeze({
  connectTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  totalTimeoutMs: 60_000,
  maxTools: 10_000,
  maxPages: 500,
  maxManifestBytes: 16 * 1024 * 1024,
  maxItems: 2_000,
});

export interface DiscoveredServer {
  transport: McpTransport;
  protocolVersion: string;
  serverInfo: { name: string; version: string; title?: string };
  capabilities: Record<string, unknown>;
  instructions?: string;
  tools: Record<string, unknown>[];
  resources: Record<string, unknown>[];
  resourceTemplates: Record<string, unknown>[];
  prompts: Record<string, unknown>[];
  pages: number;
  bytes: number;
}

export type DiscoveryFailureCode =
  | "blocked_address"
  | "connect_failed"
  | "timeout"
  | "http_error"
  | "protocol_error"
  | "unsupported_protocol_version"
  | "too_many_tools"
  | "too_many_pages"
  | "manifest_too_large"
  | "cursor_loop"
  | "invalid_response";

export type DiscoveryOutcome = { ok: true; server: DiscoveredServer } | { ok: false; code: DiscoveryFailureCode; message: string; protocolVersion?: string };

export interface DiscoveryOptions {
  /** Local mode and tests only: a deployed control plane must never reach its own host. */
  allowLoopback: boolean;
  allowPrivate?: boolean;
  signal?: AbortSignal;
}

/** Never throws: every failure, including a caller's abort, comes back as an outcome with a code. */
export async function discoverServer(target: DiscoveryTarget, limits: DiscoveryLimits, options: DiscoveryOptions): Promise<DiscoveryOutcome> {
  try {
    return { ok: true, server: await discover(target, boundedLimits(limits), options) };
  } catch (error) {
    const failure = error instanceof DiscoveryFailure ? error : classify(error);
    return {
      ok: false,
      code: failure.code,
      message: reportableText(failure.message, target, MAX_REPORTED),
      ...(failure.protocolVersion !== undefined ? { protocolVersion: reportableText(failure.protocolVersion, target, MAX_VERSION) } : {}),
    };
  }
}

/**
 * Text that may quote the target's credentials (its header values, the user, password and query of its URL),
 * as a report may keep it: each blotted out first, shortened last — a secret cut in two by the clip would no
 * longer be found whole. Every message of a discovery that is recorded or sent goes through here.
 */
export function reportableText(text: string, target: DiscoveryTarget, max = MAX_MESSAGE): string {
  return clip(redact(text, secretsOf(target)), max);
}

class DiscoveryFailure extends Error {
  constructor(
    readonly code: DiscoveryFailureCode,
    message: string,
    readonly protocolVersion?: string,
  ) {
    super(message);
  }
}

/** Room for what a response carries besides list results (JSON-RPC envelopes, SSE framing, the initialize result). */
const ENVELOPE_BYTES = 1024 * 1024;
/** The DELETE that ends a session is a courtesy; a server that does not answer it does not hold the run. */
const TERMINATE_WAIT_MS = 2_000;
const MAX_MESSAGE = 500;
/** A reported message: one part, or the two transports' parts of `auto` (MAX_MESSAGE each). */
const MAX_REPORTED = 2 * MAX_MESSAGE + 32;
/** A protocol version is a date (2025-06-18); what a server offers instead is kept to this many characters. */
const MAX_VERSION = 64;

const PageSchema = z.record(z.string(), z.unknown());

interface Connection {
  transport: McpTransport;
  client: Client;
  sdkTransport: StreamableHTTPClientTransport | SSEClientTransport;
  protocolVersion: string;
  initializeResult: Record<string, unknown>;
}

async function discover(target: DiscoveryTarget, limits: DiscoveryLimits, options: DiscoveryOptions): Promise<DiscoveredServer> {
  const url = targetUrl(target);
  const deadline = new Deadline(limits.totalTimeoutMs, options.signal);
  const safeFetch = createSafeFetch({
    allowLoopback: options.allowLoopback,
    allowPrivate: options.allowPrivate ?? false,
    maxBodyBytes: limits.maxManifestBytes + ENVELOPE_BYTES,
    timeoutMs: limits.totalTimeoutMs,
    connectTimeoutMs: limits.connectTimeoutMs,
    // The SDK reads streamed responses in the background and reports a failed stream only as a lost message,
    // which would surface as a timeout much later; the limit ends the run at once instead.
    onBodyLimit: () => deadline.fail(new DiscoveryFailure("manifest_too_large", `a response was larger than ${limits.maxManifestBytes + ENVELOPE_BYTES} bytes`)),
  });
  const fetchForRun: typeof fetch = async (input, init) => {
    const signal = init?.signal ? AbortSignal.any([init.signal, deadline.signal]) : deadline.signal;
    try {
      return await safeFetch(input, { ...init, signal });
    } catch (error) {
      // Both transports wrap fetch errors in their own; the refusal must not read as an unreachable server.
      if (error instanceof BlockedAddressError) deadline.fail(new DiscoveryFailure("blocked_address", error.message));
      throw error;
    }
  };

  let connection: Connection | undefined;
  try {
    connection = await connectAny(url, target, limits, deadline, fetchForRun);
    return await catalogue(connection, limits, deadline);
  } catch (error) {
    throw deadline.reason ?? classify(error);
  } finally {
    if (connection) await disconnect(connection);
    deadline.dispose();
    await safeFetch.close();
  }
}

/** `auto` tries Streamable HTTP, then the deprecated HTTP+SSE transport, as the spec's compatibility section describes. */
async function connectAny(url: URL, target: DiscoveryTarget, limits: DiscoveryLimits, deadline: Deadline, fetchFn: typeof fetch): Promise<Connection> {
  if (target.transport !== "auto") return connect(target.transport, url, target.headers, limits, deadline, fetchFn);
  try {
    return await connect("streamable-http", url, target.headers, limits, deadline, fetchFn);
  } catch (streamableError) {
    const first = deadline.reason ?? classify(streamableError);
    // Only an answer that says "not this transport" is worth a second try; an unreachable or slow host stays so.
    if (deadline.reason || !["http_error", "protocol_error", "invalid_response"].includes(first.code)) throw first;
    try {
      return await connect("sse", url, target.headers, limits, deadline, fetchFn);
    } catch (sseError) {
      const second = deadline.reason ?? classify(sseError);
      // An SSE endpoint that is not there either says less than why Streamable HTTP failed.
      const reported = second.code === "http_error" ? first : second;
      // Each part redacted before it is shortened (a secret cut in two would not be found whole), so both fit.
      const part = (f: DiscoveryFailure) => reportableText(f.message, target);
      throw new DiscoveryFailure(reported.code, `Streamable HTTP: ${part(first)}; SSE: ${part(second)}`, reported.protocolVersion);
    }
  }
}

async function connect(
  kind: McpTransport,
  url: URL,
  headers: Record<string, string> | undefined,
  limits: DiscoveryLimits,
  deadline: Deadline,
  fetchFn: typeof fetch,
): Promise<Connection> {
  const requestInit: RequestInit = headers ? { headers: { ...headers } } : {};
  const sdkTransport =
    kind === "sse"
      ? new SSEClientTransport(url, { fetch: fetchFn, requestInit })
      : new StreamableHTTPClientTransport(url, {
          fetch: fetchFn,
          requestInit,
          // Discovery needs no server push: a dropped standalone stream is not worth reopening.
          reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1_000, maxReconnectionDelay: 1_000, reconnectionDelayGrowFactor: 1 },
        });
  let negotiated: string | undefined;
  const setProtocolVersion = sdkTransport.setProtocolVersion.bind(sdkTransport);
  // The SDK tells the transport the version it accepted; the SSE transport keeps it private, so listen here for both.
  sdkTransport.setProtocolVersion = (version: string) => {
    negotiated = version;
    setProtocolVersion(version);
  };
  const initializeResult = captureInitializeResult(sdkTransport);
  const client = new Client({ name: "aigov-discovery", version: "1.0.0" }, { capabilities: {}, jsonSchemaValidator: ACCEPT_ANY });
  try {
    // connect() bounds initialize by its timeout, but not the wait for the legacy transport's endpoint event.
    const handshake = limits.connectTimeoutMs + limits.requestTimeoutMs;
    await deadline.race(
      within(client.connect(sdkTransport, { timeout: limits.requestTimeoutMs }), handshake, () => new DiscoveryFailure("timeout", `the MCP handshake did not finish within ${handshake} ms`)),
    );
  } catch (error) {
    await client.close().catch(() => undefined);
    throw error;
  }
  const raw = initializeResult() ?? {};
  const protocolVersion = negotiated ?? (typeof raw.protocolVersion === "string" ? raw.protocolVersion : undefined);
  if (protocolVersion === undefined) {
    await client.close().catch(() => undefined);
    throw new DiscoveryFailure("invalid_response", "the server did not state a protocol version");
  }
  return { transport: kind, client, sdkTransport, protocolVersion, initializeResult: raw };
}

/**
 * The SDK parses the initialize result through closed schemas, dropping capability and serverInfo fields it
 * does not know (newer revisions add some); the registry records what the server said.
 */
function captureInitializeResult(transport: Transport): () => Record<string, unknown> | undefined {
  let raw: Record<string, unknown> | undefined;
  let handler: Transport["onmessage"];
  Object.defineProperty(transport, "onmessage", {
    configurable: true,
    enumerable: true,
    get: () => handler,
    set: (next: Transport["onmessage"]) => {
      handler =
        next &&
        (((message: JSONRPCMessage, extra?: Parameters<NonNullable<Transport["onmessage"]>>[1]) => {
          if (raw === undefined && "result" in message && isRecord(message.result) && "protocolVersion" in message.result) raw = message.result;
          next(message, extra);
        }) as Transport["onmessage"]);
    },
  });
  return () => raw;
}

async function catalogue(connection: Connection, limits: DiscoveryLimits, deadline: Deadline): Promise<DiscoveredServer> {
  const { client, initializeResult } = connection;
  const capabilities = isRecord(initializeResult.capabilities) ? initializeResult.capabilities : ((client.getServerCapabilities() ?? {}) as Record<string, unknown>);
  const budget: Budget = { pages: 0, bytes: 0 };
  const lister = (method: ListMethod, key: string, max: number, tooMany: DiscoveryFailureCode, what: string) =>
    listAll({ client, method, key, max, tooMany, what, limits, budget, deadline });

  // A server MUST declare tools to serve them, but some list them without saying so; one that truly has none answers -32601.
  const tools = await lister("tools/list", "tools", limits.maxTools, "too_many_tools", "tools").catch((error: unknown) => {
    if (!capabilities.tools && error instanceof McpError && error.code === ErrorCode.MethodNotFound) return [];
    throw error;
  });
  const resources = capabilities.resources ? await lister("resources/list", "resources", limits.maxItems, "manifest_too_large", "resources") : [];
  const resourceTemplates = capabilities.resources
    ? await lister("resources/templates/list", "resourceTemplates", limits.maxItems, "manifest_too_large", "resource templates")
    : [];
  const prompts = capabilities.prompts ? await lister("prompts/list", "prompts", limits.maxItems, "manifest_too_large", "prompts") : [];

  const server = client.getServerVersion();
  const info = isRecord(initializeResult.serverInfo) ? initializeResult.serverInfo : {};
  const name = typeof info.name === "string" ? info.name : (server?.name ?? "");
  const version = typeof info.version === "string" ? info.version : (server?.version ?? "");
  const title = typeof info.title === "string" ? info.title : server?.title;
  const instructions = client.getInstructions();
  return {
    transport: connection.transport,
    protocolVersion: connection.protocolVersion,
    serverInfo: { name, version, ...(title !== undefined ? { title } : {}) },
    capabilities,
    ...(instructions !== undefined ? { instructions } : {}),
    tools,
    resources,
    resourceTemplates,
    prompts,
    pages: budget.pages,
    bytes: budget.bytes,
  };
}

type ListMethod = "tools/list" | "resources/list" | "resources/templates/list" | "prompts/list";

interface Budget {
  pages: number;
  bytes: number;
}

interface ListRun {
  client: Client;
  method: ListMethod;
  key: string;
  max: number;
  tooMany: DiscoveryFailureCode;
  what: string;
  limits: DiscoveryLimits;
  budget: Budget;
  deadline: Deadline;
}

/** Pages through one list. Pages and bytes count across all lists: they bound the work of the whole run. */
async function listAll(run: ListRun): Promise<Record<string, unknown>[]> {
  const { client, method, key, limits, budget, deadline } = run;
  const items: Record<string, unknown>[] = [];
  const seen = new Set<string>();
  let cursor: string | undefined;
  for (;;) {
    const request = { method, params: cursor !== undefined ? { cursor } : {} } as Parameters<Client["request"]>[0];
    const page = await deadline.race(client.request(request, PageSchema, { timeout: limits.requestTimeoutMs }));
    budget.pages++;
    budget.bytes += Buffer.byteLength(canonicalJson(page), "utf8");
    if (budget.bytes > limits.maxManifestBytes) {
      throw new DiscoveryFailure("manifest_too_large", `the lists came to more than ${limits.maxManifestBytes} bytes of JSON`);
    }
    const list = page[key];
    if (!Array.isArray(list)) throw new DiscoveryFailure("invalid_response", `a ${method} result has no ${key} array`);
    for (const [i, item] of list.entries()) {
      if (!isRecord(item)) throw new DiscoveryFailure("invalid_response", `${method} page ${budget.pages}: entry ${i} is not an object`);
      items.push(item);
    }
    if (items.length > run.max) throw new DiscoveryFailure(run.tooMany, `the server lists more than ${run.max} ${run.what}`);

    const next = page.nextCursor;
    // Cursors are opaque strings; some servers write the end of a list as null or an empty string.
    if (next === undefined || next === null || next === "") return items;
    if (typeof next !== "string") throw new DiscoveryFailure("invalid_response", `a ${method} result has a nextCursor that is not a string`);
    if (seen.has(next)) throw new DiscoveryFailure("cursor_loop", `${method} returned a cursor it had returned before`);
    if (budget.pages >= limits.maxPages) throw new DiscoveryFailure("too_many_pages", `the lists take more than ${limits.maxPages} pages`);
    seen.add(next);
    cursor = next;
  }
}

async function disconnect(connection: Connection): Promise<void> {
  const { client, sdkTransport } = connection;
  if (sdkTransport instanceof StreamableHTTPClientTransport && sdkTransport.sessionId !== undefined) {
    await within(sdkTransport.terminateSession(), TERMINATE_WAIT_MS, () => new Error("no answer to DELETE")).catch(() => undefined);
  }
  await client.close().catch(() => undefined);
}

/** Structured output is not validated while listing: discovery does not call tools, and compiling hostile schemas is validation's job, bounded there. */
const ACCEPT_ANY: jsonSchemaValidator = {
  getValidator:
    <T>() =>
    (input: unknown): JsonSchemaValidatorResult<T> => ({ valid: true, data: input as T, errorMessage: undefined }),
};

// ---- time ---------------------------------------------------------------------------------------------

/**
 * The run's deadline, and the first failure that ends the run early (a blocked address, an oversized body, a
 * caller's abort). Requests race it rather than taking its signal: the SDK never removes a listener it adds
 * to a request's signal, and a run can make hundreds of requests.
 */
class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private failure: DiscoveryFailure | undefined;
  private readonly onExternalAbort = () => this.fail(new DiscoveryFailure("timeout", "discovery was cancelled"));

  constructor(
    ms: number,
    private readonly external?: AbortSignal,
  ) {
    this.timer = setTimeout(() => this.fail(new DiscoveryFailure("timeout", `discovery did not finish within ${ms} ms`)), ms);
    if (external?.aborted) this.onExternalAbort();
    else external?.addEventListener("abort", this.onExternalAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get reason(): DiscoveryFailure | undefined {
    return this.failure;
  }

  fail(failure: DiscoveryFailure): void {
    if (this.failure) return;
    this.failure = failure;
    this.controller.abort(failure);
  }

  race<T>(work: Promise<T>): Promise<T> {
    work.catch(() => undefined);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(this.failure);
      this.controller.signal.addEventListener("abort", onAbort, { once: true });
      work.then(
        (value) => {
          this.controller.signal.removeEventListener("abort", onAbort);
          resolve(value);
        },
        (error: unknown) => {
          this.controller.signal.removeEventListener("abort", onAbort);
          reject(error);
        },
      );
    });
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.external?.removeEventListener("abort", this.onExternalAbort);
  }
}

/** Settles with `work`, or fails with `onTimeout()` after `ms`; `work` is left to settle unobserved. */
function within<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  work.catch(() => undefined);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

// ---- failures -----------------------------------------------------------------------------------------

const CONNECT_ERRORS = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_SOCKET", "UND_ERR_CLOSED"]);
const TIMEOUT_ERRORS = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "ETIMEDOUT"]);
/** Not yet in the SDK's ErrorCode: a 2026-07-28 server's answer to a revision it does not speak. */
const UNSUPPORTED_PROTOCOL_VERSION = -32022;

/**
 * Maps what the SDK, undici or the safe fetch threw onto the outcome codes; the messages are written here,
 * quoting the server only where it explains the failure. Nothing is shortened here: discoverServer redacts
 * the whole message, then clips it.
 */
function classify(error: unknown): DiscoveryFailure {
  if (error instanceof DiscoveryFailure) return error;
  if (error instanceof BlockedAddressError) return new DiscoveryFailure("blocked_address", error.message);
  if (error instanceof ResponseTooLargeError) return new DiscoveryFailure("manifest_too_large", error.message);
  if (error instanceof McpError) {
    if (error.code === ErrorCode.RequestTimeout) return new DiscoveryFailure("timeout", "the server did not answer a request in time");
    if (error.code === ErrorCode.ConnectionClosed) return new DiscoveryFailure("connect_failed", "the connection to the server closed");
    if (error.code === UNSUPPORTED_PROTOCOL_VERSION) return new DiscoveryFailure("unsupported_protocol_version", `the server refused the protocol version: ${error.message}`);
    return new DiscoveryFailure("protocol_error", `the server answered with JSON-RPC error ${error.code}: ${error.message.replace(/^MCP error -?\d+: /, "")}`);
  }
  const status = httpStatusOf(error);
  if (status !== undefined) return new DiscoveryFailure("http_error", `the server answered HTTP ${status}`);
  if (error instanceof StreamableHTTPError && error.code === -1) return new DiscoveryFailure("invalid_response", "the server answered with a content type MCP does not use");
  const message = error instanceof Error ? error.message : String(error);
  const unsupported = /^Server's protocol version is not supported: (.*)$/s.exec(message);
  if (unsupported) {
    const offered = unsupported[1] ?? "";
    return new DiscoveryFailure("unsupported_protocol_version", `the server offered protocol version ${offered}, which this client does not speak`, offered);
  }
  if (error instanceof Error && (error.name === "ZodError" || error instanceof SyntaxError)) {
    return new DiscoveryFailure("invalid_response", "the server's answer is not a valid MCP message");
  }
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) return new DiscoveryFailure("timeout", "a request to the server timed out");
  const code = causeCode(error);
  if (code !== undefined && TIMEOUT_ERRORS.has(code)) return new DiscoveryFailure("timeout", `the server did not answer in time (${code})`);
  if (code !== undefined && CONNECT_ERRORS.has(code)) return new DiscoveryFailure("connect_failed", `could not reach the server (${code})`);
  if (error instanceof SseError || error instanceof StreamableHTTPError || (error instanceof TypeError && message === "fetch failed")) {
    return new DiscoveryFailure("connect_failed", `could not reach the server: ${message}`);
  }
  return new DiscoveryFailure("protocol_error", message);
}

function httpStatusOf(error: unknown): number | undefined {
  // 3xx included: the transports follow redirects within the origin only, and return any other as it came.
  const isStatus = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 300 && n <= 599;
  if ((error instanceof StreamableHTTPError || error instanceof SseError) && isStatus(error.code)) return error.code;
  // The legacy transport's POST failure is a plain Error with the status in its text.
  const match = error instanceof Error ? /\(HTTP (\d{3})\)/.exec(error.message) : null;
  const parsed = match ? Number(match[1]) : undefined;
  return isStatus(parsed) ? parsed : undefined;
}

/** undici reports network failures as TypeError("fetch failed") with the errno (or an AggregateError of them) in its cause. */
function causeCode(error: unknown): string | undefined {
  const queue: unknown[] = [error];
  for (let i = 0; i < queue.length && i < 16; i++) {
    const e = queue[i];
    if (e === null || typeof e !== "object") continue;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    if ("cause" in e) queue.push((e as { cause: unknown }).cause);
    if (e instanceof AggregateError) queue.push(...e.errors);
  }
  return undefined;
}

// ---- inputs and secrets -------------------------------------------------------------------------------

function targetUrl(target: DiscoveryTarget): URL {
  let url: URL;
  try {
    url = new URL(target.url);
  } catch {
    throw new DiscoveryFailure("connect_failed", "the server URL is not a valid URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new DiscoveryFailure("blocked_address", `scheme ${url.protocol} is not allowed`);
  if (target.transport !== "auto" && target.transport !== "streamable-http" && target.transport !== "sse") {
    throw new DiscoveryFailure("connect_failed", "unknown transport");
  }
  return url;
}

/** A limit that is not a positive number falls back to the default rather than disabling the bound. */
function boundedLimits(limits: DiscoveryLimits): DiscoveryLimits {
  const out = { ...DEFAULT_DISCOVERY_LIMITS };
  for (const key of Object.keys(out) as (keyof DiscoveryLimits)[]) {
    const value = limits?.[key];
    if (typeof value === "number" && Number.isFinite(value) && value > 0) out[key] = Math.floor(value);
  }
  return out;
}

/**
 * Header values are credentials as often as not, and servers echo requests into error text. Shorter than
 * four characters a value is no secret, and blotting it out would garble every message it occurs in.
 */
function secretsOf(target: DiscoveryTarget): string[] {
  const values: string[] = [];
  if (target?.headers && typeof target.headers === "object") {
    for (const value of Object.values(target.headers)) {
      if (typeof value !== "string") continue;
      values.push(value, ...value.split(/\s+/).filter((part) => part.length >= 8));
    }
  }
  try {
    const url = new URL(target.url);
    // Each as the URL's text spells it (a message quotes the URL: '+' and '%2B' stay so there) and as parsed;
    // a value that does not decode ('%' with no hex after it) is still blotted out as written.
    const decoded = (raw: string, plus: boolean) => {
      try {
        return decodeURIComponent(plus ? raw.replace(/\+/g, " ") : raw);
      } catch {
        return raw;
      }
    };
    const raws = url.search.slice(1).split("&").map((pair) => pair.slice(pair.indexOf("=") + 1 || pair.length));
    for (const raw of [url.username, url.password]) values.push(raw, decoded(raw, false));
    for (const raw of raws) values.push(raw, decoded(raw, true), decoded(raw, false));
  } catch {
    // an unparseable URL is reported without being quoted
  }
  return [...new Set(values.filter((v) => v.length >= 4))].sort((a, b) => b.length - a.length);
}

function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join("[redacted]");
  return out;
}

function clip(text: string, max = MAX_MESSAGE): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
