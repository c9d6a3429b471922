/** GenAI policies: llm-content-safety, the semantic cache pair, llm-emit-token-metric. */
import { HeaderBag } from "../../runtime/message.js";
import { dialogLength, promptText, isStreamRequest } from "../../runtime/tokens.js";
import { asBool, asInt, asString, type ElementDef, type Value } from "../load.js";
import { EndPipeline, PolicyError, type Run } from "../types.js";

/** Content Safety's text limit; longer input makes the policy fail with 500 (documented). */
const CONTENT_SAFETY_MAX_CHARS = 10_000;
const CONTENT_SAFETY_API_VERSION = "2024-09-01";
const CATEGORIES = ["Hate", "SelfHarm", "Sexual", "Violence"];

function requestJson(r: Run): unknown {
  try {
    return r.state.body?.length ? (JSON.parse(r.state.body.toString("utf8")) as unknown) : undefined;
  } catch {
    return undefined;
  }
}

const blocked = (message: string) =>
  new PolicyError("llm-content-safety", "ContentSafetyViolation", message, {
    status: 403,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ statusCode: 403, message }),
  });

export const llmContentSafety: ElementDef = {
  sections: ["inbound", "outbound"],
  attrs: {
    "backend-id": { required: true, expr: true },
    "shield-prompt": { pattern: /^(true|false)$/ },
    "enforce-on-completions": { pattern: /^(true|false)$/ },
    "window-size": { pattern: /^[0-9]+$/ },
    "window-overlap-size": { pattern: /^[0-9]+$/ },
  },
  children: ["categories", "blocklists"],
  load: (el, l) => {
    const backendId = l.attr(el, "backend-id")!;
    const shield = asBool(l.literal(el, "shield-prompt") ?? "false", "shield-prompt");
    const onCompletions = asBool(l.literal(el, "enforce-on-completions") ?? "false", "enforce-on-completions");
    const windowSize = l.int(el, "window-size", 1, 10_000) ?? 10_000;
    const categoriesEl = el.children.find((c) => c.name === "categories");
    const outputType = categoriesEl?.attrs.get("output-type") ?? "FourSeverityLevels";
    const thresholds = new Map<string, number>();
    for (const c of categoriesEl?.children ?? []) {
      if (c.name !== "category") l.issue(c, `<${c.name}> is not allowed inside <categories>`);
      const name = c.attrs.get("name") ?? "";
      if (!CATEGORIES.includes(name)) l.issue(c, `unknown content category '${name}'`);
      const t = Number(c.attrs.get("threshold"));
      if (!Number.isInteger(t) || t < 0 || t > 7) l.issue(c, "a category threshold is an integer from 0 to 7");
      thresholds.set(name, t);
    }
    if (categoriesEl && !/^(FourSeverityLevels|EightSeverityLevels)$/.test(outputType)) l.issue(categoriesEl, `unknown output-type '${outputType}'`);
    const blocklists = (el.children.find((c) => c.name === "blocklists")?.children ?? []).map((c) => {
      if (c.name !== "id") l.issue(c, `<${c.name}> is not allowed inside <blocklists>`);
      return c.text.trim();
    });

    const analyze = async (r: Run, text: string, promptShield: boolean): Promise<string | undefined> => {
      if (!text) return undefined;
      if (text.length > CONTENT_SAFETY_MAX_CHARS) throw new PolicyError("llm-content-safety", "ContentSafetyRequestTooLarge", `the text exceeds Azure AI Content Safety's limit of ${CONTENT_SAFETY_MAX_CHARS} characters`);
      const id = asString(backendId(r));
      const res = await r.services.callBackend(id, `/contentsafety/text:analyze?api-version=${CONTENT_SAFETY_API_VERSION}`, {
        text,
        categories: [...thresholds.keys()],
        ...(blocklists.length ? { blocklistNames: blocklists, haltOnBlocklistHit: false } : {}),
        outputType,
      });
      if (res.status !== 200) throw new PolicyError("llm-content-safety", "ContentSafetyUnavailable", `Azure AI Content Safety answered ${res.status}`);
      const result = res.json as { categoriesAnalysis?: { category: string; severity: number }[]; blocklistsMatch?: { blocklistName: string }[] };
      for (const a of result.categoriesAnalysis ?? []) {
        const t = thresholds.get(a.category);
        if (t !== undefined && a.severity >= t) return `The request was blocked by content safety (${a.category}).`;
      }
      if (result.blocklistsMatch?.length) return `The request was blocked by content safety (blocklist ${result.blocklistsMatch[0]!.blocklistName}).`;
      if (promptShield) {
        const s = await r.services.callBackend(id, `/contentsafety/text:shieldPrompt?api-version=${CONTENT_SAFETY_API_VERSION}`, { userPrompt: text, documents: [] });
        if (s.status !== 200) throw new PolicyError("llm-content-safety", "ContentSafetyUnavailable", `Azure AI Content Safety answered ${s.status}`);
        if ((s.json as { userPromptAnalysis?: { attackDetected?: boolean } }).userPromptAnalysis?.attackDetected) return "The request was blocked by content safety (prompt attack detected).";
      }
      return undefined;
    };

    const checkCompletion = async (r: Run) => {
      const res = r.state.response;
      if (!res?.body || res.status >= 300) return;
      let text = "";
      try {
        const json = JSON.parse(res.body.toString("utf8")) as { choices?: { message?: { content?: unknown }; text?: unknown }[] };
        text = (json.choices ?? []).map((c) => (typeof c.message?.content === "string" ? c.message.content : typeof c.text === "string" ? c.text : "")).join("\n");
      } catch {
        return;
      }
      const why = await analyze(r, text, false);
      if (why) throw blocked(why.replace("request", "response"));
    };

    return {
      element: "llm-content-safety",
      line: el.line,
      run: async (r) => {
        if (r.section === "inbound") {
          const why = await analyze(r, promptText(requestJson(r)), shield);
          if (why) throw blocked(why);
          if (!onCompletions) return;
        }
        // Completions: a buffered answer is checked whole; a stream is checked per window and stopped
        // (no 403 can be sent once streaming began, as documented).
        r.streamChecks.push({ windowSize, check: async (text) => !(await analyze(r, text, false)) });
        if (r.section === "outbound") await checkCompletion(r);
        else r.afterBackend.push(checkCompletion);
      },
    };
  },
};

export const llmSemanticCacheLookup: ElementDef = {
  sections: ["inbound"],
  attrs: {
    "score-threshold": { required: true, pattern: /^(0(\.[0-9]+)?|1(\.0+)?)$/ },
    "embeddings-backend-id": { required: true },
    "embeddings-backend-auth": { required: true, pattern: /^system-assigned$/ },
    "ignore-system-messages": { pattern: /^(true|false)$/ },
    "max-message-count": { pattern: /^[0-9]+$/ },
  },
  children: ["vary-by"],
  load: (el, l) => {
    const threshold = Number(l.literal(el, "score-threshold") ?? "0");
    const backendId = l.literal(el, "embeddings-backend-id") ?? "";
    const ignoreSystem = (l.literal(el, "ignore-system-messages") ?? "false") === "true";
    const maxMessages = l.int(el, "max-message-count", 1, 1000);
    const varyBy: Value[] = el.children.map((c) => l.text(c));
    return {
      element: "llm-semantic-cache-lookup",
      line: el.line,
      run: async (r) => {
        const body = requestJson(r);
        // A streamed answer cannot be replayed from a cached JSON answer: streams bypass the cache.
        if (isStreamRequest(body)) return;
        // "max-message-count: number of remaining dialog messages after which caching is skipped": a longer
        // dialog is neither looked up nor stored. (Matching on its last messages alone would hand one
        // conversation the answer of another that merely ends the same way.)
        if (maxMessages !== undefined && dialogLength(body, ignoreSystem) > maxMessages) return;
        const text = promptText(body, { ignoreSystem });
        if (!text) return;
        const res = await r.services.callBackend(backendId, "", { input: text }, { Authorization: `Bearer ${r.services.managedIdentityToken("https://cognitiveservices.azure.com/")}` });
        const vector = (res.json as { data?: { embedding?: unknown }[] }).data?.[0]?.embedding;
        if (res.status !== 200 || !Array.isArray(vector)) throw new PolicyError("llm-semantic-cache-lookup", "EmbeddingsUnavailable", `the embeddings backend answered ${res.status}`);
        // The reference says the vary-by values are concatenated; how APIM keeps ["ab","c"] apart from
        // ["a","bc"] is not documented. The gateway keeps them apart (each value with its length), so a
        // partition never depends on where one value ends; the compiler's values do not rely on it either
        // (fixed-length ids and literals, model names without '/', the data class after a '|').
        const partition = varyBy.map((v) => asString(v(r))).map((v) => `${v.length}:${v}`).join("");
        const hit = r.services.semanticCache.lookup(partition, vector as number[], threshold);
        if (hit) {
          r.trace.cache = "hit";
          const headers = new HeaderBag(Object.entries(hit.response.headers));
          // What the limits that let this call through had left (they ran before the lookup): the hit's own
          // counters, never those of the call that filled the cache (the store keeps them out).
          for (const [name, value] of r.limitHeaders ?? []) headers.set(name, [value]);
          r.state.response = { status: hit.response.status, reason: hit.response.reason, headers, body: hit.response.body };
          throw new EndPipeline();
        }
        r.trace.cache = "miss";
        r.cacheCandidate = { partition, vector: vector as number[] };
      },
    };
  },
};

export const llmSemanticCacheStore: ElementDef = {
  sections: ["outbound"],
  attrs: { duration: { required: true, expr: true }, "cache-response": { pattern: /^(true|false)$/ } },
  load: (el, l) => {
    const duration = l.attr(el, "duration")!;
    const cacheResponse = (l.literal(el, "cache-response") ?? "true") === "true";
    return {
      element: "llm-semantic-cache-store",
      line: el.line,
      run: async (r) => {
        const res = r.state.response;
        if (!cacheResponse || !r.cacheCandidate || !res?.body || res.status !== 200) return;
        // The answer, not what this call's limits said about its own counters: a hit for another key
        // would otherwise replay them. (What APIM keeps of a response is not documented: ADR 009.)
        const headers = Object.fromEntries(Object.entries(res.headers.toRecord()).filter(([name]) => !r.callHeaders?.has(name.toLowerCase())));
        r.services.semanticCache.store(r.cacheCandidate.partition, r.cacheCandidate.vector, { status: res.status, reason: res.reason, headers, body: res.body }, asInt(duration(r), "duration"));
      },
    };
  },
};

const DEFAULT_DIMENSIONS = new Set(["API ID", "Operation ID", "Product ID", "User ID", "Subscription ID", "Location", "Gateway ID", "Backend ID"]);

export const llmEmitTokenMetric: ElementDef = {
  sections: ["inbound"],
  attrs: { namespace: {} },
  children: ["dimension"],
  load: (el, l) => {
    const namespace = l.literal(el, "namespace") ?? "API Management";
    if (el.children.length === 0) l.issue(el, "<llm-emit-token-metric> needs at least one <dimension>");
    const dims = el.children.map((d) => {
      const name = d.attrs.get("name") ?? "";
      for (const k of d.attrs.keys()) if (k !== "name" && k !== "value") l.issue(d, `<dimension> has no attribute '${k}'`);
      const value = d.attrs.has("value") ? l.attr(d, "value") : undefined;
      if (!value && !DEFAULT_DIMENSIONS.has(name)) l.issue(d, `dimension '${name}' needs a value (only the default dimensions may omit it)`);
      return { name, value };
    });
    return {
      element: "llm-emit-token-metric",
      line: el.line,
      run: async (r) => {
        const s = r.state;
        const defaults: Record<string, () => string> = {
          "API ID": () => s.api?.id ?? "",
          "Operation ID": () => s.operation?.id ?? "",
          "Product ID": () => s.product?.id ?? "",
          "User ID": () => "",
          "Subscription ID": () => s.subscription?.id ?? "",
          Location: () => s.deployment.region,
          "Gateway ID": () => "managed",
          "Backend ID": () => r.trace.backendId ?? "",
        };
        const values = Object.fromEntries(dims.map((d) => [d.name, d.value ? asString(d.value(r)) : (defaults[d.name]?.() ?? "")]));
        r.onComplete.push((call) => {
          if (call.usage) r.services.metric(namespace, values, call.usage);
        });
      },
    };
  },
};
