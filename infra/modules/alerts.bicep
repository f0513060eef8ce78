// The alerts an on-call person needs, each for something that waits for a human:
//
//   failed or needs-attention outcomes  log search alert on Application Insights over
//                                       patrol's own log lines (queries/outcomes.kql)
//   dead-lettered commands              metric alert: DeadletteredMessages > 0 on any
//                                       queue or topic of the namespace
//   undeliverable Key Vault events      metric alerts: DeadLetteredCount > 0 and
//                                       DroppedEventCount > 0 on the system topic
//
// docs/deploy.md "Where to look" says what each one means and the first command to run.
// Notifications go to an existing action group, or to a new one that e-mails one
// address; with neither, the alerts still fire and show in Azure Monitor > Alerts.

@description('Azure region of the log search alert (the metric alerts and the action group are global).')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Prefix of the alert names, e.g. patrol-abc123.')
@minLength(1)
@maxLength(40)
param namePrefix string

@description('Resource id of the Application Insights component patrol logs to.')
@minLength(1)
param appInsightsId string

@description('Resource id of the Service Bus namespace.')
@minLength(1)
param serviceBusNamespaceId string

@description('Resource id of the Event Grid system topic on the vault.')
@minLength(1)
param systemTopicId string

@description('Resource id of an existing action group to notify. Empty: use emailAddress.')
param actionGroupId string

@description('E-mail address for a new action group, used when actionGroupId is empty. Empty as well: no notifications.')
@maxLength(254)
param emailAddress string

var createActionGroup = empty(actionGroupId) && !empty(emailAddress)
var outcomesQuery = loadTextContent('queries/outcomes.kql')
var actionGroupName = 'ag-${namePrefix}'
// resourceId() rather than the conditional resource's .id: valid whether or not the
// group is created, and only used when it is.
var createdActionGroupIds = createActionGroup ? [resourceId('Microsoft.Insights/actionGroups', actionGroupName)] : []
var actionGroupIds = empty(actionGroupId) ? createdActionGroupIds : [actionGroupId]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (createActionGroup) {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    enabled: true
    groupShortName: 'patrol' // at most 12 characters; shown in SMS and e-mail subjects
    emailReceivers: [
      {
        name: 'patrol on-call'
        emailAddress: emailAddress
        useCommonAlertSchema: true
      }
    ]
  }
}

// Failed and needs-attention outcomes. One alert per secret and status (dimensions), so
// each secret is its own line in the notification. Stateful: it fires once and resolves
// after a window with no new failure of that secret. The window overlaps the frequency
// so a line that reaches Application Insights a few minutes late is still seen.
resource failedOutcomes 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-failed-outcomes'
  location: location
  tags: tags
  kind: 'LogAlert'
  dependsOn: [
    actionGroup
  ]
  properties: {
    displayName: 'patrol: a rotation failed or needs attention'
    description: 'patrol logged a failed or needs-attention outcome for a secret: the PAT was not rotated (or revoked) and a redelivery will not fix it. Nothing was lost: the previous PAT still works until its expiry. See docs/deploy.md "Where to look".'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    criteria: {
      allOf: [
        {
          query: '${outcomesQuery}| where status in ("failed", "needs-attention")\n'
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'secret'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'status'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

// Any message in a dead-letter queue: a command (or HR message) failed every delivery.
// DeadletteredMessages is a gauge per entity (EntityName), so the alert names the queue
// and stays fired until someone empties that dead-letter queue.
resource deadLetteredMessages 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'alert-${namePrefix}-servicebus-dead-letters'
  location: 'global'
  tags: tags
  dependsOn: [
    actionGroup
  ]
  properties: {
    description: 'A Service Bus queue or topic of patrol has messages in its dead-letter queue: a command failed all its deliveries. See docs/deploy.md "Where to look".'
    severity: 2
    enabled: true
    scopes: [
      serviceBusNamespaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'dead-lettered-messages'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'DeadletteredMessages'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
        }
      ]
    }
    autoMitigate: true
    actions: [for id in actionGroupIds: {
      actionGroupId: id
    }]
  }
}

// Key Vault events Event Grid gave up on (retries exhausted): written as blobs into the
// dead-letter container.
resource eventGridDeadLetters 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'alert-${namePrefix}-eventgrid-dead-letters'
  location: 'global'
  tags: tags
  dependsOn: [
    actionGroup
  ]
  properties: {
    description: 'Event Grid could not deliver a Key Vault event (SecretNearExpiry / SecretExpired) to the KeyVaultEvents function and dead-lettered it to the eventgrid-deadletter container. The Sweep timer still finds due secrets. See docs/deploy.md "Where to look".'
    severity: 2
    enabled: true
    scopes: [
      systemTopicId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'dead-lettered-events'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          metricName: 'DeadLetteredCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    autoMitigate: true
    actions: [for id in actionGroupIds: {
      actionGroupId: id
    }]
  }
}

// Events Event Grid dropped without dead-lettering them (e.g. it could not write to the
// dead-letter container): lost, apart from what the Sweep finds.
resource eventGridDropped 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'alert-${namePrefix}-eventgrid-dropped'
  location: 'global'
  tags: tags
  dependsOn: [
    actionGroup
  ]
  properties: {
    description: 'Event Grid dropped a Key Vault event for the KeyVaultEvents function without dead-lettering it. The Sweep timer still finds due secrets. See docs/deploy.md "Where to look".'
    severity: 1
    enabled: true
    scopes: [
      systemTopicId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'dropped-events'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          metricName: 'DroppedEventCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    autoMitigate: true
    actions: [for id in actionGroupIds: {
      actionGroupId: id
    }]
  }
}

output actionGroupId string = empty(actionGroupIds) ? '' : actionGroupIds[0]
output failedOutcomesAlertName string = failedOutcomes.name
