/**
 * Helpers for the tests that walk every operation of the OpenAPI document.
 * A new operation must be described here (a valid body, how to fill its path), or those tests fail.
 */
import { join } from "node:path";
import { pillarExamples, registerPillarModules } from "../../src/pillars/index.js";

/**
 * The fixture pillar (test/fixtures/widgets-pillar.ts, compiled to dist/): the walks register it so
 * that they prove a pillar registered through the pillar list alone is walked like the built-in ones.
 */
export function registerFixturePillar(): void {
  registerPillarModules([join(__dirname, "..", "..", "dist", "test", "fixtures", "widgets-pillar.js")]);
}

export interface OpenApiOperation {
  method: string;
  path: string;
  operationId: string;
  anonymous: boolean;
  html: boolean;
  hasBody: boolean;
  form: boolean;
  bodyTypes: string[];
  ifMatch: boolean;
  /** The operation takes If-Match at all (required or optional). */
  takesIfMatch: boolean;
  pathParams: string[];
  queryParams: string[];
}

export function operationsOf(doc: Record<string, unknown>): OpenApiOperation[] {
  const out: OpenApiOperation[] = [];
  for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Record<string, unknown>>>)) {
    for (const [method, op] of Object.entries(item)) {
      const params = (op.parameters as { name: string; in: string; required?: boolean }[]) ?? [];
      const body = op.requestBody as { content: Record<string, unknown> } | undefined;
      out.push({
        method: method.toUpperCase(),
        path,
        operationId: op.operationId as string,
        anonymous: Array.isArray(op.security) && op.security.length === 0,
        html: Object.values((op.responses as Record<string, { content?: object }>) ?? {}).some((r) => r.content !== undefined && "text/html" in r.content),
        hasBody: body !== undefined && !("application/x-www-form-urlencoded" in body.content),
        form: body !== undefined && "application/x-www-form-urlencoded" in body.content,
        bodyTypes: body ? Object.keys(body.content) : [],
        // A required If-Match (an optional one, when left out, is as if the operation had none).
        ifMatch: params.some((p) => p.in === "header" && p.name === "If-Match" && p.required === true),
        takesIfMatch: params.some((p) => p.in === "header" && p.name === "If-Match"),
        pathParams: params.filter((p) => p.in === "path").map((p) => p.name),
        queryParams: params.filter((p) => p.in === "query").map((p) => p.name),
      });
    }
  }
  return out;
}

const CORE_BODIES: Record<string, (unique: string) => unknown> = {
  createProject: (u) => ({ name: `walk ${u}`, environment: "dev", owner: "walker" }),
  updateProject: (u) => ({ description: `walked ${u}` }),
  createApproval: (u) => ({
    subject: { resourceType: "model", resourceId: `walk-${u}`, change: { enable: true } },
    justification: "walk",
    stages: [{ approvers: [{ user: "someone-else" }], decisionTimeout: "P1D" }],
  }),
  decideApproval: () => ({ decision: "approve", justification: "walk" }),
  putApprovalRoutes: () => ({ routes: [{ name: "walk", match: { subjectType: "model" }, stages: [{ approvers: [{ user: "walker" }], decisionTimeout: "P1D" }] }] }),
  putTenantSettings: () => ({ settings: { tokens: { perMinute: { limit: 1000 } } } }),
  requestExemption: (u) => ({
    control: "tokens.perMinute",
    scope: { level: "project", projectId: "prj_00000000000000000000" },
    relaxation: { kind: "limit", value: 5000 },
    category: "mitigated",
    owner: "walker",
    reason: { deliveryBlocker: `walk ${u}`, affectedControl: "walk", expectedEndState: "walk" },
    expiresAt: new Date(Date.now() + 10 * 24 * 3600 * 1000).toISOString(),
  }),
  renewExemption: () => ({ expiresAt: new Date(Date.now() + 20 * 24 * 3600 * 1000).toISOString(), evidence: ["https://walk.example.com/evidence"], justification: "walk" }),
  revokeExemption: () => ({ reason: "walk" }),
  putExemptionPolicy: () => ({ maxDays: { waiver: 30, mitigated: 90 } }),
  publishGateway: () => ({ reason: "walk" }),
  previewProjectPolicy: () => ({ settings: { tokens: { perMinute: { limit: 500 } } }, explain: true }),
  createKey: (u) => ({ name: `walk ${u}`.slice(0, 100) }),
  rotateKey: () => ({ overlap: "PT1H" }),
  revokeKey: () => ({ reason: "walk" }),
  suspendKey: () => ({ reason: "walk" }),
  resumeKey: () => ({ reason: "walk" }),
  lookupKey: () => ({ key: "aigw_0000000000000000000000000000000000000A" }),
  shareKey: () => ({ projectId: "prj_00000000000000000000", justification: "walk" }),
  rollbackRevision: () => ({ reason: "walk" }),
  createAccessReview: (u) => ({ name: `walk ${u}`.slice(0, 100), kind: "keys", scope: { level: "tenant" }, stages: [{ reviewers: { type: "users", users: ["walker"] }, durationDays: 7 }] }),
  decideAccessReviewItem: () => ({ decision: "approve", justification: "walk" }),
  stopAccessReview: () => ({ reason: "walk" }),
  promoteProject: () => ({ to: "prod", justification: "walk" }),
  extendProject: () => ({ reviewDate: new Date(Date.now() + 30 * 24 * 3600 * 1000).toISOString().slice(0, 10), justification: "walk" }),
};

/** A valid body for every operation that takes one: the core's, and each pillar's examples (read when used, so registered pillars count). */
export const validBodies: Record<string, ((unique: string) => unknown) | undefined> = new Proxy({} as Record<string, (unique: string) => unknown>, {
  get: (_t, name: string) => CORE_BODIES[name] ?? pillarExamples()[name],
});

export function fillPath(path: string, values: Record<string, string>): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`no value for path parameter {${name}}: add it to the walk`);
    return encodeURIComponent(v);
  });
}
