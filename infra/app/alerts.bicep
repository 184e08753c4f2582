// Azure Monitor alert rules over the monitor's own metrics (README "Metrics"), with an
// action group that e-mails whoever runs the monitor. These alert on the monitor itself
// (the watchdog) and, optionally, on utilization as a second path beside the app's own
// channels.

param location string
param tags object
param namePrefix string
param applicationInsightsId string

@description('E-mail address the alert rules notify.')
param alertEmail string

@description('Also alert through Azure Monitor when utilization reaches utilizationAlertPercent.')
param utilizationAlertEnabled bool = false

@description('Utilization (percent of LICENSE_CAPACITY) that fires the utilization rule.')
@minValue(1)
@maxValue(100)
param utilizationAlertPercent int = 95

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-ag'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'licmonitor'
    enabled: true
    emailReceivers: [
      {
        name: 'monitor-owner'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Every check records license.check.failed: 0 when it succeeded, 1 when it failed.
// The query returns one row when no success was recorded in the window (summarize
// without "by" returns a row even on no input), so the rule fires both when checks fail
// and when none run at all (timer stopped, app down, settings broken).
resource watchdog 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-no-successful-check'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'License monitor: no successful check in 20 minutes'
    description: 'No license.check.failed point with value 0 in the last 20 minutes: the monitor is failing or not running. See the workbook and the Function App logs.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT20M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "license.check.failed" | summarize successes = countif(valueMin == 0) | where successes == 0'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource utilization 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = if (utilizationAlertEnabled) {
  name: '${namePrefix}-utilization'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'License monitor: utilization at or above ${utilizationAlertPercent}%'
    description: 'license.utilization_percent (the window peak against LICENSE_CAPACITY) reached the threshold.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "license.utilization_percent" | project timestamp, utilization = valueMax, org = tostring(customDimensions.org)'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'utilization'
          operator: 'GreaterThanOrEqual'
          threshold: utilizationAlertPercent
          dimensions: [
            {
              name: 'org'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

output actionGroupId string = actionGroup.id
