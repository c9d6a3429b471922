/**
 * A card's signatures name where their keys are (`jku`): each lookup is bounded, and so are all of one
 * card's lookups together. A card of ten signatures naming ten JWKS URLs that never answer must not hold
 * the request that registers it (or a sync) for ten lookup time-outs, nor make ten outbound connections.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signAgentCard } from "../../src/pillars/agents/card/index.js";
import { Cards } from "../../src/pillars/agents/card-record.js";

const fixture = (name: string): Record<string, unknown> => JSON.parse(readFileSync(`test/fixtures/a2a/${name}`, "utf8")) as Record<string, unknown>;
const clock = { now: () => new Date("2026-01-01T00:00:00Z") };

/** Accepts TCP connections and never says a word: a TLS handshake with it waits until the client gives up. */
let silent: Server;
let port: number;
const sockets: Socket[] = [];

beforeAll(async () => {
  silent = createServer((socket) => {
    sockets.push(socket);
    socket.on("error", () => undefined);
  });
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  port = (silent.address() as { port: number }).port;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => silent.close(() => r()));
});

describe("AgentCard key lookups", () => {
  it("share one budget per card: once it is spent, the remaining signatures are reported unverifiable without a lookup", { timeout: 120_000 }, async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    let card: Record<string, unknown> = fixture("v1-weather.json");
    for (let i = 0; i < 10; i++) card = await signAgentCard(card, privateKey, { kid: `k${i}`, alg: "ES256", jku: `https://127.0.0.1:${port}/jwks-${i}.json` });
    const cards = new Cards(clock, true, { keyLookupBudgetMs: 500 });

    const record = await cards.assess(card, "cloud");

    // The card itself is fine: its unverifiable signatures are warnings.
    expect(record.valid).toBe(true);
    expect(record.trust).toBe("unverified");
    expect(record.signatures).toHaveLength(10);
    expect(record.signatures.every((s) => s.status === "unverifiable")).toBe(true);
    // The budget ran out during the first lookup: the others were not attempted.
    expect(sockets.length).toBe(1);
    expect(record.signatures.slice(1).every((s) => /budget/.test(s.reason ?? ""))).toBe(true);
  });
});
