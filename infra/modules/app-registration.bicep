// aigov: the Entra app registrations, created with the Microsoft Graph Bicep extension (v1.0 types, alias in
// infra/bicepconfig.json). docs/deploy.md (step 5, "Entra app registration") and ADR 014 section 6 explain
// the choices; test/unit/deploy-contract.test.ts reads this file as text (keep `var appRoles` a literal list).
//
// - The API: multi-tenant (aigov's tenants are Entra tenants, `tid`), access tokens v2 (`aud` = this app's
//   client id, which is what src/auth/verifier.ts accepts), identifier URI api://{appId}, the app roles of
//   src/domain/common.ts ROLES, one delegated scope so a signed-in user can get a token for the API.
// - The client: one registration for the CLI (public client: device code and http://localhost loopback) and a
//   future portal (SPA platform, redirect URIs from a parameter), pre-authorized on the API's scope.
//
// Microsoft Graph Bicep deploys to the public cloud only, and needs Bicep >= 0.36.1 for extension 1.0.0.
extension microsoftGraphV1

@description('Unique within the tenant, immutable: the key by which a re-deployment finds the same registrations (token from main.bicep).')
param uniqueSuffix string

@description('Shown in Entra (app registrations, enterprise applications, consent prompts).')
param environmentName string

@description('SPA redirect URIs of the (future) portal, e.g. https://portal.example.com/auth/callback. Empty: no SPA redirect.')
param portalRedirectUris string[] = []

var apiUniqueName = 'aigov-api-${uniqueSuffix}'
var clientUniqueName = 'aigov-client-${uniqueSuffix}'

// Fixed ids: the same role has the same id in every environment (scripts that assign roles can rely on it).
// Changing an id, or removing a role, needs the role disabled first (isEnabled: false) in a deployment of its own.
// Application (app-only tokens for automation) only where a pipeline plausibly needs it; TenantAdmin and
// Approver stay people (approvals are a human decision; the verifier takes `roles` the same way from both).
var appRoles = [
  {
    id: '9f7894af-9b6e-4e02-adf7-92843e1af14c'
    value: 'TenantAdmin'
    displayName: 'Tenant administrator'
    description: 'Administers aigov for the whole tenant: policies, providers, approval routes, key lifecycle, publishing.'
    allowedMemberTypes: [ 'User' ]
    isEnabled: true
  }
  {
    id: '5eb68d3a-6d6e-46e6-88c0-7289b302452e'
    value: 'ProjectAdmin'
    displayName: 'Project administrator'
    description: 'Administers projects: members, project-scoped roles, project resources and keys.'
    allowedMemberTypes: [ 'User', 'Application' ]
    isEnabled: true
  }
  {
    id: 'd8aef899-fe5b-4681-ad80-a0191dbadca3'
    value: 'Developer'
    displayName: 'Developer'
    description: 'Registers and changes models, tools and APIs in projects, requests keys and exemptions.'
    allowedMemberTypes: [ 'User', 'Application' ]
    isEnabled: true
  }
  {
    id: '13a733ad-9d52-4bd4-bd5a-34a6edc8e546'
    value: 'Approver'
    displayName: 'Approver'
    description: 'Approves or rejects changes that need an approval.'
    allowedMemberTypes: [ 'User' ]
    isEnabled: true
  }
  {
    id: 'c50680c3-179a-4040-ae0e-8154b4d4e2ab'
    value: 'Auditor'
    displayName: 'Auditor'
    description: 'Reads everything, including the audit trail; changes nothing.'
    allowedMemberTypes: [ 'User', 'Application' ]
    isEnabled: true
  }
  {
    id: '196c13f0-ec59-4ab6-bb69-f57f71996ef2'
    value: 'Reader'
    displayName: 'Reader'
    description: 'Reads the tenant\'s aigov resources; changes nothing.'
    allowedMemberTypes: [ 'User', 'Application' ]
    isEnabled: true
  }
]

// The one delegated scope: a client signing a user in asks for api://{appId}/access_as_user (or /.default)
// and the user's app roles arrive in `roles`. Authorization is by roles only; the verifier ignores `scp`.
var accessScopeId = 'ee17fc73-5e65-4f74-ae95-2451e2c32fd7'
var accessScope = {
  id: accessScopeId
  value: 'access_as_user'
  type: 'User'
  isEnabled: true
  adminConsentDisplayName: 'Use aigov as the signed-in user'
  adminConsentDescription: 'Lets the application call the aigov API as the signed-in user, with the aigov roles assigned to that user.'
  userConsentDisplayName: 'Use aigov as you'
  userConsentDescription: 'Lets the application call the aigov API on your behalf, with your aigov roles.'
}

var apiDisplayName = 'aigov API (${environmentName})'
var apiDescription = 'The aigov control-plane API. Its app roles are the aigov roles; tokens are v2 with this app\'s client id as audience.'
var apiSignInAudience = 'AzureADMultipleOrgs'

// 1. The API, without its identifier URI: api://{appId} needs the appId, which exists only once the application
//    does (a resource cannot reference itself). The second declaration below completes it.
resource api 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: apiUniqueName
  displayName: apiDisplayName
  description: apiDescription
  signInAudience: apiSignInAudience
  api: {
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [ accessScope ]
  }
  appRoles: appRoles
}

// 2. The CLI / portal client. Multi-tenant like the API: users of every customer tenant sign in with it.
//    Public client: device code needs isFallbackPublicClient ("Allow public client flows"); MSAL's interactive
//    flow on a workstation uses the loopback http://localhost (any port); nativeclient for embedded flows.
resource client 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: clientUniqueName
  displayName: 'aigov CLI and portal (${environmentName})'
  description: 'Signs users in to the aigov API: the CLI (device code, localhost) and the portal (SPA).'
  signInAudience: 'AzureADMultipleOrgs'
  isFallbackPublicClient: true
  publicClient: {
    redirectUris: [
      'http://localhost'
      'https://login.microsoftonline.com/common/oauth2/nativeclient'
    ]
  }
  spa: {
    redirectUris: portalRedirectUris
  }
  requiredResourceAccess: [
    {
      resourceAppId: api.appId
      resourceAccess: [ { id: accessScopeId, type: 'Scope' } ]
    }
  ]
}

// 3. The API again, same uniqueName: an update of the same application (Graph Bicep resources are upserted by
//    uniqueName), now with the identifier URI from its own appId, the client pre-authorized on the scope (no
//    consent prompt for it in the home tenant) and known to the API (one consent covers both in other tenants).
//    Every property of declaration 1 is repeated so the result does not depend on update semantics. This is the
//    two-declaration pattern used for https://github.com/microsoftgraph/msgraph-bicep-types/issues/239.
resource apiWithIdentifierUri 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: apiUniqueName
  displayName: apiDisplayName
  description: apiDescription
  signInAudience: apiSignInAudience
  identifierUris: [ 'api://${api.appId}' ]
  api: {
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [ accessScope ]
    knownClientApplications: [ client.appId ]
    preAuthorizedApplications: [
      {
        appId: client.appId
        delegatedPermissionIds: [ accessScopeId ]
      }
    ]
  }
  appRoles: appRoles
}

// Service principals in the home tenant: needed to assign the app roles to its users and to sign in there.
// Other tenants get theirs at first consent (or `az ad sp create --id <client id>` by their admin).
resource apiPrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: apiWithIdentifierUri.appId
}

resource clientPrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: client.appId
}

@description('The API\'s client id: AUTH_AUDIENCE (v2 access tokens carry it as aud).')
output apiClientId string = apiWithIdentifierUri.appId

@description('The API\'s identifier URI (api://{appId}): the prefix of the scope clients request.')
output apiIdentifierUri string = 'api://${api.appId}'

@description('The delegated scope a user-facing client requests.')
output apiScope string = 'api://${api.appId}/access_as_user'

@description('The CLI / portal client id.')
output clientId string = client.appId

@description('Object id of the API\'s service principal in the home tenant (assign app roles to users on it).')
output apiServicePrincipalId string = apiPrincipal.id
