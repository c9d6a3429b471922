/**
 * The outbound fetch as a deployed control plane runs it (allowLoopback false, no allowPrivate): every
 * spelling of a loopback, private, link-local or Azure platform address is refused before a packet
 * leaves, a name that resolves to one is refused on the address it resolves to, and the refusal says why
 * without telling the caller what an internal name resolves to.
 */
import dns from "node:dns";
import type { IncomingMessage, ServerResponse } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { BlockedAddressError, createSafeFetch, isPublicAddress, type SafeFetch } from "../../src/adapters/http/safe-fetch.js";
import { refuseUpstream } from "../../src/pillars/tools/upstream.js";
import { listenLoopback, type LoopbackServer } from "../fixtures/mcp/http.js";

const AZURE = { allowLoopback: false };
const EVERYTHING = { allowLoopback: true, allowPrivate: true };

describe("isPublicAddress, as Azure runs it", () => {
  it("refuses Azure's platform address (168.63.129.16: WireServer, host agent, platform DNS) whatever the options", () => {
    expect(isPublicAddress("168.63.129.16", AZURE)).toBe(false);
    expect(isPublicAddress("168.63.129.16", EVERYTHING)).toBe(false);
    expect(isPublicAddress("::ffff:168.63.129.16", EVERYTHING)).toBe(false);
    // Its neighbours are ordinary public addresses.
    expect(isPublicAddress("168.63.129.15", AZURE)).toBe(true);
  });

  it("judges IPv4-compatible IPv6 addresses (::/96, as a URL parser writes them) as the IPv4 address they carry", () => {
    // new URL("http://[::127.0.0.1]/").hostname is "[::7f00:1]"
    expect(new URL("http://[::127.0.0.1]/").hostname).toBe("[::7f00:1]");
    for (const addr of ["::7f00:1", "::a9fe:a9fe", "::a00:1", "::c0a8:101", "::a83f:8110"]) {
      expect({ addr, azure: isPublicAddress(addr, AZURE), private: isPublicAddress(addr, EVERYTHING) }).toMatchObject({ addr, azure: false });
    }
    expect(isPublicAddress("::a9fe:a9fe", EVERYTHING)).toBe(false);
    expect(isPublicAddress("::7f00:1", { allowLoopback: true })).toBe(true);
  });
});

describe("refuseUpstream, as Azure runs it", () => {
  it("refuses localhost however it is spelt, the trailing-dot form included", () => {
    for (const url of ["https://localhost./mcp", "https://api.localhost./mcp", "https://LOCALHOST../mcp"]) expect({ url, why: refuseUpstream(url, false) }).toMatchObject({ url, why: expect.any(String) });
  });

  it("refuses Azure's platform address and IPv4-compatible spellings of private ones", () => {
    for (const url of ["https://168.63.129.16/", "https://[::127.0.0.1]/", "https://[::169.254.169.254]/", "https://[::10.0.0.1]/"]) {
      expect({ url, why: refuseUpstream(url, false) }).toMatchObject({ url, why: expect.any(String) });
    }
  });
});

describe("createSafeFetch, as Azure runs it", () => {
  let target: LoopbackServer;
  const hits: string[] = [];
  const fetches: SafeFetch[] = [];
  const strict = () => {
    const f = createSafeFetch({ allowLoopback: false, maxBodyBytes: 1_000, timeoutMs: 5_000 });
    fetches.push(f);
    return f;
  };

  beforeAll(async () => {
    target = await listenLoopback((req: IncomingMessage, res: ServerResponse) => {
      hits.push(req.url ?? "");
      res.end("reached");
    });
  });
  afterEach(() => vi.restoreAllMocks());
  afterAll(async () => {
    await Promise.all(fetches.map((f) => f.close()));
    await target.close();
  });

  it("refuses every spelling of the loopback address before connecting", async () => {
    const port = target.port;
    const spellings = [
      `http://2130706433:${port}/decimal`,
      `http://0x7f000001:${port}/hex`,
      `http://0177.0.0.1:${port}/octal`,
      `http://127.1:${port}/short`,
      `http://[::ffff:127.0.0.1]:${port}/mapped`,
      `http://[::127.0.0.1]:${port}/compatible`,
      `http://[::1]:${port}/six`,
      `http://localhost:${port}/name`,
      `http://localhost.:${port}/trailing-dot`,
    ];
    const f = strict();
    for (const url of spellings) await expect(f(url), url).rejects.toBeInstanceOf(BlockedAddressError);
    expect(hits).toEqual([]);
  });

  it("refuses Azure's platform address before connecting", async () => {
    await expect(strict()("http://168.63.129.16/machine?comp=goalstate")).rejects.toBeInstanceOf(BlockedAddressError);
    await expect(strict()("http://168.63.129.16:32526/vmSettings")).rejects.toBeInstanceOf(BlockedAddressError);
  });

  it("refuses a name that resolves to a private address (any of its addresses), without saying which address", async () => {
    const lookup = dns.lookup;
    const fake = ((hostname: string, options: unknown, callback: (err: Error | null, addresses: dns.LookupAddress[]) => void) => {
      if (hostname === "db.internal.example") return callback(null, [{ address: "10.20.30.40", family: 4 }]);
      if (hostname === "mixed.example") return callback(null, [{ address: "93.184.215.14", family: 4 }, { address: "172.16.99.7", family: 4 }]);
      return (lookup as (...a: unknown[]) => void)(hostname, options, callback);
    }) as unknown as typeof dns.lookup;
    vi.spyOn(dns, "lookup").mockImplementation(fake);
    for (const host of ["db.internal.example", "mixed.example"]) {
      const error = await strict()(`http://${host}/`).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BlockedAddressError);
      const message = (error as Error).message;
      expect(message).toContain(host);
      // What an internal name resolves to is not the caller's to learn (discovery records this message on the server).
      expect(message).not.toMatch(/10\.20\.30\.40|172\.16\.99\.7/);
    }
  });
});
