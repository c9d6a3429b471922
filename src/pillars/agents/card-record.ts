/**
 * An AgentCard as the registry records it: checked against its version's schema, its signatures
 * verified (keys from the signature's `jku`, fetched with the bounded fetch, or an embedded `jwk`, which
 * proves integrity and not identity), normalised, hashed. From the API an invalid card is refused with
 * its findings and nothing is stored; from a sync (a cloud stores the card) the record keeps the
 * findings and no card — never half of one.
 */
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import { BlockedAddressError } from "../../adapters/http/addresses.js";
import type { SafeFetch } from "../../adapters/http/safe-fetch.js";
import { AppError } from "../../domain/errors.js";
import type { Clock } from "../../ports/clock.js";
import { refuseUpstream } from "../tools/upstream.js";
import { assessCard, CardFetchError, chainKeyResolvers, embeddedJwkResolver, fetchAgentCard, jwksUrlResolver, type KeyResolution, type KeyResolver } from "./card/index.js";
import type { AgentCardRecord } from "./schema.js";
import type { z } from "zod";

type CardRecord = z.output<typeof AgentCardRecord>;

/** What the registry asks of cards. */
export interface CardRecorder {
  /** From the API: a valid card's record, or a 400 (`agent_card_invalid` with the findings, `agent_card_unreachable`). */
  record(source: { card: Record<string, unknown> } | { url: string }, field: string): Promise<CardRecord>;
  /** From a sync: the record of whatever the cloud stores (an invalid card keeps its findings and no card). */
  assess(raw: unknown, origin: "cloud"): Promise<CardRecord>;
}

const FETCH_LIMITS = { maxBodyBytes: 256 * 1024, timeoutMs: 5000 };
/**
 * All of one card's `jku` lookups together (each is bounded by FETCH_LIMITS too): a card may carry ten
 * signatures naming ten JWKS URLs that never answer, which would otherwise hold its registration for ten time-outs.
 */
const KEY_LOOKUP_BUDGET_MS = 10_000;

export interface CardsOptions {
  /** Wall time all of one card's JWKS lookups may take together. Default KEY_LOOKUP_BUDGET_MS. */
  keyLookupBudgetMs?: number;
}

/**
 * The bounded fetch, made on its first call: the HTTP client it is built on is loaded only by a process
 * that fetches a card or a JWKS (an app that records no card from a URL never loads it; cold start).
 */
function lazySafeFetch(options: { allowLoopback: boolean; maxBodyBytes: number; timeoutMs: number }): typeof globalThis.fetch {
  let made: Promise<SafeFetch> | undefined;
  return async (input, init) => {
    made ??= import("../../adapters/http/safe-fetch.js").then(({ createSafeFetch }) => createSafeFetch(options));
    return (await made)(input, init);
  };
}

export class Cards implements CardRecorder {
  private readonly fetch: typeof globalThis.fetch;
  /** One resolver for the recorder's life: JWKS documents are cached between cards. */
  private readonly jwks: KeyResolver;
  private readonly budgetMs: number;

  constructor(
    private readonly clock: Clock,
    private readonly allowLoopback: boolean,
    options: CardsOptions = {},
  ) {
    this.fetch = lazySafeFetch({ allowLoopback, ...FETCH_LIMITS });
    this.jwks = jwksUrlResolver(this.fetch);
    this.budgetMs = options.keyLookupBudgetMs ?? KEY_LOOKUP_BUDGET_MS;
  }

  /** The resolvers of one card's check: its JWKS lookups share one budget; embedded keys need no lookup. */
  private keys(): KeyResolver {
    return chainKeyResolvers(withinBudget(this.jwks, this.budgetMs), embeddedJwkResolver);
  }

  async record(source: { card: Record<string, unknown> } | { url: string }, field: string): Promise<CardRecord> {
    let raw: unknown;
    let url: string | undefined;
    if ("url" in source) {
      // As for MCP upstreams: https only (a card read over plain http could be anyone's), no private address.
      const refused = refuseUpstream(source.url, this.allowLoopback);
      if (refused) throw new AppError({ kind: "validation", detail: "the AgentCard's address is not allowed", reason: "upstream_address_refused", errors: [{ field: `${field}.url`, message: refused }] });
      try {
        ({ raw, url } = await fetchAgentCard(source.url, this.fetch));
      } catch (err) {
        const code = err instanceof CardFetchError ? err.code : err instanceof BlockedAddressError ? "card_blocked_address" : "card_fetch_failed";
        const message = err instanceof Error ? err.message : String(err);
        throw new AppError({ kind: "validation", detail: `the AgentCard could not be fetched (${code})`, reason: "agent_card_unreachable", errors: [{ field: `${field}.url`, message: `${code}: ${message}` }] });
      }
    } else raw = source.card;
    const record = await this.check(raw, "url" in source ? "fetched" : "supplied", url);
    if (!record.valid) {
      const errors = record.findings.filter((f) => f.severity === "error").map((f) => ({ field: `${field}${"card" in source ? ".card" : ""}${f.path ? `.${f.path}` : ""}`, message: `${f.code}: ${f.message}` }));
      throw new AppError({ kind: "validation", detail: "the AgentCard is not valid", reason: "agent_card_invalid", errors: errors.length ? errors : [{ field, message: "the card is not valid" }] });
    }
    return record;
  }

  assess(raw: unknown, origin: "cloud"): Promise<CardRecord> {
    return this.check(raw, origin, undefined);
  }

  private async check(raw: unknown, origin: CardRecord["origin"], url: string | undefined): Promise<CardRecord> {
    const result = await assessCard(raw, { keys: this.keys() });
    return {
      origin,
      ...(url ? { url } : {}),
      checkedAt: this.clock.now().toISOString(),
      version: result.version,
      valid: result.valid,
      hash: createHash("sha256").update(canonicalize(raw) ?? "").digest("hex"),
      findings: result.findings,
      signatures: result.signatures,
      trust: result.trust,
      ...(result.valid && result.card ? { card: result.card as unknown as Record<string, unknown>, document: raw as Record<string, unknown> } : {}),
    };
  }
}

/**
 * A resolver whose lookups, together, end within `ms` of the first: one still running then is left to its own
 * time-out (its result is cached for the next card) and reported unresolved, and later ones are not made.
 */
function withinBudget(resolve: KeyResolver, ms: number): KeyResolver {
  let deadline: number | undefined;
  const spent = (): KeyResolution => ({ unresolved: `not looked up: the card's key lookups used their budget of ${ms} ms` });
  return async (header) => {
    deadline ??= performance.now() + ms;
    const left = deadline - performance.now();
    if (left <= 0) return spent();
    let timer: NodeJS.Timeout | undefined;
    const expiry = new Promise<KeyResolution>((done) => {
      timer = setTimeout(() => done(spent()), left);
    });
    try {
      return await Promise.race([resolve(header), expiry]);
    } finally {
      clearTimeout(timer);
    }
  };
}
