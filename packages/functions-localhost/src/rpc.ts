// The worker's RPC shapes (a subset of @azure/functions-core's types, which are not shipped in the
// package) and the conversions between them and plain values.

export interface RpcHttpCookie {
  name?: string | null;
  value?: string | null;
  domain?: { value?: string | null } | null;
  path?: { value?: string | null } | null;
  expires?: { value?: { seconds?: number | null; nanos?: number | null } | null } | null;
  secure?: { value?: boolean | null } | null;
  httpOnly?: { value?: boolean | null } | null;
  sameSite?: "none" | "lax" | "strict" | "explicitNone" | null;
  maxAge?: { value?: number | null } | null;
}

export interface RpcHttpData {
  method?: string | null;
  url?: string | null;
  headers?: Record<string, string> | null;
  body?: RpcTypedData | null;
  params?: Record<string, string> | null;
  statusCode?: string | null;
  query?: Record<string, string> | null;
  cookies?: RpcHttpCookie[] | null;
  enableContentNegotiation?: boolean | null;
  /**
   * Not the worker's: the library's own HttpRequest init takes the fetch `Request` behind the request
   * ready-made here (http-request.ts). Never sent back.
   */
  nativeRequest?: unknown;
}

export interface RpcTypedData {
  string?: string | null;
  json?: string | null;
  bytes?: Uint8Array | null;
  stream?: Uint8Array | null;
  http?: RpcHttpData | null;
  int?: number | null;
  double?: number | null;
  collectionBytes?: { bytes?: Uint8Array[] | null } | null;
  collectionString?: { string?: string[] | null } | null;
  collectionDouble?: { double?: number[] | null } | null;
  collectionSint64?: { sint64?: number[] | null } | null;
}

export interface RpcParameterBinding {
  name: string;
  data?: RpcTypedData;
}

export interface RpcInvocationResponse {
  invocationId?: string | null;
  outputData?: { name?: string | null; data?: RpcTypedData | null }[] | null;
  returnValue?: RpcTypedData | null;
}

export interface InvocationModelLike {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], callback: (...args: unknown[]) => unknown): Promise<unknown>;
  getResponse(context: unknown, result: unknown): Promise<RpcInvocationResponse>;
}

export interface ProgrammingModelLike {
  name?: string;
  version?: string;
  getInvocationModel(coreCtx: unknown): InvocationModelLike | Promise<InvocationModelLike>;
  getCapabilities?(caps: Record<string, string>): Record<string, string> | Promise<Record<string, string>>;
}

export type InvocationState = "preInvocationHooks" | "postInvocationHooks" | "invocation" | undefined;

// ---------------------------------------------------------------------------------------------
// Value conversions

export function isHttpTriggerType(type: string): boolean {
  return type.toLowerCase() === "httptrigger";
}

export function isTimerTriggerType(type: string): boolean {
  return type.toLowerCase() === "timertrigger";
}

/** Wraps a plain value as RpcTypedData the way the host would send it. */
export function toRpcTypedData(value: unknown): RpcTypedData | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string") return { string: value };
  if (Buffer.isBuffer(value)) return { bytes: value };
  if (value instanceof Uint8Array) return { bytes: value };
  if (value instanceof ArrayBuffer) return { bytes: new Uint8Array(value) };
  if (typeof value === "number") return Number.isInteger(value) ? { int: value } : { double: value };
  return { json: JSON.stringify(value) };
}

/**
 * RpcTypedData `{ json }` of a value, serialised on first read: for metadata the library may never read
 * (it reads no HTTP or timer trigger's). The value must not change once it is handed over.
 */
export class LazyJson implements RpcTypedData {
  readonly #value: () => unknown;
  #json: string | undefined;

  constructor(value: () => unknown) {
    this.#value = value;
  }

  get json(): string {
    return (this.#json ??= JSON.stringify(this.#value()));
  }
}

export function tryJsonParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

/** Converts RpcTypedData coming back from the library into a plain value (see LocalHost.invoke). */
export function fromRpcTypedData(data: RpcTypedData | null | undefined): unknown {
  if (data === null) return null;
  if (data === undefined) return undefined;
  if (data.string !== undefined && data.string !== null) return data.string;
  if (data.json !== undefined && data.json !== null) return JSON.parse(data.json);
  if (data.bytes) return Buffer.from(data.bytes);
  if (data.stream) return Buffer.from(data.stream);
  if (data.http) return data.http;
  if (data.int !== undefined && data.int !== null) return Number(data.int);
  if (data.double !== undefined && data.double !== null) return data.double;
  if (data.collectionBytes?.bytes) return data.collectionBytes.bytes.map((b) => Buffer.from(b));
  if (data.collectionString?.string) return data.collectionString.string.map(tryJsonParse);
  if (data.collectionDouble?.double) return data.collectionDouble.double;
  if (data.collectionSint64?.sint64) return data.collectionSint64.sint64.map(Number);
  return undefined;
}

/** The bytes of an HTTP body as the library returned it. */
export function bodyBytes(body: RpcTypedData | null | undefined): Buffer {
  if (!body) return Buffer.alloc(0);
  if (body.bytes) return Buffer.from(body.bytes.buffer, body.bytes.byteOffset, body.bytes.byteLength);
  if (body.stream) return Buffer.from(body.stream);
  if (typeof body.string === "string") return Buffer.from(body.string, "utf8");
  if (typeof body.json === "string") return Buffer.from(body.json, "utf8");
  if (body.int !== undefined && body.int !== null) return Buffer.from(String(body.int));
  if (body.double !== undefined && body.double !== null) return Buffer.from(String(body.double));
  return Buffer.alloc(0);
}
