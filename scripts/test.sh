#!/usr/bin/env bash
# The one test command (README and .ci/run call it). From a fresh clone:
#   0. checks every prerequisite first and names each one missing, before building anything:
#      cargo and rustc (the workspace's rust-version), python3 with venv, Node.js 20+ and npm
#      (for the infra check), free disk, the moto port, and whether the shared data tier is
#      present;
#   1. creates/updates <repo>/.venv with the pinned tools (scripts/requirements-test.txt);
#   2. runs scripts/infra-check.sh (template lint, guard rules);
#   3. checks the detector's Containerfile statically (scripts/check-containerfile.py);
#   4. starts moto on 127.0.0.1:${MOTO_PORT:-5000} unless one already answers, and stops it
#      on exit (by PID) only if this script started it;
#   5. exports MOTO_ENDPOINT and runs every unit, integration and doc test of the workspace
#      (--no-fail-fast: every test binary runs), and builds (does not run) the benchmarks;
#      RUN_BENCHES=1 runs them as well;
#   6. runs the shared data tier (the `shared_tier::` tests, #[ignore]d otherwise) when its
#      data is present: $MICROVM_SHARED_DIR, or ../shared beside the repository, names the
#      shared root, the directory with data/cloudtrail/ inside;
#   7. the Contro1 conformance test: the stand-in (`launcher contro1-dev`) driven by Contro1's
#      official SDK, centcom (tests/conformance/contro1_centcom.py); fails when it is missing;
#   8. ends with one summary of every test binary that failed.
#
# Extra arguments go to the main `cargo test` call, e.g.
#   scripts/test.sh -p testkit            (one package instead of the whole workspace)
#   scripts/test.sh -- --nocapture        (flags for the test binaries)
# Environment: MOTO_PORT (default 5000), SKIP_INFRA_CHECK=1, RUN_BENCHES=1,
# MICROVM_SHARED_DIR (the shared root), MICROVM_REQUIRE_SHARED=1 (the shared data tier must
# run: its absence is a missing prerequisite; .ci/run sets it), MIN_FREE_GIB (default 5).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
export MOTO_PORT="${MOTO_PORT:-5000}"
T0=$SECONDS

step() { printf '\n==> %s\n' "$*" >&2; }
elapsed() {
    local s=$((SECONDS - $1))
    if ((s >= 60)); then printf '%d min %02d s' $((s / 60)) $((s % 60)); else printf '%d s' "$s"; fi
}

# --- 0. prerequisites: all checked, all named, nothing built yet ---
step "prerequisites"
missing=()
version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" == "$2" ]]; }
want_rust="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
if ! command -v cargo >/dev/null; then
    missing+=("cargo not found: install Rust $want_rust or newer (https://rustup.rs)")
elif ! command -v rustc >/dev/null; then
    missing+=("rustc not found: install Rust $want_rust or newer (https://rustup.rs)")
else
    have_rust="$(rustc --version | awk '{print $2}')"
    version_ge "${have_rust%%-*}" "$want_rust" ||
        missing+=("rustc $have_rust is older than the workspace's rust-version $want_rust: rustup update")
fi
if ! command -v python3 >/dev/null; then
    missing+=("python3 not found (Debian: apt-get install -y python3 python3-venv)")
elif [[ ! -x .venv/bin/python ]] && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=("python3 cannot create a venv (Debian: apt-get install -y python3-venv)")
fi
if [[ "${SKIP_INFRA_CHECK:-0}" != 1 ]]; then
    if ! command -v node >/dev/null; then
        missing+=("node not found: the infra check needs Node.js 20+ and npm (or SKIP_INFRA_CHECK=1)")
    else
        node_major="$(node --version | sed 's/^v//; s/\..*//')"
        ((node_major >= 20)) ||
            missing+=("node $(node --version) is older than 20: the infra check needs Node.js 20+ (or SKIP_INFRA_CHECK=1)")
    fi
    command -v npm >/dev/null ||
        missing+=("npm not found: the infra check needs Node.js 20+ and npm (or SKIP_INFRA_CHECK=1)")
fi
target_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
probe="$target_dir"
while [[ ! -d "$probe" ]]; do probe="$(dirname "$probe")"; done
free_gib=$(($(df --output=avail -k "$probe" | tail -1 | tr -dc 0-9) / 1024 / 1024))
((free_gib >= ${MIN_FREE_GIB:-5})) ||
    missing+=("only $free_gib GiB free under $probe: a first build and test run need about ${MIN_FREE_GIB:-5} GiB more (MIN_FREE_GIB changes the limit)")
if ! "$REPO_ROOT/scripts/moto.sh" status >/dev/null 2>&1; then
    if ! python3 - "$MOTO_PORT" 2>/dev/null <<'PY'; then
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
PY
        missing+=("port $MOTO_PORT on 127.0.0.1 is taken by something that is not moto: free it or choose another with MOTO_PORT")
    fi
fi
shared_root="${MICROVM_SHARED_DIR:-$REPO_ROOT/../shared}"
shared_tier=0
if [[ -d "$shared_root/data/cloudtrail" ]]; then
    shared_tier=1
elif [[ "${MICROVM_REQUIRE_SHARED:-0}" == 1 ]]; then
    missing+=("MICROVM_REQUIRE_SHARED=1 but the shared data tier is missing: $shared_root has no data/cloudtrail/ (set MICROVM_SHARED_DIR to the shared root)")
fi
if ((${#missing[@]})); then
    printf 'scripts/test.sh: %d missing prerequisite(s):\n' "${#missing[@]}" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 2
fi
echo "rust $(rustc --version | awk '{print $2}'), $(python3 --version), ${free_gib} GiB free, shared data tier: $([[ $shared_tier == 1 ]] && echo "present ($shared_root)" || echo absent)" >&2

step "python tools (.venv)"
# shellcheck source=scripts/venv.sh
source "$REPO_ROOT/scripts/venv.sh"
ensure_venv
export PATH="$VENV_DIR/bin:$PATH"

# --- infra hook (owned by the infra engineer: sam-cli, cargo-lambda, cfn-guard, cfn-lint) ---
# SKIP_INFRA_CHECK=1 skips it for a quick Rust-only run.
if [[ "${SKIP_INFRA_CHECK:-0}" == 1 ]]; then
    step "scripts/infra-check.sh skipped (SKIP_INFRA_CHECK=1)"
elif [[ -f "$REPO_ROOT/scripts/infra-check.sh" ]]; then
    step "scripts/infra-check.sh"
    t=$SECONDS
    bash "$REPO_ROOT/scripts/infra-check.sh"
    echo "infra check: $(elapsed $t)" >&2
fi
# --- end infra hook ---

step "Containerfile (static checks)"
python3 "$REPO_ROOT/scripts/check-containerfile.py"

step "moto server"
STARTED_MOTO=0
if ! "$REPO_ROOT/scripts/moto.sh" status >/dev/null 2>&1; then
    STARTED_MOTO=1
fi
LOG_DIR="$(mktemp -d)"
failed=()
cleanup() {
    local rc=$?
    if [[ "$STARTED_MOTO" == 1 ]]; then
        "$REPO_ROOT/scripts/moto.sh" stop || true
    fi
    if ((${#failed[@]})); then
        printf '\n==> FAILED (%d):\n' "${#failed[@]}" >&2
        printf '  %s\n' "${failed[@]}" >&2
        ((rc != 0)) || rc=1
    fi
    if [[ "$shared_tier" == 0 ]]; then
        printf '==> shared data tier not run: %s has no data/cloudtrail/; set MICROVM_SHARED_DIR to the shared root (with data/cloudtrail/ inside) to run it\n' "$shared_root" >&2
    fi
    rm -rf "$LOG_DIR"
    if [[ $rc -eq 0 ]]; then
        printf '==> ALL TESTS PASSED (%s)\n' "$(elapsed "$T0")" >&2
    else
        printf '==> TESTS FAILED (exit %s, %s)\n' "$rc" "$(elapsed "$T0")" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
"$REPO_ROOT/scripts/moto.sh" start >/dev/null
export MOTO_ENDPOINT="http://127.0.0.1:${MOTO_PORT}"
echo "MOTO_ENDPOINT=$MOTO_ENDPOINT" >&2

# With -p/--package the caller picks the packages; otherwise the whole workspace.
scope=(--workspace)
fail_fast=(--no-fail-fast)
for a in "$@"; do
    case "$a" in
        --) break ;;
        -p | --package | --package=*) scope=() ;;
        --no-fail-fast) fail_fast=() ;;
    esac
done
# Only the package selection goes to the doc-test, tier and bench runs (test-binary flags may
# not apply there).
pkg_args=()
prev=""
for a in "$@"; do
    [[ "$a" == "--" ]] && break
    if [[ "$prev" == "-p" || "$prev" == "--package" ]]; then pkg_args+=(-p "$a"); fi
    case "$a" in --package=*) pkg_args+=("$a") ;; esac
    prev="$a"
done

# Runs one cargo phase: its output goes through unchanged; the test binaries (or crates) it
# names as failed are added to the final summary; its elapsed time is printed.
phase() {
    local label="$1" t=$SECONDS rc=0 log
    shift
    step "$label"
    log="$LOG_DIR/$((${#failed[@]}))-$RANDOM.log"
    "$@" 2>&1 | tee "$log" || rc=$?
    echo "$label: $(elapsed "$t")" >&2
    if ((rc != 0)); then
        local names
        names="$(sed -n -e 's/^ *`\(-p .*\)`$/\1/p' -e 's/^error: test failed, to rerun pass `\(.*\)`$/\1/p' \
            -e 's/^error: could not compile `\([^`]*\)`.*/compile error in \1/p' "$log" | sort -u)"
        if [[ -n "$names" ]]; then
            while IFS= read -r n; do failed+=("$label: $n"); done <<<"$names"
        else
            failed+=("$label: exit $rc (see its output above)")
        fi
    fi
}

phase "cargo test ${scope[*]} (lib, bins, tests, examples) $*" \
    cargo test "${scope[@]}" "${fail_fast[@]}" --lib --bins --tests --examples "$@"
phase "cargo test --doc ${scope[*]} ${pkg_args[*]}" \
    cargo test "${scope[@]}" "${pkg_args[@]}" --no-fail-fast --doc
if [[ "$shared_tier" == 1 ]]; then
    export MICROVM_SHARED_DIR="$(cd "$shared_root" && pwd)"
    phase "shared data tier ($MICROVM_SHARED_DIR): cargo test ${scope[*]} ${pkg_args[*]} -- --ignored shared_tier::" \
        cargo test "${scope[@]}" "${pkg_args[@]}" --no-fail-fast --lib --tests -- --ignored shared_tier::
fi
phase "Contro1 conformance: the stand-in driven by the official centcom SDK" \
    "$VENV_DIR/bin/python" "$REPO_ROOT/tests/conformance/contro1_centcom.py"
if [[ "${RUN_BENCHES:-0}" == 1 ]]; then
    phase "cargo bench ${scope[*]} ${pkg_args[*]}" cargo bench "${scope[@]}" "${pkg_args[@]}"
else
    phase "benchmarks: build only (RUN_BENCHES=1 runs them)" \
        cargo test "${scope[@]}" "${pkg_args[@]}" --benches --no-run
fi
