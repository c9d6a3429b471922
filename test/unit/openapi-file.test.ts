import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openApiDocument } from "../../src/http/openapi-document.js";

const FILE = join(__dirname, "..", "..", "openapi.json");

async function render(): Promise<(doc: unknown) => string> {
  const { renderOpenApi } = (await import("../../scripts/openapi.mjs")) as { renderOpenApi: (doc: unknown) => string };
  return renderOpenApi;
}

describe("openapi.json: the checked-in OpenAPI document", () => {
  it("is the document the operations generate (npm run openapi rewrites it)", async () => {
    const renderOpenApi = await render();
    const expected = renderOpenApi(openApiDocument());
    const actual = readFileSync(FILE, "utf8");
    if (actual !== expected) {
      // A line, not a 400 KB diff: enough to see what moved.
      const a = actual.split("\n");
      const b = expected.split("\n");
      let i = 0;
      while (i < a.length && a[i] === b[i]) i++;
      expect.fail(
        `openapi.json is out of date: run npm run openapi (first difference at line ${i + 1}: ` +
          `file ${JSON.stringify(a[i]?.trim())}, generated ${JSON.stringify(b[i]?.trim())})`,
      );
    }
    // The same content the app serves at GET /api/openapi.json, only with its keys in canonical order.
    expect(JSON.parse(actual)).toEqual(openApiDocument());
  });

  it("renders deterministically: the same document in any key order gives the same text, ending in a newline", async () => {
    const renderOpenApi = await render();
    const one = {
      paths: { "/b": { get: { summary: "b" } }, "/a": { post: { summary: "a" } } },
      openapi: "3.1.0",
      components: { schemas: { Z: { type: "object", properties: { name: { type: "string" }, id: { type: "string" } } } } },
      info: { version: "1", title: "t" },
    };
    const two = {
      info: { title: "t", version: "1" },
      components: { schemas: { Z: { properties: { name: { type: "string" }, id: { type: "string" } }, type: "object" } } },
      openapi: "3.1.0",
      paths: { "/a": { post: { summary: "a" } }, "/b": { get: { summary: "b" } } },
    };
    const text = renderOpenApi(one);
    expect(renderOpenApi(two)).toBe(text);
    expect(text.endsWith("}\n")).toBe(true);
    // OpenAPI's usual top-level order; other keys sorted; schema properties keep their declared order.
    expect(Object.keys(JSON.parse(text))).toEqual(["openapi", "info", "paths", "components"]);
    expect(text.indexOf('"/a"')).toBeLessThan(text.indexOf('"/b"'));
    expect(text.indexOf('"name"')).toBeLessThan(text.indexOf('"id"'));
  });
});
