// Event Grid system topic on the vault and the subscription that delivers
// SecretNearExpiry and SecretExpired (nothing else) to the KeyVaultEvents function.
//
// The subscription validates that the function exists when it is created, so it can only
// be deployed after the code: azd's postdeploy hook (azure.yaml) re-provisions with
// subscribeKeyVaultEvents=true; the manual path deploys twice (docs/deploy.md).
//
// Undeliverable events go to a blob container (dead-lettering), written with the system
// topic's own managed identity, which may write to that one container and nothing else.

@description('Name of the Event Grid system topic.')
@minLength(3)
@maxLength(128)
param systemTopicName string

@description('Name of the Key Vault whose events are delivered.')
@minLength(3)
@maxLength(24)
param keyVaultName string

@description('Region of the vault: a system topic lives where its source does.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Create the event subscription (the KeyVaultEvents function must already be deployed).')
param subscribe bool

@description('Resource id of the function app.')
@minLength(1)
param functionAppId string

@description('Storage account that holds the dead-letter container.')
@minLength(3)
@maxLength(24)
param storageAccountName string

@description('Blob container for undeliverable events.')
@minLength(3)
@maxLength(63)
param deadLetterContainerName string

@description('Delivery attempts before an event is dead-lettered.')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int

@description('Minutes Event Grid keeps retrying an event before dead-lettering it.')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int

// Storage Blob Data Contributor, scoped to the dead-letter container only.
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: systemTopicName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

resource topicWritesDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, systemTopic.id, storageBlobDataContributorRoleId)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource keyVaultEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = if (subscribe) {
  parent: systemTopic
  name: 'patrol-keyvault-events'
  dependsOn: [
    topicWritesDeadLetters
  ]
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/KeyVaultEvents'
        // One event per invocation: a failure then retries only that event.
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.SecretNearExpiry'
        'Microsoft.KeyVault.SecretExpired'
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output systemTopicName string = systemTopic.name
output systemTopicId string = systemTopic.id
output subscriptionName string = subscribe ? keyVaultEvents.name : 'none (deploy the code, then re-provision with subscribeKeyVaultEvents=true)'
