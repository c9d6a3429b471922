import { z } from "zod";
import { Audience, HttpsUrl, Region, VersionLabel } from "../../policy/identifiers.js";
import { ModelSettings } from "../../policy/settings.js";
import { idSchema, serverFields } from "../../domain/common.js";

export const ModelId = idSchema("mdl");
export const PROVIDERS = ["azure-openai", "foundry", "openai", "anthropic", "bedrock", "vertex", "openai-compatible"] as const;
export const MODEL_STATUSES = ["active", "deprecated", "blocked"] as const;
export const DATA_CLASSES = ["public", "internal", "confidential", "restricted"] as const;

const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** A deprecated model's sunset (docs/gateway.md, "Calling a governed model"). */
const SUNSET_DATE =
  "Required when deprecated; when set, a date after today (UTC). The gateway answers with `Sunset` until then and refuses the model's calls from 00:00 UTC of that date on (410 `model_sunset`)";

/** Headers a gateway can send a backend key in (Authorization is sent as "Bearer <key>"); matches the policy compiler. */
const KeyHeader = z.enum(["api-key", "x-api-key", "Authorization"]);

/** How APIM authenticates to a backend. A key is accepted on write only, kept in the secret store, never returned. */
export const CredentialSpec = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("managedIdentity"),
    audience: Audience,
  }),
  z.strictObject({
    type: z.literal("apiKey"),
    header: KeyHeader,
    key: z.string().min(8).max(4096).meta({ description: "Write-only: stored in the secret store, surfaced to APIM as a Key Vault-backed named value" }),
  }),
]);

export const Credential = z.discriminatedUnion("type", [
  z.object({ type: z.literal("managedIdentity"), audience: z.string() }),
  z.object({
    type: z.literal("apiKey"),
    header: KeyHeader,
    secretRef: z.object({ name: z.string(), version: z.string() }).meta({ description: "Where the key is kept; the key itself is never returned" }),
  }),
]);

const backendFields = {
  id: z.string().regex(SLUG, "1-63 lower-case letters, digits or '-'"),
  version: VersionLabel.optional().meta({ description: "The model version this backend serves (needed with an A/B split)" }),
  // The gateway's own rules (src/policy/identifiers.ts), so whatever registers also compiles.
  url: HttpsUrl,
  region: Region,
  priority: z.number().int().min(1).max(100).default(1),
  weight: z.number().int().min(1).max(100).default(1),
};

export const BackendSpec = z.strictObject({ ...backendFields, credential: CredentialSpec });
export const Backend = z.object({ ...backendFields, priority: z.number().int(), weight: z.number().int(), credential: Credential });

const Pricing = z.strictObject({
  currency: z.string().regex(/^[A-Z]{3}$/).default("USD"),
  inputPer1kTokens: z.number().min(0).max(1000),
  outputPer1kTokens: z.number().min(0).max(1000),
});

const Split = z
  .strictObject({
    variants: z
      .array(z.strictObject({ version: VersionLabel, weight: z.number().int().min(1).max(100) }))
      .min(2)
      .max(5),
  })
  .refine((s) => s.variants.reduce((n, v) => n + v.weight, 0) === 100, "variant weights must add up to 100")
  .refine((s) => new Set(s.variants.map((v) => v.version)).size === s.variants.length, "variant versions must be distinct");

const specFields = {
  name: z.string().regex(SLUG, "1-63 lower-case letters, digits or '-' (the name callers use)").meta({ description: "Unique within the project" }),
  displayName: z.string().trim().min(1).max(200).optional(),
  provider: z.enum(PROVIDERS),
  modelName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/).meta({ description: "The provider's model or deployment name, e.g. gpt-4o" }),
  version: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/).optional(),
  pricing: Pricing.optional(),
  dataClasses: z.array(z.enum(DATA_CLASSES)).min(1).max(DATA_CLASSES.length).default(["public", "internal"]),
  status: z.enum(MODEL_STATUSES).default("active"),
  sunsetDate: z.iso.date().optional().meta({ description: SUNSET_DATE }),
  split: Split.optional(),
  settings: ModelSettings.meta({ description: "Governance controls at model scope (tokens, content safety, regions, data class, circuit breaker)" }).optional(),
};

type RuleInput = {
  status: string;
  sunsetDate?: string | undefined;
  split?: { variants: { version: string }[] } | undefined;
  backends: { id: string; version?: string | undefined; credential: { type: string; audience?: string } }[];
};

/** Rules the gateway imposes too (src/policy/input.ts): checked at registration, not at publish time. */
function modelRules(m: RuleInput, ctx: z.RefinementCtx) {
  if (m.status === "deprecated" && !m.sunsetDate) ctx.addIssue({ code: "custom", path: ["sunsetDate"], message: "is required for a deprecated model" });
  const ids = m.backends.map((b) => b.id);
  if (new Set(ids).size !== ids.length) ctx.addIssue({ code: "custom", path: ["backends"], message: "backend ids must be distinct" });
  const auths = new Set(m.backends.map((b) => (b.credential.type === "managedIdentity" ? `mi|${b.credential.audience}` : "key")));
  if (auths.size > 1) ctx.addIssue({ code: "custom", path: ["backends"], message: "all backends of a model use the same managed identity audience, or all use keys" });
  if (m.split) {
    const versions = new Set(m.split.variants.map((v) => v.version));
    m.backends.forEach((b, i) => {
      if (!b.version || !versions.has(b.version)) ctx.addIssue({ code: "custom", path: ["backends", i, "version"], message: "with a split, every backend serves one of the split's versions" });
    });
    for (const v of versions) {
      if (!m.backends.some((b) => b.version === v)) ctx.addIssue({ code: "custom", path: ["split"], message: `no backend serves version ${v}` });
    }
  }
}

export const ModelSpec = z
  .strictObject({ ...specFields, backends: z.array(BackendSpec).min(1).max(20) })
  .superRefine(modelRules)
  .meta({ id: "ModelSpec" });
export type ModelSpecInput = z.input<typeof ModelSpec>;
export type ModelSpec = z.output<typeof ModelSpec>;

/** PATCH body: absent = unchanged, null clears an optional field; `backends` replaces the list (send keys again only for new or changed key credentials). */
export const ModelPatch = z
  .strictObject({
    displayName: z.string().trim().min(1).max(200).nullable().optional(),
    modelName: specFields.modelName.optional(),
    version: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/).nullable().optional(),
    pricing: Pricing.nullable().optional(),
    dataClasses: z.array(z.enum(DATA_CLASSES)).min(1).max(DATA_CLASSES.length).optional(),
    status: z.enum(MODEL_STATUSES).optional(),
    sunsetDate: z.iso.date().nullable().optional().meta({ description: SUNSET_DATE }),
    split: Split.nullable().optional(),
    settings: ModelSettings.meta({ description: "Replaced as a whole; null clears" }).nullable().optional(),
    backends: z
      .array(
        z.strictObject({
          ...backendFields,
          credential: z.union([CredentialSpec, z.strictObject({ type: z.literal("apiKey"), header: KeyHeader, keep: z.literal(true) })]),
        }),
      )
      .min(1)
      .max(20)
      .optional(),
  })
  .meta({ id: "ModelPatch" });
export type ModelPatch = z.output<typeof ModelPatch>;

export const Model = z
  .object({
    id: ModelId,
    projectId: z.string(),
    ...specFields,
    dataClasses: z.array(z.enum(DATA_CLASSES)),
    status: z.enum(MODEL_STATUSES),
    deprecatedAt: z.iso.date().optional().meta({ description: "When the model was deprecated (server-set, UTC date; kept while it is blocked, dropped when it is active again); sent as the Deprecation header (RFC 9745)" }),
    backends: z.array(Backend),
    ...serverFields,
  })
  .meta({ id: "Model" });
export type Model = z.output<typeof Model>;

export const ModelList = z
  .object({ items: z.array(Model), continuationToken: z.string().optional(), nextLink: z.string().optional() })
  .meta({ id: "ModelList" });
