/**
 * The agent registry of a project: agents registered here and agents a connection syncs in, their
 * AgentCards, owners, lifecycle, the enabled switch and guardrails, and each agent's own virtual key
 * (scope and limits derived from its guardrails). Everything a person sets here is local governance: a
 * sync never changes it (sync/apply.ts takes only the source's fields).
 */
import type { ChangeWriter } from "../../domain/changes.js";
import { etagMatches, newId, type Page, type RequestContext } from "../../domain/common.js";
import { AppError, fail } from "../../domain/errors.js";
import { Collection } from "../../domain/kernel/collection.js";
import type { ProjectService } from "../../domain/projects/service.js";
import type { Project } from "../../domain/projects/schema.js";
import { parseOrThrow } from "../../domain/validation.js";
import type { Clock } from "../../ports/clock.js";
import type { Partition, Store } from "../../ports/store.js";
import { unversioned } from "../../ports/store.js";
import { toArray } from "../../domain/paging.js";
import { holdsOn, PROJECT_MANAGERS } from "../../domain/kernel/roles.js";
import { systemContext } from "../../domain/kernel/system.js";
import { agentPath, type AgentDoc, type ConnectionDoc } from "./documents.js";
import { AgentPatch, AgentSpec, Guardrails, LifecycleChange, type Agent, type AgentSpecInput, type AgentSummary, type GuardrailsPatch, type LifecycleState } from "./schema.js";
import type { CardRecorder } from "./card-record.js";
import { isServed } from "./compiler.js";
import { endpointOfCard, refuseAgentEndpoint } from "./endpoint.js";
import { MAX_PROJECT_AGENTS } from "../../policy/input.js";
import { searchTextOf } from "./catalog.js";

/** What agents need of virtual keys (the key service, wired once it exists). */
export interface AgentKeys {
  issue(ctx: RequestContext, projectId: string, spec: AgentKeySpec): Promise<{ id: string; key: string } & Record<string, unknown>>;
  /** The key follows new guardrails (its subscription moves to the product of its new profile). */
  rescope(ctx: RequestContext, projectId: string, keyId: string, scopes: { models: string[]; tools: string[] }, limits: AgentKeySpec["limits"]): Promise<void>;
  revoke(ctx: RequestContext, projectId: string, keyId: string, reason: string): Promise<void>;
  /** The key passes to another owner (its previous owner may no longer rotate, collect, suspend or resume it). */
  reassign(ctx: RequestContext, projectId: string, keyId: string, owner: string): Promise<void>;
  /** Whether the key still works or can again (active or suspended): false once revoked, expired or gone. */
  live(ctx: RequestContext, projectId: string, keyId: string): Promise<boolean>;
  /** Suspends the key of a blocked or disabled agent (`suspendedBy: "agentHold"`): true when this suspended it. */
  hold(ctx: RequestContext, projectId: string, keyId: string, reason: string): Promise<boolean>;
  /** Resumes the key if the hold suspended it (and nothing holds it still): true when this resumed it. */
  release(ctx: RequestContext, projectId: string, keyId: string, reason: string): Promise<boolean>;
  /** Every tenant's keys a hold suspended that nothing has resumed since. */
  held(): AsyncGenerator<{ tenantId: string; projectId: string; keyId: string }>;
  /** Guardrail entries that name nothing in the project (models, then tools), as field errors. */
  unknownScopes(tenantId: string, projectId: string, scopes: { models: string[]; tools: string[] }): Promise<{ models: string[]; tools: string[] }>;
}

export interface AgentKeySpec {
  name: string;
  description: string;
  owner: string;
  scopes: { models: string[]; tools: string[] };
  limits: { tokensPerMinute?: number; requestsPerMinute?: number; contentSafety?: "low" | "medium" | "high" };
  expiresAt?: string;
}

/** Who suspends and resumes the key of a blocked or disabled agent (audit records name it). */
const HOLD_ACTOR = "system:agent-hold" as const;

/**
 * Why the agent's own key is held (suspended by the system, `suspendedBy: "agentHold"`): the agent is
 * blocked or disabled, or its cloud no longer lists it (`removedAtSource`: an agent gone at its source
 * stops acting, as it stops being served), or it is deprecated and its sunset has come (`sunset`: from
 * 00:00 UTC of `sunsetDate`, the instant the gateway stops serving it, `today` being the UTC date now: an
 * agent that is gone stops acting too). Undefined when its key may work.
 */
export function holdOf(d: Pick<AgentDoc, "lifecycle" | "enabled" | "sync">, today: string): "blocked" | "disabled" | "removedAtSource" | "sunset" | undefined {
  if (d.lifecycle.state === "blocked") return "blocked";
  if (!d.enabled) return "disabled";
  if (d.sync?.state === "removedAtSource") return "removedAtSource";
  return sunsetPassed(d, today) ? "sunset" : undefined;
}

/** A deprecated agent whose sunset date is today or earlier (UTC): the gateway refuses it (410 `agent_sunset`). */
const sunsetPassed = (d: Pick<AgentDoc, "lifecycle">, today: string): boolean => d.lifecycle.state === "deprecated" && d.lifecycle.sunsetDate !== undefined && d.lifecycle.sunsetDate <= today;

/** Why a hold holds the agent's key, for the key's suspension record and events. */
function holdReason(d: AgentDoc, why: NonNullable<ReturnType<typeof holdOf>>): string {
  if (why === "sunset") return `agent ${d.id} is past its sunset (${d.lifecycle.sunsetDate ?? ""})`;
  return `agent ${d.id} is ${why}${why === "blocked" && d.lifecycle.reason ? ` (${d.lifecycle.reason})` : ""}`;
}

/** The reasons a held agent's key is refused with (resumed or issued). */
export type HeldReason = "agent_blocked_or_disabled" | "agent_removed_at_source" | "agent_sunset_passed";

/**
 * Every hold on the agent's key at once: an agent can be blocked (or disabled, or past its sunset) and
 * removed at its source together, and each must end before its key may work again.
 */
function holdsOf(d: Pick<AgentDoc, "lifecycle" | "enabled" | "sync">, today: string): NonNullable<ReturnType<typeof holdOf>>[] {
  return [
    ...(d.lifecycle.state === "blocked" ? (["blocked"] as const) : []),
    ...(!d.enabled ? (["disabled"] as const) : []),
    ...(d.sync?.state === "removedAtSource" ? (["removedAtSource"] as const) : []),
    ...(sunsetPassed(d, today) ? (["sunset"] as const) : []),
  ];
}

/** What each hold is, and what ends it. */
const HOLD_TEXT = {
  blocked: { is: () => "blocked", until: "the agent is unblocked" },
  disabled: { is: () => "disabled", until: "the agent is enabled again" },
  removedAtSource: { is: () => "removed at its source", until: "its cloud lists it again" },
  sunset: { is: (d: Pick<AgentDoc, "lifecycle">) => `past its sunset (${d.lifecycle.sunsetDate ?? ""})`, until: "the agent is made active again" },
} as const;

/**
 * The refusal for resuming or issuing the key of a held agent: blocked or disabled, removed at its source,
 * or past its sunset. With more than one hold the detail names each and what ends it; the reason is the
 * removal at its source when that is one of them — the one hold no person can end (unblocking, enabling or
 * making the agent active again leaves its key held while its cloud does not list it).
 */
export function heldRefusal(d: Pick<AgentDoc, "id" | "lifecycle" | "enabled" | "sync">, today: string): { detail: string; reason: HeldReason } | undefined {
  const holds = holdsOf(d, today);
  if (holds.length === 0) return undefined;
  const and = (parts: string[]) => (parts.length < 2 ? parts.join("") : `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]!}`);
  const detail = `agent ${d.id} is ${and(holds.map((h) => HOLD_TEXT[h].is(d)))}: its key stays suspended until ${and(holds.map((h) => HOLD_TEXT[h].until))}`;
  if (holds.includes("removedAtSource")) return { detail, reason: "agent_removed_at_source" };
  return { detail, reason: holds[0] === "sunset" ? "agent_sunset_passed" : "agent_blocked_or_disabled" };
}

/** The lifecycle's moves (blocked → the state it was blocked from is `unblock`, checked separately). */
const MOVES: Record<LifecycleState, readonly LifecycleState[]> = {
  draft: ["active", "retired", "blocked"],
  active: ["deprecated", "retired", "blocked"],
  deprecated: ["active", "retired", "blocked"],
  blocked: ["retired"],
  retired: [],
};

export class AgentRegistry {
  readonly agents: Collection<AgentDoc, Agent>;
  /** Wired once the key service exists (the composition root builds keys after the pillars). */
  keys: AgentKeys | undefined;

  constructor(
    private readonly store: Store,
    changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly projects: ProjectService,
    private readonly cards: CardRecorder,
    /** Local mode: agents on loopback addresses may be served (the local fakes). */
    private readonly allowLoopback = false,
  ) {
    this.agents = new Collection<AgentDoc, Agent>(store, changes, { docType: "agent", path: (d) => agentPath(d.scopeId, d.id), internal: ["localOverrides", "sourceValues", "sourceHash", "searchText"] });
  }

  partition(tenantId: string, projectId: string): Partition {
    return { tenantId, scopeId: projectId };
  }

  async create(ctx: RequestContext, projectId: string, input: AgentSpecInput): Promise<Agent> {
    const project = await this.writable(ctx, projectId);
    const spec = parseOrThrow(AgentSpec, input, "body");
    this.checkEndpoint(spec.endpoint?.url);
    await this.checkGuardrails(ctx.principal.tenantId, project.id, spec.guardrails, "body.guardrails");
    const card = spec.card ? await this.cards.record(spec.card, "body.card") : undefined;
    const endpoint = spec.endpoint ?? (card?.card ? endpointOfCard(card.card) : undefined);
    const now = this.clock.now().toISOString();
    const id = newId("agt");
    const doc: AgentDoc = {
      id,
      ...this.partition(ctx.principal.tenantId, project.id),
      docType: "agent",
      projectId: project.id,
      name: spec.name,
      ...(spec.description !== undefined ? { description: spec.description } : {}),
      owner: spec.owner ?? ctx.principal.userId,
      environment: spec.environment,
      dataClasses: spec.dataClasses,
      lifecycle: { state: "draft" },
      enabled: true,
      ...(endpoint ? { endpoint } : {}),
      ...(card ? { card } : {}),
      guardrails: spec.guardrails,
      origin: "local",
      createdAt: now,
      createdBy: ctx.principal.userId,
      updatedAt: now,
      updatedBy: ctx.principal.userId,
    };
    doc.searchText = searchTextOf(doc);
    const created = await this.agents.create(ctx, doc, { action: "agent.register", event: "aigov.agent.registered.v1" });
    // The project was deleted while this was written (its delete marked it first): withdrawn.
    await this.projects.withdrawUnlessStanding(ctx, projectId, async (system) => {
      const written = await this.agents.read({ tenantId: ctx.principal.tenantId, scopeId: projectId }, doc.id);
      if (written) await this.agents.delete(system, written, { action: "agent.delete", event: "aigov.agent.deleted.v1" });
    });
    return created;
  }

  /**
   * After a sync wrote agents into the project (it read its connection earlier, and the connection, its
   * agents and then the project may have been deleted since): when the project no longer stands, the
   * agents it discovered are deleted again and false comes back (the run stops). Asked after the writes,
   * as every create inside a project asks (ProjectService.withdrawUnlessStanding).
   */
  async keepDiscovered(ctx: RequestContext, projectId: string, discovered: readonly string[]): Promise<boolean> {
    if (!discovered.length || (await this.projects.stands(ctx.principal.tenantId, projectId))) return true;
    for (const id of discovered) {
      const written = await this.agents.read({ tenantId: ctx.principal.tenantId, scopeId: projectId }, id);
      if (written) await this.agents.delete(ctx, written, { action: "agent.delete", event: "aigov.agent.deleted.v1" });
    }
    return false;
  }

  async get(ctx: RequestContext, projectId: string, id: string): Promise<Agent> {
    await this.projects.get(ctx, projectId);
    const doc = await this.load(ctx.principal.tenantId, projectId, id);
    return (await this.present(ctx.principal.tenantId, [doc]))[0]!;
  }

  async list(ctx: RequestContext, projectId: string, query: { maxPageSize: number; continuationToken?: string | undefined; state?: LifecycleState | undefined; origin?: "local" | "synced" | undefined; connectionId?: string | undefined }): Promise<Page<AgentSummary>> {
    await this.projects.get(ctx, projectId);
    const filters = [
      ...(query.state ? [{ field: "lifecycle.state", op: "=" as const, value: query.state }] : []),
      ...(query.origin ? [{ field: "origin", op: "=" as const, value: query.origin }] : []),
      ...(query.connectionId ? [{ field: "provenance.connectionId", op: "=" as const, value: query.connectionId }] : []),
    ];
    const page = await this.agents.page(this.partition(ctx.principal.tenantId, projectId), { filters, orderBy: { field: "name", direction: "ASC" } }, query);
    return { ...page, items: (await this.seen(ctx.principal.tenantId, page.items)).map(summaryOf) };
  }

  async listAll(tenantId: string, projectId: string): Promise<AgentDoc[]> {
    return toArray(this.agents.every(this.partition(tenantId, projectId)));
  }

  async count(tenantId: string, projectId: string): Promise<number> {
    return (await this.agents.page(this.partition(tenantId, projectId), {}, { maxPageSize: 1 })).items.length;
  }

  load(tenantId: string, projectId: string, id: string) {
    return this.agents.load(this.partition(tenantId, projectId), id, agentPath(projectId, id));
  }

  /** An endpoint a person names must be one the gateway may forward to (compiler.ts); a card's or a cloud's that may not is simply not served. */
  private checkEndpoint(url: string | undefined): void {
    const why = url === undefined ? undefined : refuseAgentEndpoint(url, this.allowLoopback);
    if (why) fail({ kind: "validation", detail: "the agent's endpoint cannot be served by the gateway", errors: [{ field: "body.endpoint.url", message: why }] });
  }

  /** Merge patch. Editing a synced agent's name or description makes it a local override (docs/agents.md, "Conflicts"). */
  async update(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch: string): Promise<Agent> {
    await this.writable(ctx, projectId);
    const patch = parseOrThrow(AgentPatch, input, "body");
    this.checkEndpoint(patch.endpoint?.url);
    const current = await this.load(ctx.principal.tenantId, projectId, id);
    if (!etagMatches(current._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    // Guardrails merge field by field: a PATCH of one limit keeps the models, data classes and level.
    const guardrails = patch.guardrails ? mergeGuardrails(current.guardrails, patch.guardrails) : undefined;
    if (guardrails) {
      await this.checkGuardrails(ctx.principal.tenantId, projectId, guardrails, "body.guardrails", patch.guardrails);
      // The agent's key follows its guardrails: an agent with a key keeps a model to call.
      if (current.key && guardrails.models.length === 0) {
        throw new AppError({ kind: "validation", detail: `the guardrails would name no model, and agent ${id} has key ${current.key.keyId}, which would then reach no model`, reason: "agent_guardrails_need_models", errors: [{ field: "body.guardrails.models", message: "an agent with a key keeps at least one model" }] });
      }
    }
    const next: AgentDoc = { ...unversioned(current), updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
    const overrides = new Set(current.localOverrides ?? []);
    for (const field of ["name", "description"] as const) {
      const value = patch[field];
      if (value === undefined) continue;
      if (value === null) delete next[field];
      else next[field] = value;
      if (current.origin === "synced") overrides.add(field);
    }
    if (overrides.size) next.localOverrides = [...overrides].sort();
    if (patch.owner !== undefined) next.owner = patch.owner;
    if (patch.environment !== undefined) next.environment = patch.environment;
    if (patch.dataClasses !== undefined) next.dataClasses = patch.dataClasses;
    if (patch.enabled !== undefined) next.enabled = patch.enabled;
    if (guardrails) next.guardrails = guardrails;
    if (patch.card === null) delete next.card;
    else if (patch.card !== undefined) next.card = await this.cards.record(patch.card, "body.card");
    if (patch.endpoint === null) delete next.endpoint;
    else if (patch.endpoint !== undefined) next.endpoint = patch.endpoint;
    else if (patch.card && next.card?.card && !current.endpoint) {
      const fromCard = endpointOfCard(next.card.card);
      if (fromCard) next.endpoint = fromCard;
    }
    next.searchText = searchTextOf(next);
    // Checked before the key changes below: a refusal leaves the key as it was too.
    await this.roomToServe(ctx.principal.tenantId, projectId, current, next);
    // The agent's key first: a refusal (a locked project, an ETag race on the key) then leaves the agent
    // as it was, instead of stored guardrails the key never followed — which the same PATCH again, seeing
    // nothing changed, would never repair. Asked on every guardrails PATCH; a key already so is untouched.
    if (guardrails && current.key && this.keys) {
      await this.keys.rescope(ctx, projectId, current.key.keyId, { models: guardrails.models, tools: guardrails.tools }, keyLimits(guardrails));
    }
    // The key is its owner's to rotate and collect: it goes with the agent, first too (a failure after it
    // leaves the key with the owner asked for, never with the one the PATCH replaces).
    if (patch.owner !== undefined && current.key && this.keys) await this.keys.reassign(ctx, projectId, current.key.keyId, patch.owner);
    const updated = await this.agents.replace(ctx, current, next, { action: "agent.update", event: "aigov.agent.updated.v1" });
    // Disabled or enabled again, its key follows (asked on every PATCH: the same PATCH again finishes a hold a failure left half done).
    await this.keyInStep(ctx, next);
    return (await this.seen(ctx.principal.tenantId, [updated]))[0]!;
  }

  async transition(ctx: RequestContext, projectId: string, id: string, input: unknown): Promise<Agent> {
    await this.writable(ctx, projectId);
    const change = parseOrThrow(LifecycleChange, input, "body");
    const current = await this.load(ctx.principal.tenantId, projectId, id);
    const from = current.lifecycle.state;
    // Retiring a retired agent again revokes the key it still names (a retirement recorded before its key
    // was revoked: nothing else would ever revoke it). Nothing else changes.
    if (from === "retired" && change.to === "retired" && current.key && this.keys) {
      await this.keys.revoke(ctx, projectId, current.key.keyId, `agent ${id} retired`);
      return (await this.present(ctx.principal.tenantId, [current]))[0]!;
    }
    // Blocking a blocked agent again suspends the key it holds if that is still active (a block whose
    // suspension failed: the sweep would finish it too). Nothing else changes.
    if (from === "blocked" && change.to === "blocked") {
      await this.keyInStep(ctx, current);
      return (await this.present(ctx.principal.tenantId, [current]))[0]!;
    }
    const unblock = from === "blocked" && change.to === current.lifecycle.blockedFrom;
    if (!unblock && !MOVES[from].includes(change.to)) {
      fail({ kind: "conflict", detail: `an agent in state ${from} cannot become ${change.to}`, reason: "agent_transition_not_allowed" });
    }
    if (change.to === "deprecated" && !unblock) {
      const today = this.clock.now().toISOString().slice(0, 10);
      if (!change.sunsetDate) fail({ kind: "validation", detail: "the request body is invalid", errors: [{ field: "body.sunsetDate", message: "is required when deprecating" }] });
      // The gateway refuses the agent's calls from 00:00 UTC of its sunset date on (410 agent_sunset): today
      // or earlier would cut it off at once, which retiring or blocking does, and says so.
      if (change.sunsetDate! <= today) fail({ kind: "validation", detail: "the request body is invalid", errors: [{ field: "body.sunsetDate", message: "must be after today: calls are refused from the sunset date on (retire or block the agent to stop it now)" }] });
    }
    // Deprecated today (the Deprecation header's date, as a model's): kept while blocked and when unblocked back.
    const kept = { ...(current.lifecycle.sunsetDate ? { sunsetDate: current.lifecycle.sunsetDate } : {}), ...(current.lifecycle.deprecatedAt ? { deprecatedAt: current.lifecycle.deprecatedAt } : {}) };
    const lifecycle: AgentDoc["lifecycle"] = {
      state: change.to,
      ...(change.to === "deprecated" && !unblock ? { sunsetDate: change.sunsetDate!, deprecatedAt: this.clock.now().toISOString().slice(0, 10) } : {}),
      // Blocked keeps what it was blocked from (and its sunset and deprecation date), to return to it.
      ...(change.to === "blocked" ? { blockedFrom: from, ...kept } : {}),
      // Unblocked into deprecated: the sunset and deprecation date it had still hold.
      ...(unblock && change.to === "deprecated" ? kept : {}),
      ...(change.reason ? { reason: change.reason } : {}),
    };
    const next: AgentDoc = { ...unversioned(current), lifecycle, updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
    await this.roomToServe(ctx.principal.tenantId, projectId, current, next);
    // A retired agent's key goes with it. Revoked first: a revocation that fails leaves the agent as it
    // was, and the same request again retires it. A blocked one's is suspended, after the agent's write
    // (keyInStep): blocking is undone by unblocking, which resumes it.
    if (change.to === "retired" && current.key && this.keys) await this.keys.revoke(ctx, projectId, current.key.keyId, `agent ${id} retired`);
    const updated = await this.agents.replace(ctx, current, next, {
      action: `agent.lifecycle.${change.to}`,
      event: "aigov.agent.lifecycle.changed.v1",
      data: { agentId: id, projectId, from, to: change.to, ...(change.reason ? { reason: change.reason } : {}) },
    });
    if (change.to !== "retired") await this.keyInStep(ctx, next);
    return (await this.seen(ctx.principal.tenantId, [updated]))[0]!;
  }

  async delete(ctx: RequestContext, projectId: string, id: string, ifMatch: string, connectionExists: (connectionId: string) => Promise<boolean>): Promise<void> {
    await this.writable(ctx, projectId);
    const current = await this.load(ctx.principal.tenantId, projectId, id);
    if (!etagMatches(current._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (current.provenance && (await connectionExists(current.provenance.connectionId))) {
      fail({ kind: "conflict", detail: "a synced agent is not deleted while its connection exists: block, disable or retire it", reason: "agent_is_synced" });
    }
    if (current.key && this.keys) await this.keys.revoke(ctx, projectId, current.key.keyId, `agent ${id} deleted`);
    await this.agents.delete(ctx, current, { action: "agent.delete", event: "aigov.agent.deleted.v1" });
  }

  /** The agent's own key: scope and limits from its guardrails; the secret is in this one response. */
  async issueKey(ctx: RequestContext, projectId: string, id: string, input: { expiresAt?: string | undefined }): Promise<Record<string, unknown>> {
    await this.writable(ctx, projectId);
    const keys = this.keys ?? fail({ kind: "unavailable", detail: "virtual keys are not available" });
    const current = await this.load(ctx.principal.tenantId, projectId, id);
    // A blocked or disabled agent gets no key (the one it has is suspended with it); a retired one: agent_retired below.
    const held = (d: AgentDoc) => {
      const refusal = heldRefusal(d, this.today())!;
      return fail({ kind: "conflict", detail: `${refusal.detail}; it gets no new key meanwhile`, reason: refusal.reason });
    };
    if (current.lifecycle.state !== "retired" && holdOf(current, this.today())) held(current);
    // A key revoked or expired since (through the keys API: a leak answered) is no key: the agent gets a new one.
    const dead = current.key && !(await keys.live(ctx, projectId, current.key.keyId)) ? current.key.keyId : undefined;
    if (current.key && !dead) fail({ kind: "conflict", detail: `agent ${id} already has key ${current.key.keyId}`, reason: "agent_has_key" });
    const retired = () => fail({ kind: "conflict", detail: `agent ${id} is retired: it gets no key`, reason: "agent_retired" });
    if (current.lifecycle.state === "retired") retired();
    if (current.guardrails.models.length === 0) {
      throw new AppError({ kind: "validation", detail: "the agent's guardrails name no model", reason: "agent_guardrails_need_models", errors: [{ field: "guardrails.models", message: "name at least one model before issuing the agent a key" }] });
    }
    const created = await keys.issue(ctx, projectId, {
      name: `agent ${current.name}`.slice(0, 100),
      description: `The key of agent ${id}; its scope and limits follow the agent's guardrails`,
      owner: current.owner,
      scopes: { models: current.guardrails.models, tools: current.guardrails.tools },
      limits: keyLimits(current.guardrails),
      ...(input.expiresAt ? { expiresAt: input.expiresAt } : {}),
    });
    // Recorded after the key exists. A key the agent does not end up naming would be governed by nothing
    // (never rescoped, never revoked with the agent): it is revoked before the request fails — also when
    // another request gave the agent its key meanwhile (both passed the check above).
    try {
      for (;;) {
        const cur = await this.load(ctx.principal.tenantId, projectId, id);
        if (cur.key?.keyId === created.id) break;
        if (cur.lifecycle.state === "retired") retired(); // retired meanwhile: the key just made is revoked below
        if (holdOf(cur, this.today())) held(cur); // blocked or disabled meanwhile (or its sunset came): likewise
        if (cur.key && cur.key.keyId !== dead) fail({ kind: "conflict", detail: `agent ${id} already has key ${cur.key.keyId}`, reason: "agent_has_key" });
        const next: AgentDoc = { ...unversioned(cur), key: { keyId: created.id, issuedAt: this.clock.now().toISOString() }, updatedAt: this.clock.now().toISOString(), updatedBy: ctx.principal.userId };
        try {
          await this.agents.replace(ctx, cur, next, { action: "agent.key.issue", event: "aigov.agent.key.issued.v1", data: { agentId: id, projectId, keyId: created.id } });
          break;
        } catch (err) {
          if (!(err instanceof AppError && err.error.kind === "preconditionFailed")) throw err;
        }
      }
    } catch (err) {
      // Unless the write took effect after all (a reply lost): then the agent names the key.
      const named = await this.load(ctx.principal.tenantId, projectId, id).then((a) => a.key?.keyId === created.id, () => false);
      if (!named) await keys.revoke(ctx, projectId, created.id, `issued for agent ${id} but not recorded on it (another key was, or the request failed)`);
      throw err;
    }
    return created;
  }

  /**
   * The agent's own key in step with the agent (docs/agents.md, "Blocked or disabled"): suspended by the
   * system (`suspendedBy: "agentHold"`) while the agent is blocked or disabled; resumed once it is neither
   * — only if the hold suspended it (a person's suspension stays). Asked after the agent's write: the agent
   * is the record, and a failure or crash between the two is finished by `sweepKeyHolds`. Idempotent.
   * True when the key changed.
   */
  async keyInStep(ctx: RequestContext, doc: AgentDoc): Promise<boolean> {
    if (!doc.key || !this.keys || doc.lifecycle.state === "retired") return false;
    const system = systemContext(doc.tenantId, HOLD_ACTOR, ctx.correlationId);
    const why = holdOf(doc, this.today());
    if (why) return this.keys.hold(system, doc.projectId, doc.key.keyId, holdReason(doc, why));
    return this.keys.release(system, doc.projectId, doc.key.keyId, `agent ${doc.id} is ${doc.lifecycle.state}, enabled${doc.provenance ? " and present at its source" : ""} again`);
  }

  /** The UTC date now (sunsets are dates: a sunset has come from 00:00 UTC of its date on). */
  private today(): string {
    return this.clock.now().toISOString().slice(0, 10);
  }

  /** Why the agent's key is held, as the refusal of resuming it or issuing a new one (undefined: not held). */
  heldRefusalOf(d: AgentDoc): { detail: string; reason: HeldReason } | undefined {
    return heldRefusal(d, this.today());
  }

  /** The agent whose own key this is, if any. */
  async holderOf(tenantId: string, projectId: string, keyId: string): Promise<AgentDoc | undefined> {
    for await (const d of this.agents.every(this.partition(tenantId, projectId), { filters: [{ field: "key.keyId", op: "=", value: keyId }] })) return d;
    return undefined;
  }

  /**
   * The hold's sweep (the agent sync timer): every blocked, disabled, removed-at-source or past-sunset
   * agent's key is suspended, and every key a hold suspended whose agent is none of these any more is
   * resumed — what a request left unfinished (a crash, a failure, a race between a block and an unblock, a
   * project locked when its agent was unblocked), and what no request does: a sunset coming (ADR 027).
   */
  async sweepKeyHolds(correlationId: string): Promise<{ held: number; released: number }> {
    const out = { held: 0, released: 0 };
    if (!this.keys) return out;
    const warn = (what: string, err: unknown) => console.warn(`agent key hold sweep: ${what}: ${err instanceof Error ? err.message : String(err)}`);
    const held = [
      { field: "lifecycle.state", op: "=" as const, value: "blocked" },
      { field: "enabled", op: "=" as const, value: false },
      { field: "sync.state", op: "=" as const, value: "removedAtSource" },
      // Deprecated ones: those whose sunset has come are held (keyInStep judges the date).
      { field: "lifecycle.state", op: "=" as const, value: "deprecated" },
    ];
    const today = this.today();
    for (const filter of held) {
      for await (const d of this.agents.every("all", { filters: [filter] })) {
        if (!d.key) continue;
        // A deprecated agent before its sunset holds nothing: its key is left alone (not even read).
        if (d.lifecycle.state === "deprecated" && !holdOf(d, today)) continue;
        try {
          if (await this.keyInStep(systemContext(d.tenantId, HOLD_ACTOR, correlationId), d)) out.held += 1;
        } catch (err) {
          warn(`agent ${d.id}`, err);
        }
      }
    }
    for await (const k of this.keys.held()) {
      try {
        const agent = await this.holderOf(k.tenantId, k.projectId, k.keyId);
        if (agent && !holdOf(agent, this.today()) && (await this.keyInStep(systemContext(k.tenantId, HOLD_ACTOR, correlationId), agent))) out.released += 1;
      } catch (err) {
        warn(`key ${k.keyId}`, err);
      }
    }
    return out;
  }

  /** Views with `provenance.lastSeenAt`: the last complete listing of the agent's region, when it held the agent. */
  async present(tenantId: string, docs: (AgentDoc & { _etag?: string })[]): Promise<Agent[]> {
    return this.seen(tenantId, docs.map((d) => this.agents.view(d)));
  }

  /** Set by the composition root once usage exists: last requests through the gateway (agents' lastUsedAt). */
  lastUse?: (tenantId: string, projectId: string) => Promise<{ agent: Record<string, string> } | undefined>;

  private async seen(tenantId: string, shown: Agent[]): Promise<Agent[]> {
    const used = new Map<string, Record<string, string> | undefined>();
    for (const projectId of new Set(shown.map((v) => v.projectId))) used.set(projectId, (await this.lastUse?.(tenantId, projectId))?.agent);
    const views = shown.map((v) => {
      const at = used.get(v.projectId)?.[v.id];
      return at ? { ...v, lastUsedAt: at } : v;
    });
    const ids = [...new Set(views.flatMap((v) => (v.provenance && v.sync?.state === "present" ? [v.provenance.connectionId] : [])))];
    if (!ids.length) return views;
    const connections = new Map<string, ConnectionDoc | undefined>();
    for (const cid of ids) connections.set(cid, await this.store.read<ConnectionDoc>({ tenantId, scopeId: "_tenant" }, cid));
    return views.map((v) => {
      const at = v.provenance && v.sync?.state === "present" ? connections.get(v.provenance.connectionId)?.regionsSeenAt?.[v.provenance.region] : undefined;
      // Seen only by a listing that finished after the agent was first recorded.
      return at && v.provenance && at >= v.provenance.firstSeenAt ? { ...v, provenance: { ...v.provenance, lastSeenAt: at } } : v;
    });
  }

  /** The guardrails' models and tools must name the project's (only those a PATCH sends: `sent`; all on create). */
  private async checkGuardrails(tenantId: string, projectId: string, guardrails: Guardrails, field: string, sent?: GuardrailsPatch): Promise<void> {
    parseOrThrow(Guardrails, guardrails, field.split(".")[0]!);
    if (!this.keys) return;
    const asked = { models: !sent || sent.models ? guardrails.models : [], tools: !sent || sent.tools ? guardrails.tools : [] };
    const unknown = await this.keys.unknownScopes(tenantId, projectId, asked);
    const errors = [
      ...unknown.models.map((m) => ({ field: `${field}.models.${guardrails.models.indexOf(m)}`, message: `model ${m} is not registered in this project` })),
      ...unknown.tools.map((t) => ({ field: `${field}.tools.${guardrails.tools.indexOf(t)}`, message: `${t} names no MCP server, tool or toolbox of this project` })),
    ];
    if (errors.length) throw new AppError({ kind: "validation", detail: "the guardrails name resources the project does not hold", errors });
  }

  /**
   * A change that makes the gateway serve an agent it did not (an activation, enabling it, giving it an
   * endpoint) is refused when the project already serves as many as the compiler takes: one more would be
   * left out at the gateway without a word (compiler.ts).
   */
  private async roomToServe(tenantId: string, projectId: string, current: AgentDoc, next: AgentDoc): Promise<void> {
    if (isServed(current, this.allowLoopback) || !isServed(next, this.allowLoopback)) return;
    const served = (await this.listAll(tenantId, projectId)).filter((d) => d.id !== current.id && isServed(d, this.allowLoopback)).length;
    if (served >= MAX_PROJECT_AGENTS) {
      fail({ kind: "conflict", detail: `the project's gateway already serves ${served} agents, the most it takes (${MAX_PROJECT_AGENTS}): retire or disable one first`, reason: "project_agent_limit" });
    }
  }

  private async writable(ctx: RequestContext, projectId: string): Promise<Project> {
    const project = await this.projects.get(ctx, projectId);
    if (!holdsOn(ctx.principal, project, PROJECT_MANAGERS)) fail({ kind: "forbidden", detail: "changing a project's agents needs TenantAdmin or ProjectAdmin" });
    return project;
  }
}

/** The agent as a list shows it: its card's record without the card (listAgents; GET the agent for the card). */
export function summaryOf(agent: Agent): AgentSummary {
  if (!agent.card) return agent;
  const { card: _card, document: _document, ...card } = agent.card;
  return { ...agent, card };
}

/** The guardrails after a merge patch: fields sent replace (lists as a whole), absent ones stay, a null limit goes. */
export function mergeGuardrails(current: Guardrails, patch: GuardrailsPatch): Guardrails {
  const limits: Guardrails["limits"] = { ...current.limits };
  for (const name of ["tokensPerMinute", "requestsPerMinute", "callsPerMinute"] as const) {
    const value = patch.limits?.[name];
    if (value === null) delete limits[name];
    else if (value !== undefined) limits[name] = value;
  }
  return {
    models: patch.models ?? current.models,
    tools: patch.tools ?? current.tools,
    limits,
    contentSafety: patch.contentSafety ?? current.contentSafety,
    dataClasses: patch.dataClasses ?? current.dataClasses,
  };
}

/** The agent's key limits from its guardrails. */
export const keyLimits = (g: Guardrails): AgentKeySpec["limits"] => ({
  ...(g.limits.tokensPerMinute ? { tokensPerMinute: g.limits.tokensPerMinute } : {}),
  ...(g.limits.requestsPerMinute ? { requestsPerMinute: g.limits.requestsPerMinute } : {}),
  // "project": the project's content safety alone; a level adds the key's own check on top.
  ...(g.contentSafety !== "project" ? { contentSafety: g.contentSafety } : {}),
});

