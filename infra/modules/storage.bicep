// The function app's storage account: the host's own state (AzureWebJobsStorage: timer
// schedule monitors, leases, keys), the Flex Consumption deployment package container,
// and the container Event Grid dead-letters undeliverable Key Vault events into.
// Shared-key access is off: everything authenticates with Entra ID.

@description('Storage account name: 3-24 lower-case letters and digits, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Blob container that holds the deployment package (Flex Consumption reads the app from here).')
@minLength(3)
@maxLength(63)
param deploymentContainerName string

@description('Blob container Event Grid writes undeliverable Key Vault events into.')
@minLength(3)
@maxLength(63)
param deadLetterContainerName string

@description('Principal (object) id of the function app\'s managed identity.')
@minLength(36)
@maxLength(36)
param appPrincipalId string

// Storage Blob Data Owner is the role Microsoft documents for AzureWebJobsStorage with
// an identity: the host creates its own containers (azure-webjobs-hosts,
// azure-webjobs-secrets), takes blob leases for timer singletons, and Flex Consumption
// reads the deployment package with the same identity. Queue and table roles are not
// granted: no patrol function uses storage queues, tables or blob triggers.
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, storageBlobDataOwnerRoleId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deploymentContainerName string = deploymentContainer.name
output deadLetterContainerName string = deadLetterContainer.name
