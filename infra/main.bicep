// aigov: the Azure resources the function app needs. Outputs and app settings use the same names as
// src/config (see .env.example). Identity-based access everywhere: no keys in app settings.
targetScope = 'resourceGroup'

@description('Short environment name (azd sets it), used in resource names.')
param environmentName string
param location string = resourceGroup().location
@description('Entra application ID URI the admin API expects as token audience.')
param authAudience string = 'api://aigov'

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName }

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-aigov-${token}'
  location: location
  tags: tags
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'staigov${take(token, 16)}'
  location: location
  tags: tags
  sku: { name: 'Standard_LRS' }
  kind: 'StorageV2'
  properties: { allowSharedKeyAccess: false, minimumTlsVersion: 'TLS1_2', allowBlobPublicAccess: false }
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-aigov-${token}'
  location: location
  tags: tags
  properties: { sku: { name: 'PerGB2018' }, retentionInDays: 30 }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-aigov-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: { Application_Type: 'web', WorkspaceResourceId: logs.id, DisableLocalAuth: true }
}

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: 'cosmos-aigov-${token}'
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [ { locationName: location, failoverPriority: 0 } ]
    capabilities: [ { name: 'EnableServerless' } ]
    disableLocalAuth: true
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: cosmos
  name: 'aigov'
  properties: { resource: { id: 'aigov' } }
}

// One container: state, audit and outbox share a logical partition so a mutation is one
// transactional batch (docs/adr/002-audit-chain.md).
resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: 'resources'
  properties: {
    resource: {
      id: 'resources'
      partitionKey: { paths: [ '/tenantId', '/scopeId' ], kind: 'MultiHash', version: 2 }
      indexingPolicy: { indexingMode: 'consistent', includedPaths: [ { path: '/*' } ], excludedPaths: [ { path: '/event/data/*' } ] }
    }
  }
}

// Cosmos DB Built-in Data Contributor (data plane).
resource cosmosData 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: cosmos
  name: guid(cosmos.id, identity.id, 'data-contributor')
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002'
    principalId: identity.properties.principalId
    scope: cosmos.id
  }
}

resource topic 'Microsoft.EventGrid/topics@2024-06-01-preview' = {
  name: 'evgt-aigov-${token}'
  location: location
  tags: tags
  properties: { inputSchema: 'CloudEventSchemaV1_0', disableLocalAuth: true }
}

// EventGrid Data Sender.
resource topicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: topic
  name: guid(topic.id, identity.id, 'sender')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'd5a91429-5739-47e2-a06b-3470a27159e7')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-aigov-${take(token, 13)}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    enablePurgeProtection: true
  }
}

// Key Vault Secrets Officer (later issues keep peppers, signing keys and provider keys here).
resource vaultSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, identity.id, 'secrets-officer')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Blob Data Owner, for the Functions host's identity-based AzureWebJobsStorage.
@description('Publisher e-mail and name of the API Management instance the control plane publishes to.')
param apimPublisherEmail string = 'platform@example.com'
param apimPublisherName string = 'aigov'

// The gateway: the control plane publishes compiled artifacts here (ADR 005, 006). Its system identity
// reads Key Vault-backed named values (provider keys) and calls backends with managed identity.
resource apim 'Microsoft.ApiManagement/service@2024-05-01' = {
  name: 'apim-aigov-${token}'
  location: location
  tags: tags
  sku: { name: 'StandardV2', capacity: 1 }
  identity: { type: 'SystemAssigned' }
  properties: { publisherEmail: apimPublisherEmail, publisherName: apimPublisherName }
}

resource apimContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: apim
  name: guid(apim.id, identity.id, 'apim-contributor')
  properties: {
    // API Management Service Contributor: the app writes APIs, products, backends, named values, policies.
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '312a565d-c81f-4fd8-895a-4e21e48d571c')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource apimVaultReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, apim.id, 'secrets-user')
  properties: {
    // Key Vault Secrets User: the gateway resolves Key Vault-backed named values.
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4633458b-17de-408a-b874-0445c86b69e6')
    principalId: apim.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource storageOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, identity.id, 'blob-owner')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-aigov-${token}'
  location: location
  tags: tags
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  kind: 'functionapp'
  properties: { reserved: true }
}

resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  name: '${storage.name}/default/deployments'
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-aigov-${token}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identity.id}': {} } }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}deployments'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
        }
      }
      runtime: { name: 'node', version: '22' }
      scaleAndConcurrency: { instanceMemoryMB: 2048, maximumInstanceCount: 40 }
    }
    siteConfig: {
      appSettings: [
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId }
        { name: 'COSMOS_ENDPOINT', value: cosmos.properties.documentEndpoint }
        { name: 'COSMOS_DATABASE', value: 'aigov' }
        { name: 'COSMOS_CONTAINER', value: 'resources' }
        { name: 'AUTH_MODE', value: 'entra' }
        { name: 'AUTH_ISSUER', value: '${environment().authentication.loginEndpoint}{tenantid}/v2.0' }
        { name: 'AUTH_AUDIENCE', value: authAudience }
        { name: 'AUTH_JWKS_URI', value: '${environment().authentication.loginEndpoint}common/discovery/v2.0/keys' }
        { name: 'EVENTGRID_TOPIC_ENDPOINT', value: topic.properties.endpoint }
        { name: 'KEYVAULT_URI', value: vault.properties.vaultUri }
        { name: 'OUTBOX_RELAY_SCHEDULE', value: '*/10 * * * * *' }
        { name: 'APPROVAL_SWEEP_SCHEDULE', value: '0 */5 * * * *' }
        { name: 'APIM_SUBSCRIPTION_ID', value: subscription().subscriptionId }
        { name: 'APIM_RESOURCE_GROUP', value: resourceGroup().name }
        { name: 'APIM_SERVICE_NAME', value: apim.name }
        { name: 'GATEWAY_PUBLISH_SWEEP_SCHEDULE', value: '*/30 * * * * *' }
        { name: 'DRIFT_CHECK_SCHEDULE', value: '0 */15 * * * *' }
        { name: 'KEY_LIFECYCLE_SCHEDULE', value: '0 * * * * *' }
        { name: 'TOOL_DISCOVERY_SCHEDULE', value: '0 */15 * * * *' }
        { name: 'KEY_ROTATIONS_PER_RUN', value: '120' }
        { name: 'EXEMPTION_SWEEP_SCHEDULE', value: '0 */5 * * * *' }
      ]
    }
  }
  dependsOn: [ deployments, storageOwner ]
}

output COSMOS_ENDPOINT string = cosmos.properties.documentEndpoint
output COSMOS_DATABASE string = 'aigov'
output COSMOS_CONTAINER string = 'resources'
output EVENTGRID_TOPIC_ENDPOINT string = topic.properties.endpoint
output KEYVAULT_URI string = vault.properties.vaultUri
output APIM_SERVICE_NAME string = apim.name
output AUTH_AUDIENCE string = authAudience
output API_URL string = 'https://${app.properties.defaultHostName}/api'
