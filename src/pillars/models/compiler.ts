import { createHash } from "node:crypto";
import type { ProjectInput } from "../pillar.js";
import type { Model } from "./schema.js";

/** Compiler ids are ≤ 24 characters of [a-z0-9_] and unique in the tenant; registry backend ids are per model. */
export const backendId = (model: Pick<Model, "id">, backend: string) => `b_${createHash("sha256").update(`${model.id}/${backend}`).digest("hex").slice(0, 22)}`;
/** Locally there is no vault: a synthetic vault URI names the secret the same way Key Vault would. */
const LOCAL_VAULT = "https://aigov-local.vault.azure.net";

/** A project's models as the policy compiler sees them (the models pillar's part of the compiler input). */
export function toModelsInput(models: Model[], vaultUri: string | undefined): NonNullable<ProjectInput["models"]> {
  const vault = (vaultUri ?? LOCAL_VAULT).replace(/\/$/, "");
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
              namedValueId: `nv-${backendId(m, b.id)}`,
              // Versionless: a new key version reaches the gateway through Key Vault rotation.
              secretIdentifier: `${vault}/secrets/${b.credential.secretRef.name}`,
              header: b.credential.header,
            },
    })),
  }));
}
