/**
 * YAML text is what a `documentUrl` may answer with (the fetch asks for it): the converter reads it from a
 * tenant's server, so a hostile document must be refused in time linear in its size, with a short message
 * that does not quote the document back or name the control plane's files.
 */
import { describe, expect, it } from "vitest";
import { convertOpenApi } from "../../src/pillars/tools/openapi/convert.js";

/** One line of flow sequences nested `depth` deep: the YAML reader refuses it, quoting the whole line. */
const deepLine = (depth: number) => `openapi: 3.1.0\nx: ${"[".repeat(depth)}${"]".repeat(depth)}\n`;

async function refusal(text: string) {
  const outcome = await convertOpenApi(text);
  if (outcome.ok) throw new Error("converted a hostile document");
  return outcome.errors;
}

describe("hostile YAML documents", () => {
  it("a refusal's message is short, and names neither the document's text nor a file of the control plane", async () => {
    const errors = await refusal(deepLine(40_000));
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/^not valid YAML or JSON: /);
    expect(errors[0]!.message.length).toBeLessThanOrEqual(1_100);
    expect(errors[0]!.message).not.toMatch(/document\.yaml|\[{200}/);
  });

  it("a document of one 4 MiB line of nesting is refused (the message is not searched with backtracking patterns)", async () => {
    const errors = await refusal(deepLine(2_000_000 - 16));
    expect(errors[0]!.message).toMatch(/^not valid YAML or JSON: /);
  });
});
