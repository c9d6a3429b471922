import canonicalize from "canonicalize";
import { FlattenedSign, base64url, errors, exportJWK, flattenedVerify, importJWK, type CryptoKey, type JWK, type JWSHeaderParameters, type KeyObject } from "jose";
import { readBodyCapped } from "./fetch.js";
import { CARD_LIMITS } from "./schema.js";

/**
 * AgentCard signatures (spec v1.0 §8.4; v0.3 defines the `signatures` field, v1.0 how it is computed). Each
 * entry of `signatures[]` is the flattened JSON serialization of a JWS (RFC 7515) without its payload: the
 * payload is the card itself with `signatures` removed, canonicalized by JCS (RFC 8785), and carried
 * base64url-encoded in the JWS signing input as usual. The key comes from the protected header: `kid` with
 * `jku` (a JWKS URL) or a key store the verifier trusts, or an embedded `jwk`.
 *
 * Signers disagree on one step. §8.4.1 asks that fields holding their ProtoJSON default ("", false, [], {}
 * in fields without explicit presence) be dropped before canonicalizing; others sign the card as published.
 * A signature is accepted under either reading: by the proto's definition they say the same. The a2a-python
 * SDK's reading (every empty value dropped, anywhere) is not accepted: under it an added empty security
 * requirement `{}`, which means "no credentials needed", would leave the signature intact.
 */

/** Only signatures by a private key say who signed: `none` and the HMAC algorithms (HS*) are refused. */
export const SIGNATURE_ALGORITHMS = ["ES256", "ES384", "ES512", "EdDSA", "Ed25519", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] as const;
export type SignatureAlgorithm = (typeof SIGNATURE_ALGORITHMS)[number];
const ALLOWED = new Set<string>(SIGNATURE_ALGORITHMS);

/** Which reading of the card the signature matched (see the module comment). */
export type CanonicalForm = "as-published" | "defaults-omitted";

export interface SignatureResult {
  /** Its position in the card's signatures[]. */
  index: number;
  kid?: string;
  /** From the protected header ("unknown" when the header cannot be read). */
  alg: string;
  status: "valid" | "invalid" | "unverifiable";
  /** The key came from the signature itself (embedded jwk): the card is intact, but nothing says whose key it is. */
  selfSigned?: boolean;
  /** The JWKS URL the key came from, for the caller to weigh (does it belong to the agent's provider?). */
  jku?: string;
  canonicalForm?: CanonicalForm;
  reason?: string;
}

/** The protected header as decoded (unverified until the signature is). */
export interface JwsProtectedHeader extends JWSHeaderParameters {
  alg: string;
}

export type KeyResolution = { key: CryptoKey | KeyObject | JWK; selfSigned?: boolean; jku?: string } | { unresolved: string };

/**
 * Finds the public key a signature names. "unresolved" means the signature cannot be checked (unknown key,
 * JWKS unreachable): the result is "unverifiable", never "invalid". A resolver may throw; that counts as unresolved.
 */
export type KeyResolver = (header: JwsProtectedHeader) => Promise<KeyResolution>;

export interface AgentCardSignature {
  protected: string;
  signature: string;
  header?: Record<string, unknown>;
}

export async function verifyCardSignatures(raw: Record<string, unknown>, keys: KeyResolver): Promise<SignatureResult[]> {
  const entries = raw.signatures;
  if (!Array.isArray(entries) || entries.length === 0) return [];
  let payloads: Payload[];
  try {
    payloads = signingPayloads(raw);
  } catch (error) {
    const reason = `the card has no canonical JSON form: ${message(error)}`;
    return entries.map((_, index) => ({ index, alg: "unknown", status: "invalid", reason }));
  }
  const results: SignatureResult[] = [];
  for (const [index, entry] of entries.entries()) {
    // The schema allows this many; verifying more would let a card buy unbounded key fetches and crypto.
    if (index >= CARD_LIMITS.maxSignatures) {
      results.push({ index, alg: "unknown", status: "unverifiable", reason: `not checked: only the first ${CARD_LIMITS.maxSignatures} signatures are` });
      continue;
    }
    results.push(await verifyOne(entry, index, payloads, keys));
  }
  return results;
}

async function verifyOne(entry: unknown, index: number, payloads: Payload[], keys: KeyResolver): Promise<SignatureResult> {
  if (!isRecord(entry) || typeof entry.protected !== "string" || typeof entry.signature !== "string") {
    return { index, alg: "unknown", status: "invalid", reason: "a signature is an object with string members protected and signature" };
  }
  if (entry.header !== undefined && !isRecord(entry.header)) return { index, alg: "unknown", status: "invalid", reason: "header must be a JSON object" };
  const header = decodeProtected(entry.protected);
  if (!header) return { index, alg: "unknown", status: "invalid", reason: "the protected header is not base64url-encoded JSON" };
  const kid = typeof header.kid === "string" ? header.kid : undefined;
  const base = { index, ...(kid !== undefined ? { kid } : {}) };
  // alg must be integrity protected: one in the unprotected header could be swapped by anyone.
  if (typeof header.alg !== "string") return { ...base, alg: "unknown", status: "invalid", reason: "the protected header has no alg" };
  const alg = header.alg;
  if (!ALLOWED.has(alg)) {
    const why = alg === "none" || /^HS\d+$/.test(alg) ? "proves nothing about who signed (only asymmetric algorithms are accepted)" : "is not an accepted algorithm";
    return { ...base, alg, status: "invalid", reason: `alg ${alg} ${why}` };
  }

  let resolution: KeyResolution;
  try {
    resolution = await keys(header as JwsProtectedHeader);
  } catch (error) {
    resolution = { unresolved: message(error) };
  }
  if ("unresolved" in resolution) return { ...base, alg, status: "unverifiable", reason: resolution.unresolved };
  const found = { ...base, alg, ...(resolution.selfSigned ? { selfSigned: true } : {}), ...(resolution.jku ? { jku: resolution.jku } : {}) };

  // RFC 7797: with b64 false the payload goes into the signing input as is (jose insists on crit: ["b64"]).
  const encoded = header.b64 !== false;
  const tried = new Set<string>();
  for (const payload of payloads) {
    // Readings that coincide (the usual case) are checked once.
    if (tried.has(payload.text)) continue;
    tried.add(payload.text);
    try {
      await flattenedVerify(
        { protected: entry.protected, signature: entry.signature, payload: encoded ? payload.b64 : payload.text, ...(entry.header ? { header: entry.header as JWSHeaderParameters } : {}) },
        resolution.key,
        { algorithms: [...SIGNATURE_ALGORITHMS] },
      );
      return { ...found, status: "valid", canonicalForm: payload.form };
    } catch (error) {
      if (error instanceof errors.JWSSignatureVerificationFailed) continue;
      // Not a mismatch of bytes but of the signature itself: a key that does not fit alg, an unknown crit, overlapping headers.
      return { ...found, status: "invalid", reason: message(error) };
    }
  }
  return { ...found, status: "invalid", reason: "the signature does not match the card: changed after signing, or signed by another key" };
}

// ---- key resolvers ----

/** Uses the `jwk` embedded in the protected header. Proves the card is intact, not who signed it: results say selfSigned. */
export const embeddedJwkResolver: KeyResolver = async (header) => {
  if (header.jwk === undefined) return { unresolved: "the protected header embeds no jwk" };
  const jwk = publicJwk(header.jwk as unknown);
  if (typeof jwk === "string") return { unresolved: `the embedded jwk ${jwk}` };
  return { key: await importPublic(jwk, header.alg), selfSigned: true };
};

/** A key store the verifier trusts (e.g. keys registered for a provider), looked up by kid. */
export function jwksResolver(jwks: { keys: readonly unknown[] }): KeyResolver {
  return async (header) => pick(jwks.keys, header, "the trusted keys");
}

/** Tries resolvers in order; the first that finds a key wins. */
export function chainKeyResolvers(...resolvers: KeyResolver[]): KeyResolver {
  return async (header) => {
    const reasons: string[] = [];
    for (const resolve of resolvers) {
      let result: KeyResolution;
      try {
        result = await resolve(header);
      } catch (error) {
        result = { unresolved: message(error) };
      }
      if (!("unresolved" in result)) return result;
      reasons.push(result.unresolved);
    }
    return { unresolved: reasons.join("; ") || "no key resolver" };
  };
}

export interface JwksUrlResolverOptions {
  /**
   * Origins (scheme://host[:port]) a jku may point at. Absent: any https origin. A listed http origin is
   * admitted too (local mode, tests). A jku names whoever serves it, so a verifier that wants the card's
   * provider lists the provider's origins.
   */
  allowed?: readonly string[];
  /** Default 64 KiB. */
  maxBytes?: number;
  /** Per fetch, body included. Default 5 s. */
  timeoutMs?: number;
  /** How long a fetched JWKS is used. Default 10 minutes. */
  ttlMs?: number;
  /** How long a failed fetch is remembered (so a card with many signatures does not refetch). Default 1 minute. */
  failureTtlMs?: number;
  now?: () => number;
}

interface CachedJwks {
  fetchedAt: number;
  expiresAt: number;
  keys: Promise<unknown[] | string>;
}

/** The most JWKS URLs remembered; the oldest is forgotten first. */
const MAX_CACHED_JWKS = 256;
/** A kid missing from a cached JWKS refetches it (the provider may have rotated keys), at most this often. */
const REFETCH_AFTER_MS = 60_000;

/**
 * Fetches the `jku` JWKS with the injected fetch (in Azure a safe fetch: public addresses only, no
 * redirects), bounded in bytes and time whatever that fetch does, and caches it.
 */
export function jwksUrlResolver(fetch: typeof globalThis.fetch, options: JwksUrlResolverOptions = {}): KeyResolver {
  const maxBytes = options.maxBytes ?? 64 * 1024;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const ttlMs = options.ttlMs ?? 10 * 60_000;
  const failureTtlMs = options.failureTtlMs ?? 60_000;
  const now = options.now ?? Date.now;
  const allowed = options.allowed ? new Set(options.allowed.map((o) => URL.parse(o)?.origin ?? o)) : undefined;
  const cache = new Map<string, CachedJwks>();

  const load = (url: string): CachedJwks => {
    const at = now();
    const entry: CachedJwks = { fetchedAt: at, expiresAt: at + ttlMs, keys: fetchJwks(fetch, url, maxBytes, timeoutMs) };
    void entry.keys.then((keys) => {
      if (typeof keys === "string") entry.expiresAt = at + failureTtlMs;
    });
    cache.delete(url);
    cache.set(url, entry);
    while (cache.size > MAX_CACHED_JWKS) cache.delete(cache.keys().next().value as string);
    return entry;
  };

  return async (header) => {
    if (typeof header.jku !== "string") return { unresolved: "the protected header names no jku" };
    const url = URL.parse(header.jku);
    if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) return { unresolved: "jku is not an http(s) URL" };
    if (allowed ? !allowed.has(url.origin) : url.protocol !== "https:") {
      return { unresolved: allowed ? `jku origin ${url.origin} is not one of the allowed origins` : "jku must use https" };
    }
    const href = url.href;
    let entry = cache.get(href);
    if (!entry || entry.expiresAt <= now()) entry = load(href);
    let keys = await entry.keys;
    if (typeof keys === "string") return { unresolved: `jku ${href}: ${keys}` };
    let result = await pick(keys, header, `the JWKS at ${href}`);
    if ("unresolved" in result && typeof header.kid === "string" && now() - entry.fetchedAt >= REFETCH_AFTER_MS) {
      keys = await load(href).keys;
      if (typeof keys === "string") return { unresolved: `jku ${href}: ${keys}` };
      result = await pick(keys, header, `the JWKS at ${href}`);
    }
    return "unresolved" in result ? result : { ...result, jku: href };
  };
}

/** A JWKS's keys, or why there are none. Never throws (the promise is cached and shared). */
async function fetchJwks(fetch: typeof globalThis.fetch, url: string, maxBytes: number, timeoutMs: number): Promise<unknown[] | string> {
  try {
    const response = await fetch(url, { headers: { accept: "application/jwk-set+json, application/json" }, redirect: "manual", signal: AbortSignal.timeout(timeoutMs) });
    if (response.type === "opaqueredirect" || (response.status >= 300 && response.status < 400)) {
      void response.body?.cancel().catch(() => undefined);
      return "redirects are not followed";
    }
    if (!response.ok) {
      void response.body?.cancel().catch(() => undefined);
      return `HTTP ${response.status}`;
    }
    const body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(await readBodyCapped(response, maxBytes))) as unknown;
    if (!isRecord(body) || !Array.isArray(body.keys)) return "not a JWKS (no keys array)";
    return body.keys;
  } catch (error) {
    return message(error);
  }
}

/** The one key of `keys` that fits the header: its kid, and a type, use and alg that suit the signature's alg. */
async function pick(keys: readonly unknown[], header: JwsProtectedHeader, where: string): Promise<KeyResolution> {
  const kid = typeof header.kid === "string" ? header.kid : undefined;
  const candidates = keys.filter((k): k is Record<string, unknown> => isRecord(k) && (kid === undefined || k.kid === kid) && suits(k, header.alg));
  if (candidates.length === 0) return { unresolved: kid === undefined ? `no ${header.alg} key in ${where}` : `no ${header.alg} key with kid ${kid} in ${where}` };
  if (candidates.length > 1) return { unresolved: `${candidates.length} keys in ${where} could fit, and the signature names none by kid` };
  const jwk = publicJwk(candidates[0]);
  if (typeof jwk === "string") return { unresolved: `the key in ${where} ${jwk}` };
  return { key: await importPublic(jwk, header.alg) };
}

/** importJWK yields bytes only for symmetric ("oct") keys, which publicJwk never lets through. */
async function importPublic(jwk: JWK, alg: string): Promise<CryptoKey> {
  return (await importJWK(jwk, alg)) as CryptoKey;
}

const KTY_OF_ALG: Record<string, string> = { ES: "EC", Ed: "OKP", RS: "RSA", PS: "RSA" };

function suits(jwk: Record<string, unknown>, alg: string): boolean {
  if (jwk.kty !== KTY_OF_ALG[alg.slice(0, 2)]) return false;
  if (jwk.use !== undefined && jwk.use !== "sig") return false;
  if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes("verify")) return false;
  return jwk.alg === undefined || jwk.alg === alg;
}

const PUBLIC_MEMBERS: Record<string, readonly string[]> = { EC: ["crv", "x", "y"], OKP: ["crv", "x"], RSA: ["n", "e"] };

/** The public members of an asymmetric JWK, or why it is unusable. A published private key is a leaked one: refused. */
function publicJwk(value: unknown): JWK | string {
  if (!isRecord(value) || typeof value.kty !== "string") return "is not a JWK";
  const members = PUBLIC_MEMBERS[value.kty];
  if (!members) return `has key type ${value.kty}, not an asymmetric one`;
  if (value.d !== undefined) return "carries private key material";
  const jwk: Record<string, unknown> = { kty: value.kty };
  for (const m of members) {
    if (typeof value[m] !== "string") return `lacks ${m}`;
    jwk[m] = value[m];
  }
  return jwk as JWK;
}

// ---- signing ----

export interface SignCardOptions {
  kid: string;
  alg: SignatureAlgorithm;
  /** Where verifiers fetch the public key (a JWKS holding it under kid). */
  jku?: string;
  /** Embed the public key in the protected header: a JWK, or true to derive it from the private key (which must then be extractable). */
  embedJwk?: JWK | true;
  /** Unprotected header parameters (not covered by the signature). */
  header?: Record<string, unknown>;
}

/**
 * Signs a card as §8.4.2 describes and returns a copy with the signature appended to `signatures` (any
 * earlier ones kept: they do not cover `signatures`). For fixtures, tests and local agents.
 */
export async function signAgentCard<T extends Record<string, unknown>>(
  card: T,
  privateKey: CryptoKey | KeyObject | JWK,
  options: SignCardOptions,
): Promise<T & { signatures: AgentCardSignature[] }> {
  if (!ALLOWED.has(options.alg)) throw new TypeError(`alg ${options.alg} is not an accepted signature algorithm`);
  if (options.jku !== undefined && options.embedJwk !== undefined) throw new TypeError("give jku or embedJwk, not both");
  const protectedHeader: JWSHeaderParameters = { alg: options.alg, typ: "JOSE", kid: options.kid };
  if (options.jku !== undefined) protectedHeader.jku = options.jku;
  if (options.embedJwk !== undefined) {
    const jwk = publicJwk(options.embedJwk === true ? publicPart(await asJwk(privateKey)) : options.embedJwk);
    if (typeof jwk === "string") throw new TypeError(`embedJwk ${jwk}`);
    protectedHeader.jwk = jwk;
  }
  // The spec's reading (§8.4.1): verifiers that follow it drop defaults, and ones that do not see none in a card without them.
  const form: CanonicalForm = isV1Shape(card) ? "defaults-omitted" : "as-published";
  const payload = signingPayloads(card).find((p) => p.form === form)!;
  const signer = new FlattenedSign(new TextEncoder().encode(payload.text)).setProtectedHeader(protectedHeader);
  if (options.header) signer.setUnprotectedHeader(options.header as JWSHeaderParameters);
  const jws = await signer.sign(privateKey);
  const signature: AgentCardSignature = { protected: jws.protected!, signature: jws.signature, ...(jws.header ? { header: jws.header as Record<string, unknown> } : {}) };
  const earlier = Array.isArray(card.signatures) ? (card.signatures as AgentCardSignature[]) : [];
  return { ...card, signatures: [...earlier, signature] };
}

/** A key given as a JWK is one already; a CryptoKey (extractable) or KeyObject is exported. */
async function asJwk(key: CryptoKey | KeyObject | JWK): Promise<Record<string, unknown>> {
  if (isRecord(key) && typeof key.kty === "string") return key;
  return (await exportJWK(key as CryptoKey | KeyObject)) as Record<string, unknown>;
}

/** The members of a JWK that make up its public key (private ones such as d are left behind). */
function publicPart(jwk: Record<string, unknown>): Record<string, unknown> {
  const members = typeof jwk.kty === "string" ? (PUBLIC_MEMBERS[jwk.kty] ?? []) : [];
  return Object.fromEntries([["kty", jwk.kty], ...members.map((m) => [m, jwk[m]])]);
}

// ---- the signed bytes ----

interface Payload {
  form: CanonicalForm;
  text: string;
  b64: string;
}

/** The card's canonical readings: as published, and with ProtoJSON defaults dropped (v1.0-shaped cards, §8.4.1). */
function signingPayloads(card: Record<string, unknown>): Payload[] {
  const unsigned = Object.fromEntries(Object.entries(card).filter(([k]) => k !== "signatures"));
  const forms: [CanonicalForm, unknown][] = [
    ["as-published", unsigned],
    ["defaults-omitted", isV1Shape(card) ? omitDefaults(unsigned, CARD_V1) : unsigned],
  ];
  return forms.map(([form, value]) => {
    const text = canonicalize(value);
    if (text === undefined) throw new TypeError("the card is not JSON");
    return { form, text, b64: base64url.encode(text) };
  });
}

function isV1Shape(card: Record<string, unknown>): boolean {
  return card.supportedInterfaces !== undefined;
}

/**
 * Which fields of each v1.0 message have implicit presence (neither REQUIRED nor `optional` in a2a.proto),
 * and so are dropped when they hold their default ("", false, 0, [], {}), and where nested messages sit.
 */
interface Shape {
  omit: ReadonlySet<string>;
  nested: Readonly<Record<string, { kind: "one" | "list" | "map"; shape: Shape }>>;
}
const shape = (omit: string[], nested: Shape["nested"] = {}): Shape => ({ omit: new Set(omit), nested });
const one = (s: Shape) => ({ kind: "one" as const, shape: s });
const list = (s: Shape) => ({ kind: "list" as const, shape: s });
const map = (s: Shape) => ({ kind: "map" as const, shape: s });

const OAUTH_FLOWS = shape([], {
  authorizationCode: one(shape(["refreshUrl", "pkceRequired"])),
  clientCredentials: one(shape(["refreshUrl"])),
  implicit: one(shape(["authorizationUrl", "refreshUrl", "scopes"])),
  password: one(shape(["tokenUrl", "refreshUrl", "scopes"])),
  deviceCode: one(shape(["refreshUrl"])),
});
const SECURITY_SCHEME = shape([], {
  apiKeySecurityScheme: one(shape(["description"])),
  httpAuthSecurityScheme: one(shape(["description", "bearerFormat"])),
  oauth2SecurityScheme: one(shape(["description", "oauth2MetadataUrl"], { flows: one(OAUTH_FLOWS) })),
  openIdConnectSecurityScheme: one(shape(["description"])),
  mtlsSecurityScheme: one(shape(["description"])),
});
const SECURITY_REQUIREMENT = shape(["schemes"], { schemes: map(shape(["list"])) });
const CARD_V1 = shape(["securitySchemes", "securityRequirements"], {
  supportedInterfaces: list(shape(["tenant"])),
  capabilities: one(shape(["extensions"], { extensions: list(shape(["uri", "description", "required"])) })),
  securitySchemes: map(SECURITY_SCHEME),
  securityRequirements: list(SECURITY_REQUIREMENT),
  skills: list(shape(["examples", "inputModes", "outputModes", "securityRequirements"], { securityRequirements: list(SECURITY_REQUIREMENT) })),
});

function isDefault(value: unknown): boolean {
  if (value === "" || value === false || value === 0) return true;
  if (Array.isArray(value)) return value.length === 0;
  return isRecord(value) && Object.keys(value).length === 0;
}

/** Object.fromEntries, not assignment: a key "__proto__" stays an own property, as it is in the signed JSON. */
function omitDefaults(value: Record<string, unknown>, s: Shape): Record<string, unknown> {
  const entries: [string, unknown][] = [];
  for (const [key, v] of Object.entries(value)) {
    const nested = s.nested[key];
    const next = nested ? descend(v, nested) : v;
    if (s.omit.has(key) && isDefault(next)) continue;
    entries.push([key, next]);
  }
  return Object.fromEntries(entries);
}

function descend(value: unknown, nested: { kind: "one" | "list" | "map"; shape: Shape }): unknown {
  if (nested.kind === "one") return isRecord(value) ? omitDefaults(value, nested.shape) : value;
  if (nested.kind === "list") return Array.isArray(value) ? value.map((v) => (isRecord(v) ? omitDefaults(v, nested.shape) : v)) : value;
  return isRecord(value) ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, isRecord(v) ? omitDefaults(v, nested.shape) : v])) : value;
}

// ---- helpers ----

function decodeProtected(encoded: string): Record<string, unknown> | undefined {
  try {
    const header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(base64url.decode(encoded))) as unknown;
    return isRecord(header) ? header : undefined;
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
