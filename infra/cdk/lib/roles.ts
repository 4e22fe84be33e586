/**
 * The launcher's and the detector's execution-role documents, the same as the SAM
 * template's. Every grant is scoped to what the code calls (infra/tests/least_privilege.py
 * checks that against the Rust sources) and, where Lambda sets it, to the function's own
 * execution environment (lambda:SourceFunctionArn).
 */
import { Aws, Fn } from 'aws-cdk-lib';
import { fromFunction, functionArn, imagesAndVersions, logGroupArn, qualifiedFunctionArns, tableArn, baselineParameterArn } from './names';

/** Only Lambda, only for this account. */
export const lambdaTrust = () => ({
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Principal: { Service: 'lambda.amazonaws.com' },
      Action: 'sts:AssumeRole',
      Condition: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
    },
  ],
});

export interface LauncherGrants {
  allowedImageArns: string[];
  allowedExecutionRoleArns: string[];
  allowedNetworkConnectorArns: string[];
  apiKeySecretArn: string;
  webhookSecretArn: string;
  tokenKeyArn: string;
  eventsDlqArn: string;
}

export function launcherPolicies(g: LauncherGrants) {
  const from = fromFunction('launcher');
  return [
    {
      policyName: 'governed-microvm-calls',
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'GovernedCallsOnAllowedImages',
            Effect: 'Allow',
            Action: [
              'lambda:RunMicrovm',
              'lambda:CreateMicrovmAuthToken',
              'lambda:CreateMicrovmShellAuthToken',
              'lambda:SuspendMicrovm',
              'lambda:ResumeMicrovm',
              'lambda:TerminateMicrovm',
            ],
            Resource: imagesAndVersions(g.allowedImageArns),
            Condition: from,
          },
          // The reconciler looks up MicroVMs the ledger does not settle (allowed images only).
          {
            Sid: 'ReconcilerReadsMicrovmsOfAllowedImages',
            Effect: 'Allow',
            Action: 'lambda:GetMicrovm',
            Resource: imagesAndVersions(g.allowedImageArns),
            Condition: from,
          },
          // The reconciler lists the MicroVMs of a run it will not issue, to name any it may have
          // started that the ledger does not hold (ListMicrovms has no resource type).
          { Sid: 'ReconcilerListsMicrovms', Effect: 'Allow', Action: 'lambda:ListMicrovms', Resource: '*', Condition: from },
          {
            Sid: 'PassOnlyAllowedExecutionRolesToLambda',
            Effect: 'Allow',
            Action: 'iam:PassRole',
            Resource: g.allowedExecutionRoleArns,
            Condition: { StringEquals: { 'iam:PassedToService': 'lambda.amazonaws.com' }, ...from },
          },
          {
            Sid: 'PassNetworkConnectors',
            Effect: 'Allow',
            Action: 'lambda:PassNetworkConnector',
            Resource: g.allowedNetworkConnectorArns,
            Condition: from,
          },
        ],
      },
    },
    {
      policyName: 'state-secrets-and-logs',
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'PendingApprovals',
            Effect: 'Allow',
            Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
            Resource: tableArn('pending'),
            Condition: from,
          },
          {
            Sid: 'ReconcilerQueriesExecutingCalls',
            Effect: 'Allow',
            Action: 'dynamodb:Query',
            Resource: Fn.sub('arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${NamePrefix}-pending/index/executing-index'),
            Condition: from,
          },
          // Every item of one governed call in one BatchWriteItem.
          {
            Sid: 'Ledger',
            Effect: 'Allow',
            Action: ['dynamodb:PutItem', 'dynamodb:BatchWriteItem', 'dynamodb:GetItem'],
            Resource: tableArn('ledger'),
            Condition: from,
          },
          {
            Sid: 'Contro1Secrets',
            Effect: 'Allow',
            Action: 'secretsmanager:GetSecretValue',
            Resource: [g.apiKeySecretArn, g.webhookSecretArn],
            Condition: from,
          },
          { Sid: 'SealAndOpenTokens', Effect: 'Allow', Action: ['kms:GenerateDataKey', 'kms:Decrypt'], Resource: g.tokenKeyArn, Condition: from },
          // The reconciler schedule's on-failure destination sends outside the function's environment.
          { Sid: 'OnFailureDestination', Effect: 'Allow', Action: 'sqs:SendMessage', Resource: g.eventsDlqArn },
          {
            Sid: 'OwnLogGroup',
            Effect: 'Allow',
            Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
            Resource: logGroupArn('launcher'),
            Condition: from,
          },
        ],
      },
    },
  ];
}

/** A statement present only under a template condition (Fn::If with AWS::NoValue). */
export const onlyIf = (condition: string, statement: object) => Fn.conditionIf(condition, statement, Aws.NO_VALUE);

export interface DetectorGrants {
  trailBucketName: string;
  /** Fn::If [HasTrailKmsKey, statement, AWS::NoValue] */
  trailKmsStatement: unknown;
  alertTopicArn: string;
  alertKeyArn: string;
  apiKeySecretArn: string;
  queueArn: string;
  eventsDlqArn: string;
  /** The ledger read in this account (single-account stack); none in a security account. */
  ledgerArn?: string;
  /** The integrity check of both functions (single-account stack). */
  integrity: boolean;
  /** The sweep fan-out queue (security account): queued and consumed. */
  sweepQueueArn?: string;
  /** Sweep roles only inside this organization (aws:ResourceOrgID). */
  organizationId?: string;
}

export function detectorPolicies(g: DetectorGrants) {
  const from = fromFunction('detector');
  const bucket = (suffix: string) => Fn.sub(`arn:\${AWS::Partition}:s3:::\${Bucket}${suffix}`, { Bucket: g.trailBucketName });
  return [
    {
      policyName: 'detector',
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          // ListMicrovms has no resource type.
          { Sid: 'ListMicrovms', Effect: 'Allow', Action: 'lambda:ListMicrovms', Resource: '*', Condition: from },
          {
            Sid: 'ReadTrailObjects',
            Effect: 'Allow',
            // GetObjectVersion: each log file is read by the version its notification names
            // (GetObject/HeadObject with versionId). ListBucket makes S3 answer 404 (NoSuchKey,
            // NoSuchVersion) instead of AccessDenied for a file or version that is gone.
            Action: ['s3:GetObject', 's3:GetObjectVersion', 's3:ListBucket'],
            Resource: [bucket(''), bucket('/*')],
            Condition: from,
          },
          g.trailKmsStatement,
          ...(g.ledgerArn ? [{ Sid: 'ReadLedger', Effect: 'Allow', Action: 'dynamodb:BatchGetItem', Resource: g.ledgerArn, Condition: from }] : []),
          // Marks read one or many at a time, written 25 findings a BatchWriteItem; the heartbeat item.
          {
            Sid: 'Dedupe',
            Effect: 'Allow',
            Action: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem', 'dynamodb:UpdateItem'],
            Resource: tableArn('dedupe'),
            Condition: from,
          },
          // Publish and PublishBatch (IAM authorises PublishBatch as sns:Publish).
          { Sid: 'PublishAlerts', Effect: 'Allow', Action: 'sns:Publish', Resource: g.alertTopicArn, Condition: from },
          ...detectorOptionalStatements(g.organizationId),
          // SNS encrypts the published message with the topic's key as the publisher.
          { Sid: 'EncryptAlerts', Effect: 'Allow', Action: ['kms:GenerateDataKey', 'kms:Decrypt'], Resource: g.alertKeyArn },
          {
            Sid: 'TrailHealth',
            Effect: 'Allow',
            Action: ['cloudtrail:DescribeTrails', 'cloudtrail:GetTrailStatus', 'cloudtrail:GetEventSelectors'],
            // DescribeTrails has no resource type; trails are discovered at run time.
            Resource: '*',
            Condition: from,
          },
          {
            Sid: 'Contro1ApiKey',
            Effect: 'Allow',
            Action: 'secretsmanager:GetSecretValue',
            Resource: g.apiKeySecretArn,
            Condition: from,
          },
          ...(g.integrity ? integrityStatements() : []),
          ...(g.sweepQueueArn ? [{ Sid: 'QueueSweepTargets', Effect: 'Allow', Action: 'sqs:SendMessage', Resource: g.sweepQueueArn, Condition: from }] : []),
          // The event source mapping and the on-failure destination act outside the function's
          // environment (no source function ARN).
          {
            Sid: 'ConsumeQueue',
            Effect: 'Allow',
            Action: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'],
            Resource: g.sweepQueueArn ? [g.queueArn, g.sweepQueueArn] : g.queueArn,
          },
          { Sid: 'OnFailureDestination', Effect: 'Allow', Action: 'sqs:SendMessage', Resource: g.eventsDlqArn },
          {
            Sid: 'OwnLogGroup',
            Effect: 'Allow',
            Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
            Resource: logGroupArn('detector'),
            Condition: from,
          },
        ],
      },
    },
  ];
}

/** The integrity check compares the live functions with the baseline parameter. */
function integrityStatements() {
  const from = fromFunction('detector');
  return [
    {
      Sid: 'IntegrityCheckReadsBothFunctions',
      Effect: 'Allow',
      Action: [
        'lambda:GetFunction',
        'lambda:ListAliases',
        'lambda:GetFunctionUrlConfig',
        'lambda:GetPolicy',
        'lambda:GetFunctionConcurrency',
      ],
      Resource: [
        functionArn('launcher'),
        qualifiedFunctionArns('launcher'),
        functionArn('detector'),
        qualifiedFunctionArns('detector'),
      ],
      Condition: from,
    },
    {
      Sid: 'IntegrityCheckListsEventSourceMappings',
      Effect: 'Allow',
      Action: 'lambda:ListEventSourceMappings',
      // ListEventSourceMappings has no resource type.
      Resource: '*',
      Condition: from,
    },
    {
      Sid: 'IntegrityCheckReadsTheBaseline',
      Effect: 'Allow',
      Action: 'ssm:GetParameter',
      Resource: baselineParameterArn(),
      Condition: from,
    },
  ];
}

/**
 * The optional destinations and the sweep of other accounts and regions, each present only
 * under its condition (the parameters' names are the SAM template's).
 */
export function detectorOptionalStatements(organizationId?: string) {
  const from = fromFunction('detector');
  return [
    onlyIf('HasChatTopic', { Sid: 'PublishToChat', Effect: 'Allow', Action: 'sns:Publish', Resource: Fn.ref('ChatTopicArn'), Condition: from }),
    onlyIf('SecurityHubEnabled', {
      Sid: 'ImportFindingsIntoSecurityHub',
      Effect: 'Allow',
      Action: 'securityhub:BatchImportFindings',
      Resource: Fn.sub('arn:${AWS::Partition}:securityhub:${AWS::Region}:${AWS::AccountId}:product/${AWS::AccountId}/default'),
      Condition: from,
    }),
    onlyIf('HasEventBus', {
      Sid: 'PutFindingsOnTheEventBus',
      Effect: 'Allow',
      Action: 'events:PutEvents',
      Resource: Fn.sub('arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}'),
      Condition: from,
    }),
    // The read-only sweep role of every other account, by name.
    onlyIf('SweepsOtherAccounts', {
      Sid: 'AssumeTheSweepRole',
      Effect: 'Allow',
      Action: 'sts:AssumeRole',
      Resource: Fn.sub('arn:${AWS::Partition}:iam::*:role/${SweepRoleName}'),
      // In an organization: only roles of its accounts.
      Condition: organizationId ? { StringEquals: { 'aws:ResourceOrgID': organizationId }, ...from } : from,
    }),
    // In an organization: the Security Hub import role of every other account, by name (only
    // with SecurityHub on and SecurityHubImportRoleName set; the security stack declares both).
    ...(organizationId
      ? [onlyIf('ImportsFindingsInEachAccount', {
        Sid: 'AssumeTheSecurityHubImportRole',
        Effect: 'Allow',
        Action: 'sts:AssumeRole',
        Resource: Fn.sub('arn:${AWS::Partition}:iam::*:role/${SecurityHubImportRoleName}'),
        Condition: { StringEquals: { 'aws:ResourceOrgID': organizationId }, ...from },
      })]
      : []),
    onlyIf('SweepsOrganization', {
      Sid: 'ListOrganizationAccounts',
      Effect: 'Allow',
      Action: 'organizations:ListAccounts',
      Resource: '*',
      Condition: from,
    }),
    onlyIf('SweepsEnabledRegions', {
      Sid: 'ListEnabledRegions',
      Effect: 'Allow',
      Action: 'account:ListRegions',
      Resource: Fn.sub('arn:${AWS::Partition}:account::${AWS::AccountId}:account'),
      Condition: from,
    }),
  ];
}

/**
 * Suspend/Terminate of any image's MicroVM in this region, for the sweep's remediation: from
 * the detector function (its own role), or with no source function (the sweep role of a
 * member account, assumed by the detector in another account).
 */
export function remediationDocument(fromDetector = true) {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'RemediateUnmanagedMicrovms',
        Effect: 'Allow',
        Action: ['lambda:SuspendMicrovm', 'lambda:TerminateMicrovm'],
        Resource: Fn.sub('arn:${AWS::Partition}:lambda:${AWS::Region}:*:microvm-image:*'),
        ...(fromDetector ? { Condition: fromFunction('detector') } : {}),
      },
    ],
  };
}
