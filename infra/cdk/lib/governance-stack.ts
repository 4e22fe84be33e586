/**
 * The MicroVM governance stack in CDK: the same resources, parameters, conditions and logical
 * ids as infra/sam/template.yaml, so that the cfn-guard rules in infra/guard apply to both and
 * an operator can switch between them. Keep the two in step; infra-check.sh lints and guards
 * both.
 *
 * Logical ids the guard rules depend on are pinned with overrideLogicalId (LauncherRole,
 * LauncherWebhookUrl, DetectorRemediationPolicy, the tables, queues and trail).
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  Annotations,
  Aws,
  CfnCondition,
  CfnOutput,
  CfnParameter,
  CfnResource,
  Duration,
  Fn,
  RemovalPolicy,
  Stack,
  StackProps,
} from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as cloudtrail from 'aws-cdk-lib/aws-cloudtrail';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as eventsources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';

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

const GOVERNED_EVENT_NAMES = [
  'RunMicrovm',
  'CreateMicrovmAuthToken',
  'CreateMicrovmShellAuthToken',
  'SuspendMicrovm',
  'ResumeMicrovm',
  'TerminateMicrovm',
];

/** Pin the logical id of an L2 construct's CloudFormation resource. */
function pin(construct: Construct, logicalId: string): CfnResource {
  const cfn = construct.node.defaultChild as CfnResource;
  cfn.overrideLogicalId(logicalId);
  return cfn;
}

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
    param('NamePrefix', {
      type: 'String',
      default: 'microvm-gov',
      allowedPattern: '^[a-z][a-z0-9-]{1,20}$',
      description: 'Lower-case prefix for named resources (trail, trail bucket, IAM role path).',
    });
    const existingBucket = param('ExistingTrailBucketName', {
      type: 'String',
      default: '',
      description:
        'Existing bucket a CloudTrail trail delivers to. Empty: the stack creates a bucket and a trail that logs MicroVM data events.',
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
      description: 'Base URL Contro1 calls back; set it to the Contro1WebhookUrl output after the first deploy.',
    });
    const enableWebhookUrl = param('EnableContro1WebhookUrl', {
      type: 'String',
      default: 'true',
      allowedValues: ['true', 'false'],
    });
    const allowedAgentIds = param('AllowedAgentIds', { type: 'String', default: '' });
    const allowedImageArns = param('AllowedImageArns', {
      type: 'CommaDelimitedList',
      description: 'microvm-image ARNs agents may run; the only RunMicrovm resources of the launcher role.',
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
    const maxAutoApprove = param('MaxAutoApproveDurationSeconds', {
      type: 'Number',
      default: 3600,
      minValue: 1,
      maxValue: 28800,
    });
    const maxTokenTtl = param('MaxTokenTtlSeconds', { type: 'Number', default: 900, minValue: 60 });
    const tokenPorts = param('AllowedTokenPorts', { type: 'String', default: '8080' });
    const requiredRole = param('DefaultRequiredRole', { type: 'String', default: 'security' });
    const slaMinutes = param('DefaultSlaMinutes', { type: 'Number', default: 60, minValue: 1 });
    const launcherConfig = param('LauncherConfigPath', { type: 'String', default: '' });
    const remediation = param('Remediation', {
      type: 'String',
      default: 'off',
      allowedValues: ['off', 'suspend', 'terminate'],
    });
    const graceSeconds = param('RemediationGraceSeconds', { type: 'Number', default: 300, minValue: 0 });
    const sweepSchedule = param('SweepSchedule', { type: 'String', default: 'rate(5 minutes)' });
    const alertEmail = param('AlertEmail', { type: 'String', default: '' });
    const athenaDb = param('AthenaDatabase', { type: 'String', default: 'default' });
    param('AthenaCloudTrailTable', { type: 'String', default: 'cloudtrail_logs' });

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
    const remediationEnabled = cond(
      'RemediationEnabled',
      Fn.conditionNot(Fn.conditionEquals(remediation.valueAsString, 'off')),
    );
    const webhookUrlEnabled = cond('WebhookUrlEnabled', Fn.conditionEquals(enableWebhookUrl.valueAsString, 'true'));
    const ifCond = (c: CfnCondition, a: unknown, b: unknown) => Fn.conditionIf(c.logicalId, a, b).toString();

    // ------------------------------------------------------------------ data
    const table = (id: string, ttl: boolean, retain: boolean) => {
      const t = new dynamodb.Table(this, id, {
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        timeToLiveAttribute: ttl ? 'expires_at' : undefined,
        removalPolicy: retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      });
      pin(t, id);
      return t;
    };
    // The ledger is the authoritative record: no TTL, retained.
    const ledger = table('LedgerTable', false, true);
    const pending = table('PendingTable', true, true);
    const dedupe = table('DedupeTable', true, false);

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
    const alertTopic = new sns.CfnTopic(this, 'AlertTopic', {
      displayName: 'MicroVM governance alerts',
      kmsMasterKeyId: 'alias/aws/sns',
    });
    const emailSub = new sns.CfnSubscription(this, 'AlertEmailSubscription', {
      topicArn: alertTopic.ref,
      protocol: 'email',
      endpoint: alertEmail.valueAsString,
    });
    emailSub.cfnOptions.condition = hasEmail;

    // ------------------------------------------------------------------ delivery queue
    const dlq = new sqs.Queue(this, 'DetectorDeadLetterQueue', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
    });
    pin(dlq, 'DetectorDeadLetterQueue');
    const queue = new sqs.Queue(this, 'DetectorQueue', {
      // Six times the detector timeout, as Lambda recommends for SQS event sources.
      visibilityTimeout: Duration.seconds(720),
      retentionPeriod: Duration.days(4),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      deadLetterQueue: { queue: dlq, maxReceiveCount: 5 },
    });
    pin(queue, 'DetectorQueue');

    const computedBucketName = Fn.sub('${NamePrefix}-cloudtrail-${AWS::AccountId}-${AWS::Region}');
    const logBucketName = ifCond(createTrail, computedBucketName, existingBucket.valueAsString);
    const queuePolicy = new sqs.CfnQueuePolicy(this, 'DetectorQueuePolicy', {
      queues: [queue.queueUrl],
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'S3ObjectCreatedFromTheTrailBucket',
            Effect: 'Allow',
            Principal: { Service: 's3.amazonaws.com' },
            Action: 'sqs:SendMessage',
            Resource: queue.queueArn,
            Condition: { ArnLike: { 'aws:SourceArn': Fn.sub('arn:${AWS::Partition}:s3:::${Bucket}', { Bucket: logBucketName }) } },
          },
          Fn.conditionIf(
            hasTopic.logicalId,
            {
              Sid: 'SnsFanOutOrCloudTrailNotification',
              Effect: 'Allow',
              Principal: { Service: 'sns.amazonaws.com' },
              Action: 'sqs:SendMessage',
              Resource: queue.queueArn,
              Condition: { ArnEquals: { 'aws:SourceArn': existingTopic.valueAsString } },
            },
            Aws.NO_VALUE,
          ),
          {
            Sid: 'DenyInsecureTransport',
            Effect: 'Deny',
            Principal: '*',
            Action: 'sqs:*',
            Resource: queue.queueArn,
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          },
        ],
      },
    });
    const topicSub = new sns.CfnSubscription(this, 'NotificationTopicSubscription', {
      topicArn: existingTopic.valueAsString,
      protocol: 'sqs',
      endpoint: queue.queueArn,
    });
    topicSub.cfnOptions.condition = hasTopic;

    // ------------------------------------------------------------------ created trail (optional)
    const trailName = Fn.sub('${NamePrefix}-trail');
    const trailArn = Fn.sub('arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/${NamePrefix}-trail');
    const trailBucket = new s3.CfnBucket(this, 'TrailBucket', {
      bucketName: computedBucketName,
      bucketEncryption: {
        serverSideEncryptionConfiguration: [{ serverSideEncryptionByDefault: { sseAlgorithm: 'AES256' } }],
      },
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
            queue: queue.queueArn,
            filter: {
              s3Key: {
                rules: [
                  { name: 'prefix', value: 'AWSLogs/' },
                  { name: 'suffix', value: '.json.gz' },
                ],
              },
            },
          },
        ],
      },
    });
    trailBucket.cfnOptions.condition = createTrail;
    trailBucket.applyRemovalPolicy(RemovalPolicy.RETAIN);
    // S3 checks the queue policy when the notification is configured.
    trailBucket.addResourceDependency(queuePolicy);

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
            Resource: Fn.sub('${Arn}/AWSLogs/${AWS::AccountId}/*', { Arn: trailBucket.attrArn }),
            Condition: {
              StringEquals: { 's3:x-amz-acl': 'bucket-owner-full-control', 'aws:SourceArn': trailArn },
            },
          },
          {
            Sid: 'DenyInsecureTransport',
            Effect: 'Deny',
            Principal: '*',
            Action: 's3:*',
            Resource: [trailBucket.attrArn, Fn.sub('${Arn}/*', { Arn: trailBucket.attrArn })],
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          },
        ],
      },
    });
    bucketPolicy.cfnOptions.condition = createTrail;

    const trail = new cloudtrail.CfnTrail(this, 'Trail', {
      trailName,
      s3BucketName: trailBucket.ref,
      isLogging: true,
      isMultiRegionTrail: true,
      includeGlobalServiceEvents: true,
      enableLogFileValidation: true,
      advancedEventSelectors: [
        { name: 'Management events', fieldSelectors: [{ field: 'eventCategory', equalTo: ['Management'] }] },
        // The six governed MicroVM operations are data events on the image resource:
        // without this selector none of them is ever logged.
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
    trail.addResourceDependency(bucketPolicy);

    // ------------------------------------------------------------------ launcher
    const basicExecution = iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaBasicExecutionRole');
    const launcherRole = new iam.Role(this, 'LauncherRole', {
      path: Fn.sub('/${NamePrefix}/launcher/'),
      description: 'The only principal allowed to run MicroVMs and issue their tokens.',
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      managedPolicies: [basicExecution],
      inlinePolicies: {
        'governed-microvm-calls': new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'RunOnlyAllowedImages',
              actions: ['lambda:RunMicrovm'],
              resources: allowedImageArns.valueAsList,
            }),
            new iam.PolicyStatement({
              sid: 'GovernedCallsOnMicrovms',
              actions: [
                'lambda:CreateMicrovmAuthToken',
                'lambda:CreateMicrovmShellAuthToken',
                'lambda:SuspendMicrovm',
                'lambda:ResumeMicrovm',
                'lambda:TerminateMicrovm',
                'lambda:GetMicrovm',
              ],
              // MicroVMs have no documented ARN, so these cannot be scoped further; the
              // policy engine and Contro1 decide per MicroVM.
              resources: ['*'],
            }),
            new iam.PolicyStatement({
              sid: 'PassOnlyAllowedExecutionRoles',
              actions: ['iam:PassRole'],
              resources: allowedExecRoles.valueAsList,
            }),
            new iam.PolicyStatement({
              sid: 'PassNetworkConnectors',
              actions: ['lambda:PassNetworkConnector'],
              resources: connectorArns.valueAsList,
            }),
          ],
        }),
        'state-and-secrets': new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'PendingApprovals',
              actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
              resources: [pending.tableArn],
            }),
            new iam.PolicyStatement({
              sid: 'Ledger',
              actions: ['dynamodb:PutItem', 'dynamodb:BatchWriteItem', 'dynamodb:GetItem', 'dynamodb:BatchGetItem'],
              resources: [ledger.tableArn],
            }),
            new iam.PolicyStatement({
              sid: 'Contro1Secrets',
              actions: ['secretsmanager:GetSecretValue'],
              resources: [apiKeyArn, webhookArn],
            }),
          ],
        }),
      },
    });
    pin(launcherRole, 'LauncherRole');

    const commonEnv = {
      RUST_LOG: 'info',
      CONTRO1_BASE_URL: contro1BaseUrl.valueAsString,
      CONTRO1_API_KEY_SECRET_ARN: apiKeyArn,
      LEDGER_TABLE: ledger.tableName,
    };

    const launcher = new RustFunction(this, 'LauncherFunction', {
      manifestPath: path.join(root, 'Cargo.toml'),
      binaryName: 'launcher',
      architecture: lambda.Architecture.ARM_64,
      description: 'Governed MicroVM launcher and token broker.',
      role: launcherRole,
      memorySize: 256,
      timeout: Duration.seconds(30),
      environment: {
        ...commonEnv,
        PENDING_TABLE: pending.tableName,
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
      },
    });
    const launcherCfn = pin(launcher, 'LauncherFunction');
    // LAUNCHER_CONFIG only when a path is given (Fn::If with AWS::NoValue drops the key).
    launcherCfn.addPropertyOverride(
      'Environment.Variables.LAUNCHER_CONFIG',
      Fn.conditionIf(hasConfig.logicalId, launcherConfig.valueAsString, Aws.NO_VALUE),
    );
    const launcherUrl = launcher.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM });
    pin(launcherUrl, 'LauncherFunctionUrl');

    // Contro1 cannot sign with SigV4: its webhook reaches the launcher through a second URL on
    // the alias `contro1-webhook`, where the launcher serves only the HMAC-verified callback.
    const webhookAlias = new lambda.CfnAlias(this, 'LauncherWebhookAlias', {
      functionName: launcher.functionName,
      functionVersion: '$LATEST',
      name: 'contro1-webhook',
    });
    webhookAlias.cfnOptions.condition = webhookUrlEnabled;
    const webhookUrl = new lambda.CfnUrl(this, 'LauncherWebhookUrl', {
      targetFunctionArn: launcher.functionName,
      qualifier: 'contro1-webhook',
      authType: 'NONE',
    });
    webhookUrl.cfnOptions.condition = webhookUrlEnabled;
    webhookUrl.addResourceDependency(webhookAlias);
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
    const logBucketArn = Fn.sub('arn:${AWS::Partition}:s3:::${Bucket}', {
      Bucket: ifCond(createTrail, trailBucket.ref, existingBucket.valueAsString),
    });
    const detectorRole = new iam.Role(this, 'DetectorRole', {
      path: Fn.sub('/${NamePrefix}/detector/'),
      description: 'Reads CloudTrail, the ledger and MicroVM state; publishes findings.',
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      managedPolicies: [basicExecution],
    });
    const detectorRoleCfn = pin(detectorRole, 'DetectorRole');
    // Written as a raw document so the KMS statement can sit under Fn::If like in SAM.
    detectorRoleCfn.addPropertyOverride('Policies', [
      {
        PolicyName: 'detector',
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'ReadMicrovms',
              Effect: 'Allow',
              Action: ['lambda:ListMicrovms', 'lambda:GetMicrovm'],
              // MicroVMs have no ARN and ListMicrovms is account-wide.
              Resource: '*',
            },
            { Sid: 'ReadTrailObjects', Effect: 'Allow', Action: 's3:GetObject', Resource: Fn.join('', [logBucketArn, '/*']) },
            { Sid: 'ListTrailBucket', Effect: 'Allow', Action: 's3:ListBucket', Resource: logBucketArn },
            Fn.conditionIf(
              hasKmsKey.logicalId,
              { Sid: 'DecryptTrailObjects', Effect: 'Allow', Action: 'kms:Decrypt', Resource: existingKmsKey.valueAsString },
              Aws.NO_VALUE,
            ),
            {
              Sid: 'ReadLedger',
              Effect: 'Allow',
              Action: ['dynamodb:GetItem', 'dynamodb:BatchGetItem'],
              Resource: ledger.tableArn,
            },
            {
              Sid: 'Dedupe',
              Effect: 'Allow',
              // DeleteItem releases a claim when an alert could not be delivered.
              Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem'],
              Resource: dedupe.tableArn,
            },
            { Sid: 'PublishAlerts', Effect: 'Allow', Action: 'sns:Publish', Resource: alertTopic.ref },
            {
              Sid: 'TrailHealth',
              Effect: 'Allow',
              Action: [
                'cloudtrail:GetTrailStatus',
                'cloudtrail:GetEventSelectors',
                'cloudtrail:DescribeTrails',
                'cloudtrail:ListTrails',
              ],
              // DescribeTrails/ListTrails have no resource type; trails are discovered at run time.
              Resource: '*',
            },
            { Sid: 'Contro1ApiKey', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: apiKeyArn },
          ],
        },
      },
    ]);

    const remediationPolicy = new iam.CfnPolicy(this, 'DetectorRemediationPolicy', {
      policyName: 'detector-remediation',
      roles: [detectorRole.roleName],
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'RemediateUnmanagedMicrovms',
            Effect: 'Allow',
            Action: ['lambda:SuspendMicrovm', 'lambda:TerminateMicrovm'],
            Resource: '*',
          },
        ],
      },
    });
    remediationPolicy.cfnOptions.condition = remediationEnabled;

    const detector = new RustFunction(this, 'DetectorFunction', {
      manifestPath: path.join(root, 'Cargo.toml'),
      binaryName: 'detector',
      architecture: lambda.Architecture.ARM_64,
      description: 'MicroVM bypass detector (CloudTrail files, API-call events, sweep).',
      role: detectorRole,
      memorySize: 512,
      timeout: Duration.seconds(120),
      environment: {
        ...commonEnv,
        DEDUPE_TABLE: dedupe.tableName,
        ALERT_TOPIC_ARN: alertTopic.ref,
        LAUNCHER_ROLE_ARNS: launcherRole.roleArn,
        // Lambda uses the function name as the session name of its role.
        LAUNCHER_SESSION_NAMES: launcher.functionName,
        REMEDIATION: remediation.valueAsString,
        REMEDIATION_GRACE_SECONDS: graceSeconds.valueAsString,
      },
    });
    pin(detector, 'DetectorFunction');
    // Grants the SQS consume actions in a separate AWS::IAM::Policy on DetectorRole.
    detector.addEventSource(
      new eventsources.SqsEventSource(queue, {
        batchSize: 10,
        maxBatchingWindow: Duration.seconds(5),
        reportBatchItemFailures: true,
      }),
    );
    new events.Rule(this, 'DetectorSweep', {
      description: 'MicroVM sweep and trail health check.',
      schedule: events.Schedule.expression(sweepSchedule.valueAsString),
      targets: [new targets.LambdaFunction(detector)],
    });
    new events.Rule(this, 'DetectorGovernedApiCalls', {
      eventPattern: {
        source: ['aws.lambda'],
        detailType: ['AWS API Call via CloudTrail'],
        detail: {
          eventSource: ['lambda.amazonaws.com', 'lambda-microvms.amazonaws.com'],
          // prefix: event names may carry a date/version suffix (RunMicrovm20250909v2).
          eventName: GOVERNED_EVENT_NAMES.map((n) => ({ prefix: n })),
        },
      },
      targets: [new targets.LambdaFunction(detector)],
    });

    // ------------------------------------------------------------------ alarms
    const alarm = (id: string, description: string, namespace: string, metricName: string,
                   dimension: { name: string; value: string }, statistic: string) =>
      new cloudwatch.CfnAlarm(this, id, {
        alarmDescription: description,
        namespace,
        metricName,
        dimensions: [dimension],
        statistic,
        period: 300,
        evaluationPeriods: 1,
        threshold: 1,
        comparisonOperator: 'GreaterThanOrEqualToThreshold',
        treatMissingData: 'notBreaching',
        alarmActions: [alertTopic.ref],
      });
    alarm('DeadLetterQueueAlarm', 'CloudTrail notifications the detector could not process (DLQ not empty).',
      'AWS/SQS', 'ApproximateNumberOfMessagesVisible', { name: 'QueueName', value: dlq.queueName }, 'Maximum');
    alarm('DetectorErrorsAlarm', 'The detector failed (findings may be delayed; messages are retried).',
      'AWS/Lambda', 'Errors', { name: 'FunctionName', value: detector.functionName }, 'Sum');
    alarm('LauncherErrorsAlarm', 'The launcher failed invocations.',
      'AWS/Lambda', 'Errors', { name: 'FunctionName', value: launcher.functionName }, 'Sum');

    // ------------------------------------------------------------------ bypass prevention
    // Same document as infra/policies/deny-direct-microvm-access.json, with the real role ARNs.
    const denyPolicy = new iam.CfnManagedPolicy(this, 'DenyDirectMicrovmAccessPolicy', {
      description: 'Denies the governed MicroVM actions to everyone but the launcher role.',
      policyDocument: {
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
            ],
            Resource: '*',
            Condition: { ArnNotEquals: { 'aws:PrincipalArn': launcherRole.roleArn } },
          },
          {
            Sid: 'OnlyTheLauncherOrDetectorSuspendsOrTerminates',
            Effect: 'Deny',
            Action: ['lambda:SuspendMicrovm', 'lambda:TerminateMicrovm'],
            Resource: '*',
            Condition: { ArnNotEquals: { 'aws:PrincipalArn': [launcherRole.roleArn, detectorRole.roleArn] } },
          },
        ],
      },
    });
    denyPolicy.overrideLogicalId('DenyDirectMicrovmAccessPolicy');

    // ------------------------------------------------------------------ Athena hunt
    const sql = fs.readFileSync(path.join(root, 'infra', 'athena', 'bypass-hunt.sql'), 'utf8');
    new athena.CfnNamedQuery(this, 'BypassHuntQuery', {
      name: Fn.sub('${NamePrefix}-microvm-bypass-hunt'),
      description: "Governed MicroVM calls not made by the launcher, with the detector's rules and severities.",
      database: athenaDb.valueAsString,
      queryString: Fn.sub(sql, {
        CloudTrailTable: Fn.sub('${AthenaDatabase}.${AthenaCloudTrailTable}'),
        LauncherRoleArn: launcherRole.roleArn,
        LauncherSessionNames: launcher.functionName,
      }),
    });

    // ------------------------------------------------------------------ outputs
    const out = (name: string, value: string, description?: string, condition?: CfnCondition) => {
      const o = new CfnOutput(this, `Output${name}`, { value, description });
      o.overrideLogicalId(name);
      if (condition) o.condition = condition;
    };
    out('LauncherUrl', launcherUrl.url, "The launcher's Function URL (AWS_IAM; agents sign requests with SigV4).");
    out(
      'Contro1WebhookUrl',
      webhookUrl.attrFunctionUrl,
      'Give this as LauncherPublicUrl; Contro1 POSTs to {url}/contro1/callback.',
      webhookUrlEnabled,
    );
    out('LauncherRoleArn', launcherRole.roleArn, 'The only role allowed the governed MicroVM actions.');
    out('DetectorRoleArn', detectorRole.roleArn);
    out('DetectorQueueArn', queue.queueArn, 'Point S3 ObjectCreated notifications of an existing trail bucket here.');
    out('AlertTopicArn', alertTopic.ref);
    out('LedgerTableName', ledger.tableName);
    out('PendingTableName', pending.tableName);
    out('DedupeTableName', dedupe.tableName);
    out('TrailBucketName', logBucketName);
    out('Contro1ApiKeySecretArn', apiKeyArn);
    out('Contro1WebhookSecretArn', webhookArn);
    out('DenyDirectMicrovmAccessPolicyArn', denyPolicy.ref, 'Attach to agent, developer and CI roles.');
  }
}
