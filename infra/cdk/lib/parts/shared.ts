/**
 * Pieces both functions' stacks have: who may change the stack, the name prefix, the Contro1
 * API key, log retention, the alert topic on its own key, and the dead-letter queue of
 * EventBridge deliveries and asynchronous invocations.
 */
import { CfnCondition, Fn, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Kit, LOG_RETENTION_DAYS, denyInsecureSqs } from '../kit';
import { rolePathArn, ruleArn } from '../names';
import { PreventionParams, alertKeyPolicy } from '../prevention';

export interface Deployer {
  pipelineRoleArn: string;
  deploymentRoleArn: string;
  breakGlassRoleArn: string;
}

/** The exact ARN of one role: no wildcard in its path or name (a pattern is claimable). */
export const EXACT_ROLE_ARN_PATTERN = '^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$';
/** The same with `*` as the account: one stack set value for every account. */
export const ANY_ACCOUNT_ROLE_ARN_PATTERN = '^arn:aws[a-z-]*:iam::([0-9]{12}|\\*):role/[A-Za-z0-9+=,.@_/-]+$';

/**
 * PipelineRoleArn, DeploymentRoleArn, BreakGlassRoleArn and NamePrefix, each role by exact ARN.
 * anyAccount: the ARNs may name every account (`*`), for a member stack set (they are used
 * only in exemptions and in the resources of denies).
 */
export function deployerParameters(kit: Kit, anyAccount = false): Deployer {
  const pattern = anyAccount ? ANY_ACCOUNT_ROLE_ARN_PATTERN : EXACT_ROLE_ARN_PATTERN;
  const pipelineRole = kit.param('PipelineRoleArn', {
    type: 'String',
    allowedPattern: pattern,
    description: 'Pipeline principal that starts the stack operations and passes the deployment role; the only one that operates the governance stacks.',
  });
  const deploymentRole = kit.param('DeploymentRoleArn', {
    type: 'String',
    allowedPattern: pattern,
    description: 'Role that deploys the stack (CloudFormation execution or pipeline role); the only one that changes or passes it.',
  });
  const breakGlassRole = kit.param('BreakGlassRoleArn', {
    type: 'String',
    allowedPattern: pattern,
    description: 'Emergency role exempt from the deny policy besides the deployment role; its changes are alerted.',
  });
  kit.param('NamePrefix', {
    type: 'String',
    default: 'microvm-gov',
    allowedPattern: '^[a-z][a-z0-9-]{1,20}$',
    description: 'Lower-case prefix of every name the stack creates.',
  });
  return {
    pipelineRoleArn: pipelineRole.valueAsString,
    deploymentRoleArn: deploymentRole.valueAsString,
    breakGlassRoleArn: breakGlassRole.valueAsString,
  };
}

export interface Contro1 {
  baseUrl: string;
  /** The secret created under CreateApiKeySecret, or Contro1ApiKeySecretArn. */
  apiKeyArn: string;
  createApiKey: CfnCondition;
}

/** Contro1BaseUrl and the API key secret (created when Contro1ApiKeySecretArn is empty). */
export function contro1ApiKey(kit: Kit, deployer: Deployer): Contro1 {
  const baseUrl = kit.param('Contro1BaseUrl', {
    type: 'String',
    default: 'https://api.contro1.com/api/centcom/v1',
    allowedPattern: '^https://[^\\s]+$',
    description: 'Contro1 API base URL (https only).',
  });
  const arn = kit.param('Contro1ApiKeySecretArn', {
    type: 'String',
    default: '',
    description: 'Existing Secrets Manager secret with the Contro1 API key. Empty: one is created.',
  });
  const createApiKey = kit.cond('CreateApiKeySecret', Fn.conditionEquals(arn.valueAsString, ''));
  const secret = new secretsmanager.CfnSecret(kit.stack, 'Contro1ApiKeySecret', {
    name: Fn.sub('${NamePrefix}-contro1-api-key'),
    description: 'Contro1 API key (bearer). Put the real value after deploying.',
    generateSecretString: { passwordLength: 32, excludePunctuation: true },
  });
  secret.cfnOptions.condition = createApiKey;
  const policy = new secretsmanager.CfnResourcePolicy(kit.stack, 'Contro1ApiKeySecretPolicy', {
    secretId: secret.ref,
    blockPublicPolicy: true,
    resourcePolicy: secretResourcePolicy(deployer, 'ApiKey', [rolePathArn('launcher'), rolePathArn('detector')]),
  });
  policy.cfnOptions.condition = createApiKey;
  return { baseUrl: baseUrl.valueAsString, apiKeyArn: kit.ifCond(createApiKey, secret.ref, arn.valueAsString), createApiKey };
}

/** Whoever writes a Contro1 secret decides whose tenant approves: only the deployer, pipeline or
 * break-glass role writes it, only the given role paths read it. */
export function secretResourcePolicy(d: Deployer, what: 'ApiKey' | 'WebhookSecret', readers: string[]) {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: what === 'ApiKey' ? 'OnlyTheLauncherAndDetectorReadTheApiKey' : 'OnlyTheLauncherReadsTheWebhookSecret',
        Effect: 'Deny',
        Principal: '*',
        Action: 'secretsmanager:GetSecretValue',
        Resource: '*',
        Condition: { ArnNotLike: { 'aws:PrincipalArn': readers.length === 1 ? readers[0] : readers } },
      },
      {
        Sid: `OnlyTheDeployerPipelineOrBreakGlassWritesThe${what}`,
        Effect: 'Deny',
        Principal: '*',
        Action: SECRET_WRITES,
        Resource: '*',
        Condition: { ArnNotLike: { 'aws:PrincipalArn': [d.deploymentRoleArn, d.pipelineRoleArn, d.breakGlassRoleArn] } },
      },
    ],
  };
}

const SECRET_WRITES = [
  'secretsmanager:PutSecretValue',
  'secretsmanager:UpdateSecret',
  'secretsmanager:UpdateSecretVersionStage',
  'secretsmanager:PutResourcePolicy',
  'secretsmanager:DeleteResourcePolicy',
  'secretsmanager:RotateSecret',
  'secretsmanager:CancelRotateSecret',
  'secretsmanager:DeleteSecret',
  'secretsmanager:RestoreSecret',
  'secretsmanager:TagResource',
  'secretsmanager:UntagResource',
  'secretsmanager:ReplicateSecretToRegions',
];

export function logRetentionParameter(kit: Kit, description?: string): number {
  return kit.param('LogRetentionDays', {
    type: 'Number',
    default: '365',
    allowedValues: LOG_RETENTION_DAYS.map(String),
    description,
  }).valueAsNumber;
}

export interface Alerting {
  key: kms.CfnKey;
  topic: sns.CfnTopic;
}

/**
 * The alert topic on a key of its own (CloudWatch alarms cannot publish to a topic encrypted
 * with the AWS-managed SNS key), and the optional e-mail subscription (AlertEmail).
 */
export function alerting(kit: Kit, prevention: PreventionParams): Alerting {
  const alertEmail = kit.param('AlertEmail', { type: 'String', default: '' });
  const hasEmail = kit.cond('HasAlertEmail', Fn.conditionNot(Fn.conditionEquals(alertEmail.valueAsString, '')));
  const key = new kms.CfnKey(kit.stack, 'AlertKey', {
    description: 'Encrypts the MicroVM governance alert topic.',
    enableKeyRotation: true,
    keyPolicy: alertKeyPolicy(prevention),
  });
  new kms.CfnAlias(kit.stack, 'AlertKeyAlias', { aliasName: Fn.sub('alias/${NamePrefix}-alerts'), targetKeyId: key.ref });
  const topic = new sns.CfnTopic(kit.stack, 'AlertTopic', {
    topicName: Fn.sub('${NamePrefix}-alerts'),
    displayName: 'MicroVM governance alerts',
    kmsMasterKeyId: key.attrArn,
  });
  const sub = new sns.CfnSubscription(kit.stack, 'AlertEmailSubscription', {
    topicArn: topic.ref,
    protocol: 'email',
    endpoint: alertEmail.valueAsString,
  });
  sub.cfnOptions.condition = hasEmail;
  return { key, topic };
}

/** Failed EventBridge deliveries of the named rules and failed asynchronous invocations. */
export function eventsDeadLetterQueue(kit: Kit, id: string, queueName: string, sid: string,
                                      rules: Parameters<typeof ruleArn>[0][]): sqs.CfnQueue {
  const dlq = new sqs.CfnQueue(kit.stack, id, {
    queueName: Fn.sub(`\${NamePrefix}-${queueName}`),
    messageRetentionPeriod: 1209600,
    sqsManagedSseEnabled: true,
  });
  new sqs.CfnQueuePolicy(kit.stack, `${id}Policy`, {
    queues: [dlq.ref],
    policyDocument: {
      Version: '2012-10-17',
      Statement: [
        {
          Sid: sid,
          Effect: 'Allow',
          Principal: { Service: 'events.amazonaws.com' },
          Action: 'sqs:SendMessage',
          Resource: dlq.attrArn,
          Condition: { ArnEquals: { 'aws:SourceArn': rules.map(ruleArn) } },
        },
        denyInsecureSqs(dlq.attrArn),
      ],
    },
  });
  return dlq;
}

/** A table named `<prefix>-<name>`: on demand, SSE, point-in-time recovery, its resource policy. */
export function table(kit: Kit, id: string, name: 'ledger' | 'pending' | 'dedupe', ttl: boolean, retain: boolean, policy: object,
                      index?: dynamodb.CfnTable.GlobalSecondaryIndexProperty): dynamodb.CfnTable {
  const t = new dynamodb.CfnTable(kit.stack, id, {
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
}
