// Log Analytics + workspace-based Application Insights. Local (instrumentation-key)
// authentication is disabled, so telemetry is only accepted from identities that hold
// Monitoring Metrics Publisher on the component: the function app's managed identity.

@description('Name of the Log Analytics workspace.')
@minLength(4)
@maxLength(63)
param logAnalyticsName string

@description('Name of the Application Insights component.')
@minLength(1)
@maxLength(260)
param appInsightsName string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Days Log Analytics keeps data.')
@minValue(30)
@maxValue(730)
param retentionInDays int

@description('Principal (object) id of the managed identity that sends telemetry.')
@minLength(36)
@maxLength(36)
param publisherPrincipalId string

// Monitoring Metrics Publisher: lets the identity ingest telemetry with Entra auth.
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Entra-only ingestion: the connection string alone is not enough to send data.
    DisableLocalAuth: true
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, publisherPrincipalId, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: publisherPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output appInsightsName string = appInsights.name
output appInsightsId string = appInsights.id
// The connection string carries the instrumentation key, which only identifies the
// component; with DisableLocalAuth it grants nothing on its own.
output connectionString string = appInsights.properties.ConnectionString
output workspaceId string = workspace.id
output workspaceCustomerId string = workspace.properties.customerId
