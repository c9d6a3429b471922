import { beforeAll, describe, expect, it } from "vitest";
import { compileExpression, type ExpressionError, initExpressions } from "../../src/local-gateway/expressions/engine.js";
import { contextObject, type RequestState } from "../../src/local-gateway/runtime/context.js";
import { HeaderBag } from "../../src/local-gateway/runtime/message.js";
import * as X from "../../src/policy/expressions.js";

function state(over: Partial<RequestState> = {}): RequestState {
  return {
    requestId: "5b0c4c1e-7d25-4f5e-9a43-2f3a2c1d0e9f",
    ip: "127.0.0.1",
    method: "POST",
    originalUrl: new URL("http://gw/aigov/p1/v1/chat/completions?x=1"),
    path: "/v1/chat/completions",
    query: new URLSearchParams("x=1"),
    headers: new HeaderBag([["Content-Type", "application/json"], ["X-Correlation-Id", "abc"]]),
    body: Buffer.from(JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] })),
    bodyConsumed: false,
    matched: {},
    api: { id: "aigov-t-p1", name: "P1", path: "aigov/p1" },
    operation: { id: "v1-chat-completions", name: "chat", method: "POST", urlTemplate: "/v1/chat/completions" },
    variables: new Map(),
    response: undefined,
    lastError: undefined,
    deployment: { region: "local", serviceName: "local" },
    ...over,
  };
}

const run = (src: string, s: RequestState = state(), random = () => 0.5) => {
  const kind = src.startsWith("@{") ? "block" : "single";
  return compileExpression(src.slice(2, -1), kind)({ context: contextObject(s), random, now: Date.now });
};

beforeAll(() => initExpressions());

describe("policy expressions (C# subset over the context model)", () => {
  it("reads the model from the body and from the deployment path parameter", () => {
    expect(run(X.BODY_MODEL)).toBe("gpt-4o");
    expect(run(X.PATH_MODEL)).toBe("");
    expect(run(X.PATH_MODEL, state({ matched: { "deployment-id": "dep-a" } }))).toBe("dep-a");
    expect(run(X.BODY_MODEL, state({ body: undefined }))).toBe("");
    expect(run(X.BODY_MODEL, state({ body: Buffer.from("{}") }))).toBe("");
    const s = state();
    s.variables.set("aigov-path-model", "a");
    s.variables.set("aigov-body-model", "b");
    expect(run(X.MODEL_MISMATCH, s)).toBe(true);
    expect(run(X.REQUESTED_MODEL, s)).toBe("a");
    s.variables.set("aigov-body-model", "a");
    expect(run(X.MODEL_MISMATCH, s)).toBe(false);
  });

  it("reads typed variables, list lookups and casts exactly (a boxed string is not an int)", () => {
    const s = state();
    s.variables.set("aigov-models", "a|gpt-4o|c");
    s.variables.set("aigov-model", "gpt-4o");
    s.variables.set("aigov-pools", "p1|p2|p3");
    const ix = run(X.MODEL_INDEX, s);
    expect(ix).toBe(1);
    s.variables.set("aigov-model-ix", ix);
    expect(run(X.MODEL_UNKNOWN, s)).toBe(false);
    expect(run(X.MODEL_POOL, s)).toBe("p2");
    s.variables.set("aigov-model-ix", "1");
    expect(() => run(X.MODEL_POOL, s)).toThrow(/InvalidCastException/);
  });

  it("builds counter keys with ?. and ?? and string concatenation", () => {
    const s = state({ subscription: { id: "key_1", name: "k", key: "x", primaryKey: "x", secondaryKey: "y" } });
    s.variables.set("aigov-model", "gpt-4o");
    expect(run(X.counterKey("tpm", "key", false), s)).toBe("tpm-key|key_1|aigov-t-p1");
    expect(run(X.counterKey("tq", "key", true), s)).toBe("tq-key|key_1|aigov-t-p1|gpt-4o");
    expect(run(X.counterKey("rpm", "key", false))).toBe("rpm-key|none|aigov-t-p1");
  });

  it("echoes correlation ids and renders the request id", () => {
    expect(run(X.correlationEcho("x-correlation-id"))).toBe("abc");
    expect(run(X.correlationEcho("x-request-id"))).toBe("5b0c4c1e-7d25-4f5e-9a43-2f3a2c1d0e9f");
    expect(run(X.REQUEST_ID)).toBe("5b0c4c1e-7d25-4f5e-9a43-2f3a2c1d0e9f");
  });

  it("runs blocks with locals, indexer assignment and if/return", () => {
    const out = run(`@{ var body = context.Request.Body.As<JObject>(preserveContent: true); body["model"] = "dep-1"; if (body.ContainsKey("stream")) { return "s"; } return body.ToString(); }`);
    expect(JSON.parse(out as string)).toEqual({ model: "dep-1", messages: [{ role: "user", content: "hi" }] });
  });

  it("consumes the body unless preserveContent is true", () => {
    const s = state();
    run(`@(context.Request.Body.As<string>())`, s);
    expect(run(`@(context.Request.Body == null)`, s)).toBe(true);
  });

  it("evaluates every expression shape the compiler emits without a load error", () => {
    for (const expr of [...X.EXPRESSION_SHAPES].map((e) => e.replace(/"tier"/g, '"kp_x"'))) {
      const kind = expr.startsWith("@{") ? "block" : "single";
      expect(() => compileExpression(expr.slice(2, -1), kind), expr).not.toThrow();
    }
    for (const expr of [X.MODEL_INDEX, X.MODEL_UNKNOWN, X.MODEL_POOL, X.MODEL_GROUP, X.MODEL_NOT_IN_TIER, X.tierNotIn(["kp_a", "kp_b"]), X.abRoll(100), X.abBelow(30), X.promptTooLarge(1000), X.SUNSET, X.DEPRECATION, X.API_ID, X.SUBSCRIPTION_ID, X.MODEL, X.RETRY_CONDITION, X.IS_503, X.sharedCondition("cs", "kp_a")]) {
      expect(() => compileExpression(expr.slice(2, -1), "single"), expr).not.toThrow();
    }
  });

  it("serves an agent's card: the base64 literal decoded (UTF-8), the placeholder replaced by the URL the caller used", () => {
    const card = JSON.stringify({ name: "Agent ✈", supportedInterfaces: [{ url: `${X.AGENT_CARD_PLACEHOLDER}/a2a` }] });
    const at = (url: string) => {
      const s = state({ originalUrl: new URL(url), api: { id: "a", name: "A", path: "aigov/k/p/agents/x" } });
      s.variables.set("aigov-agent-card", Buffer.from(card, "utf8").toString("base64"));
      return JSON.parse(run(X.AGENT_CARD_BODY, s) as string) as { name: string; supportedInterfaces: { url: string }[] };
    };
    expect(at("https://gw.example.com/aigov/k/p/agents/x/.well-known/agent-card.json")).toEqual({ name: "Agent ✈", supportedInterfaces: [{ url: "https://gw.example.com/aigov/k/p/agents/x/a2a" }] });
    expect(at("http://127.0.0.1:7071/aigov/k/p/agents/x/.well-known/agent-card.json").supportedInterfaces[0]!.url).toBe("http://127.0.0.1:7071/aigov/k/p/agents/x/a2a");
    expect(at("http://gw/aigov/k/p/agents/x/.well-known/agent-card.json").supportedInterfaces[0]!.url).toBe("http://gw/aigov/k/p/agents/x/a2a");
    // Whether APIM's context.Api.Path starts with a slash is not documented: both give the same URL.
    const slashed = state({ originalUrl: new URL("https://gw.example.com/aigov/k/p/agents/x/.well-known/agent-card.json"), api: { id: "a", name: "A", path: "/aigov/k/p/agents/x" } });
    slashed.variables.set("aigov-agent-card", Buffer.from(card, "utf8").toString("base64"));
    expect((JSON.parse(run(X.AGENT_CARD_BODY, slashed) as string) as { supportedInterfaces: { url: string }[] }).supportedInterfaces[0]!.url).toBe("https://gw.example.com/aigov/k/p/agents/x/a2a");
    expect(run(`@("//a/b//".TrimStart('/'))`)).toBe("a/b//");
    expect(run(`@("//a/b//".TrimEnd('/', 'b'))`)).toBe("//a");
    expect(run(`@("//a".TrimStart(('/')))`)).toBe("a");
    expect(() => run(`@("ab".TrimStart("ab"))`)).toThrow(/chars \('x'\), not strings/);
    // A one-character string is not a char: C# has no TrimStart(string), and APIM's compiler refuses it.
    expect(() => run(`@("/a".TrimStart("/"))`)).toThrow(/not strings/);
    expect(() => run(`@("/a".TrimStart(("/")))`)).toThrow(/not strings/);
    expect(() => run(`@("a/".TrimEnd('b', @"/"))`)).toThrow(/not strings/);
    // .NET's decoder refuses what is not base64; it does not skip it.
    expect(() => run(`@(Convert.FromBase64String("not base64!"))`)).toThrow(/Base-64/);
    expect(run(`@(Encoding.UTF8.GetString(Convert.FromBase64String("aGk=")))`)).toBe("hi");
    expect(run(X.NOT_AGENT_CARD)).toBe(true);
  });

  it("compares a sunset with DateTime.UtcNow by the gateway's clock, from 00:00 UTC of the date on", () => {
    const at = (iso: string) => compileExpression(X.sunsetPassed("2027-01-31").slice(2, -1), "single")({ context: contextObject(state()), random: () => 0.5, now: () => Date.parse(iso) });
    expect(X.sunsetPassed("2027-01-31")).toBe("@(DateTime.UtcNow >= new DateTime(2027, 1, 31, 0, 0, 0, DateTimeKind.Utc))");
    expect(at("2027-01-30T23:59:59.999Z")).toBe(false);
    expect(at("2027-01-31T00:00:00.000Z")).toBe(true);
    expect(at("2027-02-01T12:00:00.000Z")).toBe(true);
    // .NET compares ticks whatever the Kind; an impossible date throws as its constructor does.
    expect(run("@(new DateTime(2024, 2, 29) < new DateTime(2024, 3, 1, 0, 0, 0, DateTimeKind.Utc))")).toBe(true);
    expect(run("@(new DateTime(2027, 1, 31, 0, 0, 0, DateTimeKind.Utc) == new DateTime(2027, 1, 31))")).toBe(true);
    expect(() => run("@(new DateTime(2023, 2, 29) < DateTime.UtcNow)")).toThrow(/ArgumentOutOfRangeException/);
    expect(() => run("@(DateTime.UtcNow > 3)")).toThrow(/InvalidCastException/);
    expect(() => run('@("at " + DateTime.UtcNow)')).toThrow(/NotSupportedException/);
    expect(() => X.sunsetPassed("2027-02-30")).toThrow(RangeError);
    expect(() => X.sunsetPassed("2027-1-3")).toThrow(RangeError);
  });

  it("refuses what it cannot run faithfully, naming the construct and where it is", () => {
    const err = (src: string) => {
      try {
        compileExpression(src, "single");
      } catch (e) {
        return e as ExpressionError;
      }
      throw new Error(`compiled: ${src}`);
    };
    expect(err("context.Request.Foo").message).toMatch(/member 'Foo'/);
    expect(err("1 / 2").message).toMatch(/operator '\/'/);
    expect(err("x => x").message).toMatch(/lambda/);
    expect(err("context.Api.Id + context.Subscription?.Id").message).toMatch(/parenthesize/);
    expect(err("System.IO.File.ReadAllText(\"/etc/passwd\")").message).toMatch(/ReadAllText|System/);
    const e = err("context.Api.Id +\n  context.Bogus");
    expect([e.line, e.column]).toEqual([1, 10]);
    expect(err("(").message).toMatch(/syntax error/);
  });
});
