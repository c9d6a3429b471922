import type { IncomingMessage, ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BlockedAddressError, ResponseTooLargeError, createSafeFetch, isPublicAddress, type SafeFetch } from "../../src/adapters/http/safe-fetch.js";
import { listenLoopback, type LoopbackServer } from "../fixtures/mcp/http.js";

/** Every connection these tests make is to 127.0.0.1; the refused addresses are refused before any packet leaves. */

describe("isPublicAddress", () => {
  const strict = { allowLoopback: false };
  const everything = { allowLoopback: true, allowPrivate: true };

  it("accepts public unicast addresses of both families", () => {
    for (const addr of ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "2001:4860:4860::8888"]) expect({ addr, ok: isPublicAddress(addr, strict) }).toEqual({ addr, ok: true });
  });

  it("accepts loopback only when asked, in every spelling", () => {
    for (const addr of ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]) {
      expect({ addr, strict: isPublicAddress(addr, strict), local: isPublicAddress(addr, { allowLoopback: true }) }).toEqual({ addr, strict: false, local: true });
    }
  });

  it("accepts private networks only with allowPrivate, IPv4-mapped forms included", () => {
    for (const addr of ["10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "fd00::1", "::ffff:10.0.0.1"]) {
      expect({ addr, local: isPublicAddress(addr, { allowLoopback: true }), privateOk: isPublicAddress(addr, everything) }).toEqual({ addr, local: false, privateOk: true });
    }
  });

  it("refuses link-local, metadata, unspecified, multicast, broadcast, reserved and tunnelling prefixes whatever the options", () => {
    const never = [
      "169.254.169.254",
      "::ffff:169.254.169.254",
      "fe80::1",
      "0.0.0.0",
      "::",
      "224.0.0.1",
      "ff02::1",
      "255.255.255.255",
      "240.0.0.1",
      "192.0.2.1",
      "64:ff9b::a9fe:a9fe",
      "2002:a9fe:a9fe::",
      "2001::1",
    ];
    for (const addr of never) expect({ addr, ok: isPublicAddress(addr, everything) }).toEqual({ addr, ok: false });
  });

  it("refuses what is not an address", () => {
    for (const addr of ["", "localhost", "example.com", "999.1.1.1", "1.2.3", "0x7f.1", "127.1", null, 42]) expect(isPublicAddress(addr as string, everything)).toBe(false);
  });
});

describe("createSafeFetch", () => {
  let target: LoopbackServer;
  let redirectTarget: LoopbackServer;
  const hits: string[] = [];
  let redirectHits = 0;
  /** Called to let the held SSE stream continue; set by the /events handler. */
  let releaseEvents: (() => void) | undefined;
  const fetches: SafeFetch[] = [];
  const make = (options: Partial<Parameters<typeof createSafeFetch>[0]> = {}) => {
    const f = createSafeFetch({ allowLoopback: true, maxBodyBytes: 1_000, timeoutMs: 5_000, ...options });
    fetches.push(f);
    return f;
  };

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
    "/ok": (_req, res) => res.end("ok"),
    "/declared-big": (_req, res) => res.writeHead(200, { "content-length": "5000" }).end("x".repeat(5000)),
    "/streamed-big": (_req, res) => {
      res.writeHead(200);
      for (let i = 0; i < 10; i++) res.write("y".repeat(300));
      res.end();
    },
    "/exactly-limit": (_req, res) => {
      res.writeHead(200);
      res.write("z".repeat(600));
      res.end("z".repeat(400));
    },
    "/events": (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: first\n\n");
      releaseEvents = () => res.end("data: second\n\n");
    },
    "/redirect": (_req, res) => res.writeHead(302, { location: `http://127.0.0.1:${redirectTarget.port}/` }).end(),
    "/hang": () => undefined,
    "/echo": (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c)).on("end", () => res.end(`${req.method} ${Buffer.concat(chunks).toString()}`));
    },
  };

  beforeAll(async () => {
    target = await listenLoopback((req, res) => {
      hits.push(req.url ?? "");
      (routes[req.url ?? ""] ?? ((_q: IncomingMessage, r: ServerResponse) => r.writeHead(404).end()))(req, res);
    });
    redirectTarget = await listenLoopback((_req, res) => {
      redirectHits++;
      res.end("moved");
    });
  });
  afterAll(async () => {
    await Promise.all(fetches.map((f) => f.close()));
    await Promise.all([target.close(), redirectTarget.close()]);
  });

  const url = (path: string) => `http://127.0.0.1:${target.port}${path}`;

  it("refuses 127.0.0.1 and localhost unless loopback is allowed, before connecting", async () => {
    const strict = make({ allowLoopback: false });
    const before = hits.length;
    for (const address of [url("/ok"), url("/ok").replace("127.0.0.1", "localhost"), url("/ok").replace("127.0.0.1", "[::ffff:127.0.0.1]")]) {
      await expect(strict(address)).rejects.toMatchObject({ name: "BlockedAddressError", code: "blocked_address" });
    }
    expect(hits.length).toBe(before);
    const local = make();
    expect(await (await local(url("/ok"))).text()).toBe("ok");
    expect(await (await local(url("/ok").replace("127.0.0.1", "localhost"))).text()).toBe("ok");
  });

  it("refuses the metadata address and IPv4-mapped private addresses even in local mode", async () => {
    const local = make({ allowLoopback: true });
    await expect(local("http://169.254.169.254/latest/meta-data/")).rejects.toBeInstanceOf(BlockedAddressError);
    await expect(local("http://[::ffff:10.0.0.1]/")).rejects.toBeInstanceOf(BlockedAddressError);
    await expect(make({ allowLoopback: true, allowPrivate: true })("http://169.254.169.254/")).rejects.toBeInstanceOf(BlockedAddressError);
  });

  it("refuses schemes other than http and https", async () => {
    const local = make();
    for (const address of ["file:///etc/passwd", "ftp://127.0.0.1/", "data:text/plain,hello"]) {
      await expect(local(address)).rejects.toBeInstanceOf(BlockedAddressError);
    }
  });

  it("fails a body past the limit, declared or streamed, and tells onBodyLimit", async () => {
    const told: ResponseTooLargeError[] = [];
    const capped = make({ maxBodyBytes: 1_000, onBodyLimit: (e) => told.push(e) });
    await expect(capped(url("/declared-big"))).rejects.toBeInstanceOf(ResponseTooLargeError);
    const streamed = await capped(url("/streamed-big"));
    expect(streamed.status).toBe(200);
    await expect(streamed.text()).rejects.toBeInstanceOf(ResponseTooLargeError);
    expect(told).toHaveLength(2);
    expect(await (await capped(url("/exactly-limit"))).text()).toHaveLength(1_000);
  });

  it("streams: the first event is readable while the server still holds the response open", async () => {
    const response = await make()(url("/events"));
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("first")) text += (await reader.read()).value ?? "";
    expect(text).not.toContain("second");
    releaseEvents!();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += chunk.value;
    expect(text).toContain("data: second");
  });

  it("returns redirects instead of following them", async () => {
    const response = await make()(url("/redirect"));
    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe(`http://127.0.0.1:${redirectTarget.port}/`);
    expect(response.url).toBe(url("/redirect"));
    expect(redirectHits).toBe(0);
  });

  it("ends a request that outlives its deadline, and honours the caller's signal", async () => {
    await expect(make({ timeoutMs: 200 })(url("/hang"))).rejects.toMatchObject({ name: "TimeoutError" });
    const controller = new AbortController();
    const pending = make({ timeoutMs: 60_000 })(url("/hang"), { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
  });

  it("sends the method and body of a Request object", async () => {
    const response = await make()(new Request(url("/echo"), { method: "POST", body: "hello" }));
    expect(await response.text()).toBe("POST hello");
  });
});
