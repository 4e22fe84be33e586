#!/usr/bin/env python3
"""Proves each cfn-guard rule in infra/guard/ fails on a deliberately broken template.

For every real template given on the command line (the SAM template and the CDK synth
output), the script first checks that every rule PASSES on it, then builds one broken copy
per case below (the real template with one deliberate defect), writes it to the output
directory for inspection, and checks that the rule the case targets FAILS on that copy.

The broken copies are derived from the real templates at test time rather than kept as
stale hand-edited files, so they always differ from the real template by exactly the
defect named in the case. A case whose mutation finds nothing to break is itself a test
failure (it would otherwise prove nothing).

Usage: guard_negative_tests.py --guard BIN --rules FILE --out DIR TEMPLATE...
Prints one line per check and a closing "N passed, N failed" line; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
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


def first_inline_policy(t: dict, role: str) -> dict:
    policies = res(t, role)["Properties"].get("Policies") or []
    if not policies:
        raise NothingToBreak(f"{role} has no inline policies")
    return policies[0]["PolicyDocument"]


def add_statement(role: str, statement: dict):
    def mutate(t: dict) -> None:
        first_inline_policy(t, role)["Statement"].append(statement)

    return mutate


def deny_policy_becomes_allow(t: dict) -> None:
    doc = res(t, "DenyDirectMicrovmAccessPolicy")["Properties"]["PolicyDocument"]
    for st in doc["Statement"]:
        st["Effect"] = "Allow"
        st.pop("Condition", None)


def remediation_policy_grants_run(t: dict) -> None:
    doc = res(t, "DetectorRemediationPolicy")["Properties"]["PolicyDocument"]
    doc["Statement"][0]["Action"] = ["lambda:SuspendMicrovm", "lambda:RunMicrovm"]


def remediation_policy_loses_condition(t: dict) -> None:
    # Without the condition, the detector could terminate whatever the configuration says.
    r = res(t, "DetectorRemediationPolicy")
    if "Condition" not in r:
        raise NothingToBreak("DetectorRemediationPolicy has no Condition")
    del r["Condition"]


def standalone_policy_for_other_role(t: dict) -> None:
    t["Resources"]["AgentMicrovmPolicy"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "agent-microvms",
            "Roles": [{"Ref": "LauncherRole"}, {"Ref": "DetectorRole"}],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            },
        },
    }


def launcher_role_trusts_an_account(t: dict) -> None:
    doc = res(t, "LauncherRole")["Properties"]["AssumeRolePolicyDocument"]
    doc["Statement"].append(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
            "Action": "sts:AssumeRole",
        }
    )


def trail_without_microvm_selector(t: dict) -> None:
    props = res(t, "Trail")["Properties"]
    before = len(props.get("AdvancedEventSelectors", []))
    props["AdvancedEventSelectors"] = [
        s
        for s in props.get("AdvancedEventSelectors", [])
        if "AWS::Lambda::MicrovmImage" not in json.dumps(s)
    ]
    if len(props["AdvancedEventSelectors"]) == before:
        raise NothingToBreak("the trail has no MicroVM image selector")


def trail_with_basic_selectors(t: dict) -> None:
    props = res(t, "Trail")["Properties"]
    props.pop("AdvancedEventSelectors")
    props["EventSelectors"] = [{"IncludeManagementEvents": True, "ReadWriteType": "All"}]


def launcher_url_without_iam(t: dict) -> None:
    fn = t["Resources"].get("LauncherFunction", {})
    if fn.get("Type") == "AWS::Serverless::Function":
        fn["Properties"]["FunctionUrlConfig"]["AuthType"] = "NONE"
    else:
        res(t, "LauncherFunctionUrl")["Properties"]["AuthType"] = "NONE"


def webhook_url_off_its_alias(t: dict) -> None:
    props = res(t, "LauncherWebhookUrl")["Properties"]
    if "Qualifier" not in props:
        raise NothingToBreak("LauncherWebhookUrl has no Qualifier")
    del props["Qualifier"]


def public_invoke_not_limited_to_url(t: dict) -> None:
    props = res(t, "LauncherWebhookInvokePermission")["Properties"]
    if props.pop("InvokedViaFunctionUrl", None) is None:
        raise NothingToBreak("LauncherWebhookInvokePermission is not limited to the URL")


def ledger_table_unencrypted(t: dict) -> None:
    props = res(t, "LedgerTable")["Properties"]
    if "SSESpecification" not in props:
        raise NothingToBreak("LedgerTable has no SSESpecification")
    del props["SSESpecification"]


def pending_table_sse_disabled(t: dict) -> None:
    res(t, "PendingTable")["Properties"]["SSESpecification"] = {"SSEEnabled": False}


def dedupe_table_without_pitr(t: dict) -> None:
    props = res(t, "DedupeTable")["Properties"]
    props["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": False}


def queue_without_dlq(t: dict) -> None:
    props = res(t, "DetectorQueue")["Properties"]
    if "RedrivePolicy" not in props:
        raise NothingToBreak("DetectorQueue has no RedrivePolicy")
    del props["RedrivePolicy"]


# (case name, rule that must fail, mutation)
CASES = [
    ("detector-role-granted-run", "governed_actions_only_for_launcher_role",
     add_statement("DetectorRole", {"Effect": "Allow", "Action": "lambda:RunMicrovm", "Resource": "*"})),
    ("detector-role-granted-shell-token-lowercase", "governed_actions_only_for_launcher_role",
     add_statement("DetectorRole", {"Effect": "Allow", "Action": ["s3:GetObject", "lambda:createmicrovmshellauthtoken"], "Resource": "*"})),
    ("detector-role-granted-lambda-star", "governed_actions_only_for_launcher_role",
     add_statement("DetectorRole", {"Effect": "Allow", "Action": "lambda:*", "Resource": "*"})),
    ("detector-role-granted-star", "governed_actions_only_for_launcher_role",
     add_statement("DetectorRole", {"Effect": "Allow", "Action": "*", "Resource": "*"})),
    ("detector-role-granted-wildcard-pattern", "governed_actions_only_for_launcher_role",
     add_statement("DetectorRole", {"Effect": "Allow", "Action": "lambda:*Microvm", "Resource": "*"})),
    ("detector-role-granted-notaction", "governed_actions_only_for_launcher_role",
     add_statement("DetectorRole", {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})),
    ("detector-role-granted-resume-under-fn-if", "governed_actions_only_for_launcher_role",
     add_statement("DetectorRole", {"Fn::If": ["RemediationEnabled",
                                               {"Effect": "Allow", "Action": "lambda:ResumeMicrovm", "Resource": "*"},
                                               {"Ref": "AWS::NoValue"}]})),
    ("deny-policy-flipped-to-allow", "governed_actions_only_for_launcher_role", deny_policy_becomes_allow),
    ("remediation-policy-grants-run", "governed_actions_only_for_launcher_role", remediation_policy_grants_run),
    ("remediation-policy-unconditional", "governed_actions_only_for_launcher_role", remediation_policy_loses_condition),
    ("policy-shared-by-launcher-and-detector", "governed_actions_only_for_launcher_role", standalone_policy_for_other_role),
    ("launcher-role-trusts-an-account", "launcher_role_trusts_only_lambda", launcher_role_trusts_an_account),
    ("trail-without-microvm-data-events", "created_trail_logs_microvm_data_events", trail_without_microvm_selector),
    ("trail-with-basic-event-selectors", "created_trail_logs_microvm_data_events", trail_with_basic_selectors),
    ("launcher-url-auth-none", "function_urls_use_aws_iam", launcher_url_without_iam),
    ("webhook-url-off-its-alias", "function_urls_use_aws_iam", webhook_url_off_its_alias),
    ("public-invoke-not-limited-to-url", "public_invoke_only_through_function_url", public_invoke_not_limited_to_url),
    ("ledger-table-unencrypted", "tables_encrypted", ledger_table_unencrypted),
    ("pending-table-sse-disabled", "tables_encrypted", pending_table_sse_disabled),
    ("dedupe-table-without-pitr", "tables_have_point_in_time_recovery", dedupe_table_without_pitr),
    ("queue-without-dlq", "detector_queue_has_dlq", queue_without_dlq),
]

SUMMARY_LINE = re.compile(r"^\S+/(\w+)\s+(PASS|FAIL|SKIP)\s*$")


def guard_statuses(guard: str, rules: str, data: pathlib.Path) -> dict[str, str]:
    proc = subprocess.run(
        [guard, "validate", "-r", rules, "-d", str(data), "--show-summary", "all", "-o", "single-line-summary"],
        capture_output=True,
        text=True,
    )
    statuses: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        m = SUMMARY_LINE.match(line.strip())
        if m:
            statuses[m.group(1)] = m.group(2)
    if not statuses:
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

    for tpath in map(pathlib.Path, args.templates):
        label = tpath.parent.name + "-" + tpath.stem
        real = load(tpath)
        statuses = guard_statuses(args.guard, args.rules, tpath)
        not_passing = {r: s for r, s in statuses.items() if s != "PASS"}
        untested = sorted(set(statuses) - targeted_rules)
        if not_passing or untested:
            failed += 1
            print(f"FAIL {label}: real template: rules not passing {not_passing}; rules without a broken case {untested}")
        else:
            passed += 1
            print(f"ok   {label}: real template passes all {len(statuses)} rules")

        for name, rule, mutate in CASES:
            broken = copy.deepcopy(real)
            try:
                mutate(broken)
            except NothingToBreak as e:
                failed += 1
                print(f"FAIL {label}/{name}: mutation found nothing to break ({e})")
                continue
            if broken == real:
                failed += 1
                print(f"FAIL {label}/{name}: mutation changed nothing")
                continue
            bpath = out / f"{label}--{name}.json"
            bpath.write_text(json.dumps(broken, indent=1))
            got = guard_statuses(args.guard, args.rules, bpath)
            if got.get(rule) == "FAIL":
                passed += 1
                print(f"ok   {label}/{name}: {rule} fails as it must")
            else:
                failed += 1
                print(f"FAIL {label}/{name}: expected {rule} to FAIL on {bpath}, got {got.get(rule)}")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
