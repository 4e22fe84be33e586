#!/usr/bin/env bash
# Conformance of the detector's outputs, judged by authorities this repository did not write:
#   - OCSF: every line of `detector scan --format ocsf` and the OCSF golden file against the
#     OCSF schema export of the version the events declare (scripts/conformance/ocsf/, vendored
#     with its licence), compiled to JSON Schema by ocsf-json-schema and checked by jsonschema;
#   - ASFF: every line of `detector scan --format asff` and the ASFF golden file as a
#     BatchImportFindings request, by botocore's Security Hub service model and its parameter
#     validator, plus the documented limits (100 findings, 240 KB a finding, 6 MB a request),
#     and the very request bodies the Rust SDK sends (captured by the securityhub_wire test);
#   - bounds: a crafted record of several MB (user agent, request parameters) gives an OCSF and
#     a JSON line within 256 KiB and an ASFF finding within 240 KB, all still valid.
# Inputs: the bundled examples, the repository's real CloudTrail data (tests/data/cloudtrail)
# and the shared data tier when it is present.
#
# Usage: scripts/conformance/check.sh [DETECTOR_BINARY]
#   (default: the workspace's debug build, brought up to date with `cargo build` first).
# Needs the venv of scripts/venv.sh (scripts/test.sh sets PATH to it).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"
HERE="$REPO_ROOT/scripts/conformance"
PY="${PYTHON:-python3}"
if [[ $# -ge 1 ]]; then
    BIN="$1"
else
    BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/detector"
    cargo build -q -p detector --bin detector >&2 # a no-op when up to date
fi
# Real CloudTrail data: the repository's own (tests/data/cloudtrail), and the shared data tier
# when present (MICROVM_SHARED_DIR, else ../shared beside the repository: the shared root, or
# the CloudTrail data directory itself); MICROVM_REQUIRE_SHARED=1 makes its absence a failure,
# as for the Rust tests.
REAL_DATA=("$REPO_ROOT/tests/data/cloudtrail")
shared="${MICROVM_SHARED_DIR:-$REPO_ROOT/../shared}"
if [[ -d "$shared/data/cloudtrail" ]]; then
    REAL_DATA+=("$shared/data/cloudtrail")
elif [[ -n "${MICROVM_SHARED_DIR:-}" && -d "$MICROVM_SHARED_DIR" ]]; then
    REAL_DATA+=("$MICROVM_SHARED_DIR")
elif [[ "${MICROVM_REQUIRE_SHARED:-0}" == 1 ]]; then
    echo "conformance: MICROVM_REQUIRE_SHARED=1 but $shared has no data/cloudtrail/" >&2
    exit 1
else
    echo "conformance: shared data tier absent; checking the repository's own data" >&2
fi
for d in "${REAL_DATA[@]}"; do
    [[ -d "$d" ]] || { echo "conformance: $d is missing" >&2; exit 1; }
done
echo "real data: ${REAL_DATA[*]}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
failed=0
passed=0
check() { # NAME COMMAND...
    local name="$1"
    shift
    printf -- '--- %s\n' "$name"
    if "$@"; then
        echo "ok: $name"
        passed=$((passed + 1))
    else
        echo "FAILED: $name"
        failed=$((failed + 1))
    fi
}
scan() { # FORMAT OUT INPUT... (exit 0 required: every input read, every finding encoded)
    local format="$1" out="$2"
    shift 2
    "$BIN" scan --format "$format" "$@" >"$out" 2>"$out.stderr" || {
        echo "detector scan --format $format exited $?:" >&2
        tail -5 "$out.stderr" >&2
        return 1
    }
    [[ -s "$out" ]] || { echo "detector scan --format $format wrote no finding" >&2; return 1; }
}
max_line() { # FILE LIMIT: the longest line is at most LIMIT bytes
    local n
    n="$(LC_ALL=C awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }' "$1")"
    echo "longest line of $(basename "$1"): $n bytes (limit $2)"
    [[ "$n" -le "$2" ]]
}

# A record a few MB long: a non-launcher RunMicrovm whose user agent and request parameters
# are huge (the kind of record an attacker controls).
mkdir -p "$WORK/big"
"$PY" - "$WORK/big/oversize.json" <<'PY'
import json, sys
rec = {
    "eventVersion": "1.11", "eventSource": "lambda.amazonaws.com", "eventName": "RunMicrovm",
    "eventID": "0b5e7d2a-0000-4000-8000-00000000b16e", "eventTime": "2026-11-20T10:00:00Z",
    "awsRegion": "us-east-1", "eventType": "AwsApiCall", "recipientAccountId": "111122223333",
    "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/" + "m" * 60,
                     "accountId": "111122223333", "accessKeyId": "AKIAEXAMPLEBIG000001"},
    "sourceIPAddress": "198.51.100.7",
    "userAgent": "\u001b[31m" + "A" * 1_900_000,
    "requestParameters": {"imageIdentifier": "arn:aws:lambda:us-east-1:111122223333:microvm-image:x",
                          "tags": {f"k{i}": "v" * 200 for i in range(5000)}},
    "responseElements": {"microvmId": "ai-" + "b" * 40, "state": "PENDING"},
    "requestID": "r-big", "eventCategory": "Data", "managementEvent": False, "readOnly": False,
}
json.dump({"Records": [rec]}, open(sys.argv[1], "w"))
PY

mkdir -p "$WORK/badregion"
"$PY" - "$WORK/big/oversize.json" "$WORK/badregion/bad.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
rec = doc["Records"][0]
rec.update(userAgent="ua", requestParameters={"imageIdentifier": "x"},
           awsRegion="us-east-1\n\u001b[2Jevil", eventID="ev-\u001b[31mred")
json.dump(doc, open(sys.argv[2], "w"))
PY

EXAMPLES="$REPO_ROOT/detector/fixtures/examples"
SH=(--security-hub-account 999988887777 --security-hub-region us-east-1)

# Negative controls: each validator must refuse what the outputs used to be or could become
# (a validator that accepts everything would pass the checks below).
mutants() { # KIND IN OUT: one mutated copy of IN's first line per mutation, one a line
    "$PY" - "$1" "$2" "$3" <<'PY'
import copy, json, sys
kind, src, dst = sys.argv[1:]
base = json.loads(open(src).readline())
out = []
def m(f):
    v = copy.deepcopy(base); f(v); out.append(v)
if kind == "ocsf":
    m(lambda v: v.update(src_endpoint={"ip": "192.0.2.1"}))      # not a Detection Finding attribute
    m(lambda v: v["metadata"].pop("profiles"))                    # actor, api, cloud undeclared
    m(lambda v: v["evidences"][0].update(src_endpoint={}))        # at_least_one broken
    m(lambda v: v.update(severity_id="high"))                     # wrong type
    m(lambda v: v.pop("finding_info"))                            # required attribute missing
    m(lambda v: v["metadata"].update(version="1.3.0"))            # a version with no schema here
else:
    m(lambda v: v.pop("Title"))                                   # required member missing
    m(lambda v: v.update(Types="TTPs"))                           # wrong type
    m(lambda v: v.update(Description="x" * 300_000))              # over 240 KB
    m(lambda v: v["Resources"][0].pop("Id"))                      # required member missing
with open(dst, "w") as f:
    for v in out:
        f.write(json.dumps(v) + "\n")
print(len(out))
PY
}
refuses_each() { # KIND VALIDATOR GOLDEN: every mutant is refused, one by one
    local n i
    n="$(mutants "$1" "$3" "$WORK/mutants.$1.jsonl")"
    for ((i = 1; i <= n; i++)); do
        sed -n "${i}p" "$WORK/mutants.$1.jsonl" >"$WORK/mutant.jsonl"
        if "$PY" "$2" "$WORK/mutant.jsonl" >"$WORK/mutant.out" 2>&1; then
            echo "$1 mutant $i was accepted" >&2
            return 1
        fi
        head -2 "$WORK/mutant.out" | cut -c1-160
    done
    echo "$n of $n $1 mutants refused"
}
check "the OCSF validator refuses invalid events" \
    refuses_each ocsf "$HERE/ocsf_validate.py" detector/core/tests/golden/examples.ocsf.jsonl
check "the ASFF validator refuses invalid findings" \
    refuses_each asff "$HERE/asff_validate.py" detector/core/tests/golden/examples.asff.jsonl

check "OCSF golden file" "$PY" "$HERE/ocsf_validate.py" detector/core/tests/golden/examples.ocsf.jsonl
check "ASFF golden file" "$PY" "$HERE/asff_validate.py" detector/core/tests/golden/examples.asff.jsonl
check "scan --format ocsf (examples, real data)" scan ocsf "$WORK/all.ocsf.jsonl" "$EXAMPLES" "${REAL_DATA[@]}"
check "OCSF of every finding" "$PY" "$HERE/ocsf_validate.py" "$WORK/all.ocsf.jsonl"
check "scan --format asff (examples; each finding's own account)" \
    scan asff "$WORK/all.asff.jsonl" "$EXAMPLES"
check "scan --format asff (examples, real data; a Security Hub account)" \
    scan asff "$WORK/sh.asff.jsonl" "${SH[@]}" "$EXAMPLES" "${REAL_DATA[@]}"
check "ASFF of every finding" "$PY" "$HERE/asff_validate.py" "$WORK/all.asff.jsonl" "$WORK/sh.asff.jsonl"
# A record naming a region that is not one cannot be placed without a Security Hub region:
# the scan names it on stderr, escaped, and exits 2.
unplaceable() {
    local rc=0
    "$BIN" scan --format asff "$WORK/badregion" >"$WORK/bad.asff.jsonl" 2>"$WORK/bad.stderr" || rc=$?
    local named
    named="$(grep -c 'cannot be encoded as ASFF' "$WORK/bad.stderr" || true)"
    echo "exit $rc; $named finding(s) named as not encodable"
    [[ "$rc" -eq 2 && "$named" -eq 1 ]] && ! grep -q $'\x1b' "$WORK/bad.stderr"
}
check "scan --format asff (a record's bad region is named, exit 2)" unplaceable
check "scan --format ocsf (oversize record)" scan ocsf "$WORK/big.ocsf.jsonl" "$WORK/big"
check "OCSF of the oversize record" "$PY" "$HERE/ocsf_validate.py" "$WORK/big.ocsf.jsonl"
check "OCSF line bound" max_line "$WORK/big.ocsf.jsonl" $((256 * 1024))
check "scan --format jsonl (oversize record)" scan jsonl "$WORK/big.jsonl" "$WORK/big"
check "JSON line bound" max_line "$WORK/big.jsonl" $((256 * 1024))
check "scan --format asff (oversize record)" scan asff "$WORK/big.asff.jsonl" "$WORK/big"
check "ASFF of the oversize record (240 KB a finding)" "$PY" "$HERE/asff_validate.py" "$WORK/big.asff.jsonl"
# The requests the Rust SDK itself sends (a round of 150 findings, one throttled and retried),
# as captured by detector/tests/securityhub_wire.rs.
wire() {
    SECURITY_HUB_REQUESTS_OUT="$WORK/wire.jsonl" cargo test -q -p detector --test securityhub_wire >&2 &&
        [[ "$(wc -l <"$WORK/wire.jsonl")" -eq 3 ]]
}
check "BatchImportFindings requests as the SDK sends them (captured)" wire
check "ASFF of those requests" "$PY" "$HERE/asff_validate.py" "$WORK/wire.jsonl"
check "the oversize texts are cut with a marker" grep -q 'truncated [0-9]* bytes' "$WORK/big.ocsf.jsonl"

echo
echo "conformance: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
