// networkIsolation = 'private' (docs/deploy.md, "Networking"): a VNet with three subnets, private endpoints
// with private DNS zones for every data service the app reaches (Storage blob/queue/table, Cosmos DB, both
// vaults, the Event Grid topic), so main.bicep can turn their public network access off; the function app
// and the API Management gateway reach them through VNet integration.
//
// Sub-resource (group id) and zone names: Microsoft Learn, "Azure Private Endpoint private DNS zone values".

@description('Region of the VNet and the private endpoints (the region of the services).')
param location string

param tags object

@description('Resource name stem shared with main.bicep.')
param token string

@description('Address space of the VNet; three /24 subnets are cut from its first addresses.')
param addressPrefix string

param storageAccountId string
param cosmosAccountId string
param vaultId string
param providerVaultId string
param topicId string

// Flex Consumption VNet integration needs a subnet delegated to Microsoft.App/environments; API Management
// v2 VNet integration one delegated to Microsoft.Web/serverFarms; private endpoints a subnet of their own.
resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: 'vnet-aigov-${token}'
  location: location
  tags: tags
  properties: {
    addressSpace: { addressPrefixes: [ addressPrefix ] }
    subnets: [
      {
        name: 'snet-app'
        properties: {
          addressPrefix: cidrSubnet(addressPrefix, 24, 0)
          delegations: [ { name: 'flex', properties: { serviceName: 'Microsoft.App/environments' } } ]
        }
      }
      {
        name: 'snet-apim'
        properties: {
          addressPrefix: cidrSubnet(addressPrefix, 24, 1)
          delegations: [ { name: 'apimv2', properties: { serviceName: 'Microsoft.Web/serverFarms' } } ]
        }
      }
      {
        name: 'snet-endpoints'
        properties: {
          addressPrefix: cidrSubnet(addressPrefix, 24, 2)
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

// One entry per private endpoint: the service, its sub-resource and the zone its A record goes to.
var endpoints = [
  { name: 'blob', target: storageAccountId, groupId: 'blob', zone: 'privatelink.blob.${environment().suffixes.storage}' }
  { name: 'queue', target: storageAccountId, groupId: 'queue', zone: 'privatelink.queue.${environment().suffixes.storage}' }
  { name: 'table', target: storageAccountId, groupId: 'table', zone: 'privatelink.table.${environment().suffixes.storage}' }
  { name: 'cosmos', target: cosmosAccountId, groupId: 'Sql', zone: 'privatelink.documents.azure.com' }
  { name: 'vault', target: vaultId, groupId: 'vault', zone: 'privatelink.vaultcore.azure.net' }
  { name: 'providervault', target: providerVaultId, groupId: 'vault', zone: 'privatelink.vaultcore.azure.net' }
  { name: 'topic', target: topicId, groupId: 'topic', zone: 'privatelink.eventgrid.azure.net' }
]
var zoneNames = union(map(endpoints, e => e.zone), [])

resource zones 'Microsoft.Network/privateDnsZones@2024-06-01' = [for z in zoneNames: {
  name: z
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [for (z, i) in zoneNames: {
  parent: zones[i]
  name: 'link-${vnet.name}'
  location: 'global'
  tags: tags
  properties: { virtualNetwork: { id: vnet.id }, registrationEnabled: false }
}]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [for e in endpoints: {
  name: 'pe-aigov-${e.name}-${token}'
  location: location
  tags: tags
  properties: {
    subnet: { id: '${vnet.id}/subnets/snet-endpoints' }
    privateLinkServiceConnections: [ { name: e.name, properties: { privateLinkServiceId: e.target, groupIds: [ e.groupId ] } } ]
  }
}]

resource zoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [for (e, i) in endpoints: {
  parent: privateEndpoints[i]
  name: 'default'
  properties: { privateDnsZoneConfigs: [ { name: replace(e.zone, '.', '-'), properties: { privateDnsZoneId: resourceId('Microsoft.Network/privateDnsZones', e.zone) } } ] }
  dependsOn: [ zones ]
}]

output appSubnetId string = '${vnet.id}/subnets/snet-app'
output apimSubnetId string = '${vnet.id}/subnets/snet-apim'
output vnetId string = vnet.id
