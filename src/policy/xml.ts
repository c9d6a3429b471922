/**
 * A tiny element tree the compiler builds first, then renders with xmlbuilder2 (the only place XML
 * text is produced, so every attribute and text value is escaped by the builder). The tree also
 * carries, per element, why it exists (control + scope), which becomes the explain output.
 */
import { create } from "xmlbuilder2";
import { type ArtifactRef } from "../ports/gateway.js";
import { type ControlId } from "./settings.js";

/** Where a setting came from. */
export type ScopeRef =
  | { level: "tenant" }
  | { level: "project"; projectId: string }
  | { level: "model"; projectId: string; modelId: string }
  | { level: "tier"; tierId: string };

/** `routing`: produced by the model registry data (models, backends, status), not by a setting. `tools`: by the tool registry (MCP servers, toolboxes, approvals, key tool scopes).
 * `agents`: by the agent registry (served agents, their guardrails, key agent scopes). `structure`: the document skeleton (policies, sections, base). */
export type ExplainControl = ControlId | "routing" | "structure" | "tools" | "agents";

export interface Why {
  control: ExplainControl;
  scope: ScopeRef;
  note?: string;
}

export interface ExplainEntry {
  /** The artifact, e.g. "policy:api/aigov-prj_x", "backend:aigov-pool-prj_x-gpt4o". */
  ref: ArtifactRef;
  /** XPath-like location of the element, e.g. "/policies/inbound/llm-token-limit[1]"; "/" for non-XML artifacts. */
  path: string;
  control: ExplainControl;
  scope: ScopeRef;
  note?: string;
}

export interface XNode {
  name: string;
  /** Attributes in the order the policy reference documents them. */
  attrs?: [string, string][];
  text?: string;
  children?: XNode[];
  why?: Why[];
}

export function el(name: string, attrs?: Record<string, string | number | boolean | undefined>, children?: XNode[], why?: Why | Why[]): XNode {
  const node: XNode = { name };
  if (attrs) {
    const list: [string, string][] = [];
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) list.push([k, String(v)]);
    if (list.length) node.attrs = list;
  }
  if (children?.length) node.children = children;
  if (why) node.why = Array.isArray(why) ? why : [why];
  return node;
}

export function textEl(name: string, text: string, attrs?: Record<string, string | number | boolean | undefined>, why?: Why | Why[]): XNode {
  const node = el(name, attrs, undefined, why);
  node.text = text;
  return node;
}

export function withWhy(node: XNode, why: Why | Why[]): XNode {
  return { ...node, why: Array.isArray(why) ? why : [why] };
}

/** A stable key for structurally equal subtrees (explanations ignored). */
export function canonical(node: XNode): string {
  return JSON.stringify(node, (k, v: unknown) => (k === "why" ? undefined : v));
}

const SERIALIZE = { headless: true, prettyPrint: true, indent: "    ", wellFormed: true } as const;

/** Renders the tree with xmlbuilder2 and lists the explanation of every element. */
export function render(root: XNode, ref: ArtifactRef): { xml: string; explain: ExplainEntry[] } {
  const doc = create();
  const explain: ExplainEntry[] = [];
  const visit = (parent: ReturnType<typeof create>, node: XNode, path: string, inherited: Why[]) => {
    const attrs: Record<string, string> = {};
    for (const [k, v] of node.attrs ?? []) attrs[k] = v;
    const e = parent.ele(node.name, attrs);
    if (node.text !== undefined) e.txt(node.text);
    const why = node.why ?? inherited;
    for (const w of why) explain.push({ ref, path, control: w.control, scope: w.scope, ...(w.note ? { note: w.note } : {}) });
    const seen = new Map<string, number>();
    for (const child of node.children ?? []) {
      const n = (seen.get(child.name) ?? 0) + 1;
      seen.set(child.name, n);
      const indexed = SECTIONS.has(child.name) && path === "/policies" ? `${path}/${child.name}` : `${path}/${child.name}[${n}]`;
      visit(e, child, indexed, why);
    }
  };
  visit(doc, root, `/${root.name}`, []);
  return { xml: doc.end(SERIALIZE), explain };
}

const SECTIONS = new Set(["inbound", "backend", "outbound", "on-error"]);
