#!/usr/bin/env python3
"""Writes the deny policy, the permissions boundary and the SCP from the stack's own deny policy.

The stack's `AWS::IAM::ManagedPolicy` that denies `lambda:RunMicrovm` (found by what it
does, not by its logical id) is the single source. Its intrinsic functions are resolved with
the values given here, the same parameters the stack takes, so the three artefacts cannot
drift from the template:

  deny-direct-microvm-access.json           identity policy for one account (attach to roles)
  deny-direct-microvm-access-boundary.json  permissions boundary: allow "*" minus the denies,
                                            and nobody but the deployer changes boundaries
  scp-deny-direct-microvm-access-N.json     the denies for an organization, minified and
                                            split so that each stays under the 5,120
                                            character SCP limit

The deny policy may reference parameters, pseudo parameters and conditions only: a
reference to a resource (GetAtt, Ref of a resource) is an error, because an SCP cannot know it.

Usage:
  generate.py --template infra/sam/template.yaml --out DIR \
      --account 111122223333 --region us-east-1 --name-prefix microvm-gov \
      --deployment-role-arn ARN --break-glass-role-arn ARN \
      --allowed-image-arns ARN[,ARN...] [--allowed-network-connector-arns ...] \
      [--existing-trail-bucket-name NAME] [--partition aws]
  generate.py --example --out DIR        the committed examples (placeholder values)
  generate.py --example --check DIR      exits 1 when DIR's files differ from a fresh run

For an organization-wide SCP give --account '*' --region '*' and a deployment role ARN
with '*' for the account (ArnNotLike matches it in every account).
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import re
import sys

from cfnlint.decode import decode_str

SCP_MAX_CHARS = 5120
MANAGED_POLICY_MAX_CHARS = 6144  # IAM does not count whitespace
EXAMPLE = {
    "account": "111122223333",
    "region": "us-east-1",
    "partition": "aws",
    "name_prefix": "microvm-gov",
    "deployment_role_arn": "arn:aws:iam::111122223333:role/cfn-exec/microvm-gov-deployer",
    "break_glass_role_arn": "arn:aws:iam::111122223333:role/break-glass/security-break-glass",
    "allowed_image_arns": "arn:aws:lambda:us-east-1:111122223333:microvm-image:agent-sandbox",
    "allowed_network_connector_arns": "arn:aws:lambda:*:aws:network-connector:*",
    "existing_trail_bucket_name": "",
}
# The SCP applies to every account of an organization: account and region are wildcards.
EXAMPLE_SCP = {
    **EXAMPLE,
    "account": "*",
    "region": "*",
    "deployment_role_arn": "arn:aws:iam::*:role/cfn-exec/microvm-gov-deployer",
    "break_glass_role_arn": "arn:aws:iam::*:role/break-glass/security-break-glass",
}


class GenerateError(Exception):
    pass


def load_template(path: pathlib.Path) -> dict:
    template, matches = decode_str(path.read_text())
    if matches or template is None:
        raise GenerateError(f"{path}: cannot be parsed: {[str(m) for m in matches]}")
    return json.loads(json.dumps(template))


def statements_of(doc: dict) -> list:
    st = doc.get("Statement", [])
    return st if isinstance(st, list) else [st]


def actions_of(st: dict) -> list[str]:
    a = st.get("Action", [])
    return [a] if isinstance(a, str) else [x for x in a if isinstance(x, str)]


def find_deny_policy(template: dict) -> tuple[str, dict]:
    """The managed policy whose statements deny lambda:RunMicrovm."""
    found = []
    for lid, r in template.get("Resources", {}).items():
        if r.get("Type") != "AWS::IAM::ManagedPolicy":
            continue
        doc = r.get("Properties", {}).get("PolicyDocument", {})
        for st in statements_of(doc):
            if isinstance(st, dict) and st.get("Effect") == "Deny" and any(
                a.lower() == "lambda:runmicrovm" for a in actions_of(st)
            ):
                found.append((lid, doc))
                break
    if len(found) != 1:
        raise GenerateError(f"expected one managed policy denying lambda:RunMicrovm, found {[f[0] for f in found]}")
    return found[0]


class Resolver:
    """Resolves the intrinsic functions a policy document may use, from parameter values."""

    def __init__(self, template: dict, values: dict):
        self.t = template
        self.values = values
        self.conditions: dict[str, bool] = {}

    def param(self, name: str):
        if name in self.values:
            return self.values[name]
        p = self.t.get("Parameters", {}).get(name)
        if p is None:
            raise GenerateError(f"reference to {name}: not a parameter (an SCP cannot name a stack resource)")
        if "Default" not in p:
            raise GenerateError(f"parameter {name} has no default: give its value")
        d = p["Default"]
        return [x.strip() for x in str(d).split(",")] if p.get("Type") == "CommaDelimitedList" else str(d)

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            expr = self.t.get("Conditions", {}).get(name)
            if expr is None:
                raise GenerateError(f"unknown condition {name}")
            self.conditions[name] = bool(self.resolve(expr))
        return self.conditions[name]

    def sub(self, text: str, local: dict) -> str:
        def repl(m: re.Match) -> str:
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in local:
                v = self.resolve(local[key])
            elif "." in key:
                raise GenerateError(f"${{{key}}} names a resource attribute (an SCP cannot know it)")
            else:
                v = self.param(key)
            if not isinstance(v, str):
                raise GenerateError(f"${{{key}}} is a list inside Fn::Sub")
            return v

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    def resolve(self, node):
        if isinstance(node, list):
            out = []
            for x in node:
                v = self.resolve(x)
                if v is not _NO_VALUE:
                    out.append(v)
            return out
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (k, v), = node.items()
            if k == "Ref":
                return _NO_VALUE if v == "AWS::NoValue" else self.param(v)
            if k == "Fn::Sub":
                if isinstance(v, str):
                    return self.sub(v, {})
                return self.sub(v[0], v[1])
            if k == "Fn::Join":
                parts = self.resolve(v[1])
                return v[0].join(self.flatten(parts))
            if k == "Fn::Split":
                return self.resolve(v[1]).split(v[0])
            if k == "Fn::Select":
                return self.resolve(v[1])[int(self.resolve(v[0]))]
            if k == "Fn::If":
                return self.resolve(v[1] if self.condition(v[0]) else v[2])
            if k == "Fn::Equals":
                a, b = self.resolve(v[0]), self.resolve(v[1])
                return a == b
            if k == "Fn::Not":
                return not self.resolve(v[0])
            if k == "Fn::And":
                return all(self.resolve(x) for x in v)
            if k == "Fn::Or":
                return any(self.resolve(x) for x in v)
            if k == "Condition":
                return self.condition(v)
            if k.startswith("Fn::") or k == "Fn::GetAtt":
                raise GenerateError(f"{k} cannot be resolved from parameters")
        out = {}
        for k, v in node.items():
            r = self.resolve(v)
            if r is not _NO_VALUE:
                out[k] = r
        return out

    @staticmethod
    def flatten(parts) -> list[str]:
        flat: list[str] = []
        for p in parts:
            flat.extend(p if isinstance(p, list) else [p])
        return flat


_NO_VALUE = object()


def values_from(args: dict) -> dict:
    return {
        "AWS::AccountId": args["account"],
        "AWS::Region": args["region"],
        "AWS::Partition": args["partition"],
        "NamePrefix": args["name_prefix"],
        "DeploymentRoleArn": args["deployment_role_arn"],
        "BreakGlassRoleArn": args["break_glass_role_arn"],
        "AllowedImageArns": [a.strip() for a in args["allowed_image_arns"].split(",") if a.strip()],
        "AllowedNetworkConnectorArns": [a.strip() for a in args["allowed_network_connector_arns"].split(",") if a.strip()],
        "ExistingTrailBucketName": args["existing_trail_bucket_name"],
    }


def resolved_deny(template: dict, args: dict) -> dict:
    _, doc = find_deny_policy(template)
    return Resolver(template, values_from(args)).resolve(copy.deepcopy(doc))


def boundary(deny: dict, args: dict) -> dict:
    exempt = [args["deployment_role_arn"], args["break_glass_role_arn"]]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "BoundaryAllowsWhatTheIdentityPoliciesGrant", "Effect": "Allow", "Action": "*", "Resource": "*"},
            *statements_of(deny),
            {
                "Sid": "OnlyTheDeployerChangesPermissionsBoundaries",
                "Effect": "Deny",
                "Action": [
                    "iam:PutRolePermissionsBoundary",
                    "iam:DeleteRolePermissionsBoundary",
                    "iam:PutUserPermissionsBoundary",
                    "iam:DeleteUserPermissionsBoundary",
                ],
                "Resource": "*",
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": exempt}},
            },
        ],
    }


def minified(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"))


def split_scp(deny: dict) -> list[dict]:
    """Packs the statements, in order, into as few SCPs as fit the character limit."""
    docs: list[dict] = []
    for st in statements_of(deny):
        if docs and len(minified({**docs[-1], "Statement": docs[-1]["Statement"] + [st]})) <= SCP_MAX_CHARS:
            docs[-1]["Statement"].append(st)
            continue
        doc = {"Version": "2012-10-17", "Statement": [st]}
        if len(minified(doc)) > SCP_MAX_CHARS:
            raise GenerateError(f"statement {st.get('Sid')} alone exceeds the SCP limit of {SCP_MAX_CHARS} characters")
        docs.append(doc)
    return docs


def artefacts(template: dict, args: dict, scp_args: dict) -> dict[str, str]:
    deny = resolved_deny(template, args)
    size = len(minified(deny))
    if size > MANAGED_POLICY_MAX_CHARS:
        raise GenerateError(f"the deny policy is {size} characters, over the managed-policy limit {MANAGED_POLICY_MAX_CHARS}")
    out = {
        "deny-direct-microvm-access.json": json.dumps(deny, indent=2) + "\n",
        "deny-direct-microvm-access-boundary.json": json.dumps(boundary(deny, args), indent=2) + "\n",
    }
    for i, doc in enumerate(split_scp(resolved_deny(template, scp_args)), 1):
        out[f"scp-deny-direct-microvm-access-{i}.json"] = minified(doc) + "\n"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=str(pathlib.Path(__file__).resolve().parents[1] / "sam" / "template.yaml"))
    ap.add_argument("--out")
    ap.add_argument("--check", metavar="DIR")
    ap.add_argument("--example", action="store_true")
    for k, v in EXAMPLE.items():
        ap.add_argument("--" + k.replace("_", "-"), default=None if k not in ("partition", "existing_trail_bucket_name", "allowed_network_connector_arns") else v)
    a = ap.parse_args()
    try:
        template = load_template(pathlib.Path(a.template))
        if a.example:
            args, scp_args = EXAMPLE, EXAMPLE_SCP
        else:
            args = {k: getattr(a, k) for k in EXAMPLE}
            missing = [k for k, v in args.items() if v is None]
            if missing:
                raise GenerateError("missing: " + ", ".join("--" + m.replace("_", "-") for m in missing))
            scp_args = args
        files = artefacts(template, args, scp_args)
    except GenerateError as e:
        print(f"generate.py: {e}", file=sys.stderr)
        return 2

    if a.check:
        d = pathlib.Path(a.check)
        failed = stale_count = 0
        present = {p.name for p in d.glob("*.json") if p.name.startswith(("deny-direct-", "scp-deny-direct-"))}
        for name, text in files.items():
            path = d / name
            if not path.exists() or path.read_text() != text:
                failed += 1
                print(f"FAIL {path}: differs from the stack's deny policy (run infra/policies/generate.py --example --out {d})")
            else:
                print(f"ok   {path} is generated from the stack's deny policy ({len(text.strip())} characters)")
        for stale in sorted(present - set(files)):
            stale_count += 1
            print(f"FAIL {d / stale}: not generated any more (delete it)")
        print(f"{len(files) - failed} passed, {failed + stale_count} failed")
        failed += stale_count
        return 1 if failed else 0

    if not a.out:
        print("generate.py: give --out DIR or --check DIR", file=sys.stderr)
        return 2
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
        print(f"wrote {out / name} ({len(text.strip())} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
