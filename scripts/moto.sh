#!/usr/bin/env bash
# Local moto server shared by every integration test (S3, DynamoDB, SNS, SQS, EventBridge).
#
#   scripts/moto.sh start     reuse a server already answering on 127.0.0.1:$MOTO_PORT, or start
#                             one in the background (PID in .tmp/moto.pid, log in .tmp/moto.log;
#                             .tmp/moto-$MOTO_PORT.{pid,log} for a port other than 5000)
#                             and wait up to 30 s for it; prints the endpoint on stdout
#   scripts/moto.sh stop      stop the server named by .tmp/moto.pid (never anything else)
#   scripts/moto.sh status    exit 0 and say so when the endpoint answers, exit 1 otherwise
#   scripts/moto.sh endpoint  print http://127.0.0.1:$MOTO_PORT
#
# MOTO_PORT defaults to 5000. Tests read MOTO_ENDPOINT; `export MOTO_ENDPOINT=$(scripts/moto.sh start)`.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOTO_PORT="${MOTO_PORT:-5000}"
ENDPOINT="http://127.0.0.1:${MOTO_PORT}"
TMP_DIR="$REPO_ROOT/.tmp"
# One PID/log file per port, so a second server on another port never clobbers the first.
if [[ "$MOTO_PORT" == 5000 ]]; then
    PID_FILE="$TMP_DIR/moto.pid"
    LOG_FILE="$TMP_DIR/moto.log"
else
    PID_FILE="$TMP_DIR/moto-${MOTO_PORT}.pid"
    LOG_FILE="$TMP_DIR/moto-${MOTO_PORT}.log"
fi

# True when anything speaks HTTP on the port (an HTTP error status still counts as "answers").
answers() {
    python3 - "$ENDPOINT/moto-api/" <<'PY' >/dev/null 2>&1
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
PY
}

# PID from the PID file when that process is alive and is a moto server; empty otherwise.
our_pid() {
    [[ -f "$PID_FILE" ]] || return 0
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q moto_server; then
        echo "$pid"
    fi
}

cmd_start() {
    mkdir -p "$TMP_DIR"
    # Serialise concurrent starts (teammates and test runs share one checkout and one port).
    exec 9>"$TMP_DIR/moto.lock"
    if command -v flock >/dev/null 2>&1; then
        flock -w 120 9 || { echo "moto.sh: timed out waiting for $TMP_DIR/moto.lock" >&2; return 1; }
    fi
    if answers; then
        echo "moto.sh: reusing the server already answering on $ENDPOINT" >&2
        echo "$ENDPOINT"
        return 0
    fi
    # shellcheck source=scripts/venv.sh
    source "$REPO_ROOT/scripts/venv.sh"
    ensure_venv
    nohup "$VENV_DIR/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$LOG_FILE" 2>&1 </dev/null 9>&- &
    local pid=$!
    echo "$pid" >"$PID_FILE"
    local i
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        if answers; then
            echo "moto.sh: started moto_server (pid $pid) on $ENDPOINT" >&2
            echo "$ENDPOINT"
            return 0
        fi
        sleep 0.1
    done
    echo "moto.sh: moto_server (pid $pid) did not answer on $ENDPOINT within 30 s; last lines of $LOG_FILE:" >&2
    tail -n 30 "$LOG_FILE" >&2 || true
    kill "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    return 1
}

cmd_stop() {
    local pid
    pid="$(our_pid)"
    if [[ -z "$pid" ]]; then
        echo "moto.sh: no moto_server started by this checkout is running (no live PID in $PID_FILE)" >&2
        rm -f "$PID_FILE"
        return 0
    fi
    kill "$pid"
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    echo "moto.sh: stopped moto_server (pid $pid)" >&2
}

cmd_status() {
    if answers; then
        local pid
        pid="$(our_pid)"
        if [[ -n "$pid" ]]; then
            echo "moto.sh: running on $ENDPOINT (pid $pid, started by this checkout)"
        else
            echo "moto.sh: something answers on $ENDPOINT (not started by this checkout)"
        fi
        return 0
    fi
    echo "moto.sh: nothing answers on $ENDPOINT"
    return 1
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    endpoint) echo "$ENDPOINT" ;;
    *)
        echo "usage: $0 start|stop|status|endpoint   (MOTO_PORT=${MOTO_PORT})" >&2
        exit 2
        ;;
esac
