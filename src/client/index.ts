import type { z } from "zod";
import type { ClientInput, Operation, SuccessBody } from "../api/contract.js";
import * as ops from "../api/operations.js";
import * as exm from "../api/exemption-operations.js";
import * as routes from "../api/approval-route-operations.js";
import type { Problem } from "../api/problem.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem | undefined,
    readonly body: string,
  ) {
    super(problem ? `${problem.status} ${problem.code}: ${problem.detail ?? problem.title}` : `HTTP ${status}${status < 400 ? " with a body that is not JSON" : ""}: ${body.slice(0, 200)}`);
    this.name = "ApiError";
  }
}

/** A problem document as this API writes them (RFC 9457 with `status` and `code`); anything else is not one. */
function asProblem(text: string): Problem | undefined {
  try {
    const v = JSON.parse(text) as Partial<Problem> | null;
    return v && typeof v === "object" && typeof v.status === "number" && typeof v.code === "string" ? (v as Problem) : undefined;
  } catch {
    return undefined;
  }
}

/** A response's body: the JSON of a success; an ApiError for a 4xx/5xx, or for a success that is not JSON (a proxy's page). */
async function bodyOf<T>(res: Response): Promise<T> {
  const text = await res.text();
  if (res.status >= 400) throw new ApiError(res.status, asProblem(text), text);
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(res.status, undefined, text);
  }
}

export interface ApiResponse<T> {
  status: number;
  headers: Headers;
  body: T;
}

export interface ClientOptions {
  endpoint: string;
  /** A bearer token, or where to get one per call (the CLI's Entra sign-in refreshes through it). */
  token?: string | (() => Promise<string | undefined>) | undefined;
  fetch?: typeof fetch;
}

function fillPath(op: Operation, params: Record<string, unknown> | undefined): string {
  return op.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params?.[name];
    if (value === undefined) throw new Error(`missing path parameter ${name}`);
    return encodeURIComponent(String(value));
  });
}

/** A connection closed under a request before any answer (Node's fetch: the cause's code). */
function connectionReset(err: unknown): boolean {
  const code = (err as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return code === "ECONNRESET" || code === "UND_ERR_SOCKET";
}

/**
 * The one typed client of the admin API, shared by the CLI and the tests.
 * Its types come from the same operation definitions the server validates with.
 */
export class AigovClient {
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: ClientOptions) {
    // Called unbound: a browser's window.fetch refuses another `this` (Illegal invocation).
    const send = options.fetch ?? ((input, init) => fetch(input, init));
    // A read sent on a kept-alive connection the server was closing at that moment fails before any
    // answer (ECONNRESET): sent once more. Reads only — a write may have been done and is not repeated.
    this.fetchImpl = async (input, init) => {
      try {
        return await send(input, init);
      } catch (err) {
        const method = (init?.method ?? "GET").toUpperCase();
        if ((method === "GET" || method === "HEAD") && connectionReset(err)) return send(input, init);
        throw err;
      }
    };
  }

  withToken(token: ClientOptions["token"]): AigovClient {
    return new AigovClient({ ...this.options, token });
  }

  /** Calls an operation; returns status, headers and the typed body; throws ApiError on 4xx/5xx. */
  async call<O extends Operation>(op: O, input: ClientInput<O>, extraHeaders: Record<string, string> = {}): Promise<ApiResponse<SuccessBody<O>>> {
    const i = input as { params?: Record<string, unknown>; query?: Record<string, unknown>; body?: unknown; ifMatch?: string };
    const url = new URL(`/api${fillPath(op, i.params)}`, this.options.endpoint);
    for (const [k, v] of Object.entries(i.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: "application/json", ...extraHeaders, ...(await this.authorization()) };
    if (i.ifMatch !== undefined) headers["if-match"] = /^(W\/)?"|^\*$/.test(i.ifMatch) ? i.ifMatch : `"${i.ifMatch}"`;
    let body: string | undefined;
    if (i.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(i.body);
    }
    const res = await this.fetchImpl(url, { method: op.method, headers, ...(body !== undefined ? { body } : {}) });
    return { status: res.status, headers: res.headers, body: await bodyOf<SuccessBody<O>>(res) };
  }

  /**
   * The next page of a list: follows its `nextLink` (same endpoint and token); undefined on the last page.
   * A link that leaves this API's endpoint is refused, so a page cannot send the token elsewhere.
   */
  async next<T extends { nextLink?: string | undefined }>(page: T): Promise<T | undefined> {
    if (!page.nextLink) return undefined;
    const url = new URL(page.nextLink, this.options.endpoint);
    const base = new URL(this.options.endpoint);
    if (url.origin !== base.origin || !url.pathname.startsWith("/api/")) throw new Error(`nextLink leaves the API: ${page.nextLink}`);
    return bodyOf<T>(await this.fetchImpl(url, { method: "GET", headers: { accept: "application/json", ...(await this.authorization()) } }));
  }

  /** The bearer token's header, when the client has one (got per call when it is a function). */
  private async authorization(): Promise<Record<string, string>> {
    const token = typeof this.options.token === "function" ? await this.options.token() : this.options.token;
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  // Named helpers for the common calls.
  health = () => this.call(ops.getHealth, {}).then((r) => r.body);
  openApi = () => this.call(ops.getOpenApi, {}).then((r) => r.body);
  projects = {
    create: (body: z.input<typeof ops.createProject.body>) => this.call(ops.createProject, { body }).then((r) => r.body),
    list: (query: z.input<typeof ops.listProjects.query> = {}) => this.call(ops.listProjects, { query }).then((r) => r.body),
    get: (projectId: string) => this.call(ops.getProject, { params: { projectId } }).then((r) => r.body),
    update: (projectId: string, body: z.input<typeof ops.updateProject.body>, ifMatch: string) =>
      this.call(ops.updateProject, { params: { projectId }, body, ifMatch }).then((r) => r.body),
    delete: (projectId: string, ifMatch: string) => this.call(ops.deleteProject, { params: { projectId }, ifMatch }).then(() => undefined),
    gates: (projectId: string, to?: z.input<typeof ops.getPromotionGates.query>["to"]) => this.call(ops.getPromotionGates, { params: { projectId }, query: to ? { to } : {} }).then((r) => r.body),
    promote: (projectId: string, body: z.input<typeof ops.promoteProject.body>) => this.call(ops.promoteProject, { params: { projectId }, body }).then((r) => r.body),
    extend: (projectId: string, body: z.input<typeof ops.extendProject.body>) => this.call(ops.extendProject, { params: { projectId }, body }).then((r) => r.body),
  };
  audit = {
    list: (query: z.input<typeof ops.listAudit.query> = {}) => this.call(ops.listAudit, { query }).then((r) => r.body),
    verify: () => this.call(ops.verifyAudit, {}).then((r) => r.body),
  };
  models = {
    create: (projectId: string, body: z.input<typeof ops.createModel.body>) => this.call(ops.createModel, { params: { projectId }, body }).then((r) => r.body),
    list: (projectId: string, query: z.input<typeof ops.listModels.query> = {}) => this.call(ops.listModels, { params: { projectId }, query }).then((r) => r.body),
    get: (projectId: string, modelId: string) => this.call(ops.getModel, { params: { projectId, modelId } }).then((r) => r.body),
    update: (projectId: string, modelId: string, body: z.input<typeof ops.updateModel.body>, ifMatch: string) =>
      this.call(ops.updateModel, { params: { projectId, modelId }, body, ifMatch }).then((r) => r.body),
    delete: (projectId: string, modelId: string, ifMatch: string) => this.call(ops.deleteModel, { params: { projectId, modelId }, ifMatch }).then(() => undefined),
  };
  tools = {
    createServer: (projectId: string, body: z.input<typeof ops.createMcpServer.body>) => this.call(ops.createMcpServer, { params: { projectId }, body }).then((r) => r.body),
    importServer: (projectId: string, body: z.input<typeof ops.importMcpServer.body>) => this.call(ops.importMcpServer, { params: { projectId }, body }).then((r) => r.body),
    listServers: (projectId: string, query: z.input<typeof ops.listMcpServers.query> = {}) => this.call(ops.listMcpServers, { params: { projectId }, query }).then((r) => r.body),
    getServer: (projectId: string, serverId: string) => this.call(ops.getMcpServer, { params: { projectId, serverId } }).then((r) => r.body),
    updateServer: (projectId: string, serverId: string, body: z.input<typeof ops.updateMcpServer.body>, ifMatch: string) => this.call(ops.updateMcpServer, { params: { projectId, serverId }, body, ifMatch }).then((r) => r.body),
    deleteServer: (projectId: string, serverId: string, ifMatch: string) => this.call(ops.deleteMcpServer, { params: { projectId, serverId }, ifMatch }).then(() => undefined),
    discover: (projectId: string, serverId: string) => this.call(ops.discoverMcpServer, { params: { projectId, serverId } }).then((r) => r.body),
    exportServer: (projectId: string, serverId: string) => this.call(ops.exportMcpServer, { params: { projectId, serverId } }).then((r) => r.body),
    listSnapshots: (projectId: string, serverId: string, query: z.input<typeof ops.listMcpSnapshots.query> = {}) => this.call(ops.listMcpSnapshots, { params: { projectId, serverId }, query }).then((r) => r.body),
    getSnapshot: (projectId: string, serverId: string, snapshotId: string) => this.call(ops.getMcpSnapshot, { params: { projectId, serverId, snapshotId } }).then((r) => r.body),
    listTools: (projectId: string, serverId: string, query: z.input<typeof ops.listMcpTools.query> = {}) => this.call(ops.listMcpTools, { params: { projectId, serverId }, query }).then((r) => r.body),
    getTool: (projectId: string, serverId: string, toolName: string) => this.call(ops.getMcpTool, { params: { projectId, serverId, toolName } }).then((r) => r.body),
    requestApproval: (projectId: string, serverId: string, toolName: string, body: z.input<typeof ops.requestMcpToolApproval.body>) =>
      this.call(ops.requestMcpToolApproval, { params: { projectId, serverId, toolName }, body }).then((r) => r.body),
    getSettings: (projectId: string) => this.call(ops.getToolsSettings, { params: { projectId } }).then((r) => r.body),
    putSettings: (projectId: string, body: z.input<typeof ops.putToolsSettings.body>, ifMatch: string) => this.call(ops.putToolsSettings, { params: { projectId }, body, ifMatch }).then((r) => r.body),
    searchCatalog: (query: z.input<typeof ops.searchToolCatalog.query> = {}) => this.call(ops.searchToolCatalog, { query }).then((r) => r.body),
  };
  toolboxes = {
    create: (projectId: string, body: z.input<typeof ops.createToolbox.body>) => this.call(ops.createToolbox, { params: { projectId }, body }).then((r) => r.body),
    list: (projectId: string, query: z.input<typeof ops.listToolboxes.query> = {}) => this.call(ops.listToolboxes, { params: { projectId }, query }).then((r) => r.body),
    get: (projectId: string, toolboxId: string) => this.call(ops.getToolbox, { params: { projectId, toolboxId } }).then((r) => r.body),
    update: (projectId: string, toolboxId: string, body: z.input<typeof ops.updateToolbox.body>, ifMatch: string) => this.call(ops.updateToolbox, { params: { projectId, toolboxId }, body, ifMatch }).then((r) => r.body),
    delete: (projectId: string, toolboxId: string, ifMatch: string) => this.call(ops.deleteToolbox, { params: { projectId, toolboxId }, ifMatch }).then(() => undefined),
  };
  usage = {
    project: (projectId: string, query: z.input<typeof ops.getProjectUsage.query>) => this.call(ops.getProjectUsage, { params: { projectId }, query }).then((r) => r.body),
    tenant: (query: z.input<typeof ops.getTenantUsage.query>) => this.call(ops.getTenantUsage, { query }).then((r) => r.body),
    budgets: (projectId: string) => this.call(ops.listProjectBudgets, { params: { projectId } }).then((r) => r.body),
    adoption: () => this.call(ops.getAdoption, { query: {} }).then((r) => r.body),
  };
  reviews = {
    create: (body: z.input<typeof ops.createAccessReview.body>) => this.call(ops.createAccessReview, { body }).then((r) => r.body),
    list: (query: z.input<typeof ops.listAccessReviews.query> = {}) => this.call(ops.listAccessReviews, { query }).then((r) => r.body),
    get: (reviewId: string) => this.call(ops.getAccessReview, { params: { reviewId } }).then((r) => r.body),
    items: (reviewId: string, query: z.input<typeof ops.listAccessReviewItems.query> = {}) => this.call(ops.listAccessReviewItems, { params: { reviewId }, query }).then((r) => r.body),
    decide: (reviewId: string, itemId: string, body: z.input<typeof ops.decideAccessReviewItem.body>, ifMatch?: string) =>
      this.call(ops.decideAccessReviewItem, { params: { reviewId, itemId }, body, ...(ifMatch ? { ifMatch } : {}) }).then((r) => r.body),
    apply: (reviewId: string, ifMatch: string) => this.call(ops.applyAccessReview, { params: { reviewId }, ifMatch }).then((r) => r.body),
    stop: (reviewId: string, body: z.input<typeof ops.stopAccessReview.body>, ifMatch: string) => this.call(ops.stopAccessReview, { params: { reviewId }, body, ifMatch }).then((r) => r.body),
  };
  agents = {
    create: (projectId: string, body: z.input<typeof ops.createAgent.body>) => this.call(ops.createAgent, { params: { projectId }, body }).then((r) => r.body),
    list: (projectId: string, query: z.input<typeof ops.listAgents.query> = {}) => this.call(ops.listAgents, { params: { projectId }, query }).then((r) => r.body),
    get: (projectId: string, agentId: string) => this.call(ops.getAgent, { params: { projectId, agentId } }).then((r) => r.body),
    update: (projectId: string, agentId: string, body: z.input<typeof ops.updateAgent.body>, ifMatch: string) => this.call(ops.updateAgent, { params: { projectId, agentId }, body, ifMatch }).then((r) => r.body),
    delete: (projectId: string, agentId: string, ifMatch: string) => this.call(ops.deleteAgent, { params: { projectId, agentId }, ifMatch }).then(() => undefined),
    transition: (projectId: string, agentId: string, body: z.input<typeof ops.transitionAgent.body>) => this.call(ops.transitionAgent, { params: { projectId, agentId }, body }).then((r) => r.body),
    issueKey: (projectId: string, agentId: string, body: z.input<typeof ops.issueAgentKey.body> = {}) => this.call(ops.issueAgentKey, { params: { projectId, agentId }, body }).then((r) => r.body),
    getSettings: (projectId: string) => this.call(ops.getProjectAgentSettings, { params: { projectId } }).then((r) => r.body),
    putSettings: (projectId: string, body: z.input<typeof ops.putProjectAgentSettings.body>, ifMatch: string) => this.call(ops.putProjectAgentSettings, { params: { projectId }, body, ifMatch }).then((r) => r.body),
  };
  connections = {
    create: (body: z.input<typeof ops.createAgentConnection.body>) => this.call(ops.createAgentConnection, { body }).then((r) => r.body),
    list: (query: z.input<typeof ops.listAgentConnections.query> = {}) => this.call(ops.listAgentConnections, { query }).then((r) => r.body),
    get: (connectionId: string) => this.call(ops.getAgentConnection, { params: { connectionId } }).then((r) => r.body),
    update: (connectionId: string, body: z.input<typeof ops.updateAgentConnection.body>, ifMatch: string) => this.call(ops.updateAgentConnection, { params: { connectionId }, body, ifMatch }).then((r) => r.body),
    delete: (connectionId: string, ifMatch: string) => this.call(ops.deleteAgentConnection, { params: { connectionId }, ifMatch }).then(() => undefined),
    sync: (connectionId: string) => this.call(ops.syncAgentConnection, { params: { connectionId } }).then((r) => r.body),
    runs: (connectionId: string, query: z.input<typeof ops.listAgentSyncRuns.query> = {}) => this.call(ops.listAgentSyncRuns, { params: { connectionId }, query }).then((r) => r.body),
    run: (connectionId: string, runId: string) => this.call(ops.getAgentSyncRun, { params: { connectionId, runId } }).then((r) => r.body),
    getSettings: () => this.call(ops.getAgentSyncSettings, {}).then((r) => r.body),
    putSettings: (body: z.input<typeof ops.putAgentSyncSettings.body>, ifMatch: string) => this.call(ops.putAgentSyncSettings, { body, ifMatch }).then((r) => r.body),
  };
  catalog = {
    search: (query: z.input<typeof ops.searchCatalog.query> = {}) => this.call(ops.searchCatalog, { query }).then((r) => r.body),
  };
  settings = {
    get: () => this.call(ops.getTenantSettings, {}).then((r) => r.body),
    put: (body: z.input<typeof ops.putTenantSettings.body>, ifMatch: string) => this.call(ops.putTenantSettings, { body, ifMatch }).then((r) => r.body),
  };
  policy = {
    show: (projectId: string, explain = false) =>
      this.call(ops.getProjectPolicy, { params: { projectId }, query: { explain: explain ? "true" : "false" } }).then((r) => r.body),
    /** Compiles drafted settings without saving them (the policy editor's live preview). */
    preview: (projectId: string, body: z.input<typeof ops.previewProjectPolicy.body>) => this.call(ops.previewProjectPolicy, { params: { projectId }, body }).then((r) => r.body),
    publish: (body: z.input<typeof ops.publishGateway.body> = {}) => this.call(ops.publishGateway, { body }).then((r) => r.body),
    revisions: (query: z.input<typeof ops.listRevisions.query> = {}) => this.call(ops.listRevisions, { query }).then((r) => r.body),
    revision: (revisionId: string, diff = false) => this.call(ops.getRevision, { params: { revisionId }, query: { diff: diff ? "true" : "false" } }).then((r) => r.body),
    rollback: (revisionId: string, body: z.input<typeof ops.rollbackRevision.body> = {}) => this.call(ops.rollbackRevision, { params: { revisionId }, body }).then((r) => r.body),
    diff: () => this.call(ops.getGatewayDiff, {}).then((r) => r.body),
    drift: () => this.call(ops.getDriftReport, {}).then((r) => r.body),
    checkDrift: () => this.call(ops.checkDrift, {}).then((r) => r.body),
  };
  keys = {
    create: (projectId: string, body: z.input<typeof ops.createKey.body>) => this.call(ops.createKey, { params: { projectId }, body }).then((r) => r.body),
    list: (projectId: string, query: z.input<typeof ops.listKeys.query> = {}) => this.call(ops.listKeys, { params: { projectId }, query }).then((r) => r.body),
    get: (projectId: string, keyId: string) => this.call(ops.getKey, { params: { projectId, keyId } }).then((r) => r.body),
    rotate: (projectId: string, keyId: string, body: z.input<typeof ops.rotateKey.body>, ifMatch: string) =>
      this.call(ops.rotateKey, { params: { projectId, keyId }, body, ifMatch }).then((r) => r.body),
    revoke: (projectId: string, keyId: string, body: z.input<typeof ops.revokeKey.body>, ifMatch: string) =>
      this.call(ops.revokeKey, { params: { projectId, keyId }, body, ifMatch }).then((r) => r.body),
    suspend: (projectId: string, keyId: string, body: z.input<typeof ops.suspendKey.body>, ifMatch: string) =>
      this.call(ops.suspendKey, { params: { projectId, keyId }, body, ifMatch }).then((r) => r.body),
    resume: (projectId: string, keyId: string, body: z.input<typeof ops.resumeKey.body>, ifMatch: string) =>
      this.call(ops.resumeKey, { params: { projectId, keyId }, body, ifMatch }).then((r) => r.body),
    collect: (projectId: string, keyId: string) => this.call(ops.collectKey, { params: { projectId, keyId } }).then((r) => r.body),
    lookup: (key: string) => this.call(ops.lookupKey, { body: { key } }).then((r) => r.body),
    share: (projectId: string, keyId: string, body: z.input<typeof ops.shareKey.body>, ifMatch: string) =>
      this.call(ops.shareKey, { params: { projectId, keyId }, body, ifMatch }).then((r) => r.body),
    unshare: (projectId: string, keyId: string, targetProjectId: string, ifMatch: string) =>
      this.call(ops.unshareKey, { params: { projectId, keyId, targetProjectId }, ifMatch }).then((r) => r.body),
    shared: (projectId: string) => this.call(ops.listSharedKeys, { params: { projectId } }).then((r) => r.body),
  };
  approvals = {
    create: (body: z.input<typeof ops.createApproval.body>) => this.call(ops.createApproval, { body }).then((r) => r.body),
    list: (query: z.input<typeof ops.listApprovals.query> = {}) => this.call(ops.listApprovals, { query }).then((r) => r.body),
    get: (approvalId: string) => this.call(ops.getApproval, { params: { approvalId } }).then((r) => r.body),
    decide: (approvalId: string, body: z.input<typeof ops.decideApproval.body>, ifMatch: string) =>
      this.call(ops.decideApproval, { params: { approvalId }, body, ifMatch }).then((r) => r.body),
    metrics: () => this.call(ops.getApprovalMetrics, {}).then((r) => r.body),
    routes: () => this.call(routes.getApprovalRoutes, {}).then((r) => r.body),
    putRoutes: (body: z.input<typeof routes.putApprovalRoutes.body>, ifMatch: string) => this.call(routes.putApprovalRoutes, { body, ifMatch }).then((r) => r.body),
    /** Opens an approver link (the HTML page); returns status and page text. */
    openLink: async (link: string) => {
      const res = await this.fetchImpl(link, { headers: { accept: "text/html" } });
      return { status: res.status, html: await res.text() };
    },
    /** Submits the approval page's form for a link, as a browser would. */
    submitLink: async (link: string, decision: "approve" | "reject", justification: string) => {
      const url = new URL(link);
      const token = url.searchParams.get("token") ?? "";
      url.search = "";
      const res = await this.fetchImpl(url, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "text/html" },
        body: new URLSearchParams({ token, decision, justification }).toString(),
      });
      return { status: res.status, html: await res.text() };
    },
  };
  exemptions = {
    request: (body: z.input<typeof exm.requestExemption.body>) => this.call(exm.requestExemption, { body }).then((r) => r.body),
    list: (query: z.input<typeof exm.listExemptions.query> = {}) => this.call(exm.listExemptions, { query }).then((r) => r.body),
    get: (exemptionId: string) => this.call(exm.getExemption, { params: { exemptionId } }).then((r) => r.body),
    renew: (exemptionId: string, body: z.input<typeof exm.renewExemption.body>, ifMatch: string) =>
      this.call(exm.renewExemption, { params: { exemptionId }, body, ifMatch }).then((r) => r.body),
    revoke: (exemptionId: string, body: z.input<typeof exm.revokeExemption.body>, ifMatch: string) =>
      this.call(exm.revokeExemption, { params: { exemptionId }, body, ifMatch }).then((r) => r.body),
    review: (query: z.input<typeof exm.getExemptionReview.query> = {}) => this.call(exm.getExemptionReview, { query }).then((r) => r.body),
    policy: () => this.call(exm.getExemptionPolicy, {}).then((r) => r.body),
    putPolicy: (body: z.input<typeof exm.putExemptionPolicy.body>, ifMatch: string) => this.call(exm.putExemptionPolicy, { body, ifMatch }).then((r) => r.body),
  };
  dev = {
    /** Local host only: mints a dev token (POST /.dev/token). */
    token: async (claims: { tenant: string; user: string; roles: string[]; ttlSeconds?: number }): Promise<string> => {
      const res = await this.fetchImpl(new URL("/.dev/token", this.options.endpoint), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(claims),
      });
      const text = await res.text();
      if (!res.ok) throw new ApiError(res.status, undefined, text);
      return (JSON.parse(text) as { access_token: string }).access_token;
    },
  };
}
