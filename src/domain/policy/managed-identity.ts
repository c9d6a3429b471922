import { managedIdentityRefusal, type ManagedIdentityUse } from "../../policy/identity.js";
import { fail } from "../errors.js";

/**
 * Refuses a managed-identity credential the gateway may not use (policy/identity.ts): the gateway's own
 * identity anywhere but Azure AI services, or a clientId the operator did not assign to the tenant. The
 * compiler refuses the same input, so what is stored always compiles.
 */
export function checkManagedIdentity(use: ManagedIdentityUse, tenantIdentities: readonly string[], field: string): void {
  const refused = managedIdentityRefusal(use, tenantIdentities);
  if (refused) fail({ kind: "validation", detail: "the gateway may not use this managed identity here", errors: [{ field, message: refused }], reason: "managed_identity_not_allowed" });
}
