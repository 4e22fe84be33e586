#!/usr/bin/env python3
"""Every EventBridge rule's pattern fits EventBridge's event-pattern quota once deployed.

The quota is 2,048 characters by default (adjustable; "Event pattern size" in the Amazon
EventBridge quotas page of the EventBridge User Guide). A pattern over it makes the rule, and
so the stack, fail to deploy. Each `AWS::Events::Rule` of the given (plain CloudFormation)
templates is resolved with the longest values its parameters allow: a 21-character
NamePrefix (its AllowedPattern `^[a-z][a-z0-9-]{1,20}$`), the partition `aws-us-gov`, a
14-character region, a 12-digit account. Its compact JSON must fit the quota with a margin
(MARGIN) for patterns that grow.

Usage: event_pattern_size.py [--self-test] TEMPLATE...   (the CDK synth output and the
organization templates in their CloudFormation form; parity holds SAM to the same patterns)
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

from cfnlint.decode import decode_str
from report import report

QUOTA = 2048
MARGIN = 64
LONGEST = {
    "NamePrefix": "n" * 21,
    "AWS::Partition": "aws-us-gov",
    "AWS::Region": "ap-southeast-5",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
}


def resolve(node, params):
    """The node with every Ref / Fn::Sub / Fn::Join it holds turned into text."""
    if isinstance(node, list):
        return [resolve(v, params) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, value), = node.items()
        if key == "Ref":
            return params.get(value, "x" * 64)
        if key == "Fn::Sub":
            text, extra = (value, {}) if isinstance(value, str) else (value[0], value[1])
            local = {**params, **{k: str(resolve(v, params)) for k, v in extra.items()}}
            return re.sub(r"\$\{([^}!]+)\}", lambda m: local.get(m[1], "x" * 64), text)
        if key == "Fn::Join":
            sep, parts = value
            return sep.join(str(resolve(p, params)) for p in parts)
        if key == "Fn::If":
            # The longer branch is what the quota must hold.
            options = [resolve(v, params) for v in value[1:]]
            return max(options, key=lambda o: len(json.dumps(o)))
    return {k: resolve(v, params) for k, v in node.items()}


def pattern_sizes(template: dict) -> list[tuple[str, int]]:
    out = []
    for lid, res in sorted(template.get("Resources", {}).items()):
        props = res.get("Properties") or {}
        if res.get("Type") == "AWS::Events::Rule" and "EventPattern" in props:
            pattern = resolve(props["EventPattern"], LONGEST)
            if isinstance(pattern, str):
                pattern = json.loads(pattern)
            out.append((lid, len(json.dumps(pattern, separators=(",", ":")))))
    return out


def check(path: str, template: dict) -> list[tuple[bool, str]]:
    sizes = pattern_sizes(template)
    results = [(size + MARGIN <= QUOTA, f"{path}: {lid} pattern {size} characters (quota {QUOTA}, margin {MARGIN})")
               for lid, size in sizes]
    return results or [(True, f"{path}: no EventBridge pattern")]


def self_test(path: str, template: dict) -> list[tuple[bool, str]]:
    """A pattern grown past the quota must fail, so the check can fail."""
    grown = json.loads(json.dumps(template))
    rules = [r for r in grown["Resources"].values() if r.get("Type") == "AWS::Events::Rule" and "EventPattern" in r.get("Properties", {})]
    if not rules:
        return [(False, f"self-test: {path} has no EventBridge rule to grow")]
    rules[0]["Properties"]["EventPattern"]["detail-type"] = ["x" * QUOTA]
    failed = [ok for ok, _ in check(path, grown) if not ok]
    return [(bool(failed), f"self-test: a pattern grown past {QUOTA} characters in {path} fails")]


def main(argv: list[str]) -> int:
    selftest = "--self-test" in argv
    paths = [a for a in argv if a != "--self-test"]
    if not paths:
        print(__doc__)
        return 64
    results = []
    for p in paths:
        template, matches = decode_str(pathlib.Path(p).read_text())
        if matches:
            results.append((False, f"{p}: cannot be read: {matches[0]}"))
            continue
        results += check(p, template)
        if selftest and p == paths[0]:
            results += self_test(p, template)
    return report(results)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
