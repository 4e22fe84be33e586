#!/usr/bin/env bash
# Checks that the README's commands share one build of every crate: each crate (name, version,
# target) must be compiled with the same features and flags by the quick start, the test
# command, the demo and the walkthrough, so that a newcomer following the README in order never
# compiles a crate twice.
#
#   scripts/check-one-build.sh          builds what each README command builds, in README order
#                                       (`cargo build`/`cargo test --no-run`, with
#                                       --message-format=json), and fails naming every crate
#                                       that got a second build (another fingerprint)
#   scripts/check-one-build.sh --tree   only compares the feature sets cargo resolves for each
#                                       command (`cargo tree`, seconds, nothing compiled) and
#                                       prints the workspace-hack lines that would make them equal
#
# A crate built twice within one command (a build script's dependency with other features than
# the runtime's) is counted once: only a command that needs a build an earlier command did not
# make is an error. Nothing is run; the commands are the README's:
#   1. quick start 1:  cargo run -p detector -- scan ...
#   2. quick start 2:  ./scripts/test.sh (cargo test --workspace, lib/bins/tests/examples/benches)
#   3. demo:           scripts/demo.sh (cargo build -p launcher -p detector --bins;
#                      cargo test -p e2e --test pipeline)
#   4. walkthrough:    launcher/examples/walkthrough.sh (cargo build -p launcher)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

if [[ "${1:-}" == "--tree" ]]; then
    tree() { cargo tree "$@" -f '{p} [{f}]' --prefix none --no-dedupe | sed 's/ (\*)//; s/ (proc-macro)//' | sort -u; }
    # Only what is compiled for the target: build scripts' and proc-macros' dependencies are
    # resolved on their own (resolver 2), so their feature sets never reach these builds.
    tree -p detector -e normal,no-proc-macro >"$TMP/1-quick-start"
    tree --workspace -e normal,dev,no-proc-macro >"$TMP/2-test"
    tree -p launcher -p detector -e normal,no-proc-macro >"$TMP/3-demo-bins"
    tree -p e2e -e normal,dev,no-proc-macro >"$TMP/3-demo-e2e"
    tree -p launcher -e normal,no-proc-macro >"$TMP/4-walkthrough"
    python3 - "$TMP" <<'EOF'
import os, re, sys
tmp = sys.argv[1]
def load(name):
    out = {}
    for line in open(os.path.join(tmp, name)):
        m = re.match(r"(\S+) v(\S+)( \(/[^)]*\))? \[(.*)\]$", line.strip())
        if m and not m[3]:  # registry crates only; the workspace's own are built per command
            out.setdefault((m[1], m[2]), set()).add(m[4])
    return out
test = load("2-test")
lines, bad = {}, 0
for name in sorted(os.listdir(tmp)):
    if name == "2-test":
        continue
    for key, feats in sorted(load(name).items()):
        if key in test and feats != test[key]:
            bad += 1
            crate, version = key
            print(f"{name}: {crate} {version} has features {sorted(feats)}, the test build {sorted(test[key])}")
            f = sorted(x for fs in test[key] for x in fs.split(",") if x and x != "default")
            default = any("default" in fs.split(",") for fs in test[key])
            req = ".".join(version.split(".")[:2]) if version.startswith("0.") else version.split(".")[0]
            lines[key] = (f'{crate} = {{ version = "{req}"' + ("" if default else ", default-features = false")
                          + (", features = [" + ", ".join(f'"{x}"' for x in f) + "]" if f else "") + " }")
if bad:
    print("\nadd to shared/workspace-hack/Cargo.toml [dependencies]:")
    for line in sorted(set(lines.values())):
        print("  " + line)
    sys.exit(1)
print("check-one-build --tree: every README command resolves the same features as the test build")
EOF
    exit
fi

run() {
    local label="$1"
    shift
    local start=$SECONDS
    echo "==> $label: cargo $*" >&2
    cargo "$@" --message-format=json-render-diagnostics >"$TMP/$label.json"
    echo "    $((SECONDS - start)) s" >&2
}
run 1-quick-start build -p detector --bin detector
run 2-test test --workspace --lib --bins --tests --examples --benches --no-run
run 3-demo-bins build -p launcher -p detector --bins
run 3-demo-e2e test -p e2e --test pipeline --no-run
run 4-walkthrough build -p launcher

python3 - "$TMP" <<'EOF'
import json, os, re, sys
tmp = sys.argv[1]
seen = {}     # (package, target kind, target name) -> {fingerprint: first command}
twice = {}
units = 0
for name in sorted(os.listdir(tmp)):
    here = {}
    for line in open(os.path.join(tmp, name)):
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or msg["profile"]["test"]:
            continue
        key = (msg["package_id"], ",".join(msg["target"]["kind"]), msg["target"]["name"])
        path = msg["filenames"][0]
        # deps/libNAME-HASH.rlib, build/NAME-HASH/build-script-build: the metadata hash
        m = re.search(r"-([0-9a-f]{16})(?:\.[a-z]+)?$", os.path.basename(path)) or \
            re.search(r"-([0-9a-f]{16})$", os.path.dirname(path))
        if not m:
            continue  # a final binary without its hash (target/debug/detector)
        here.setdefault(key, set()).add(m[1])
    for key, hashes in here.items():
        units += 1
        known = seen.setdefault(key, {})
        new = [h for h in hashes if h not in known]
        if known and new:
            twice.setdefault(key, []).append(f"{name} ({len(new)} new)")
        for h in hashes:
            known.setdefault(h, name)
for (pkg, kind, target), where in sorted(twice.items()):
    first = sorted(set(seen[(pkg, kind, target)].values()))
    print(f"compiled again: {pkg.split('#')[-1]} {kind} {target}: first in {first[0]}, again in {', '.join(where)}")
print(f"check-one-build: {len(seen)} crates/targets across the README commands, "
      f"{len(twice)} compiled more than once")
sys.exit(1 if twice else 0)
EOF
