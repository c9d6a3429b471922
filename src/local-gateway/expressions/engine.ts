/**
 * Policy expressions (`@(…)` and `@{…}`) parsed with a real C# grammar (tree-sitter-c-sharp, run as
 * WebAssembly by web-tree-sitter) and compiled to closures over the gateway's object model.
 *
 * Only a subset of C# is executed: the constructs and members the gateway knows are listed below, and
 * {@link compileExpression} refuses anything else with an {@link ExpressionError} naming the construct
 * and where it is, so an expression the gateway cannot run faithfully is a load error, never skipped
 * or approximated. The subset covers what aigov's compiler emits and the common idioms of the policy
 * reference (member chains on `context`, `?.`/`??`, casts, ternaries, string methods, `JObject` edits,
 * local variables, `if`/`return` in blocks).
 */
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Language, Node as SyntaxNode, Parser } from "web-tree-sitter";
import {
  ByteArray,
  csCast,
  CsDateTime,
  Formatting,
  csEquals,
  CsException,
  csToString,
  describe,
  isHostObject,
  isNull,
  JToken,
  NULL_PROPAGATION,
  truthy,
  unknownMember,
  type CsArg,
  type HostObject,
} from "./values.js";

export class ExpressionError extends Error {
  constructor(
    message: string,
    /** 0-based line and column within the expression source. */
    readonly line: number,
    readonly column: number,
  ) {
    super(message);
  }
}

export interface EvalEnv {
  context: HostObject;
  /** Source of randomness for `new Random()` (tests make it deterministic). */
  random: () => number;
  /** The gateway's clock (ms since the epoch): `DateTime.UtcNow` (tests move it). */
  now: () => number;
}

export type CompiledExpression = (env: EvalEnv) => unknown;

let parser: Parser | undefined;

/** Loads the C# grammar once per process (WebAssembly); every compile after it is synchronous. */
export async function initExpressions(): Promise<void> {
  if (parser) return;
  const { Parser: P, Language: L } = (await import("web-tree-sitter")) as { Parser: typeof Parser; Language: typeof Language };
  await P.init();
  const lang = await L.load(readFileSync(require.resolve("tree-sitter-c-sharp/tree-sitter-c_sharp.wasm")));
  const p = new P();
  p.setLanguage(lang);
  parser = p;
}

const PREFIX = "class __E { object __M() { ";
const SUFFIX = "\n} }";

/** Type names allowed in casts, generic arguments and static member access. */
const TYPES = new Set(["string", "int", "long", "double", "bool", "object", "byte[]", "string[]", "JObject", "JToken", "JArray", "Array", "Math", "String", "Random", "Int32", "Convert", "Encoding", "JTokenType", "HMACSHA256", "DateTime", "DateTimeKind"]);

/** The JTokenType values an expression may name (JToken.Type evaluates to the same names; JSON's
 * number 1.0 reads as Integer here, Float in Newtonsoft: the compiler compares String, Object, Array and Null only). */
const JTOKEN_TYPES = new Set(["Object", "Array", "Integer", "Float", "String", "Boolean", "Null"]);

/** Members (properties and methods) of the object model and the built-in types; any other name is refused at load. */
export const KNOWN_MEMBERS = new Set([
  // context and its objects
  "Api", "Operation", "Product", "Request", "Response", "Subscription", "User", "Variables", "RequestId", "Deployment", "LastError",
  "Id", "Name", "Path", "Method", "UrlTemplate", "Key", "PrimaryKey", "SecondaryKey", "Email", "Region", "ServiceName", "GatewayId",
  "Url", "OriginalUrl", "Headers", "Body", "MatchedParameters", "IpAddress", "StatusCode", "StatusReason",
  "Host", "Port", "Scheme", "Query", "QueryString", "Source", "Reason", "Message", "Scope", "Section", "PolicyId",
  "GetValueOrDefault", "ContainsKey", "As",
  // string, arrays, numbers, JSON
  "Length", "Count", "Type", "Split", "Contains", "StartsWith", "EndsWith", "IndexOf", "LastIndexOf", "Substring", "ToLower", "ToUpper",
  "ToLowerInvariant", "ToUpperInvariant", "Trim", "TrimStart", "TrimEnd", "Replace", "Equals", "ToString", "Remove",
  // statics
  "Parse", "Min", "Max", "IsNullOrEmpty", "Next", "FromBase64String", "ToBase64String", "UTF8", "GetString", "GetBytes",
  // System.Security.Cryptography.HMACSHA256 (as Microsoft's policy snippets use it: new HMACSHA256(key).ComputeHash(bytes))
  "ComputeHash",
  // APIM's byte[] extensions: Encrypt(alg, key, iv) / Decrypt(alg, key, iv)
  "Encrypt", "Decrypt",
  // Newtonsoft.Json.Linq.JTokenType (the values JToken.Type compares with)
  "Object", "Array", "Integer", "Float", "String", "Boolean", "Null",
  // System.DateTime.UtcNow (the gateway's clock) and System.DateTimeKind.Utc
  "UtcNow", "Utc",
]);

const NODE_TYPES = new Set([
  "identifier", "member_access_expression", "element_access_expression", "bracketed_argument_list", "conditional_access_expression",
  "member_binding_expression", "element_binding_expression", "invocation_expression", "argument_list", "argument", "generic_name",
  "type_argument_list", "predefined_type", "array_type", "array_rank_specifier", "object_creation_expression", "binary_expression",
  "prefix_unary_expression", "cast_expression", "parenthesized_expression", "conditional_expression", "assignment_expression",
  "string_literal", "string_literal_content", "escape_sequence", "verbatim_string_literal", "character_literal", "character_literal_content",
  "integer_literal", "real_literal", "boolean_literal", "null_literal",
  "block", "local_declaration_statement", "variable_declaration", "variable_declarator", "implicit_type", "expression_statement", "return_statement", "if_statement",
]);

const BINARY = new Set(["+", "-", "*", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "??"]);

/** `a?.b` is only read one way when `a` is a primary expression; tree-sitter-c-sharp groups `x + y?.z` as `(x + y)?.z`. */
const PRIMARY = new Set(["identifier", "member_access_expression", "element_access_expression", "invocation_expression", "conditional_access_expression", "parenthesized_expression", "object_creation_expression", "string_literal", "predefined_type"]);

/**
 * Compiles `@(expression)` (kind "single") or `@{ statements }` (kind "block"), given without the `@`
 * and the outer brackets.
 */
export function compileExpression(source: string, kind: "single" | "block"): CompiledExpression {
  if (!parser) throw new Error("initExpressions() must complete before expressions are compiled");
  const body = kind === "single" ? `return (${source});` : source;
  const tree = parser.parse(`${PREFIX}${body}${SUFFIX}`);
  if (!tree) throw new ExpressionError("the C# parser returned no tree", 0, 0);
  try {
    const method = tree.rootNode.descendantsOfType("method_declaration")[0];
    const block = method?.childForFieldName("body");
    if (!block || tree.rootNode.hasError) {
      const bad = firstError(tree.rootNode) ?? tree.rootNode;
      throw at(bad, `C# syntax error near '${bad.text.slice(0, 40)}'`, kind);
    }
    const c = new Compiler(kind);
    const run = c.block(block);
    return (env) => {
      const r = run({ env, locals: new Map() });
      if (r === CONTINUE) throw new CsException("NotSupportedException", "the expression block ended without a return");
      return r.value === NULL_PROPAGATION ? null : r.value;
    };
  } finally {
    tree.delete();
  }
}

function firstError(n: SyntaxNode): SyntaxNode | undefined {
  if (n.type === "ERROR" || n.isMissing) return n;
  for (const c of n.children) {
    if (!c) continue;
    const e = firstError(c);
    if (e) return e;
  }
  return undefined;
}

/** Position relative to the user's source: the wrapper prefix sits on the first line. */
function at(node: SyntaxNode, message: string, kind: "single" | "block"): ExpressionError {
  const row = node.startPosition.row;
  const shift = PREFIX.length + (kind === "single" ? "return (".length : 0);
  return new ExpressionError(message, row, row === 0 ? Math.max(0, node.startPosition.column - shift) : node.startPosition.column);
}

interface Frame {
  env: EvalEnv;
  locals: Map<string, unknown>;
}
type Ev = (f: Frame) => unknown;
const CONTINUE: unique symbol = Symbol("continue");
type Completion = typeof CONTINUE | { value: unknown };
type St = (f: Frame) => Completion;

class Compiler {
  private readonly declared = new Set<string>();
  constructor(private readonly kind: "single" | "block") {}

  private fail(node: SyntaxNode, message: string): never {
    throw at(node, message, this.kind);
  }

  private check(node: SyntaxNode): void {
    if (!NODE_TYPES.has(node.type)) this.fail(node, `the local gateway does not run C# '${node.type.replace(/_/g, " ")}' ('${node.text.slice(0, 40)}')`);
  }

  private named(node: SyntaxNode): SyntaxNode[] {
    return node.namedChildren.filter((c): c is SyntaxNode => c !== null && c.type !== "comment");
  }

  private field(node: SyntaxNode, name: string): SyntaxNode {
    const f = node.childForFieldName(name);
    if (!f) this.fail(node, `incomplete ${node.type.replace(/_/g, " ")}`);
    return f;
  }

  // ---------------------------------------------------------------- statements

  block(node: SyntaxNode): St {
    this.check(node);
    const stmts = this.named(node).map((s) => this.statement(s));
    return (f) => {
      for (const s of stmts) {
        const r = s(f);
        if (r !== CONTINUE) return r;
      }
      return CONTINUE;
    };
  }

  private statement(node: SyntaxNode): St {
    this.check(node);
    switch (node.type) {
      case "block":
        return this.block(node);
      case "return_statement": {
        const e = this.named(node)[0];
        if (!e) this.fail(node, "return needs a value");
        const ev = this.expr(e);
        return (f) => ({ value: ev(f) });
      }
      case "expression_statement": {
        const e = this.named(node)[0];
        if (!e || e.type !== "assignment_expression") this.fail(node, "only assignments may stand alone as statements");
        const ev = this.expr(e);
        return (f) => {
          ev(f);
          return CONTINUE;
        };
      }
      case "local_declaration_statement": {
        const decl = this.named(node)[0]!;
        this.check(decl);
        const out: [string, Ev][] = [];
        for (const d of this.named(decl)) {
          if (d.type === "implicit_type" || d.type === "predefined_type" || d.type === "identifier" || d.type === "generic_name") continue;
          this.check(d);
          const [nameNode, value] = this.named(d);
          const name = nameNode!.text;
          if (!value) this.fail(d, `local '${name}' needs an initial value`);
          this.declared.add(name);
          out.push([name, this.expr(value)]);
        }
        return (f) => {
          for (const [name, ev] of out) f.locals.set(name, ev(f));
          return CONTINUE;
        };
      }
      case "if_statement": {
        const cond = this.expr(this.field(node, "condition"));
        const then = this.statement(this.field(node, "consequence"));
        const alt = node.childForFieldName("alternative");
        const otherwise = alt ? this.statement(alt) : undefined;
        return (f) => (truthy(cond(f), "if condition") ? then(f) : otherwise ? otherwise(f) : CONTINUE);
      }
      default:
        return this.fail(node, `the local gateway does not run C# '${node.type.replace(/_/g, " ")}'`);
    }
  }

  // ---------------------------------------------------------------- expressions

  expr(node: SyntaxNode): Ev {
    this.check(node);
    switch (node.type) {
      case "parenthesized_expression":
        return this.expr(this.named(node)[0]!);
      case "string_literal":
      case "verbatim_string_literal": {
        const v = stringLiteral(node);
        return () => v;
      }
      case "character_literal": {
        const v = stringLiteral(node);
        return () => v;
      }
      case "integer_literal": {
        const v = Number.parseInt(node.text.replace(/[uUlL]+$/, ""), node.text.startsWith("0x") ? 16 : 10);
        return () => v;
      }
      case "real_literal": {
        const v = Number.parseFloat(node.text.replace(/[dDfFmM]$/, ""));
        return () => v;
      }
      case "boolean_literal": {
        const v = node.text === "true";
        return () => v;
      }
      case "null_literal":
        return () => null;
      case "identifier":
        return this.identifier(node);
      case "member_access_expression":
        return this.memberAccess(node);
      case "element_access_expression": {
        const target = this.expr(this.field(node, "expression"));
        const key = this.subscript(this.field(node, "subscript"));
        return (f) => index(target(f), key(f));
      }
      case "conditional_access_expression":
        return this.conditionalAccess(node, undefined);
      case "invocation_expression":
        return this.invocation(node);
      case "object_creation_expression":
        return this.creation(node);
      case "binary_expression":
        return this.binary(node);
      case "prefix_unary_expression": {
        const op = node.child(0)!.text;
        const v = this.expr(this.named(node)[0]!);
        if (op === "!") return (f) => !truthy(v(f), "operand of !");
        if (op === "-") return (f) => -(v(f) as number);
        return this.fail(node, `unary '${op}' is not supported`);
      }
      case "cast_expression": {
        const type = this.typeName(this.field(node, "type"));
        const v = this.expr(this.field(node, "value"));
        return (f) => csCast(type, v(f));
      }
      case "conditional_expression": {
        const c = this.expr(this.field(node, "condition"));
        const a = this.expr(this.field(node, "consequence"));
        const b = this.expr(this.field(node, "alternative"));
        return (f) => (truthy(c(f), "condition of ?:") ? a(f) : b(f));
      }
      case "assignment_expression":
        return this.assignment(node);
      default:
        return this.fail(node, `the local gateway does not run C# '${node.type.replace(/_/g, " ")}'`);
    }
  }

  private identifier(node: SyntaxNode): Ev {
    const name = node.text;
    if (name === "context") return (f) => f.env.context;
    if (this.declared.has(name)) {
      return (f) => {
        if (!f.locals.has(name)) throw new CsException("NotSupportedException", `local '${name}' used before it was assigned`);
        return f.locals.get(name);
      };
    }
    if (TYPES.has(name)) return () => new StaticType(name);
    return this.fail(node, `unknown name '${name}'`);
  }

  private typeName(node: SyntaxNode): string {
    const name = node.type === "array_type" ? `${this.field(node, "type").text}[]` : node.text;
    if (!TYPES.has(name)) this.fail(node, `type '${name}' is not supported`);
    return name === "Int32" ? "int" : name;
  }

  private memberName(node: SyntaxNode): { name: string; typeArgs: string[] } {
    if (node.type === "generic_name") {
      const id = this.named(node)[0]!;
      const list = this.named(node)[1];
      const typeArgs = list ? this.named(list).map((t) => this.typeName(t)) : [];
      return { name: this.known(id), typeArgs };
    }
    return { name: this.known(node), typeArgs: [] };
  }

  private known(node: SyntaxNode): string {
    if (!KNOWN_MEMBERS.has(node.text)) this.fail(node, `member '${node.text}' is not part of the local gateway's object model`);
    return node.text;
  }

  private memberAccess(node: SyntaxNode): Ev {
    // Newtonsoft's Formatting enum, qualified or not: the one enum expressions pass (JToken.ToString(Formatting)).
    const formatting = /^(?:Newtonsoft\.Json\.)?Formatting\.(None|Indented)$/.exec(node.text.replace(/\s+/g, ""));
    if (formatting) {
      const value = new Formatting(formatting[1] as "None" | "Indented");
      return () => value;
    }
    const exprNode = this.field(node, "expression");
    const { name } = this.memberName(this.field(node, "name"));
    // DateTime.UtcNow reads the gateway's clock (a test's virtual one), not the host's.
    if (exprNode.type === "identifier" && exprNode.text === "DateTime" && name === "UtcNow") return (f) => new CsDateTime(f.env.now(), "Utc");
    if (exprNode.type === "predefined_type") {
      const t = exprNode.text;
      return () => getMember(new StaticType(t), name);
    }
    const target = this.expr(exprNode);
    return (f) => getMember(target(f), name);
  }

  private subscript(node: SyntaxNode): Ev {
    const args = this.named(node);
    if (args.length !== 1) this.fail(node, "indexers take one argument");
    return this.expr(this.named(args[0]!)[0]!);
  }

  /** `cond?.binding` where `call` (when given) are the arguments of an invocation wrapping it. */
  private conditionalAccess(node: SyntaxNode, call: { args: ArgEv[] } | undefined): Ev {
    const condNode = this.field(node, "condition");
    if (!PRIMARY.has(condNode.type)) this.fail(condNode, "parenthesize the operand of '?.': the C# grammar would read it differently");
    const cond = this.expr(condNode);
    const binding = this.named(node).find((c) => c.type === "member_binding_expression" || c.type === "element_binding_expression");
    if (!binding) this.fail(node, "incomplete conditional access");
    this.check(binding);
    if (binding.type === "element_binding_expression") {
      if (call) this.fail(node, "an indexer result cannot be invoked");
      const key = this.subscript(this.named(binding)[0]!.type === "bracketed_argument_list" ? this.named(binding)[0]! : binding);
      return (f) => {
        const t = cond(f);
        return isNull(t) ? NULL_PROPAGATION : index(t, key(f));
      };
    }
    const { name, typeArgs } = this.memberName(this.field(binding, "name"));
    if (call) {
      const args = call.args;
      return (f) => {
        const t = cond(f);
        return isNull(t) ? NULL_PROPAGATION : invoke(t, name, evalArgs(args, f), typeArgs, f.env);
      };
    }
    return (f) => {
      const t = cond(f);
      return isNull(t) ? NULL_PROPAGATION : getMember(t, name);
    };
  }

  private args(node: SyntaxNode): ArgEv[] {
    return this.named(node).map((a) => {
      this.check(a);
      const nameNode = a.childForFieldName("name");
      const valueNode = this.named(a).find((c) => c.id !== nameNode?.id)!;
      return { ...(nameNode ? { name: nameNode.text } : {}), ev: this.expr(valueNode), ...(isStringLiteral(valueNode) ? { string: true as const } : {}) };
    });
  }

  private invocation(node: SyntaxNode): Ev {
    const fn = this.field(node, "function");
    const args = this.args(this.field(node, "arguments"));
    if (fn.type === "conditional_access_expression") return this.conditionalAccess(fn, { args });
    if (fn.type !== "member_access_expression") this.fail(fn, "only methods can be called (obj.Method(...))");
    this.check(fn);
    const { name, typeArgs } = this.memberName(this.field(fn, "name"));
    const targetNode = this.field(fn, "expression");
    const target: Ev = targetNode.type === "predefined_type" ? ((t) => () => new StaticType(t))(this.typeName(targetNode)) : this.expr(targetNode);
    return (f) => invoke(target(f), name, evalArgs(args, f), typeArgs, f.env);
  }

  private creation(node: SyntaxNode): Ev {
    const type = this.typeName(this.field(node, "type"));
    const argsNode = node.childForFieldName("arguments");
    const args = argsNode ? this.args(argsNode) : [];
    if (type === "Random" && args.length === 0) return (f) => new RandomObject(f.env.random);
    if (type === "JObject" && args.length === 0) return () => new JToken({});
    if (type === "DateTime" && (args.length === 3 || args.length === 6 || args.length === 7)) return (f) => newDateTime(evalArgs(args, f).map((a) => a.value));
    if (type === "HMACSHA256" && args.length === 1) {
      const [key] = args;
      return (f) => {
        const k = evalArgs([key!], f)[0]!.value;
        if (!(k instanceof ByteArray)) throw new CsException("ArgumentNullException", "new HMACSHA256(key) needs the key's bytes (byte[]).");
        return new HmacSha256(k.bytes);
      };
    }
    return this.fail(node, `'new ${type}(...)' is not supported`);
  }

  private binary(node: SyntaxNode): Ev {
    const op = this.field(node, "operator").text;
    if (!BINARY.has(op)) this.fail(node, `operator '${op}' is not supported`);
    const l = this.expr(this.field(node, "left"));
    const r = this.expr(this.field(node, "right"));
    switch (op) {
      case "&&":
        return (f) => truthy(l(f), "operand of &&") && truthy(r(f), "operand of &&");
      case "||":
        return (f) => truthy(l(f), "operand of ||") || truthy(r(f), "operand of ||");
      case "??":
        return (f) => {
          const v = l(f);
          return isNull(v) ? r(f) : v;
        };
      case "==":
        return (f) => csEquals(l(f), r(f));
      case "!=":
        return (f) => !csEquals(l(f), r(f));
      case "+":
        return (f) => {
          const a = l(f);
          const b = r(f);
          if (typeof a === "string" || typeof b === "string") return (isNull(a) ? "" : csToString(a)) + (isNull(b) ? "" : csToString(b));
          return numeric(a, op) + numeric(b, op);
        };
      case "-":
        return (f) => numeric(l(f), op) - numeric(r(f), op);
      case "*":
        return (f) => numeric(l(f), op) * numeric(r(f), op);
      default:
        return (f) => {
          const a = l(f);
          const b = r(f);
          // DateTime's comparison operators compare ticks, whatever the Kind (as .NET's do).
          if (a instanceof CsDateTime || b instanceof CsDateTime) {
            if (!(a instanceof CsDateTime && b instanceof CsDateTime)) throw new CsException("InvalidCastException", `operator ${op} compares a DateTime with ${describe(a instanceof CsDateTime ? b : a)}`);
            return compare(op, a.ms, b.ms);
          }
          return compare(op, numeric(a, op), numeric(b, op));
        };
    }
  }

  private assignment(node: SyntaxNode): Ev {
    if (this.field(node, "operator").text !== "=") this.fail(node, "only '=' assignments are supported");
    const left = this.field(node, "left");
    const value = this.expr(this.field(node, "right"));
    if (left.type === "identifier" && this.declared.has(left.text)) {
      const name = left.text;
      return (f) => {
        const v = value(f);
        f.locals.set(name, v);
        return v;
      };
    }
    if (left.type === "element_access_expression") {
      const target = this.expr(this.field(left, "expression"));
      const key = this.subscript(this.field(left, "subscript"));
      return (f) => {
        const t = target(f);
        const k = key(f);
        const v = value(f);
        if (!isHostObject(t) || !t.setIndex) throw new CsException("NotSupportedException", `${describe(t)} cannot be assigned by index`);
        t.setIndex(k, v);
        return v;
      };
    }
    return this.fail(left, "only locals and indexers can be assigned");
  }
}

interface ArgEv {
  name?: string;
  ev: Ev;
  /** Written as a string literal ("x", @"x", or one in parentheses): a string, even of one character. */
  string?: true;
}

function evalArgs(args: ArgEv[], f: Frame): CsArg[] {
  return args.map((a) => ({ ...(a.name !== undefined ? { name: a.name } : {}), value: a.ev(f), ...(a.string ? { string: a.string } : {}) }));
}

/** A string literal, as written (in parentheses too). */
function isStringLiteral(node: SyntaxNode): boolean {
  if (node.type === "parenthesized_expression") return node.namedChildren.length === 1 && isStringLiteral(node.namedChildren[0]!);
  return node.type === "string_literal" || node.type === "verbatim_string_literal";
}

function stringLiteral(node: SyntaxNode): string {
  if (node.type === "verbatim_string_literal") return node.text.slice(2, -1).replace(/""/g, '"');
  let out = "";
  for (const c of node.namedChildren) {
    if (!c) continue;
    if (c.type === "escape_sequence") out += unescape(c.text);
    else out += c.text;
  }
  return out;
}

function unescape(seq: string): string {
  const map: Record<string, string> = { "\\'": "'", '\\"': '"', "\\\\": "\\", "\\0": "\0", "\\a": "\x07", "\\b": "\b", "\\f": "\f", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\v": "\v" };
  if (map[seq] !== undefined) return map[seq];
  if (/^\\u[0-9a-fA-F]{4}$/.test(seq) || /^\\x[0-9a-fA-F]{1,4}$/.test(seq)) return String.fromCharCode(Number.parseInt(seq.slice(2), 16));
  throw new CsException("FormatException", `unsupported escape sequence ${seq}`);
}

function numeric(v: unknown, op: string): number {
  if (typeof v === "number") return v;
  throw new CsException("InvalidCastException", `operator ${op} needs numbers, got ${describe(v)}`);
}

function compare(op: string, a: number, b: number): boolean {
  switch (op) {
    case "<":
      return a < b;
    case "<=":
      return a <= b;
    case ">":
      return a > b;
    default:
      return a >= b;
  }
}

/**
 * `new DateTime(year, month, day[, hour, minute, second[, DateTimeKind]])`, each part in .NET's range
 * (ArgumentOutOfRangeException otherwise, as .NET throws). A DateTime made without a Kind is
 * Unspecified; comparisons ignore the Kind either way.
 */
function newDateTime(v: unknown[]): CsDateTime {
  const kind = v.length === 7 ? v[6] : "Unspecified";
  if (kind !== "Utc" && kind !== "Unspecified") throw new CsException("ArgumentException", "new DateTime(...) takes DateTimeKind.Utc as its kind here");
  const parts = v.slice(0, 6).map((x) => {
    if (typeof x !== "number" || !Number.isInteger(x)) throw new CsException("InvalidCastException", `new DateTime(...) needs int arguments, got ${describe(x)}`);
    return x;
  });
  const [y, mo, d, h = 0, mi = 0, sec = 0] = parts as [number, number, number, number?, number?, number?];
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  const daysIn = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1] ?? 0;
  if (y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > daysIn || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59) {
    throw new CsException("ArgumentOutOfRangeException", "Year, Month, and Day parameters describe an un-representable DateTime.");
  }
  const at = new Date(0);
  at.setUTCFullYear(y, mo - 1, d);
  at.setUTCHours(h, mi, sec, 0);
  return new CsDateTime(at.getTime(), kind);
}

/** A type used as a value: the target of a static call (`Array.IndexOf`, `int.Parse`, `Math.Max`). */
class StaticType implements HostObject {
  constructor(readonly csType: string) {}
  getMember(name: string): unknown {
    if (this.csType === "Encoding" && name === "UTF8") return UTF8;
    if (this.csType === "JTokenType" && JTOKEN_TYPES.has(name)) return name;
    if (this.csType === "DateTimeKind" && name === "Utc") return "Utc";
    throw unknownMember(this.csType, name);
  }
  invoke(name: string, args: CsArg[]): unknown {
    const v = args.map((a) => a.value);
    const t = this.csType;
    if (t === "Array" && name === "IndexOf" && v.length === 2) {
      if (!Array.isArray(v[0])) throw new CsException("ArgumentException", "Array.IndexOf needs an array");
      return v[0].findIndex((x) => csEquals(x, v[1]));
    }
    if ((t === "int" || t === "Int32") && name === "Parse" && v.length === 1) {
      const s = typeof v[0] === "string" ? v[0].trim() : undefined;
      if (s === undefined || !/^[+-]?[0-9]+$/.test(s)) throw new CsException("FormatException", "Input string was not in a correct format.");
      return Number.parseInt(s, 10);
    }
    if (t === "Math" && (name === "Min" || name === "Max") && v.length === 2) return (name === "Min" ? Math.min : Math.max)(numeric(v[0], name), numeric(v[1], name));
    if ((t === "string" || t === "String") && name === "IsNullOrEmpty" && v.length === 1) return isNull(v[0]) || v[0] === "";
    if (t === "Convert" && name === "FromBase64String" && v.length === 1) {
      // .NET accepts padded base64 only (whitespace aside); Node's decoder would skip anything else silently.
      const s = typeof v[0] === "string" ? v[0].replace(/\s+/g, "") : undefined;
      if (s === undefined) throw new CsException("ArgumentException", "Value cannot be null.");
      if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new CsException("FormatException", "The input is not a valid Base-64 string.");
      return new ByteArray(new Uint8Array(Buffer.from(s, "base64")));
    }
    if (t === "Convert" && name === "ToBase64String" && v.length === 1) {
      if (!(v[0] instanceof ByteArray)) throw new CsException("ArgumentNullException", "Convert.ToBase64String needs a byte[].");
      return Buffer.from(v[0].bytes).toString("base64");
    }
    throw unknownMember(t, `${name}()`);
  }
}

/** System.Text.Encoding.UTF8: bytes to text (invalid sequences become U+FFFD, as in .NET). */
const UTF8: HostObject = {
  csType: "UTF8Encoding",
  getMember(name: string): unknown {
    throw unknownMember("UTF8Encoding", name);
  },
  invoke(name: string, args: CsArg[]): unknown {
    const bytes = args[0]?.value;
    if (name === "GetString" && args.length === 1 && bytes instanceof ByteArray) return new TextDecoder("utf-8").decode(bytes.bytes);
    // .NET encodes a lone surrogate as U+FFFD (EF BF BD), as Node's encoder does.
    if (name === "GetBytes" && args.length === 1 && typeof bytes === "string") return new ByteArray(new Uint8Array(Buffer.from(bytes, "utf8")));
    if (name === "GetBytes" && args.length === 1 && isNull(bytes)) throw new CsException("ArgumentNullException", "Value cannot be null. (Parameter 's')");
    throw unknownMember("UTF8Encoding", `${name}()`);
  },
};

/** System.Security.Cryptography.HMACSHA256 made with its key: ComputeHash(byte[]) gives the 32-byte MAC. */
class HmacSha256 implements HostObject {
  readonly csType = "HMACSHA256";
  constructor(private readonly key: Uint8Array) {}
  getMember(name: string): unknown {
    throw unknownMember(this.csType, name);
  }
  invoke(name: string, args: CsArg[]): unknown {
    const data = args[0]?.value;
    if (name === "ComputeHash" && args.length === 1 && data instanceof ByteArray) return new ByteArray(new Uint8Array(createHmac("sha256", this.key).update(data.bytes).digest()));
    throw unknownMember(this.csType, `${name}()`);
  }
}

class RandomObject implements HostObject {
  readonly csType = "Random";
  constructor(private readonly random: () => number) {}
  getMember(name: string): unknown {
    throw unknownMember(this.csType, name);
  }
  invoke(name: string, args: CsArg[]): unknown {
    const v = args.map((a) => numeric(a.value, "Next"));
    if (name === "Next" && v.length === 1) return Math.floor(this.random() * v[0]!);
    if (name === "Next" && v.length === 2) return v[0]! + Math.floor(this.random() * (v[1]! - v[0]!));
    throw unknownMember(this.csType, `${name}()`);
  }
}

function getMember(target: unknown, name: string): unknown {
  if (target === NULL_PROPAGATION) return NULL_PROPAGATION;
  if (isNull(target)) throw new CsException("NullReferenceException", `Object reference not set to an instance of an object (reading ${name}).`);
  if (typeof target === "string" && name === "Length") return target.length;
  if (Array.isArray(target) && name === "Length") return target.length;
  if (isHostObject(target)) return target.getMember(name);
  throw unknownMember(describe(target), name);
}

function index(target: unknown, key: unknown): unknown {
  if (target === NULL_PROPAGATION) return NULL_PROPAGATION;
  if (isNull(target)) throw new CsException("NullReferenceException", "Object reference not set to an instance of an object (indexing).");
  if (Array.isArray(target) || typeof target === "string") {
    if (typeof key !== "number" || !Number.isInteger(key) || key < 0 || key >= target.length) throw new CsException("IndexOutOfRangeException", "Index was outside the bounds of the array.");
    return target[key];
  }
  if (isHostObject(target) && target.getIndex) return target.getIndex(key);
  throw new CsException("NotSupportedException", `${describe(target)} has no indexer`);
}

function invoke(target: unknown, name: string, args: CsArg[], typeArgs: string[], env: EvalEnv): unknown {
  void env;
  if (target === NULL_PROPAGATION) return NULL_PROPAGATION;
  if (isNull(target)) throw new CsException("NullReferenceException", `Object reference not set to an instance of an object (calling ${name}).`);
  if (typeof target === "string") return stringMethod(target, name, args);
  if (name === "ToString" && args.length === 0 && !isHostObject(target)) return csToString(target);
  if (isHostObject(target)) {
    if (target.invoke) return target.invoke(name, args, typeArgs);
    if (name === "ToString" && args.length === 0) return csToString(target);
  }
  throw unknownMember(describe(target), `${name}()`);
}

/**
 * TrimStart(params char[]) / TrimEnd(params char[]): every argument a char. C# has no
 * TrimStart(string) overload, so APIM refuses `TrimStart("/")` when it compiles the policy. The engine
 * keeps chars as one-character strings: a string literal is told apart by how it is written, and any
 * other one-character value is taken for a char.
 */
function charsOf(args: CsArg[], name: string): Set<string> {
  if (!args.every((a) => a.string !== true && typeof a.value === "string" && a.value.length === 1)) throw new CsException("ArgumentException", `${name} takes chars ('x'), not strings`);
  return new Set(args.map((a) => a.value as string));
}

function trimChars(s: string, chars: Set<string>, from: "start" | "end"): string {
  let a = 0;
  let b = s.length;
  if (from === "start") while (a < b && chars.has(s[a]!)) a++;
  else while (b > a && chars.has(s[b - 1]!)) b--;
  return s.slice(a, b);
}

function stringMethod(s: string, name: string, args: CsArg[]): unknown {
  const v = args.map((a) => a.value);
  const str = (i: number) => {
    const x = v[i];
    if (typeof x !== "string") throw new CsException("ArgumentException", `${name} needs a string argument`);
    return x;
  };
  switch (name) {
    case "Split": {
      if (v.length !== 1) break;
      const sep = str(0);
      return s.split(sep);
    }
    case "Contains":
      return s.includes(str(0));
    case "StartsWith":
      return s.startsWith(str(0));
    case "EndsWith":
      return s.endsWith(str(0));
    case "IndexOf":
      return s.indexOf(str(0));
    case "LastIndexOf":
      return s.lastIndexOf(str(0));
    case "Substring": {
      const start = numeric(v[0], name);
      const len = v.length > 1 ? numeric(v[1], name) : s.length - start;
      if (start < 0 || len < 0 || start + len > s.length) throw new CsException("ArgumentException", "startIndex or length is out of range.");
      return s.substring(start, start + len);
    }
    case "ToLower":
    case "ToLowerInvariant":
      return s.toLowerCase();
    case "ToUpper":
    case "ToUpperInvariant":
      return s.toUpperCase();
    // .NET's char.IsWhiteSpace does not count U+FEFF (JavaScript's \s and trim() do).
    case "Trim":
      if (v.length === 0) return s.replace(/^[^\S\uFEFF]+|[^\S\uFEFF]+$/g, "");
      {
        const chars = charsOf(args, name);
        return trimChars(trimChars(s, chars, "start"), chars, "end");
      }
    case "TrimStart":
      if (v.length === 0) return s.replace(/^[^\S\uFEFF]+/, "");
      return trimChars(s, charsOf(args, name), "start");
    case "TrimEnd":
      if (v.length === 0) return s.replace(/[^\S\uFEFF]+$/, "");
      return trimChars(s, charsOf(args, name), "end");
    case "Replace":
      return s.split(str(0)).join(str(1));
    case "Equals":
      return s === v[0];
    case "ToString":
      return s;
  }
  throw unknownMember("string", `${name}()`);
}

export { ByteArray, Formatting, JToken };
