/**
 * A2A AgentCards: the schemas of v0.3 and v1.0, validation into one normalised form, JWS signatures
 * (verification and, for fixtures, signing), and fetching a card from where its agent publishes it.
 * assessCard is what the registry calls: validation and signatures in one verdict.
 */
import { verifyCardSignatures, type KeyResolver, type SignatureResult } from "./signature.js";
import { CARD_FINDING_CODES, validateAgentCard, type CardFinding, type CardValidation } from "./validate.js";

export {
  CARD_LIMITS,
  CORE_BINDINGS,
  AgentCardV1Schema,
  AgentCardV03Schema,
  type AgentCardV1,
  type AgentCardV03,
  type ProtocolBinding,
} from "./schema.js";
export { CARD_FINDING_CODES, validateAgentCard, type CardFinding, type CardValidation, type CardVersion, type NormalizedCard, type SecuritySchemeKind } from "./validate.js";
export {
  SIGNATURE_ALGORITHMS,
  chainKeyResolvers,
  embeddedJwkResolver,
  jwksResolver,
  jwksUrlResolver,
  signAgentCard,
  verifyCardSignatures,
  type AgentCardSignature,
  type CanonicalForm,
  type JwksUrlResolverOptions,
  type JwsProtectedHeader,
  type KeyResolution,
  type KeyResolver,
  type SignCardOptions,
  type SignatureAlgorithm,
  type SignatureResult,
} from "./signature.js";
export { CardFetchError, LEGACY_CARD_PATH, WELL_KNOWN_CARD_PATH, cardUrls, fetchAgentCard, readBodyCapped, type CardFetchErrorCode, type FetchAgentCardOptions } from "./fetch.js";

/**
 * How far the card's signatures take a reader: "verified" (a signature checks out with a key from a jku or
 * a trusted store), "self-signed" (only with keys the signatures embed: intact, but nobody vouches for the
 * key), "unverified" (signed, but no signature could be checked), "unsigned".
 */
export type CardTrust = "verified" | "self-signed" | "unverified" | "unsigned";

export interface CardAssessment extends CardValidation {
  signatures: SignatureResult[];
  trust: CardTrust;
}

export interface AssessCardOptions {
  keys: KeyResolver;
}

const C = CARD_FINDING_CODES;
/** Findings after which the card is not looked at further (the signatures would cost work on a card that is refused anyway). */
const UNREADABLE = new Set<string>([C.notObject, C.tooLarge, C.tooDeep]);

/**
 * Validates the card and verifies its signatures. A signature that does not match (or uses `none`/HS*) is
 * an error: a card with a broken signature is recorded with its findings, never half-stored. One that
 * cannot be checked (unknown key, jku unreachable) is a warning.
 */
export async function assessCard(raw: unknown, options: AssessCardOptions): Promise<CardAssessment> {
  const validation = validateAgentCard(raw);
  const readable = isRecord(raw) && !validation.findings.some((f) => UNREADABLE.has(f.code));
  const signatures = readable ? await verifyCardSignatures(raw, options.keys) : [];

  const findings: CardFinding[] = [...validation.findings];
  for (const s of signatures) {
    const path = `/signatures/${s.index}`;
    const who = s.kid !== undefined ? ` (kid ${s.kid})` : "";
    if (s.status === "invalid") findings.push({ path, code: C.signatureInvalid, message: `signature${who} is invalid: ${s.reason ?? "it does not verify"}`, severity: "error" });
    else if (s.status === "unverifiable") findings.push({ path, code: C.signatureUnverifiable, message: `signature${who} could not be checked: ${s.reason ?? "no key"}`, severity: "warning" });
    else if (s.selfSigned) findings.push({ path, code: C.signatureSelfSigned, message: `signature${who} verifies with the key it embeds: the card is intact, but nothing says whose key that is`, severity: "warning" });
  }
  const ordered = [...findings.filter((f) => f.severity === "error"), ...findings.filter((f) => f.severity === "warning")];
  const valid = validation.valid && !signatures.some((s) => s.status === "invalid");
  const trust = trustOf(signatures);
  return valid && validation.card
    ? { version: validation.version, valid, findings: ordered, card: validation.card, signatures, trust }
    : { version: validation.version, valid: false, findings: ordered, signatures, trust };
}

function trustOf(signatures: SignatureResult[]): CardTrust {
  if (signatures.length === 0) return "unsigned";
  if (signatures.some((s) => s.status === "valid" && !s.selfSigned)) return "verified";
  if (signatures.some((s) => s.status === "valid")) return "self-signed";
  return "unverified";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
