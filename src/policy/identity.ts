/**
 * Which managed identity the gateway may use where (ADR 022). A managed-identity credential makes the
 * gateway fetch a token for an audience and send it to a backend's host. The gateway's own identity
 * (no `clientId`: system-assigned, or the one every tenant shares) holds roles no tenant should wield —
 * Key Vault Secrets User on the providers' vault, every tenant's provider keys — so a tenant naming its
 * own host and the audience `https://vault.azure.net` would receive a token that reads them. Hence:
 *
 * - the shared identity goes only to Azure AI services' own hosts, for their audience: the token reaches
 *   Microsoft's endpoint, never a host a tenant runs;
 * - anything else takes a user-assigned identity of the tenant's own (`clientId`), which an operator
 *   attaches to the gateway and assigns to the tenant (GATEWAY_ASSIGNMENTS `identities`) with roles on
 *   that tenant's resources only; another tenant's `clientId` is refused like any unassigned one.
 */

/** Host suffixes of Azure AI services (Azure OpenAI, AI Services / Content Safety, AI Foundry). */
export const AZURE_AI_HOST_SUFFIXES = [".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com"] as const;
/** Audiences the shared identity may ask for: the Azure AI services' own. */
export const AZURE_AI_AUDIENCES = ["https://cognitiveservices.azure.com", "https://ai.azure.com"] as const;

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
export function managedIdentityRefusal(use: ManagedIdentityUse, tenantIdentities: readonly string[]): string | undefined {
  const why = refusalOf(use, tenantIdentities);
  return why && `${MANAGED_IDENTITY_REFUSED} ${why}`;
}

function refusalOf(use: ManagedIdentityUse, tenantIdentities: readonly string[]): string | undefined {
  if (use.clientId !== undefined) {
    return tenantIdentities.includes(use.clientId.toLowerCase()) ? undefined : `clientId ${use.clientId} is not one of the tenant's gateway identities (an operator assigns them: GATEWAY_ASSIGNMENTS identities)`;
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
