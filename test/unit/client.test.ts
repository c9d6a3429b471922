/** The typed client's reading of responses: what is a problem document, and what is not JSON at all. */
import { describe, expect, it } from "vitest";
import { AigovClient, ApiError } from "../../src/client/index.js";

const answering = (status: number, body: string, type = "application/json") =>
  new AigovClient({ endpoint: "http://api.test", token: "t", fetch: async () => new Response(body, { status, headers: { "content-type": type } }) });

const errorOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

describe("client responses", () => {
  it("a problem document of this API is the error's problem", async () => {
    const err = await errorOf(answering(409, JSON.stringify({ type: "about:blank", title: "Conflict", status: 409, code: "Conflict", detail: "name taken", reason: "name_taken" })).health());
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).problem).toMatchObject({ code: "Conflict", reason: "name_taken" });
    expect((err as ApiError).message).toBe("409 Conflict: name taken");
  });

  it("JSON that is not a problem document (a front door's error) is no problem, and the message says what came back", async () => {
    const err = (await errorOf(answering(500, JSON.stringify({ statusCode: 500, message: "Internal server error" })).health())) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect(err.problem).toBeUndefined();
    expect(err.message).toBe('HTTP 500: {"statusCode":500,"message":"Internal server error"}');
  });

  it("a success that is not JSON (a sign-in page in between) is an ApiError, not a SyntaxError", async () => {
    const err = (await errorOf(answering(200, "<html>sign in</html>", "text/html").health())) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect([err.status, err.problem, err.message]).toEqual([200, undefined, "HTTP 200 with a body that is not JSON: <html>sign in</html>"]);
  });
});
