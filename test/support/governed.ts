/**
 * A governed tenant on the real app: registry, settings and keys made through the API, published
 * through the API, and every check made by sending requests through the local gateway.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { AigovClient } from "../../src/client/index.js";
import type { Role } from "../../src/domain/common.js";
import type { KeyWithSecret } from "../../src/domain/keys/schema.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { gatewayNames, type GatewayNames } from "../../src/policy/names.js";
import { projectSpec, startTestApp, type TestApp } from "./app.js";
import { until } from "./until.js";

export interface GatewayAnswer {
  status: number;
  headers: Headers;
  text: string;
  json: Record<string, unknown> & { error?: { code?: string }; message?: string; model?: string; usage?: Record<string, number> };
}

/**
 * What the gateway answers a key on a path nobody serves it — a removed project, a pillar switched off,
 * an operation the API does not have, another tenant's API alike (ADR 023): 401 `key_not_accepted`.
 */
export const NOT_SERVED = { status: 401, code: "key_not_accepted" } as const;
export const refusal = (a: { status: number; json: unknown }) => ({ status: a.status, code: (a.json as { error?: { code?: unknown } } | undefined)?.error?.code });

export class Governed {
  readonly names: GatewayNames;
  private constructor(
    readonly t: TestApp,
    readonly tenant: string,
    readonly admin: AigovClient,
  ) {
    this.names = gatewayNames(tenant);
  }

  static async start(tenant = "t-gw", t?: TestApp): Promise<Governed> {
    const app = t ?? (await startTestApp());
    return new Governed(app, tenant, await app.as(tenant, "alice", ["TenantAdmin", "Auditor"]));
  }

  as(user: string, roles: Role[]): Promise<AigovClient> {
    return this.t.as(this.tenant, user, roles);
  }

  project(name: string, extra: Record<string, unknown> = {}): Promise<Project> {
    return this.admin.projects.create(projectSpec(name, extra));
  }

  /** An OpenAI-compatible model served by the fake backends: one backend per host given. */
  async model(projectId: string, name: string, opts: { hosts?: string[]; provider?: "openai" | "azure-openai"; modelName?: string; extra?: Record<string, unknown>; backend?: Record<string, unknown> } = {}) {
    const provider = opts.provider ?? "openai";
    const hosts = opts.hosts ?? [`${name.replace(/[^a-z0-9-]/g, "")}.mock.localhost`];
    return this.admin.models.create(projectId, {
      name,
      provider,
      modelName: opts.modelName ?? `${name}-deployment`,
      backends: hosts.map((h, i) => ({
        id: `b${i}`,
        url: provider === "azure-openai" ? `https://${h}` : `https://${h}/v1`,
        region: "eastus",
        credential: { type: "apiKey" as const, header: "api-key" as const, key: `provider-key-${h}` },
        ...opts.backend,
      })),
      ...opts.extra,
    } as never);
  }

  /** Publishes what compiles now and waits until the local gateway serves it. */
  async publish(reason = "test"): Promise<void> {
    const r = await this.admin.policy.publish({ reason });
    if (r.revision) await until(async () => ((await this.admin.policy.revision(r.revision!.id)).status === "published" ? true : undefined), `revision ${r.revision.number} published`);
    await this.settle();
  }

  /**
   * A project-scope exemption of `control`, requested by `requester`, approved on the product route
   * (by the TenantAdmin; a high-risk one's second stage by another TenantAdmin), active, and at the
   * gateway (its system publish applied). Returns its id.
   */
  async exemptProject(requester: AigovClient, projectId: string, control: "tokens.perMinute", relaxation: { kind: "limit"; value: number }): Promise<string> {
    const requested = await requester.exemptions.request({
      control,
      scope: { level: "project", projectId },
      relaxation,
      category: "waiver",
      owner: "dora",
      reason: { deliveryBlocker: "load test", affectedControl: `${control} too low`, expectedEndState: "limits reviewed" },
      compensatingControls: ["watched"],
      evidence: ["https://tickets.example.com/LOAD-1"],
      expiresAt: new Date(Date.now() + 7 * 86_400_000).toISOString(),
    });
    const approvers = [this.admin, await this.as("tess", ["TenantAdmin"])];
    for (const approver of approvers) {
      const approval = await approver.approvals.get(requested.approvalId);
      if (approval.status !== "pending") break;
      await approver.approvals.decide(approval.id, { decision: "approve", justification: "load test" }, approval.etag);
    }
    await until(async () => ((await this.admin.exemptions.get(requested.id)).status === "active" ? true : undefined), "exemption active");
    await this.systemPublish(requested.id);
    return requested.id;
  }

  /**
   * A waiver of one key's tokens per minute (`value`), requested by `requester`, owned by `owner`, ending
   * `ms` from now on `clock` (the app's when it is moved), approved by the TenantAdmin, active and at the
   * gateway (its system publish applied; the key itself moves with the key lifecycle job). Returns its id.
   */
  async exemptKey(requester: AigovClient, projectId: string, keyId: string, value: number, opts: { owner?: string; ms?: number; now?: () => number } = {}): Promise<string> {
    const requested = await requester.exemptions.request(keyExemptionSpec(projectId, keyId, value, { ...(opts.owner ? { owner: opts.owner } : {}), expiresAt: new Date((opts.now ?? Date.now)() + (opts.ms ?? 3 * 86_400_000)) }));
    const approval = await this.admin.approvals.get(requested.approvalId);
    await this.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await this.admin.exemptions.get(requested.id)).status === "active" ? true : undefined), "exemption active");
    await this.systemPublish(requested.id);
    return requested.id;
  }

  /** Four calls in a minute (about 10 tokens each) with `key`, then the gateway's clock moves past the minute. */
  async burst(projectId: string, key: string): Promise<number[]> {
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await this.chat(projectId, key, "gpt-4o-mini", { words: 2, maxTokens: 8 })).status);
    this.t.clock.advance(61_000);
    return statuses;
  }

  /** Revokes an exemption and waits until its system publish is at the gateway. */
  async revokeExemption(id: string): Promise<void> {
    await this.admin.exemptions.revoke(id, { reason: "done" }, (await this.admin.exemptions.get(id)).etag);
    await this.systemPublish(`${id} revoked`);
  }

  /** Waits for the system's publish whose reason mentions `about` (an exemption's activation…), then settles. */
  async systemPublish(about: string): Promise<void> {
    await until(async () => {
      const list = await this.admin.policy.revisions({ maxPageSize: 100 });
      return list.items.some((r) => r.origin === "system" && r.reason?.includes(about)) ? true : undefined;
    }, `a system publish about ${about}`);
    await this.settle();
  }

  /** Lets automation run (publish sweep, key lifecycle), then reloads the gateway's files. */
  async settle(): Promise<void> {
    await this.t.app.host.invokeTimer("gatewayPublishSweep");
    await until(async () => {
      const list = await this.admin.policy.revisions();
      return list.items.every((rev) => rev.status !== "pending") ? true : undefined;
    }, "no revision pending");
    await this.t.gateway.reload();
  }

  /** A virtual key, once its subscription is at the gateway. */
  async key(client: AigovClient, projectId: string, body: Parameters<AigovClient["keys"]["create"]>[1]): Promise<KeyWithSecret> {
    const k = await client.keys.create(projectId, body);
    await this.synced(projectId, k.id);
    return k;
  }

  async synced(projectId: string, keyId: string): Promise<void> {
    await until(async () => {
      await this.t.app.host.invokeTimer("gatewayPublishSweep");
      await this.t.app.host.invokeTimer("keyLifecycle");
      return (await this.admin.keys.get(projectId, keyId)).gateway.state === "synced" ? true : undefined;
    }, `key ${keyId} synced`);
    await this.settle();
  }

  /** The project's base URL at the local gateway. */
  base(projectId: string): string {
    return `${this.t.gateway.url}/${this.names.apiPath(projectId)}`;
  }

  async call(projectId: string, path: string, init: { key?: string; body?: unknown; headers?: Record<string, string>; method?: string } = {}): Promise<GatewayAnswer> {
    const res = await fetch(`${this.base(projectId)}${path}`, {
      method: init.method ?? "POST",
      headers: { "content-type": "application/json", ...(init.key ? { "api-key": init.key } : {}), ...init.headers },
      ...(init.body !== undefined ? { body: typeof init.body === "string" ? init.body : JSON.stringify(init.body) } : {}),
    });
    const text = await res.text();
    let json: GatewayAnswer["json"] = {};
    try {
      json = JSON.parse(text) as GatewayAnswer["json"];
    } catch {
      // Not JSON (a stream): the text is the answer.
    }
    return { status: res.status, headers: res.headers, text, json };
  }

  /** A chat completion whose usage the fake backends report exactly: `words` prompt tokens, `maxTokens` completion tokens. */
  chat(projectId: string, key: string, model: string, opts: { words?: number; maxTokens?: number; route?: "v1" | "openai-v1" | "deployment"; headers?: Record<string, string>; extra?: Record<string, unknown> } = {}) {
    const route = opts.route ?? "v1";
    const path = route === "v1" ? "/v1/chat/completions" : route === "openai-v1" ? "/openai/v1/chat/completions" : `/openai/deployments/${model}/chat/completions?api-version=2024-10-21`;
    const words = Array.from({ length: opts.words ?? 2 }, (_, i) => `w${i}`).join(" ");
    return this.call(projectId, path, {
      key,
      ...(opts.headers ? { headers: opts.headers } : {}),
      body: { ...(route === "deployment" ? {} : { model }), max_tokens: opts.maxTokens ?? 8, messages: [{ role: "user", content: words }], ...opts.extra },
    });
  }

  /**
   * Two projects, `<prefix>-home` and `<prefix>-there`, each serving gpt-4o-mini, published; a key of `by`'s in the
   * home project for that model at `tokensPerMinute`, shared into the other, approved, and at the gateway.
   */
  async sharedKey(by: AigovClient, prefix: string, name: string, tokensPerMinute: number) {
    const home = await this.project(`${prefix}-home`);
    const there = await this.project(`${prefix}-there`);
    const mini = await this.model(home.id, "gpt-4o-mini");
    await this.model(there.id, "gpt-4o-mini");
    await this.publish("two projects");
    const k = await this.key(by, home.id, { name, scopes: { models: [mini.id] }, limits: { tokensPerMinute } });
    await this.shareAndApprove(by, home.id, k.id, there.id);
    await this.synced(home.id, k.id);
    return { home, there, mini, k };
  }

  /** Replaces the tenant's services (and settings, none by default) as its TenantAdmin. */
  async putServices(services: Record<string, unknown>, settings: Record<string, unknown> = {}) {
    const s = await this.admin.settings.get();
    return this.admin.settings.put({ settings, services } as never, s.etag);
  }

  /** The number of the latest policy revision (0 before the first). */
  async lastRevision(): Promise<number> {
    return (await this.admin.policy.revisions({ maxPageSize: 1 })).items[0]?.number ?? 0;
  }

  /** Of the revisions made after `before` (a number), the projects they set aside: "revision:project:outcome". */
  async isolatedSince(before: number): Promise<string[]> {
    const list = await this.admin.policy.revisions({ maxPageSize: 50 });
    return list.items.filter((r) => r.number > before).flatMap((r) => (r.isolated ?? []).map((p) => `${r.number}:${p.projectId}:${p.outcome}`));
  }

  /** The project's API policy as published to the local gateway's folder. */
  policyXml(projectId: string): string {
    return readFileSync(join(this.t.app.dataDir, "apim", "apis", this.names.api(projectId), "policies", "policy.xml"), "utf8");
  }

  /** The APIs a published product links (its apis/ folder at the local gateway). */
  productLinks(productId: string): string[] {
    const dir = join(this.t.app.dataDir, "apim", "products", productId, "apis");
    return existsSync(dir) ? readdirSync(dir).map((f) => f.replace(/\.json$/, "")).sort() : [];
  }

  /** Shares the key (asked by its owner `by`), approves it as the TenantAdmin and waits until the share is active. */
  async shareAndApprove(by: AigovClient, projectId: string, keyId: string, into: string): Promise<void> {
    const { approval } = await by.keys.share(projectId, keyId, { projectId: into, justification: "evaluation" }, (await by.keys.get(projectId, keyId)).etag);
    await this.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await this.admin.keys.get(projectId, keyId)).shares.find((s) => s.projectId === into)?.status === "active" ? true : undefined), `share of ${keyId} into ${into} active`);
  }

  stop(): Promise<void> {
    return this.t.stop();
  }
}


/** What `Governed.burst` gets under a limit of 20 tokens a minute: two calls, then 429. */
export const LIMITED = [200, 200, 429, 429];

/** A waiver of one key's tokens per minute (`value`), owned by `owner` (dora), ending in 3 days unless `expiresAt` says otherwise. */
export function keyExemptionSpec(projectId: string, keyId: string, value = 1000, opts: { owner?: string; expiresAt?: Date } = {}) {
  return {
    control: "tokens.perMinute" as const,
    scope: { level: "key" as const, projectId, keyId },
    relaxation: { kind: "limit" as const, value },
    category: "waiver" as const,
    owner: opts.owner ?? "dora",
    reason: { deliveryBlocker: "backfill", affectedControl: "tokens per minute", expectedEndState: "done" },
    compensatingControls: ["watched"],
    evidence: ["https://tickets.example.com/BF-1"],
    expiresAt: (opts.expiresAt ?? new Date(Date.now() + 3 * 86_400_000)).toISOString(),
  };
}
