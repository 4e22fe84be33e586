"""Semantic invariants, evaluated on the resolved policies of one template (no baseline).

"Who can do action X on resource Y" is answered by the IAM policy evaluator in
infra/iam/evaluator.py, for three kinds of principal:

* every principal of the template (roles, users, groups, and roles the template attaches
  policies to by name). Conditions on their Allow statements are dropped before evaluating
  (the question is whether the principal can EVER do it; Deny statements keep theirs);
* an insider: a role of the account allowed everything, with the stack's deny policy (each
  managed policy made only of Deny statements) attached (what the deny policy promises for every other role);
* an insider without the deny policy (what the table, bucket and key policies promise for
  principals the deny policy was never attached to).

The deployment and break-glass roles are parameters, never principals of the template: no
principal of the template may change the stack. Each failure names the resource and the
principal. Templates are checked with the parameters' defaults and, when the detector's
REMEDIATION comes from a parameter, once more for each value that parameter allows.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass

from iam.evaluator import PolicyError, Request, action_matches, evaluate
from .model import EVERYTHING, Model, build
from .resolve import ACCOUNT

SWEEP_MAX_MINUTES = 15  # the sweep must run at least this often
LOG_RETENTION_FLOOR_DAYS = 365  # no lifecycle rule may expire CloudTrail log files sooner
INSIDER = f"arn:aws:iam::{ACCOUNT}:role/insider"
OUTSIDER = "arn:aws:iam::999999999999:role/outsider"
GOVERNED = ["lambda:RunMicrovm", "lambda:CreateMicrovmAuthToken", "lambda:CreateMicrovmShellAuthToken",
            "lambda:ResumeMicrovm", "lambda:ConnectMicrovm", "lambda:SuspendMicrovm", "lambda:TerminateMicrovm"]
REMEDIATION_ACTIONS = {"lambda:suspendmicrovm", "lambda:terminatemicrovm"}
FUNCTION_CHANGES = ["lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:DeleteFunction",
                    "lambda:AddPermission", "lambda:RemovePermission", "lambda:CreateAlias", "lambda:UpdateAlias",
                    "lambda:DeleteAlias", "lambda:PublishVersion", "lambda:PutFunctionConcurrency",
                    "lambda:DeleteFunctionConcurrency", "lambda:CreateFunctionUrlConfig", "lambda:UpdateFunctionUrlConfig",
                    "lambda:DeleteFunctionUrlConfig", "lambda:PutFunctionEventInvokeConfig", "lambda:TagResource"]
MAPPING_CHANGES = ["lambda:CreateEventSourceMapping", "lambda:UpdateEventSourceMapping", "lambda:DeleteEventSourceMapping"]
ROLE_CHANGES = ["iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy", "iam:DeleteRole", "iam:PutRolePermissionsBoundary",
                "iam:DeleteRolePermissionsBoundary", "iam:UpdateRole", "iam:TagRole"]
TABLE_CHANGES = ["dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:PutResourcePolicy",
                 "dynamodb:DeleteResourcePolicy", "dynamodb:UpdateTimeToLive", "dynamodb:UpdateContinuousBackups"]
ITEM_WRITES = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
               "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"]
SECRET_CHANGES = ["secretsmanager:PutSecretValue", "secretsmanager:UpdateSecret", "secretsmanager:DeleteSecret",
                  "secretsmanager:PutResourcePolicy", "secretsmanager:RotateSecret"]
TRAIL_CHANGES = ["cloudtrail:StopLogging", "cloudtrail:DeleteTrail", "cloudtrail:UpdateTrail",
                 "cloudtrail:PutEventSelectors"]
BUCKET_CHANGES = ["s3:PutBucketNotification", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketVersioning",
                  "s3:PutLifecycleConfiguration", "s3:DeleteBucket", "s3:PutEncryptionConfiguration"]
QUEUE_CHANGES = ["sqs:SetQueueAttributes", "sqs:DeleteQueue", "sqs:PurgeQueue", "sqs:AddPermission"]
QUEUE_CONSUME = ["sqs:ReceiveMessage", "sqs:DeleteMessage"]
RULE_CHANGES = ["events:DisableRule", "events:DeleteRule", "events:PutRule", "events:PutTargets", "events:RemoveTargets"]
TOPIC_CHANGES = ["sns:SetTopicAttributes", "sns:DeleteTopic", "sns:AddPermission", "sns:RemovePermission"]
KEY_CHANGES = ["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:DisableKeyRotation"]
ALARM_CHANGES = ["cloudwatch:DeleteAlarms", "cloudwatch:DisableAlarmActions", "cloudwatch:PutMetricAlarm"]
LOG_CHANGES = ["logs:DeleteLogGroup", "logs:PutRetentionPolicy"]
PARAMETER_CHANGES = ["ssm:PutParameter", "ssm:DeleteParameter"]
TOPIC_OPEN = ["sns:Subscribe", "sns:Publish", "sns:SetTopicAttributes", "sns:GetTopicAttributes"]
KEY_ADMIN = ["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:CreateGrant", "kms:Decrypt",
             "kms:ReEncryptFrom", "kms:CancelKeyDeletion"]


@dataclass(frozen=True)
class Finding:
    invariant: str
    message: str


def _strip_allow_conditions(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    for st in doc.get("Statement", []):
        if isinstance(st, dict) and st.get("Effect") == "Allow":
            st.pop("Condition", None)
    return doc


def _only_denies(doc) -> bool:
    sts = doc.get("Statement", []) if isinstance(doc, dict) else []
    sts = sts if isinstance(sts, list) else [sts]
    return bool(sts) and all(isinstance(st, dict) and st.get("Effect") == "Deny" for st in sts)


def _env(m: Model, lid: str) -> dict:
    v = m.resources[lid]["Properties"].get("Environment", {})
    v = v.get("Variables", {}) if isinstance(v, dict) else {}
    return v if isinstance(v, dict) else {}


def _split(v) -> list[str]:
    if isinstance(v, list):
        return [str(x) for x in v]
    return [x.strip() for x in str(v).split(",") if x.strip()] if v not in (None, "") else []


class Checker:
    def __init__(self, m: Model, scenario: str):
        self.m = m
        self.scenario = scenario
        self.findings: list[Finding] = []
        self._stripped: dict = {}
        self._stripped_rp: dict = {}
        fns = m.of_type("AWS::Lambda::Function")
        self.launchers = [lid for lid, x in fns if str(x["name"]).endswith("-launcher") or "ALLOWED_IMAGE_ARNS" in _env(m, lid)]
        self.detectors = [lid for lid, x in fns if str(x["name"]).endswith("-detector") or "LAUNCHER_ROLE_ARNS" in _env(m, lid)]
        self.launcher_roles = {str(m.resources[lid]["Properties"].get("Role")) for lid in self.launchers}
        self.detector_roles = {str(m.resources[lid]["Properties"].get("Role")) for lid in self.detectors}
        prefix = m.r.param("NamePrefix") if "NamePrefix" in m.r.params else None
        self.prefix = prefix if isinstance(prefix, str) else None
        self.governance_roles = {a for a, p in m.principals.items() if p.kind == "role" and (
            a in self.launcher_roles or a in self.detector_roles
            or (self.prefix and f":role/{self.prefix}/" in a))}
        remediation = {str(_env(m, lid).get("REMEDIATION", "off")).lower() for lid in self.detectors}
        self.remediation_on = bool(remediation & {"suspend", "terminate"})
        # The stack's deny policy (for every other role): each managed policy made only of
        # Deny statements, attached to something in the template or not.
        self.deny_policies = [(f"managed policy {x['name']}", x["Properties"].get("PolicyDocument", {}))
                              for lid, x in m.resources.items()
                              if x["Type"] == "AWS::IAM::ManagedPolicy" and _only_denies(x["Properties"].get("PolicyDocument"))]

    # ------------------------------------------------------------------ helpers
    def fail(self, invariant: str, message: str) -> None:
        where = "" if self.scenario == "defaults" else f" [with {self.scenario}]"
        self.findings.append(Finding(invariant, message + where))

    def who(self, arn: str) -> str:
        p = self.m.principals.get(arn)
        tags = []
        if arn in self.launcher_roles:
            tags.append("the launcher role")
        if arn in self.detector_roles:
            tags.append("the detector role")
        label = p.label if p else arn
        return f"{label}" + (f" ({', '.join(tags)})" if tags else "")

    def resource_policy(self, arn: str) -> tuple | None:
        stmts = []
        names = []
        for rp in self.m.resource_policies:
            for a in rp.arns:
                if a == arn or (a.endswith("/*") and arn.startswith(a[:-1])) or (
                        rp.resource_type == "AWS::Lambda::Function" and a.split(":")[:7] == arn.split(":")[:7]):
                    stmts.extend(rp.doc.get("Statement", []))
                    names.append(rp.label)
                    break
        return ("; ".join(names), {"Statement": stmts}) if stmts else None

    def decide(self, principal: str, identity: list, action: str, resource: str, context: dict | None = None,
               boundary=None, resource_policy="auto", strip_resource_allows=False) -> bool:
        rp = self.resource_policy(resource) if resource_policy == "auto" else resource_policy
        if rp and strip_resource_allows:
            key = json.dumps(rp, sort_keys=True)
            if key not in self._stripped_rp:
                self._stripped_rp[key] = (rp[0], _strip_allow_conditions(rp[1]))
            rp = self._stripped_rp[key]
        try:
            d = evaluate(Request(principal, action, resource, dict(context or {})), identity=identity,
                         resource_policy=rp, boundary=boundary)
        except PolicyError as e:
            self.fail("policies-are-valid", f"{self.who(principal)}: a policy the evaluator cannot read ({e}) "
                      f"while deciding {action} on {resource}")
            return True  # fail closed
        return d.allowed

    def template_principal_can(self, arn: str, action: str, resource: str, context: dict | None = None) -> bool:
        if arn not in self._stripped:
            p = self.m.principals[arn]
            self._stripped[arn] = ([(n, _strip_allow_conditions(d)) for n, d in p.identity],
                                   (p.boundary[0], _strip_allow_conditions(p.boundary[1])) if p.boundary else None)
        identity, boundary = self._stripped[arn]
        ctx = {"aws:PrincipalArn": arn, **(context or {})}
        return self.decide(arn, identity, action, resource, ctx, boundary, strip_resource_allows=True)

    def insider_can(self, action: str, resource: str, context: dict | None = None, with_deny=True,
                    resource_policy="auto") -> bool:
        identity = [("everything", EVERYTHING)] + (self.deny_policies if with_deny else [])
        return self.decide(INSIDER, identity, action, resource, context, resource_policy=resource_policy)

    # ------------------------------------------------------------------ invariants
    def run(self, full: bool = True) -> list[Finding]:
        """full=False: only what the REMEDIATION scenarios change (grants and the caps)."""
        self.m.errors and [self.fail("template-resolves", e) for e in self.m.errors]
        self.governed_actions()
        self.detector_environment()
        if not full:
            return self.findings
        self.changes()
        self.trail()
        self.bucket_and_notification()
        self.detector_pipeline()
        self.keys_and_topics()
        self.alarms()
        self.trust_and_urls()
        return self.findings

    def image_probes(self) -> list[str]:
        probes = {f"arn:aws:lambda:us-east-1:{ACCOUNT}:microvm-image:any-image",
                  f"arn:aws:lambda:us-east-1:{ACCOUNT}:microvm-image:any-image:1"}
        for lid in self.launchers:
            for img in _split(_env(self.m, lid).get("ALLOWED_IMAGE_ARNS")):
                probes.update({img, img + ":1"})
        return sorted(probes)

    def governed_actions(self) -> None:
        probes = self.image_probes()
        for arn in sorted(self.m.principals):
            for action in GOVERNED:
                if arn in self.launcher_roles:
                    continue
                if arn in self.detector_roles and action.lower() in REMEDIATION_ACTIONS and self.remediation_on:
                    continue
                for img in probes:
                    if self.template_principal_can(arn, action, img):
                        why = "not the launcher role" if arn not in self.detector_roles else "remediation is off"
                        self.fail("only-the-launcher-runs-governed-actions",
                                  f"{self.who(arn)} ({why}) can {action} on {img}")
                        break
        if self.launchers and self.detectors and not self.deny_policies:
            self.fail("deny-policy-present", "the template has the launcher and the detector but no managed "
                      "policy of Deny statements to keep everyone else from the governed actions and the stack")
        if self.deny_policies:
            for action in GOVERNED:
                for img in probes:
                    if self.insider_can(action, img):
                        self.fail("deny-policy-stops-governed-actions",
                                  f"an insider role ({INSIDER}) with the deny policy attached can {action} on {img}")
                        break

    def protected(self) -> list[tuple[str, str, list[str], dict, set, bool, bool]]:
        """(what, resource ARN, actions, context, principals allowed, deny policy covers it,
        resource policy covers it)."""
        m = self.m
        out = []
        gov_fns = self.launchers + self.detectors
        for lid in gov_fns:
            x = m.resources[lid]
            out.append((f"function {x['name']}", x["arn"], FUNCTION_CHANGES, {}, set(), True, False))
            out.append((f"function {x['name']}", x["arn"] + ":live", FUNCTION_CHANGES, {}, set(), True, False))
            out.append((f"event source mappings of function {x['name']}",
                        f"arn:aws:lambda:us-east-1:{ACCOUNT}:event-source-mapping:any", MAPPING_CHANGES,
                        {"lambda:FunctionArn": x["arn"]}, set(), True, False))
        for arn in sorted(self.governance_roles):
            out.append((f"role {arn.split(':', 5)[-1]}", arn, ROLE_CHANGES, {}, set(), True, False))
            out.append((f"role {arn.split(':', 5)[-1]}", arn, ["iam:PassRole"],
                        {"iam:PassedToService": "lambda.amazonaws.com"}, set(), True, False))
        if self.prefix:
            new_role = f"arn:aws:iam::{ACCOUNT}:role/{self.prefix}/launcher/new-role"
            out.append((f"a new role under /{self.prefix}/launcher/", new_role, ["iam:CreateRole"], {}, set(), True, False))
        for lid, x in m.of_type("AWS::DynamoDB::Table"):
            name = str(x["name"])
            out.append((f"table {name}", x["arn"], TABLE_CHANGES, {}, set(), True, True))
            writers = self.launcher_roles if name.endswith(("-ledger", "-pending")) else (
                self.detector_roles if name.endswith("-dedupe") else None)
            if writers is not None:
                out.append((f"table {name}", x["arn"], ITEM_WRITES, {}, writers, True, True))
        for lid, x in m.of_type("AWS::SecretsManager::Secret"):
            out.append((f"secret {x['name']}", x["arn"], SECRET_CHANGES, {}, set(), False, False))
            out.append((f"secret {x['name']}", x["arn"], ["secretsmanager:GetSecretValue"], {},
                        self.launcher_roles | self.detector_roles, False, False))
        for lid, x in m.of_type("AWS::CloudTrail::Trail"):
            out.append((f"trail {x['name']}", x["arn"], TRAIL_CHANGES, {}, set(), True, False))
        for lid, x in m.of_type("AWS::S3::Bucket"):
            out.append((f"bucket {x['name']}", x["arn"], BUCKET_CHANGES, {}, set(), True, True))
            out.append((f"bucket {x['name']}", x["arn"] + "/AWSLogs/any.json.gz", ["s3:DeleteObject"], {}, set(), True, True))
        for lid, x in m.of_type("AWS::SQS::Queue"):
            out.append((f"queue {x['name']}", x["arn"], QUEUE_CHANGES, {}, set(), True, False))
            if str(x["name"]).endswith("-detector"):
                out.append((f"queue {x['name']}", x["arn"], QUEUE_CONSUME, {}, self.detector_roles, True, False))
        for lid, x in m.of_type("AWS::Events::Rule"):
            out.append((f"rule {x['name']}", x["arn"], RULE_CHANGES, {}, set(), True, False))
        for lid, x in m.of_type("AWS::SNS::Topic"):
            out.append((f"topic {x['name']}", x["arn"], TOPIC_CHANGES, {}, set(), True, False))
        for lid, x in m.of_type("AWS::KMS::Key"):
            out.append((f"key {x['name']}", x["arn"], KEY_CHANGES, {}, set(), False, True))
        for lid, x in m.of_type("AWS::CloudWatch::Alarm"):
            out.append((f"alarm {x['name']}", x["arn"], ALARM_CHANGES, {}, set(), True, False))
        for lid, x in m.of_type("AWS::Logs::LogGroup"):
            out.append((f"log group {x['name']}", x["arn"].removesuffix(":*"), LOG_CHANGES, {}, set(), True, False))
        for lid, x in m.of_type("AWS::SSM::Parameter"):
            out.append((f"parameter {x['name']}", x["arn"], PARAMETER_CHANGES, {}, set(), True, False))
        for lid, x in m.of_type("AWS::IAM::ManagedPolicy"):
            out.append((f"managed policy {x['name']}", x["arn"],
                        ["iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:SetDefaultPolicyVersion"], {}, set(), False, False))
        return out

    def changes(self) -> None:
        protected = self.protected()
        for arn in sorted(self.m.principals):
            for what, res, actions, ctx, allowed, _, _ in protected:
                if arn in allowed:
                    continue
                for action in actions:
                    if self.template_principal_can(arn, action, res, ctx):
                        self.fail("only-the-deployer-changes-the-stack",
                                  f"{self.who(arn)} (not the pipeline principal) can {action} on {what} ({res})")
                        break
        for what, res, actions, ctx, allowed, by_deny, by_resource in protected:
            if self.deny_policies and by_deny:
                for action in actions:
                    if self.insider_can(action, res, ctx):
                        self.fail("deny-policy-protects-the-stack",
                                  f"an insider role ({INSIDER}) with the deny policy attached can {action} on {what}")
                        break
            if by_resource:
                for action in actions:
                    if self.insider_can(action, res, ctx, with_deny=False):
                        self.fail("resource-policies-protect-the-stack",
                                  f"an insider role ({INSIDER}) without the deny policy can {action} on {what}: "
                                  "its resource policy no longer refuses it")
                        break

    # ------------------------------------------------------------------ trail and logs
    def trail(self) -> None:
        for lid, x in self.m.of_type("AWS::CloudTrail::Trail"):
            p, name = x["Properties"], f"trail {x['name']}"
            if str(p.get("IsLogging", "true")).lower() != "true":
                self.fail("trail-logs", f"{name}: IsLogging is {p.get('IsLogging')}")
            if str(p.get("EnableLogFileValidation", "false")).lower() != "true":
                self.fail("trail-log-file-validation", f"{name}: log file validation is off")
            if str(p.get("IsMultiRegionTrail", "false")).lower() != "true":
                self.fail("trail-logs", f"{name}: not multi-region")
            if p.get("EventSelectors"):
                self.fail("trail-logs-governed-calls", f"{name}: basic EventSelectors cannot select MicroVM data events")
            selectors = p.get("AdvancedEventSelectors") or []
            microvm = mgmt = False
            for sel in selectors:
                fields = {f.get("Field"): f for f in sel.get("FieldSelectors", []) if isinstance(f, dict)}
                cat = fields.get("eventCategory", {}).get("Equals", [])
                types = fields.get("resources.type", {}).get("Equals", [])
                extra = set(fields) - {"eventCategory", "resources.type"}
                narrowing = [k for k in extra] + [f"{k} {op}" for k, f in fields.items()
                                                  for op in f if op not in ("Field", "Equals")]
                if "Data" in cat and "AWS::Lambda::MicrovmImage" in types:
                    if narrowing:
                        self.fail("trail-logs-governed-calls",
                                  f"{name}: the MicroVM data-event selector is narrowed by {', '.join(sorted(narrowing))}")
                    else:
                        microvm = True
                if "Management" in cat:
                    if narrowing:
                        self.fail("trail-logs-governed-calls",
                                  f"{name}: the management-event selector is narrowed by {', '.join(sorted(narrowing))}")
                    else:
                        mgmt = True
            if not microvm:
                self.fail("trail-logs-governed-calls",
                          f"{name}: no un-narrowed data-event selector on AWS::Lambda::MicrovmImage (read and write)")
            if not mgmt:
                self.fail("trail-logs-governed-calls", f"{name}: no un-narrowed management-event selector")

    def bucket_and_notification(self) -> None:
        trail_buckets = {str(x["Properties"].get("S3BucketName")) for _, x in self.m.of_type("AWS::CloudTrail::Trail")}
        detector_queues = self.detector_queues()
        for lid, x in self.m.of_type("AWS::S3::Bucket"):
            if x["name"] not in trail_buckets:
                continue
            p, name = x["Properties"], f"bucket {x['name']}"
            if (p.get("VersioningConfiguration") or {}).get("Status") != "Enabled":
                self.fail("trail-bucket-keeps-logs", f"{name}: versioning is not Enabled")
            for rule in (p.get("LifecycleConfiguration") or {}).get("Rules", []):
                if str(rule.get("Status", "Enabled")) != "Enabled":
                    continue
                for key in ("ExpirationInDays",):
                    if key in rule and _int(rule[key], 0) < LOG_RETENTION_FLOOR_DAYS:
                        self.fail("trail-bucket-keeps-logs", f"{name}: lifecycle rule {rule.get('Id', '?')} expires log files "
                                  f"after {rule[key]} days (floor {LOG_RETENTION_FLOOR_DAYS})")
                if "ExpirationDate" in rule:
                    self.fail("trail-bucket-keeps-logs", f"{name}: lifecycle rule {rule.get('Id', '?')} expires log files on a date")
                nve = rule.get("NoncurrentVersionExpiration") or {}
                days = nve.get("NoncurrentDays", rule.get("NoncurrentVersionExpirationInDays"))
                if days is not None and _int(days, 0) < LOG_RETENTION_FLOOR_DAYS:
                    self.fail("trail-bucket-keeps-logs", f"{name}: lifecycle rule {rule.get('Id', '?')} deletes old versions "
                              f"after {days} days (floor {LOG_RETENTION_FLOOR_DAYS})")
            qcs = (p.get("NotificationConfiguration") or {}).get("QueueConfigurations", [])
            ok = [q for q in qcs if str(q.get("Queue")) in detector_queues
                  and str(q.get("Event", "")) in ("s3:ObjectCreated:*", "s3:ObjectCreated:Put")]
            if self.detectors and not ok:
                self.fail("notification-reaches-the-detector",
                          f"{name}: no s3:ObjectCreated notification to the detector's queue ({', '.join(sorted(detector_queues)) or 'none'})")

    def notified_queues(self) -> set[str]:
        """The queues log-file notifications reach: the detector's queue by name, the queue a
        trail bucket notifies, a queue subscribed to a topic."""
        out = {x["arn"] for _, x in self.m.of_type("AWS::SQS::Queue") if str(x["name"]).endswith("-detector")}
        trail_buckets = {str(x["Properties"].get("S3BucketName")) for _, x in self.m.of_type("AWS::CloudTrail::Trail")}
        for _, x in self.m.of_type("AWS::S3::Bucket"):
            if x["name"] in trail_buckets:
                for qc in (x["Properties"].get("NotificationConfiguration") or {}).get("QueueConfigurations", []):
                    out.add(str(qc.get("Queue")))
        for _, x in self.m.of_type("AWS::SNS::Subscription"):
            if str(x["Properties"].get("Protocol")) == "sqs":
                out.add(str(x["Properties"].get("Endpoint")))
        return out

    def detector_queues(self) -> set[str]:
        fns = {self.m.resources[lid]["arn"] for lid in self.detectors}
        out = set()
        for lid, x in self.m.of_type("AWS::Lambda::EventSourceMapping"):
            fn = str(x["Properties"].get("FunctionName", ""))
            if any(fn == f or fn.startswith(f + ":") or f.endswith(":function:" + fn) for f in fns):
                out.add(str(x["Properties"].get("EventSourceArn")))
        for lid, x in self.m.of_type("AWS::SQS::Queue"):
            if str(x["name"]).endswith("-detector"):
                out.add(x["arn"])
        return out

    # ------------------------------------------------------------------ detector pipeline
    def targets_of(self, fn_arn: str) -> list[tuple[str, dict]]:
        out = []
        for lid, x in self.m.of_type("AWS::Events::Rule"):
            for tg in x["Properties"].get("Targets", []) or []:
                a = str(tg.get("Arn", ""))
                if a == fn_arn or a.startswith(fn_arn + ":"):
                    out.append((lid, x))
                    break
        return out

    def detector_pipeline(self) -> None:
        for lid in self.detectors:
            x = self.m.resources[lid]
            fn, name = x["arn"], f"function {x['name']}"
            rc = x["Properties"].get("ReservedConcurrentExecutions")
            if rc is not None and _int(rc, -1) <= 0:
                self.fail("detector-runs", f"{name}: reserved concurrency is {rc} (the detector never runs)")
            maps = [(mlid, mx) for mlid, mx in self.m.of_type("AWS::Lambda::EventSourceMapping")
                    if str(mx["Properties"].get("FunctionName", "")).startswith((fn, str(x["name"])))]
            sqs_maps = [(mlid, mx) for mlid, mx in maps if ":sqs:" in str(mx["Properties"].get("EventSourceArn"))]
            mapped = {str(mx["Properties"].get("EventSourceArn")) for _, mx in sqs_maps}
            for q in sorted(self.notified_queues()):
                if q not in mapped:
                    self.fail("detector-consumes-its-queue", f"{name}: no event source mapping from {q}, "
                              "the queue CloudTrail's log-file notifications reach")
            for mlid, mx in sqs_maps:
                mp = mx["Properties"]
                if str(mp.get("Enabled", "true")).lower() != "true":
                    self.fail("detector-consumes-its-queue", f"{name}: the mapping from {mp.get('EventSourceArn')} is disabled")
                if mp.get("FilterCriteria"):
                    self.fail("detector-consumes-its-queue",
                              f"{name}: the mapping from {mp.get('EventSourceArn')} filters messages (FilterCriteria drops the rest)")
                mc = (mp.get("ScalingConfig") or {}).get("MaximumConcurrency")
                if mc is not None and _int(mc, 0) < 2:
                    self.fail("detector-consumes-its-queue", f"{name}: the mapping's MaximumConcurrency is {mc}")
            schedules = []
            for rlid, rx in self.targets_of(fn):
                rp = rx["Properties"]
                if "ScheduleExpression" in rp:
                    schedules.append((rx, _minutes(str(rp["ScheduleExpression"])), str(rp.get("State", "ENABLED"))))
            good = [s for s in schedules if s[2] == "ENABLED" and s[1] is not None and s[1] <= SWEEP_MAX_MINUTES]
            if not good:
                seen = "; ".join(f"rule {rx['name']} {rx['Properties'].get('ScheduleExpression')} {state}"
                                 for rx, _, state in schedules) or "no schedule rule targets it"
                self.fail("sweep-runs-often", f"{name}: no ENABLED schedule at least every {SWEEP_MAX_MINUTES} minutes ({seen})")
            for rlid, rx in self.targets_of(fn):
                if "EventPattern" in rx["Properties"] and str(rx["Properties"].get("State", "ENABLED")) != "ENABLED":
                    self.fail("detector-receives-events", f"rule {rx['name']} (targets {name}) is {rx['Properties'].get('State')}")

    def detector_environment(self) -> None:
        for lid in self.detectors:
            env, name = _env(self.m, lid), f"function {self.m.resources[lid]['name']}"
            roles = _split(env.get("LAUNCHER_ROLE_ARNS"))
            if not roles:
                self.fail("detector-knows-the-launcher", f"{name}: LAUNCHER_ROLE_ARNS is empty")
            for v in roles:
                # The launcher role of this template, or (a detector in another account than
                # the launcher) one role ARN under the launcher path: never a wildcard role.
                if v in self.launcher_roles:
                    continue
                part = v.split(":", 5)
                if len(part) != 6 or not part[5].startswith("role/") or "?" in part[5] or "*" in part[5].rsplit("/", 1)[-1] \
                        or (self.prefix and not part[5].startswith(f"role/{self.prefix}/launcher/")) or self.launcher_roles:
                    self.fail("detector-knows-the-launcher",
                              f"{name}: LAUNCHER_ROLE_ARNS names {v!r}, not the launcher role "
                              f"({', '.join(sorted(self.launcher_roles)) or 'a role under /' + str(self.prefix) + '/launcher/'})")
            for v in _split(env.get("DEPLOYMENT_ROLE_ARNS")):
                if "*" in v or "?" in v or not v.startswith("arn:"):
                    self.fail("detector-alerts-on-changes", f"{name}: DEPLOYMENT_ROLE_ARNS is {v!r} (every change would be counted, not alerted)")
            for v in _split(env.get("LAUNCHER_SESSION_NAMES")):
                if "*" in v:
                    self.fail("detector-knows-the-launcher", f"{name}: LAUNCHER_SESSION_NAMES is {v!r}")
            mode = str(env.get("REMEDIATION", "off")).lower()
            if mode in ("suspend", "terminate"):
                caps = {"REMEDIATION_MAX_PER_SWEEP": 10000, "REMEDIATION_MAX_FLEET_PERCENT": 100}
                for key, most in caps.items():
                    v = env.get(key)
                    if v in (None, "") or not (1 <= _int(v, 0) <= most):
                        self.fail("remediation-is-capped", f"{name}: REMEDIATION={mode} but {key} is {v!r} (must be 1..{most})")
                    pname = self._param_of(lid, key)
                    if pname:
                        pp = self.m.template["Parameters"][pname]
                        if _int(pp.get("MinValue"), 0) < 1 or "MaxValue" not in pp or _int(pp.get("MaxValue"), most + 1) > most:
                            self.fail("remediation-is-capped", f"{name}: parameter {pname} behind {key} allows values outside 1..{most}")
                if _int(env.get("REMEDIATION_GRACE_SECONDS"), 0) < 60:
                    self.fail("remediation-is-capped", f"{name}: REMEDIATION={mode} with REMEDIATION_GRACE_SECONDS "
                              f"{env.get('REMEDIATION_GRACE_SECONDS')!r} (under 60)")

    def _param_of(self, lid: str, key: str) -> str | None:
        raw = self.m.template["Resources"][lid].get("Properties", {}).get("Environment", {})
        v = raw.get("Variables", {}).get(key) if isinstance(raw, dict) else None
        if isinstance(v, dict) and isinstance(v.get("Ref"), str) and v["Ref"] in self.m.template.get("Parameters", {}):
            return v["Ref"]
        return None

    # ------------------------------------------------------------------ keys, topics, alarms
    def is_admin(self, principal: dict | str) -> bool:
        """Whether a key-policy Principal names only the account (delegation to IAM)."""
        if principal == "*":
            return False
        vals = []
        for k, v in principal.items():
            if k != "AWS":
                return False
            vals += v if isinstance(v, list) else [v]
        return all(str(v) in (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root") for v in vals)

    def keys_and_topics(self) -> None:
        for rp in self.m.resource_policies:
            if rp.resource_type == "AWS::KMS::Key":
                for st in rp.doc.get("Statement", []):
                    if st.get("Effect") != "Allow" or self.is_admin(st.get("Principal", {})):
                        continue
                    acts = st.get("Action", []) if "Action" in st else ["*"]
                    acts = acts if isinstance(acts, list) else [acts]
                    bad = sorted({a for a in KEY_ADMIN[:4] + ["kms:*"] for p in acts if action_matches(p, a)})
                    res = st.get("Resource", "*")
                    if bad or "NotAction" in st:
                        self.fail("key-not-given-away", f"{rp.label}: statement {st.get('Sid', '?')} allows "
                                  f"{', '.join(bad) or 'NotAction'} on {res} to {st.get('Principal')} (not the account's administrators)")
                    if self.decide(OUTSIDER, [("everything", EVERYTHING)], "kms:Decrypt", rp.arns[0], {}, resource_policy=(rp.label, rp.doc)):
                        self.fail("key-not-given-away", f"{rp.label}: another account ({OUTSIDER}) can kms:Decrypt")
                        break
            if rp.resource_type in ("AWS::SNS::Topic", "AWS::SQS::Queue"):
                acts = TOPIC_OPEN if rp.resource_type == "AWS::SNS::Topic" else ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:PurgeQueue"]
                for action in acts:
                    for who in (OUTSIDER, INSIDER):
                        if self.decide(who, [("everything", EVERYTHING)] if who == OUTSIDER else [], action, rp.arns[0], {},
                                       resource_policy=(rp.label, rp.doc)):
                            self.fail("topics-and-queues-not-open",
                                      f"{rp.label}: {'another account' if who == OUTSIDER else 'any principal of the account'} "
                                      f"({who}) can {action} through the resource policy")
                            break
                    else:
                        continue
                    break

    def alarms(self) -> None:
        topics = {x["arn"]: (lid, x) for lid, x in self.m.of_type("AWS::SNS::Topic")}
        keys = {}
        for lid, x in self.m.of_type("AWS::KMS::Key"):
            keys[x["arn"]] = x
            keys[f"<key:{x['name']}>"] = x
            keys[str(self.m.r.attr(lid, None))] = x
        alarms = self.m.of_type("AWS::CloudWatch::Alarm")
        metrics = set()
        for lid, x in alarms:
            p, name = x["Properties"], f"alarm {x['name']}"
            metrics.add(str(p.get("MetricName")))
            if str(p.get("ActionsEnabled", "true")).lower() != "true":
                self.fail("alarms-reach-a-human", f"{name}: ActionsEnabled is {p.get('ActionsEnabled')}")
            actions = p.get("AlarmActions") or []
            if not actions:
                self.fail("alarms-reach-a-human", f"{name}: no AlarmActions")
            for a in actions:
                t = topics.get(str(a))
                if t is None:
                    if ":sns:" not in str(a):
                        self.fail("alarms-reach-a-human", f"{name}: action {a} is not an SNS topic")
                    continue
                self.topic_usable_by_cloudwatch(name, t[1], keys)
            self.threshold_sane(name, p)
        if self.detectors:
            for metric in ("SweepRuns", "LogObjectsRead"):
                if metric not in metrics:
                    self.fail("alarms-reach-a-human", f"no alarm on the detector's {metric} heartbeat")

    def topic_usable_by_cloudwatch(self, alarm: str, topic: dict, keys: dict) -> None:
        kid = topic["Properties"].get("KmsMasterKeyId")
        if kid is None:
            return
        if "alias/aws/" in str(kid):
            self.fail("alarms-reach-a-human", f"{alarm}: topic {topic['name']} is encrypted with the AWS-managed key {kid}, "
                      "which CloudWatch cannot use")
            return
        key = keys.get(str(kid))
        if key is None:
            return
        pol = key["Properties"].get("KeyPolicy", {})
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            if not self.decide("cloudwatch.amazonaws.com", [], action, key["arn"], {}, resource_policy=("key policy", pol)):
                self.fail("alarms-reach-a-human", f"{alarm}: key {key['name']} of topic {topic['name']} does not let "
                          f"cloudwatch.amazonaws.com {action}")

    def threshold_sane(self, name: str, p: dict) -> None:
        metric, op = str(p.get("MetricName")), str(p.get("ComparisonOperator", ""))
        th = _float(p.get("Threshold"))
        high_bad = {"ApproximateNumberOfMessagesVisible": 1, "Errors": 1, "Throttles": 1,
                    "ApproximateAgeOfOldestMessage": 3600, "DeadLetterErrors": 1, "FailedInvocations": 1}
        low_bad = {"SweepRuns": 1, "LogObjectsRead": 1}
        if metric in high_bad:
            limit = high_bad[metric]
            if op not in ("GreaterThanOrEqualToThreshold", "GreaterThanThreshold") or th is None or th > limit \
                    or (op == "GreaterThanThreshold" and th >= limit and limit == 1):
                self.fail("alarm-thresholds-sane", f"{name}: fires on {metric} {op} {p.get('Threshold')} "
                          f"(must fire at {limit} or less)")
        if metric in low_bad:
            if op not in ("LessThanThreshold", "LessThanOrEqualToThreshold") or th is None or th < low_bad[metric] \
                    or (op == "LessThanOrEqualToThreshold" and th < 0):
                self.fail("alarm-thresholds-sane", f"{name}: fires on {metric} {op} {p.get('Threshold')} (must fire when below 1)")
            if str(p.get("TreatMissingData", "missing")) != "breaching":
                self.fail("alarm-thresholds-sane", f"{name}: missing {metric} data is {p.get('TreatMissingData', 'missing')}, not breaching")
        ep, dp = _int(p.get("EvaluationPeriods"), 0), _int(p.get("DatapointsToAlarm", p.get("EvaluationPeriods")), 0)
        if ep < 1 or ep > 5 or dp < 1 or dp > ep:
            self.fail("alarm-thresholds-sane", f"{name}: EvaluationPeriods {p.get('EvaluationPeriods')} / DatapointsToAlarm {p.get('DatapointsToAlarm')}")
        period = _int(p.get("Period"), 0)
        if metric not in low_bad and (period < 10 or period > 3600):
            self.fail("alarm-thresholds-sane", f"{name}: Period {p.get('Period')} (10..3600 s)")
        if metric in low_bad and (period < 60 or period > 86400):
            self.fail("alarm-thresholds-sane", f"{name}: Period {p.get('Period')} (60..86400 s)")

    # ------------------------------------------------------------------ trust and URLs
    def trust_and_urls(self) -> None:
        for arn in sorted(self.governance_roles):
            p = self.m.principals[arn]
            for who in (OUTSIDER, INSIDER, f"arn:aws:iam::{ACCOUNT}:root"):
                if self.decide(who, [("everything", EVERYTHING)] if who == OUTSIDER else [], "sts:AssumeRole", arn, {},
                               resource_policy=("trust policy", p.trust or {"Statement": []})):
                    self.fail("governance-roles-trust-only-lambda", f"{self.who(arn)} can be assumed by {who}")
                    break
            for svc in ("ec2.amazonaws.com", "ecs-tasks.amazonaws.com", "states.amazonaws.com", "scheduler.amazonaws.com"):
                if self.decide(svc, [], "sts:AssumeRole", arn, {"aws:SourceAccount": ACCOUNT},
                               resource_policy=("trust policy", p.trust or {"Statement": []})):
                    self.fail("governance-roles-trust-only-lambda", f"{self.who(arn)} can be assumed by {svc}")
                    break
        for lid in self.launchers + self.detectors:
            x = self.m.resources[lid]
            for action in ("lambda:InvokeFunction", "lambda:InvokeFunctionUrl"):
                for q in ("", ":live"):
                    res = x["arn"] + q
                    if self.decide(OUTSIDER, [("everything", EVERYTHING)], action, res, {}, resource_policy=self.resource_policy(res)) \
                            or self.decide(OUTSIDER, [("everything", EVERYTHING)], action, res,
                                           {"lambda:FunctionUrlAuthType": "NONE", "lambda:InvokedViaFunctionUrl": "true"},
                                           resource_policy=self.resource_policy(res)):
                        self.fail("functions-not-public", f"function {x['name']}{q}: anyone ({OUTSIDER}) can {action}")
                        break
        for lid, x in self.m.of_type("AWS::Lambda::Url"):
            p = x["Properties"]
            target = str(p.get("TargetFunctionArn"))
            if str(p.get("AuthType")) != "AWS_IAM" and not (
                    any(target.startswith(self.m.resources[lid2]["arn"]) or target == self.m.resources[lid2]["name"]
                        for lid2 in self.launchers) and str(p.get("Qualifier")) == "contro1-webhook"):
                self.fail("function-urls-use-iam", f"function URL of {target} (qualifier {p.get('Qualifier', '$LATEST')}) has AuthType {p.get('AuthType')}")


def _int(v, default: int) -> int:
    try:
        return int(str(v))
    except (TypeError, ValueError):
        return default


def _float(v) -> float | None:
    try:
        return float(str(v))
    except (TypeError, ValueError):
        return None


RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
CRON = re.compile(r"^cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)$")


def _minutes(expr: str) -> int | None:
    m = RATE.match(expr.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return n * {"m": 1, "h": 60, "d": 1440}[unit[0]]
    c = CRON.match(expr.strip())
    if c and all(f in ("*", "?") for f in c.groups()[1:]):
        minute = c.group(1)
        if minute == "*":
            return 1
        s = re.fullmatch(r"(?:\*|0)/(\d+)", minute)
        if s:
            return int(s.group(1))
    return None


def scenarios(template: dict) -> list[tuple[str, dict]]:
    """The defaults, and each value the detector's REMEDIATION parameter allows."""
    out = [("defaults", {})]
    for lid, r in template.get("Resources", {}).items():
        env = (r.get("Properties", {}).get("Environment") or {})
        v = env.get("Variables", {}).get("REMEDIATION") if isinstance(env, dict) else None
        if isinstance(v, dict) and isinstance(v.get("Ref"), str):
            p = template.get("Parameters", {}).get(v["Ref"], {})
            for val in p.get("AllowedValues", []):
                if str(val) != str(p.get("Default")):
                    out.append((f"{v['Ref']}={val}", {v["Ref"]: str(val)}))
    return out


def check(template: dict) -> list[Finding]:
    seen: dict[str, Finding] = {}
    for label, overrides in scenarios(template):
        try:
            m = build(template, overrides)
        except Exception as e:  # noqa: BLE001 - the gate fails closed on a template it cannot read
            return [Finding("template-resolves", f"cannot resolve the template ({label}): {e}")]
        for f in Checker(m, label).run(full=label == "defaults"):
            key = re.sub(r" \[with [^]]*\]$", "", f.message)
            seen.setdefault(key, f)
    return list(seen.values())
