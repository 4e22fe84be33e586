"""The deployed shape of a template, for policy evaluation: resource ARNs and resource policies.

Loads a CloudFormation/SAM template (SAM expanded offline by the SAM translator, so the
permissions SAM adds for schedules and Function URLs are real `AWS::Lambda::Permission`
resources), resolves its intrinsic functions with example parameter values, and gives each
resource the ARN AWS would give it (by type and name property, never by logical id, so the
CDK output works the same). Resource policies are collected per ARN: queue, bucket, table,
key, secret and topic policies, and Lambda permissions turned into the function's policy
statements as Lambda writes them.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "policies"))
from generate import Resolver, _NO_VALUE  # noqa: E402


def load_template(path: pathlib.Path) -> dict:
    from cfnlint.decode import decode_str

    t, matches = decode_str(path.read_text())
    if matches or t is None:
        raise SystemExit(f"{path}: cannot be parsed: {[str(m) for m in matches]}")
    return json.loads(json.dumps(t))


def expand_sam(t: dict) -> dict:
    if "Transform" not in t:
        return t
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform

    t = copy.deepcopy(t)
    for r in t["Resources"].values():
        if r.get("Type") == "AWS::Serverless::Function":
            r["Properties"]["CodeUri"] = "s3://placeholder/code.zip"

    class NoManagedPolicies:
        def load(self) -> dict:
            return {}

    return transform(t, {}, NoManagedPolicies())


class Model(Resolver):
    """Resolves the whole template: parameters from `values`, resources as their ARNs."""

    def __init__(self, template: dict, values: dict):
        super().__init__(template, values)
        self.account = values["AWS::AccountId"]
        self.region = values["AWS::Region"]
        self.partition = values.get("AWS::Partition", "aws")
        self.values.setdefault("AWS::StackName", "microvm-gov")
        self.values.setdefault(
            "AWS::StackId",
            f"arn:{self.partition}:cloudformation:{self.region}:{self.account}:stack/"
            f"{self.values['AWS::StackName']}/00000000-0000-0000-0000-000000000000",
        )
        self.values.setdefault("AWS::URLSuffix", "amazonaws.com")
        self.values.setdefault("AWS::NoValue", _NO_VALUE)
        self._busy: set[str] = set()

    # -- intrinsics over resources
    def resolve(self, node):
        if isinstance(node, dict) and len(node) == 1:
            (k, v), = node.items()
            if k == "Fn::GetAtt":
                lid, attr = (v if isinstance(v, list) else v.split(".", 1))
                return self.attribute(lid, attr)
            if k == "Ref" and v in self.t.get("Resources", {}):
                return self.ref(v)
            if k == "Fn::GetAZs":
                return [f"{self.region}a", f"{self.region}b"]
            if k == "Fn::FindInMap":
                m, top, second = (self.resolve(x) for x in v)
                return self.t["Mappings"][m][str(top)][str(second)]
            if k in ("Fn::Base64", "Fn::ToJsonString"):
                return json.dumps(self.resolve(v))
            if k == "Fn::ImportValue":
                return f"imported-{self.resolve(v)}"
        return super().resolve(node)

    def sub(self, text: str, local: dict) -> str:
        def attr(m: re.Match) -> str:
            lid, a = m.group(1).split(".", 1)
            if lid in self.t.get("Resources", {}):
                v = self.attribute(lid, a)
                return v if isinstance(v, str) else json.dumps(v)
            return m.group(0)

        text = re.sub(r"\$\{([A-Za-z0-9]+\.[A-Za-z0-9.]+)\}", attr, text)
        return super().sub(text, local)

    def param(self, name: str):
        if name in self.t.get("Resources", {}):
            return self.ref(name)
        if name == "AWS::NoValue":
            return _NO_VALUE
        return super().param(name)

    # -- names and ARNs
    def props(self, lid: str) -> dict:
        if lid in self._busy:
            raise SystemExit(f"circular reference through {lid}")
        self._busy.add(lid)
        try:
            p = self.t["Resources"][lid].get("Properties", {})
            keys = ("QueueName", "TopicName", "BucketName", "TableName", "Name", "FunctionName", "RoleName",
                    "Path", "LogGroupName", "ManagedPolicyName", "TrailName", "AliasName", "PolicyName")
            return {k: self.resolve(copy.deepcopy(p[k])) for k in keys if k in p}
        finally:
            self._busy.discard(lid)

    def type_of(self, lid: str) -> str:
        return self.t["Resources"][lid]["Type"]

    def arn(self, lid: str) -> str:
        ty, p, a, r, pt = self.type_of(lid), self.props(lid), self.account, self.region, self.partition
        name = lambda key, default=None: p.get(key) or default or f"{lid}-GENERATED"  # noqa: E731
        if ty == "AWS::SQS::Queue":
            return f"arn:{pt}:sqs:{r}:{a}:{name('QueueName')}"
        if ty == "AWS::SNS::Topic":
            return f"arn:{pt}:sns:{r}:{a}:{name('TopicName')}"
        if ty == "AWS::S3::Bucket":
            return f"arn:{pt}:s3:::{name('BucketName').lower()}"
        if ty == "AWS::DynamoDB::Table":
            return f"arn:{pt}:dynamodb:{r}:{a}:table/{name('TableName')}"
        if ty == "AWS::SecretsManager::Secret":
            return f"arn:{pt}:secretsmanager:{r}:{a}:secret:{name('Name', lid)}-AbCdEf"
        if ty == "AWS::KMS::Key":
            return f"arn:{pt}:kms:{r}:{a}:key/{lid.lower()}-0000"
        if ty == "AWS::IAM::Role":
            return f"arn:{pt}:iam::{a}:role{p.get('Path', '/')}{name('RoleName', 'stack-' + lid + '-GENERATED')}"
        if ty == "AWS::IAM::ManagedPolicy":
            return f"arn:{pt}:iam::{a}:policy{p.get('Path', '/')}{name('ManagedPolicyName')}"
        if ty in ("AWS::Lambda::Function", "AWS::Serverless::Function"):
            return f"arn:{pt}:lambda:{r}:{a}:function:{name('FunctionName')}"
        if ty == "AWS::Lambda::Alias":
            fn = self.resolve(copy.deepcopy(self.t["Resources"][lid]["Properties"]["FunctionName"]))
            fn = fn if fn.startswith("arn:") else f"arn:{pt}:lambda:{r}:{a}:function:{fn}"
            return f"{fn}:{p['Name']}"
        if ty == "AWS::Lambda::Version":
            fn = self.resolve(copy.deepcopy(self.t["Resources"][lid]["Properties"]["FunctionName"]))
            fn = fn if fn.startswith("arn:") else f"arn:{pt}:lambda:{r}:{a}:function:{fn}"
            return f"{fn}:1"
        if ty == "AWS::Logs::LogGroup":
            return f"arn:{pt}:logs:{r}:{a}:log-group:{name('LogGroupName')}:*"
        if ty == "AWS::Events::Rule":
            return f"arn:{pt}:events:{r}:{a}:rule/{name('Name')}"
        if ty == "AWS::CloudTrail::Trail":
            return f"arn:{pt}:cloudtrail:{r}:{a}:trail/{name('TrailName')}"
        if ty == "AWS::SSM::Parameter":
            return f"arn:{pt}:ssm:{r}:{a}:parameter{name('Name')}"
        return f"arn:{pt}:stack-resource:{r}:{a}:{lid}"

    def ref(self, lid: str):
        ty, p = self.type_of(lid), self.props(lid)
        if ty in ("AWS::SNS::Topic", "AWS::SecretsManager::Secret", "AWS::IAM::ManagedPolicy", "AWS::Lambda::Alias",
                  "AWS::Lambda::Version"):
            return self.arn(lid)
        if ty == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{p.get('QueueName', lid)}"
        if ty == "AWS::KMS::Key":
            return f"{lid.lower()}-0000"
        arn = self.arn(lid)
        if ty == "AWS::S3::Bucket":
            return arn.split(":::")[1]
        if ty == "AWS::DynamoDB::Table":
            return arn.split("table/")[1]
        if ty == "AWS::IAM::Role":
            return arn.rsplit("/", 1)[1]
        if ty in ("AWS::Lambda::Function", "AWS::Serverless::Function"):
            return arn.split("function:")[1]
        if ty == "AWS::Logs::LogGroup":
            return p.get("LogGroupName", lid)
        if ty == "AWS::Events::Rule":
            return arn.split("rule/")[1]
        return arn

    def attribute(self, lid: str, attr: str):
        if attr in ("Arn", "RoleArn", "TopicArn", "QueueArn", "KeyArn", "StreamArn") or attr.endswith(".Arn"):
            return self.arn(lid)
        if attr == "QueueName":
            return self.props(lid).get("QueueName", lid)
        if attr == "TopicName":
            return self.props(lid).get("TopicName", lid)
        if attr == "Version":
            return self.arn(lid) + ":1"
        if attr == "FunctionUrl":
            return f"https://{lid.lower()}.lambda-url.{self.region}.on.aws/"
        if attr == "RoleId":
            return f"AROA{lid.upper()[:16]}"
        return f"{self.arn(lid)}#{attr}"

    # -- whole resources
    def resources(self) -> dict[str, dict]:
        out = {}
        for lid, r in self.t["Resources"].items():
            cond = r.get("Condition")
            if cond and not self.condition(cond):
                continue
            out[lid] = {"Type": r["Type"], "Properties": self.resolve(copy.deepcopy(r.get("Properties", {})))}
        return out


def statements_of(doc: dict) -> list:
    st = doc.get("Statement", [])
    return [s for s in (st if isinstance(st, list) else [st]) if isinstance(s, dict)]


class Deployed:
    """Resource ARNs, resource policies, and role policies of one instantiated template."""

    def __init__(self, template: dict, values: dict, conditions: dict[str, bool] | None = None):
        self.model = Model(expand_sam(template), values)
        if conditions:
            self.model.conditions.update(conditions)
        self.res = self.model.resources()
        self.policies: dict[str, dict] = {}  # resource ARN -> policy document
        self._collect()

    def of_type(self, ty: str) -> dict[str, dict]:
        return {k: v for k, v in self.res.items() if v["Type"] == ty}

    def arn(self, lid: str) -> str:
        return self.model.arn(lid)

    def find(self, ty: str, pred) -> str:
        """The ARN of the one resource of type `ty` whose properties satisfy `pred`."""
        hits = [lid for lid, r in self.of_type(ty).items() if pred(r["Properties"])]
        if len(hits) != 1:
            raise SystemExit(f"expected one {ty} matching, found {hits}")
        return self.model.arn(hits[0])

    def _add(self, arn: str, statements: list[dict]) -> None:
        doc = self.policies.setdefault(arn, {"Version": "2012-10-17", "Statement": []})
        doc["Statement"].extend(statements)

    def _collect(self) -> None:
        queue_by_url = {self.model.ref(l): self.model.arn(l) for l in self.of_type("AWS::SQS::Queue")}
        for lid, r in self.res.items():
            p, ty = r["Properties"], r["Type"]
            if ty == "AWS::SQS::QueuePolicy":
                for q in p["Queues"]:
                    self._add(queue_by_url.get(q, q), statements_of(p["PolicyDocument"]))
            elif ty == "AWS::S3::BucketPolicy":
                self._add(f"arn:{self.model.partition}:s3:::{p['Bucket']}", statements_of(p["PolicyDocument"]))
            elif ty == "AWS::DynamoDB::Table" and "ResourcePolicy" in p:
                self._add(self.model.arn(lid), statements_of(p["ResourcePolicy"]["PolicyDocument"]))
            elif ty == "AWS::KMS::Key":
                self._add(self.model.arn(lid), statements_of(p["KeyPolicy"]))
            elif ty == "AWS::SecretsManager::ResourcePolicy":
                self._add(p["SecretId"], statements_of(p["ResourcePolicy"]))
            elif ty == "AWS::SNS::TopicPolicy":
                for topic in p["Topics"]:
                    self._add(topic, statements_of(p["PolicyDocument"]))
            elif ty == "AWS::Lambda::Permission":
                fn = p["FunctionName"]
                base = fn.split(":")[6] if fn.startswith("arn:") else fn
                fn_arn = fn if fn.startswith("arn:") else f"arn:{self.model.partition}:lambda:{self.model.region}:{self.model.account}:function:{fn}"
                principal = p["Principal"]
                if principal == "*":
                    pr = "*"
                elif principal.endswith(".amazonaws.com"):
                    pr = {"Service": principal}
                else:
                    pr = {"AWS": principal}
                cond: dict = {}
                if "SourceArn" in p:
                    cond.setdefault("ArnLike", {})["AWS:SourceArn"] = p["SourceArn"]
                if "SourceAccount" in p:
                    cond.setdefault("StringEquals", {})["AWS:SourceAccount"] = p["SourceAccount"]
                if "FunctionUrlAuthType" in p:
                    cond.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = p["FunctionUrlAuthType"]
                if p.get("InvokedViaFunctionUrl") in (True, "true"):
                    cond.setdefault("Bool", {})["lambda:InvokedViaFunctionUrl"] = "true"
                st = {"Sid": lid, "Effect": "Allow", "Principal": pr, "Action": p["Action"], "Resource": fn_arn}
                if cond:
                    st["Condition"] = cond
                key = f"arn:{self.model.partition}:lambda:{self.model.region}:{self.model.account}:function:{base}"
                self._add(key, [st])

    def resource_policy(self, arn: str) -> dict | None:
        """The policy of the resource `arn` names: an object's bucket, a qualified function's
        function, a log stream's group, a subscription's topic."""
        if arn in self.policies:
            return self.policies[arn]
        if arn.startswith("arn:") and ":s3:::" in arn and "/" in arn:
            return self.policies.get(arn.split("/", 1)[0])
        if ":lambda:" in arn and ":function:" in arn:
            parts = arn.split(":")
            return self.policies.get(":".join(parts[:7]))
        if ":sns:" in arn and arn.count(":") == 6:
            return self.policies.get(arn.rsplit(":", 1)[0])
        if ":secretsmanager:" in arn:
            for k, v in self.policies.items():
                if ":secretsmanager:" in k and (arn.startswith(k) or k.startswith(arn)):
                    return v
        return None

    def role(self, pred) -> tuple[str, list[dict]]:
        """(ARN, identity policies) of the one role whose properties satisfy `pred`: its inline
        policies and the AWS::IAM::Policy/ManagedPolicy documents attached to it."""
        hits = [lid for lid, r in self.of_type("AWS::IAM::Role").items() if pred(r["Properties"])]
        if len(hits) != 1:
            raise SystemExit(f"expected one role matching, found {hits}")
        lid = hits[0]
        arn, name = self.model.arn(lid), self.model.ref(lid)
        docs = [(f"{lid}/{p['PolicyName']}", p["PolicyDocument"]) for p in self.res[lid]["Properties"].get("Policies", [])]
        for plid, r in self.res.items():
            if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and name in r["Properties"].get("Roles", []):
                docs.append((plid, r["Properties"]["PolicyDocument"]))
        return arn, docs
