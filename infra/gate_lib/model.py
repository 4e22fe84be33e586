"""Loading a template and collecting, with intrinsics resolved, every principal and policy in it.

Principals: each AWS::IAM::Role, User and Group, with every identity policy that reaches it
whatever its shape (inline `Policies`, `ManagedPolicyArns`, AWS::IAM::Policy, ManagedPolicy,
RolePolicy, UserPolicy, GroupPolicy attached by name or reference, a user's groups), its
permissions boundary and, for roles, the trust policy. A policy attached to a role the template
does not create (a name or ARN given as text) makes that role a principal too.

Resource policies: bucket, queue, topic, key, table, secret, event bus, Lambda permissions
(as the statement Lambda stores) and Function URLs with AuthType NONE.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
from dataclasses import dataclass, field

from .resolve import Resolver, canon_id

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # parity.py: the shared loader and SAM expansion


def load(path: str) -> dict:
    from parity import load as parity_load

    return parity_load(path)


def expand(t: dict) -> dict:
    """Plain CloudFormation: the SAM transform applied offline when the template has one."""
    if "Transform" not in t:
        return t
    from parity import expand_sam

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return expand_sam(t)


# AWS-managed policies whose content the gate knows; any other AWS-managed policy counts as
# allowing everything (fail closed).
KNOWN_AWS_MANAGED = {
    "AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}],
    },
}
EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass
class Principal:
    arn: str
    kind: str  # role | user | group | external-role | external-user | external-group
    lid: str | None
    identity: list = field(default_factory=list)  # (name, document)
    boundary: tuple | None = None
    trust: dict | None = None
    path: str = "/"

    @property
    def label(self) -> str:
        return f"{self.kind} {self.arn.split(':', 5)[-1]}"


@dataclass
class ResourcePolicy:
    label: str
    resource_type: str
    arns: list
    doc: dict
    lid: str


@dataclass
class Model:
    template: dict
    r: Resolver
    resources: dict  # lid -> {"Type", "Properties" (resolved), "name", "arn"}
    principals: dict  # arn -> Principal
    resource_policies: list
    errors: list

    def of_type(self, typ: str) -> list[tuple[str, dict]]:
        return [(lid, x) for lid, x in self.resources.items() if x["Type"] == typ]


def _as_list(v) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def normalise_doc(doc) -> dict:
    """A policy document with Statement always a list and every statement a dict."""
    if not isinstance(doc, dict):
        return {"Statement": []}
    out = dict(doc)
    out["Statement"] = [s for s in _as_list(doc.get("Statement")) if isinstance(s, dict)]
    return out


def build(template: dict, overrides: dict | None = None, symbolic: bool = False) -> Model:
    """Concrete (the invariants) or symbolic (the surface): see resolve.py."""
    r = Resolver(template, symbolic=symbolic, overrides=overrides)
    errors: list[str] = []
    resources: dict = {}
    for lid, res in template.get("Resources", {}).items():
        try:
            if not r.resource_present(lid):
                continue
            props = r.value(res.get("Properties", {}))
            resources[lid] = {
                "Type": res.get("Type"),
                "Properties": props if isinstance(props, dict) else {},
                "name": r.name_of(lid),
                "arn": r.attr(lid, "Arn"),
            }
        except Exception as e:  # noqa: BLE001 - reported, the gate fails
            errors.append(f"{res.get('Type')} {lid}: cannot resolve its properties: {e}")
    principals: dict[str, Principal] = {}
    by_name: dict[tuple[str, str], Principal] = {}

    def add(kind: str, lid: str | None, arn: str, name: str, path: str = "/") -> Principal:
        if arn not in principals:
            principals[arn] = Principal(arn=arn, kind=kind, lid=lid, path=path)
        by_name[(kind.replace("external-", ""), name)] = principals[arn]
        return principals[arn]

    for lid, x in resources.items():
        p = x["Properties"]
        kind = {"AWS::IAM::Role": "role", "AWS::IAM::User": "user", "AWS::IAM::Group": "group"}.get(x["Type"])
        if not kind:
            continue
        pr = add(kind, lid, x["arn"], x["name"], p.get("Path", "/") if isinstance(p.get("Path", "/"), str) else "/")
        for pol in _as_list(p.get("Policies")):
            if isinstance(pol, dict):
                pr.identity.append((f"inline policy {pol.get('PolicyName')}", normalise_doc(pol.get("PolicyDocument"))))
        if kind == "role":
            pr.trust = normalise_doc(p.get("AssumeRolePolicyDocument"))

    def find(kind: str, ref) -> Principal | None:
        if not isinstance(ref, str) or not ref:
            return None
        if ref.startswith("arn:"):
            if ref in principals:
                return principals[ref]
            name = ref.rsplit("/", 1)[-1]
        else:
            name = ref
        if (kind, name) in by_name:
            return by_name[(kind, name)]
        arn = ref if ref.startswith("arn:") else f"arn:{r.part}:iam::{r.account}:{kind}/{name}"
        return add(f"external-{kind}", None, arn, name)

    managed_docs: dict[str, tuple[str, dict]] = {}
    for lid, x in resources.items():
        if x["Type"] == "AWS::IAM::ManagedPolicy":
            managed_docs[x["arn"]] = (f"managed policy {x['name']}", normalise_doc(x["Properties"].get("PolicyDocument")))

    def managed(arn) -> tuple[str, dict]:
        if arn in managed_docs:
            return managed_docs[arn]
        if isinstance(arn, str) and ":iam::aws:policy/" in arn:
            name = arn.rsplit("/", 1)[-1]
            return (f"AWS-managed policy {name}", KNOWN_AWS_MANAGED.get(name, EVERYTHING))
        return (f"managed policy {arn} (not in the template: counted as allowing everything)", EVERYTHING)

    for pr in list(principals.values()):
        if pr.lid is None:
            continue
        p = resources[pr.lid]["Properties"]
        for arn in _as_list(p.get("ManagedPolicyArns")):
            pr.identity.append(managed(arn))
        if p.get("PermissionsBoundary"):
            pr.boundary = managed(p["PermissionsBoundary"])
    for lid, x in resources.items():
        t, p = x["Type"], x["Properties"]
        if t in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            what = f"policy {x['name']}" if t == "AWS::IAM::Policy" else managed_docs[x["arn"]][0]
            doc = normalise_doc(p.get("PolicyDocument"))
            for kind, key in (("role", "Roles"), ("user", "Users"), ("group", "Groups")):
                for ref in _as_list(p.get(key)):
                    pr = find(kind, ref)
                    if pr:
                        pr.identity.append((what, doc))
        elif t in ("AWS::IAM::RolePolicy", "AWS::IAM::UserPolicy", "AWS::IAM::GroupPolicy"):
            kind = t.split("::")[2][:-6].lower()
            pr = find(kind, p.get(kind.capitalize() + "Name"))
            if pr:
                pr.identity.append((f"{kind} policy {p.get('PolicyName')}", normalise_doc(p.get("PolicyDocument"))))
        elif t == "AWS::IAM::UserToGroupAddition":
            for u in _as_list(p.get("Users")):
                pu = find("user", u)
                pg = find("group", p.get("GroupName"))
                if pu and pg:
                    pu.identity.extend(pg.identity)
    for pr in list(principals.values()):
        if pr.kind == "user" and pr.lid:
            for g in _as_list(resources[pr.lid]["Properties"].get("Groups")):
                pg = find("group", g)
                if pg:
                    pr.identity.extend(pg.identity)

    return Model(template, r, resources, principals, _resource_policies(r, resources), errors)


def _resource_policies(r: Resolver, resources: dict) -> list[ResourcePolicy]:
    out: list[ResourcePolicy] = []
    by_ref: dict[str, str] = {}
    for lid, x in resources.items():
        by_ref[str(r.attr(lid, None))] = lid
        by_ref[str(x["arn"])] = lid
        by_ref[str(x["name"])] = lid

    def target(ref) -> tuple[str, dict | None]:
        lid = by_ref.get(str(ref))
        return (lid, resources.get(lid)) if lid else (str(ref), None)

    for lid, x in resources.items():
        t, p = x["Type"], x["Properties"]
        if t == "AWS::S3::BucketPolicy":
            tl, tx = target(p.get("Bucket"))
            name = tx["name"] if tx else str(p.get("Bucket"))
            arns = [f"arn:{r.part}:s3:::{name}", f"arn:{r.part}:s3:::{name}/*"]
            out.append(ResourcePolicy(f"bucket {name} policy", "AWS::S3::Bucket", arns, normalise_doc(p.get("PolicyDocument")), lid))
        elif t == "AWS::SQS::QueuePolicy":
            for q in _as_list(p.get("Queues")):
                tl, tx = target(q)
                out.append(ResourcePolicy(f"queue {tx['name'] if tx else q} policy", "AWS::SQS::Queue",
                                          [tx["arn"] if tx else str(q)], normalise_doc(p.get("PolicyDocument")), lid))
        elif t == "AWS::SNS::TopicPolicy":
            for q in _as_list(p.get("Topics")):
                tl, tx = target(q)
                out.append(ResourcePolicy(f"topic {tx['name'] if tx else q} policy", "AWS::SNS::Topic",
                                          [tx["arn"] if tx else str(q)], normalise_doc(p.get("PolicyDocument")), lid))
        elif t == "AWS::KMS::Key":
            out.append(ResourcePolicy(f"key {x['name']} policy", t, [x["arn"]], normalise_doc(p.get("KeyPolicy")), lid))
        elif t == "AWS::DynamoDB::Table" and isinstance(p.get("ResourcePolicy"), dict):
            out.append(ResourcePolicy(f"table {x['name']} policy", t, [x["arn"]],
                                      normalise_doc(p["ResourcePolicy"].get("PolicyDocument")), lid))
        elif t == "AWS::SecretsManager::ResourcePolicy":
            tl, tx = target(p.get("SecretId"))
            out.append(ResourcePolicy(f"secret {tx['name'] if tx else p.get('SecretId')} policy", "AWS::SecretsManager::Secret",
                                      [tx["arn"] if tx else str(p.get("SecretId"))], normalise_doc(p.get("ResourcePolicy")), lid))
        elif t == "AWS::Events::EventBusPolicy":
            st = p.get("Statement") or {k: p[k] for k in ("Action", "Principal", "Condition") if k in p}
            if "Statement" not in p:
                st = {"Effect": "Allow", **st}
            out.append(ResourcePolicy(f"event bus {p.get('EventBusName', 'default')} policy", t, ["*"],
                                      normalise_doc({"Statement": st}), lid))
        elif t == "AWS::Lambda::Permission":
            out.append(_lambda_permission(lid, p, resources, r))
    return out


def _lambda_permission(lid: str, p: dict, resources: dict, r: Resolver) -> ResourcePolicy:
    fn = str(p.get("FunctionName", ""))
    if not fn.startswith("arn:"):
        fn = r._function_arn(fn)
    principal = p.get("Principal", "")
    if principal == "*":
        pblock = "*"
    elif isinstance(principal, str) and principal.endswith(".amazonaws.com"):
        pblock = {"Service": principal}
    else:
        pblock = {"AWS": principal}
    cond: dict = {}
    if p.get("SourceArn"):
        cond.setdefault("ArnLike", {})["aws:SourceArn"] = p["SourceArn"]
    if p.get("SourceAccount"):
        cond.setdefault("StringEquals", {})["aws:SourceAccount"] = p["SourceAccount"]
    if p.get("PrincipalOrgID"):
        cond.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = p["PrincipalOrgID"]
    if p.get("FunctionUrlAuthType"):
        cond.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = p["FunctionUrlAuthType"]
    if str(p.get("InvokedViaFunctionUrl", "")).lower() == "true":
        cond.setdefault("Bool", {})["lambda:InvokedViaFunctionUrl"] = "true"
    st = {"Effect": "Allow", "Principal": pblock, "Action": p.get("Action"), "Resource": fn}
    if cond:
        st["Condition"] = cond
    who = principal if isinstance(principal, str) else json.dumps(principal, sort_keys=True)
    label = f"function {fn.split(':', 6)[-1]} permission {p.get('Action')} to {who}"
    if p.get("SourceArn"):
        label += f" from {p['SourceArn'] if isinstance(p['SourceArn'], str) else json.dumps(p['SourceArn'], sort_keys=True)}"
    return ResourcePolicy(label, "AWS::Lambda::Function", [fn], {"Statement": [st]}, lid)


__all__ = ["load", "expand", "build", "Model", "Principal", "ResourcePolicy", "canon_id"]
