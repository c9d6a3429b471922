import { canonicalUser, sameUser } from "../users.js";
import { exemptionUnsupported, type ActiveExemption } from "../../policy/exemptions.js";
import { clampToFloor } from "../../policy/floors.js";
import { mergeSettings, type Settings } from "../../policy/settings.js";
import type { Clock } from "../../ports/clock.js";
import type { Notifier } from "../../ports/notifier.js";
import { TENANT_SCOPE, unversioned, type Filter, type Store, type Versioned } from "../../ports/store.js";
import type { ModelService } from "../../pillars/models/service.js";
import { approvalDrive } from "../approvals/drive.js";
import type { Approval } from "../approvals/schema.js";
import type { ApprovalService } from "../approvals/service.js";
import type { ChangeWriter } from "../changes.js";
import { etagMatches, newId, type Page, type RequestContext } from "../common.js";
import { AppError, fail, type FieldError } from "../errors.js";
import { jitter } from "../kernel/contention.js";
import type { Driven } from "../kernel/drive.js";
import { ANY_TENANT_ROLE, EXEMPTION_REQUESTERS, holdsAny, TENANT_ADMINS } from "../kernel/roles.js";
import type { ProjectService } from "../projects/service.js";
import { parseOrThrow } from "../validation.js";
import { ActiveExemptions } from "./active.js";
import { ExemptionDocuments, type ExemptionDoc } from "./documents.js";
import { ExemptionLifecycle, type RequestPublish } from "./lifecycle.js";
import { beyondMaximum, combinedRelaxation, ExemptionPolicies, expiryErrors, invalid, keyNotLooser, notLooser, riskOf, routeKeyOf, type KeyOwnLimits } from "./policy.js";
import { portfolio } from "./review.js";
import { ExemptionSpec, IN_FORCE, OPEN, RenewalSpec, RevokeSpec, type Exemption, type ExemptionListQuery, type ExemptionPolicy, type ExemptionReview, type HighRiskRules, type ExemptionSpecInput } from "./schema.js";

export type { RequestPublish } from "./lifecycle.js";

/** Key-scoped exemptions must name a key that exists in the project (the key documents answer). */
export interface KeyLookup {
  exists(tenantId: string, projectId: string, keyId: string): Promise<boolean>;
  /** Room for the key's exemption tier among its project's key tiers (ADR 008): 409 key_profiles_exhausted otherwise. */
  roomForExemption?(tenantId: string, projectId: string, keyId: string): Promise<void>;
  /**
   * Counts the key's place again and reserves it under its project's guard on key tiers, before the request is
   * written (ADR 008): a key profile made at the same moment is counted with it, or it with the profile.
   */
  reserveExemptionPlace?(tenantId: string, projectId: string, keyId: string): Promise<void>;
  /** The key's own per-key limits (its profile's): what binds it besides the project's per-key limits. */
  limitsOf?(tenantId: string, projectId: string, keyId: string): Promise<KeyOwnLimits | undefined>;
}

/** Key exemptions become key tiers (ADR 007); the compiler allows 20 tiers, so they stay few. */
export const MAX_OPEN_KEY_EXEMPTIONS = 10;

/** What the exemption service is built from. */
export interface ExemptionKit {
  store: Store;
  changes: ChangeWriter;
  clock: Clock;
  approvals: ApprovalService;
  projects: Pick<ProjectService, "get" | "readDoc">;
  models: Pick<ModelService, "get" | "listAll">;
  /** The tenant's gateway settings, for what is in force at a project (an exemption's risk). */
  tenantSettings: (tenantId: string) => Promise<Settings>;
  notifier: Notifier;
  /** The republish after a change in force (activation, expiry, revocation): a system publish (ADR 010). */
  requestPublish: RequestPublish;
  keys?: KeyLookup;
  /** Whether the compiler input built now applies a key exemption in force (its key on its exemption tier), and why not. */
  keyExemptionOutcomes?: (tenantId: string, exemptions: Pick<ActiveExemption, "scope" | "control">[]) => Promise<{ applied: boolean; why?: string }[]>;
  /** The exemption documents and the active exemptions, when the composition root shares them with the compiler input. */
  documents?: ExemptionDocuments;
  active?: ActiveExemptions;
}

/** A request or renewal made: the exemption, its approval, and the approval's driver. */
export type ExemptionRequested = Driven<{ exemption: Exemption; approval: Approval }>;

/**
 * Policy exemptions: narrow, owned, time-limited relaxations of one governance control, decided by
 * the approval engine and expired by a timer (docs/adr/007-exemptions.md). Every transition is one
 * conditional write with its audit record and event (ChangeWriter); exemptions live in the tenant
 * partition so lists and the portfolio review are single-partition queries.
 *
 * This is the API; `policy` (the tenant's maxima), `lifecycle` (settle hook, expiry sweep) and
 * `active` (what is in force, for the compiler input) are its parts.
 */
export class ExemptionService {
  readonly policy: ExemptionPolicies;
  readonly lifecycle: ExemptionLifecycle;
  readonly active: ActiveExemptions;
  private readonly docs: ExemptionDocuments;
  private readonly clock: Clock;
  private readonly approvals: ApprovalService;
  private readonly projects: Pick<ProjectService, "get" | "readDoc">;
  private readonly models: Pick<ModelService, "get" | "listAll">;
  private readonly tenantSettings: (tenantId: string) => Promise<Settings>;
  private readonly keys: KeyLookup | undefined;
  private readonly keyOutcomes: ExemptionKit["keyExemptionOutcomes"];

  constructor(kit: ExemptionKit) {
    this.clock = kit.clock;
    this.approvals = kit.approvals;
    this.projects = kit.projects;
    this.models = kit.models;
    this.tenantSettings = kit.tenantSettings;
    this.keys = kit.keys;
    this.keyOutcomes = kit.keyExemptionOutcomes;
    this.docs = kit.documents ?? new ExemptionDocuments(kit.store, kit.changes);
    this.active = kit.active ?? new ActiveExemptions(this.docs, kit.clock);
    this.policy = new ExemptionPolicies(kit.store, kit.changes, kit.clock);
    this.lifecycle = new ExemptionLifecycle(this.docs, kit.clock, kit.approvals, kit.notifier, kit.requestPublish, async (tenantId, doc) => {
      if (doc.scope.level !== "project") return undefined;
      // Judged again only when an open exemption of its control was made at the same moment (neither side
      // judged with the other, whatever route either took): then with everything open, as the compiler
      // applies it together. Without one, every pair was judged together by someone; nothing is new.
      const unseen = (o: Exemption) => !(doc.judgedWith ?? []).includes(o.id) && !(o.judgedWith ?? []).includes(doc.id);
      const withAll = async (others: Exemption[]) => (others.some(unseen) ? others : []);
      const { risk, why, together } = await this.riskOf(tenantId, doc, await this.policy.of(tenantId), withAll);
      return { risk, why, together: together === true };
    }, kit.keyExemptionOutcomes);
    kit.approvals.onSettled(
      "exemption",
      (approval, correlationId) => this.lifecycle.settleApproval(approval, correlationId),
      // Awaited while the exemption records it and can still take it: the request while requested, a
      // renewal while pending on an exemption in force (a revoked one's requests are withdrawn).
      async (approval) => {
        const doc = await this.docs.read(approval.tenantId, approval.subject.resourceId);
        if (!doc) return false;
        if (doc.approvalId === approval.id) return doc.status === "requested";
        return IN_FORCE.includes(doc.status) && doc.renewals.some((r) => r.approvalId === approval.id && r.status === "pending");
      },
    );
  }

  async request(ctx: RequestContext, input: ExemptionSpecInput): Promise<ExemptionRequested> {
    const { principal } = ctx;
    if (!holdsAny(principal.roles, EXEMPTION_REQUESTERS)) fail({ kind: "forbidden", detail: "requesting an exemption requires TenantAdmin, ProjectAdmin or Developer" });
    const parsed = parseOrThrow(ExemptionSpec, input, "body");
    // An object id names its user in any case: kept as tokens carry it (users.ts).
    const spec = { ...parsed, owner: canonicalUser(parsed.owner) };
    const now = this.clock.now();
    const policy = await this.policy.of(principal.tenantId);
    const errors: FieldError[] = [];
    const unsupported = exemptionUnsupported(spec.control, spec.scope.level, spec.relaxation);
    if (unsupported) errors.push({ field: `body.${unsupported.field}`, message: unsupported.message });
    const expiry = expiryErrors(policy, spec.category, spec.control, now, spec.expiresAt, "body.expiresAt");
    errors.push(...expiry);
    if (errors.length) throw invalid(errors, beyondMaximum(expiry, spec.expiresAt, now));
    await this.checkScope(ctx, spec.scope);
    const { changesNothing, notLooser: same, judgedWith, together: _together, ...risk } = await this.riskOf(principal.tenantId, spec, policy);
    // A relaxation at or below what binds relaxes nothing now, and would relax what the project tightens later.
    if (same) throw invalid([{ field: "body.relaxation", message: `relaxes nothing: ${same}` }], { reason: "relaxation_not_looser" });

    const id = newId("exm");
    const expiresAt = new Date(spec.expiresAt).toISOString();
    const projectId = spec.scope.level === "tenant" ? undefined : spec.scope.projectId;
    const { approval, recorded: exemption } = await this.approvals.requestFor(
      ctx,
      {
        subject: {
          resourceType: "exemption",
          resourceId: id,
          ...(projectId ? { projectId } : {}),
          change: { kind: "request", control: spec.control, scope: spec.scope, relaxation: spec.relaxation, category: spec.category, owner: spec.owner, expiresAt, compensatingControls: spec.compensatingControls, evidence: spec.evidence, risk },
        },
        justification: `${spec.reason.deliveryBlocker} — expected end state: ${spec.reason.expectedEndState}`.slice(0, 4000),
        route: routeKeyOf(spec.scope, risk.risk),
        // Its owner answers for it: never its approver.
        parties: [spec.owner],
        ...(spec.approval?.stages ? { extraStages: spec.approval.stages, extraField: "body.approval.stages" } : {}),
      },
      (approval) => {
        const at = now.toISOString();
        const doc: ExemptionDoc = {
          id,
          tenantId: principal.tenantId,
          scopeId: TENANT_SCOPE,
          docType: "exemption",
          projectId: projectId ?? "",
          scopeLevel: spec.scope.level,
          control: spec.control,
          scope: spec.scope,
          relaxation: spec.relaxation,
          category: spec.category,
          owner: spec.owner,
          reason: spec.reason,
          compensatingControls: spec.compensatingControls,
          evidence: spec.evidence,
          expiresAt,
          status: "requested",
          requester: principal.userId,
          approvalId: approval.id,
          // Judged against nothing (its control applies nowhere in the project), it is never applied: once the
          // tenant or project sets the control, one approver's "changes nothing" must not outrank it.
          ...(changesNothing ? { latent: true as const } : {}),
          ...(judgedWith.length ? { judgedWith } : {}),
          notices: {},
          renewals: [],
          timeline: [{ at, type: "requested", actor: principal.userId }],
          createdAt: at,
          createdBy: principal.userId,
          updatedAt: at,
          updatedBy: principal.userId,
        };
        return this.record(ctx, doc);
      },
    );
    return { exemption, approval, drive: approvalDrive(approval) };
  }

  async get(ctx: RequestContext, id: string): Promise<Exemption> {
    this.mayRead(ctx);
    const [view] = await this.withGateway(ctx.principal.tenantId, [this.docs.view(await this.docs.load(ctx.principal.tenantId, id))]);
    return view!;
  }

  /**
   * Key exemptions in force say whether the gateway configuration applies them: one the compiler could not
   * give an exemption tier (a project whose key tiers were full before exemptions held their places) reads
   * `gateway.applied: false` and why, never just "active" while its key keeps its own limits.
   */
  private async withGateway(tenantId: string, views: Exemption[]): Promise<Exemption[]> {
    const judged = (v: Exemption) => v.scope.level === "key" && IN_FORCE.includes(v.status) && !v.latent;
    const keyed = views.filter(judged);
    if (!this.keyOutcomes || keyed.length === 0) return views;
    // One compiler input for the whole page.
    const outcomes = await this.keyOutcomes(tenantId, keyed);
    return views.map((v) => (judged(v) ? { ...v, gateway: outcomes[keyed.indexOf(v)]! } : v));
  }

  async list(ctx: RequestContext, q: ExemptionListQuery): Promise<Page<Exemption>> {
    this.mayRead(ctx);
    const filters: Filter[] = [];
    if (q.status) filters.push({ field: "status", op: "=", value: q.status });
    if (q.control) filters.push({ field: "control", op: "=", value: q.control });
    if (q.projectId) filters.push({ field: "projectId", op: "=", value: q.projectId });
    if (q.owner) filters.push({ field: "owner", op: "=", value: q.owner });
    const page = await this.docs.page(ctx.principal.tenantId, filters, q);
    return { ...page, items: await this.withGateway(ctx.principal.tenantId, page.items) };
  }

  /** A renewal is a new approval with updated evidence; the exemption stays as it is until it is decided. */
  async renew(ctx: RequestContext, id: string, input: unknown, ifMatch: string): Promise<ExemptionRequested> {
    const { principal } = ctx;
    const doc = await this.docs.load(principal.tenantId, id);
    this.mayChange(ctx, doc, "renew");
    const spec = parseOrThrow(RenewalSpec, input, "body");
    if (!etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (!IN_FORCE.includes(doc.status)) fail({ kind: "conflict", detail: `only an active exemption can be renewed; this one is ${doc.status}`, reason: "exemption_not_active" });
    if (doc.renewals.some((r) => r.status === "pending")) fail({ kind: "conflict", detail: "a renewal is already awaiting approval", reason: "renewal_pending" });
    const now = this.clock.now();
    const policy = await this.policy.of(principal.tenantId);
    const errors = expiryErrors(policy, doc.category, doc.control, now, spec.expiresAt, "body.expiresAt");
    const lifetime = beyondMaximum(errors, spec.expiresAt, now);
    const expiresAt = new Date(spec.expiresAt).toISOString();
    if (Date.parse(expiresAt) <= Date.parse(doc.expiresAt)) errors.push({ field: "body.expiresAt", message: `must be later than the current expiry (${doc.expiresAt})` });
    if (spec.evidence.every((e) => doc.evidence.includes(e))) errors.push({ field: "body.evidence", message: "a renewal needs updated evidence: at least one link the exemption does not already have" });
    const compensating = spec.compensatingControls ?? doc.compensatingControls;
    if (doc.category === "waiver" && compensating.length === 0) errors.push({ field: "body.compensatingControls", message: "a waiver needs at least one compensating control" });
    if (errors.length) throw invalid(errors, lifetime);

    const number = doc.renewals.length + 1;
    // A renewal takes the route and the risk as they are now (the original request keeps the ones it was given).
    // The approval records how risky the renewal is and why; whether it changes nothing is the exemption's own (latent).
    const { changesNothing: _n, notLooser: _same, ...risk } = await this.riskOf(principal.tenantId, doc, policy);
    const { approval, recorded: exemption } = await this.approvals.requestFor(
      ctx,
      {
        subject: {
          resourceType: "exemption",
          resourceId: id,
          ...(doc.projectId ? { projectId: doc.projectId } : {}),
          change: { kind: "renewal", renewal: number, control: doc.control, scope: doc.scope, relaxation: doc.relaxation, previousExpiresAt: doc.expiresAt, expiresAt, evidence: spec.evidence, compensatingControls: compensating, risk },
        },
        justification: spec.justification,
        route: routeKeyOf(doc.scope, risk.risk),
        // Whoever asked for the exemption, owns it or renewed it before has a stake in its renewal.
        parties: [doc.requester, doc.owner, ...doc.renewals.map((r) => r.requestedBy)],
        ...(spec.approval?.stages ? { extraStages: spec.approval.stages, extraField: "body.approval.stages" } : {}),
      },
      (approval) => {
        const at = now.toISOString();
        const next: ExemptionDoc = {
          ...unversioned(doc),
          renewals: [
            ...doc.renewals,
            {
              number,
              approvalId: approval.id,
              requestedAt: at,
              requestedBy: principal.userId,
              previousExpiresAt: doc.expiresAt,
              expiresAt,
              evidence: spec.evidence,
              justification: spec.justification,
              ...(spec.compensatingControls ? { compensatingControls: spec.compensatingControls } : {}),
              status: "pending",
            },
          ],
          timeline: [...doc.timeline, { at, type: "renewalRequested", actor: principal.userId, detail: `renewal ${number} until ${expiresAt}` }],
          updatedAt: at,
          updatedBy: principal.userId,
        };
        return this.docs.commit(ctx, doc, { next, action: "exemption.renewal.request", event: "aigov.exemption.requested.v1", extra: { renewal: number } });
      },
    );
    return { exemption, approval, drive: approvalDrive(approval) };
  }

  async revoke(ctx: RequestContext, id: string, input: unknown, ifMatch: string): Promise<Exemption> {
    const { principal } = ctx;
    const doc = await this.docs.load(principal.tenantId, id);
    this.mayChange(ctx, doc, "revoke");
    const spec = parseOrThrow(RevokeSpec, input, "body");
    if (!etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (!OPEN.includes(doc.status)) fail({ kind: "conflict", detail: `the exemption is already ${doc.status}`, reason: "exemption_ended" });
    return this.end(ctx, doc, spec.reason);
  }

  /**
   * Revokes an exemption on behalf of automation (an access review's outcome; `ctx` is a system context).
   * Idempotent: "alreadyGone" when it is gone or already over.
   */
  async revokeBySystem(ctx: RequestContext, id: string, reason: string): Promise<"removed" | "alreadyGone"> {
    const doc = await this.docs.read(ctx.principal.tenantId, id);
    if (!doc || !OPEN.includes(doc.status)) return "alreadyGone";
    await this.end(ctx, doc, reason);
    return "removed";
  }

  /** Every exemption in force whose scope lies in the project (access reviews). */
  async openInProject(tenantId: string, projectId: string): Promise<Exemption[]> {
    const out: Exemption[] = [];
    for await (const d of this.docs.matching(tenantId, [{ field: "projectId", op: "=", value: projectId }])) if (IN_FORCE.includes(d.status)) out.push(this.docs.view(d));
    return out;
  }

  /** Every exemption in force at the project: its own and the tenant's (promotion gates). */
  async inForceAt(tenantId: string, projectId: string): Promise<Exemption[]> {
    return [...(await this.openInProject(tenantId, projectId)), ...(await this.inForceAtTenant(tenantId))];
  }

  /** The tenant-scope exemptions in force (tenant-wide access reviews). */
  async inForceAtTenant(tenantId: string): Promise<Exemption[]> {
    const out: Exemption[] = [];
    for await (const d of this.docs.matching(tenantId, [{ field: "scopeLevel", op: "=", value: "tenant" }])) if (IN_FORCE.includes(d.status)) out.push(this.docs.view(d));
    return out;
  }

  private async end(ctx: RequestContext, doc: Versioned<ExemptionDoc>, reason: string): Promise<Exemption> {
    const { principal } = ctx;
    const at = this.clock.now().toISOString();
    const wasInForce = IN_FORCE.includes(doc.status);
    const next: ExemptionDoc = {
      ...unversioned(doc),
      status: "revoked",
      endedAt: at,
      revokeReason: reason,
      timeline: [...doc.timeline, { at, type: "revoked", actor: principal.userId, detail: reason }],
      updatedAt: at,
      updatedBy: principal.userId,
    };
    const exemption = await this.docs.commit(ctx, doc, { next, action: "exemption.revoke", event: "aigov.exemption.revoked.v1" });
    if (wasInForce) await this.lifecycle.republish(principal.tenantId, { by: principal.userId, reason: `exemption ${doc.id} revoked`, correlationId: ctx.correlationId });
    // Its open requests can no longer take effect: nobody is asked to decide them (the approval sweep would withdraw them later).
    const open = [...(doc.status === "requested" ? [doc.approvalId] : []), ...doc.renewals.filter((r) => r.status === "pending").map((r) => r.approvalId)];
    for (const id of open) await this.approvals.withdraw(principal.tenantId, id, `exemption ${doc.id} revoked`, ctx.correlationId).catch(() => undefined);
    return exemption;
  }

  async getPolicy(ctx: RequestContext): Promise<ExemptionPolicy> {
    this.mayRead(ctx);
    return this.policy.get(ctx.principal.tenantId);
  }

  putPolicy(ctx: RequestContext, input: unknown, ifMatch: string): Promise<ExemptionPolicy> {
    return this.policy.put(ctx, input, ifMatch);
  }

  /** The portfolio: counts, ageing, repeat renewals, clusters, missing compensating controls, breadth. */
  async review(ctx: RequestContext, q: { clusterMinProjects: number; repeatMinRenewals: number }): Promise<ExemptionReview> {
    this.mayRead(ctx);
    const now = this.clock.now();
    return portfolio(await this.docs.all(ctx.principal.tenantId), now, q);
  }

  /** The exemptions in force at `at` (see ActiveExemptions). */
  listActive(tenantId: string, at: Date): Promise<ActiveExemption[]> {
    return this.active.listActive(tenantId, at);
  }

  /** The expiry sweep (timer job): see ExemptionLifecycle.sweep. */
  sweep(correlationId: string): Promise<{ notified: number; expired: number; settled: number }> {
    return this.lifecycle.sweep(correlationId);
  }

  /** The approval settle hook (also called directly by tests): see ExemptionLifecycle.settleApproval. */
  settleApproval(approval: Approval, correlationId: string): Promise<void> {
    return this.lifecycle.settleApproval(approval, correlationId);
  }

  /**
   * The exemption's risk against what is in force in its project now, at project level and for each
   * model: the settings merged and held to the tenant's floors as the compiler holds them, no exemptions.
   * `notLooser`: why a project or model relaxation would change nothing where it applies (policy.ts).
   */
  private async riskOf(
    tenantId: string,
    exemption: Pick<Exemption, "control" | "scope" | "relaxation"> & { id?: string },
    policy: { highRisk: HighRiskRules },
    counted: (others: Exemption[]) => Promise<Exemption[]> = async (others) => others,
  ): Promise<ReturnType<typeof riskOf> & { judgedWith: string[]; together?: true; notLooser?: string }> {
    const { scope } = exemption;
    if (scope.level === "key") {
      // What binds the key, as the compiler makes its exemption tier: its own limits and the project's per-key ones.
      const [tenant, project, own] = await Promise.all([this.tenantSettings(tenantId), this.projects.readDoc(tenantId, scope.projectId), this.keys?.limitsOf?.(tenantId, scope.projectId, scope.keyId)]);
      const judged = keyNotLooser(exemption, own ?? {}, mergeSettings(tenant, clampToFloor(tenant, project?.settings)));
      return { ...riskOf(exemption, policy.highRisk, []), judgedWith: [], ...judged };
    }
    if (scope.level !== "project" && scope.level !== "model") return { ...riskOf(exemption, policy.highRisk, []), judgedWith: [] };
    const { projectId } = scope;
    const [tenant, project, models, open] = await Promise.all([
      this.tenantSettings(tenantId),
      this.projects.readDoc(tenantId, projectId),
      this.models.listAll(tenantId, projectId),
      scope.level === "project" ? this.openAtProjectScope(tenantId, projectId, exemption.control) : [],
    ]);
    const projectSettings = clampToFloor(tenant, project?.settings);
    const ofModel = (m: (typeof models)[number]) => mergeSettings(tenant, projectSettings, clampToFloor(tenant, m.settings));
    if (scope.level === "model") {
      const model = models.find((m) => m.id === scope.modelId);
      const same = model ? notLooser(exemption, [ofModel(model)]) : undefined;
      return { ...riskOf(exemption, policy.highRisk, []), judgedWith: [], ...(same ? { notLooser: same } : {}) };
    }
    const inForce = [mergeSettings(tenant, projectSettings), ...models.map(ofModel)];
    const same = notLooser(exemption, inForce);
    const alone = { ...riskOf(exemption, policy.highRisk, inForce), ...(same ? { notLooser: same } : {}) };
    // Judged with the other open exemptions of the control for the project (requested, approved or in force): they add up.
    const others = await counted(open.filter((e) => e.id !== exemption.id));
    const judgedWith = others.map((e) => e.id);
    if (alone.risk === "high" || !others.length) return { ...alone, judgedWith };
    const together = riskOf({ ...exemption, relaxation: combinedRelaxation([exemption.relaxation, ...others.map((e) => e.relaxation)]) }, policy.highRisk, inForce);
    return together.risk === "high" ? { risk: "high", why: `with ${judgedWith.join(", ")} (open for ${exemption.control} in the project), ${together.why}`, judgedWith, together: true } : { ...alone, judgedWith };
  }

  /** The open exemptions (requested, approved, in force) of a control for a whole project. */
  private async openAtProjectScope(tenantId: string, projectId: string, control: Exemption["control"]): Promise<Exemption[]> {
    const out: Exemption[] = [];
    for await (const d of this.docs.matching(tenantId, [{ field: "projectId", op: "=", value: projectId }])) {
      // A latent exemption is never applied: it adds nothing to what the others do.
      if (OPEN.includes(d.status) && d.control === control && d.scope.level === "project" && !d.latent) out.push(this.docs.view(d));
    }
    return out;
  }

  private async checkScope(ctx: RequestContext, scope: Exemption["scope"]): Promise<void> {
    if (scope.level === "tenant") {
      if (!holdsAny(ctx.principal.roles, TENANT_ADMINS)) fail({ kind: "forbidden", detail: "a tenant-wide exemption is requested by a TenantAdmin" });
      return;
    }
    await this.projects.get(ctx, scope.projectId); // 404 for a missing project or another tenant's
    if (scope.level === "model") await this.models.get(ctx, scope.projectId, scope.modelId);
    if (scope.level === "key") {
      if (this.keys && !(await this.keys.exists(ctx.principal.tenantId, scope.projectId, scope.keyId))) {
        fail({ kind: "notFound", resource: `/projects/${scope.projectId}/keys/${scope.keyId}` });
      }
      await this.keyPlace(ctx.principal.tenantId, scope);
    }
  }

  /**
   * Room for one more key exemption: the tenant's count of open ones and a place among the project's key
   * tiers (its exemption tier is one, held from the request on: a project already at the cap would be set
   * aside whole by the publish that applies it).
   */
  private async keyPlace(tenantId: string, scope: Extract<Exemption["scope"], { level: "key" }>): Promise<void> {
    const openKeys = (await this.docs.all(tenantId)).filter((d) => d.scopeLevel === "key" && OPEN.includes(d.status) && !d.latent).length;
    if (openKeys >= MAX_OPEN_KEY_EXEMPTIONS) {
      throw invalid([{ field: "body.scope", message: `at most ${MAX_OPEN_KEY_EXEMPTIONS} key exemptions may be open at once (each becomes a key tier); exempt the model or project instead` }], { reason: "too_many_key_exemptions" });
    }
    await this.keys?.roomForExemption?.(tenantId, scope.projectId, scope.keyId);
  }

  /**
   * Writes a request. A key-scope one is counted again under the tenant's guard and written in one batch
   * with the guard's conditional write: two requests made at the same moment cannot both take the last
   * place (the second's write fails on the guard, and it is counted again with the first). Its place among
   * its project's key tiers is reserved first under that project's guard, which every key write that may add
   * a profile takes as well: a key profile made at the same moment cannot take it too.
   */
  private async record(ctx: RequestContext, doc: ExemptionDoc): Promise<Exemption> {
    const change = { action: "exemption.request", event: "aigov.exemption.requested.v1" };
    const { scope } = doc;
    if (scope.level !== "key" || doc.latent) return this.docs.create(ctx, doc, change);
    for (let attempt = 1; ; attempt++) {
      const guard = await this.docs.keyExemptionGuard(ctx.principal.tenantId);
      await this.keyPlace(ctx.principal.tenantId, scope);
      // The place among the project's key tiers is taken under the project's guard, which key writes that add a
      // profile take too (the exemption's own batch is in the tenant partition: it cannot hold that guard).
      await this.keys?.reserveExemptionPlace?.(ctx.principal.tenantId, scope.projectId, scope.keyId);
      try {
        return await this.docs.create(ctx, doc, change, guard);
      } catch (err) {
        // Each lost attempt means another key-scope request was written; once the tenant has its most open, the
        // count refuses outright. So a few more attempts than that always end in an answer (unless exemptions keep ending meanwhile).
        if (!(err instanceof AppError && err.error.kind === "conflict" && err.error.reason === "changed_meanwhile") || attempt >= MAX_OPEN_KEY_EXEMPTIONS + 6) throw err;
        await jitter(attempt);
      }
    }
  }

  private mayRead(ctx: RequestContext): void {
    if (!holdsAny(ctx.principal.roles, ANY_TENANT_ROLE)) fail({ kind: "forbidden", detail: "reading exemptions requires a tenant role" });
  }

  /** The owner, the requester or a TenantAdmin; checked after the tenant lookup so another tenant's id is a 404. */
  private mayChange(ctx: RequestContext, doc: ExemptionDoc, what: string): void {
    const p = ctx.principal;
    if (holdsAny(p.roles, TENANT_ADMINS) || sameUser(p.userId, doc.owner) || sameUser(p.userId, doc.requester)) return;
    fail({ kind: "forbidden", detail: `only the owner, the requester or a TenantAdmin may ${what} an exemption`, reason: "exemption_owner_only" });
  }
}
