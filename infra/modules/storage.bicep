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

@description('Object id of the operator (person, group or pipeline) who reads dead-lettered events. Empty: no operator role.')
@maxLength(36)
param operatorPrincipalId string

@description('Kind of principal operatorPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string

// The roles Microsoft's Flex Consumption samples grant the app's identity on its host
// storage (Azure-Samples/azure-functions-flex-consumption-samples IaC/bicep/rbac.bicep):
// - Storage Blob Data Owner: the host creates its own containers (azure-webjobs-hosts,
//   azure-webjobs-secrets), takes blob leases for timer singletons, and Flex Consumption
//   reads the deployment package with the same identity;
// - Storage Queue Data Contributor and Storage Table Data Contributor: no patrol function
//   uses storage queues or tables, but the host itself writes its diagnostic events to
//   tables (AzureFunctionsDiagnosticEvents<yyyyMM>), and a missing role there fails
//   quietly at run time rather than at deployment.
// All three are scoped to this one account, which holds only the host's state, patrol's
// package and Event Grid's dead letters.
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
// The operator reads (only) the events Event Grid dead-lettered: docs/deploy.md "Where to look".
var storageBlobDataReaderRoleId = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'

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

resource appQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, storageQueueDataContributorRoleId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributorRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, storageTableDataContributorRoleId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource operatorReadsDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(deadLetterContainer.id, operatorPrincipalId, storageBlobDataReaderRoleId)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReaderRoleId)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deploymentContainerName string = deploymentContainer.name
output deadLetterContainerName string = deadLetterContainer.name
