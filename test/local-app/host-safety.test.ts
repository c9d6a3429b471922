// The local host as `npm start` runs it is safe to leave running on a workstation: it answers only
// requests addressed to it (DNS rebinding), mints dev tokens only for JSON posts (no cross-site form),
// bounds request bodies before buffering them, and its durable HTTP API needs the host's system key.
import http from "node:http";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_HOST_MAX_BODY_BYTES } from "../../src/local-app/main.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { ensureBuilt, startChildApp, stopChildApp } from "../support/child-app.js";

let t: TestApp;
let port: number;

beforeAll(async () => {
  t = await startTestApp();
  port = t.app.host.port;
}, 120_000);
afterAll(async () => {
  await t?.stop();
});

interface Answer {
  status: number;
  type: string | undefined;
  body: string;
}

/** One request with exactly these headers (fetch would set Host itself). */
function request(method: string, path: string, headers: Record<string, string>, body?: string, url = t.url): Promise<Answer> {
  const { hostname, port: p } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port: p, path, method, headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: res.headers["content-type"], body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("Host header (DNS rebinding)", () => {
  it("serves loopback names with any port, and refuses any other name with 421 problem+json", async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, "LOCALHOST", `[::1]:${port}`, "127.0.0.1"]) {
      expect((await request("GET", "/api/health", { host })).status, host).toBe(200);
    }
    for (const host of [`evil.example:${port}`, "attacker.test", `127.0.0.1.nip.io:${port}`, "localhost.evil.example"]) {
      const r = await request("GET", "/api/health", { host });
      expect(r.status, host).toBe(421);
      expect(r.type).toBe("application/problem+json");
      expect(JSON.parse(r.body)).toMatchObject({ status: 421 });
    }
    // Not even the dev token issuer answers a rebound name.
    const token = await request("POST", "/.dev/token", { host: "evil.example", "content-type": "application/json" }, JSON.stringify({ tenant: "t1", user: "mallory", roles: ["TenantAdmin"] }));
    expect(token.status).toBe(421);
    expect(token.body).not.toContain("access_token");
  });

  it("serves the configured public URL's host too (AIGOV_PUBLIC_URL), and nothing else", { timeout: 120_000 }, async () => {
    ensureBuilt();
    const dataDir = mkdtempSync(join(tmpdir(), "aigov-public-host-"));
    const child = await startChildApp(dataDir, "node", { AIGOV_PUBLIC_URL: "https://aigov.example.com" });
    try {
      expect((await request("GET", "/api/health", { host: "aigov.example.com" }, undefined, child.url)).status).toBe(200);
      expect((await request("GET", "/api/health", { host: "localhost" }, undefined, child.url)).status).toBe(200);
      expect((await request("GET", "/api/health", { host: "other.example.com" }, undefined, child.url)).status).toBe(421);
    } finally {
      await stopChildApp(child.child);
    }
  });
});

describe("/.dev/token", () => {
  const claims = JSON.stringify({ tenant: "t1", user: "mallory", roles: ["TenantAdmin"] });

  it("refuses a cross-site form post (text/plain, urlencoded, multipart, none) with 415, and mints for application/json", async () => {
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", undefined]) {
      const r = await request("POST", "/.dev/token", { host: `127.0.0.1:${port}`, ...(type ? { "content-type": type } : {}) }, claims);
      expect(r.status, String(type)).toBe(415);
      expect(r.type).toBe("application/problem+json");
      expect(r.body).not.toContain("access_token");
    }
    const ok = await request("POST", "/.dev/token", { host: `127.0.0.1:${port}`, "content-type": "application/json; charset=utf-8" }, claims);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ token_type: "Bearer" });
  });
});

describe("request bodies are bounded before buffering", () => {
  /**
   * Declares `declared` bytes, sends 1 KiB and waits for the answer: a host that waits for the whole body
   * never answers (the test then fails on its own deadline, saying so).
   */
  function declaredOnly(path: string, declared: number): Promise<Answer> {
    const { hostname, port: p } = new URL(t.url);
    return new Promise((resolve, reject) => {
      const req = http.request({ hostname, port: p, path, method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": String(declared) } }, (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, type: res.headers["content-type"], body: text }));
        res.on("error", () => resolve({ status: res.statusCode ?? 0, type: res.headers["content-type"], body: text }));
      });
      req.on("error", reject);
      req.write(Buffer.alloc(1024, 0x20));
      setTimeout(() => {
        req.destroy();
        reject(new Error(`no answer to ${path} while ${declared - 1024} declared bytes were still unsent: the host waits to buffer the body`));
      }, 15_000).unref();
    });
  }

  it("refuses a declared Content-Length over the limit with 413 before reading the body (unauthenticated)", async () => {
    for (const path of ["/api/projects", "/.dev/token", "/runtime/webhooks/durabletask/orchestrators/anything"]) {
      const r = await declaredOnly(path, 90 * 1024 * 1024);
      expect(r.status, path).toBe(413);
      expect(r.type).toBe("application/problem+json");
      expect(JSON.parse(r.body)).toMatchObject({ status: 413 });
    }
  });

  it("stops reading a chunked body as soon as it passes the limit (413)", async () => {
    const { hostname, port: p } = new URL(t.url);
    const cap = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let written = 0;
    const status = await new Promise<number>((resolve, reject) => {
      let answered = false;
      const req = http.request({ hostname, port: p, path: "/api/projects", method: "POST", agent: false, headers: { "content-type": "application/json", "transfer-encoding": "chunked" } }, (res) => {
        answered = true;
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", (err) => (answered ? undefined : reject(err)));
      const pump = (): void => {
        while (!answered && written < cap) {
          written += chunk.length;
          if (!req.write(chunk)) {
            req.once("drain", pump);
            return;
          }
        }
        if (!answered) req.end();
      };
      pump();
    });
    expect(status).toBe(413);
    // What was sent before the answer: the limit plus what the sockets' buffers took, far from everything.
    expect(written).toBeGreaterThan(LOCAL_HOST_MAX_BODY_BYTES);
    expect(written).toBeLessThan(cap / 4);
  });

  it("still lets the API answer bodies between its own limit and the host's with its own 413", async () => {
    const token = await t.token("t1", "alice", ["TenantAdmin"]);
    const body = JSON.stringify({ name: "big", environment: "dev", owner: "alice", description: "x".repeat(LOCAL_HOST_MAX_BODY_BYTES / 2) });
    const r = await request("POST", "/api/projects", { host: `127.0.0.1:${port}`, authorization: `Bearer ${token}`, "content-type": "application/json" }, body);
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toMatchObject({ status: 413, code: "PayloadTooLarge" });
  });
});

describe("the durable HTTP API", () => {
  const path = "/runtime/webhooks/durabletask/instances";

  it("needs the host's system key: 401 problem+json without it or with a wrong one", async () => {
    const attempts: Record<string, string>[] = [{}, { "x-functions-key": "wrong" }, { "x-functions-key": "" }];
    for (const headers of attempts) {
      const r = await request("GET", path, { host: `127.0.0.1:${port}`, ...headers });
      expect(r.status, JSON.stringify(headers)).toBe(401);
      expect(r.type).toBe("application/problem+json");
      expect(JSON.parse(r.body)).toMatchObject({ status: 401 });
    }
    expect((await request("GET", `${path}?code=wrong`, { host: `127.0.0.1:${port}` })).status).toBe(401);
    // A start without the key is refused before its body is read.
    const start = await request("POST", "/runtime/webhooks/durabletask/orchestrators/approvalOrchestrator/x1", { host: `127.0.0.1:${port}`, "content-type": "application/json" }, "{}");
    expect(start.status).toBe(401);
  });

  it("accepts it as x-functions-key or ?code=; it is random per data directory, kept in durabletask.key (0600)", async () => {
    const file = join(t.app.dataDir, "durabletask.key");
    const key = readFileSync(file, "utf8").trim();
    expect(key).toBe(t.app.durableKey);
    expect(key.length).toBeGreaterThanOrEqual(32);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await request("GET", path, { host: `127.0.0.1:${port}`, "x-functions-key": key })).status).toBe(200);
    expect((await request("GET", `${path}?code=${encodeURIComponent(key)}`, { host: `127.0.0.1:${port}` })).status).toBe(200);
  });
});
