// ASP.NET Core route templates, as the Azure Functions host uses them for HTTP triggers.
//
// Supported: literal segments (case-insensitive), `{p}`, optional `{p?}`, defaults `{p=x}`,
// inline constraints (`{p:int}`, `{p:int:min(1)}`, `{p:regex(...)}`, ...), catch-all `{*p}` /
// `{**p}` and complex segments mixing literals and parameters (`keys/{keyId}:rotate`,
// `{name}.{ext?}`). Braces are escaped by doubling them (`{{`, `}}`), also inside regexes.
//
// Precedence follows ASP.NET's RoutePrecedence.ComputeInbound, segment by segment:
// 1 literal, 2 constrained parameter or complex segment, 3 parameter, 4 constrained
// catch-all, 5 catch-all; lower wins, then registration order.

export class RouteTemplateError extends Error {
  constructor(template: string, message: string) {
    super(`Invalid route template "${template}": ${message}`);
    this.name = "RouteTemplateError";
  }
}

export interface RouteConstraint {
  /** e.g. "int", "regex(^a$)" */
  text: string;
  test(value: string): boolean;
}

export interface LiteralPart {
  kind: "literal";
  text: string;
}

export interface ParameterPart {
  kind: "parameter";
  name: string;
  optional: boolean;
  catchAll: boolean;
  defaultValue?: string;
  constraints: RouteConstraint[];
}

export type RoutePart = LiteralPart | ParameterPart;

export interface RouteSegment {
  parts: RoutePart[];
  /**
   * For complex segments (more than one part): anchored, case-insensitive matchers tried in
   * order, each with its parameters in capture-group order.
   */
  patterns?: { re: RegExp; params: ParameterPart[] }[];
}

export interface RouteTemplate {
  template: string;
  segments: RouteSegment[];
  /** One digit per segment, see file header. */
  precedence: number[];
}

const INT32_MIN = -2147483648n;
const INT32_MAX = 2147483647n;
const INT64_MIN = -9223372036854775808n;
const INT64_MAX = 9223372036854775807n;

function parseInteger(value: string, min: bigint, max: bigint): bigint | null {
  if (!/^[+-]?\d+$/.test(value)) return null;
  const n = BigInt(value);
  return n < min || n > max ? null : n;
}

const FLOAT_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const GUID_RES = [
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  /^[0-9a-f]{32}$/i,
  /^\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}$/i,
  /^\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)$/i,
];

function intArg(template: string, name: string, arg: string | undefined): number {
  const n = arg === undefined ? NaN : Number(arg.trim());
  if (!Number.isInteger(n)) {
    throw new RouteTemplateError(template, `constraint "${name}" needs an integer argument, got "${arg ?? ""}"`);
  }
  return n;
}

function bigArg(template: string, name: string, arg: string | undefined): bigint {
  const v = arg === undefined ? null : parseInteger(arg.trim(), INT64_MIN, INT64_MAX);
  if (v === null) throw new RouteTemplateError(template, `constraint "${name}" needs an integer argument, got "${arg ?? ""}"`);
  return v;
}

function createConstraint(template: string, name: string, args: string | undefined): RouteConstraint {
  const text = args === undefined ? name : `${name}(${args})`;
  const key = name.toLowerCase();
  const split = (): string[] => (args ?? "").split(",");
  let test: (v: string) => boolean;
  switch (key) {
    case "int":
      test = (v) => parseInteger(v, INT32_MIN, INT32_MAX) !== null;
      break;
    case "long":
      test = (v) => parseInteger(v, INT64_MIN, INT64_MAX) !== null;
      break;
    case "bool":
      test = (v) => /^(true|false)$/i.test(v);
      break;
    case "guid":
      test = (v) => GUID_RES.some((re) => re.test(v));
      break;
    case "alpha":
      test = (v) => /^[a-z]*$/i.test(v);
      break;
    case "double":
    case "float":
    case "decimal":
      test = (v) => FLOAT_RE.test(v);
      break;
    case "datetime":
      test = (v) => v.trim() !== "" && !Number.isNaN(Date.parse(v));
      break;
    case "required":
      test = (v) => v !== "";
      break;
    case "minlength": {
      const n = intArg(template, name, args);
      test = (v) => v.length >= n;
      break;
    }
    case "maxlength": {
      const n = intArg(template, name, args);
      test = (v) => v.length <= n;
      break;
    }
    case "length": {
      const parts = split();
      if (parts.length === 1) {
        const n = intArg(template, name, parts[0]);
        test = (v) => v.length === n;
      } else if (parts.length === 2) {
        const lo = intArg(template, name, parts[0]);
        const hi = intArg(template, name, parts[1]);
        test = (v) => v.length >= lo && v.length <= hi;
      } else {
        throw new RouteTemplateError(template, `constraint "length" takes one or two arguments`);
      }
      break;
    }
    case "min": {
      const n = bigArg(template, name, args);
      test = (v) => {
        const x = parseInteger(v, INT64_MIN, INT64_MAX);
        return x !== null && x >= n;
      };
      break;
    }
    case "max": {
      const n = bigArg(template, name, args);
      test = (v) => {
        const x = parseInteger(v, INT64_MIN, INT64_MAX);
        return x !== null && x <= n;
      };
      break;
    }
    case "range": {
      const parts = split();
      if (parts.length !== 2) throw new RouteTemplateError(template, `constraint "range" takes two arguments`);
      const lo = bigArg(template, name, parts[0]);
      const hi = bigArg(template, name, parts[1]);
      test = (v) => {
        const x = parseInteger(v, INT64_MIN, INT64_MAX);
        return x !== null && x >= lo && x <= hi;
      };
      break;
    }
    case "regex": {
      if (args === undefined) throw new RouteTemplateError(template, `constraint "regex" needs a pattern`);
      let re: RegExp;
      try {
        // ASP.NET: RegexOptions.CultureInvariant | IgnoreCase, IsMatch (not anchored implicitly).
        re = new RegExp(args, "i");
      } catch (err) {
        throw new RouteTemplateError(template, `bad regex constraint "${args}": ${(err as Error).message}`);
      }
      test = (v) => re.test(v);
      break;
    }
    default:
      throw new RouteTemplateError(template, `the constraint reference "${name}" could not be resolved`);
  }
  return { text, test };
}

/** Finds the `)` closing constraint arguments that start at `from` (just after `(`). */
function findArgsEnd(s: string, from: number): number {
  const isEnd = (j: number): boolean => {
    const next = s[j + 1];
    return next === undefined || next === ":" || next === "=" || (next === "?" && j + 2 === s.length);
  };
  // Balanced parentheses first (regexes with groups), skipping backslash escapes...
  let depth = 1;
  for (let j = from; j < s.length; j++) {
    const c = s[j];
    if (c === "\\") {
      j++;
    } else if (c === "(") {
      depth++;
    } else if (c === ")" && --depth === 0) {
      if (isEnd(j)) return j;
      break;
    }
  }
  // ...else the first `)` that is followed by something that can end the constraint.
  for (let j = from; j < s.length; j++) {
    if (s[j] !== ")") continue;
    const next = s[j + 1];
    if (next === undefined || next === ":" || next === "=" || (next === "?" && j + 2 === s.length)) return j;
  }
  return -1;
}

function parseParameter(template: string, raw: string): ParameterPart {
  let s = raw;
  let catchAll = false;
  if (s.startsWith("**")) {
    catchAll = true;
    s = s.slice(2);
  } else if (s.startsWith("*")) {
    catchAll = true;
    s = s.slice(1);
  }
  let i = 0;
  while (i < s.length && s[i] !== ":" && s[i] !== "=" && !(s[i] === "?" && i === s.length - 1)) i++;
  const name = s.slice(0, i).trim();
  if (name === "" || /[{}/*?=:]/.test(name)) {
    throw new RouteTemplateError(template, `invalid parameter name in "{${raw}}"`);
  }
  const constraints: RouteConstraint[] = [];
  while (s[i] === ":") {
    i++;
    const start = i;
    while (i < s.length && s[i] !== "(" && s[i] !== ":" && s[i] !== "=" && !(s[i] === "?" && i === s.length - 1)) i++;
    const cname = s.slice(start, i);
    if (cname === "") throw new RouteTemplateError(template, `empty constraint in "{${raw}}"`);
    let args: string | undefined;
    if (s[i] === "(") {
      const end = findArgsEnd(s, i + 1);
      if (end < 0) throw new RouteTemplateError(template, `unterminated constraint arguments in "{${raw}}"`);
      args = s.slice(i + 1, end);
      i = end + 1;
    }
    constraints.push(createConstraint(template, cname, args));
  }
  let optional = false;
  let defaultValue: string | undefined;
  if (s[i] === "=") {
    defaultValue = s.slice(i + 1);
    i = s.length;
  } else if (s[i] === "?") {
    optional = true;
    i++;
  }
  if (i !== s.length) throw new RouteTemplateError(template, `cannot parse parameter "{${raw}}"`);
  if (catchAll && optional) throw new RouteTemplateError(template, `a catch-all parameter cannot be marked optional`);
  const part: ParameterPart = { kind: "parameter", name, optional, catchAll, constraints };
  if (defaultValue !== undefined) part.defaultValue = defaultValue;
  return part;
}

function parseSegment(template: string, text: string): RouteSegment {
  const parts: RoutePart[] = [];
  let literal = "";
  let i = 0;
  const flushLiteral = (): void => {
    if (literal !== "") parts.push({ kind: "literal", text: literal });
    literal = "";
  };
  while (i < text.length) {
    const c = text[i] as string;
    if (c === "{" && text[i + 1] === "{") {
      literal += "{";
      i += 2;
    } else if (c === "}" && text[i + 1] === "}") {
      literal += "}";
      i += 2;
    } else if (c === "}") {
      throw new RouteTemplateError(template, `unbalanced "}"`);
    } else if (c === "{") {
      flushLiteral();
      let j = i + 1;
      let inner = "";
      for (;;) {
        const d = text[j];
        if (d === undefined) throw new RouteTemplateError(template, `unterminated parameter`);
        if (d === "}") {
          if (text[j + 1] === "}") {
            inner += "}";
            j += 2;
            continue;
          }
          break;
        }
        if (d === "{") {
          if (text[j + 1] === "{") {
            inner += "{";
            j += 2;
            continue;
          }
          throw new RouteTemplateError(template, `unexpected "{" inside a parameter`);
        }
        inner += d;
        j++;
      }
      parts.push(parseParameter(template, inner));
      i = j + 1;
    } else if (c === "?") {
      throw new RouteTemplateError(template, `"?" is not allowed in a literal`);
    } else {
      literal += c;
      i++;
    }
  }
  flushLiteral();
  if (parts.length === 0) throw new RouteTemplateError(template, "empty segment");
  const segment: RouteSegment = { parts };
  if (parts.length > 1) {
    for (let k = 0; k < parts.length; k++) {
      const p = parts[k] as RoutePart;
      if (p.kind !== "parameter") continue;
      if (p.catchAll) throw new RouteTemplateError(template, "a catch-all parameter must be alone in its segment");
      if (p.optional && k !== parts.length - 1) {
        throw new RouteTemplateError(template, `optional parameter "${p.name}" must be at the end of its segment`);
      }
      if (k > 0 && (parts[k - 1] as RoutePart).kind === "parameter") {
        throw new RouteTemplateError(template, "two consecutive parameters must be separated by a literal");
      }
    }
    const build = (ps: RoutePart[]): { re: RegExp; params: ParameterPart[] } => {
      let pattern = "^";
      const params: ParameterPart[] = [];
      for (const p of ps) {
        if (p.kind === "literal") {
          pattern += escapeRegExp(p.text);
        } else {
          // Greedy: like ASP.NET's right-to-left literal search, "{a}-{b}" on "x-y-z" gives a="x-y".
          pattern += "(.+)";
          params.push(p);
        }
      }
      return { re: new RegExp(pattern + "$", "is"), params };
    };
    segment.patterns = [build(parts)];
    const last = parts[parts.length - 1] as RoutePart;
    if (last.kind === "parameter" && last.optional) {
      // `{name}.{ext?}`: without the optional value the separator before it goes too.
      const before = parts.slice(0, -1);
      const sep = before[before.length - 1];
      if (sep && sep.kind === "literal") {
        const trimmed = sep.text.endsWith(".") ? sep.text.slice(0, -1) : sep.text;
        const rest: RoutePart[] = before.slice(0, -1);
        if (trimmed !== "") rest.push({ kind: "literal", text: trimmed });
        if (rest.length > 0) segment.patterns.push(build(rest));
      }
    }
  }
  return segment;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function precedenceDigit(segment: RouteSegment): number {
  if (segment.parts.length > 1) return 2;
  const part = segment.parts[0] as RoutePart;
  if (part.kind === "literal") return 1;
  const digit = part.catchAll ? 5 : 3;
  return part.constraints.length > 0 ? digit - 1 : digit;
}

/** Parses an ASP.NET route template (leading `/` or `~/` ignored). Throws RouteTemplateError. */
export function parseRouteTemplate(template: string): RouteTemplate {
  let t = template.trim();
  if (t.startsWith("~/")) t = t.slice(2);
  t = t.replace(/^\/+/, "").replace(/\/+$/, "");
  const segments: RouteSegment[] = [];
  if (t !== "") {
    for (const text of t.split("/")) {
      if (text === "") throw new RouteTemplateError(template, "empty segment (\"//\")");
      segments.push(parseSegment(template, text));
    }
  }
  const names = new Set<string>();
  segments.forEach((seg, idx) => {
    for (const p of seg.parts) {
      if (p.kind !== "parameter") continue;
      const key = p.name.toLowerCase();
      if (names.has(key)) throw new RouteTemplateError(template, `parameter "${p.name}" appears more than once`);
      names.add(key);
      if (p.catchAll && idx !== segments.length - 1) {
        throw new RouteTemplateError(template, "a catch-all parameter can only appear as the last segment");
      }
    }
  });
  // Optional/defaulted single-parameter segments may only be followed by more of the same.
  let sawOptional = false;
  for (const seg of segments) {
    const p = seg.parts.length === 1 ? seg.parts[0] : undefined;
    const optionalish = !!p && p.kind === "parameter" && (p.optional || p.defaultValue !== undefined || p.catchAll);
    if (sawOptional && !optionalish) {
      throw new RouteTemplateError(template, "an optional parameter must be at the end of the template");
    }
    if (p && p.kind === "parameter" && p.optional) sawOptional = true;
  }
  return { template, segments, precedence: segments.map(precedenceDigit) };
}

function decodeSegment(s: string): string {
  if (!s.includes("%")) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Splits a URL path (no query) into decoded segments; leading and trailing slashes ignored. */
export function splitPath(pathname: string): string[] {
  let start = 0;
  let end = pathname.length;
  while (start < end && pathname.charCodeAt(start) === 0x2f) start++;
  while (end > start && pathname.charCodeAt(end - 1) === 0x2f) end--;
  if (start === end) return [];
  const segments = pathname.slice(start, end).split("/");
  for (let i = 0; i < segments.length; i++) segments[i] = decodeSegment(segments[i] as string);
  return segments;
}

function passes(p: ParameterPart, value: string): boolean {
  return p.constraints.every((c) => c.test(value));
}

/**
 * Matches decoded path segments against a template. Returns the route values
 * (strings; optional parameters without a value are absent) or null.
 */
export function matchRouteTemplate(route: RouteTemplate, segments: readonly string[]): Record<string, string> | null {
  return matchSegments(route, literalsOf(route), segments, segments.map((s) => s.toLowerCase()));
}

/** Each segment's literal in lower case when the segment is a single literal (else undefined). */
function literalsOf(route: RouteTemplate): (string | undefined)[] {
  return route.segments.map((seg) => {
    const single = seg.parts.length === 1 ? (seg.parts[0] as RoutePart) : undefined;
    return single?.kind === "literal" ? single.text.toLowerCase() : undefined;
  });
}

/** matchRouteTemplate, given what does not change between requests (`literals`) and the lower-cased path. */
function matchSegments(
  route: RouteTemplate,
  literals: readonly (string | undefined)[],
  segments: readonly string[],
  lowered: readonly string[],
): Record<string, string> | null {
  const values: Record<string, string> = {};
  const tsegs = route.segments;
  for (let i = 0; i < tsegs.length; i++) {
    const seg = tsegs[i] as RouteSegment;
    const single = seg.parts.length === 1 ? (seg.parts[0] as RoutePart) : undefined;
    if (single && single.kind === "parameter" && single.catchAll) {
      const rest = segments.slice(i).join("/");
      if (rest === "") {
        if (single.defaultValue !== undefined) values[single.name] = single.defaultValue;
      } else {
        if (!passes(single, rest)) return null;
        values[single.name] = rest;
      }
      return values;
    }
    const value = segments[i];
    if (value === undefined) {
      // Path exhausted: the rest of the template must be optional or defaulted.
      if (single && single.kind === "parameter" && (single.optional || single.defaultValue !== undefined)) {
        if (single.defaultValue !== undefined) values[single.name] = single.defaultValue;
        continue;
      }
      return null;
    }
    if (single) {
      if (single.kind === "literal") {
        if (literals[i] !== lowered[i]) return null;
      } else {
        if (value === "" || !passes(single, value)) return null;
        values[single.name] = value;
      }
      continue;
    }
    let matched: Record<string, string> | null = null;
    for (const { re, params } of seg.patterns ?? []) {
      const m = re.exec(value);
      if (!m) continue;
      const found: Record<string, string> = {};
      let ok = true;
      for (let k = 0; k < params.length && ok; k++) {
        const p = params[k] as ParameterPart;
        const v = m[k + 1] ?? "";
        ok = v !== "" && passes(p, v);
        found[p.name] = v;
      }
      if (ok) {
        matched = found;
        break;
      }
    }
    if (!matched) return null;
    Object.assign(values, matched);
  }
  if (segments.length > tsegs.length) return null;
  return values;
}

/** < 0 when `a` should be tried before `b`. */
export function comparePrecedence(a: RouteTemplate, b: RouteTemplate): number {
  const n = Math.max(a.precedence.length, b.precedence.length);
  for (let i = 0; i < n; i++) {
    const d = (a.precedence[i] ?? 0) - (b.precedence[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export type RouteMatch<T> =
  | { status: "matched"; value: T; params: Record<string, string>; route: RouteTemplate }
  | { status: "method-not-allowed"; allow: string[] }
  | { status: "not-found" };

interface RouteEntry<T> {
  route: RouteTemplate;
  /** Upper-case; null = any method. */
  methods: Set<string> | null;
  value: T;
  order: number;
  /** See literalsOf. */
  literals: (string | undefined)[];
  /** The fewest and most path segments the template can match: most paths are ruled out on their length alone. */
  minSegments: number;
  maxSegments: number;
}

/** Whether the path has each of the template's literal segments where the template has it (a cheap first test). */
function literalsMatch(literals: readonly (string | undefined)[], lowered: readonly string[]): boolean {
  const n = Math.min(literals.length, lowered.length);
  for (let i = 0; i < n; i++) {
    const literal = literals[i];
    if (literal !== undefined && literal !== lowered[i]) return false;
  }
  return true;
}

/** The bounds of RouteEntry: trailing optional, defaulted or catch-all segments may be absent; a catch-all takes any number. */
function segmentBounds(route: RouteTemplate): { minSegments: number; maxSegments: number } {
  const tsegs = route.segments;
  let minSegments = 0;
  let maxSegments = tsegs.length;
  tsegs.forEach((seg, i) => {
    const single = seg.parts.length === 1 ? (seg.parts[0] as RoutePart) : undefined;
    const param = single?.kind === "parameter" ? single : undefined;
    if (param?.catchAll) maxSegments = Infinity;
    else if (!(param && (param.optional || param.defaultValue !== undefined))) minSegments = i + 1;
  });
  return { minSegments, maxSegments };
}

/** Route table with ASP.NET-like precedence and method selection. */
export class RouteTable<T> {
  #entries: RouteEntry<T>[] = [];

  /** Adds a route; `methods` null or empty = every method. Throws RouteTemplateError. */
  add(template: string, methods: readonly string[] | null | undefined, value: T): RouteTemplate {
    const route = parseRouteTemplate(template);
    const set = methods && methods.length > 0 ? new Set(methods.map((m) => m.toUpperCase())) : null;
    this.#entries.push({ route, methods: set, value, order: this.#entries.length, literals: literalsOf(route), ...segmentBounds(route) });
    this.#entries.sort((a, b) => comparePrecedence(a.route, b.route) || a.order - b.order);
    return route;
  }

  get size(): number {
    return this.#entries.length;
  }

  /** `segments` are decoded path segments relative to the table's root (see splitPath). */
  match(segments: readonly string[], method: string): RouteMatch<T> {
    const upper = method.toUpperCase();
    const lowered = segments.map((s) => s.toLowerCase());
    let allow: Set<string> | null = null;
    let anyPathMatch = false;
    for (const e of this.#entries) {
      if (segments.length < e.minSegments || segments.length > e.maxSegments || !literalsMatch(e.literals, lowered)) continue;
      const params = matchSegments(e.route, e.literals, segments, lowered);
      if (!params) continue;
      anyPathMatch = true;
      if (!e.methods || e.methods.has(upper)) return { status: "matched", value: e.value, params, route: e.route };
      allow ??= new Set();
      for (const m of e.methods) allow.add(m);
    }
    if (anyPathMatch && allow) return { status: "method-not-allowed", allow: [...allow].sort() };
    return { status: "not-found" };
  }
}
