#!/usr/bin/env python3
"""Writes the deny policy, the permissions boundary and the SCP from the stack's own deny policy.

The stack's `AWS::IAM::ManagedPolicy` that denies `lambda:RunMicrovm` (found by what it
does, not by its logical id) is the single source. Its intrinsic functions are resolved with
the values given here, the same parameters the stack takes, so the three artefacts cannot
drift from the template:

  deny-direct-microvm-access.json           identity policy for one account (attach to roles)
  deny-direct-microvm-access-boundary.json  permissions boundary: allow "*" minus the denies
                                            (create it as the policy <prefix>-boundary)
  scp-deny-direct-microvm-access-N.json     the denies for an organization, minified and
                                            packed into as few SCPs as fit the 5,120
                                            character limit (attach every one of them)
  stack-policy.json                         the governance stacks' stack policy
  agent-invoke-launcher.json                an agent role's grant to call the launcher's
                                            Function URL (and only through it)

Every exempt role is named by its exact ARN (no wildcard in its path or name: a pattern is
claimable by creating a role that matches it). Each artefact is checked against its limit
(managed policy 6,144 characters without whitespace, SCP 5,120 as stored, at most 4 SCPs);
an artefact over it is an error that names it and what to drop.

The deny policy may reference parameters, pseudo parameters and conditions only: a
reference to a resource (GetAtt, Ref of a resource) is an error, because an SCP cannot know it.

Usage:
  generate.py --template infra/sam/template.yaml --out DIR \
      --account 111122223333 --region us-east-1 --name-prefix microvm-gov \
      --pipeline-role-arn ARN --deployment-role-arn ARN --break-glass-role-arn ARN \
      --allowed-image-arns ARN[,ARN...] --allowed-execution-role-arns ARN[,ARN...] \
      [--allowed-network-connector-arns ...] [--existing-trail-bucket-name NAME] \
      [--sweep-role-name NAME] [--partition aws]
  generate.py --example --out DIR        the committed examples (placeholder values)
  generate.py --example --check DIR      exits 1 when DIR's files differ from a fresh run

For an organization-wide SCP give --account '*' --region '*' and role ARNs with '*' for the
account (ArnNotLike matches them in every account); --sweep-role-name exempts the member
stacks' sweep role (arn:...:iam::*:role/NAME) from the Suspend/Terminate deny for
cross-account remediation, and protects that name like the other exempt roles.
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
    "pipeline_role_arn": "arn:aws:iam::111122223333:role/pipeline/microvm-gov-pipeline",
    "deployment_role_arn": "arn:aws:iam::111122223333:role/cfn-exec/microvm-gov-deployer",
    "break_glass_role_arn": "arn:aws:iam::111122223333:role/break-glass/security-break-glass",
    "allowed_image_arns": "arn:aws:lambda:us-east-1:111122223333:microvm-image:agent-sandbox",
    "allowed_execution_role_arns": "arn:aws:iam::111122223333:role/agent-exec/sandbox",
    "allowed_network_connector_arns": "arn:aws:lambda:*:aws:network-connector:*",
    "existing_trail_bucket_name": "",
    "sweep_role_name": "",
}
# The SCP applies to every account of an organization: account and region are wildcards, and
# the member stacks' sweep role remediates across accounts.
EXAMPLE_SCP = {
    **EXAMPLE,
    "account": "*",
    "region": "*",
    "pipeline_role_arn": "arn:aws:iam::*:role/pipeline/microvm-gov-pipeline",
    "deployment_role_arn": "arn:aws:iam::*:role/cfn-exec/microvm-gov-deployer",
    "break_glass_role_arn": "arn:aws:iam::*:role/break-glass/security-break-glass",
    "allowed_execution_role_arns": "arn:aws:iam::*:role/agent-exec/sandbox",
    "sweep_role_name": "microvm-gov-sweep",
}
# Options with a default (the others are required unless --example).
OPTIONAL = ("partition", "existing_trail_bucket_name", "allowed_network_connector_arns", "sweep_role_name")
# An organization attaches at most 5 SCPs to a target, FullAWSAccess being one of them.
SCP_MAX_FILES = 4


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


def find_deny_policies(template: dict) -> list[tuple[str, dict]]:
    """The deny policy first, then every other managed policy of the stack made of Deny
    statements only (what one policy cannot hold under IAM's size limit)."""
    first = find_deny_policy(template)
    rest = []
    for lid, r in template.get("Resources", {}).items():
        if r.get("Type") != "AWS::IAM::ManagedPolicy" or lid == first[0]:
            continue
        doc = r.get("Properties", {}).get("PolicyDocument", {})
        sts = statements_of(doc)
        if sts and all(isinstance(st, dict) and st.get("Effect") == "Deny" for st in sts):
            rest.append((lid, doc))
    return [first, *rest]


def artefact_name(template: dict, lid: str) -> str:
    """deny-direct-microvm-access.json for the first, else <ManagedPolicyName minus prefix>.json."""
    name = template["Resources"][lid].get("Properties", {}).get("ManagedPolicyName")
    text = name.get("Fn::Sub") if isinstance(name, dict) else name
    if not isinstance(text, str) or not text.startswith("${NamePrefix}-"):
        raise GenerateError(f"{lid}: ManagedPolicyName must be !Sub \"${{NamePrefix}}-<name>\"")
    return text[len("${NamePrefix}-"):] + ".json"


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


def split_arns(text: str) -> list[str]:
    return [a.strip() for a in text.split(",") if a.strip()]


def values_from(args: dict) -> dict:
    return {
        "AWS::AccountId": args["account"],
        "AWS::Region": args["region"],
        "AWS::Partition": args["partition"],
        "NamePrefix": args["name_prefix"],
        "PipelineRoleArn": args["pipeline_role_arn"],
        "DeploymentRoleArn": args["deployment_role_arn"],
        "BreakGlassRoleArn": args["break_glass_role_arn"],
        "AllowedImageArns": split_arns(args["allowed_image_arns"]),
        "AllowedExecutionRoleArns": split_arns(args["allowed_execution_role_arns"]),
        "AllowedNetworkConnectorArns": split_arns(args["allowed_network_connector_arns"]),
        "ExistingTrailBucketName": args["existing_trail_bucket_name"],
        "SweepRoleName": args.get("sweep_role_name") or "",
    }


EXACT_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}|\*):role/[A-Za-z0-9+=,.@_/-]+$")


def check_exempt_roles(args: dict) -> None:
    """Exemptions name roles by exact ARN: a wildcard in the name or path (such as
    `stacksets-exec-*`) is claimable by anyone who may create a role of a matching name. The
    account may be `*` (one SCP for every account)."""
    named = {
        "--pipeline-role-arn": [args["pipeline_role_arn"]],
        "--deployment-role-arn": [args["deployment_role_arn"]],
        "--break-glass-role-arn": [args["break_glass_role_arn"]],
        "--allowed-execution-role-arns": split_arns(args["allowed_execution_role_arns"]),
    }
    for option, arns in named.items():
        for arn in arns:
            if not EXACT_ROLE.match(arn):
                raise GenerateError(
                    f"{option} {arn!r}: give the exact ARN of one role (path and name without * or ?; "
                    "the account may be *): a pattern is claimable by creating a role that matches it")
    name = args.get("sweep_role_name") or ""
    if name and not re.fullmatch(r"[A-Za-z0-9+=,.@_-]{1,64}", name):
        raise GenerateError(f"--sweep-role-name {name!r}: a role name without wildcards")
    if not split_arns(args["allowed_execution_role_arns"]):
        raise GenerateError("--allowed-execution-role-arns: give at least one role ARN")


def tidy(node):
    """Drops what resolves to nothing (the exemption of an empty SweepRoleName, `role/`) and
    repeated list entries (two created secrets share one pattern)."""
    if isinstance(node, dict):
        return {k: tidy(v) for k, v in node.items()}
    if isinstance(node, list):
        out = []
        for x in node:
            x = tidy(x)
            if isinstance(x, str) and x.endswith(":role/"):
                continue
            if x not in out:
                out.append(x)
        return out[0] if len(out) == 1 and all(isinstance(v, str) for v in node) and len(node) > 1 else out
    return node


def resolved_denies(template: dict, args: dict) -> list[tuple[str, dict]]:
    """(artefact file name, resolved document) of every deny policy of the stack."""
    check_exempt_roles(args)
    r = Resolver(template, values_from(args))
    return [(artefact_name(template, lid), tidy(r.resolve(copy.deepcopy(doc)))) for lid, doc in find_deny_policies(template)]


def resolved_deny(template: dict, args: dict) -> dict:
    """Every deny statement of the stack, in one document (the SCP's source)."""
    docs = resolved_denies(template, args)
    return {"Version": "2012-10-17", "Statement": [st for _, d in docs for st in statements_of(d)]}


# What a role under the boundary may still do on the governance resources: read them, and call
# the launcher through its Function URL (a direct Invoke is denied by its own statement).
BOUNDARY_READS = [
    "lambda:InvokeFunctionUrl", "lambda:InvokeFunction", "lambda:Get*", "lambda:List*", "iam:Get*", "iam:List*",
    "s3:GetObject*", "s3:GetBucket*", "s3:ListBucket*", "dynamodb:Describe*", "dynamodb:Get*", "dynamodb:BatchGet*",
    "dynamodb:Query", "logs:Describe*", "logs:Get*", "logs:FilterLogEvents", "logs:StartQuery",
    "cloudtrail:Describe*", "cloudtrail:Get*", "cloudformation:Describe*", "cloudformation:Get*", "cloudformation:List*",
]


def boundary(deny: dict, args: dict) -> dict:
    """Allow "*" minus the denies, folded to fit one managed policy.

    The boundary goes on roles and users others create (the deny requires it on every one),
    never on the deployment, pipeline or break-glass role (nobody but the pipeline may change
    those): so their exemptions are dropped, and every statement left that denies changes to
    named resources without any other condition becomes one deny of everything but reads on
    all of those resources. The launcher and detector role paths keep their exemptions (their
    own grants are what limits them there), so the boundary never denies their calls."""
    exempt = {args["deployment_role_arn"], args["pipeline_role_arn"], args["break_glass_role_arn"]}
    governance_paths = {a for st in statements_of(deny) for a in _principal_exemptions(st) if a not in exempt}
    folded_resources: list[str] = []
    kept: list[dict] = []
    for st in statements_of(deny):
        st = copy.deepcopy(st)
        cond = st.get("Condition", {})
        arns = _principal_exemptions(st)
        if arns and set(arns) <= exempt:
            for op in list(cond):
                cond[op].pop("aws:PrincipalArn", None)
                if not cond[op]:
                    del cond[op]
            if not cond:
                st.pop("Condition", None)
        resources = st.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if "Condition" not in st and "Action" in st and resources and "*" not in resources:
            folded_resources.extend(r for r in resources if r not in folded_resources)
            continue
        kept.append(st)
    # A statement left that only repeats the fold for the same exempt paths adds nothing.
    paths = sorted(governance_paths)
    kept = [st for st in kept if not _subsumed(st, folded_resources, paths)]
    folded = {
        "Sid": "OnlyReadsOnTheGovernanceResources",
        "Effect": "Deny",
        "NotAction": BOUNDARY_READS,
        "Resource": folded_resources,
        "Condition": {"ArnNotLike": {"aws:PrincipalArn": paths}},
    }
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "BoundaryAllowsWhatTheIdentityPoliciesGrant", "Effect": "Allow", "Action": "*", "Resource": "*"},
            folded,
            *kept,
        ],
    }


def _subsumed(st: dict, folded_resources: list[str], paths: list[str]) -> bool:
    cond = st.get("Condition", {})
    if list(cond) != ["ArnNotLike"] or list(cond["ArnNotLike"]) != ["aws:PrincipalArn"]:
        return False
    if sorted(_principal_exemptions(st)) != paths or "Action" not in st:
        return False
    resources = st.get("Resource", [])
    resources = [resources] if isinstance(resources, str) else resources
    actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
    reads = [a.lower() for a in BOUNDARY_READS]
    return all(r in folded_resources for r in resources) and not any(a.lower() in reads for a in actions)


def _principal_exemptions(st: dict) -> list[str]:
    v = st.get("Condition", {}).get("ArnNotLike", {}).get("aws:PrincipalArn", [])
    return [v] if isinstance(v, str) else list(v)


def stack_policy() -> dict:
    """The governance stacks' stack policy: even the pipeline's updates may not replace or
    delete what holds state or evidence (tables, keys, the trail and its bucket, the secrets,
    the log groups, the deny policy); every other update goes through."""
    return {
        "Statement": [
            {"Sid": "UpdatesGoThrough", "Effect": "Allow", "Principal": "*", "Action": "Update:*", "Resource": "*"},
            {
                "Sid": "StateAndEvidenceAreNeverReplacedOrDeleted",
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["Update:Replace", "Update:Delete"],
                "Resource": "*",
                "Condition": {"StringEquals": {"ResourceType": [
                    "AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::S3::Bucket", "AWS::S3::BucketPolicy",
                    "AWS::CloudTrail::Trail", "AWS::SecretsManager::Secret", "AWS::Logs::LogGroup",
                    "AWS::IAM::ManagedPolicy",
                ]}},
            },
        ]
    }


def agent_policy(args: dict) -> dict:
    """What an agent's role needs to call the launcher: its Function URL (AWS_IAM) on the alias
    live, and the InvokeFunction that Function URLs require since October 2025, only through
    the URL (a direct Invoke carries no lambda:InvokedViaFunctionUrl)."""
    fn = f"arn:{args['partition']}:lambda:{args['region']}:{args['account']}:function:{args['name_prefix']}-launcher:live"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "CallTheLauncherUrl", "Effect": "Allow", "Action": "lambda:InvokeFunctionUrl", "Resource": fn,
             "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}},
            {"Sid": "InvokeOnlyThroughTheUrl", "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": fn,
             "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}},
        ],
    }


def minified(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"))


def split_scp(deny: dict, args: dict | None = None) -> list[dict]:
    """Packs the statements, in order, into as few SCPs as fit the character limit."""
    docs: list[dict] = []
    for st in statements_of(deny):
        if docs and len(minified({**docs[-1], "Statement": docs[-1]["Statement"] + [st]})) <= SCP_MAX_CHARS:
            docs[-1]["Statement"].append(st)
            continue
        doc = {"Version": "2012-10-17", "Statement": [st]}
        if len(minified(doc)) > SCP_MAX_CHARS:
            advice = f": {what_to_drop(args)}" if args else ""
            raise GenerateError(f"scp-deny-direct-microvm-access: statement {st.get('Sid')} alone exceeds the SCP limit of {SCP_MAX_CHARS} characters{advice}")
        docs.append(doc)
    return docs


def managed_policy_size(doc: dict) -> int:
    """IAM counts a managed policy's characters without whitespace."""
    return len(re.sub(r"\s", "", json.dumps(doc)))


def what_to_drop(args: dict) -> str:
    images = split_arns(args["allowed_image_arns"])
    roles = split_arns(args["allowed_execution_role_arns"])
    connectors = split_arns(args["allowed_network_connector_arns"])
    return (f"drop allowed images ({len(images)} given, each about {2 * len(images[0]) + 6 if images else 0} characters), "
            f"allowed execution roles ({len(roles)} given) or network connectors ({len(connectors)} given), "
            "or name them with fewer, shorter ARNs")


def check_sizes(files: dict[str, str], args: dict, scp_args: dict) -> None:
    """Every artefact within its documented limit: a managed policy (the deny policy, the
    boundary) 6,144 characters without whitespace, an SCP 5,120 characters as stored (the
    generator stores it minified), at most SCP_MAX_FILES SCPs."""
    for name, text in files.items():
        doc = json.loads(text)
        if name.startswith("scp-"):
            size, limit, kind, a = len(text.strip()), SCP_MAX_CHARS, "SCP", scp_args
        elif name.startswith("deny-"):
            size, limit, kind, a = managed_policy_size(doc), MANAGED_POLICY_MAX_CHARS, "managed policy", args
        else:
            continue
        if size > limit:
            raise GenerateError(f"{name}: {size} characters, over the {kind} limit of {limit}: {what_to_drop(a)}")
    scps = [n for n in files if n.startswith("scp-")]
    if len(scps) > SCP_MAX_FILES:
        raise GenerateError(
            f"the SCP needs {len(scps)} files, more than the {SCP_MAX_FILES} an organization can attach to one target "
            f"beside FullAWSAccess: {what_to_drop(scp_args)}")


def artefacts(template: dict, args: dict, scp_args: dict) -> dict[str, str]:
    denies = resolved_denies(template, args)
    out = {name: json.dumps(doc, indent=2) + "\n" for name, doc in denies}
    everything = {"Version": "2012-10-17", "Statement": [st for _, d in denies for st in statements_of(d)]}
    out["deny-direct-microvm-access-boundary.json"] = json.dumps(boundary(everything, args), indent=2) + "\n"
    out["stack-policy.json"] = json.dumps(stack_policy(), indent=2) + "\n"
    out["agent-invoke-launcher.json"] = json.dumps(agent_policy(args), indent=2) + "\n"
    for i, doc in enumerate(split_scp(resolved_deny(template, scp_args), scp_args), 1):
        out[f"scp-deny-direct-microvm-access-{i}.json"] = minified(doc) + "\n"
    check_sizes(out, args, scp_args)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=str(pathlib.Path(__file__).resolve().parents[1] / "sam" / "template.yaml"))
    ap.add_argument("--out")
    ap.add_argument("--check", metavar="DIR")
    ap.add_argument("--example", action="store_true")
    for k, v in EXAMPLE.items():
        ap.add_argument("--" + k.replace("_", "-"), default=v if k in OPTIONAL else None)
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
        present = {p.name for p in d.glob("*.json") if p.name.startswith(("deny-", "scp-deny-direct-", "stack-policy", "agent-invoke-"))}
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
