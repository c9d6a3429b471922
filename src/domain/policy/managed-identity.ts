import { managedIdentityRefusal, type IdentityGrants, type ManagedIdentityUse } from "../../policy/identity.js";
import { fail } from "../errors.js";

/**
 * Refuses a managed-identity credential the gateway may not use (policy/identity.ts): the gateway's own
 * identity anywhere but the Azure AI resources listed for it, or a clientId the operator did not assign to the tenant. The
 * compiler refuses the same input, so what is stored always compiles.
 */
export function checkManagedIdentity(use: ManagedIdentityUse, grants: IdentityGrants, field: string): void {
  const refused = managedIdentityRefusal(use, grants);
  if (refused) fail({ kind: "validation", detail: "the gateway may not use this managed identity here", errors: [{ field, message: refused }], reason: "managed_identity_not_allowed" });
}
