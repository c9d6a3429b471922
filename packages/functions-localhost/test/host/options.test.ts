import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installCoreShim } from "../../src/core-shim.js";
import { type LocalHost, startLocalHost } from "../../src/host.js";

const fixtures = path.resolve(__dirname, "../fixtures/host-app");
let host: LocalHost;
const logs: string[] = [];

beforeAll(async () => {
  installCoreShim();
  process.env.SLOW_TICK_SCHEDULE = "* * * * * *";
  host = await startLocalHost({
    port: 0,
    routePrefix: "",
    timers: false,
    functionFiles: [path.join(fixtures, "http.js"), path.join(fixtures, "timer.js")],
    log: (level, message) => logs.push(`${level} ${message}`),
  });
});

afterAll(async () => {
  await host?.close();
});

describe("host options", () => {
  it("serves routes without a prefix when routePrefix is empty", async () => {
    const res = await fetch(`${host.url}/projects/3`);
    expect(await res.json()).toMatchObject({ fn: "getProject", id: "3" });
    expect((await fetch(`${host.url}/api/projects/3`)).status).toBe(404);
  });

  it("does not arm timers (nor runOnStartup) when timers is false, but still runs them on demand", async () => {
    await new Promise((r) => setTimeout(r, 1200));
    const state = (await (await fetch(`${host.url}/tick-state`)).json()) as { ticks: number; startup: number };
    expect(state.ticks).toBe(0);
    expect(state.startup).toBe(0);
    await host.invokeTimer("tick");
    expect(((await (await fetch(`${host.url}/tick-state`)).json()) as { ticks: number }).ticks).toBe(1);
    await expect(host.invokeTimer("failingTimer")).rejects.toThrow("timer boom");
    await expect(host.invokeTimer("echo")).rejects.toThrow(/not a timer/);
  });

  it("rejects a second host on a busy port and keeps the first one working", async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", () => r()));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      await expect(startLocalHost({ port, functionFiles: [], log: () => undefined })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      busy.close();
    }
    expect((await fetch(`${host.url}/projects/mine`)).status).toBe(200);
  });

  it("closes idempotently", async () => {
    const other = await startLocalHost({ port: 0, functionFiles: [], log: () => undefined });
    expect(other.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(other.port).toBeGreaterThan(0);
    await Promise.all([other.close(), other.close()]);
    await other.close();
    await expect(fetch(`${other.url}/projects/mine`)).rejects.toThrow();
  });
});
