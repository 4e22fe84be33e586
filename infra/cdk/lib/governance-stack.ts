/**
 * The MicroVM governance stack in CDK, for one account: the same resources, parameters,
 * conditions and logical ids as infra/sam/template.yaml after the SAM transform, so that the
 * cfn-guard rules apply to both and infra/tests/parity.py can compare them property by
 * property. Keep the two in step.
 *
 * Mostly L1 constructs, so that what is synthesized is what the SAM template says; the
 * functions are cargo-lambda-cdk RustFunctions (they build the binaries). The launcher and the
 * detector are built by parts/launcher.ts and parts/detector.ts (which the organization stacks
 * in org/ share), the documents by names.ts, roles.ts, prevention.ts and event-patterns.ts;
 * this file adds what only one account has: the optional trail, the integrity baseline of both
 * functions, the deny policy and the Athena query.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Fn, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as cloudtrail from 'aws-cdk-lib/aws-cloudtrail';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { Kit } from './kit';
import { computedTrailBucketName, functionArn, ruleArn, tableArn } from './names';
import { buildDetector, detectorParameters, notificationQueue, trailSourceParameters } from './parts/detector';
import { buildLauncher, launcherParameters, launcherSecrets, launcherTables } from './parts/launcher';
import { alerting, contro1ApiKey, deployerParameters, eventsDeadLetterQueue, logRetentionParameter } from './parts/shared';
import {
  PreventionParams,
  denyGovernanceBypassDocument,
  denyPolicyDocument,
  trailBucketChangesStatement,
  trailBucketWritesStatement,
} from './prevention';

/**
 * The integrity baseline the sweep compares the live functions with (under SSM's 4 KB): the
 * same text as the SAM template's IntegrityBaselineParameter.
 */
const BASELINE_TEMPLATE =
  '{"schema":1,"functions":[{"kind":"launcher","function_arn":"${LauncherArn}","version_arn":"${LauncherVersionArn}","execution_role_arn":"${LauncherRoleArn}","aliases":{"live":"${LauncherVersion}"${WebhookAlias}},"url_auth_types":{"live":"AWS_IAM"${WebhookUrl}},"reserved_concurrency":${LauncherReservedConcurrency},"event_source_arns":[],"permissions":[{"principal":"events.amazonaws.com","action":"lambda:InvokeFunction","qualifier":"live","source_arn":"${RuleArnPrefix}-reconciler"}${WebhookPermissions}]},{"kind":"detector","function_arn":"${DetectorArn}","version_arn":"${DetectorVersionArn}","execution_role_arn":"${DetectorRoleArn}","aliases":{"live":"${DetectorVersion}"},"url_auth_types":{},"reserved_concurrency":${DetectorReservedConcurrency},"event_source_arns":["${DetectorQueueArn}"],"permissions":[{"principal":"events.amazonaws.com","action":"lambda:InvokeFunction","qualifier":"live","source_arn":"${RuleArnPrefix}-sweep"},{"principal":"events.amazonaws.com","action":"lambda:InvokeFunction","qualifier":"live","source_arn":"${RuleArnPrefix}-governed-calls"},{"principal":"events.amazonaws.com","action":"lambda:InvokeFunction","qualifier":"live","source_arn":"${RuleArnPrefix}-tamper-events"}]}]}';

export class GovernanceStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    const kit = new Kit(this);

    // ------------------------------------------------------------------ parameters
    const deployer = deployerParameters(kit);
    const existingBucket = kit.param('ExistingTrailBucketName', {
      type: 'String',
      default: '',
      description: 'Existing bucket a trail delivers to. Empty: the stack creates a bucket and a trail with MicroVM data events.',
    }).valueAsString;
    const trailSource = trailSourceParameters(kit);
    const lp = launcherParameters(kit);
    const dp = detectorParameters(kit);
    const logRetentionDays = logRetentionParameter(kit);
    const athenaDb = kit.param('AthenaDatabase', { type: 'String', default: 'default' }).valueAsString;
    kit.param('AthenaCloudTrailTable', { type: 'String', default: 'cloudtrail_logs' });
    const createTrail = kit.cond('CreateTrail', Fn.conditionEquals(existingBucket, ''));
    const trailBucketName = kit.ifCond(createTrail, computedTrailBucketName(), existingBucket);
    const prevention: PreventionParams = {
      ...deployer,
      allowedImageArns: lp.allowedImageArns,
      allowedNetworkConnectorArns: lp.allowedNetworkConnectorArns,
      trailBucketName,
    };

    // ------------------------------------------------------------------ shared pieces
    const contro1 = contro1ApiKey(kit, deployer);
    const { ledger, pending } = launcherTables(kit, prevention);
    const { webhookArn, tokenKey } = launcherSecrets(kit, lp, prevention);
    const alerts = alerting(kit, prevention);
    const notifications = notificationQueue(kit, trailBucketName, trailSource);
    const eventsDlq = eventsDeadLetterQueue(kit, 'DetectorEventsDeadLetterQueue', 'detector-events-dlq',
      'FailedDeliveriesOfTheDetectorRules', ['sweep', 'governed-calls', 'tamper-events', 'reconciler']);

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
            queue: notifications.queue.attrArn,
            filter: { s3Key: { rules: [{ name: 'prefix', value: 'AWSLogs/' }, { name: 'suffix', value: '.json.gz' }] } },
          },
        ],
      },
    });
    trailBucket.cfnOptions.condition = createTrail;
    trailBucket.applyRemovalPolicy(RemovalPolicy.RETAIN);
    // S3 checks the queue policy when the notification is configured.
    trailBucket.addDependency(notifications.policy);

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
          trailBucketWritesStatement(),
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
    const launcher = buildLauncher(kit, lp, {
      contro1,
      webhookArn,
      tokenKeyArn: tokenKey.attrArn,
      eventsDlqArn: eventsDlq.attrArn,
      ledgerRef: ledger.ref,
      pendingRef: pending.ref,
      logRetentionDays,
      alertTopicRef: alerts.topic.ref,
    });

    // ------------------------------------------------------------------ detector
    const detector = buildDetector(kit, dp, {
      prevention,
      contro1,
      alerting: alerts,
      trailBucketName,
      trailSource,
      queue: notifications.queue,
      dlq: notifications.dlq,
      eventsDlq,
      ledgerTableName: ledger.ref,
      logRetentionDays,
      grants: { ledgerArn: tableArn('ledger'), integrity: true },
      tamperFromAnyAccount: false,
      sweepDescription: 'MicroVM sweep, trail health and integrity check.',
      env: (dedupe) => ({
        LAUNCHER_ROLE_ARNS: launcher.role.attrArn,
        // Lambda uses the function name as the session name of its role.
        LAUNCHER_SESSION_NAMES: launcher.fn.fn.functionName,
        LAUNCHER_FUNCTIONS: functionArn('launcher'),
        PROTECTED_RESOURCES: Fn.join(',', [
          Fn.sub('arn:${AWS::Partition}:s3:::${Bucket}', { Bucket: trailBucketName }),
          ledger.attrArn,
          pending.attrArn,
          dedupe.attrArn,
          ruleArn('sweep'),
          ruleArn('governed-calls'),
          ruleArn('tamper-events'),
          ruleArn('reconciler'),
          notifications.queue.attrArn,
          notifications.dlq.attrArn,
          eventsDlq.attrArn,
          alerts.topic.ref,
          Fn.sub('arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/${NamePrefix}/integrity-baseline'),
          Fn.join(',', lp.allowedImageArns),
        ]),
        INTEGRITY_BASELINE_PARAMETER: Fn.sub('/${NamePrefix}/integrity-baseline'),
        EXECUTION_ROLE_ARNS: Fn.join(',', lp.allowedExecutionRoleArns),
        // By name (no path), as the policies' own managedPolicyName and the boundary's.
        PREVENTION_POLICY_ARNS: Fn.sub(
          'arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/${NamePrefix}-deny-direct-microvm-access,' +
            'arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/${NamePrefix}-deny-governance-bypass,' +
            'arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/${NamePrefix}-boundary',
        ),
        CONTRO1_SECRETS: webhookArn,
      }),
    });

    // ------------------------------------------------------------------ integrity baseline
    const detectorVersionNumber = Fn.select(7, Fn.split(':', detector.fn.versionRef));
    const baseline = new ssm.CfnParameter(this, 'IntegrityBaselineParameter', {
      name: Fn.sub('/${NamePrefix}/integrity-baseline'),
      type: 'String',
      tier: 'Standard',
      description: 'Integrity baseline of the launcher and detector functions (written on deploy).',
      value: Fn.sub(BASELINE_TEMPLATE, {
        LauncherArn: launcher.fn.fn.functionArn,
        LauncherVersionArn: launcher.fn.versionRef,
        LauncherVersion: launcher.versionNumber,
        LauncherRoleArn: launcher.role.attrArn,
        WebhookAlias: kit.ifCond(lp.webhookUrlEnabled, Fn.sub(',"contro1-webhook":"${V}"', { V: launcher.versionNumber }), ''),
        WebhookUrl: kit.ifCond(lp.webhookUrlEnabled, ',"contro1-webhook":"NONE"', ''),
        WebhookPermissions: kit.ifCond(
          lp.webhookUrlEnabled,
          ',{"principal":"*","action":"lambda:InvokeFunctionUrl","qualifier":"contro1-webhook"},{"principal":"*","action":"lambda:InvokeFunction","qualifier":"contro1-webhook"}',
          '',
        ),
        DetectorArn: detector.fn.fn.functionArn,
        DetectorVersionArn: detector.fn.versionRef,
        DetectorVersion: detectorVersionNumber,
        DetectorRoleArn: detector.role.attrArn,
        DetectorQueueArn: notifications.queue.attrArn,
        RuleArnPrefix: Fn.sub('arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/${NamePrefix}'),
      }),
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
    const secretPattern = Fn.sub('arn:${AWS::Partition}:secretsmanager:*:*:secret:${NamePrefix}-*');
    const bypassPolicy = new iam.CfnManagedPolicy(this, 'DenyGovernanceBypassPolicy', {
      managedPolicyName: Fn.sub('${NamePrefix}-deny-governance-bypass'),
      description:
        'Nobody but the pipeline operates the governance stacks or changes the exempt and execution roles; nobody but the deployer changes the prevention, the Contro1 secrets, the alert subscriptions or the log files; no direct invocation; no leaving the organization.',
      policyDocument: denyGovernanceBypassDocument(prevention, {
        allowedExecutionRoleArns: lp.allowedExecutionRoleArns,
        apiKeySecret: kit.ifCond(contro1.createApiKey, secretPattern, Fn.ref('Contro1ApiKeySecretArn')),
        webhookSecret: kit.ifCond(lp.createWebhookSecret, secretPattern, lp.webhookSecretArn),
      }),
    });

    // ------------------------------------------------------------------ Athena hunt
    const sql = fs.readFileSync(path.join(kit.root, 'infra', 'athena', 'bypass-hunt.sql'), 'utf8');
    new athena.CfnNamedQuery(this, 'BypassHuntQuery', {
      name: Fn.sub('${NamePrefix}-microvm-bypass-hunt'),
      description: "Governed MicroVM calls not made by the launcher, with the detector's rules and severities.",
      database: athenaDb,
      queryString: Fn.sub(sql, {
        CloudTrailTable: Fn.sub('${AthenaDatabase}.${AthenaCloudTrailTable}'),
        LauncherRoleArn: launcher.role.attrArn,
        LauncherSessionNames: launcher.fn.fn.functionName,
        HuntDays: '30',
      }),
    });

    // ------------------------------------------------------------------ outputs
    const out = kit.out.bind(kit);
    out('LauncherUrl', launcher.url.attrFunctionUrl, "The launcher's Function URL on the alias live (AWS_IAM).");
    out('Contro1WebhookUrl', launcher.webhookUrl.attrFunctionUrl, 'Give this as LauncherPublicUrl; Contro1 POSTs to {url}/contro1/callback.',
      lp.webhookUrlEnabled);
    out('LauncherRoleArn', launcher.role.attrArn, 'The only role allowed the governed MicroVM actions.');
    out('DetectorRoleArn', detector.role.attrArn);
    out('DetectorQueueArn', notifications.queue.attrArn, 'Point S3 ObjectCreated notifications of an existing trail bucket here.');
    out('AlertTopicArn', alerts.topic.ref);
    out('LedgerTableName', ledger.ref);
    out('PendingTableName', pending.ref);
    out('DedupeTableName', detector.dedupe.ref);
    out('TrailBucketName', kit.ifCond(createTrail, trailBucket.ref, existingBucket));
    out('IntegrityBaselineParameterName', baseline.ref);
    out('Contro1ApiKeySecretArn', contro1.apiKeyArn);
    out('Contro1WebhookSecretArn', webhookArn);
    out('DenyDirectMicrovmAccessPolicyArn', denyPolicy.ref, 'Attach to every role and user but the launcher, detector, deployment and break-glass roles.');
    out('DenyGovernanceBypassPolicyArn', bypassPolicy.ref, 'Attach beside DenyDirectMicrovmAccessPolicyArn, to the same roles and users.');
  }
}
