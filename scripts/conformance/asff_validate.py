#!/usr/bin/env python3
"""Validate Security Hub `BatchImportFindings` requests with botocore's own
service model and parameter validator (the shapes and constraints the AWS
SDKs are generated from), plus the limits the Security Hub documentation
states that the model does not carry: at most 100 findings a request, 240 KB
a finding, 6 MB a request.

Each input file holds JSON documents, one a line: either a request body
(`{"Findings": [...]}`, as the SDK sent it) or one ASFF finding (a line of
`detector scan --format asff`), validated as a request of one.

Usage: asff_validate.py FILE...   ("-" reads stdin)
Exit 0 when every request is valid, 1 when any is not, 2 on a setup error.
"""
import json
import sys

try:
    import botocore
    import botocore.session
    from botocore.validate import ParamValidator
except ImportError as e:
    print(f"asff_validate: {e}; run scripts/venv.sh (scripts/requirements-test.txt)", file=sys.stderr)
    sys.exit(2)

MAX_FINDINGS = 100
MAX_FINDING_BYTES = 240 * 1024
MAX_REQUEST_BYTES = 6 * 1024 * 1024


def main(paths):
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    model = botocore.session.get_session().get_service_model("securityhub")
    shape = model.operation_model("BatchImportFindings").input_shape
    validator = ParamValidator()
    total = bad = findings = 0
    for path in paths:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8")
        with f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                total += 1
                where = f"{path}:{n}"
                doc = json.loads(line)
                params = doc if "Findings" in doc else {"Findings": [doc]}
                problems = []
                report = validator.validate(params, shape)
                if report.has_errors():
                    problems.append(report.generate_report())
                fs = params.get("Findings") or []
                findings += len(fs)
                if len(fs) > MAX_FINDINGS:
                    problems.append(f"{len(fs)} findings in one request (at most {MAX_FINDINGS})")
                for i, x in enumerate(fs):
                    size = len(json.dumps(x, separators=(",", ":")).encode())
                    if size > MAX_FINDING_BYTES:
                        problems.append(f"Findings[{i}] is {size} bytes (at most {MAX_FINDING_BYTES})")
                size = len(line.encode())
                if size > MAX_REQUEST_BYTES:
                    problems.append(f"the request is {size} bytes (at most {MAX_REQUEST_BYTES})")
                if problems:
                    bad += 1
                    for p in problems:
                        print(f"{where}: {p}")
    print(f"botocore {botocore.__version__} securityhub {model.api_version}: "
          f"{total - bad} of {total} requests valid ({findings} findings)")
    return 1 if bad or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
