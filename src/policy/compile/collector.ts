/**
 * The collector every artifact family writes into: the compiler input and the tenant's gateway
 * names, the artifacts emitted so far (each family appends; index.ts sorts and size-checks them at
 * the end) and the explanations of the artifacts that are not XML. Also the helpers every family
 * shares: scopes and explanations of resolved settings, the gateway-tier check, the 403 response.
 *
 * A family is a sibling file with functions that take the collector first (project.ts, tiers.ts,
 * limits.ts, models.ts, routing.ts, backends.ts, genai.ts, fragments.ts); a new pillar's compiler is
 * one more such file, called from project.ts.
 */
import {
  artifactRef,
  type ApiArtifact,
  type ArtifactRef,
  type BackendArtifact,
  type FragmentArtifact,
  type NamedValueArtifact,
  type PolicyArtifact,
  type PolicyScope,
  type ProductArtifact,
} from "../../ports/gateway.js";
import { PolicyCompileError } from "../errors.js";
import { DATA_CLASS_OUTSIDE } from "../expressions.js";
import { type CompilerInput, type KeyTier } from "../input.js";
import { gatewayNames, type GatewayNames, VAR } from "../names.js";
import { type ControlId, type Resolved, type SettingLevel } from "../settings.js";
import { el, type ExplainEntry, render, type ScopeRef, textEl, type Why, type XNode } from "../xml.js";

export const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
export const sortBy = <T>(xs: readonly T[], key: (x: T) => string) => [...xs].sort((a, b) => byCodePoint(key(a), key(b)));

export const TENANT: ScopeRef = { level: "tenant" };
export const STRUCTURE: Why = { control: "structure", scope: TENANT };

export const JSON_ERROR = (code: string, message: string) => JSON.stringify({ error: { code, message } });

/** A 403 (data_class_not_allowed) unless the request declares exactly one of `classes` (x-aigov-data-class). */
export function dataClassGate(classes: readonly string[], message: string, why: Why): XNode[] {
  return [
    el("set-variable", { name: VAR.dataClasses, value: classes.join("|") }, undefined, why),
    el("choose", undefined, [el("when", { condition: DATA_CLASS_OUTSIDE }, [forbidden("data_class_not_allowed", message, why)])], why),
  ];
}

/**
 * Policies that read the request body as JSON, between VAR.bodyState "reading" and "read": an error
 * between the two is a body that is not a JSON object (BODY_UNREADABLE), answered 400 in on-error.
 */
export function readingBody(reads: XNode[]): XNode[] {
  return [el("set-variable", { name: VAR.bodyState, value: "reading" }), ...reads, el("set-variable", { name: VAR.bodyState, value: "read" })];
}

export const POLICY_SIZE_LIMIT_BYTES = 512 * 1024;
export const CONSUMPTION_POLICY_SIZE_LIMIT_BYTES = 16 * 1024;
/** The most a policy document (with the fragments it includes) may weigh on the tenant's gateway tier. */
export const policySizeLimit = (c: { input: { gatewayTier: string } }) => (c.input.gatewayTier === "consumption" ? CONSUMPTION_POLICY_SIZE_LIMIT_BYTES : POLICY_SIZE_LIMIT_BYTES);

export interface CompiledPolicy {
  artifact: PolicyArtifact;
  explain: ExplainEntry[];
  /** Ids of the fragments the policy includes (counted in its size). */
  fragments: string[];
}

export interface CompiledFragment {
  artifact: FragmentArtifact;
  explain: ExplainEntry[];
}

export class Collector {
  readonly namedValues = new Map<string, NamedValueArtifact>();
  readonly backends: BackendArtifact[] = [];
  readonly pools: BackendArtifact[] = [];
  /** Ids of the shared service backends already emitted (content safety, embeddings). */
  readonly serviceBackends = new Set<string>();
  readonly fragments = new Map<string, CompiledFragment>();
  readonly policies: CompiledPolicy[] = [];
  readonly apis: ApiArtifact[] = [];
  readonly products: ProductArtifact[] = [];
  /** Explanations of backends, pools, named values, APIs and products, by artifact ref. */
  readonly nonXmlExplain = new Map<ArtifactRef, ExplainEntry[]>();
  /** The tenant's key tiers, sorted by id. */
  readonly tiers: KeyTier[];
  readonly tierById: Map<string, KeyTier>;
  /** "<ownerProjectId>/<tierId>" → the projects that accept the owner's keys in that tier, sorted. */
  readonly acceptedBy = new Map<string, string[]>();
  readonly n: GatewayNames;

  constructor(readonly input: CompilerInput) {
    this.n = gatewayNames(input.tenantId, input.gatewayKey);
    this.tiers = sortBy(input.keyTiers, (t) => t.id);
    this.tierById = new Map(this.tiers.map((t) => [t.id, t]));
    for (const p of input.projects) {
      for (const s of p.sharedKeyTiers) {
        const k = `${s.projectId}/${s.tierId}`;
        this.acceptedBy.set(k, [...(this.acceptedBy.get(k) ?? []), p.id].sort(byCodePoint));
      }
    }
  }

  explainArtifact(entry: ExplainEntry) {
    const list = this.nonXmlExplain.get(entry.ref);
    if (list) list.push(entry);
    else this.nonXmlExplain.set(entry.ref, [entry]);
  }

  addPolicy(scope: PolicyScope, doc: XNode, fragments: string[]) {
    const artifact: PolicyArtifact = { kind: "policy", scope, xml: "" };
    const ref = artifactRef(artifact);
    const { xml, explain } = render(doc, ref);
    artifact.xml = xml;
    this.policies.push({ artifact, explain, fragments });
  }

  /** Adds a fragment once (fragments are constant: the first caller's content is every caller's). */
  addFragment(id: string, description: string, body: XNode[], why: Why) {
    if (this.fragments.has(id)) return;
    const artifact: FragmentArtifact = { kind: "fragment", id, description, xml: "" };
    const { xml, explain } = render(el("fragment", undefined, body, why), artifactRef(artifact));
    artifact.xml = xml;
    this.fragments.set(id, { artifact, explain });
  }

  // -------------------------------------------------------------------------------------------
  // Scopes and explanations

  scopeOf(level: SettingLevel, projectId: string, modelId?: string): ScopeRef {
    if (level === "tenant") return TENANT;
    if (level === "project" || modelId === undefined) return { level: "project", projectId };
    return { level: "model", projectId, modelId };
  }

  /** Why an element exists: the control and the scope its resolved value came from. */
  why(control: ControlId, r: Resolved<unknown>, projectId: string, modelId?: string, note?: string): Why {
    return { control, scope: this.scopeOf(r.scope, projectId, modelId), ...(note ? { note } : {}) };
  }

  /** Throws unsupportedOnTier when the gateway tier (Consumption) lacks the policy a control needs. */
  requireTier(control: ControlId, policy: string, why: Why) {
    if (this.input.gatewayTier === "consumption") this.unsupported(control, policy, why.scope);
  }

  private unsupported(control: ControlId, policy: string, scope: ScopeRef): never {
    const where =
      scope.level === "tenant"
        ? "tenant"
        : scope.level === "tier"
          ? `tier ${scope.tierId}`
          : scope.level === "project"
            ? `project ${scope.projectId}`
            : `model ${scope.projectId}/${scope.modelId}`;
    const tier = this.input.gatewayTier;
    throw new PolicyCompileError("unsupportedOnTier", `${control} (set at ${where}) needs ${policy}, which the ${tier} gateway tier does not support`, [
      { path: control, message: `${policy} is not available on the ${tier} tier` },
    ]);
  }
}

/** A 403 with a JSON error body. */
/** The gateway answers itself: a status and a JSON body (a literal, or a policy expression). */
export function jsonResponse(status: number, reasonPhrase: string, body: string, why?: Why | Why[]): XNode {
  return el(
    "return-response",
    undefined,
    [
      el("set-status", { code: status, reason: reasonPhrase }),
      el("set-header", { name: "Content-Type", "exists-action": "override" }, [textEl("value", "application/json")]),
      textEl("set-body", body),
    ],
    why,
  );
}

export function forbidden(code: string, message: string, why: Why | Why[]): XNode {
  return jsonResponse(403, "Forbidden", JSON_ERROR(code, message), why);
}

export function invalid(control: ControlId, message: string): PolicyCompileError {
  return new PolicyCompileError("invalidInput", `${control}: ${message}`, [{ path: control, message }]);
}
