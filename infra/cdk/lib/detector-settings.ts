/**
 * The detector's settings beside remediation: template parameters with the code's defaults
 * (detector/src/lambda/config.rs is the source of truth, detector/LAMBDA.md documents them),
 * the conditions that switch their grants on, and the environment they become. Shared by
 * every stack that deploys the detector; the names are the SAM templates'.
 */
import { CfnCondition, CfnParameter, Fn } from 'aws-cdk-lib';

type ParamFn = (name: string, p: ConstructorParameters<typeof CfnParameter>[2]) => CfnParameter;
type CondFn = (name: string, expression: ReturnType<typeof Fn.conditionEquals>) => CfnCondition;

/**
 * Declares the parameters; returns the environment variables they set. `overrides` changes a
 * parameter's properties by name (the security stack sweeps an organization by default).
 */
export function detectorParameters(param: ParamFn, overrides: Record<string, Partial<NonNullable<ConstructorParameters<typeof CfnParameter>[2]>>> = {}): Record<string, string> {
  const n = (name: string, dflt: number, minValue: number, maxValue: number, description: string) =>
    param(name, { type: 'Number', default: dflt, minValue, maxValue, description, ...overrides[name] }).valueAsString;
  const s = (name: string, p: ConstructorParameters<typeof CfnParameter>[2]) =>
    param(name, { type: 'String', ...p, ...overrides[name] }).valueAsString;
  return {
    UNMANAGED_MIN_AGE_SECONDS: n('UnmanagedMinAgeSeconds', 300, 60, 86400, 'A MicroVM younger than this is never reported unmanaged.'),
    REMEDIATION_GRACE_SECONDS: n('RemediationGraceSeconds', 900, 60, 604800,
      'Age before an unmanaged MicroVM is remediated; at least UnmanagedMinAgeSeconds.'),
    REMEDIATION_MAX_PER_SWEEP: n('RemediationMaxPerSweep', 10, 1, 10000, 'At most this many MicroVMs remediated per sweep.'),
    REMEDIATION_MAX_FLEET_PERCENT: n('RemediationMaxFleetPercent', 20, 1, 100,
      'No remediation in a sweep that would act on more than this share of the fleet.'),
    SECURITY_HUB: s('SecurityHub', { default: 'off', allowedValues: ['off', 'on'], description: 'on: findings also go to Security Hub.' }),
    EVENT_BUS_NAME: s('EventBusName', {
      default: '',
      allowedPattern: '^[A-Za-z0-9._-]{0,256}$',
      description: 'Optional EventBridge bus (name, this account and region) findings are also put on.',
    }),
    CHAT_TOPIC_ARN: s('ChatTopicArn', {
      default: '',
      allowedPattern: '^$|^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$',
      description: 'Optional SNS topic AWS Chatbot subscribes to.',
    }),
    ORGANIZATION_ACCOUNTS: s('OrganizationAccounts', {
      default: '',
      allowedPattern: '^[0-9, ]*$',
      description: 'Optional comma-separated account ids of the organization.',
    }),
    SWEEP_ACCOUNTS: s('SweepAccounts', {
      default: '',
      allowedPattern: '^(organization|[0-9, ]*)$',
      description: 'Accounts swept: empty (this one), ids, or organization.',
    }),
    SWEEP_REGIONS: s('SweepRegions', {
      default: '',
      allowedPattern: '^(enabled|[a-z0-9, -]*)$',
      description: 'Regions swept: empty (this one), names, or enabled.',
    }),
    SWEEP_ROLE_NAME: s('SweepRoleName', {
      default: '',
      allowedPattern: '^[A-Za-z0-9+=,.@_-]{0,64}$',
      description: 'Read-only role the sweep assumes in every other account.',
    }),
    LEDGER_REGION: s('LedgerRegion', { default: '', allowedPattern: '^[a-z0-9-]*$', description: "Region of every account's ledger." }),
    SWEEP_TARGET_CONCURRENCY: n('SweepTargetConcurrency', 16, 1, 256, 'Targets swept at once in one invocation.'),
  };
}

/** The conditions of the optional grants (roles.ts detectorOptionalStatements). */
export function detectorConditions(cond: CondFn): void {
  const set = (p: string) => Fn.conditionNot(Fn.conditionEquals(Fn.ref(p), ''));
  cond('SecurityHubEnabled', Fn.conditionEquals(Fn.ref('SecurityHub'), 'on'));
  cond('HasEventBus', set('EventBusName'));
  cond('HasChatTopic', set('ChatTopicArn'));
  cond('SweepsOtherAccounts', Fn.conditionAnd(set('SweepAccounts'), set('SweepRoleName')));
  cond('SweepsOrganization', Fn.conditionEquals(Fn.ref('SweepAccounts'), 'organization'));
  cond('SweepsEnabledRegions', Fn.conditionEquals(Fn.ref('SweepRegions'), 'enabled'));
}
