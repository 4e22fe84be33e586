"""The closing report every infra check prints: one line per result, then "N passed, N failed"."""

from __future__ import annotations


def report(results: list[tuple[bool, str]]) -> int:
    """Prints the results and returns the exit status (1 when any failed)."""
    for ok, msg in results:
        print(("ok   " if ok else "FAIL ") + msg)
    failed = sum(1 for ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0
