#!/usr/bin/env python3
"""Proves each rule of infra/guard/organization.guard fails on broken copies of the org templates.

Like guard_negative_tests.py (whose loading and cfn-guard plumbing it uses): every rule must
pass on the real templates and be the target of at least one case; each case breaks one
template in one way and its rule must fail on that copy. A case whose mutation finds nothing
to break is a failure.

Usage: org_negative_tests.py --guard BIN --rules FILE --out DIR KIND=TEMPLATE...
  (KIND: member, security or forwarding; each given as the SAM template and the CDK output)
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from guard_negative_tests import NothingToBreak, load, res, run_guard, write_broken  # noqa: E402


def sweep_statements(t: dict) -> list:
    return res(t, "SweepRole")["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def sweep_role_granted(action: str):
    def mutate(t: dict) -> None:
        sweep_statements(t).append({"Effect": "Allow", "Action": action,
                                    "Resource": {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${NamePrefix}-ledger"}})
    return mutate


def sweep_trust(t: dict) -> dict:
    return res(t, "SweepRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]


def sweep_trust_without_org_id(t: dict) -> None:
    if sweep_trust(t).pop("Condition", None) is None:
        raise NothingToBreak("the sweep role's trust has no condition")


def sweep_trust_admits_star(t: dict) -> None:
    sweep_trust(t)["Principal"] = {"AWS": "*"}


def sweep_trust_admits_an_account(t: dict) -> None:
    sweep_trust(t)["Principal"] = {"AWS": "arn:aws:iam::111122223333:root"}


def import_statement(t: dict) -> dict:
    return res(t, "SecurityHubImportRole")["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]


def import_role_granted_update_findings(t: dict) -> None:
    import_statement(t)["Action"] = ["securityhub:BatchImportFindings", "securityhub:BatchUpdateFindings"]


def import_role_any_product(t: dict) -> None:
    import_statement(t)["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:securityhub:*:${AWS::AccountId}:product/*"}


def import_trust_admits_star(t: dict) -> None:
    res(t, "SecurityHubImportRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] = {"AWS": "*"}


def import_trust_without_org_id(t: dict) -> None:
    if res(t, "SecurityHubImportRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"][0].pop("Condition", None) is None:
        raise NothingToBreak("the import role's trust has no condition")


def launcher_ledger_statement(t: dict) -> dict:
    for p in res(t, "LauncherRole")["Properties"]["Policies"]:
        for st in p["PolicyDocument"]["Statement"]:
            if isinstance(st, dict) and st.get("Sid") == "Ledger":
                return st
    raise NothingToBreak("the launcher role has no Ledger statement")


def launcher_writes_any_accounts_ledger(t: dict) -> None:
    launcher_ledger_statement(t)["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:*:table/${NamePrefix}-ledger"}


def launcher_writes_a_named_accounts_ledger(t: dict) -> None:
    launcher_ledger_statement(t)["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:444455556666:table/${NamePrefix}-ledger"}


def launcher_writes_star(t: dict) -> None:
    launcher_ledger_statement(t)["Resource"] = "*"


def ledger_admits_another_account(t: dict) -> None:
    res(t, "LedgerTable")["Properties"]["ResourcePolicy"]["PolicyDocument"]["Statement"].append(
        {"Sid": "AdmitAnotherAccount", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
         "Action": "dynamodb:PutItem", "Resource": "*"})


def sweep_queue_without_dlq(t: dict) -> None:
    if res(t, "SweepQueue")["Properties"].pop("RedrivePolicy", None) is None:
        raise NothingToBreak("SweepQueue has no RedrivePolicy")


def sweep_queue_unencrypted(t: dict) -> None:
    if res(t, "SweepQueue")["Properties"].pop("SqsManagedSseEnabled", None) is None:
        raise NothingToBreak("SweepQueue has no SqsManagedSseEnabled")


def sweep_queue_short_visibility(t: dict) -> None:
    res(t, "SweepQueue")["Properties"]["VisibilityTimeout"] = 120


def bus_policy_without_org(t: dict) -> None:
    st = res(t, "OrganizationEventBusPolicy")["Properties"]["Statement"]
    if st.pop("Condition", None) is None:
        raise NothingToBreak("the bus policy has no condition")


def bus_policy_admits_every_action(t: dict) -> None:
    res(t, "OrganizationEventBusPolicy")["Properties"]["Statement"]["Action"] = "events:*"


def forwarding_dlq_unencrypted(t: dict) -> None:
    res(t, "ForwardingDeadLetterQueue")["Properties"]["SqsManagedSseEnabled"] = False


def sweep_remediation_unconditional(t: dict) -> None:
    if res(t, "SweepRemediationPolicy").pop("Condition", None) is None:
        raise NothingToBreak("SweepRemediationPolicy has no Condition")


# (template, case, rule that must fail, mutation)
CASES = [
    ("member", "sweep-role-granted-putitem", "sweep_role_only_reads", sweep_role_granted("dynamodb:PutItem")),
    ("member", "sweep-role-granted-run", "sweep_role_only_reads", sweep_role_granted("lambda:RunMicrovm")),
    ("member", "sweep-role-granted-dynamodb-star", "sweep_role_only_reads", sweep_role_granted("dynamodb:*")),
    ("member", "sweep-remediation-unconditional", "sweep_role_only_reads", sweep_remediation_unconditional),
    ("member", "sweep-trust-without-principal-org-id", "sweep_role_trusts_only_the_detector_in_the_organization",
     sweep_trust_without_org_id),
    ("member", "sweep-trust-admits-star", "sweep_role_trusts_only_the_detector_in_the_organization", sweep_trust_admits_star),
    ("member", "sweep-trust-admits-an-account", "sweep_role_trusts_only_the_detector_in_the_organization",
     sweep_trust_admits_an_account),
    ("member", "import-role-granted-batch-update-findings", "import_role_only_imports_findings",
     import_role_granted_update_findings),
    ("member", "import-role-any-product", "import_role_only_imports_findings", import_role_any_product),
    ("member", "import-trust-admits-star", "import_role_only_imports_findings", import_trust_admits_star),
    ("member", "import-trust-without-principal-org-id", "import_role_only_imports_findings", import_trust_without_org_id),
    ("member", "launcher-writes-any-accounts-ledger", "launcher_writes_only_its_own_accounts_tables",
     launcher_writes_any_accounts_ledger),
    ("member", "launcher-writes-a-named-accounts-ledger", "launcher_writes_only_its_own_accounts_tables",
     launcher_writes_a_named_accounts_ledger),
    ("member", "launcher-writes-star", "launcher_writes_only_its_own_accounts_tables", launcher_writes_star),
    ("member", "ledger-admits-another-account", "ledgers_admit_no_other_account", ledger_admits_another_account),
    ("security", "sweep-queue-without-dlq", "consumed_queues_have_a_dead_letter_queue", sweep_queue_without_dlq),
    ("security", "sweep-queue-visibility-below-six-timeouts", "consumed_queues_have_a_dead_letter_queue",
     sweep_queue_short_visibility),
    ("security", "sweep-queue-unencrypted", "queues_are_encrypted", sweep_queue_unencrypted),
    ("security", "bus-policy-without-organization-condition", "bus_policy_admits_only_the_organization", bus_policy_without_org),
    ("security", "bus-policy-admits-every-action", "bus_policy_admits_only_the_organization", bus_policy_admits_every_action),
    ("forwarding", "forwarding-dlq-unencrypted", "queues_are_encrypted", forwarding_dlq_unencrypted),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--guard", required=True)
    ap.add_argument("--rules", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("templates", nargs="+", metavar="KIND=PATH", help="member, security or forwarding = a template (SAM or CDK output)")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    real_dir, broken_dir = out / "real", out / "broken"
    for d in (real_dir, broken_dir):
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("*.json"):
            old.unlink()
    templates: dict[str, tuple[str, dict]] = {}
    for spec in a.templates:
        kind, _, path = spec.partition("=")
        if kind not in {k for k, *_ in CASES} or not path:
            raise SystemExit(f"{spec}: expected member=PATH, security=PATH or forwarding=PATH")
        label = f"{kind}-{pathlib.Path(path).parent.name}"
        templates[label] = (kind, load(pathlib.Path(path)))
    passed = failed = 0
    written = []
    for label, (kind, t) in templates.items():
        (real_dir / f"{label}.json").write_text(json.dumps(t, indent=1))
        cases = [(name, rule, mutate) for k, name, rule, mutate in CASES if k == kind]
        done, failures = write_broken(label, t, cases, broken_dir, lambda label, name: f"{label}--{name}.json")
        written += [(label, name, rule) for name, rule in done]
        failed += len(failures)
        for line in failures:
            print(line)
    real = run_guard(a.guard, a.rules, real_dir)
    broken_runs = run_guard(a.guard, a.rules, broken_dir)
    targeted = {r for _, _, r, _ in CASES}
    all_rules = set().union(*(set(v) for v in real.values()))
    for label in templates:
        failing = {r: s for r, s in real[f"{label}.json"].items() if s == "FAIL"}
        if failing:
            failed += 1
            print(f"FAIL {label}: real template fails {failing}")
        else:
            passed += 1
            print(f"ok   {label}: real template passes (or is not concerned by) all {len(real[f'{label}.json'])} rules")
    if all_rules - targeted:
        failed += 1
        print(f"FAIL rules without a broken case: {sorted(all_rules - targeted)}")
    caught: dict[str, int] = {}
    for label, name, rule in written:
        got = broken_runs.get(f"{label}--{name}.json", {}).get(rule)
        if got == "FAIL":
            passed += 1
            caught[label] = caught.get(label, 0) + 1
            print(f"ok   {label}/{name}: {rule} fails as it must")
        else:
            failed += 1
            print(f"FAIL {label}/{name}: expected {rule} to FAIL on {broken_dir}/{label}--{name}.json, got {got}")
    for label, (kind, _) in templates.items():
        total = sum(1 for k, *_ in CASES if k == kind)
        print(f"{label}: {caught.get(label, 0)} of {total} mutations caught")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
