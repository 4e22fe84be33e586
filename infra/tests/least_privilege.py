#!/usr/bin/env python3
"""Compares the IAM actions each execution role is granted with the AWS SDK calls its code makes.

Calls: every `.operation()` of an `aws-sdk-*` crate in the Rust sources a function's binary
is built from (launcher: launcher/src, launcher/core/src, shared/*/src; detector:
detector/src, detector/core/src, shared/*/src), counted in a file only when that file names
the crate (`aws_sdk_<crate>`). The operation names come from the crates themselves (their
src/operation/ directories, at the versions in Cargo.lock, from cargo's registry; `cargo
fetch --locked` is run once when one is missing). Each operation maps to its IAM action
(`<service>:<PascalCase>`, with the few S3 exceptions below).

Grants: every Allow action of the role of the function built from that binary in the SAM
template (found by its BuildProperties.Binary, not by logical id), inline policies and
AWS::IAM::Policy resources attached to the role, both branches of an Fn::If.

Prints both lists and the differences; a difference fails unless ALLOWED lists it with a
reason, and an ALLOWED entry that no longer matches a difference fails too. With
--self-test it also proves that an added SDK call without a grant, and an added grant
without a call, each fail.

With --org MEMBER SECURITY, the organization templates too: the member's launcher role and
the security account's detector role as above (their own allow-lists), and the member's sweep
role against the calls the detector makes with it (SWEEP_SOURCES: the MicroVMs client and the
ledger reader it builds per target), and its Security Hub import role against the calls of the
Security Hub channel (IMPORT_SOURCES): every grant must be such a call.

Usage: least_privilege.py [--self-test] SAM_TEMPLATE [--org MEMBER_TEMPLATE SECURITY_TEMPLATE]
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
import subprocess
import sys

from cfnlint.decode import decode_str
from report import report

REPO = pathlib.Path(__file__).resolve().parents[2]
SOURCES = {
    "launcher": ["launcher/src", "launcher/core/src", "shared/*/src"],
    "detector": ["detector/src", "detector/core/src", "shared/*/src"],
}
IAM_PREFIX = {
    "lambdamicrovms": "lambda",
    "lambda": "lambda",
    "dynamodb": "dynamodb",
    "s3": "s3",
    "sns": "sns",
    "sqs": "sqs",
    "secretsmanager": "secretsmanager",
    "cloudtrail": "cloudtrail",
    "eventbridge": "events",
    "ssm": "ssm",
    "sts": "sts",
    "kms": "kms",
    "cloudwatch": "cloudwatch",
    "securityhub": "securityhub",
    "organizations": "organizations",
    "account": "account",
}
# Operations IAM authorises under another action's name (AWS Service Authorization Reference:
# "Actions, resources, and condition keys for Amazon S3 / Amazon SNS / Amazon SQS"; the SNS and
# SQS pages list PublishBatch and SendMessageBatch under sns:Publish and sqs:SendMessage).
ACTION_OVERRIDES = {
    ("s3", "list_objects_v2"): "s3:ListBucket",
    ("s3", "list_objects"): "s3:ListBucket",
    ("s3", "head_object"): "s3:GetObject",
    ("s3", "head_bucket"): "s3:ListBucket",
    # TransactWriteItems has no IAM action of its own: each Put in it is authorised as
    # dynamodb:PutItem (the launcher's transactions only put). DynamoDB developer guide,
    # "Using IAM with DynamoDB transactions".
    ("dynamodb", "transact_write_items"): "dynamodb:PutItem",
    ("sns", "publish_batch"): "sns:Publish",
    ("sqs", "send_message_batch"): "sqs:SendMessage",
    ("sqs", "delete_message_batch"): "sqs:DeleteMessage",
    ("sqs", "change_message_visibility_batch"): "sqs:ChangeMessageVisibility",
}
# Operations that IAM authorises under a second action when the request names an object version
# (Service Authorization Reference for Amazon S3: GetObject/HeadObject with versionId need
# s3:GetObjectVersion). Counted when the file that calls them sets a version id.
VERSIONED_OPS = {
    ("s3", "get_object"): "s3:GetObjectVersion",
    ("s3", "head_object"): "s3:GetObjectVersion",
}

# What the detector calls through the sweep role of another account (targets.rs builds these
# clients with the assumed role's credentials).
# The ledger's code is ledger.rs and the batch loops it calls in rounds.rs.
SWEEP_SOURCES = ["detector/src/lambda/aws/microvms.rs", "shared/aws/src/ledger.rs", "shared/aws/src/rounds.rs"]
# What the detector calls through the Security Hub import role of another account
# (SECURITY_HUB_ROLE_NAME; the member's SecurityHubImportRole, found by its RoleName parameter).
IMPORT_SOURCES = ["detector/src/lambda/aws/securityhub.rs"]
IMPORT_ROLE_NAME = {"Ref": "SecurityHubImportRoleName"}

# (role, "granted-not-called" | "called-not-granted", action, reason)
ALLOWED: list[tuple[str, str, str, str]] = [
    ("launcher", "granted-not-called", "logs:CreateLogStream", "Lambda writes the function's logs with its role"),
    ("launcher", "granted-not-called", "logs:PutLogEvents", "Lambda writes the function's logs with its role"),
    ("launcher", "granted-not-called", "iam:PassRole", "RunMicrovm needs iam:PassRole on the execution role it names"),
    ("launcher", "granted-not-called", "lambda:PassNetworkConnector", "RunMicrovm needs it on the connectors it names"),
    ("launcher", "granted-not-called", "sqs:SendMessage", "Lambda's on-failure destination (reconciler schedule) sends with the function's role"),
    ("launcher", "called-not-granted", "dynamodb:BatchGetItem",
     "shared/aws ledger: known_microvms (BatchGetItem) is called by the detector's sweep only"),
    ("detector", "granted-not-called", "logs:CreateLogStream", "Lambda writes the function's logs with its role"),
    ("detector", "granted-not-called", "logs:PutLogEvents", "Lambda writes the function's logs with its role"),
    ("detector", "granted-not-called", "sqs:ReceiveMessage", "the SQS event source mapping polls with the function's role"),
    ("detector", "granted-not-called", "sqs:DeleteMessage", "the SQS event source mapping deletes with the function's role"),
    ("detector", "granted-not-called", "sqs:GetQueueAttributes", "the SQS event source mapping reads the queue with the function's role"),
    ("detector", "granted-not-called", "kms:GenerateDataKey", "SNS encrypts a published alert with the topic's key as the publisher"),
    ("detector", "granted-not-called", "kms:Decrypt",
     "SNS (alert key) and S3 (SSE-KMS trail objects, ExistingTrailKmsKeyArn) use it as the caller"),
    ("detector", "called-not-granted", "sts:GetCallerIdentity",
     "GetCallerIdentity needs no IAM permission (AWS STS API reference: it works even when denied)"),
]

# The organization templates' roles (same code, different stacks).
ALLOWED_MEMBER: list[tuple[str, str, str, str]] = [
    e for e in ALLOWED if e[0] == "launcher"
] + [
    ("sweep", "called-not-granted", "dynamodb:BatchWriteItem", "shared/aws ledger: the launcher's write; the sweep only reads"),
    ("sweep", "called-not-granted", "dynamodb:GetItem",
     "shared/aws ledger: the launcher's read; the sweep reads through known_microvms (BatchGetItem)"),
]
INTEGRITY = "the security stack sets no INTEGRITY_BASELINE_PARAMETER: the launchers live in the member accounts"
ALLOWED_SECURITY: list[tuple[str, str, str, str]] = [
    e for e in ALLOWED if e[0] == "detector" and e[2] != "kms:Decrypt"
] + [
    ("detector", "granted-not-called", "kms:Decrypt",
     "SNS (alert key) and S3 (SSE-KMS organization trail objects, ExistingTrailKmsKeyArn) use it as the caller"),
] + [("detector", "called-not-granted", a, INTEGRITY) for a in (
    "lambda:GetFunction", "lambda:GetFunctionConcurrency", "lambda:GetFunctionUrlConfig", "lambda:GetPolicy",
    "lambda:ListAliases", "lambda:ListEventSourceMappings", "ssm:GetParameter")]


def pascal(snake: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in snake.split("_"))


def sdk_crates() -> dict[str, set[str]]:
    """crate suffix (dynamodb, s3, ...) -> its operation names, at the Cargo.lock versions."""
    lock = (REPO / "Cargo.lock").read_text()
    versions = dict(re.findall(r'name = "aws-sdk-([a-z0-9]+)"\nversion = "([^"]+)"', lock))
    if not versions:
        raise SystemExit("Cargo.lock names no aws-sdk-* crate")
    cargo_home = pathlib.Path(os.environ.get("CARGO_HOME", pathlib.Path.home() / ".cargo"))

    def locate() -> dict[str, pathlib.Path | None]:
        found = {}
        for crate, v in versions.items():
            dirs = sorted(cargo_home.glob(f"registry/src/*/aws-sdk-{crate}-{v}/src/operation"))
            found[crate] = dirs[0] if dirs else None
        return found

    where = locate()
    if any(d is None for d in where.values()):
        subprocess.run(["cargo", "fetch", "--locked"], cwd=REPO, check=True, stdout=sys.stderr)
        where = locate()
    missing = [c for c, d in where.items() if d is None]
    if missing:
        raise SystemExit(f"the sources of aws-sdk-{missing} are not in {cargo_home}/registry after cargo fetch")
    return {c: {p.name for p in d.iterdir() if p.is_dir()} for c, d in where.items()}


def source_files(kind: str) -> list[pathlib.Path]:
    files: list[pathlib.Path] = []
    for pattern in SOURCES[kind]:
        for d in sorted(REPO.glob(pattern)):
            files.extend(sorted(d.rglob("*.rs")))
    if not files:
        raise SystemExit(f"no Rust sources for {kind} under {SOURCES[kind]}")
    return files


def calls_in(text: str, ops: dict[str, set[str]]) -> dict[str, list[str]]:
    """IAM action -> the crate operations that need it, for the crates this text names."""
    # Line comments do not call anything.
    code = re.sub(r"//[^\n]*", "", text)
    found: dict[str, list[str]] = {}
    for crate, names in ops.items():
        if f"aws_sdk_{crate}" not in code:
            continue
        prefix = IAM_PREFIX.get(crate)
        if prefix is None:
            continue
        for m in re.finditer(r"\.\s*([a-z][a-z0-9_]*)\s*\(\s*\)", code):
            op = m.group(1)
            if op in names:
                action = ACTION_OVERRIDES.get((crate, op), f"{prefix}:{pascal(op)}")
                found.setdefault(action, []).append(f"aws-sdk-{crate}::{op}")
                versioned = VERSIONED_OPS.get((crate, op))
                if versioned and re.search(r"\.\s*(set_)?version_id\s*\(", code):
                    found.setdefault(versioned, []).append(f"aws-sdk-{crate}::{op} (versionId)")
    return found


def used_actions(kind: str, ops: dict[str, set[str]], extra_sources: list[tuple[str, str]]) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    texts = [(str(f.relative_to(REPO)), f.read_text()) for f in source_files(kind)] + extra_sources
    for name, text in texts:
        for action, via in calls_in(text, ops).items():
            used.setdefault(action, set()).add(name)
    return used


def load(path: str) -> dict:
    t, matches = decode_str(pathlib.Path(path).read_text())
    if matches or t is None:
        raise SystemExit(f"{path}: cannot be parsed: {[str(m) for m in matches]}")
    return json.loads(json.dumps(t))


def statements(doc: dict) -> list[dict]:
    out = []
    st = doc.get("Statement", [])
    for s in st if isinstance(st, list) else [st]:
        if isinstance(s, dict) and "Fn::If" in s:
            out.extend(x for x in s["Fn::If"][1:] if isinstance(x, dict) and "Effect" in x)
        elif isinstance(s, dict):
            out.append(s)
    return out


def role_actions(res: dict, role_id: str) -> set[str]:
    """Allow actions of a role: inline policies and AWS::IAM::Policy resources naming it."""
    docs = [p["PolicyDocument"] for p in res[role_id]["Properties"].get("Policies", [])]
    for r in res.values():
        if r.get("Type") == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"].get("Roles", []):
            docs.append(r["Properties"]["PolicyDocument"])
    if res[role_id]["Properties"].get("ManagedPolicyArns"):
        raise SystemExit(f"{role_id} has managed policies: their actions cannot be checked here")
    actions: set[str] = set()
    for doc in docs:
        for s in statements(doc):
            if s.get("Effect") == "Allow":
                a = s.get("Action", [])
                actions.update([a] if isinstance(a, str) else a)
    return actions


def function_kinds(t: dict) -> list[str]:
    """The binaries (launcher, detector) the template's functions are built from."""
    return [k for k in SOURCES if any(r.get("Metadata", {}).get("BuildProperties", {}).get("Binary") == k
                                      for r in t["Resources"].values())]


def granted_actions(t: dict, binary: str) -> set[str]:
    res = t["Resources"]
    fns = [r for r in res.values() if r.get("Metadata", {}).get("BuildProperties", {}).get("Binary") == binary]
    if len(fns) != 1:
        raise SystemExit(f"expected one function built from the {binary} binary, found {len(fns)}")
    role_ref = fns[0]["Properties"]["Role"]
    role_id = role_ref["Fn::GetAtt"][0] if isinstance(role_ref["Fn::GetAtt"], list) else role_ref["Fn::GetAtt"].split(".")[0]
    return role_actions(res, role_id)


def cross_account_role_ids(t: dict) -> list[str]:
    """Roles trusted by an AWS principal (every execution role trusts a service)."""
    return [k for k, r in t["Resources"].items() if r.get("Type") == "AWS::IAM::Role" and any(
        isinstance(st, dict) and "AWS" in (st.get("Principal") or {})
        for st in r["Properties"]["AssumeRolePolicyDocument"]["Statement"])]


def is_import_role(t: dict, role_id: str) -> bool:
    return t["Resources"][role_id]["Properties"].get("RoleName") == IMPORT_ROLE_NAME


def sweep_role_ids(t: dict) -> list[str]:
    """The sweep role: trusted by an AWS principal, not the Security Hub import role."""
    return [k for k in cross_account_role_ids(t) if not is_import_role(t, k)]


def import_role_ids(t: dict) -> list[str]:
    return [k for k in cross_account_role_ids(t) if is_import_role(t, k)]


def sweep_calls(ops: dict[str, set[str]], sources: list[str] = SWEEP_SOURCES) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for rel in sources:
        for action in calls_in((REPO / rel).read_text(), ops):
            used.setdefault(action, set()).add(rel)
    return used


def compare(label: str, used: dict[str, set[str]], granted: set[str], allowed: dict, matched: set) -> list[tuple[bool, str]]:
    results = [(True, f"{label}: SDK calls -> IAM actions: " + ", ".join(
        f"{a} ({', '.join(sorted(used[a]))})" for a in sorted(used))),
        (True, f"{label}: granted: {', '.join(sorted(granted))}")]
    for what, diff in (("called-not-granted", set(used) - granted), ("granted-not-called", granted - set(used))):
        for action in sorted(diff):
            key = (label, what, action)
            if key in allowed:
                matched.add(key)
                results.append((True, f"{label}: {what} {action}: allowed: {allowed[key]}"))
            else:
                results.append((False, f"{label}: {what} {action}" + (
                    f" (called in {', '.join(sorted(used[action]))}): grant it to the {label} role"
                    if what == "called-not-granted" else ": no code calls it; remove the grant")))
    return results


def check(template: dict, ops: dict[str, set[str]], extra: dict[str, list[tuple[str, str]]],
          allow_list: list[tuple[str, str, str, str]] | None = None, name: str = "") -> list[tuple[bool, str]]:
    results: list[tuple[bool, str]] = []
    matched: set[tuple[str, str, str]] = set()
    allowed = {(r, k, a): why for r, k, a, why in (ALLOWED if allow_list is None else allow_list)}
    prefix = f"{name}: " if name else ""
    for kind in function_kinds(template) if name else SOURCES:
        used = used_actions(kind, ops, extra.get(kind, []))
        results.extend((ok, prefix + m) for ok, m in compare(kind, used, granted_actions(template, kind), allowed, matched))
    for role_id in sweep_role_ids(template):
        results.extend((ok, prefix + m) for ok, m in compare(
            "sweep", sweep_calls(ops), role_actions(template["Resources"], role_id), allowed, matched))
    for role_id in import_role_ids(template):
        results.extend((ok, prefix + m) for ok, m in compare(
            "securityhub-import", sweep_calls(ops, IMPORT_SOURCES), role_actions(template["Resources"], role_id),
            allowed, matched))
    for key, why in allowed.items():
        if key not in matched:
            results.append((False, f"{prefix}allow-list entry {key} ({why}) matches no difference: remove it"))
    return results


def main() -> int:
    argv = [a for a in sys.argv[1:] if a != "--self-test"]
    org: list[str] = []
    if "--org" in argv:
        i = argv.index("--org")
        org, argv = argv[i + 1:i + 3], argv[:i] + argv[i + 3:]
        if len(org) != 2:
            print(__doc__, file=sys.stderr)
            return 2
    args = argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    template = load(args[0])
    ops = sdk_crates()
    results = check(template, ops, {})
    if org:
        member, security = load(org[0]), load(org[1])
        results += check(member, ops, {}, ALLOWED_MEMBER, "member")
        results += check(security, ops, {}, ALLOWED_SECURITY, "security")
    if "--self-test" in sys.argv:
        # A new call without a grant.
        call = ("<self-test>", "use aws_sdk_dynamodb::Client; async fn f(c: Client) { c.delete_table().send().await; }")
        got = [m for ok, m in check(template, ops, {"detector": [call]}) if not ok]
        results.append((any("called-not-granted dynamodb:DeleteTable" in m for m in got),
                        "self-test: a detector DeleteTable call without a grant fails the check"))
        # A new grant without a call.
        broken = copy.deepcopy(template)
        role = next(r for r in broken["Resources"].values() if r.get("Type") == "AWS::IAM::Role"
                    and "/launcher/" in json.dumps(r["Properties"].get("Path")))
        role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
            {"Effect": "Allow", "Action": "sqs:PurgeQueue", "Resource": "*"})
        got = [m for ok, m in check(broken, ops, {}) if not ok]
        results.append((any("granted-not-called sqs:PurgeQueue" in m for m in got),
                        "self-test: a launcher sqs:PurgeQueue grant without a call fails the check"))
        if org:
            # A write granted to the sweep role.
            broken = copy.deepcopy(member)
            sweep = broken["Resources"][sweep_role_ids(broken)[0]]
            sweep["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
                {"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": "*"})
            got = [m for ok, m in check(broken, ops, {}, ALLOWED_MEMBER, "member") if not ok]
            results.append((any("sweep: granted-not-called dynamodb:UpdateItem" in m for m in got),
                            "self-test: a sweep role UpdateItem grant fails the check"))
            # Anything beside BatchImportFindings granted to the Security Hub import role.
            broken = copy.deepcopy(member)
            ids = import_role_ids(broken)
            if len(ids) != 1:
                results.append((False, f"self-test: expected one Security Hub import role in the member template, found {ids}"))
            else:
                imp = broken["Resources"][ids[0]]
                imp["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
                    {"Effect": "Allow", "Action": "securityhub:BatchUpdateFindings", "Resource": "*"})
                got = [m for ok, m in check(broken, ops, {}, ALLOWED_MEMBER, "member") if not ok]
                results.append((any("securityhub-import: granted-not-called securityhub:BatchUpdateFindings" in m
                                    for m in got),
                                "self-test: a Security Hub import role BatchUpdateFindings grant fails the check"))
    return report(results)


if __name__ == "__main__":
    sys.exit(main())
