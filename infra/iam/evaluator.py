"""An IAM policy evaluator: what AWS decides for one request, given the policies that apply.

Pure Python 3.11 standard library, no AWS calls. It implements the documented semantics:

- statement matching: Action/NotAction (case-insensitive), Resource/NotResource (ARNs are
  case-sensitive), `*` and `?` wildcards, Principal/NotPrincipal in resource policies,
  Statement as one object or a list, every element as a string or a list;
- the condition operators (String*, Arn*, Numeric*, Date*, Bool, Null, IpAddress, BinaryEquals),
  their `...IfExists` forms, the `ForAnyValue:`/`ForAllValues:` set operators and what a key
  absent from the request does to each;
- policy variables (`${aws:PrincipalAccount}`, `${aws:username}`, `${*}`, defaults written as
  `${aws:key, 'default'}`) in Resource and in String/Arn condition values;
- the evaluation logic: an explicit deny in any policy wins; SCPs (every level) and a
  permissions boundary and session policies are intersections, each must allow; within one
  account an allow in the identity policies or in the resource policy is enough; across
  accounts both must allow.

References: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
and https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html

Policies are plain dicts as IAM stores them. Any policy argument may also be a
`(name, document)` pair; the name (else the document's `Id`, else its position) is what
`Decision.reason` cites together with the statement's `Sid` (else its index).
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Sequence

__all__ = [
    "Request",
    "Decision",
    "evaluate",
    "action_matches",
    "resource_matches",
    "statement_applies",
    "principal_matches",
    "condition_matches",
    "PolicyError",
]


class PolicyError(ValueError):
    """A policy that IAM would reject or that this evaluator cannot read (unknown operator, ...)."""


# --------------------------------------------------------------------------- request

ContextValue = str | list[str]


@dataclass(frozen=True)
class Request:
    """One API call: who (principal ARN, or a service principal such as
    `lambda.amazonaws.com`), what (`service:Action`), on which resource ARN, with which
    request context keys (case-insensitive names; a list for a multi-valued key)."""

    principal: str
    action: str
    resource: str
    context: dict[str, ContextValue] = field(default_factory=dict)
    principal_account: str | None = None
    resource_account: str | None = None

    # The context as IAM builds it: the given keys plus aws:PrincipalArn/PrincipalAccount
    # derived from the principal when they were not given. Keys lower-cased.
    def full_context(self) -> dict[str, ContextValue]:
        ctx = {k.lower(): v for k, v in self.context.items()}
        if not is_service_principal(self.principal):
            ctx.setdefault("aws:principalarn", principal_arn_of(self.principal))
            acct = self.caller_account()
            if acct:
                ctx.setdefault("aws:principalaccount", acct)
            if ":assumed-role/" in self.principal or ":role/" in self.principal:
                ctx.setdefault("aws:principaltype", "AssumedRole")
            elif ":user/" in self.principal:
                ctx.setdefault("aws:principaltype", "User")
                ctx.setdefault("aws:username", self.principal.rsplit("/", 1)[-1])
        else:
            ctx.setdefault("aws:principalservicename", self.principal)
        return ctx

    def caller_account(self) -> str | None:
        if self.principal_account is not None:
            return self.principal_account
        return account_of_arn(self.principal)

    def target_account(self) -> str | None:
        if self.resource_account is not None:
            return self.resource_account
        return account_of_arn(self.resource) or self.caller_account()

    def is_cross_account(self) -> bool:
        caller, target = self.caller_account(), self.target_account()
        return bool(caller and target and caller != target)


def is_service_principal(p: str) -> bool:
    return not p.startswith("arn:") and p.endswith(".amazonaws.com")


def account_of_arn(arn: str) -> str | None:
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and re.fullmatch(r"\d{12}", parts[4]):
        return parts[4]
    return None


def principal_arn_of(principal: str) -> str:
    """`arn:aws:sts::A:assumed-role/R/session` -> `arn:aws:iam::A:role/R` (what
    aws:PrincipalArn holds for a role session); other ARNs unchanged."""
    m = re.fullmatch(r"arn:([^:]+):sts::(\d{12}):assumed-role/([^/]+)/.+", principal)
    if m:
        return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
    return principal


# --------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class Decision:
    allowed: bool
    decision: str  # "explicit-deny" | "allow" | "implicit-deny"
    reason: str

    def __bool__(self) -> bool:  # so `if evaluate(...)` reads naturally
        return self.allowed


# --------------------------------------------------------------------------- matching


@lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == _LIT_STAR:
            out.append(re.escape("*"))
        elif ch == _LIT_QM:
            out.append(re.escape("?"))
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def action_matches(pattern: str, action: str) -> bool:
    """IAM action match: case-insensitive, `*` and `?` wildcards (`*` alone is every action)."""
    return _like(pattern, action, ignore_case=True)


def resource_matches(pattern: str, arn: str, context: dict[str, ContextValue] | None = None) -> bool:
    """IAM resource match: case-sensitive, `*`/`?` wildcards, policy variables resolved from
    `context` (a pattern whose variable cannot be resolved matches nothing)."""
    if pattern == "*":
        return True
    resolved = substitute_variables(pattern, context or {})
    if resolved is None:
        return False
    return _like(resolved, arn)


_VAR = re.compile(r"\$\{([^}]*)\}")


_LIT_STAR, _LIT_QM = "\x01", "\x02"  # a `*`/`?` that came from a variable: literal


def substitute_variables(text: str, context: dict[str, ContextValue]) -> str | None:
    """Replaces `${key}` (and `${key, 'default'}`, `${*}`, `${?}`, `${$}`) with the request's
    value. None when a variable has no value and no default: IAM then treats the element as
    not matching. A `*` or `?` that comes from a variable is a literal character, not a
    wildcard (marked internally; `_like` and `literal` understand the marks)."""
    ctx = {k.lower(): v for k, v in context.items()}
    missing = False

    def lit(v: str) -> str:
        return v.replace("*", _LIT_STAR).replace("?", _LIT_QM)

    def repl(m: re.Match[str]) -> str:
        nonlocal missing
        body = m.group(1)
        if body in ("*", "?"):
            return lit(body)
        if body == "$":
            return "$"
        default = None
        key = body.strip()
        dm = re.fullmatch(r"\s*([^,]+?)\s*,\s*'([^']*)'\s*", body)
        if dm:
            key, default = dm.group(1), dm.group(2)
        v = ctx.get(key.lower())
        if isinstance(v, list):
            v = v[0] if len(v) == 1 else None  # a multi-valued key is not a policy variable
        if v is None:
            if default is None:
                missing = True
                return ""
            v = default
        return lit(v)

    out = _VAR.sub(repl, text)
    return None if missing else out


def literal(text: str) -> str:
    """The text with variable-born wildcard marks turned back into plain characters."""
    return text.replace(_LIT_STAR, "*").replace(_LIT_QM, "?")


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def statements(policy: dict) -> list[dict]:
    st = policy.get("Statement", [])
    st = st if isinstance(st, list) else [st]
    for s in st:
        if not isinstance(s, dict):
            raise PolicyError(f"statement is not an object: {s!r}")
        if s.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError(f"statement {s.get('Sid', '?')}: Effect must be Allow or Deny, got {s.get('Effect')!r}")
    return st


def principal_matches(principal_block: Any, request: Request) -> bool:
    """Whether a Principal element names the request's principal. `"*"` and `{"AWS": "*"}`
    name everyone; an account id or `arn:...:root` names every principal of that account; a
    role ARN names that role and its sessions; `{"Service": ...}` names a service principal."""
    if principal_block == "*":
        return True
    if not isinstance(principal_block, dict):
        raise PolicyError(f"Principal must be \"*\" or an object, got {principal_block!r}")
    caller = request.principal
    for kind, values in principal_block.items():
        for v in _as_list(values):
            if not isinstance(v, str):
                continue
            if kind == "AWS":
                if v == "*":
                    if not is_service_principal(caller):
                        return True
                    continue
                if is_service_principal(caller):
                    continue
                if re.fullmatch(r"\d{12}", v) or re.fullmatch(r"arn:[^:]+:iam::\d{12}:root", v):
                    acct = v if v.isdigit() else v.split(":")[4]
                    if request.caller_account() == acct:
                        return True
                    continue
                if v == caller or v == principal_arn_of(caller):
                    return True
                # A role ARN with a path names the role; its sessions carry no path.
                m = re.fullmatch(r"arn:([^:]+):iam::(\d{12}):role/(?:.*/)?([^/]+)", v)
                if m and principal_arn_of(caller) == f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}":
                    return True
            elif kind == "Service":
                if caller.lower() == v.lower():
                    return True
            elif kind in ("Federated", "CanonicalUser"):
                if caller == v:
                    return True
            else:
                raise PolicyError(f"unknown principal type {kind!r}")
    return False


def statement_applies(stmt: dict, request: Request) -> bool:
    """Whether the statement covers this request: action, resource, principal (when the
    statement has one) and condition all match."""
    ctx = request.full_context()
    if "Action" in stmt:
        if not any(action_matches(p, request.action) for p in _as_list(stmt["Action"])):
            return False
    elif "NotAction" in stmt:
        if any(action_matches(p, request.action) for p in _as_list(stmt["NotAction"])):
            return False
    else:
        raise PolicyError(f"statement {stmt.get('Sid', '?')}: neither Action nor NotAction")
    if "Resource" in stmt:
        if not any(resource_matches(p, request.resource, ctx) for p in _as_list(stmt["Resource"])):
            return False
    elif "NotResource" in stmt:
        if any(resource_matches(p, request.resource, ctx) for p in _as_list(stmt["NotResource"])):
            return False
    # (A resource policy may omit Resource: it then covers the resource it is attached to.)
    if "Principal" in stmt:
        if not principal_matches(stmt["Principal"], request):
            return False
    elif "NotPrincipal" in stmt:
        if principal_matches(stmt["NotPrincipal"], request):
            return False
    return condition_matches(stmt.get("Condition", {}), ctx)


# --------------------------------------------------------------------------- conditions


def _parse_date(s: str) -> _dt.datetime:
    s = s.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", s):
        return _dt.datetime.fromtimestamp(float(s), tz=_dt.timezone.utc)
    t = s[:-1] + "+00:00" if s.endswith("Z") else s
    try:
        d = _dt.datetime.fromisoformat(t)
    except ValueError:
        try:
            d = _dt.datetime.strptime(s, "%Y-%m-%d")
        except ValueError as e:
            raise PolicyError(f"not a date: {s!r}") from e
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d


def _num(s: str) -> float:
    try:
        return float(s)
    except ValueError as e:
        raise PolicyError(f"not a number: {s!r}") from e


def _arn_like(pattern: str, value: str) -> bool:
    # Each of the six colon-delimited parts is matched on its own: `*` does not cross a colon
    # into another part, except in the last (resource) part which may contain colons.
    p_parts = pattern.split(":", 5)
    v_parts = value.split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return pattern == "*" or _like(pattern, value)
    return all(_like(p, v) for p, v in zip(p_parts, v_parts))


def _ip_in(network: str, value: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


# operator -> (compare(policy_value, request_value) -> bool, negated, value kind)
# "kind" decides whether policy variables are substituted in the policy value.
_OPERATORS: dict[str, tuple[Any, bool, str]] = {
    "stringequals": (lambda p, v: literal(p) == v, False, "string"),
    "stringnotequals": (lambda p, v: literal(p) == v, True, "string"),
    "stringequalsignorecase": (lambda p, v: literal(p).lower() == v.lower(), False, "string"),
    "stringnotequalsignorecase": (lambda p, v: literal(p).lower() == v.lower(), True, "string"),
    "stringlike": (lambda p, v: _like(p, v), False, "string"),
    "stringnotlike": (lambda p, v: _like(p, v), True, "string"),
    "numericequals": (lambda p, v: _num(v) == _num(p), False, "other"),
    "numericnotequals": (lambda p, v: _num(v) == _num(p), True, "other"),
    "numericlessthan": (lambda p, v: _num(v) < _num(p), False, "other"),
    "numericlessthanequals": (lambda p, v: _num(v) <= _num(p), False, "other"),
    "numericgreaterthan": (lambda p, v: _num(v) > _num(p), False, "other"),
    "numericgreaterthanequals": (lambda p, v: _num(v) >= _num(p), False, "other"),
    "dateequals": (lambda p, v: _parse_date(v) == _parse_date(p), False, "other"),
    "datenotequals": (lambda p, v: _parse_date(v) == _parse_date(p), True, "other"),
    "datelessthan": (lambda p, v: _parse_date(v) < _parse_date(p), False, "other"),
    "datelessthanequals": (lambda p, v: _parse_date(v) <= _parse_date(p), False, "other"),
    "dategreaterthan": (lambda p, v: _parse_date(v) > _parse_date(p), False, "other"),
    "dategreaterthanequals": (lambda p, v: _parse_date(v) >= _parse_date(p), False, "other"),
    "bool": (lambda p, v: str(p).lower() == str(v).lower(), False, "other"),
    "binaryequals": (lambda p, v: p == v, False, "other"),
    "ipaddress": (lambda p, v: _ip_in(p, v), False, "other"),
    "notipaddress": (lambda p, v: _ip_in(p, v), True, "other"),
    "arnequals": (lambda p, v: _arn_like(p, v), False, "string"),
    "arnlike": (lambda p, v: _arn_like(p, v), False, "string"),
    "arnnotequals": (lambda p, v: _arn_like(p, v), True, "string"),
    "arnnotlike": (lambda p, v: _arn_like(p, v), True, "string"),
}


def _norm_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _one_operator(op: str, block: dict, ctx: dict[str, ContextValue]) -> bool:
    if not isinstance(block, dict):
        raise PolicyError(f"condition {op}: expected an object of keys, got {block!r}")
    name = op
    qualifier = None
    if ":" in name:
        qualifier, name = name.split(":", 1)
        qualifier = qualifier.lower()
        if qualifier not in ("foranyvalue", "forallvalues"):
            raise PolicyError(f"unknown condition set operator {op!r}")
    lname = name.lower()
    if_exists = False
    if lname.endswith("ifexists") and lname != "ifexists":
        if_exists = True
        lname = lname[: -len("ifexists")]
    if lname == "null":
        if qualifier or if_exists:
            raise PolicyError(f"{op}: Null takes no qualifier")
        for key, want in block.items():
            present = ctx.get(key.lower()) not in (None, [])
            wants_absent = [str(w).lower() for w in _as_list(want)]
            if not any((w == "true") != present for w in wants_absent):
                return False
        return True
    if lname not in _OPERATORS:
        raise PolicyError(f"unknown condition operator {op!r}")
    compare, negated, kind = _OPERATORS[lname]
    for key, raw_values in block.items():
        values = []
        for rv in _as_list(raw_values):
            pv = _norm_value(rv)
            if kind == "string":
                pv = substitute_variables(pv, ctx)
                if pv is None:
                    continue  # an unresolved variable matches nothing
            values.append(pv)
        req = ctx.get(key.lower())
        req_list = [_norm_value(x) for x in _as_list(req)] if req is not None else []

        def matches_any(v: str) -> bool:
            return any(compare(p, v) for p in values)

        def one_value_ok(v: str) -> bool:
            # A negated operator holds when the value matches none of the policy values.
            return not matches_any(v) if negated else matches_any(v)

        if qualifier == "forallvalues":
            # Every request value must satisfy the operator; true for an absent/empty key.
            if not all(one_value_ok(v) for v in req_list):
                return False
            continue
        if qualifier == "foranyvalue":
            # At least one request value must satisfy the operator; false for an absent key.
            if not any(one_value_ok(v) for v in req_list):
                return False
            continue
        if not req_list:
            if if_exists:
                continue
            # Absent key: positive operators fail; negated operators hold.
            if negated:
                continue
            return False
        if negated:
            if not all(one_value_ok(v) for v in req_list):
                return False
        elif not any(one_value_ok(v) for v in req_list):
            return False
    return True


def condition_matches(condition: dict, context: dict[str, ContextValue]) -> bool:
    """All operators must hold; within an operator all keys; within a key any value (a
    negated operator: none)."""
    if not condition:
        return True
    if not isinstance(condition, dict):
        raise PolicyError(f"Condition must be an object, got {condition!r}")
    ctx = {k.lower(): v for k, v in context.items()}
    return all(_one_operator(op, block, ctx) for op, block in condition.items())


# --------------------------------------------------------------------------- evaluation

PolicyArg = dict | tuple[str, dict]


def _named(policies: Iterable[PolicyArg] | None, kind: str) -> list[tuple[str, dict]]:
    out = []
    for i, p in enumerate(policies or []):
        if isinstance(p, tuple):
            name, doc = p
        else:
            doc = p
            name = doc.get("Id") or f"{kind}[{i}]"
        if not isinstance(doc, dict):
            raise PolicyError(f"{name}: policy is not an object")
        out.append((name, doc))
    return out


def _sid(stmt: dict, index: int) -> str:
    return stmt.get("Sid") or f"#{index}"


@dataclass
class _Outcome:
    deny: str | None = None
    allow: str | None = None


def _scan(policies: list[tuple[str, dict]], request: Request) -> _Outcome:
    out = _Outcome()
    for name, doc in policies:
        for i, st in enumerate(statements(doc)):
            if not statement_applies(st, request):
                continue
            where = f"{name} statement {_sid(st, i)}"
            if st["Effect"] == "Deny":
                if out.deny is None:
                    out.deny = where
            elif out.allow is None:
                out.allow = where
    return out


def _scp_levels(scps: Sequence[Any] | None) -> list[list[tuple[str, dict]]]:
    """A flat list of policies is one level (root, OU or account): an allow in any of them
    counts. A list of lists is several levels, each of which must allow."""
    if scps is None:
        return []
    if scps and all(isinstance(x, list) for x in scps):
        return [_named(level, f"scp-level{n}") for n, level in enumerate(scps)]
    return [_named(scps, "scp")]


def evaluate(
    request: Request,
    *,
    identity: Sequence[PolicyArg] = (),
    resource_policy: PolicyArg | None = None,
    boundary: PolicyArg | None = None,
    scps: Sequence[Any] | None = None,
    session_policies: Sequence[PolicyArg] | None = None,
) -> Decision:
    """The decision IAM makes. `scps=None` means no organization (nothing limits); an empty
    list means an organization whose SCPs allow nothing. `boundary=None` means no boundary."""
    service_caller = is_service_principal(request.principal)
    ident = [] if service_caller else _named(identity, "identity")
    res = _named([resource_policy], "resource-policy") if resource_policy is not None else []
    bnd = _named([boundary], "boundary") if (boundary is not None and not service_caller) else []
    sess = _named(session_policies, "session") if (session_policies and not service_caller) else []
    levels = [] if service_caller else _scp_levels(scps)

    # 1. An explicit deny in any applicable policy decides.
    for group in [*levels, ident, res, bnd, sess]:
        o = _scan(group, request)
        if o.deny:
            return Decision(False, "explicit-deny", f"explicit deny in {o.deny}")

    # 2. Organization SCPs: every level must allow.
    if scps is not None and not service_caller:
        if not levels:
            return Decision(False, "implicit-deny", "no SCP allows the action")
        for level in levels:
            o = _scan(level, request)
            if not o.allow:
                names = ", ".join(n for n, _ in level) or "(empty level)"
                return Decision(False, "implicit-deny", f"no SCP allows it at the level of {names}")

    res_allow = _scan(res, request).allow if res else None
    ident_allow = _scan(ident, request).allow if ident else None
    bnd_allow = _scan(bnd, request).allow if bnd else None
    sess_allow = _scan(sess, request).allow if sess else None

    if service_caller:
        if res_allow:
            return Decision(True, "allow", f"allowed by {res_allow}")
        return Decision(False, "implicit-deny", "no resource policy allows the service principal")

    def limits_ok() -> str | None:
        if bnd and not bnd_allow:
            return f"the permissions boundary {bnd[0][0]} does not allow it"
        if sess and not sess_allow:
            return "no session policy allows it"
        return None

    if request.is_cross_account():
        if not res_allow:
            return Decision(False, "implicit-deny", "cross-account: no resource policy allows it")
        if not ident_allow:
            return Decision(False, "implicit-deny", "cross-account: no identity policy allows it")
        lim = limits_ok()
        if lim:
            return Decision(False, "implicit-deny", lim)
        return Decision(True, "allow", f"allowed by {ident_allow} and {res_allow}")

    if res_allow:
        # A resource policy that names the session itself (or an IAM user) is not limited by
        # the boundary or session policy; one that names the role or the account is.
        names_session = request.principal.startswith(("arn:aws:sts::", "arn:aws-us-gov:sts::", "arn:aws-cn:sts::")) and any(
            _names_exactly(st, request.principal) for _, doc in res for st in statements(doc)
        ) or ":user/" in request.principal
        if names_session or not limits_ok():
            return Decision(True, "allow", f"allowed by {res_allow}")
    if not ident_allow:
        return Decision(False, "implicit-deny", "no identity or resource policy allows it")
    lim = limits_ok()
    if lim:
        return Decision(False, "implicit-deny", lim)
    return Decision(True, "allow", f"allowed by {ident_allow}")


def _names_exactly(stmt: dict, principal: str) -> bool:
    if stmt.get("Effect") != "Allow":
        return False
    p = stmt.get("Principal")
    return isinstance(p, dict) and principal in _as_list(p.get("AWS"))
