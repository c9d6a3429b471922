import { describe, expect, it } from "vitest";
import { toolRequest, type OperationShape } from "../../src/local-gateway/runtime/mcp.js";

const op: OperationShape = {
  method: "POST",
  urlTemplate: "/widgets/{id}/notes",
  templateParameters: [{ name: "id", type: "string", required: true }],
  queryParameters: [{ name: "tag", type: "string", required: false }],
  headers: [],
  representations: [],
  responses: [],
};

describe("a REST tool's call as a request", () => {
  it("fills the template percent-encoded, and refuses path segments that would move it to another operation", () => {
    expect(toolRequest(op, { id: "a b/c", tag: "x" })).toMatchObject({ method: "POST", path: "/widgets/a%20b%2Fc/notes" });
    expect(toolRequest(op, { id: ".." })).toEqual({ error: "argument 'id' cannot be '..'" });
    expect(toolRequest(op, { id: "." })).toEqual({ error: "argument 'id' cannot be '.'" });
    expect(toolRequest(op, {})).toEqual({ error: "missing argument 'id'" });
  });
});
