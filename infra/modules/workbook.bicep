// An Azure Monitor workbook for whoever looks after patrol: each managed secret's days to
// expiry, outcomes over time, and the latest failures with their reasons. It reads
// patrol's own log lines in Application Insights (queries/*.kql say which ones), so it
// shows what patrol did, not what the vault holds: `patrol plan` reads the vault.
//
// Azure portal: Application Insights > Workbooks (or Monitor > Workbooks) > displayName.

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name shown in the workbook gallery.')
@minLength(1)
@maxLength(128)
param displayName string

@description('Resource id of the Application Insights component patrol logs to.')
@minLength(1)
param appInsightsId string

var expiryQuery = loadTextContent('queries/expiry.kql')
var outcomesQuery = loadTextContent('queries/outcomes.kql')
var logsItem = {
  version: 'KqlItem/1.0'
  size: 0
  queryType: 0 // Logs
  resourceType: 'microsoft.insights/components'
}

var content = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1 // markdown
      name: 'intro'
      content: {
        json: '## patrol\nWhat patrol did, from its log lines in this Application Insights component. The alerts and the first command for each are in docs/deploy.md, "Where to look".\n\n*Days to expiry* is each secret\'s PAT as patrol last logged it (the Sweep logs every managed secret each run). patrol renews a PAT `PATROL_RENEW_BEFORE` (default 30 days) before it expires, so a secret at 30 days or fewer was due and not rotated yet: look at its failures below.'
      }
    }
    {
      type: 9 // parameters
      name: 'parameters'
      content: {
        version: 'KqlParameterItem/1.0'
        style: 'pills'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        parameters: [
          {
            id: '6c0a3f8e-2b1d-4e57-9a40-7d5c1e9b2f31'
            version: 'KqlParameterItem/1.0'
            name: 'TimeRange'
            label: 'Time range'
            type: 4 // time range picker
            isRequired: true
            value: {
              durationMs: 604800000 // 7 days
            }
            typeSettings: {
              allowCustom: true
              selectableValues: [
                {
                  durationMs: 86400000
                }
                {
                  durationMs: 604800000
                }
                {
                  durationMs: 2592000000
                }
              ]
            }
          }
        ]
      }
    }
    {
      type: 3 // query
      name: 'days-to-expiry'
      content: union(logsItem, {
        title: 'Secrets by days to expiry'
        query: expiryQuery
        // The newest record per secret within the log retention, whatever the picker says.
        timeContext: {
          durationMs: 2592000000 // 30 days
        }
        visualization: 'table'
        gridSettings: {
          formatters: [
            {
              columnMatch: 'daysToExpiry'
              formatter: 18 // thresholds
              formatOptions: {
                thresholdsOptions: 'colors'
                thresholdsGrid: [
                  {
                    operator: '<='
                    thresholdValue: '7'
                    representation: 'redBright'
                    text: '{0}{1}'
                  }
                  {
                    operator: '<='
                    thresholdValue: '30'
                    representation: 'orange'
                    text: '{0}{1}'
                  }
                  {
                    operator: 'Default'
                    representation: 'green'
                    text: '{0}{1}'
                  }
                ]
              }
            }
          ]
        }
      })
    }
    {
      type: 3
      name: 'outcomes-over-time'
      content: union(logsItem, {
        title: 'Outcomes over time'
        query: '${outcomesQuery}| summarize outcomes = count() by status, bin(timestamp, {TimeRange:grain})\n'
        timeContextFromParameter: 'TimeRange'
        visualization: 'timechart'
      })
    }
    {
      type: 3
      name: 'failures'
      content: union(logsItem, {
        title: 'Failures and secrets that need attention (newest first)'
        query: '${outcomesQuery}| where status in ("failed", "needs-attention", "retrying")\n| order by timestamp desc\n'
        timeContextFromParameter: 'TimeRange'
        visualization: 'table'
      })
    }
  ]
  fallbackResourceIds: [
    toLower(appInsightsId)
  ]
  '$schema': 'https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json'
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; this one is stable per component, so redeploying
  // updates the workbook instead of adding another.
  name: guid(appInsightsId, 'patrol-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: toLower(appInsightsId) // the Workbooks blade of the component matches it lower-cased
    serializedData: string(content)
  }
}

output id string = workbook.id
