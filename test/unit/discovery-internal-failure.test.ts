import { describe, expect, it } from "vitest";
import { DiscoveryRunner } from "../../src/pillars/tools/discovery/run.js";

/**
 * A discovery's internal error (anything thrown outside discoverServer, which reports its own failures) is
 * recorded on the server and sent in its event: redacted of the server's credentials as discoverServer's are.
 */
const HEADER_SECRET = "hdr-secret-value-0123456789";
const QUERY_SECRET = "query-secret-9876543210";

function runnerFor() {
  const server = {
    id: "srv_1",
    tenantId: "t1",
    scopeId: "p1",
    projectId: "p1",
    status: "active",
    source: { kind: "remote", url: `https://mcp.example.com/mcp?api_key=${QUERY_SECRET}`, transport: "auto" },
    auth: { type: "header", header: "X-Api-Key", secretRef: { name: "mcp-srv-1-upstream", version: "1" } },
    discoveryState: { status: "never" },
    _etag: "e1",
  };
  const recorded: { discoveryState: unknown; data: unknown }[] = [];
  const registry = {
    partition: (tenantId: string, scopeId: string) => ({ tenantId, scopeId }),
    servers: {
      read: async () => server,
      replace: async (_ctx: unknown, _current: unknown, next: { discoveryState: unknown }, note: { data: unknown }) => {
        recorded.push({ discoveryState: next.discoveryState, data: note.data });
      },
    },
    secretOf: async () => HEADER_SECRET,
  };
  const hooks = { suspendChanged: async () => [], catalog: async () => undefined, forget: async () => undefined };
  const runner = new DiscoveryRunner(registry as never, {} as never, { now: () => new Date("2025-01-01T00:00:00Z") } as never, hooks, true);
  return { runner, recorded };
}

describe("discovery: an internal error", () => {
  it("is recorded and announced without the server's header credential or its URL's query token", async () => {
    const { runner, recorded } = runnerFor();
    // The seam: the listing throws an error that quotes the request it was making, credential and all.
    (runner as unknown as { list: () => Promise<never> }).list = async () => {
      throw new Error(`request to https://mcp.example.com/mcp?api_key=${QUERY_SECRET} failed; headers: {"X-Api-Key":"${HEADER_SECRET}"}`);
    };
    const result = await runner.run("t1", "p1", "srv_1", "corr-1");
    expect(result).toMatchObject({ outcome: "failed", code: "internal" });
    expect(recorded).toHaveLength(1);
    const everything = JSON.stringify([result, recorded]);
    expect(everything).not.toContain(HEADER_SECRET);
    expect(everything).not.toContain(QUERY_SECRET);
    expect((result as { message: string }).message).toContain("[redacted]");
    expect((result as { message: string }).message.length).toBeLessThanOrEqual(500);
  });
});

describe("discovery: a URL credential quoted as the URL spells it", () => {
  it("is redacted when its value has a '+' or is percent-encoded in the URL (the parsed value differs from the text)", async () => {
    const { reportableText } = await import("../../src/pillars/tools/discovery/client.js");
    // Base64 tokens carry '+' and '/': the URL keeps '+' (a space, parsed) and a '%2B' stays encoded in its text.
    for (const url of ["https://mcp.example.com/mcp?api_key=Ab3+xYz9+QqLm0==", "https://mcp.example.com/mcp?api_key=Ab3%2BxYz9%2BQqLm0%3D%3D", "https://user:p%ss-w0rd-9@mcp.example.com/mcp"]) {
      const quoted = `request to ${url} failed`;
      const reported = reportableText(quoted, { url, transport: "auto", headers: {} });
      expect(reported).toContain("[redacted]");
      for (const secret of ["Ab3+xYz9+QqLm0", "Ab3%2BxYz9%2BQqLm0", "p%ss-w0rd-9"]) expect(reported).not.toContain(secret);
    }
  });
});
