import { createHash } from "node:crypto";
import { keyVaultReference } from "../key-vault-reference.js";
import type { ProjectInput } from "../pillar.js";
import type { Model } from "./schema.js";

/** Compiler ids are ≤ 24 characters of [a-z0-9_] and unique in the tenant; registry backend ids are per model. */
export const backendId = (model: Pick<Model, "id">, backend: string) => `b_${createHash("sha256").update(`${model.id}/${backend}`).digest("hex").slice(0, 22)}`;
/** A project's models as the policy compiler sees them (the models pillar's part of the compiler input). */
export function toModelsInput(models: Model[], vaultUri: string | undefined): NonNullable<ProjectInput["models"]> {
  return models.map((m) => ({
    id: m.id,
    name: m.name,
    deployment: m.modelName,
    ...(m.displayName ? { displayName: m.displayName } : {}),
    provider: m.provider,
    status: m.status,
    ...(m.sunsetDate ? { sunsetDate: m.sunsetDate } : {}),
    ...(m.status === "deprecated" && m.deprecatedAt ? { deprecatedAt: m.deprecatedAt } : {}),
    ...(m.pricing ? { pricing: { currency: m.pricing.currency, inputPerMillionTokens: m.pricing.inputPer1kTokens * 1000, outputPerMillionTokens: m.pricing.outputPer1kTokens * 1000 } } : {}),
    allowedDataClasses: m.dataClasses,
    settings: m.settings ?? {},
    ...(m.split ? { abSplit: m.split.variants } : {}),
    backends: m.backends.map((b) => ({
      id: backendId(m, b.id),
      url: b.url,
      region: b.region,
      priority: b.priority,
      weight: b.weight,
      ...(b.version ? { version: b.version } : {}),
      auth:
        b.credential.type === "managedIdentity"
          ? { type: "managedIdentity" as const, resource: b.credential.audience }
          : {
              type: "keyVaultSecret" as const,
              // Pinned to the stored version: a new key goes live with the publish that ships its URL.
              ...keyVaultReference(vaultUri, `nv-${backendId(m, b.id)}`, b.credential.secretRef),
              header: b.credential.header,
            },
    })),
  }));
}
