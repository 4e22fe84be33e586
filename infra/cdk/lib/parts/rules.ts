/**
 * EventBridge rules that invoke a function's alias `live`, with a retry policy, the
 * dead-letter queue and the resource-policy permission (the shape SAM's Schedule and
 * EventBridgeRule events produce).
 */
import * as events from 'aws-cdk-lib/aws-events';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Kit, RustFn } from '../kit';

export function scheduleRule(kit: Kit, id: string, props: events.CfnRuleProps, retries: number, maxAge: number,
                             target: RustFn, dlqArn: string): events.CfnRule {
  const r = new events.CfnRule(kit.stack, id, {
    ...props,
    targets: [
      {
        arn: target.live.ref,
        id: `${id}LambdaTarget`,
        deadLetterConfig: { arn: dlqArn },
        retryPolicy: { maximumRetryAttempts: retries, maximumEventAgeInSeconds: maxAge },
      },
    ],
  });
  new lambda.CfnPermission(kit.stack, `${id}Permission`, {
    action: 'lambda:InvokeFunction',
    functionName: target.live.ref,
    principal: 'events.amazonaws.com',
    sourceArn: r.attrArn,
  });
  return r;
}
