import type { z } from "zod";
import {
  CARD_LIMITS,
  CORE_BINDINGS,
  SecurityRequirementsV03Schema,
  AgentCardV03Schema,
  AgentCardV1Schema,
  strictCardSchemas,
  type AgentCardV03,
  type AgentCardV1,
  type CardIssueParams,
  type ProtocolBinding,
  type SecuritySchemeV1,
} from "./schema.js";

/**
 * Checks an A2A AgentCard (v0.3 or v1.0) and turns it into the version-independent form the registry stores
 * and the gateway routes by. Findings are data (stored with the agent and shown to approvers), so nothing
 * here throws. A card with an error finding is invalid and yields no normalised card: the registry records
 * the findings, never half a card. Warnings (unknown fields, http URLs, v0.3 fields kept in a v1.0 card for
 * old clients) leave it valid.
 */

export type CardVersion = "0.3" | "1.0";

export interface CardFinding {
  /** JSON Pointer into the card ("" is the card itself). */
  path: string;
  /** Stable, e.g. card_missing_field (see CARD_FINDING_CODES). */
  code: string;
  message: string;
  severity: "error" | "warning";
}

export type SecuritySchemeKind = "apiKey" | "http" | "oauth2" | "openIdConnect" | "mutualTLS";

/** A card in one shape whatever its version. Bindings outside the core three are dropped (with a warning). */
export interface NormalizedCard {
  /** The card format it was written in (a v0.2.x card is read by v0.3's rules and says "0.3"). */
  protocolVersion: CardVersion;
  name: string;
  description: string;
  version: string;
  provider?: { organization: string; url: string };
  documentationUrl?: string;
  iconUrl?: string;
  /** In the card's order of preference (v0.3: the main url first, then additionalInterfaces, duplicates once). */
  interfaces: { url: string; binding: ProtocolBinding; protocolVersion: string; tenant?: string }[];
  capabilities: { streaming: boolean; pushNotifications: boolean; extendedAgentCard: boolean };
  /** Protocol extensions the agent supports; a client must speak the required ones. */
  extensions: { uri: string; required: boolean }[];
  skills: { id: string; name: string; description: string; tags: string[]; examples?: string[] }[];
  securitySchemes: { name: string; kind: SecuritySchemeKind }[];
  /** OR of ANDs: each entry maps the schemes to use together to their scopes. Empty: the card declares none. */
  securityRequirements: Record<string, string[]>[];
  defaultInputModes: string[];
  defaultOutputModes: string[];
  /** The card carries at least one signature (checked by verifyCardSignatures / assessCard, not here). */
  signed: boolean;
}

export interface CardValidation {
  version: CardVersion | "unknown";
  valid: boolean;
  findings: CardFinding[];
  /** Present exactly when valid. */
  card?: NormalizedCard;
}

export const CARD_FINDING_CODES = {
  /** errors */
  notObject: "card_not_object",
  tooLarge: "card_too_large",
  tooDeep: "card_too_deep",
  unknownVersion: "card_unknown_version",
  versionMismatch: "card_version_mismatch",
  missingField: "card_missing_field",
  invalidField: "card_invalid_field",
  invalidUrl: "card_invalid_url",
  limitExceeded: "card_limit_exceeded",
  duplicateSkillId: "card_duplicate_skill_id",
  unknownSecurityScheme: "card_unknown_security_scheme",
  noUsableInterface: "card_no_usable_interface",
  validationFailed: "card_validation_failed",
  signatureInvalid: "card_signature_invalid",
  /** warnings */
  unknownField: "card_unknown_field",
  legacyField: "card_legacy_field",
  legacyProtocolVersion: "card_legacy_protocol_version",
  urlNotHttps: "card_url_not_https",
  unsupportedBinding: "card_unsupported_binding",
  protocolVersionFormat: "card_protocol_version_format",
  emptyList: "card_empty_list",
  deprecatedOAuthFlow: "card_deprecated_oauth_flow",
  signatureUnverifiable: "card_signature_unverifiable",
  signatureSelfSigned: "card_signature_self_signed",
} as const;
const C = CARD_FINDING_CODES;

/** v0.3 fields a v1.0 card may keep so v0.3 clients can still read it; v1.0 readers ignore them. */
const V03_TOP_LEVEL = new Set(["url", "protocolVersion", "preferredTransport", "additionalInterfaces", "supportsAuthenticatedExtendedCard", "security"]);
const CORE = new Set<string>(CORE_BINDINGS);

export function validateAgentCard(raw: unknown): CardValidation {
  const findings: CardFinding[] = [];
  let version: CardVersion | "unknown" = "unknown";
  let card: NormalizedCard | undefined;
  try {
    const checked = check(raw, findings);
    version = checked.version;
    card = checked.card;
  } catch (error) {
    // Nothing above should throw; if something does, the card is still unusable, and the finding says so.
    findings.push(error_(C.validationFailed, "", `the card could not be checked: ${error instanceof Error ? error.message : String(error)}`));
  }
  const valid = !findings.some((f) => f.severity === "error");
  // Errors first, each group in the order found (stable across runs: zod reports in schema order).
  const ordered = [...findings.filter((f) => f.severity === "error"), ...findings.filter((f) => f.severity === "warning")];
  return valid && card ? { version, valid, findings: ordered, card } : { version, valid: false, findings: ordered };
}

function check(raw: unknown, findings: CardFinding[]): { version: CardVersion | "unknown"; card?: NormalizedCard } {
  if (!isRecord(raw)) {
    findings.push(error_(C.notObject, "", "an AgentCard is a JSON object"));
    return { version: "unknown" };
  }
  // Size before shape: nothing below should walk a card larger than the registry would store.
  if (!withinBounds(raw, findings)) return { version: "unknown" };

  const version = detectVersion(raw, findings);
  if (version === "unknown") return { version };

  const strict = version === "1.0" ? strictCardSchemas.AgentCardV1 : strictCardSchemas.AgentCardV03;
  const parsed = strict.safeParse(raw);
  if (!parsed.success) findings.push(...issueFindings(parsed.error.issues, raw, version));
  if (version === "1.0") checkV1Requirements(raw, findings);
  if (findings.some((f) => f.severity === "error")) return { version };

  // The strict pass found warnings at most; the lenient one drops unknown fields and gives the typed card.
  if (version === "1.0") {
    const card = AgentCardV1Schema.safeParse(raw);
    if (!card.success) return fail(version, card.error.issues, raw, findings);
    return { version, card: normalizeV1(card.data, raw, findings) };
  }
  const card = AgentCardV03Schema.safeParse(raw);
  if (!card.success) return fail(version, card.error.issues, raw, findings);
  return { version, card: normalizeV03(card.data, findings) };
}

function fail(version: CardVersion, issues: z.core.$ZodIssue[], raw: Record<string, unknown>, findings: CardFinding[]): { version: CardVersion } {
  findings.push(...issueFindings(issues, raw, version));
  return { version };
}

/**
 * v1.0 cards carry `supportedInterfaces` (and no top-level protocolVersion); v0.3 cards carry `url` and
 * `protocolVersion` "0.3.x". A card written for both keeps v0.3's fields beside supportedInterfaces, and is
 * read as v1.0. A card that claims 1.x but has v0.3's shape is a mismatch: neither reader could use it.
 */
function detectVersion(raw: Record<string, unknown>, findings: CardFinding[]): CardVersion | "unknown" {
  const declared = typeof raw.protocolVersion === "string" ? raw.protocolVersion : undefined;
  if (raw.supportedInterfaces !== undefined) return "1.0";
  if (declared !== undefined && /^1(\.|$)/.test(declared)) {
    findings.push(error_(C.versionMismatch, "/protocolVersion", `declares protocol ${declared} but has no supportedInterfaces, where v1.0 lists its endpoints`));
    return "1.0";
  }
  if (declared !== undefined && /^0\.3(\.\d+)?$/.test(declared)) return "0.3";
  if (declared !== undefined && /^0\.2\.\d+$/.test(declared)) {
    findings.push(warning(C.legacyProtocolVersion, "/protocolVersion", `declares protocol ${declared}: read by v0.3's rules, which v0.2.x cards mostly follow`));
    return "0.3";
  }
  if (declared === undefined && raw.url !== undefined) return "0.3"; // v0.3's shape; the schema reports the missing protocolVersion
  findings.push(
    error_(
      C.unknownVersion,
      declared === undefined ? "" : "/protocolVersion",
      declared === undefined
        ? "neither a v1.0 card (supportedInterfaces) nor a v0.3 card (url and protocolVersion)"
        : `protocol version ${JSON.stringify(declared).slice(0, 40)} is not one this registry reads (0.3, 1.0)`,
    ),
  );
  return "unknown";
}

/** Depth and node count by an iterative walk (a recursive one could overflow on hostile nesting), then bytes. */
function withinBounds(raw: Record<string, unknown>, findings: CardFinding[]): boolean {
  const stack: { value: unknown; depth: number }[] = [{ value: raw, depth: 1 }];
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (depth > CARD_LIMITS.maxDepth) {
      findings.push(error_(C.tooDeep, "", `nests deeper than ${CARD_LIMITS.maxDepth} levels`));
      return false;
    }
    if (value !== null && typeof value === "object") for (const child of Object.values(value)) stack.push({ value: child, depth: depth + 1 });
  }
  const bytes = Buffer.byteLength(JSON.stringify(raw), "utf8");
  if (bytes > CARD_LIMITS.maxBytes) {
    findings.push(error_(C.tooLarge, "", `is ${bytes} bytes of JSON; the limit is ${CARD_LIMITS.maxBytes}`));
    return false;
  }
  return true;
}

function issueFindings(issues: readonly z.core.$ZodIssue[], raw: Record<string, unknown>, version: CardVersion): CardFinding[] {
  const out: CardFinding[] = [];
  for (const issue of issues) {
    const path = issue.path;
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) out.push(unknownField([...path, key], version));
      continue;
    }
    if (issue.code === "custom") {
      const params = (issue.params ?? {}) as CardIssueParams;
      out.push((params.severity === "warning" ? warning : error_)(params.code ?? C.invalidField, pointer(path), issue.message));
      continue;
    }
    if (issue.code === "invalid_type" && valueAt(raw, path) === undefined) {
      out.push(error_(C.missingField, pointer(path), `required (${issue.expected})`));
      continue;
    }
    if (issue.code === "too_small" && issue.origin === "array") {
      out.push(error_(C.missingField, pointer(path), plain(issue.message)));
      continue;
    }
    if (issue.code === "too_big") {
      out.push(error_(C.limitExceeded, pointer(path), plain(issue.message)));
      continue;
    }
    if (issue.code === "invalid_union" && "discriminator" in issue && typeof issue.discriminator === "string") {
      const at = path[path.length - 1] === issue.discriminator ? path : [...path, issue.discriminator];
      // zod names the discriminator's values on the issue without typing them.
      const values = (issue as { options?: unknown }).options;
      const options = Array.isArray(values) ? values.map(String).join(", ") : "";
      if (valueAt(raw, at) === undefined) out.push(error_(C.missingField, pointer(at), `required (one of ${options})`));
      else out.push(error_(C.invalidField, pointer(at), `must be one of ${options}`));
      continue;
    }
    out.push(error_(C.invalidField, pointer(path), plain(issue.message)));
  }
  return out;
}

/** Zod's messages without their category prefix ("Invalid input: expected string, received number" → "expected string, received number"). */
function plain(message: string): string {
  return message.replace(/^(Invalid input|Invalid option|Too big|Too small|Invalid string): /, "");
}

function unknownField(path: PropertyKey[], version: CardVersion): CardFinding {
  const at = pointer(path);
  const legacy =
    version === "1.0" &&
    ((path.length === 1 && V03_TOP_LEVEL.has(String(path[0]))) ||
      at === "/capabilities/stateTransitionHistory" ||
      (path.length === 3 && path[0] === "skills" && path[2] === "security"));
  return legacy
    ? warning(C.legacyField, at, "a v0.3 field: v1.0 readers ignore it (a card written for both versions keeps it for v0.3 clients)")
    : warning(C.unknownField, at, `not a field of the v${version} AgentCard (ignored)`);
}

/**
 * A v0.3-style requirement ({"oauth": ["read"]}) inside a v1.0 card parses as an empty v1.0 requirement
 * (no `schemes`), which means "no credentials needed": read that way it would open the agent. So a
 * requirement object without `schemes` but with other keys is an error, not an unknown-field warning.
 */
function checkV1Requirements(raw: Record<string, unknown>, findings: CardFinding[]): void {
  const lists: [string, unknown][] = [["/securityRequirements", raw.securityRequirements]];
  if (Array.isArray(raw.skills)) raw.skills.forEach((s, i) => isRecord(s) && lists.push([`/skills/${i}/securityRequirements`, s.securityRequirements]));
  for (const [at, list] of lists) {
    if (!Array.isArray(list)) continue;
    list.forEach((req, i) => {
      if (isRecord(req) && req.schemes === undefined && Object.keys(req).length > 0) {
        findings.push(error_(C.invalidField, `${at}/${i}`, `v0.3's form ({"scheme": [scopes]}); v1.0 writes {"schemes": {"scheme": {"list": [scopes]}}}`));
      }
    });
  }
}

// ---- normalisation ----

function normalizeV1(card: AgentCardV1, raw: Record<string, unknown>, findings: CardFinding[]): NormalizedCard | undefined {
  const interfaces: NormalizedCard["interfaces"] = [];
  card.supportedInterfaces.forEach((i, index) => {
    const binding = coreBinding(i.protocolBinding, `/supportedInterfaces/${index}/protocolBinding`, findings);
    if (!binding) return;
    const protocolVersion = majorMinor(i.protocolVersion, `/supportedInterfaces/${index}/protocolVersion`, findings);
    interfaces.push({ url: i.url, binding, protocolVersion, ...(i.tenant ? { tenant: i.tenant } : {}) });
  });

  let requirements = (card.securityRequirements ?? []).map((r) => Object.fromEntries(Object.entries(r.schemes ?? {}).map(([name, scopes]) => [name, scopes.list ?? []])));
  // A card written for both versions (the spec's own v1.0 sample) may state its requirements only in v0.3's `security`.
  if (card.securityRequirements === undefined && raw.security !== undefined) {
    const legacy = SecurityRequirementsV03Schema.safeParse(raw.security);
    if (legacy.success) requirements = legacy.data;
    else findings.push(error_(C.invalidField, "/security", "not a valid v0.3 security requirement list, and the card has no securityRequirements"));
  }

  const securitySchemes = Object.entries(card.securitySchemes ?? {}).map(([name, scheme]) => ({ name, kind: kindOfV1(scheme) }));
  const skillRequirements = card.skills.map((s) => (s.securityRequirements ?? []).map((r) => Object.keys(r.schemes ?? {})));
  const common = commonOf(card);
  return finish(
    "1.0",
    common,
    interfaces,
    { streaming: card.capabilities.streaming ?? false, pushNotifications: card.capabilities.pushNotifications ?? false, extendedAgentCard: card.capabilities.extendedAgentCard ?? false },
    securitySchemes,
    requirements,
    { card: "/securityRequirements", skill: "securityRequirements", perSkill: skillRequirements },
    findings,
  );
}

/** The fields both formats carry under the same names. */
function commonOf(card: AgentCardV1 | AgentCardV03) {
  return {
    name: card.name,
    description: card.description,
    version: card.version,
    provider: card.provider,
    documentationUrl: card.documentationUrl,
    iconUrl: card.iconUrl,
    extensions: card.capabilities.extensions,
    skills: card.skills,
    defaultInputModes: card.defaultInputModes,
    defaultOutputModes: card.defaultOutputModes,
    signatures: card.signatures,
  };
}

function normalizeV03(card: AgentCardV03, findings: CardFinding[]): NormalizedCard | undefined {
  const protocolVersion = majorMinor(card.protocolVersion, "/protocolVersion", findings);
  const interfaces: NormalizedCard["interfaces"] = [];
  const add = (url: string, transport: string, at: string) => {
    const binding = coreBinding(transport, at, findings);
    // v0.3 asks additionalInterfaces to repeat the main url's entry: one interface, listed once.
    if (binding && !interfaces.some((i) => i.url === url && i.binding === binding)) interfaces.push({ url, binding, protocolVersion });
  };
  // The spec's default for a missing preferredTransport.
  add(card.url, card.preferredTransport ?? "JSONRPC", "/preferredTransport");
  (card.additionalInterfaces ?? []).forEach((i, index) => add(i.url, i.transport, `/additionalInterfaces/${index}/transport`));

  const securitySchemes = Object.entries(card.securitySchemes ?? {}).map(([name, scheme]) => ({ name, kind: scheme.type }));
  const common = commonOf(card);
  return finish(
    "0.3",
    common,
    interfaces,
    { streaming: card.capabilities.streaming ?? false, pushNotifications: card.capabilities.pushNotifications ?? false, extendedAgentCard: card.supportsAuthenticatedExtendedCard ?? false },
    securitySchemes,
    card.security ?? [],
    { card: "/security", skill: "security", perSkill: card.skills.map((s) => (s.security ?? []).map((r) => Object.keys(r))) },
    findings,
  );
}

interface CommonFields {
  name: string;
  description: string;
  version: string;
  provider?: { organization: string; url: string };
  documentationUrl?: string;
  iconUrl?: string;
  extensions?: { uri: string; required?: boolean }[];
  skills: { id: string; name: string; description: string; tags: string[]; examples?: string[] }[];
  defaultInputModes: string[];
  defaultOutputModes: string[];
  signatures?: unknown[];
}

/** The checks both versions share (they need the typed card), then the normalised card, or undefined on an error. */
function finish(
  version: CardVersion,
  c: CommonFields,
  interfaces: NormalizedCard["interfaces"],
  capabilities: NormalizedCard["capabilities"],
  securitySchemes: NormalizedCard["securitySchemes"],
  securityRequirements: Record<string, string[]>[],
  requirementPaths: { card: string; skill: string; perSkill: string[][][] },
  findings: CardFinding[],
): NormalizedCard | undefined {
  if (interfaces.length === 0) findings.push(error_(C.noUsableInterface, "", `no interface uses a binding the gateway speaks (${CORE_BINDINGS.join(", ")})`));

  const seen = new Map<string, number>();
  c.skills.forEach((s, i) => {
    const first = seen.get(s.id);
    if (first !== undefined) findings.push(error_(C.duplicateSkillId, `/skills/${i}/id`, `"${s.id}" is also /skills/${first}/id: skill ids are unique`));
    else seen.set(s.id, i);
    // Spec §5.7 (v1.0): a required list holds at least one element. Tolerated, but the skill is then unsearchable by tag.
    if (version === "1.0" && s.tags.length === 0) findings.push(warning(C.emptyList, `/skills/${i}/tags`, "empty: the skill cannot be found by tag"));
  });
  for (const [key, list] of [["skills", c.skills], ["defaultInputModes", c.defaultInputModes], ["defaultOutputModes", c.defaultOutputModes]] as const) {
    if (list.length === 0) findings.push(warning(C.emptyList, `/${key}`, "empty (the spec asks for at least one entry)"));
  }

  // A requirement naming an undeclared scheme cannot be met: the agent would be unusable, or read as open.
  const declared = new Set(securitySchemes.map((s) => s.name));
  const undeclared = (names: string[], at: string) => {
    for (const name of names) if (!declared.has(name)) findings.push(error_(C.unknownSecurityScheme, at, `names security scheme "${name}", which securitySchemes does not declare`));
  };
  securityRequirements.forEach((r, i) => undeclared(Object.keys(r), `${requirementPaths.card}/${i}`));
  requirementPaths.perSkill.forEach((reqs, s) => reqs.forEach((names, i) => undeclared(names, `/skills/${s}/${requirementPaths.skill}/${i}`)));

  if (findings.some((f) => f.severity === "error")) return undefined;
  return {
    protocolVersion: version,
    name: c.name,
    description: c.description,
    version: c.version,
    ...(c.provider ? { provider: { organization: c.provider.organization, url: c.provider.url } } : {}),
    ...(c.documentationUrl ? { documentationUrl: c.documentationUrl } : {}),
    ...(c.iconUrl ? { iconUrl: c.iconUrl } : {}),
    interfaces,
    capabilities,
    extensions: (c.extensions ?? []).map((e) => ({ uri: e.uri, required: e.required ?? false })),
    skills: c.skills.map((s) => ({ id: s.id, name: s.name, description: s.description, tags: s.tags, ...(s.examples ? { examples: s.examples } : {}) })),
    securitySchemes,
    securityRequirements,
    defaultInputModes: c.defaultInputModes,
    defaultOutputModes: c.defaultOutputModes,
    signed: (c.signatures?.length ?? 0) > 0,
  };
}

function coreBinding(value: string, at: string, findings: CardFinding[]): ProtocolBinding | undefined {
  if (CORE.has(value)) return value as ProtocolBinding;
  findings.push(warning(C.unsupportedBinding, at, `binding "${value.slice(0, 64)}" is not one the gateway speaks (${CORE_BINDINGS.join(", ")}): the interface is left out`));
  return undefined;
}

/** Spec §3.6 (v1.0): versions are Major.Minor; a patch part "SHOULD NOT be used" and never counts in negotiation. */
function majorMinor(value: string, at: string, findings: CardFinding[]): string {
  const [major = "", minor = "0", patch] = value.split(".");
  if (patch !== undefined && at !== "/protocolVersion") findings.push(warning(C.protocolVersionFormat, at, `"${value}" has a patch part; ${major}.${minor} is what counts`));
  return `${major}.${minor}`;
}

function kindOfV1(scheme: SecuritySchemeV1): SecuritySchemeKind {
  if (scheme.apiKeySecurityScheme) return "apiKey";
  if (scheme.httpAuthSecurityScheme) return "http";
  if (scheme.oauth2SecurityScheme) return "oauth2";
  if (scheme.openIdConnectSecurityScheme) return "openIdConnect";
  return "mutualTLS";
}

// ---- helpers ----

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let here: unknown = root;
  for (const key of path) {
    if (here === null || typeof here !== "object" || !Object.hasOwn(here, key)) return undefined;
    here = (here as Record<PropertyKey, unknown>)[key];
  }
  return here;
}

/** RFC 6901: "~" and "/" inside a segment are escaped. */
function pointer(path: readonly PropertyKey[]): string {
  return path.map((p) => `/${String(p).replace(/~/g, "~0").replace(/\//g, "~1")}`).join("");
}

function error_(code: string, path: string, message: string): CardFinding {
  return { path, code, message, severity: "error" };
}

function warning(code: string, path: string, message: string): CardFinding {
  return { path, code, message, severity: "warning" };
}
