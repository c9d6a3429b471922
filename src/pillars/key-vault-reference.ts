/**
 * How a pillar's upstream credential (a secret the gateway sends upstream) is referenced from the
 * gateway: a Key Vault-backed named value pinned to the secret version the registration holds.
 *
 * Pinned, not versionless, so a credential changes at the gateway when a publish ships it, together
 * with the URL it is for: a new key stored by an edit is not picked up by the gateway's periodic Key
 * Vault re-read before the new URL is published (ADR 021). The named value's id carries a digest of the
 * version, so a new credential is a new named value: the publish writes it, switches the backend or
 * policy that names it in one write, and deletes the old one after (deletes come after writes).
 */
import { createHash } from "node:crypto";

/** Locally there is no vault: a synthetic vault URI names the secret the same way Key Vault would. */
export const LOCAL_VAULT = "https://aigov-local.vault.azure.net";

export interface KeyVaultReference {
  namedValueId: string;
  secretIdentifier: string;
}

/** `base` names the credential's holder (a backend, a server); the result is stable while the version is. */
export function keyVaultReference(vaultUri: string | undefined, base: string, secretRef: { name: string; version: string }): KeyVaultReference {
  const vault = (vaultUri ?? LOCAL_VAULT).replace(/\/$/, "");
  const generation = createHash("sha256").update(`${secretRef.name}/${secretRef.version}`).digest("hex").slice(0, 10);
  return { namedValueId: `${base}-${generation}`, secretIdentifier: `${vault}/secrets/${secretRef.name}/${secretRef.version}` };
}
