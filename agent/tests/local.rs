//! Every `microvm` command against the built `launcher serve` and the
//! Contro1 stand-in: auto-approval, approval, denial, expiry, policy block,
//! idempotent replay, tokens handed over once, and errors that name the fix.
//! Needs `target/debug/launcher` built (`cargo build -p launcher --bins`).

mod common;

use common::{IMAGE, Rig, output, run_args};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn run_within_policy_executes_at_once_and_exits_zero() {
    let rig = Rig::start().await;
    let mut args = run_args();
    args.push("--json");
    let out = output(rig.microvm(&args)).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json["outcome"], "executed");
    assert_eq!(out.json["decision"]["rule_id"], "auto.run");
    assert!(
        out.json["result"]["microvm_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("microvm-")),
        "{out:?}"
    );
    // The human form names the MicroVM too.
    let out = output(rig.microvm(&run_args())).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("executed: RunMicrovm"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("microvm_id: microvm-"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_idempotency_key_replays_the_first_answer_instead_of_a_second_microvm() {
    let rig = Rig::start().await;
    let mut args = run_args();
    args.extend(["--json", "--idempotency-key", "ci-run-42-sandbox"]);
    let first = output(rig.microvm(&args)).await;
    let second = output(rig.microvm(&args)).await;
    assert_eq!((first.code, second.code), (0, 0), "{first:?} {second:?}");
    assert_eq!(
        first.json["result"]["microvm_id"],
        second.json["result"]["microvm_id"]
    );
    assert_eq!(second.json["replayed"], true, "{second:?}");
    assert!(first.json.get("replayed").is_none());
    // Another body under the same key is refused, naming the header.
    let mut other = args.clone();
    other[2] = "another reason";
    let third = output(rig.microvm(&other)).await;
    assert_eq!(third.code, 1, "{third:?}");
    assert_eq!(third.json["error"]["code"], "idempotency_key_reused");
    assert_eq!(third.json["error"]["field"], "Idempotency-Key");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_outside_the_policy_is_blocked_with_exit_five_naming_the_rule() {
    let rig = Rig::start().await;
    let before = rig.contro1.state().requests().len();
    let out = output(rig.microvm(&[
        "run",
        "--json",
        "--reason",
        "r",
        "--image-arn",
        IMAGE,
        "--role",
        "arn:aws:iam::111122223333:role/admin",
        "--duration",
        "600",
    ]))
    .await;
    assert_eq!(out.code, 5, "{out:?}");
    assert_eq!(out.json["outcome"], "blocked");
    assert_eq!(out.json["error"]["rule_id"], "role.not_allowed");
    assert_eq!(
        rig.contro1.state().requests().len(),
        before,
        "no human asked"
    );
    let out = output(rig.microvm(&[
        "run",
        "--reason",
        "r",
        "--image-arn",
        IMAGE,
        "--role",
        "arn:aws:iam::111122223333:role/admin",
        "--duration",
        "600",
    ]))
    .await;
    assert!(
        out.stdout
            .starts_with("blocked by policy rule role.not_allowed: "),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_wait_follows_an_approval_to_executed_quietly_when_not_on_a_terminal() {
    let rig = Rig::start().await;
    let mut args = run_args();
    args.extend([
        "--shell-access",
        "--wait",
        "--poll-seconds",
        "0.2",
        "--json",
    ]);
    let child = tokio::spawn(output(rig.microvm(&args)));
    let id = rig.next_pending(&[]).await;
    // Still waiting while nobody has decided.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!child.is_finished(), "--wait returned before a decision");
    let d = rig
        .contro1
        .approve(&id, "reviewer@example.com")
        .await
        .unwrap();
    assert_eq!(d.status, Some(200), "{:?}", d.error);
    let out = child.await.unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json["outcome"], "executed");
    assert_eq!(out.json["request_id"], id.as_str());
    assert_eq!(out.json["decision"]["rule_id"], "run.shell_access");
    assert!(out.json["result"]["microvm_id"].is_string(), "{out:?}");
    assert_eq!(
        out.stderr, "",
        "no progress line when stderr is not a terminal"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_ask_exits_three_and_a_denial_exits_four() {
    let rig = Rig::start().await;
    let vm = output(rig.microvm(&[&run_args()[..], &["--json"]].concat())).await;
    let vm = vm.json["result"]["microvm_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = output(rig.microvm(&[
        "shell-token",
        &vm,
        "--reason",
        "debug",
        "--ttl",
        "300",
        "--json",
    ]))
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.json["outcome"], "pending");
    let id = out.json["request_id"].as_str().unwrap().to_string();
    let human = output(rig.microvm(&["status", &id])).await;
    assert_eq!(human.code, 3);
    assert!(
        human
            .stdout
            .starts_with(&format!("pending: waiting for approval in Contro1: {id}")),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains(&format!("microvm status {id} --wait"))
    );
    rig.contro1.deny(&id, "reviewer@example.com").await.unwrap();
    let out = output(rig.microvm(&["status", &id, "--json"])).await;
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(out.json["outcome"], "denied");
    assert!(out.json.get("token").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_request_ends_a_wait_with_exit_six() {
    let rig = Rig::start().await;
    let vm = output(rig.microvm(&[&run_args()[..], &["--json"]].concat())).await;
    let vm = vm.json["result"]["microvm_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = output(rig.microvm(&["suspend", &vm, "--reason", "night", "--json"])).await;
    assert_eq!(out.code, 3, "{out:?}");
    let id = out.json["request_id"].as_str().unwrap().to_string();
    let waiting = tokio::spawn(output(rig.microvm(&[
        "status",
        &id,
        "--wait",
        "--poll-seconds",
        "0.2",
        "--json",
    ])));
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.contro1.expire(&id).await.unwrap();
    let out = waiting.await.unwrap();
    assert_eq!(out.code, 6, "{out:?}");
    assert_eq!(out.json["outcome"], "expired");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wait_with_a_timeout_stops_pending_with_exit_three() {
    let rig = Rig::start().await;
    let vm = output(rig.microvm(&[&run_args()[..], &["--json"]].concat())).await;
    let vm = vm.json["result"]["microvm_id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let out = output(rig.microvm(&[
        "resume",
        &vm,
        "--reason",
        "morning",
        "--wait",
        "--timeout",
        "1",
        "--poll-seconds",
        "0.2",
        "--json",
    ]))
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.json["outcome"], "pending");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_handed_over_once_and_lifecycle_asks_follow_the_policy() {
    let rig = Rig::start().await;
    let vm = output(rig.microvm(&[&run_args()[..], &["--json"]].concat())).await;
    let vm = vm.json["result"]["microvm_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Auth token within policy: at once, with the token.
    let out = output(rig.microvm(&[
        "auth-token",
        &vm,
        "--reason",
        "reach the app",
        "--ports",
        "8080",
        "--ttl",
        "300",
        "--json",
    ]))
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.json["token"].as_str().is_some_and(|t| !t.is_empty()));

    // Shell token: approved, then fetched once.
    let out = output(rig.microvm(&[
        "shell-token",
        &vm,
        "--reason",
        "debug",
        "--ttl",
        "300",
        "--json",
    ]))
    .await;
    let id = out.json["request_id"].as_str().unwrap().to_string();
    rig.contro1
        .approve(&id, "reviewer@example.com")
        .await
        .unwrap();
    let first = output(rig.microvm(&["status", &id, "--json"])).await;
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.json["token"].is_string(), "{first:?}");
    let second = output(rig.microvm(&["status", &id, "--json"])).await;
    assert_eq!(second.code, 0);
    assert!(second.json.get("token").is_none(), "{second:?}");
    assert_eq!(second.json["token_already_returned"], true);

    // Suspend needs a human; approved, it runs.
    let out = output(rig.microvm(&["suspend", &vm, "--reason", "night", "--json"])).await;
    assert_eq!(out.code, 3, "{out:?}");
    let id = out.json["request_id"].as_str().unwrap().to_string();
    assert_eq!(out.json["decision"]["rule_id"], "lifecycle.suspend");
    rig.contro1
        .approve(&id, "reviewer@example.com")
        .await
        .unwrap();
    let out =
        output(rig.microvm(&["status", &id, "--wait", "--poll-seconds", "0.2", "--json"])).await;
    assert_eq!(out.code, 0, "{out:?}");

    // The owner terminates its own MicroVM at once.
    let out = output(rig.microvm(&["terminate", &vm, "--reason", "done", "--json"])).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json["decision"]["rule_id"], "terminate.owner_emergency");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_token_goes_to_a_private_file_and_not_to_stdout() {
    let rig = Rig::start().await;
    let vm = output(rig.microvm(&[&run_args()[..], &["--json"]].concat())).await;
    let vm = vm.json["result"]["microvm_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = rig.home.join("token");
    let out = output(rig.microvm(&[
        "auth-token",
        &vm,
        "--reason",
        "reach the app",
        "--ports",
        "8080",
        "--ttl",
        "300",
        "--save-token",
        path.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let token = std::fs::read_to_string(&path).unwrap();
    assert!(!token.trim().is_empty());
    assert!(!out.stdout.contains(token.trim()), "{}", out.stdout);
    assert!(out.stdout.contains("token saved to"), "{}", out.stdout);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_bearer_token_is_an_error_naming_the_token_setting() {
    let rig = Rig::start().await;
    let mut c = rig.microvm(&[&run_args()[..], &["--json"]].concat());
    c.env("MICROVM_TOKEN", "not-a-registered-token");
    let out = output(c).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.json["error"]["code"], "unknown_bearer_token");
    assert!(out.stderr.contains("MICROVM_TOKEN"), "{}", out.stderr);
    assert!(!out.stderr.contains("not-a-registered-token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_field_is_named_and_nothing_is_sent() {
    let rig = Rig::start().await;
    let hits = rig.contro1.state().hits();
    let out = output(rig.microvm(&[
        "run",
        "--reason",
        "r",
        "--image-arn",
        IMAGE,
        "--role",
        "arn:aws:iam::1:user/bob",
        "--duration",
        "600",
        "--json",
    ]))
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.json["error"]["field"], "execution_role_arn");
    assert_eq!(rig.contro1.state().hits(), hits, "nothing reached Contro1");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_credentials_an_iam_request_is_an_error_naming_what_to_set() {
    let rig = Rig::start().await;
    let mut c = rig.microvm(&[&run_args()[..], &["--json"]].concat());
    c.env_remove("MICROVM_TOKEN")
        .env(
            "MICROVM_URL",
            "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", rig.home.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", rig.home.join("none"));
    let out = output(c).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.json["error"]["code"], "no_credentials", "{out:?}");
    assert!(out.stderr.contains("AWS_PROFILE"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_that_is_not_a_function_url_is_an_error_naming_the_fix() {
    let rig = Rig::start().await;
    let mut c = rig.microvm(&[&run_args()[..], &["--json"]].concat());
    c.env_remove("MICROVM_TOKEN")
        .env("MICROVM_URL", "https://launcher.example.com");
    let out = output(c).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.json["error"]["code"], "config");
    assert!(
        out.stderr.contains("not a Lambda Function URL"),
        "{}",
        out.stderr
    );
}
