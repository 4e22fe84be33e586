#!/usr/bin/env python3
"""A ledger write across accounts is refused by the member template's IAM, on both sides.

The member template (infra/org/member.yaml) is deployed in every workload account. This
check instantiates it twice, for account A and account B (intrinsics resolved with each
account's pseudo parameters), and evaluates, for every role of the template as a principal
of account A (with every condition set both ways):

  * each DynamoDB write (PutItem, UpdateItem, DeleteItem, BatchWriteItem, PartiQL*) on
    account B's ledger ARN: the identity side (A's role policies) must not allow it, AND the
    resource side (B's table resource policy) must not allow it. Either one alone already
    refuses a cross-account request: IAM allows one only when the identity policy in the
    caller's account and the resource-based policy in the resource's account both allow it
    (AWS IAM User Guide, "Cross-account policy evaluation logic"). Requiring both to refuse
    keeps the promise of infra/README.md: no ledger admits another account and no launcher
    role may write another account's ledger, so neither side's mistake opens the other.
  * the launcher role writing its own account's ledger (PutItem, BatchWriteItem) from the
    launcher function: allowed (the check can tell allowed from refused).

--self-test runs the same evaluation on mutated copies and requires each to fail: the
launcher's ledger grant widened to any account, the ledger's resource policy admitting
account A, both at once, and a launcher role that cannot write its own ledger.

Why not moto: moto does not authorise requests against IAM identity policies or DynamoDB
resource-based policies (any signed request with any credentials is served), so a write
it accepted or refused would say nothing about the templates. The evaluation below
implements the parts of IAM's policy logic these templates use (Allow/Deny, Action and
NotAction with wildcards, Resource wildcards, Principal, and the ArnLike/ArnNotLike/
ArnEquals/StringEquals/StringNotEquals/StringLike/Bool operators, absent keys as IAM treats
them) and fails loudly on anything else it meets.

Usage: cross_account_ledger.py [--self-test] MEMBER_TEMPLATE
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import pathlib
import re
import sys

from cfnlint.decode import decode_str
from report import report

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "policies"))
from generate import Resolver, _NO_VALUE  # noqa: E402

ACCOUNT_A, ACCOUNT_B = "111111111111", "222222222222"
REGION, PARTITION = "us-east-1", "aws"
WRITES = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
          "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"]
PARAMS = {
    "DeploymentRoleArn": f"arn:aws:iam::{ACCOUNT_A}:role/cfn-exec/deployer",
    "BreakGlassRoleArn": f"arn:aws:iam::{ACCOUNT_A}:role/break-glass/security-break-glass",
    "OrganizationId": "o-exampleorg1",
    "DetectorRoleArn": "arn:aws:iam::999999999999:role/microvm-gov/detector/detector-role",
    "AllowedImageArns": [f"arn:aws:lambda:{REGION}:{ACCOUNT_A}:microvm-image:agent-sandbox"],
    "AllowedExecutionRoleArns": [f"arn:aws:iam::{ACCOUNT_A}:role/sandbox-exec"],
}


class TemplateResolver(Resolver):
    """Also resolves references to the stack's own resources, as placeholder ARNs (none of
    them is a DynamoDB table, so they cannot match the ledger)."""

    def resolve(self, node):
        if isinstance(node, dict) and len(node) == 1:
            (k, v), = node.items()
            if k == "Fn::GetAtt":
                lid = v[0] if isinstance(v, list) else v.split(".")[0]
                return self.placeholder(lid)
            if k == "Ref" and v in self.t.get("Resources", {}):
                return self.placeholder(v)
        return super().resolve(node)

    def sub(self, text: str, local: dict) -> str:
        def attr(m: re.Match) -> str:
            return self.placeholder(m.group(1))
        text = re.sub(r"\$\{([A-Za-z0-9]+)\.[A-Za-z]+\}", attr, text)
        return super().sub(text, local)

    def param(self, name: str):
        if name.split(".")[0] in self.t.get("Resources", {}):
            return self.placeholder(name.split(".")[0])
        return super().param(name)

    def placeholder(self, lid: str) -> str:
        return f"arn:{PARTITION}:stack-resource:{REGION}:{self.values['AWS::AccountId']}:{lid}"


def load(path: str) -> dict:
    t, matches = decode_str(pathlib.Path(path).read_text())
    if matches or t is None:
        raise SystemExit(f"{path}: cannot be parsed: {[str(m) for m in matches]}")
    return json.loads(json.dumps(t))


def instantiate(t: dict, account: str, conditions: dict[str, bool]) -> tuple[dict, TemplateResolver]:
    values = {"AWS::AccountId": account, "AWS::Region": REGION, "AWS::Partition": PARTITION, **PARAMS}
    r = TemplateResolver(t, values)
    r.conditions.update(conditions)
    # Only what IAM evaluates here: roles, their policies and the tables.
    kinds = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::DynamoDB::Table")
    return {k: r.resolve(copy.deepcopy(v)) for k, v in t["Resources"].items() if v.get("Type") in kinds}, r


def as_list(x) -> list:
    return x if isinstance(x, list) else [x]


def wildcard(pattern: str, value: str, case: bool) -> bool:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, 0 if case else re.IGNORECASE) is not None


def condition_holds(cond: dict, ctx: dict) -> bool:
    for op, pairs in cond.items():
        for key, wanted in pairs.items():
            wanted = [str(w) for w in as_list(wanted)]
            have = ctx.get(key)
            if op in ("ArnLike", "StringLike", "ArnEquals", "StringEquals", "Bool"):
                if have is None:
                    return False
                like = op in ("ArnLike", "StringLike", "ArnEquals")
                if not any(wildcard(w, have, True) if like else w == have for w in wanted):
                    return False
            elif op in ("ArnNotLike", "StringNotEquals", "StringNotLike", "ArnNotEquals"):
                # An absent key makes a negated operator true (IAM User Guide, condition operators).
                if have is not None and any(
                        wildcard(w, have, True) if op != "StringNotEquals" else w == have for w in wanted):
                    return False
            else:
                raise SystemExit(f"condition operator {op} is not implemented here: extend the evaluator")
    return True


def statements(doc: dict) -> list[dict]:
    return [s for s in as_list(doc.get("Statement", [])) if isinstance(s, dict) and s is not _NO_VALUE]


def matches(st: dict, action: str, resource: str, ctx: dict, principal: str | None = None) -> bool:
    if "NotAction" in st:
        if any(wildcard(a, action, False) for a in as_list(st["NotAction"])):
            return False
    elif not any(wildcard(a, action, False) for a in as_list(st.get("Action", []))):
        return False
    if "NotResource" in st:
        raise SystemExit("NotResource is not implemented here: extend the evaluator")
    if not any(wildcard(r, resource, True) for r in as_list(st.get("Resource", []))):
        return False
    if principal is not None:
        p = st.get("Principal")
        aws = as_list(p.get("AWS", [])) if isinstance(p, dict) else [p]
        account = principal.split(":")[4]
        if not any(a == "*" or a == principal or a in (account, f"arn:{PARTITION}:iam::{account}:root") for a in aws):
            return False
    return condition_holds(st.get("Condition", {}), ctx)


def decide(docs: list[dict], action: str, resource: str, ctx: dict, principal: str | None = None) -> str:
    """"deny" (explicit), "allow" or "none" (implicit deny)."""
    effects = [st["Effect"] for d in docs for st in statements(d) if matches(st, action, resource, ctx, principal)]
    return "deny" if "Deny" in effects else "allow" if "Allow" in effects else "none"


def role_arn(res: dict, lid: str, account: str) -> str:
    p = res[lid]["Properties"]
    path = p.get("Path", "/")
    return f"arn:{PARTITION}:iam::{account}:role{path}{p.get('RoleName', lid + '-GENERATED')}"


def identity_docs(res: dict, lid: str) -> list[dict]:
    docs = [p["PolicyDocument"] for p in res[lid]["Properties"].get("Policies", [])]
    marker = f"arn:{PARTITION}:stack-resource:{REGION}:"
    for r in res.values():
        if r.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = [x for x in r["Properties"].get("Roles", []) if isinstance(x, str)]
            if any(x.startswith(marker) and x.endswith(":" + lid) for x in roles):
                docs.append(r["Properties"]["PolicyDocument"])
    return docs


def ledger_of(res: dict, account: str) -> tuple[str, list[dict]]:
    tables = [r for r in res.values() if r.get("Type") == "AWS::DynamoDB::Table"
              and str(r["Properties"].get("TableName", "")).endswith("-ledger")]
    if len(tables) != 1:
        raise SystemExit(f"expected one ledger table, found {len(tables)}")
    p = tables[0]["Properties"]
    arn = f"arn:{PARTITION}:dynamodb:{REGION}:{account}:table/{p['TableName']}"
    policy = p.get("ResourcePolicy", {}).get("PolicyDocument")
    return arn, [policy] if policy else []


def check(t: dict) -> list[tuple[bool, str]]:
    results: list[tuple[bool, str]] = []
    cond_names = list(t.get("Conditions", {}))
    for combo in itertools.product([False, True], repeat=len(cond_names)):
        conds = dict(zip(cond_names, combo))
        res_a, _ = instantiate(t, ACCOUNT_A, conds)
        res_b, _ = instantiate(t, ACCOUNT_B, conds)
        for lid in (k for k, r in res_a.items() if r.get("Type") == "AWS::IAM::Role" and (
                "Condition" not in t["Resources"][k] or conds[t["Resources"][k]["Condition"]])):
            principal = role_arn(res_a, lid, ACCOUNT_A)
            prefix = PARAMS.get("NamePrefix", "microvm-gov")
            ctx = {
                "aws:PrincipalArn": principal,
                "aws:PrincipalAccount": ACCOUNT_A,
                "aws:PrincipalOrgID": PARAMS["OrganizationId"],
                "aws:SecureTransport": "true",
                # The strongest case: the request comes from the launcher function itself.
                "lambda:SourceFunctionArn": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_A}:function:{prefix}-launcher",
            }
            ident = identity_docs(res_a, lid)
            ledger_b, policy_b = ledger_of(res_b, ACCOUNT_B)
            for action in WRITES:
                idn = decide(ident, action, ledger_b, ctx)
                rsc = decide(policy_b, action, ledger_b, ctx, principal)
                results.append((idn != "allow" and rsc != "allow", (
                    f"{lid} of {ACCOUNT_A} -> {action} on {ACCOUNT_B}'s ledger: identity {idn}, resource {rsc}"
                    f" (conditions {','.join(k for k, v in conds.items() if v) or 'none'})")))
        launcher = [k for k, r in res_a.items() if r.get("Type") == "AWS::IAM::Role"
                    and "/launcher/" in str(r["Properties"].get("Path"))]
        if len(launcher) != 1:
            results.append((False, f"expected one launcher role, found {launcher}"))
            continue
        principal = role_arn(res_a, launcher[0], ACCOUNT_A)
        ledger_a, policy_a = ledger_of(res_a, ACCOUNT_A)
        ctx = {"aws:PrincipalArn": principal, "aws:PrincipalAccount": ACCOUNT_A,
               "lambda:SourceFunctionArn": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_A}:function:microvm-gov-launcher"}
        for action in ("dynamodb:PutItem", "dynamodb:BatchWriteItem"):
            idn = decide(identity_docs(res_a, launcher[0]), action, ledger_a, ctx)
            rsc = decide(policy_a, action, ledger_a, ctx, principal)
            results.append((idn == "allow" and rsc != "deny",
                            f"launcher of {ACCOUNT_A} -> {action} on its own ledger: identity {idn}, resource {rsc}"))
    # One line per distinct outcome keeps the output readable (conditions multiply the cases).
    seen: dict[str, tuple[bool, str]] = {}
    for ok, msg in results:
        key = re.sub(r" \(conditions [^)]*\)", "", msg)
        if key not in seen or not ok:
            seen[key] = (ok and seen.get(key, (True, ""))[0], msg)
    return list(seen.values())


def mutate(t: dict, what: str) -> dict:
    t = copy.deepcopy(t)
    role = t["Resources"]["LauncherRole"]["Properties"]
    ledger_stmt = next(s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]
                       if isinstance(s, dict) and s.get("Sid") == "Ledger")
    table = t["Resources"]["LedgerTable"]["Properties"]
    if what in ("identity", "both"):
        ledger_stmt["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:*:table/${NamePrefix}-ledger"}
    if what in ("resource", "both"):
        table["ResourcePolicy"]["PolicyDocument"]["Statement"] = [
            {"Sid": "AdmitAnotherAccount", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_A}:root"},
             "Action": WRITES, "Resource": "*"}]
    if what == "own-write-removed":
        ledger_stmt["Action"] = ["dynamodb:GetItem"]
    return t


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--self-test"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    t = load(args[0])
    results = check(t)
    if "--self-test" in sys.argv:
        for what in ("identity", "resource", "both", "own-write-removed"):
            failed = [m for ok, m in check(mutate(t, what)) if not ok]
            results.append((bool(failed), f"self-test: a template with {what} mutated fails the check"
                            + (f" ({failed[0]})" if failed else "")))
    return report(results)


if __name__ == "__main__":
    sys.exit(main())
