import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/index.js";

/** What `npm start` hands the config on the embedded default. */
const localEnv = {
  AIGOV_LOCAL: "true",
  COSMOS_ENDPOINT: "http://127.0.0.1:8081",
  COSMOS_LOCAL_KEY: "local",
  AUTH_MODE: "dev",
  AUTH_ISSUER: "aigov-dev",
  AUTH_AUDIENCE: "api://aigov-dev",
  AUTH_JWKS_URI: "http://127.0.0.1:7071/.dev/jwks.json",
  WEBSITE_HOSTNAME: "127.0.0.1:7071",
};

/** Settings valid for Azure (outside local mode). */
const azureEnv = {
  KEYVAULT_URI: "https://kv-aigov.vault.azure.net/",
  APIM_SUBSCRIPTION_ID: "00000000-0000-0000-0000-000000000001",
  APIM_RESOURCE_GROUP: "rg-aigov",
  APIM_SERVICE_NAME: "apim-aigov",
  USAGE_LOG_WORKSPACE_ID: "11111111-2222-3333-4444-555555555555",
  COSMOS_ENDPOINT: "https://acct.documents.azure.com:443/",
  AUTH_ISSUER: "https://login.microsoftonline.com/{tenantid}/v2.0",
  AUTH_AUDIENCE: "00000000-0000-0000-0000-0000000000aa",
  AUTH_JWKS_URI: "https://login.microsoftonline.com/common/discovery/v2.0/keys",
};

describe("AIGOV_LOCAL=true in Azure", () => {
  it("is accepted on a workstation (and in a container that is not Azure Functions)", () => {
    expect(parseConfig(localEnv).local).toBe(true);
    expect(parseConfig({ ...localEnv, CONTAINER_NAME: "devbox" }).local).toBe(true);
  });

  it.each([
    ["WEBSITE_INSTANCE_ID", { WEBSITE_INSTANCE_ID: "4f0c9b1e" }],
    ["WEBSITE_SITE_NAME", { WEBSITE_SITE_NAME: "func-aigov" }],
    ["WEBSITE_OWNER_NAME", { WEBSITE_OWNER_NAME: "sub+rg-webspace" }],
    ["CONTAINER_NAME", { CONTAINER_NAME: "func-aigov_abc", AzureWebJobsStorage__accountName: "staigov" }],
    ["CONTAINER_NAME", { CONTAINER_NAME: "func-aigov_abc", FUNCTIONS_WORKER_RUNTIME: "node" }],
  ])("is refused when %s shows the Functions-on-Azure environment", (variable, azure) => {
    expect(() => parseConfig({ ...localEnv, ...azure })).toThrow(new RegExp(`AIGOV_LOCAL: local mode is refused in Azure \\(${variable} is set\\)`));
  });

  it("is refused even with every other setting valid for Azure", () => {
    const inAzure = { ...azureEnv, WEBSITE_INSTANCE_ID: "4f0c9b1e" };
    expect(parseConfig(inAzure).local).toBe(false);
    expect(() => parseConfig({ ...inAzure, AIGOV_LOCAL: "1" })).toThrow(/invalid configuration:\n {2}AIGOV_LOCAL: local mode is refused in Azure/);
  });
});

describe("the provider keys' vault", () => {
  it("is its own vault when PROVIDER_KEYVAULT_URI is set (the gateway reads only it), else the control plane's", () => {
    expect(parseConfig({ ...azureEnv, PROVIDER_KEYVAULT_URI: "https://kvp-aigov.vault.azure.net/" })).toMatchObject({ keyVaultUri: "https://kv-aigov.vault.azure.net/", providerKeyVaultUri: "https://kvp-aigov.vault.azure.net/" });
    expect(parseConfig(azureEnv).providerKeyVaultUri).toBe("https://kv-aigov.vault.azure.net/");
    expect(parseConfig(localEnv).providerKeyVaultUri).toBeUndefined();
  });
});

describe("GATEWAY_BROWSER_ORIGINS", () => {
  it("is a list of origins, normalised; http only in local mode; nothing else", () => {
    expect(parseConfig({ ...azureEnv, GATEWAY_BROWSER_ORIGINS: " https://Portal.Contoso.com/ , https://swa-x.azurestaticapps.net" }).browserOrigins).toEqual([
      "https://portal.contoso.com",
      "https://swa-x.azurestaticapps.net",
    ]);
    expect(parseConfig(azureEnv).browserOrigins).toEqual([]);
    expect(parseConfig({ ...localEnv, GATEWAY_BROWSER_ORIGINS: "http://127.0.0.1:7071" }).browserOrigins).toEqual(["http://127.0.0.1:7071"]);
    expect(() => parseConfig({ ...azureEnv, GATEWAY_BROWSER_ORIGINS: "http://portal.contoso.com" })).toThrow(/GATEWAY_BROWSER_ORIGINS: outside local mode only https origins/);
    for (const bad of ["https://portal.contoso.com/portal", "portal.contoso.com", "https://*.contoso.com"]) {
      expect(() => parseConfig({ ...azureEnv, GATEWAY_BROWSER_ORIGINS: bad }), bad).toThrow(/GATEWAY_BROWSER_ORIGINS/);
    }
  });
});

describe("GATEWAY_ASSIGNMENTS identities", () => {
  const OID = "5F2D7A1C-8E4B-4C3A-9B6D-1A2E3F4C5D6E";
  it("are kept in lower case, and one identity is one tenant's alone", () => {
    expect(parseConfig({ ...localEnv, GATEWAY_ASSIGNMENTS: JSON.stringify({ t1: { identities: [OID] } }) }).gatewayAssignments).toEqual({ t1: { identities: [OID.toLowerCase()] } });
    expect(() => parseConfig({ ...localEnv, GATEWAY_ASSIGNMENTS: JSON.stringify({ t1: { identities: [OID] }, t2: { identities: [OID.toLowerCase()] } }) })).toThrow(/assigned to tenant 't1' too/);
    expect(() => parseConfig({ ...localEnv, GATEWAY_ASSIGNMENTS: JSON.stringify({ t1: { identities: ["not-a-guid"] } }) })).toThrow(/GATEWAY_ASSIGNMENTS/);
  });

  it("match a tenant id GUID as tokens carry it (lower case); a dev tenant's id exactly", () => {
    const TID = "0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D";
    expect(parseConfig({ ...localEnv, GATEWAY_ASSIGNMENTS: JSON.stringify({ [TID]: { key: "opkey" }, T1: { key: "devkey" } }) }).gatewayAssignments).toEqual({ [TID.toLowerCase()]: { key: "opkey" }, T1: { key: "devkey" } });
    expect(() => parseConfig({ ...localEnv, GATEWAY_ASSIGNMENTS: JSON.stringify({ [TID]: { key: "a" }, [TID.toLowerCase()]: { key: "b" } }) })).toThrow(/names the tenant/);
    expect(parseConfig({ ...azureEnv, AGENT_PLATFORM_IDENTITY_TENANTS: `${TID}, T1` }).platformIdentityTenants).toEqual([TID.toLowerCase(), "T1"]);
  });
});

describe("GATEWAY_SHARED_IDENTITY_HOSTS", () => {
  it("in Azure, unset: the gateway's own identity calls no Azure AI resource for a tenant, unless one is listed", () => {
    expect(parseConfig(azureEnv).sharedIdentityHosts).toEqual([]);
    expect(parseConfig({ ...azureEnv, GATEWAY_SHARED_IDENTITY_HOSTS: " Platform-AI.openai.azure.com, cs.cognitiveservices.azure.com " }).sharedIdentityHosts).toEqual(["platform-ai.openai.azure.com", "cs.cognitiveservices.azure.com"]);
    expect(parseConfig({ ...azureEnv, GATEWAY_SHARED_IDENTITY_HOSTS: "*" }).sharedIdentityHosts).toBe("any");
  });

  it("locally, unset: any Azure AI service's host; set: the list", () => {
    expect(parseConfig(localEnv).sharedIdentityHosts).toBe("any");
    expect(parseConfig({ ...localEnv, GATEWAY_SHARED_IDENTITY_HOSTS: "" }).sharedIdentityHosts).toEqual([]);
  });

  it("refuses what is not an Azure AI service's host, there and per tenant", () => {
    expect(() => parseConfig({ ...azureEnv, GATEWAY_SHARED_IDENTITY_HOSTS: "https://platform-ai.openai.azure.com" })).toThrow(/GATEWAY_SHARED_IDENTITY_HOSTS/);
    expect(() => parseConfig({ ...azureEnv, GATEWAY_SHARED_IDENTITY_HOSTS: "vault.azure.net" })).toThrow(/must be an Azure AI service's host/);
    expect(() => parseConfig({ ...azureEnv, GATEWAY_ASSIGNMENTS: JSON.stringify({ t1: { sharedIdentityHosts: ["collector.example.com"] } }) })).toThrow(/GATEWAY_ASSIGNMENTS/);
    expect(parseConfig({ ...azureEnv, GATEWAY_ASSIGNMENTS: JSON.stringify({ t1: { sharedIdentityHosts: ["T1-AI.openai.azure.com"] } }) }).gatewayAssignments).toEqual({ t1: { sharedIdentityHosts: ["t1-ai.openai.azure.com"] } });
  });
});
