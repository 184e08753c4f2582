// The workbook "Genesys Cloud concurrent licenses", attached to Application Insights.
// Its content is ../workbook.json; the placeholders __WARNING_PERCENT__,
// __CRITICAL_PERCENT__ and __BILLING_ANCHOR_DAY__ are replaced with
// the deployed settings so the lines and the billing period match the app, and
// __APPLICATION_INSIGHTS_ID__ with the resource the queries run against.

param location string
param tags object
param applicationInsightsId string
param warningPercent string
param criticalPercent string
param billingAnchorDay int

var displayName = 'Genesys Cloud concurrent licenses'
var template = loadTextContent('../workbook.json')
var withThresholds = replace(replace(template, '__WARNING_PERCENT__', warningPercent), '__CRITICAL_PERCENT__', criticalPercent)
var withPeriod = replace(withThresholds, '__BILLING_ANCHOR_DAY__', string(billingAnchorDay))
var content = replace(withPeriod, '__APPLICATION_INSIGHTS_ID__', applicationInsightsId)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, applicationInsightsId, 'license-monitor-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: content
    version: 'Notebook/1.0'
  }
}

output id string = workbook.id
output portalUrl string = '${environment().portal}/#view/AppInsightsExtension/UsageNotebookBlade/ComponentId/${uriComponent(applicationInsightsId)}/ConfigurationId/${uriComponent(workbook.id)}/Type/workbook/WorkbookTemplateName/${uriComponent(displayName)}'
