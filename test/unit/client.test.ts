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

describe("client transport", () => {
  const reset = () => Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }) });
  const counting = (failures: number) => {
    const calls: string[] = [];
    const fetch = async (_input: string | URL | Request, init?: RequestInit) => {
      calls.push(init?.method ?? "GET");
      if (calls.length <= failures) throw reset();
      return new Response(JSON.stringify({ items: [] }), { status: 200, headers: { "content-type": "application/json" } });
    };
    return { calls, client: new AigovClient({ endpoint: "http://api.test", token: "t", fetch }) };
  };

  it("a read whose kept-alive connection was reset before any answer is sent once more", async () => {
    const { calls, client } = counting(1);
    await expect(client.projects.list()).resolves.toMatchObject({ items: [] });
    expect(calls).toEqual(["GET", "GET"]);
  });

  it("a write is never sent again, and a read only once more", async () => {
    const write = counting(1);
    await expect(write.client.projects.create({ name: "p", environment: "dev", owner: "o" })).rejects.toThrow("fetch failed");
    expect(write.calls).toEqual(["POST"]);
    const read = counting(2);
    await expect(read.client.projects.list()).rejects.toThrow("fetch failed");
    expect(read.calls).toEqual(["GET", "GET"]);
  });
});
