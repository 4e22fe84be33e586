#!/usr/bin/env bash
# Fuzz the parsers that read untrusted input (fuzz/README.md).
#
#   scripts/fuzz.sh smoke [SECONDS]        every target for SECONDS each (default 10): for CI
#   scripts/fuzz.sh run TARGET SECONDS [-- LIBFUZZER_ARGS...]
#   scripts/fuzz.sh build                  build every target
#   scripts/fuzz.sh seeds                  (re)write the seed corpora into fuzz/corpus/
#   scripts/fuzz.sh list
#
# Works on the stable toolchain: installs cargo-fuzz from crates.io when missing and builds
# with `--sanitizer none` (every crate is `forbid(unsafe_code)`, so AddressSanitizer adds
# little; overflow checks and debug assertions stay on). FUZZ_SANITIZER=address builds with
# ASan instead, which needs nightly-only flags: the script then sets RUSTC_BOOTSTRAP=1.
# FUZZ_NICE=19 runs the fuzzer at low priority. A crash leaves its input in
# fuzz/artifacts/TARGET/ and makes the script exit non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGETS=(cloudtrail_reader input_shapes notification_decoder webhook_verifier)
SANITIZER="${FUZZ_SANITIZER:-none}"
NICE="${FUZZ_NICE:-0}"

ensure_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "==> installing cargo-fuzz (cargo install cargo-fuzz --locked)"
        cargo install cargo-fuzz --locked
    fi
}

fuzz() {
    if [ "$SANITIZER" != none ]; then
        export RUSTC_BOOTSTRAP=1
    fi
    nice -n "$NICE" cargo fuzz "$1" --sanitizer "$SANITIZER" "${@:2}"
}

seeds() {
    python3 scripts/fuzz-seeds.py
}

build() {
    ensure_cargo_fuzz
    fuzz build
}

# run TARGET SECONDS [LIBFUZZER_ARGS...]
run() {
    local target="$1" seconds="$2"
    shift 2
    [ -d "fuzz/corpus/$target" ] || seeds
    echo "==> fuzz $target for ${seconds}s"
    # The seed directory is read-only input; new coverage goes to fuzz/corpus/TARGET too.
    fuzz run "$target" -- -max_total_time="$seconds" -print_final_stats=1 "$@"
}

case "${1:-}" in
    smoke)
        seconds="${2:-10}"
        build
        seeds
        for t in "${TARGETS[@]}"; do run "$t" "$seconds"; done
        echo "==> fuzz smoke: ${#TARGETS[@]} targets, ${seconds}s each, no crash"
        ;;
    run)
        [ $# -ge 3 ] || { echo "usage: $0 run TARGET SECONDS [-- LIBFUZZER_ARGS...]" >&2; exit 2; }
        target="$2" seconds="$3"
        shift 3
        [ "${1:-}" = "--" ] && shift
        ensure_cargo_fuzz
        run "$target" "$seconds" "$@"
        ;;
    build) build ;;
    seeds) seeds ;;
    list) printf '%s\n' "${TARGETS[@]}" ;;
    *)
        sed -n '2,16p' "$0" >&2
        exit 2
        ;;
esac
