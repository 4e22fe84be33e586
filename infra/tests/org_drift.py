#!/usr/bin/env python3
"""Holds the organization templates' copies of single-account resources equal to the originals.

SAM has no way to include part of one template in another that works offline and for
StackSets (AWS::Include and nested applications need the parts uploaded to S3 first), so
infra/org/member.yaml and infra/org/security.yaml carry copies of the single-account
template's launcher and detector resources. This check is what keeps them copies: for every
parameter, condition and resource the org template shares (by logical id) with
infra/sam/template.yaml, it compares the two property by property and fails on every
difference that ALLOWED does not list with its reason; an ALLOWED entry that matches no
difference fails too. Policy statements compare by Sid, environment variables and SAM
events by name, so a difference names what changed.

Usage: org_drift.py [--self-test] SAM_TEMPLATE MEMBER_TEMPLATE SECURITY_TEMPLATE
"""

from __future__ import annotations

import copy
import fnmatch
import json
import pathlib
import sys

from cfnlint.decode import decode_str
from report import report

# (template, path pattern, reason)
ALLOWED: list[tuple[str, str, str]] = [
    ("member", "Parameters.*.Description", "documentation text"),
    ("member", "Parameters.DeploymentRoleArn.AllowedPattern",
     "* as the account: one stack set value for every account (used only in ArnNotLike exemptions)"),
    ("member", "Parameters.BreakGlassRoleArn.AllowedPattern",
     "* as the account: one stack set value for every account (used only in ArnNotLike exemptions)"),
    ("member", "Parameters.PipelineRoleArn.AllowedPattern",
     "* as the account: one stack set value for every account (used only in exemptions and deny resources)"),
    ("member", "Parameters.SweepRoleName.*",
     "required in a member account (the sweep role it creates), with its default; the single-account stack's is optional"),
    ("member", "Resources.LauncherRole.Properties.RoleName",
     "one name in every account: the detector's LAUNCHER_ROLE_ARNS matches it with * as the account"),
    ("member", "Resources.LauncherRole.Properties.Policies.state-secrets-and-logs.OnFailureDestination.Resource.*",
     "the reconciler's dead-letter queue is the member's own (EventsDeadLetterQueue; no detector here)"),
    ("member", "Resources.LauncherFunction.Properties.EventInvokeConfig.DestinationConfig.OnFailure.Destination.*",
     "the member's own dead-letter queue"),
    ("member", "Resources.LauncherFunction.Properties.Events.Reconciler.Properties.DeadLetterConfig.Arn.*",
     "the member's own dead-letter queue"),
    ("member", "Resources.EventsDeadLetterQueueAlarm.Properties.*",
     "the member's alarm watches its reconciler dead-letter queue"),
    ("security", "Parameters.*.Description", "documentation text"),
    ("security", "Parameters.ExistingTrailBucketName.*",
     "required in the security account: the organization trail's bucket (no trail is created)"),
    ("security", "Parameters.SweepAccounts.Default", "an organization is swept by default"),
    ("security", "Parameters.SweepRoleName.*", "required (the member stacks' sweep role name), with its default"),
    ("security", "Globals.Function.Environment.Variables.LEDGER_TABLE.*",
     "the member accounts' ledger by name; the security account has none"),
    ("security", "Resources.DetectorQueuePolicy.Properties.PolicyDocument.Statement.S3ObjectCreatedFromTheTrailBucket.Condition.*",
     "the organization trail's bucket only (no created trail)"),
    ("security", "Resources.DetectorQueuePolicy.Properties.PolicyDocument.Statement.OnlyTheTrailNotificationsSend.Condition.*",
     "the organization trail's bucket only (no created trail)"),
    ("security", "Resources.DetectorEventsDeadLetterQueuePolicy.Properties.PolicyDocument.Statement.FailedDeliveriesOfTheDetectorRules.Condition.*",
     "no reconciler rule in the security account"),
    ("security", "Resources.DetectorRole.Properties.Policies.detector.ReadTrailObjects.Resource[[]*[]].Fn::Sub[[]1[]].Bucket.*",
     "the organization trail's bucket"),
    ("security", "Resources.DetectorRole.Properties.Policies.detector.ReadLedger",
     "no ledger in the security account: the ledgers are read through the sweep role"),
    ("security", "Resources.DetectorRole.Properties.Policies.detector.IntegrityCheck*",
     "no INTEGRITY_BASELINE_PARAMETER: the launcher functions live in the member accounts"),
    ("security", "Resources.DetectorRole.Properties.Policies.detector.QueueSweepTargets", "the sweep fan-out queue"),
    ("security", "Resources.DetectorRole.Properties.Policies.detector.ConsumeQueue.Resource", "the sweep queue is consumed too"),
    ("security", "Resources.DetectorRole.Properties.Policies.detector.Fn::If[[]SweepsOtherAccounts[]].Condition.StringEquals",
     "sweep roles only inside the organization (aws:ResourceOrgID)"),
    ("security", "Resources.DetectorRole.Properties.Policies.detector.Fn::If[[]ImportsFindingsInEachAccount[]]",
     "Security Hub: each finding imported in the account it names, through that account's import role "
     "(SecurityHubImportRoleName, inside the organization)"),
    ("security", "Resources.DetectorFunction.Properties.Environment.Variables.SECURITY_HUB_ROLE_NAME",
     "Security Hub: the member accounts' import role (SECURITY_HUB_ROLE_NAME)"),
    ("security", "Resources.DetectorFunction.Properties.Environment.Variables.*",
     "the organization's launcher role, session and function names, the sweep queue, the trail bucket and protected resources"),
    ("security", "Resources.DetectorFunction.Properties.Events.SweepTargets", "the sweep fan-out queue's event source"),
    ("security", "Resources.DetectorFunction.Properties.Events.Sweep.Properties.Description", "documentation text"),
    ("security", "Resources.DetectorFunction.Properties.Events.TamperEvents.Properties.Pattern.$or[[]2[]].detail.requestParameters.roleArn[[]0[]].*",
     "assumptions of any member account's governance roles (wildcard account)"),
]


def load(path: str) -> dict:
    t, matches = decode_str(pathlib.Path(path).read_text())
    if matches or t is None:
        raise SystemExit(f"{path}: cannot be parsed: {[str(m) for m in matches]}")
    return json.loads(json.dumps(t))


def keyed(node, path: str):
    """Statements by Sid (Fn::If-wrapped ones by their condition), policies by name."""
    if isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
        if all("PolicyName" in x for x in node):
            return {x["PolicyName"]: keyed(x["PolicyDocument"].get("Statement", []), path) for x in node}
        if all("Sid" in x or "Fn::If" in x for x in node):
            return {(x["Sid"] if "Sid" in x else f"Fn::If[{x['Fn::If'][0]}]"):
                    keyed(x if "Sid" in x else x["Fn::If"][1], path) for x in node}
    if isinstance(node, dict):
        return {k: keyed(v, path) for k, v in node.items()}
    if isinstance(node, list):
        return [keyed(x, path) for x in node]
    return node


def diff(a, b, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}"
            if k not in a or k not in b:
                out.append(p)
            else:
                diff(a[k], b[k], p, out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(path)


def differences(single: dict, org: dict) -> list[str]:
    out: list[str] = []
    for section in ("Parameters", "Conditions", "Globals", "Resources"):
        sa, so = single.get(section, {}), org.get(section, {})
        for lid in sorted(set(sa) & set(so)):
            diff(keyed(sa[lid], lid), keyed(so[lid], lid), f"{section}.{lid}", out)
    return out


def check(single: dict, orgs: dict[str, dict]) -> list[tuple[bool, str]]:
    results: list[tuple[bool, str]] = []
    used: set[int] = set()
    for name, org in orgs.items():
        shared = sum(len(set(single.get(s, {})) & set(org.get(s, {}))) for s in ("Parameters", "Conditions", "Resources"))
        results.append((shared > 0, f"{name}: {shared} parameters, conditions and resources shared with the single-account template"))
        for d in differences(single, org):
            hit = next((i for i, (t, pat, _) in enumerate(ALLOWED) if t == name and fnmatch.fnmatchcase(d, pat)), None)
            if hit is None:
                results.append((False, f"{name}: {d} differs from infra/sam/template.yaml"))
            else:
                used.add(hit)
                results.append((True, f"{name}: {d} differs: allowed: {ALLOWED[hit][2]}"))
    for i, (t, pat, why) in enumerate(ALLOWED):
        if i not in used and t in orgs:
            results.append((False, f"allow-list entry ({t}, {pat}) matches no difference: remove it"))
    return results


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--self-test"]
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    single = load(args[0])
    orgs = {"member": load(args[1]), "security": load(args[2])}
    results = check(single, orgs)
    if "--self-test" in sys.argv:
        broken = copy.deepcopy(orgs)
        broken["member"]["Resources"]["LedgerTable"]["Properties"]["PointInTimeRecoverySpecification"] = {
            "PointInTimeRecoveryEnabled": False}
        got = [m for ok, m in check(single, broken) if not ok]
        results.append((any("LedgerTable.Properties.PointInTimeRecoverySpecification" in m for m in got),
                        "self-test: a member ledger without point-in-time recovery fails the check"))
        broken = copy.deepcopy(orgs)
        broken["security"]["Resources"]["DetectorRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
            {"Sid": "Extra", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"})
        got = [m for ok, m in check(single, broken) if not ok]
        results.append((any("DetectorRole.Properties.Policies.detector.Extra" in m for m in got),
                        "self-test: a statement added to the security detector role fails the check"))
    return report(results)


if __name__ == "__main__":
    sys.exit(main())
