#!/usr/bin/env python3
"""Runs infra/athena/bypass-hunt.sql on a real SQL engine and compares it with `detector scan`.

There is no Athena here. DuckDB is the engine: sqlglot transpiles the hunt from Trino (Athena
engine v3) to DuckDB, the CloudTrail table is created in DuckDB from the shipped DDL
(infra/athena/cloudtrail-table.sql, parsed with sqlglot's Athena/Hive dialect, every column
and partition column with its type: userIdentity a struct, requestParameters and the other
JSON fields text), and the records are loaded the way Athena's CloudTrail SerDe reads them
(keys matched case-insensitively; an object or array in a STRING column kept as its JSON text;
a missing field NULL). The same records go, as one CloudTrail log file, to `detector scan`
with the same launcher settings, and the two sets of findings must be equal, finding by
finding (eventID, rule), with the same severity.

Trino semantics DuckDB does not share, emulated by rewriting the transpiled query to call
macros defined here (see TRINO_MACROS):
  - regexp_extract(s, p[, g]) is NULL in Trino when p does not match; DuckDB returns ''.
  - json_extract_scalar(j, p) is NULL in Trino when the value at p is an object, an array or
    JSON null, when p is missing, or when j is not valid JSON; DuckDB's ->> returns an object
    or array as its JSON text and fails on invalid JSON.
  - json_extract(j, p) is NULL in Trino when j is not valid JSON; DuckDB fails.
Everything else (regexp_like, split, filter, transform, cardinality, contains, json_parse,
json_format, try, date_format, date_add) is sqlglot's own translation.

The check that the SQL's header and infra/README.md list exactly the rules the SQL omits:
the rules in the header's "Rules:" line must each appear as a literal in the SQL, the
"Omitted:" entries must each name a reason, both lists together must be exactly what
`detector rules` prints (every rule `detector scan` can emit), and infra/README.md must name
every omitted rule.

Corpora: the crafted edge cases (infra/tests/fixtures/athena-edge-cases.json), every
example under detector/fixtures/examples, a generated corpus (seeded; every branch of the
rules), the redistributable real data bundled under tests/data/cloudtrail, and the shared
data tier under ../shared/data/cloudtrail (MICROVM_SHARED_DIR): run when present, named as not
run when absent, and a failure when absent with MICROVM_REQUIRE_SHARED=1 (CI). A corpus with
no records is a failure, not a skip.

Usage: athena_duckdb.py [--detector BIN] [--only NAME] [--keep DIR]
Prints one line per check and "N passed, M failed"; exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pathlib
import random
import re
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone

import duckdb
import sqlglot
from sqlglot import exp

REPO = pathlib.Path(__file__).resolve().parents[2]
SQL_FILE = REPO / "infra/athena/bypass-hunt.sql"
DDL_FILES = [REPO / "infra/athena/cloudtrail-table.sql", REPO / "infra/athena/cloudtrail-table-organization.sql"]
README = REPO / "infra/README.md"
EDGE_CASES = REPO / "infra/tests/fixtures/athena-edge-cases.json"
EXAMPLES = REPO / "detector/fixtures/examples"
BUNDLED = REPO / "tests/data/cloudtrail"

# The launcher every corpus is classified against (the examples' launcher). The session
# names carry a space after the comma, as a hand-typed list does: both sides must trim.
LAUNCHER_ROLE = "arn:aws:iam::111122223333:role/microvm-launcher"
LAUNCHER_SESSIONS = "microvm-launcher, spare-session"
TABLE = "cloudtrail_logs"

DDL_PLACEHOLDERS = {
    "@TABLE@": TABLE,
    "@TRAIL_BUCKET@": "example-trail-bucket",
    "@ORG_ID@": "o-exampleorg1",
    "@ACCOUNT_IDS@": "111122223333,444455556666",
    "@REGIONS@": "us-east-1,eu-west-1",
    "@START_DATE@": "2020/01/01",
}

TRINO_MACROS = [
    # Trino: NULL when the pattern does not match (DuckDB: '').
    "CREATE OR REPLACE MACRO trino_regexp_extract(s, p, g := 0) AS "
    "CASE WHEN regexp_matches(s, p) THEN regexp_extract(s, p, g) END",
    # Trino: NULL for objects, arrays, JSON null, a missing path or invalid JSON text.
    "CREATE OR REPLACE MACRO trino_json_extract_scalar(j, p) AS "
    "CASE WHEN json_valid(j) AND json_type(j, p) NOT IN ('OBJECT', 'ARRAY', 'NULL') "
    "THEN json_extract_string(j, p) END",
    # Trino: NULL for invalid JSON text.
    "CREATE OR REPLACE MACRO trino_json_extract(j, p) AS "
    "CASE WHEN json_valid(j) THEN json_extract(j, p) END",
]


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def ok(self, msg: str) -> None:
        self.passed += 1
        print(f"ok   {msg}")

    def fail(self, msg: str) -> None:
        self.failed += 1
        print(f"FAIL {msg}")


# ------------------------------------------------------------------ the SQL and the rules
def hunt_sql(hunt_days: int) -> str:
    sql = SQL_FILE.read_text()
    values = {
        "${CloudTrailTable}": TABLE,
        "${LauncherRoleArn}": LAUNCHER_ROLE,
        "${LauncherSessionNames}": LAUNCHER_SESSIONS,
        "${HuntDays}": str(hunt_days),
    }
    for key, value in values.items():
        sql = sql.replace(key, value)
    left = re.findall(r"\$\{[A-Za-z]+\}", sql)
    if left:
        raise SystemExit(f"FAIL {SQL_FILE}: unknown placeholders {sorted(set(left))}")
    return sql


def to_duckdb(trino_sql: str) -> str:
    """Trino -> DuckDB with sqlglot, the three functions whose NULL semantics differ
    replaced by the macros that give Trino's."""
    tree = sqlglot.parse_one(trino_sql, read="trino", error_level=sqlglot.ErrorLevel.RAISE)

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.RegexpExtract):
            args = [node.this, node.expression]
            if node.args.get("group") is not None:
                args.append(node.args["group"])
            return exp.Anonymous(this="trino_regexp_extract", expressions=args)
        if isinstance(node, exp.JSONExtractScalar):
            return exp.Anonymous(this="trino_json_extract_scalar", expressions=[node.this, node.expression])
        if isinstance(node, exp.JSONExtract):
            return exp.Anonymous(this="trino_json_extract", expressions=[node.this, node.expression])
        return node

    return tree.transform(swap).sql(dialect="duckdb")


def header_rules(sql: str) -> tuple[list[str], dict[str, str]]:
    """The `-- Rules:` line and the `-- Omitted:` block of the SQL header."""
    expressed: list[str] = []
    omitted: dict[str, str] = {}
    lines = sql.splitlines()
    in_omitted = False
    for line in lines:
        if not line.startswith("--"):
            break
        text = line[2:].strip()
        if text.startswith("Rules:"):
            expressed = [r.strip() for r in text[len("Rules:"):].split(",") if r.strip()]
            in_omitted = False
        elif text.startswith("Omitted"):
            in_omitted = True
        elif in_omitted and re.match(r"^[a-z0-9-]+:", text):
            rule, why = text.split(":", 1)
            omitted[rule.strip()] = why.strip()
        elif in_omitted and not text:
            in_omitted = False
    return expressed, omitted


def detector_rules(detector: str) -> list[str]:
    out = subprocess.run([detector, "rules"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"FAIL `{detector} rules` exited {out.returncode}: {out.stderr.strip()}")
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


# ------------------------------------------------------------------ the table
def ddl_tree(path: pathlib.Path) -> exp.Create:
    text = path.read_text()
    for key, value in DDL_PLACEHOLDERS.items():
        text = text.replace(key, value)
    tree = sqlglot.parse_one(text, read="athena", error_level=sqlglot.ErrorLevel.RAISE)
    assert isinstance(tree, exp.Create), f"{path} is not a CREATE statement"
    return tree


def table_columns(tree: exp.Create) -> tuple[list[tuple[str, exp.DataType]], list[tuple[str, exp.DataType]]]:
    cols = [(c.name, c.args["kind"]) for c in tree.this.expressions if isinstance(c, exp.ColumnDef)]
    part = tree.find(exp.PartitionedByProperty)
    parts = [(c.name, c.args["kind"]) for c in part.this.expressions] if part else []
    return cols, parts


# Where CloudTrail writes (the CloudTrail User Guide's log file layout), per DDL file.
LAYOUTS = {
    "cloudtrail-table.sql": r"^s3://[^/]+/AWSLogs/\$\{account\}/CloudTrail/\$\{region\}/\$\{partition_date\}$",
    "cloudtrail-table-organization.sql":
        r"^s3://[^/]+/AWSLogs/o-[a-z0-9]+/\$\{account\}/CloudTrail/\$\{region\}/\$\{partition_date\}$",
}


def projection_problems(name: str, tree: exp.Create) -> list[str]:
    """What is wrong with a DDL's partition projection: every partition column projected,
    the location template naming each, under LOCATION, in CloudTrail's layout, and a real
    log file's key (the examples') found under the prefix it projects for that file's day."""
    props = {p.name: p.args["value"].name for p in tree.find_all(exp.Property)
             if type(p) is exp.Property and p.args.get("value") is not None}
    location = tree.find(exp.LocationProperty).this.name
    template = props.get("storage.location.template", "")
    problems = []
    if props.get("projection.enabled") != "true":
        problems.append("projection.enabled is not 'true'")
    for col, _ in table_columns(tree)[1]:
        if f"projection.{col}.type" not in props:
            problems.append(f"partition column {col} has no projection.{col}.type")
        if "${" + col + "}" not in template:
            problems.append(f"storage.location.template does not name ${{{col}}}")
    if props.get("projection.partition_date.format") != "yyyy/MM/dd":
        problems.append("partition_date is not projected as yyyy/MM/dd (CloudTrail's day folders)")
    if not template.startswith(location):
        problems.append(f"storage.location.template {template!r} is not under LOCATION {location!r}")
    if not re.match(LAYOUTS[name], template):
        problems.append(f"storage.location.template {template!r} is not CloudTrail's layout {LAYOUTS[name]}")
    if name == "cloudtrail-table.sql":
        logs = sorted((EXAMPLES / "cloudtrail").rglob("*_CloudTrail_*.json.gz"))
        if not logs:
            problems.append("no example CloudTrail log file to check the template against")
        for log in logs:
            key = log.relative_to(EXAMPLES / "cloudtrail").as_posix()
            m = re.match(r"AWSLogs/(\d{12})/CloudTrail/([a-z0-9-]+)/(\d{4}/\d{2}/\d{2})/", key)
            if not m:
                problems.append(f"example {key} is not in the layout")
                continue
            prefix = (template.replace("${account}", m[1]).replace("${region}", m[2])
                      .replace("${partition_date}", m[3]))
            key_prefix = prefix.split("/", 3)[3] + "/"  # without s3://BUCKET/
            if not key.startswith(key_prefix):
                problems.append(f"the projected prefix {prefix} does not hold {key}")
    return problems


def serde_value(value, dtype: exp.DataType):
    """A JSON value as Athena's CloudTrail SerDe gives it for a column of `dtype`."""
    if value is None:
        return None
    t = dtype.this
    if t == exp.DataType.Type.STRUCT:
        if not isinstance(value, dict):
            return None
        lower = {k.lower(): v for k, v in value.items()}
        out = {}
        for field in dtype.expressions:
            name = field.this.name if isinstance(field.this, exp.Expression) else str(field.this)
            out[name] = serde_value(lower.get(name.lower()), field.args["kind"])
        return out
    if t == exp.DataType.Type.ARRAY:
        if not isinstance(value, list):
            return None
        return [serde_value(v, dtype.expressions[0]) for v in value]
    if t == exp.DataType.Type.MAP:
        if not isinstance(value, dict):
            return None
        return {str(k): (v if isinstance(v, str) or v is None else json.dumps(v)) for k, v in value.items()}
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


def partition_of(record: dict) -> dict:
    """Where CloudTrail would have delivered the record: the recipient account, the
    record's region, the UTC day of its eventTime."""
    ui = record.get("userIdentity") if isinstance(record.get("userIdentity"), dict) else {}
    account = record.get("recipientAccountId") or ui.get("accountId") or "unknown"
    day = "1970/01/01"
    t = record.get("eventTime")
    if isinstance(t, str):
        try:
            day = datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(timezone.utc).strftime("%Y/%m/%d")
        except ValueError:
            pass
    return {"account": str(account), "region": str(record.get("awsRegion") or "unknown"), "partition_date": day}


def load_table(con: duckdb.DuckDBPyConnection, tree: exp.Create, records: list[dict], workdir: pathlib.Path) -> None:
    cols, parts = table_columns(tree)
    all_cols = cols + parts
    schema = ", ".join(f'"{name}" {dtype.sql(dialect="duckdb")}' for name, dtype in all_cols)
    con.execute(f"DROP TABLE IF EXISTS {TABLE}")
    con.execute(f"CREATE TABLE {TABLE} ({schema})")
    rows = workdir / "rows.jsonl"
    with rows.open("w") as f:
        for r in records:
            lower = {k.lower(): v for k, v in r.items()}
            row = {name: serde_value(lower.get(name.lower()), dtype) for name, dtype in cols}
            row.update(partition_of(r))
            f.write(json.dumps(row) + "\n")
    columns = "{" + ", ".join(f"'{name}': '{dtype.sql(dialect='duckdb')}'" for name, dtype in all_cols) + "}"
    con.execute(
        f"INSERT INTO {TABLE} SELECT * FROM read_json('{rows}', format='newline_delimited', "
        f"columns={columns}, maximum_object_size=268435456)"
    )


# ------------------------------------------------------------------ the corpora
def records_of(path: pathlib.Path) -> list[dict] | None:
    """The CloudTrail records of one file in any shape `detector scan` reads; None for a file
    that holds none (a digest, a README)."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        lines = [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]
        return lines or None
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("Records"), list):
        return doc["Records"]
    if isinstance(doc.get("Events"), list):  # aws cloudtrail lookup-events
        return [json.loads(e["CloudTrailEvent"]) for e in doc["Events"] if "CloudTrailEvent" in e]
    if isinstance(doc.get("detail"), dict) and "eventName" in doc["detail"]:  # EventBridge
        return [doc["detail"]]
    if "eventID" in doc and "eventName" in doc:
        return [doc]
    return None


def corpus_from_dir(root: pathlib.Path) -> tuple[list[dict], int]:
    records: list[dict] = []
    files = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix not in (".gz", ".json", ".jsonl"):
            continue
        if "CloudTrail-Insight" in path.parts or "CloudTrail-Digest" in path.parts:
            continue
        got = records_of(path)
        if got is None:
            continue
        files += 1
        records.extend(got)
    return records, files


def generated_corpus(n: int = 3000, seed: int = 24) -> list[dict]:
    """Governed calls over every branch the rules have: principals, sessions, accounts,
    partitions, payload shapes, client tokens, request ids, outcomes, duplicates."""
    rnd = random.Random(seed)
    acc, other = "111122223333", "444455556666"
    names = ["RunMicrovm", "CreateMicrovmAuthToken", "CreateMicrovmShellAuthToken", "SuspendMicrovm",
             "ResumeMicrovm", "TerminateMicrovm", "RunMicrovm20250909v2", "GetMicrovm", "RunMicrovms"]
    sources = ["lambda.amazonaws.com", "lambda-microvms.amazonaws.com", "ec2.amazonaws.com"]

    def identity() -> dict:
        kind = rnd.choice(["launcher"] * 12 + ["other-role", "user", "root", "fed-user", "path-role", "no-issuer",
                                                "foreign-launcher", "gov", "service", "bad-issuer"])
        session = rnd.choice(["microvm-launcher"] * 6 + ["spare-session", "alice", " microvm-launcher"])
        role_acc = other if kind == "foreign-launcher" else acc
        if kind in ("launcher", "foreign-launcher", "other-role", "path-role", "gov", "no-issuer"):
            part = "aws-us-gov" if kind == "gov" else "aws"
            path = "team/" if kind == "path-role" else ""
            name = "AgentCiRole" if kind == "other-role" else "microvm-launcher"
            ui = {"type": "AssumedRole", "arn": f"arn:{part}:sts::{role_acc}:assumed-role/{name}/{session}",
                  "accountId": role_acc}
            if kind != "no-issuer":
                ui["sessionContext"] = {"sessionIssuer": {"type": "Role", "arn": f"arn:{part}:iam::{role_acc}:role/{path}{name}",
                                                          "accountId": role_acc, "userName": name}}
            return ui
        if kind == "user":
            return {"type": "IAMUser", "arn": f"arn:aws:iam::{acc}:user/dev-alice", "accountId": acc, "userName": "dev-alice"}
        if kind == "root":
            return {"type": "Root", "arn": f"arn:aws:iam::{acc}:root", "accountId": acc}
        if kind == "fed-user":
            return {"type": "FederatedUser", "arn": f"arn:aws:sts::{acc}:federated-user/alice", "accountId": acc,
                    "sessionContext": {"sessionIssuer": {"type": "IAMUser", "arn": f"arn:aws:iam::{acc}:user/alice"}}}
        if kind == "bad-issuer":
            return {"type": "AssumedRole", "arn": f"arn:aws:sts::{acc}:assumed-role/microvm-launcher/microvm-launcher",
                    "accountId": acc, "sessionContext": {"sessionIssuer": {"arn": "not-an-arn"}}}
        return {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}

    def payload():
        return rnd.choice([
            None, "HIDDEN_DUE_TO_SECURITY_REASONS", '{"contro1_request_id": "c1-1"}', '{"contro1_request_id": "c1-2"}',
            '{"contro1_request_id": ""}', '{"contro1_request_id": 7}', '{"other": 1}', "not json", "[1, 2]", '"c1-1"',
            {"contro1_request_id": "c1-1"}, {"contro1_request_id": "c1-2"}, {"task": "x"}, [], 12, True,
            {"contro1_request_id": None}, "MISSING",
        ])

    records = []
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    for i in range(n):
        params: dict = {"microvmIdentifier": f"mvm-{i:05d}"} if rnd.random() < 0.7 else {}
        p = payload()
        if p != "MISSING":
            params["runHookPayload"] = p
        token = rnd.choice([None, "c1-1", "c1-2", "HIDDEN_DUE_TO_SECURITY_REASONS", "MISSING"])
        if token != "MISSING":
            params["clientToken"] = token
        r = {
            "eventVersion": "1.09",
            "userIdentity": identity(),
            "eventTime": (t0 + timedelta(minutes=7 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": rnd.choice(sources[:2] * 6 + sources[2:]),
            "eventName": rnd.choice(names),
            "awsRegion": rnd.choice(["us-east-1", "eu-west-1"]),
            "requestParameters": params if rnd.random() < 0.95 else None,
            "responseElements": {"microvmId": f"mvm-r{i:05d}"} if rnd.random() < 0.5 else None,
            "eventID": f"gen-{i:05d}" if rnd.random() < 0.97 else f"gen-{max(i - 1, 0):05d}",
            "recipientAccountId": rnd.choice([acc] * 20 + [other]),
            "eventType": "AwsApiCall",
        }
        rid = rnd.choice([f"rid-{i}"] * 12 + ["", None, "MISSING"])
        if rid != "MISSING":
            r["requestID"] = rid
        if rnd.random() < 0.2:
            r["errorCode"] = rnd.choice(["AccessDenied", "ValidationException"])
        records.append(r)
    return records


# ------------------------------------------------------------------ the comparison
def scan(detector: str, records: list[dict], workdir: pathlib.Path) -> tuple[dict, str]:
    log = workdir / "records.json"
    log.write_text(json.dumps({"Records": records}))
    env = dict(os.environ, NO_COLOR="1")
    for var in ("LAUNCHER_ROLE_ARNS", "LAUNCHER_SESSION_NAMES", "ORGANIZATION_ACCOUNTS"):
        env.pop(var, None)
    out = subprocess.run(
        [detector, "scan", "--format", "jsonl", "--launcher-role-arn", LAUNCHER_ROLE,
         "--launcher-session-name", LAUNCHER_SESSIONS, str(log)],
        capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"detector scan exited {out.returncode}: {out.stderr.strip()}")
    found = {}
    for line in out.stdout.splitlines():
        f = json.loads(line)
        found[(f["event_id"], f["rule"])] = f["severity"]
    return found, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""


def hunt(con: duckdb.DuckDBPyConnection, duck_sql: str) -> dict:
    rows = con.execute(duck_sql).fetchall()
    names = [d[0] for d in con.description]
    found = {}
    for row in rows:
        r = dict(zip(names, row))
        found[(r["event_id"], r["rule"])] = r["severity"]
    return found


def compare(checks: Checks, name: str, detector: str, records: list[dict], duck_sql: str,
            tree: exp.Create, workdir: pathlib.Path, omitted: set[str]) -> None:
    con = duckdb.connect()
    for macro in TRINO_MACROS:
        con.execute(macro)
    load_table(con, tree, records, workdir)
    want, summary = scan(detector, records, workdir)
    skipped = {k: v for k, v in want.items() if k[1] in omitted}
    want = {k: v for k, v in want.items() if k[1] not in omitted}
    try:
        got = hunt(con, duck_sql)
    except duckdb.Error as e:
        checks.fail(f"{name}: the hunt does not run on DuckDB: {e}")
        return
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    severity = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    what = f"{name}: {len(records)} records, detector {len(want)} findings, SQL {len(got)}"
    if skipped:
        what += f" (+{len(skipped)} of rules the SQL omits: " + ", ".join(sorted({k[1] for k in skipped})) + ")"
    if missing or extra or severity:
        checks.fail(what)
        for k in missing[:20]:
            print(f"       only detector: {k[0]} {k[1]} ({want[k]})")
        for k in extra[:20]:
            print(f"       only SQL:      {k[0]} {k[1]} ({got[k]})")
        for k in severity[:20]:
            print(f"       severity:      {k[0]} {k[1]} detector {want[k]}, SQL {got[k]}")
        shown = min(len(missing), 20) + min(len(extra), 20) + min(len(severity), 20)
        if shown < len(missing) + len(extra) + len(severity):
            print(f"       ... {len(missing) + len(extra) + len(severity) - shown} more")
    else:
        checks.ok(what + " (equal)")


def partition_filter_check(checks: Checks, detector: str, tree: exp.Create, workdir: pathlib.Path) -> None:
    """The saved hunt reads only recent days: a record dated before the window is not
    reported, the same record dated today is."""
    today = datetime.now(timezone.utc)
    edge = json.loads(EDGE_CASES.read_text())["Records"][0]
    old = dict(edge, eventID="window-old", eventTime=(today - timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    new = dict(edge, eventID="window-new", eventTime=today.strftime("%Y-%m-%dT%H:%M:%SZ"))
    con = duckdb.connect()
    for macro in TRINO_MACROS:
        con.execute(macro)
    load_table(con, tree, [old, new], workdir)
    got = {k[0] for k in hunt(con, to_duckdb(hunt_sql(30)))}
    if got == {"window-new"}:
        checks.ok("partition filter: with HuntDays 30 a call 40 days old is not read, today's is")
    else:
        checks.fail(f"partition filter: with HuntDays 30 the hunt reported {sorted(got)}, expected only window-new")
    if "partition_date" not in SQL_FILE.read_text():
        checks.fail(f"{SQL_FILE} does not filter partition_date")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--detector", help="detector binary (default: cargo build -p detector, then target/debug/detector)")
    ap.add_argument("--only", help="run only the corpus of this name")
    ap.add_argument("--keep", help="keep the work files in this directory")
    ap.add_argument("--sql", help="the hunt to check (default: infra/athena/bypass-hunt.sql)")
    args = ap.parse_args()
    if args.sql:
        global SQL_FILE
        SQL_FILE = pathlib.Path(args.sql).resolve()
    checks = Checks()

    detector = args.detector
    if not detector:
        build = subprocess.run(["cargo", "build", "-q", "-p", "detector", "--bin", "detector"], cwd=REPO)
        if build.returncode != 0:
            print("FAIL cargo build -p detector")
            return 1
        target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        detector = str(target / "debug" / "detector")

    # The DDL: both files parse (Athena/Hive dialect) and have the same columns.
    trees = {}
    for path in DDL_FILES:
        try:
            trees[path.name] = ddl_tree(path)
            cols, parts = table_columns(trees[path.name])
            checks.ok(f"{path.relative_to(REPO)} parses (Athena/Hive): {len(cols)} columns, partitioned by "
                      + ", ".join(n for n, _ in parts))
        except (sqlglot.errors.ParseError, AssertionError) as e:
            checks.fail(f"{path.relative_to(REPO)} does not parse: {e}")
    for name, t in trees.items():
        problems = projection_problems(name, t)
        if problems:
            checks.fail(f"{name} partition projection: " + "; ".join(problems))
        else:
            checks.ok(f"{name} partition projection: account, region, partition_date projected into "
                      "CloudTrail's layout (and the example log's key is under its day's prefix)"
                      if name == "cloudtrail-table.sql" else
                      f"{name} partition projection: account, region, partition_date projected into "
                      "the organization trail's layout")
    if len(trees) == 2:
        a, b = (table_columns(t) for t in trees.values())
        if [(n, d.sql("athena")) for n, d in a[0] + a[1]] == [(n, d.sql("athena")) for n, d in b[0] + b[1]]:
            checks.ok("the single-account and organization tables have the same columns and partitions")
        else:
            checks.fail("the single-account and organization tables differ in columns or partitions")
    tree = trees.get(DDL_FILES[0].name)
    if tree is None:
        print(f"{checks.passed} passed, {checks.failed} failed")
        return 1

    # The rules: expressed + omitted == what detector scan can emit.
    sql_text = SQL_FILE.read_text()
    expressed, omitted = header_rules(sql_text)
    emitted = detector_rules(detector)
    body = "\n".join(line for line in sql_text.splitlines() if not line.lstrip().startswith("--"))
    not_literal = [r for r in expressed if f"'{r}'" not in body]
    both = set(expressed) & set(omitted)
    if not expressed:
        checks.fail(f"{SQL_FILE.name}: no `-- Rules:` line in the header")
    elif not_literal or both:
        checks.fail(f"{SQL_FILE.name}: header rules not in the query: {not_literal}; both expressed and omitted: {sorted(both)}")
    elif set(expressed) | set(omitted) != set(emitted):
        checks.fail(f"{SQL_FILE.name}: header lists {sorted(set(expressed) | set(omitted))}, "
                    f"`detector rules` prints {sorted(emitted)}; missing {sorted(set(emitted) - set(expressed) - set(omitted))}, "
                    f"unknown {sorted((set(expressed) | set(omitted)) - set(emitted))}")
    else:
        checks.ok(f"{SQL_FILE.name} header: {len(expressed)} rules expressed + {len(omitted)} omitted = "
                  f"the {len(emitted)} rules `detector rules` prints")
    readme = README.read_text()
    unexplained = [r for r, why in omitted.items() if not why]
    not_in_readme = [r for r in omitted if f"`{r}`" not in readme]
    if unexplained or not_in_readme:
        checks.fail(f"omitted rules without a reason {unexplained}, not named in infra/README.md {not_in_readme}")
    elif omitted:
        checks.ok(f"infra/README.md names every omitted rule: {', '.join(sorted(omitted))}")

    # The corpora.
    duck_sql = to_duckdb(hunt_sql(100000))
    shared = pathlib.Path(os.environ.get("MICROVM_SHARED_DIR", REPO.parent / "shared")) / "data" / "cloudtrail"
    corpora = []
    corpora.append(("edge cases", lambda: json.loads(EDGE_CASES.read_text())["Records"]))
    corpora.append(("detector/fixtures/examples", lambda: corpus_from_dir(EXAMPLES)[0]))
    corpora.append(("generated (seed 24)", generated_corpus))
    corpora.append(("bundled real data (tests/data/cloudtrail)", lambda: corpus_from_dir(BUNDLED)[0]))
    # The shared data tier (not redistributable): required in CI (MICROVM_REQUIRE_SHARED=1),
    # otherwise run when present and named as not run when absent.
    require_shared = os.environ.get("MICROVM_REQUIRE_SHARED") == "1"
    if shared.is_dir() or require_shared:
        corpora.append((f"real data ({shared})", lambda: corpus_from_dir(shared)[0]))
    else:
        print(f"--   shared data tier not run: {shared} does not exist (set MICROVM_SHARED_DIR to the shared root)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for name, load in corpora:
            if args.only and args.only not in name:
                continue
            records = load() if not name.startswith("real") or shared.is_dir() else None
            if not records:
                checks.fail(f"{name}: no records (missing data fails the test; for the shared tier set MICROVM_SHARED_DIR)")
                continue
            compare(checks, name, detector, records, duck_sql, tree, workdir, set(omitted))
        if not args.only:
            partition_filter_check(checks, detector, tree, workdir)
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
