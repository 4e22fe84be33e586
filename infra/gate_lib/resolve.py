"""Resolves CloudFormation intrinsics to stable text, in two modes.

* symbolic (the governance surface): a parameter stays `${Name}`, a condition stays a
  `{"Fn::If": [...]}` with both branches, so a change to either branch shows in the diff.
* concrete (the invariants): a parameter takes its default (a scenario may override it),
  conditions are evaluated, `Fn::If` picks its branch and `AWS::NoValue` disappears.

In symbolic mode pseudo parameters become `<partition>`, `<region>`, `<account>`, `<stack>`,
`<url-suffix>` (no colon, so ARNs still split on `:`); in concrete mode `aws`, `us-east-1`,
`111122223333` (the evaluator reads accounts from ARNs). In both modes a reference to a resource becomes
what CloudFormation would return, built from the resource's own name property (TableName,
FunctionName, Path + RoleName, the alias of a key, ...). A resource without a name property
is `{LogicalId}`: the only place a logical id shows, and the reason renames are stable
wherever the template names its resources.
"""

from __future__ import annotations

import re

# Concrete mode uses real-looking values: the IAM evaluator derives accounts from ARNs.
ACCOUNT = "111122223333"
CONCRETE_PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": "stack",
    "AWS::StackId": "stack-id",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NotificationARNs": "",
}
PSEUDO = {
    "AWS::Partition": "<partition>",
    "AWS::Region": "<region>",
    "AWS::AccountId": "<account>",
    "AWS::StackName": "<stack>",
    "AWS::StackId": "<stack-id>",
    "AWS::URLSuffix": "<url-suffix>",
    "AWS::NotificationARNs": "<notification-arns>",
}
NO_VALUE = object()
VERSION_ID = re.compile(r"^(\w+?Function)(?:Current)?Version[0-9A-Fa-f]{8,}$")
SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def canon_id(lid: str) -> str:
    """Logical ids that embed a content hash (published versions) without the hash."""
    m = VERSION_ID.match(lid)
    return m.group(1) + "Version" if m else lid


class ResolveError(Exception):
    pass


class Resolver:
    def __init__(self, template: dict, symbolic: bool, overrides: dict | None = None):
        self.t = template
        self.resources = template.get("Resources", {})
        self.params = template.get("Parameters", {})
        self.mappings = template.get("Mappings", {})
        self.conditions = template.get("Conditions", {})
        self.symbolic = symbolic
        self.overrides = overrides or {}
        self._cond_cache: dict[str, bool] = {}
        self._busy: set[str] = set()
        self.pseudo = PSEUDO if symbolic else CONCRETE_PSEUDO
        self.part = self.pseudo["AWS::Partition"]
        self.region = self.pseudo["AWS::Region"]
        self.account = self.pseudo["AWS::AccountId"]

    # ------------------------------------------------------------------ parameters
    def param(self, name: str):
        p = self.params[name]
        typ = p.get("Type", "String")
        is_list = typ.startswith("List<") or typ == "CommaDelimitedList"
        if self.symbolic:
            return [f"${{{name}}}"] if is_list else f"${{{name}}}"
        if name in self.overrides:
            v = self.overrides[name]
        elif "Default" in p:
            v = p["Default"]
        else:
            v = example_value(name, p)
        if is_list:
            if isinstance(v, list):
                return [str(x) for x in v]
            return [x.strip() for x in str(v).split(",")] if str(v) != "" else [""]
        return str(v) if not isinstance(v, bool) else ("true" if v else "false")

    # ------------------------------------------------------------------ conditions
    def condition(self, name: str) -> bool:
        if name not in self._cond_cache:
            if name not in self.conditions:
                raise ResolveError(f"condition {name} is not defined")
            self._cond_cache[name] = self._cond(self.conditions[name])
        return self._cond_cache[name]

    def _cond(self, node) -> bool:
        if isinstance(node, dict) and len(node) == 1:
            (k, v), = node.items()
            if k == "Condition":
                return self.condition(v)
            if k == "Fn::Equals":
                a, b = (self.value(x) for x in v)
                return _scalar(a) == _scalar(b)
            if k == "Fn::Not":
                return not self._cond(v[0])
            if k == "Fn::And":
                return all(self._cond(x) for x in v)
            if k == "Fn::Or":
                return any(self._cond(x) for x in v)
        if isinstance(node, bool):
            return node
        raise ResolveError(f"cannot evaluate condition {node!r}")

    def resource_present(self, lid: str) -> bool:
        cond = self.resources[lid].get("Condition")
        return True if self.symbolic or not cond else self.condition(cond)

    # ------------------------------------------------------------------ values
    def value(self, node):
        if isinstance(node, list):
            out = [self.value(x) for x in node]
            return [x for x in out if x is not NO_VALUE]
        if isinstance(node, bool):
            return "true" if node else "false"
        if isinstance(node, (int, float)):
            return str(node)
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (k, v), = node.items()
            fn = _FUNCTIONS.get(k)
            if fn is not None:
                return fn(self, v)
        out = {}
        for k, v in node.items():
            r = self.value(v)
            if r is not NO_VALUE:
                out[k] = r
        return out

    def _ref(self, name: str):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return self.pseudo[name]
        if name in self.params:
            return self.param(name)
        if name in self.resources:
            return self.attr(name, None)
        # SAM's `!Ref Function.Version` / `.Alias` survive in templates that were not transformed.
        if "." in name:
            res, attr = name.split(".", 1)
            if res in self.resources:
                return self.attr(res, attr)
        raise ResolveError(f"Ref to unknown {name}")

    def _getatt(self, v):
        res, attr = v.split(".", 1) if isinstance(v, str) else (v[0], self.value(v[1]))
        if res not in self.resources:
            raise ResolveError(f"GetAtt of unknown resource {res}")
        return self.attr(res, attr)

    def _sub(self, v):
        text, variables = (v, {}) if isinstance(v, str) else (v[0], v[1])
        parts: list = []
        pos = 0
        for m in SUB_VAR.finditer(text):
            parts.append(text[pos:m.start()].replace("${!", "${"))
            name = m.group(1)
            if name in variables:
                parts.append(self.value(variables[name]))
            elif name in PSEUDO or name in self.params or name in self.resources:
                parts.append(self._ref(name))
            elif "." in name:
                parts.append(self._getatt(name))
            else:
                raise ResolveError(f"Fn::Sub names unknown ${{{name}}}")
            pos = m.end()
        parts.append(text[pos:].replace("${!", "${"))
        return _join("", parts)

    def _join(self, v):
        sep, items = v[0], self.value(v[1])
        if not isinstance(items, list):
            return {"Fn::Join": [sep, items]}
        parts: list = []
        for i, x in enumerate(items):
            if i:
                parts.append(sep)
            parts.append(x)
        return _join("", parts)

    def _split(self, v):
        sep, s = v[0], self.value(v[1])
        return s.split(sep) if isinstance(s, str) else {"Fn::Split": [sep, s]}

    def _select(self, v):
        i, items = self.value(v[0]), self.value(v[1])
        if isinstance(items, list) and isinstance(i, str) and i.isdigit() and int(i) < len(items):
            return items[int(i)]
        return {"Fn::Select": [i, items]}

    def _if(self, v):
        cond, a, b = v
        if self.symbolic:
            a, b = (self.value(x) for x in (a, b))
            return {"Fn::If": [cond, *({"Ref": "AWS::NoValue"} if x is NO_VALUE else x for x in (a, b))]}
        return self.value(a if self.condition(cond) else b)

    def _find_in_map(self, v):
        m, k1, k2 = (self.value(x) for x in v)
        try:
            return self.value(self.mappings[m][str(k1)][str(k2)])
        except (KeyError, TypeError):
            return {"Fn::FindInMap": [m, k1, k2]}

    # ------------------------------------------------------------------ resources
    def name_of(self, lid: str) -> str:
        """A resource's own name as the template sets it, else `{LogicalId}`."""
        r = self.resources[lid]
        props = r.get("Properties", {})
        typ = r.get("Type", "")
        if typ == "AWS::KMS::Key":
            for alid, a in self.resources.items():
                if a.get("Type") == "AWS::KMS::Alias":
                    target = a.get("Properties", {}).get("TargetKeyId")
                    if target in ({"Ref": lid}, {"Fn::GetAtt": [lid, "Arn"]}, {"Fn::GetAtt": f"{lid}.Arn"}):
                        return str(self._plain(a["Properties"].get("AliasName"), alid))
        key = NAME_PROPERTY.get(typ)
        if key and key in props:
            return str(self._plain(props[key], lid))
        return "{" + canon_id(lid) + "}"

    def _plain(self, node, lid: str):
        if lid in self._busy:
            return "{" + canon_id(lid) + "}"
        self._busy.add(lid)
        try:
            v = self.value(node)
        finally:
            self._busy.discard(lid)
        return v if isinstance(v, str) else "{" + canon_id(lid) + "}"

    def role_arn(self, lid: str) -> str:
        props = self.resources[lid].get("Properties", {})
        path = self._plain(props["Path"], lid) if "Path" in props else "/"
        return f"arn:{self.part}:iam::{self.account}:role{path}{self.name_of(lid)}"

    def attr(self, lid: str, attr: str | None):
        r = self.resources[lid]
        typ = r.get("Type", "")
        name = self.name_of(lid)
        P, R, A, U = self.part, self.region, self.account, self.pseudo["AWS::URLSuffix"]
        region = f"arn:{P}:{{svc}}:{R}:{A}:"
        arn = {
            "AWS::IAM::Role": lambda: self.role_arn(lid),
            "AWS::IAM::User": lambda: f"arn:{P}:iam::{A}:user/{name}",
            "AWS::IAM::Group": lambda: f"arn:{P}:iam::{A}:group/{name}",
            "AWS::IAM::ManagedPolicy": lambda: f"arn:{P}:iam::{A}:policy/{name}",
            "AWS::Lambda::Function": lambda: region.format(svc="lambda") + f"function:{name}",
            "AWS::DynamoDB::Table": lambda: region.format(svc="dynamodb") + f"table/{name}",
            "AWS::SQS::Queue": lambda: region.format(svc="sqs") + name,
            "AWS::SNS::Topic": lambda: region.format(svc="sns") + name,
            "AWS::KMS::Key": lambda: region.format(svc="kms") + f"key/{name}",
            "AWS::SecretsManager::Secret": lambda: region.format(svc="secretsmanager") + f"secret:{name}",
            "AWS::S3::Bucket": lambda: f"arn:{P}:s3:::{name}",
            "AWS::CloudTrail::Trail": lambda: region.format(svc="cloudtrail") + f"trail/{name}",
            "AWS::Events::Rule": lambda: region.format(svc="events") + f"rule/{name}",
            "AWS::Events::EventBus": lambda: region.format(svc="events") + f"event-bus/{name}",
            "AWS::Logs::LogGroup": lambda: region.format(svc="logs") + f"log-group:{name}:*",
            "AWS::SSM::Parameter": lambda: region.format(svc="ssm") + f"parameter{name}",
            "AWS::CloudWatch::Alarm": lambda: region.format(svc="cloudwatch") + f"alarm:{name}",
        }.get(typ)
        if typ == "AWS::Lambda::Version":
            fn = self.value(r["Properties"]["FunctionName"])
            fn_arn = self._function_arn(fn)
            return f"{fn_arn}:<version>" if attr in (None, "Arn") else ("<version>" if attr == "Version" else f"{fn_arn}.{attr}")
        if typ == "AWS::Lambda::Alias":
            fn = self.value(r["Properties"]["FunctionName"])
            return f"{self._function_arn(fn)}:{self.value(r['Properties'].get('Name'))}"
        if typ == "AWS::Lambda::Function" and attr in ("Version", "Alias"):
            return self.attr(lid, "Arn") + (":<version>" if attr == "Version" else ":live")
        if attr in (None,):
            if typ in ("AWS::SNS::Topic", "AWS::SecretsManager::Secret", "AWS::IAM::ManagedPolicy"):
                return arn() if arn else name
            if typ == "AWS::SQS::Queue":
                return f"https://sqs.{R}.{U}/{A}/{name}"
            if typ == "AWS::KMS::Key":
                return f"<key:{name}>"
            if typ == "AWS::Lambda::Url":
                return "{" + canon_id(lid) + "}"
            return name
        if attr in ("Arn", "TopicArn", "RoleArn", "KeyArn") and arn:
            return arn()
        if attr == "QueueName" or attr == "TopicName":
            return name
        if attr == "QueueUrl":
            return f"https://sqs.{R}.{U}/{A}/{name}"
        if attr == "KeyId":
            return f"<key:{name}>"
        if attr == "FunctionUrl":
            return "<url:" + canon_id(lid) + ">"
        return "{" + canon_id(lid) + "." + str(attr) + "}"

    def _function_arn(self, fn) -> str:
        if isinstance(fn, str) and fn.startswith("arn:"):
            return fn
        return f"arn:{self.part}:lambda:{self.region}:{self.account}:function:{fn}"


NAME_PROPERTY = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Policy": "PolicyName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::CloudTrail::Trail": "TrailName",
    "AWS::Events::Rule": "Name",
    "AWS::Events::EventBus": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SSM::Parameter": "Name",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Athena::NamedQuery": "Name",
}


def example_value(name: str, p: dict) -> str:
    """A stand-in for a parameter the template gives no default, shaped like what it takes
    (the evaluator needs ARNs where the template expects ARNs)."""
    pattern = str(p.get("AllowedPattern", ""))
    low = name.lower()
    if "image" in low:
        return f"arn:aws:lambda:us-east-1:{ACCOUNT}:microvm-image:example-{low}"
    if ":iam::" in pattern or "rolearn" in low:
        return f"arn:aws:iam::{ACCOUNT}:role/example/{name}"
    if ":sns:" in pattern or "topicarn" in low:
        return f"arn:aws:sns:us-east-1:{ACCOUNT}:example-{low}"
    if pattern == "^[0-9]{12}$" or low.endswith("accountid"):
        return "444455556666"
    if "region" in low:
        return "us-east-1"
    if pattern.startswith("^o-"):
        return "o-exampleorg01"
    return f"example-{low}"


def _scalar(v):
    return v if not isinstance(v, list) else ",".join(str(x) for x in v)


def _join(sep: str, parts: list):
    parts = [p for p in parts if p is not NO_VALUE]
    if all(isinstance(p, str) for p in parts):
        return sep.join(parts)
    out: list = []
    for p in parts:
        if isinstance(p, str) and out and isinstance(out[-1], str):
            out[-1] += p
        elif p != "":
            out.append(p)
    return out[0] if len(out) == 1 else {"Fn::Join": ["", out]}


_FUNCTIONS = {
    "Ref": Resolver._ref,
    "Fn::GetAtt": Resolver._getatt,
    "Fn::Sub": Resolver._sub,
    "Fn::Join": Resolver._join,
    "Fn::Split": Resolver._split,
    "Fn::Select": Resolver._select,
    "Fn::If": Resolver._if,
    "Fn::FindInMap": Resolver._find_in_map,
    "Fn::Base64": lambda self, v: {"Fn::Base64": self.value(v)},
    "Fn::GetAZs": lambda self, v: ["<az>"],
    "Fn::ImportValue": lambda self, v: {"Fn::ImportValue": self.value(v)},
    "Fn::Cidr": lambda self, v: ["<cidr>"],
    "Fn::ToJsonString": lambda self, v: {"Fn::ToJsonString": self.value(v)},
    "Fn::Length": lambda self, v: str(len(x)) if isinstance(x := self.value(v), list) else {"Fn::Length": x},
}
