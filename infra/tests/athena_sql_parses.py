#!/usr/bin/env python3
"""Syntax check of infra/athena/bypass-hunt.sql as Trino (Athena engine v3) SQL.

There is no Athena here, so this is the most CI can check offline: the placeholders are
filled with sample values and sqlglot's Trino parser must accept the whole statement (a
missing parenthesis, a dangling JOIN, a misspelt keyword fail). Semantics are not executed.
Usage: athena_sql_parses.py SQL_FILE
"""

import pathlib
import sys

import sqlglot

PLACEHOLDERS = {
    "${CloudTrailTable}": "default.cloudtrail_logs",
    "${LauncherRoleArn}": "arn:aws:iam::111122223333:role/microvm-gov/launcher/launcher-role",
    "${LauncherSessionNames}": "launcher-function",
    "${HuntDays}": "30",
}


def main() -> int:
    path = pathlib.Path(sys.argv[1])
    sql = path.read_text()
    for key, value in PLACEHOLDERS.items():
        if key not in sql:
            print(f"FAIL {path}: placeholder {key} is missing")
            print("0 passed, 1 failed")
            return 1
        sql = sql.replace(key, value)
    try:
        tree = sqlglot.parse_one(sql, read="trino", error_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.ParseError as e:
        print(f"FAIL {path}: not valid Trino SQL: {e}")
        print("0 passed, 1 failed")
        return 1
    ctes = len(list(tree.find_all(sqlglot.exp.CTE)))
    print(f"ok   {path}: parses as Trino SQL ({ctes} CTEs)")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
