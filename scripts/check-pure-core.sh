#!/usr/bin/env bash
# The pure cores (parsing, classification, policy, approval state machine) must not depend on
# any AWS crate, so they run on plain files and are tested without AWS. CI fails if one does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
status=0
for pkg in shared-core detector-core launcher-core; do
    # normal + build dependencies: what ships in the crate (dev-dependencies may use anything)
    if deps=$(cargo tree -p "$pkg" -e normal,build --prefix none --no-dedupe 2>&1); then
        bad=$(printf '%s\n' "$deps" | grep -E '^(aws-|aws_|lambda_runtime|lambda_http)' | sort -u || true)
        if [[ -n "$bad" ]]; then
            echo "error: $pkg must not depend on AWS crates, but its tree contains:" >&2
            printf '  %s\n' $bad >&2
            status=1
        else
            echo "ok: $pkg has no AWS dependency ($(printf '%s\n' "$deps" | sort -u | wc -l) crates in its tree)"
        fi
    else
        echo "error: cargo tree -p $pkg failed:" >&2
        printf '%s\n' "$deps" >&2
        status=1
    fi
done
exit $status
