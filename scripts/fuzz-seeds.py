#!/usr/bin/env python3
"""Write the fuzz seed corpora into fuzz/corpus/<target>/ (gitignored).

Seeds are made at run time from the project's own fixtures (detector/fixtures/) and from
records written here, in every input shape the reader accepts (Records object, bare array,
JSON Lines, lookup-events, EventBridge envelope, digest, BOM, gzip, multi-member gzip).
When the shared CloudTrail data is beside the checkout (../shared/data/cloudtrail, or
$MICROVM_SHARED_DIR), its small files are added by path: they land only in the gitignored
corpus, never in the repository.

  scripts/fuzz-seeds.py            # from the repository root
"""
import glob
import gzip
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
FIXTURES = os.path.join(ROOT, "detector", "fixtures")
ACCOUNT = "111122223333"
# Must match fuzz/src/lib.rs.
LAUNCHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/Contro1MicrovmLauncher"
LAUNCHER_SESSION = "contro1-microvm-launcher"
IMAGE = f"arn:aws:lambda:us-east-1:{ACCOUNT}:microvm-image:agent-sandbox"
SMALL = 8 << 10
MAX_SHARED = 150


def launcher(session=LAUNCHER_SESSION):
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/Contro1MicrovmLauncher/{session}",
        "accountId": ACCOUNT,
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": LAUNCHER_ROLE}},
    }


USER = {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice", "accountId": ACCOUNT}


def rec(n, name, who, params=None, response=None, source="lambda.amazonaws.com", **extra):
    r = {
        "eventVersion": "1.11",
        "userIdentity": who,
        "eventTime": "2025-10-02T14:03:11Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.24",
        "userAgent": "aws-cli/2.27.1",
        "requestParameters": params,
        "responseElements": response,
        "requestID": f"req-{n}",
        "eventID": f"evt-{n}",
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    }
    r.update(extra)
    return r


def payload(req_id):
    return json.dumps({"contro1_request_id": req_id, "agent_id": "agent-1", "owner": "o"})


def records():
    run = lambda req, tok: {  # noqa: E731
        "clientToken": tok,
        "imageIdentifier": IMAGE,
        "runHookPayload": payload(req) if req else "not json",
    }
    out = [
        rec(1, "RunMicrovm", launcher(), run("c1-1", "c1-1"), {"microvmId": "ai-1"}),
        rec(2, "RunMicrovm", USER, run("c1-2", "c1-2"), {"microvmId": "ai-2"}),
        rec(3, "RunMicrovm", launcher("someone-else"), run("c1-3", "c1-3")),
        rec(4, "RunMicrovm", launcher(), run(None, "c1-4")),
        rec(5, "RunMicrovm", launcher(), run("c1-5", "other")),
        rec(6, "CreateMicrovmShellAuthToken", USER, {"microvmIdentifier": "ai-1"},
            None, errorCode="AccessDenied"),
        rec(7, "TerminateMicrovm20250909", USER, {"microvmIdentifier": "ai-1"}),
        rec(8, "StopLogging", USER, {"name": "org-trail"}, source="cloudtrail.amazonaws.com"),
        rec(9, "GetObject", USER, {"bucketName": "b", "key": "k"}, source="s3.amazonaws.com"),
        {"eventVersion": "1.08", "eventType": "AwsCloudTrailInsight", "eventID": "evt-10",
         "insightDetails": {"state": "Start"}},
        rec(11, "RunMicrovm", launcher(),
            {"runHookPayload": "HIDDEN_DUE_TO_SECURITY_REASONS"}),
        rec(1, "RunMicrovm", launcher(), run("c1-1", "c1-1")),  # duplicate eventID
    ]
    return out


def dumps(v):
    return json.dumps(v, separators=(",", ":")).encode()


def shapes(recs):
    """Every CloudTrail input shape the reader accepts, as (name, bytes)."""
    lines = b"\n".join(dumps(r) for r in recs) + b"\n"
    escaped = dumps(recs[1]).replace(b'"RunMicrovm"', b'"RunMicrov\\u006d"')
    out = {
        "records.json": dumps({"Records": recs}),
        "records-pretty.json": json.dumps({"Records": recs[:3]}, indent=2).encode(),
        "array.json": dumps(recs),
        "lines.jsonl": lines,
        "lookup-events.json": dumps(
            {"Events": [{"EventId": r.get("eventID"), "CloudTrailEvent": json.dumps(r)}
                        for r in recs[:4]], "NextToken": "t"}),
        "eventbridge.json": dumps({"version": "0", "detail-type": "AWS API Call via CloudTrail",
                                   "source": "aws.lambda", "detail": recs[1]}),
        "digest.json": dumps({"awsAccountId": ACCOUNT, "digestStartTime": "2025-10-02T13:00:00Z",
                              "logFiles": [{"s3Object": "k", "hashValue": "ab"}]}),
        "bom.json": b"\xef\xbb\xbf" + dumps({"Records": recs[:2]}),
        "escaped.json": b'{"Records":[' + escaped + b"]}",
        "empty-records.json": b'{"Records":[]}',
    }
    for name, data in list(out.items()):
        out[name + ".gz"] = gzip.compress(data, mtime=0)
    out["multi-member.json.gz"] = gzip.compress(lines[: len(lines) // 2], mtime=0) + \
        gzip.compress(lines[len(lines) // 2:], mtime=0)
    return out


def example_files():
    """The project's own CloudTrail examples (detector/fixtures/examples/), every shape."""
    out = {}
    for f in sorted(glob.glob(os.path.join(FIXTURES, "examples", "**", "*.json*"),
                              recursive=True)):
        with open(f, "rb") as fh:
            out["example-" + os.path.basename(f)] = fh.read()
    return out


def shared_files():
    base = os.environ.get("MICROVM_SHARED_DIR") or os.path.join(ROOT, "..", "shared")
    data = os.path.join(base, "data", "cloudtrail")
    if not os.path.isdir(data):
        return {}
    small = [f for f in sorted(glob.glob(os.path.join(data, "**", "*.json*"), recursive=True))
             if os.path.getsize(f) <= SMALL]
    # An even spread of at most MAX_SHARED files: enough shapes, a quick start.
    step = max(1, len(small) // MAX_SHARED)
    out = {}
    for f in small[::step][:MAX_SHARED]:
        with open(f, "rb") as fh:
            out["shared-" + os.path.basename(f)] = fh.read()
    return out


def plain_bytes(data):
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def write(target, seeds):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, "seed-" + name), "wb") as fh:
            fh.write(data)
    return len(seeds)


def main():
    recs = records()
    docs = shapes(recs)
    docs.update(example_files())
    docs.update(shared_files())
    counts = {"cloudtrail_reader": write("cloudtrail_reader", docs)}
    # input_shapes: two bytes of cut position, then the document.
    # The target gzips the document itself, so seeds are the plain documents.
    plain = {n[:-3] if n.endswith(".gz") else n: plain_bytes(d) for n, d in docs.items()}
    counts["input_shapes"] = write("input_shapes", {
        n: (len(d) // 2 % 65536).to_bytes(2, "little") + d for n, d in plain.items()})

    notes = {}
    for f in sorted(glob.glob(os.path.join(FIXTURES, "notifications", "*.json"))):
        with open(f, "rb") as fh:
            raw = fh.read()
        notes[os.path.basename(f)] = raw
        # The inner bodies and messages on their own, as decode_message_body sees them.
        for i, r in enumerate(json.loads(raw).get("Records", []) or []):
            inner = r.get("body") or (r.get("Sns") or {}).get("Message")
            if isinstance(inner, str):
                notes[f"{os.path.basename(f)}-inner-{i}"] = inner.encode()
    notes["key-escapes"] = b"AWSLogs/a+b%2Fc%C3%A9%41"
    counts["notification_decoder"] = write("notification_decoder", notes)

    bodies = {
        "approved": dumps({"request_id": "req_1", "state": "answered",
                           "response": {"approved": True}}),
        "expired": dumps({"request_id": "req_2", "state": "expired", "response": None,
                          "responded_at": 1700000000}),
        "status": dumps({"request_id": "req_3", "state": "answered", "status": "approved"}),
    }
    counts["webhook_verifier"] = write("webhook_verifier", bodies)
    for t, n in counts.items():
        print(f"fuzz/corpus/{t}: {n} seeds")


if __name__ == "__main__":
    sys.exit(main())
