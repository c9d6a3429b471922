/**
 * Which managed identity the gateway may use where (ADR 022). A managed-identity credential makes the
 * gateway fetch a token for an audience and send it to a backend's host. The gateway's own identity
 * (no `clientId`: system-assigned, or the one every tenant shares) holds roles no tenant should wield —
 * Key Vault Secrets User on the providers' vault, every tenant's provider keys — so a tenant naming its
 * own host and the audience `https://vault.azure.net` would receive a token that reads them. Hence:
 *
 * - the shared identity goes only to Azure AI services' own hosts, for their audience: the token reaches
 *   Microsoft's endpoint, never a host a tenant runs; and only to the resources an operator listed for it
 *   (the platform's own, or ones listed for the tenant alone), so it never acts on another tenant's
 *   resource that happens to trust it;
 * - anything else takes a user-assigned identity of the tenant's own (`clientId`), which an operator
 *   attaches to the gateway and assigns to the tenant (GATEWAY_ASSIGNMENTS `identities`) with roles on
 *   that tenant's resources only; another tenant's `clientId` is refused like any unassigned one.
 */

/** Host suffixes of Azure AI services (Azure OpenAI, AI Services / Content Safety, AI Foundry). */
export const AZURE_AI_HOST_SUFFIXES = [".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com"] as const;
/** Audiences the shared identity may ask for: the Azure AI services' own. */
export const AZURE_AI_AUDIENCES = ["https://cognitiveservices.azure.com", "https://ai.azure.com"] as const;

/** What an operator granted a tenant at its gateway (GATEWAY_ASSIGNMENTS, GATEWAY_SHARED_IDENTITY_HOSTS). */
export interface IdentityGrants {
  /** Client ids of the user-assigned identities assigned to the tenant alone (lower case). */
  identities: readonly string[];
  /**
   * Hosts of the Azure AI resources the gateway's own identity may call for the tenant: the platform's own,
   * and any the operator listed for this tenant alone; "any": any Azure AI service's host (locally, or where
   * the operator set `*`). Required, so no caller grants "any" by leaving it out.
   */
  sharedHosts: readonly string[] | "any";
}

export interface ManagedIdentityUse {
  /** Where the token goes (the backend's or server's URL). */
  url: string;
  /** The token's audience (the policy's `resource`). */
  audience: string;
  /** A user-assigned identity; absent: the gateway's own. */
  clientId?: string | undefined;
}

/** How every refusal's message starts: a compile that failed on one is told apart from other failures (preview.ts). */
export const MANAGED_IDENTITY_REFUSED = "managed identity refused:";

/** Why the gateway may not use this identity here, or undefined when it may. */
export function managedIdentityRefusal(use: ManagedIdentityUse, grants: IdentityGrants): string | undefined {
  const why = refusalOf(use, grants);
  return why && `${MANAGED_IDENTITY_REFUSED} ${why}`;
}

function refusalOf(use: ManagedIdentityUse, grants: IdentityGrants): string | undefined {
  if (use.clientId !== undefined) {
    return grants.identities.includes(use.clientId.toLowerCase()) ? undefined : `clientId ${use.clientId} is not one of the tenant's gateway identities (an operator assigns them: GATEWAY_ASSIGNMENTS identities)`;
  }
  let host: string;
  try {
    host = new URL(use.url).hostname.toLowerCase();
  } catch {
    return "the URL is not valid";
  }
  if (!AZURE_AI_HOST_SUFFIXES.some((s) => host.endsWith(s))) {
    return `the gateway's own identity goes only to Azure AI services (${AZURE_AI_HOST_SUFFIXES.map((s) => `*${s}`).join(", ")}); name one of the tenant's own identities (clientId) for ${host}`;
  }
  if (!(AZURE_AI_AUDIENCES as readonly string[]).includes(use.audience.replace(/\/+$/, "").toLowerCase())) {
    return `the gateway's own identity asks only for ${AZURE_AI_AUDIENCES.join(" or ")}; name one of the tenant's own identities (clientId) for ${use.audience}`;
  }
  // Another tenant's Azure AI resource may trust the shared identity too: it calls only the ones listed for it.
  if (grants.sharedHosts !== "any" && !grants.sharedHosts.includes(host)) {
    return `the gateway's own identity calls only the Azure AI resources an operator listed for it (GATEWAY_SHARED_IDENTITY_HOSTS, or the tenant's sharedIdentityHosts in GATEWAY_ASSIGNMENTS), and ${host} is not one; name one of the tenant's own identities (clientId)`;
  }
  return undefined;
}

/**
 * How the gateway authenticates to a tenant's shared service. Content safety goes through its backend's
 * credentials (`clientId` or the gateway's own identity); the semantic cache calls its embeddings
 * deployment as `llm-semantic-cache-lookup` does, with `embeddings-backend-auth="system-assigned"` — the
 * only value APIM accepts — so a `clientId` there changes nothing and the embeddings URL must be an Azure
 * AI service's whatever it names.
 */
export function serviceIdentityUse(name: "contentSafety" | "embeddings", service: { url: string; clientId?: string | undefined }): ManagedIdentityUse {
  return { url: service.url, audience: AZURE_AI_AUDIENCES[0], ...(name === "contentSafety" && service.clientId ? { clientId: service.clientId } : {}) };
}
