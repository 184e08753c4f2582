// Concurrent License Monitor for Genesys Cloud: everything `azd up` creates.
// One resource group with a Flex Consumption Function App (Python 3.13), its user-assigned
// managed identity and roles, storage without shared keys, Key Vault for the secrets,
// Log Analytics + Application Insights (Entra ID only), the workbook and the alert rules.
// Each setting parameter below is the app setting of the same name in the README "Settings";
// the bounds of an integer setting are the app's own (license_monitor/settings.py,
// INTEGER_RANGES; tests/unit/test_infra_settings.py compares them). See docs/deploy.md.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds the resource names.')
param environmentName string

// The regions with Flex Consumption, as in Microsoft's Flex Consumption azd template
// (Azure-Samples/functions-quickstart-python-http-azd, infra/main.bicep) without its canary
// region; `az functionapp list-flexconsumption-locations` lists the current ones.
@minLength(1)
@description('Azure region with Flex Consumption (az functionapp list-flexconsumption-locations).')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

// Genesys Cloud and the purchased capacity (required).

@description('GENESYS_CLIENT_ID: OAuth client id (Client Credentials grant).')
param genesysClientId string

@secure()
@description('GENESYS_CLIENT_SECRET: OAuth client secret (stored in Key Vault).')
param genesysClientSecret string

@description('GENESYS_REGION: region domain, e.g. mypurecloud.com or mypurecloud.de.')
param genesysRegion string = 'mypurecloud.com'

@minValue(1)
@maxValue(1000000)
@description('LICENSE_CAPACITY: concurrent licenses purchased.')
param licenseCapacity int

@description('MONITOR_SCHEDULE: NCRONTAB with seconds, UTC.')
param monitorSchedule string = '0 */5 * * * *'

@description('E-mail address the Azure Monitor alert rules (watchdog, utilization) notify.')
param alertEmail string

// Measurement and alert policy (optional; the app's defaults).

@description('WARNING_PERCENT (a number as text, e.g. 90 or 92.5).')
param warningPercent string = '90'

@description('CRITICAL_PERCENT (a number as text).')
param criticalPercent string = '95'

@description('CLEAR_MARGIN_PERCENT (a number as text).')
param clearMarginPercent string = '5'

@minValue(1)
@maxValue(1440)
@description('WINDOW_MINUTES: measurement window.')
param windowMinutes int = 15

@description('AGENT_RULE: queue, role:<name>[,...] or group:<name>[,...].')
param agentRule string = 'queue'

@description('CONCURRENT_LICENSE_PATTERN: regular expression of concurrent-billed license ids; empty = the app default.')
param concurrentLicensePattern string = ''

@allowed([
  'licenses'
  'all_users'
])
@description('CONCURRENT_POOL: count concurrent-tier license holders (licenses) or every active user (all_users).')
param concurrentPool string = 'licenses'

@minValue(10)
@maxValue(600)
@description('CHECK_TIMEOUT_SECONDS: deadline of one check.')
param checkTimeoutSeconds int = 120

@minValue(0)
@maxValue(1440)
@description('ROSTER_TTL_MINUTES.')
param rosterTtlMinutes int = 60

@minValue(10)
@maxValue(10000)
@description('REQUEST_BUDGET_PER_MINUTE: client-side cap on Genesys requests.')
param requestBudgetPerMinute int = 300

@description('STATE_TABLE: table name in the app storage account.')
param stateTable string = 'licensemonitor'

@minValue(0)
@maxValue(200)
@description('MANUAL_CHECK_WAIT_SECONDS (Azure ends an HTTP request at 230 s).')
param manualCheckWaitSeconds int = 30

@minValue(1)
@maxValue(31)
@description('BILLING_ANCHOR_DAY: day of month the billing period starts.')
param billingAnchorDay int = 1

@minValue(1)
@maxValue(100)
@description('FAILURE_ALERT_AFTER: failed checks in a row before monitor_failing.')
param failureAlertAfter int = 3

@minValue(0)
@maxValue(10080)
@description('REMIND_EVERY_MINUTES: reminder interval while breached (0 = off).')
param remindEveryMinutes int = 0

@description('QUIET_HOURS, e.g. "Sat-Sun 00:00-24:00; Mon-Fri 22:00-06:00"; empty = none.')
param quietHours string = ''

@description('QUIET_HOURS_TIMEZONE: IANA time zone.')
param quietHoursTimezone string = 'UTC'

@minValue(1)
@maxValue(3650)
@description('RETENTION_DAYS: usage rows.')
param retentionDays int = 90

@minValue(1)
@maxValue(365)
@description('HISTORY_RETENTION_DAYS: finished orchestration history.')
param historyRetentionDays int = 7

@description('ORG_NAME: label shown in every alert.')
param orgName string = ''

@description('ALERT_LINK_URL: a page alert recipients can open (never a URL with a function key).')
param alertLinkUrl string = ''

// Alert channels: a channel is on when its settings are given. Secrets go to Key Vault.

@secure()
@description('ALERT_WEBHOOK_URL (secret).')
param alertWebhookUrl string = ''

@secure()
@description('ALERT_WEBHOOK_SECRET (secret).')
param alertWebhookSecret string = ''

@secure()
@description('TEAMS_WEBHOOK_URL (secret).')
param teamsWebhookUrl string = ''

@secure()
@description('SLACK_WEBHOOK_URL (secret).')
param slackWebhookUrl string = ''

@secure()
@description('PAGERDUTY_ROUTING_KEY (secret).')
param pagerdutyRoutingKey string = ''

@description('PAGERDUTY_EVENTS_URL.')
param pagerdutyEventsUrl string = 'https://events.pagerduty.com/v2/enqueue'

@description('ALERT_EMAIL_TO: comma-separated recipients of the e-mail channel (Microsoft Graph).')
param alertEmailTo string = ''

@description('ALERT_EMAIL_FROM: the sending mailbox.')
param alertEmailFrom string = ''

@description('GRAPH_TENANT_ID.')
param graphTenantId string = ''

@description('GRAPH_CLIENT_ID.')
param graphClientId string = ''

@secure()
@description('GRAPH_CLIENT_SECRET (secret).')
param graphClientSecret string = ''

// Azure Monitor.

@description('Create the Azure Monitor rule on license.utilization_percent as well as the watchdog.')
param utilizationAlertEnabled bool = false

@minValue(1)
@maxValue(100)
@description('Utilization (percent) at which that rule fires.')
param utilizationAlertPercent int = 95

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption instance memory (MB).')
param instanceMemoryMB int = 2048

// Microsoft's guidance for Durable Functions on Flex Consumption: one always-ready instance
// for the `durable` group. It costs a baseline around the clock (docs/deploy.md "Cost"); 0
// saves it, and then the orchestration waits for a cold start (the manual check more often
// answers 202 before its result).
@allowed([
  0
  1
])
@description('Always-ready instances for the durable group (orchestrator and activities).')
param durableAlwaysReadyInstances int = 1

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  app: 'concurrent-license-monitor'
}
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'

// The monitor's own settings, as plain values: empty means "the app's default". The
// secrets are not here: function.bicep sets them as Key Vault references.
var monitorSettings = {
  GENESYS_CLIENT_ID: genesysClientId
  GENESYS_REGION: genesysRegion
  LICENSE_CAPACITY: string(licenseCapacity)
  MONITOR_SCHEDULE: monitorSchedule
  WARNING_PERCENT: warningPercent
  CRITICAL_PERCENT: criticalPercent
  CLEAR_MARGIN_PERCENT: clearMarginPercent
  WINDOW_MINUTES: string(windowMinutes)
  AGENT_RULE: agentRule
  CONCURRENT_LICENSE_PATTERN: concurrentLicensePattern
  CONCURRENT_POOL: concurrentPool
  CHECK_TIMEOUT_SECONDS: string(checkTimeoutSeconds)
  ROSTER_TTL_MINUTES: string(rosterTtlMinutes)
  REQUEST_BUDGET_PER_MINUTE: string(requestBudgetPerMinute)
  STATE_TABLE: stateTable
  MANUAL_CHECK_WAIT_SECONDS: string(manualCheckWaitSeconds)
  BILLING_ANCHOR_DAY: string(billingAnchorDay)
  FAILURE_ALERT_AFTER: string(failureAlertAfter)
  REMIND_EVERY_MINUTES: string(remindEveryMinutes)
  QUIET_HOURS: quietHours
  QUIET_HOURS_TIMEZONE: quietHoursTimezone
  RETENTION_DAYS: string(retentionDays)
  HISTORY_RETENTION_DAYS: string(historyRetentionDays)
  ORG_NAME: orgName
  ALERT_LINK_URL: alertLinkUrl
  PAGERDUTY_EVENTS_URL: pagerdutyEventsUrl
  ALERT_EMAIL_TO: alertEmailTo
  ALERT_EMAIL_FROM: alertEmailFrom
  GRAPH_TENANT_ID: graphTenantId
  GRAPH_CLIENT_ID: graphClientId
}

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    storageAccountName: 'st${resourceToken}'
    deploymentContainerName: deploymentContainerName
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    keyVaultName: 'kv-${resourceToken}'
    genesysClientSecret: genesysClientSecret
    alertWebhookUrl: alertWebhookUrl
    alertWebhookSecret: alertWebhookSecret
    teamsWebhookUrl: teamsWebhookUrl
    slackWebhookUrl: slackWebhookUrl
    pagerdutyRoutingKey: pagerdutyRoutingKey
    graphClientSecret: graphClientSecret
  }
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    location: location
    tags: tags
    identityName: 'id-${resourceToken}'
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    location: location
    tags: tags
    planName: 'plan-${resourceToken}'
    functionAppName: functionAppName
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultUri: keyVault.outputs.vaultUri
    instanceMemoryMB: instanceMemoryMB
    durableAlwaysReadyInstances: durableAlwaysReadyInstances
    monitorSettings: monitorSettings
    secretsPresent: {
      alertWebhookUrl: !empty(alertWebhookUrl)
      alertWebhookSecret: !empty(alertWebhookSecret)
      teamsWebhookUrl: !empty(teamsWebhookUrl)
      slackWebhookUrl: !empty(slackWebhookUrl)
      pagerdutyRoutingKey: !empty(pagerdutyRoutingKey)
      graphClientSecret: !empty(graphClientSecret)
    }
  }
}

module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    warningPercent: warningPercent
    criticalPercent: criticalPercent
    billingAnchorDay: billingAnchorDay
  }
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    namePrefix: 'license-monitor-${resourceToken}'
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    alertEmail: alertEmail
    utilizationAlertEnabled: utilizationAlertEnabled
    utilizationAlertPercent: utilizationAlertPercent
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
@description('The manual check: POST with a function key (?code=<key>); add &dryRun=true to measure without notifying.')
output MANUAL_CHECK_URL string = 'https://${functionApp.outputs.defaultHostName}/api/license-check'
@description('The workbook in the Azure portal.')
output WORKBOOK_URL string = workbook.outputs.portalUrl
