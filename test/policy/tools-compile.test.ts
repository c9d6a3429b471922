/**
 * The tools pillar's artifacts: MCP APIs for servers and toolboxes, which tier products link them, and
 * what their policies refuse — checked on the compiled artifacts (the conformance suite proves the same
 * promises through the local gateway).
 */
import { describe, expect, it } from "vitest";
import { compile, type CompileResult } from "../../src/policy/compile.js";
import * as X from "../../src/policy/expressions.js";
import { type CompilerInputIn } from "../../src/policy/input.js";
import { gatewayNames } from "../../src/policy/names.js";
import { type ApiArtifact, type PolicyArtifact, type ProductArtifact } from "../../src/ports/gateway.js";
import { project, tenant } from "./fixtures.js";
import { validateCompiled } from "./validator.js";

const N = gatewayNames("contoso");
const hash = (n: number) => n.toString(16).padStart(64, "0");
type ServerIn = NonNullable<NonNullable<CompilerInputIn["projects"][number]["tools"]>["servers"]>[number];

const github = (id: string, extra: Partial<ServerIn> = {}): ServerIn => ({
  id: `srv_${id.padStart(20, "0")}`,
  name: "github",
  source: { kind: "remote", url: "https://mcp.github.example.com/mcp", transport: "streamable-http" },
  tools: [
    { name: "read_issue", hash: hash(1), readOnly: true },
    { name: "delete_repo", hash: hash(2), readOnly: false },
  ],
  ...extra,
});
const items: ServerIn = {
  id: `srv_${"9".padStart(20, "0")}`,
  name: "items",
  source: { kind: "openapi", baseUrl: "https://items.example.com" },
  tools: [
    { name: "getItem", hash: hash(3), readOnly: true, operation: { id: "getItem", method: "GET", urlTemplate: "/items/{id}", templateParameters: [{ name: "id", type: "string", required: true }] } },
    { name: "deleteItem", hash: hash(4), readOnly: false, operation: { id: "deleteItem", method: "DELETE", urlTemplate: "/items/{id}", templateParameters: [{ name: "id", type: "string", required: true }] } },
  ],
};

const policyOf = (r: CompileResult, apiId: string) => r.artifacts.find((a): a is PolicyArtifact => a.kind === "policy" && a.scope.type === "api" && a.scope.apiId === apiId)?.xml;
const apiOf = (r: CompileResult, id: string) => r.artifacts.find((a): a is ApiArtifact => a.kind === "api" && a.id === id);
const productOf = (r: CompileResult, projectId: string, tier: string) => r.artifacts.find((a): a is ProductArtifact => a.kind === "product" && a.id === N.product(projectId, tier));
/** The literal list a policy sets in a variable (tool names are data, never code). */
const listIn = (xml: string, variable: string) => [...xml.matchAll(new RegExp(`<set-variable name="${variable}" value="([^"]*)"`, "g"))].map((m) => m[1]);

function input(extra: { mode?: "none" | "all" | "destructive"; grants?: { server: string; tool: string; hash: string }[]; pillarOff?: boolean } = {}): CompilerInputIn {
  return tenant(
    [
      project("a", [], {
        keyTiers: ["t_all", "t_read", "t_box"],
        pillars: { models: true, tools: !extra.pillarOff, agents: true },
        tools: {
          approvalMode: extra.mode ?? "none",
          servers: [github("1"), items],
          toolboxes: [{ id: `tbx_${"1".padStart(20, "0")}`, name: "box", tools: [{ server: "items", tool: "getItem" }] }],
          grants: extra.grants ?? [],
        },
      }),
    ],
    {
      keyTiers: [
        { id: "t_all", limits: {}, tools: ["server:github"] },
        { id: "t_read", limits: {}, tools: ["tool:github/read_issue", "tool:items/getItem"] },
        { id: "t_box", limits: {}, tools: ["toolbox:box"] },
      ],
    },
  );
}

describe("tools at the gateway: compiled artifacts", () => {
  it("servers and toolboxes are MCP APIs (pass-through, REST tools), valid and deterministic", () => {
    const r = compile(input());
    expect(validateCompiled(r.artifacts)).toEqual([]);
    expect(JSON.stringify(compile(input()).artifacts)).toBe(JSON.stringify(r.artifacts));
    const pass = apiOf(r, N.mcpApi("a", "github"))!;
    expect(pass).toMatchObject({ path: N.mcpApiPath("a", "github"), operations: [], mcp: { type: "passThrough", serviceUrl: "https://mcp.github.example.com", transportType: "streamable", endpoints: [{ name: "message", uriTemplate: "/mcp" }] } });
    const rest = apiOf(r, N.restApi("a", "items"))!;
    expect(rest.serviceUrl).toBe("https://items.example.com");
    expect(rest.operations.map((o) => o.id)).toEqual(["deleteItem", "getItem"]);
    expect(apiOf(r, N.mcpApi("a", "items"))!.mcp).toMatchObject({ type: "restTools", tools: [{ displayName: "deleteItem", apiId: rest.id, operationId: "deleteItem" }, { displayName: "getItem", apiId: rest.id, operationId: "getItem" }] });
    expect(apiOf(r, N.toolboxApi("a", "box"))!.mcp).toMatchObject({ type: "restTools", tools: [{ displayName: "getItem", operationId: "getItem" }] });
  });

  it("a tier's product links the tool APIs it reaches, and only those", () => {
    const r = compile(input());
    expect(productOf(r, "a", "t_all")!.apis).toEqual([N.api("a"), N.mcpApi("a", "github")].sort());
    expect(productOf(r, "a", "t_read")!.apis).toEqual([N.api("a"), N.mcpApi("a", "github"), N.mcpApi("a", "items"), N.restApi("a", "items")].sort());
    expect(productOf(r, "a", "t_box")!.apis).toEqual([N.api("a"), N.restApi("a", "items"), N.toolboxApi("a", "box")].sort());
  });

  it("policies: batches refused, a narrowed tier's tools as a literal list, only tool methods for it, the key never forwarded", () => {
    const xml = policyOf(compile(input()), N.mcpApi("a", "github"))!;
    expect(xml).toContain("TrimStart().StartsWith(&quot;[&quot;)");
    expect(xml).toContain("mcp_batch_refused");
    expect(listIn(xml, "aigov-mcp-tier-tools")).toEqual(["read_issue"]);
    expect(xml).toContain("method_not_in_scope");
    expect(xml).toContain('<set-header name="api-key" exists-action="delete"/>');
    // Keys of a tier that does not reach the server (t_box) are refused: the guard names only the tiers that do.
    expect(xml).toContain("&quot;t_all&quot;");
    expect(xml).not.toContain("&quot;t_box&quot;");
  });

  it("a pass-through server calls only the tools discovery listed, in every approval mode; toolboxes and REST tools have their own lists", () => {
    const r = compile(input({ mode: "none" }));
    const xml = policyOf(r, N.mcpApi("a", "github"))!;
    expect(listIn(xml, "aigov-mcp-listed")).toEqual(["delete_repo|read_issue"]);
    expect(xml).toContain("tool_not_discovered");
    expect(listIn(policyOf(r, N.mcpApi("a", "items"))!, "aigov-mcp-listed")).toEqual([]);
    // Under the other modes the callable list, a subset of the listed tools, is the one list: none twice.
    const all = policyOf(compile(input({ mode: "all" })), N.mcpApi("a", "github"))!;
    expect(listIn(all, "aigov-mcp-listed")).toEqual([]);
    expect(listIn(all, "aigov-mcp-allowed")).toEqual([""]); // nothing approved yet: nothing is called, listed or not
    // A server nothing was discovered from yet calls nothing (an empty list matches no name).
    const bare = compile({ ...input(), projects: input().projects.map((p) => ({ ...p, tools: { ...p.tools!, servers: [github("1", { tools: [] }), items] } })) });
    expect(listIn(policyOf(bare, N.mcpApi("a", "github"))!, "aigov-mcp-listed")).toEqual([""]);
  });

  it("approval mode destructive: read-only tools and tools approved at their current hash are callable; a changed one is not", () => {
    const approved = compile(input({ mode: "destructive", grants: [{ server: "github", tool: "delete_repo", hash: hash(2) }] }));
    expect(listIn(policyOf(approved, N.mcpApi("a", "github"))!, "aigov-mcp-allowed")).toEqual(["delete_repo|read_issue"]);
    const changed = compile(input({ mode: "destructive", grants: [{ server: "github", tool: "delete_repo", hash: hash(99) }] }));
    expect(listIn(policyOf(changed, N.mcpApi("a", "github"))!, "aigov-mcp-allowed")).toEqual(["read_issue"]);
    // The REST API governs its operations the same way (a key calling it directly).
    expect(listIn(policyOf(changed, N.restApi("a", "items"))!, "aigov-mcp-allowed")).toEqual(["getItem"]);
  });

  it("a shared key tier never reaches another project's tools, even a server of the same name", () => {
    const base = input();
    const shared: CompilerInputIn = {
      ...base,
      projects: [
        ...base.projects,
        project("b", [], { sharedKeyTiers: [{ projectId: "a", tierId: "t_all" }], tools: { approvalMode: "none", servers: [github("2")], toolboxes: [], grants: [] } }),
      ],
    };
    const r = compile(shared);
    expect(productOf(r, "a", "t_all")!.apis).toEqual([N.api("a"), N.api("b"), N.mcpApi("a", "github")].sort());
    const bPolicy = policyOf(r, N.mcpApi("b", "github"))!;
    expect(bPolicy).not.toContain("&quot;t_all&quot;");
    expect(bPolicy).toContain("tool_not_in_scope");
  });

  it("the tools pillar off: no tool API at all; tool names never become code", () => {
    const r = compile(input({ pillarOff: true }));
    expect(r.artifacts.filter((a) => a.kind === "api" && a.id !== N.api("a"))).toEqual([]);
    expect(() => X.mcpCallOf('x" || true || "')).toThrow();
  });

  it("a deprecated server's APIs, and the toolboxes of its tools, refuse every call from its sunset on (410) by the gateway's clock; other APIs do not", () => {
    const base = input();
    const tools = base.projects[0]!.tools!;
    tools.servers = [github("1", { status: "deprecated", sunsetDate: "2099-05-31" }), { ...items, status: "deprecated", sunsetDate: "2099-04-30" }];
    tools.toolboxes = [...(tools.toolboxes ?? []), { id: `tbx_${"2".padStart(20, "0")}`, name: "gh-box", tools: [{ server: "github", tool: "read_issue" }] }];
    const r = compile(base);
    expect(validateCompiled(r.artifacts)).toEqual([]);
    const escText = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    const esc = (expr: string) => escText(expr).replace(/"/g, "&quot;");
    const gone = (xml: string | undefined) => [...(xml ?? "").matchAll(/<return-response>\s*<set-status code="410" reason="Gone"\/>[\s\S]*?<\/return-response>/g)].map((m) => m[0]);
    const cases: [string, string, string][] = [
      [N.mcpApi("a", "github"), "2099-05-31", "tool_server_sunset"],
      [N.toolboxApi("a", "gh-box"), "2099-05-31", "toolbox_sunset"],
      [N.mcpApi("a", "items"), "2099-04-30", "tool_server_sunset"],
      [N.toolboxApi("a", "box"), "2099-04-30", "toolbox_sunset"],
    ];
    for (const [apiId, date, reason] of cases) {
      const xml = policyOf(r, apiId)!;
      expect(xml, apiId).toContain(`<when condition="${esc(X.sunsetPassed(date))}">`);
      // The JSON-RPC error answering the request's id, its reason in data (as the other MCP refusals).
      expect(gone(xml).map((g) => g.includes(`<set-body>${escText(X.mcpErrorBody(reason as keyof typeof X.MCP_REFUSALS))}</set-body>`)), apiId).toEqual([true]);
    }
    // The converted server's REST API too (a tool's internal call, or a key calling it directly): a JSON error.
    const rest = policyOf(r, N.restApi("a", "items"))!;
    expect(rest).toContain(`<when condition="${esc(X.sunsetPassed("2099-04-30"))}">`);
    expect(gone(rest).map((g) => g.includes("tool_server_sunset"))).toEqual([true]);
    // Active servers' APIs have no sunset check.
    const active = compile(input());
    for (const id of [N.mcpApi("a", "github"), N.mcpApi("a", "items"), N.restApi("a", "items"), N.toolboxApi("a", "box")]) expect(gone(policyOf(active, id)), id).toEqual([]);
  });
});
