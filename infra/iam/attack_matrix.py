#!/usr/bin/env python3
"""The attack matrix: every row of THREAT-MODEL T1-T19 as IAM requests, evaluated.

Each attack is a request (principal, action, resource, context) by an insider (a workload
account role with AdministratorAccess that is not the deployment, pipeline or break-glass
role) or an agent; each legitimate call is one the launcher, the detector, the sweep role, the
pipeline or the deployment role makes. Every request is evaluated by infra/iam/evaluator.py
against the artefacts infra/policies/generate.py writes (from the SAM template, example
values) and the resource policies the template declares, in these columns:

  deny      the caller's identity policies + the generated deny policies (single account)
  boundary  the caller's identity policies under the generated permissions boundary
  scp       the caller's identity policies under FullAWSAccess + every generated SCP file
  res-only  the caller's identity policies alone (what the resource policies do by themselves;
            shown, never a failure)

The resource's own policy (queue, bucket, table, key, secret, topic, function permissions)
applies in every column. It prints the matrix and exits 1 when an attack is allowed in the
deny, boundary or scp column, or when a legitimate call is denied in any column.

--self-test also evaluates mutated copies of the template (the bypass deny policy removed,
lambda:Create* back on the allowed images, the direct-invoke deny removed, a secret policy
removed) and requires each to fail a row of the threat it opens.

Usage: attack_matrix.py [--template infra/sam/template.yaml] [--only-failures] [--why] [--self-test]
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import sys
from dataclasses import dataclass, field

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "policies"))

import generate  # noqa: E402
from evaluator import Decision, Request, evaluate  # noqa: E402
from template_model import Deployed  # noqa: E402

A = generate.EXAMPLE["account"]
R = generate.EXAMPLE["region"]
P = generate.EXAMPLE["name_prefix"]
ADMIN_ACCESS = ("AdministratorAccess", {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
FULL_AWS_ACCESS = ("FullAWSAccess", {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
INSIDER = f"arn:aws:iam::{A}:role/Admin"
AGENT = f"arn:aws:iam::{A}:role/agents/ci-bot"
EXEC_ROLE = f"arn:aws:iam::{A}:role/agent-exec/sandbox"
OTHER_EXEC_ROLE = f"arn:aws:iam::{A}:role/agent-exec/other"
IMAGE = generate.EXAMPLE["allowed_image_arns"].split(",")[0]
CONNECTOR = f"arn:aws:lambda:{R}:aws:network-connector:aws-network-connector:HTTP_INGRESS"
SWEEP_ROLE_NAME = "microvm-gov-sweep"
DEPLOYER = generate.EXAMPLE["deployment_role_arn"]
BREAK_GLASS = generate.EXAMPLE["break_glass_role_arn"]
PIPELINE = generate.EXAMPLE.get("pipeline_role_arn", f"arn:aws:iam::{A}:role/pipeline/microvm-gov-pipeline")
COLUMNS = ("deny", "boundary", "scp", "res-only")


# The template's parameters for the example deployment (the generator's example values, and
# the rest of what the template needs).
def template_values() -> dict:
    v = generate.values_from({**generate.EXAMPLE, "allowed_execution_role_arns": EXEC_ROLE,
                              "pipeline_role_arn": PIPELINE, "sweep_role_name": SWEEP_ROLE_NAME})
    v.update({
        "AllowedExecutionRoleArns": [EXEC_ROLE],
        "Remediation": "terminate",
        "AlertEmail": "secops@example.com",
        "PipelineRoleArn": PIPELINE,
        "SweepAccounts": "",
    })
    return v


@dataclass
class Row:
    threat: str
    actor: str  # insider | agent | launcher | detector | sweep | pipeline | deployer | aws-service
    what: str
    request: Request
    legit: bool = False
    identity: list = field(default_factory=list)
    columns: tuple[str, ...] = COLUMNS


@dataclass
class Artefacts:
    denies: list[tuple[str, dict]]
    boundary: dict
    scps: list[dict]
    agent_policy: dict | None
    stack_policy: dict | None
    deployed: Deployed


def build_artefacts(template_path: pathlib.Path, mutate=None) -> Artefacts:
    template = generate.load_template(template_path)
    if mutate:
        mutate(template)
    args, scp_args = dict(generate.EXAMPLE), dict(generate.EXAMPLE_SCP)
    files = generate.artefacts(template, args, scp_args)
    docs = {k: json.loads(v) for k, v in files.items()}
    scps = [docs[k] for k in sorted(docs) if k.startswith("scp-")]
    return Artefacts(
        denies=[(k, v) for k, v in sorted(docs.items()) if k.startswith("deny-") and not k.endswith("-boundary.json")],
        boundary=docs["deny-direct-microvm-access-boundary.json"],
        scps=scps,
        agent_policy=docs.get("agent-invoke-launcher.json"),
        stack_policy=docs.get("stack-policy.json"),
        deployed=Deployed(copy.deepcopy(template), template_values()),
    )


def decide(row: Row, art: Artefacts, column: str) -> Decision:
    rp = art.deployed.resource_policy(row.request.resource)
    ident = list(row.identity)
    if column == "deny":
        return evaluate(row.request, identity=ident + list(art.denies), resource_policy=rp)
    if column == "boundary":
        return evaluate(row.request, identity=ident, boundary=("boundary", art.boundary), resource_policy=rp)
    if column == "scp":
        scps = [FULL_AWS_ACCESS] + [(f"scp-{i}", d) for i, d in enumerate(art.scps, 1)]
        return evaluate(row.request, identity=ident, scps=scps, resource_policy=rp)
    return evaluate(row.request, identity=ident, resource_policy=rp)


def rows(art: Artefacts) -> list[Row]:
    d = art.deployed
    fn = lambda name: f"arn:aws:lambda:{R}:{A}:function:{P}-{name}"  # noqa: E731
    launcher_fn, detector_fn = fn("launcher"), fn("detector")
    launcher_arn, launcher_ident = d.role(lambda p: "/launcher/" in p.get("Path", ""))
    detector_arn, detector_ident = d.role(lambda p: "/detector/" in p.get("Path", ""))
    lctx = {"lambda:SourceFunctionArn": launcher_fn}
    dctx = {"lambda:SourceFunctionArn": detector_fn}
    ledger = f"arn:aws:dynamodb:{R}:{A}:table/{P}-ledger"
    pending = f"arn:aws:dynamodb:{R}:{A}:table/{P}-pending"
    dedupe = f"arn:aws:dynamodb:{R}:{A}:table/{P}-dedupe"
    queue = f"arn:aws:sqs:{R}:{A}:{P}-detector"
    events_dlq = f"arn:aws:sqs:{R}:{A}:{P}-detector-events-dlq"
    topic = f"arn:aws:sns:{R}:{A}:{P}-alerts"
    bucket = f"{P}-cloudtrail-{A}-{R}"
    log_object = f"arn:aws:s3:::{bucket}/AWSLogs/{A}/CloudTrail/{R}/2026/12/07/{A}_CloudTrail_{R}_20261207T0000Z_abc.json.gz"
    trail = f"arn:aws:cloudtrail:{R}:{A}:trail/{P}-trail"
    secrets = [a for a in d.policies if ":secretsmanager:" in a] or [
        d.arn(lid) for lid, r in d.res.items() if r["Type"] == "AWS::SecretsManager::Secret"]
    api_key = d.arn(next(l for l, r in d.res.items() if r["Type"] == "AWS::SecretsManager::Secret" and "ApiKey" in l))
    webhook = d.arn(next(l for l, r in d.res.items() if r["Type"] == "AWS::SecretsManager::Secret" and "Webhook" in l))
    token_key = d.arn(next(l for l, r in d.res.items() if r["Type"] == "AWS::KMS::Key" and "Token" in l))
    alert_key = d.arn(next(l for l, r in d.res.items() if r["Type"] == "AWS::KMS::Key" and "Alert" in l))
    deny_policy_arn = f"arn:aws:iam::{A}:policy/{P}-deny-direct-microvm-access"
    boundary_arn = f"arn:aws:iam::{A}:policy/{P}-boundary"
    stack = f"arn:aws:cloudformation:{R}:{A}:stack/{P}/5b6f0a10-0000-0000-0000-000000000000"
    det_log = f"arn:aws:logs:{R}:{A}:log-group:/aws/lambda/{P}-detector"
    launch_log = f"arn:aws:logs:{R}:{A}:log-group:/aws/lambda/{P}-launcher"
    subscription = f"{topic}:0b1c2d3e-0000-0000-0000-000000000000"
    agent_ident = [("agent-invoke-launcher", art.agent_policy)] if art.agent_policy else [
        ("agent-invoke-launcher (naive)", {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"],
            "Resource": f"{launcher_fn}:live"}]})]
    agent_ident = agent_ident + [("agent-own", {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["lambda:*", "dynamodb:*"], "Resource": "*"}]})]

    def ins(threat, what, action, resource, ctx=None, principal=INSIDER):
        return Row(threat, "insider", what, Request(principal, action, resource, ctx or {}), identity=[ADMIN_ACCESS])

    def agent(threat, what, action, resource, ctx=None, legit=False):
        return Row(threat, "agent", what, Request(AGENT, action, resource, ctx or {}), legit=legit, identity=agent_ident)

    def launcher(what, action, resource, ctx=None):
        return Row("own", "launcher", what, Request(launcher_arn, action, resource, {**lctx, **(ctx or {})}),
                   legit=True, identity=launcher_ident)

    def detector(what, action, resource, ctx=None, from_function=True):
        c = {**(dctx if from_function else {}), **(ctx or {})}
        return Row("own", "detector", what, Request(detector_arn, action, resource, c), legit=True, identity=detector_ident)

    def service(threat, what, svc, action, resource, ctx, legit=True):
        return Row(threat, "aws-service", what, Request(svc, action, resource, ctx), legit=legit, columns=("res-only",))

    # The boundary is never on the deployment, pipeline or break-glass role (nobody but the
    # pipeline may change them), so their calls are judged without it.
    def trusted(actor, who, what, action, resource, ctx=None):
        return Row("own", actor, what, Request(who, action, resource, ctx or {}), legit=True, identity=[ADMIN_ACCESS],
                   columns=("deny", "scp", "res-only"))

    out = [
        # T1-T10, the first pass
        ins("T1", "replace the launcher's code", "lambda:UpdateFunctionCode", launcher_fn),
        ins("T1", "change the detector's configuration", "lambda:UpdateFunctionConfiguration", detector_fn),
        ins("T1", "add a permission to the launcher", "lambda:AddPermission", launcher_fn),
        ins("T2", "pass the launcher role to a new function", "iam:PassRole", launcher_arn, {"iam:PassedToService": "lambda.amazonaws.com"}),
        ins("T3", "widen the launcher role's trust", "iam:UpdateAssumeRolePolicy", launcher_arn),
        ins("T4", "forge a ledger item", "dynamodb:PutItem", ledger),
        ins("T4", "forge a pending approval", "dynamodb:UpdateItem", pending),
        ins("T5", "stop the trail", "cloudtrail:StopLogging", trail),
        ins("T5", "drop the MicroVM data selector", "cloudtrail:PutEventSelectors", trail),
        ins("T6", "disable the sweep rule", "events:DisableRule", f"arn:aws:events:{R}:{A}:rule/{P}-sweep"),
        ins("T6", "purge the detector queue", "sqs:PurgeQueue", queue),
        ins("T6", "consume the detector's notifications", "sqs:DeleteMessage", queue),
        ins("T6", "set the detector's concurrency to 0", "lambda:PutFunctionConcurrency", detector_fn),
        ins("T6", "remove the bucket notification", "s3:PutBucketNotification", f"arn:aws:s3:::{bucket}"),
        ins("T6", "forge a dedupe mark", "dynamodb:PutItem", dedupe),
        ins("T6", "forge the heartbeat metric", "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "MicrovmGovernance"}),
        ins("T7", "change an allowed image", "lambda:UpdateMicrovmImage", IMAGE),
        ins("T7", "delete an allowed image's version", "lambda:DeleteMicrovmImageVersion", f"{IMAGE}:3"),
        ins("T8", "run a MicroVM in another region", "lambda:RunMicrovm", f"arn:aws:lambda:eu-west-1:{A}:microvm-image:own"),
        ins("T8", "issue a shell token directly", "lambda:CreateMicrovmShellAuthToken", IMAGE),
        agent("T8", "run a MicroVM directly", "lambda:RunMicrovm", IMAGE),
        agent("T8", "resume a suspended MicroVM directly", "lambda:ResumeMicrovm", IMAGE),
        # T11 the governance stack
        ins("T11", "UpdateStack on the governance stack", "cloudformation:UpdateStack", stack),
        ins("T11", "DeleteStack on the governance stack", "cloudformation:DeleteStack", stack),
        ins("T11", "CreateChangeSet on the governance stack", "cloudformation:CreateChangeSet", stack),
        ins("T11", "ExecuteChangeSet on the governance stack", "cloudformation:ExecuteChangeSet", stack),
        ins("T11", "replace the stack policy", "cloudformation:SetStackPolicy", stack),
        ins("T11", "a stack of one's own run as the deployment role", "iam:PassRole", DEPLOYER, {"iam:PassedToService": "cloudformation.amazonaws.com"}),
        # T12 the exempt roles
        ins("T12", "widen the deployment role's trust", "iam:UpdateAssumeRolePolicy", DEPLOYER),
        ins("T12", "attach a policy to the break-glass role", "iam:AttachRolePolicy", BREAK_GLASS),
        ins("T12", "put an inline policy on the pipeline role", "iam:PutRolePolicy", PIPELINE),
        ins("T12", "create the break-glass role where it is absent", "iam:CreateRole", BREAK_GLASS),
        ins("T12", "create the sweep role where it is absent", "iam:CreateRole", f"arn:aws:iam::{A}:role/{SWEEP_ROLE_NAME}"),
        # T13 the prevention itself
        ins("T13", "a new version of the deny policy", "iam:CreatePolicyVersion", deny_policy_arn),
        ins("T13", "make another version the default", "iam:SetDefaultPolicyVersion", deny_policy_arn),
        ins("T13", "a new version of the boundary", "iam:CreatePolicyVersion", boundary_arn),
        ins("T13", "create the boundary policy first (claim its name)", "iam:CreatePolicy", boundary_arn),
        ins("T13", "detach the deny policy from oneself", "iam:DetachRolePolicy", INSIDER, {"iam:PolicyARN": deny_policy_arn}),
        ins("T13", "detach the deny policy from a user", "iam:DetachUserPolicy", f"arn:aws:iam::{A}:user/dev", {"iam:PolicyARN": deny_policy_arn}),
        ins("T13", "remove an agent role's boundary", "iam:DeleteRolePermissionsBoundary", AGENT, {"iam:PermissionsBoundary": boundary_arn}),
        ins("T13", "replace an agent role's boundary", "iam:PutRolePermissionsBoundary", AGENT, {"iam:PermissionsBoundary": f"arn:aws:iam::{A}:policy/open"}),
        ins("T13", "create a role without the boundary", "iam:CreateRole", f"arn:aws:iam::{A}:role/free"),
        ins("T13", "create a user without the boundary", "iam:CreateUser", f"arn:aws:iam::{A}:user/free"),
        # T14 the Contro1 secrets
        ins("T14", "replace the Contro1 API key", "secretsmanager:PutSecretValue", api_key),
        ins("T14", "replace the webhook secret", "secretsmanager:PutSecretValue", webhook),
        ins("T14", "UpdateSecret on the API key", "secretsmanager:UpdateSecret", api_key),
        ins("T14", "a resource policy on the webhook secret", "secretsmanager:PutResourcePolicy", webhook),
        ins("T14", "rotate the API key with an own function", "secretsmanager:RotateSecret", api_key),
        ins("T14", "read the webhook secret", "secretsmanager:GetSecretValue", webhook),
        # T15 the alerts
        ins("T15", "a filter policy that drops every alert", "sns:SetSubscriptionAttributes", subscription),
        ins("T15", "subscribe an own endpoint", "sns:Subscribe", topic),
        ins("T15", "unsubscribe the security team", "sns:Unsubscribe", subscription),
        ins("T15", "a metric filter on the detector's log group", "logs:PutMetricFilter", det_log),
        ins("T15", "forge heartbeat lines in the detector's log", "logs:PutLogEvents", f"{det_log}:log-stream:forged"),
        ins("T15", "a log stream in the detector's log group", "logs:CreateLogStream", f"{det_log}:log-stream:forged"),
        ins("T15", "forge lines in the launcher's log", "logs:PutLogEvents", f"{launch_log}:log-stream:forged"),
        ins("T15", "flood the detector queue", "sqs:SendMessage", queue),
        # T16 direct invocation
        agent("T16", "invoke the launcher directly (forged URL event)", "lambda:InvokeFunction", f"{launcher_fn}:live"),
        agent("T16", "invoke the launcher's $LATEST directly", "lambda:InvokeFunction", launcher_fn),
        ins("T16", "invoke the launcher directly", "lambda:InvokeFunction", f"{launcher_fn}:live"),
        ins("T16", "invoke the detector directly (forged events)", "lambda:InvokeFunction", f"{detector_fn}:live"),
        # T17 the trail bucket
        ins("T17", "overwrite a log object", "s3:PutObject", log_object),
        ins("T17", "delete the log object version CloudTrail wrote", "s3:DeleteObjectVersion", log_object),
        service("T17", "another service writes into the trail bucket", "sns.amazonaws.com", "s3:PutObject", log_object,
                {"aws:SourceArn": f"arn:aws:sns:{R}:{A}:x", "s3:x-amz-acl": "bucket-owner-full-control"}, legit=False),
        # T18 the organization
        ins("T18", "leave the organization", "organizations:LeaveOrganization", "*"),
        # T19 the execution roles
        ins("T19", "an inline policy on an allowed execution role", "iam:PutRolePolicy", EXEC_ROLE),
        ins("T19", "attach a policy to an allowed execution role", "iam:AttachRolePolicy", EXEC_ROLE),
        ins("T19", "widen an allowed execution role's trust", "iam:UpdateAssumeRolePolicy", EXEC_ROLE),
        # ---- legitimate calls
        agent("own", "call the launcher through its Function URL (URL)", "lambda:InvokeFunctionUrl", f"{launcher_fn}:live",
              {"lambda:FunctionUrlAuthType": "AWS_IAM"}, legit=True),
        agent("own", "call the launcher through its Function URL (invoke)", "lambda:InvokeFunction", f"{launcher_fn}:live",
              {"lambda:InvokedViaFunctionUrl": "true"}, legit=True),
        service("own", "the reconciler schedule invokes the launcher", "events.amazonaws.com", "lambda:InvokeFunction",
                f"{launcher_fn}:live", {"aws:SourceArn": f"arn:aws:events:{R}:{A}:rule/{P}-reconciler", "aws:SourceAccount": A}),
        service("own", "the sweep schedule invokes the detector", "events.amazonaws.com", "lambda:InvokeFunction",
                f"{detector_fn}:live", {"aws:SourceArn": f"arn:aws:events:{R}:{A}:rule/{P}-sweep", "aws:SourceAccount": A}),
        service("own", "S3 notifies the detector queue", "s3.amazonaws.com", "sqs:SendMessage", queue,
                {"aws:SourceArn": f"arn:aws:s3:::{bucket}", "aws:SourceAccount": A}),
        service("own", "CloudTrail delivers a log file", "cloudtrail.amazonaws.com", "s3:PutObject", log_object,
                {"aws:SourceArn": trail, "s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceAccount": A}),
        launcher("RunMicrovm on an allowed image", "lambda:RunMicrovm", IMAGE),
        launcher("CreateMicrovmAuthToken", "lambda:CreateMicrovmAuthToken", IMAGE),
        launcher("CreateMicrovmShellAuthToken", "lambda:CreateMicrovmShellAuthToken", IMAGE),
        launcher("ResumeMicrovm", "lambda:ResumeMicrovm", IMAGE),
        launcher("SuspendMicrovm", "lambda:SuspendMicrovm", IMAGE),
        launcher("TerminateMicrovm", "lambda:TerminateMicrovm", f"{IMAGE}:2"),
        launcher("GetMicrovm (reconciler)", "lambda:GetMicrovm", IMAGE),
        launcher("ListMicrovms (reconciler: MicroVMs the ledger does not hold)", "lambda:ListMicrovms", "*"),
        launcher("pass the allowed execution role", "iam:PassRole", EXEC_ROLE, {"iam:PassedToService": "lambda.amazonaws.com"}),
        launcher("pass a network connector", "lambda:PassNetworkConnector", CONNECTOR),
        launcher("write the ledger", "dynamodb:BatchWriteItem", ledger),
        launcher("write a pending approval", "dynamodb:UpdateItem", pending),
        launcher("query executing calls", "dynamodb:Query", f"{pending}/index/executing-index"),
        launcher("read the Contro1 API key", "secretsmanager:GetSecretValue", api_key),
        launcher("read the webhook secret", "secretsmanager:GetSecretValue", webhook),
        launcher("seal a token", "kms:GenerateDataKey", token_key),
        launcher("write its log", "logs:PutLogEvents", f"{launch_log}:log-stream:2026/12/07/[$LATEST]abc"),
        Row("own", "launcher", "on-failure destination (Lambda, no source function)",
            Request(launcher_arn, "sqs:SendMessage", events_dlq), legit=True, identity=launcher_ident),
        detector("ListMicrovms", "lambda:ListMicrovms", "*"),
        detector("read a log object", "s3:GetObject", log_object),
        detector("read the log object version a notification names", "s3:GetObjectVersion", log_object),
        detector("tell a deleted log file or version (404, not 403)", "s3:ListBucket", f"arn:aws:s3:::{bucket}"),
        detector("read the ledger", "dynamodb:BatchGetItem", ledger),
        detector("write dedupe marks", "dynamodb:BatchWriteItem", dedupe),
        detector("write the heartbeat item", "dynamodb:UpdateItem", dedupe),
        detector("publish alerts", "sns:Publish", topic),
        detector("encrypt alerts", "kms:GenerateDataKey", alert_key),
        detector("trail health", "cloudtrail:GetEventSelectors", trail),
        detector("read the Contro1 API key", "secretsmanager:GetSecretValue", api_key),
        detector("integrity check", "lambda:GetFunction", launcher_fn),
        detector("integrity baseline", "ssm:GetParameter", f"arn:aws:ssm:{R}:{A}:parameter/{P}/integrity-baseline"),
        detector("remediation: terminate", "lambda:TerminateMicrovm", f"arn:aws:lambda:{R}:{A}:microvm-image:rogue"),
        detector("write its log", "logs:PutLogEvents", f"{det_log}:log-stream:2026/12/07/[$LATEST]abc"),
        detector("consume its queue (event source mapping)", "sqs:ReceiveMessage", queue, from_function=False),
        detector("delete consumed messages", "sqs:DeleteMessage", queue, from_function=False),
        detector("on-failure destination", "sqs:SendMessage", events_dlq, from_function=False),
        Row("own", "sweep", "remediation through the sweep role (cross-account)",
            Request(f"arn:aws:iam::{A}:role/{SWEEP_ROLE_NAME}", "lambda:TerminateMicrovm", f"arn:aws:lambda:{R}:{A}:microvm-image:rogue"),
            legit=True, identity=[("sweep-remediation", {"Statement": [{"Effect": "Allow", "Action": ["lambda:SuspendMicrovm", "lambda:TerminateMicrovm", "lambda:ListMicrovms"], "Resource": "*"}]})],
            columns=("scp",)),
        trusted("pipeline", PIPELINE, "UpdateStack of the governance stack", "cloudformation:UpdateStack", stack),
        trusted("pipeline", PIPELINE, "pass the deployment role to CloudFormation", "iam:PassRole", DEPLOYER,
                {"iam:PassedToService": "cloudformation.amazonaws.com"}),
        trusted("pipeline", PIPELINE, "put the Contro1 API key", "secretsmanager:PutSecretValue", api_key),
        trusted("deployer", DEPLOYER, "update the launcher's code", "lambda:UpdateFunctionCode", launcher_fn),
        trusted("deployer", DEPLOYER, "a new version of the deny policy", "iam:CreatePolicyVersion", deny_policy_arn),
        trusted("deployer", DEPLOYER, "create the launcher role (no boundary)", "iam:CreateRole", launcher_arn),
        trusted("deployer", DEPLOYER, "update the created secret", "secretsmanager:UpdateSecret", api_key),
        trusted("break-glass", BREAK_GLASS, "fix the sweep rule", "events:PutRule", f"arn:aws:events:{R}:{A}:rule/{P}-sweep"),
    ]
    del secrets
    return out


def special_rows(art: Artefacts, template_path: pathlib.Path) -> list[tuple[str, str, str, str, bool]]:
    """Rows that are not one IAM request: (threat, actor, what, outcome, attack_prevented)."""
    out = []
    # T12: a claimable exempt pattern. The organization recipe used `stacksets-exec-*`: an
    # insider creates `stacksets-exec-mallory` and is exempt from every deny.
    template = generate.load_template(template_path)
    pattern = "arn:aws:iam::*:role/stacksets-exec-*"
    try:
        files = generate.artefacts(template, dict(generate.EXAMPLE), {**generate.EXAMPLE_SCP, "deployment_role_arn": pattern})
    except generate.GenerateError as e:
        out.append(("T12", "insider", "claim a wildcard exemption (stacksets-exec-*)", f"refused by generate.py: {e}"[:90], True))
    else:
        scps = [FULL_AWS_ACCESS] + [(k, json.loads(v)) for k, v in sorted(files.items()) if k.startswith("scp-")]
        req = Request(f"arn:aws:iam::{A}:role/stacksets-exec-mallory", "lambda:UpdateFunctionCode",
                      f"arn:aws:lambda:{R}:{A}:function:{P}-launcher")
        dcs = evaluate(req, identity=[ADMIN_ACCESS], scps=scps)
        out.append(("T12", "insider", "claim a wildcard exemption (stacksets-exec-*) then change the launcher",
                    f"scp: {'ALLOW' if dcs.allowed else dcs.decision}", not dcs.allowed))
    # T11: the stack policy keeps even the pipeline from replacing or deleting state.
    if art.stack_policy is None:
        out.append(("T11", "pipeline", "stack policy: replace the ledger table", "no stack policy generated", False))
    else:
        for ty, lid in (("AWS::DynamoDB::Table", "LedgerTable"), ("AWS::S3::Bucket", "TrailBucket"),
                        ("AWS::KMS::Key", "TokenKey"), ("AWS::SecretsManager::Secret", "Contro1ApiKeySecret")):
            for action in ("Update:Replace", "Update:Delete"):
                req = Request(PIPELINE, action, f"LogicalResourceId/{lid}", {"ResourceType": ty})
                dcs = evaluate(req, resource_policy=("stack-policy", art.stack_policy))
                out.append(("T11", "pipeline", f"stack policy: {action} {lid}",
                            "ALLOW" if dcs.allowed else dcs.decision, not dcs.allowed))
        req = Request(PIPELINE, "Update:Modify", "LogicalResourceId/LauncherFunction", {"ResourceType": "AWS::Lambda::Function"})
        dcs = evaluate(req, resource_policy=("stack-policy", art.stack_policy))
        out.append(("own", "pipeline", "stack policy: Update:Modify LauncherFunction", "ALLOW" if dcs.allowed else dcs.decision, dcs.allowed))
    # Sizes: every artefact within its documented limit (generate.py raises otherwise).
    return out


def evaluate_all(art: Artefacts, template_path: pathlib.Path) -> tuple[list[tuple[Row, dict, list[str]]], list]:
    """Every row with its decisions and the columns that fail it; and the special rows."""
    out = []
    for row in rows(art):
        decisions = {c: (decide(row, art, c) if c in row.columns else None) for c in COLUMNS}
        if row.legit:
            bad = [c for c, dcs in decisions.items() if dcs is not None and not dcs.allowed]
        else:
            judged = [c for c in ("deny", "boundary", "scp") if c in row.columns] or list(row.columns)
            bad = [c for c in judged if decisions[c] is not None and decisions[c].allowed]
        out.append((row, decisions, bad))
    return out, special_rows(art, template_path)


def _statements(t: dict, lid: str) -> list:
    return t["Resources"][lid]["Properties"]["PolicyDocument"]["Statement"]


def _drop_bypass_policy(t: dict) -> None:
    del t["Resources"]["DenyGovernanceBypassPolicy"]


def _claim_images_with_create_star(t: dict) -> None:
    st = next(s for s in _statements(t, "DenyDirectMicrovmAccessPolicy") if s.get("Sid") == "OnlyTheDeployerChangesTheGovernanceStack")
    st["Action"] = ["lambda:Create*" if a == "lambda:CreateFunction*" else a for a in st["Action"]]


def _open_direct_invoke(t: dict) -> None:
    sts = _statements(t, "DenyGovernanceBypassPolicy")
    sts[:] = [s for s in sts if s.get("Sid") != "FunctionsOnlyThroughTheirUrls"]


def _secret_policy_admits_writes(t: dict) -> None:
    del t["Resources"]["DenyGovernanceBypassPolicy"]
    del t["Resources"]["Contro1ApiKeySecretPolicy"]


MUTATIONS = {
    "without the governance-bypass deny policy": (_drop_bypass_policy, "T11"),
    "lambda:Create* on the allowed images": (_claim_images_with_create_star, "own"),
    "direct invocation not denied": (_open_direct_invoke, "T16"),
    "no secret policy and no bypass deny": (_secret_policy_admits_writes, "T14"),
}


def self_test(template_path: pathlib.Path) -> int:
    """Each mutation of the template must make the matrix fail, on a row of the named threat."""
    failed = 0
    for name, (mutate, threat) in MUTATIONS.items():
        art = build_artefacts(template_path, mutate)
        results, special = evaluate_all(art, template_path)
        hit = [r for r, _, bad in results if bad and r.threat == threat]
        if hit:
            print(f"ok   self-test: {name}: {len(hit)} {threat} row(s) fail, e.g. {hit[0].actor} {hit[0].request.action}")
        else:
            failed += 1
            print(f"FAIL self-test: {name}: no {threat} row fails")
    return failed


def cell(dcs: Decision | None) -> str:
    if dcs is None:
        return "-"
    return {"explicit-deny": "DENY", "implicit-deny": "deny", "allow": "ALLOW"}[dcs.decision]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=str(HERE.parent / "sam" / "template.yaml"))
    ap.add_argument("--only-failures", action="store_true")
    ap.add_argument("--why", action="store_true", help="print the deciding policy and statement of each failure")
    ap.add_argument("--self-test", action="store_true", help="also require mutated templates to fail (SAM template only)")
    a = ap.parse_args()
    template_path = pathlib.Path(a.template)
    try:
        art = build_artefacts(template_path)
    except generate.GenerateError as e:
        print(f"attack_matrix: cannot build the artefacts or the deployed template: {e}", file=sys.stderr)
        return 1
    failures: list[str] = []
    header = f"{'#':<5} {'actor':<11} {'call':<40} {'what':<52} " + " ".join(f"{c:<8}" for c in COLUMNS) + " verdict"
    print(header)
    print("-" * len(header))
    counts = {"attack": 0, "legit": 0}
    results, special = evaluate_all(art, template_path)
    for row, decisions, bad in results:
        counts["legit" if row.legit else "attack"] += 1
        verdict = "ok" if not bad else ("FAIL: denied in " if row.legit else "FAIL: allowed in ") + ",".join(bad)
        if bad:
            failures.append(f"{row.threat} {row.actor} {row.request.action} {row.request.resource}: {verdict}")
            if a.why:
                for c in bad:
                    verdict += f"\n      {c}: {decisions[c].reason}"
        if a.only_failures and not bad:
            continue
        print(f"{row.threat:<5} {row.actor:<11} {row.request.action:<40} {row.what[:52]:<52} "
              + " ".join(f"{cell(decisions[c]):<8}" for c in COLUMNS) + f" {verdict}")
    for threat, actor, what, outcome, good in special:
        verdict = "ok" if good else "FAIL"
        if not good:
            failures.append(f"{threat} {actor} {what}: {outcome}")
        if a.only_failures and good:
            continue
        print(f"{threat:<5} {actor:<11} {'(not one request)':<40} {what[:52]:<52} {outcome[:60]} {verdict}")
    print()
    print(f"attack_matrix: {counts['attack']} attacks, {counts['legit']} legitimate calls, "
          f"{len(failures)} failures (template {template_path})")
    st_failed = self_test(template_path) if a.self_test else 0
    return 1 if failures or st_failed else 0


if __name__ == "__main__":
    sys.exit(main())
