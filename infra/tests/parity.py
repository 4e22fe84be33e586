#!/usr/bin/env python3
"""Checks that the SAM template and the CDK output describe the same system, property by property.

The SAM template is expanded with the SAM translator (offline; CodeUri replaced by a
placeholder S3 location), so both sides are plain CloudFormation. Both are then normalised:

  * logical ids: the hashed ids of published versions (SAM `FooVersion1a2b3c4d5e`, CDK
    `FooCurrentVersion1A2B...`) become `FooVersion`, everywhere they are referenced;
  * intrinsics: Fn::Sub (with or without a variable map) and Fn::Join with a literal list
    become one canonical concatenation of literal text, {"Ref": X} and {"GetAtt": [X, Y]};
    the string form of GetAtt becomes the list form;
  * scalars: numbers and booleans compare as CloudFormation reads them (as strings).

Then every section (Parameters, Mappings, Conditions, Resources, Outputs) is compared
recursively; every difference is printed with its path and fails the check unless an entry
of ALLOWED_DIFFERENCES matches its path, with the reason printed beside it. An allow-list
entry that matches nothing fails too, so the list cannot go stale.

Also: the Athena named query of each template is infra/athena/bypass-hunt.sql, verbatim.

With --self-test, the check is also run on copies of the CDK template that each differ
from it in one thing that matters (a resource ARN, a condition, an event pattern, an
architecture, a visibility timeout, a policy condition), and each copy must fail.

With --org NAME SAM_TEMPLATE CDK_TEMPLATE (repeatable), an organization template and its CDK
stack are compared the same way, with ORG_ALLOWED_DIFFERENCES[NAME] (no Athena query there).

Usage: parity.py [--self-test] SAM_TEMPLATE CDK_TEMPLATE SQL_FILE [--org NAME SAM_TEMPLATE CDK_TEMPLATE]...
Prints one line per check and "N passed, N failed"; exits 1 on any failure.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import pathlib
import re
import sys

from cfnlint.decode import decode_str
from report import report

# (path pattern, reason). Paths look like Resources.LauncherFunction.Properties.Code.
ALLOWED_DIFFERENCES: list[tuple[str, str]] = [
    ("Parameters.*.Description", "documentation text; the SAM template's is the long form"),
    ("Parameters.BootstrapVersion", "CDK's bootstrap-version parameter (new-style synthesis)"),
    ("Rules", "CDK's CheckBootstrapVersion rule (new-style synthesis)"),
    ("Outputs.*.Description", "documentation text"),
    ("Resources.*.Metadata", "SAM build metadata / CDK construct paths and asset metadata"),
    ("Resources.LauncherFunction.Properties.Code", "SAM: built from CodeUri by sam build; CDK: the cargo-lambda-cdk asset"),
    ("Resources.DetectorFunction.Properties.Code", "SAM: built from CodeUri by sam build; CDK: the cargo-lambda-cdk asset"),
    ("Resources.*FunctionVersion.UpdateReplacePolicy",
     "CDK's RETAIN removal policy also sets UpdateReplacePolicy; SAM sets only DeletionPolicy (versions are never replaced in place)"),
    ("Resources.LauncherFunction.Properties.Tags", "SAM tags its functions lambda:createdBy=SAM"),
    ("Resources.DetectorFunction.Properties.Tags", "SAM tags its functions lambda:createdBy=SAM"),
]

# The organization templates' lists (infra/org/*.yaml against the CDK app's org stacks).
_GENERIC = [
    ("Parameters.*.Description", "documentation text; the SAM template's is the long form"),
    ("Parameters.BootstrapVersion", "CDK's bootstrap-version parameter (new-style synthesis)"),
    ("Rules", "CDK's CheckBootstrapVersion rule (new-style synthesis)"),
    ("Outputs.*.Description", "documentation text"),
    ("Resources.*.Metadata", "SAM build metadata / CDK construct paths and asset metadata"),
]
_FUNCTION = lambda name: [  # noqa: E731
    (f"Resources.{name}.Properties.Code", "SAM: built from CodeUri by sam build; CDK: the cargo-lambda-cdk asset"),
    (f"Resources.{name}Version.UpdateReplacePolicy",
     "CDK's RETAIN removal policy also sets UpdateReplacePolicy; SAM sets only DeletionPolicy"),
    (f"Resources.{name}.Properties.Tags", "SAM tags its functions lambda:createdBy=SAM"),
]
ORG_ALLOWED_DIFFERENCES: dict[str, list[tuple[str, str]]] = {
    "member": _GENERIC + _FUNCTION("LauncherFunction"),
    "security": _GENERIC + _FUNCTION("DetectorFunction"),
    "forwarding": [e for e in _GENERIC if e[0] != "Outputs.*.Description"],
}

VERSION_ID = re.compile(r"^(\w+?Function)(?:Current)?Version[0-9A-Fa-f]{8,}$")


def load(path: str) -> dict:
    template, matches = decode_str(pathlib.Path(path).read_text())
    if matches or template is None:
        raise SystemExit(f"{path}: cannot be parsed: {[str(m) for m in matches]}")
    return json.loads(json.dumps(template))


def expand_sam(t: dict) -> dict:
    """Plain CloudFormation from the SAM template, offline."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform

    if "Transform" not in t:
        return t
    t = copy.deepcopy(t)
    for r in t["Resources"].values():
        if r.get("Type") == "AWS::Serverless::Function":
            r["Properties"]["CodeUri"] = "s3://placeholder/code.zip"

    class NoManagedPolicies:
        def load(self) -> dict:
            return {}

    return transform(t, {}, NoManagedPolicies())


def canon_id(lid: str) -> str:
    m = VERSION_ID.match(lid)
    return m.group(1) + "Version" if m else lid


def concat(parts: list) -> object:
    merged: list = []
    for p in parts:
        if isinstance(p, dict) and "Concat" in p:
            for q in p["Concat"]:
                merged.append(q)
        else:
            merged.append(p)
    out: list = []
    for p in merged:
        if isinstance(p, str) and out and isinstance(out[-1], str):
            out[-1] += p
        elif p != "":
            out.append(p)
    if not out:
        return ""
    if len(out) == 1:
        return out[0]
    return {"Concat": out}


SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def norm_sub(text: str, variables: dict) -> object:
    parts: list = []
    pos = 0
    for m in SUB_VAR.finditer(text):
        parts.append(text[pos : m.start()].replace("${!", "${"))
        name = m.group(1)
        if name in variables:
            parts.append(norm(variables[name]))
        elif "." in name and not name.startswith("AWS::"):
            res, attr = name.split(".", 1)
            parts.append({"GetAtt": [canon_id(res), attr]})
        else:
            parts.append({"Ref": canon_id(name)})
        pos = m.end()
    parts.append(text[pos:].replace("${!", "${"))
    return concat(parts)


def norm(node):
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, (int, float)):
        return str(node)
    if isinstance(node, list):
        return [norm(x) for x in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (k, v), = node.items()
        if k == "Ref":
            return {"Ref": canon_id(v)}
        if k == "Fn::GetAtt":
            res, attr = v.split(".", 1) if isinstance(v, str) else v
            return {"GetAtt": [canon_id(res), norm(attr)]}
        if k == "Fn::Sub":
            return norm_sub(v, {}) if isinstance(v, str) else norm_sub(v[0], v[1])
        if k == "Fn::Join" and isinstance(v[1], list):
            items = [norm(x) for x in v[1]]
            parts: list = []
            for i, x in enumerate(items):
                if i:
                    parts.append(v[0])
                parts.append(x)
            return concat(parts)
    return {k: norm(v) for k, v in node.items()}


def normalise(t: dict) -> dict:
    out = {}
    for section in ("Parameters", "Mappings", "Conditions", "Outputs", "Rules"):
        if section in t:
            out[section] = norm(t[section])
    res = {}
    for lid, r in t.get("Resources", {}).items():
        if r.get("Type") == "AWS::CDK::Metadata":
            continue
        r = norm(r)
        if "DependsOn" in r:
            d = r["DependsOn"]
            r["DependsOn"] = sorted(canon_id(x) for x in ([d] if isinstance(d, str) else d))
        res[canon_id(lid)] = r
    out["Resources"] = res
    if "CDKMetadataAvailable" in out.get("Conditions", {}):
        del out["Conditions"]["CDKMetadataAvailable"]
    return out


def differences(a, b, path: str) -> list[tuple[str, str]]:
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = []
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}" if path else k
            if k not in a:
                diffs.append((p, f"only in CDK: {json.dumps(b[k])[:160]}"))
            elif k not in b:
                diffs.append((p, f"only in SAM: {json.dumps(a[k])[:160]}"))
            else:
                diffs.extend(differences(a[k], b[k], p))
        return diffs
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        diffs = []
        for i, (x, y) in enumerate(zip(a, b)):
            diffs.extend(differences(x, y, f"{path}[{i}]"))
        return diffs
    if a != b:
        return [(path, f"SAM {json.dumps(a)[:200]} != CDK {json.dumps(b)[:200]}")]
    return []


def allowed(path: str, allow_list: list[tuple[str, str]]) -> tuple[str, str] | None:
    for pattern, reason in allow_list:
        if fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern + ".*") or fnmatch.fnmatchcase(
            path, pattern + "[*"
        ):
            return pattern, reason
    return None


def query_text(t: dict) -> str:
    for r in t["Resources"].values():
        if r.get("Type") == "AWS::Athena::NamedQuery":
            sub = r["Properties"]["QueryString"]["Fn::Sub"]
            return sub[0] if isinstance(sub, list) else sub
    raise SystemExit("no AWS::Athena::NamedQuery in the template")


def compare(sam_raw: dict, cdk_raw: dict, sql: str | None,
            allow_list: list[tuple[str, str]] = ALLOWED_DIFFERENCES) -> list[tuple[bool, str]]:
    sam, cdk = normalise(expand_sam(sam_raw)), normalise(cdk_raw)
    results: list[tuple[bool, str]] = []
    used: set[str] = set()
    compared = 0
    for section in ("Parameters", "Mappings", "Conditions", "Resources", "Outputs", "Rules"):
        a, b = sam.get(section, {}), cdk.get(section, {})
        for key in sorted(set(a) | set(b)):
            compared += 1
            for p, what in differences(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{section}.{key}"):
                hit = allowed(p, allow_list)
                if hit:
                    used.add(hit[0])
                    results.append((True, f"allowed {p}: {hit[1]}"))
                else:
                    results.append((False, f"{p}: {what}"))
    for pattern, reason in allow_list:
        if pattern not in used:
            results.append((False, f"allow-list entry {pattern!r} ({reason}) matches no difference: remove it"))
    results.append((True, f"compared {compared} parameters, mappings, conditions, resources and outputs"))
    for name, t in (("SAM", sam_raw), ("CDK", cdk_raw)) if sql is not None else ():
        ok = query_text(t) == sql
        results.append((ok, f"{name} Athena query is bypass-hunt.sql" if ok else
                        f"{name} Athena query differs from infra/athena/bypass-hunt.sql"))
    return results


def _statement(t: dict, role_path: str, sid: str) -> dict:
    for r in t["Resources"].values():
        if r["Type"] == "AWS::IAM::Role" and role_path in json.dumps(r["Properties"].get("Path")):
            for pol in r["Properties"]["Policies"]:
                for st in pol["PolicyDocument"]["Statement"]:
                    if isinstance(st, dict) and st.get("Sid") == sid:
                        return st
    raise KeyError(sid)


def _of_type(t: dict, type_: str, pred=lambda r: True) -> dict:
    return next(r for r in t["Resources"].values() if r["Type"] == type_ and pred(r))


def _mutate_ledger_arn(t):
    _statement(t, "/launcher/", "Ledger")["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:*:*:table/*"}


def _mutate_condition(t):
    t["Conditions"]["WebhookUrlEnabled"] = {"Fn::Equals": [{"Ref": "EnableContro1WebhookUrl"}, "yes"]}


def _mutate_event_pattern(t):
    r = _of_type(t, "AWS::Events::Rule", lambda r: "EventPattern" in r["Properties"])
    r["Properties"]["EventPattern"]["detail"]["eventName"].pop()


def _mutate_architecture(t):
    _of_type(t, "AWS::Lambda::Function")["Properties"]["Architectures"] = ["x86_64"]


def _mutate_visibility(t):
    _of_type(t, "AWS::SQS::Queue", lambda r: "RedrivePolicy" in r["Properties"])["Properties"]["VisibilityTimeout"] = 30


def _mutate_source_function_condition(t):
    _statement(t, "/launcher/", "GovernedCallsOnAllowedImages").pop("Condition")


SELF_TEST = [
    ("a resource ARN (the launcher's ledger grant widened to every table)", _mutate_ledger_arn),
    ("a condition (WebhookUrlEnabled)", _mutate_condition),
    ("an event pattern (one governed event name dropped)", _mutate_event_pattern),
    ("an architecture (x86_64)", _mutate_architecture),
    ("a visibility timeout (30 s)", _mutate_visibility),
    ("a policy condition (lambda:SourceFunctionArn dropped)", _mutate_source_function_condition),
]


def _mutate_sweep_trust(t):
    st = t["Resources"]["SweepRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    st.pop("Condition")


def _mutate_bus_policy(t):
    t["Resources"]["OrganizationEventBusPolicy"]["Properties"]["Statement"]["Condition"] = {}


def _mutate_forward_target(t):
    t["Resources"]["ForwardGovernedCalls"]["Properties"]["Targets"][0].pop("RoleArn")


ORG_SELF_TEST = [
    ("member", "the sweep role's trust (aws:PrincipalOrgID dropped)", _mutate_sweep_trust),
    ("security", "the bus policy (organization condition dropped)", _mutate_bus_policy),
    ("forwarding", "a forwarding target (its role dropped)", _mutate_forward_target),
]


def main() -> int:
    args = sys.argv[1:]
    self_test = "--self-test" in args
    args = [a for a in args if a != "--self-test"]
    orgs: list[tuple[str, str, str]] = []
    while "--org" in args:
        i = args.index("--org")
        orgs.append(tuple(args[i + 1:i + 4]))  # type: ignore[arg-type]
        args = args[:i] + args[i + 4:]
    if len(args) != 3 or any(len(o) != 3 or o[0] not in ORG_ALLOWED_DIFFERENCES for o in orgs):
        print(__doc__, file=sys.stderr)
        return 2
    sam_raw, cdk_raw = load(args[0]), load(args[1])
    sql = pathlib.Path(args[2]).read_text()
    results = compare(sam_raw, cdk_raw, sql)
    org_raw = {name: (load(sam), load(cdk)) for name, sam, cdk in orgs}
    for name, (osam, ocdk) in org_raw.items():
        results += [(ok, f"{name}: {m}") for ok, m in compare(osam, ocdk, None, ORG_ALLOWED_DIFFERENCES[name])]
    if self_test:
        for what, mutate in SELF_TEST:
            broken = copy.deepcopy(cdk_raw)
            mutate(broken)
            caught = [m for ok, m in compare(sam_raw, broken, sql) if not ok]
            results.append((bool(caught), f"self-test: a CDK copy differing in {what} fails parity"
                            + (f" ({caught[0]})" if caught else " -- NOT CAUGHT")))
        for name, what, mutate in ORG_SELF_TEST:
            if name not in org_raw:
                continue
            osam, ocdk = org_raw[name]
            broken = copy.deepcopy(ocdk)
            mutate(broken)
            caught = [m for ok, m in compare(osam, broken, None, ORG_ALLOWED_DIFFERENCES[name]) if not ok]
            results.append((bool(caught), f"self-test: a {name} CDK copy differing in {what} fails parity"
                            + (f" ({caught[0]})" if caught else " -- NOT CAUGHT")))
    return report(results)


if __name__ == "__main__":
    sys.exit(main())
