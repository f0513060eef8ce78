// The identity vault: the service accounts' MSAL token caches (patrol-msal-<slug>,
// refresh tokens redeemable anywhere with the public client id) and optional ROPC
// passwords (patrol-password-<slug>), kept apart from the secrets vault whose PATs
// pipelines read. Only the function app's identity and the operator who runs
// `patrol login` get a role here; no consumer ever does. RBAC mode, soft delete and
// purge protection as on the secrets vault. Network access: see docs/deploy.md
// "The identity vault" for the hardening steps and what each one needs.

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

@description('Object id of the operator who signs service accounts in (patrol login). Empty: no operator role.')
@maxLength(36)
param operatorPrincipalId string

@description('Kind of principal operatorPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string

@description('Public network access. Disabled: reachable only through the private endpoint (the function app then needs VNet integration).')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

@description('Public IP ranges (CIDR) allowed in, e.g. the operator\'s egress for patrol login. Empty: any address (access is still by RBAC role only).')
param allowedIpRanges array

@description('Subnet of the function app\'s VNet integration, admitted through a virtual network rule when the firewall denies by default (needs the Microsoft.KeyVault service endpoint on it). Empty: none.')
param appSubnetId string

@description('Subnet for a private endpoint to this vault. Empty: no private endpoint.')
param privateEndpointSubnetId string

@description('Existing private DNS zone privatelink.vaultcore.azure.net for the endpoint. Empty (with an endpoint): one is created here and linked to the endpoint subnet\'s VNet.')
param privateDnsZoneId string

// Key Vault Secrets Officer: read and write secrets — what the MSAL cache store and
// `patrol login` need. Nothing on keys or certificates.
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
var firewallOn = publicNetworkAccess == 'Disabled' || !empty(allowedIpRanges)
var withEndpoint = !empty(privateEndpointSubnetId)
// /subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>
var endpointVnetId = withEndpoint ? join(take(split(privateEndpointSubnetId, '/'), 9), '/') : ''

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
    enablePurgeProtection: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      // No "trusted Azure services" path: nothing but the app and the operator needs in.
      bypass: 'None'
      defaultAction: firewallOn ? 'Deny' : 'Allow'
      ipRules: [for r in allowedIpRanges: {
        value: r
      }]
      virtualNetworkRules: firewallOn && !empty(appSubnetId) ? [
        {
          id: appSubnetId
          ignoreMissingVnetServiceEndpoint: true
        }
      ] : []
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

resource endpoint 'Microsoft.Network/privateEndpoints@2023-11-01' = if (withEndpoint) {
  name: 'pe-${name}'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: privateEndpointSubnetId
    }
    privateLinkServiceConnections: [
      {
        name: 'vault'
        properties: {
          privateLinkServiceId: vault.id
          groupIds: [
            'vault'
          ]
        }
      }
    ]
  }
}

resource dnsZone 'Microsoft.Network/privateDnsZones@2020-06-01' = if (withEndpoint && empty(privateDnsZoneId)) {
  name: 'privatelink.vaultcore.azure.net'
  location: 'global'
  tags: tags
}

resource dnsLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = if (withEndpoint && empty(privateDnsZoneId)) {
  parent: dnsZone
  name: 'link-${name}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: endpointVnetId
    }
  }
}

resource dnsGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-11-01' = if (withEndpoint) {
  parent: endpoint
  name: 'vault'
  dependsOn: [
    dnsLink
  ]
  properties: {
    privateDnsZoneConfigs: [
      {
        name: 'vault'
        properties: {
          privateDnsZoneId: empty(privateDnsZoneId) ? resourceId('Microsoft.Network/privateDnsZones', 'privatelink.vaultcore.azure.net') : privateDnsZoneId
        }
      }
    ]
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
