// The trap the core shim must avoid: @azure/functions caches its lookup of
// '@azure/functions-core' on the first app.* call. If that happens before installCoreShim(),
// the library stays in "test mode" and every later registration is skipped.
import { createRequire } from "node:module";
import path from "node:path";
import { afterAll, expect, it, vi } from "vitest";
import { getRegisteredFunctions, installCoreShim } from "../../src/core-shim.js";
import { type LocalHost, startLocalHost } from "../../src/host.js";

let host: LocalHost | undefined;
afterAll(async () => {
  await host?.close();
});

it("registrations made before installCoreShim() latch test mode, and the host says so", async () => {
  const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
  const req = createRequire(__filename);
  const { app } = req("@azure/functions") as { app: { http(name: string, o: unknown): void } };
  app.http("early", { handler: () => ({ body: "x" }) });
  expect(warn.mock.calls.some((c) => String(c[0]).includes("test mode"))).toBe(true);

  installCoreShim();
  const logs: string[] = [];
  host = await startLocalHost({
    port: 0,
    functionFiles: [path.resolve(__dirname, "../fixtures/host-app/http.js")],
    log: (level, message) => logs.push(`${level} ${message}`),
  });
  expect(getRegisteredFunctions()).toEqual([]);
  expect(logs.some((l) => l.startsWith("warn No functions were registered"))).toBe(true);
  expect((await fetch(`${host.url}/api/echo`, { method: "POST", body: "{}" })).status).toBe(404);
  expect(warn.mock.calls.some((c) => String(c[0]).includes('Skipping call to register function "echo"'))).toBe(true);
  warn.mockRestore();
});
