/**
 * Every swept account and region of an organization (infra/org/forwarding.yaml): the
 * governed-call and tamper events forwarded to the security account's default bus, with a
 * role, retries, a dead-letter queue and its alarm.
 */
import { Fn, Stack, StackProps } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { GOVERNED_CALLS_PATTERN, tamperEventsPattern } from '../event-patterns';
import { Kit, queueMetric } from '../kit';
import { eventsDeadLetterQueue } from '../parts/shared';

export class ForwardingStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    const kit = new Kit(this);
    kit.param('NamePrefix', { type: 'String', default: 'microvm-gov', allowedPattern: '^[a-z][a-z0-9-]{1,20}$' });
    kit.param('SecurityAccountId', { type: 'String', allowedPattern: '^[0-9]{12}$' });
    kit.param('DetectorRegion', { type: 'String', allowedPattern: '^[a-z]{2}(-[a-z]+)+-[0-9]$' });
    const alarmTopic = kit.param('AlarmTopicArn', {
      type: 'String',
      allowedPattern: '^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$',
    }).valueAsString;
    const bus = Fn.sub('arn:${AWS::Partition}:events:${DetectorRegion}:${SecurityAccountId}:event-bus/default');

    // EventBridge sends to the other account's bus with this role; it may do nothing else.
    // Outside /<prefix>/: the SCP lets those roles be passed only to Lambda.
    const role = new iam.CfnRole(this, 'ForwarderRole', {
      path: Fn.sub('/${NamePrefix}-forwarder/'),
      description: "Puts the governed-call and tamper events on the security account's default bus.",
      assumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { Service: 'events.amazonaws.com' },
            Action: 'sts:AssumeRole',
            Condition: { StringEquals: { 'aws:SourceAccount': this.account } },
          },
        ],
      },
      policies: [
        {
          policyName: 'forward-to-the-security-account',
          policyDocument: {
            Version: '2012-10-17',
            Statement: [{ Sid: 'PutOnTheSecurityAccountsDefaultBus', Effect: 'Allow', Action: 'events:PutEvents', Resource: bus }],
          },
        },
      ],
    });
    const dlq = eventsDeadLetterQueue(kit, 'ForwardingDeadLetterQueue', 'forwarding-dlq', 'FailedDeliveriesOfTheForwardingRules',
      ['forward-governed-calls', 'forward-tamper-events']);
    const forward = (id: string, name: string, description: string, eventPattern: object) =>
      new events.CfnRule(this, id, {
        name: Fn.sub(`\${NamePrefix}-${name}`),
        description,
        eventPattern,
        targets: [
          {
            id: 'SecurityAccountDefaultBus',
            arn: bus,
            roleArn: role.attrArn,
            retryPolicy: { maximumRetryAttempts: 20, maximumEventAgeInSeconds: 3600 },
            deadLetterConfig: { arn: dlq.attrArn },
          },
        ],
      });
    forward('ForwardGovernedCalls', 'forward-governed-calls', "Governed MicroVM calls, to the security account's detector.",
      GOVERNED_CALLS_PATTERN);
    forward('ForwardTamperEvents', 'forward-tamper-events',
      "Changes to the launcher, its role, tables and images, to the security account's detector.", tamperEventsPattern());
    kit.alarm('ForwardingDeadLetterQueueAlarm', 'forwarding-dlq-not-empty',
      'Governed-call or tamper events never reached the security account.',
      queueMetric('ApproximateNumberOfMessagesVisible', dlq), alarmTopic);
  }
}
