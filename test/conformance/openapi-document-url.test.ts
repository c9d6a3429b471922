/**
 * Conformance: an OpenAPI document fetched from `documentUrl` (the fetch asks for JSON or YAML) is read
 * as the document it is, YAML included, and a hostile YAML document (an alias bomb) fails the discovery
 * quickly with a reason instead of being expanded.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Governed } from "../support/governed.js";
import { ITEMS_API } from "../support/tools.js";
import { until } from "../support/until.js";

let g: Governed;
let docs: Server;
let docsUrl: string;

/** YAML that is not JSON: a block mapping of the document's top-level members, each value in flow style. */
const asYaml = (doc: Record<string, unknown>) => Object.entries(doc).map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`).join("");

/** Nine levels of ten aliases each: a few hundred bytes of YAML that stand for 10^9 nodes once expanded. */
function aliasBomb(): string {
  const lines = ["openapi: 3.1.0", "info: {title: bomb, version: '1'}", "paths: {}", "x-bomb:", "  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"];
  for (let i = 1; i <= 9; i++) lines.push(`  l${i}: &l${i} [${Array.from({ length: 10 }, () => `*l${i - 1}`).join(", ")}]`);
  return `${lines.join("\n")}\n`;
}

const routes: Record<string, { type: string; body: string }> = {
  "/items.yaml": { type: "application/yaml", body: asYaml(ITEMS_API) },
  "/bomb.yaml": { type: "application/yaml", body: aliasBomb() },
  // One 3 MB line of nesting: the YAML reader refuses it and quotes the line in its message.
  "/deep.yaml": { type: "application/yaml", body: `openapi: 3.1.0\nx: ${"[".repeat(1_500_000)}${"]".repeat(1_500_000)}\n` },
  // A document whose top-level member is named like the runner's own failure record.
  "/failed.json": { type: "application/json", body: JSON.stringify({ ...ITEMS_API, failed: { code: "injected", message: { any: "json the document chose" } } }) },
};

/** Requests that reached the redirect's target (must stay none). */
const redirected: string[] = [];

beforeAll(async () => {
  g = await Governed.start("t-openapi-url");
  docs = createServer((req, res) => {
    if (req.url === "/huge.json") {
      // 5 MiB, streamed without a Content-Length: the reader must stop at its own limit.
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"openapi":"3.1.0","x-pad":"');
      for (let i = 0; i < 80; i++) res.write("x".repeat(64 * 1024));
      return void res.end('"}');
    }
    if (req.url === "/moved.json") return void res.writeHead(302, { location: "/target.json" }).end();
    if (req.url === "/target.json") redirected.push(req.url);
    const route = routes[req.url ?? ""];
    if (!route) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": route.type }).end(route.body);
  });
  await new Promise<void>((r) => docs.listen(0, "127.0.0.1", r));
  docsUrl = `http://127.0.0.1:${(docs.address() as AddressInfo).port}`;
});
afterAll(async () => {
  docs.closeAllConnections();
  await new Promise<void>((r) => docs.close(() => r()));
  await g.stop();
});

async function outcome(projectId: string, name: string, documentUrl: string) {
  const created = await g.admin.tools.createServer(projectId, { name, source: { kind: "openapi", baseUrl: "https://items.example.com", documentUrl }, discovery: { enabled: false, intervalHours: 24 } });
  return until(async () => {
    const s = await g.admin.tools.getServer(projectId, created.id);
    return s.discoveryState.status === "succeeded" || s.discoveryState.status === "failed" ? s : undefined;
  }, `discovery of ${name}`);
}

describe("conformance: OpenAPI documents fetched from documentUrl", () => {
  it("a YAML document is converted as the same API in JSON would be", async () => {
    const p = await g.project("yaml by url");
    const s = await outcome(p.id, "items-yaml", `${docsUrl}/items.yaml`);
    expect(s.discoveryState, JSON.stringify(s.discoveryState)).toMatchObject({ status: "succeeded", toolCount: 2, transport: "openapi" });
    expect((await g.admin.tools.listTools(p.id, s.id)).items.map((t) => t.name).sort()).toEqual(["deleteItem", "getItem"]);
  });

  it("a YAML alias bomb is refused with a reason, not expanded", async () => {
    const p = await g.project("yaml bomb");
    const s = await outcome(p.id, "bomb-yaml", `${docsUrl}/bomb.yaml`);
    expect(s.discoveryState.status).toBe("failed");
    expect(s.discoveryState.failure?.code).toBe("openapi_invalid");
    expect(s.discoveryState.failure?.message).toMatch(/more than \d+ bytes of JSON/);
  });

  it("a YAML document nested past the reader's depth is refused with a short message that does not quote it", async () => {
    const p = await g.project("deep yaml");
    const s = await outcome(p.id, "deep-yaml", `${docsUrl}/deep.yaml`);
    expect(s.discoveryState.failure?.code).toBe("openapi_invalid");
    expect(s.discoveryState.failure?.message).toMatch(/^: not valid YAML or JSON: nesting exceeded/);
    expect(s.discoveryState.failure?.message).not.toContain("[[[[");
  });

  it("a document larger than the limit is cut off and reported as too large", async () => {
    const p = await g.project("huge doc");
    const s = await outcome(p.id, "huge-doc", `${docsUrl}/huge.json`);
    expect(s.discoveryState.status).toBe("failed");
    expect(s.discoveryState.failure).toEqual({ code: "manifest_too_large", message: expect.stringMatching(/exceeds \d+ bytes/) });
  });

  it("a redirect is reported, not followed", async () => {
    const p = await g.project("moved doc");
    const s = await outcome(p.id, "moved-doc", `${docsUrl}/moved.json`);
    expect(s.discoveryState.failure).toEqual({ code: "http_error", message: "the OpenAPI document answered 302" });
    expect(redirected).toEqual([]);
  });

  it("a document's own members are never taken for the outcome of the fetch", async () => {
    const p = await g.project("failed member");
    const s = await outcome(p.id, "failed-member", `${docsUrl}/failed.json`);
    expect(s.discoveryState.status).toBe("failed");
    expect(s.discoveryState.failure?.code).toBe("openapi_invalid");
    expect(typeof s.discoveryState.failure?.message).toBe("string");
  });
});
