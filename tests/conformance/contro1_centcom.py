#!/usr/bin/env python3
"""Drives the Contro1 stand-in with Contro1's official Python SDK (`centcom`, pinned in
scripts/requirements-test.txt) and checks its signed callbacks with the SDK's own
`verify_webhook`.

The stand-in is the real binary (`launcher contro1-dev`) on a free port. Every call the
launcher and the detector make through shared/contro1/src/client.rs is made here through the
SDK, with the bodies our adapters send (launcher/src/adapters/contro1.rs,
detector/src/lambda/contro1.rs):
  - POST /requests           CentcomClient.create_request (Idempotency-Key; a repeat answers
                             the same request)
  - GET /requests/{id}       CentcomClient.get_request, and get_protocol_response (the SDK's
                             reading of the decision, validated with validate_contro1_response)
  - DELETE /requests/{id}    CentcomClient.cancel_request
  - POST /audit-records      CentcomClient.log_action
  - errors                   CentcomError carries the stand-in's status and message
Each decision (approve, deny, expire, cancel) is delivered to a local receiver and verified
with centcom.verify_webhook over the raw bytes received; a changed byte, another secret or a
stale timestamp must fail it.

Usage: contro1_centcom.py [--launcher BIN]. Prints one line per check, "N passed, M failed";
exit 1 on any failure, and when centcom is not installed.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import urllib.request

try:
    import centcom
    from centcom import CentcomClient, validate_contro1_response, verify_webhook
    from centcom.client import CentcomError
except ImportError as e:  # fail loudly: CI must have the SDK
    print(f"FAIL the Contro1 SDK `centcom` is not installed ({e}); "
          "scripts/venv.sh installs it from scripts/requirements-test.txt")
    print("0 passed, 1 failed")
    sys.exit(1)

REPO = pathlib.Path(__file__).resolve().parents[2]
API_KEY = "conformance-key"
SECRET = "whsec_conformance-secret"
PINNED = "1.7.0"


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, cond: bool, msg: str, detail: str = "") -> bool:
        if cond:
            self.passed += 1
            print(f"ok   {msg}")
        else:
            self.failed += 1
            print(f"FAIL {msg}" + (f": {detail}" if detail else ""))
        return cond


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """The launcher's side of the callback: records raw bodies and headers, answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.cond:
                    outer.received.append((raw, {k: v for k, v in self.headers.items()}))
                    outer.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/contro1/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, request_id: str, timeout: float = 10.0) -> tuple[bytes, dict[str, str]] | None:
        deadline = time.time() + timeout
        with self.cond:
            while time.time() < deadline:
                for raw, headers in self.received:
                    if json.loads(raw).get("request_id") == request_id:
                        return raw, headers
                self.cond.wait(0.2)
        return None


def header(headers: dict[str, str], name: str) -> str:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return ""


def launcher_request_body(receiver: Receiver, key: str) -> dict:
    """create_request's arguments as the launcher's adapter fills them."""
    return dict(
        type="approval",
        question="Run MicroVM image agent-sandbox for dev-agent?",
        context="agent dev-agent asks to run agent-sandbox (policy rule run-needs-approval)",
        callback_url=receiver.url,
        required_role="microvm-approver",
        sla_minutes=30,
        metadata={
            "source": {"integration": "aws-lambda-microvms"},
            "context": {"action_type": "run_microvm", "microvm_id": None, "owner": "dev-agent"},
            "actor": {"agent_id": "dev-agent"},
            "launcher": {"image": "agent-sandbox"},
        },
        external_request_id=key,
        correlation_id="case-" + key,
        risk_level="high",
        policy_trigger="run-needs-approval",
        policy_context={
            "source": "microvm-launcher", "policy_name": "microvm-launcher", "rule_id": "run-needs-approval",
            "rule_reason": "images need approval", "policy_version": "1", "enforcement": "require_approval",
        },
        idempotency_key=key,
    )


def dev(base: str, path: str) -> dict:
    req = urllib.request.Request(base + path, method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def verify_callback(c: Checks, what: str, got, request_id: str, state: str) -> None:
    if not c.check(got is not None, f"{what}: the stand-in delivered a callback for {request_id}"):
        return
    raw, headers = got
    sig, ts = header(headers, "X-Centcom-Signature"), header(headers, "X-Centcom-Timestamp")
    c.check(verify_webhook(raw, sig, ts, SECRET),
            f"{what}: centcom.verify_webhook accepts the callback's signature over the raw body",
            f"signature {sig!r}, timestamp {ts!r}")
    c.check(header(headers, "X-Centcom-Request-Id") == request_id,
            f"{what}: X-Centcom-Request-Id names the request")
    body = json.loads(raw)
    c.check(body.get("request_id") == request_id and body.get("state") == state,
            f"{what}: the callback body has request_id and state {state!r}", json.dumps(body)[:300])
    tampered = raw.replace(b'"state"', b'"State"', 1)
    c.check(not verify_webhook(tampered, sig, ts, SECRET), f"{what}: verify_webhook refuses a changed body")
    c.check(not verify_webhook(raw, sig, ts, SECRET + "x"), f"{what}: verify_webhook refuses another secret")
    stale = str(int(ts) - 301)
    c.check(not verify_webhook(raw, sig, stale, SECRET), f"{what}: verify_webhook refuses a timestamp 301 s old")


def run(c: Checks, base: str, receiver: Receiver) -> None:
    c.check(centcom.__version__ == PINNED, f"centcom {centcom.__version__} is the pinned {PINNED}")
    client = CentcomClient(api_key=API_KEY, base_url=base, timeout=10)

    # POST /requests, as the launcher sends it; the repeat with the same key is the same request.
    created = client.create_request(**launcher_request_body(receiver, "idem-approve"))
    rid = created.get("id")
    c.check(isinstance(rid, str) and rid and created.get("state") == "created",
            "create_request (the launcher's body): answers a string id and state 'created'", json.dumps(created)[:300])
    again = client.create_request(**launcher_request_body(receiver, "idem-approve"))
    c.check(again.get("id") == rid, "create_request again with the same Idempotency-Key answers the same request")
    minimal = client.create_request(type="yes_no", context="ctx", question="ok?")
    c.check(bool(minimal.get("id")), "create_request with only the SDK's required arguments is accepted")

    # GET /requests/{id}
    got = client.get_request(rid)
    c.check(got.get("id") == rid and got.get("state") == "created" and got.get("callback_url") == receiver.url,
            "get_request answers the request with its state and callback_url")

    # approve -> callback; the SDK reads the decision as approved.
    dev(base, f"/_dev/requests/{rid}/approve")
    verify_callback(c, "approve", receiver.wait_for(rid), rid, "answered")
    proto = client.get_protocol_response(rid)
    c.check(proto.get("status") == "approved" and proto.get("decision_type") == "approve",
            "get_protocol_response reads an approved request as status 'approved', decision 'approve'", json.dumps(proto))
    c.check(validate_contro1_response(proto) == [], "validate_contro1_response accepts it",
            "; ".join(validate_contro1_response(proto)))

    # deny, expire, cancel
    for verb, state, status in (("deny", "answered", "denied"), ("expire", "expired", "timed_out")):
        r = client.create_request(**launcher_request_body(receiver, f"idem-{verb}"))["id"]
        dev(base, f"/_dev/requests/{r}/{verb}")
        verify_callback(c, verb, receiver.wait_for(r), r, state)
        proto = client.get_protocol_response(r)
        c.check(proto.get("status") == status, f"get_protocol_response reads a {verb} as status {status!r}", json.dumps(proto))
        c.check(validate_contro1_response(proto) == [], f"validate_contro1_response accepts the {verb}")
    r = client.create_request(**launcher_request_body(receiver, "idem-cancel"))["id"]
    cancelled = client.cancel_request(r)
    c.check(cancelled.get("state") == "cancelled", "cancel_request answers state 'cancelled'", json.dumps(cancelled)[:200])
    verify_callback(c, "cancel", receiver.wait_for(r), r, "cancelled")
    c.check(client.get_protocol_response(r).get("status") == "cancelled", "get_protocol_response reads it as 'cancelled'")

    # POST /audit-records, as the launcher's and the detector's adapters send them.
    record = client.log_action(
        action="aws.microvm.bypass.detected",
        summary="RunMicrovm succeeded outside the launcher (non-launcher-principal)",
        source={"integration": "aws-lambda-microvms", "workflow_id": "detector"},
        actor={"agent_id": "dev-alice"},
        resource={"type": "aws.lambda.microvm", "id": "mvm-1", "uri": "arn:aws:lambda:us-east-1:111122223333:microvm:mvm-1"},
        outcome="failure",
        severity="critical",
        correlation_id="case-audit",
        external_request_id="evt-1",
        in_reply_to={"type": "request", "id": rid},
        metadata={"rule": "non-launcher-principal"},
    )
    c.check(isinstance(record.get("id"), str) and record["id"] and record.get("action") == "aws.microvm.bypass.detected",
            "log_action (POST /audit-records) answers the record with a string id", json.dumps(record)[:300])

    # Errors: the SDK's CentcomError carries status and the stand-in's message.
    for what, call, status in (
        ("a wrong API key", lambda: CentcomClient(api_key="wrong", base_url=base).get_request(rid), 401),
        ("an unknown request", lambda: client.get_request("req_does_not_exist"), 404),
        ("cancelling a decided request", lambda: client.cancel_request(rid), 409),
        # The SDK always sends type, question and context; a body without them is not one
        # Contro1 receives from its SDK, and the stand-in must not accept what Contro1 may refuse.
        ("a request with only a question", lambda: client.post("/requests", json={"question": "Run it?"}), 400),
        ("an audit record without summary and source", lambda: client.post("/audit-records", json={"action": "a.b"}), 400),
    ):
        try:
            call()
            c.check(False, f"{what}: CentcomError with HTTP {status}", "the call succeeded")
        except CentcomError as e:
            c.check(e.status_code == status and str(e) and not str(e).startswith("HTTP "),
                    f"{what}: CentcomError HTTP {e.status_code} with the stand-in's message ({e})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--launcher", help="launcher binary (default: cargo build -p launcher, then target/debug/launcher)")
    args = ap.parse_args()
    launcher = args.launcher
    if not launcher:
        if subprocess.run(["cargo", "build", "-q", "-p", "launcher", "--bin", "launcher"], cwd=REPO).returncode != 0:
            print("FAIL cargo build -p launcher")
            return 1
        target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        launcher = str(target / "debug" / "launcher")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, CONTRO1_API_KEY=API_KEY, CONTRO1_WEBHOOK_SECRET=SECRET, RUST_LOG="warn")
    proc = subprocess.Popen([launcher, "contro1-dev", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    c = Checks()
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            if proc.poll() is not None:
                print(f"FAIL `launcher contro1-dev` exited {proc.returncode}: {proc.stderr.read().decode()[-500:]}")
                return 1
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            print(f"FAIL `launcher contro1-dev --port {port}` did not listen within 20 s")
            return 1
        receiver = Receiver()
        try:
            run(c, base, receiver)
        except Exception as e:  # a check that cannot even run is a failure, with its reason
            c.check(False, "the SDK conversation ran to the end", f"{type(e).__name__}: {e}")
        receiver.server.shutdown()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
