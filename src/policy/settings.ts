/**
 * Governance settings as policy-as-code: one typed control per concern, settable at tenant, project
 * and model scope, merged into the effective settings the compiler turns into gateway artifacts.
 *
 * Every control has a stable id (e.g. `tokens.perMinute`). Exemptions, explain output and audit
 * records refer to controls by these ids, so never rename one; add a new id instead.
 *
 * ## Precedence (mergeSettings)
 *
 * Scopes from least to most specific: tenant → project → model. A control may only be set at the
 * scopes listed in {@link CONTROLS} (the model-scope schema rejects the others).
 *
 * - **Values** (numbers, switches, enums; `merge: "value"`): the most specific scope that sets a
 *   *field* wins, field by field — within the tenant's floor: a project or model may tighten a
 *   control the tenant sets, never loosen it (floors.ts: refused on write, clamped in the compiler
 *   input before this merge; exemptions are the way below a floor). A model can override its project. `enabled: false` (or `null` for scalar controls) at a scope
 *   switches the control off for that scope and the ones below it that do not switch it back on.
 *   Content-safety category thresholds merge per category.
 * - **Allow-lists** (`merge: "intersect"`: `models.allowed`, `regions.allowed`, `dataClass.allowed`):
 *   the effective list is the intersection of the lists set at every scope, so a lower scope can
 *   only narrow what a higher one allows. Not set at a scope = no restriction from that scope;
 *   an empty list = nothing allowed.
 * - **Requirement and deny lists** (`merge: "union"`: `headers.required`, the extra names of
 *   `headers.stripSecrets`, content-safety `blocklists`): the union of every scope, so a lower scope
 *   can only add requirements. For a required header listed at several scopes with allowed values,
 *   the allowed values intersect.
 *
 * - **Allow-list exemptions** (`exempt`, compiler input only — see {@link CompilerSettings}): after the
 *   intersection, the values an exemption adds at a project or model scope are unioned in, or the
 *   restriction is lifted (`off`), for that scope and everything inside it. They are applied last
 *   because a narrower scope could otherwise intersect them away again, and an exemption means "the
 *   normal list plus these values", not "whatever the narrowest scope says".
 *
 * Per-key limits (`tokens.perMinute`, `tokens.quota`, `requests.rate` with `per: "key"`) have one more
 * level, the key tier (see input.ts): model > key tier > project > tenant. That level is applied by
 * the compiler, not here, because a tier is chosen per request.
 */
import { z } from "zod";
import { BlocklistId, DataClass, HeaderName, HeaderValue, MetricNamespace, ModelName, Region } from "./identifiers.js";

export const SETTING_LEVELS = ["tenant", "project", "model"] as const;
export type SettingLevel = (typeof SETTING_LEVELS)[number];

export const CONTROL_IDS = [
  "tokens.perMinute",
  "tokens.quota",
  "requests.rate",
  "contentSafety",
  "semanticCache",
  "models.allowed",
  "regions.allowed",
  "dataClass.allowed",
  "prompt.maxBytes",
  "headers.required",
  "correlationId",
  "headers.stripSecrets",
  "metrics.tokens",
  "failover",
] as const;
export const ControlId = z.enum(CONTROL_IDS).meta({ description: "Stable id of a governance control" });
export type ControlId = z.infer<typeof ControlId>;

export interface ControlInfo {
  description: string;
  /** Scopes where the control may be set. */
  scopes: readonly SettingLevel[];
  merge: "value" | "intersect" | "union";
}

/** The control catalog: what each control does, where it may be set and how scopes combine. */
export const CONTROLS: Readonly<Record<ControlId, ControlInfo>> = {
  "tokens.perMinute": { description: "LLM tokens per minute, per key or per project (llm-token-limit; 429 when exceeded)", scopes: SETTING_LEVELS, merge: "value" },
  "tokens.quota": { description: "LLM token quota over a period, per key or per project (llm-token-limit; 403 when exhausted)", scopes: SETTING_LEVELS, merge: "value" },
  "requests.rate": { description: "Requests per sliding window, per key or per project (rate-limit-by-key; 429)", scopes: ["tenant", "project"], merge: "value" },
  contentSafety: { description: "Azure AI Content Safety on prompts: category thresholds, prompt shields, blocklists (llm-content-safety; 403)", scopes: SETTING_LEVELS, merge: "value" },
  semanticCache: { description: "Semantic cache of completions (llm-semantic-cache-lookup/-store)", scopes: ["tenant", "project"], merge: "value" },
  "models.allowed": { description: "Model names a project may call", scopes: ["tenant", "project"], merge: "intersect" },
  "regions.allowed": { description: "Regions whose backends may serve requests", scopes: SETTING_LEVELS, merge: "intersect" },
  "dataClass.allowed": { description: "Data classes (x-aigov-data-class request header) a model may receive", scopes: SETTING_LEVELS, merge: "intersect" },
  "prompt.maxBytes": { description: "Maximum request body size in bytes (413 when exceeded)", scopes: ["tenant", "project"], merge: "value" },
  "headers.required": { description: "Request headers that must be present, optionally with allowed values (400)", scopes: ["tenant", "project"], merge: "union" },
  correlationId: { description: "Correlation-id header injected on requests and echoed on responses", scopes: ["tenant", "project"], merge: "value" },
  "headers.stripSecrets": { description: "Delete secret-looking headers before forwarding and from responses", scopes: ["tenant", "project"], merge: "union" },
  "metrics.tokens": { description: "Emit token-usage metrics with project, key and model dimensions (llm-emit-token-metric)", scopes: ["tenant", "project"], merge: "value" },
  failover: { description: "Backend pools with circuit breakers, and retry across pool members", scopes: SETTING_LEVELS, merge: "value" },
};

// ---------------------------------------------------------------------------------------------
// Control schemas. Every field is optional: a scope sets only what it changes.

export const LimitPer = z.enum(["key", "project"]).meta({ description: "key: one counter per virtual key (APIM subscription); project: one shared counter" });
export const QUOTA_PERIODS = ["Hourly", "Daily", "Weekly", "Monthly", "Yearly"] as const;
export const CONTENT_CATEGORIES = ["Hate", "SelfHarm", "Sexual", "Violence"] as const;
export const CORRELATION_HEADERS = ["x-correlation-id", "x-request-id", "x-ms-client-request-id"] as const;
export const METRIC_DIMENSIONS = ["project", "key", "model"] as const;
export const CACHE_PARTITIONS = ["key", "user"] as const;

const enabled = z.boolean().optional().meta({ description: "false switches the control off at this scope and below" });

export const TokensPerMinuteSetting = z
  .strictObject({
    enabled,
    limit: z.int().min(1).max(1_000_000_000).optional().meta({ description: "Tokens (prompt + completion) per minute" }),
    per: LimitPer.optional().meta({ description: "Counter granularity (default key)" }),
    estimatePromptTokens: z.boolean().optional().meta({ description: "Estimate prompt tokens before calling the backend (default false)" }),
  })
  .meta({ description: "tokens.perMinute" });

export const TokenQuotaSetting = z
  .strictObject({
    enabled,
    limit: z.int().min(1).max(1_000_000_000_000).optional().meta({ description: "Tokens per period" }),
    period: z.enum(QUOTA_PERIODS).optional().meta({ description: "Fixed UTC window (default Monthly)" }),
    per: LimitPer.optional().meta({ description: "Counter granularity (default project)" }),
    estimatePromptTokens: z.boolean().optional(),
  })
  .meta({ description: "tokens.quota" });

export const RequestRateSetting = z
  .strictObject({
    enabled,
    calls: z.int().min(1).max(1_000_000).optional().meta({ description: "Calls per renewal period" }),
    renewalPeriodSeconds: z.int().min(1).max(300).optional().meta({ description: "Sliding window in seconds, at most 300 (default 60)" }),
    per: LimitPer.optional().meta({ description: "Counter granularity (default key)" }),
  })
  .meta({ description: "requests.rate" });

const Threshold = z.int().min(0).max(7);
export const ContentSafetySetting = z
  .strictObject({
    enabled,
    shieldPrompt: z.boolean().optional().meta({ description: "Prompt Shields against jailbreak attacks (default false)" }),
    enforceOnCompletions: z.boolean().optional().meta({ description: "Also check completions (default false)" }),
    outputType: z.enum(["FourSeverityLevels", "EightSeverityLevels"]).optional().meta({ description: "Severity scale (default FourSeverityLevels: thresholds 0, 2, 4, 6)" }),
    categories: z.partialRecord(z.enum(CONTENT_CATEGORIES), Threshold).optional().meta({ description: "Block at or above this severity; default 4 for every category" }),
    blocklists: z.array(BlocklistId).max(50).optional().meta({ description: "Blocklist names (union across scopes)" }),
  })
  .meta({ description: "contentSafety" });

export const SemanticCacheSetting = z
  .strictObject({
    enabled,
    scoreThreshold: z.number().min(0).max(1).optional().meta({ description: "Lower = closer match required (default 0.05)" }),
    durationSeconds: z.int().min(1).max(30 * 86_400).optional().meta({ description: "Cache entry lifetime (default 300)" }),
    partitionBy: z
      .array(z.enum(CACHE_PARTITIONS))
      .max(2)
      .optional()
      .meta({ description: "Extra cache partitions; project and model always partition the cache. `user` is the same as `key`: aigov's keys belong to no APIM user" }),
    ignoreSystemMessages: z.boolean().optional(),
    maxMessageCount: z.int().min(1).max(100).optional(),
  })
  .meta({ description: "semanticCache" });

export const RequiredHeader = z
  .strictObject({
    name: HeaderName,
    values: z.array(HeaderValue).min(1).max(50).optional().meta({ description: "Allowed values (any value when absent)" }),
  })
  .meta({ description: "A header every request must carry" });

export const StripSecretsSetting = z
  .strictObject({
    enabled,
    extra: z.array(HeaderName).max(50).optional().meta({ description: "Header names to delete in addition to the built-in list" }),
  })
  .meta({ description: "headers.stripSecrets" });

export const CorrelationIdSetting = z
  .strictObject({ enabled, header: z.enum(CORRELATION_HEADERS).optional().meta({ description: "Header name (default x-correlation-id)" }) })
  .meta({ description: "correlationId" });

export const TokenMetricsSetting = z
  .strictObject({
    enabled,
    namespace: MetricNamespace.optional().meta({ description: "Metric namespace (default aigov)" }),
    dimensions: z.array(z.enum(METRIC_DIMENSIONS)).min(1).max(3).optional().meta({ description: "Default: project, key, model" }),
  })
  .meta({ description: "metrics.tokens" });

export const StatusCodeRange = z
  .strictObject({ min: z.int().min(200).max(599), max: z.int().min(200).max(599) })
  .refine((r) => r.min <= r.max, "min must not exceed max");
const IsoDuration = z.string().regex(/^PT([1-9][0-9]{0,3}[SMH])$/, "must be an ISO-8601 duration such as PT30S, PT1M or PT1H");

export const CircuitBreakerSetting = z.strictObject({
  failureCount: z.int().min(1).max(10_000).optional().meta({ description: "Failures within the interval that trip the breaker (default 1)" }),
  failureInterval: IsoDuration.optional().meta({ description: "Default PT1M" }),
  statusCodes: z.array(StatusCodeRange).min(1).max(10).optional().meta({ description: "Failing status codes (default 429 and 500-599)" }),
  tripDuration: IsoDuration.optional().meta({ description: "How long a tripped backend leaves the pool (default PT1M)" }),
  acceptRetryAfter: z.boolean().optional().meta({ description: "Honour the backend's Retry-After (default true)" }),
});

const failoverFields = {
  enabled,
  circuitBreaker: CircuitBreakerSetting.optional(),
};
export const FailoverSetting = z
  .strictObject({
    ...failoverFields,
    retry: z
      .strictObject({
        enabled,
        count: z.int().min(1).max(29).optional().meta({ description: "Retries on 429/5xx (default: largest pool size - 1)" }),
      })
      .optional()
      .meta({ description: "Retry in the backend section (tenant and project scope only)" }),
  })
  .meta({ description: "failover" });
export const ModelFailoverSetting = z.strictObject(failoverFields).meta({ description: "failover (model scope: circuit breaker only)" });

const controlFields = {
  tokens: z.strictObject({ perMinute: TokensPerMinuteSetting.optional(), quota: TokenQuotaSetting.optional() }).optional(),
  requests: z.strictObject({ rate: RequestRateSetting.optional() }).optional(),
  contentSafety: ContentSafetySetting.optional(),
  semanticCache: SemanticCacheSetting.optional(),
  models: z.strictObject({ allowed: z.array(ModelName).max(10_000).optional().meta({ description: "models.allowed" }) }).optional(),
  regions: z.strictObject({ allowed: z.array(Region).max(100).optional().meta({ description: "regions.allowed" }) }).optional(),
  dataClass: z.strictObject({ allowed: z.array(DataClass).max(50).optional().meta({ description: "dataClass.allowed" }) }).optional(),
  prompt: z
    .strictObject({ maxBytes: z.int().min(1).max(512 * 1024 * 1024).nullable().optional().meta({ description: "prompt.maxBytes; null removes a higher scope's limit" }) })
    .optional(),
  headers: z
    .strictObject({
      required: z.array(RequiredHeader).max(50).optional().meta({ description: "headers.required" }),
      stripSecrets: StripSecretsSetting.optional(),
    })
    .optional(),
  correlationId: CorrelationIdSetting.optional(),
  metrics: z.strictObject({ tokens: TokenMetricsSetting.optional() }).optional(),
  failover: FailoverSetting.optional(),
};

/** Settings at tenant or project scope. */
export const Settings = z.strictObject(controlFields).meta({ id: "GovernanceSettings", description: "Governance controls at tenant or project scope" });
export type Settings = z.output<typeof Settings>;
export type SettingsInput = z.input<typeof Settings>;

/** Settings at model scope: only controls whose catalog entry lists the model scope. */
export const ModelSettings = z
  .strictObject({
    tokens: controlFields.tokens,
    contentSafety: controlFields.contentSafety,
    regions: controlFields.regions,
    dataClass: controlFields.dataClass,
    failover: ModelFailoverSetting.optional(),
  })
  .meta({ id: "ModelGovernanceSettings", description: "Governance controls at model scope" });
export type ModelSettings = z.output<typeof ModelSettings>;

// ---------------------------------------------------------------------------------------------
// Allow-list exemptions: compiler input only.

/** Controls whose lists intersect across scopes; an exemption can widen or lift them per scope. */
export const ALLOW_LIST_CONTROLS = ["models.allowed", "regions.allowed", "dataClass.allowed"] as const satisfies readonly ControlId[];
export type AllowListControl = (typeof ALLOW_LIST_CONTROLS)[number];
export const isAllowListControl = (c: ControlId): c is AllowListControl => (ALLOW_LIST_CONTROLS as readonly string[]).includes(c);

/** The schema of one value of each allow-list: an exemption's values are validated exactly like the list's own. */
export const ALLOW_LIST_VALUE: Readonly<Record<AllowListControl, z.ZodType<string>>> = { "models.allowed": ModelName, "regions.allowed": Region, "dataClass.allowed": DataClass };
/** Values one exemption may add (the smallest of the lists' own maxima, dataClass.allowed's 50). */
export const MAX_ALLOW_LIST_EXEMPTION_VALUES = 50;

const allowListExemption = (value: z.ZodType<string>) =>
  z
    .strictObject({
      add: z.array(value).min(1).max(10_000).optional().meta({ description: "Values allowed in addition to the intersected list" }),
      off: z.literal(true).optional().meta({ description: "No restriction from this list inside the scope" }),
    })
    .meta({ description: "An allow-list exemption at this scope" });

/**
 * What `applyExemptions` (exemptions.ts) writes to widen an allow-list at one scope. It is **not** a
 * governance setting: the user-facing schemas ({@link Settings}, {@link ModelSettings}, used by the
 * tenant, project and model settings APIs) are strict objects without it, so nobody can write it;
 * only the compiler input's project and model settings accept it ({@link CompilerSettings},
 * {@link CompilerModelSettings}). Not at tenant scope: an allow-list is widened for a project or a
 * model; tenant-wide, that is simply a different tenant setting.
 */
export const AllowListExemptions = z
  .strictObject({
    "models.allowed": allowListExemption(ModelName).optional(),
    "regions.allowed": allowListExemption(Region).optional(),
    "dataClass.allowed": allowListExemption(DataClass).optional(),
  })
  .meta({ description: "Allow-list exemptions in force at this scope (written by applyExemptions only)" });
export type AllowListExemptions = z.output<typeof AllowListExemptions>;
const ModelAllowListExemptions = AllowListExemptions.omit({ "models.allowed": true });

/** Project settings in the compiler input: the governance settings plus allow-list exemptions. */
export const CompilerSettings = Settings.extend({ exempt: AllowListExemptions.optional() }).meta({
  id: "CompilerProjectSettings",
  description: "Project-scope governance settings as the compiler gets them: exempt is set by applyExemptions only",
});
export type CompilerSettings = z.output<typeof CompilerSettings>;
/** Model settings in the compiler input: the model-scope settings plus allow-list exemptions. */
export const CompilerModelSettings = ModelSettings.extend({ exempt: ModelAllowListExemptions.optional() }).meta({
  id: "CompilerModelSettings",
  description: "Model-scope governance settings as the compiler gets them: exempt is set by applyExemptions only",
});
export type CompilerModelSettings = z.output<typeof CompilerModelSettings>;

// ---------------------------------------------------------------------------------------------
// Effective (merged) settings.

export interface ResolvedValues {
  "tokens.perMinute": { limit: number; per: "key" | "project"; estimatePromptTokens: boolean };
  "tokens.quota": { limit: number; period: (typeof QUOTA_PERIODS)[number]; per: "key" | "project"; estimatePromptTokens: boolean };
  "requests.rate": { calls: number; renewalPeriodSeconds: number; per: "key" | "project" };
  contentSafety: {
    shieldPrompt: boolean;
    enforceOnCompletions: boolean;
    outputType: "FourSeverityLevels" | "EightSeverityLevels";
    categories: { name: (typeof CONTENT_CATEGORIES)[number]; threshold: number }[];
    blocklists: string[];
  };
  semanticCache: { scoreThreshold: number; durationSeconds: number; partitionBy: (typeof CACHE_PARTITIONS)[number][]; ignoreSystemMessages?: boolean; maxMessageCount?: number };
  "models.allowed": string[];
  "regions.allowed": string[];
  "dataClass.allowed": string[];
  "prompt.maxBytes": number;
  "headers.required": { name: string; values?: string[] }[];
  correlationId: { header: (typeof CORRELATION_HEADERS)[number] };
  "headers.stripSecrets": { extra: string[] };
  "metrics.tokens": { namespace: string; dimensions: (typeof METRIC_DIMENSIONS)[number][] };
  failover: {
    circuitBreaker: { failureCount: number; failureInterval: string; statusCodes: { min: number; max: number }[]; tripDuration: string; acceptRetryAfter: boolean };
    retry: { enabled: boolean; count?: number };
  };
}

export interface Resolved<T> {
  value: T;
  /** The most specific scope that contributed to the value. */
  scope: SettingLevel;
  /** Every scope that contributed, least specific first. */
  sources: SettingLevel[];
}

/** The effective settings for one (project, model) pair. A control that is absent is off. */
export type EffectiveSettings = { [K in ControlId]?: Resolved<ResolvedValues[K]> };

type Layer<T> = [SettingLevel, T | undefined];

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const sortedUnique = (xs: Iterable<string>) => [...new Set(xs)].sort(byCodePoint);

/** Field-wise merge: later layers win per field. Returns undefined when no layer has the control. */
function mergeFields<T extends object>(layers: Layer<T>[]): { merged: Partial<T>; sources: SettingLevel[] } | undefined {
  const merged: Partial<T> = {};
  const sources: SettingLevel[] = [];
  for (const [level, value] of layers) {
    if (value === undefined) continue;
    // A control object present at a scope configures the control there, even when empty ({} = defaults).
    sources.push(level);
    for (const [k, v] of Object.entries(value) as [keyof T, T[keyof T]][]) if (v !== undefined) merged[k] = v;
  }
  return sources.length ? { merged, sources } : undefined;
}

function resolved<T>(value: T, sources: SettingLevel[]): Resolved<T> {
  return { value, scope: sources[sources.length - 1] ?? "tenant", sources };
}

function intersect(layers: Layer<string[]>[]): Resolved<string[]> | undefined {
  let acc: Set<string> | undefined;
  const sources: SettingLevel[] = [];
  for (const [level, list] of layers) {
    if (list === undefined) continue;
    sources.push(level);
    acc = acc === undefined ? new Set(list) : new Set(list.filter((x) => acc!.has(x)));
  }
  return acc === undefined ? undefined : resolved(sortedUnique(acc), sources);
}

type AllowListExemption = NonNullable<AllowListExemptions[AllowListControl]>;

/**
 * An allow-list: the intersection of every scope's list, then the exemptions of the scopes that have
 * one (project, model) — after the intersection, so a narrower scope cannot undo them. Without any
 * list there is no restriction to widen, so exemptions change nothing. `off` lifts the restriction;
 * added values are unioned in, and their scope becomes a source (explain names the exempted scope).
 */
function allowList(layers: Layer<string[]>[], exempt: Layer<AllowListExemption>[]): Resolved<string[]> | undefined {
  const base = intersect(layers);
  if (!base) return undefined;
  const active = exempt.filter((l): l is [SettingLevel, AllowListExemption] => l[1] !== undefined);
  if (!active.length) return base;
  if (active.some(([, e]) => e.off)) return undefined;
  const levels = new Set([...base.sources, ...active.map(([level]) => level)]);
  const sources = SETTING_LEVELS.filter((l) => levels.has(l));
  return resolved(sortedUnique([...base.value, ...active.flatMap(([, e]) => e.add ?? [])]), sources);
}

/** A category's threshold where no scope sets one (exemptions.ts compares relaxations with it). */
export const DEFAULT_CATEGORY_THRESHOLD = 4;
export const DEFAULT_CIRCUIT_BREAKER = {
  failureCount: 1,
  failureInterval: "PT1M",
  statusCodes: [
    { min: 429, max: 429 },
    { min: 500, max: 599 },
  ],
  tripDuration: "PT1M",
  acceptRetryAfter: true,
} as const;

/**
 * Merges the settings of the three scopes into the effective settings (see the module comment for
 * the precedence rules). Pure: the result depends only on the arguments, and lists come out sorted.
 */
export function mergeSettings(tenant?: Settings, project?: CompilerSettings, model?: CompilerModelSettings): EffectiveSettings {
  const out: EffectiveSettings = {};
  const layers = <T>(pick: (s: Settings | ModelSettings) => T | undefined, includeModel = true): Layer<T>[] => [
    ["tenant", tenant && pick(tenant)],
    ["project", project && pick(project)],
    ["model", includeModel && model ? pick(model) : undefined],
  ];
  const m = (s: Settings | ModelSettings) => s as Settings;

  const tpm = mergeFields(layers((s) => s.tokens?.perMinute));
  if (tpm && tpm.merged.enabled !== false && tpm.merged.limit !== undefined) {
    out["tokens.perMinute"] = resolved({ limit: tpm.merged.limit, per: tpm.merged.per ?? "key", estimatePromptTokens: tpm.merged.estimatePromptTokens ?? false }, tpm.sources);
  }
  const tq = mergeFields(layers((s) => s.tokens?.quota));
  if (tq && tq.merged.enabled !== false && tq.merged.limit !== undefined) {
    out["tokens.quota"] = resolved(
      { limit: tq.merged.limit, period: tq.merged.period ?? "Monthly", per: tq.merged.per ?? "project", estimatePromptTokens: tq.merged.estimatePromptTokens ?? false },
      tq.sources,
    );
  }
  const rr = mergeFields(layers((s) => m(s).requests?.rate, false));
  if (rr && rr.merged.enabled !== false && rr.merged.calls !== undefined) {
    out["requests.rate"] = resolved({ calls: rr.merged.calls, renewalPeriodSeconds: rr.merged.renewalPeriodSeconds ?? 60, per: rr.merged.per ?? "key" }, rr.sources);
  }

  const csLayers = layers((s) => s.contentSafety);
  const cs = mergeFields(csLayers);
  if (cs && cs.merged.enabled !== false) {
    const thresholds = new Map<(typeof CONTENT_CATEGORIES)[number], number>(CONTENT_CATEGORIES.map((c) => [c, DEFAULT_CATEGORY_THRESHOLD]));
    const blocklists = new Set<string>();
    for (const [, layer] of csLayers) {
      for (const [name, t] of Object.entries(layer?.categories ?? {})) if (t !== undefined) thresholds.set(name as (typeof CONTENT_CATEGORIES)[number], t);
      for (const b of layer?.blocklists ?? []) blocklists.add(b);
    }
    out.contentSafety = resolved(
      {
        shieldPrompt: cs.merged.shieldPrompt ?? false,
        enforceOnCompletions: cs.merged.enforceOnCompletions ?? false,
        outputType: cs.merged.outputType ?? "FourSeverityLevels",
        categories: [...thresholds].map(([name, threshold]) => ({ name, threshold })).sort((a, b) => byCodePoint(a.name, b.name)),
        blocklists: sortedUnique(blocklists),
      },
      cs.sources,
    );
  }

  const sc = mergeFields(layers((s) => m(s).semanticCache, false));
  if (sc && sc.merged.enabled !== false) {
    const v: ResolvedValues["semanticCache"] = {
      scoreThreshold: sc.merged.scoreThreshold ?? 0.05,
      durationSeconds: sc.merged.durationSeconds ?? 300,
      partitionBy: [...new Set(sc.merged.partitionBy ?? [])].sort(byCodePoint),
    };
    if (sc.merged.ignoreSystemMessages !== undefined) v.ignoreSystemMessages = sc.merged.ignoreSystemMessages;
    if (sc.merged.maxMessageCount !== undefined) v.maxMessageCount = sc.merged.maxMessageCount;
    out.semanticCache = resolved(v, sc.sources);
  }

  // Exemptions exist only at project and model scope (the tenant schema has no `exempt`).
  const exempt = (control: AllowListControl, includeModel = true): Layer<AllowListExemption>[] => [
    ["project", project?.exempt?.[control]],
    ["model", includeModel ? (model?.exempt as AllowListExemptions | undefined)?.[control] : undefined],
  ];
  const models = allowList(layers((s) => m(s).models?.allowed, false), exempt("models.allowed", false));
  if (models) out["models.allowed"] = models;
  const regions = allowList(layers((s) => s.regions?.allowed), exempt("regions.allowed"));
  if (regions) out["regions.allowed"] = regions;
  const dataClasses = allowList(layers((s) => s.dataClass?.allowed), exempt("dataClass.allowed"));
  if (dataClasses) out["dataClass.allowed"] = dataClasses;

  // Scalar: the most specific scope that sets it (null = removed).
  let maxBytes: { value: number | null; sources: SettingLevel[] } | undefined;
  for (const [level, v] of layers((s) => m(s).prompt?.maxBytes, false)) {
    if (v === undefined) continue;
    maxBytes = { value: v, sources: [...(maxBytes?.sources ?? []), level] };
  }
  if (maxBytes && maxBytes.value !== null) out["prompt.maxBytes"] = resolved(maxBytes.value, maxBytes.sources);

  const required = new Map<string, { name: string; values?: Set<string> }>();
  const requiredSources: SettingLevel[] = [];
  for (const [level, list] of layers((s) => m(s).headers?.required, false)) {
    if (!list?.length) continue;
    requiredSources.push(level);
    for (const h of list) {
      const key = h.name.toLowerCase();
      const prev = required.get(key);
      const values = h.values ? new Set(h.values) : undefined;
      if (!prev) required.set(key, { name: key, ...(values ? { values } : {}) });
      else if (values) {
        // The gateway compares values ignoring case (check-header ignore-case, REQUIRED_HEADER_OUTSIDE): so does the intersection.
        const lower = new Set([...values].map((v) => v.toLowerCase()));
        prev.values = prev.values ? new Set([...prev.values].filter((v) => lower.has(v.toLowerCase()))) : values;
      }
    }
  }
  if (required.size) {
    out["headers.required"] = resolved(
      [...required.values()]
        .sort((a, b) => byCodePoint(a.name, b.name))
        .map((h) => (h.values ? { name: h.name, values: sortedUnique(h.values) } : { name: h.name })),
      requiredSources,
    );
  }

  const ci = mergeFields(layers((s) => m(s).correlationId, false));
  if (ci && ci.merged.enabled !== false) out.correlationId = resolved({ header: ci.merged.header ?? "x-correlation-id" }, ci.sources);

  const stripLayers = layers((s) => m(s).headers?.stripSecrets, false);
  const strip = mergeFields(stripLayers);
  if (strip && strip.merged.enabled !== false) {
    const extra = sortedUnique(stripLayers.flatMap(([, l]) => (l?.extra ?? []).map((h) => h.toLowerCase())));
    out["headers.stripSecrets"] = resolved({ extra }, strip.sources);
  }

  const mt = mergeFields(layers((s) => m(s).metrics?.tokens, false));
  if (mt && mt.merged.enabled !== false) {
    const dims = mt.merged.dimensions ?? METRIC_DIMENSIONS;
    out["metrics.tokens"] = resolved(
      { namespace: mt.merged.namespace ?? "aigov", dimensions: METRIC_DIMENSIONS.filter((d) => dims.includes(d)) },
      mt.sources,
    );
  }

  const foLayers = layers((s) => s.failover);
  const fo = mergeFields(foLayers);
  if (fo && fo.merged.enabled !== false) {
    const cb = mergeFields(foLayers.map(([l, f]): Layer<z.output<typeof CircuitBreakerSetting>> => [l, f?.circuitBreaker]))?.merged ?? {};
    const retry = mergeFields(foLayers.map(([l, f]): Layer<{ enabled?: boolean; count?: number }> => [l, l === "model" ? undefined : (f as Settings["failover"])?.retry]))?.merged ?? {};
    out.failover = resolved(
      {
        circuitBreaker: {
          failureCount: cb.failureCount ?? DEFAULT_CIRCUIT_BREAKER.failureCount,
          failureInterval: cb.failureInterval ?? DEFAULT_CIRCUIT_BREAKER.failureInterval,
          statusCodes: [...(cb.statusCodes ?? DEFAULT_CIRCUIT_BREAKER.statusCodes)].map((r) => ({ min: r.min, max: r.max })).sort((a, b) => a.min - b.min || a.max - b.max),
          tripDuration: cb.tripDuration ?? DEFAULT_CIRCUIT_BREAKER.tripDuration,
          acceptRetryAfter: cb.acceptRetryAfter ?? DEFAULT_CIRCUIT_BREAKER.acceptRetryAfter,
        },
        retry: { enabled: retry.enabled ?? true, ...(retry.count !== undefined ? { count: retry.count } : {}) },
      },
      fo.sources,
    );
  }
  return out;
}
