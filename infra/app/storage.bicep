// The app's storage account: the Functions host (AzureWebJobsStorage), the Durable task
// hub (queues, tables, blobs), the deployment package container and the monitor's own
// state table. Shared keys are disabled: everything goes through the managed identity.

param location string
param tags object
param storageAccountName string
param deploymentContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35: A Flex Consumption app without virtual network integration reaches its storage over the public endpoint; access needs an Entra ID role (shared keys and anonymous access are off).
  //checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: public network access stays on, data access is by Entra ID role only.
  //checkov:skip=CKV_AZURE_206: Locally redundant storage (three copies in one datacenter) keeps the cost lowest: the task hub is transient, and losing the state would lose at most this period's billing minutes (the Genesys invoice stays the bill). Change the SKU where that matters.
  //checkov:skip=CKV_AZURE_43: The name is 'st' + uniqueString(...): 15 lowercase letters and digits, within the rules; checkov cannot evaluate the expression.
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      // Flex Consumption apps without virtual network integration reach storage over
      // the public endpoint; access is by Entra ID roles only (no keys, no anonymous).
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobServices 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobServices
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
