/**
 * The detector: its parameters, where CloudTrail reaches it (the notification queue and its
 * dead-letter queue, an optional SNS topic), its dedupe table and role, the function with its
 * event sources and rules, and its alarms. The single-account stack and the security stack
 * both build it here.
 */
import { Aws, CfnCondition, CfnMapping, Duration, Fn, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { detectorConditions, detectorParameters as detectorSettings } from '../detector-settings';
import { GOVERNED_CALLS_PATTERN, tamperEventsPattern } from '../event-patterns';
import { Kit, Metric, RustFn, denyInsecureSqs, fnMetric, queueMetric } from '../kit';
import { functionArn } from '../names';
import { PreventionParams, tableResourcePolicy } from '../prevention';
import { detectorPolicies, lambdaTrust, remediationDocument } from '../roles';
import { Alerting, Contro1, table } from './shared';
import { scheduleRule } from './rules';

/** Remediation, the detector's settings, the sweep interval, the heartbeat, concurrency. */
export function detectorParameters(kit: Kit, overrides: Parameters<typeof detectorSettings>[1] = {}) {
  const remediation = kit.param('Remediation', {
    type: 'String',
    default: 'off',
    allowedValues: ['off', 'dry-run', 'suspend', 'terminate'],
    description: 'What the sweep does to an unmanaged MicroVM; only suspend and terminate grant Suspend/Terminate.',
  });
  const settings = detectorSettings(kit.param.bind(kit), overrides);
  kit.param('SweepIntervalMinutes', { type: 'Number', default: '5', allowedValues: ['2', '5', '10', '15', '30', '60'] });
  const heartbeat = kit.param('HeartbeatMaxSilenceSeconds', { type: 'Number', default: 1800, minValue: 300, maxValue: 86400 });
  const concurrency = kit.param('DetectorReservedConcurrency', { type: 'Number', default: 5, minValue: 1 });
  // Alarm periods are seconds; the schedule is minutes.
  new CfnMapping(kit.stack, 'SweepIntervals', {
    mapping: Object.fromEntries([2, 5, 10, 15, 30, 60].map((m) => [String(m), { Seconds: m * 60 }])),
  }).overrideLogicalId('SweepIntervals');
  // dry-run only reports: no Suspend/Terminate grant.
  const remediationEnabled = kit.cond('RemediationEnabled', Fn.conditionOr(
    Fn.conditionEquals(remediation.valueAsString, 'suspend'),
    Fn.conditionEquals(remediation.valueAsString, 'terminate'),
  ));
  detectorConditions(kit.cond.bind(kit));
  return {
    env: { REMEDIATION: remediation.valueAsString, ...settings, HEARTBEAT_MAX_SILENCE_SECONDS: heartbeat.valueAsString },
    heartbeat: heartbeat.valueAsNumber,
    concurrency: concurrency.valueAsNumber,
    remediationEnabled,
  };
}
export type DetectorParameters = ReturnType<typeof detectorParameters>;

/** ExistingTrailKmsKeyArn and ExistingNotificationTopicArn, with their conditions. */
export function trailSourceParameters(kit: Kit) {
  const kmsKey = kit.param('ExistingTrailKmsKeyArn', {
    type: 'String',
    default: '',
    description: 'KMS key ARN the existing trail encrypts its log files with, if any.',
  });
  const topic = kit.param('ExistingNotificationTopicArn', {
    type: 'String',
    default: '',
    description: 'Optional SNS topic announcing new log files; the detector queue subscribes to it.',
  });
  return {
    kmsKeyArn: kmsKey.valueAsString,
    topicArn: topic.valueAsString,
    hasKmsKey: kit.cond('HasTrailKmsKey', Fn.conditionNot(Fn.conditionEquals(kmsKey.valueAsString, ''))),
    hasTopic: kit.cond('HasNotificationTopic', Fn.conditionNot(Fn.conditionEquals(topic.valueAsString, ''))),
  };
}
export type TrailSource = ReturnType<typeof trailSourceParameters>;

/** The queue CloudTrail notifications reach the detector through, and its dead-letter queue. */
export function notificationQueue(kit: Kit, trailBucketName: string, src: TrailSource) {
  const s = kit.stack;
  const dlq = new sqs.CfnQueue(s, 'DetectorDeadLetterQueue', {
    queueName: Fn.sub('${NamePrefix}-detector-dlq'),
    messageRetentionPeriod: 1209600,
    sqsManagedSseEnabled: true,
  });
  const queue = new sqs.CfnQueue(s, 'DetectorQueue', {
    queueName: Fn.sub('${NamePrefix}-detector'),
    // Six times the detector timeout, as Lambda recommends for SQS event sources.
    visibilityTimeout: 720,
    messageRetentionPeriod: 345600,
    sqsManagedSseEnabled: true,
    redrivePolicy: { deadLetterTargetArn: dlq.attrArn, maxReceiveCount: 5 },
  });
  const policy = new sqs.CfnQueuePolicy(s, 'DetectorQueuePolicy', {
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
          src.hasTopic.logicalId,
          {
            Sid: 'SnsFanOutOrCloudTrailNotification',
            Effect: 'Allow',
            Principal: { Service: 'sns.amazonaws.com' },
            Action: 'sqs:SendMessage',
            Resource: queue.attrArn,
            Condition: { ArnEquals: { 'aws:SourceArn': src.topicArn } },
          },
          Aws.NO_VALUE,
        ),
        // Nobody floods the queue: only the trail bucket's notifications (and the fan-out topic).
        {
          Sid: 'OnlyTheTrailNotificationsSend',
          Effect: 'Deny',
          Principal: '*',
          Action: 'sqs:SendMessage',
          Resource: queue.attrArn,
          Condition: {
            ArnNotLike: {
              'aws:SourceArn': [
                Fn.sub('arn:${AWS::Partition}:s3:::${Bucket}', { Bucket: trailBucketName }),
                Fn.conditionIf(src.hasTopic.logicalId, src.topicArn, Aws.NO_VALUE),
              ],
            },
          },
        },
        denyInsecureSqs(queue.attrArn),
      ],
    },
  });
  const sub = new sns.CfnSubscription(s, 'NotificationTopicSubscription', {
    topicArn: src.topicArn,
    protocol: 'sqs',
    endpoint: queue.attrArn,
  });
  sub.cfnOptions.condition = src.hasTopic;
  return { dlq, queue, policy };
}

export interface DetectorDeps {
  prevention: PreventionParams;
  contro1: Contro1;
  alerting: Alerting;
  trailBucketName: string;
  trailSource: TrailSource;
  queue: sqs.CfnQueue;
  dlq: sqs.CfnQueue;
  eventsDlq: sqs.CfnQueue;
  ledgerTableName: string;
  logRetentionDays: number;
  /** Environment beside the settings (launcher roles and functions, protected resources...), given the dedupe table. */
  env: (dedupe: ReturnType<typeof table>) => Record<string, string>;
  grants: { ledgerArn?: string; integrity: boolean; sweepQueue?: sqs.CfnQueue; organizationId?: string };
  /** The security account receives every member account's tamper events. */
  tamperFromAnyAccount: boolean;
  sweepDescription: string;
}

export interface Detector {
  role: iam.CfnRole;
  fn: RustFn;
  dedupe: ReturnType<typeof table>;
}

export function buildDetector(kit: Kit, dp: DetectorParameters, d: DetectorDeps): Detector {
  const s = kit.stack;
  const dedupe = table(kit, 'DedupeTable', 'dedupe', true, false,
    tableResourcePolicy(d.prevention, 'dedupe', 'OnlyTheDetectorWritesDedupeMarks', 'detector', 'OnlyTheDeployerChangesDedupe'));
  const role = new iam.CfnRole(s, 'DetectorRole', {
    path: Fn.sub('/${NamePrefix}/detector/'),
    description: 'Reads CloudTrail, the ledger and MicroVM state; publishes findings.',
    assumeRolePolicyDocument: lambdaTrust(),
    policies: detectorPolicies({
      trailBucketName: d.trailBucketName,
      trailKmsStatement: Fn.conditionIf(
        d.trailSource.hasKmsKey.logicalId,
        { Sid: 'DecryptTrailObjects', Effect: 'Allow', Action: 'kms:Decrypt', Resource: d.trailSource.kmsKeyArn },
        Aws.NO_VALUE,
      ),
      alertTopicArn: d.alerting.topic.ref,
      alertKeyArn: d.alerting.key.attrArn,
      apiKeySecretArn: d.contro1.apiKeyArn,
      queueArn: d.queue.attrArn,
      eventsDlqArn: d.eventsDlq.attrArn,
      ledgerArn: d.grants.ledgerArn,
      integrity: d.grants.integrity,
      sweepQueueArn: d.grants.sweepQueue?.attrArn,
      organizationId: d.grants.organizationId,
    }),
  });
  const remediationPolicy = new iam.CfnPolicy(s, 'DetectorRemediationPolicy', {
    policyName: 'detector-remediation',
    roles: [role.ref],
    policyDocument: remediationDocument(),
  });
  remediationPolicy.cfnOptions.condition = dp.remediationEnabled as CfnCondition;
  const logs = kit.logGroup('DetectorLogGroup', 'detector', d.logRetentionDays);
  const fn = kit.rustFunction('DetectorFunction', 'detector', role, logs, {
    functionName: Fn.sub('${NamePrefix}-detector'),
    description: 'MicroVM bypass detector (CloudTrail files, API-call events, sweep).',
    memorySize: 512,
    timeout: Duration.seconds(120),
    reservedConcurrentExecutions: dp.concurrency,
    environment: {
      RUST_LOG: 'info',
      CONTRO1_BASE_URL: d.contro1.baseUrl,
      CONTRO1_API_KEY_SECRET_ARN: d.contro1.apiKeyArn,
      LEDGER_TABLE: d.ledgerTableName,
      DEDUPE_TABLE: dedupe.ref,
      ALERT_TOPIC_ARN: d.alerting.topic.ref,
      ...dp.env,
      // The bucket the health check expects the trail to deliver to (the one read here).
      TRAIL_BUCKETS: d.trailBucketName,
      // Built from the name: a function cannot reference its own ARN.
      DETECTOR_FUNCTIONS: functionArn('detector'),
      // The break-glass role is deliberately absent: its changes alert.
      DEPLOYMENT_ROLE_ARNS: d.prevention.deploymentRoleArn,
      // The administrator's paths (docs/rules.md; THREAT-MODEL.md T11-T19).
      GOVERNANCE_STACKS: Aws.STACK_ID,
      PIPELINE_PRINCIPAL_ARNS: d.prevention.pipelineRoleArn,
      BREAK_GLASS_ROLE_ARNS: d.prevention.breakGlassRoleArn,
      DETECTOR_LOG_GROUPS: logs.ref,
      DETECTOR_ROLE_ARNS: role.attrArn,
      ...d.env(dedupe),
    },
  });
  kit.onFailureTo('DetectorFunction', fn, d.eventsDlq.attrArn);
  const consume = (id: string, q: sqs.CfnQueue, window?: number) =>
    new lambda.CfnEventSourceMapping(s, id, {
      eventSourceArn: q.attrArn,
      functionName: fn.live.ref,
      batchSize: 10,
      maximumBatchingWindowInSeconds: window,
      functionResponseTypes: ['ReportBatchItemFailures'],
    });
  consume('DetectorFunctionTrailObjects', d.queue, 5);
  // One account and region per message (queued by the sweep schedule).
  if (d.grants.sweepQueue) consume('DetectorFunctionSweepTargets', d.grants.sweepQueue);

  const dlqArn = d.eventsDlq.attrArn;
  scheduleRule(kit, 'DetectorFunctionSweep', {
    name: Fn.sub('${NamePrefix}-sweep'),
    description: d.sweepDescription,
    scheduleExpression: Fn.sub('rate(${SweepIntervalMinutes} minutes)'),
  }, 2, 300, fn, dlqArn);
  scheduleRule(kit, 'DetectorFunctionGovernedApiCalls', { name: Fn.sub('${NamePrefix}-governed-calls'), eventPattern: GOVERNED_CALLS_PATTERN },
    20, 3600, fn, dlqArn);
  scheduleRule(kit, 'DetectorFunctionTamperEvents', {
    name: Fn.sub('${NamePrefix}-tamper-events'),
    eventPattern: tamperEventsPattern(d.tamperFromAnyAccount),
  }, 20, 3600, fn, dlqArn);

  const topic = d.alerting.topic.ref;
  const heartbeatMetric = (metricName: string): Metric =>
    ({ namespace: 'MicrovmGovernance', metricName, dimension: { name: 'DetectorFunction', value: fn.fn.functionName }, statistic: 'Sum' });
  kit.alarm('DeadLetterQueueAlarm', 'detector-dlq-not-empty', 'CloudTrail notifications the detector could not process (DLQ not empty).',
    queueMetric('ApproximateNumberOfMessagesVisible', d.dlq), topic);
  kit.alarm('EventsDeadLetterQueueAlarm', 'detector-events-dlq-not-empty',
    'EventBridge events (sweep, API calls, tamper events) the detector never processed.',
    queueMetric('ApproximateNumberOfMessagesVisible', d.eventsDlq), topic);
  kit.alarm('QueueOldestMessageAlarm', 'detector-queue-stalled',
    'A CloudTrail notification has waited 15 minutes or more (the detector is not consuming).',
    queueMetric('ApproximateAgeOfOldestMessage', d.queue), topic, { threshold: 900 });
  kit.alarm('DetectorErrorsAlarm', 'detector-errors', 'The detector failed (findings may be delayed; messages are retried).',
    fnMetric('Errors', fn.fn), topic);
  kit.alarm('DetectorThrottlesAlarm', 'detector-throttles', 'The detector was throttled (reserved concurrency reached, or set to 0).',
    fnMetric('Throttles', fn.fn), topic);
  // The detector's Embedded Metric Format heartbeats: no data is the failure, so it breaches.
  kit.alarm('SweepMissedAlarm', 'sweep-did-not-run',
    'No completed sweep in two sweep intervals (rule disabled, detector broken or throttled).', heartbeatMetric('SweepRuns'), topic, {
      period: Token.asNumber(Fn.findInMap('SweepIntervals', Fn.ref('SweepIntervalMinutes'), 'Seconds')),
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      comparisonOperator: 'LessThanThreshold',
      treatMissingData: 'breaching',
    });
  kit.alarm('NoLogObjectReadAlarm', 'no-cloudtrail-object-read',
    'The detector read no CloudTrail log object for HeartbeatMaxSilenceSeconds (notification removed, trail stopped, queue broken).',
    heartbeatMetric('LogObjectsRead'), topic, {
      period: dp.heartbeat,
      comparisonOperator: 'LessThanThreshold',
      treatMissingData: 'breaching',
    });
  return { role, fn, dedupe };
}
