#!/usr/bin/env bash
# The local walkthrough of launcher/README.md, as a script that checks every step.
# Usage (from the repository root): launcher/examples/walkthrough.sh
# Needs: cargo, curl, python3. Uses ports 8080 (launcher) and 8700 (Contro1 stand-in),
# or LAUNCHER_PORT / CONTRO1_PORT.
set -euo pipefail
cd "$(dirname "$0")/../.."

LPORT="${LAUNCHER_PORT:-8080}"
CPORT="${CONTRO1_PORT:-8700}"
cargo build -q -p launcher
BIN=target/debug/launcher
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# 1. The Contro1 stand-in (a local Contro1 with /_dev endpoints for a reviewer).
CONTRO1_API_KEY=dev-key CONTRO1_WEBHOOK_SECRET=dev-secret \
  "$BIN" contro1-dev --port "$CPORT" >/tmp/walkthrough-contro1.log 2>&1 &
pids+=($!)
# 2. The launcher, simulating AWS, with the example policy.
SIMULATE_AWS=true CONTRO1_BASE_URL="http://127.0.0.1:$CPORT" \
  CONTRO1_API_KEY=dev-key CONTRO1_WEBHOOK_SECRET=dev-secret \
  "$BIN" serve --port "$LPORT" --config launcher/examples/launcher.toml >/tmp/walkthrough-launcher.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "localhost:$LPORT/healthz" >/dev/null && break; sleep 0.1; done

AUTH='Authorization: Bearer dev-agent-token'
field() { python3 -c "import sys,json; print(json.load(sys.stdin)$1)"; }

# 3. Start a MicroVM: within policy, so auto-approved (200) and audited.
VM=$(curl -sf -XPOST "localhost:$LPORT/microvms/run-request" -H "$AUTH" -d '{
  "owner": "platform-team", "reason": "try the launcher",
  "image_arn": "arn:aws:lambda:us-east-1:111122223333:microvm-image:python-sandbox",
  "execution_role_arn": "arn:aws:iam::111122223333:role/microvm-sandbox",
  "duration_seconds": 600}' | field '["result"]["microvm_id"]')
echo "started $VM"

# 4. Ask for a shell token: always needs a human (202 pending).
REQ=$(curl -s -XPOST "localhost:$LPORT/microvms/$VM/shell-token-request" -H "$AUTH" \
  -d '{"owner": "platform-team", "reason": "debug a failing build", "token_ttl_seconds": 300}')
echo "$REQ"
ID=$(echo "$REQ" | field '["request_id"]')
test "$(echo "$REQ" | field '["status"]')" = pending
test "$(curl -s "localhost:$LPORT/requests/$ID" -H "$AUTH" | field '["state"]')" = pending

# 5. A reviewer approves; the stand-in POSTs a signed callback to the launcher.
"$BIN" contro1-dev approve "$ID" --url "http://127.0.0.1:$CPORT"

# 6. Fetch the token: returned once, then erased.
FIRST=$(curl -s "localhost:$LPORT/requests/$ID" -H "$AUTH")
echo "$FIRST"
test "$(echo "$FIRST" | field '["state"]')" = executed
echo "$FIRST" | field '["token"]' >/dev/null
SECOND=$(curl -s "localhost:$LPORT/requests/$ID" -H "$AUTH")
test "$(echo "$SECOND" | field '.get("token")')" = None
test "$(echo "$SECOND" | field '["token_already_returned"]')" = True
# No token value in the launcher's log.
TOKEN=$(echo "$FIRST" | field '["token"]')
! grep -q "$TOKEN" /tmp/walkthrough-launcher.log
echo "walkthrough OK"
