/**
 * Names and ARNs the stack derives from NamePrefix, as CloudFormation Fn::Sub strings. The
 * deny policy, the table resource policies and the role policies name resources through
 * these (never through a resource reference), so that the generated SCP can name them too
 * and no policy depends on the resource it protects.
 */
import { Fn } from 'aws-cdk-lib';

const p = '${AWS::Partition}';
const here = '${AWS::Region}:${AWS::AccountId}';

export const functionArn = (kind: 'launcher' | 'detector') =>
  Fn.sub(`arn:${p}:lambda:${here}:function:\${NamePrefix}-${kind}`);
export const qualifiedFunctionArns = (kind: 'launcher' | 'detector') => Fn.sub(`arn:${p}:lambda:${here}:function:\${NamePrefix}-${kind}:*`);
export const tableArn = (name: 'ledger' | 'pending' | 'dedupe') =>
  Fn.sub(`arn:${p}:dynamodb:${here}:table/\${NamePrefix}-${name}`);
export const rolePathArn = (kind: 'launcher' | 'detector') => Fn.sub(`arn:${p}:iam::\${AWS::AccountId}:role/\${NamePrefix}/${kind}/*`);
export type RuleName = 'sweep' | 'governed-calls' | 'tamper-events' | 'reconciler' | 'forward-governed-calls' | 'forward-tamper-events';
export const ruleArn = (name: RuleName) =>
  Fn.sub(`arn:${p}:events:${here}:rule/\${NamePrefix}-${name}`);
export const baselineParameterArn = () => Fn.sub(`arn:${p}:ssm:${here}:parameter/\${NamePrefix}/integrity-baseline`);
export const logGroupArn = (kind: 'launcher' | 'detector') =>
  Fn.sub(`arn:${p}:logs:${here}:log-group:/aws/lambda/\${NamePrefix}-${kind}:*`);
export const computedTrailBucketName = () => Fn.sub('${NamePrefix}-cloudtrail-${AWS::AccountId}-${AWS::Region}');

/** `ArnLike lambda:SourceFunctionArn` for the function itself and every qualifier of it. */
export const fromFunction = (kind: 'launcher' | 'detector') => ({
  ArnLike: { 'lambda:SourceFunctionArn': [functionArn(kind), qualifiedFunctionArns(kind)] },
});

/** The allowed image ARNs and every version under them (`ARN:*`), as one list. */
export const imagesAndVersions = (imagesParam: string[]) =>
  Fn.split(
    ',',
    Fn.sub('${Images},${Versions}:*', { Images: Fn.join(',', imagesParam), Versions: Fn.join(':*,', imagesParam) }),
  );

export const DYNAMODB_WRITES = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:PartiQLInsert',
  'dynamodb:PartiQLUpdate',
  'dynamodb:PartiQLDelete',
];
export const DYNAMODB_TABLE_CHANGES = [
  'dynamodb:DeleteTable',
  'dynamodb:UpdateTable',
  'dynamodb:PutResourcePolicy',
  'dynamodb:DeleteResourcePolicy',
  'dynamodb:UpdateTimeToLive',
  'dynamodb:UpdateContinuousBackups',
  'dynamodb:TagResource',
  'dynamodb:UntagResource',
];
