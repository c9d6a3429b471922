/**
 * API-to-MCP: an OpenAPI 3.0/3.1 document becomes MCP tools, each bound to one operation of a REST API
 * that the gateway serves ("REST API as MCP server": a tool of the MCP API names an operation of the REST
 * API). Nothing here calls anything; the outcome is data, and bad input is an `ok: false` outcome, never
 * an exception.
 *
 * The document is someone else's and may be hostile, so the expensive steps run only after cheap bounds:
 * its JSON size and depth first, then the size it expands to through `$ref`s (a few KB of shared `$ref`s
 * expand to billions of nodes, and the validator below expands them), then validation by swagger-parser,
 * then conversion. Schemas keep their references: `#/components/schemas/X` becomes `#/$defs/X` inside the
 * tool's input schema (JSON Schema 2020-12), with only the components the tool reaches, so nothing is ever
 * expanded and cycles are harmless.
 *
 * The output is a function of the document's content only: operations are taken in path-then-method order,
 * parameters by location and name, and every object the output copies from a schema is written with its
 * keys sorted, so the same API in any key order converts to the same bytes.
 */
import SwaggerParser from "@apidevtools/swagger-parser";
import { Ajv2020 } from "ajv/dist/2020.js";
import { documentSchemaErrors, type OpenApiDialect } from "./document-schema.js";
import type { OperationParameter } from "../../../ports/gateway.js";

export interface OpenApiImportOptions {
  /** operationIds, or "METHOD /path"; all operations when absent. */
  include?: string[];
  /** Default 500. */
  maxOperations?: number;
  /** Default 4 MiB, of the JSON text. */
  maxDocumentBytes?: number;
}

export interface RestBinding {
  /** The APIM operation resource id: ^[A-Za-z0-9_-]{1,80}$ (unique within the API, ignoring case as ARM does). */
  operationId: string;
  /** Upper case. */
  method: string;
  /** APIM style: /pets/{petId} (the server URL's path prefix is NOT included). */
  urlTemplate: string;
  templateParameters: OperationParameter[];
  queryParameters: OperationParameter[];
  headers: OperationParameter[];
  /** JSON bodies only: an operation whose body is of another content type is skipped with a reason. */
  body?: { contentType: string; required: boolean };
  /** inputSchema property → where it goes. */
  arguments: { property: string; in: "path" | "query" | "header" | "body"; name: string }[];
}

export interface ConvertedTool {
  /** From the operationId, sanitised to [A-Za-z0-9_-], ≤ 64, unique; from method and path when there is none. */
  name: string;
  title?: string;
  description?: string;
  /** JSON Schema 2020-12: { type: "object", properties, required, additionalProperties: false, $defs? }. */
  inputSchema: Record<string, unknown>;
  /** From the first 2xx application/json response when its schema is an object schema. */
  outputSchema?: Record<string, unknown>;
  annotations: { readOnlyHint: boolean; destructiveHint: boolean; idempotentHint: boolean; openWorldHint: boolean };
  binding: RestBinding;
}

export type ConversionOutcome =
  | { ok: true; title: string; version: string; openapi: string; serverUrl?: string; tools: ConvertedTool[]; skipped: { operation: string; reason: string }[] }
  | { ok: false; errors: { path: string; message: string }[] };

export const OPENAPI_IMPORT_LIMITS = {
  maxOperations: 500,
  maxDocumentBytes: 4 * 1024 * 1024,
  /** Far deeper than any real API, far shallower than the stack: every recursion below stays bounded by it. */
  maxDocumentDepth: 200,
  /** Nodes the document stands for once every `$ref` is expanded (what the validator walks). */
  maxExpandedNodes: 1_000_000,
  /** One tool's input (or output) schema, its $defs included. */
  maxToolSchemaNodes: 20_000,
  /** Nested schemas within one schema, counting inlined references. */
  maxSchemaDepth: 64,
  maxToolName: 64,
  maxDescription: 1000,
  maxErrors: 50,
} as const;

type Problem = { path: string; message: string };
type JsonObject = Record<string, unknown>;
type Dialect = OpenApiDialect;
type ParameterLocation = "path" | "query" | "header";

/** Thrown inside, caught at the edge: the document cannot be converted. */
class Refusal extends Error {
  constructor(readonly problems: Problem[]) {
    super(problems[0]?.message ?? "refused");
  }
}

/** Thrown inside, caught per operation: this operation becomes a skipped entry, the others go on. */
class SkipOperation extends Error {}

export async function convertOpenApi(document: unknown, options: OpenApiImportOptions = {}): Promise<ConversionOutcome> {
  try {
    return await convert(document, options);
  } catch (error) {
    if (error instanceof Refusal) return { ok: false, errors: error.problems.slice(0, OPENAPI_IMPORT_LIMITS.maxErrors) };
    return { ok: false, errors: [{ path: "", message: `the document could not be converted: ${messageOf(error)}` }] };
  }
}

async function convert(input: unknown, options: OpenApiImportOptions): Promise<ConversionOutcome> {
  const maxBytes = limit(options.maxDocumentBytes, OPENAPI_IMPORT_LIMITS.maxDocumentBytes, "maxDocumentBytes");
  const maxOperations = limit(options.maxOperations, OPENAPI_IMPORT_LIMITS.maxOperations, "maxOperations");
  const parsed = await readDocument(input, maxBytes);
  checkJsonSize(parsed, maxBytes);
  // A private copy: the caller's object is never touched, and anything that is not JSON is gone.
  const doc = JSON.parse(JSON.stringify(parsed)) as unknown;
  if (!isObject(doc)) throw new Refusal([{ path: "", message: "an OpenAPI document is a JSON object" }]);
  const dialect = dialectOf(doc);
  checkReferences(doc);
  await validate(doc, dialect);
  const operations = listOperations(doc);
  checkOperationIds(operations);
  const names = toolNames(operations);
  const selected = select(operations, options.include);
  if (selected.length > maxOperations) {
    throw new Refusal([{ path: "/paths", message: `${selected.length} operations selected; the limit is ${maxOperations} (select fewer with include)` }]);
  }

  const serverUrl = serverUrlOf(doc.servers);
  const schemas = new SchemaConverter(doc, dialect);
  const tools: ConvertedTool[] = [];
  const skipped: { operation: string; reason: string }[] = [];
  for (const operation of selected) {
    try {
      tools.push(toTool(operation, names.get(operation) as string, serverUrl, schemas));
    } catch (error) {
      if (!(error instanceof SkipOperation)) throw error;
      skipped.push({ operation: operation.label, reason: error.message });
    }
  }
  const info = isObject(doc.info) ? doc.info : {};
  return {
    ok: true,
    title: typeof info.title === "string" ? info.title : "",
    version: typeof info.version === "string" ? info.version : "",
    openapi: doc.openapi as string,
    ...(serverUrl === undefined ? {} : { serverUrl }),
    tools,
    skipped,
  };
}

// ---------------------------------------------------------------------------------------------------
// Reading and bounding the document

function limit(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) throw new Refusal([{ path: `options.${name}`, message: `${name} is a positive whole number` }]);
  return value;
}

/** The URL the YAML reader gives the text, so that swagger-parser's messages can be cleaned of it. */
const TEXT_URL = "document.yaml";

async function readDocument(input: unknown, maxBytes: number): Promise<unknown> {
  if (typeof input !== "string") {
    if (!isObject(input)) throw new Refusal([{ path: "", message: "expected an OpenAPI document: a JSON object, or its JSON or YAML text" }]);
    return input;
  }
  const bytes = Buffer.byteLength(input, "utf8");
  if (bytes > maxBytes) throw new Refusal([{ path: "", message: `the document is ${bytes} bytes; the limit is ${maxBytes}` }]);
  const text = input.trim();
  if (text.startsWith("{")) {
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new Refusal([{ path: "", message: `not valid JSON: ${messageOf(error)}` }]);
    }
  }
  try {
    // swagger-parser's own YAML reader, fed from memory: no file or network resolver is left to read anything else.
    return await SwaggerParser.parse(TEXT_URL, {
      resolve: { external: false, file: false, http: false, text: { order: 1, canRead: true, read: () => text } },
    } as SwaggerParser.Options);
  } catch (error) {
    throw new Refusal([{ path: "", message: `not valid YAML or JSON: ${cleanParserMessage(messageOf(error))}` }]);
  }
}

/** The JSON text's size and depth, by an iterative walk that stops at the limit (YAML aliases and shared objects count every time they appear, as they would in the JSON). */
function checkJsonSize(value: unknown, maxBytes: number): void {
  const stack: [unknown, number][] = [[value, 0]];
  let bytes = 0;
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number];
    if (depth > OPENAPI_IMPORT_LIMITS.maxDocumentDepth) {
      throw new Refusal([{ path: "", message: `the document is nested more than ${OPENAPI_IMPORT_LIMITS.maxDocumentDepth} levels deep (or refers to itself)` }]);
    }
    if (typeof node === "string") bytes += Buffer.byteLength(node, "utf8") + 2;
    else if (typeof node === "number") bytes += String(node).length;
    else if (typeof node === "boolean" || node === null) bytes += 5;
    else if (Array.isArray(node)) {
      bytes += 1 + node.length;
      for (const item of node) stack.push([item, depth + 1]);
    } else if (typeof node === "object") {
      const entries = Object.entries(node);
      bytes += 1 + entries.length;
      for (const [key, item] of entries) {
        bytes += Buffer.byteLength(key, "utf8") + 3;
        stack.push([item, depth + 1]);
      }
    } else if (node !== undefined) {
      throw new Refusal([{ path: "", message: `the document holds a ${typeof node}, which JSON cannot` }]);
    }
    if (bytes > maxBytes) throw new Refusal([{ path: "", message: `the document is more than ${maxBytes} bytes of JSON` }]);
  }
}

function dialectOf(doc: JsonObject): Dialect {
  if ("swagger" in doc) {
    throw new Refusal([{ path: "/swagger", message: "Swagger 2.0 is not supported: convert the document to OpenAPI 3.0 or 3.1" }]);
  }
  const version = doc.openapi;
  if (typeof version !== "string" || !/^3\.[01]\.\d+$/.test(version)) {
    throw new Refusal([{ path: "/openapi", message: `expected an OpenAPI version 3.0.x or 3.1.x, found ${JSON.stringify(version) ?? "none"}` }]);
  }
  return version.startsWith("3.0.") ? "3.0" : "3.1";
}

/** Refuses references that leave the document or point to nothing in it, then bounds the size the document expands to. */
function checkReferences(doc: JsonObject): void {
  const broken: Problem[] = [];
  const stack: [unknown, string][] = [[doc, ""]];
  while (stack.length > 0) {
    const [node, at] = stack.pop() as [unknown, string];
    if (node === null || typeof node !== "object") continue;
    const entries = Array.isArray(node) ? node.map((v, i) => [String(i), v] as const) : Object.entries(node);
    for (const [key, value] of entries) {
      if (key === "$ref" && typeof value === "string" && !value.startsWith("#")) {
        broken.push({ path: `${at}/$ref`, message: `external reference ${JSON.stringify(value)}: the document must be self-contained` });
      } else if (key === "$ref" && typeof value === "string" && (value === "#" || value.startsWith("#/")) && resolveLocal(doc, value) === undefined) {
        broken.push({ path: `${at}/$ref`, message: `${JSON.stringify(value)} points to nothing in the document` });
      }
      stack.push([value, `${at}/${escapeToken(key)}`]);
    }
  }
  if (broken.length > 0) throw new Refusal(broken.sort(byPath));
  const expanded = expandedNodeCount(doc, OPENAPI_IMPORT_LIMITS.maxExpandedNodes);
  if (expanded > OPENAPI_IMPORT_LIMITS.maxExpandedNodes) {
    throw new Refusal([{ path: "", message: `the document's $refs expand to more than ${OPENAPI_IMPORT_LIMITS.maxExpandedNodes} nodes` }]);
  }
}

/**
 * The node count of the document with every local `$ref` replaced by its target, computed once per object
 * (iteratively, memoised), so that a reference bomb is measured without being expanded. A reference back
 * into an object being counted is a cycle: expanders keep those as references, so it counts as one.
 */
function expandedNodeCount(doc: JsonObject, cap: number): number {
  const memo = new Map<object, number>();
  const active = new Set<object>();
  type Frame = { node: object; children: unknown[]; next: number; total: number };
  const stack: Frame[] = [];
  const childrenOf = (node: object): unknown[] => {
    if (Array.isArray(node)) return node;
    const record = node as JsonObject;
    const children = Object.entries(record)
      .filter(([key, value]) => key !== "$ref" || typeof value !== "string")
      .map(([, value]) => value);
    if (typeof record.$ref === "string") {
      const target = resolveLocal(doc, record.$ref);
      if (target !== undefined) children.push(target);
    }
    return children;
  };
  const open = (node: unknown): number | undefined => {
    if (node === null || typeof node !== "object") return 1;
    const known = memo.get(node);
    if (known !== undefined) return known;
    if (active.has(node)) return 1;
    active.add(node);
    stack.push({ node, children: childrenOf(node), next: 0, total: 1 });
    return undefined;
  };
  let result = open(doc) ?? 0;
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as Frame;
    if (top.total > cap) return top.total;
    if (top.next < top.children.length) {
      const size = open(top.children[top.next++]);
      if (size !== undefined) top.total += size;
      continue;
    }
    stack.pop();
    active.delete(top.node);
    memo.set(top.node, top.total);
    const parent = stack[stack.length - 1];
    if (parent) parent.total += top.total;
    else result = top.total;
  }
  return result;
}

async function validate(doc: JsonObject, dialect: Dialect): Promise<void> {
  // Circular references are left alone (nothing here uses the result).
  const options = { resolve: { external: false }, dereference: { circular: "ignore" } } as SwaggerParser.Options;
  let api: unknown;
  try {
    // On a copy: dereferencing works in place.
    api = await SwaggerParser.dereference(structuredClone(doc) as never, options);
  } catch (error) {
    throw new Refusal(validationProblems(error));
  }
  // swagger-parser's order: the document against the specification's schema, then the rules the schema cannot state.
  const errors = documentSchemaErrors(api, dialect);
  if (errors.length > 0) throw new Refusal(validationProblems({ details: errors }));
  try {
    await SwaggerParser.validate(api as never, { ...options, validate: { schema: false, spec: true } } as SwaggerParser.Options);
  } catch (error) {
    throw new Refusal(validationProblems(error));
  }
}

function validationProblems(error: unknown): Problem[] {
  const details = isObject(error) ? error.details : undefined;
  if (Array.isArray(details) && details.length > 0) {
    const seen = new Set<string>();
    const problems: Problem[] = [];
    for (const detail of details) {
      if (!isObject(detail)) continue;
      const problem = { path: typeof detail.instancePath === "string" ? detail.instancePath : "", message: String(detail.message ?? "is invalid") };
      const key = `${problem.path}\n${problem.message}`;
      if (!seen.has(key)) problems.push(problem);
      seen.add(key);
    }
    return problems;
  }
  // ref-parser's errors carry the location of the offending $ref as a token list.
  const at = isObject(error) && Array.isArray(error.path) ? error.path.map((t) => `/${escapeToken(String(t))}`).join("") : "";
  return [{ path: at, message: cleanParserMessage(messageOf(error)) }];
}

function checkOperationIds(operations: Operation[]): void {
  const seen = new Map<string, string>();
  const problems: Problem[] = [];
  for (const operation of operations) {
    const id = operation.operation.operationId;
    if (typeof id !== "string") continue;
    const first = seen.get(id);
    if (first === undefined) seen.set(id, operation.pointer);
    else problems.push({ path: `${operation.pointer}/operationId`, message: `operationId ${JSON.stringify(id)} is also used at ${first}` });
  }
  if (problems.length > 0) throw new Refusal(problems);
}

// ---------------------------------------------------------------------------------------------------
// Operations, their names and the selection

const HTTP_METHODS = ["delete", "get", "head", "options", "patch", "post", "put", "trace"] as const;

interface Operation {
  path: string;
  method: (typeof HTTP_METHODS)[number];
  operation: JsonObject;
  pathItem: JsonObject;
  /** JSON pointer of the operation object, for messages. */
  pointer: string;
  /** "GET /pets/{petId}". */
  label: string;
}

function listOperations(doc: JsonObject): Operation[] {
  const paths = isObject(doc.paths) ? doc.paths : {};
  const out: Operation[] = [];
  for (const path of Object.keys(paths).sort(compareText)) {
    if (!path.startsWith("/")) continue;
    const pathItem = followRefs(doc, paths[path]);
    if (!isObject(pathItem)) continue;
    for (const method of HTTP_METHODS) {
      const operation = pathItem[method];
      if (!isObject(operation)) continue;
      out.push({ path, method, operation, pathItem, pointer: `/paths/${escapeToken(path)}/${method}`, label: `${method.toUpperCase()} ${path}` });
    }
  }
  return out;
}

/**
 * Tool names for every operation of the document (not only the selected ones, so that a name does not
 * change with the selection). A name taken twice keeps its first holder (in path-then-method order) and the
 * others get `_2`, `_3`… Names are compared ignoring case: they also name ARM resources, which do.
 */
function toolNames(operations: Operation[]): Map<Operation, string> {
  const max = OPENAPI_IMPORT_LIMITS.maxToolName;
  const wanted = operations.map((op) => {
    const fromId = typeof op.operation.operationId === "string" ? sanitiseName(op.operation.operationId) : "";
    return /[A-Za-z0-9]/.test(fromId) ? fromId : sanitiseName(`${op.method}_${op.path}`.replace(/[^A-Za-z0-9]+/g, "_").replace(/^_+|_+$/g, ""));
  });
  const taken = new Set<string>();
  const holders = new Set<number>();
  wanted.forEach((name, i) => {
    if (taken.has(name.toLowerCase())) return;
    taken.add(name.toLowerCase());
    holders.add(i);
  });
  const names = new Map<Operation, string>();
  operations.forEach((op, i) => {
    let name = wanted[i] as string;
    for (let n = 2; !holders.has(i) && taken.has(name.toLowerCase()); n++) {
      const suffix = `_${n}`;
      name = `${(wanted[i] as string).slice(0, max - suffix.length)}${suffix}`;
    }
    taken.add(name.toLowerCase());
    names.set(op, name);
  });
  return names;
}

function sanitiseName(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, OPENAPI_IMPORT_LIMITS.maxToolName);
}

function select(operations: Operation[], include: string[] | undefined): Operation[] {
  if (include === undefined) return operations;
  if (!Array.isArray(include)) throw new Refusal([{ path: "options.include", message: "include is a list of operationIds or \"METHOD /path\"" }]);
  const chosen = new Set<Operation>();
  const problems: Problem[] = [];
  include.forEach((entry, i) => {
    const matches = operations.filter((op) => typeof entry === "string" && (op.operation.operationId === entry || sameLabel(op.label, entry)));
    if (matches.length === 0) problems.push({ path: `options.include[${i}]`, message: `no operation has the operationId or method and path ${JSON.stringify(entry)}` });
    for (const op of matches) chosen.add(op);
  });
  if (problems.length > 0) throw new Refusal(problems);
  return operations.filter((op) => chosen.has(op));
}

function sameLabel(label: string, entry: string): boolean {
  const match = /^\s*([A-Za-z]+)\s+(\S+)\s*$/.exec(entry);
  return match !== null && `${(match[1] as string).toUpperCase()} ${match[2]}` === label;
}

function serverUrlOf(servers: unknown): string | undefined {
  if (!Array.isArray(servers) || !isObject(servers[0]) || typeof servers[0].url !== "string") return undefined;
  const variables = isObject(servers[0].variables) ? servers[0].variables : {};
  return servers[0].url.replace(/\{([^}]+)\}/g, (whole, name: string) => {
    const variable = variables[name];
    return isObject(variable) && typeof variable.default === "string" ? variable.default : whole;
  });
}

// ---------------------------------------------------------------------------------------------------
// One operation → one tool

function toTool(op: Operation, name: string, serverUrl: string | undefined, schemas: SchemaConverter): ConvertedTool {
  for (const [where, servers] of [["path", op.pathItem.servers], ["operation", op.operation.servers]] as const) {
    if (servers !== undefined && serverUrlOf(servers) !== serverUrl) {
      throw new SkipOperation(`the ${where} has servers of its own; one REST API has one backend`);
    }
  }
  const refs = new Set<string>();
  const parameters = parametersOf(op, schemas, refs);
  const body = requestBodyOf(op, schemas, refs);

  // The gateway serves a REST tool with arguments named after the operation's parameters (and `body`),
  // so the catalogued tool is that tool only when those names are usable and distinct as they are.
  const argumentNames = [...parameters.map((p) => p.name), ...(body ? ["body"] : [])];
  const unusable = argumentNames.find((n, i) => !/^[A-Za-z0-9_.-]{1,48}$/.test(n) || argumentNames.indexOf(n) !== i);
  if (unusable !== undefined) throw new SkipOperation(`the argument '${unusable.slice(0, 60)}' is not a distinct argument name ([A-Za-z0-9_.-], ≤ 48, unique across path, query, header and body): the gateway's tool would not match`);
  const properties: [string, unknown][] = [];
  const required: string[] = [];
  const bindingArguments: RestBinding["arguments"] = [];
  for (const parameter of parameters) {
    properties.push([parameter.name, parameter.schema]);
    if (parameter.required) required.push(parameter.name);
    bindingArguments.push({ property: parameter.name, in: parameter.in, name: parameter.name });
  }
  if (body) {
    properties.push(["body", body.schema]);
    if (body.required) required.push("body");
    bindingArguments.push({ property: "body", in: "body", name: "body" });
  }

  const inputSchema: JsonObject = {
    type: "object",
    properties: Object.fromEntries(properties.sort(([a], [b]) => compareText(a, b))),
    required: required.sort(compareText),
    additionalProperties: false,
    ...schemas.defsFor(refs),
  };
  checkToolSchema(inputSchema, "input schema");
  const outputSchema = outputSchemaOf(op, schemas);

  const summary = text(op.operation.summary);
  const description = text(op.operation.description) ?? summary;
  const binding: RestBinding = {
    operationId: name,
    method: op.method.toUpperCase(),
    urlTemplate: op.path,
    templateParameters: parameters.filter((p) => p.in === "path").map((p) => p.contract),
    queryParameters: parameters.filter((p) => p.in === "query").map((p) => p.contract),
    headers: parameters.filter((p) => p.in === "header").map((p) => p.contract),
    ...(body ? { body: { contentType: body.contentType, required: body.required } } : {}),
    arguments: bindingArguments,
  };
  return {
    name,
    ...(summary === undefined ? {} : { title: truncate(summary, OPENAPI_IMPORT_LIMITS.maxDescription) }),
    ...(description === undefined ? {} : { description: truncate(description, OPENAPI_IMPORT_LIMITS.maxDescription) }),
    inputSchema,
    ...(outputSchema ? { outputSchema } : {}),
    annotations: annotationsFor(op.method),
    binding,
  };
}

/** HTTP's own method semantics (RFC 9110 §9.2): safe methods read, PUT and DELETE are idempotent, PUT/PATCH/DELETE may overwrite or remove. */
function annotationsFor(method: Operation["method"]): ConvertedTool["annotations"] {
  const safe = method === "get" || method === "head" || method === "options" || method === "trace";
  return {
    readOnlyHint: safe,
    destructiveHint: method === "delete" || method === "put" || method === "patch",
    idempotentHint: safe || method === "put" || method === "delete",
    // The tool reaches a REST API outside the gateway.
    openWorldHint: true,
  };
}

interface Parameter {
  name: string;
  in: ParameterLocation;
  required: boolean;
  schema: unknown;
  contract: OperationParameter;
}

/** Headers OpenAPI itself says to ignore as parameters: the request's own content negotiation and credentials. */
const IGNORED_HEADERS = new Set(["accept", "content-type", "authorization"]);
const DEFAULT_STYLES: Record<ParameterLocation, { style: string; explode: boolean }> = {
  path: { style: "simple", explode: false },
  query: { style: "form", explode: true },
  header: { style: "simple", explode: false },
};

/** Path, query and header parameters: the path item's, overridden by the operation's (same name and location). Path parameters in template order, the others by name. */
function parametersOf(op: Operation, schemas: SchemaConverter, refs: Set<string>): Parameter[] {
  const byKey = new Map<string, { value: JsonObject; at: string }>();
  for (const [list, at] of [[op.pathItem.parameters, `/paths/${escapeToken(op.path)}/parameters`], [op.operation.parameters, `${op.pointer}/parameters`]] as const) {
    if (!Array.isArray(list)) continue;
    list.forEach((entry, i) => {
      const value = followRefs(schemas.doc, entry);
      if (!isObject(value) || typeof value.name !== "string" || typeof value.in !== "string") throw new SkipOperation(`${at}/${i}: not a parameter`);
      byKey.set(`${value.in}\n${value.name}`, { value, at: `${at}/${i}` });
    });
  }
  const parameters: Parameter[] = [];
  for (const { value, at } of byKey.values()) {
    const name = value.name as string;
    const location = value.in as string;
    const required = value.required === true || location === "path";
    if (location === "cookie") {
      if (required) throw new SkipOperation(`the required cookie parameter ${JSON.stringify(name)} has no place in a tool call`);
      continue;
    }
    if (location === "header" && IGNORED_HEADERS.has(name.toLowerCase())) continue;
    if (location !== "path" && location !== "query" && location !== "header") throw new SkipOperation(`${at}: unknown parameter location ${JSON.stringify(location)}`);
    const defaults = DEFAULT_STYLES[location];
    if ((value.style !== undefined && value.style !== defaults.style) || (value.explode !== undefined && value.explode !== defaults.explode) || value.allowReserved === true) {
      throw new SkipOperation(`parameter ${JSON.stringify(name)} is serialised in a non-default style`);
    }
    if (value.schema === undefined) throw new SkipOperation(`parameter ${JSON.stringify(name)} is described by content, not a schema`);
    const converted = schemas.convertInline(value.schema, `${at}/schema`, refs);
    if (converted === false) throw new SkipOperation(`parameter ${JSON.stringify(name)} accepts no value`);
    const schema: JsonObject = isObject(converted) ? { ...converted } : {};
    const description = text(value.description);
    if (description !== undefined && schema.description === undefined) schema.description = description;
    if (value.deprecated === true) schema.deprecated = true;
    const contract: OperationParameter = { name, type: schemas.typeOf(value.schema), required, ...(description === undefined ? {} : { description }) };
    parameters.push({ name, in: location, required, schema: sortKeys(schema), contract });
  }

  const template = [...op.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);
  const declared = parameters.filter((p) => p.in === "path").map((p) => p.name);
  const undeclared = template.filter((t) => !declared.includes(t));
  if (undeclared.length > 0) throw new SkipOperation(`path parameter ${undeclared.map((t) => `{${t}}`).join(", ")} is not declared`);
  const unused = declared.filter((d) => !template.includes(d));
  if (unused.length > 0) throw new SkipOperation(`path parameter ${JSON.stringify(unused[0])} is not in the path`);

  const rank = (p: Parameter): number => (p.in === "path" ? 0 : p.in === "query" ? 1 : 2);
  return parameters.sort((a, b) => rank(a) - rank(b) || (a.in === "path" ? template.indexOf(a.name) - template.indexOf(b.name) : compareText(a.name, b.name)));
}

const JSON_MEDIA_TYPE = /^application\/(?:[\w.-]+\+)?json\s*(?:;.*)?$/i;

function jsonMediaType(content: unknown): { contentType: string; media: JsonObject } | undefined {
  if (!isObject(content)) return undefined;
  const candidates = Object.keys(content).filter((type) => JSON_MEDIA_TYPE.test(type)).sort(compareText);
  const contentType = candidates.find((type) => type.toLowerCase() === "application/json") ?? candidates[0];
  if (contentType === undefined) return undefined;
  const media = content[contentType];
  return { contentType, media: isObject(media) ? media : {} };
}

function requestBodyOf(op: Operation, schemas: SchemaConverter, refs: Set<string>): { contentType: string; required: boolean; schema: unknown } | undefined {
  if (op.operation.requestBody === undefined) return undefined;
  const body = followRefs(schemas.doc, op.operation.requestBody);
  if (!isObject(body)) throw new SkipOperation("the request body is not an object");
  const json = jsonMediaType(body.content);
  if (!json) {
    const types = isObject(body.content) ? Object.keys(body.content).sort(compareText).join(", ") : "none";
    throw new SkipOperation(`the request body is not JSON (content types: ${types || "none"})`);
  }
  const converted = json.media.schema === undefined ? {} : schemas.convertInline(json.media.schema, `${op.pointer}/requestBody/content/${escapeToken(json.contentType)}/schema`, refs);
  const description = text(body.description);
  const schema = description !== undefined && isObject(converted) && converted.description === undefined ? sortKeys({ ...converted, description }) : converted;
  return { contentType: json.contentType, required: body.required === true, schema };
}

/**
 * The schema of the first 2xx response with a JSON body, when it describes an object (MCP's structured
 * content is an object). Optional: a response schema that cannot be converted leaves the tool without one.
 */
function outputSchemaOf(op: Operation, schemas: SchemaConverter): JsonObject | undefined {
  const responses = isObject(op.operation.responses) ? op.operation.responses : {};
  const codes = Object.keys(responses)
    .filter((code) => /^2(\d\d|XX)$/i.test(code))
    .sort((a, b) => compareText(a.toUpperCase(), b.toUpperCase()));
  for (const code of codes) {
    const response = followRefs(schemas.doc, responses[code]);
    const json = isObject(response) ? jsonMediaType(response.content) : undefined;
    if (!json) continue;
    if (json.media.schema === undefined) return undefined;
    try {
      const refs = new Set<string>();
      const converted = schemas.convertInline(json.media.schema, `${op.pointer}/responses/${code}/content/${escapeToken(json.contentType)}/schema`, refs);
      const root = schemas.objectRoot(converted, refs);
      if (!root) return undefined;
      const outputSchema = { ...root.schema, ...schemas.defsFor(root.refs) };
      checkToolSchema(outputSchema, "output schema");
      return outputSchema;
    } catch (error) {
      if (error instanceof SkipOperation) return undefined;
      throw error;
    }
  }
  return undefined;
}

let metaValidator: Ajv2020 | undefined;

/** The schemas are built from checked parts, but 3.1 documents may carry keywords with values JSON Schema does not allow: such a tool is skipped, never published broken. */
function checkToolSchema(schema: JsonObject, what: string): void {
  if (countNodes(schema, OPENAPI_IMPORT_LIMITS.maxToolSchemaNodes) > OPENAPI_IMPORT_LIMITS.maxToolSchemaNodes) {
    throw new SkipOperation(`the ${what} has more than ${OPENAPI_IMPORT_LIMITS.maxToolSchemaNodes} nodes`);
  }
  metaValidator ??= new Ajv2020({ strict: false, validateFormats: false });
  if (!metaValidator.validateSchema(schema)) {
    const first = metaValidator.errors?.[0];
    throw new SkipOperation(`the ${what} is not valid JSON Schema 2020-12: ${first ? `${first.instancePath || "/"} ${first.message ?? ""}`.trim() : "invalid"}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Schemas: OpenAPI schema objects → JSON Schema 2020-12 with $defs

/** Keywords whose value is a map of subschemas. */
const SCHEMA_MAPS = new Set(["properties", "patternProperties", "$defs", "dependentSchemas"]);
/** Keywords whose value is one subschema. */
const SCHEMA_SINGLES = new Set(["items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames", "unevaluatedItems", "unevaluatedProperties", "contentSchema"]);
/** Keywords whose value is a list of subschemas. */
const SCHEMA_LISTS = new Set(["allOf", "anyOf", "oneOf", "prefixItems"]);
/** JSON Schema 2020-12 keywords whose value is data, copied as it is. Everything else (OpenAPI's discriminator, xml,
 * externalDocs, extensions, $id/$schema/$anchor that would re-root the $defs references) is dropped. */
const DATA_KEYWORDS = new Set([
  "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
  "maxItems", "minItems", "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties", "required", "dependentRequired",
  "title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples", "format", "contentEncoding", "contentMediaType", "$comment",
]);

type Converted = { schema: unknown; refs: Set<string> } | { error: string };

interface Session {
  /** Components referenced (by name). */
  refs: Set<string>;
  /** Nodes this conversion may still produce. */
  budget: { left: number };
  /** Pointers being inlined: a pointer met again is a cycle outside components/schemas. */
  inlining: string[];
}

class SchemaConverter {
  private readonly components = new Map<string, Converted>();
  private readonly componentSchemas: JsonObject;

  constructor(
    readonly doc: JsonObject,
    private readonly dialect: Dialect,
  ) {
    const components = isObject(doc.components) ? doc.components : {};
    this.componentSchemas = isObject(components.schemas) ? components.schemas : {};
  }

  /** A schema of an operation; the components it references are added to `refs`. */
  convertInline(schema: unknown, at: string, refs: Set<string>): unknown {
    const session: Session = { refs, budget: { left: OPENAPI_IMPORT_LIMITS.maxToolSchemaNodes }, inlining: [] };
    return this.convert(schema, at, session, 0);
  }

  /** `{ $defs }` with every component the references reach (none: nothing), in name order. */
  defsFor(refs: Set<string>): { $defs?: JsonObject } {
    const reached = new Set<string>();
    const queue = [...refs];
    while (queue.length > 0) {
      const name = queue.pop() as string;
      if (reached.has(name)) continue;
      reached.add(name);
      const component = this.component(name);
      if ("error" in component) throw new SkipOperation(`components/schemas/${name}: ${component.error}`);
      queue.push(...component.refs);
    }
    if (reached.size === 0) return {};
    const names = [...reached].sort(compareText);
    return { $defs: Object.fromEntries(names.map((name) => [name, structuredClone((this.component(name) as { schema: unknown }).schema)])) };
  }

  /**
   * The object schema a converted schema stands for, with the components it needs: itself, or, when it is
   * a bare reference to a whole component, that component written out at the root (so that clients see its
   * properties) unless the component has $defs of its own.
   */
  objectRoot(converted: unknown, refs: Set<string>): { schema: JsonObject; refs: Set<string> } | undefined {
    let schema = converted;
    let needed = refs;
    for (let hops = 0; hops < 8 && isObject(schema); hops++) {
      if (schema.type === "object") return schema.$defs === undefined || needed.size === 0 ? { schema, refs: needed } : undefined;
      const name = typeof schema.$ref === "string" && Object.keys(schema).length === 1 ? defName(schema.$ref) : undefined;
      if (name === undefined || (parseLocalRef(schema.$ref as string) ?? []).length !== 2) return undefined;
      const component = this.component(name);
      if ("error" in component) return undefined;
      schema = component.schema;
      needed = component.refs;
    }
    return undefined;
  }

  /** The ARM parameter type of an OpenAPI schema (following references to components a few steps). */
  typeOf(schema: unknown): string {
    let current = schema;
    for (let hops = 0; hops < 8 && isObject(current); hops++) {
      const types = Array.isArray(current.type) ? current.type : [current.type];
      const type = types.find((t) => typeof t === "string" && t !== "null");
      if (typeof type === "string") return ["string", "integer", "number", "boolean", "array", "object"].includes(type) ? type : "string";
      if (typeof current.$ref !== "string") break;
      current = resolveLocal(this.doc, current.$ref);
    }
    return "string";
  }

  private component(name: string): Converted {
    let converted = this.components.get(name);
    if (converted === undefined) {
      const session: Session = { refs: new Set(), budget: { left: OPENAPI_IMPORT_LIMITS.maxToolSchemaNodes }, inlining: [] };
      try {
        if (!Object.hasOwn(this.componentSchemas, name)) throw new SkipOperation("is not defined");
        converted = { schema: this.convert(this.componentSchemas[name], `/components/schemas/${escapeToken(name)}`, session, 0), refs: session.refs };
      } catch (error) {
        if (!(error instanceof SkipOperation)) throw error;
        converted = { error: error.message };
      }
      this.components.set(name, converted);
    }
    return converted;
  }

  private convert(schema: unknown, at: string, session: Session, depth: number): unknown {
    if (typeof schema === "boolean") return schema;
    if (!isObject(schema)) throw new SkipOperation(`${at}: a schema is an object or a boolean`);
    if (depth > OPENAPI_IMPORT_LIMITS.maxSchemaDepth) throw new SkipOperation(`${at}: schemas nested more than ${OPENAPI_IMPORT_LIMITS.maxSchemaDepth} deep`);
    spend(session, 1);

    const out: JsonObject = {};
    let inlined: unknown;
    if (typeof schema.$ref === "string") {
      const target = this.reference(schema.$ref, at, session, depth);
      // OpenAPI 3.0 ignores a reference's siblings; 3.1 (JSON Schema 2020-12) applies them too.
      if (this.dialect === "3.0" || Object.keys(schema).length === 1) return target;
      if (isObject(target) && typeof target.$ref === "string" && Object.keys(target).length === 1) out.$ref = target.$ref;
      else inlined = target;
    }

    for (const key of Object.keys(schema).sort(compareText)) {
      const value = schema[key];
      const here = `${at}/${escapeToken(key)}`;
      if (SCHEMA_MAPS.has(key)) {
        if (!isObject(value)) throw new SkipOperation(`${here}: expected an object of schemas`);
        out[key] = Object.fromEntries(Object.keys(value).sort(compareText).map((name) => [name, this.convert(value[name], `${here}/${escapeToken(name)}`, session, depth + 1)]));
      } else if (SCHEMA_SINGLES.has(key)) {
        out[key] = this.convert(value, here, session, depth + 1);
      } else if (SCHEMA_LISTS.has(key)) {
        if (!Array.isArray(value)) throw new SkipOperation(`${here}: expected a list of schemas`);
        out[key] = value.map((item, i) => this.convert(item, `${here}/${i}`, session, depth + 1));
      } else if (DATA_KEYWORDS.has(key)) {
        spend(session, countNodes(value, session.budget.left + 1));
        out[key] = sortKeys(value);
      }
    }
    if (inlined !== undefined) out.allOf = [inlined, ...(Array.isArray(out.allOf) ? out.allOf : [])];

    // OpenAPI 3.0's own keywords, in their 2020-12 form.
    if (schema.example !== undefined && out.examples === undefined) out.examples = [sortKeys(schema.example)];
    for (const [exclusive, bound] of [["exclusiveMinimum", "minimum"], ["exclusiveMaximum", "maximum"]] as const) {
      if (typeof schema[exclusive] !== "boolean") continue;
      delete out[exclusive];
      if (schema[exclusive] === true && typeof schema[bound] === "number") {
        out[exclusive] = schema[bound];
        delete out[bound];
      }
    }
    const sorted = sortKeys(out) as JsonObject;
    return this.dialect === "3.0" && schema.nullable === true ? withNull(sorted) : sorted;
  }

  /** A `$ref` of a schema: to a component, a `$defs` reference; to anything else in the document, the target itself, converted. */
  private reference(ref: string, at: string, session: Session, depth: number): unknown {
    const tokens = parseLocalRef(ref);
    if (tokens === undefined) throw new SkipOperation(`${at}/$ref: unsupported reference ${JSON.stringify(ref)}`);
    if (tokens.length >= 3 && tokens[0] === "components" && tokens[1] === "schemas") {
      const name = tokens[2] as string;
      if (!Object.hasOwn(this.componentSchemas, name)) throw new SkipOperation(`${at}/$ref: ${JSON.stringify(ref)} does not exist`);
      session.refs.add(name);
      return { $ref: `#/$defs${tokens.slice(2).map((t) => `/${escapeToken(t)}`).join("")}` };
    }
    const pointer = tokens.map((t) => `/${escapeToken(t)}`).join("");
    if (session.inlining.includes(pointer)) throw new SkipOperation(`${at}/$ref: a circular reference outside components/schemas (${JSON.stringify(ref)})`);
    const target = resolveLocal(this.doc, ref);
    if (target === undefined) throw new SkipOperation(`${at}/$ref: ${JSON.stringify(ref)} does not exist`);
    session.inlining.push(pointer);
    const converted = this.convert(target, pointer, session, depth + 1);
    session.inlining.pop();
    return converted;
  }
}

/**
 * A copy of a converted schema with each `$ref` (at schema positions only: a "$ref" inside an enum or a
 * default is data) replaced by `map(ref)`. For schemas this module produced, whose depth it bounds.
 */
export function mapSchemaRefs(schema: unknown, map: (ref: string) => string): unknown {
  if (!isObject(schema)) return schema;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === "$ref" && typeof value === "string") out[key] = map(value);
    else if (SCHEMA_MAPS.has(key) && isObject(value)) out[key] = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, mapSchemaRefs(sub, map)]));
    else if (SCHEMA_SINGLES.has(key)) out[key] = mapSchemaRefs(value, map);
    else if (SCHEMA_LISTS.has(key) && Array.isArray(value)) out[key] = value.map((sub) => mapSchemaRefs(sub, map));
    else out[key] = value;
  }
  return out;
}

/** OpenAPI 3.0's `nullable: true`: null joins the types (and the enum); a composed schema becomes "it, or null". */
function withNull(schema: JsonObject): JsonObject {
  if (schema.$ref !== undefined || schema.allOf !== undefined || schema.anyOf !== undefined || schema.oneOf !== undefined) {
    return { anyOf: [schema, { type: "null" }] };
  }
  const out: JsonObject = { ...schema };
  if (typeof out.type === "string") out.type = out.type === "null" ? "null" : [out.type, "null"];
  else if (Array.isArray(out.type) && !out.type.includes("null")) out.type = [...out.type, "null"];
  if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
  return out;
}

function spend(session: Session, nodes: number): void {
  session.budget.left -= nodes;
  if (session.budget.left < 0) throw new SkipOperation(`a schema larger than ${OPENAPI_IMPORT_LIMITS.maxToolSchemaNodes} nodes`);
}

/** The component a `#/$defs/Name…` reference names. */
function defName(ref: string): string | undefined {
  const tokens = parseLocalRef(ref);
  return tokens && tokens[0] === "$defs" && tokens.length >= 2 ? tokens[1] : undefined;
}

// ---------------------------------------------------------------------------------------------------
// Small helpers

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Code-unit order: the same in every locale. */
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byPath(a: Problem, b: Problem): number {
  return compareText(a.path, b.path);
}

function escapeToken(token: string): string {
  return token.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** "#/a/b~1c" → ["a", "b/c"]; "#" → []; anything else (other documents, anchors) → undefined. */
function parseLocalRef(ref: string): string[] | undefined {
  if (ref === "#") return [];
  if (!ref.startsWith("#/")) return undefined;
  let fragment: string;
  try {
    fragment = decodeURIComponent(ref.slice(2));
  } catch {
    return undefined;
  }
  return fragment.split("/").map((t) => t.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function resolveLocal(doc: JsonObject, ref: string): unknown {
  const tokens = parseLocalRef(ref);
  if (tokens === undefined) return undefined;
  let node: unknown = doc;
  for (const token of tokens) {
    if (Array.isArray(node) && /^\d+$/.test(token)) node = node[Number(token)];
    else if (isObject(node) && Object.hasOwn(node, token)) node = node[token];
    else return undefined;
  }
  return node;
}

/** A parameter, request body, response or path item, through its chain of references (at most a few; a loop ends it). */
function followRefs(doc: JsonObject, value: unknown): unknown {
  let current = value;
  for (let hops = 0; hops < 16 && isObject(current) && typeof current.$ref === "string"; hops++) current = resolveLocal(doc, current.$ref);
  return isObject(current) && typeof current.$ref === "string" ? undefined : current;
}

/** A copy with every object's keys sorted (values from schemas: their key order means nothing). Depth is bounded by the document's. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (!isObject(value)) return value;
  return Object.fromEntries(
    Object.keys(value)
      .filter((key) => value[key] !== undefined)
      .sort(compareText)
      .map((key) => [key, sortKeys(value[key])]),
  );
}

/** Nodes of a JSON value, counted iteratively up to `cap` (then cap + 1). */
function countNodes(value: unknown, cap: number): number {
  const stack: unknown[] = [value];
  let count = 0;
  while (stack.length > 0 && count <= cap) {
    const node = stack.pop();
    count++;
    if (node !== null && typeof node === "object") stack.push(...Object.values(node));
  }
  return Math.min(count, cap + 1);
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

/** At most `max` UTF-16 units, never splitting a surrogate pair, ending in "…" when cut. */
function truncate(value: string, max: number): string {
  if (value.length <= max) return value;
  let cut = value.slice(0, max - 1);
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}…`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The longest part of a parser's message kept (its first line: the YAML reader quotes the offending line of the document below it). */
const MAX_PARSER_MESSAGE = 500;

function cleanParserMessage(message: string): string {
  // Cut before the patterns run: a quoted line may be megabytes without a space, over which `\S*` backtracks quadratically.
  const firstLine = message.split("\n", 1)[0] ?? "";
  const clipped = firstLine.length > MAX_PARSER_MESSAGE ? `${firstLine.slice(0, MAX_PARSER_MESSAGE)}…` : firstLine;
  return clipped.replace(/Error parsing \S*document\.yaml:\s*/g, "").replace(/\S*document\.yaml/g, "the document");
}
