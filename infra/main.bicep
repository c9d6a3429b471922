// aigov: the Azure resources the function app needs. Outputs and app settings use the same names as
// src/config (see .env.example). Identity-based access everywhere: no keys in app settings.
//
// docs/deploy.md explains every parameter, what `azd up` creates, the permissions the deployer needs and
// the data-plane need -> role table that test/unit/deploy-contract.test.ts checks against this file
// (keep role assignments as literal resources with an explicit `scope:`; the test reads them as text).
targetScope = 'resourceGroup'

@description('Short environment name (azd sets it), used in resource names.')
param environmentName string

@description('Region of every resource. Must be in allowedLocations.')
param location string = resourceGroup().location

@description('''Regions this template may deploy to: where API Management Standard v2 is offered (Learn,
"Azure API Management - Availability of v2 tiers and workspace gateways", ms.date 11/11/2025). Flex
Consumption has no published static list: infra/hooks/preprovision.sh asks
`az functionapp list-flexconsumption-locations` before provisioning. Narrow this list to your
organisation's regions; a location outside it fails the deployment (see deployLocation).''')
param allowedLocations array = [
  'australiacentral'
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southindia'
  'swedencentral'
  'switzerlandnorth'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westeurope'
  'westus'
  'westus2'
]

@description('dev: vaults without purge protection and 7-day soft-delete retention (re-provisioning after `azd down --purge` works). prod: purge protection on, 90 days.')
@allowed([ 'dev', 'prod' ])
param environmentType string = 'dev'

@description('Key Vault purge protection. Irreversible once on: a purge-protected vault keeps its name for the whole retention period after `azd down`.')
param keyVaultPurgeProtection bool = environmentType == 'prod'

@description('Soft-delete retention of both vaults, in days (fixed once a vault is created).')
@minValue(7)
@maxValue(90)
param keyVaultRetentionDays int = environmentType == 'prod' ? 90 : 7

@description('''Appended to both vault names (lowercase letters and digits). After `azd down` of a purge-protected
environment the old names stay reserved: either set keyVaultCreateMode=recover to get the soft-deleted vaults
back (same names, their secrets intact), or pick a new suffix for new, empty vaults.''')
@maxLength(6)
param keyVaultNameSuffix string = ''

@description('default: create the vaults. recover: restore soft-deleted vaults of the same names (role assignments are re-created by this template; recovery does not restore them).')
@allowed([ 'default', 'recover' ])
param keyVaultCreateMode string = 'default'

@description('''Network isolation (docs/deploy.md, "Networking"). none: every service keeps its public endpoint,
protected by Entra ID / managed identity and disabled local auth (dev). private: a VNet (infra/modules/network.bicep)
with private endpoints and DNS zones for Storage (blob, queue, table), Cosmos DB, both vaults and the Event Grid
topic, whose public network access is then disabled; the function app (Flex Consumption) and the API Management
gateway (Standard v2) reach them through VNet integration. The admin API and the gateway keep their public
endpoints: they are what the portal, the CLI and the applications call.''')
@allowed([ 'none', 'private' ])
param networkIsolation string = 'none'

@description('Address space of the VNet when networkIsolation is private (three /24 subnets are cut from it).')
param vnetAddressPrefix string = '10.42.0.0/16'

@description('''Create the Entra app registrations (API and CLI/portal client) with the Microsoft Graph Bicep extension
(infra/modules/app-registration.bicep). The deployer then needs to be allowed to create applications in the tenant
(docs/deploy.md, "What the deployer needs"). false: register them by hand and set authAudience.''')
param createAppRegistration bool = true

@description('Only when createAppRegistration is false: the client id (a GUID) of an API registration made by hand; Entra v2 access tokens carry it as aud (docs/deploy.md, step 5). Ignored otherwise.')
@maxLength(36)
param authAudience string = ''

@description('SPA redirect URIs of the portal on the client registration (only with createAppRegistration).')
param portalRedirectUris string[] = []

@description('Region of the portal\'s Static Web App (a global service with a few control-plane regions; ADR 019).')
@allowed([ 'westus2', 'centralus', 'eastus2', 'westeurope', 'eastasia' ])
param portalLocation string = 'westeurope'

@description('Entra tenant IDs (comma-separated) whose tokens the API accepts; empty = every tenant where the multi-tenant app registration has a service principal.')
param authAllowedTenants string = ''

@description('Tenant IDs (comma-separated) whose agent connections may reach other clouds as this deployment\'s managed identity (workload identity federation); empty = none (connections bring their own credentials).')
param agentPlatformIdentityTenants string = ''

@description('Hosts (comma-separated) of the platform\'s own Azure AI resources that API Management\'s own identity may call for every tenant (model backends, content safety, the semantic cache\'s embeddings); `*` = any Azure AI service\'s host; empty = none (tenants use identities of their own). ADR 022.')
param gatewaySharedIdentityHosts string = ''

@description('Publisher e-mail and name of the API Management instance the control plane publishes to.')
param apimPublisherEmail string = 'platform@example.com'
param apimPublisherName string = 'aigov'

@description('Also log LLM prompts and completions (GatewayLlmLogs message bodies). Token counts are always logged.')
param llmMessageLogging bool = false

@description('One Event Grid subscription on the aigov topic.')
type eventSubscription = {
  @description('Subscription name (3-64 letters, digits, hyphens).')
  name: string
  @description('WebHook: an https URL that answers the Event Grid validation handshake. EventHub: an Event Hub resource ID.')
  endpointType: 'WebHook' | 'EventHub'
  @description('The webhook URL or the Event Hub resource ID.')
  endpoint: string
  @description('Event types to deliver (all when omitted), e.g. aigov.change.published.')
  includedEventTypes: string[]?
}

@description('Where the events aigov publishes go. None by default: the topic accepts events and, with no subscription, drops them.')
param eventSubscriptions eventSubscription[] = []

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName }
var normalizedLocation = toLower(replace(location, ' ', ''))
// A location outside allowedLocations becomes a name no resource provider accepts, so the deployment
// fails at the first resource with this text in the error (Bicep has no assertion that runs at deploy time).
var deployLocation = contains(allowedLocations, normalizedLocation) ? normalizedLocation : 'location-${normalizedLocation}-is-not-in-allowedLocations'
var vaultStem = take(token, 13 - length(keyVaultNameSuffix))
var databaseName = 'aigov'
var containerName = 'resources'

// ---------------------------------------------------------------------------------------------------------
// Entra app registrations (Microsoft Graph Bicep extension; infra/bicepconfig.json)
// ---------------------------------------------------------------------------------------------------------

module appRegistration 'modules/app-registration.bicep' = if (createAppRegistration) {
  name: 'app-registration'
  params: {
    uniqueSuffix: token
    environmentName: environmentName
    // The portal's own address (its Static Web App, below) and any others given.
    portalRedirectUris: concat(portalRedirectUris, [ 'https://${portal.properties.defaultHostname}/portal/' ])
  }
}

// ---------------------------------------------------------------------------------------------------------
// The portal: a Static Web App serving dist/portal-site (ADR 019). It calls the function app across origins
// (CORS below), so the API stays reachable for the CLI; no linked backend.
// ---------------------------------------------------------------------------------------------------------

resource portal 'Microsoft.Web/staticSites@2023-12-01' = {
  name: 'swa-aigov-${token}'
  location: portalLocation
  tags: union(tags, { 'azd-service-name': 'portal' })
  sku: { name: 'Free', tier: 'Free' }
  properties: {
    provider: 'Custom'
    allowConfigFileUpdates: true
  }
}

// AUTH_AUDIENCE: the created API registration's client id, or the hand-made one. ARM evaluates only the branch
// taken, so the module's output is not read when it is not deployed. An empty authAudience with
// createAppRegistration=false makes the app refuse to start (src/config requires a client id), not accept tokens.
var apiClientId = createAppRegistration ? appRegistration!.outputs.apiClientId : authAudience

// ---------------------------------------------------------------------------------------------------------
// Identity and monitoring
// ---------------------------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-aigov-${token}'
  location: deployLocation
  tags: tags
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-aigov-${token}'
  location: deployLocation
  tags: tags
  properties: { sku: { name: 'PerGB2018' }, retentionInDays: 30 }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-aigov-${token}'
  location: deployLocation
  tags: tags
  kind: 'web'
  properties: { Application_Type: 'web', WorkspaceResourceId: logs.id, DisableLocalAuth: true }
}

// Monitoring Metrics Publisher: with local auth off, App Insights accepts telemetry only from an Entra
// identity holding this role (APPLICATIONINSIGHTS_AUTHENTICATION_STRING names the identity).
resource insightsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: insights
  name: guid(insights.id, identity.id, 'metrics-publisher')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '3913510d-42f4-4e42-8a64-420c390055eb')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Log Analytics Reader: usage ingestion queries the gateway's logs (ApiManagementGatewayLogs, …) in this
// workspace with the app's identity (USAGE_LOG_WORKSPACE_ID; docs/usage.md).
resource usageLogReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: logs
  name: guid(logs.id, identity.id, 'log-analytics-reader')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '73c42c96-874c-492b-b04d-ab87d138a893')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------------------------------------------------
// Storage: the Functions host (AzureWebJobsStorage), Durable Functions (queues, tables, blobs), deployments
// ---------------------------------------------------------------------------------------------------------

var isPrivate = networkIsolation == 'private'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'staigov${take(token, 16)}'
  location: deployLocation
  tags: tags
  sku: { name: 'Standard_LRS' }
  kind: 'StorageV2'
  properties: {
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    publicNetworkAccess: isPrivate ? 'Disabled' : 'Enabled'
    networkAcls: isPrivate ? { defaultAction: 'Deny', bypass: 'None' } : { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  name: '${storage.name}/default/deployments'
}

// Account scope: the host and the Durable Functions storage provider create their containers, queues
// and tables at run time (names derive from the task hub), so no narrower scope exists before they do.
// Storage Blob Data Owner: host leases, Durable blobs, the deployment package.
resource storageBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, identity.id, 'blob-owner')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Queue Data Contributor: Durable control and work-item queues.
resource storageQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, identity.id, 'queue-contributor')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '974c5e8b-45b9-4653-ba55-5f855dd0fb88')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Table Data Contributor: Durable history and instances tables.
resource storageTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, identity.id, 'table-contributor')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------------------------------------------------
// Cosmos DB
// ---------------------------------------------------------------------------------------------------------

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: 'cosmos-aigov-${token}'
  location: deployLocation
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [ { locationName: deployLocation, failoverPriority: 0 } ]
    capabilities: [ { name: 'EnableServerless' } ]
    disableLocalAuth: true
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
    publicNetworkAccess: isPrivate ? 'Disabled' : 'Enabled'
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: cosmos
  name: databaseName
  properties: { resource: { id: databaseName } }
}

// One container: state, audit and outbox share a logical partition so a mutation is one
// transactional batch (docs/adr/002-audit-chain.md).
resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: containerName
  properties: {
    resource: {
      id: containerName
      partitionKey: { paths: [ '/tenantId', '/scopeId' ], kind: 'MultiHash', version: 2 }
      indexingPolicy: { indexingMode: 'consistent', includedPaths: [ { path: '/*' } ], excludedPaths: [ { path: '/event/data/*' } ] }
    }
  }
}

// Cosmos DB Built-in Data Contributor (data plane), on the one container the app uses. The data-plane
// scope is a path (/dbs/<db>/colls/<container>), not the ARM id of the container.
resource cosmosContainerData 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: cosmos
  name: guid(cosmos.id, identity.id, 'data-contributor', databaseName, containerName)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002'
    principalId: identity.properties.principalId
    scope: '${cosmos.id}/dbs/${database.name}/colls/${container.name}'
  }
}

// ---------------------------------------------------------------------------------------------------------
// Event Grid
// ---------------------------------------------------------------------------------------------------------

resource topic 'Microsoft.EventGrid/topics@2025-02-15' = {
  name: 'evgt-aigov-${token}'
  location: deployLocation
  tags: tags
  properties: { inputSchema: 'CloudEventSchemaV1_0', disableLocalAuth: true, minimumTlsVersionAllowed: '1.2', publicNetworkAccess: isPrivate ? 'Disabled' : 'Enabled' }
}

// EventGrid Data Sender: the outbox relay publishes CloudEvents with the app's identity.
resource topicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: topic
  name: guid(topic.id, identity.id, 'sender')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'd5a91429-5739-47e2-a06b-3470a27159e7')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Delivery uses `destination` (Event Grid's own identity), not `deliveryWithResourceIdentity`: no role
// on the receiver is needed from this template. A webhook must answer Event Grid's validation handshake
// when the subscription is created, or the deployment fails.
resource topicSubscriptions 'Microsoft.EventGrid/topics/eventSubscriptions@2025-02-15' = [for s in eventSubscriptions: {
  parent: topic
  name: s.name
  properties: {
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    destination: s.endpointType == 'WebHook' ? { endpointType: 'WebHook', properties: { endpointUrl: s.endpoint } } : { endpointType: 'EventHub', properties: { resourceId: s.endpoint } }
    filter: empty(s.?includedEventTypes ?? []) ? {} : { includedEventTypes: s.?includedEventTypes }
    retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 }
  }
}]

// ---------------------------------------------------------------------------------------------------------
// Key Vaults: the control plane's (signing keys, peppers, approval-link key) and the providers' (upstream
// API keys the gateway resolves as Key Vault-backed named values). Only the second is readable by the gateway.
// ---------------------------------------------------------------------------------------------------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-aigov-${vaultStem}${keyVaultNameSuffix}'
  location: deployLocation
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    createMode: keyVaultCreateMode
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: keyVaultRetentionDays
    // The property accepts true or absent, never false (Bicep types: "does not accept false").
    enablePurgeProtection: keyVaultPurgeProtection ? true : null
    publicNetworkAccess: isPrivate ? 'disabled' : 'enabled'
    networkAcls: isPrivate ? { defaultAction: 'Deny', bypass: 'AzureServices' } : { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource providerVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kvp-aigov-${vaultStem}${keyVaultNameSuffix}'
  location: deployLocation
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    createMode: keyVaultCreateMode
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: keyVaultRetentionDays
    enablePurgeProtection: keyVaultPurgeProtection ? true : null
    // API Management is a trusted service of Key Vault; with VNet integration it also resolves the private endpoint.
    publicNetworkAccess: isPrivate ? 'disabled' : 'enabled'
    networkAcls: isPrivate ? { defaultAction: 'Deny', bypass: 'AzureServices' } : { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

// Key Vault Secrets Officer on the control plane's vault: the app creates, reads, disables and deletes
// its signing keys, peppers and link key.
resource vaultSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, identity.id, 'secrets-officer')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault Secrets Officer on the providers' vault: the app stores the upstream keys tenants register.
resource providerVaultSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: providerVault
  name: guid(providerVault.id, identity.id, 'secrets-officer')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------------------------------------------------
// API Management: the gateway the control plane publishes compiled artifacts to (ADR 005, 006)
// ---------------------------------------------------------------------------------------------------------

resource apim 'Microsoft.ApiManagement/service@2024-05-01' = {
  name: 'apim-aigov-${token}'
  location: deployLocation
  tags: tags
  sku: { name: 'StandardV2', capacity: 1 }
  identity: { type: 'SystemAssigned' }
  properties: {
    publisherEmail: apimPublisherEmail
    publisherName: apimPublisherName
    // v2 tiers: outbound VNet integration (External), the gateway endpoint stays public for the applications.
    virtualNetworkType: isPrivate ? 'External' : 'None'
    virtualNetworkConfiguration: isPrivate ? { subnetResourceId: network.outputs.apimSubnetId } : null
  }
}

// The instance baseline (ADR 023): the global policy, so that a path another tenant's API serves answers as
// one nobody serves. Generated by src/policy/compile/instance.ts; test/policy/instance-baseline.test.ts
// fails when this file differs from the rendering. Format "xml", as the publisher sends policies: the
// expressions' quotes are XML-escaped in the file.
resource apimInstanceBaseline 'Microsoft.ApiManagement/service/policies@2024-05-01' = {
  parent: apim
  name: 'policy'
  properties: {
    format: 'xml'
    value: loadTextContent('apim/global-policy.xml')
  }
}

// The private network (networkIsolation = private): VNet, private endpoints and DNS zones.
module network 'modules/network.bicep' = if (isPrivate) {
  name: 'network'
  params: {
    location: deployLocation
    tags: tags
    token: token
    addressPrefix: vnetAddressPrefix
    storageAccountId: storage.id
    cosmosAccountId: cosmos.id
    vaultId: vault.id
    providerVaultId: providerVault.id
    topicId: topic.id
  }
}

// Key Vault Secrets User on the providers' vault only: the gateway resolves Key Vault-backed named values.
resource providerVaultGatewayReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: providerVault
  name: guid(providerVault.id, apim.id, 'secrets-user')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4633458b-17de-408a-b874-0445c86b69e6')
    principalId: apim.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// The entity types the ARM publisher (src/adapters/apim/arm-publisher.ts) reads and writes, plus read on
// the service and the status of its long-running operations. Not the service itself: no service write or
// delete, no network, certificate, identity, user, group or backup operations (API Management Service
// Contributor, which this replaces, has Microsoft.ApiManagement/service/*).
var apimPublisherActions = [
  'Microsoft.ApiManagement/service/read'
  'Microsoft.ApiManagement/service/operationresults/read'
  'Microsoft.ApiManagement/service/apis/read'
  'Microsoft.ApiManagement/service/apis/write'
  'Microsoft.ApiManagement/service/apis/delete'
  'Microsoft.ApiManagement/service/apis/operations/*'
  'Microsoft.ApiManagement/service/apis/policies/*'
  'Microsoft.ApiManagement/service/apis/schemas/*'
  'Microsoft.ApiManagement/service/apis/tools/*'
  'Microsoft.ApiManagement/service/products/read'
  'Microsoft.ApiManagement/service/products/write'
  'Microsoft.ApiManagement/service/products/delete'
  'Microsoft.ApiManagement/service/products/apis/*'
  'Microsoft.ApiManagement/service/products/policies/*'
  'Microsoft.ApiManagement/service/backends/*'
  'Microsoft.ApiManagement/service/namedValues/*'
  'Microsoft.ApiManagement/service/policies/*'
  'Microsoft.ApiManagement/service/policyFragments/*'
  'Microsoft.ApiManagement/service/subscriptions/*'
]

resource apimPublisherRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, resourceGroup().id, 'aigov-apim-publisher')
  properties: {
    roleName: 'aigov APIM publisher (${resourceGroup().name}, ${token})'
    description: 'Writes the API Management entities aigov publishes (APIs, operations, schemas, MCP tools, policies, fragments, products, backends, named values, subscriptions); reads the service.'
    type: 'CustomRole'
    permissions: [ { actions: apimPublisherActions, notActions: [] } ]
    assignableScopes: [ resourceGroup().id ]
  }
}

resource apimPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: apim
  name: guid(apim.id, identity.id, 'aigov-apim-publisher')
  properties: {
    // The subscription-level form of the id: the role definition's resource id under the resource group is
    // not the form role assignments take.
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', apimPublisherRole.name)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [ apimPublisherRole ]
}

// Gateway and LLM logs: the azureMonitor logger plus the service-wide diagnostic route requests to the
// resource's diagnostic settings (GatewayLogs, GatewayLlmLogs below). largeLanguageModel needs a
// 2024-06-01-preview or later diagnostics type.
resource apimLogger 'Microsoft.ApiManagement/service/loggers@2024-05-01' = {
  parent: apim
  name: 'azuremonitor'
  properties: { loggerType: 'azureMonitor', isBuffered: true, description: 'Gateway and LLM logs to Azure Monitor (diagnostic settings)' }
}

// Token counts always; prompts and completions only when llmMessageLogging is on.
var llmLogsWithMessages = {
  logs: 'enabled'
  requests: { messages: 'all', maxSizeInBytes: 32768 }
  responses: { messages: 'all', maxSizeInBytes: 32768 }
}

resource apimDiagnostic 'Microsoft.ApiManagement/service/diagnostics@2024-06-01-preview' = {
  parent: apim
  name: 'azuremonitor'
  properties: {
    loggerId: apimLogger.id
    alwaysLog: 'allErrors'
    logClientIp: false
    sampling: { samplingType: 'fixed', percentage: 100 }
    largeLanguageModel: llmMessageLogging ? llmLogsWithMessages : { logs: 'enabled' }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Diagnostic settings: resource logs to the Log Analytics workspace, in resource-specific tables
// ---------------------------------------------------------------------------------------------------------

resource apimLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  scope: apim
  name: 'to-log-analytics'
  properties: {
    workspaceId: logs.id
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      { category: 'GatewayLogs', enabled: true }
      { category: 'GatewayLlmLogs', enabled: true }
      // MCP tool calls (table ApiManagementGatewayMCPLog): usage per tool, tools' lastUsedAt, access reviews of tool approvals.
      { category: 'GatewayMCPLogs', enabled: true }
    ]
  }
}

resource vaultLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  scope: vault
  name: 'to-log-analytics'
  properties: {
    workspaceId: logs.id
    logAnalyticsDestinationType: 'Dedicated'
    logs: [ { category: 'AuditEvent', enabled: true } ]
  }
}

resource providerVaultLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  scope: providerVault
  name: 'to-log-analytics'
  properties: {
    workspaceId: logs.id
    logAnalyticsDestinationType: 'Dedicated'
    logs: [ { category: 'AuditEvent', enabled: true } ]
  }
}

resource cosmosLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  scope: cosmos
  name: 'to-log-analytics'
  properties: {
    workspaceId: logs.id
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      { category: 'DataPlaneRequests', enabled: true }
      { category: 'ControlPlaneRequests', enabled: true }
    ]
  }
}

resource topicLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  scope: topic
  name: 'to-log-analytics'
  properties: {
    workspaceId: logs.id
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      { category: 'DataPlaneRequests', enabled: true }
      { category: 'PublishFailures', enabled: true }
      { category: 'DeliveryFailures', enabled: true }
    ]
  }
}

// ---------------------------------------------------------------------------------------------------------
// The function app (Flex Consumption)
// ---------------------------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-aigov-${token}'
  location: deployLocation
  tags: tags
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  kind: 'functionapp'
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-aigov-${token}'
  location: deployLocation
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identity.id}': {} } }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Flex Consumption VNet integration: the app reaches Storage, Cosmos DB, the vaults and Event Grid privately.
    virtualNetworkSubnetId: isPrivate ? network.outputs.appSubnetId : null
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}deployments'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
        }
      }
      // Node 22 (package.json engines; test/unit/deploy-contract.test.ts keeps the two equal).
      runtime: { name: 'node', version: '22' }
      scaleAndConcurrency: { instanceMemoryMB: 2048, maximumInstanceCount: 40 }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      // The portal's origin only; bearer tokens, no cookies (supportCredentials false).
      cors: { allowedOrigins: [ 'https://${portal.properties.defaultHostname}' ], supportCredentials: false }
      appSettings: [
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId }
        { name: 'COSMOS_ENDPOINT', value: cosmos.properties.documentEndpoint }
        { name: 'COSMOS_DATABASE', value: databaseName }
        { name: 'COSMOS_CONTAINER', value: containerName }
        { name: 'AUTH_MODE', value: 'entra' }
        { name: 'AUTH_ISSUER', value: '${environment().authentication.loginEndpoint}{tenantid}/v2.0' }
        { name: 'AUTH_AUDIENCE', value: apiClientId }
        { name: 'AUTH_JWKS_URI', value: '${environment().authentication.loginEndpoint}common/discovery/v2.0/keys' }
        { name: 'AUTH_ALLOWED_TENANTS', value: authAllowedTenants }
        { name: 'AGENT_PLATFORM_IDENTITY_TENANTS', value: agentPlatformIdentityTenants }
        { name: 'GATEWAY_SHARED_IDENTITY_HOSTS', value: gatewaySharedIdentityHosts }
        { name: 'EVENTGRID_TOPIC_ENDPOINT', value: topic.properties.endpoint }
        { name: 'KEYVAULT_URI', value: vault.properties.vaultUri }
        { name: 'PROVIDER_KEYVAULT_URI', value: providerVault.properties.vaultUri }
        { name: 'OUTBOX_RELAY_SCHEDULE', value: '*/10 * * * * *' }
        { name: 'APPROVAL_SWEEP_SCHEDULE', value: '0 */5 * * * *' }
        { name: 'APIM_SUBSCRIPTION_ID', value: subscription().subscriptionId }
        { name: 'APIM_RESOURCE_GROUP', value: resourceGroup().name }
        { name: 'APIM_SERVICE_NAME', value: apim.name }
        { name: 'GATEWAY_PUBLISH_SWEEP_SCHEDULE', value: '*/30 * * * * *' }
        { name: 'DRIFT_CHECK_SCHEDULE', value: '0 */15 * * * *' }
        { name: 'KEY_LIFECYCLE_SCHEDULE', value: '0 * * * * *' }
        { name: 'TOOL_DISCOVERY_SCHEDULE', value: '0 */15 * * * *' }
        { name: 'AGENT_SYNC_SCHEDULE', value: '0 */5 * * * *' }
        { name: 'USAGE_INGEST_SCHEDULE', value: '0 */5 * * * *' }
        { name: 'USAGE_LOG_WORKSPACE_ID', value: logs.properties.customerId }
        // The portal's playgrounds call APIM from the browser: every API aigov publishes lets this origin in (cors).
        { name: 'GATEWAY_BROWSER_ORIGINS', value: 'https://${portal.properties.defaultHostname}' }
        { name: 'KEY_ROTATIONS_PER_RUN', value: '120' }
        { name: 'EXEMPTION_SWEEP_SCHEDULE', value: '0 */5 * * * *' }
        { name: 'ACCESS_REVIEW_SWEEP_SCHEDULE', value: '0 */15 * * * *' }
        { name: 'PROJECT_LIFECYCLE_SCHEDULE', value: '0 0 * * * *' }
      ]
    }
  }
  // The host needs its storage roles before it starts; telemetry needs the publisher role.
  dependsOn: [ deployments, storageBlobOwner, storageQueueContributor, storageTableContributor, insightsPublisher ]
}

// No FTP or SCM basic-auth publishing: azd deploys to Flex Consumption with Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: { allow: false }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: { allow: false }
}

output NETWORK_ISOLATION string = networkIsolation
output COSMOS_ENDPOINT string = cosmos.properties.documentEndpoint
output COSMOS_DATABASE string = databaseName
output COSMOS_CONTAINER string = containerName
output EVENTGRID_TOPIC_ENDPOINT string = topic.properties.endpoint
output KEYVAULT_URI string = vault.properties.vaultUri
output PROVIDER_KEYVAULT_URI string = providerVault.properties.vaultUri
output APIM_SERVICE_NAME string = apim.name
output AUTH_AUDIENCE string = apiClientId
output AUTH_API_IDENTIFIER_URI string = createAppRegistration ? appRegistration!.outputs.apiIdentifierUri : ''
output AUTH_API_SCOPE string = createAppRegistration ? appRegistration!.outputs.apiScope : ''
output AUTH_CLIENT_ID string = createAppRegistration ? appRegistration!.outputs.clientId : ''
output AUTH_API_SERVICE_PRINCIPAL_ID string = createAppRegistration ? appRegistration!.outputs.apiServicePrincipalId : ''
output LOG_ANALYTICS_WORKSPACE_ID string = logs.id
output API_URL string = 'https://${app.properties.defaultHostName}/api'
output API_ORIGIN string = 'https://${app.properties.defaultHostName}'
output PORTAL_URL string = 'https://${portal.properties.defaultHostname}/portal/'
output APIM_GATEWAY_URL string = apim.properties.gatewayUrl
