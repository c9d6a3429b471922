/**
 * Turns policy XML (a <policies> document or a <fragment>) into runnable steps. Every element,
 * attribute and child is checked against the element definitions (elements/*.ts: what the policy
 * reference documents for each, in which sections); anything the local gateway does not implement is
 * a {@link LoadIssue} naming the file and line, and the document does not load. Expressions are
 * compiled here, so a bad expression is a load error too, not a request-time surprise.
 */
import { compileExpression, ExpressionError } from "../expressions/engine.js";
import { CsException } from "../expressions/values.js";
import { parseXml, type XmlSyntaxError, type XmlElement } from "../xml.js";
import { ELEMENTS } from "./elements/index.js";
import { PolicyError, SECTIONS, type LoadContext, type LoadIssue, type Run, type Section, type Step } from "./types.js";

/** An attribute or text value: a literal, or an expression evaluated per request. */
export type Value = (r: Run) => unknown;

export interface AttrRule {
  required?: boolean;
  /** Policy expressions are allowed (the reference says so). */
  expr?: boolean;
  /** Literal values must match. */
  pattern?: RegExp;
}

export interface ElementDef {
  sections: readonly Section[];
  attrs: Record<string, AttrRule>;
  /** Child element names this element takes (beyond statements, when `statements` is set). */
  children?: readonly string[];
  /** The element holds policy statements (choose/when, retry). */
  statements?: boolean;
  load(el: XmlElement, l: ElementLoader): Step;
}

export interface PolicyDocument {
  file: string;
  sections: Map<Section, Step[]>;
}

export function loadPolicyDocument(file: string, xml: string, ctx: Omit<LoadContext, "file" | "section" | "issue">, issues: LoadIssue[]): PolicyDocument | undefined {
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch (err) {
    const e = err as XmlSyntaxError;
    issues.push({ file, line: e.line ?? 1, column: e.column ?? 1, message: `not well-formed XML: ${e.message}` });
    return undefined;
  }
  const before = issues.length;
  if (root.name !== "policies") {
    issues.push({ file, line: root.line, column: root.column, message: `the root element must be <policies>, not <${root.name}>` });
    return undefined;
  }
  const doc: PolicyDocument = { file, sections: new Map() };
  for (const child of root.children) {
    if (!(SECTIONS as readonly string[]).includes(child.name)) {
      issues.push({ file, line: child.line, column: child.column, message: `<${child.name}> is not a policy section (inbound, backend, outbound, on-error)` });
      continue;
    }
    const section = child.name as Section;
    if (doc.sections.has(section)) {
      issues.push({ file, line: child.line, column: child.column, message: `section <${section}> appears twice` });
      continue;
    }
    const loader = new ElementLoader({ ...ctx, file, section, issue: (el, message) => issues.push({ file, line: el.line, column: el.column, message }) });
    doc.sections.set(section, loader.statements(child.children, child));
    loader.checkOncePerSection(child);
  }
  return issues.length === before ? doc : undefined;
}

/** Parses a fragment file; its statements are loaded where it is included (per section). */
export function parseFragment(file: string, xml: string, issues: LoadIssue[]): XmlElement | undefined {
  try {
    const root = parseXml(xml);
    if (root.name !== "fragment") {
      issues.push({ file, line: root.line, column: root.column, message: `a policy fragment's root element must be <fragment>, not <${root.name}>` });
      return undefined;
    }
    return root;
  } catch (err) {
    const e = err as XmlSyntaxError;
    issues.push({ file, line: e.line ?? 1, column: e.column ?? 1, message: `not well-formed XML: ${e.message}` });
    return undefined;
  }
}

export class ElementLoader {
  constructor(readonly ctx: LoadContext) {}

  get section(): Section {
    return this.ctx.section;
  }

  issue(el: XmlElement, message: string): void {
    this.ctx.issue(el, message);
  }

  /** Statements of a section, a when/otherwise or a retry. */
  statements(children: XmlElement[], parent: XmlElement): Step[] {
    if (parent.text.trim()) this.issue(parent, `<${parent.name}> holds text; only policy elements are allowed here`);
    const steps: Step[] = [];
    for (const el of children) {
      // Preflights look for cors among inbound's own children (the reference's "direct children of the inbound element").
      if (el.name === "cors" && parent.name !== "inbound") this.issue(el, "the local gateway runs <cors> only as a direct child of <inbound>");
      const step = this.statement(el);
      if (step) steps.push(step);
    }
    return steps;
  }

  private statement(el: XmlElement): Step | undefined {
    const def = ELEMENTS[el.name];
    if (!def) {
      this.issue(el, `<${el.name}> is not a policy the local gateway implements`);
      return undefined;
    }
    if (!def.sections.includes(this.section)) {
      this.issue(el, `<${el.name}> is not allowed in the ${this.section} section`);
      return undefined;
    }
    for (const name of el.attrs.keys()) {
      if (!def.attrs[name]) this.issue(el, `<${el.name}> has no attribute '${name}'`);
    }
    for (const [name, rule] of Object.entries(def.attrs)) {
      if (rule.required && !el.attrs.has(name)) this.issue(el, `<${el.name}> needs the attribute '${name}'`);
    }
    if (!def.statements) {
      for (const c of el.children) if (!def.children?.includes(c.name)) this.issue(c, `<${c.name}> is not allowed inside <${el.name}>`);
    }
    try {
      return def.load(el, this);
    } catch (err) {
      if (err instanceof LoadFailure) return undefined;
      throw err;
    }
  }

  /** llm-semantic-cache-lookup/-store and cors may appear once per section. */
  checkOncePerSection(section: XmlElement): void {
    const seen = new Map<string, number>();
    const walk = (els: XmlElement[]) => {
      for (const el of els) {
        if (el.name === "llm-semantic-cache-lookup" || el.name === "llm-semantic-cache-store" || el.name === "cors") seen.set(el.name, (seen.get(el.name) ?? 0) + 1);
        if (el.name === "choose" || el.name === "when" || el.name === "otherwise") walk(el.children);
      }
    };
    walk(section.children);
    for (const [name, n] of seen) if (n > 1) this.issue(section, `<${name}> may appear only once in a section (found ${n})`);
  }

  /** The value of an attribute (undefined when absent). */
  attr(el: XmlElement, name: string): Value | undefined {
    const raw = el.attrs.get(name);
    if (raw === undefined) return undefined;
    const rule = ELEMENTS[el.name]?.attrs[name] ?? CHILD_ATTRS[`${el.name}@${name}`] ?? {};
    return this.value(el, raw, rule, `attribute '${name}'`);
  }

  /** A literal-only attribute (no expressions). */
  literal(el: XmlElement, name: string): string | undefined {
    const raw = el.attrs.get(name);
    if (raw !== undefined && isExpression(raw)) this.issue(el, `'${name}' of <${el.name}> does not allow policy expressions`);
    return raw;
  }

  /** An integer literal attribute, with bounds. */
  int(el: XmlElement, name: string, min: number, max: number): number | undefined {
    const raw = this.literal(el, name);
    if (raw === undefined) return undefined;
    if (!/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      this.issue(el, `'${name}' of <${el.name}> must be an integer from ${min} to ${max}`);
      return undefined;
    }
    return Number(raw);
  }

  /** The text of an element (<value>, <set-body>, <vary-by>) as a value. */
  text(el: XmlElement, allowExpr = true): Value {
    return this.value(el, el.text.trim(), { expr: allowExpr }, `the text of <${el.name}>`);
  }

  value(el: XmlElement, raw: string, rule: AttrRule, what: string): Value {
    if (isExpression(raw)) {
      if (!rule.expr) {
        this.issue(el, `${what} of <${el.name}> does not allow policy expressions`);
        return () => raw;
      }
      const block = raw.startsWith("@{");
      try {
        const compiled = compileExpression(raw.slice(2, -1), block ? "block" : "single");
        return (r) => {
          try {
            return compiled(r.env);
          } catch (err) {
            if (err instanceof CsException) throw new PolicyError("expression", "ExpressionValueEvaluationFailure", `Expression evaluation failed. ${err.message} (${this.ctx.file}:${el.line}, ${what})`);
            throw err;
          }
        };
      } catch (err) {
        if (err instanceof ExpressionError) {
          this.ctx.issue({ ...el, line: el.line + err.line, column: err.line === 0 ? el.column : err.column + 1 }, `${what} of <${el.name}>: ${err.message}`);
          return () => raw;
        }
        throw err;
      }
    }
    if (rule.pattern && !rule.pattern.test(raw)) this.issue(el, `${what} of <${el.name}> has a value the policy does not accept: '${raw.slice(0, 60)}'`);
    return () => raw;
  }

  /** Reports and abandons the element being loaded. */
  fail(el: XmlElement, message: string): never {
    this.issue(el, message);
    throw new LoadFailure();
  }
}

class LoadFailure extends Error {}

/** Attribute rules of child elements that are not statements (set-status in return-response, …). */
export const CHILD_ATTRS: Record<string, AttrRule> = {
  "set-status@code": { expr: true },
  "set-status@reason": { expr: true },
  "when@condition": { expr: true },
  "category@name": { pattern: /^(Hate|SelfHarm|Sexual|Violence)$/ },
  "category@threshold": { pattern: /^[0-7]$/ },
  "categories@output-type": { pattern: /^(FourSeverityLevels|EightSeverityLevels)$/ },
  "dimension@name": {},
  "dimension@value": { expr: true },
};

export function isExpression(raw: string): boolean {
  return (raw.startsWith("@(") && raw.endsWith(")")) || (raw.startsWith("@{") && raw.endsWith("}"));
}

/** A boolean-valued Value (literal true/false or an expression). */
export function asBool(v: unknown, what: string): boolean {
  if (typeof v === "boolean") return v;
  if (v === "true" || v === "True") return true;
  if (v === "false" || v === "False") return false;
  throw new PolicyError("expression", "ExpressionValueEvaluationFailure", `${what} must be a boolean, got '${String(v)}'`);
}

export function asInt(v: unknown, what: string): number {
  const n = typeof v === "number" ? v : typeof v === "string" && /^-?[0-9]+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n)) throw new PolicyError("expression", "ExpressionValueEvaluationFailure", `${what} must be an integer, got '${String(v)}'`);
  return n;
}

export function asString(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "object" && v !== null && "toCsString" in v && typeof (v as { toCsString: unknown }).toCsString === "function") return (v as { toCsString(): string }).toCsString();
  return String(v);
}
