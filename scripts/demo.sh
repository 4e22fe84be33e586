#!/usr/bin/env bash
# The end-to-end demo (README "Demo"): the built launcher and detector binaries run as Lambda
# runs them (a local Runtime API), with moto (S3, SQS, SNS, DynamoDB, EventBridge, CloudTrail),
# the MicroVMs emulator and the Contro1 stand-in, and print the timeline of one governed
# launch, two bypasses and what the security team receives. It is the e2e test
# (tests/e2e/tests/pipeline.rs) run with its output shown.
#
# Installs moto into <repo>/.venv if needed, starts it unless one already answers on
# 127.0.0.1:${MOTO_PORT:-5000}, and stops it on exit only if it started it.
# E2E_ECHO_LOGS=1 also prints the functions' own log lines.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
export MOTO_PORT="${MOTO_PORT:-5000}"
# shellcheck source=scripts/venv.sh
source "$REPO_ROOT/scripts/venv.sh"
ensure_venv >&2
export PATH="$VENV_DIR/bin:$PATH"

STARTED_MOTO=0
if ! scripts/moto.sh status >/dev/null 2>&1; then
    STARTED_MOTO=1
fi
cleanup() { if [[ "$STARTED_MOTO" == 1 ]]; then scripts/moto.sh stop >/dev/null || true; fi; }
trap cleanup EXIT
scripts/moto.sh start >/dev/null
export MOTO_ENDPOINT="http://127.0.0.1:${MOTO_PORT}"

echo "==> building the launcher and detector binaries" >&2
cargo build -q -p launcher -p detector --bins
echo "==> running the pipeline" >&2
cargo test -q -p e2e --test pipeline -- --nocapture
