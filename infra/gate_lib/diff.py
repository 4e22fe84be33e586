"""The difference between two governance surfaces, in words.

Each line names the thing that changed (a resource by type and name, a principal, a
resource policy) and what changed in it: "function ${NamePrefix}-detector: Environment.
Variables.LAUNCHER_ROLE_ARNS changed from "arn:...:role/${NamePrefix}/launcher/..." to "*"".
IAM statements are compared as sets and shown in words ("gained Allow lambda:UpdateFunctionCode
on ... (from inline policy x)").
"""

from __future__ import annotations

import json

MAX = 240


def _short(v) -> str:
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))
    s = json.dumps(s) if isinstance(v, str) else s
    return s if len(s) <= MAX else s[: MAX - 3] + "..."


def statement_words(st) -> str:
    if not isinstance(st, dict):
        return _short(st)
    parts = [str(st.get("Effect", "?"))]
    if "Action" in st:
        parts.append(",".join(map(str, st["Action"])) if isinstance(st["Action"], list) else _short(st["Action"]))
    if "NotAction" in st:
        parts.append("every action but " + _short(st["NotAction"]))
    if "Resource" in st:
        parts.append("on " + (",".join(map(str, st["Resource"])) if isinstance(st["Resource"], list) else _short(st["Resource"])))
    if "NotResource" in st:
        parts.append("on every resource but " + _short(st["NotResource"]))
    if "Principal" in st:
        parts.append("to " + _short(st["Principal"]))
    if "NotPrincipal" in st:
        parts.append("to everyone but " + _short(st["NotPrincipal"]))
    if "Condition" in st:
        parts.append("when " + _short(st["Condition"]))
    if "from" in st:
        parts.append(f"({st['from']})")
    if "Sid" in st:
        parts.append(f"[{st['Sid']}]")
    s = " ".join(parts)
    return s if len(s) <= 2 * MAX else s[: 2 * MAX - 3] + "..."


def _walk(old, new, path: str, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            p = f"{path}.{k}" if path else k
            if k not in new:
                out.append(f"{p} removed (was {_short(old[k])})")
            elif k not in old:
                out.append(f"{p} added: {_short(new[k])}")
            else:
                _walk(old[k], new[k], p, out)
        return
    if old != new:
        out.append(f"{path or 'value'} changed from {_short(old)} to {_short(new)}")


def _statement_sets(label: str, old: list, new: list, out: list[str]) -> None:
    o = {json.dumps(s, sort_keys=True): s for s in old}
    n = {json.dumps(s, sort_keys=True): s for s in new}
    for k in sorted(set(o) - set(n)):
        out.append(f"{label} lost the statement: {statement_words(o[k])}")
    for k in sorted(set(n) - set(o)):
        out.append(f"{label} gained the statement: {statement_words(n[k])}")


def _policy_section(a: dict, b: dict, out: list[str]) -> None:
    for k in sorted(set(a) | set(b)):
        if k not in b:
            out.append(f"{k} removed")
            for s in a[k]:
                out.append(f"{k} lost the statement: {statement_words(s)}")
        elif k not in a:
            out.append(f"{k} added")
            for s in b[k]:
                out.append(f"{k} gained the statement: {statement_words(s)}")
        else:
            _statement_sets(k, a[k], b[k], out)


def differences(old: dict, new: dict) -> list[str]:
    out: list[str] = []
    for section, what in (("parameters", "parameter"), ("conditions", "condition"), ("mappings", "mapping"),
                          ("rules", "template rule"), ("outputs", "output"), ("template_metadata", "template metadata"),
                          ("build", "build input")):
        a, b = old.get(section, {}), new.get(section, {})
        for k in sorted(set(a) | set(b)):
            if k not in b:
                out.append(f"{what} {k} removed (was {_short(a[k])})")
            elif k not in a:
                out.append(f"{what} {k} added: {_short(b[k])}")
            elif a[k] != b[k]:
                sub: list[str] = []
                _walk(a[k], b[k], "", sub)
                out.extend(f"{what} {k}: {s}" for s in sub)
    a, b = old.get("identity", {}), new.get("identity", {})
    for k in sorted(set(a) | set(b)):
        if k not in b:
            out.append(f"{k} removed (it had {len(a[k].get('statements', []))} statements)")
            continue
        if k not in a:
            out.append(f"{k} added with {len(b[k].get('statements', []))} statements")
            for s in b[k].get("statements", []):
                out.append(f"{k} gained the statement: {statement_words(s)}")
            for s in b[k].get("trust", []):
                out.append(f"{k} trusts: {statement_words(s)}")
            continue
        _statement_sets(k, a[k].get("statements", []), b[k].get("statements", []), out)
        _statement_sets(f"{k} trust policy", a[k].get("trust", []), b[k].get("trust", []), out)
        if a[k].get("boundary") != b[k].get("boundary"):
            out.append(f"{k} permissions boundary changed from {_short(a[k].get('boundary'))} to {_short(b[k].get('boundary'))}")
    for section in ("policies", "resource_policies"):
        _policy_section(old.get(section, {}), new.get(section, {}), out)
    a, b = old.get("resources", {}), new.get("resources", {})
    for k in sorted(set(a) | set(b)):
        if k not in b:
            out.append(f"{k} removed")
        elif k not in a:
            out.append(f"{k} added: {_short(b[k])}")
        else:
            sub = []
            _walk(a[k], b[k], "", sub)
            out.extend(f"{k}: {s}" for s in sub)
    return out
