/**
 * The detector's EventBridge patterns (the same as the SAM template's): the six governed
 * MicroVM calls, and the management events its tamper rules read. IAM and STS events reach
 * EventBridge only in us-east-1.
 */
import { Fn } from 'aws-cdk-lib';

// prefix: event names may carry a date/version suffix (RunMicrovm20250909v2).
const prefixes = (names: string[]) => names.map((prefix) => ({ prefix }));

export const GOVERNED_CALLS_PATTERN = {
  source: ['aws.lambda'],
  'detail-type': ['AWS API Call via CloudTrail'],
  detail: {
    eventSource: ['lambda.amazonaws.com', 'lambda-microvms.amazonaws.com'],
    eventName: prefixes([
      'RunMicrovm',
      'CreateMicrovmAuthToken',
      'CreateMicrovmShellAuthToken',
      'SuspendMicrovm',
      'ResumeMicrovm',
      'TerminateMicrovm',
    ]),
  },
};

/**
 * anyAccount: the security account of an organization receives every member account's events,
 * so AssumeRole of the governance roles matches any account (wildcard) instead of its own.
 */
export function tamperEventsPattern(anyAccount = false) {
  return {
    'detail-type': ['AWS API Call via CloudTrail'],
    $or: [
      {
        source: ['aws.lambda'],
        detail: {
          // One prefix covers a family (UpdateFunction: code, configuration, URL config,
          // event-invoke config), which keeps the resolved pattern under EventBridge's
          // 2,048-character quota (infra/tests/event_pattern_size.py).
          eventName: prefixes([
            'CreateFunction',
            'UpdateFunction',
            'DeleteFunction',
            'PublishVersion',
            'CreateAlias',
            'UpdateAlias',
            'DeleteAlias',
            'AddPermission',
            'RemovePermission',
            'PutFunction',
            'CreateEventSourceMapping',
            'UpdateEventSourceMapping',
            'DeleteEventSourceMapping',
            'CreateMicrovmImage',
            'UpdateMicrovmImage',
            'DeleteMicrovmImage',
          ]),
        },
      },
      {
        source: ['aws.iam'],
        detail: {
          eventName: [
            'CreateRole',
            'UpdateRole',
            'UpdateAssumeRolePolicy',
            'AttachRolePolicy',
            'DetachRolePolicy',
            // DeleteRole, DeleteRolePolicy, DeleteRolePermissionsBoundary; PutRolePolicy,
            // PutRolePermissionsBoundary.
            { prefix: 'DeleteRole' },
            { prefix: 'PutRole' },
          ],
        },
      },
      // Only assumptions of the governance roles (by anything, Lambda included).
      {
        source: ['aws.sts'],
        detail: {
          eventName: ['AssumeRole'],
          requestParameters: {
            roleArn: [anyAccount
              ? { wildcard: Fn.sub('arn:${AWS::Partition}:iam::*:role/${NamePrefix}/*') }
              : { prefix: Fn.sub('arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${NamePrefix}/') }],
          },
        },
      },
      {
        source: ['aws.s3'],
        detail: {
          eventName: [
            // PutBucketNotification and PutBucketNotificationConfiguration; DeleteBucket and
            // DeleteBucketPolicy.
            { prefix: 'PutBucketNotification' },
            'PutBucketPolicy',
            { prefix: 'DeleteBucket' },
          ],
        },
      },
      { source: ['aws.events'], detail: { eventName: ['DisableRule', 'DeleteRule', 'PutRule', 'RemoveTargets', 'PutTargets'] } },
      { source: ['aws.sqs'], detail: { eventName: ['PurgeQueue', 'DeleteQueue', 'SetQueueAttributes'] } },
      { source: ['aws.sns'], detail: { eventName: ['DeleteTopic', 'SetTopicAttributes', 'Unsubscribe'] } },
      {
        source: ['aws.dynamodb'],
        detail: { eventName: ['DeleteTable', 'UpdateTable', 'PutResourcePolicy', 'DeleteResourcePolicy'] },
      },
      {
        source: ['aws.cloudtrail'],
        detail: { eventName: ['StopLogging', 'DeleteTrail', 'UpdateTrail', 'PutEventSelectors'] },
      },
      {
        source: ['aws.ssm'],
        detail: {
          eventName: ['PutParameter', 'DeleteParameter'],
          requestParameters: { name: [{ prefix: Fn.sub('/${NamePrefix}/') }] },
        },
      },
      {
        source: ['aws.ssm'],
        detail: {
          eventName: ['DeleteParameters'],
          requestParameters: { names: [{ prefix: Fn.sub('/${NamePrefix}/') }] },
        },
      },
    ],
  };
}
