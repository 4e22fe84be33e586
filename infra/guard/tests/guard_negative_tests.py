#!/usr/bin/env python3
"""Proves each cfn-guard rule in infra/guard/ fails on deliberately broken templates.

For every real template given on the command line (the SAM template and the CDK synth
output), the script first checks that every rule PASSES on it, then builds one broken copy
per case below (the real template with one deliberate defect), writes it to the output
directory for inspection, and checks that the rule the case targets FAILS on that copy.

The broken copies are derived from the real templates at test time rather than kept as
stale hand-edited files, so they always differ from the real template by exactly the
defect named in the case. A case whose mutation finds nothing to break is itself a test
failure (it would otherwise prove nothing).

The rules run on long-form JSON: the script decodes each template (YAML short forms
expanded) and validates that, the real one and every broken copy alike.

Usage: guard_negative_tests.py --guard BIN --rules FILE --out DIR TEMPLATE...
Prints one line per check, the number of mutations caught on each template, and a closing
"N passed, N failed" line; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import json
import pathlib
import re
import subprocess
import sys

from cfnlint.decode import decode_str  # turns YAML short-form intrinsics into long form


class NothingToBreak(Exception):
    """The mutation did not find what it was meant to break in this template."""


def load(path: pathlib.Path) -> dict:
    text = path.read_text()
    template, matches = decode_str(text)
    if matches or template is None:
        raise SystemExit(f"{path}: cannot be parsed: {[str(m) for m in matches]}")
    # Plain JSON types (cfn-lint's node classes subclass dict/str).
    return json.loads(json.dumps(template))


def res(t: dict, logical_id: str) -> dict:
    r = t["Resources"].get(logical_id)
    if r is None:
        raise NothingToBreak(f"no resource {logical_id}")
    return r


def is_sam(t: dict) -> bool:
    return any(r.get("Type") == "AWS::Serverless::Function" for r in t["Resources"].values())


def statement(t: dict, role: str, sid: str) -> dict:
    for pol in res(t, role)["Properties"].get("Policies", []):
        for st in pol["PolicyDocument"]["Statement"]:
            if isinstance(st, dict) and st.get("Sid") == sid:
                return st
    raise NothingToBreak(f"{role} has no statement {sid}")


def deny_doc(t: dict) -> dict:
    return res(t, "DenyDirectMicrovmAccessPolicy")["Properties"]["PolicyDocument"]


def deny_statement(t: dict, sid: str) -> dict:
    for st in deny_doc(t)["Statement"]:
        if st.get("Sid") == sid:
            return st
    raise NothingToBreak(f"the deny policy has no statement {sid}")


def drop_deny_statement(sid: str):
    def mutate(t: dict) -> None:
        doc = deny_doc(t)
        before = len(doc["Statement"])
        doc["Statement"] = [s for s in doc["Statement"] if s.get("Sid") != sid]
        if len(doc["Statement"]) == before:
            raise NothingToBreak(f"the deny policy has no statement {sid}")

    return mutate


def first_inline_policy(t: dict, role: str) -> dict:
    policies = res(t, role)["Properties"].get("Policies") or []
    if not policies:
        raise NothingToBreak(f"{role} has no inline policies")
    return policies[0]["PolicyDocument"]


def add_statement(role: str, st: dict):
    def mutate(t: dict) -> None:
        first_inline_policy(t, role)["Statement"].append(st)

    return mutate


def add_action(role: str, sid: str, action: str):
    def mutate(t: dict) -> None:
        st = statement(t, role, sid)
        a = st["Action"]
        st["Action"] = ([a] if isinstance(a, str) else a) + [action]

    return mutate


def remediation_policy_grants_run(t: dict) -> None:
    doc = res(t, "DetectorRemediationPolicy")["Properties"]["PolicyDocument"]
    doc["Statement"][0]["Action"] = ["lambda:SuspendMicrovm", "lambda:RunMicrovm"]


def remediation_policy_loses_condition(t: dict) -> None:
    r = res(t, "DetectorRemediationPolicy")
    if "Condition" not in r:
        raise NothingToBreak("DetectorRemediationPolicy has no Condition")
    del r["Condition"]


def launcher_role_trusts_an_account(t: dict) -> None:
    res(t, "LauncherRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"})


def trust_without_source_account(t: dict) -> None:
    st = res(t, "DetectorRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    if st.pop("Condition", None) is None:
        raise NothingToBreak("the detector trust has no condition")


def microvm_selector(t: dict) -> dict:
    for sel in res(t, "Trail")["Properties"].get("AdvancedEventSelectors", []):
        if "AWS::Lambda::MicrovmImage" in json.dumps(sel):
            return sel
    raise NothingToBreak("the trail has no MicroVM image selector")


def trail_read_only_selector(t: dict) -> None:
    microvm_selector(t)["FieldSelectors"].append({"Field": "readOnly", "Equals": ["true"]})


def trail_single_region(t: dict) -> None:
    res(t, "Trail")["Properties"]["IsMultiRegionTrail"] = False


def trail_without_microvm_selector(t: dict) -> None:
    sel = microvm_selector(t)
    res(t, "Trail")["Properties"]["AdvancedEventSelectors"].remove(sel)


def trail_with_basic_selectors(t: dict) -> None:
    props = res(t, "Trail")["Properties"]
    props.pop("AdvancedEventSelectors")
    props["EventSelectors"] = [{"IncludeManagementEvents": True, "ReadWriteType": "All"}]


def launcher_microvm_actions_on_star(t: dict) -> None:
    statement(t, "LauncherRole", "GovernedCallsOnAllowedImages")["Resource"] = "*"


def launcher_grant_without_source_function(t: dict) -> None:
    if statement(t, "LauncherRole", "Ledger").pop("Condition", None) is None:
        raise NothingToBreak("the ledger grant has no condition")


def launcher_passes_roles_to_any_service(t: dict) -> None:
    st = statement(t, "LauncherRole", "PassOnlyAllowedExecutionRolesToLambda")
    if st["Condition"].pop("StringEquals", None) is None:
        raise NothingToBreak("PassRole has no iam:PassedToService condition")


def role_with_full_access(t: dict) -> None:
    res(t, "DetectorRole")["Properties"]["ManagedPolicyArns"] = ["arn:aws:iam::aws:policy/AWSLambda_FullAccess"]


def deny_policy_deleted(t: dict) -> None:
    res(t, "DenyDirectMicrovmAccessPolicy")
    del t["Resources"]["DenyDirectMicrovmAccessPolicy"]
    t.get("Outputs", {}).pop("DenyDirectMicrovmAccessPolicyArn", None)


def deny_policy_exempts_every_role(t: dict) -> None:
    st = deny_statement(t, "OnlyTheLauncherRunsMicrovmsAndIssuesTokens")
    st["Condition"] = {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}


def deny_policy_switched_off_by_a_tag(t: dict) -> None:
    st = deny_statement(t, "OnlyTheDeployerChangesTheGovernanceStack")
    st["Condition"]["StringNotEquals"] = {"aws:PrincipalTag/team": "platform"}


def ledger_policy_exempts_everyone(t: dict) -> None:
    st = res(t, "LedgerTable")["Properties"]["ResourcePolicy"]["PolicyDocument"]["Statement"][0]
    st["Condition"] = {"ArnNotLike": {"aws:PrincipalArn": "*"}}


def ledger_without_resource_policy(t: dict) -> None:
    if res(t, "LedgerTable")["Properties"].pop("ResourcePolicy", None) is None:
        raise NothingToBreak("the ledger has no resource policy")


def public_url_points_at_detector(t: dict) -> None:
    res(t, "LauncherWebhookUrl")["Properties"]["TargetFunctionArn"] = {"Ref": "DetectorFunction"}


def launcher_url_without_iam(t: dict) -> None:
    fn = res(t, "LauncherFunction")
    if fn["Type"] == "AWS::Serverless::Function":
        fn["Properties"]["FunctionUrlConfig"]["AuthType"] = "NONE"
    else:
        res(t, "LauncherFunctionUrl")["Properties"]["AuthType"] = "NONE"


def webhook_url_off_its_alias(t: dict) -> None:
    if res(t, "LauncherWebhookUrl")["Properties"].pop("Qualifier", None) is None:
        raise NothingToBreak("LauncherWebhookUrl has no Qualifier")


def public_invoke_not_limited_to_url(t: dict) -> None:
    if res(t, "LauncherWebhookInvokePermission")["Properties"].pop("InvokedViaFunctionUrl", None) is None:
        raise NothingToBreak("LauncherWebhookInvokePermission is not limited to the URL")


def ledger_table_unencrypted(t: dict) -> None:
    if res(t, "LedgerTable")["Properties"].pop("SSESpecification", None) is None:
        raise NothingToBreak("LedgerTable has no SSESpecification")


def pending_table_sse_disabled(t: dict) -> None:
    res(t, "PendingTable")["Properties"]["SSESpecification"] = {"SSEEnabled": False}


def dedupe_table_without_pitr(t: dict) -> None:
    res(t, "DedupeTable")["Properties"]["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": False}


def queue_without_dlq(t: dict) -> None:
    if res(t, "DetectorQueue")["Properties"].pop("RedrivePolicy", None) is None:
        raise NothingToBreak("DetectorQueue has no RedrivePolicy")


def alert_topic_aws_managed_key(t: dict) -> None:
    res(t, "AlertTopic")["Properties"]["KmsMasterKeyId"] = "alias/aws/sns"


def alert_key_without_cloudwatch(t: dict) -> None:
    doc = res(t, "AlertKey")["Properties"]["KeyPolicy"]
    doc["Statement"] = [s for s in doc["Statement"] if "cloudwatch.amazonaws.com" not in json.dumps(s)]


def alarm_without_actions(t: dict) -> None:
    res(t, "DetectorErrorsAlarm")["Properties"].pop("AlarmActions")


def sweep_alarm_not_breaching(t: dict) -> None:
    res(t, "SweepMissedAlarm")["Properties"]["TreatMissingData"] = "notBreaching"


def heartbeat_alarm_deleted(t: dict) -> None:
    res(t, "NoLogObjectReadAlarm")
    del t["Resources"]["NoLogObjectReadAlarm"]


def throttle_alarms_deleted(t: dict) -> None:
    for lid in ("DetectorThrottlesAlarm", "LauncherThrottlesAlarm"):
        res(t, lid)
        del t["Resources"][lid]


def oldest_message_alarm_deleted(t: dict) -> None:
    res(t, "QueueOldestMessageAlarm")
    del t["Resources"]["QueueOldestMessageAlarm"]


def event_targets(t: dict) -> list[dict]:
    if is_sam(t):
        events = res(t, "DetectorFunction")["Properties"]["Events"]
        return [e["Properties"] for e in events.values() if e["Type"] in ("Schedule", "EventBridgeRule")]
    return [tg for r in t["Resources"].values() if r["Type"] == "AWS::Events::Rule" for tg in r["Properties"]["Targets"]]


def event_target_without(key: str):
    def mutate(t: dict) -> None:
        targets = event_targets(t)
        if not targets or key not in targets[0]:
            raise NothingToBreak(f"no EventBridge target with {key}")
        del targets[0][key]

    return mutate


def no_on_failure_destination(t: dict) -> None:
    if is_sam(t):
        if res(t, "DetectorFunction")["Properties"].pop("EventInvokeConfig", None) is None:
            raise NothingToBreak("the detector has no EventInvokeConfig")
    else:
        # In the CDK form cfn-guard cannot pair a rule's target with its function's invoke
        # config (they meet only through logical ids), so the rule asks for at least one: every
        # invoke config goes. The SAM form is checked per function (the detector's alone goes).
        res(t, "DetectorFunctionEventInvokeConfig")
        for lid in [k for k, r in t["Resources"].items() if r["Type"] == "AWS::Lambda::EventInvokeConfig"]:
            del t["Resources"][lid]


def function_without_reserved_concurrency(t: dict) -> None:
    if res(t, "LauncherFunction")["Properties"].pop("ReservedConcurrentExecutions", None) is None:
        raise NothingToBreak("the launcher has no reserved concurrency")


def log_group_without_retention(t: dict) -> None:
    if res(t, "DetectorLogGroup")["Properties"].pop("RetentionInDays", None) is None:
        raise NothingToBreak("the detector log group has no retention")


def webhook_alias_on_latest(t: dict) -> None:
    res(t, "LauncherWebhookAlias")["Properties"]["FunctionVersion"] = "$LATEST"


def functions_not_published(t: dict) -> None:
    if is_sam(t):
        if t.get("Globals", {}).get("Function", {}).pop("AutoPublishAlias", None) is None:
            raise NothingToBreak("no AutoPublishAlias in Globals")
    else:
        res(t, "LauncherFunctionAliaslive")["Properties"]["FunctionVersion"] = "$LATEST"


def detector_can_pass_roles_and_change_code(t: dict) -> None:
    first_inline_policy(t, "DetectorRole")["Statement"].append(
        {"Effect": "Allow", "Action": ["iam:PassRole", "lambda:UpdateFunctionCode"], "Resource": "*"})


def trail_bucket_unversioned(t: dict) -> None:
    props = res(t, "TrailBucket")["Properties"]
    if props.pop("VersioningConfiguration", None) is None:
        raise NothingToBreak("the trail bucket has no VersioningConfiguration")


def trail_bucket_versioning_suspended(t: dict) -> None:
    res(t, "TrailBucket")["Properties"]["VersioningConfiguration"] = {"Status": "Suspended"}


def detector_reads_no_versions(t: dict) -> None:
    st = statement(t, "DetectorRole", "ReadTrailObjects")
    if "s3:GetObjectVersion" not in st["Action"]:
        raise NothingToBreak("ReadTrailObjects grants no s3:GetObjectVersion")
    st["Action"] = [a for a in st["Action"] if a != "s3:GetObjectVersion"]


STAR = {"Effect": "Allow", "Resource": "*"}

# (case name, rule that must fail, mutation)
CASES = [
    # the mutations named in the issue
    ("trail-read-only-selector-beside-microvm-selector", "created_trail_logs_microvm_data_events", trail_read_only_selector),
    ("trail-single-region", "created_trail_logs_microvm_data_events", trail_single_region),
    ("trail-bucket-unversioned", "trail_bucket_versioned_and_read_by_version", trail_bucket_unversioned),
    ("trail-bucket-versioning-suspended", "trail_bucket_versioned_and_read_by_version", trail_bucket_versioning_suspended),
    ("detector-reads-no-object-versions", "trail_bucket_versioned_and_read_by_version", detector_reads_no_versions),
    ("launcher-microvm-actions-on-star", "launcher_microvm_actions_only_on_allowed_images", launcher_microvm_actions_on_star),
    ("launcher-granted-lambda-star", "allow_statements_name_each_action",
     add_action("LauncherRole", "GovernedCallsOnAllowedImages", "lambda:*")),
    ("launcher-granted-iam-star", "allow_statements_name_each_action",
     add_action("LauncherRole", "PassOnlyAllowedExecutionRolesToLambda", "iam:*")),
    ("role-with-aws-managed-full-access", "roles_carry_no_aws_managed_policies", role_with_full_access),
    ("deny-policy-deleted", "deny_policy_protects_microvms_and_the_stack", deny_policy_deleted),
    ("deny-policy-exempts-every-role", "deny_exemptions_name_specific_roles", deny_policy_exempts_every_role),
    ("deny-policy-switched-off-by-a-principal-tag", "deny_exemptions_name_specific_roles", deny_policy_switched_off_by_a_tag),
    ("detector-granted-passrole-and-update-function-code", "only_the_launcher_passes_roles_and_nothing_changes_functions",
     detector_can_pass_roles_and_change_code),
    ("question-mark-wildcard-action", "allow_statements_name_each_action",
     add_action("DetectorRole", "ListMicrovms", "lambda:ListMicrovm?")),
    ("public-callback-url-pointed-at-the-detector", "function_urls_use_aws_iam", public_url_points_at_detector),
    # governed actions
    ("detector-role-granted-run", "governed_actions_only_for_launcher_role",
     add_statement("DetectorRole", {**STAR, "Action": "lambda:RunMicrovm"})),
    ("detector-role-granted-shell-token-lowercase", "governed_actions_only_for_launcher_role",
     add_statement("DetectorRole", {**STAR, "Action": ["s3:GetObject", "lambda:createmicrovmshellauthtoken"]})),
    ("detector-role-granted-notaction", "governed_actions_only_for_launcher_role",
     add_statement("DetectorRole", {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})),
    ("detector-role-granted-resume-under-fn-if", "governed_actions_only_for_launcher_role",
     add_statement("DetectorRole", {"Fn::If": ["RemediationEnabled", {**STAR, "Action": "lambda:ResumeMicrovm"},
                                               {"Ref": "AWS::NoValue"}]})),
    ("remediation-policy-grants-run", "governed_actions_only_for_launcher_role", remediation_policy_grants_run),
    ("remediation-policy-unconditional", "governed_actions_only_for_launcher_role", remediation_policy_loses_condition),
    # roles
    ("launcher-role-trusts-an-account", "execution_roles_trust_only_lambda_in_this_account", launcher_role_trusts_an_account),
    ("trust-without-aws-source-account", "execution_roles_trust_only_lambda_in_this_account", trust_without_source_account),
    ("launcher-grant-without-source-function-arn", "launcher_permissions_work_only_from_the_launcher_function",
     launcher_grant_without_source_function),
    ("launcher-send-message-beside-a-write-without-source-function-arn", "launcher_permissions_work_only_from_the_launcher_function",
     add_statement("LauncherRole", {"Effect": "Allow", "Action": ["sqs:SendMessage", "dynamodb:PutItem"], "Resource": "*"})),
    ("launcher-send-message-to-any-queue", "launcher_permissions_work_only_from_the_launcher_function",
     add_statement("LauncherRole", {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"})),
    ("launcher-passes-roles-to-any-service", "launcher_passes_roles_only_to_lambda", launcher_passes_roles_to_any_service),
    # the deny policy and the table policies
    ("deny-policy-without-stack-protection", "deny_policy_protects_microvms_and_the_stack",
     drop_deny_statement("OnlyTheDeployerChangesTheGovernanceStack")),
    ("deny-policy-lets-anyone-pass-governance-roles", "deny_policy_protects_microvms_and_the_stack",
     drop_deny_statement("OnlyTheDeployerPassesTheGovernanceRoles")),
    ("deny-policy-lets-anyone-write-the-ledger", "deny_policy_protects_microvms_and_the_stack",
     drop_deny_statement("OnlyTheLauncherWritesTheLedgerAndPendingApprovals")),
    ("deny-policy-lets-anyone-change-event-source-mappings", "deny_policy_protects_microvms_and_the_stack",
     drop_deny_statement("OnlyTheDeployerChangesTheirEventSourceMappings")),
    ("ledger-without-resource-policy", "tables_deny_writes_by_other_roles", ledger_without_resource_policy),
    ("ledger-resource-policy-exempts-everyone", "deny_exemptions_name_specific_roles", ledger_policy_exempts_everyone),
    # the trail
    ("trail-without-microvm-data-events", "created_trail_logs_microvm_data_events", trail_without_microvm_selector),
    ("trail-with-basic-event-selectors", "created_trail_logs_microvm_data_events", trail_with_basic_selectors),
    # URLs and versions
    ("launcher-url-auth-none", "function_urls_use_aws_iam", launcher_url_without_iam),
    ("webhook-url-off-its-alias", "function_urls_use_aws_iam", webhook_url_off_its_alias),
    ("public-invoke-not-limited-to-url", "public_invoke_only_through_function_url", public_invoke_not_limited_to_url),
    ("webhook-alias-on-latest", "functions_run_published_versions", webhook_alias_on_latest),
    ("functions-not-published-on-deploy", "functions_run_published_versions", functions_not_published),
    # capacity and logs
    ("launcher-without-reserved-concurrency", "functions_have_reserved_concurrency_and_retained_logs",
     function_without_reserved_concurrency),
    ("log-group-without-retention", "functions_have_reserved_concurrency_and_retained_logs", log_group_without_retention),
    # data
    ("ledger-table-unencrypted", "tables_encrypted", ledger_table_unencrypted),
    ("pending-table-sse-disabled", "tables_encrypted", pending_table_sse_disabled),
    ("dedupe-table-without-pitr", "tables_have_point_in_time_recovery", dedupe_table_without_pitr),
    ("queue-without-dlq", "detector_queue_has_dlq", queue_without_dlq),
    # alerting
    ("alert-topic-on-the-aws-managed-sns-key", "alarms_reach_a_human", alert_topic_aws_managed_key),
    ("alert-key-policy-without-cloudwatch", "alarms_reach_a_human", alert_key_without_cloudwatch),
    ("alarm-without-actions", "alarms_reach_a_human", alarm_without_actions),
    ("sweep-alarm-missing-data-not-breaching", "the_detector_and_its_pipeline_are_alarmed", sweep_alarm_not_breaching),
    ("no-cloudtrail-object-read-alarm-deleted", "the_detector_and_its_pipeline_are_alarmed", heartbeat_alarm_deleted),
    ("throttle-alarms-deleted", "the_detector_and_its_pipeline_are_alarmed", throttle_alarms_deleted),
    ("oldest-message-alarm-deleted", "the_detector_and_its_pipeline_are_alarmed", oldest_message_alarm_deleted),
    ("eventbridge-target-without-dlq", "eventbridge_invocations_retry_and_dead_letter", event_target_without("DeadLetterConfig")),
    ("eventbridge-target-without-retry-policy", "eventbridge_invocations_retry_and_dead_letter", event_target_without("RetryPolicy")),
    ("detector-without-on-failure-destination", "eventbridge_invocations_retry_and_dead_letter", no_on_failure_destination),
]

def write_broken(label: str, real: dict, cases: list[tuple[str, str, object]], broken_dir: pathlib.Path,
                 file_name=lambda label, name: f"{name}.json") -> tuple[list[tuple[str, str]], list[str]]:
    """Writes one broken copy per (name, rule, mutation) case: the cases written, and a FAIL
    line for each mutation that found nothing to break or changed nothing."""
    written: list[tuple[str, str]] = []
    failures: list[str] = []
    for name, rule, mutate in cases:
        broken = copy.deepcopy(real)
        try:
            mutate(broken)
        except NothingToBreak as e:
            failures.append(f"FAIL {label}/{name}: mutation found nothing to break ({e})")
            continue
        if broken == real:
            failures.append(f"FAIL {label}/{name}: mutation changed nothing")
            continue
        (broken_dir / file_name(label, name)).write_text(json.dumps(broken, indent=1))
        written.append((name, rule))
    return written, failures


SUMMARY_LINE = re.compile(r"^\S+/(\w+)\s+(PASS|FAIL|SKIP)\s*$")


STATUS_LINE = re.compile(r"^(\S+) Status = (PASS|FAIL|SKIP)\s*$")


def run_guard(guard: str, rules: str, data: pathlib.Path) -> dict[str, dict[str, str]]:
    """Validates a file or every file of a directory in one cfn-guard run: file name -> rule -> status."""
    proc = subprocess.run(
        [guard, "validate", "-r", rules, "-d", str(data), "--show-summary", "all", "-o", "single-line-summary"],
        capture_output=True,
        text=True,
    )
    statuses: dict[str, dict[str, str]] = {}
    current = None
    for line in proc.stdout.splitlines():
        header = STATUS_LINE.match(line.strip())
        if header:
            current = statuses.setdefault(pathlib.Path(header.group(1)).name, {})
            continue
        m = SUMMARY_LINE.match(line.strip())
        if m and current is not None:
            current[m.group(1)] = m.group(2)
    if not statuses or not all(statuses.values()):
        raise SystemExit(f"cfn-guard printed no rule summary for {data} (exit {proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return statuses


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--guard", required=True)
    ap.add_argument("--rules", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("templates", nargs="+")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    passed = failed = 0
    targeted_rules = {rule for _, rule, _ in CASES}

    prepared = []
    for tpath in map(pathlib.Path, args.templates):
        label = tpath.parent.name + "-" + tpath.stem
        real = load(tpath)
        # The long form is validated (what the broken copies are written as, too).
        real_dir, broken_dir = out / label / "real", out / label / "broken"
        for d in (real_dir, broken_dir):
            d.mkdir(parents=True, exist_ok=True)
            for old in d.glob("*.json"):
                old.unlink()
        (real_dir / f"{label}.json").write_text(json.dumps(real, indent=1))
        written, failures = write_broken(label, real, CASES, broken_dir)
        failed += len(failures)
        for line in failures:
            print(line)
        prepared.append((label, real_dir, broken_dir, written))

    # One cfn-guard run per directory, the runs side by side.
    dirs = [d for _, real_dir, broken_dir, _ in prepared for d in (real_dir, broken_dir)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(dirs)) as pool:
        runs = dict(zip(dirs, pool.map(lambda d: run_guard(args.guard, args.rules, d), dirs)))

    for label, real_dir, broken_dir, written in prepared:
        statuses = runs[real_dir][f"{label}.json"]
        not_passing = {r: s for r, s in statuses.items() if s != "PASS"}
        untested = sorted(set(statuses) - targeted_rules)
        if not_passing or untested:
            failed += 1
            print(f"FAIL {label}: real template: rules not passing {not_passing}; rules without a broken case {untested}")
        else:
            passed += 1
            print(f"ok   {label}: real template passes all {len(statuses)} rules")
        caught = 0
        for name, rule in written:
            got = runs[broken_dir].get(f"{name}.json", {}).get(rule)
            if got == "FAIL":
                passed += 1
                caught += 1
                print(f"ok   {label}/{name}: {rule} fails as it must")
            else:
                failed += 1
                print(f"FAIL {label}/{name}: expected {rule} to FAIL on {broken_dir / name}.json, got {got}")
        print(f"{label}: {caught} of {len(CASES)} mutations caught")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
