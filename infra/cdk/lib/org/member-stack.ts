/**
 * A workload account of an organization (infra/org/member.yaml): the launcher with its own
 * ledger, pending table, token key and alerts, the launcher role under one name in every
 * account, and the read-only sweep role the security account's detector assumes. Deployed as
 * a service-managed StackSet to the workload OU, in the ledger region.
 */
import { Fn, Stack, StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { Kit, ROLE_ARN_PATTERN, queueMetric } from '../kit';
import { tableArn } from '../names';
import { buildLauncher, launcherParameters, launcherSecrets, launcherTables } from '../parts/launcher';
import { alerting, contro1ApiKey, deployerParameters, eventsDeadLetterQueue, logRetentionParameter } from '../parts/shared';
import { PreventionParams } from '../prevention';
import { remediationDocument } from '../roles';

/** OrganizationId (o-...), which the member and security stacks both take. */
export const organizationIdParameter = (kit: Kit, description: string) =>
  kit.param('OrganizationId', { type: 'String', allowedPattern: '^o-[a-z0-9]{10,32}$', description }).valueAsString;

export class MemberStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    const kit = new Kit(this);
    const deployer = deployerParameters(kit, true);
    const organizationId = organizationIdParameter(kit, "The organization (aws:PrincipalOrgID) the sweep role's trust requires.");
    const detectorRoleArn = kit.param('DetectorRoleArn', {
      type: 'String',
      allowedPattern: ROLE_ARN_PATTERN,
      description: "The security account's detector role: the only principal the sweep role trusts.",
    }).valueAsString;
    const sweepRoleName = kit.param('SweepRoleName', {
      type: 'String',
      default: 'microvm-gov-sweep',
      allowedPattern: '^[A-Za-z0-9+=,.@_-]{1,64}$',
      description: 'Name of the read-only sweep role (path /), the same in every account.',
    }).valueAsString;
    const sweepRemediation = kit.param('SweepRemediation', {
      type: 'String',
      default: 'off',
      allowedValues: ['off', 'on'],
      description: 'on: the sweep role may also SuspendMicrovm/TerminateMicrovm. Off by default: it only reads.',
    }).valueAsString;
    const securityHubImportRoleName = kit.param('SecurityHubImportRoleName', {
      type: 'String',
      default: '',
      allowedPattern: '^[A-Za-z0-9+=,.@_-]{0,64}$',
      description: "Optional name of the role (path /) through which the security account's detector imports this "
        + "account's findings into its Security Hub: the security stack's SecurityHubImportRoleName. Empty: no role.",
    }).valueAsString;
    const lp = launcherParameters(kit);
    const logRetentionDays = logRetentionParameter(kit, "Retention of the launcher's log group.");
    const sweepRemediationEnabled = kit.cond('SweepRemediationEnabled', Fn.conditionEquals(sweepRemediation, 'on'));
    const hasImportRole = kit.cond('HasSecurityHubImportRole', Fn.conditionNot(Fn.conditionEquals(securityHubImportRoleName, '')));
    const prevention: PreventionParams = {
      ...deployer,
      allowedImageArns: lp.allowedImageArns,
      allowedNetworkConnectorArns: lp.allowedNetworkConnectorArns,
      // No trail here: the organization trail is the log-archive account's.
      trailBucketName: '',
    };

    const contro1 = contro1ApiKey(kit, deployer);
    const { ledger, pending } = launcherTables(kit, prevention);
    const { webhookArn, tokenKey } = launcherSecrets(kit, lp, prevention);
    const alerts = alerting(kit, prevention);
    // Reconciler schedule deliveries and runs that fail after their retries (alarmed).
    const eventsDlq = eventsDeadLetterQueue(kit, 'EventsDeadLetterQueue', 'launcher-events-dlq',
      'FailedDeliveriesOfTheReconcilerSchedule', ['reconciler']);
    const launcher = buildLauncher(kit, lp, {
      contro1,
      webhookArn,
      tokenKeyArn: tokenKey.attrArn,
      eventsDlqArn: eventsDlq.attrArn,
      ledgerRef: ledger.ref,
      pendingRef: pending.ref,
      logRetentionDays,
      alertTopicRef: alerts.topic.ref,
      // One name in every account: the detector matches arn:aws:iam::*:role/<path><name>.
      roleName: Fn.sub('${NamePrefix}-launcher'),
    });
    kit.alarm('EventsDeadLetterQueueAlarm', 'launcher-events-dlq-not-empty',
      'Reconciler runs that failed after their retries (approved calls may be stuck executing).',
      queueMetric('ApproximateNumberOfMessagesVisible', eventsDlq), alerts.topic.ref);

    // The security account's detector reads this account through the sweep role:
    // ListMicrovms and the ledger, nothing else; only the detector role, only from inside the
    // organization. Path / because the detector builds the ARN from the name.
    const sweepRole = new iam.CfnRole(this, 'SweepRole', {
      roleName: sweepRoleName,
      path: '/',
      description: "Read-only access for the security account's MicroVM detector (ListMicrovms, ledger reads).",
      maxSessionDuration: 3600,
      assumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'OnlyTheDetectorInTheOrganization',
            Effect: 'Allow',
            Principal: { AWS: detectorRoleArn },
            Action: 'sts:AssumeRole',
            Condition: { StringEquals: { 'aws:PrincipalOrgID': organizationId } },
          },
        ],
      },
      policies: [
        {
          policyName: 'sweep-read',
          policyDocument: {
            Version: '2012-10-17',
            Statement: [
              // ListMicrovms has no resource type.
              { Sid: 'ListMicrovms', Effect: 'Allow', Action: 'lambda:ListMicrovms', Resource: '*' },
              { Sid: 'ReadLedger', Effect: 'Allow', Action: 'dynamodb:BatchGetItem', Resource: tableArn('ledger') },
            ],
          },
        },
      ],
    });
    // Remediation across accounts only with SweepRemediation=on.
    const remediation = new iam.CfnPolicy(this, 'SweepRemediationPolicy', {
      policyName: 'sweep-remediation',
      roles: [sweepRole.ref],
      policyDocument: remediationDocument(false),
    });
    remediation.cfnOptions.condition = sweepRemediationEnabled;

    // Security Hub, finding by finding in the account it names: with the default product ARN,
    // BatchImportFindings is accepted only from the account in the finding's AwsAccountId
    // (Security Hub API reference, BatchImportFindings). Its only permission: BatchImportFindings
    // on this account's default product (resource type `product`, Service Authorization
    // Reference, "Actions, resources, and condition keys for AWS Security Hub"), in any region:
    // the detector imports in its own region, which need not be this stack's. The sweep role's
    // trust; path / because the detector builds the ARN from the name.
    const importRole = new iam.CfnRole(this, 'SecurityHubImportRole', {
      roleName: securityHubImportRoleName,
      path: '/',
      description: "The security account's MicroVM detector imports this account's findings into Security Hub (BatchImportFindings only).",
      maxSessionDuration: 3600,
      assumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'OnlyTheDetectorInTheOrganization',
            Effect: 'Allow',
            Principal: { AWS: detectorRoleArn },
            Action: 'sts:AssumeRole',
            Condition: { StringEquals: { 'aws:PrincipalOrgID': organizationId } },
          },
        ],
      },
      policies: [
        {
          policyName: 'securityhub-import',
          policyDocument: {
            Version: '2012-10-17',
            Statement: [
              {
                Sid: 'ImportFindingsIntoSecurityHub',
                Effect: 'Allow',
                Action: 'securityhub:BatchImportFindings',
                Resource: Fn.sub('arn:${AWS::Partition}:securityhub:*:${AWS::AccountId}:product/${AWS::AccountId}/default'),
              },
            ],
          },
        },
      ],
    });
    importRole.cfnOptions.condition = hasImportRole;

    kit.out('LauncherUrl', launcher.url.attrFunctionUrl, "The launcher's Function URL on the alias live (AWS_IAM).");
    kit.out('Contro1WebhookUrl', launcher.webhookUrl.attrFunctionUrl, 'Give this as LauncherPublicUrl.', lp.webhookUrlEnabled);
    kit.out('LauncherRoleArn', launcher.role.attrArn, 'The only role allowed the governed MicroVM actions.');
    kit.out('SweepRoleArn', sweepRole.attrArn);
    kit.out('SecurityHubImportRoleArn', importRole.attrArn, undefined, hasImportRole);
    kit.out('LedgerTableName', ledger.ref);
    kit.out('AlertTopicArn', alerts.topic.ref);
  }
}
