/**
 * The MicroVM governance stack in CDK: the same resources, parameters, conditions and
 * logical ids as infra/sam/template.yaml after the SAM transform, so that the cfn-guard rules
 * apply to both and infra/tests/parity.py can compare them property by property. Keep the two
 * in step.
 *
 * Mostly L1 constructs, so that what is synthesized is what the SAM template says; the
 * functions are cargo-lambda-cdk RustFunctions (they build the binaries). The documents live
 * beside this file: names.ts (ARNs from NamePrefix), roles.ts (execution roles),
 * prevention.ts (deny policy, table, key and bucket policies), event-patterns.ts.
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  Annotations,
  Aws,
  CfnCondition,
  CfnMapping,
  CfnOutput,
  CfnParameter,
  CfnResource,
  Duration,
  Fn,
  RemovalPolicy,
  Stack,
  StackProps,
  Token,
} from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as cloudtrail from 'aws-cdk-lib/aws-cloudtrail';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import { GOVERNED_CALLS_PATTERN, tamperEventsPattern } from './event-patterns';
import { computedTrailBucketName, functionArn, ruleArn } from './names';
import {
  PreventionParams,
  alertKeyPolicy,
  denyPolicyDocument,
  tableResourcePolicy,
  tokenKeyPolicy,
  trailBucketChangesStatement,
} from './prevention';
import { detectorConditions, detectorParameters } from './detector-settings';
import { detectorPolicies, lambdaTrust, launcherPolicies, remediationDocument } from './roles';

/** Repository root (infra/cdk/build/lib -> ../../../..; infra/cdk/lib -> ../../..). */
function repoRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'Cargo.toml')) && fs.existsSync(path.join(dir, 'infra'))) {
      return dir;
    }
    dir = path.dirname(dir);
  }
  throw new Error(`cannot find the repository root (Cargo.toml + infra/) above ${__dirname}`);
}

/** Pin the logical id of an L2 construct's CloudFormation resource. */
function pin(construct: Construct, logicalId: string): CfnResource {
  const cfn = construct.node.defaultChild as CfnResource;
  cfn.overrideLogicalId(logicalId);
  return cfn;
}

/**
 * The integrity baseline the sweep compares the live functions with (under SSM's 4 KB): the
 * same text as the SAM template's IntegrityBaselineParameter.
 */
const BASELINE_TEMPLATE =
  '{"schema":1,"functions":[{"kind":"launcher","function_arn":"${LauncherArn}","version_arn":"${LauncherVersionArn}","execution_role_arn":"${LauncherRoleArn}","aliases":{"live":"${LauncherVersion}"${WebhookAlias}},"url_auth_types":{"live":"AWS_IAM"${WebhookUrl}},"reserved_concurrency":${LauncherReservedConcurrency},"event_source_arns":[],"permissions":[{"principal":"events.amazonaws.com","action":"lambda:InvokeFunction","qualifier":"live","source_arn":"${RuleArnPrefix}-reconciler"}${WebhookPermissions}]},{"kind":"detector","function_arn":"${DetectorArn}","version_arn":"${DetectorVersionArn}","execution_role_arn":"${DetectorRoleArn}","aliases":{"live":"${DetectorVersion}"},"url_auth_types":{},"reserved_concurrency":${DetectorReservedConcurrency},"event_source_arns":["${DetectorQueueArn}"],"permissions":[{"principal":"events.amazonaws.com","action":"lambda:InvokeFunction","qualifier":"live","source_arn":"${RuleArnPrefix}-sweep"},{"principal":"events.amazonaws.com","action":"lambda:InvokeFunction","qualifier":"live","source_arn":"${RuleArnPrefix}-governed-calls"},{"principal":"events.amazonaws.com","action":"lambda:InvokeFunction","qualifier":"live","source_arn":"${RuleArnPrefix}-tamper-events"}]}]}';

const LOG_RETENTION_DAYS = [30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
const ROLE_ARN_PATTERN = '^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$';

export class GovernanceStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    const root = repoRoot();
    // CDK's synth-time validator flags two things that are deliberate here:
    // W2509: *SecretArn parameters name a secret's ARN; they hold no secret, so NoEcho would
    //        only hide which secret is used.
    // W1001: outputs like Fn::If [CreateApiKeySecret, Ref Contro1ApiKeySecret, ...] reference
    //        the conditional secret only in the branch guarded by its own condition.
    Annotations.of(this).acknowledgeWarning('CloudFormation-Validate::W2509', 'secret ARN parameters hold no secret');
    Annotations.of(this).acknowledgeWarning('CloudFormation-Validate::W1001', 'reference guarded by its own condition');

    // ------------------------------------------------------------------ parameters
    const param = (name: string, p: ConstructorParameters<typeof CfnParameter>[2]) => {
      const cp = new CfnParameter(this, name, p);
      cp.overrideLogicalId(name);
      return cp;
    };
    const deploymentRole = param('DeploymentRoleArn', {
      type: 'String',
      allowedPattern: ROLE_ARN_PATTERN,
      description: 'Role that deploys the stack (CloudFormation execution or pipeline role); the only one that changes or passes it.',
    });
    const breakGlassRole = param('BreakGlassRoleArn', {
      type: 'String',
      allowedPattern: ROLE_ARN_PATTERN,
      description: 'Emergency role exempt from the deny policy besides the deployment role; its changes are alerted.',
    });
    param('NamePrefix', {
      type: 'String',
      default: 'microvm-gov',
      allowedPattern: '^[a-z][a-z0-9-]{1,20}$',
      description: 'Lower-case prefix of every name the stack creates.',
    });
    const existingBucket = param('ExistingTrailBucketName', {
      type: 'String',
      default: '',
      description: 'Existing bucket a trail delivers to. Empty: the stack creates a bucket and a trail with MicroVM data events.',
    });
    const existingKmsKey = param('ExistingTrailKmsKeyArn', {
      type: 'String',
      default: '',
      description: 'KMS key ARN the existing trail encrypts its log files with, if any.',
    });
    const existingTopic = param('ExistingNotificationTopicArn', {
      type: 'String',
      default: '',
      description: 'Optional SNS topic announcing new log files; the detector queue subscribes to it.',
    });
    const contro1BaseUrl = param('Contro1BaseUrl', {
      type: 'String',
      default: 'https://api.contro1.com/api/centcom/v1',
      allowedPattern: '^https://[^\\s]+$',
      description: 'Contro1 API base URL (https only).',
    });
    const apiKeySecretArn = param('Contro1ApiKeySecretArn', {
      type: 'String',
      default: '',
      description: 'Existing Secrets Manager secret with the Contro1 API key. Empty: one is created.',
    });
    const webhookSecretArn = param('Contro1WebhookSecretArn', {
      type: 'String',
      default: '',
      description: 'Existing Secrets Manager secret with the Contro1 webhook secret. Empty: one is created.',
    });
    const publicUrl = param('LauncherPublicUrl', {
      type: 'String',
      default: '',
      allowedPattern: '^$|^https://[^\\s]+[^/\\s]$',
      description: 'Base URL Contro1 calls back; set it to the Contro1WebhookUrl output after the first deploy.',
    });
    const enableWebhookUrl = param('EnableContro1WebhookUrl', { type: 'String', default: 'true', allowedValues: ['true', 'false'] });
    const allowedAgentIds = param('AllowedAgentIds', { type: 'String', default: '' });
    const allowedImageArns = param('AllowedImageArns', {
      type: 'CommaDelimitedList',
      description: 'microvm-image ARNs agents may run; the only images the launcher acts on, changed only by the deployer.',
    });
    const allowedExecRoles = param('AllowedExecutionRoleArns', {
      type: 'CommaDelimitedList',
      description: 'Execution roles MicroVMs may run as; the only roles the launcher may pass.',
    });
    const prodExecRoles = param('ProductionExecutionRoleArns', { type: 'String', default: '' });
    const connectorArns = param('AllowedNetworkConnectorArns', {
      type: 'CommaDelimitedList',
      default: 'arn:aws:lambda:*:aws:network-connector:*',
    });
    const maxAutoApprove = param('MaxAutoApproveDurationSeconds', { type: 'Number', default: 3600, minValue: 1, maxValue: 28800 });
    const maxTokenTtl = param('MaxTokenTtlSeconds', { type: 'Number', default: 900, minValue: 60 });
    const tokenPorts = param('AllowedTokenPorts', { type: 'String', default: '8080' });
    const requiredRole = param('DefaultRequiredRole', { type: 'String', default: 'security' });
    const slaMinutes = param('DefaultSlaMinutes', { type: 'Number', default: 60, minValue: 1 });
    const executingTimeout = param('ExecutingTimeoutSeconds', { type: 'Number', default: 960, minValue: 60, maxValue: 86400 });
    const approvalsPerMinute = param('ApprovalRequestsPerMinute', { type: 'Number', default: 30, minValue: 1, maxValue: 10000 });
    const tombstoneRetention = param('TombstoneRetentionSeconds', { type: 'Number', default: 2592000, minValue: 86400 });
    const launcherConfig = param('LauncherConfigPath', { type: 'String', default: '' });
    const remediation = param('Remediation', {
      type: 'String',
      default: 'off',
      allowedValues: ['off', 'dry-run', 'suspend', 'terminate'],
      description: 'What the sweep does to an unmanaged MicroVM; only suspend and terminate grant Suspend/Terminate.',
    });
    const detectorSettings = detectorParameters(param);
    const sweepMinutes = param('SweepIntervalMinutes', { type: 'Number', default: '5', allowedValues: ['2', '5', '10', '15', '30', '60'] });
    const heartbeat = param('HeartbeatMaxSilenceSeconds', { type: 'Number', default: 1800, minValue: 300, maxValue: 86400 });
    const alertEmail = param('AlertEmail', { type: 'String', default: '' });
    const launcherConcurrency = param('LauncherReservedConcurrency', { type: 'Number', default: 20, minValue: 1 });
    const detectorConcurrency = param('DetectorReservedConcurrency', { type: 'Number', default: 5, minValue: 1 });
    const logRetention = param('LogRetentionDays', {
      type: 'Number',
      default: '365',
      allowedValues: LOG_RETENTION_DAYS.map(String),
    });
    const athenaDb = param('AthenaDatabase', { type: 'String', default: 'default' });
    param('AthenaCloudTrailTable', { type: 'String', default: 'cloudtrail_logs' });

    // Alarm periods are seconds; the schedule is minutes.
    new CfnMapping(this, 'SweepIntervals', {
      mapping: Object.fromEntries([2, 5, 10, 15, 30, 60].map((m) => [String(m), { Seconds: m * 60 }])),
    }).overrideLogicalId('SweepIntervals');

    // ------------------------------------------------------------------ conditions
    const cond = (name: string, expression: ReturnType<typeof Fn.conditionEquals>) => {
      const c = new CfnCondition(this, name, { expression });
      c.overrideLogicalId(name);
      return c;
    };
    const createTrail = cond('CreateTrail', Fn.conditionEquals(existingBucket.valueAsString, ''));
    const hasKmsKey = cond('HasTrailKmsKey', Fn.conditionNot(Fn.conditionEquals(existingKmsKey.valueAsString, '')));
    const hasTopic = cond('HasNotificationTopic', Fn.conditionNot(Fn.conditionEquals(existingTopic.valueAsString, '')));
    const createApiKey = cond('CreateApiKeySecret', Fn.conditionEquals(apiKeySecretArn.valueAsString, ''));
    const createWebhookSecret = cond('CreateWebhookSecret', Fn.conditionEquals(webhookSecretArn.valueAsString, ''));
    const hasEmail = cond('HasAlertEmail', Fn.conditionNot(Fn.conditionEquals(alertEmail.valueAsString, '')));
    const hasConfig = cond('HasLauncherConfig', Fn.conditionNot(Fn.conditionEquals(launcherConfig.valueAsString, '')));
    // dry-run only reports: no Suspend/Terminate grant.
    const remediationEnabled = cond('RemediationEnabled', Fn.conditionOr(
      Fn.conditionEquals(remediation.valueAsString, 'suspend'),
      Fn.conditionEquals(remediation.valueAsString, 'terminate'),
    ));
    detectorConditions(cond);
    const webhookUrlEnabled = cond('WebhookUrlEnabled', Fn.conditionEquals(enableWebhookUrl.valueAsString, 'true'));
    const ifCond = (c: CfnCondition, a: unknown, b: unknown) => Fn.conditionIf(c.logicalId, a, b).toString();

    const trailBucketName = ifCond(createTrail, computedTrailBucketName(), existingBucket.valueAsString);
    const prevention: PreventionParams = {
      deploymentRoleArn: deploymentRole.valueAsString,
      breakGlassRoleArn: breakGlassRole.valueAsString,
      allowedImageArns: allowedImageArns.valueAsList,
      allowedNetworkConnectorArns: connectorArns.valueAsList,
      trailBucketName,
    };

    // ------------------------------------------------------------------ data
    const table = (id: string, name: 'ledger' | 'pending' | 'dedupe', ttl: boolean, retain: boolean, policy: object,
                   index?: dynamodb.CfnTable.GlobalSecondaryIndexProperty) => {
      const t = new dynamodb.CfnTable(this, id, {
        tableName: Fn.sub(`\${NamePrefix}-${name}`),
        billingMode: 'PAY_PER_REQUEST',
        attributeDefinitions: [
          { attributeName: 'pk', attributeType: 'S' },
          ...(index ? [{ attributeName: 'executing', attributeType: 'S' }, { attributeName: 'executing_since', attributeType: 'N' }] : []),
        ],
        keySchema: [{ attributeName: 'pk', keyType: 'HASH' }],
        globalSecondaryIndexes: index ? [index] : undefined,
        sseSpecification: { sseEnabled: true },
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        timeToLiveSpecification: ttl ? { attributeName: 'expires_at', enabled: true } : undefined,
        resourcePolicy: policy as dynamodb.CfnTable.ResourcePolicyProperty,
      });
      if (retain) t.applyRemovalPolicy(RemovalPolicy.RETAIN);
      return t;
    };
    // The ledger is the authoritative record: no TTL, retained.
    const ledger = table('LedgerTable', 'ledger', false, true,
      tableResourcePolicy(prevention, 'ledger', 'OnlyTheLauncherWritesTheLedger', 'launcher', 'OnlyTheDeployerChangesTheLedger'));
    const pending = table('PendingTable', 'pending', true, true,
      tableResourcePolicy(prevention, 'pending', 'OnlyTheLauncherWritesPendingApprovals', 'launcher', 'OnlyTheDeployerChangesPendingApprovals'),
      // Sparse: only executing items carry `executing`; the reconciler queries it.
      {
        indexName: 'executing-index',
        keySchema: [{ attributeName: 'executing', keyType: 'HASH' }, { attributeName: 'executing_since', keyType: 'RANGE' }],
        projection: { projectionType: 'KEYS_ONLY' },
      });
    const dedupe = table('DedupeTable', 'dedupe', true, false,
      tableResourcePolicy(prevention, 'dedupe', 'OnlyTheDetectorWritesDedupeMarks', 'detector', 'OnlyTheDeployerChangesDedupe'));

    // ------------------------------------------------------------------ secrets
    const apiKeySecret = new secretsmanager.CfnSecret(this, 'Contro1ApiKeySecret', {
      description: 'Contro1 API key (bearer). Put the real value after deploying.',
      generateSecretString: { passwordLength: 32, excludePunctuation: true },
    });
    apiKeySecret.cfnOptions.condition = createApiKey;
    const webhookSecret = new secretsmanager.CfnSecret(this, 'Contro1WebhookSecret', {
      description: "Contro1 webhook HMAC secret. Put the organization's value after deploying.",
      generateSecretString: { passwordLength: 48, excludePunctuation: true },
    });
    webhookSecret.cfnOptions.condition = createWebhookSecret;
    const apiKeyArn = ifCond(createApiKey, apiKeySecret.ref, apiKeySecretArn.valueAsString);
    const webhookArn = ifCond(createWebhookSecret, webhookSecret.ref, webhookSecretArn.valueAsString);

    // ------------------------------------------------------------------ alerting
    // CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS key.
    const alertKey = new kms.CfnKey(this, 'AlertKey', {
      description: 'Encrypts the MicroVM governance alert topic.',
      enableKeyRotation: true,
      keyPolicy: alertKeyPolicy(prevention),
    });
    // Seals the tokens pending approvals hold; only the launcher role may use it.
    const tokenKey = new kms.CfnKey(this, 'TokenKey', {
      description: 'Seals the MicroVM auth tokens the launcher holds for pending approvals.',
      enableKeyRotation: true,
      keyPolicy: tokenKeyPolicy(prevention),
    });
    tokenKey.applyRemovalPolicy(RemovalPolicy.RETAIN);
    new kms.CfnAlias(this, 'TokenKeyAlias', { aliasName: Fn.sub('alias/${NamePrefix}-tokens'), targetKeyId: tokenKey.ref });
    new kms.CfnAlias(this, 'AlertKeyAlias', { aliasName: Fn.sub('alias/${NamePrefix}-alerts'), targetKeyId: alertKey.ref });
    const alertTopic = new sns.CfnTopic(this, 'AlertTopic', {
      topicName: Fn.sub('${NamePrefix}-alerts'),
      displayName: 'MicroVM governance alerts',
      kmsMasterKeyId: alertKey.attrArn,
    });
    const emailSub = new sns.CfnSubscription(this, 'AlertEmailSubscription', {
      topicArn: alertTopic.ref,
      protocol: 'email',
      endpoint: alertEmail.valueAsString,
    });
    emailSub.cfnOptions.condition = hasEmail;

    // ------------------------------------------------------------------ delivery queues
    const dlq = new sqs.CfnQueue(this, 'DetectorDeadLetterQueue', {
      queueName: Fn.sub('${NamePrefix}-detector-dlq'),
      messageRetentionPeriod: 1209600,
      sqsManagedSseEnabled: true,
    });
    const queue = new sqs.CfnQueue(this, 'DetectorQueue', {
      queueName: Fn.sub('${NamePrefix}-detector'),
      // Six times the detector timeout, as Lambda recommends for SQS event sources.
      visibilityTimeout: 720,
      messageRetentionPeriod: 345600,
      sqsManagedSseEnabled: true,
      redrivePolicy: { deadLetterTargetArn: dlq.attrArn, maxReceiveCount: 5 },
    });
    // Failed EventBridge deliveries and failed asynchronous detector invocations.
    const eventsDlq = new sqs.CfnQueue(this, 'DetectorEventsDeadLetterQueue', {
      queueName: Fn.sub('${NamePrefix}-detector-events-dlq'),
      messageRetentionPeriod: 1209600,
      sqsManagedSseEnabled: true,
    });
    const denyInsecure = (arn: string) => ({
      Sid: 'DenyInsecureTransport',
      Effect: 'Deny',
      Principal: '*',
      Action: 'sqs:*',
      Resource: arn,
      Condition: { Bool: { 'aws:SecureTransport': 'false' } },
    });
    new sqs.CfnQueuePolicy(this, 'DetectorEventsDeadLetterQueuePolicy', {
      queues: [eventsDlq.ref],
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'FailedDeliveriesOfTheDetectorRules',
            Effect: 'Allow',
            Principal: { Service: 'events.amazonaws.com' },
            Action: 'sqs:SendMessage',
            Resource: eventsDlq.attrArn,
            Condition: {
              ArnEquals: { 'aws:SourceArn': [ruleArn('sweep'), ruleArn('governed-calls'), ruleArn('tamper-events'), ruleArn('reconciler')] },
            },
          },
          denyInsecure(eventsDlq.attrArn),
        ],
      },
    });
    const queuePolicy = new sqs.CfnQueuePolicy(this, 'DetectorQueuePolicy', {
      queues: [queue.ref],
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'S3ObjectCreatedFromTheTrailBucket',
            Effect: 'Allow',
            Principal: { Service: 's3.amazonaws.com' },
            Action: 'sqs:SendMessage',
            Resource: queue.attrArn,
            Condition: { ArnLike: { 'aws:SourceArn': Fn.sub('arn:${AWS::Partition}:s3:::${Bucket}', { Bucket: trailBucketName }) } },
          },
          Fn.conditionIf(
            hasTopic.logicalId,
            {
              Sid: 'SnsFanOutOrCloudTrailNotification',
              Effect: 'Allow',
              Principal: { Service: 'sns.amazonaws.com' },
              Action: 'sqs:SendMessage',
              Resource: queue.attrArn,
              Condition: { ArnEquals: { 'aws:SourceArn': existingTopic.valueAsString } },
            },
            Aws.NO_VALUE,
          ),
          denyInsecure(queue.attrArn),
        ],
      },
    });
    const topicSub = new sns.CfnSubscription(this, 'NotificationTopicSubscription', {
      topicArn: existingTopic.valueAsString,
      protocol: 'sqs',
      endpoint: queue.attrArn,
    });
    topicSub.cfnOptions.condition = hasTopic;

    // ------------------------------------------------------------------ created trail (optional)
    const trailArn = Fn.sub('arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/${NamePrefix}-trail');
    const trailBucket = new s3.CfnBucket(this, 'TrailBucket', {
      bucketName: computedTrailBucketName(),
      bucketEncryption: { serverSideEncryptionConfiguration: [{ serverSideEncryptionByDefault: { sseAlgorithm: 'AES256' } }] },
      publicAccessBlockConfiguration: {
        blockPublicAcls: true,
        blockPublicPolicy: true,
        ignorePublicAcls: true,
        restrictPublicBuckets: true,
      },
      ownershipControls: { rules: [{ objectOwnership: 'BucketOwnerEnforced' }] },
      versioningConfiguration: { status: 'Enabled' },
      notificationConfiguration: {
        queueConfigurations: [
          {
            event: 's3:ObjectCreated:*',
            queue: queue.attrArn,
            filter: { s3Key: { rules: [{ name: 'prefix', value: 'AWSLogs/' }, { name: 'suffix', value: '.json.gz' }] } },
          },
        ],
      },
    });
    trailBucket.cfnOptions.condition = createTrail;
    trailBucket.applyRemovalPolicy(RemovalPolicy.RETAIN);
    // S3 checks the queue policy when the notification is configured.
    trailBucket.addDependency(queuePolicy);

    const bucketPolicy = new s3.CfnBucketPolicy(this, 'TrailBucketPolicy', {
      bucket: trailBucket.ref,
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'AWSCloudTrailAclCheck',
            Effect: 'Allow',
            Principal: { Service: 'cloudtrail.amazonaws.com' },
            Action: 's3:GetBucketAcl',
            Resource: trailBucket.attrArn,
            Condition: { StringEquals: { 'aws:SourceArn': trailArn } },
          },
          {
            Sid: 'AWSCloudTrailWrite',
            Effect: 'Allow',
            Principal: { Service: 'cloudtrail.amazonaws.com' },
            Action: 's3:PutObject',
            Resource: Fn.sub('${TrailBucket.Arn}/AWSLogs/${AWS::AccountId}/*'),
            Condition: { StringEquals: { 's3:x-amz-acl': 'bucket-owner-full-control', 'aws:SourceArn': trailArn } },
          },
          {
            Sid: 'DenyInsecureTransport',
            Effect: 'Deny',
            Principal: '*',
            Action: 's3:*',
            Resource: [trailBucket.attrArn, Fn.sub('${TrailBucket.Arn}/*')],
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          },
          trailBucketChangesStatement(prevention, trailBucket.attrArn),
        ],
      },
    });
    bucketPolicy.cfnOptions.condition = createTrail;

    const trail = new cloudtrail.CfnTrail(this, 'Trail', {
      trailName: Fn.sub('${NamePrefix}-trail'),
      s3BucketName: trailBucket.ref,
      isLogging: true,
      isMultiRegionTrail: true,
      includeGlobalServiceEvents: true,
      enableLogFileValidation: true,
      advancedEventSelectors: [
        { name: 'Management events', fieldSelectors: [{ field: 'eventCategory', equalTo: ['Management'] }] },
        // The six governed MicroVM operations are data events on the image resource.
        {
          name: 'Lambda MicroVM data events',
          fieldSelectors: [
            { field: 'eventCategory', equalTo: ['Data'] },
            { field: 'resources.type', equalTo: ['AWS::Lambda::MicrovmImage'] },
          ],
        },
      ],
    });
    trail.cfnOptions.condition = createTrail;
    trail.addDependency(bucketPolicy);

    // ------------------------------------------------------------------ launcher
    const launcherRole = new iam.CfnRole(this, 'LauncherRole', {
      path: Fn.sub('/${NamePrefix}/launcher/'),
      description: 'The only principal allowed to run MicroVMs and issue their tokens.',
      assumeRolePolicyDocument: lambdaTrust(),
      policies: launcherPolicies({
        allowedImageArns: allowedImageArns.valueAsList,
        allowedExecutionRoleArns: allowedExecRoles.valueAsList,
        allowedNetworkConnectorArns: connectorArns.valueAsList,
        apiKeySecretArn: apiKeyArn,
        webhookSecretArn: webhookArn,
        tokenKeyArn: tokenKey.attrArn,
        eventsDlqArn: eventsDlq.attrArn,
      }),
    });
    const logGroup = (id: string, kind: string) => {
      const g = new logs.CfnLogGroup(this, id, {
        logGroupName: Fn.sub(`/aws/lambda/\${NamePrefix}-${kind}`),
        retentionInDays: logRetention.valueAsNumber,
      });
      g.applyRemovalPolicy(RemovalPolicy.RETAIN);
      return g;
    };
    const launcherLogs = logGroup('LauncherLogGroup', 'launcher');

    const commonEnv = {
      RUST_LOG: 'info',
      CONTRO1_BASE_URL: contro1BaseUrl.valueAsString,
      CONTRO1_API_KEY_SECRET_ARN: apiKeyArn,
      LEDGER_TABLE: ledger.ref,
    };
    const rustFunction = (id: string, binary: string, role: iam.CfnRole, logGroupRes: logs.CfnLogGroup,
                          fnProps: Omit<lambda.FunctionOptions, 'role'>) => {
      const fn = new RustFunction(this, id, {
        manifestPath: path.join(root, 'Cargo.toml'),
        binaryName: binary,
        architecture: lambda.Architecture.ARM_64,
        role: iam.Role.fromRoleArn(this, `${id}RoleRef`, role.attrArn, { mutable: false }),
        // Published versions stay when a newer one replaces them (rollback, and the baseline).
        currentVersionOptions: { removalPolicy: RemovalPolicy.RETAIN },
        ...fnProps,
      });
      const cfn = pin(fn, id);
      cfn.addPropertyOverride('LoggingConfig', { LogGroup: logGroupRes.ref, LogFormat: 'Text' });
      // Every deploy publishes a version; the alias `live` points at it (SAM: AutoPublishAlias).
      const version = fn.currentVersion;
      const versionRef = (version.node.defaultChild as lambda.CfnVersion).ref;
      const live = new lambda.CfnAlias(this, `${id}Aliaslive`, {
        name: 'live',
        functionName: fn.functionName,
        functionVersion: version.version,
      });
      live.overrideLogicalId(`${id}Aliaslive`);
      return { fn, cfn, versionRef, live };
    };

    const launcher = rustFunction('LauncherFunction', 'launcher', launcherRole, launcherLogs, {
      functionName: Fn.sub('${NamePrefix}-launcher'),
      description: 'Governed MicroVM launcher and token broker.',
      memorySize: 256,
      timeout: Duration.seconds(30),
      reservedConcurrentExecutions: launcherConcurrency.valueAsNumber,
      environment: {
        ...commonEnv,
        PENDING_TABLE: pending.ref,
        CONTRO1_WEBHOOK_SECRET_ARN: webhookArn,
        LAUNCHER_PUBLIC_URL: publicUrl.valueAsString,
        ALLOWED_AGENT_IDS: allowedAgentIds.valueAsString,
        ALLOWED_IMAGE_ARNS: Fn.join(',', allowedImageArns.valueAsList),
        ALLOWED_EXECUTION_ROLE_ARNS: Fn.join(',', allowedExecRoles.valueAsList),
        PRODUCTION_EXECUTION_ROLE_ARNS: prodExecRoles.valueAsString,
        MAX_AUTO_APPROVE_DURATION_SECONDS: maxAutoApprove.valueAsString,
        MAX_TOKEN_TTL_SECONDS: maxTokenTtl.valueAsString,
        ALLOWED_TOKEN_PORTS: tokenPorts.valueAsString,
        DEFAULT_REQUIRED_ROLE: requiredRole.valueAsString,
        DEFAULT_SLA_MINUTES: slaMinutes.valueAsString,
        TOKEN_KMS_KEY_ID: tokenKey.attrArn,
        PENDING_EXECUTING_INDEX: 'executing-index',
        EXECUTING_TIMEOUT_SECONDS: executingTimeout.valueAsString,
        APPROVAL_REQUESTS_PER_MINUTE: approvalsPerMinute.valueAsString,
        TOMBSTONE_RETENTION_SECONDS: tombstoneRetention.valueAsString,
      },
    });
    // LAUNCHER_CONFIG only when a path is given (Fn::If with AWS::NoValue drops the key).
    launcher.cfn.addPropertyOverride(
      'Environment.Variables.LAUNCHER_CONFIG',
      Fn.conditionIf(hasConfig.logicalId, launcherConfig.valueAsString, Aws.NO_VALUE),
    );
    const launcherVersionNumber = Fn.select(7, Fn.split(':', launcher.versionRef));
    const launcherUrl = new lambda.CfnUrl(this, 'LauncherFunctionUrl', {
      targetFunctionArn: launcher.live.ref,
      authType: 'AWS_IAM',
    });

    // Contro1 cannot sign with SigV4: its webhook reaches the launcher through a second URL on
    // the alias `contro1-webhook` (at the published version), where the launcher serves only
    // the HMAC-verified callback.
    const webhookAlias = new lambda.CfnAlias(this, 'LauncherWebhookAlias', {
      functionName: launcher.fn.functionName,
      functionVersion: launcherVersionNumber,
      name: 'contro1-webhook',
    });
    webhookAlias.cfnOptions.condition = webhookUrlEnabled;
    const webhookUrl = new lambda.CfnUrl(this, 'LauncherWebhookUrl', {
      targetFunctionArn: launcher.fn.functionName,
      qualifier: 'contro1-webhook',
      authType: 'NONE',
    });
    webhookUrl.cfnOptions.condition = webhookUrlEnabled;
    webhookUrl.addDependency(webhookAlias);
    const webhookPermission = new lambda.CfnPermission(this, 'LauncherWebhookUrlPermission', {
      functionName: webhookAlias.ref,
      action: 'lambda:InvokeFunctionUrl',
      principal: '*',
      functionUrlAuthType: 'NONE',
    });
    webhookPermission.cfnOptions.condition = webhookUrlEnabled;
    // Since October 2025 a public URL also needs lambda:InvokeFunction; InvokedViaFunctionUrl
    // limits it to calls through the URL.
    const webhookInvoke = new lambda.CfnPermission(this, 'LauncherWebhookInvokePermission', {
      functionName: webhookAlias.ref,
      action: 'lambda:InvokeFunction',
      principal: '*',
      invokedViaFunctionUrl: true,
    });
    webhookInvoke.cfnOptions.condition = webhookUrlEnabled;

    // ------------------------------------------------------------------ detector
    const detectorRole = new iam.CfnRole(this, 'DetectorRole', {
      path: Fn.sub('/${NamePrefix}/detector/'),
      description: 'Reads CloudTrail, the ledger and MicroVM state; publishes findings.',
      assumeRolePolicyDocument: lambdaTrust(),
      policies: detectorPolicies({
        trailBucketName,
        trailKmsStatement: Fn.conditionIf(
          hasKmsKey.logicalId,
          { Sid: 'DecryptTrailObjects', Effect: 'Allow', Action: 'kms:Decrypt', Resource: existingKmsKey.valueAsString },
          Aws.NO_VALUE,
        ),
        alertTopicArn: alertTopic.ref,
        alertKeyArn: alertKey.attrArn,
        apiKeySecretArn: apiKeyArn,
        queueArn: queue.attrArn,
        eventsDlqArn: eventsDlq.attrArn,
      }),
    });
    const remediationPolicy = new iam.CfnPolicy(this, 'DetectorRemediationPolicy', {
      policyName: 'detector-remediation',
      roles: [detectorRole.ref],
      policyDocument: remediationDocument(),
    });
    remediationPolicy.cfnOptions.condition = remediationEnabled;
    const detectorLogs = logGroup('DetectorLogGroup', 'detector');

    const detector = rustFunction('DetectorFunction', 'detector', detectorRole, detectorLogs, {
      functionName: Fn.sub('${NamePrefix}-detector'),
      description: 'MicroVM bypass detector (CloudTrail files, API-call events, sweep).',
      memorySize: 512,
      timeout: Duration.seconds(120),
      reservedConcurrentExecutions: detectorConcurrency.valueAsNumber,
      environment: {
        ...commonEnv,
        DEDUPE_TABLE: dedupe.ref,
        ALERT_TOPIC_ARN: alertTopic.ref,
        LAUNCHER_ROLE_ARNS: launcherRole.attrArn,
        // Lambda uses the function name as the session name of its role.
        LAUNCHER_SESSION_NAMES: launcher.fn.functionName,
        REMEDIATION: remediation.valueAsString,
        ...detectorSettings,
        // The bucket the health check expects the trail to deliver to (the one read here).
        TRAIL_BUCKETS: trailBucketName,
        LAUNCHER_FUNCTIONS: functionArn('launcher'),
        // Built from the name: a function cannot reference its own ARN.
        DETECTOR_FUNCTIONS: functionArn('detector'),
        // The break-glass role is deliberately absent: its changes alert.
        DEPLOYMENT_ROLE_ARNS: deploymentRole.valueAsString,
        PROTECTED_RESOURCES: Fn.join(',', [
          Fn.sub('arn:${AWS::Partition}:s3:::${Bucket}', { Bucket: trailBucketName }),
          ledger.attrArn,
          pending.attrArn,
          dedupe.attrArn,
          ruleArn('sweep'),
          ruleArn('governed-calls'),
          ruleArn('tamper-events'),
          ruleArn('reconciler'),
          queue.attrArn,
          dlq.attrArn,
          eventsDlq.attrArn,
          alertTopic.ref,
          Fn.sub('arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/${NamePrefix}/integrity-baseline'),
          Fn.join(',', allowedImageArns.valueAsList),
        ]),
        INTEGRITY_BASELINE_PARAMETER: Fn.sub('/${NamePrefix}/integrity-baseline'),
        HEARTBEAT_MAX_SILENCE_SECONDS: heartbeat.valueAsString,
      },
    });
    // EventBridge invokes asynchronously: what still fails after two retries goes to the DLQ.
    const onFailureToDlq = (id: string, f: typeof detector) => {
      const c = new lambda.CfnEventInvokeConfig(this, `${id}EventInvokeConfig`, {
        functionName: f.fn.functionName,
        qualifier: 'live',
        maximumRetryAttempts: 2,
        maximumEventAgeInSeconds: 3600,
        destinationConfig: { onFailure: { destination: eventsDlq.attrArn } },
      });
      c.addDependency(f.live);
    };
    onFailureToDlq('DetectorFunction', detector);
    onFailureToDlq('LauncherFunction', launcher);
    new lambda.CfnEventSourceMapping(this, 'DetectorFunctionTrailObjects', {
      eventSourceArn: queue.attrArn,
      functionName: detector.live.ref,
      batchSize: 10,
      maximumBatchingWindowInSeconds: 5,
      functionResponseTypes: ['ReportBatchItemFailures'],
    });
    const rule = (id: string, props: events.CfnRuleProps, retries: number, maxAge: number, target = detector) => {
      const r = new events.CfnRule(this, id, {
        ...props,
        targets: [
          {
            arn: target.live.ref,
            id: `${id}LambdaTarget`,
            deadLetterConfig: { arn: eventsDlq.attrArn },
            retryPolicy: { maximumRetryAttempts: retries, maximumEventAgeInSeconds: maxAge },
          },
        ],
      });
      new lambda.CfnPermission(this, `${id}Permission`, {
        action: 'lambda:InvokeFunction',
        functionName: target.live.ref,
        principal: 'events.amazonaws.com',
        sourceArn: r.attrArn,
      });
      return r;
    };
    rule('DetectorFunctionSweep', {
      name: Fn.sub('${NamePrefix}-sweep'),
      description: 'MicroVM sweep, trail health and integrity check.',
      scheduleExpression: Fn.sub('rate(${SweepIntervalMinutes} minutes)'),
    }, 2, 300);
    rule('DetectorFunctionGovernedApiCalls', { name: Fn.sub('${NamePrefix}-governed-calls'), eventPattern: GOVERNED_CALLS_PATTERN }, 20, 3600);
    rule('DetectorFunctionTamperEvents', { name: Fn.sub('${NamePrefix}-tamper-events'), eventPattern: tamperEventsPattern() }, 20, 3600);
    // The launcher's reconciler: approved calls stuck executing.
    rule('LauncherFunctionReconciler', {
      name: Fn.sub('${NamePrefix}-reconciler'),
      description: "The launcher's reconciler (approved calls stuck executing).",
      scheduleExpression: 'rate(5 minutes)',
    }, 2, 300, launcher);

    // ------------------------------------------------------------------ integrity baseline
    const detectorVersionNumber = Fn.select(7, Fn.split(':', detector.versionRef));
    const baseline = new ssm.CfnParameter(this, 'IntegrityBaselineParameter', {
      name: Fn.sub('/${NamePrefix}/integrity-baseline'),
      type: 'String',
      tier: 'Standard',
      description: 'Integrity baseline of the launcher and detector functions (written on deploy).',
      value: Fn.sub(BASELINE_TEMPLATE, {
        LauncherArn: launcher.fn.functionArn,
        LauncherVersionArn: launcher.versionRef,
        LauncherVersion: launcherVersionNumber,
        LauncherRoleArn: launcherRole.attrArn,
        WebhookAlias: ifCond(webhookUrlEnabled, Fn.sub(',"contro1-webhook":"${V}"', { V: launcherVersionNumber }), ''),
        WebhookUrl: ifCond(webhookUrlEnabled, ',"contro1-webhook":"NONE"', ''),
        WebhookPermissions: ifCond(
          webhookUrlEnabled,
          ',{"principal":"*","action":"lambda:InvokeFunctionUrl","qualifier":"contro1-webhook"},{"principal":"*","action":"lambda:InvokeFunction","qualifier":"contro1-webhook"}',
          '',
        ),
        DetectorArn: detector.fn.functionArn,
        DetectorVersionArn: detector.versionRef,
        DetectorVersion: detectorVersionNumber,
        DetectorRoleArn: detectorRole.attrArn,
        DetectorQueueArn: queue.attrArn,
        RuleArnPrefix: Fn.sub('arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/${NamePrefix}'),
      }),
    });

    // ------------------------------------------------------------------ alarms
    const alarm = (id: string, name: string, description: string, metric: {
      namespace: string; metricName: string; dimension: { name: string; value: string }; statistic: string;
    }, opts: Partial<cloudwatch.CfnAlarmProps> = {}) =>
      new cloudwatch.CfnAlarm(this, id, {
        alarmName: Fn.sub(`\${NamePrefix}-${name}`),
        alarmDescription: description,
        namespace: metric.namespace,
        metricName: metric.metricName,
        dimensions: [metric.dimension],
        statistic: metric.statistic,
        period: 300,
        evaluationPeriods: 1,
        threshold: 1,
        comparisonOperator: 'GreaterThanOrEqualToThreshold',
        treatMissingData: 'notBreaching',
        alarmActions: [alertTopic.ref],
        ...opts,
      });
    const queueMetric = (metricName: string, q: sqs.CfnQueue) =>
      ({ namespace: 'AWS/SQS', metricName, dimension: { name: 'QueueName', value: q.attrQueueName }, statistic: 'Maximum' });
    const fnMetric = (metricName: string, fn: lambda.IFunction) =>
      ({ namespace: 'AWS/Lambda', metricName, dimension: { name: 'FunctionName', value: fn.functionName }, statistic: 'Sum' });
    const heartbeatMetric = (metricName: string) =>
      ({ namespace: 'MicrovmGovernance', metricName, dimension: { name: 'DetectorFunction', value: detector.fn.functionName }, statistic: 'Sum' });
    alarm('DeadLetterQueueAlarm', 'detector-dlq-not-empty', 'CloudTrail notifications the detector could not process (DLQ not empty).',
      queueMetric('ApproximateNumberOfMessagesVisible', dlq));
    alarm('EventsDeadLetterQueueAlarm', 'detector-events-dlq-not-empty',
      'EventBridge events (sweep, API calls, tamper events) the detector never processed.',
      queueMetric('ApproximateNumberOfMessagesVisible', eventsDlq));
    alarm('QueueOldestMessageAlarm', 'detector-queue-stalled',
      'A CloudTrail notification has waited 15 minutes or more (the detector is not consuming).',
      queueMetric('ApproximateAgeOfOldestMessage', queue), { threshold: 900 });
    alarm('DetectorErrorsAlarm', 'detector-errors', 'The detector failed (findings may be delayed; messages are retried).',
      fnMetric('Errors', detector.fn));
    alarm('DetectorThrottlesAlarm', 'detector-throttles', 'The detector was throttled (reserved concurrency reached, or set to 0).',
      fnMetric('Throttles', detector.fn));
    alarm('LauncherErrorsAlarm', 'launcher-errors', 'The launcher failed invocations.', fnMetric('Errors', launcher.fn));
    alarm('LauncherThrottlesAlarm', 'launcher-throttles',
      'The launcher was throttled (reserved concurrency reached, e.g. a flood on the callback URL).', fnMetric('Throttles', launcher.fn));
    // The detector's Embedded Metric Format heartbeats: no data is the failure, so it breaches.
    alarm('SweepMissedAlarm', 'sweep-did-not-run',
      'No completed sweep in two sweep intervals (rule disabled, detector broken or throttled).', heartbeatMetric('SweepRuns'), {
        period: Token.asNumber(Fn.findInMap('SweepIntervals', sweepMinutes.valueAsString, 'Seconds')),
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
        comparisonOperator: 'LessThanThreshold',
        treatMissingData: 'breaching',
      });
    alarm('NoLogObjectReadAlarm', 'no-cloudtrail-object-read',
      'The detector read no CloudTrail log object for HeartbeatMaxSilenceSeconds (notification removed, trail stopped, queue broken).',
      heartbeatMetric('LogObjectsRead'), {
        period: heartbeat.valueAsNumber,
        comparisonOperator: 'LessThanThreshold',
        treatMissingData: 'breaching',
      });

    // ------------------------------------------------------------------ prevention
    // Source of infra/policies/generate.py's SCP and boundary (via the SAM template, which
    // parity.py holds equal to this one).
    const denyPolicy = new iam.CfnManagedPolicy(this, 'DenyDirectMicrovmAccessPolicy', {
      managedPolicyName: Fn.sub('${NamePrefix}-deny-direct-microvm-access'),
      description:
        'MicroVMs only through the launcher; nobody but the deployment and break-glass roles changes the launcher, the detector, their roles, data, pipeline, alarms or the allowed images.',
      policyDocument: denyPolicyDocument(prevention),
    });

    // ------------------------------------------------------------------ Athena hunt
    const sql = fs.readFileSync(path.join(root, 'infra', 'athena', 'bypass-hunt.sql'), 'utf8');
    new athena.CfnNamedQuery(this, 'BypassHuntQuery', {
      name: Fn.sub('${NamePrefix}-microvm-bypass-hunt'),
      description: "Governed MicroVM calls not made by the launcher, with the detector's rules and severities.",
      database: athenaDb.valueAsString,
      queryString: Fn.sub(sql, {
        CloudTrailTable: Fn.sub('${AthenaDatabase}.${AthenaCloudTrailTable}'),
        LauncherRoleArn: launcherRole.attrArn,
        LauncherSessionNames: launcher.fn.functionName,
      }),
    });

    // ------------------------------------------------------------------ outputs
    const out = (name: string, value: string, description?: string, condition?: CfnCondition) => {
      const o = new CfnOutput(this, `Output${name}`, { value, description });
      o.overrideLogicalId(name);
      if (condition) o.condition = condition;
    };
    out('LauncherUrl', launcherUrl.attrFunctionUrl, "The launcher's Function URL on the alias live (AWS_IAM).");
    out('Contro1WebhookUrl', webhookUrl.attrFunctionUrl, 'Give this as LauncherPublicUrl; Contro1 POSTs to {url}/contro1/callback.',
      webhookUrlEnabled);
    out('LauncherRoleArn', launcherRole.attrArn, 'The only role allowed the governed MicroVM actions.');
    out('DetectorRoleArn', detectorRole.attrArn);
    out('DetectorQueueArn', queue.attrArn, 'Point S3 ObjectCreated notifications of an existing trail bucket here.');
    out('AlertTopicArn', alertTopic.ref);
    out('LedgerTableName', ledger.ref);
    out('PendingTableName', pending.ref);
    out('DedupeTableName', dedupe.ref);
    out('TrailBucketName', ifCond(createTrail, trailBucket.ref, existingBucket.valueAsString));
    out('IntegrityBaselineParameterName', baseline.ref);
    out('Contro1ApiKeySecretArn', apiKeyArn);
    out('Contro1WebhookSecretArn', webhookArn);
    out('DenyDirectMicrovmAccessPolicyArn', denyPolicy.ref, 'Attach to every role and user but the launcher, detector, deployment and break-glass roles.');
  }
}
