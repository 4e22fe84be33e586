#!/usr/bin/env python3
"""Checks that the SAM template and the CDK output describe the same system.

Both are parsed (SAM before its transform); then:
  * parameters, conditions and outputs have the same names;
  * every SAM resource exists in the CDK output under the same logical id and type
    (AWS::Serverless::Function is compared with AWS::Lambda::Function);
  * the Athena named query in each is infra/athena/bypass-hunt.sql, verbatim;
  * the deny policy in each has the statements (Sid, Effect, Action, Resource) of
    infra/policies/deny-direct-microvm-access.json (the file carries placeholder ARNs).
Prints one line per check and "N passed, N failed"; exits 1 on any failure.

Usage: parity.py SAM_TEMPLATE CDK_TEMPLATE SQL_FILE DENY_POLICY_JSON
"""

from __future__ import annotations

import json
import pathlib
import sys

from cfnlint.decode import decode_str

SAM_TO_CFN = {"AWS::Serverless::Function": "AWS::Lambda::Function"}


def load(path: str) -> dict:
    template, matches = decode_str(pathlib.Path(path).read_text())
    if matches or template is None:
        raise SystemExit(f"{path}: cannot be parsed: {[str(m) for m in matches]}")
    return json.loads(json.dumps(template))


def query_text(t: dict) -> str:
    q = t["Resources"]["BypassHuntQuery"]["Properties"]["QueryString"]
    sub = q["Fn::Sub"]
    return sub[0] if isinstance(sub, list) else sub


def statement_shape(doc: dict) -> list[tuple]:
    return [(s.get("Sid"), s["Effect"], tuple(sorted(s["Action"])), s["Resource"]) for s in doc["Statement"]]


def main() -> int:
    sam, cdk, sql = load(sys.argv[1]), load(sys.argv[2]), pathlib.Path(sys.argv[3]).read_text()
    deny = json.loads(pathlib.Path(sys.argv[4]).read_text())
    results: list[tuple[bool, str]] = []

    for section in ("Parameters", "Conditions", "Outputs"):
        a, b = set(sam.get(section, {})), set(cdk.get(section, {})) - {"BootstrapVersion"}
        results.append((a == b, f"{section} match" if a == b else
                        f"{section} differ: only SAM {sorted(a - b)}, only CDK {sorted(b - a)}"))

    for lid, r in sam["Resources"].items():
        want = SAM_TO_CFN.get(r["Type"], r["Type"])
        got = cdk["Resources"].get(lid, {}).get("Type")
        results.append((got == want, f"resource {lid}: {want}" if got == want else
                        f"resource {lid}: SAM {want}, CDK {got}"))

    for name, t in (("SAM", sam), ("CDK", cdk)):
        ok = query_text(t) == sql
        results.append((ok, f"{name} Athena query is bypass-hunt.sql" if ok else
                        f"{name} Athena query differs from infra/athena/bypass-hunt.sql"))

    for name, t in (("SAM", sam), ("CDK", cdk)):
        doc = t["Resources"]["DenyDirectMicrovmAccessPolicy"]["Properties"]["PolicyDocument"]
        ok = statement_shape(doc) == statement_shape(deny)
        results.append((ok, f"{name} deny policy matches deny-direct-microvm-access.json" if ok else
                        f"{name} deny policy differs from infra/policies/deny-direct-microvm-access.json"))

    for ok, msg in results:
        print(("ok   " if ok else "FAIL ") + msg)
    failed = sum(1 for ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
