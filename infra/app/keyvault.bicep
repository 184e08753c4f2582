// Key Vault (Azure RBAC) holding every secret the app reads: the Genesys client secret
// and the alert channels' secrets. The app settings refer to them as Key Vault
// references; a secret left empty is not created, and its setting is not set.
// The secrets are written through Azure Resource Manager, so the deploying user needs
// no data-plane role on the vault.

param location string
param tags object
param keyVaultName string

@secure()
param genesysClientSecret string
@secure()
param alertWebhookUrl string = ''
@secure()
param alertWebhookSecret string = ''
@secure()
param teamsWebhookUrl string = ''
@secure()
param slackWebhookUrl string = ''
@secure()
param pagerdutyRoutingKey string = ''
@secure()
param graphClientSecret string = ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109: The Functions platform resolves Key Vault references over the vault's public endpoint (the app has no virtual network here); access is by Entra ID role (Key Vault Secrets User) only.
  //checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: a vault without public network access needs virtual network integration and a private endpoint, which this deployment does not create.
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    // Purge protection: nobody can destroy the secrets for good before the retention ends,
    // not even by mistake. `azd down --purge` therefore leaves this vault soft-deleted for
    // 7 days (the shortest retention); to deploy the same environment again within them,
    // recover it first (`az keyvault recover`, docs/deploy.md "Remove").
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// The secrets have no expiry date: the app reads them on every start and a date in the
// template would stop the monitor silently when it passes. Rotate them in the vault.

resource genesysClientSecretEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  //checkov:skip=CKV_AZURE_41: No expiry date on purpose: an expired secret would stop the monitor without warning (see the comment above).
  parent: vault
  name: 'genesys-client-secret'
  properties: {
    value: genesysClientSecret
    contentType: 'text/plain'
  }
}

resource alertWebhookUrlEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(alertWebhookUrl)) {
  //checkov:skip=CKV_AZURE_41: No expiry date on purpose: an expired secret would stop alert delivery without warning.
  //checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a resource deployed under a condition.
  parent: vault
  name: 'alert-webhook-url'
  properties: {
    value: alertWebhookUrl
    contentType: 'text/plain'
  }
}

resource alertWebhookSecretEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(alertWebhookSecret)) {
  //checkov:skip=CKV_AZURE_41: No expiry date on purpose: an expired secret would stop alert delivery without warning.
  //checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a resource deployed under a condition.
  parent: vault
  name: 'alert-webhook-secret'
  properties: {
    value: alertWebhookSecret
    contentType: 'text/plain'
  }
}

resource teamsWebhookUrlEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(teamsWebhookUrl)) {
  //checkov:skip=CKV_AZURE_41: No expiry date on purpose: an expired secret would stop alert delivery without warning.
  //checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a resource deployed under a condition.
  parent: vault
  name: 'teams-webhook-url'
  properties: {
    value: teamsWebhookUrl
    contentType: 'text/plain'
  }
}

resource slackWebhookUrlEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(slackWebhookUrl)) {
  //checkov:skip=CKV_AZURE_41: No expiry date on purpose: an expired secret would stop alert delivery without warning.
  //checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a resource deployed under a condition.
  parent: vault
  name: 'slack-webhook-url'
  properties: {
    value: slackWebhookUrl
    contentType: 'text/plain'
  }
}

resource pagerdutyRoutingKeyEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(pagerdutyRoutingKey)) {
  //checkov:skip=CKV_AZURE_41: No expiry date on purpose: an expired secret would stop alert delivery without warning.
  //checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a resource deployed under a condition.
  parent: vault
  name: 'pagerduty-routing-key'
  properties: {
    value: pagerdutyRoutingKey
    contentType: 'text/plain'
  }
}

resource graphClientSecretEntry 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(graphClientSecret)) {
  //checkov:skip=CKV_AZURE_41: No expiry date on purpose: an expired secret would stop email alerts without warning.
  //checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a resource deployed under a condition.
  parent: vault
  name: 'graph-client-secret'
  properties: {
    value: graphClientSecret
    contentType: 'text/plain'
  }
}

output name string = vault.name
output id string = vault.id
output vaultUri string = vault.properties.vaultUri
