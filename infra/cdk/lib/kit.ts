/**
 * What every stack of the app builds with: parameters, conditions, outputs and alarms under
 * the SAM templates' logical ids, log groups, and the Rust functions (cargo-lambda-cdk) with a
 * version published per deploy and the alias `live`.
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  Annotations,
  CfnCondition,
  CfnOutput,
  CfnParameter,
  CfnResource,
  Fn,
  RemovalPolicy,
  Stack,
} from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';

export type ParamProps = ConstructorParameters<typeof CfnParameter>[2];
export type CondExpr = ReturnType<typeof Fn.conditionEquals>;

export const LOG_RETENTION_DAYS = [30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
export const ROLE_ARN_PATTERN = '^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$';

/** Repository root (infra/cdk/build/lib -> ../../../..; infra/cdk/lib -> ../../..). */
export function repoRoot(): string {
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
export function pin(construct: Construct, logicalId: string): CfnResource {
  const cfn = construct.node.defaultChild as CfnResource;
  cfn.overrideLogicalId(logicalId);
  return cfn;
}

export interface RustFn {
  fn: RustFunction;
  cfn: CfnResource;
  versionRef: string;
  live: lambda.CfnAlias;
}

export interface Metric {
  namespace: string;
  metricName: string;
  dimension: { name: string; value: string };
  statistic: string;
}

export const queueMetric = (metricName: string, q: sqs.CfnQueue): Metric =>
  ({ namespace: 'AWS/SQS', metricName, dimension: { name: 'QueueName', value: q.attrQueueName }, statistic: 'Maximum' });
export const fnMetric = (metricName: string, fn: lambda.IFunction): Metric =>
  ({ namespace: 'AWS/Lambda', metricName, dimension: { name: 'FunctionName', value: fn.functionName }, statistic: 'Sum' });

export class Kit {
  readonly root = repoRoot();

  constructor(readonly stack: Stack) {
    // CDK's synth-time validator flags two things that are deliberate here:
    // W2509: *SecretArn parameters name a secret's ARN; they hold no secret, so NoEcho would
    //        only hide which secret is used.
    // W1001: outputs like Fn::If [CreateApiKeySecret, Ref Contro1ApiKeySecret, ...] reference
    //        the conditional secret only in the branch guarded by its own condition.
    Annotations.of(stack).acknowledgeWarning('CloudFormation-Validate::W2509', 'secret ARN parameters hold no secret');
    Annotations.of(stack).acknowledgeWarning('CloudFormation-Validate::W1001', 'reference guarded by its own condition');
  }

  param(name: string, p: ParamProps): CfnParameter {
    const cp = new CfnParameter(this.stack, name, p);
    cp.overrideLogicalId(name);
    return cp;
  }

  cond(name: string, expression: CondExpr): CfnCondition {
    const c = new CfnCondition(this.stack, name, { expression });
    c.overrideLogicalId(name);
    return c;
  }

  ifCond(c: CfnCondition | string, a: unknown, b: unknown): string {
    return Fn.conditionIf(typeof c === 'string' ? c : c.logicalId, a, b).toString();
  }

  out(name: string, value: string, description?: string, condition?: CfnCondition): void {
    const o = new CfnOutput(this.stack, `Output${name}`, { value, description });
    o.overrideLogicalId(name);
    if (condition) o.condition = condition;
  }

  logGroup(id: string, kind: string, retentionDays: number): logs.CfnLogGroup {
    const g = new logs.CfnLogGroup(this.stack, id, {
      logGroupName: Fn.sub(`/aws/lambda/\${NamePrefix}-${kind}`),
      retentionInDays: retentionDays,
    });
    g.applyRemovalPolicy(RemovalPolicy.RETAIN);
    return g;
  }

  rustFunction(id: string, binary: string, role: iam.CfnRole, logGroup: logs.CfnLogGroup,
               fnProps: Omit<lambda.FunctionOptions, 'role'>): RustFn {
    const fn = new RustFunction(this.stack, id, {
      manifestPath: path.join(this.root, 'Cargo.toml'),
      binaryName: binary,
      architecture: lambda.Architecture.ARM_64,
      role: iam.Role.fromRoleArn(this.stack, `${id}RoleRef`, role.attrArn, { mutable: false }),
      // Published versions stay when a newer one replaces them (rollback, and the baseline).
      currentVersionOptions: { removalPolicy: RemovalPolicy.RETAIN },
      ...fnProps,
    });
    const cfn = pin(fn, id);
    cfn.addPropertyOverride('LoggingConfig', { LogGroup: logGroup.ref, LogFormat: 'Text' });
    // Every deploy publishes a version; the alias `live` points at it (SAM: AutoPublishAlias).
    const version = fn.currentVersion;
    const versionRef = (version.node.defaultChild as lambda.CfnVersion).ref;
    const live = new lambda.CfnAlias(this.stack, `${id}Aliaslive`, {
      name: 'live',
      functionName: fn.functionName,
      functionVersion: version.version,
    });
    live.overrideLogicalId(`${id}Aliaslive`);
    return { fn, cfn, versionRef, live };
  }

  /** EventBridge invokes asynchronously: what still fails after two retries goes to the DLQ. */
  onFailureTo(id: string, f: RustFn, dlqArn: string): void {
    const c = new lambda.CfnEventInvokeConfig(this.stack, `${id}EventInvokeConfig`, {
      functionName: f.fn.functionName,
      qualifier: 'live',
      maximumRetryAttempts: 2,
      maximumEventAgeInSeconds: 3600,
      destinationConfig: { onFailure: { destination: dlqArn } },
    });
    c.addDependency(f.live);
  }

  alarm(id: string, name: string, description: string, metric: Metric, topicRef: string,
        opts: Partial<cloudwatch.CfnAlarmProps> = {}): cloudwatch.CfnAlarm {
    return new cloudwatch.CfnAlarm(this.stack, id, {
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
      alarmActions: [topicRef],
      ...opts,
    });
  }
}

/** Deny anything but TLS on a queue. */
export const denyInsecureSqs = (arn: string | string[]) => ({
  Sid: 'DenyInsecureTransport',
  Effect: 'Deny',
  Principal: '*',
  Action: 'sqs:*',
  Resource: arn,
  Condition: { Bool: { 'aws:SecureTransport': 'false' } },
});
