import { applyExemptions } from "../../src/policy/exemptions.js";
import { type CompilerInputIn } from "../../src/policy/input.js";

type ModelIn = NonNullable<CompilerInputIn["projects"][number]["models"]>[number];
type ProjectIn = CompilerInputIn["projects"][number];

export const MI = { type: "managedIdentity", resource: "https://cognitiveservices.azure.com" } as const;

export function model(id: string, name: string, extra: Partial<ModelIn> = {}): ModelIn {
  return {
    id,
    name,
    provider: "azure-openai",
    backends: [{ id: `${id}_eus`, url: `https://aoai-eus.openai.azure.com/openai`, region: "eastus", auth: MI }],
    ...extra,
  };
}

export function project(id: string, models: ModelIn[], extra: Partial<ProjectIn> = {}): ProjectIn {
  return { id, name: `Project ${id}`, models, ...extra };
}

export function tenant(projects: ProjectIn[], extra: Partial<CompilerInputIn> = {}): CompilerInputIn {
  return {
    tenantId: "contoso",
    services: {
      contentSafety: { url: "https://contoso-cs.cognitiveservices.azure.com" },
      embeddings: { url: "https://contoso-aoai.openai.azure.com/openai/deployments/embeddings" },
    },
    projects,
    ...extra,
  };
}

/** The representative configurations, each with a reviewed golden file (test/policy/golden/<name>.xml). */
export const GOLDEN_CASES: Record<string, CompilerInputIn> = {
  "per-key-token-limit": tenant([project("prj_alpha", [model("gpt4o", "gpt-4o")], { keyTiers: ["gold"] })], {
    settings: { tokens: { perMinute: { limit: 10_000, per: "key", estimatePromptTokens: true } } },
    keyTiers: [
      { id: "gold", description: "Premium keys", limits: { tokensPerMinute: 50_000 } },
      { id: "bronze", limits: { tokensPerMinute: 2_000 } },
    ],
  }),

  "project-quota": tenant([
    project("prj_alpha", [model("gpt4o", "gpt-4o"), model("mini", "gpt-4o-mini", { settings: { tokens: { quota: { limit: 1_000_000 } } } })], {
      settings: { tokens: { quota: { limit: 50_000_000, period: "Monthly", per: "project" } } },
    }),
  ]),

  "content-safety": tenant([
    project(
      "prj_alpha",
      [
        model("gpt4o", "gpt-4o"),
        model("kids", "gpt-4o-kids", { settings: { contentSafety: { categories: { Sexual: 2, Violence: 3 }, blocklists: ["kids_terms"] } } }),
      ],
      { settings: { contentSafety: { blocklists: ["project_terms"] } } },
    ),
  ], {
    settings: {
      contentSafety: { shieldPrompt: true, outputType: "EightSeverityLevels", categories: { Hate: 4, SelfHarm: 4, Sexual: 4, Violence: 4 }, blocklists: ["tenant_terms"] },
    },
  }),

  "semantic-cache": tenant([project("prj_alpha", [model("gpt4o", "gpt-4o")])], {
    settings: {
      semanticCache: { scoreThreshold: 0.05, durationSeconds: 120, partitionBy: ["key"] },
      requests: { rate: { calls: 60, renewalPeriodSeconds: 60, per: "key" } },
    },
  }),

  "pool-failover": tenant([
    project(
      "prj_alpha",
      [
        model("gpt4o", "gpt-4o", {
          backends: [
            { id: "gpt4o_swc", url: "https://aoai-swc.openai.azure.com/openai", region: "swedencentral", priority: 1, weight: 3, auth: MI },
            { id: "gpt4o_frc", url: "https://aoai-frc.openai.azure.com/openai", region: "francecentral", priority: 1, weight: 1, auth: MI },
            { id: "gpt4o_eus", url: "https://aoai-eus.openai.azure.com/openai", region: "eastus", priority: 2, weight: 1, auth: MI },
          ],
          settings: { failover: { circuitBreaker: { failureCount: 3, failureInterval: "PT30S", tripDuration: "PT2M" } } },
        }),
        model("claude", "claude-sonnet", {
          provider: "anthropic",
          backends: [
            {
              id: "claude_api",
              url: "https://api.anthropic.com/v1",
              region: "global",
              auth: { type: "keyVaultSecret", namedValueId: "anthropic-key", secretIdentifier: "https://contoso-kv.vault.azure.net/secrets/anthropic-key/8f2b1c0d9e7a4b6c8d2e1f0a3b5c7d9e", header: "x-api-key" },
            },
          ],
        }),
      ],
    ),
  ], { settings: { failover: { retry: { enabled: true } } } }),

  "region-restriction": tenant([
    project(
      "prj_alpha",
      [
        model("gpt4o", "gpt-4o", {
          backends: [
            { id: "gpt4o_swc", url: "https://aoai-swc.openai.azure.com/openai", region: "swedencentral", auth: MI },
            { id: "gpt4o_eus", url: "https://aoai-eus.openai.azure.com/openai", region: "eastus", auth: MI },
          ],
        }),
        model("o3", "o3", { backends: [{ id: "o3_eus", url: "https://aoai-eus.openai.azure.com/openai", region: "eastus", auth: MI }] }),
      ],
      { settings: { regions: { allowed: ["swedencentral", "westeurope"] } } },
    ),
  ], { settings: { regions: { allowed: ["eastus", "swedencentral", "westeurope"] } } }),

  // The region restriction above with an active exemption for one model: o3 may use eastus (outside
  // the project's list), so it gets its pool instead of the 403; gpt-4o keeps swedencentral only.
  get "region-restriction-exemption"(): CompilerInputIn {
    return applyExemptions(GOLDEN_CASES["region-restriction"]!, [
      { id: "exm_golden", control: "regions.allowed", scope: { level: "model", projectId: "prj_alpha", modelId: "o3" }, relaxation: { kind: "allow", values: ["eastus"] } },
    ]);
  },

  "ab-split": tenant([
    project("prj_alpha", [
      model("gpt4o", "gpt-4o", {
        backends: [
          { id: "gpt4o_0806", url: "https://aoai-swc.openai.azure.com/openai", region: "swedencentral", version: "2024-08-06", auth: MI },
          { id: "gpt4o_1120", url: "https://aoai-swc2.openai.azure.com/openai", region: "swedencentral", version: "2024-11-20", auth: MI },
        ],
        abSplit: [
          { version: "2024-11-20", weight: 20 },
          { version: "2024-08-06", weight: 80 },
        ],
      }),
    ]),
  ]),

  "deprecated-blocked": tenant([
    project("prj_alpha", [
      model("gpt4o", "gpt-4o"),
      model("gpt35", "gpt-35-turbo", { status: "deprecated", deprecatedAt: "2026-01-15", sunsetDate: "2026-09-30" }),
      model("gpt4", "gpt-4", { status: "deprecated", sunsetDate: "2026-06-30" }),
      model("davinci", "davinci-002", { status: "blocked" }),
    ]),
  ]),

  "request-hygiene": tenant(
    [
      project("prj_alpha", [model("gpt4o", "gpt-4o", { allowedDataClasses: ["public", "internal", "confidential"] })], {
        settings: {
          headers: { required: [{ name: "X-Team" }, { name: "X-Env", values: ["dev", "prod"] }], stripSecrets: { extra: ["X-Internal-Token"] } },
          dataClass: { allowed: ["public", "internal"] },
          prompt: { maxBytes: 262_144 },
        },
      }),
    ],
    {
      settings: {
        correlationId: { header: "x-correlation-id" },
        headers: { stripSecrets: {}, required: [{ name: "X-Env", values: ["dev", "test", "prod"] }] },
        metrics: { tokens: { namespace: "aigov" } },
        dataClass: { allowed: ["public", "internal", "confidential"] },
      },
    },
  ),

  // Key profiles as tiers: a model list narrows the project's models for the tier's keys. Unknown
  // names never match; a list covering every model adds nothing; a list matching none refuses all.
  "key-tier-model-scope": tenant(
    [
      project("prj_alpha", [model("gpt4o", "gpt-4o"), model("mini", "gpt-4o-mini"), model("o3", "o3"), model("davinci", "davinci-002", { status: "blocked" })], {
        keyTiers: ["kp_3f9a0c12de", "kp_7b21e4a5f0", "kp_c0ffee0001", "gold"],
      }),
    ],
    {
      settings: { tokens: { perMinute: { limit: 10_000, per: "key" } } },
      keyTiers: [
        { id: "gold", limits: { tokensPerMinute: 50_000 } },
        { id: "kp_3f9a0c12de", limits: { tokensPerMinute: 20_000 }, models: ["retired-model", "gpt-4o-mini", "o3"] },
        { id: "kp_7b21e4a5f0", limits: { requestRate: { calls: 30, renewalPeriodSeconds: 60 } }, models: ["o3", "gpt-4o", "gpt-4o-mini", "davinci-002"] },
        { id: "kp_c0ffee0001", limits: {}, models: ["dall-e-3"] },
      ],
    },
  ),

  // prj_beta accepts prj_alpha's keys in kp_3f9a0c12de: the owner's product links both APIs, and
  // prj_beta applies the tier's limits and its model list (by name) to its own models.
  "shared-key-tier": tenant(
    [
      project("prj_alpha", [model("gpt4o", "gpt-4o"), model("mini", "gpt-4o-mini")], { keyTiers: ["kp_3f9a0c12de"] }),
      project("prj_beta", [model("b_gpt4o", "gpt-4o"), model("b_o3", "o3")], {
        keyTiers: ["gold"],
        sharedKeyTiers: [{ projectId: "prj_alpha", tierId: "kp_3f9a0c12de" }],
      }),
    ],
    {
      settings: { tokens: { perMinute: { limit: 10_000, per: "key" } } },
      keyTiers: [
        { id: "gold", limits: { tokensPerMinute: 50_000 } },
        { id: "kp_3f9a0c12de", limits: { tokensPerMinute: 5_000 }, models: ["gpt-4o"] },
      ],
    },
  ),

  "models-pillar-off": tenant(
    [project("prj_alpha", [model("gpt4o", "gpt-4o")], { pillars: { models: false, tools: true, agents: true } })],
    { settings: { correlationId: {}, tokens: { perMinute: { limit: 1000 } }, requests: { rate: { calls: 100 } } } },
  ),

  // The portal's origin may call the project's API from a browser: a cors policy first in inbound.
  "browser-origins": tenant([project("prj_alpha", [model("gpt4o", "gpt-4o")], { keyTiers: ["gold"] })], {
    browserOrigins: ["https://portal.contoso.com", "http://localhost:7071"],
    keyTiers: [{ id: "gold", limits: { tokensPerMinute: 500 } }],
    settings: { correlationId: { header: "x-request-id" }, headers: { required: [{ name: "x-team" }] }, tokens: { perMinute: { limit: 1000 } } },
  }),
};
