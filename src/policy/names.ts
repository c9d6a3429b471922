/**
 * Naming conventions of the APIM entities the compiler emits (APIs, products, backends, fragments) and
 * of those others attach to them (virtual keys: subscriptions scoped to the API or a tier product).
 *
 * Ids are built from validated identifiers (identifiers.ts: `[a-z0-9_]`, no `-`) joined with `-`,
 * so two different inputs never produce the same id. APIM limits: backend ids ≤ 80 characters,
 * fragment ids `^[\w][\w-]+[\w]$` ≤ 80.
 */

/** The API that serves a project (one API per project; its policy is the project's policy). */
export const apiIdFor = (projectId: string) => `aigov-${projectId}`;

/** The project API's URL suffix: https://<gateway>/aigov/<projectId>/… (ids are lower-case, so the
 * case-insensitive uniqueness of APIM paths cannot collide two projects). */
export const apiPathFor = (projectId: string) => `aigov/${projectId}`;

/** The header that carries a virtual key: the one Azure OpenAI clients already send their key in, so
 * they work against the gateway unchanged. */
export const SUBSCRIPTION_KEY_HEADER = "api-key";

/** The project API's operations with the models pillar on: pass-through, every path ("/*" is APIM's
 * wildcard URL template), for the methods the model APIs use; the policy does the routing. */
export const MODEL_OPERATIONS = [
  { id: "aigov-get", method: "GET", urlTemplate: "/*", displayName: "GET (every path)" },
  { id: "aigov-post", method: "POST", urlTemplate: "/*", displayName: "POST (every path)" },
] as const;

/** The product for keys of a project in a key tier. Keys in a tier are APIM subscriptions scoped to
 * this product; the product holds the project's API and the APIs of the projects that accept the
 * tier of this project's keys (`sharedKeyTiers`). */
export const tierProductIdFor = (projectId: string, tierId: string) => `aigov-${projectId}-${tierId}`;

/** A single backend (one endpoint of a model). Backend ids are unique within the tenant. */
export const backendIdFor = (backendId: string) => `aigov-be-${backendId}`;

/** The pool that serves a model in a project; with an A/B split, one pool per version (index in the
 * sorted version list). */
export const poolIdFor = (projectId: string, modelId: string, versionIndex?: number) =>
  versionIndex === undefined ? `aigov-pool-${projectId}-${modelId}` : `aigov-pool-${projectId}-${modelId}-v${versionIndex}`;

/** Shared backends used by llm-content-safety and llm-semantic-cache-lookup. */
export const CONTENT_SAFETY_BACKEND_ID = "aigov-content-safety";
export const EMBEDDINGS_BACKEND_ID = "aigov-embeddings";

/** Policy fragments: blocks that are identical in every project policy. */
export const FRAGMENT_RESOLVE_MODEL = "aigov-resolve-model";
export const FRAGMENT_ON_ERROR = "aigov-on-error";

/** The request header that carries the caller's data classification. */
export const DATA_CLASS_HEADER = "x-aigov-data-class";

/** Context variables set by compiled policies (compiler constants; never derived from input). */
export const VAR = {
  /** The model name the request addresses. */
  model: "aigov-model",
  /** '|'-separated model names the project may call (data, not code). */
  models: "aigov-models",
  /** '|'-separated pool ids, parallel to `models`. */
  pools: "aigov-pools",
  /** '|'-separated per-model block numbers, parallel to `models` (0 = no block). */
  groups: "aigov-model-groups",
  modelIndex: "aigov-model-ix",
  group: "aigov-model-group",
  backend: "aigov-backend",
  /** Set by a key-tier product policy: the tier's id (identifiers.ts TierId); API policies compare it
   * as a string literal, so a tier's identity in documents does not depend on other tiers. */
  keyTier: "aigov-key-tier",
  /** '|'-separated model names the key's tier may call (data, not code), set only for tiers that
   * restrict the project's models; absent = no tier restriction. */
  tierModels: "aigov-tier-models",
  abRoll: "aigov-ab",
  sunset: "aigov-sunset",
  deprecation: "aigov-deprecation",
  /** Set when the model has its own value for a control, so the project-level element skips it. */
  ownTokensPerMinute: "aigov-own-tpm",
  ownTokenQuota: "aigov-own-tq",
  ownContentSafety: "aigov-own-cs",
} as const;
