/**
 * The launcher: its parameters, its ledger and pending table, the Contro1 webhook secret,
 * the token key, its role, the function behind two Function URLs (AWS_IAM on `live`, the
 * signed Contro1 callback on `contro1-webhook`), the reconciler schedule and its alarms. The
 * single-account stack and the member stack both build it here.
 */
import { Aws, CfnCondition, Duration, Fn, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Kit, RustFn, fnMetric } from '../kit';
import { PreventionParams, tableResourcePolicy, tokenKeyPolicy } from '../prevention';
import { lambdaTrust, launcherPolicies } from '../roles';
import { Contro1, secretResourcePolicy, table } from './shared';
import { rolePathArn } from '../names';
import { scheduleRule } from './rules';

/** The launcher's parameters, declared in the SAM templates' order of groups. */
export function launcherParameters(kit: Kit) {
  const p = kit.param.bind(kit);
  const webhookSecretArn = p('Contro1WebhookSecretArn', {
    type: 'String',
    default: '',
    description: 'Existing Secrets Manager secret with the Contro1 webhook secret. Empty: one is created.',
  });
  const publicUrl = p('LauncherPublicUrl', {
    type: 'String',
    default: '',
    allowedPattern: '^$|^https://[^\\s]+[^/\\s]$',
    description: 'Base URL Contro1 calls back; set it to the Contro1WebhookUrl output after the first deploy.',
  });
  const enableWebhookUrl = p('EnableContro1WebhookUrl', { type: 'String', default: 'true', allowedValues: ['true', 'false'] });
  const allowedAgentIds = p('AllowedAgentIds', { type: 'String', default: '' });
  const allowedImageArns = p('AllowedImageArns', {
    type: 'CommaDelimitedList',
    description: 'microvm-image ARNs agents may run; the only images the launcher acts on, changed only by the deployer.',
  });
  const allowedExecRoles = p('AllowedExecutionRoleArns', {
    type: 'CommaDelimitedList',
    description: 'Execution roles MicroVMs may run as; the only roles the launcher may pass.',
  });
  const prodExecRoles = p('ProductionExecutionRoleArns', { type: 'String', default: '' });
  const connectorArns = p('AllowedNetworkConnectorArns', {
    type: 'CommaDelimitedList',
    default: 'arn:aws:lambda:*:aws:network-connector:*',
  });
  const num = (name: string, dflt: number, minValue: number, maxValue?: number) =>
    p(name, { type: 'Number', default: dflt, minValue, maxValue }).valueAsString;
  const env = {
    LAUNCHER_PUBLIC_URL: publicUrl.valueAsString,
    ALLOWED_AGENT_IDS: allowedAgentIds.valueAsString,
    ALLOWED_IMAGE_ARNS: Fn.join(',', allowedImageArns.valueAsList),
    ALLOWED_EXECUTION_ROLE_ARNS: Fn.join(',', allowedExecRoles.valueAsList),
    PRODUCTION_EXECUTION_ROLE_ARNS: prodExecRoles.valueAsString,
    MAX_AUTO_APPROVE_DURATION_SECONDS: num('MaxAutoApproveDurationSeconds', 3600, 1, 28800),
    MAX_TOKEN_TTL_SECONDS: num('MaxTokenTtlSeconds', 900, 60),
    ALLOWED_TOKEN_PORTS: p('AllowedTokenPorts', { type: 'String', default: '8080' }).valueAsString,
    DEFAULT_REQUIRED_ROLE: p('DefaultRequiredRole', { type: 'String', default: 'security' }).valueAsString,
    DEFAULT_SLA_MINUTES: num('DefaultSlaMinutes', 60, 1),
    EXECUTING_TIMEOUT_SECONDS: num('ExecutingTimeoutSeconds', 960, 60, 86400),
    APPROVAL_REQUESTS_PER_MINUTE: num('ApprovalRequestsPerMinute', 30, 1, 10000),
    TOMBSTONE_RETENTION_SECONDS: num('TombstoneRetentionSeconds', 2592000, 86400),
  };
  const launcherConfig = p('LauncherConfigPath', { type: 'String', default: '' });
  const concurrency = p('LauncherReservedConcurrency', { type: 'Number', default: 20, minValue: 1 });
  const createWebhookSecret = kit.cond('CreateWebhookSecret', Fn.conditionEquals(webhookSecretArn.valueAsString, ''));
  const hasConfig = kit.cond('HasLauncherConfig', Fn.conditionNot(Fn.conditionEquals(launcherConfig.valueAsString, '')));
  const webhookUrlEnabled = kit.cond('WebhookUrlEnabled', Fn.conditionEquals(enableWebhookUrl.valueAsString, 'true'));
  return {
    env,
    webhookSecretArn: webhookSecretArn.valueAsString,
    allowedImageArns: allowedImageArns.valueAsList,
    allowedExecutionRoleArns: allowedExecRoles.valueAsList,
    allowedNetworkConnectorArns: connectorArns.valueAsList,
    launcherConfig: launcherConfig.valueAsString,
    concurrency: concurrency.valueAsNumber,
    createWebhookSecret,
    hasConfig,
    webhookUrlEnabled,
  };
}
export type LauncherParameters = ReturnType<typeof launcherParameters>;

/** The ledger (no TTL, retained) and the pending table with the reconciler's sparse index. */
export function launcherTables(kit: Kit, prevention: PreventionParams) {
  const ledger = table(kit, 'LedgerTable', 'ledger', false, true,
    tableResourcePolicy(prevention, 'ledger', 'OnlyTheLauncherWritesTheLedger', 'launcher', 'OnlyTheDeployerChangesTheLedger'));
  const executingIndex: dynamodb.CfnTable.GlobalSecondaryIndexProperty = {
    indexName: 'executing-index',
    keySchema: [{ attributeName: 'executing', keyType: 'HASH' }, { attributeName: 'executing_since', keyType: 'RANGE' }],
    projection: { projectionType: 'KEYS_ONLY' },
  };
  const pending = table(kit, 'PendingTable', 'pending', true, true,
    tableResourcePolicy(prevention, 'pending', 'OnlyTheLauncherWritesPendingApprovals', 'launcher', 'OnlyTheDeployerChangesPendingApprovals'),
    executingIndex);
  return { ledger, pending };
}

/** The webhook secret (created when none is given) and the token key. */
export function launcherSecrets(kit: Kit, lp: LauncherParameters, prevention: PreventionParams) {
  const webhookSecret = new secretsmanager.CfnSecret(kit.stack, 'Contro1WebhookSecret', {
    name: Fn.sub('${NamePrefix}-contro1-webhook-secret'),
    description: "Contro1 webhook HMAC secret. Put the organization's value after deploying.",
    generateSecretString: { passwordLength: 48, excludePunctuation: true },
  });
  webhookSecret.cfnOptions.condition = lp.createWebhookSecret;
  const webhookPolicy = new secretsmanager.CfnResourcePolicy(kit.stack, 'Contro1WebhookSecretPolicy', {
    secretId: webhookSecret.ref,
    blockPublicPolicy: true,
    resourcePolicy: secretResourcePolicy(prevention, 'WebhookSecret', [rolePathArn('launcher')]),
  });
  webhookPolicy.cfnOptions.condition = lp.createWebhookSecret;
  // Seals the tokens pending approvals hold; only the launcher role may use it.
  const tokenKey = new kms.CfnKey(kit.stack, 'TokenKey', {
    description: 'Seals the MicroVM auth tokens the launcher holds for pending approvals.',
    enableKeyRotation: true,
    keyPolicy: tokenKeyPolicy(prevention),
  });
  tokenKey.applyRemovalPolicy(RemovalPolicy.RETAIN);
  new kms.CfnAlias(kit.stack, 'TokenKeyAlias', { aliasName: Fn.sub('alias/${NamePrefix}-tokens'), targetKeyId: tokenKey.ref });
  return { webhookArn: kit.ifCond(lp.createWebhookSecret, webhookSecret.ref, lp.webhookSecretArn), tokenKey };
}

export interface LauncherDeps {
  contro1: Contro1;
  webhookArn: string;
  tokenKeyArn: string;
  eventsDlqArn: string;
  ledgerRef: string;
  pendingRef: string;
  logRetentionDays: number;
  alertTopicRef: string;
  /** A fixed role name (organization: the same in every account); none: CloudFormation's. */
  roleName?: string;
}

export interface Launcher {
  role: iam.CfnRole;
  fn: RustFn;
  url: lambda.CfnUrl;
  webhookUrl: lambda.CfnUrl;
  versionNumber: string;
}

export function buildLauncher(kit: Kit, lp: LauncherParameters, d: LauncherDeps): Launcher {
  const s = kit.stack;
  const role = new iam.CfnRole(s, 'LauncherRole', {
    roleName: d.roleName,
    path: Fn.sub('/${NamePrefix}/launcher/'),
    description: 'The only principal allowed to run MicroVMs and issue their tokens.',
    assumeRolePolicyDocument: lambdaTrust(),
    policies: launcherPolicies({
      allowedImageArns: lp.allowedImageArns,
      allowedExecutionRoleArns: lp.allowedExecutionRoleArns,
      allowedNetworkConnectorArns: lp.allowedNetworkConnectorArns,
      apiKeySecretArn: d.contro1.apiKeyArn,
      webhookSecretArn: d.webhookArn,
      tokenKeyArn: d.tokenKeyArn,
      eventsDlqArn: d.eventsDlqArn,
    }),
  });
  const logs = kit.logGroup('LauncherLogGroup', 'launcher', d.logRetentionDays);
  const fn = kit.rustFunction('LauncherFunction', 'launcher', role, logs, {
    functionName: Fn.sub('${NamePrefix}-launcher'),
    description: 'Governed MicroVM launcher and token broker.',
    memorySize: 256,
    timeout: Duration.seconds(30),
    reservedConcurrentExecutions: lp.concurrency,
    environment: {
      RUST_LOG: 'info',
      CONTRO1_BASE_URL: d.contro1.baseUrl,
      CONTRO1_API_KEY_SECRET_ARN: d.contro1.apiKeyArn,
      LEDGER_TABLE: d.ledgerRef,
      PENDING_TABLE: d.pendingRef,
      CONTRO1_WEBHOOK_SECRET_ARN: d.webhookArn,
      ...lp.env,
      TOKEN_KMS_KEY_ID: d.tokenKeyArn,
      PENDING_EXECUTING_INDEX: 'executing-index',
    },
  });
  // LAUNCHER_CONFIG only when a path is given (Fn::If with AWS::NoValue drops the key).
  fn.cfn.addPropertyOverride(
    'Environment.Variables.LAUNCHER_CONFIG',
    Fn.conditionIf(lp.hasConfig.logicalId, lp.launcherConfig, Aws.NO_VALUE),
  );
  const versionNumber = Fn.select(7, Fn.split(':', fn.versionRef));
  const url = new lambda.CfnUrl(s, 'LauncherFunctionUrl', { targetFunctionArn: fn.live.ref, authType: 'AWS_IAM' });

  // Contro1 cannot sign with SigV4: its webhook reaches the launcher through a second URL on
  // the alias `contro1-webhook` (at the published version), where the launcher serves only
  // the HMAC-verified callback.
  const onlyIfWebhook = (c: { cfnOptions: { condition?: CfnCondition } }) => { c.cfnOptions.condition = lp.webhookUrlEnabled; };
  const webhookAlias = new lambda.CfnAlias(s, 'LauncherWebhookAlias', {
    functionName: fn.fn.functionName,
    functionVersion: versionNumber,
    name: 'contro1-webhook',
  });
  onlyIfWebhook(webhookAlias);
  const webhookUrl = new lambda.CfnUrl(s, 'LauncherWebhookUrl', {
    targetFunctionArn: fn.fn.functionName,
    qualifier: 'contro1-webhook',
    authType: 'NONE',
  });
  onlyIfWebhook(webhookUrl);
  webhookUrl.addDependency(webhookAlias);
  onlyIfWebhook(new lambda.CfnPermission(s, 'LauncherWebhookUrlPermission', {
    functionName: webhookAlias.ref,
    action: 'lambda:InvokeFunctionUrl',
    principal: '*',
    functionUrlAuthType: 'NONE',
  }));
  // Since October 2025 a public URL also needs lambda:InvokeFunction; InvokedViaFunctionUrl
  // limits it to calls through the URL.
  onlyIfWebhook(new lambda.CfnPermission(s, 'LauncherWebhookInvokePermission', {
    functionName: webhookAlias.ref,
    action: 'lambda:InvokeFunction',
    principal: '*',
    invokedViaFunctionUrl: true,
  }));

  // The reconciler: approved calls stuck executing.
  kit.onFailureTo('LauncherFunction', fn, d.eventsDlqArn);
  scheduleRule(kit, 'LauncherFunctionReconciler', {
    name: Fn.sub('${NamePrefix}-reconciler'),
    description: "The launcher's reconciler (approved calls stuck executing).",
    scheduleExpression: 'rate(5 minutes)',
  }, 2, 300, fn, d.eventsDlqArn);

  kit.alarm('LauncherErrorsAlarm', 'launcher-errors', 'The launcher failed invocations.', fnMetric('Errors', fn.fn), d.alertTopicRef);
  kit.alarm('LauncherThrottlesAlarm', 'launcher-throttles',
    'The launcher was throttled (reserved concurrency reached, e.g. a flood on the callback URL).', fnMetric('Throttles', fn.fn),
    d.alertTopicRef);
  return { role, fn, url, webhookUrl, versionNumber };
}
