"""The governance surface: a canonical JSON of every security-relevant property of a template.

Built from the template after the SAM transform, with intrinsics resolved symbolically
(resolve.py): parameters stay `${Name}`, both branches of a condition stay visible, resources
are keyed by type and by the name they carry (not by logical id), lists whose order does not
matter are sorted, and every IAM statement is listed under the principal or resource it
applies to, whatever the shape it was written in (inline, AWS::IAM::Policy, ManagedPolicy,
RolePolicy, User, Group; Statement as an object or a list).

Sections:
- build: the Transform and each function's code source as written (SAM CodeUri and build
  metadata, CDK asset path), which the expansion drops;
- parameters: type, default, allowed values/pattern, bounds (a default is a deploy value);
- conditions, mappings, rules, outputs (values and exports), template Metadata but the
  parameter interface: as written (normalised);
- identity: principal -> its identity statements (each naming the policy it came from),
  its permissions boundary and, for roles, its trust statements;
- policies: every AWS::IAM::ManagedPolicy and AWS::IAM::Policy document by name, attached
  or not (the deny policy is attached to nothing in the template);
- resource_policies: resource -> statements (bucket, queue, topic, key, table, secret, event
  bus, Lambda permissions);
- resources: every resource of a governed type with all its properties except the policy
  documents above and documentation text, with the resource's Metadata but construct paths
  and build bookkeeping (a SuppressedRules entry shows) (functions with environment, concurrency, URL auth;
  trail and selectors; bucket notification, versioning, lifecycle; queues; mappings; rules
  with state, schedule, pattern and targets; keys; topics; alarms; log groups; ...).
"""

from __future__ import annotations

import json
import pathlib

from .model import build
from .resolve import Resolver

# Properties that carry no security meaning (documentation, build inputs) or that are
# listed in the identity/resource_policies sections instead.
DROPPED = {
    "Description", "AlarmDescription", "Code", "CodeUri", "Metadata",
    "PolicyDocument", "Policies", "AssumeRolePolicyDocument", "KeyPolicy", "ResourcePolicy",
}
METADATA_NOISE = {"aws:cdk:path", "aws:asset:path", "aws:asset:property", "aws:asset:is-bundled",
                  "aws:asset:dockerfile-path", "SamResourceId", "BuildMethod", "BuildProperties", "SamTransformed"}
# Types whose every property is copied into the surface. Any other type is listed by key
# with its properties too: the surface errs on the side of showing a change.
UNORDERED = {"Action", "NotAction", "Resource", "NotResource", "Events", "Architectures", "Layers",
             "AlarmActions", "OKActions", "InsufficientDataActions", "ManagedPolicyArns", "Roles", "Users",
             "Groups", "Queues", "Topics", "FunctionResponseTypes", "Equals", "NotEquals", "StartsWith",
             "NotStartsWith", "EndsWith", "NotEndsWith"}


def canonical(node, key: str | None = None):
    if isinstance(node, dict):
        return {k: canonical(v, k) for k, v in sorted(node.items())}
    if isinstance(node, list):
        items = [canonical(x) for x in node]
        if key in UNORDERED or key == "Statement":
            items = sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
        return items
    return node


def _statements(doc) -> list:
    st = doc.get("Statement", []) if isinstance(doc, dict) else []
    st = st if isinstance(st, list) else [st]
    out = []
    for s in st:
        if isinstance(s, dict):
            s = dict(s)
            for k in ("Action", "NotAction", "Resource", "NotResource"):
                if isinstance(s.get(k), str):
                    s[k] = [s[k]]
            p = s.get("Principal")
            if p == "*":
                s["Principal"] = {"AWS": ["*"]}
            elif isinstance(p, dict):
                s["Principal"] = {k: (v if isinstance(v, list) else [v]) for k, v in p.items()}
        out.append(canonical(s))
    return sorted(out, key=lambda x: json.dumps(x, sort_keys=True))


def _text(v) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))


def resource_key(typ: str, props: dict, name: str) -> str:
    p = props
    short = typ.replace("AWS::", "")
    derived = {
        "AWS::Lambda::Permission": lambda: f"{_text(p.get('FunctionName'))} {_text(p.get('Action'))} to {_text(p.get('Principal'))}"
        + (f" from {_text(p['SourceArn'])}" if "SourceArn" in p else ""),
        "AWS::Lambda::EventSourceMapping": lambda: f"{_text(p.get('EventSourceArn'))} -> {_text(p.get('FunctionName'))}",
        "AWS::Lambda::Url": lambda: f"{_text(p.get('TargetFunctionArn'))} qualifier {_text(p.get('Qualifier', '$LATEST'))}",
        "AWS::Lambda::Alias": lambda: f"{_text(p.get('FunctionName'))} alias {_text(p.get('Name'))}",
        "AWS::Lambda::Version": lambda: f"{_text(p.get('FunctionName'))}",
        "AWS::Lambda::EventInvokeConfig": lambda: f"{_text(p.get('FunctionName'))} qualifier {_text(p.get('Qualifier'))}",
        "AWS::SQS::QueuePolicy": lambda: _text(sorted(map(_text, p.get("Queues", [])))),
        "AWS::SNS::TopicPolicy": lambda: _text(sorted(map(_text, p.get("Topics", [])))),
        "AWS::S3::BucketPolicy": lambda: _text(p.get("Bucket")),
        "AWS::SNS::Subscription": lambda: f"{_text(p.get('TopicArn'))} -> {_text(p.get('Protocol'))} {_text(p.get('Endpoint'))}",
        "AWS::IAM::Policy": lambda: f"{name} on {_text(sorted(map(_text, p.get('Roles', []) + p.get('Users', []) + p.get('Groups', []))))}",
    }.get(typ)
    return f"{short} {derived() if derived else name}"


REPO = pathlib.Path(__file__).resolve().parent.parent.parent


def _repo_relative(path: str) -> str:
    """The CDK writes absolute asset paths: relative to the repository, so that every
    checkout gives the same surface."""
    p = pathlib.Path(path)
    try:
        return "<repo>/" + str(p.resolve().relative_to(REPO)) if p.is_absolute() else path
    except ValueError:
        return path


def build_inputs(raw: dict) -> dict:
    """What the template as written says about building and transforming it: its Transform
    (a macro rewrites the template at deploy time) and, per function, the code it is built
    from (SAM's CodeUri and build metadata; the CDK's asset path). The SAM transform and the
    CDK asset hash do not carry these into the expanded template."""
    out: dict = {}
    if "Transform" in raw:
        out["Transform"] = raw["Transform"]
    r = Resolver(raw, symbolic=True)
    for lid, res in raw.get("Resources", {}).items():
        if res.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            continue
        props = res.get("Properties", {})
        meta = res.get("Metadata", {})
        entry = {k: props[k] for k in ("CodeUri", "Handler", "Runtime", "ImageUri", "InlineCode", "Layers") if k in props}
        entry.update({k: meta[k] for k in ("BuildMethod", "BuildProperties", "aws:asset:path", "aws:asset:property") if k in meta})
        if isinstance(entry.get("aws:asset:path"), str):
            entry["aws:asset:path"] = _repo_relative(entry["aws:asset:path"])
        if isinstance(props.get("Code"), dict) and "ZipFile" in props["Code"]:
            entry["ZipFile"] = props["Code"]["ZipFile"]
        try:
            name = r.value(props.get("FunctionName", "{" + lid + "}"))
        except Exception:  # noqa: BLE001 - only a key
            name = "{" + lid + "}"
        out[f"function {name if isinstance(name, str) else lid}"] = canonical(json.loads(json.dumps(entry)))
    return out


def surface(template: dict, raw: dict | None = None) -> dict:
    m = build(template, symbolic=True)
    out: dict = {"parameters": {}, "conditions": {}, "identity": {}, "policies": {}, "resource_policies": {}, "resources": {},
                 "build": build_inputs(raw if raw is not None else template)}
    for name, p in sorted(template.get("Parameters", {}).items()):
        if name == "BootstrapVersion":
            continue
        kept = {k: v for k, v in p.items() if k not in ("Description", "ConstraintDescription")}
        out["parameters"][name] = canonical(json.loads(json.dumps(kept), parse_int=str, parse_float=str))
    out["conditions"] = canonical({k: v for k, v in template.get("Conditions", {}).items() if k != "CDKMetadataAvailable"})
    # Mappings feed FindInMap (alarm periods); Rules assert on parameters at deploy time.
    out["mappings"] = canonical(json.loads(json.dumps(template.get("Mappings", {})), parse_int=str, parse_float=str))
    out["rules"] = canonical(template.get("Rules", {}))
    out["outputs"] = canonical(m.r.value({k: {a: v[a] for a in ("Value", "Export", "Condition") if a in v}
                                          for k, v in template.get("Outputs", {}).items()}))
    top = {k: v for k, v in (template.get("Metadata") or {}).items() if k != "AWS::CloudFormation::Interface"}
    if top:
        out["template_metadata"] = canonical(top)
    for arn, pr in sorted(m.principals.items()):
        entry: dict = {"statements": []}
        for src, doc in pr.identity:
            for st in _statements(doc):
                entry["statements"].append({"from": src, **st})
        entry["statements"].sort(key=lambda x: json.dumps(x, sort_keys=True))
        if pr.boundary:
            entry["boundary"] = {"from": pr.boundary[0], "statements": _statements(pr.boundary[1])}
        if pr.trust is not None:
            entry["trust"] = _statements(pr.trust)
        out["identity"][pr.label] = entry
    # Every policy document by itself as well, attached or not (the stack's deny policy is
    # attached to no principal of the template).
    for lid, x in m.resources.items():
        if x["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            key = resource_key(x["Type"], x["Properties"], x["name"])
            out["policies"][key] = _statements(x["Properties"].get("PolicyDocument", {}))
    out["policies"] = dict(sorted(out["policies"].items()))
    for rp in m.resource_policies:
        key = rp.label
        n = 2
        while key in out["resource_policies"] and out["resource_policies"][key] != _statements(rp.doc):
            key = f"{rp.label} #{n}"
            n += 1
        out["resource_policies"].setdefault(key, [])
        for st in _statements(rp.doc):
            if st not in out["resource_policies"][key]:
                out["resource_policies"][key].append(st)
        out["resource_policies"][key].sort(key=lambda x: json.dumps(x, sort_keys=True))
    for lid, x in m.resources.items():
        typ = x["Type"]
        if typ in ("AWS::CDK::Metadata",):
            continue
        raw = template["Resources"][lid]
        props = {k: v for k, v in x["Properties"].items() if k not in DROPPED}
        if typ == "AWS::Lambda::Function" and "Tags" in props:
            props["Tags"] = [t for t in props["Tags"] if not (isinstance(t, dict) and t.get("Key") == "lambda:createdBy")]
        for attr in ("Condition", "DeletionPolicy", "UpdateReplacePolicy"):
            if attr in raw:
                props[attr] = raw[attr]
        # Metadata can suppress checks (cfn-guard's SuppressedRules, cfn-lint, cdk-nag): kept,
        # but for construct paths and build/asset bookkeeping.
        meta = {k: v for k, v in (raw.get("Metadata") or {}).items() if k not in METADATA_NOISE}
        if meta:
            props["Metadata"] = meta
        key = resource_key(typ, x["Properties"], x["name"])
        base, n = key, 2
        while key in out["resources"]:
            key = f"{base} #{n}"
            n += 1
        out["resources"][key] = canonical(props)
    out["resources"] = dict(sorted(out["resources"].items()))
    out["resource_policies"] = dict(sorted(out["resource_policies"].items()))
    return out


def dumps(s: dict) -> str:
    return json.dumps(s, indent=1, sort_keys=True) + "\n"
