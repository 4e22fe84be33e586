"""`infra/gate TEMPLATE...`: the cfn-guard rules, the semantic invariants and the baseline diff.

Usage: infra/gate [--update] [--baseline FILE] [--rules FILE] TEMPLATE...

For each template (SAM or plain CloudFormation; SAM is expanded with its transform for the
invariants and the surface, and given as written to cfn-guard):
  1. guard: the repository's cfn-guard rules (infra/guard/organization.guard for infra/org/*
     and the CDK organization stacks, infra/guard/microvm-governance.guard otherwise);
  2. invariants: infra/gate_lib/invariants.py on the resolved policies;
  3. baseline: the governance surface (surface.py) against infra/baseline/<name>.json,
     every difference printed in words.
Exits 0 only when every layer passes for every template. --update rewrites the baseline(s)
(the guard and invariant layers still run and still decide the exit status). --baseline and
--rules take one template only.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
from dataclasses import dataclass, field

from . import diff, guard, invariants, model, surface

INFRA = pathlib.Path(__file__).resolve().parent.parent
BASELINE_DIR = INFRA / "baseline"


def baseline_path(template: str) -> pathlib.Path:
    """infra/sam/template.yaml -> sam-template.json; infra/org/member.yaml -> org-member.json;
    cdk.out/MicrovmGovernance.template.json -> cdk-MicrovmGovernance.json."""
    p = pathlib.Path(template)
    if p.parent.name == "cdk.out":
        return BASELINE_DIR / f"cdk-{p.name.split('.')[0]}.json"
    return BASELINE_DIR / f"{p.parent.name}-{p.name.split('.')[0]}.json"


@dataclass
class Result:
    guard: list = field(default_factory=list)
    invariants: list = field(default_factory=list)
    baseline: list = field(default_factory=list)
    seconds: float = 0.0
    surface: dict | None = None

    @property
    def ok(self) -> bool:
        return not (self.guard or self.invariants or self.baseline)


def check(raw: dict, baseline: pathlib.Path | None, rules: pathlib.Path | None, update: bool = False,
          build_raw: dict | None = None) -> Result:
    """build_raw: the template as written, when `raw` is already expanded (the mutation tests
    mutate the expanded SAM template; its Transform and CodeUri come from the original)."""
    t0 = time.monotonic()
    res = Result()
    if rules is not None:
        try:
            res.guard = guard.run(raw, rules)
        except (OSError, FileNotFoundError) as e:
            res.guard = [f"cfn-guard could not run: {e}"]
    try:
        plain = model.expand(json.loads(json.dumps(raw)))
    except Exception as e:  # noqa: BLE001 - the gate fails closed
        res.invariants = [invariants.Finding("template-resolves", f"the SAM transform failed: {e}")]
        res.seconds = time.monotonic() - t0
        return res
    res.invariants = invariants.check(plain)
    try:
        res.surface = surface.surface(plain, build_raw if build_raw is not None else raw)
    except Exception as e:  # noqa: BLE001
        res.baseline = [f"cannot compute the governance surface: {e}"]
        res.seconds = time.monotonic() - t0
        return res
    if baseline is not None:
        if update:
            baseline.parent.mkdir(parents=True, exist_ok=True)
            baseline.write_text(surface.dumps(res.surface))
        elif not baseline.is_file():
            res.baseline = [f"no baseline {baseline}: run infra/gate --update and commit it"]
        else:
            res.baseline = diff.differences(json.loads(baseline.read_text()), res.surface)
    res.seconds = time.monotonic() - t0
    return res


def main(argv: list[str]) -> int:
    update = "--update" in argv
    argv = [a for a in argv if a != "--update"]
    baseline_override = rules_override = None
    for opt in ("--baseline", "--rules"):
        if opt in argv:
            i = argv.index(opt)
            if i + 1 >= len(argv):
                print(__doc__, file=sys.stderr)
                return 2
            val = pathlib.Path(argv[i + 1])
            argv = argv[:i] + argv[i + 2:]
            if opt == "--baseline":
                baseline_override = val
            else:
                rules_override = val
    if not argv or any(a.startswith("--") for a in argv) or ((baseline_override or rules_override) and len(argv) != 1):
        print(__doc__, file=sys.stderr)
        return 2
    failed = 0
    for path in argv:
        try:
            raw = model.load(path)
        except (SystemExit, OSError) as e:
            print(f"gate: {path}: FAIL: cannot read the template: {e}")
            failed += 1
            continue
        base = baseline_override or baseline_path(path)
        rules = rules_override or guard.default_rules(path)
        r = check(raw, base, rules, update)
        print(f"gate: {path}")
        print(f"  guard ({rules.name}): " + ("ok" if not r.guard else f"FAIL ({len(r.guard)})"))
        for g in r.guard:
            print(f"    - {g}")
        print("  invariants: " + ("ok" if not r.invariants else f"FAIL ({len(r.invariants)})"))
        for f in r.invariants:
            print(f"    - [{f.invariant}] {f.message}")
        if update:
            print(f"  baseline: written to {base}")
        else:
            print(f"  baseline ({base}): " + ("ok" if not r.baseline else f"FAIL ({len(r.baseline)} differences)"))
            for d in r.baseline:
                print(f"    - {d}")
        print(f"  => {'PASS' if r.ok else 'FAIL'} in {r.seconds:.1f} s")
        failed += 0 if r.ok else 1
    print(f"gate: {len(argv) - failed} passed, {failed} failed")
    return 1 if failed else 0
