// The Function App on a Flex Consumption plan (Python 3.13) and all of its app settings.
// Secrets are Key Vault references resolved by the platform with the user-assigned
// identity (keyVaultReferenceIdentity); a secret that was not given is not set at all.
// Flex Consumption takes the runtime from functionAppConfig: FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION and WEBSITE_RUN_FROM_PACKAGE must not be set here.

param location string
param tags object
param planName string
param functionAppName string
param identityId string
param identityClientId string
param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param deploymentContainerName string
param applicationInsightsConnectionString string
param keyVaultUri string

@description('Memory of each instance, in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('The lowest maximum Flex Consumption accepts; one check runs at a time.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Always-ready instances for the durable group (Microsoft\'s Durable Functions guidance for Flex Consumption).')
@allowed([0, 1])
param durableAlwaysReadyInstances int = 1

@description('Settings the monitor reads (names as in the README "Settings"), all plain values.')
param monitorSettings object

@description('Which optional secrets were given, so their Key Vault references are set.')
param secretsPresent object

var secretsBaseUri = '${keyVaultUri}secrets/'

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  //checkov:skip=CKV_AZURE_225: A monitor that checks every few minutes tolerates a zone outage: the next check and the watchdog alert cover it; zone redundancy is left off to keep the plan available in every Flex Consumption region.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2023-12-01' = {
  //checkov:skip=CKV_AZURE_222: The manual check (POST /api/license-check) is called from outside Azure and requires a function key; closing public access needs a virtual network and private endpoint this deployment does not create.
  //checkov:skip=CKV_AZURE_17: Callers authenticate with a function key; Flex Consumption does not support the platform certificate features, and a client certificate would lock out the manual check.
  //checkov:skip=CKV_AZURE_212: The check counts App Service instances (siteConfig.numberOfWorkers); Flex Consumption scales by functionAppConfig instead, where one always-ready instance keeps the durable group warm (durableAlwaysReadyInstances) and the plan adds instances on demand.
  //checkov:skip=CKV_AZURE_78: Flex Consumption has no FTP deployment: the package is deployed only to the blob container below, and `ftpsState` is on Microsoft's list of Flex Consumption deprecations (docs/deploy.md).
  //checkov:skip=CKV_AZURE_18: HTTP/2 is a siteConfig option that Microsoft's Flex Consumption templates do not set; the app serves one POST endpoint over HTTPS (httpsOnly, TLS 1.2).
  //checkov:skip=CKV_AZURE_67: Same reason as CKV_AZURE_18: Microsoft's Flex Consumption templates leave http20Enabled unset.
  //checkov:skip=CKV_AZURE_213: The app has no HTTP health endpoint to probe; the watchdog alert rule (no successful check in 20 minutes) watches what matters.
  name: functionAppName
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
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
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    // Flex Consumption deprecates ftpsState, alwaysOn and the other App Service options
    // (tests/infra/rules.py); Microsoft's Flex templates set neither ftpsState nor HTTP/2.
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
        alwaysReady: durableAlwaysReadyInstances == 0 ? [] : [
          {
            name: 'durable'
            instanceCount: durableAlwaysReadyInstances
          }
        ]
      }
      // The newest Python that Flex Consumption supports as GA (docs/deploy.md "Python").
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

// Azure: host storage and the Durable task hub by identity (no connection string),
// telemetry by identity (local authentication is off), and the identity the code's
// DefaultAzureCredential picks (AZURE_CLIENT_ID).
var azureSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
  AzureWebJobsStorage__tableServiceUri: storageTableEndpoint
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  AZURE_CLIENT_ID: identityClientId
  STATE_ACCOUNT_URL: storageTableEndpoint
}

var requiredSecretSettings = {
  GENESYS_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${secretsBaseUri}genesys-client-secret/)'
}

var alertWebhookUrlSetting = secretsPresent.alertWebhookUrl ? {
  ALERT_WEBHOOK_URL: '@Microsoft.KeyVault(SecretUri=${secretsBaseUri}alert-webhook-url/)'
} : {}
var alertWebhookSecretSetting = secretsPresent.alertWebhookSecret ? {
  ALERT_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${secretsBaseUri}alert-webhook-secret/)'
} : {}
var teamsWebhookUrlSetting = secretsPresent.teamsWebhookUrl ? {
  TEAMS_WEBHOOK_URL: '@Microsoft.KeyVault(SecretUri=${secretsBaseUri}teams-webhook-url/)'
} : {}
var slackWebhookUrlSetting = secretsPresent.slackWebhookUrl ? {
  SLACK_WEBHOOK_URL: '@Microsoft.KeyVault(SecretUri=${secretsBaseUri}slack-webhook-url/)'
} : {}
var pagerdutyRoutingKeySetting = secretsPresent.pagerdutyRoutingKey ? {
  PAGERDUTY_ROUTING_KEY: '@Microsoft.KeyVault(SecretUri=${secretsBaseUri}pagerduty-routing-key/)'
} : {}
var graphClientSecretSetting = secretsPresent.graphClientSecret ? {
  GRAPH_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${secretsBaseUri}graph-client-secret/)'
} : {}

// The checks below read web-config properties (logging, auth, .NET version, Azure Files);
// this resource is the 'appsettings' config (name/value pairs), which has none of them.
resource appSettings 'Microsoft.Web/sites/config@2023-12-01' = {
  //checkov:skip=CKV_AZURE_13: Not applicable: 'appsettings' config, not the site's authentication settings; the HTTP function requires a function key.
  //checkov:skip=CKV_AZURE_63: Not applicable: 'appsettings' config; the app logs to Application Insights.
  //checkov:skip=CKV_AZURE_65: Not applicable: 'appsettings' config; the app logs to Application Insights.
  //checkov:skip=CKV_AZURE_66: Not applicable: 'appsettings' config; the app logs to Application Insights.
  //checkov:skip=CKV_AZURE_80: Not applicable: 'appsettings' config, and the app is Python, not .NET.
  //checkov:skip=CKV_AZURE_88: Not applicable: 'appsettings' config; Flex Consumption runs from the deployment package, not Azure Files.
  //checkov:skip=CKV_AZURE_222: Same as on the site: the manual check is called from outside Azure with a function key.
  parent: site
  name: 'appsettings'
  properties: union(
    monitorSettings,
    azureSettings,
    requiredSecretSettings,
    alertWebhookUrlSetting,
    alertWebhookSecretSetting,
    teamsWebhookUrlSetting,
    slackWebhookUrlSetting,
    pagerdutyRoutingKeySetting,
    graphClientSecretSetting
  )
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
