import { createHash } from "node:crypto";
import { Ajv, type Options as AjvOptions, type ValidateFunction } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";
import { RE2JS } from "re2js";
import { canonicalJson } from "../../util/canonical-json.js";

/**
 * Checks of one tool definition against the MCP revision its server negotiated. Findings are data (stored
 * with the definition and shown to approvers), so nothing here throws. Servers send fields newer than the
 * negotiated revision (the spec's reference server does), so newer fields are checked and flagged, never
 * refused, and fields nobody knows are left alone: the spec never closes the Tool object.
 *
 * The JSON Schemas inside a tool come from whoever runs the server. Ajv has no bound of its own (deep
 * nesting overflows its stack, a backtracking pattern takes seconds), so every schema is measured first by
 * an iterative walk, and the Ajv instances compile patterns with re2js, whose matching time is linear.
 */

export interface ToolFinding {
  severity: "error" | "warning";
  code: string;
  /** JSON Pointer into the tool definition ("" is the tool itself). */
  path: string;
  message: string;
}

export interface ToolAnnotationFlags {
  readOnly: boolean;
  destructive: boolean;
  idempotent: boolean;
  openWorld: boolean;
}

/** The name rule of the gateway, which compares names inside literal `|`-separated lists: nothing else may pass. */
const ROUTABLE_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

/** Revisions whose Tool fields this file knows (from the spec's schema.ts of each). */
const V2024_11_05 = "2024-11-05";
const V2025_03_26 = "2025-03-26";
const V2025_06_18 = "2025-06-18";
const V2025_11_25 = "2025-11-25";
const V2026_07_28 = "2026-07-28";
const LATEST_KNOWN = V2026_07_28;

export const SCHEMA_LIMITS = {
  maxBytes: 64 * 1024,
  maxDepth: 32,
  maxNodes: 2_000,
  maxPatternLength: 1_024,
} as const;

type Dialect = "draft-07" | "2020-12";

/** A Map, not an object literal: a `$schema` of "constructor" must not find Object's. */
const DIALECT_IDS = new Map<string, Dialect>([
  ["http://json-schema.org/draft-07/schema", "draft-07"],
  ["http://json-schema.org/draft-07/schema#", "draft-07"],
  ["https://json-schema.org/draft-07/schema", "draft-07"],
  ["https://json-schema.org/draft-07/schema#", "draft-07"],
  ["https://json-schema.org/draft/2020-12/schema", "2020-12"],
  ["https://json-schema.org/draft/2020-12/schema#", "2020-12"],
]);

/** The base URI a schema without `$id` is compiled under (a name that can never be fetched). */
const ROOT_BASE = "urn:aigov:tool-schema";
/** Keywords whose values are instance data, not subschemas: a `$ref` or `pattern` string inside them means nothing. */
const DATA_KEYWORDS = new Set(["const", "enum", "default", "examples"]);
const REF_KEYWORDS = new Set(["$ref", "$dynamicRef", "$recursiveRef"]);
const TASK_SUPPORT = new Set(["forbidden", "optional", "required"]);
const HINTS = ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"] as const;
/** Enough of a schema error to act on; Ajv's full text can repeat the schema back. */
const MAX_MESSAGE = 300;

export function validateTool(raw: unknown, protocolVersion: string): ToolFinding[] {
  const findings: ToolFinding[] = [];
  try {
    checkTool(raw, protocolVersion, findings);
  } catch (error) {
    // Nothing above should throw; if something does, the definition is still unusable, and the finding says so.
    findings.push(finding("error", "validation_failed", "", `the definition could not be checked: ${describe(error)}`));
  }
  return findings;
}

/** The spec's defaults. Destructive and idempotent mean something only for a tool that writes, so a read-only one is neither destructive nor repeated-with-effect. */
export function annotationsOf(raw: unknown): ToolAnnotationFlags {
  let annotations: Record<string, unknown> = {};
  try {
    if (isRecord(raw) && isRecord(raw.annotations)) annotations = { ...raw.annotations };
  } catch {
    // unreadable: the defaults, which assume the worst of a tool, apply
  }
  const hint = (key: (typeof HINTS)[number], fallback: boolean): boolean => (typeof annotations[key] === "boolean" ? (annotations[key] as boolean) : fallback);
  const readOnly = hint("readOnlyHint", false);
  return {
    readOnly,
    destructive: readOnly ? false : hint("destructiveHint", true),
    idempotent: readOnly ? true : hint("idempotentHint", false),
    openWorld: hint("openWorldHint", true),
  };
}

/** Checks a tools/call result's structuredContent against the tool's outputSchema (the client's SHOULD in 2025-06-18+). */
export function validateOutput(structuredContent: unknown, outputSchema: unknown, protocolVersion: string): ToolFinding[] {
  const findings: ToolFinding[] = [];
  try {
    const version = revisionOf(protocolVersion, findings);
    if (version <= V2025_11_25 && !isRecord(structuredContent)) {
      findings.push(finding("error", "structured_content_not_object", "/structuredContent", `structuredContent must be an object in ${version}`));
      return findings;
    }
    if (outputSchema === undefined) return findings;
    const validate = prepareSchema(outputSchema, version, "/outputSchema", findings);
    if (!validate) return findings;
    const ajvValidate = validate.fn;
    if (!ajvValidate(structuredContent)) {
      const first = ajvValidate.errors?.[0];
      findings.push(
        finding("error", "output_mismatch", `/structuredContent${first?.instancePath ?? ""}`, clip(`structuredContent ${first?.message ?? "does not match the outputSchema"}`)),
      );
    }
  } catch (error) {
    findings.push(finding("error", "output_validation_failed", "/structuredContent", `structuredContent could not be checked: ${describe(error)}`));
  }
  return findings;
}

function checkTool(raw: unknown, protocolVersion: string, findings: ToolFinding[]): void {
  const version = revisionOf(protocolVersion, findings);
  if (!isRecord(raw)) {
    findings.push(finding("error", "tool_not_object", "", "a tool must be a JSON object"));
    return;
  }
  checkName(raw, findings);
  if (raw.description !== undefined && typeof raw.description !== "string") wrongType(findings, "/description", "description", "a string");
  checkNewerField(raw, "title", V2025_06_18, version, findings);
  if (raw.title !== undefined && typeof raw.title !== "string") wrongType(findings, "/title", "title", "a string");
  checkInputSchema(raw, version, findings);
  checkOutputSchema(raw, version, findings);
  checkAnnotations(raw, version, findings);
  checkIcons(raw, version, findings);
  checkExecution(raw, version, findings);
  if (raw._meta !== undefined && !isRecord(raw._meta)) wrongType(findings, "/_meta", "_meta", "an object");
}

function checkName(raw: Record<string, unknown>, findings: ToolFinding[]): void {
  if (!("name" in raw) || raw.name === undefined) {
    findings.push(finding("error", "name_missing", "/name", "a tool must have a name"));
  } else if (typeof raw.name !== "string") {
    findings.push(finding("error", "name_not_string", "/name", "the name must be a string"));
  } else if (!ROUTABLE_NAME.test(raw.name)) {
    findings.push(finding("error", "name_not_routable", "/name", "the name must be 1 to 128 characters from A-Z, a-z, 0-9, '_', '.', '-' to be routed by the gateway"));
  }
}

function checkInputSchema(raw: Record<string, unknown>, version: string, findings: ToolFinding[]): void {
  const schema = raw.inputSchema;
  if (schema === undefined) {
    findings.push(finding("error", "input_schema_missing", "/inputSchema", "a tool must have an inputSchema"));
    return;
  }
  if (!isRecord(schema)) {
    findings.push(finding("error", "input_schema_not_object", "/inputSchema", "the inputSchema must be a JSON object"));
    return;
  }
  if (schema.type !== "object") {
    findings.push(finding("error", "input_schema_root_not_object", "/inputSchema/type", 'the inputSchema must have type "object" at its root'));
  }
  prepareSchema(schema, version, "/inputSchema", findings);
}

function checkOutputSchema(raw: Record<string, unknown>, version: string, findings: ToolFinding[]): void {
  const schema = raw.outputSchema;
  if (schema === undefined) return;
  checkNewerField(raw, "outputSchema", V2025_06_18, version, findings);
  if (!isRecord(schema)) {
    findings.push(finding("error", "output_schema_not_object", "/outputSchema", "the outputSchema must be a JSON object"));
    return;
  }
  // 2026-07-28 lets structuredContent be any JSON value, so only earlier revisions pin the root to an object.
  if (version <= V2025_11_25 && schema.type !== "object") {
    findings.push(finding("error", "output_schema_root_not_object", "/outputSchema/type", `the outputSchema must have type "object" at its root in ${version}`));
  }
  prepareSchema(schema, version, "/outputSchema", findings);
}

function checkAnnotations(raw: Record<string, unknown>, version: string, findings: ToolFinding[]): void {
  if (raw.annotations === undefined) return;
  checkNewerField(raw, "annotations", V2025_03_26, version, findings);
  if (!isRecord(raw.annotations)) {
    wrongType(findings, "/annotations", "annotations", "an object");
    return;
  }
  const annotations = raw.annotations;
  if (annotations.title !== undefined && typeof annotations.title !== "string") wrongType(findings, "/annotations/title", "annotations.title", "a string");
  for (const hint of HINTS) {
    // A hint of the wrong type is ignored (annotationsOf falls back to the default), which an approver should know.
    if (annotations[hint] !== undefined && typeof annotations[hint] !== "boolean") wrongType(findings, `/annotations/${hint}`, `annotations.${hint}`, "a boolean (the default applies)");
  }
}

function checkIcons(raw: Record<string, unknown>, version: string, findings: ToolFinding[]): void {
  if (raw.icons === undefined) return;
  checkNewerField(raw, "icons", V2025_11_25, version, findings);
  if (!Array.isArray(raw.icons)) {
    wrongType(findings, "/icons", "icons", "an array");
    return;
  }
  raw.icons.forEach((icon: unknown, i) => {
    const at = `/icons/${i}`;
    if (!isRecord(icon)) return wrongType(findings, at, `icons[${i}]`, "an object");
    if (typeof icon.src !== "string") wrongType(findings, `${at}/src`, `icons[${i}].src`, "a string");
    if (icon.mimeType !== undefined && typeof icon.mimeType !== "string") wrongType(findings, `${at}/mimeType`, `icons[${i}].mimeType`, "a string");
    if (icon.sizes !== undefined && !(Array.isArray(icon.sizes) && icon.sizes.every((s) => typeof s === "string"))) {
      wrongType(findings, `${at}/sizes`, `icons[${i}].sizes`, "an array of strings");
    }
    if (icon.theme !== undefined && icon.theme !== "light" && icon.theme !== "dark") wrongType(findings, `${at}/theme`, `icons[${i}].theme`, '"light" or "dark"');
  });
}

function checkExecution(raw: Record<string, unknown>, version: string, findings: ToolFinding[]): void {
  // 2026-07-28 moved tasks to an extension: there `execution` is an unknown field like any other.
  if (raw.execution === undefined || version >= V2026_07_28) return;
  checkNewerField(raw, "execution", V2025_11_25, version, findings);
  if (!isRecord(raw.execution)) {
    wrongType(findings, "/execution", "execution", "an object");
    return;
  }
  const support = raw.execution.taskSupport;
  if (support !== undefined && (typeof support !== "string" || !TASK_SUPPORT.has(support))) {
    wrongType(findings, "/execution/taskSupport", "execution.taskSupport", '"forbidden", "optional" or "required"');
  }
}

function checkNewerField(raw: Record<string, unknown>, field: string, since: string, version: string, findings: ToolFinding[]): void {
  if (raw[field] !== undefined && version < since) {
    findings.push(finding("warning", "field_newer_than_version", `/${field}`, `${field} is defined from ${since}; the server negotiated ${version}`));
  }
}

/**
 * The negotiated revision as a date string, which orders revisions. A string that is not a date is a
 * revision this code has not met: it is judged as the newest known one, and said so.
 */
function revisionOf(protocolVersion: string, findings: ToolFinding[]): string {
  if (typeof protocolVersion === "string" && /^\d{4}-\d{2}-\d{2}$/.test(protocolVersion)) return protocolVersion < V2024_11_05 ? V2024_11_05 : protocolVersion;
  findings.push(finding("warning", "protocol_version_unknown", "", `unknown protocol version; checked as ${LATEST_KNOWN}`));
  return LATEST_KNOWN;
}

// ---- JSON Schemas -------------------------------------------------------------------------------------

interface PreparedSchema {
  fn: ValidateFunction;
}

/** What Ajv made of one schema: its validator, or the finding that stopped it (paths relative to the schema). */
type Compiled = { fn: ValidateFunction } | { finding: ToolFinding };

/**
 * Measures, meta-validates and compiles one schema, reporting what stops it. Returns the validator when the
 * schema can be enforced (the caller may use it for output checks), undefined otherwise.
 */
function prepareSchema(schema: unknown, version: string, at: string, findings: ToolFinding[]): PreparedSchema | undefined {
  if (!isRecord(schema)) {
    findings.push(finding("error", "schema_not_object", at, "a schema here must be a JSON object"));
    return undefined;
  }
  const dialect = dialectOf(schema, version);
  if (dialect === undefined) {
    findings.push(finding("error", "schema_dialect_unsupported", `${at}/$schema`, "the $schema dialect is not supported (draft-07 and 2020-12 are)"));
    return undefined;
  }
  const measured = findings.length;
  measureSchema(schema, at, findings);
  if (findings.length > measured) return undefined;

  const compiled = compiledFor(dialect, schema);
  if ("fn" in compiled) return { fn: compiled.fn };
  findings.push({ ...compiled.finding, path: `${at}${compiled.finding.path}` });
  return undefined;
}

/**
 * Compiling is most of the cost of a check (code generation), and the same schemas come back: every
 * rediscovery of a server, every output check of a tool. Measured schemas are at most 64 KiB, so the
 * canonical text is a cheap key once hashed.
 */
const COMPILED_CACHE_SIZE = 1_000;
const compiledCache = new Map<string, Compiled>();

function compiledFor(dialect: Dialect, schema: Record<string, unknown>): Compiled {
  const key = `${dialect}:${createHash("sha256").update(canonicalJson(schema)).digest("base64")}`;
  const hit = compiledCache.get(key);
  if (hit) {
    compiledCache.delete(key);
    compiledCache.set(key, hit);
    return hit;
  }
  const made = compile(dialect, schema);
  compiledCache.set(key, made);
  if (compiledCache.size > COMPILED_CACHE_SIZE) compiledCache.delete(compiledCache.keys().next().value!);
  return made;
}

function compile(dialect: Dialect, schema: Record<string, unknown>): Compiled {
  // The instance already is the dialect; a spelling of $schema Ajv does not register (https, no '#') would make it look for one.
  const { $schema: _dialect, ...body } = schema;
  const ajv = ajvFor(dialect);
  try {
    if (!ajv.validateSchema(body)) {
      const first = ajv.errors?.[0];
      return { finding: finding("error", "schema_invalid", first?.instancePath ?? "", clip(`not a valid ${dialect} schema: ${first?.message ?? "rejected by the meta-schema"}`)) };
    }
  } catch (error) {
    return { finding: finding("error", "schema_invalid", "", clip(`not a valid ${dialect} schema: ${describe(error)}`)) };
  }
  try {
    // Without a base URI Ajv cannot resolve "#" (the root), which recursive schemas use; nothing is registered under it.
    return { fn: ajv.compile(body.$id === undefined ? { $id: ROOT_BASE, ...body } : body) };
  } catch (error) {
    return { finding: compileFinding(error, "") };
  }
}

function compileFinding(error: unknown, at: string): ToolFinding {
  const name = error instanceof Error ? error.constructor.name : "";
  if (name.startsWith("RE2JS")) return patternFinding(error, at);
  if (error !== null && typeof error === "object" && "missingRef" in error) {
    return finding("error", "schema_ref_unresolved", at, clip(`a $ref does not resolve inside the schema: ${String((error as { missingRef: unknown }).missingRef)}`));
  }
  return finding("error", "schema_compile_failed", at, clip(`the schema could not be compiled: ${describe(error)}`));
}

function dialectOf(schema: Record<string, unknown>, version: string): Dialect | undefined {
  const declared = schema.$schema;
  // SEP-1613: a schema without $schema is 2020-12 from 2025-11-25, and draft-07 before.
  if (declared === undefined) return version >= V2025_11_25 ? "2020-12" : "draft-07";
  return typeof declared === "string" ? DIALECT_IDS.get(declared) : undefined;
}

interface WalkItem {
  value: unknown;
  path: string;
  depth: number;
  /** Inside const/enum/default/examples: instance data, where keyword-looking keys mean nothing. */
  data: boolean;
}

/**
 * One pass with an explicit stack: depth and node count stop the walk as soon as they are passed, so a
 * schema nested 20,000 deep costs 33 steps. External references and oversized patterns are reported by path.
 */
function measureSchema(schema: Record<string, unknown>, at: string, findings: ToolFinding[]): void {
  const stack: WalkItem[] = [{ value: schema, path: at, depth: 1, data: false }];
  let nodes = 0;
  while (stack.length > 0) {
    const { value, path, depth, data } = stack.pop()!;
    if (value === null || typeof value !== "object") continue;
    if (depth > SCHEMA_LIMITS.maxDepth) {
      findings.push(finding("error", "schema_too_deep", at, `the schema nests deeper than ${SCHEMA_LIMITS.maxDepth} levels`));
      return;
    }
    if (!data && ++nodes > SCHEMA_LIMITS.maxNodes) {
      findings.push(finding("error", "schema_too_many_nodes", at, `the schema has more than ${SCHEMA_LIMITS.maxNodes} nodes`));
      return;
    }
    if (Array.isArray(value)) {
      value.forEach((item, i) => stack.push({ value: item, path: `${path}/${i}`, depth: depth + 1, data }));
      continue;
    }
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      const childPath = `${path}/${escapePointer(key)}`;
      if (!data) checkKeyword(key, child, childPath, findings);
      stack.push({ value: child, path: childPath, depth: depth + 1, data: data || DATA_KEYWORDS.has(key) });
    }
  }
  // Depth is bounded by now, so the native serializer cannot overflow the stack.
  const bytes = Buffer.byteLength(JSON.stringify(schema), "utf8");
  if (bytes > SCHEMA_LIMITS.maxBytes) {
    findings.push(finding("error", "schema_too_large", at, `the schema is ${bytes} bytes of JSON; at most ${SCHEMA_LIMITS.maxBytes} are accepted`));
  }
}

function checkKeyword(key: string, value: unknown, path: string, findings: ToolFinding[]): void {
  if (REF_KEYWORDS.has(key) && typeof value === "string" && !value.startsWith("#")) {
    // Following it would mean fetching a URL a server chose (2026-07-28: MUST NOT auto-dereference network refs).
    findings.push(finding("error", "schema_external_ref", path, clip(`${key} must point inside the schema ("#..."), not to ${value}`)));
  } else if (key === "pattern" && typeof value === "string") {
    checkPattern(value, path, findings);
  } else if (key === "patternProperties" && isRecord(value)) {
    for (const pattern of Object.keys(value)) checkPattern(pattern, `${path}/${escapePointer(pattern)}`, findings);
  }
}

/** Found here rather than when Ajv compiles, so the finding points at the pattern. */
function checkPattern(pattern: string, path: string, findings: ToolFinding[]): void {
  if (pattern.length > SCHEMA_LIMITS.maxPatternLength) {
    findings.push(finding("error", "schema_pattern_too_long", path, `a pattern is longer than ${SCHEMA_LIMITS.maxPatternLength} characters`));
    return;
  }
  try {
    linearRegExp(pattern, "u");
  } catch (error) {
    findings.push(patternFinding(error, path));
  }
}

function patternFinding(error: unknown, path: string): ToolFinding {
  return finding("error", "schema_pattern_unsupported", path, clip(`the pattern cannot run on a linear-time engine (no lookaround or backreferences): ${describe(error)}`));
}

// ---- Ajv, one instance per dialect --------------------------------------------------------------------

/** Ajv keeps every compiled schema in an internal map; replacing an instance now and then bounds that memory. */
const RECYCLE_AFTER = 1_000;
const instances = new Map<Dialect, { ajv: Ajv; uses: number }>();

function ajvFor(dialect: Dialect): Ajv {
  const current = instances.get(dialect);
  if (current && current.uses++ < RECYCLE_AFTER) return current.ajv;
  const options: AjvOptions = {
    strict: false,
    allErrors: false,
    // Schemas are meta-validated explicitly (to report why), and none of them is kept or looked up by $id.
    validateSchema: false,
    addUsedSchema: false,
    // Formats are annotations unless asked for, and unknown ones would only be logged.
    validateFormats: false,
    ownProperties: true,
    logger: false,
    code: { regExp: linearRegExp },
  };
  const ajv = dialect === "2020-12" ? new Ajv2020(options) : new Ajv(options);
  instances.set(dialect, { ajv, uses: 1 });
  return ajv;
}

/**
 * Ajv's pattern engine, backed by re2js. Ajv caches compiled patterns by toString(), so each one must print as
 * itself, or every pattern would collapse into the first one compiled. ECMAScript spellings RE2 lacks
 * (`\uXXXX`, `(?<name>`) are translated; lookaround and backreferences still throw, at compile time.
 */
const linearRegExp = Object.assign(
  (pattern: string, flags: string) => {
    const compiled = RE2JS.compile(RE2JS.translateRegExp(pattern));
    return { test: (input: string) => compiled.test(input), toString: () => `/${pattern}/${flags}` };
  },
  { code: "re2js" },
);

// ---- small helpers ------------------------------------------------------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function finding(severity: ToolFinding["severity"], code: string, path: string, message: string): ToolFinding {
  return { severity, code, path, message };
}

function wrongType(findings: ToolFinding[], path: string, field: string, expected: string): void {
  findings.push(finding("warning", "field_wrong_type", path, `${field} should be ${expected}`));
}

function escapePointer(key: string): string {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function clip(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 1)}…` : text;
}
