#!/usr/bin/env bash
# Ensure <repo>/.venv exists and holds the pinned tools in scripts/requirements-test.txt.
#
# Idempotent and quiet: pip only runs when the venv is new or the requirements file changed
# (a sha256 stamp is kept in .venv/.requirements.sha256). Fails loudly when pip fails.
# Prints nothing on success unless VERBOSE=1. Usable as `scripts/venv.sh` or sourced.
set -euo pipefail

_venv_repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${VENV_DIR:-$_venv_repo_root/.venv}"
_venv_reqs="$_venv_repo_root/scripts/requirements-test.txt"

ensure_venv() {
    if ! command -v python3 >/dev/null 2>&1; then
        echo "venv.sh: python3 not found; install it (Debian: apt-get install -y python3 python3-venv)" >&2
        return 1
    fi
    # Serialise concurrent runs (several engineers and test runs share one checkout).
    mkdir -p "$_venv_repo_root/.tmp"
    exec 8>"$_venv_repo_root/.tmp/venv.lock"
    if command -v flock >/dev/null 2>&1; then
        flock -w 600 8 || { echo "venv.sh: timed out waiting for .tmp/venv.lock" >&2; return 1; }
    fi
    if [[ ! -x "$VENV_DIR/bin/python" ]]; then
        echo "venv.sh: creating $VENV_DIR" >&2
        if ! python3 -m venv "$VENV_DIR"; then
            rm -rf "$VENV_DIR"
            echo "venv.sh: 'python3 -m venv' failed; on Debian/Ubuntu install python3-venv (apt-get install -y python3-venv)" >&2
            return 1
        fi
    fi
    local want have=""
    want="$(sha256sum "$_venv_reqs" | cut -d' ' -f1)"
    [[ -f "$VENV_DIR/.requirements.sha256" ]] && have="$(cat "$VENV_DIR/.requirements.sha256")"
    if [[ "$want" != "$have" ]]; then
        echo "venv.sh: installing pinned tools from scripts/requirements-test.txt (quiet; this takes a minute the first time)" >&2
        local log="$VENV_DIR/pip-install.log"
        if ! { "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip \
               && "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check -q -r "$_venv_reqs"; } >"$log" 2>&1; then
            echo "venv.sh: pip install FAILED; last lines of $log:" >&2
            tail -n 40 "$log" >&2
            return 1
        fi
        echo "$want" >"$VENV_DIR/.requirements.sha256"
    fi
    if [[ ! -x "$VENV_DIR/bin/moto_server" ]]; then
        echo "venv.sh: $VENV_DIR/bin/moto_server missing after install" >&2
        return 1
    fi
    [[ "${VERBOSE:-0}" == 1 ]] && echo "venv.sh: $VENV_DIR ready" >&2
    exec 8>&-
    return 0
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    ensure_venv
fi
