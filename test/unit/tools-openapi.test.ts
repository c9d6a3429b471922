import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mcpTools, restApiParts } from "../../src/pillars/tools/openapi/artifacts.js";
import { convertOpenApi, type ConversionOutcome, type ConvertedTool } from "../../src/pillars/tools/openapi/convert.js";
import { restRequestFor, type RestRequest } from "../../src/pillars/tools/openapi/invoke.js";
import { generateOpenApi, operationsOf, startRestBackend, type RestBackend, type RestEcho } from "../fixtures/rest/index.js";

type Json = Record<string, unknown>;
type Converted = Extract<ConversionOutcome, { ok: true }>;

const OPERATIONS = 200;
const SEED = 7;
/** One generated document and its conversion, shared by the tests that only read them (conversion validates the whole document: not free). */
const generated = generateOpenApi(OPERATIONS, SEED);
let sharedConversion: Promise<ConversionOutcome> | undefined;
const convertGenerated = async (): Promise<Converted> => converted(await (sharedConversion ??= convertOpenApi(generated)));

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The same JSON with every object's keys in reverse order. */
function reversedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.keys(value).reverse().map((key) => [key, reversedKeys(value[key])]));
}

function converted(outcome: ConversionOutcome): Converted {
  if (!outcome.ok) expect.fail(`conversion failed: ${JSON.stringify(outcome.errors)}`);
  return outcome;
}

async function refused(document: unknown, options?: Parameters<typeof convertOpenApi>[1]): Promise<{ path: string; message: string }[]> {
  const outcome = await convertOpenApi(document, options);
  if (outcome.ok) expect.fail("the document was converted, but should have been refused");
  expect(outcome.errors.length).toBeGreaterThan(0);
  return outcome.errors;
}

function tool(outcome: Converted, name: string): ConvertedTool {
  const found = outcome.tools.find((t) => t.name === name);
  if (!found) expect.fail(`no tool ${name}`);
  return found;
}

/** A value the schema accepts (following $defs), nesting a little so that circular schemas get exercised. */
function sample(schema: unknown, defs: Json, depth = 0): unknown {
  if (!isObject(schema)) return null;
  if (typeof schema.$ref === "string") return sample(defs[schema.$ref.slice("#/$defs/".length)], defs, depth + 1);
  if (Array.isArray(schema.enum)) return schema.enum[0];
  for (const key of ["anyOf", "allOf", "oneOf"]) if (Array.isArray(schema[key])) return sample((schema[key] as unknown[])[0], defs, depth + 1);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case "string":
      if (schema.format === "uuid") return "6f1c0b0e-4a4b-4c52-9a8e-1d2f3a4b5c6d";
      if (schema.format === "email") return "someone@example.test";
      return typeof schema.pattern === "string" ? "tag-1" : "some text";
    case "integer":
      return typeof schema.minimum === "number" ? schema.minimum : 42;
    case "number":
      return 1.5;
    case "boolean":
      return true;
    case "array":
      return depth < 3 ? [sample(schema.items, defs, depth + 1)] : [];
    default: {
      const properties = isObject(schema.properties) ? schema.properties : {};
      const keys = depth < 3 ? Object.keys(properties) : ((schema.required as string[] | undefined) ?? []);
      return Object.fromEntries(keys.map((key) => [key, sample(properties[key], defs, depth + 1)]));
    }
  }
}

/** Arguments for every property of a tool, with parameter values that need percent-encoding. */
function sampleArguments(t: ConvertedTool): Json {
  const properties = t.inputSchema.properties as Json;
  const defs = (t.inputSchema.$defs ?? {}) as Json;
  const args: Json = {};
  for (const argument of t.binding.arguments) {
    const schema = properties[argument.property] as Json;
    const plain = sample(schema, defs);
    const unconstrainedString = schema.type === "string" && schema.pattern === undefined && schema.format === undefined;
    if (argument.in === "path" && unconstrainedString) args[argument.property] = "a b/ç?#";
    else if (argument.in === "query" && unconstrainedString) args[argument.property] = "x&y=z é";
    else if (argument.in === "query" && schema.type === "array") args[argument.property] = ["a", "b c"];
    else if (argument.in === "header" && unconstrainedString) args[argument.property] = "trace 1";
    else args[argument.property] = plain;
  }
  return args;
}

describe("convertOpenApi: 200 generated operations", () => {
  let document: Json;
  let outcome: Converted;

  beforeAll(async () => {
    document = generated;
    outcome = await convertGenerated();
  });

  it("converts every operation or says why not, reading the document's info and server", () => {
    expect(outcome.tools.length + outcome.skipped.length).toBe(OPERATIONS);
    expect(outcome.tools.length).toBeGreaterThan(180);
    expect(outcome.openapi).toBe("3.1.0");
    expect(outcome.version).toBe("1.0.0");
    expect(outcome.serverUrl).toBe("https://api.example.test/v2");
    const reasons = outcome.skipped.map((s) => s.reason);
    expect(reasons.some((r) => r.includes("not JSON") && r.includes("multipart/form-data"))).toBe(true);
    expect(reasons.some((r) => r.includes("cookie"))).toBe(true);
    // The files and sessions of every fifth resource, and the operations whose arguments collide on purpose.
    const filesAndSessions = outcome.skipped.filter((s) => /^(GET|POST) \/res\d+\/(files|session)$/.test(s.operation));
    expect(filesAndSessions).toHaveLength(8);
    expect(outcome.skipped.filter((s) => !filesAndSessions.includes(s)).map((s) => s.operation)).toEqual(["GET /res11/items", "POST /res6/items", "GET /res8/items/{itemId}"]);
  });

  it("skips an operation whose argument names are not distinct and usable as they are, naming the argument", () => {
    // The gateway serves a REST tool with arguments named after the operation's parameters: a renamed property would describe another tool.
    const reasonFor = (operation: string) => outcome.skipped.find((s) => s.operation === operation)?.reason;
    expect(reasonFor("POST /res6/items")).toMatch(/^the argument 'body' is not a distinct argument name/); // a query parameter beside the JSON body
    expect(reasonFor("GET /res8/items/{itemId}")).toMatch(/^the argument 'itemId' is not a distinct argument name/); // in the path and in the query
    expect(reasonFor("GET /res11/items")).toMatch(/^the argument 'sort by' is not a distinct argument name/); // a space
    for (const label of ["POST /res6/items", "GET /res8/items/{itemId}", "GET /res11/items"]) {
      expect(outcome.tools.some((t) => `${t.binding.method} ${t.binding.urlTemplate}` === label)).toBe(false);
    }
    // The same operations of other resources, whose names do not collide, are tools.
    const argumentsOf = (label: string) => outcome.tools.find((t) => `${t.binding.method} ${t.binding.urlTemplate}` === label)?.binding.arguments.map((a) => a.name);
    expect(argumentsOf("POST /res7/items")).toEqual(["source", "body"]);
    expect(argumentsOf("GET /res9/items/{itemId}")).toEqual(["itemId", "revision", "X-Request-Priority"]);
    expect(argumentsOf("GET /res12/items")).toEqual(expect.arrayContaining(["limit", "q", "tags", "X-Trace-Id"]));
    expect(argumentsOf("GET /res12/items")).not.toContain("sort by");
  });

  it("skips collisions across every location and names outside [A-Za-z0-9_.-]{1,48}, keeping the names that fit", async () => {
    const string = { type: "string" };
    const doc = {
      openapi: "3.1.0",
      info: { title: "names", version: "1" },
      paths: {
        "/a/{id}": { get: { operationId: "pathAndHeader", parameters: [{ name: "id", in: "path", required: true, schema: string }, { name: "id", in: "header", schema: string }], responses: { "204": { description: "ok" } } } },
        "/b": { post: { operationId: "headerNamedBody", parameters: [{ name: "body", in: "header", schema: string }], requestBody: { content: { "application/json": { schema: { type: "object" } } } }, responses: { "204": { description: "ok" } } } },
        "/c": { get: { operationId: "longest", parameters: [{ name: "n".repeat(48), in: "query", schema: string }], responses: { "204": { description: "ok" } } } },
        "/d": { get: { operationId: "tooLong", parameters: [{ name: "n".repeat(49), in: "query", schema: string }], responses: { "204": { description: "ok" } } } },
        "/e": { get: { operationId: "bodyWithoutBody", parameters: [{ name: "body", in: "query", schema: string }], responses: { "204": { description: "ok" } } } },
        "/f": { get: { operationId: "punctuated", parameters: [{ name: "filter.name", in: "query", schema: string }, { name: "X-Page_Size", in: "header", schema: string }], responses: { "204": { description: "ok" } } } },
        "/g": { get: { operationId: "accented", parameters: [{ name: "café", in: "query", schema: string }], responses: { "204": { description: "ok" } } } },
      },
    };
    const outcome = converted(await convertOpenApi(doc));
    expect(outcome.skipped).toEqual([
      { operation: "GET /a/{id}", reason: expect.stringContaining("'id'") },
      { operation: "POST /b", reason: expect.stringContaining("'body'") },
      { operation: "GET /d", reason: expect.stringContaining(`'${"n".repeat(49)}'`) },
      { operation: "GET /g", reason: expect.stringContaining("'café'") },
    ]);
    expect(outcome.tools.map((t) => [t.name, t.binding.arguments])).toEqual([
      ["longest", [{ property: "n".repeat(48), in: "query", name: "n".repeat(48) }]],
      ["bodyWithoutBody", [{ property: "body", in: "query", name: "body" }]],
      [
        "punctuated",
        [
          { property: "filter.name", in: "query", name: "filter.name" },
          { property: "X-Page_Size", in: "header", name: "X-Page_Size" },
        ],
      ],
    ]);
    expect(Object.keys(tool(outcome, "punctuated").inputSchema.properties as Json)).toEqual(["X-Page_Size", "filter.name"]);
  });

  it("gives byte-identical output for the same document, the document in another key order, and its JSON text", async () => {
    const fresh = generateOpenApi(OPERATIONS, SEED);
    const before = JSON.stringify(fresh);
    const text = JSON.stringify(outcome);
    expect(JSON.stringify(await convertOpenApi(fresh))).toBe(text);
    expect(JSON.stringify(fresh)).toBe(before); // the caller's document is left as it was
    expect(JSON.stringify(await convertOpenApi(reversedKeys(fresh)))).toBe(text);
    expect(JSON.stringify(await convertOpenApi(JSON.stringify(fresh, null, 2)))).toBe(text);
  });

  it("turns OpenAPI 3.0 nullable and example into the same 2020-12 schemas as their 3.1 forms", async () => {
    const v30 = converted(await convertOpenApi(generateOpenApi(OPERATIONS, SEED, "3.0.3")));
    expect(v30.openapi).toBe("3.0.3");
    expect(JSON.stringify(v30.tools)).toBe(JSON.stringify(outcome.tools));
    const item = (tool(v30, "createItem0").inputSchema.$defs as Json).Item as Json;
    expect((item.properties as Json).note).toEqual({ type: ["string", "null"] });
    expect((item.properties as Json).name).toMatchObject({ examples: ["a widget"] });
  });

  it("names tools uniquely (ignoring case) within the tool-name rules, suffixing names that collide", () => {
    const names = outcome.tools.map((t) => t.name);
    for (const name of names) expect(name).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(new Set(names.map((n) => n.toLowerCase())).size).toBe(names.length);
    // "get item.v3" (GET) and "get_item_v3" (PUT) sanitise alike: the first in path-then-method order keeps the name.
    expect(tool(outcome, "get_item_v3").binding.method).toBe("GET");
    expect(tool(outcome, "get_item_v3_2").binding.method).toBe("PUT");
    // "ListItems5" and "listitems5" differ only in case.
    expect(tool(outcome, "ListItems5").binding.method).toBe("GET");
    expect(tool(outcome, "listitems5_2").binding.method).toBe("POST");
    // Operations without an operationId are named from method and path.
    const skipped = new Set(outcome.skipped.map((s) => s.operation));
    const unnamed = operationsOf(document).filter((op) => op.operationId === undefined && !skipped.has(`${op.method} ${op.path}`));
    expect(unnamed.length).toBeGreaterThan(0);
    for (const op of unnamed) {
      const t = outcome.tools.find((c) => c.binding.method === op.method && c.binding.urlTemplate === op.path);
      expect(t?.name).toBe(`${op.method.toLowerCase()}${op.path.replace(/[^A-Za-z0-9]+/g, "_")}`.replace(/_+$/, ""));
    }
  });

  it("keeps titles and descriptions within 1000 characters", () => {
    for (const t of outcome.tools) {
      expect((t.title ?? "").length).toBeLessThanOrEqual(1000);
      expect((t.description ?? "").length).toBeLessThanOrEqual(1000);
    }
    const long = outcome.tools.find((t) => t.binding.urlTemplate === "/res0/items" && t.binding.method === "POST");
    expect(long?.description).toHaveLength(1000);
    expect(long?.description?.endsWith("…")).toBe(true);
  });

  it("binds every parameter to the input property of its own name, and the JSON body to body", () => {
    const getItem = tool(outcome, "getItem0");
    expect(getItem.binding.arguments).toEqual([
      { property: "itemId", in: "path", name: "itemId" },
      { property: "revision", in: "query", name: "revision" },
      { property: "X-Request-Priority", in: "header", name: "X-Request-Priority" },
    ]);
    expect(getItem.inputSchema.required).toEqual(["itemId"]);
    const create = tool(outcome, "createItem0");
    expect(create.binding.arguments).toEqual([
      { property: "source", in: "query", name: "source" },
      { property: "body", in: "body", name: "body" },
    ]);
    expect(create.binding.body).toEqual({ contentType: "application/json", required: true });
    expect(create.inputSchema.required).toEqual(["body"]);
    // The JSON media type is chosen over XML, with its parameters.
    expect(tool(outcome, "replaceItem0").binding.body?.contentType).toBe("application/json; charset=utf-8");
    for (const t of outcome.tools) {
      // No property differs from its parameter's name: the gateway's tool has these arguments.
      for (const a of t.binding.arguments) expect(a.property, `${t.name}: ${a.in} ${a.name}`).toBe(a.in === "body" ? "body" : a.name);
      expect(t.binding.arguments.filter((a) => a.in === "body")).toHaveLength(t.binding.body ? 1 : 0);
      expect(new Set(t.binding.arguments.map((a) => a.property)).size).toBe(t.binding.arguments.length);
      expect(Object.keys(t.inputSchema.properties as Json).sort()).toEqual(t.binding.arguments.map((a) => a.property).sort());
      expect(t.binding.templateParameters.map((p) => p.name)).toEqual([...t.binding.urlTemplate.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]));
    }
  });

  it("produces input and output schemas that compile as JSON Schema 2020-12, bodies referencing $defs", () => {
    // Strict: a keyword Ajv does not know fails the compile. (Unoptimised code compiles twice as fast; these run once.)
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, validateFormats: false, code: { optimize: false } });
    let bodies = 0;
    for (const t of outcome.tools) {
      expect(t.inputSchema).toMatchObject({ type: "object", additionalProperties: false });
      const validate = ajv.compile(t.inputSchema);
      expect(validate(sampleArguments(t)), `${t.name}: ${ajv.errorsText(validate.errors)}`).toBe(true);
      expect(validate({ ...sampleArguments(t), unexpected: 1 })).toBe(false);
      if (t.outputSchema) {
        expect(t.outputSchema.type).toBe("object");
        ajv.compile(t.outputSchema);
      }
      const defs = (t.inputSchema.$defs ?? {}) as Json;
      expect(Object.keys(defs)).not.toContain("Unused");
      const body = (t.inputSchema.properties as Json).body as Json | undefined;
      if (body === undefined) continue;
      bodies++;
      expect(body.$ref).toMatch(/^#\/\$defs\//);
      expect(defs[(body.$ref as string).slice("#/$defs/".length)]).toBeDefined();
    }
    expect(bodies).toBeGreaterThan(50);
  });

  it("keeps a circular component as a reference to itself", () => {
    const plant = tool(outcome, "plantTree0");
    const tree = (plant.inputSchema.$defs as Json).TreeNode as Json;
    expect(((tree.properties as Json).children as Json).items).toEqual({ $ref: "#/$defs/TreeNode" });
    const validate = new Ajv2020({ allowUnionTypes: true, validateFormats: false }).compile(plant.inputSchema);
    const deep = { label: "root", children: [{ label: "a", children: [{ label: "b", children: [] }] }] };
    expect(validate({ treeId: 1, body: deep })).toBe(true);
    expect(validate({ treeId: 1, body: { children: [{ label: "no label above" }] } })).toBe(false);
  });

  it("takes the output schema from the first 2xx JSON response when it is an object", () => {
    const get = tool(outcome, "getItem0");
    expect(get.outputSchema).toMatchObject({ type: "object", required: ["name"] });
    expect(Object.keys(get.outputSchema?.$defs as Json).sort()).toEqual(["Owner", "Tag", "TagName"]);
    expect(tool(outcome, "createItem0").outputSchema).toEqual(get.outputSchema);
    expect(tool(outcome, "plantTree0").outputSchema).toBeUndefined(); // an array
    expect(tool(outcome, "deleteItem0").outputSchema).toBeUndefined(); // 204, no body
  });

  it("reads the method's semantics into the annotations", () => {
    expect(tool(outcome, "getItem0").annotations).toEqual({ readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true });
    expect(tool(outcome, "deleteItem0").annotations).toMatchObject({ readOnlyHint: false, destructiveHint: true, idempotentHint: true });
    expect(tool(outcome, "replaceItem0").annotations).toMatchObject({ readOnlyHint: false, idempotentHint: true });
    expect(tool(outcome, "createItem0").annotations).toMatchObject({ readOnlyHint: false, destructiveHint: false, idempotentHint: false });
  });

  it("selects operations by operationId or by method and path, naming them as in the whole document", async () => {
    const chosen = converted(await convertOpenApi(document, { include: ["getItem0", "post /res1/items", "PUT /res3/items/{itemId}"] }));
    // In path-then-method order, as always.
    expect(chosen.tools.map((t) => t.name)).toEqual(["getItem0", "createItem1", "get_item_v3_2"]);
    expect(chosen.tools[0]).toEqual(tool(outcome, "getItem0"));
    const errors = await refused(document, { include: ["getItem0", "noSuchOperation"] });
    expect(errors).toEqual([{ path: "options.include[1]", message: expect.stringContaining("noSuchOperation") }]);
  });

  it("refuses more operations than the limit", async () => {
    const errors = await refused(generateOpenApi(20, SEED), { maxOperations: 10 });
    expect(errors[0]).toMatchObject({ path: "/paths", message: expect.stringMatching(/^20 operations selected; the limit is 10/) });
  });
});

describe("convertOpenApi: documents it refuses (never throwing)", () => {
  const small = (): Json => generateOpenApi(8, 1);

  it("refuses Swagger 2.0 and other versions", async () => {
    expect(await refused({ swagger: "2.0", info: { title: "t", version: "1" }, paths: {} })).toEqual([{ path: "/swagger", message: expect.stringContaining("Swagger 2.0") }]);
    expect((await refused({ ...small(), openapi: "4.0.0" }))[0]?.path).toBe("/openapi");
  });

  it("reports what the validator finds, by path", async () => {
    const doc = small();
    delete (doc.info as Json).version;
    (((doc.paths as Json)["/res0/items"] as Json).get as Json).parameters = [{ name: "x", in: "nowhere", schema: { type: "string" } }];
    const paths = (await refused(doc)).map((e) => e.path);
    expect(paths).toContain("/info");
    expect(paths.some((p) => p.startsWith("/paths/~1res0~1items/get/parameters/0"))).toBe(true);
  });

  it("refuses a duplicate operationId, naming where it is used again", async () => {
    const doc = small();
    (((doc.paths as Json)["/res0/items"] as Json).post as Json).operationId = "listItems0";
    const errors = await refused(doc);
    expect(errors).toEqual([{ path: "/paths/~1res0~1items/post/operationId", message: expect.stringContaining("/paths/~1res0~1items/get") }]);
  });

  it("refuses documents larger than the limit, as objects and as text", async () => {
    const doc = generateOpenApi(OPERATIONS, SEED);
    expect((await refused(doc, { maxDocumentBytes: 20_000 }))[0]?.message).toContain("20000 bytes");
    expect((await refused(JSON.stringify(doc), { maxDocumentBytes: 20_000 }))[0]?.message).toContain("limit is 20000");
  });

  it("refuses references to other documents, naming each", async () => {
    const doc = small();
    const post = ((doc.paths as Json)["/res0/items"] as Json).post as Json;
    post.requestBody = { content: { "application/json": { schema: { $ref: "https://schemas.example.test/item.json" } } } };
    expect(await refused(doc)).toEqual([{ path: "/paths/~1res0~1items/post/requestBody/content/application~1json/schema/$ref", message: expect.stringContaining("self-contained") }]);
    post.requestBody = { content: { "application/json": { schema: { $ref: "#/components/schemas/Missing" } } } };
    expect(await refused(doc)).toEqual([{ path: "/paths/~1res0~1items/post/requestBody/content/application~1json/schema/$ref", message: expect.stringContaining("points to nothing") }]);
  });

  it("refuses limits that are not positive whole numbers", async () => {
    expect(await refused(small(), { maxDocumentBytes: Number.NaN })).toEqual([{ path: "options.maxDocumentBytes", message: expect.any(String) }]);
    expect(await refused(small(), { maxOperations: 0 })).toEqual([{ path: "options.maxOperations", message: expect.any(String) }]);
  });

  it("refuses a document whose references expand beyond the bound, without expanding them", async () => {
    const schemas: Json = { L0: { type: "string" } };
    for (let i = 1; i <= 40; i++) schemas[`L${i}`] = { type: "object", properties: { a: { $ref: `#/components/schemas/L${i - 1}` }, b: { $ref: `#/components/schemas/L${i - 1}` } } };
    const bomb = {
      openapi: "3.1.0",
      info: { title: "bomb", version: "1" },
      paths: { "/a": { post: { requestBody: { content: { "application/json": { schema: { $ref: "#/components/schemas/L40" } } } }, responses: { "200": { description: "ok" } } } } },
      components: { schemas },
    };
    expect((await refused(bomb))[0]?.message).toMatch(/expand to more than \d+ nodes/);
  });

  it("refuses what is not an OpenAPI document", async () => {
    for (const input of [42, null, [], "", "not: [valid", "{ \"openapi\": "]) {
      const errors = await refused(input);
      expect(errors[0]?.path).toBe("");
    }
    const cyclic: Json = { openapi: "3.1.0", info: { title: "t", version: "1" } };
    cyclic.paths = { "/a": { get: { responses: cyclic } } };
    expect((await refused(cyclic))[0]?.message).toContain("refers to itself");
  });
});

describe("convertOpenApi: schema details", () => {
  const withBody = (openapi: string, schema: unknown, schemas: Json = {}) => ({
    openapi,
    info: { title: "t", version: "1" },
    paths: {
      "/a": { post: { operationId: "a", requestBody: { content: { "application/json": { schema } } }, responses: { "204": { description: "ok" } } } },
      "/b": { post: { operationId: "b", requestBody: { content: { "application/json": { schema: { type: "string", minLength: 2 } } } }, responses: { "204": { description: "ok" } } } },
    },
    components: { schemas },
  });
  const bodyOf = async (doc: unknown) => (converted(await convertOpenApi(doc)).tools[0]?.inputSchema.properties as Json).body;

  it("rewrites OpenAPI 3.0 keywords into 2020-12 and drops OpenAPI's own", async () => {
    const schema = { type: "number", minimum: 1, exclusiveMinimum: true, maximum: 5, exclusiveMaximum: false, nullable: true, discriminator: { propertyName: "kind" }, "x-internal": true };
    expect(await bodyOf(withBody("3.0.3", schema))).toEqual({ type: ["number", "null"], exclusiveMinimum: 1, maximum: 5 });
    // A nullable composition becomes "it, or null"; a nullable enum admits null.
    expect(await bodyOf(withBody("3.0.3", { allOf: [{ $ref: "#/components/schemas/E" }], nullable: true }, { E: { type: "string", enum: ["x"], nullable: true } }))).toEqual({
      anyOf: [{ allOf: [{ $ref: "#/$defs/E" }] }, { type: "null" }],
    });
  });

  it("keeps a 3.1 reference's siblings and inlines references that are not components", async () => {
    expect(await bodyOf(withBody("3.1.0", { $ref: "#/components/schemas/T", description: "the thing" }, { T: { type: "object" } }))).toEqual({ $ref: "#/$defs/T", description: "the thing" });
    const inline = { type: "object", properties: { x: { $ref: "#/paths/~1b/post/requestBody/content/application~1json/schema" } } };
    expect(await bodyOf(withBody("3.1.0", inline))).toEqual({ type: "object", properties: { x: { type: "string", minLength: 2 } } });
    const cycle = { type: "object", properties: { x: { $ref: "#/paths/~1a/post/requestBody/content/application~1json/schema" } } };
    const outcome = converted(await convertOpenApi(withBody("3.1.0", cycle)));
    expect(outcome.skipped).toEqual([{ operation: "POST /a", reason: expect.stringContaining("circular reference outside components/schemas") }]);
  });
});

describe("convertOpenApi: YAML", () => {
  it("reads YAML text as the same document", async () => {
    const yaml = [
      "openapi: 3.0.3",
      "info: { title: Pets, version: '2.1' }",
      "paths:",
      "  /pets/{petId}:",
      "    get:",
      "      operationId: getPet",
      "      summary: Get a pet",
      "      parameters:",
      "        - { name: petId, in: path, required: true, schema: { type: integer } }",
      "      responses:",
      "        '200': { description: ok, content: { application/json: { schema: { $ref: '#/components/schemas/Pet' } } } }",
      "components:",
      "  schemas:",
      "    Pet: { type: object, properties: { name: { type: string, nullable: true } } }",
    ].join("\n");
    const object = {
      openapi: "3.0.3",
      info: { title: "Pets", version: "2.1" },
      paths: {
        "/pets/{petId}": {
          get: {
            operationId: "getPet",
            summary: "Get a pet",
            parameters: [{ name: "petId", in: "path", required: true, schema: { type: "integer" } }],
            responses: { "200": { description: "ok", content: { "application/json": { schema: { $ref: "#/components/schemas/Pet" } } } } },
          },
        },
      },
      components: { schemas: { Pet: { type: "object", properties: { name: { type: "string", nullable: true } } } } },
    };
    const fromYaml = converted(await convertOpenApi(yaml));
    expect(JSON.stringify(fromYaml)).toBe(JSON.stringify(await convertOpenApi(object)));
    expect(fromYaml.tools[0]?.outputSchema).toEqual({ type: "object", properties: { name: { type: ["string", "null"] } } });
  });
});

describe("restRequestFor and the REST backend", () => {
  let document: Json;
  let outcome: Converted;
  let backend: RestBackend;

  beforeAll(async () => {
    document = generated;
    outcome = await convertGenerated();
    backend = await startRestBackend(document);
  });
  afterAll(() => backend.close());

  const requestOf = (t: ConvertedTool, args: Json): RestRequest => {
    const request = restRequestFor(t.binding, args);
    if ("error" in request) expect.fail(`${t.name}: ${request.error}`);
    return request;
  };

  it("places each argument where its binding says, and the backend receives exactly that", async () => {
    const operationIds = new Map(operationsOf(document).map((op) => [`${op.method} ${op.path}`, op.operationId ?? null]));
    const sampleTools = outcome.tools.filter((_, i) => i % 7 === 0);
    const placed = new Set<string>();
    for (const t of sampleTools) {
      const args = sampleArguments(t);
      const request = requestOf(t, args);
      const value = (name: string, location: string) => args[t.binding.arguments.find((a) => a.name === name && a.in === location)?.property as string];
      const [path, queryString = ""] = request.path.split("?");
      expect(path).toBe(t.binding.urlTemplate.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(String(value(name, "path")))));
      const query = new URLSearchParams(queryString);
      const expectedQuery: Json = {};
      for (const p of t.binding.queryParameters) {
        const v = value(p.name, "query");
        expectedQuery[p.name] = Array.isArray(v) ? v.map(String) : String(v);
        expect(query.getAll(p.name)).toEqual(Array.isArray(v) ? v.map(String) : [String(v)]);
      }
      const expectedHeaders = Object.fromEntries(t.binding.headers.map((h) => [h.name.toLowerCase(), String(value(h.name, "header"))]));
      for (const h of t.binding.headers) expect(request.headers[h.name]).toBe(String(value(h.name, "header")));
      if (t.binding.body) {
        expect(JSON.parse(request.body as string)).toEqual(args.body);
        expect(request.headers["content-type"]).toBe(t.binding.body.contentType);
      } else {
        expect(request.body).toBeUndefined();
      }
      for (const a of t.binding.arguments) placed.add(a.in);

      const response = await fetch(`${backend.url}${request.path}`, { method: request.method, headers: request.headers, body: request.body });
      expect(response.status).toBe(200);
      const echo = (await response.json()) as RestEcho;
      expect(echo).toEqual({
        operationId: operationIds.get(`${t.binding.method} ${t.binding.urlTemplate}`),
        method: t.binding.method,
        path: expect.any(String),
        params: Object.fromEntries(t.binding.templateParameters.map((p) => [p.name, String(value(p.name, "path"))])),
        query: expectedQuery,
        headers: expectedHeaders,
        body: args.body ?? null,
      });
    }
    expect([...placed].sort()).toEqual(["body", "header", "path", "query"]);
    expect(backend.received).toHaveLength(sampleTools.length);
  });

  it("leaves out optional arguments that are absent or null", () => {
    const request = requestOf(tool(outcome, "listItems1"), { limit: 5, q: null });
    expect(request).toEqual({ method: "GET", path: "/res1/items?limit=5", headers: {} });
  });

  it("refuses what it cannot place", () => {
    const getItem = tool(outcome, "getItem0").binding;
    expect(restRequestFor(getItem, { itemId: "a", extra: 1 })).toEqual({ error: expect.stringContaining('"extra"') });
    expect(restRequestFor(getItem, {})).toEqual({ error: expect.stringContaining('missing required argument "itemId"') });
    expect(restRequestFor(getItem, { itemId: ".." })).toEqual({ error: expect.stringContaining("dot path segment") });
    expect(restRequestFor(getItem, { itemId: { nested: { deeper: 1 } } })).toEqual({ error: expect.stringContaining("cannot be sent in the path") });
    expect(restRequestFor(tool(outcome, "getTag0").binding, { itemId: "a", tagName: "b", "X-Tenant": "t\r\nX-Injected: 1" })).toEqual({
      error: expect.stringContaining("header cannot carry"),
    });
    expect(restRequestFor(tool(outcome, "createItem0").binding, {})).toEqual({ error: 'missing required argument "body"' });
  });
});

describe("restApiParts and mcpTools", () => {
  let outcome: Converted;

  beforeAll(async () => {
    outcome = await convertGenerated();
  });

  it("gives APIM one operation per tool and one schema document holding every representation's type", () => {
    const { operations, schemas } = restApiParts(outcome.tools);
    expect(operations).toHaveLength(outcome.tools.length);
    for (const op of operations) expect(op.id).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
    expect(new Set(operations.map((op) => op.id.toLowerCase())).size).toBe(operations.length);
    expect(schemas).toHaveLength(1);
    expect(schemas[0]).toMatchObject({ id: "components", contentType: "application/vnd.oai.openapi.components+json" });
    const components = schemas[0]?.document.components.schemas as Json;

    const representations = operations.flatMap((op) => [...(op.request?.representations ?? []), ...(op.responses ?? []).flatMap((r) => r.representations ?? [])]);
    expect(representations.length).toBeGreaterThan(outcome.tools.length);
    for (const r of representations) {
      expect(r.schemaId).toBe("components");
      expect(components[r.typeName as string]).toBeDefined();
    }
    const text = JSON.stringify(components);
    expect(text).not.toContain("#/$defs");
    for (const [, name] of text.matchAll(/"#\/components\/schemas\/([^"/]+)"/g)) expect(components[name as string], name).toBeDefined();
    expect(components.Unused).toBeUndefined();
    expect(components.createItem0Request).toEqual({ $ref: "#/components/schemas/Item" });
    expect(((components.TreeNode as Json).properties as Json).children).toEqual({ items: { $ref: "#/components/schemas/TreeNode" }, type: "array" });

    const getItem = operations.find((op) => op.id === "getItem0");
    expect(getItem).toMatchObject({
      method: "GET",
      urlTemplate: "/res0/items/{itemId}",
      displayName: "getItem0",
      templateParameters: [{ name: "itemId", type: "string", required: true }],
      request: { queryParameters: [{ name: "revision", type: "integer", required: false }], headers: [{ name: "X-Request-Priority", type: "integer" }], representations: [] },
      responses: [{ statusCode: 200, representations: [{ contentType: "application/json", schemaId: "components", typeName: "getItem0Response" }] }],
    });
    expect(restApiParts(outcome.tools)).toEqual({ operations, schemas });
  });

  it("keeps same-named components of different documents apart", async () => {
    const api = (property: string, operationId: string) => ({
      openapi: "3.1.0",
      info: { title: operationId, version: "1" },
      paths: { [`/${operationId}`]: { post: { operationId, requestBody: { content: { "application/json": { schema: { $ref: "#/components/schemas/Thing" } } } }, responses: { "204": { description: "ok" } } } } },
      components: { schemas: { Thing: { type: "object", properties: { [property]: { type: "string" } } } } },
    });
    const one = converted(await convertOpenApi(api("colour", "paint")));
    const two = converted(await convertOpenApi(api("size", "measure")));
    const components = restApiParts([...one.tools, ...two.tools]).schemas[0]?.document.components.schemas as Json;
    expect(components.paintRequest).toEqual({ $ref: "#/components/schemas/Thing" });
    expect(components.measureRequest).toEqual({ $ref: "#/components/schemas/Thing_2" });
    expect(Object.keys((components.Thing_2 as Json).properties as Json)).toEqual(["size"]);
  });

  it("names MCP tool resources within ARM's rules, one per tool, each naming its operation", () => {
    const { operations } = restApiParts(outcome.tools);
    const awkward = [tool(outcome, "getItem0"), tool(outcome, "getItem1")].map((t, i) => ({ ...t, name: i === 0 ? "-edge-" : "-EDGE-" }));
    const artifacts = mcpTools([...outcome.tools, ...awkward], "aigov-key-rest");
    const ids = artifacts.map((a) => a.id);
    for (const a of artifacts) {
      expect(a.id).toMatch(/^\w+$|^\w[\w-]+\w$/);
      expect(a.id.length).toBeLessThanOrEqual(80);
      expect(a.displayName).toMatch(/^[A-Za-z0-9_-]{1,300}$/);
      expect((a.description ?? "").length).toBeLessThanOrEqual(1000);
      expect(a.apiId).toBe("aigov-key-rest");
      expect(operations.some((op) => op.id === a.operationId)).toBe(true);
    }
    expect(new Set(ids.map((id) => id.toLowerCase())).size).toBe(ids.length);
    expect(ids.slice(-2)).toEqual(["_edge_", "_EDGE__2"]);
  });
});
