#!/usr/bin/env bash
# Validates everything under infra/ (called by scripts/test.sh; runnable on its own).
#
#   1. tools: .tmp/infra-venv (aws-sam-cli, cfn-lint; pinned in infra/requirements.txt) and
#      `npm ci` in infra/cdk (aws-cdk CLI, aws-cdk-lib, cargo-lambda-cdk, and cfn-guard, whose
#      static binary ships inside the npm package @cdklabs/cdk-validator-cfnguard). Both are
#      re-installed only when their pin files change. Needs only the package registries.
#   2. cfn-lint and `sam validate --lint` on infra/sam/template.yaml;
#   3. `cdk synth` offline (no credentials, no lookups, bundling skipped) and cfn-lint on it;
#   4. cfn-guard (infra/guard/*.guard) on both templates (SAM decoded to long-form JSON);
#      every rule must pass;
#   5. the guard negative tests: each mutation (of both templates) must fail its rule;
#   6. parity: the SAM template (expanded by the SAM translator) and the CDK output agree
#      property by property after normalising intrinsics and logical ids, except the
#      allow-listed differences; --self-test proves mutated copies fail; both Athena named
#      queries are infra/athena/bypass-hunt.sql (which must parse as Trino SQL, and run on
#      DuckDB through sqlglot with the same findings as `detector scan`, finding by finding,
#      over the edge cases, the fixtures, a generated corpus and ../shared/data: it builds
#      the detector; infra/tests/athena_duckdb.py); the
#      committed deny policy, boundary and SCP are what infra/policies/generate.py makes;
#      the least-privilege check: each role's granted actions against the SDK operations its
#      function's Rust sources call (allow-listed differences carry a reason); the IAM policy
#      evaluator's and the generator's unit tests; the attack matrix (infra/iam/attack_matrix.py:
#      every THREAT-MODEL row as IAM requests, evaluated against the generated deny policies,
#      boundary and SCP and the template's resource policies);
#   7. the organization templates (infra/org: member, security, forwarding) and the CDK app's
#      stacks for them: cfn-lint on both forms, `sam validate --lint` (the two SAM ones),
#      infra/guard/organization.guard on both forms and its negative tests on both, parity
#      (SAM against CDK, in step 6's parity run), their copies of single-account resources
#      against the originals (org_drift.py), every EventBridge pattern within its 2,048-character
#      quota (event_pattern_size.py), a ledger write across accounts refused on both
#      sides (cross_account_ledger.py); the least-privilege check above covers their roles;
#   8. infra/gate (cfn-guard rules, semantic invariants, governance-surface baseline diff) on
#      the SAM template, the CDK synth output and the organization templates (both forms), and
#      the gate's mutation tests (infra/tests/gate_mutations.py: each insider weakening,
#      applied to SAM and CDK, and those that fit the member and security templates to both of
#      their forms, must fail the gate);
#   9. INFRA_BUILD=1 only (slow): `cargo lambda build --release --arm64` for both functions
#      (x86-64 if the arm64 std cannot be installed here), printing the zip sizes.
#
# Exit status non-zero on the first failing step, with the step named.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
INFRA_VENV="$REPO_ROOT/.tmp/infra-venv"
CDK_DIR="$REPO_ROOT/infra/cdk"
SAM_TEMPLATE="infra/sam/template.yaml"
CDK_TEMPLATE="infra/cdk/cdk.out/MicrovmGovernance.template.json"
GUARD_RULES="infra/guard/microvm-governance.guard"
ORG_GUARD_RULES="infra/guard/organization.guard"
ORG_TEMPLATES=(infra/org/member.yaml infra/org/security.yaml infra/org/forwarding.yaml)
ORG_KINDS=(member security forwarding)
# The CDK app's organization stacks, in the same order (cdk.out/<stack id>.template.json).
ORG_CDK_TEMPLATES=(
    infra/cdk/cdk.out/MicrovmGovernanceMember.template.json
    infra/cdk/cdk.out/MicrovmGovernanceSecurity.template.json
    infra/cdk/cdk.out/MicrovmGovernanceForwarding.template.json
)
STEPS_OK=0

say() { printf '\n--> infra-check: %s\n' "$*" >&2; }
fail() {
    printf '\ninfra-check: FAILED: %s\n' "$*" >&2
    printf 'infra-check: %d passed, 1 failed\n' "$STEPS_OK"
    exit 1
}
ok() { STEPS_OK=$((STEPS_OK + 1)); printf 'infra-check: ok: %s\n' "$*" >&2; }

# Offline-safe AWS settings: nothing here talks to AWS, but the SDK-based tools want a region
# and credentials to exist. Telemetry and update checks off (no network but the registries).
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_REGION="${AWS_REGION:-$AWS_DEFAULT_REGION}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-AKIAINFRACHECKDUMMY}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-infra-check-dummy-secret}"
export AWS_EC2_METADATA_DISABLED=true
export SAM_CLI_TELEMETRY=0
export CDK_DISABLE_VERSION_CHECK=true
export CDK_DISABLE_CLI_TELEMETRY=true
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

# ---------------------------------------------------------------- 1. tools
ensure_pip_tools() { # $1 = requirements file, $2 = stamp name
    local reqs="$1" stamp="$INFRA_VENV/.$2.sha256" want have=""
    if [[ ! -x "$INFRA_VENV/bin/python" ]]; then
        say "creating $INFRA_VENV"
        python3 -m venv "$INFRA_VENV" || { rm -rf "$INFRA_VENV"; fail "python3 -m venv (Debian: apt-get install -y python3-venv)"; }
    fi
    want="$(sha256sum "$reqs" | cut -d' ' -f1)"
    [[ -f "$stamp" ]] && have="$(cat "$stamp")"
    if [[ "$want" != "$have" ]]; then
        say "pip install -r $reqs (quiet; a minute or two the first time)"
        local log="$INFRA_VENV/pip-$2.log"
        if ! { "$INFRA_VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip \
               && "$INFRA_VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$reqs"; } >"$log" 2>&1; then
            tail -n 30 "$log" >&2
            fail "pip install -r $reqs (log: $log)"
        fi
        echo "$want" >"$stamp"
    fi
}

say "tools"
command -v python3 >/dev/null || fail "python3 not found"
command -v npm >/dev/null || fail "npm not found (install Node.js 20+)"
ensure_pip_tools infra/requirements.txt infra
CFN_LINT="$INFRA_VENV/bin/cfn-lint"
SAM="$INFRA_VENV/bin/sam"
[[ -x "$CFN_LINT" && -x "$SAM" ]] || fail "cfn-lint or sam missing from $INFRA_VENV"

lock_sum="$(sha256sum "$CDK_DIR/package-lock.json" | cut -d' ' -f1)"
if [[ ! -d "$CDK_DIR/node_modules" || "$(cat "$CDK_DIR/node_modules/.infra-check.sha256" 2>/dev/null)" != "$lock_sum" ]]; then
    say "npm ci in infra/cdk"
    (cd "$CDK_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2) || fail "npm ci in infra/cdk"
    echo "$lock_sum" >"$CDK_DIR/node_modules/.infra-check.sha256"
fi

case "$(uname -m)" in
    x86_64 | amd64) guard_arch=x86_64 ;;
    aarch64 | arm64) guard_arch=aarch64 ;;
    *) guard_arch="$(uname -m)" ;;
esac
CFN_GUARD="$CDK_DIR/node_modules/@cdklabs/cdk-validator-cfnguard/bin/ubuntu/$guard_arch/cfn-guard"
if [[ ! -x "$CFN_GUARD" ]]; then
    # No prebuilt binary for this platform in the npm package: build it from crates.io once.
    if ! command -v cfn-guard >/dev/null; then
        say "cargo install cfn-guard --locked (compiles for several minutes, once)"
        cargo install cfn-guard --locked >&2 || fail "cargo install cfn-guard"
    fi
    CFN_GUARD="$(command -v cfn-guard)"
fi
"$CFN_GUARD" --version >&2 || fail "cfn-guard does not run: $CFN_GUARD"
ok "tools ($("$CFN_LINT" --version 2>&1 | tail -1), $("$SAM" --version 2>&1), $("$CFN_GUARD" --version 2>&1))"

# ---------------------------------------------------------------- 2. SAM template
say "cfn-lint $SAM_TEMPLATE"
"$CFN_LINT" "$SAM_TEMPLATE" >&2 || fail "cfn-lint reported problems in $SAM_TEMPLATE"
ok "cfn-lint $SAM_TEMPLATE"

say "sam validate --lint"
"$SAM" validate --lint -t "$SAM_TEMPLATE" --region "$AWS_DEFAULT_REGION" >&2 || fail "sam validate --lint $SAM_TEMPLATE"
ok "sam validate --lint"

# ---------------------------------------------------------------- 3. CDK synth
say "cdk synth (offline, bundling skipped)"
rm -rf "$CDK_DIR/cdk.out"
synth_log="$REPO_ROOT/.tmp/cdk-synth.log"
if ! (cd "$CDK_DIR" && npx --no-install cdk synth --quiet --no-notices -c skipBundling=true) >"$synth_log" 2>&1; then
    tail -n 40 "$synth_log" >&2
    fail "cdk synth (log: $synth_log)"
fi
for t in "$CDK_TEMPLATE" "${ORG_CDK_TEMPLATES[@]}"; do
    [[ -s "$t" ]] || fail "cdk synth wrote no $t"
done
ok "cdk synth -> $CDK_TEMPLATE"

say "cfn-lint $CDK_TEMPLATE and the organization stacks"
"$CFN_LINT" -- "$CDK_TEMPLATE" "${ORG_CDK_TEMPLATES[@]}" >&2 || fail "cfn-lint reported problems in the CDK output"
ok "cfn-lint $CDK_TEMPLATE ${ORG_CDK_TEMPLATES[*]}"

# ---------------------------------------------------------------- 4. guard rules
# The rules are written for long-form JSON (the CDK output is; the SAM YAML is decoded).
SAM_LONG_FORM="$REPO_ROOT/.tmp/sam-template.json"
"$INFRA_VENV/bin/python" infra/guard/long_form.py "$SAM_TEMPLATE" "$SAM_LONG_FORM" || fail "cannot decode $SAM_TEMPLATE"
for t in "$SAM_LONG_FORM" "$CDK_TEMPLATE"; do
    say "cfn-guard validate $t"
    "$CFN_GUARD" validate -r "$GUARD_RULES" -d "$t" --show-summary all -o single-line-summary >&2 \
        || fail "cfn-guard rules fail on $t"
    ok "cfn-guard $t"
done

# ---------------------------------------------------------------- 5. guard negative tests
say "guard negative tests (each rule must fail on a broken copy)"
"$INFRA_VENV/bin/python" infra/guard/tests/guard_negative_tests.py \
    --guard "$CFN_GUARD" --rules "$GUARD_RULES" --out "$REPO_ROOT/.tmp/guard-broken" \
    "$SAM_TEMPLATE" "$CDK_TEMPLATE" >&2 || fail "guard negative tests"
ok "guard negative tests"

# ---------------------------------------------------------------- 6. parity
say "SAM/CDK parity and Athena query"
org_pairs=()
for i in "${!ORG_KINDS[@]}"; do
    org_pairs+=(--org "${ORG_KINDS[$i]}" "${ORG_TEMPLATES[$i]}" "${ORG_CDK_TEMPLATES[$i]}")
done
"$INFRA_VENV/bin/python" infra/tests/parity.py --self-test "$SAM_TEMPLATE" "$CDK_TEMPLATE" infra/athena/bypass-hunt.sql "${org_pairs[@]}" >&2 \
    || fail "SAM/CDK parity"
ok "parity"

say "least privilege: granted IAM actions against the SDK calls in the Rust sources"
"$INFRA_VENV/bin/python" infra/tests/least_privilege.py --self-test "$SAM_TEMPLATE" \
    --org infra/org/member.yaml infra/org/security.yaml >&2 \
    || fail "least privilege (grants and SDK calls differ)"
ok "least privilege"

say "deny policy, boundary and SCP generated from the stack's deny policy"
"$INFRA_VENV/bin/python" infra/policies/generate.py --template "$SAM_TEMPLATE" --example --check infra/policies >&2 \
    || fail "infra/policies/*.json are not what generate.py makes from $SAM_TEMPLATE"
ok "generated policies current"

say "IAM policy evaluator and generator tests (infra/iam, infra/policies)"
"$INFRA_VENV/bin/python" -m unittest infra/iam/test_evaluator.py infra/policies/test_generate.py >&2 \
    || fail "evaluator or generator tests"
ok "evaluator and generator tests"

say "attack matrix: THREAT-MODEL T1-T19 evaluated against the generated policies and the template's resource policies"
"$INFRA_VENV/bin/python" infra/iam/attack_matrix.py --template "$SAM_TEMPLATE" --why --self-test >&2 \
    || fail "attack matrix on $SAM_TEMPLATE (an attack is allowed or a launcher/detector call is denied; see the table above)"
"$INFRA_VENV/bin/python" infra/iam/attack_matrix.py --template "$CDK_TEMPLATE" --why --only-failures >&2 \
    || fail "attack matrix on $CDK_TEMPLATE"
ok "attack matrix (SAM and CDK)"

say "Athena SQL syntax (Trino parser)"
"$INFRA_VENV/bin/python" infra/tests/athena_sql_parses.py infra/athena/bypass-hunt.sql >&2 \
    || fail "infra/athena/bypass-hunt.sql does not parse"
ok "Athena SQL parses"

say "Athena SQL and table DDL on DuckDB against detector scan"
"$INFRA_VENV/bin/python" infra/tests/athena_duckdb.py >&2 \
    || fail "infra/athena: the hunt on DuckDB differs from detector scan (or the DDL does not parse)"
ok "Athena hunt agrees with detector scan"

# ---------------------------------------------------------------- 7. organization templates
for t in "${ORG_TEMPLATES[@]}"; do
    say "cfn-lint $t"
    "$CFN_LINT" "$t" >&2 || fail "cfn-lint reported problems in $t"
done
for t in infra/org/member.yaml infra/org/security.yaml; do
    "$SAM" validate --lint -t "$t" --region "$AWS_DEFAULT_REGION" >&2 || fail "sam validate --lint $t"
done
ok "cfn-lint and sam validate --lint on infra/org"

for t in "${ORG_TEMPLATES[@]}"; do
    long="$REPO_ROOT/.tmp/org-$(basename "$t" .yaml).json"
    "$INFRA_VENV/bin/python" infra/guard/long_form.py "$t" "$long" || fail "cannot decode $t"
    "$CFN_GUARD" validate -r "$ORG_GUARD_RULES" -d "$long" --show-summary fail -o single-line-summary >&2 \
        || fail "cfn-guard organization rules fail on $t"
done
for t in "${ORG_CDK_TEMPLATES[@]}"; do
    "$CFN_GUARD" validate -r "$ORG_GUARD_RULES" -d "$t" --show-summary fail -o single-line-summary >&2 \
        || fail "cfn-guard organization rules fail on $t"
done
ok "cfn-guard organization rules on infra/org and the CDK organization stacks"

say "organization guard negative tests (SAM and CDK)"
org_specs=()
for i in "${!ORG_KINDS[@]}"; do
    org_specs+=("${ORG_KINDS[$i]}=${ORG_TEMPLATES[$i]}" "${ORG_KINDS[$i]}=${ORG_CDK_TEMPLATES[$i]}")
done
"$INFRA_VENV/bin/python" infra/guard/tests/org_negative_tests.py \
    --guard "$CFN_GUARD" --rules "$ORG_GUARD_RULES" --out "$REPO_ROOT/.tmp/org-guard-broken" "${org_specs[@]}" >&2 \
    || fail "organization guard negative tests"
ok "organization guard negative tests"

say "infra/org copies of single-account resources"
"$INFRA_VENV/bin/python" infra/tests/org_drift.py --self-test "$SAM_TEMPLATE" infra/org/member.yaml infra/org/security.yaml >&2 \
    || fail "infra/org differs from $SAM_TEMPLATE beyond the allowed differences"
ok "org drift"

say "EventBridge patterns within the 2,048-character quota (longest parameter values)"
"$INFRA_VENV/bin/python" infra/tests/event_pattern_size.py --self-test "$CDK_TEMPLATE" "${ORG_TEMPLATES[@]}" "${ORG_CDK_TEMPLATES[@]}" >&2 \
    || fail "an EventBridge pattern over its quota (infra/tests/event_pattern_size.py)"
ok "EventBridge pattern sizes"

say "a ledger write across accounts is refused (identity and resource policies)"
"$INFRA_VENV/bin/python" infra/tests/cross_account_ledger.py --self-test infra/org/member.yaml >&2 \
    || fail "cross-account ledger write"
ok "cross-account ledger write refused"

# ---------------------------------------------------------------- 8. governance gate
say "infra/gate: guard rules, invariants and the governance-surface baseline"
export CFN_GUARD
"$INFRA_VENV/bin/python" infra/gate "$SAM_TEMPLATE" "$CDK_TEMPLATE" "${ORG_TEMPLATES[@]}" "${ORG_CDK_TEMPLATES[@]}" >&2 \
    || fail "infra/gate (a difference from infra/baseline/ is reviewed and committed with infra/gate --update)"
ok "infra/gate on SAM, CDK and the organization templates"

say "infra/gate mutation tests (each insider weakening must fail the gate on SAM and CDK)"
"$INFRA_VENV/bin/python" infra/tests/gate_mutations.py "$SAM_TEMPLATE" "$CDK_TEMPLATE" \
    --org member infra/org/member.yaml "${ORG_CDK_TEMPLATES[0]}" \
    --org security infra/org/security.yaml "${ORG_CDK_TEMPLATES[1]}" >&2 \
    || fail "infra/gate mutation tests"
ok "infra/gate mutation tests"

# ---------------------------------------------------------------- 9. optional build
if [[ "${INFRA_BUILD:-0}" == 1 ]]; then
    ensure_pip_tools infra/requirements-build.txt build
    export PATH="$INFRA_VENV/bin:$PATH"   # cargo-lambda and python-zig/zig for cross-linking
    # A target dir of its own, so the slow release build does not hold the workspace's lock.
    export CARGO_TARGET_DIR="${LAMBDA_TARGET_DIR:-$REPO_ROOT/.tmp/lambda-target}"
    arch_flag=--arm64
    if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
        say "rustup target add aarch64-unknown-linux-gnu"
        if ! timeout 120 rustup target add aarch64-unknown-linux-gnu >&2; then
            say "WARNING: the aarch64 standard library cannot be installed here (rustup's server is not reachable); building x86-64 instead. The templates still deploy arm64: build on a machine with rustup access (sam build / cdk deploy do)."
            arch_flag=--x86-64
        fi
    fi
    for bin in launcher detector; do
        say "cargo lambda build --release $arch_flag --bin $bin --output-format zip"
        cargo lambda build --release "$arch_flag" --bin "$bin" --output-format zip >&2 \
            || fail "cargo lambda build $bin ($arch_flag)"
        zip="$CARGO_TARGET_DIR/lambda/$bin/bootstrap.zip"
        [[ -s "$zip" ]] || fail "no $zip after the build"
        printf 'infra-check: %s (%s): %s bytes (%s)\n' "$bin" "${arch_flag#--}" "$(stat -c %s "$zip")" "$(du -h "$zip" | cut -f1)"
    done
    ok "cargo lambda build ($arch_flag)"
fi

printf 'infra-check: %d passed, 0 failed\n' "$STEPS_OK"
