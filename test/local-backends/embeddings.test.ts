import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type MockBackends, startMockBackends } from "../../src/local-backends/index.js";
import { send } from "./http.js";

let mock: MockBackends;
beforeAll(async () => {
  mock = await startMockBackends();
});
afterAll(() => mock.close());
beforeEach(() => mock.reset());

interface Embeddings {
  object: string;
  model: string;
  data: { object: string; index: number; embedding: number[] }[];
  usage: { prompt_tokens: number; total_tokens: number };
}

async function embedAll(input: string | string[], path = "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21") {
  const r = await send(mock.port, { path, body: { input } });
  expect(r.status).toBe(200);
  return r.json<Embeddings>();
}

const vector = async (text: string) => (await embedAll(text)).data[0]?.embedding ?? [];
const cosine = (a: number[], b: number[]) => a.reduce((sum, x, i) => sum + x * (b[i] ?? 0), 0);

describe("embeddings", () => {
  it("answers a list with one unit-length 64-dimension vector per input, and usage", async () => {
    const body = await embedAll(["the quick brown fox", "jumps"]);
    expect(body).toMatchObject({ object: "list", model: "text-embedding-3-small", usage: { prompt_tokens: 5, total_tokens: 5 } });
    expect(body.data.map((d) => [d.object, d.index, d.embedding.length])).toEqual([
      ["embedding", 0, 64],
      ["embedding", 1, 64],
    ]);
    for (const d of body.data) expect(Math.hypot(...d.embedding)).toBeCloseTo(1, 10);
  });

  it("is deterministic, case-insensitive and ignores punctuation", async () => {
    const a = await vector("What is the capital of France?");
    expect(await vector("What is the capital of France?")).toEqual(a);
    expect(cosine(a, await vector("what IS the capital of france"))).toBeCloseTo(1, 10);
  });

  it("orders similarity by shared words", async () => {
    const q = await vector("what is the capital city of france");
    const near = await vector("what is the capital city of spain");
    const far = await vector("recipe for chocolate banana bread muffins");
    expect(cosine(q, near)).toBeGreaterThan(0.8);
    expect(cosine(q, far)).toBeLessThan(0.3);
    expect(cosine(q, near)).toBeGreaterThan(cosine(q, far));
  });

  it("uses the body model on /v1 and answers base64 when the SDK asks for it", async () => {
    const floats = await embedAll("hello world", "/v1/embeddings");
    expect(floats.model).toBe("mock-model");
    const r = await send(mock.port, { path: "/v1/embeddings", body: { model: "emb", input: "hello world", encoding_format: "base64" } });
    const b64 = r.json<{ model: string; data: { embedding: string }[] }>();
    expect(b64.model).toBe("emb");
    const bytes = Buffer.from(b64.data[0]?.embedding ?? "", "base64");
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
    expect(decoded).toHaveLength(64);
    decoded.forEach((x, i) => expect(x).toBeCloseTo(floats.data[0]?.embedding[i] ?? NaN, 6));
  });

  it("400s a missing input", async () => {
    const r = await send(mock.port, { path: "/v1/embeddings", body: { model: "emb" } });
    expect(r.status).toBe(400);
    expect(r.json()).toEqual({ error: { message: "'input' is a required property", type: "invalid_request_error", code: "invalid_request" } });
  });
});
