/** Limits: rate-limit-by-key (calls) and llm-token-limit (tokens per minute, token quotas). */
import { type QuotaPeriod } from "../../runtime/counters.js";
import { estimateTokens, isStreamRequest, promptText } from "../../runtime/tokens.js";
import { asBool, asInt, asString, type ElementDef } from "../load.js";
import { PolicyError, type Run } from "../types.js";

const MINUTE = 60_000;

const tooMany = (status: 429 | 403, message: string, retryAfter: number, headerName: string): PolicyError["response"] => ({
  status,
  headers: { "Content-Type": "application/json", [headerName]: String(retryAfter) },
  body: JSON.stringify({ statusCode: status, message }),
});

/** Response headers a limit adds once the response is known (after the backend answered, or a refusal). */
function addResponseHeaders(r: Run, headers: Record<string, string>): void {
  if (!Object.keys(headers).length) return;
  r.callHeaders ??= new Set();
  r.limitHeaders ??= new Map();
  for (const [name, value] of Object.entries(headers)) {
    r.callHeaders.add(name.toLowerCase());
    r.limitHeaders.set(name, value);
  }
  r.afterBackend.push(async (rr) => {
    for (const [k, v] of Object.entries(headers)) rr.state.response?.headers.set(k, [v]);
  });
}

function requestJson(r: Run): unknown {
  try {
    return r.state.body?.length ? (JSON.parse(r.state.body.toString("utf8")) as unknown) : undefined;
  } catch {
    return undefined;
  }
}

export const rateLimitByKey: ElementDef = {
  sections: ["inbound"],
  attrs: {
    calls: { required: true, expr: true },
    "renewal-period": { required: true, expr: true },
    "counter-key": { required: true, expr: true },
    "increment-condition": { expr: true },
    "increment-count": { expr: true },
    "retry-after-header-name": {},
    "retry-after-variable-name": {},
    "remaining-calls-header-name": {},
    "remaining-calls-variable-name": {},
    "total-calls-header-name": {},
  },
  load: (el, l) => {
    const calls = l.attr(el, "calls")!;
    const period = l.attr(el, "renewal-period")!;
    const key = l.attr(el, "counter-key")!;
    const condition = l.attr(el, "increment-condition");
    const count = l.attr(el, "increment-count");
    const names = {
      retryHeader: l.literal(el, "retry-after-header-name") ?? "Retry-After",
      retryVar: l.literal(el, "retry-after-variable-name"),
      remainingHeader: l.literal(el, "remaining-calls-header-name"),
      remainingVar: l.literal(el, "remaining-calls-variable-name"),
      totalHeader: l.literal(el, "total-calls-header-name"),
    };
    return {
      element: "rate-limit-by-key",
      line: el.line,
      run: async (r) => {
        const limit = asInt(calls(r), "calls");
        const windowMs = asInt(period(r), "renewal-period") * 1000;
        if (windowMs > 300_000) throw new PolicyError("rate-limit", "InvalidConfiguration", "renewal-period must not exceed 300 seconds");
        const k = `rate|${asString(key(r))}`;
        const c = r.services.counters;
        const used = c.slidingUsed(k, windowMs);
        if (used >= limit) {
          const after = c.slidingRetryAfter(k, windowMs, limit);
          if (names.retryVar) r.state.variables.set(names.retryVar, after);
          throw new PolicyError("rate-limit", "RateLimitExceeded", "Rate limit is exceeded", tooMany(429, `Rate limit is exceeded. Try again in ${after} seconds.`, after, names.retryHeader));
        }
        const n = count ? asInt(count(r), "increment-count") : 1;
        const headers: Record<string, string> = {};
        if (names.totalHeader) headers[names.totalHeader] = String(limit);
        if (condition) {
          // The condition may read the response, so it is decided once the backend answered.
          r.onComplete.push(() => {
            if (asBool(condition(r), "increment-condition")) c.slidingAdd(k, n);
          });
        } else {
          c.slidingAdd(k, n);
        }
        const remaining = Math.max(0, limit - used - (condition ? 0 : n));
        if (names.remainingVar) r.state.variables.set(names.remainingVar, remaining);
        if (names.remainingHeader) headers[names.remainingHeader] = String(remaining);
        addResponseHeaders(r, headers);
      },
    };
  },
};

export const llmTokenLimit: ElementDef = {
  sections: ["inbound"],
  attrs: {
    "counter-key": { required: true, expr: true },
    "tokens-per-minute": { expr: true },
    "token-quota": { pattern: /^[0-9]+$/ },
    "token-quota-period": { pattern: /^(Hourly|Daily|Weekly|Monthly|Yearly)$/ },
    "estimate-prompt-tokens": { required: true, pattern: /^(true|false)$/ },
    "retry-after-header-name": {},
    "retry-after-variable-name": {},
    "remaining-quota-tokens-header-name": {},
    "remaining-quota-tokens-variable-name": {},
    "remaining-tokens-header-name": {},
    "remaining-tokens-variable-name": {},
    "tokens-consumed-header-name": {},
    "tokens-consumed-variable-name": {},
  },
  load: (el, l) => {
    const key = l.attr(el, "counter-key")!;
    const tpm = l.attr(el, "tokens-per-minute");
    const quota = l.int(el, "token-quota", 1, Number.MAX_SAFE_INTEGER);
    const period = l.literal(el, "token-quota-period") as QuotaPeriod | undefined;
    if (!tpm && quota === undefined) l.issue(el, "<llm-token-limit> needs tokens-per-minute, token-quota, or both");
    if ((quota === undefined) !== (period === undefined)) l.issue(el, "token-quota and token-quota-period go together");
    const estimate = (l.literal(el, "estimate-prompt-tokens") ?? "false") === "true";
    const names = Object.fromEntries(
      ["retry-after-header-name", "retry-after-variable-name", "remaining-quota-tokens-header-name", "remaining-quota-tokens-variable-name", "remaining-tokens-header-name", "remaining-tokens-variable-name", "tokens-consumed-header-name", "tokens-consumed-variable-name"].map((n) => [n, l.literal(el, n)]),
    ) as Record<string, string | undefined>;
    const retryHeader = names["retry-after-header-name"] ?? "Retry-After";
    return {
      element: "llm-token-limit",
      line: el.line,
      run: async (r) => {
        const k = asString(key(r));
        const c = r.services.counters;
        const body = requestJson(r);
        // With stream=true prompt tokens are always estimated (documented); otherwise only when asked.
        const est = estimate || isStreamRequest(body) ? estimateTokens(promptText(body)) : 0;
        const headers: Record<string, string> = {};
        const refuse = (status: 429 | 403, reason: string, message: string, after: number) => {
          if (names["retry-after-variable-name"]) r.state.variables.set(names["retry-after-variable-name"], after);
          throw new PolicyError("llm-token-limit", reason, message, tooMany(status, message, after, retryHeader));
        };
        if (tpm) {
          const limit = asInt(tpm(r), "tokens-per-minute");
          const used = c.slidingUsed(`tpm|${k}`, MINUTE);
          if (used >= limit || (est > 0 && used + est > limit)) {
            const after = c.slidingRetryAfter(`tpm|${k}`, MINUTE, Math.max(1, limit - est));
            refuse(429, "TokenLimitExceeded", `Token limit is exceeded. Try again in ${after} seconds.`, after);
          }
          const remaining = Math.max(0, limit - used - est);
          if (names["remaining-tokens-variable-name"]) r.state.variables.set(names["remaining-tokens-variable-name"], remaining);
          if (names["remaining-tokens-header-name"]) headers[names["remaining-tokens-header-name"]] = String(remaining);
        }
        if (quota !== undefined && period) {
          const { used, resetsInSeconds } = c.quotaUsed(`tq|${k}`, period);
          if (used >= quota || (est > 0 && used + est > quota)) refuse(403, "TokenQuotaExceeded", `Token quota is exceeded. Try again in ${resetsInSeconds} seconds.`, resetsInSeconds);
          const remaining = Math.max(0, quota - used - est);
          if (names["remaining-quota-tokens-variable-name"]) r.state.variables.set(names["remaining-quota-tokens-variable-name"], remaining);
          if (names["remaining-quota-tokens-header-name"]) headers[names["remaining-quota-tokens-header-name"]] = String(remaining);
        }
        if (names["tokens-consumed-variable-name"]) r.state.variables.set(names["tokens-consumed-variable-name"], est);
        addResponseHeaders(r, headers);
        r.onComplete.push((call) => {
          const used = call.usage?.totalTokens ?? 0;
          if (tpm) c.slidingAdd(`tpm|${k}`, used);
          if (quota !== undefined && period) c.quotaAdd(`tq|${k}`, period, used);
          if (names["tokens-consumed-variable-name"]) r.state.variables.set(names["tokens-consumed-variable-name"], used);
        });
        if (names["tokens-consumed-header-name"]) {
          const header = names["tokens-consumed-header-name"];
          r.afterBackend.push(async (rr) => {
            const u = rr.usage;
            if (u) rr.state.response?.headers.set(header, [String(u.totalTokens)]);
            (rr.callHeaders ??= new Set()).add(header.toLowerCase());
          });
        }
      },
    };
  },
};
