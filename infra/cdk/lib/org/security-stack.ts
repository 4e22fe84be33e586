/**
 * The security account of an organization (infra/org/security.yaml): the detector reading
 * the organization trail's bucket, the events every member account forwards to this account's
 * default bus, and every account and region through their sweep roles, one SQS message per
 * account and region.
 */
import { Fn, Stack, StackProps } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { Kit, denyInsecureSqs, queueMetric } from '../kit';
import { ruleArn } from '../names';
import { buildDetector, detectorParameters, notificationQueue, trailSourceParameters } from '../parts/detector';
import { alerting, contro1ApiKey, deployerParameters, eventsDeadLetterQueue, logRetentionParameter } from '../parts/shared';
import { PreventionParams } from '../prevention';
import { organizationIdParameter } from './member-stack';

export class SecurityStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    const kit = new Kit(this);
    const deployer = deployerParameters(kit);
    const organizationId = organizationIdParameter(kit,
      "The organization: the bus policy admits its accounts' events, the detector assumes sweep roles only inside it.");
    const trailBucketName = kit.param('ExistingTrailBucketName', {
      type: 'String',
      minLength: 3,
      description: "The organization trail's bucket (in the log-archive account).",
    }).valueAsString;
    const trailSource = trailSourceParameters(kit);
    const dp = detectorParameters(kit, {
      SweepAccounts: { default: 'organization' },
      SweepRoleName: { default: 'microvm-gov-sweep', allowedPattern: '^[A-Za-z0-9+=,.@_-]{1,64}$' },
    });
    const securityHubImportRoleName = kit.param('SecurityHubImportRoleName', {
      type: 'String',
      default: '',
      allowedPattern: '^[A-Za-z0-9+=,.@_-]{0,64}$',
      description: "Optional name of the member stacks' Security Hub import role (path /): with SecurityHub on, "
        + 'a finding about another account is imported in that account through it. Empty: every finding is imported here.',
    }).valueAsString;
    // The role is assumed (and granted) only with SecurityHub on.
    const importsInEachAccount = kit.cond('ImportsFindingsInEachAccount', Fn.conditionAnd(
      Fn.conditionEquals(Fn.ref('SecurityHub'), 'on'),
      Fn.conditionNot(Fn.conditionEquals(securityHubImportRoleName, '')),
    ));
    const logRetentionDays = logRetentionParameter(kit);
    const prevention: PreventionParams = {
      ...deployer,
      allowedImageArns: [],
      allowedNetworkConnectorArns: [],
      trailBucketName,
    };

    const contro1 = contro1ApiKey(kit, deployer);
    const alerts = alerting(kit, prevention);
    const notifications = notificationQueue(kit, trailBucketName, trailSource);
    const eventsDlq = eventsDeadLetterQueue(kit, 'DetectorEventsDeadLetterQueue', 'detector-events-dlq',
      'FailedDeliveriesOfTheDetectorRules', ['sweep', 'governed-calls', 'tamper-events']);

    // ------------------------------------------------------------------ sweep fan-out
    // The schedule queues one {"sweep_target":{"account","region"}} message per account and
    // region; the same function consumes them. A target that keeps failing ends in the DLQ.
    const sweepDlq = new sqs.CfnQueue(this, 'SweepDeadLetterQueue', {
      queueName: Fn.sub('${NamePrefix}-sweep-dlq'),
      messageRetentionPeriod: 1209600,
      sqsManagedSseEnabled: true,
    });
    const sweepQueue = new sqs.CfnQueue(this, 'SweepQueue', {
      queueName: Fn.sub('${NamePrefix}-sweep'),
      // Six times the detector timeout, as Lambda recommends for SQS event sources.
      visibilityTimeout: 720,
      // A target not swept within a sweep interval is stale: the next sweep queues it again.
      messageRetentionPeriod: 3600,
      sqsManagedSseEnabled: true,
      redrivePolicy: { deadLetterTargetArn: sweepDlq.attrArn, maxReceiveCount: 3 },
    });
    // Only the detector queues and consumes sweep targets.
    new sqs.CfnQueuePolicy(this, 'SweepQueuePolicy', {
      queues: [sweepQueue.ref, sweepDlq.ref],
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'OnlyTheDetectorQueuesAndConsumesSweepTargets',
            Effect: 'Deny',
            Principal: '*',
            Action: ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility'],
            Resource: sweepQueue.attrArn,
            Condition: { ArnNotLike: { 'aws:PrincipalArn': Fn.sub('arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${NamePrefix}/detector/*') } },
          },
          denyInsecureSqs([sweepQueue.attrArn, sweepDlq.attrArn]),
        ],
      },
    });

    // ------------------------------------------------------------------ organization events
    // Only accounts of the organization may put events on this account's default bus.
    new events.CfnEventBusPolicy(this, 'OrganizationEventBusPolicy', {
      eventBusName: 'default',
      statementId: Fn.sub('${NamePrefix}-organization-forwards-api-call-events'),
      statement: {
        Effect: 'Allow',
        Principal: '*',
        Action: 'events:PutEvents',
        Resource: Fn.sub('arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default'),
        Condition: { StringEquals: { 'aws:PrincipalOrgID': organizationId } },
      },
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
      // The member accounts' ledger by name; the security account has none.
      ledgerTableName: Fn.sub('${NamePrefix}-ledger'),
      logRetentionDays,
      grants: { integrity: false, sweepQueue, organizationId },
      tamperFromAnyAccount: true,
      sweepDescription: 'Queues the sweep of every account and region; trail health.',
      env: (dedupe) => ({
        // The member stacks' launcher role: `*` matches it in the account the call was made in.
        LAUNCHER_ROLE_ARNS: Fn.sub('arn:${AWS::Partition}:iam::*:role/${NamePrefix}/launcher/${NamePrefix}-launcher'),
        LAUNCHER_SESSION_NAMES: Fn.sub('${NamePrefix}-launcher'),
        SWEEP_QUEUE_URL: sweepQueue.ref,
        // Unset (empty) unless SecurityHub is on: only then is the import role assumed.
        SECURITY_HUB_ROLE_NAME: kit.ifCond(importsInEachAccount, securityHubImportRoleName, ''),
        // By name: the launcher of every member account.
        LAUNCHER_FUNCTIONS: Fn.sub('${NamePrefix}-launcher'),
        PROTECTED_RESOURCES: Fn.join(',', [
          Fn.sub('arn:${AWS::Partition}:s3:::${Bucket}', { Bucket: trailBucketName }),
          Fn.sub('${NamePrefix}-pending'),
          dedupe.attrArn,
          ruleArn('sweep'),
          ruleArn('governed-calls'),
          ruleArn('tamper-events'),
          Fn.sub('${NamePrefix}-reconciler'),
          notifications.queue.attrArn,
          notifications.dlq.attrArn,
          eventsDlq.attrArn,
          sweepQueue.attrArn,
          sweepDlq.attrArn,
          alerts.topic.ref,
        ]),
      }),
    });
    kit.alarm('SweepDeadLetterQueueAlarm', 'sweep-dlq-not-empty',
      'An account or region could not be swept after its retries (role missing, API refused, region disabled).',
      queueMetric('ApproximateNumberOfMessagesVisible', sweepDlq), alerts.topic.ref);

    kit.out('DetectorRoleArn', detector.role.attrArn, 'Give this to the member stack set (DetectorRoleArn).');
    kit.out('DetectorQueueArn', notifications.queue.attrArn, "Point the organization trail bucket's notifications here.");
    kit.out('SweepQueueUrl', sweepQueue.ref);
    kit.out('AlertTopicArn', alerts.topic.ref);
    kit.out('DedupeTableName', detector.dedupe.ref);
  }
}
