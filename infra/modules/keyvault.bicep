// The Key Vault that is patrol's inventory: every managed PAT is a secret here (the
// service accounts' MSAL token caches live in the identity vault, identityvault.bicep).
// RBAC mode (no access policies), soft delete and purge protection: a deleted PAT secret
// can always be recovered, and nobody (not even an owner) can purge it before the
// retention ends.

@description('Key Vault name: 3-24 letters, digits and dashes, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Days a deleted secret stays recoverable (7-90). Cannot be changed after the vault is created.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int

@description('Principal (object) id of the function app\'s managed identity.')
@minLength(36)
@maxLength(36)
param appPrincipalId string

@description('Object id of the operator (person, group or pipeline) who signs service accounts in and adopts secrets. Empty: no operator role.')
@maxLength(36)
param operatorPrincipalId string

@description('Kind of principal operatorPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string

// Key Vault Secrets Officer: read, write, and tag secrets and their versions — what the
// rotation protocol and the MSAL cache store need. Nothing on keys or certificates.
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // Once on, purge protection cannot be turned off; that is the point.
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource appSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource operatorSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

output name string = vault.name
output id string = vault.id
output location string = vault.location
output uri string = vault.properties.vaultUri
