"""The cfn-guard layer: the repository's rules (infra/guard/*.guard), run as infra-check runs them.

The rules are written for long-form JSON of the template as written (SAM before its
transform): the template is decoded and written to a temporary file for cfn-guard.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile

INFRA = pathlib.Path(__file__).resolve().parent.parent
MAIN_RULES = INFRA / "guard" / "microvm-governance.guard"
ORG_RULES = INFRA / "guard" / "organization.guard"
ORG_STACKS = ("MicrovmGovernanceMember", "MicrovmGovernanceSecurity", "MicrovmGovernanceForwarding")


def default_rules(path: str) -> pathlib.Path:
    """infra/org/* and the CDK app's organization stacks get the organization rules."""
    p = pathlib.Path(path).resolve()
    if p.parent == (INFRA / "org").resolve() or p.name.split(".")[0] in ORG_STACKS:
        return ORG_RULES
    return MAIN_RULES


def binary() -> str:
    if os.environ.get("CFN_GUARD"):
        return os.environ["CFN_GUARD"]
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(platform.machine(), platform.machine())
    bundled = INFRA / "cdk" / "node_modules" / "@cdklabs" / "cdk-validator-cfnguard" / "bin" / "ubuntu" / arch / "cfn-guard"
    if bundled.is_file():
        return str(bundled)
    found = shutil.which("cfn-guard")
    if found:
        return found
    raise FileNotFoundError("cfn-guard not found: run scripts/infra-check.sh once (npm ci in infra/cdk), or set CFN_GUARD")


def run(raw_template: dict, rules: pathlib.Path) -> list[str]:
    """The failing rules' lines (empty when every rule passes)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(raw_template, f)
        data = f.name
    try:
        proc = subprocess.run([binary(), "validate", "-r", str(rules), "-d", data, "--show-summary", "fail",
                               "-o", "single-line-summary"], capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(data)
    if proc.returncode == 0:
        return []
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    failed = [f"cfn-guard rule {ln.split('.guard/', 1)[1].split()[0]} fails"
              for ln in lines if ".guard/" in ln and ln.endswith("FAIL")]
    return failed or lines[-5:] or [f"cfn-guard exited {proc.returncode}"]
