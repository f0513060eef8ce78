// The patrol function app: a Linux custom handler (the Go binary `patrol`) on the Flex
// Consumption plan. One user-assigned managed identity is used for everything: host
// storage, the deployment package, Service Bus triggers and patrol's own sender, Key
// Vault, and Application Insights ingestion. No key or connection string is stored in
// app settings.
//
// Premium (Elastic, EP1) instead of Flex: see docs/deploy.md "Premium plan variant".

@description('Function app name: 2-60 letters, digits and dashes, globally unique (it becomes <name>.azurewebsites.net).')
@minLength(2)
@maxLength(60)
param name string

@description('Flex Consumption plan name.')
@minLength(1)
@maxLength(60)
param planName string

@description('Azure region (must offer Flex Consumption).')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Resource id of the user-assigned managed identity.')
@minLength(1)
param identityId string

@description('Client id of the user-assigned managed identity.')
@minLength(36)
@maxLength(36)
param identityClientId string

@description('Storage account for host state and the deployment package.')
@minLength(3)
@maxLength(24)
param storageAccountName string

@description('Blob endpoint of that storage account (https://<account>.blob.core.windows.net/).')
@minLength(1)
param storageBlobEndpoint string

@description('Container that holds the deployment package.')
@minLength(3)
@maxLength(63)
param deploymentContainerName string

@description('Application Insights connection string.')
@minLength(1)
param appInsightsConnectionString string

@description('Fully qualified Service Bus namespace (<name>.servicebus.windows.net).')
@minLength(1)
param serviceBusFullyQualifiedNamespace string

@description('Key Vault URL (https://<vault>.vault.azure.net/).')
@minLength(1)
param keyVaultUrl string

@description('PATROL_IDENTITY_KEYVAULT_URL: the identity vault (service accounts\' token caches and passwords).')
@minLength(1)
param identityKeyVaultUrl string

@description('PATROL_TENANT_ID: tenant of the service accounts.')
@minLength(36)
@maxLength(36)
param tenantId string

@description('PATROL_CLIENT_ID: application id of the public client used to sign service accounts in.')
@minLength(36)
@maxLength(36)
param signInClientId string

@description('PATROL_DEFAULT_SERVICE_ACCOUNT: UPN used when a secret has no patrol-service-account tag.')
@maxLength(256)
param defaultServiceAccount string

@description('PATROL_GRACE: how long a replaced PAT stays valid (Go duration or whole days).')
@minLength(2)
@maxLength(16)
param grace string

@description('PATROL_RENEW_BEFORE: renew window before a PAT expires.')
@minLength(2)
@maxLength(16)
param renewBefore string

@description('PATROL_LIFETIME: default PAT lifetime.')
@minLength(2)
@maxLength(16)
param lifetime string

@description('PATROL_ALLOWED_ORGS: bound: organizations any PAT may be minted in.')
@maxLength(2048)
param allowedOrgs string

@description('PATROL_ALLOWED_SERVICE_ACCOUNTS: bound: service accounts that may mint, and their organizations.')
@maxLength(4096)
param allowedServiceAccounts string

@description('PATROL_ALLOWED_SCOPES: bound: scopes a PAT may carry.')
@minLength(1)
@maxLength(2048)
param allowedScopes string

@description('PATROL_MAX_LIFETIME: bound: longest PAT lifetime a secret may ask for.')
@minLength(2)
@maxLength(16)
param maxLifetime string

@description('PATROL_MAX_GRACE: bound: longest grace a secret may ask for.')
@minLength(2)
@maxLength(16)
param maxGrace string

@description('PATROL_ALLOW_ROPC: allow password sign-in from patrol-password-<slug> secrets.')
param allowRopc bool

@description('PATROL_SWEEP_SCHEDULE: NCRONTAB (6 fields, UTC) of the Sweep timer.')
@minLength(11)
@maxLength(64)
param sweepSchedule string

@description('PATROL_MANUAL_COOLDOWN: least time between two manual rotations of one secret.')
param manualCooldown string

@description('PATROL_OFFBOARDING_UNMANAGED: what Offboarding does with a leaver\'s PATs no managed secret holds.')
@allowed([
  'report'
  'revoke-after-grace'
  'revoke-now'
])
param offboardingUnmanaged string

@description('Application (client) id of an Entra app registration for App Service Authentication in front of the HTTP functions. Empty: off (function keys only; RotateNow records the key name).')
param httpAuthClientId string = ''

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Most instances Flex Consumption may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Subnet resource id for VNet integration (subnet delegated to Microsoft.App/environments). Empty: no VNet integration.')
param virtualNetworkSubnetId string

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd finds the deployment target of service "patrol" (azure.yaml) by this tag.
  tags: union(tags, { 'azd-service-name': 'patrol' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      // Flex Consumption replaces the FUNCTIONS_WORKER_RUNTIME app setting with this
      // ("Flex Consumption plan deprecations" in the Functions app settings reference),
      // and ARM refuses that app setting on a Flex site with 400 BadRequest
      // (microsoft/vscode-azurefunctions#4142, #4761). FUNCTIONS_EXTENSION_VERSION is
      // "set by the backend": deprecated, not known to be refused.
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

// Every key below is checked by internal/settings against docs/architecture.md,
// internal/config and local.settings.json.example. Keep it one literal object.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // Host storage through the managed identity (no account key).
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    // Telemetry with Entra ingestion (the component has local auth disabled).
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // azidentity's ManagedIdentityCredential picks the user-assigned identity by this.
    AZURE_CLIENT_ID: identityClientId
    // The Service Bus triggers and patrol's own azservicebus sender share this
    // identity-based connection.
    ServiceBusConnection__fullyQualifiedNamespace: serviceBusFullyQualifiedNamespace
    ServiceBusConnection__credential: 'managedidentity'
    ServiceBusConnection__clientId: identityClientId
    PATROL_KEYVAULT_URL: keyVaultUrl
    PATROL_IDENTITY_KEYVAULT_URL: identityKeyVaultUrl
    PATROL_TENANT_ID: tenantId
    PATROL_CLIENT_ID: signInClientId
    PATROL_DEFAULT_SERVICE_ACCOUNT: defaultServiceAccount
    PATROL_GRACE: grace
    PATROL_RENEW_BEFORE: renewBefore
    PATROL_LIFETIME: lifetime
    PATROL_ALLOWED_ORGS: allowedOrgs
    PATROL_ALLOWED_SERVICE_ACCOUNTS: allowedServiceAccounts
    PATROL_ALLOWED_SCOPES: allowedScopes
    PATROL_MAX_LIFETIME: maxLifetime
    PATROL_MAX_GRACE: maxGrace
    PATROL_ALLOW_ROPC: allowRopc ? 'true' : 'false'
    PATROL_SWEEP_SCHEDULE: sweepSchedule
    PATROL_MANUAL_COOLDOWN: manualCooldown
    PATROL_OFFBOARDING_UNMANAGED: offboardingUnmanaged
  }
}

// App Service Authentication ("Easy Auth"). Requests with a valid Entra token for the
// registration get x-ms-client-principal-* headers (and any such header a caller sent
// is stripped), which RotateNow records as the caller (docs/security.md). Anonymous
// requests are still let through to the function keys, so Event Grid's webhook and the
// host's own endpoints keep working; require a token in front (API Management) if
// function keys alone must not suffice.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(httpAuthClientId)) {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: httpAuthClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${httpAuthClientId}'
            httpAuthClientId
          ]
        }
      }
    }
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
