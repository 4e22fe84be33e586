/**
 * The prevention documents, the same as infra/sam/template.yaml's: the deny policy (source of
 * the generated SCP and boundary), the table resource policies and the alert key policy.
 * infra/tests/parity.py compares them property by property with the SAM template.
 */
import { Fn } from 'aws-cdk-lib';
import { DYNAMODB_TABLE_CHANGES, DYNAMODB_WRITES, rolePathArn, tableArn } from './names';

export interface PreventionParams {
  pipelineRoleArn: string;
  deploymentRoleArn: string;
  breakGlassRoleArn: string;
  allowedImageArns: string[];
  allowedNetworkConnectorArns: string[];
  /** Name of the trail bucket: the created one or ExistingTrailBucketName. */
  trailBucketName: string;
}

const exempt = (p: PreventionParams) => ({ ArnNotLike: { 'aws:PrincipalArn': [p.deploymentRoleArn, p.breakGlassRoleArn] } });
/** The deny policies' exemption: the deployment, pipeline and break-glass roles. */
const exemptAll = (p: PreventionParams) => ({
  ArnNotLike: { 'aws:PrincipalArn': [p.deploymentRoleArn, p.pipelineRoleArn, p.breakGlassRoleArn] },
});
const onlyPipeline = (p: PreventionParams) => ({ ArnNotLike: { 'aws:PrincipalArn': p.pipelineRoleArn } });

/** Everything only the deployer changes (see the SAM template for the reasoning). */
const STACK_CHANGES = [
  'lambda:CreateFunction*',
  'lambda:CreateAlias',
  'lambda:Update*',
  'lambda:Delete*',
  'lambda:Put*',
  'lambda:Publish*',
  'lambda:*Permission',
  'lambda:*TagResource',
  'iam:CreateRole',
  'iam:DeleteRole',
  'iam:Update*',
  'iam:PutRolePolicy',
  'iam:DeleteRolePolicy',
  'iam:AttachRolePolicy',
  'iam:DetachRolePolicy',
  'iam:*RolePermissionsBoundary',
  'iam:*TagRole',
  'dynamodb:DeleteTable',
  'dynamodb:UpdateTable',
  'dynamodb:*ResourcePolicy',
  'dynamodb:UpdateTimeToLive',
  'dynamodb:UpdateContinuousBackups',
  'dynamodb:*TagResource',
  'sqs:DeleteQueue',
  'sqs:PurgeQueue',
  'sqs:SetQueueAttributes',
  'sqs:*Permission',
  'sqs:*TagQueue',
  'sns:DeleteTopic',
  'sns:SetTopicAttributes',
  'sns:*Permission',
  'sns:Unsubscribe',
  'sns:PutDataProtectionPolicy',
  'sns:*TagResource',
  'events:DisableRule',
  'events:DeleteRule',
  'events:PutRule',
  'events:*Targets',
  'events:*TagResource',
  'ssm:PutParameter',
  'ssm:DeleteParameter*',
  'ssm:LabelParameterVersion',
  'logs:Delete*',
  'logs:PutRetentionPolicy',
  'logs:DisassociateKmsKey',
  'cloudwatch:DeleteAlarms',
  'cloudwatch:DisableAlarmActions',
  'cloudwatch:PutMetricAlarm',
  'cloudwatch:SetAlarmState',
  'cloudtrail:StopLogging',
  'cloudtrail:DeleteTrail',
  'cloudtrail:UpdateTrail',
  'cloudtrail:Put*',
  's3:DeleteObject*',
  's3:DeleteBucket*',
  's3:PutBucket*',
  's3:PutLifecycleConfiguration',
  's3:PutEncryptionConfiguration',
];

const STACK_RESOURCES = [
  'arn:${AWS::Partition}:lambda:*:*:function:${NamePrefix}-*',
  'arn:${AWS::Partition}:iam::*:role/${NamePrefix}/*',
  'arn:${AWS::Partition}:dynamodb:*:*:table/${NamePrefix}-*',
  'arn:${AWS::Partition}:sqs:*:*:${NamePrefix}-*',
  'arn:${AWS::Partition}:sns:*:*:${NamePrefix}-*',
  'arn:${AWS::Partition}:events:*:*:rule/${NamePrefix}-*',
  'arn:${AWS::Partition}:ssm:*:*:parameter/${NamePrefix}/*',
  'arn:${AWS::Partition}:logs:*:*:log-group:/aws/lambda/${NamePrefix}-*',
  'arn:${AWS::Partition}:cloudwatch:*:*:alarm:${NamePrefix}-*',
  'arn:${AWS::Partition}:cloudtrail:*:*:trail/${NamePrefix}-trail',
  'arn:${AWS::Partition}:s3:::${Bucket}',
  'arn:${AWS::Partition}:s3:::${Bucket}/*',
  '${Images}',
  '${Versions}:*',
  '${Connectors}',
].join(',');

export function denyPolicyDocument(p: PreventionParams) {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'OnlyTheLauncherRunsMicrovmsAndIssuesTokens',
        Effect: 'Deny',
        Action: [
          'lambda:RunMicrovm',
          'lambda:CreateMicrovmAuthToken',
          'lambda:CreateMicrovmShellAuthToken',
          'lambda:ResumeMicrovm',
          'lambda:ConnectMicrovm',
        ],
        Resource: '*',
        Condition: { ArnNotLike: { 'aws:PrincipalArn': rolePathArn('launcher') } },
      },
      {
        Sid: 'OnlyTheLauncherOrDetectorSuspendsOrTerminates',
        Effect: 'Deny',
        Action: ['lambda:SuspendMicrovm', 'lambda:TerminateMicrovm'],
        Resource: '*',
        Condition: {
          ArnNotLike: {
            'aws:PrincipalArn': [
              rolePathArn('launcher'),
              rolePathArn('detector'),
              Fn.sub('arn:${AWS::Partition}:iam::*:role/${SweepRoleName}'),
            ],
          },
        },
      },
      {
        Sid: 'OnlyTheDeployerChangesTheGovernanceStack',
        Effect: 'Deny',
        Action: STACK_CHANGES,
        Resource: Fn.split(
          ',',
          Fn.sub(STACK_RESOURCES, {
            Bucket: p.trailBucketName,
            Images: Fn.join(',', p.allowedImageArns),
            Versions: Fn.join(':*,', p.allowedImageArns),
            Connectors: Fn.join(',', p.allowedNetworkConnectorArns),
          }),
        ),
        Condition: exemptAll(p),
      },
      {
        Sid: 'OnlyTheDeployerChangesTheirEventSourceMappings',
        Effect: 'Deny',
        Action: ['lambda:CreateEventSourceMapping', 'lambda:UpdateEventSourceMapping', 'lambda:DeleteEventSourceMapping'],
        Resource: '*',
        Condition: {
          ArnLike: { 'lambda:FunctionArn': Fn.sub('arn:${AWS::Partition}:lambda:*:*:function:${NamePrefix}-*') },
          ...exemptAll(p),
        },
      },
      {
        Sid: 'OnlyTheDeployerPassesTheGovernanceRoles',
        Effect: 'Deny',
        Action: 'iam:PassRole',
        Resource: Fn.sub('arn:${AWS::Partition}:iam::*:role/${NamePrefix}/*'),
        Condition: { ArnNotLike: { 'aws:PrincipalArn': p.deploymentRoleArn } },
      },
      {
        Sid: 'TheGovernanceRolesArePassedOnlyToLambda',
        Effect: 'Deny',
        Action: 'iam:PassRole',
        Resource: Fn.sub('arn:${AWS::Partition}:iam::*:role/${NamePrefix}/*'),
        Condition: { StringNotEquals: { 'iam:PassedToService': 'lambda.amazonaws.com' } },
      },
      {
        Sid: 'OnlyTheLauncherWritesTheLedgerAndPendingApprovals',
        Effect: 'Deny',
        Action: DYNAMODB_WRITES,
        Resource: [
          Fn.sub('arn:${AWS::Partition}:dynamodb:*:*:table/${NamePrefix}-ledger'),
          Fn.sub('arn:${AWS::Partition}:dynamodb:*:*:table/${NamePrefix}-pending'),
        ],
        Condition: { ArnNotLike: { 'aws:PrincipalArn': rolePathArn('launcher') } },
      },
      {
        Sid: 'OnlyTheDetectorConsumesItsQueueAndWritesDedupeMarks',
        Effect: 'Deny',
        Action: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:SendMessage', ...DYNAMODB_WRITES],
        Resource: [
          Fn.sub('arn:${AWS::Partition}:sqs:*:*:${NamePrefix}-detector'),
          Fn.sub('arn:${AWS::Partition}:dynamodb:*:*:table/${NamePrefix}-dedupe'),
        ],
        Condition: { ArnNotLike: { 'aws:PrincipalArn': rolePathArn('detector') } },
      },
      {
        Sid: 'NobodyForgesTheDetectorHeartbeat',
        Effect: 'Deny',
        Action: 'cloudwatch:PutMetricData',
        Resource: '*',
        Condition: { StringEquals: { 'cloudwatch:namespace': 'MicrovmGovernance' } },
      },
    ],
  };
}

const BYPASS_CHANGES = [
  'iam:CreatePolicy*',
  'iam:SetDefaultPolicyVersion',
  'iam:DeletePolicy*',
  'iam:*TagPolicy',
  'secretsmanager:Put*',
  'secretsmanager:Update*',
  'secretsmanager:Delete*',
  'secretsmanager:*RotateSecret',
  'secretsmanager:RestoreSecret',
  'secretsmanager:*TagResource',
  'secretsmanager:ReplicateSecretToRegions',
  'sns:Subscribe',
  'sns:SetSubscriptionAttributes',
  'logs:Put*Filter',
  's3:PutObject*',
];

const BYPASS_RESOURCES = [
  'arn:${AWS::Partition}:iam::*:policy/${NamePrefix}-*',
  '${ApiKey}',
  '${Webhook}',
  'arn:${AWS::Partition}:sns:*:*:${NamePrefix}-*',
  'arn:${AWS::Partition}:logs:*:*:log-group:/aws/lambda/${NamePrefix}-*',
  'arn:${AWS::Partition}:s3:::${Bucket}/*',
].join(',');

export interface BypassParams {
  allowedExecutionRoleArns: string[];
  /** Fn::If of CreateApiKeySecret / CreateWebhookSecret: the created secrets' pattern or the given ARN. */
  apiKeySecret: string;
  webhookSecret: string;
}

/** The second deny policy: the paths around the protected resources (see the SAM template). */
export function denyGovernanceBypassDocument(p: PreventionParams, b: BypassParams) {
  const launcherOrDetector = [rolePathArn('launcher'), rolePathArn('detector')];
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'OnlyTheDeployerChangesThePreventionSecretsAndAlerts',
        Effect: 'Deny',
        Action: BYPASS_CHANGES,
        Resource: Fn.split(',', Fn.sub(BYPASS_RESOURCES, { Bucket: p.trailBucketName, ApiKey: b.apiKeySecret, Webhook: b.webhookSecret })),
        Condition: exemptAll(p),
      },
      {
        Sid: 'OnlyThePipelineOperatesTheGovernanceStacks',
        Effect: 'Deny',
        Action: [
          'cloudformation:Create*',
          'cloudformation:Update*',
          'cloudformation:Delete*',
          'cloudformation:Execute*',
          'cloudformation:Set*',
          'cloudformation:Continue*',
          'cloudformation:Cancel*',
          'cloudformation:Rollback*',
          'cloudformation:Import*',
          'iam:PassRole',
        ],
        Resource: [
          Fn.sub('arn:${AWS::Partition}:cloudformation:*:*:stack/${NamePrefix}*'),
          Fn.sub('arn:${AWS::Partition}:cloudformation:*:*:stack/StackSet-${NamePrefix}*'),
          Fn.sub('arn:${AWS::Partition}:cloudformation:*:*:stackset/${NamePrefix}*'),
          p.deploymentRoleArn,
          p.pipelineRoleArn,
          p.breakGlassRoleArn,
        ],
        Condition: onlyPipeline(p),
      },
      {
        Sid: 'OnlyThePipelineChangesTheExemptAndExecutionRoles',
        Effect: 'Deny',
        Action: ['iam:CreateRole', 'iam:Delete*', 'iam:Update*', 'iam:Put*', 'iam:Attach*', 'iam:Detach*', 'iam:*TagRole'],
        Resource: Fn.split(
          ',',
          Fn.sub(
            '${DeploymentRoleArn},${PipelineRoleArn},${BreakGlassRoleArn},arn:${AWS::Partition}:iam::*:role/${SweepRoleName},${ExecutionRoles}',
            { ExecutionRoles: Fn.join(',', b.allowedExecutionRoleArns) },
          ),
        ),
        Condition: onlyPipeline(p),
      },
      {
        Sid: 'ThePreventionStaysAttached',
        Effect: 'Deny',
        Action: ['iam:Detach*Policy', 'iam:Delete*PermissionsBoundary'],
        Resource: '*',
        Condition: {
          ArnLikeIfExists: { 'iam:PolicyARN': Fn.sub('arn:${AWS::Partition}:iam::*:policy/${NamePrefix}-*') },
          ...exemptAll(p),
        },
      },
      {
        Sid: 'EveryNewRoleAndUserCarriesTheBoundary',
        Effect: 'Deny',
        Action: ['iam:CreateRole', 'iam:CreateUser', 'iam:Put*PermissionsBoundary'],
        Resource: '*',
        Condition: {
          ArnNotLike: {
            'iam:PermissionsBoundary': Fn.sub('arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/${NamePrefix}-boundary'),
            'aws:PrincipalArn': [p.deploymentRoleArn, p.pipelineRoleArn, p.breakGlassRoleArn],
          },
        },
      },
      {
        Sid: 'OnlyTheFunctionsWriteTheirLogs',
        Effect: 'Deny',
        Action: ['logs:PutLogEvents', 'logs:CreateLogStream'],
        Resource: Fn.sub('arn:${AWS::Partition}:logs:*:*:log-group:/aws/lambda/${NamePrefix}-*'),
        Condition: { ArnNotLike: { 'aws:PrincipalArn': launcherOrDetector } },
      },
      {
        Sid: 'FunctionsOnlyThroughTheirUrls',
        Effect: 'Deny',
        Action: ['lambda:InvokeFunction', 'lambda:InvokeAsync'],
        Resource: Fn.sub('arn:${AWS::Partition}:lambda:*:*:function:${NamePrefix}-*'),
        Condition: { BoolIfExists: { 'lambda:InvokedViaFunctionUrl': 'false' } },
      },
      {
        Sid: 'NobodyLeavesTheOrganization',
        Effect: 'Deny',
        Action: 'organizations:LeaveOrganization',
        Resource: '*',
      },
    ],
  };
}

/** A table's resource policy: who may write its items, and that only the deployer changes it. */
export function tableResourcePolicy(
  p: PreventionParams,
  table: 'ledger' | 'pending' | 'dedupe',
  writerSid: string,
  writer: 'launcher' | 'detector',
  changeSid: string,
) {
  return {
    policyDocument: {
      Version: '2012-10-17',
      Statement: [
        {
          Sid: writerSid,
          Effect: 'Deny',
          Principal: '*',
          Action: DYNAMODB_WRITES,
          Resource: tableArn(table),
          Condition: { ArnNotLike: { 'aws:PrincipalArn': rolePathArn(writer) } },
        },
        {
          Sid: changeSid,
          Effect: 'Deny',
          Principal: '*',
          Action: DYNAMODB_TABLE_CHANGES,
          Resource: tableArn(table),
          Condition: exempt(p),
        },
      ],
    },
  };
}

/**
 * The token key: the account administers it (through IAM) but cannot use it; only the launcher
 * role seals and opens tokens; only the deployer changes or deletes it.
 */
export function tokenKeyPolicy(p: PreventionParams) {
  const root = { AWS: Fn.sub('arn:${AWS::Partition}:iam::${AWS::AccountId}:root') };
  const launcher = rolePathArn('launcher');
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'TheAccountAdministersTheKeyButCannotUseIt',
        Effect: 'Allow',
        Principal: root,
        Action: ['kms:Create*', 'kms:Describe*', 'kms:Enable*', 'kms:List*', 'kms:Put*', 'kms:Update*', 'kms:Revoke*', 'kms:Disable*',
          'kms:Get*', 'kms:Delete*', 'kms:TagResource', 'kms:UntagResource', 'kms:ScheduleKeyDeletion', 'kms:CancelKeyDeletion'],
        Resource: '*',
      },
      {
        Sid: 'OnlyTheLauncherSealsAndOpensTokens',
        Effect: 'Allow',
        Principal: root,
        Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
        Resource: '*',
        Condition: { ArnLike: { 'aws:PrincipalArn': launcher } },
      },
      {
        Sid: 'NobodyElseUsesTheTokenKey',
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*', 'kms:CreateGrant'],
        Resource: '*',
        Condition: { ArnNotLike: { 'aws:PrincipalArn': launcher } },
      },
      {
        Sid: 'OnlyTheDeployerChangesOrDeletesTheKey',
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: ['kms:PutKeyPolicy', 'kms:ScheduleKeyDeletion', 'kms:DisableKey', 'kms:DisableKeyRotation', 'kms:UpdateKeyDescription',
          'kms:TagResource', 'kms:UntagResource'],
        Resource: '*',
        Condition: exempt(p),
      },
    ],
  };
}

export function alertKeyPolicy(p: PreventionParams) {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'TheAccountAdministersTheKeyThroughIam',
        Effect: 'Allow',
        Principal: { AWS: Fn.sub('arn:${AWS::Partition}:iam::${AWS::AccountId}:root') },
        Action: 'kms:*',
        Resource: '*',
      },
      // No aws:SourceAccount condition: CloudWatch alarm actions do not document one, and an
      // alarm that cannot publish fails silently.
      {
        Sid: 'CloudWatchAndEventBridgePublishToTheAlertTopic',
        Effect: 'Allow',
        Principal: { Service: ['cloudwatch.amazonaws.com', 'events.amazonaws.com'] },
        Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        Resource: '*',
      },
      {
        Sid: 'OnlyTheDeployerChangesOrDeletesTheKey',
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: [
          'kms:PutKeyPolicy',
          'kms:ScheduleKeyDeletion',
          'kms:DisableKey',
          'kms:DisableKeyRotation',
          'kms:CreateGrant',
          'kms:UpdateKeyDescription',
          'kms:TagResource',
          'kms:UntagResource',
        ],
        Resource: '*',
        Condition: exempt(p),
      },
    ],
  };
}

/** The trail bucket's own copy of the deployer-only changes. */
export function trailBucketChangesStatement(p: PreventionParams, bucketArn: string) {
  return {
    Sid: 'OnlyTheDeployerChangesTheTrailBucket',
    Effect: 'Deny',
    Principal: '*',
    Action: [
      's3:DeleteObject',
      's3:DeleteObjectVersion',
      's3:PutBucketNotification',
      's3:PutBucketPolicy',
      's3:DeleteBucketPolicy',
      's3:DeleteBucket',
      's3:PutBucketVersioning',
      's3:PutLifecycleConfiguration',
      's3:PutEncryptionConfiguration',
      's3:PutBucketOwnershipControls',
      's3:PutBucketPublicAccessBlock',
    ],
    Resource: [bucketArn, Fn.sub('${Arn}/*', { Arn: bucketArn })],
    Condition: exempt(p),
  };
}

/** Log files are written by CloudTrail only (versioning keeps what it wrote). */
export function trailBucketWritesStatement() {
  return {
    Sid: 'OnlyCloudTrailWritesLogFiles',
    Effect: 'Deny',
    Principal: '*',
    Action: 's3:PutObject',
    Resource: Fn.sub('${TrailBucket.Arn}/*'),
    Condition: { StringNotEquals: { 'aws:PrincipalServiceName': 'cloudtrail.amazonaws.com' } },
  };
}
