import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SCHEMA_LIMITS, annotationsOf, validateOutput, validateTool, type ToolFinding } from "../../src/pillars/tools/validation.js";

const OBJECT = { type: "object" };
const tool = (fields: Record<string, unknown> = {}) => ({ name: "search_docs", inputSchema: OBJECT, ...fields });
const codes = (findings: ToolFinding[]) => findings.map((f) => f.code);
const errorCodes = (findings: ToolFinding[]) => findings.filter((f) => f.severity === "error").map((f) => f.code);
const withProperty = (schema: Record<string, unknown>) => ({ type: "object", properties: { a: schema } });

describe("names", () => {
  it("accepts names the gateway can route", () => {
    for (const name of ["a", "get_weather", "files.read", "list-repos", "V2_tool.x-y", "x".repeat(128)]) {
      expect({ name, findings: validateTool(tool({ name }), "2025-11-25") }).toEqual({ name, findings: [] });
    }
  });

  it("refuses names with characters a `|`-separated list could confuse, or of the wrong length", () => {
    for (const name of ["", "get weather", "a,b", "a|b", "tool/x", "naïve", "x".repeat(129), "a\nb"]) {
      expect({ name, codes: codes(validateTool(tool({ name }), "2025-11-25")) }).toEqual({ name, codes: ["name_not_routable"] });
    }
  });

  it("reports a missing name and one that is not a string", () => {
    expect(codes(validateTool({ inputSchema: OBJECT }, "2025-11-25"))).toEqual(["name_missing"]);
    expect(codes(validateTool({ name: 7, inputSchema: OBJECT }, "2025-11-25"))).toEqual(["name_not_string"]);
  });
});

describe("inputSchema", () => {
  it("is required, must be an object, and must have type object at its root (every version)", () => {
    for (const version of ["2024-11-05", "2025-06-18", "2026-07-28"]) {
      expect(codes(validateTool({ name: "t" }, version))).toEqual(["input_schema_missing"]);
      expect(codes(validateTool({ name: "t", inputSchema: [] }, version))).toEqual(["input_schema_not_object"]);
      expect(codes(validateTool({ name: "t", inputSchema: { type: "array" } }, version))).toEqual(["input_schema_root_not_object"]);
      expect(codes(validateTool({ name: "t", inputSchema: { oneOf: [OBJECT] } }, version))).toEqual(["input_schema_root_not_object"]);
    }
  });

  it("reads a schema without $schema as draft-07 before 2025-11-25 and as 2020-12 from it", () => {
    // Array-form items is draft-07; 2020-12 replaced it with prefixItems.
    const arrayItems = tool({ inputSchema: withProperty({ type: "array", items: [{ type: "string" }] }) });
    expect(validateTool(arrayItems, "2025-06-18")).toEqual([]);
    expect(errorCodes(validateTool(arrayItems, "2025-11-25"))).toEqual(["schema_invalid"]);
    // prefixItems means nothing to draft-07, so a malformed one only matters under 2020-12.
    const badPrefix = tool({ inputSchema: withProperty({ prefixItems: 5 }) });
    expect(validateTool(badPrefix, "2025-06-18")).toEqual([]);
    expect(errorCodes(validateTool(badPrefix, "2025-11-25"))).toEqual(["schema_invalid"]);
  });

  it("follows a declared $schema whatever the version, and refuses dialects it does not support", () => {
    const draft07 = tool({ inputSchema: { $schema: "http://json-schema.org/draft-07/schema#", ...withProperty({ type: "array", items: [{ type: "string" }] }) } });
    expect(validateTool(draft07, "2025-11-25")).toEqual([]);
    const draft2020 = tool({ inputSchema: { $schema: "https://json-schema.org/draft/2020-12/schema", ...withProperty({ prefixItems: [{ type: "string" }] }) } });
    expect(validateTool(draft2020, "2024-11-05")).toEqual([]);
    for (const $schema of ["http://json-schema.org/draft-04/schema#", "https://json-schema.org/draft/2019-09/schema", "https://example.invalid/dialect", "constructor", "__proto__", 42]) {
      expect(codes(validateTool(tool({ inputSchema: { $schema, type: "object" } }), "2025-11-25"))).toEqual(["schema_dialect_unsupported"]);
    }
  });

  it("reports a schema the meta-schema rejects, with a path into it", () => {
    const findings = validateTool(tool({ inputSchema: withProperty({ type: "strin" }) }), "2025-11-25");
    expect(findings).toEqual([expect.objectContaining({ severity: "error", code: "schema_invalid", path: expect.stringMatching(/^\/inputSchema\/properties\/a/) })]);
  });
});

describe("schema bounds, checked before Ajv", () => {
  const nested = (depth: number) => {
    let schema: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < depth; i++) schema = { type: "object", properties: { a: schema } };
    return schema;
  };

  it("refuses nesting past the depth limit without recursing, however deep", () => {
    expect(validateTool(tool({ inputSchema: nested(10) }), "2025-11-25")).toEqual([]);
    expect(codes(validateTool(tool({ inputSchema: nested(SCHEMA_LIMITS.maxDepth) }), "2025-11-25"))).toEqual(["schema_too_deep"]);
    expect(codes(validateTool(tool({ inputSchema: nested(100_000) }), "2025-11-25"))).toEqual(["schema_too_deep"]);
  });

  it("refuses more subschemas than the node limit", () => {
    const properties = Object.fromEntries(Array.from({ length: SCHEMA_LIMITS.maxNodes + 1 }, (_, i) => [`p${i}`, { type: "string" }]));
    expect(codes(validateTool(tool({ inputSchema: { type: "object", properties } }), "2025-11-25"))).toEqual(["schema_too_many_nodes"]);
  });

  it("refuses a schema whose JSON is larger than the byte limit", () => {
    const big = tool({ inputSchema: withProperty({ type: "string", description: "d".repeat(SCHEMA_LIMITS.maxBytes) }) });
    expect(codes(validateTool(big, "2025-11-25"))).toEqual(["schema_too_large"]);
  });

  it("refuses references that leave the schema, and keeps local ones", () => {
    for (const $ref of ["https://example.invalid/s.json", "other.json#/defs/x", "//evil.invalid/x", "urn:x"]) {
      expect(validateTool(tool({ inputSchema: withProperty({ $ref }) }), "2025-11-25")).toEqual([
        expect.objectContaining({ code: "schema_external_ref", path: "/inputSchema/properties/a/$ref" }),
      ]);
    }
    const local = tool({ inputSchema: { type: "object", $defs: { s: { type: "string" } }, properties: { a: { $ref: "#/$defs/s" } } } });
    expect(validateTool(local, "2025-11-25")).toEqual([]);
    expect(codes(validateTool(tool({ inputSchema: withProperty({ $ref: "#/$defs/missing" }) }), "2025-11-25"))).toEqual(["schema_ref_unresolved"]);
    // "#" is the root: how a recursive structure refers to itself.
    const tree = { type: "object", properties: { label: { type: "string" }, children: { type: "array", items: { $ref: "#" } } } };
    expect(validateTool(tool({ inputSchema: tree }), "2025-11-25")).toEqual([]);
    expect(validateOutput({ children: [{ label: "a", children: [{ label: 1 }] }] }, tree, "2025-11-25")).toEqual([
      expect.objectContaining({ code: "output_mismatch", path: "/structuredContent/children/0/children/0/label" }),
    ]);
  });

  it("does not read keywords inside instance data (const, enum, default, examples)", () => {
    const data = withProperty({ type: "object", const: { $ref: "https://example.invalid/x", pattern: "(?<=a)" }, examples: [{ $ref: "http://x.invalid" }] });
    expect(validateTool(tool({ inputSchema: data }), "2025-11-25")).toEqual([]);
  });
});

describe("patterns", () => {
  it("reports lookaround and backreferences, which a linear-time engine cannot run, at the pattern", () => {
    for (const pattern of ["(?<=a)b", "(?=a)", "(?!a)", "(a)\\1"]) {
      expect(validateTool(tool({ inputSchema: withProperty({ type: "string", pattern }) }), "2025-11-25")).toEqual([
        expect.objectContaining({ code: "schema_pattern_unsupported", path: "/inputSchema/properties/a/pattern" }),
      ]);
    }
    const keyed = tool({ inputSchema: { type: "object", patternProperties: { "^(?!x)": { type: "string" } } } });
    expect(codes(validateTool(keyed, "2025-11-25"))).toEqual(["schema_pattern_unsupported"]);
  });

  it("refuses a pattern longer than the limit", () => {
    const long = tool({ inputSchema: withProperty({ type: "string", pattern: "a".repeat(SCHEMA_LIMITS.maxPatternLength + 1) }) });
    expect(codes(validateTool(long, "2025-11-25"))).toEqual(["schema_pattern_too_long"]);
  });

  it("accepts ECMAScript spellings RE2 lacks (\\u escapes, named groups) and backtracking-prone patterns", () => {
    for (const pattern of ["^\\u0041+$", "^(?<year>\\d{4})-\\d{2}$", "^(a|a)*$", "^(a+)+$"]) {
      expect({ pattern, findings: validateTool(tool({ inputSchema: withProperty({ type: "string", pattern }) }), "2025-11-25") }).toEqual({ pattern, findings: [] });
    }
  });

  it("enforces each pattern of a schema as itself (no two collapse into one)", () => {
    const schema = { type: "object", properties: { a: { type: "string", pattern: "^a+$" }, b: { type: "string", pattern: "^b+$" } } };
    expect(validateOutput({ a: "aaa", b: "bbb" }, schema, "2025-11-25")).toEqual([]);
    expect(validateOutput({ a: "aaa", b: "aaa" }, schema, "2025-11-25")).toEqual([expect.objectContaining({ code: "output_mismatch", path: "/structuredContent/b" })]);
    expect(validateOutput({ a: "bbb", b: "bbb" }, schema, "2025-11-25")).toEqual([expect.objectContaining({ code: "output_mismatch", path: "/structuredContent/a" })]);
  });

  it("matches a backtracking-prone pattern against a long input", () => {
    const schema = { type: "object", properties: { a: { type: "string", pattern: "^(a|a)*$" } } };
    expect(validateOutput({ a: `${"a".repeat(100_000)}b` }, schema, "2025-11-25")).toEqual([expect.objectContaining({ code: "output_mismatch" })]);
  });
});

describe("fields by version", () => {
  const full = tool({
    title: "Search docs",
    outputSchema: { type: "object", properties: { hits: { type: "integer" } } },
    annotations: { readOnlyHint: true },
    icons: [{ src: "https://example.invalid/i.png", sizes: ["16x16"], theme: "dark" }],
    execution: { taskSupport: "optional" },
    _meta: { trace: "x" },
  });
  const newer = (version: string) => validateTool(full, version).filter((f) => f.code === "field_newer_than_version").map((f) => f.path);

  it("flags fields newer than the negotiated version, but never as errors", () => {
    expect(newer("2024-11-05").sort()).toEqual(["/annotations", "/execution", "/icons", "/outputSchema", "/title"]);
    expect(newer("2025-03-26").sort()).toEqual(["/execution", "/icons", "/outputSchema", "/title"]);
    expect(newer("2025-06-18").sort()).toEqual(["/execution", "/icons"]);
    expect(validateTool(full, "2025-11-25")).toEqual([]);
    for (const version of ["2024-11-05", "2025-03-26", "2025-06-18"]) expect(errorCodes(validateTool(full, version))).toEqual([]);
  });

  it("requires an object root for outputSchema up to 2025-11-25, and not after", () => {
    const scalarOutput = tool({ outputSchema: { type: "string" } });
    expect(errorCodes(validateTool(scalarOutput, "2025-11-25"))).toEqual(["output_schema_root_not_object"]);
    expect(validateTool(scalarOutput, "2026-07-28")).toEqual([]);
    expect(errorCodes(validateTool(tool({ outputSchema: "object" }), "2025-11-25"))).toEqual(["output_schema_not_object"]);
  });

  it("treats execution as an unknown field from 2026-07-28, which moved tasks to an extension", () => {
    expect(validateTool(tool({ execution: { taskSupport: "sometimes" } }), "2026-07-28")).toEqual([]);
    expect(codes(validateTool(tool({ execution: { taskSupport: "sometimes" } }), "2025-11-25"))).toEqual(["field_wrong_type"]);
    for (const taskSupport of ["forbidden", "optional", "required"]) expect(validateTool(tool({ execution: { taskSupport } }), "2025-11-25")).toEqual([]);
  });

  it("warns about metadata of the wrong type", () => {
    const odd = tool({
      title: 5,
      description: ["x"],
      annotations: { readOnlyHint: "yes", destructiveHint: 0, title: false },
      icons: [{ mimeType: 1 }, "icon.png", { src: "a.png", sizes: "16x16", theme: "blue" }],
      _meta: [],
    });
    const findings = validateTool(odd, "2025-11-25");
    expect(findings.every((f) => f.severity === "warning" && f.code === "field_wrong_type")).toBe(true);
    expect(findings.map((f) => f.path).sort()).toEqual(
      [
        "/_meta",
        "/annotations/destructiveHint",
        "/annotations/readOnlyHint",
        "/annotations/title",
        "/description",
        "/icons/0/mimeType",
        "/icons/0/src",
        "/icons/1",
        "/icons/2/sizes",
        "/icons/2/theme",
        "/title",
      ].sort(),
    );
    expect(codes(validateTool(tool({ icons: {} }), "2025-11-25"))).toEqual(["field_wrong_type"]);
    expect(codes(validateTool(tool({ annotations: [] }), "2025-11-25"))).toEqual(["field_wrong_type"]);
  });

  it("leaves unknown fields alone", () => {
    expect(validateTool(tool({ "x-vendor": { a: 1 }, cacheScope: "public", whatever: [1, 2] }), "2025-11-25")).toEqual([]);
  });

  it("says so when the version is not one it knows, and checks as the newest", () => {
    expect(codes(validateTool(tool({ outputSchema: { type: "string" } }), "draft"))).toEqual(["protocol_version_unknown"]);
  });
});

describe("hostile input", () => {
  it("returns findings for anything, never throws", () => {
    for (const raw of [null, undefined, 0, "tool", [], [tool()], true]) expect(codes(validateTool(raw, "2025-11-25"))).toEqual(["tool_not_object"]);
    const exploding = new Proxy(
      {},
      {
        get() {
          throw new Error("boom");
        },
        has() {
          throw new Error("boom");
        },
      },
    );
    expect(codes(validateTool(exploding, "2025-11-25"))).toEqual(["validation_failed"]);
  });

  it("gives well-formed findings for arbitrary JSON in every field", () => {
    const anyTool = fc.record(
      { name: fc.jsonValue(), inputSchema: fc.oneof(fc.jsonValue(), fc.record({ type: fc.constant("object"), properties: fc.dictionary(fc.string(), fc.jsonValue()) })), outputSchema: fc.jsonValue(), annotations: fc.jsonValue(), icons: fc.jsonValue(), execution: fc.jsonValue(), title: fc.jsonValue() },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(anyTool, fc.constantFrom("2024-11-05", "2025-06-18", "2025-11-25", "2026-07-28"), (raw, version) => {
        for (const f of validateTool(raw, version)) {
          expect(["error", "warning"]).toContain(f.severity);
          expect(f.path === "" || f.path.startsWith("/")).toBe(true);
          expect(f.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("annotationsOf", () => {
  it("applies the spec's defaults to missing or mistyped hints", () => {
    const defaults = { readOnly: false, destructive: true, idempotent: false, openWorld: true };
    for (const raw of [{}, null, "x", { annotations: "x" }, { annotations: { readOnlyHint: "true", openWorldHint: 1 } }]) expect(annotationsOf(raw)).toEqual(defaults);
  });

  it("reads the hints, and a read-only tool is neither destructive nor effectful when repeated", () => {
    expect(annotationsOf({ annotations: { destructiveHint: false, idempotentHint: true, openWorldHint: false } })).toEqual({
      readOnly: false,
      destructive: false,
      idempotent: true,
      openWorld: false,
    });
    expect(annotationsOf({ annotations: { readOnlyHint: true, destructiveHint: true, idempotentHint: false } })).toMatchObject({ readOnly: true, destructive: false, idempotent: true });
  });
});

describe("validateOutput", () => {
  const schema = { type: "object", properties: { temp: { type: "number" } }, required: ["temp"] };

  it("requires an object up to 2025-11-25, and any JSON after", () => {
    expect(codes(validateOutput([1], undefined, "2025-11-25"))).toEqual(["structured_content_not_object"]);
    expect(codes(validateOutput("text", schema, "2025-06-18"))).toEqual(["structured_content_not_object"]);
    expect(validateOutput([1], { type: "array" }, "2026-07-28")).toEqual([]);
  });

  it("checks the content against the schema, in the schema's dialect", () => {
    expect(validateOutput({ temp: 21.5 }, schema, "2025-11-25")).toEqual([]);
    expect(validateOutput({ temp: "warm" }, schema, "2025-11-25")).toEqual([expect.objectContaining({ code: "output_mismatch", path: "/structuredContent/temp" })]);
    expect(codes(validateOutput({}, schema, "2025-11-25"))).toEqual(["output_mismatch"]);
    const tuple = { type: "object", properties: { pair: { prefixItems: [{ type: "number" }, { type: "number" }] } } };
    expect(codes(validateOutput({ pair: [1, "x"] }, tuple, "2025-11-25"))).toEqual(["output_mismatch"]);
  });

  it("reports a schema it cannot use instead of validating against it", () => {
    expect(codes(validateOutput({ a: 1 }, { type: "object", properties: { a: { $ref: "https://example.invalid/x" } } }, "2025-11-25"))).toEqual(["schema_external_ref"]);
    expect(codes(validateOutput({ a: 1 }, { type: "objekt" }, "2025-11-25"))).toEqual(["schema_invalid"]);
  });
});
