import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "../../src/util/canonical-json.js";
import { bindingHash, bindingHolds, diffTools, endpointOf, isCurrentPin, legacyBindingHash, toolHash } from "../../src/pillars/tools/definitions.js";
import { approvalStateOf } from "../../src/pillars/tools/grants.js";

const weather = () => ({
  name: "get_weather",
  title: "Get weather",
  description: "Current weather for a city",
  inputSchema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  annotations: { readOnlyHint: true },
  icons: [{ src: "https://example.invalid/w.png" }],
});

const entry = (definition: Record<string, unknown>) => ({ name: String(definition.name), hash: toolHash(definition), definition });

describe("canonicalJson", () => {
  it("matches the canonicalize package (RFC 8785) on any JSON value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(canonicalJson(value)).toBe(canonicalize(value));
      }),
      { numRuns: 500 },
    );
  });

  it("orders keys by UTF-16 code units and writes numbers as ECMAScript does", () => {
    expect(canonicalJson({ b: 1, a: [1e21, -0, 0.1, "x"], "\u00e9": true, "\ud83d\ude00": null, A: {} })).toBe(
      '{"A":{},"a":[1e+21,0,0.1,"x"],"b":1,"é":true,"😀":null}',
    );
  });

  it("never throws: lone surrogates are escaped, cycles and non-JSON values degrade as JSON.stringify would", () => {
    expect(canonicalJson({ s: "\ud800" })).toBe('{"s":"\\ud800"}');
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(canonicalJson(cyclic)).toBe('{"a":1,"self":null}');
    expect(canonicalJson({ u: undefined, f: () => 1, n: NaN, i: -Infinity, arr: [undefined, Symbol("s")] })).toBe('{"arr":[null,null],"i":null,"n":null}');
    expect(canonicalJson(undefined)).toBe("null");
  });

  it("handles nesting far deeper than the call stack allows", () => {
    let deep: unknown = "leaf";
    for (let i = 0; i < 200_000; i++) deep = { a: deep };
    const text = canonicalJson(deep);
    expect(text.startsWith('{"a":{"a":')).toBe(true);
    expect(text.length).toBe(200_000 * '{"a":}'.length + '"leaf"'.length);
  });
});

describe("toolHash", () => {
  it("is the hex SHA-256 of the canonical JSON of the tool without _meta", () => {
    const tool = { ...weather(), _meta: { trace: "1" } };
    expect(toolHash(tool)).toBe(createHash("sha256").update(canonicalize(weather())!).digest("hex"));
  });

  it("does not change with key order or _meta", () => {
    const reordered = {
      icons: [{ src: "https://example.invalid/w.png" }],
      annotations: { readOnlyHint: true },
      inputSchema: { required: ["city"], properties: { city: { type: "string" } }, type: "object" },
      description: "Current weather for a city",
      title: "Get weather",
      name: "get_weather",
      _meta: { requestId: "abc" },
    };
    expect(toolHash(reordered)).toBe(toolHash(weather()));
  });

  it("changes when anything that describes the tool changes", () => {
    const base = toolHash(weather());
    const variants: Record<string, Record<string, unknown>> = {
      description: { ...weather(), description: "Current weather, and where you are" },
      title: { ...weather(), title: "Weather" },
      schema: { ...weather(), inputSchema: { type: "object", properties: { city: { type: "string", maxLength: 5 } } } },
      annotation: { ...weather(), annotations: { readOnlyHint: false } },
      icon: { ...weather(), icons: [{ src: "https://example.invalid/other.png" }] },
      vendor: { ...weather(), "x-vendor": 1 },
    };
    const hashes = Object.entries(variants).map(([what, tool]) => ({ what, same: toolHash(tool) === base }));
    expect(hashes.filter((h) => h.same)).toEqual([]);
    expect(new Set(Object.values(variants).map(toolHash)).size).toBe(Object.keys(variants).length);
  });

  it("counts every field a server sent, __proto__ included", () => {
    const a = JSON.parse('{"name":"t","__proto__":{"x":1}}') as Record<string, unknown>;
    const b = JSON.parse('{"name":"t","__proto__":{"x":2}}') as Record<string, unknown>;
    expect(toolHash(a)).not.toBe(toolHash(b));
    expect(diffTools([entry(a)], [entry(b)]).changed).toEqual([{ name: "t", fields: ["__proto__"] }]);
  });

  it("never throws on hostile definitions", () => {
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 50_000; i++) deep = { properties: { a: deep } };
    expect(toolHash({ name: "deep", inputSchema: deep })).toMatch(/^[0-9a-f]{64}$/);
    for (const raw of [null, [], "x", { name: "\udc00" }]) expect(toolHash(raw as never)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("diffTools", () => {
  const remove = entry({ name: "delete_file", description: "Deletes a file", inputSchema: { type: "object" } });
  const list = entry({ name: "list_files", description: "Lists files", inputSchema: { type: "object" } });

  it("reports nothing between equal lists", () => {
    expect(diffTools([entry(weather()), remove], [remove, entry(weather())])).toEqual({ added: [], removed: [], changed: [] });
  });

  it("reports added and removed tools by name, sorted", () => {
    const zeta = entry({ name: "zeta", inputSchema: { type: "object" } });
    expect(diffTools([zeta, remove], [list, entry(weather()), zeta])).toEqual({ added: ["get_weather", "list_files"], removed: ["delete_file"], changed: [] });
  });

  it("names the top-level fields that changed", () => {
    const changed = { ...weather(), description: "Now with location history", annotations: { readOnlyHint: false, destructiveHint: true } };
    const withoutTitle: Record<string, unknown> = { ...remove.definition };
    const removeChanged = { ...withoutTitle, title: "Delete a file" };
    expect(diffTools([entry(weather()), remove], [entry(changed), entry(removeChanged)])).toEqual({
      added: [],
      removed: [],
      changed: [
        { name: "delete_file", fields: ["title"] },
        { name: "get_weather", fields: ["annotations", "description"] },
      ],
    });
  });

  it("does not count a change of _meta, which the hash ignores", () => {
    expect(diffTools([entry({ ...weather(), _meta: { a: 1 } })], [entry({ ...weather(), _meta: { a: 2 } })]).changed).toEqual([]);
  });

  it("compares field content, not key order", () => {
    const reordered = { ...weather(), inputSchema: { required: ["city"], type: "object", properties: { city: { type: "string" } } } };
    expect(diffTools([entry(weather())], [entry(reordered)])).toEqual({ added: [], removed: [], changed: [] });
  });
});

describe("tool bindings: where a call goes", () => {
  const op = { method: "DELETE", urlTemplate: "/items/{id}" };
  const here = endpointOf({ kind: "openapi", baseUrl: "https://items.example.com/v1" });
  const there = endpointOf({ kind: "openapi", baseUrl: "https://other.example.com/v1" });

  it("pins the endpoint with the operation, for REST and MCP tools alike", () => {
    expect(bindingHash(op, here)).toMatch(/^v2:[0-9a-f]{64}$/);
    expect(bindingHolds(bindingHash(op, here), op, here)).toBe(true);
    expect(bindingHolds(bindingHash(op, here), op, there)).toBe(false);
    expect(bindingHolds(bindingHash(op, here), { ...op, urlTemplate: "/admin/{id}" }, here)).toBe(false);
    const mcp = endpointOf({ kind: "remote", url: "https://mcp.example.com/mcp" });
    expect(bindingHolds(bindingHash(undefined, mcp), undefined, mcp)).toBe(true);
    expect(bindingHolds(bindingHash(undefined, mcp), undefined, endpointOf({ kind: "remote", url: "https://evil.example.com/mcp" }))).toBe(false);
    // A URL that differs only in spelling is the same endpoint.
    expect(endpointOf({ kind: "openapi", baseUrl: "HTTPS://Items.Example.com:443/v1" })).toBe(here);
  });

  it("older pins hold as they were made (the operation alone, or none) until discovery pins them again", () => {
    expect(bindingHolds(legacyBindingHash(op), op, there)).toBe(true);
    expect(bindingHolds(legacyBindingHash(op), { ...op, method: "GET" }, here)).toBe(false);
    expect(bindingHolds(undefined, op, there)).toBe(true);
    expect([isCurrentPin(undefined), isCurrentPin(legacyBindingHash(op)), isCurrentPin(bindingHash(op, here))]).toEqual([false, false, true]);
  });

  it("an approved grant pinned to another endpoint reads suspended and is not callable", () => {
    const tool = { hash: "h", annotations: { readOnly: false } as never, operation: op };
    const grant = { state: "approved", pinnedHash: "h", pinnedBinding: bindingHash(op, here) } as never;
    expect(approvalStateOf("all", tool, grant, here)).toEqual({ state: "approved", callable: true });
    expect(approvalStateOf("all", tool, grant, there)).toEqual({ state: "suspended", callable: false });
  });
});
