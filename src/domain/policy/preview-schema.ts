import { z } from "zod";
import { ModelSettings, Settings } from "../../policy/settings.js";

/** What the policy preview routes answer (kept apart from the compiler, which the portal never bundles). */
export const PolicyPreview = z
  .object({
    projectId: z.string(),
    artifacts: z.array(z.object({ ref: z.string(), kind: z.string() }).catchall(z.unknown())).meta({ description: "What a publish would send for this project, in publish order" }),
    sizes: z.array(z.object({ ref: z.string(), bytes: z.number().int() })),
    explain: z.array(z.object({ ref: z.string(), path: z.string(), control: z.unknown(), scope: z.unknown(), note: z.string().optional() })).optional(),
    warnings: z
      .array(z.string())
      .optional()
      .meta({
        description:
          "What compiles but may not be what is meant: content safety on where a region rule applies while services.contentSafety states no region (its prompts are screened wherever that resource runs), and models that do not use the semantic cache because of their region rule (ADR 024). Absent: none",
      }),
  })
  .meta({ id: "PolicyPreview" });
export type PolicyPreview = z.output<typeof PolicyPreview>;

/** Settings not yet saved, compiled as if they were: what the portal's policy editor shows beside its form. */
export const PolicyDraft = z
  .strictObject({
    settings: Settings.nullable()
      .optional()
      .meta({ description: "The project's settings as drafted (replace the saved ones; null: none). Absent: the saved ones" }),
    tenantSettings: Settings.optional().meta({ description: "The tenant's settings as drafted (floors, as when saved). Absent: the saved ones" }),
    models: z
      .record(z.string().regex(/^mdl_[0-9a-z]{20}$/, "must be a model id (mdl_…)"), ModelSettings.nullable())
      .refine((m) => Object.keys(m).length <= 200, "at most 200 models")
      .optional()
      .meta({ description: "Model settings as drafted, by model id of this project (null: none). Absent models keep their saved settings" }),
    explain: z.boolean().default(false).meta({ description: "Also say which setting produced each element" }),
  })
  .meta({ id: "PolicyDraft" });
export type PolicyDraft = z.output<typeof PolicyDraft>;
