/**
 * Workload identity federation (docs/agents.md, "Credentials"): the control plane's managed identity proves
 * itself to another cloud with a Microsoft Entra ID token, and no secret is stored. The token is for the
 * audience Entra documents for federation, `api://AzureADTokenExchange`; the other cloud trusts the
 * identity's issuer and subject (AWS: an IAM role whose trust policy names the Entra issuer as an OIDC
 * provider, assumed with STS AssumeRoleWithWebIdentity).
 */

/** The audience of the tokens the control plane presents to other clouds. */
export const FEDERATION_AUDIENCE = "api://AzureADTokenExchange";

/** Where the identity token comes from: the managed identity in Azure, a test's issuer locally. */
export type FederatedToken = () => Promise<string>;

/** The app's managed identity (the user-assigned one when AZURE_CLIENT_ID names it). Loaded on first use. */
export const managedIdentityToken: FederatedToken = async () => {
  const { ManagedIdentityCredential } = await import("@azure/identity");
  const clientId = process.env.AZURE_CLIENT_ID;
  const credential = clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();
  const token = await credential.getToken(`${FEDERATION_AUDIENCE}/.default`);
  if (!token?.token) throw new Error("the managed identity returned no token for workload identity federation");
  return token.token;
};
