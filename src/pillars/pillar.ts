import type { IdentityGrants } from "../policy/identity.js";
import type { Operation, ParsedRequest } from "../api/contract.js";
import type { ChangeWriter } from "../domain/changes.js";
import type { RequestContext } from "../domain/common.js";
import type { SettingsGuard } from "../domain/policy/settings-guard.js";
import type { Project } from "../domain/projects/schema.js";
import type { ProjectService } from "../domain/projects/service.js";
import type { CompilerInputIn } from "../policy/index.js";
import type { Clock } from "../ports/clock.js";
import type { SecretStore } from "../ports/secrets.js";
import type { Store } from "../ports/store.js";
import type { ApprovalService } from "../domain/approvals/service.js";
import type { DriveRequest } from "../domain/kernel/drive.js";
import type { InputContributor } from "../domain/policy/compiler-input.js";

/** What a pillar's service may use: the kernel's ports and the cross-cutting services it builds on. */
export interface PillarKit {
  store: Store;
  changes: ChangeWriter;
  clock: Clock;
  /** The control plane's secrets (signing keys, peppers, secrets only the control plane uses). */
  secrets: SecretStore;
  /** Provider keys the gateway sends upstream (read by its identity as Key Vault-backed named values). */
  providerSecrets: SecretStore;
  projects: ProjectService;
  settingsGuard: SettingsGuard;
  /** The approval engine (a pillar registers its subject type's settle handler). */
  approvals: ApprovalService;
  /** Local mode: outbound calls may reach loopback addresses (never anything else private). */
  allowLoopback: boolean;
  /** Whether a tenant may reach other clouds as the platform's own identity (AGENT_PLATFORM_IDENTITY_TENANTS). */
  platformIdentity(tenantId: string): boolean;
  /** What an operator granted the tenant at its gateway: its own identities, the Azure AI resources the gateway's own may call (policy/identity.ts). */
  gatewayGrants(tenantId: string): IdentityGrants;
  /** Test seams a test set (ServiceOverrides.pillarSeams), read on every use; undefined in production. */
  seam(name: string): unknown;
}

/** Virtual keys a pillar issues on its resources' behalf (an agent's own key), with the caller's rights. */
export interface PillarKeys {
  issue(ctx: RequestContext, projectId: string, spec: { name: string; description: string; owner: string; scopes: { models: string[]; tools: string[] }; limits: { tokensPerMinute?: number; requestsPerMinute?: number; contentSafety?: "low" | "medium" | "high" }; expiresAt?: string }): Promise<{ id: string; key: string } & Record<string, unknown>>;
  /** The key follows new scopes and limits (its subscription moves to the new profile's product). */
  rescope(ctx: RequestContext, projectId: string, keyId: string, scopes: { models: string[]; tools: string[] }, limits: { tokensPerMinute?: number; requestsPerMinute?: number; contentSafety?: "low" | "medium" | "high" }): Promise<void>;
  revoke(ctx: RequestContext, projectId: string, keyId: string, reason: string): Promise<void>;
  /** The key passes to another owner (its previous owner may no longer rotate, collect, suspend or resume it). */
  reassign(ctx: RequestContext, projectId: string, keyId: string, owner: string): Promise<void>;
  /** Whether the key still works or can again (active or suspended): false once revoked, expired or gone. */
  live(ctx: RequestContext, projectId: string, keyId: string): Promise<boolean>;
  /**
   * The key of an agent that is blocked or disabled is suspended (`suspendedBy: "agentHold"`; `ctx` a
   * system context): true when this suspended it, false when it was not active. Idempotent.
   */
  hold(ctx: RequestContext, projectId: string, keyId: string, reason: string): Promise<boolean>;
  /** The hold ends: the key is resumed if (and only if) the hold suspended it and nothing holds it still. Idempotent. */
  release(ctx: RequestContext, projectId: string, keyId: string, reason: string): Promise<boolean>;
  /** Every tenant's keys a hold suspended that nothing has resumed since (the hold's sweep). */
  held(): AsyncGenerator<{ tenantId: string; projectId: string; keyId: string }>;
  /** Scope entries that name nothing in the project. */
  unknownScopes(tenantId: string, projectId: string, scopes: { models: string[]; tools: string[] }): Promise<{ models: string[]; tools: string[] }>;
}

/** What the composition root gives a pillar once the cross-cutting services exist (no forward references). */
export interface PillarConnections {
  /** Asks for a system publish (live state a pillar contributes changed: the gateway must follow). */
  requestPublish(tenantId: string, cause: { by: `system:${string}`; reason: string; correlationId: string }): Promise<unknown>;
  keys: PillarKeys;
  /** The other pillars' runtimes (every pillar is built before any is connected). */
  pillar(name: string): PillarRuntime | undefined;
  /** When each resource of a project was last called through the gateway (usage rollups), by kind and name or id. */
  lastUse(tenantId: string, projectId: string): Promise<LastUse | undefined>;
}

/** Last calls through the gateway: `tool` by server name, `toolCall` by `<server>/<tool>`, `agent` by agent id, … */
export type LastUse = Record<"keys" | "model" | "tool" | "toolbox" | "agent" | "toolCall" | "toolboxCall", Record<string, string>>;

/** A project as the policy compiler sees it (what a pillar contributes to). */
export type ProjectInput = CompilerInputIn["projects"][number];

/** A pillar, built: its service and the hooks the cross-cutting modules call. */
export interface PillarRuntime<S = unknown> {
  service: S;
  /** Resources the pillar holds in a project (a project with any cannot be deleted); by kind when it holds several. */
  countDependents(tenantId: string, projectId: string): Promise<number | Record<string, number>>;
  /** The pillar's part of a project's compiler input (e.g. `models`), from the registry as it is. */
  compilerInput?(tenantId: string, project: Project, vaultUri: string | undefined): Promise<Partial<ProjectInput>>;
  /** Live state added at every compile, system publishes included (after key profiles and exemptions). */
  contributor?: InputContributor;
  /** Called once the publishing service exists. */
  connect?(connections: PillarConnections): void;
}

/** What an operation's handler answers. */
export interface RouteResult {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** An orchestration the result needs (started by the edge: routes that return one are `drives: true`). */
  drive?: DriveRequest | undefined;
}

/** One operation of a pillar and how its service answers it (no Functions types: the edge adapts). */
export interface PillarRoute<S> {
  op: Operation;
  /** The handler may return a drive request (the registration then gets a durable client). */
  drives?: boolean;
  handle(req: ParsedRequest<Operation>, ctx: RequestContext, service: S): Promise<RouteResult>;
}

/** Pairs an operation with its handler, keeping the handler's request typed by the operation. */
export function route<S, O extends Operation>(op: O, handle: (req: ParsedRequest<O>, ctx: RequestContext, service: S) => Promise<RouteResult>): PillarRoute<S> {
  return { op, handle: handle as PillarRoute<S>["handle"] };
}

/** A route whose result may need an orchestration started (a service's `Driven` result). */
export function drivenRoute<S, O extends Operation>(op: O, handle: (req: ParsedRequest<O>, ctx: RequestContext, service: S) => Promise<RouteResult>): PillarRoute<S> {
  return { op, drives: true, handle: handle as PillarRoute<S>["handle"] };
}

/** The CLI's tools, for a pillar's commands. */
export interface PillarCliKit<Client> {
  program: import("commander").Command;
  client(): Client;
  print(value: unknown, columns?: string[]): void;
  render(format: "table", value: unknown, columns: string[]): void;
  out(text: string): void;
  err(text: string): void;
  json(): boolean;
  readJson(path: string): unknown;
}

/**
 * One pillar (models now; tools and agents next): its operations with their handlers, the service
 * behind them, its commands, and examples of valid bodies. The composition root, the operations
 * list, the function registrations, the compiler input, project deletion, the CLI and the test
 * walks all loop over the pillar list (src/pillars/index.ts). See docs/pillars.md.
 */
export interface Pillar<S = unknown> {
  name: string;
  routes: readonly PillarRoute<S>[];
  /** Builds the runtime on first use (the service loads lazily: not on the cold-start path). */
  build(kit: PillarKit): Promise<PillarRuntime<S>>;
  /** A valid body for each operation that takes one (`unique` varies names), for walks and docs. */
  examples: Readonly<Record<string, (unique: string) => unknown>>;
  /** Adds the pillar's commands to the CLI. */
  cli?(kit: PillarCliKit<import("../client/index.js").AigovClient>): void;
}
