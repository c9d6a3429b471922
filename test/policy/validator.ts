/**
 * A structural validator for compiled policy documents: an allow-list of the elements and attributes
 * the APIM policy reference documents (docs/gateway.md restates what the compiler relies on: the GenAI
 * policies, the classic ones, fragments, retry/forward-request in backend), each with the sections
 * APIM allows it in. Fragments are checked where they are included. The local gateway's loader is the
 * second, independent check: it runs what this validator accepts (golden and property tests load every
 * document there too).
 */
import { create } from "xmlbuilder2";
import { EXPRESSION_SHAPES, expressionShape } from "../../src/policy/expressions.js";
import { type GatewayArtifact } from "../../src/ports/gateway.js";

type Section = "inbound" | "backend" | "outbound" | "on-error";
const SECTIONS: Section[] = ["inbound", "backend", "outbound", "on-error"];
const ALL: Section[] = SECTIONS;

interface AttrRule {
  required?: boolean;
  /** Literal values must match; expressions are checked against the compiler's vocabulary. */
  pattern?: RegExp;
  /** The value must be a policy expression. */
  expression?: boolean;
  /** Expressions are not allowed (the reference says so). */
  noExpression?: boolean;
}

interface ElementRule {
  /** Sections where the element may appear (statements only). */
  sections?: Section[];
  attrs: Record<string, AttrRule>;
  /** Allowed child element names; "statements" = any statement allowed in the section. */
  children?: string[] | "statements";
  text?: boolean;
  /** A literal text value must match (cors origins, methods, header names). */
  textPattern?: RegExp;
  /** At most once per section (semantic cache, cors). */
  oncePerSection?: boolean;
}

const BOOL = /^(true|false)$/;
const INT = /^[0-9]+$/;
const EXISTS = /^(override|skip|append|delete)$/;

/** Statement elements: may appear directly in a section, in when/otherwise, in retry, or in a fragment. */
const STATEMENTS: Record<string, ElementRule> = {
  base: { sections: ALL, attrs: {} },
  "set-header": { sections: ALL, attrs: { name: { required: true, noExpression: false }, "exists-action": { pattern: EXISTS } }, children: ["value"] },
  "check-header": {
    sections: ["inbound"],
    attrs: {
      name: { required: true },
      "failed-check-httpcode": { required: true, pattern: INT },
      "failed-check-error-message": { required: true },
      "ignore-case": { required: true, pattern: BOOL },
    },
    children: ["value"],
  },
  "set-variable": { sections: ALL, attrs: { name: { required: true, noExpression: true }, value: { required: true } } },
  choose: { sections: ALL, attrs: {}, children: ["when", "otherwise"] },
  // A statement of its own too (Learn: set-status, every section), besides a child of return-response.
  "set-status": { sections: ALL, attrs: { code: { required: true, pattern: INT }, reason: {} } },
  "return-response": { sections: ALL, attrs: { "response-variable-name": {} }, children: ["set-status", "set-header", "set-body"] },
  "set-backend-service": { sections: ["inbound", "backend"], attrs: { "backend-id": {}, "base-url": {} } },
  "authentication-managed-identity": {
    sections: ["inbound"],
    attrs: { resource: { required: true }, "client-id": {}, "output-token-variable-name": {}, "ignore-error": { pattern: BOOL } },
  },
  "llm-token-limit": {
    sections: ["inbound"],
    attrs: {
      "counter-key": { required: true },
      "tokens-per-minute": { pattern: INT },
      "token-quota": { pattern: INT, noExpression: true },
      "token-quota-period": { pattern: /^(Hourly|Daily|Weekly|Monthly|Yearly)$/ },
      "estimate-prompt-tokens": { required: true, pattern: BOOL },
      "retry-after-header-name": { noExpression: true },
      "retry-after-variable-name": { noExpression: true },
      "remaining-quota-tokens-header-name": { noExpression: true },
      "remaining-quota-tokens-variable-name": { noExpression: true },
      "remaining-tokens-header-name": { noExpression: true },
      "remaining-tokens-variable-name": { noExpression: true },
      "tokens-consumed-header-name": { noExpression: true },
      "tokens-consumed-variable-name": { noExpression: true },
    },
  },
  "rate-limit-by-key": {
    sections: ["inbound"],
    attrs: {
      calls: { required: true },
      "renewal-period": { required: true },
      "counter-key": { required: true },
      "increment-condition": {},
      "increment-count": {},
      "retry-after-header-name": {},
      "retry-after-variable-name": {},
      "remaining-calls-header-name": {},
      "remaining-calls-variable-name": {},
      "total-calls-header-name": {},
    },
  },
  "llm-content-safety": {
    sections: ["inbound", "outbound"],
    attrs: {
      "backend-id": { required: true },
      "shield-prompt": { pattern: BOOL },
      "enforce-on-completions": { pattern: BOOL },
      "window-size": { pattern: INT },
      "window-overlap-size": { pattern: INT },
    },
    children: ["categories", "blocklists"],
  },
  "llm-semantic-cache-lookup": {
    sections: ["inbound"],
    oncePerSection: true,
    attrs: {
      "score-threshold": { required: true, pattern: /^(0(\.[0-9]+)?|1(\.0+)?)$/ },
      "embeddings-backend-id": { required: true },
      "embeddings-backend-auth": { required: true, pattern: /^system-assigned$/ },
      "ignore-system-messages": { pattern: BOOL },
      "max-message-count": { pattern: INT },
    },
    children: ["vary-by"],
  },
  "llm-semantic-cache-store": { sections: ["outbound"], oncePerSection: true, attrs: { duration: { required: true }, "cache-response": { pattern: BOOL } } },
  "llm-emit-token-metric": { sections: ["inbound"], attrs: { namespace: { noExpression: true } }, children: ["dimension"] },
  "include-fragment": { sections: ALL, attrs: { "fragment-id": { required: true, noExpression: true, pattern: /^([\w]+|[\w][\w-]+[\w])$/ } } },
  retry: {
    sections: ["backend"],
    attrs: { condition: { required: true, expression: true }, count: { required: true, pattern: INT }, interval: { required: true, pattern: INT }, "first-fast-retry": { pattern: BOOL } },
    children: "statements",
  },
  "rewrite-uri": { sections: ["inbound"], attrs: { template: { required: true, expression: true }, "copy-unmatched-params": { pattern: BOOL } } },
  "set-query-parameter": { sections: ["inbound", "backend"], attrs: { name: { required: true, noExpression: true }, "exists-action": { pattern: EXISTS } }, children: ["value"] },
  "set-body": { sections: ALL, attrs: {}, text: true },
  "forward-request": { sections: ["backend"], attrs: { "buffer-request-body": { pattern: BOOL }, timeout: { pattern: INT } } },
  // cors policy reference: inbound only, once per section, children in the documented order.
  cors: {
    sections: ["inbound"],
    oncePerSection: true,
    attrs: { "allow-credentials": { pattern: BOOL }, "terminate-unmatched-request": { pattern: BOOL } },
    children: ["allowed-origins", "allowed-methods", "allowed-headers", "expose-headers"],
  },
};

/** Child-only elements. */
const CHILDREN: Record<string, ElementRule> = {
  value: { attrs: {}, text: true },
  when: { attrs: { condition: { required: true, expression: true } }, children: "statements" },
  otherwise: { attrs: {}, children: "statements" },
  categories: { attrs: { "output-type": { pattern: /^(FourSeverityLevels|EightSeverityLevels)$/ } }, children: ["category"] },
  category: { attrs: { name: { required: true, pattern: /^(Hate|SelfHarm|Sexual|Violence)$/ }, threshold: { required: true, pattern: /^[0-7]$/ } } },
  blocklists: { attrs: {}, children: ["id"] },
  id: { attrs: {}, text: true },
  "vary-by": { attrs: {}, text: true },
  dimension: { attrs: { name: { required: true }, value: {} } },
  "allowed-origins": { attrs: {}, children: ["origin"] },
  // "The URI must include a scheme, host, and port" (the port may be left to the scheme's default).
  origin: { attrs: {}, text: true, textPattern: /^https?:\/\/[a-z0-9.-]+(:[0-9]{1,5})?$/ },
  "allowed-methods": { attrs: { "preflight-result-max-age": { pattern: INT } }, children: ["method"] },
  method: { attrs: {}, text: true, textPattern: /^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)$/ },
  "allowed-headers": { attrs: {}, children: ["header"] },
  "expose-headers": { attrs: {}, children: ["header"] },
  header: { attrs: {}, text: true, textPattern: /^[A-Za-z0-9-]+$/ },
};

const DEFAULT_DIMENSIONS = new Set(["API ID", "Operation ID", "Product ID", "User ID", "Subscription ID", "Location", "Gateway ID", "Backend ID"]);

/** Every element name the compiler may emit (root elements included). */
export const ALLOWED_ELEMENTS = new Set(["policies", "fragment", ...SECTIONS, ...Object.keys(STATEMENTS), ...Object.keys(CHILDREN)]);

interface DomNode {
  nodeType: number;
  nodeName: string;
  childNodes: ArrayLike<DomNode>;
  textContent: string | null;
  attributes?: ArrayLike<{ name: string; value: string }>;
  parentNode?: DomNode | null;
}

const elements = (n: DomNode) => Array.from(n.childNodes).filter((c) => c.nodeType === 1);
const attrsOf = (n: DomNode) => Array.from(n.attributes ?? []).map((a) => [a.name, a.value] as const);

export function parse(xml: string): DomNode {
  return create(xml).root().node as unknown as DomNode;
}

const SERIALIZE = { headless: true, prettyPrint: true, indent: "    ", wellFormed: true } as const;

/** Every `@(…)`/`@{…}` value in a document (attribute or text). */
export function expressionsIn(root: DomNode): string[] {
  const out: string[] = [];
  const walk = (n: DomNode) => {
    for (const [, v] of attrsOf(n)) if (isExpression(v)) out.push(v);
    const kids = elements(n);
    if (!kids.length && n.textContent && isExpression(n.textContent)) out.push(n.textContent);
    kids.forEach(walk);
  };
  walk(root);
  return out;
}

const isExpression = (v: string) => v.startsWith("@(") || v.startsWith("@{");

/** Checks a value: expressions must come from the compiler's vocabulary; literals must not look like code. */
function checkValue(where: string, v: string, rule: AttrRule | undefined, problems: string[]) {
  if (v.includes("{{")) problems.push(`${where}: named-value reference in "${v}"`);
  if (isExpression(v)) {
    if (rule?.noExpression) problems.push(`${where}: expressions are not allowed here`);
    if (!EXPRESSION_SHAPES.has(expressionShape(v))) problems.push(`${where}: unknown expression ${v}`);
    return;
  }
  if (v.startsWith("@")) problems.push(`${where}: literal starting with @: "${v}"`);
  if (rule?.expression) problems.push(`${where}: must be an expression`);
  if (rule?.pattern && !rule.pattern.test(v)) problems.push(`${where}: "${v}" does not match ${rule.pattern}`);
}

function checkElement(n: DomNode, path: string, section: Section | undefined, fragments: Map<string, DomNode>, problems: string[], seen: Map<string, number>) {
  const name = n.nodeName;
  const rule = STATEMENTS[name] ?? CHILDREN[name];
  if (!rule) {
    problems.push(`${path}: element <${name}> is not in the allow-list`);
    return;
  }
  if (section && rule.sections && !rule.sections.includes(section)) problems.push(`${path}: <${name}> is not allowed in ${section}`);
  if (rule.oncePerSection && section) {
    const k = `${section}:${name}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
    if ((seen.get(k) ?? 0) > 1) problems.push(`${path}: <${name}> may appear only once per section`);
  }
  const attrs = new Map(attrsOf(n));
  for (const [a, v] of attrs) {
    const ar = rule.attrs[a];
    if (!ar) problems.push(`${path}: attribute ${a} is not allowed on <${name}>`);
    checkValue(`${path}/@${a}`, v, ar, problems);
  }
  for (const [a, ar] of Object.entries(rule.attrs)) if (ar.required && !attrs.has(a)) problems.push(`${path}: <${name}> needs ${a}`);

  // Element-specific rules from the reference.
  if (name === "llm-token-limit") {
    if (!attrs.has("tokens-per-minute") && !attrs.has("token-quota")) problems.push(`${path}: llm-token-limit needs tokens-per-minute or token-quota`);
    if (attrs.has("token-quota") !== attrs.has("token-quota-period")) problems.push(`${path}: token-quota and token-quota-period go together`);
  }
  if (name === "rate-limit-by-key" && Number(attrs.get("renewal-period")) > 300) problems.push(`${path}: renewal-period above 300`);
  if (name === "set-backend-service" && attrs.has("backend-id") === attrs.has("base-url")) problems.push(`${path}: exactly one of backend-id or base-url`);
  if (name === "dimension" && !attrs.has("value") && !DEFAULT_DIMENSIONS.has(attrs.get("name") ?? "")) problems.push(`${path}: custom dimension needs a value`);
  if (name === "llm-emit-token-metric" && elements(n).filter((c) => c.nodeName === "dimension" && !DEFAULT_DIMENSIONS.has(attrsOf(c).find(([k]) => k === "name")?.[1] ?? "")).length > 5) {
    problems.push(`${path}: more than 5 custom dimensions`);
  }
  if (name === "cors") {
    const order = elements(n).map((k) => ["allowed-origins", "allowed-methods", "allowed-headers", "expose-headers"].indexOf(k.nodeName));
    if (order.some((o, i) => i > 0 && o <= order[i - 1]!)) problems.push(`${path}: cors children out of the documented order`);
    if (!order.includes(0) || !order.includes(2)) problems.push(`${path}: cors needs allowed-origins and allowed-headers`);
    // "Unexpected behavior if the cors policy is not the first policy in the inbound section" (common configuration issues).
    const parent = n.parentNode;
    if (!parent || parent.nodeName !== "inbound" || elements(parent)[0] !== n) problems.push(`${path}: cors must be the first statement of inbound`);
  }
  if (name === "choose") {
    const kids = elements(n);
    if (!kids.some((k) => k.nodeName === "when")) problems.push(`${path}: choose needs a when`);
    const otherwise = kids.findIndex((k) => k.nodeName === "otherwise");
    if (otherwise >= 0 && otherwise !== kids.length - 1) problems.push(`${path}: otherwise must come last`);
  }
  if (name === "set-variable" || name === "check-header" || name === "set-header") {
    /* names checked by attribute rules */
  }

  const kids = elements(n);
  if (rule.text) {
    if (kids.length) problems.push(`${path}: <${name}> holds text only`);
    checkValue(`${path}/text()`, n.textContent ?? "", rule.textPattern ? { pattern: rule.textPattern } : undefined, problems);
  } else if (!kids.length && (n.textContent ?? "").trim() !== "") {
    problems.push(`${path}: unexpected text in <${name}>`);
  }
  const counts = new Map<string, number>();
  for (const k of kids) {
    const i = (counts.get(k.nodeName) ?? 0) + 1;
    counts.set(k.nodeName, i);
    const kp = `${path}/${k.nodeName}[${i}]`;
    if (k.nodeName === "base") problems.push(`${kp}: base only as a direct child of a section`);
    if (rule.children === "statements") {
      if (!STATEMENTS[k.nodeName]) problems.push(`${kp}: <${k.nodeName}> is not a statement`);
    } else if (!rule.children?.includes(k.nodeName)) {
      problems.push(`${kp}: <${k.nodeName}> is not allowed inside <${name}>`);
    }
    if (k.nodeName === "include-fragment") checkInclude(k, kp, section, fragments, problems, seen);
    checkElement(k, kp, section, fragments, problems, seen);
  }
}

function checkInclude(n: DomNode, path: string, section: Section | undefined, fragments: Map<string, DomNode>, problems: string[], seen: Map<string, number>) {
  const id = attrsOf(n).find(([k]) => k === "fragment-id")?.[1] ?? "";
  const fragment = fragments.get(id);
  if (!fragment) {
    problems.push(`${path}: fragment ${id} is not among the artifacts`);
    return;
  }
  for (const [i, k] of elements(fragment).entries()) {
    const kp = `${path}{${id}}/${k.nodeName}[${i + 1}]`;
    if (k.nodeName === "base" || (SECTIONS as string[]).includes(k.nodeName) || k.nodeName === "include-fragment") problems.push(`${kp}: not allowed in a fragment`);
    else if (!STATEMENTS[k.nodeName]) problems.push(`${kp}: <${k.nodeName}> is not a statement`);
    checkElement(k, kp, section, fragments, problems, seen);
  }
}

/** Validates one policy document; returns problems (empty = valid). */
export function validatePolicy(xml: string, fragments: Map<string, DomNode> = new Map(), scope: "global" | "below-global" = "below-global"): string[] {
  const problems: string[] = [];
  let root: DomNode;
  try {
    root = parse(xml);
  } catch (e) {
    return [`not XML: ${(e as Error).message}`];
  }
  // xmlbuilder2's reader is lenient (e.g. about mismatched end tags): a document must also survive a
  // parse/serialize round trip unchanged.
  if (create(xml).end(SERIALIZE) !== xml) problems.push("document does not round-trip through the XML parser");
  if (root.nodeName !== "policies") return [...problems, `root is <${root.nodeName}>, expected <policies>`];
  const sections = elements(root);
  if (sections.map((s) => s.nodeName).join(",") !== SECTIONS.join(",")) problems.push(`sections are ${sections.map((s) => s.nodeName).join(",")}`);
  for (const s of sections) {
    const section = s.nodeName as Section;
    const path = `/policies/${section}`;
    const kids = elements(s);
    const bases = kids.filter((k) => k.nodeName === "base").length;
    const forwards = section === "backend" && kids.some((k) => k.nodeName === "retry" || k.nodeName === "forward-request");
    // The global scope has no parent; below it every section places its parent's statements once.
    const none = forwards || scope === "global";
    if (none ? bases !== 0 : bases !== 1) problems.push(`${path}: expected ${none ? "no" : "exactly one"} <base/>, found ${bases}`);
    // The instance baseline's answers to APIM's predefined errors come before anything a scope adds (ADR 023).
    if (section === "on-error" && scope !== "global" && kids[0]?.nodeName !== "base") problems.push(`${path}: must start with <base/>`);
    if (attrsOf(s).length) problems.push(`${path}: sections take no attributes`);
    const seen = new Map<string, number>();
    const counts = new Map<string, number>();
    for (const k of kids) {
      const i = (counts.get(k.nodeName) ?? 0) + 1;
      counts.set(k.nodeName, i);
      const kp = `${path}/${k.nodeName}[${i}]`;
      if (!STATEMENTS[k.nodeName]) {
        problems.push(`${kp}: <${k.nodeName}> is not a statement`);
        continue;
      }
      if (k.nodeName === "base") continue;
      if (k.nodeName === "include-fragment") checkInclude(k, kp, section, fragments, problems, seen);
      checkElement(k, kp, section, fragments, problems, seen);
    }
  }
  return problems;
}

/** Validates every policy and fragment among compiled artifacts. */
export function validateCompiled(artifacts: GatewayArtifact[]): string[] {
  const fragments = new Map<string, DomNode>();
  const problems: string[] = [];
  for (const a of artifacts) {
    if (a.kind !== "fragment") continue;
    try {
      const root = parse(a.xml);
      if (root.nodeName !== "fragment") problems.push(`fragment ${a.id}: root is <${root.nodeName}>`);
      if (create(a.xml).end(SERIALIZE) !== a.xml) problems.push(`fragment ${a.id}: does not round-trip`);
      if (!/^([\w]+|[\w][\w-]+[\w])$/.test(a.id) || a.id.length > 80) problems.push(`fragment ${a.id}: invalid id`);
      fragments.set(a.id, root);
    } catch (e) {
      problems.push(`fragment ${a.id}: not XML: ${(e as Error).message}`);
    }
  }
  for (const a of artifacts) {
    if (a.kind !== "policy") continue;
    for (const p of validatePolicy(a.xml, fragments, a.scope.type === "global" ? "global" : "below-global")) problems.push(`${a.scope.type}:${"apiId" in a.scope ? a.scope.apiId : "productId" in a.scope ? a.scope.productId : ""}: ${p}`);
  }
  problems.push(...checkEntities(artifacts));
  return problems;
}

/**
 * APIM refuses a policy whose API or product does not exist, and a product link to a missing API: every
 * scope a compiled policy names, and every API a product lists, must be among the artifacts. Entity
 * fields are checked against the documented limits (docs/gateway.md, "APIM rules the compiler follows",
 * APIs, products and subscriptions; REST apis/create-or-update).
 */
function checkEntities(artifacts: GatewayArtifact[]): string[] {
  const problems: string[] = [];
  const apis = new Set(artifacts.flatMap((a) => (a.kind === "api" ? [a.id] : [])));
  const products = new Set(artifacts.flatMap((a) => (a.kind === "product" ? [a.id] : [])));
  for (const a of artifacts) {
    if (a.kind === "policy") {
      const s = a.scope;
      if ((s.type === "api" || s.type === "operation") && !apis.has(s.apiId)) problems.push(`policy at api ${s.apiId}: no such API among the artifacts`);
      if (s.type === "product" && !products.has(s.productId)) problems.push(`policy at product ${s.productId}: no such product among the artifacts`);
    } else if (a.kind === "api") {
      if (a.displayName.length < 1 || a.displayName.length > 300) problems.push(`api ${a.id}: displayName must be 1-300 characters`);
      if (a.path.length > 400 || a.path.startsWith("/")) problems.push(`api ${a.id}: invalid path ${a.path}`);
      if (!/^[A-Za-z0-9-]+$/.test(a.subscriptionKeyHeaderName)) problems.push(`api ${a.id}: invalid key header`);
      for (const o of a.operations) {
        if (!/^[A-Z]+$/.test(o.method) || !o.urlTemplate.startsWith("/")) problems.push(`api ${a.id}: invalid operation ${o.id}`);
      }
      const routes = a.operations.map((o) => `${o.method} ${o.urlTemplate}`);
      if (new Set(routes).size !== routes.length) problems.push(`api ${a.id}: two operations with the same method and URL template`);
    } else if (a.kind === "product") {
      if (a.displayName.length < 1 || a.displayName.length > 300) problems.push(`product ${a.id}: displayName must be 1-300 characters`);
      if ((a.description ?? "").length > 1000) problems.push(`product ${a.id}: description over 1000 characters`);
      for (const api of a.apis) if (!apis.has(api)) problems.push(`product ${a.id}: links API ${api}, which is not among the artifacts`);
    }
  }
  const paths = artifacts.flatMap((a) => (a.kind === "api" ? [a.path.toLowerCase()] : []));
  if (new Set(paths).size !== paths.length) problems.push("two APIs share a path (APIM paths are case-insensitive)");
  return problems;
}
