// patrol in Azure: everything one deployment needs, in one resource group.
//
//   azd up                                   (azure.yaml; see docs/deploy.md)
//   az deployment group create -g <rg> -f infra/main.bicep -p environmentName=<env> signInClientId=<app id>
//
// Names, settings, queues and the Event Grid function name are the contract in
// docs/architecture.md; internal/settings fails the tests when this file disagrees.

targetScope = 'resourceGroup'

metadata description = 'patrol: Azure DevOps PAT rotation on Azure Functions (Flex Consumption, Go custom handler).'

// ---------------------------------------------------------------- naming and placement

@description('Name of the environment (azd env name): tags every resource and makes the generated names unique per environment.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Short prefix for resource names: lower-case letters and digits only (it also goes into the storage account name).')
@minLength(2)
@maxLength(10)
param namePrefix string = 'patrol'

@description('Region for every resource. It must offer Flex Consumption: az functionapp list-flexconsumption-locations -o table.')
@minLength(1)
param location string = resourceGroup().location

@description('Extra tags for every resource.')
param tags object = {}

// ---------------------------------------------------------------- patrol settings

@description('PATROL_CLIENT_ID: application (client) id of the app registration (public client) used to sign service accounts in. See docs/deploy.md "Prerequisites".')
@minLength(36)
@maxLength(36)
param signInClientId string

@description('PATROL_TENANT_ID: tenant of the service accounts. Default: the tenant of this subscription.')
@minLength(36)
@maxLength(36)
param serviceAccountTenantId string = tenant().tenantId

@description('PATROL_DEFAULT_SERVICE_ACCOUNT: UPN used when a secret has no patrol-service-account tag. Empty: every managed secret must name its service account.')
@maxLength(256)
param defaultServiceAccount string = ''

@description('PATROL_GRACE: how long a replaced PAT stays valid before it is revoked (Go duration such as 36h, or whole days such as 2d). The default outlasts the 24 h refresh of App Service Key Vault references (docs/consumers.md).')
@minLength(2)
@maxLength(16)
param grace string = '72h'

@description('PATROL_RENEW_BEFORE: rotate this long before a PAT expires (capped at a third of the PAT\'s lifetime).')
@minLength(2)
@maxLength(16)
param renewBefore string = '30d'

@description('PATROL_LIFETIME: lifetime of a new PAT when the secret has no patrol-lifetime tag (organizations may shorten it).')
@minLength(2)
@maxLength(16)
param lifetime string = '90d'

// Operator bounds: what any secret's tags may ask (docs/settings.md "Operator bounds").
// Empty organizations or service accounts allow nothing: set both before adopting.

@description('PATROL_ALLOWED_ORGS: Azure DevOps organizations any PAT may be minted in, separated by commas or spaces. Empty: none.')
@maxLength(2048)
param allowedOrgs string = ''

@description('PATROL_ALLOWED_SERVICE_ACCOUNTS: service accounts that may mint and the organizations each may mint in, e.g. "svc-build@contoso.com=contoso,fabrikam; svc-x@contoso.com=contoso". Empty: none.')
@maxLength(4096)
param allowedServiceAccounts string = ''

@description('PATROL_ALLOWED_SCOPES: scopes a PAT may carry (exact, or a prefix ending in *). Token administration, security, identity, profile-write scopes and app_token are admitted only by name.')
@minLength(1)
@maxLength(2048)
param allowedScopes string = 'vso.*'

@description('PATROL_MAX_LIFETIME: longest PAT lifetime a secret may ask for; PATROL_LIFETIME must not exceed it.')
@minLength(2)
@maxLength(16)
param maxLifetime string = '90d'

@description('PATROL_MAX_GRACE: longest grace a secret may ask for; PATROL_GRACE must not exceed it.')
@minLength(2)
@maxLength(16)
param maxGrace string = '7d'

@description('PATROL_ALLOW_ROPC: allow password sign-in (ROPC) from patrol-password-<slug> secrets. Off unless the tenant allows ROPC for the service accounts (no MFA, no federation).')
param allowRopc bool = false

@description('PATROL_SWEEP_SCHEDULE: NCRONTAB schedule (6 fields, UTC on Flex) of the Sweep timer.')
@minLength(11)
@maxLength(64)
param sweepSchedule string = '0 0 */6 * * *'

@description('PATROL_MANUAL_COOLDOWN: least time between two manual rotations of one secret (RotateNow answers 429 inside it); 0 turns it off.')
param manualCooldown string = '10m'

@description('PATROL_OFFBOARDING_UNMANAGED: what Offboarding does with a leaver\'s PATs no managed secret holds (docs/offboarding.md).')
@allowed([
  'report'
  'revoke-after-grace'
  'revoke-now'
])
param offboardingUnmanaged string = 'report'

@description('Application (client) id of an Entra app registration for App Service Authentication in front of the HTTP functions; RotateNow then records the caller\'s Entra identity. Empty: off.')
param httpAuthClientId string = ''

// ---------------------------------------------------------------- scale and tiers

@description('Memory per Flex Consumption instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app may scale out to. patrol needs few; the cap protects Azure DevOps and Key Vault rate limits.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Subnet resource id for Flex Consumption VNet integration (delegated to Microsoft.App/environments). Empty: none.')
param virtualNetworkSubnetId string = ''

@description('Service Bus tier (Basic lacks topics, sessions and duplicate detection).')
@allowed([
  'Standard'
  'Premium'
])
param serviceBusSku string = 'Standard'

@description('Duplicate detection window of pat-rotations and pat-revocations.')
@allowed([
  'PT10M'
  'PT1H'
  'P1D'
  'P7D'
])
param duplicateDetectionWindow string = 'P1D'

@description('Days a deleted secret stays recoverable in Key Vault (fixed once the vault exists).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

// ---------------------------------------------------------------- Event Grid

@description('Create the Key Vault event subscription to the KeyVaultEvents function. Leave false on the first deployment (the function does not exist yet); azd\'s postdeploy hook sets it.')
param subscribeKeyVaultEvents bool = false

@description('Event Grid delivery attempts before dead-lettering.')
@minValue(1)
@maxValue(30)
param eventGridMaxDeliveryAttempts int = 30

@description('Minutes Event Grid retries an event before dead-lettering it.')
@minValue(1)
@maxValue(1440)
param eventGridEventTimeToLiveInMinutes int = 1440

// ---------------------------------------------------------------- alerts (docs/deploy.md "Where to look")

@description('Create the alert rules: failed or needs-attention outcomes, messages in a Service Bus dead-letter queue, Key Vault events Event Grid dead-lettered or dropped.')
param createAlerts bool = true

@description('Resource id of an existing action group the alerts notify (your on-call rotation). Empty: alertEmailAddress decides.')
param alertActionGroupId string = ''

@description('E-mail address of a new action group the alerts notify, used when alertActionGroupId is empty. Both empty: the alerts fire without notifying anyone (they still show in Azure Monitor > Alerts).')
@maxLength(254)
param alertEmailAddress string = ''

// ---------------------------------------------------------------- people and systems

@description('Object id of the operator who signs service accounts in, adopts secrets and reads outcomes (azd passes your own). Empty: no operator roles.')
@maxLength(36)
param operatorPrincipalId string = ''

@description('Kind of principal operatorPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

@description('Object id of the HR system (managed identity or service principal) that sends offboarding messages. Empty: grant it later.')
@maxLength(36)
param offboardingSenderPrincipalId string = ''

@description('Kind of principal offboardingSenderPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param offboardingSenderPrincipalType string = 'ServicePrincipal'

@description('Create the pat-events subscription "operators" for reading outcomes.')
param createOperatorsSubscription bool = true

// ---------------------------------------------------------------- identity vault (refresh tokens kept apart)
// The service accounts' MSAL caches and passwords live in a second vault that only the
// app's identity and the operator can reach (modules/identityvault.bicep; docs/deploy.md
// "The identity vault"). The defaults keep `azd up` and `patrol login` from a laptop
// working on a Flex Consumption app without VNet integration; harden with these.

@description('Public network access of the identity vault. Disabled needs identityVaultPrivateEndpointSubnetId and VNet integration of the app (virtualNetworkSubnetId), and the operator on that network for patrol login.')
@allowed([
  'Enabled'
  'Disabled'
])
param identityVaultPublicNetworkAccess string = 'Enabled'

@description('Public IP ranges (CIDR) allowed into the identity vault, e.g. the operator\'s egress. Empty: any address, access by RBAC role only. Non-empty: the app must come in through VNet integration (virtualNetworkSubnetId with the Microsoft.KeyVault service endpoint) or the private endpoint.')
param identityVaultAllowedIpRanges array = []

@description('Subnet for a private endpoint to the identity vault. Empty: none.')
param identityVaultPrivateEndpointSubnetId string = ''

@description('Existing privatelink.vaultcore.azure.net zone for that endpoint. Empty: one is created in this resource group.')
param identityVaultPrivateDnsZoneId string = ''

var identityVaultName = take('kvid-${toLower(namePrefix)}-${toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))}', 24)

// ---------------------------------------------------------------- names

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var prefix = toLower(namePrefix)
var allTags = union(tags, {
  'azd-env-name': environmentName
  application: 'patrol'
})
var names = {
  identity: 'id-${prefix}-${token}'
  logAnalytics: 'log-${prefix}-${token}'
  appInsights: 'appi-${prefix}-${token}'
  storage: take('st${replace(prefix, '-', '')}${token}', 24)
  keyVault: take('kv-${prefix}-${token}', 24)
  serviceBus: 'sb-${prefix}-${token}'
  plan: 'plan-${prefix}-${token}'
  functionApp: 'func-${prefix}-${token}'
  systemTopic: 'evgt-${prefix}-kv-${token}'
}
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'eventgrid-deadletter'

// ---------------------------------------------------------------- resources

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: location
  tags: allTags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    location: location
    tags: allTags
    retentionInDays: logRetentionInDays
    publisherPrincipalId: identity.properties.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: allTags
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    appPrincipalId: identity.properties.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: allTags
    softDeleteRetentionInDays: softDeleteRetentionInDays
    appPrincipalId: identity.properties.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module identityVault 'modules/identityvault.bicep' = {
  name: 'identityvault'
  params: {
    name: identityVaultName
    location: location
    tags: allTags
    softDeleteRetentionInDays: softDeleteRetentionInDays
    appPrincipalId: identity.properties.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
    publicNetworkAccess: identityVaultPublicNetworkAccess
    allowedIpRanges: identityVaultAllowedIpRanges
    appSubnetId: virtualNetworkSubnetId
    privateEndpointSubnetId: identityVaultPrivateEndpointSubnetId
    privateDnsZoneId: identityVaultPrivateDnsZoneId
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    name: names.serviceBus
    location: location
    tags: allTags
    sku: serviceBusSku
    duplicateDetectionWindow: duplicateDetectionWindow
    appPrincipalId: identity.properties.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
    offboardingSenderPrincipalId: offboardingSenderPrincipalId
    offboardingSenderPrincipalType: offboardingSenderPrincipalType
    createOperatorsSubscription: createOperatorsSubscription
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: allTags
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    keyVaultUrl: keyVault.outputs.uri
    identityKeyVaultUrl: identityVault.outputs.uri
    tenantId: serviceAccountTenantId
    signInClientId: signInClientId
    defaultServiceAccount: defaultServiceAccount
    grace: grace
    renewBefore: renewBefore
    lifetime: lifetime
    allowedOrgs: allowedOrgs
    allowedServiceAccounts: allowedServiceAccounts
    allowedScopes: allowedScopes
    maxLifetime: maxLifetime
    maxGrace: maxGrace
    allowRopc: allowRopc
    sweepSchedule: sweepSchedule
    manualCooldown: manualCooldown
    offboardingUnmanaged: offboardingUnmanaged
    httpAuthClientId: httpAuthClientId
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    virtualNetworkSubnetId: virtualNetworkSubnetId
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  params: {
    systemTopicName: names.systemTopic
    keyVaultName: keyVault.outputs.name
    location: keyVault.outputs.location
    tags: allTags
    subscribe: subscribeKeyVaultEvents
    functionAppId: functionApp.outputs.id
    storageAccountName: storage.outputs.name
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    maxDeliveryAttempts: eventGridMaxDeliveryAttempts
    eventTimeToLiveInMinutes: eventGridEventTimeToLiveInMinutes
  }
}

module alerts 'modules/alerts.bicep' = if (createAlerts) {
  name: 'alerts'
  params: {
    location: location
    tags: allTags
    namePrefix: '${prefix}-${token}'
    appInsightsId: monitoring.outputs.appInsightsId
    serviceBusNamespaceId: serviceBus.outputs.id
    systemTopicId: eventGrid.outputs.systemTopicId
    actionGroupId: alertActionGroupId
    emailAddress: alertEmailAddress
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    tags: allTags
    displayName: 'patrol (${environmentName})'
    appInsightsId: monitoring.outputs.appInsightsId
  }
}

// ---------------------------------------------------------------- outputs (docs/deploy.md uses these)

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.properties.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.properties.principalId
// Named exactly like the settings, so `azd env get-values > .env` gives the patrol CLI
// what it needs (patrol --env-file .env ...).
output PATROL_KEYVAULT_URL string = keyVault.outputs.uri
output PATROL_IDENTITY_KEYVAULT_URL string = identityVault.outputs.uri
output IDENTITY_KEY_VAULT_NAME string = identityVault.outputs.name
output KEY_VAULT_ID string = keyVault.outputs.id
output PATROL_TENANT_ID string = serviceAccountTenantId
output PATROL_CLIENT_ID string = signInClientId
output ServiceBusConnection__fullyQualifiedNamespace string = serviceBus.outputs.fullyQualifiedNamespace
output KEY_VAULT_NAME string = keyVault.outputs.name
output SERVICE_BUS_NAMESPACE string = serviceBus.outputs.name
output SERVICE_BUS_FULLY_QUALIFIED_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output EVENT_GRID_DEAD_LETTER_CONTAINER string = storage.outputs.deadLetterContainerName
output EVENT_GRID_SYSTEM_TOPIC string = eventGrid.outputs.systemTopicName
output EVENT_GRID_SUBSCRIPTION string = eventGrid.outputs.subscriptionName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.workspaceCustomerId
output WORKBOOK_ID string = workbook.outputs.id
