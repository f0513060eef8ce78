// Service Bus: the command queues between patrol's functions and the outcome topic.
// Names are the contract in docs/architecture.md (internal/settings checks them against
// every function.json). Local (SAS) authentication is disabled: every sender and
// receiver uses Entra ID, and each role is scoped to the one entity it is needed on.

@description('Service Bus namespace name: 6-50 letters, digits and dashes, globally unique.')
@minLength(6)
@maxLength(50)
param name string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Service Bus tier. Basic has no topics, sessions or duplicate detection, so it is not offered.')
@allowed([
  'Standard'
  'Premium'
])
param sku string

@description('How long Service Bus remembers a MessageId to drop duplicates (ISO 8601). patrol uses the operation id as MessageId, so this is the window in which a retried command is a no-op.')
@allowed([
  'PT10M'
  'PT1H'
  'P1D'
  'P7D'
])
param duplicateDetectionWindow string

@description('Principal (object) id of the function app\'s managed identity.')
@minLength(36)
@maxLength(36)
param appPrincipalId string

@description('Object id of the operator (person, group or pipeline). Empty: no operator roles.')
@maxLength(36)
param operatorPrincipalId string

@description('Kind of principal operatorPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string

@description('Object id of the HR system that publishes offboarding messages. Empty: grant it later.')
@maxLength(36)
param offboardingSenderPrincipalId string

@description('Kind of principal offboardingSenderPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param offboardingSenderPrincipalType string

@description('Create the pat-events subscription "operators" so outcomes can be read without extra setup.')
param createOperatorsSubscription bool

var serviceBusDataSenderRoleId = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var serviceBusDataReceiverRoleId = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    tier: sku
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

// HR publishes one message per departing person. The Offboarding function fans it out
// into one rotation command per affected secret; the host renews the lock meanwhile.
resource hrOffboarding 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: 'hr-offboarding'
  properties: {
    requiresSession: false
    requiresDuplicateDetection: false
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
  }
}

// Rotation commands. Sessions (session id = secret name) serialise rotations of one
// secret; duplicate detection (MessageId = operation id) makes a re-sent command a no-op.
// The long lock covers one rotation: Entra token, PAT create, verify, Key Vault write.
resource patRotations 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: 'pat-rotations'
  properties: {
    requiresSession: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    lockDuration: 'PT5M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
  }
}

// Scheduled revocations of replaced PATs after their grace period.
resource patRevocations 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: 'pat-revocations'
  properties: {
    requiresSession: false
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
  }
}

// The outcome that ends each rotation operation, once more, for the HTTP functions: on
// Flex Consumption they run on other instances than Rotate, so RotateNow's ?wait= and
// SecretStatus's ?operation= read the outcome here (session id = operation id; peeked,
// never consumed). Copies of pat-events outcomes: they expire after a day unrecorded.
resource patReplies 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: 'pat-replies'
  properties: {
    requiresSession: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    defaultMessageTimeToLive: 'P1D'
    deadLetteringOnMessageExpiration: false
  }
}

// Outcomes (rotated, skipped, failed, needs-attention) for whoever wants to be told.
// Undrained subscriptions do not grow forever: outcomes expire after 14 days.
resource patEvents 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' = {
  parent: namespace
  name: 'pat-events'
  properties: {
    requiresDuplicateDetection: false
    defaultMessageTimeToLive: 'P14D'
  }
}

resource operatorsSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2024-01-01' = if (createOperatorsSubscription) {
  parent: patEvents
  name: 'operators'
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: false
    defaultMessageTimeToLive: 'P14D'
  }
}

// --- the function app: receive from each queue it is triggered by ---

resource appReceivesOffboarding 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hrOffboarding.id, appPrincipalId, serviceBusDataReceiverRoleId)
  scope: hrOffboarding
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiverRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appReceivesRotations 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(patRotations.id, appPrincipalId, serviceBusDataReceiverRoleId)
  scope: patRotations
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiverRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appReceivesRevocations 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(patRevocations.id, appPrincipalId, serviceBusDataReceiverRoleId)
  scope: patRevocations
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiverRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The HTTP functions peek operation outcomes (a session receiver needs Listen).
resource appReceivesReplies 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(patReplies.id, appPrincipalId, serviceBusDataReceiverRoleId)
  scope: patReplies
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiverRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// --- the function app: send commands (incl. scheduled wake-ups) and outcomes ---

resource appSendsReplies 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(patReplies.id, appPrincipalId, serviceBusDataSenderRoleId)
  scope: patReplies
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appSendsRotations 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(patRotations.id, appPrincipalId, serviceBusDataSenderRoleId)
  scope: patRotations
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appSendsRevocations 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(patRevocations.id, appPrincipalId, serviceBusDataSenderRoleId)
  scope: patRevocations
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appSendsEvents 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(patEvents.id, appPrincipalId, serviceBusDataSenderRoleId)
  scope: patEvents
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// --- the operator: send a test offboarding message / a rotation from the CLI, finish a
// rotation run by the CLI (outcome, scheduled revocation), read outcomes ---

resource operatorSendsOffboarding 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(hrOffboarding.id, operatorPrincipalId, serviceBusDataSenderRoleId)
  scope: hrOffboarding
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorSendsRotations 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(patRotations.id, operatorPrincipalId, serviceBusDataSenderRoleId)
  scope: patRotations
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// patrol adopt and patrol rotate run the rotation protocol in the operator's process, so
// its last steps are the operator's too: publish the outcome on pat-events and schedule
// the replaced PAT's revocation on pat-revocations. Without these two the new PAT is
// stored and the command then fails, and nothing retries a CLI run. internal/settings
// holds these assignments in agreement with the local operator's rights
// (internal/local/stack OperatorRights), which the Service Bus emulator enforces.
resource operatorSendsRevocations 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(patRevocations.id, operatorPrincipalId, serviceBusDataSenderRoleId)
  scope: patRevocations
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorSendsEvents 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(patEvents.id, operatorPrincipalId, serviceBusDataSenderRoleId)
  scope: patEvents
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorReceivesEvents 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(patEvents.id, operatorPrincipalId, serviceBusDataReceiverRoleId)
  scope: patEvents
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiverRoleId)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// --- HR: publish offboarding messages, nothing else ---

resource hrSendsOffboarding 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(offboardingSenderPrincipalId)) {
  name: guid(hrOffboarding.id, offboardingSenderPrincipalId, serviceBusDataSenderRoleId)
  scope: hrOffboarding
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
    principalId: offboardingSenderPrincipalId
    principalType: offboardingSenderPrincipalType
  }
}

output name string = namespace.name
output id string = namespace.id
// e.g. sb-patrol-abc.servicebus.windows.net, derived from the endpoint so sovereign
// clouds get their own suffix.
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
