#!/usr/bin/env bash
# The one test command (README and .ci/run call it). From a fresh clone on a machine with
# Rust and python3:
#   1. creates/updates <repo>/.venv with the pinned tools (scripts/requirements-test.txt);
#   2. runs scripts/infra-check.sh when it exists (template lint, guard rules; infra owns it);
#   3. checks the detector's Containerfile statically (scripts/check-containerfile.py);
#   4. starts moto on 127.0.0.1:${MOTO_PORT:-5000} unless one already answers, and stops it
#      on exit (by PID) only if this script started it;
#   5. exports MOTO_ENDPOINT and runs every unit, integration and doc test of the workspace,
#      and builds (does not run) the benchmarks; RUN_BENCHES=1 runs them as well;
#   6. checks the detector's OCSF and ASFF output against the published OCSF schema and
#      botocore's Security Hub model (scripts/conformance/check.sh, docs/outputs.md).
#
# Extra arguments go to the main `cargo test` call, e.g.
#   scripts/test.sh -p testkit            (one package instead of the whole workspace)
#   scripts/test.sh -- --nocapture        (flags for the test binaries)
# Environment: MOTO_PORT (default 5000), SKIP_INFRA_CHECK=1, RUN_BENCHES=1.
# With -p/--package the conformance step runs only when the detector is among the packages.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
export MOTO_PORT="${MOTO_PORT:-5000}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "python tools (.venv)"
# shellcheck source=scripts/venv.sh
source "$REPO_ROOT/scripts/venv.sh"
ensure_venv
export PATH="$VENV_DIR/bin:$PATH"

# --- infra hook (owned by the infra engineer: sam-cli, cargo-lambda, cfn-guard, cfn-lint) ---
# SKIP_INFRA_CHECK=1 skips it for a quick Rust-only run.
if [[ "${SKIP_INFRA_CHECK:-0}" == 1 ]]; then
    step "scripts/infra-check.sh skipped (SKIP_INFRA_CHECK=1)"
elif [[ -x "$REPO_ROOT/scripts/infra-check.sh" ]]; then
    step "scripts/infra-check.sh"
    "$REPO_ROOT/scripts/infra-check.sh"
elif [[ -f "$REPO_ROOT/scripts/infra-check.sh" ]]; then
    step "scripts/infra-check.sh"
    bash "$REPO_ROOT/scripts/infra-check.sh"
fi
# --- end infra hook ---

step "Containerfile (static checks)"
python3 "$REPO_ROOT/scripts/check-containerfile.py"

step "moto server"
STARTED_MOTO=0
if ! "$REPO_ROOT/scripts/moto.sh" status >/dev/null 2>&1; then
    STARTED_MOTO=1
fi
cleanup() {
    local rc=$?
    if [[ "$STARTED_MOTO" == 1 ]]; then
        "$REPO_ROOT/scripts/moto.sh" stop || true
    fi
    if [[ $rc -eq 0 ]]; then
        printf '\n==> ALL TESTS PASSED\n' >&2
    else
        printf '\n==> TESTS FAILED (exit %s)\n' "$rc" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
"$REPO_ROOT/scripts/moto.sh" start >/dev/null
export MOTO_ENDPOINT="http://127.0.0.1:${MOTO_PORT}"
echo "MOTO_ENDPOINT=$MOTO_ENDPOINT" >&2

# With -p/--package the caller picks the packages; otherwise the whole workspace.
scope=(--workspace)
for a in "$@"; do
    case "$a" in
        --) break ;;
        -p | --package | --package=*) scope=() ;;
    esac
done

step "cargo test ${scope[*]} (lib, bins, tests, examples) $*"
cargo test "${scope[@]}" --lib --bins --tests --examples "$@"

# Only pass package selection through to the doc-test run (test-binary flags may not apply).
doc_args=()
prev=""
for a in "$@"; do
    [[ "$a" == "--" ]] && break
    if [[ "$prev" == "-p" || "$prev" == "--package" ]]; then doc_args+=(-p "$a"); fi
    case "$a" in --package=*) doc_args+=("$a") ;; esac
    prev="$a"
done
step "cargo test --doc ${scope[*]} ${doc_args[*]}"
cargo test "${scope[@]}" "${doc_args[@]}" --doc

if [[ "${RUN_BENCHES:-0}" == 1 ]]; then
    step "cargo bench ${scope[*]} ${doc_args[*]}"
    cargo bench "${scope[@]}" "${doc_args[@]}"
else
    step "benchmarks: build only (RUN_BENCHES=1 runs them)"
    cargo test "${scope[@]}" "${doc_args[@]}" --benches --no-run
fi

# The conformance of the outputs needs the detector; with -p it runs only if the detector is
# one of the packages named.
run_conformance=1
if [[ ${#scope[@]} -eq 0 ]]; then
    run_conformance=0
    prev=""
    for a in "$@"; do
        [[ "$a" == "--" ]] && break
        if [[ ("$prev" == "-p" || "$prev" == "--package") && "$a" == detector ]] || [[ "$a" == --package=detector ]]; then
            run_conformance=1
        fi
        prev="$a"
    done
fi
if [[ "$run_conformance" == 1 ]]; then
    step "conformance of the detector's outputs (scripts/conformance/check.sh)"
    "$REPO_ROOT/scripts/conformance/check.sh"
else
    step "conformance skipped: the detector is not among the packages tested"
fi
