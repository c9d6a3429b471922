/**
 * The `context` object of policy expressions, over the state of one request. Members mirror the
 * APIM object model (IProxyRequestContext and friends) for the parts the local gateway implements;
 * the expression compiler only lets through member names listed in expressions/engine.ts
 * KNOWN_MEMBERS, and a member of that list an object here does not have fails at run time with
 * NotSupportedException (an expression error, as in APIM).
 */
import { ByteArray, CsException, csCast, describe, JToken, unknownMember, type CsArg, type HostObject } from "../expressions/values.js";
import { HeaderBag } from "./message.js";

export interface LastError {
  source: string;
  reason: string;
  message: string;
  scope: string;
  section: string;
  policyId?: string;
}

export interface ResponseState {
  status: number;
  reason: string;
  headers: HeaderBag;
  /** Buffered body; undefined while a streamed body is passed through (stream set). */
  body: Buffer | undefined;
  stream?: AsyncIterable<Buffer>;
  /** Stops a streamed body at its source (the client went away). */
  cancel?: () => void;
}

export interface RequestState {
  requestId: string;
  ip: string;
  method: string;
  /** The URL as the client sent it (with the gateway's host). */
  originalUrl: URL;
  /** The operation-relative path forwarded to the backend (rewrite-uri changes it). */
  path: string;
  query: URLSearchParams;
  headers: HeaderBag;
  body: Buffer | undefined;
  /** Set when As<T>() read the body without preserveContent: later reads find it empty, as in APIM. */
  bodyConsumed: boolean;
  matched: Record<string, string>;
  /** Absent when no API (or operation) matched: APIM's predefined errors run on-error without them. */
  api?: { id: string; name: string; path: string };
  operation?: { id: string; name: string; method: string; urlTemplate: string };
  product?: { id: string; name: string };
  subscription?: { id: string; name: string; key: string; primaryKey: string; secondaryKey: string };
  variables: Map<string, unknown>;
  response: ResponseState | undefined;
  lastError: LastError | undefined;
  deployment: { region: string; serviceName: string };
  /** A request to an MCP server, whose policies must not read the response body. */
  mcp?: boolean;
  /** The CORS headers a matching cors statement adds to whatever response ends the request. */
  cors?: import("../policy/elements/cors.js").CorsDecision;
}

const obj = (csType: string, members: Record<string, () => unknown>, methods: Record<string, (args: CsArg[], typeArgs: string[]) => unknown> = {}): HostObject => ({
  csType,
  getMember(name: string) {
    const m = members[name];
    if (!m) throw unknownMember(csType, name);
    return m();
  },
  invoke(name: string, args: CsArg[], typeArgs: string[]) {
    const m = methods[name];
    if (m) return m(args, typeArgs);
    if (name === "ToString" && args.length === 0) return csType;
    throw unknownMember(csType, `${name}()`);
  },
});

function argValue(args: CsArg[], i: number, name: string): unknown {
  const byName = args.find((a) => a.name === name);
  if (byName) return byName.value;
  const positional = args.filter((a) => a.name === undefined);
  return positional[i]?.value;
}

function stringArg(args: CsArg[], i: number, what: string): string {
  const v = args[i]?.value;
  if (typeof v !== "string") throw new CsException("ArgumentException", `${what} must be a string, got ${describe(v)}`);
  return v;
}

/** IReadOnlyDictionary<string, string[]> over a HeaderBag (case-insensitive). */
function headersObject(bag: () => HeaderBag): HostObject {
  return {
    csType: "IReadOnlyDictionary<string,string[]>",
    getMember(name) {
      if (name === "Count") return bag().names().length;
      throw unknownMember(this.csType, name);
    },
    invoke(name, args) {
      if (name === "GetValueOrDefault") {
        const v = bag().joined(stringArg(args, 0, "header name"));
        return v ?? (args.length > 1 ? args[1]!.value : null);
      }
      if (name === "ContainsKey") return bag().has(stringArg(args, 0, "header name"));
      throw unknownMember(this.csType, `${name}()`);
    },
    getIndex(key) {
      const v = bag().get(String(key));
      if (!v) throw new CsException("KeyNotFoundException", `The given key '${String(key)}' was not present in the dictionary.`);
      return [...v];
    },
  };
}

/** IReadOnlyDictionary<string, string> (matched parameters, URL query values joined). */
function dictionaryObject(get: () => Map<string, string>, csType = "IReadOnlyDictionary<string,string>"): HostObject {
  return {
    csType,
    getMember(name) {
      if (name === "Count") return get().size;
      throw unknownMember(csType, name);
    },
    invoke(name, args) {
      const key = stringArg(args, 0, "key");
      if (name === "ContainsKey") return get().has(key);
      if (name === "GetValueOrDefault") return get().get(key) ?? (args.length > 1 ? args[1]!.value : null);
      throw unknownMember(csType, `${name}()`);
    },
    getIndex(key) {
      const v = get().get(String(key));
      if (v === undefined) throw new CsException("KeyNotFoundException", `The given key '${String(key)}' was not present in the dictionary.`);
      return v;
    },
  };
}

function urlObject(url: () => URL): HostObject {
  return obj("IUrl", {
    Host: () => url().hostname,
    Path: () => url().pathname,
    Port: () => Number(url().port || (url().protocol === "https:" ? 443 : 80)),
    Scheme: () => url().protocol.replace(":", ""),
    QueryString: () => url().search,
    Query: () => dictionaryObject(() => {
      const m = new Map<string, string>();
      for (const k of new Set(url().searchParams.keys())) m.set(k, url().searchParams.getAll(k).join(","));
      return m;
    }, "IReadOnlyDictionary<string,string[]>"),
  });
}

/** IMessageBody.As<T>(preserveContent). */
function bodyObject(read: () => Buffer | undefined, consume: () => void): HostObject {
  return obj(
    "IMessageBody",
    {},
    {
      As: (args, typeArgs) => {
        const t = typeArgs[0];
        if (!t) throw new CsException("ArgumentException", "As<T>() needs a type argument");
        const preserve = argValue(args, 0, "preserveContent");
        if (preserve !== undefined && typeof preserve !== "boolean") throw new CsException("ArgumentException", "preserveContent must be a bool");
        const bytes = read() ?? Buffer.alloc(0);
        if (!preserve) consume();
        switch (t) {
          case "string":
            return bytes.toString("utf8");
          case "byte[]":
            return new ByteArray(new Uint8Array(bytes));
          case "JObject":
          case "JToken":
          case "JArray": {
            const token = JToken.parse(bytes.toString("utf8"));
            if (t !== "JToken" && token.csType !== t) throw new CsException("InvalidCastException", `the body is a ${token.csType}, not a ${t}`);
            return token;
          }
          default:
            throw new CsException("NotSupportedException", `As<${t}>() is not supported`);
        }
      },
    },
  );
}

/** context.Variables: IReadOnlyDictionary<string, object> with GetValueOrDefault<T>. */
function variablesObject(vars: Map<string, unknown>): HostObject {
  return {
    csType: "IReadOnlyDictionary<string,object>",
    getMember(name) {
      if (name === "Count") return vars.size;
      throw unknownMember(this.csType, name);
    },
    invoke(name, args, typeArgs) {
      const key = stringArg(args, 0, "variable name");
      if (name === "ContainsKey") return vars.has(key);
      if (name === "GetValueOrDefault") {
        const fallback = args.length > 1 ? args[1]!.value : null;
        if (!vars.has(key)) return fallback;
        const v = vars.get(key);
        // "throws an exception if the specified type does not match"
        return typeArgs[0] ? csCast(typeArgs[0], v) : v;
      }
      throw unknownMember(this.csType, `${name}()`);
    },
    getIndex(key) {
      if (typeof key !== "string" || !vars.has(key)) throw new CsException("KeyNotFoundException", `The given key '${String(key)}' was not present in the dictionary.`);
      return vars.get(key);
    },
  };
}

function guidObject(value: string): HostObject {
  return { ...obj("Guid", {}, { ToString: () => value }), toCsString: () => value };
}

/** The `context` of one request. */
export function contextObject(s: RequestState): HostObject {
  const request = obj("IRequest", {
    Method: () => s.method,
    Url: () => urlObject(() => {
      const u = new URL(s.originalUrl.href);
      u.pathname = `${s.api?.path ? `/${s.api.path}` : ""}${s.path}`;
      u.search = s.query.toString();
      return u;
    }),
    OriginalUrl: () => urlObject(() => s.originalUrl),
    Headers: () => headersObject(() => s.headers),
    Body: () => (s.body === undefined || s.body.length === 0 || s.bodyConsumed ? null : bodyObject(() => s.body, () => (s.bodyConsumed = true))),
    MatchedParameters: () => dictionaryObject(() => new Map(Object.entries(s.matched))),
    IpAddress: () => s.ip,
  });
  const response = obj("IResponse", {
    StatusCode: () => s.response?.status ?? 200,
    StatusReason: () => s.response?.reason ?? "OK",
    Headers: () => headersObject(() => s.response?.headers ?? emptyHeaders()),
    Body: () => {
      // "Don't access the response body using the context.Response.Body variable within MCP server
      // policies": it buffers the answer and breaks streaming (Learn). Refused, as an expression error.
      if (s.mcp) throw new CsException("NotSupportedException", "an MCP server's policies must not read context.Response.Body (APIM: it breaks streaming)");
      return s.response?.body === undefined || s.response.body.length === 0 ? null : bodyObject(() => s.response?.body, () => undefined);
    },
  });
  const nullable = (v: HostObject | null) => () => v;
  return obj("IProxyRequestContext", {
    Api: () => {
      const api = s.api;
      return api ? obj("IApi", { Id: () => api.id, Name: () => api.name, Path: () => api.path }) : null;
    },
    Operation: () => {
      const op = s.operation;
      return op ? obj("IOperation", { Id: () => op.id, Name: () => op.name, Method: () => op.method, UrlTemplate: () => op.urlTemplate }) : null;
    },
    Product: () => (s.product ? obj("IProduct", { Id: () => s.product!.id, Name: () => s.product!.name }) : null),
    Subscription: () =>
      s.subscription
        ? obj("ISubscription", {
            Id: () => s.subscription!.id,
            Name: () => s.subscription!.name,
            Key: () => s.subscription!.key,
            PrimaryKey: () => s.subscription!.primaryKey,
            SecondaryKey: () => s.subscription!.secondaryKey,
          })
        : null,
    // No developer-portal users: subscriptions are created without an owner.
    User: nullable(null),
    Request: () => request,
    Response: () => response,
    Variables: () => variablesObject(s.variables),
    RequestId: () => guidObject(s.requestId),
    Deployment: () => obj("IDeployment", { Region: () => s.deployment.region, ServiceName: () => s.deployment.serviceName, GatewayId: () => "managed" }),
    LastError: () =>
      s.lastError
        ? obj("ILastError", {
            Source: () => s.lastError!.source,
            Reason: () => s.lastError!.reason,
            Message: () => s.lastError!.message,
            Scope: () => s.lastError!.scope,
            Section: () => s.lastError!.section,
            PolicyId: () => s.lastError!.policyId ?? "",
          })
        : null,
  });
}

const EMPTY = new HeaderBag();
function emptyHeaders(): HeaderBag {
  return EMPTY;
}
