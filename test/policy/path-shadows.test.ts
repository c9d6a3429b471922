// REST tool APIs: a path parameter a sibling's literal segment could hide behind with an extension
// (`/items/{id}` next to `/items/admin`: Rails reads `/items/admin.json` as `/items/admin`) is checked per
// operation, with the literals as data of one expression shape.
import { describe, expect, it } from "vitest";
import { EXPRESSION_SHAPES, expressionShape, pathParamShadows } from "../../src/policy/expressions.js";

describe("path parameters shadowed by a sibling's literal", () => {
  it("one shape however many literals, whatever they spell", () => {
    for (const literals of [["admin"], ["admin", "search"], ["a.b", "c", "d-e", "2024", "v1~x"]]) {
      expect(EXPRESSION_SHAPES.has(expressionShape(pathParamShadows("itemId", literals))), literals.join(",")).toBe(true);
    }
  });

  it("refuses to emit a literal or a name that is not data", () => {
    expect(() => pathParamShadows("id", ['a"); return true; //'])).toThrow(/not a literal path segment/);
    expect(() => pathParamShadows("id", ["Admin"])).toThrow(/not a literal path segment/);
    expect(() => pathParamShadows('id"', ["admin"])).toThrow(/not a path parameter name/);
    expect(() => pathParamShadows("id", [])).toThrow();
  });
});
