#!/usr/bin/env python3
"""Writes a CloudFormation/SAM template as long-form JSON (short-form YAML tags expanded).

cfn-guard reads `!GetAtt Role.Arn` as the string "Role.Arn" but the JSON form as a list; the
rules in this directory are written for the long form, which the CDK output already is.

Usage: long_form.py TEMPLATE OUT.json
"""

import json
import pathlib
import sys

from cfnlint.decode import decode_str


def main() -> int:
    src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    template, matches = decode_str(src.read_text())
    if matches or template is None:
        print(f"{src}: cannot be parsed: {[str(m) for m in matches]}", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(template, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
