import { createHash } from "node:crypto";
import { canonicalJson, compareCodeUnits } from "../../util/canonical-json.js";

/**
 * Tool definitions as servers report them: a content hash to pin an approved definition, and a diff to show
 * what a server changed since. Both work on the raw JSON a server sent (fields an SDK would drop included),
 * and neither recurses: a definition nested thousands of levels deep is data a server can send.
 */

export interface ToolDefinitionEntry {
  name: string;
  hash: string;
  definition: Record<string, unknown>;
}

export interface ToolDiff {
  added: string[];
  removed: string[];
  changed: { name: string; fields: string[] }[];
}

/**
 * `_meta` is the protocol's channel for per-response metadata (trace ids, cache hints) and says nothing about
 * what the tool does, so it does not count as a change of definition.
 */
const VOLATILE_FIELDS = new Set(["_meta"]);

/** Hex SHA-256 of the RFC 8785 canonical JSON of the tool, without `_meta`: key order does not matter, content does. */
export function toolHash(raw: Record<string, unknown>): string {
  const fields = raw !== null && typeof raw === "object" && !Array.isArray(raw) ? Object.entries(raw) : [];
  // fromEntries defines own properties: an assignment would turn a "__proto__" field into a prototype, unhashed.
  const stable = Object.fromEntries(fields.filter(([key]) => !VOLATILE_FIELDS.has(key)));
  return createHash("sha256").update(canonicalJson(stable), "utf8").digest("hex");
}

/** Where a server's tool calls go: the remote MCP endpoint or the REST API's base URL (as a URL normalises it). */
export function endpointOf(source: { kind: "remote"; url: string } | { kind: "openapi"; baseUrl: string }): string {
  const raw = source.kind === "remote" ? source.url : source.baseUrl;
  return URL.canParse(raw) ? new URL(raw).href : raw;
}

/** Bindings pinned since the endpoint is part of them carry this prefix; bare hex is an older pin (the operation alone). */
const BINDING_VERSION = "v2:";

/**
 * A tool's binding: where a call goes (the server's endpoint) and, for a REST tool, the operation it
 * becomes (method, URL template, parameters, body). An approval pins it beside the definition hash: the
 * same definition served from another endpoint, or bound to another operation, is another tool.
 */
export function bindingHash(operation: Record<string, unknown> | undefined, endpoint: string): string {
  const binding = { endpoint, ...(operation ? { operation } : {}) };
  return BINDING_VERSION + createHash("sha256").update(canonicalJson(binding), "utf8").digest("hex");
}

/** A pin made before the endpoint was part of the binding: the REST operation alone (undefined for an MCP tool). */
export function legacyBindingHash(operation: Record<string, unknown> | undefined): string | undefined {
  return operation ? createHash("sha256").update(canonicalJson(operation), "utf8").digest("hex") : undefined;
}

/** Whether a pinned binding is the tool's as it is now. No pin (approvals older than pins) holds; discovery pins it. */
export function bindingHolds(pinned: string | undefined, operation: Record<string, unknown> | undefined, endpoint: string): boolean {
  if (pinned === undefined) return true;
  return pinned.startsWith(BINDING_VERSION) ? pinned === bindingHash(operation, endpoint) : pinned === legacyBindingHash(operation);
}

/** Whether a pin is of the current kind (endpoint included); older ones are pinned again by discovery while they hold. */
export const isCurrentPin = (pinned: string | undefined): boolean => pinned?.startsWith(BINDING_VERSION) ?? false;

/** What changed between two discoveries of one server, by tool name; every list sorted by name. */
export function diffTools(previous: readonly ToolDefinitionEntry[], next: readonly ToolDefinitionEntry[]): ToolDiff {
  const before = byName(previous);
  const after = byName(next);
  const added = [...after.keys()].filter((name) => !before.has(name)).sort(compareCodeUnits);
  const removed = [...before.keys()].filter((name) => !after.has(name)).sort(compareCodeUnits);
  const changed: ToolDiff["changed"] = [];
  for (const name of [...after.keys()].sort(compareCodeUnits)) {
    const old = before.get(name);
    const now = after.get(name);
    if (!old || !now || old.hash === now.hash) continue;
    changed.push({ name, fields: changedFields(old.definition, now.definition) });
  }
  return { added, removed, changed };
}

/** Top-level keys whose canonical JSON differs, `_meta` aside (the hash ignores it too). */
function changedFields(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const keys = new Set([...ownKeys(before), ...ownKeys(after)]);
  const fields: string[] = [];
  for (const key of keys) {
    if (VOLATILE_FIELDS.has(key)) continue;
    const a = Object.hasOwn(before ?? {}, key) ? canonicalJson(before[key]) : undefined;
    const b = Object.hasOwn(after ?? {}, key) ? canonicalJson(after[key]) : undefined;
    if (a !== b) fields.push(key);
  }
  return fields.sort(compareCodeUnits);
}

/** A server may list one name twice; the last definition is the one a client that keys by name would keep. */
function byName(entries: readonly ToolDefinitionEntry[]): Map<string, ToolDefinitionEntry> {
  const map = new Map<string, ToolDefinitionEntry>();
  for (const entry of Array.isArray(entries) ? entries : []) {
    if (entry && typeof entry.name === "string") map.set(entry.name, entry);
  }
  return map;
}

function ownKeys(value: unknown): string[] {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? Object.keys(value) : [];
}
