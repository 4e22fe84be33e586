#!/usr/bin/env python3
"""Insider pull requests that weaken governance, each of which infra/gate must refuse.

Each mutation is one kind of weakening, written against what a resource is (its type, the
function it belongs to, the action it grants), never against a logical id, so it applies to
the SAM template (after its transform) and to the CDK synth output alike, and keeps applying
when statements are added or reordered. For every mutation and every template the gate's
three layers are run on the mutated copy: cfn-guard (G), the invariants (I) and the baseline
diff (B). A mutation passes when the gate fails; one marked `invariant=True` must also be
caught by the invariants layer (not only by the baseline diff). A mutation that finds
nothing to change fails the test (it would prove nothing).

With --org KIND SAM_TEMPLATE CDK_TEMPLATE (repeatable; KIND member or security), the
mutations that fit that organization template run on both of its forms as well (each must
be caught by the invariants).

Usage: gate_mutations.py SAM_TEMPLATE CDK_TEMPLATE [--org KIND SAM_TEMPLATE CDK_TEMPLATE]...
Prints the mutation x layer table and "N passed, N failed"; exits 1 on any failure.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import pathlib
import re
import sys

INFRA = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(INFRA))

from gate_lib import cli, guard, model  # noqa: E402
from gate_lib.resolve import Resolver  # noqa: E402
from iam.evaluator import action_matches  # noqa: E402


class NothingToBreak(Exception):
    pass


# ------------------------------------------------------------------ finding things
def names(t: dict) -> dict:
    r = Resolver(t, symbolic=False)
    return {lid: r.name_of(lid) for lid in t["Resources"]}


def find(t: dict, typ: str, pred=lambda lid, res, name: True) -> list[tuple[str, dict]]:
    n = names(t)
    out = [(lid, r) for lid, r in t["Resources"].items() if r.get("Type") == typ and pred(lid, r, n[lid])]
    if not out:
        raise NothingToBreak(f"no {typ} matching")
    return out


def one(t, typ, pred=lambda lid, res, name: True) -> tuple[str, dict]:
    return find(t, typ, pred)[0]


def function(t: dict, kind: str) -> tuple[str, dict]:
    return one(t, "AWS::Lambda::Function", lambda lid, r, n: str(n).endswith("-" + kind))


def role_of(t: dict, kind: str) -> tuple[str, dict]:
    _, fn = function(t, kind)
    ref = fn["Properties"]["Role"]
    lid = ref["Fn::GetAtt"][0] if isinstance(ref.get("Fn::GetAtt"), list) else ref["Fn::GetAtt"].split(".")[0]
    return lid, t["Resources"][lid]


def fn_arn(t: dict, kind: str) -> dict:
    lid, _ = function(t, kind)
    return {"Fn::GetAtt": [lid, "Arn"]}


def env(t: dict, kind: str) -> dict:
    return function(t, kind)[1]["Properties"]["Environment"]["Variables"]


def add(t: dict, lid: str, res: dict) -> None:
    t["Resources"][lid] = res


LAMBDA_TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                        "Action": "sts:AssumeRole"}]}


def new_role(path, statements) -> dict:
    props = {"AssumeRolePolicyDocument": LAMBDA_TRUST,
             "Policies": [{"PolicyName": "ops", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}]}
    if path is not None:
        props["Path"] = path
    return {"Type": "AWS::IAM::Role", "Properties": props}


def allow(action, resource="*") -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def trail(t):
    return one(t, "AWS::CloudTrail::Trail")[1]["Properties"]


def microvm_selector(t) -> dict:
    for sel in trail(t).get("AdvancedEventSelectors", []):
        if any("AWS::Lambda::MicrovmImage" in json.dumps(f) for f in sel["FieldSelectors"]):
            return sel
    raise NothingToBreak("no MicroVM selector")


def trail_bucket(t) -> dict:
    ref = trail(t)["S3BucketName"]
    return t["Resources"][ref["Ref"]]["Properties"]


def schedule_rules(t, kind="detector") -> list[dict]:
    fn_lid, _ = function(t, kind)
    out = [r for _, r in find(t, "AWS::Events::Rule", lambda lid, r, n: "ScheduleExpression" in r["Properties"]
                              and fn_lid in json.dumps(r["Properties"].get("Targets")))]
    return out


def mapping(t) -> tuple[str, dict]:
    """The detector's mapping from its queue (the queue named <prefix>-detector)."""
    fn_lid, _ = function(t, "detector")
    qlid, _ = one(t, "AWS::SQS::Queue", lambda lid, r, n: str(n).endswith("-detector"))
    return one(t, "AWS::Lambda::EventSourceMapping", lambda lid, r, n: fn_lid in json.dumps(r["Properties"]["FunctionName"])
               and qlid in json.dumps(r["Properties"]["EventSourceArn"]))


def key_with_alias(t, suffix) -> dict:
    return one(t, "AWS::KMS::Key", lambda lid, r, n: str(n).endswith(suffix))[1]["Properties"]


def alarms(t, metric=None) -> list[dict]:
    return [r["Properties"] for _, r in find(t, "AWS::CloudWatch::Alarm",
                                             lambda lid, r, n: metric is None or r["Properties"].get("MetricName") == metric)]


def deny_policy_statements(t) -> list[list]:
    """The statements of each managed policy made only of Deny statements."""
    out = [r["Properties"]["PolicyDocument"]["Statement"] for lid, r in find(t, "AWS::IAM::ManagedPolicy")
           if isinstance(r["Properties"]["PolicyDocument"].get("Statement"), list)
           and all(st.get("Effect") == "Deny" for st in r["Properties"]["PolicyDocument"]["Statement"])]
    if not out:
        raise NothingToBreak("no managed policy of Deny statements")
    return out


def drop_deny_covering(action: str):
    def mutate(t):
        dropped = 0
        for sts in deny_policy_statements(t):
            for st in list(sts):
                acts = st.get("Action", [])
                acts = acts if isinstance(acts, list) else [acts]
                if st.get("Effect") == "Deny" and any(action_matches(a, action) for a in acts):
                    sts.remove(st)
                    dropped += 1
        if not dropped:
            raise NothingToBreak(f"no deny statement covers {action}")
    return mutate


def table_policy(t, suffix) -> list:
    return one(t, "AWS::DynamoDB::Table", lambda lid, r, n: str(n).endswith(suffix))[1]["Properties"]["ResourcePolicy"]["PolicyDocument"]["Statement"]


def resource_deny_covering(statements: list, action: str) -> list[dict]:
    out = [st for st in statements if st.get("Effect") == "Deny"
           and any(action_matches(a, action) for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]]))]
    if not out:
        raise NothingToBreak(f"no deny statement covers {action}")
    return out


# ------------------------------------------------------------------ the mutations
def m_role_plain_path_update_code(t):
    add(t, "OpsRole", new_role("/ops/", [allow("lambda:UpdateFunctionCode", fn_arn(t, "launcher"))]))


def m_role_no_path_passrole(t):
    lid, _ = role_of(t, "launcher")
    add(t, "OpsRole", new_role(None, [allow("iam:PassRole", {"Fn::GetAtt": [lid, "Arn"]})]))


def m_role_plain_launcher_path_run(t):
    add(t, "OpsRole", new_role("/microvm-gov/launcher/", [allow("lambda:RunMicrovm")]))


def m_role_policy_on_detector_role(t):
    lid, _ = role_of(t, "detector")
    add(t, "Extra", {"Type": "AWS::IAM::RolePolicy", "Properties": {
        "RoleName": {"Ref": lid}, "PolicyName": "extra",
        "PolicyDocument": {"Version": "2012-10-17", "Statement": [allow("lambda:UpdateFunctionCode", fn_arn(t, "launcher"))]}}})


def m_user_with_run(t):
    add(t, "OpsUser", {"Type": "AWS::IAM::User", "Properties": {"Policies": [{"PolicyName": "ops", "PolicyDocument": {
        "Version": "2012-10-17", "Statement": [allow(["lambda:RunMicrovm", "lambda:CreateMicrovmShellAuthToken"])]}}]}})


def m_group_purges_queue(t):
    qlid, _ = one(t, "AWS::SQS::Queue", lambda lid, r, n: str(n).endswith("-detector"))
    add(t, "OpsGroup", {"Type": "AWS::IAM::Group", "Properties": {"Policies": [{"PolicyName": "ops", "PolicyDocument": {
        "Version": "2012-10-17", "Statement": [allow("sqs:PurgeQueue", {"Fn::GetAtt": [qlid, "Arn"]})]}}]}})
    add(t, "OpsUser", {"Type": "AWS::IAM::User", "Properties": {"Groups": [{"Ref": "OpsGroup"}]}})


def m_statement_as_object(t):
    _, role = role_of(t, "detector")
    role["Properties"]["Policies"].append({"PolicyName": "one", "PolicyDocument": {
        "Version": "2012-10-17", "Statement": allow("lambda:UpdateFunctionCode")}})


def m_managed_policy_on_detector_role(t):
    lid, _ = role_of(t, "detector")
    llid, _ = role_of(t, "launcher")
    add(t, "Extra", {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"Roles": [{"Ref": lid}], "PolicyDocument": {
        "Version": "2012-10-17", "Statement": [allow("iam:PassRole", {"Fn::GetAtt": [llid, "Arn"]})]}}})


def m_aws_managed_admin(t):
    _, role = role_of(t, "detector")
    role["Properties"].setdefault("ManagedPolicyArns", []).append("arn:aws:iam::aws:policy/AdministratorAccess")


def m_policy_on_external_role(t):
    add(t, "Extra", {"Type": "AWS::IAM::Policy", "Properties": {"PolicyName": "x", "Roles": ["ops-admin"], "PolicyDocument": {
        "Version": "2012-10-17", "Statement": [allow(["cloudtrail:StopLogging", "cloudtrail:PutEventSelectors"])]}}})


def m_grant_under_fn_if(t):
    t.setdefault("Conditions", {})["Always"] = {"Fn::Equals": ["a", "a"]}
    _, role = role_of(t, "detector")
    role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
        {"Fn::If": ["Always", allow("lambda:ResumeMicrovm"), {"Ref": "AWS::NoValue"}]})


def m_notaction_grant(t):
    _, role = role_of(t, "detector")
    role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "NotAction": ["s3:*", "dynamodb:*"], "Resource": "*"})


def m_selector_read_only(t):
    microvm_selector(t)["FieldSelectors"].append({"Field": "readOnly", "Equals": ["false"]})


def m_selector_one_image(t):
    microvm_selector(t)["FieldSelectors"].append({"Field": "resources.ARN", "StartsWith": ["arn:aws:lambda:us-east-1:111122223333:microvm-image:x"]})


def m_selector_removed(t):
    sels = trail(t)["AdvancedEventSelectors"]
    sels.remove(microvm_selector(t))


def m_validation_off(t):
    trail(t)["EnableLogFileValidation"] = False


def m_guard_suppressed_single_region(t):
    lid, res = one(t, "AWS::CloudTrail::Trail")
    res["Properties"]["IsMultiRegionTrail"] = False
    res.setdefault("Metadata", {})["guard"] = {"SuppressedRules": ["created_trail_logs_microvm_data_events"]}


def m_trail_not_logging(t):
    trail(t)["IsLogging"] = False


def m_lifecycle_one_day(t):
    trail_bucket(t)["LifecycleConfiguration"] = {"Rules": [{"Id": "tidy", "Status": "Enabled", "ExpirationInDays": 1}]}


def m_noncurrent_versions_one_day(t):
    trail_bucket(t)["LifecycleConfiguration"] = {"Rules": [{"Id": "tidy", "Status": "Enabled",
                                                            "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]}


def m_versioning_suspended(t):
    trail_bucket(t)["VersioningConfiguration"] = {"Status": "Suspended"}


def m_notification_removed(t):
    trail_bucket(t).pop("NotificationConfiguration")


def m_notification_to_dlq(t):
    dlq, _ = one(t, "AWS::SQS::Queue", lambda lid, r, n: str(n).endswith("-detector-dlq"))
    for qc in trail_bucket(t)["NotificationConfiguration"]["QueueConfigurations"]:
        qc["Queue"] = {"Fn::GetAtt": [dlq, "Arn"]}


def m_sweep_daily(t):
    for r in schedule_rules(t):
        r["Properties"]["ScheduleExpression"] = "rate(1 day)"


def m_sweep_disabled(t):
    for r in schedule_rules(t):
        r["Properties"]["State"] = "DISABLED"


def m_sweep_cron_daily(t):
    for r in schedule_rules(t):
        r["Properties"]["ScheduleExpression"] = "cron(0 3 * * ? *)"


def m_sweep_rule_removed(t):
    fn_lid, _ = function(t, "detector")
    for lid, r in find(t, "AWS::Events::Rule", lambda lid, r, n: "ScheduleExpression" in r["Properties"]
                       and fn_lid in json.dumps(r["Properties"].get("Targets"))):
        del t["Resources"][lid]
        for plid, p in list(t["Resources"].items()):
            if p["Type"] == "AWS::Lambda::Permission" and lid in json.dumps(p["Properties"].get("SourceArn")):
                del t["Resources"][plid]


def m_mapping_removed(t):
    lid, _ = mapping(t)
    del t["Resources"][lid]


def m_mapping_disabled(t):
    mapping(t)[1]["Properties"]["Enabled"] = False


def m_mapping_filtered(t):
    mapping(t)[1]["Properties"]["FilterCriteria"] = {"Filters": [{"Pattern": "{\"body\": [\"nothing\"]}"}]}


def m_reserved_concurrency_zero(t):
    function(t, "detector")[1]["Properties"]["ReservedConcurrentExecutions"] = 0


def m_concurrency_parameter_default_zero(t):
    rc = function(t, "detector")[1]["Properties"]["ReservedConcurrentExecutions"]
    if not isinstance(rc, dict) or "Ref" not in rc:
        raise NothingToBreak("the detector's concurrency is not a parameter")
    t["Parameters"][rc["Ref"]].update({"Default": 0, "MinValue": 0})


def m_alert_key_kms_star_to_everyone(t):
    key_with_alias(t, "-alerts")["KeyPolicy"]["Statement"].append(
        {"Sid": "Ops", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"})


def m_alert_key_kms_star_to_a_role(t):
    key_with_alias(t, "-alerts")["KeyPolicy"]["Statement"].append(
        {"Sid": "Ops", "Effect": "Allow", "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/ops"}},
         "Action": "kms:*", "Resource": "*"})


def m_topic_open_to_subscribe(t):
    tlid, _ = one(t, "AWS::SNS::Topic", lambda lid, r, n: str(n).endswith("-alerts"))
    add(t, "AlertTopicPolicy", {"Type": "AWS::SNS::TopicPolicy", "Properties": {"Topics": [{"Ref": tlid}], "PolicyDocument": {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sns:Subscribe", "Resource": {"Ref": tlid}}]}}})


def m_queue_open_to_receive(t):
    qlid, _ = one(t, "AWS::SQS::Queue", lambda lid, r, n: str(n).endswith("-detector"))
    _, qp = one(t, "AWS::SQS::QueuePolicy", lambda lid, r, n: qlid in json.dumps(r["Properties"]["Queues"]))
    qp["Properties"]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage"], "Resource": "*"})


def m_launcher_role_arns_star(t):
    env(t, "detector")["LAUNCHER_ROLE_ARNS"] = "*"


def m_launcher_role_arns_other_role(t):
    env(t, "detector")["LAUNCHER_ROLE_ARNS"] = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/ops"}


def m_deployment_role_arns_star(t):
    env(t, "detector")["DEPLOYMENT_ROLE_ARNS"] = "*"


def m_remediation_terminate_caps_removed(t):
    e = env(t, "detector")
    e["REMEDIATION"] = "terminate"
    for k in ("REMEDIATION_MAX_PER_SWEEP", "REMEDIATION_MAX_FLEET_PERCENT"):
        if k not in e:
            raise NothingToBreak(f"no {k}")
        del e[k]


def m_remediation_caps_unbounded(t):
    e = env(t, "detector")
    ref = e.get("REMEDIATION_MAX_PER_SWEEP")
    if not isinstance(ref, dict) or "Ref" not in ref:
        raise NothingToBreak("the cap is not a parameter")
    p = t["Parameters"][ref["Ref"]]
    p.pop("MaxValue", None)
    p["MinValue"] = 0


def m_alarm_threshold_neutered(t):
    for a in alarms(t, "ApproximateNumberOfMessagesVisible"):
        a["Threshold"] = 1000000


def m_alarm_comparison_flipped(t):
    for a in alarms(t, "Errors"):
        a["ComparisonOperator"] = "LessThanThreshold"


def m_heartbeat_alarm_threshold_zero(t):
    for a in alarms(t, "SweepRuns"):
        a["Threshold"] = 0


def m_sweep_alarm_missing_not_breaching(t):
    for a in alarms(t, "SweepRuns"):
        a["TreatMissingData"] = "notBreaching"


def m_alarm_actions_disabled(t):
    alarms(t, "Throttles")[0]["ActionsEnabled"] = False


def m_alarm_actions_disabled_any(t):
    for a in alarms(t):
        a["ActionsEnabled"] = False


def m_alarm_actions_removed(t):
    for a in alarms(t, "ApproximateAgeOfOldestMessage"):
        a.pop("AlarmActions")


def m_alarm_periods_stretched(t):
    for a in alarms(t, "Errors"):
        a["EvaluationPeriods"] = 1000
        a["DatapointsToAlarm"] = 1000


def m_topic_aws_managed_key(t):
    one(t, "AWS::SNS::Topic", lambda lid, r, n: str(n).endswith("-alerts"))[1]["Properties"]["KmsMasterKeyId"] = "alias/aws/sns"


def m_key_drops_cloudwatch(t):
    sts = key_with_alias(t, "-alerts")["KeyPolicy"]["Statement"]
    hit = [s for s in sts if "cloudwatch.amazonaws.com" in json.dumps(s.get("Principal"))]
    if not hit:
        raise NothingToBreak("no CloudWatch grant")
    for s in hit:
        sts.remove(s)


def m_ledger_policy_narrowed(t):
    for st in resource_deny_covering(table_policy(t, "-ledger"), "dynamodb:PutItem"):
        st["Action"] = [a for a in st["Action"] if not action_matches(a, "dynamodb:PutItem") and not action_matches(a, "dynamodb:BatchWriteItem")]


def m_ledger_policy_exempts_every_role(t):
    for st in resource_deny_covering(table_policy(t, "-ledger"), "dynamodb:PutItem"):
        st["Condition"] = {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}


def m_ledger_change_deny_dropped(t):
    sts = table_policy(t, "-ledger")
    for st in resource_deny_covering(sts, "dynamodb:DeleteTable"):
        sts.remove(st)


def m_bucket_policy_deny_dropped(t):
    _, bp = one(t, "AWS::S3::BucketPolicy")
    sts = bp["Properties"]["PolicyDocument"]["Statement"]
    for st in resource_deny_covering(sts, "s3:PutBucketNotification"):
        sts.remove(st)


def m_key_policy_deny_dropped(t):
    sts = key_with_alias(t, "-alerts")["KeyPolicy"]["Statement"]
    for st in resource_deny_covering(sts, "kms:ScheduleKeyDeletion"):
        sts.remove(st)


def m_launcher_role_trusts_account(t):
    _, role = role_of(t, "launcher")
    role["Properties"]["AssumeRolePolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}, "Action": "sts:AssumeRole"})


def m_detector_public_url(t):
    lid, _ = function(t, "detector")
    add(t, "DetectorUrl", {"Type": "AWS::Lambda::Url", "Properties": {"TargetFunctionArn": {"Fn::GetAtt": [lid, "Arn"]}, "AuthType": "NONE"}})
    add(t, "DetectorUrlPermission", {"Type": "AWS::Lambda::Permission", "Properties": {
        "FunctionName": {"Ref": lid}, "Action": "lambda:InvokeFunctionUrl", "Principal": "*", "FunctionUrlAuthType": "NONE"}})


def m_detector_invokable_by_everyone(t):
    lid, _ = function(t, "detector")
    add(t, "OpenInvoke", {"Type": "AWS::Lambda::Permission", "Properties": {
        "FunctionName": {"Ref": lid}, "Action": "lambda:InvokeFunction", "Principal": "*"}})


def m_role_reads_webhook_secret(t):
    """A new role reads the webhook secret; a resource policy on the secret, if the template
    has one, goes with it (otherwise it would still refuse the read)."""
    slid, _ = one(t, "AWS::SecretsManager::Secret", lambda lid, r, n: "Webhook" in lid or "webhook" in json.dumps(r))
    for plid, p in list(t["Resources"].items()):
        if p.get("Type") == "AWS::SecretsManager::ResourcePolicy" and slid in json.dumps(p["Properties"].get("SecretId")):
            del t["Resources"][plid]
    add(t, "OpsRole", new_role("/ops/", [allow("secretsmanager:GetSecretValue", {"Ref": slid})]))


def m_detector_role_deletes_alert_key(t):
    _, role = role_of(t, "detector")
    role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(allow(["kms:ScheduleKeyDeletion", "kms:PutKeyPolicy"]))


def m_launcher_role_writes_dedupe(t):
    _, role = role_of(t, "launcher")
    tlid, _ = one(t, "AWS::DynamoDB::Table", lambda lid, r, n: str(n).endswith("-dedupe"))
    role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(allow("dynamodb:PutItem", {"Fn::GetAtt": [tlid, "Arn"]}))


def m_detector_role_stops_trail(t):
    _, role = role_of(t, "detector")
    role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(allow(["cloudtrail:StopLogging"]))


def m_launcher_role_disables_rules(t):
    _, role = role_of(t, "launcher")
    role["Properties"]["Policies"][-1]["PolicyDocument"]["Statement"].append(
        allow(["events:DisableRule", "events:RemoveTargets"], {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/*"}))


def m_deny_exemption_widened(t):
    for sts in deny_policy_statements(t):
        for st in sts:
            if "ArnNotLike" in st.get("Condition", {}):
                st["Condition"]["ArnNotLike"]["aws:PrincipalArn"] = "arn:aws:iam::*:role/*"


MUTATIONS = [
    # (name, mutate, the invariants layer must catch it)
    ("role with a plain-string Path granted UpdateFunctionCode on the launcher", m_role_plain_path_update_code, True),
    ("role without a Path granted PassRole of the launcher role", m_role_no_path_passrole, True),
    ("role with the launcher's path as a plain string granted RunMicrovm", m_role_plain_launcher_path_run, True),
    ("AWS::IAM::RolePolicy on the detector role granting UpdateFunctionCode", m_role_policy_on_detector_role, True),
    ("AWS::IAM::User granted RunMicrovm and shell tokens", m_user_with_run, True),
    ("AWS::IAM::Group (and a member) granted PurgeQueue on the detector's queue", m_group_purges_queue, True),
    ("policy whose Statement is one object granting UpdateFunctionCode", m_statement_as_object, True),
    ("AWS::IAM::ManagedPolicy on the detector role granting PassRole of the launcher role", m_managed_policy_on_detector_role, True),
    ("AdministratorAccess attached to the detector role", m_aws_managed_admin, True),
    ("AWS::IAM::Policy attached by name to a role outside the stack: StopLogging", m_policy_on_external_role, True),
    ("ResumeMicrovm granted to the detector under Fn::If", m_grant_under_fn_if, True),
    ("NotAction grant to the detector role (everything but s3 and dynamodb)", m_notaction_grant, True),
    ("trail MicroVM data-event selector narrowed to writes (readOnly=false)", m_selector_read_only, True),
    ("trail MicroVM data-event selector narrowed to one image ARN", m_selector_one_image, True),
    ("trail MicroVM data-event selector removed", m_selector_removed, True),
    ("trail log-file validation off", m_validation_off, True),
    ("trail IsLogging false", m_trail_not_logging, True),
    ("trail single-region, its guard rule suppressed in the resource's Metadata", m_guard_suppressed_single_region, True),
    ("trail bucket lifecycle expires logs after 1 day", m_lifecycle_one_day, True),
    ("trail bucket lifecycle deletes noncurrent versions after 1 day", m_noncurrent_versions_one_day, True),
    ("trail bucket versioning suspended", m_versioning_suspended, True),
    ("bucket notification to the detector's queue removed", m_notification_removed, True),
    ("bucket notification pointed at the dead-letter queue", m_notification_to_dlq, True),
    ("sweep at rate(1 day)", m_sweep_daily, True),
    ("sweep rule DISABLED", m_sweep_disabled, True),
    ("sweep as a daily cron", m_sweep_cron_daily, True),
    ("sweep rule (and its permission) removed", m_sweep_rule_removed, True),
    ("detector's queue mapping removed", m_mapping_removed, True),
    ("detector's queue mapping disabled", m_mapping_disabled, True),
    ("detector's queue mapping filters every message out", m_mapping_filtered, True),
    ("detector reserved concurrency 0", m_reserved_concurrency_zero, True),
    ("detector reserved-concurrency parameter defaults to 0", m_concurrency_parameter_default_zero, True),
    ("kms:* on * to everyone in the alert key policy", m_alert_key_kms_star_to_everyone, True),
    ("kms:* on * to a non-admin role in the alert key policy", m_alert_key_kms_star_to_a_role, True),
    ("alert topic open to Subscribe", m_topic_open_to_subscribe, True),
    ("detector queue open to ReceiveMessage by anyone (steals the notifications)", m_queue_open_to_receive, True),
    ("LAUNCHER_ROLE_ARNS=*", m_launcher_role_arns_star, True),
    ("LAUNCHER_ROLE_ARNS names another role", m_launcher_role_arns_other_role, True),
    ("DEPLOYMENT_ROLE_ARNS=* (every change counted, none alerted)", m_deployment_role_arns_star, True),
    ("remediation terminate with its caps removed", m_remediation_terminate_caps_removed, True),
    ("remediation cap parameter unbounded (MinValue 0, no MaxValue)", m_remediation_caps_unbounded, True),
    ("DLQ alarm threshold 1,000,000", m_alarm_threshold_neutered, True),
    ("errors alarm comparison flipped to LessThanThreshold", m_alarm_comparison_flipped, True),
    ("sweep heartbeat alarm threshold 0", m_heartbeat_alarm_threshold_zero, True),
    ("sweep heartbeat alarm: missing data not breaching", m_sweep_alarm_missing_not_breaching, True),
    ("throttles alarm ActionsEnabled false", m_alarm_actions_disabled, True),
    ("oldest-message alarm without actions", m_alarm_actions_removed, True),
    ("errors alarm needs 1000 periods", m_alarm_periods_stretched, True),
    ("alert topic on the AWS-managed SNS key", m_topic_aws_managed_key, True),
    ("alert key no longer lets CloudWatch publish", m_key_drops_cloudwatch, True),
    ("deny statement on RunMicrovm dropped from the deny policy", drop_deny_covering("lambda:RunMicrovm"), True),
    ("deny statement on UpdateFunctionCode dropped from the deny policy", drop_deny_covering("lambda:UpdateFunctionCode"), True),
    ("deny statement on PassRole dropped from the deny policy", drop_deny_covering("iam:PassRole"), True),
    ("deny statements' exemption widened to every role", m_deny_exemption_widened, True),
    ("ledger table policy narrowed (PutItem, BatchWriteItem no longer denied)", m_ledger_policy_narrowed, True),
    ("ledger table policy exempts every role", m_ledger_policy_exempts_every_role, True),
    ("ledger table policy's change deny dropped", m_ledger_change_deny_dropped, True),
    ("trail bucket policy's change deny dropped", m_bucket_policy_deny_dropped, True),
    ("alert key policy's change deny dropped", m_key_policy_deny_dropped, True),
    ("launcher role trusts the account", m_launcher_role_trusts_account, True),
    ("detector behind a public Function URL", m_detector_public_url, True),
    ("detector invokable by everyone", m_detector_invokable_by_everyone, True),
    ("new role reads the webhook secret (its resource policy, if any, dropped)", m_role_reads_webhook_secret, True),
    ("detector role may stop the trail", m_detector_role_stops_trail, True),
    ("launcher role may change the detector's rules", m_launcher_role_disables_rules, True),
    # Grants the resource policies still refuse: not effective, so no invariant fires; the
    # baseline diff shows them to the reviewer.
    ("detector role granted ScheduleKeyDeletion (the key policy still denies it)", m_detector_role_deletes_alert_key, False),
    ("launcher role granted dedupe writes (the table policy still denies them)", m_launcher_role_writes_dedupe, False),
]


RENAMED = ["LedgerTable", "PendingTable", "DedupeTable", "DetectorQueue", "DetectorDeadLetterQueue", "AlertTopic",
           "TrailBucket", "Trail", "AlertKey", "TokenKey", "DenyDirectMicrovmAccessPolicy", "IntegrityBaselineParameter"]


def renamed(t: dict) -> dict:
    """The template with the logical ids of its named resources changed (references too)."""
    text = json.dumps(t)
    for lid in RENAMED:
        if lid not in t["Resources"]:
            raise NothingToBreak(f"no resource {lid} to rename")
        text = re.sub(rf"(?<![:\w]){lid}(?!\w)", lid + "Renamed", text)
    return json.loads(text)


def docs_tests() -> list[tuple[bool, str]]:
    """infra/README.md names every invariant the code reports, the mutation count, and the
    CODEOWNERS entry that .github/CODEOWNERS holds."""
    readme = (INFRA / "README.md").read_text()
    section = readme.split("## The governance gate", 1)[-1].split("\n## ", 1)[0]
    code = set(re.findall(r'self\.fail\("([a-z-]+)"', (INFRA / "gate_lib" / "invariants.py").read_text()))
    code |= {"template-resolves"}
    documented = set(re.findall(r"^\| (`[a-z-]+`(?:, `[a-z-]+`)*) \|", section, re.M))
    documented = {x.strip("` ") for d in documented for x in d.split(",")}
    owners = (INFRA.parent / ".github" / "CODEOWNERS").read_text()
    entry = re.search(r"^/infra/baseline/\s+\S+", section, re.M)
    return [
        (code == documented, f"infra/README.md documents exactly the invariants the code reports "
         f"(undocumented: {sorted(code - documented)}, stale: {sorted(documented - code)})"),
        (f"({len(MUTATIONS)} insider weakenings" in section, f"infra/README.md gives the number of mutations ({len(MUTATIONS)})"),
        (bool(entry) and entry.group(0).split()[0] in owners and entry.group(0).split()[1] in owners,
         "the CODEOWNERS entry in infra/README.md is in .github/CODEOWNERS"),
    ]


def self_tests(templates) -> list[tuple[bool, str]]:
    out = docs_tests()
    for label, raw, plain, base, rules in templates:
        r = cli.check(renamed(plain), base, None, build_raw=raw)
        out.append((not r.baseline and not r.invariants,
                    f"{label}: renaming the logical ids of {len(RENAMED)} named resources changes nothing in the surface"
                    + ("" if not r.baseline else f" -- but: {r.baseline[:3]}")))
        t = copy.deepcopy(plain)
        m_launcher_role_arns_star(t)
        r = cli.check(t, base, None, build_raw=raw)
        hit = [d for d in r.baseline if "LAUNCHER_ROLE_ARNS changed from" in d and d.endswith('to "*"')]
        out.append((len(r.baseline) == 1 and bool(hit),
                    f"{label}: LAUNCHER_ROLE_ARNS=* is exactly one difference, in words: {r.baseline}"))
        t = copy.deepcopy(plain)
        _, role = role_of(t, "detector")
        for pol in role["Properties"]["Policies"]:
            sts = pol["PolicyDocument"]["Statement"]
            if isinstance(sts, list) and len(sts) > 1:
                role["Properties"]["Policies"] = [p for p in role["Properties"]["Policies"] if p is not pol] + [
                    {"PolicyName": pol["PolicyName"], "PolicyDocument": {"Version": "2012-10-17", "Statement": sts[0]}},
                    {"PolicyName": pol["PolicyName"], "PolicyDocument": {"Version": "2012-10-17", "Statement": sts[1:]}}]
                break
        r = cli.check(t, base, None, build_raw=raw)
        out.append((not r.baseline, f"{label}: splitting a policy so that one Statement is an object changes nothing in the surface"
                    + ("" if not r.baseline else f" -- but: {r.baseline[:3]}")))
    return out


# The organization templates: the mutations that fit each one's resources, on both forms.
ORG_MUTATIONS = {
    "member": [m_role_plain_path_update_code, m_role_plain_launcher_path_run, m_user_with_run, m_role_no_path_passrole, m_ledger_policy_narrowed, m_ledger_policy_exempts_every_role,
               m_launcher_role_trusts_account, m_alarm_actions_disabled_any],
    "security": [m_launcher_role_arns_star, m_mapping_removed, m_mapping_disabled, m_sweep_daily, m_sweep_disabled,
                 m_reserved_concurrency_zero, m_remediation_terminate_caps_removed, m_alert_key_kms_star_to_everyone,
                 m_topic_open_to_subscribe, m_notaction_grant, m_aws_managed_admin, m_sweep_alarm_missing_not_breaching],
}


def run_one(args):
    name, mutate, need_inv, label, raw, plain, base, rules = args
    t = copy.deepcopy(plain)
    try:
        mutate(t)
    except NothingToBreak as e:
        return name, label, None, f"nothing to break: {e}"
    r = cli.check(t, base, rules, build_raw=raw)
    return name, label, r, None


def org_mutations(orgs) -> int:
    """Each organization template's mutations on both of its forms; returns the failures."""
    failures = 0
    for kind, sam_path, cdk_path in orgs:
        for mutate in ORG_MUTATIONS[kind]:
            cells = []
            for path in (sam_path, cdk_path):
                raw = model.load(path)
                plain = model.expand(copy.deepcopy(raw))
                name, label, r, err = run_one((mutate.__name__, mutate, True, path, raw, plain,
                                               cli.baseline_path(path), guard.default_rules(path)))
                if err:
                    cells.append("ERR  ")
                    print(f"  {path}: {err}")
                    failures += 1
                    continue
                bad = r.ok or not r.invariants
                failures += bad
                cells.append(("G" if r.guard else "-") + ("I" if r.invariants else "-") + ("B" if r.baseline else "-")
                             + ("!!" if bad else "  "))
            print(f"{kind + ': ' + mutate.__name__[2:].replace('_', ' '):<60}  {'  '.join(cells)}")
    return failures


def main() -> int:
    args = sys.argv[1:]
    orgs = []
    while "--org" in args:
        i = args.index("--org")
        orgs.append(tuple(args[i + 1:i + 4]))
        args = args[:i] + args[i + 4:]
    if len(args) != 2 or any(len(o) != 3 or o[0] not in ORG_MUTATIONS for o in orgs):
        print(__doc__, file=sys.stderr)
        return 2
    templates = []
    for label, path in (("SAM", args[0]), ("CDK", args[1])):
        raw = model.load(path)
        plain = model.expand(copy.deepcopy(raw))
        base = cli.baseline_path(path)
        rules = guard.default_rules(path)
        clean = cli.check(plain, base, rules, build_raw=raw)
        if not clean.ok:
            print(f"FAIL: the unmutated {label} template does not pass the gate: "
                  f"{clean.guard + [f.message for f in clean.invariants] + clean.baseline}")
            return 1
        templates.append((label, raw, plain, base, rules))
    jobs = [(n, m, inv, *tpl) for n, m, inv in MUTATIONS for tpl in templates]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(run_one, jobs))
    by = {(n, label): (r, err) for n, label, r, err in results}
    failures = 0
    width = max(len(n) for n, _, _ in MUTATIONS)
    print(f"{'mutation':<{width}}  SAM   CDK   (G guard, I invariants, B baseline diff)")
    for name, _, need_inv in MUTATIONS:
        cells = []
        for label, *_ in templates:
            r, err = by[(name, label)]
            if err:
                cells.append("ERR  ")
                print(f"  {label}: {err}")
                failures += 1
                continue
            cell = ("G" if r.guard else "-") + ("I" if r.invariants else "-") + ("B" if r.baseline else "-")
            bad = r.ok or (need_inv and not r.invariants)
            failures += bad
            cells.append(cell + ("!!" if bad else "  "))
        print(f"{name:<{width}}  {'  '.join(cells)}")
    for name, _, need_inv in MUTATIONS:
        for label, *_ in templates:
            r, err = by[(name, label)]
            if r is not None and r.invariants and name == MUTATIONS[0][0]:
                print(f"example ({label}, {name}): {r.invariants[0].message}")
    n = len(MUTATIONS) * len(templates)
    print(f"{len(MUTATIONS)} mutations x {len(templates)} templates: {n - failures} passed, {failures} failed")
    caught_by_guard = sum(1 for name, _, _ in MUTATIONS if all(by[(name, lb)][0] and by[(name, lb)][0].guard for lb, *_ in templates))
    print(f"the cfn-guard rules alone catch {caught_by_guard} of {len(MUTATIONS)} on both templates")
    failures += org_mutations(orgs)
    st = self_tests(templates)
    for ok, what in st:
        print(("ok: " if ok else "FAIL: ") + what)
    failures += sum(1 for ok, _ in st if not ok)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
