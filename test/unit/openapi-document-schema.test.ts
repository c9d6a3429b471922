import SwaggerParser from "@apidevtools/swagger-parser";
import { describe, expect, it } from "vitest";
import { convertOpenApi } from "../../src/pillars/tools/openapi/convert.js";
import { generateOpenApi } from "../fixtures/rest/index.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- documents mutated freely, as a hand-edited document is
type Json = Record<string, any>;

/** What swagger-parser's own validation (schema and spec, one new validator per call) reports, by path and message. */
async function swaggerParserProblems(doc: Json): Promise<string[]> {
  try {
    await SwaggerParser.validate(structuredClone(doc) as never, { resolve: { external: false }, dereference: { circular: "ignore" }, validate: { schema: true, spec: true } } as never);
    return [];
  } catch (e) {
    const details = (e as { details?: { instancePath: string; message: string }[] }).details;
    return [...new Set(details ? details.map((d) => `${d.instancePath}|${d.message}`) : [`|${(e as Error).message}`])];
  }
}

const MUTATIONS: [string, (d: Json) => void][] = [
  ["valid as generated", () => {}],
  ["info without a version", (d) => delete d.info.version],
  ["a parameter in nowhere", (d) => (d.paths["/res0/items"].get.parameters = [{ name: "x", in: "nowhere", schema: { type: "string" } }])],
  ["responses not an object", (d) => (d.paths["/res0/items"].get.responses = 5)],
  ["a schema type that is a number", (d) => (d.components.schemas.Bad = { type: 7 })],
  ["a path parameter never declared", (d) => (d.paths["/res0/items/{other}"] = { get: { responses: { "200": { description: "x" } } } })],
  ["a parameter declared twice", (d) => (d.paths["/res0/items"].get.parameters = [{ name: "x", in: "query", schema: { type: "string" } }, { name: "x", in: "query", schema: { type: "string" } }])],
  ["a server without a url", (d) => (d.servers = [{}])],
];

describe("an OpenAPI document's schema check (each schema compiled once) reports what swagger-parser's own does", () => {
  for (const version of ["3.0.3", "3.1.0"]) {
    for (const [what, mutate] of MUTATIONS) {
      it(`${version}: ${what}`, async () => {
        const doc = generateOpenApi(4, 1) as Json;
        doc.openapi = version;
        mutate(doc);
        const expected = await swaggerParserProblems(doc);
        const outcome = await convertOpenApi(doc);
        const got = outcome.ok ? [] : outcome.errors.map((e) => `${e.path}|${e.message}`);
        // The converter lists the first few problems: they are swagger-parser's first few, in its order.
        expect(got.length > 0).toBe(expected.length > 0);
        expect(got).toEqual(expected.slice(0, got.length));
      });
    }
  }

  it("passes a valid 3.0 document", async () => {
    const doc = {
      openapi: "3.0.3",
      info: { title: "t", version: "1" },
      paths: { "/pets/{id}": { get: { operationId: "getPet", parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }], responses: { "200": { description: "ok", content: { "application/json": { schema: { type: "object", nullable: true } } } } } } } },
    };
    expect(await swaggerParserProblems(doc)).toEqual([]);
    const outcome = await convertOpenApi(doc);
    expect(outcome.ok && outcome.tools.map((t) => t.name)).toEqual(["getPet"]);
  });
});
