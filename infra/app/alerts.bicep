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
// The rule fires when the monitor has reported for more than 20 minutes and none of its checks
// in the last 20 minutes succeeded: checks fail, or none run at all (timer stopped, app down,
// settings broken). `summarize` without `by` returns one row even on no input, so "no check at
// all" is seen too; `reported > 0` keeps a fresh deployment, which has not reported yet, from
// raising a false alarm 20 minutes after `azd provision`. The query looks back over the
// longest range a log search alert allows (two days): a monitor silent for longer drops out
// of it and the alert resolves (the workbook still shows the gap).
resource watchdog 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-no-successful-check'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'License monitor: no successful check in 20 minutes'
    description: 'No license.check.failed point with value 0 in the last 20 minutes although the monitor has reported before: the monitor is failing or not running. See the workbook and the Function App logs.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    // The aggregation granularity: one of the sizes the service accepts (tests/infra/rules.py);
    // the 20 minutes are in the query.
    windowSize: 'PT15M'
    overrideQueryTimeRange: 'P2D'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "license.check.failed" | summarize reported = count(), first_reported = min(timestamp), successes = countif(valueMin == 0 and timestamp > ago(20m)) | where reported > 0 and first_reported < ago(20m) and successes == 0'
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
