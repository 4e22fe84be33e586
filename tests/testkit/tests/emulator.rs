//! The MicroVMs emulator driven through the real `aws-sdk-lambdamicrovms` client: every route,
//! the limits, idempotency, state machine, pagination, fault injection and the CloudTrail
//! records it writes.

use aws_sdk_lambdamicrovms::error::ProvideErrorMetadata;
use aws_sdk_lambdamicrovms::operation::RequestId;
use aws_sdk_lambdamicrovms::types::{MicrovmState, PortSpecification};
use std::collections::HashSet;
use std::io::Read;
use std::time::{Duration, Instant};
use testkit::emulator::{CallerIdentity, Emulator, TokenKind};

const IMAGE: &str = "arn:aws:lambda:us-east-1:aws:microvm-image:al2023-1";
const OTHER_IMAGE: &str = "arn:aws:lambda:us-east-1:123456789012:microvm-image:custom";
const ROLE: &str = "arn:aws:iam::123456789012:role/sandbox/microvm-exec";

async fn run(
    client: &aws_sdk_lambdamicrovms::Client,
    token: &str,
) -> aws_sdk_lambdamicrovms::operation::run_microvm::RunMicrovmOutput {
    client
        .run_microvm()
        .client_token(token)
        .image_identifier(IMAGE)
        .execution_role_arn(ROLE)
        .maximum_duration_in_seconds(900)
        .run_hook_payload(r#"{"contro1_request_id":"req-1"}"#)
        .send()
        .await
        .expect("RunMicrovm")
}

#[tokio::test]
async fn run_then_get_returns_the_same_running_microvm_and_records_the_caller() {
    let emu = Emulator::start().await;
    let client = emu.client("AKIALAUNCHER");
    let out = run(&client, "token-1").await;
    let id = out.microvm_id().to_string();
    assert!(id.starts_with("microvm-"), "{id}");
    assert_eq!(out.state(), &MicrovmState::Running);
    assert_eq!(out.image_arn(), IMAGE);
    assert_eq!(out.maximum_duration_in_seconds(), 900);
    assert_eq!(out.execution_role_arn(), Some(ROLE));
    assert!(out.started_at().secs() > 1_600_000_000);
    let run_request_id = out.request_id().expect("x-amzn-RequestId").to_string();

    let got = client
        .get_microvm()
        .microvm_identifier(&id)
        .send()
        .await
        .expect("GetMicrovm");
    assert_eq!(got.microvm_id(), id);
    assert_eq!(got.state(), &MicrovmState::Running);
    assert!(!got.endpoint().is_empty());

    let view = emu.microvm(&id).expect("view");
    assert_eq!(view.client_token.as_deref(), Some("token-1"));
    assert_eq!(
        view.run_hook_payload.as_deref(),
        Some(r#"{"contro1_request_id":"req-1"}"#)
    );
    assert_eq!(view.created_by.as_deref(), Some("AKIALAUNCHER"));

    let calls = emu.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].operation, "RunMicrovm");
    assert_eq!(calls[0].request_id, run_request_id);
    assert_eq!(calls[0].access_key_id.as_deref(), Some("AKIALAUNCHER"));
    assert_eq!(calls[0].microvm_id.as_deref(), Some(id.as_str()));
    assert_eq!(calls[0].request["clientToken"], "token-1");
    assert_eq!(calls[1].operation, "GetMicrovm");
    assert_eq!(calls[1].request_id, got.request_id().unwrap());
    assert_ne!(calls[0].request_id, calls[1].request_id);
}

#[tokio::test]
async fn list_paginates_over_120_microvms_with_opaque_tokens() {
    let emu = Emulator::start().await;
    let seeded = emu.seed_microvms(120, IMAGE, MicrovmState::Running);
    let client = emu.client("AKIASWEEP");
    let pages: Vec<_> = client
        .list_microvms()
        .max_results(50)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every page");
    let sizes: Vec<usize> = pages.iter().map(|p| p.items().len()).collect();
    assert_eq!(sizes, vec![50, 50, 20]);
    let listed: Vec<String> = pages
        .iter()
        .flat_map(|p| p.items().iter().map(|i| i.microvm_id().to_string()))
        .collect();
    assert_eq!(listed, seeded);
    assert!(pages[2].next_token().is_none());
    assert!(pages[0].items()[0].started_at().secs() > 1_600_000_000);

    // Default page size is 50.
    let first = client.list_microvms().send().await.expect("list");
    assert_eq!(first.items().len(), 50);
    assert!(first.next_token().is_some());
}

#[tokio::test]
async fn list_filters_by_image_identifier() {
    let emu = Emulator::start().await;
    emu.seed_microvms(30, IMAGE, MicrovmState::Running);
    let custom: HashSet<String> = emu
        .seed_microvms(7, OTHER_IMAGE, MicrovmState::Suspended)
        .into_iter()
        .collect();
    emu.seed_microvms(30, IMAGE, MicrovmState::Running);
    let client = emu.client("AKIASWEEP");
    let mut found = HashSet::new();
    let mut pages = client
        .list_microvms()
        .image_identifier(OTHER_IMAGE)
        .max_results(3)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for item in page.expect("page").items() {
            assert_eq!(item.image_arn(), OTHER_IMAGE);
            assert_eq!(item.state(), &MicrovmState::Suspended);
            found.insert(item.microvm_id().to_string());
        }
    }
    assert_eq!(found, custom);
}

#[tokio::test]
async fn list_rejects_max_results_outside_1_to_50_and_foreign_tokens() {
    let emu = Emulator::start().await;
    let client = emu.client("AKIASWEEP");
    for bad in [0, 51] {
        let err = client
            .list_microvms()
            .max_results(bad)
            .send()
            .await
            .expect_err("out of range");
        assert_eq!(err.code(), Some("ValidationException"), "maxResults {bad}");
    }
    let err = client
        .list_microvms()
        .next_token("not-a-token")
        .send()
        .await
        .expect_err("bad token");
    assert_eq!(err.code(), Some("ValidationException"));
}

#[tokio::test]
async fn auth_and_shell_tokens_are_random_and_recorded() {
    let emu = Emulator::start().await;
    let client = emu.client("AKIALAUNCHER");
    let id = run(&client, "t-tokens").await.microvm_id().to_string();
    let auth = client
        .create_microvm_auth_token()
        .microvm_identifier(&id)
        .expiration_in_minutes(15)
        .allowed_ports(PortSpecification::Port(8080))
        .send()
        .await
        .expect("auth token");
    let shell = client
        .create_microvm_shell_auth_token()
        .microvm_identifier(&id)
        .expiration_in_minutes(5)
        .send()
        .await
        .expect("shell token");
    let a = auth
        .auth_token()
        .get("X-aws-proxy-auth")
        .expect("auth value");
    let s = shell
        .auth_token()
        .get("X-aws-proxy-auth")
        .expect("shell value");
    assert_ne!(a, s);
    let view = emu.microvm(&id).unwrap();
    assert_eq!(view.tokens_issued.len(), 2);
    assert_eq!(view.tokens_issued[0].kind, TokenKind::Auth);
    assert_eq!(&view.tokens_issued[0].value, a);
    assert_eq!(view.tokens_issued[0].expiration_in_minutes, Some(15));
    assert_eq!(
        view.tokens_issued[0].allowed_ports,
        Some(serde_json::json!([{"port": 8080}]))
    );
    assert_eq!(view.tokens_issued[1].kind, TokenKind::Shell);
    assert_eq!(&view.tokens_issued[1].value, s);
    assert_eq!(
        view.tokens_issued[1].request_id,
        shell.request_id().unwrap()
    );

    let err = client
        .create_microvm_auth_token()
        .microvm_identifier(&id)
        .expiration_in_minutes(61)
        .send()
        .await
        .expect_err("61 minutes");
    assert_eq!(err.code(), Some("ValidationException"));
}

#[tokio::test]
async fn suspend_resume_terminate_follow_the_state_machine() {
    let emu = Emulator::start().await;
    let client = emu.client("AKIALAUNCHER");
    let id = run(&client, "t-states").await.microvm_id().to_string();
    let state = |emu: &Emulator| emu.microvm(&id).unwrap().state;

    client
        .suspend_microvm()
        .microvm_identifier(&id)
        .send()
        .await
        .expect("suspend");
    assert_eq!(state(&emu), MicrovmState::Suspended);
    let err = client
        .suspend_microvm()
        .microvm_identifier(&id)
        .send()
        .await
        .expect_err("suspend twice");
    assert!(err.into_service_error().is_conflict_exception());
    let err = client
        .create_microvm_shell_auth_token()
        .microvm_identifier(&id)
        .send()
        .await
        .expect_err("token while suspended");
    assert_eq!(err.code(), Some("ConflictException"));

    client
        .resume_microvm()
        .microvm_identifier(&id)
        .send()
        .await
        .expect("resume");
    assert_eq!(state(&emu), MicrovmState::Running);
    let err = client
        .resume_microvm()
        .microvm_identifier(&id)
        .send()
        .await
        .expect_err("resume twice");
    assert!(err.into_service_error().is_conflict_exception());

    client
        .terminate_microvm()
        .microvm_identifier(&id)
        .send()
        .await
        .expect("terminate");
    assert_eq!(state(&emu), MicrovmState::Terminated);
    client
        .terminate_microvm()
        .microvm_identifier(&id)
        .send()
        .await
        .expect("terminate an already-terminated MicroVM succeeds");
    let got = client
        .get_microvm()
        .microvm_identifier(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.state(), &MicrovmState::Terminated);
    assert!(got.terminated_at().is_some());
}

#[tokio::test]
async fn same_client_token_and_parameters_returns_the_same_microvm() {
    let emu = Emulator::start().await;
    let client = emu.client("AKIALAUNCHER");
    let first = run(&client, "contro1-req-42").await;
    let again = run(&client, "contro1-req-42").await;
    assert_eq!(first.microvm_id(), again.microvm_id());
    assert_ne!(first.request_id(), again.request_id());
    assert_eq!(emu.microvms().len(), 1);
}

#[tokio::test]
async fn same_client_token_with_different_parameters_is_a_conflict() {
    let emu = Emulator::start().await;
    let client = emu.client("AKIALAUNCHER");
    run(&client, "contro1-req-43").await;
    let err = client
        .run_microvm()
        .client_token("contro1-req-43")
        .image_identifier(OTHER_IMAGE)
        .send()
        .await
        .expect_err("conflict");
    let svc = err.into_service_error();
    assert!(svc.is_conflict_exception(), "{svc:?}");
    assert_eq!(emu.microvms().len(), 1);
}

#[tokio::test]
async fn unknown_microvm_is_resource_not_found() {
    let emu = Emulator::start().await;
    let client = emu.client("AKIALAUNCHER");
    let err = client
        .get_microvm()
        .microvm_identifier("microvm-does-not-exist")
        .send()
        .await
        .expect_err("404");
    let request_id = err.request_id().map(str::to_string);
    assert!(err.into_service_error().is_resource_not_found_exception());
    let err = client
        .terminate_microvm()
        .microvm_identifier("microvm-does-not-exist")
        .send()
        .await
        .expect_err("404");
    assert!(err.into_service_error().is_resource_not_found_exception());
    let calls = emu.calls();
    assert_eq!(calls[0].status, 404);
    assert_eq!(
        calls[0].error_type.as_deref(),
        Some("ResourceNotFoundException")
    );
    assert_eq!(Some(calls[0].request_id.clone()), request_id);
}

#[tokio::test]
async fn run_validates_token_duration_payload_and_image() {
    let emu = Emulator::start().await;
    let client = emu.client("AKIALAUNCHER");
    let base = || client.run_microvm().image_identifier(IMAGE);
    let cases = [
        ("129-char token", base().client_token("x".repeat(129))),
        ("duration 0", base().maximum_duration_in_seconds(0)),
        ("duration 28801", base().maximum_duration_in_seconds(28_801)),
        (
            "payload 4097 bytes",
            base().run_hook_payload("p".repeat(4097)),
        ),
        ("no image", client.run_microvm().client_token("no-image")),
    ];
    for (what, req) in cases {
        let err = req.send().await.expect_err(what);
        assert!(
            err.into_service_error().is_validation_exception(),
            "{what} should be a ValidationException"
        );
    }
    assert!(emu.microvms().is_empty());
    // The limits themselves are accepted.
    base()
        .client_token("y".repeat(128))
        .maximum_duration_in_seconds(28_800)
        .run_hook_payload("p".repeat(4096))
        .send()
        .await
        .expect("at the limits");
    assert_eq!(emu.microvms().len(), 1);
}

#[tokio::test]
async fn fail_next_answers_with_the_injected_error_then_recovers() {
    let emu = Emulator::start().await;
    emu.fail_next(2, 429, "ThrottlingException");
    let client = emu.client("AKIALAUNCHER");
    let err = client.list_microvms().send().await.expect_err("injected");
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert!(
        err.message().unwrap_or_default().contains("injected"),
        "{:?}",
        err.message()
    );
    // One injected failure left: a retrying client absorbs it.
    let retrying = emu.client_with_retries("AKIALAUNCHER", 3);
    retrying.list_microvms().send().await.expect("retried");
    let statuses: Vec<u16> = emu.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![429, 429, 200]);
}

#[tokio::test]
async fn latency_is_added_to_every_call() {
    let emu = Emulator::start().await;
    emu.set_latency(Duration::from_millis(40));
    let client = emu.client("AKIALAUNCHER");
    let started = Instant::now();
    client.list_microvms().send().await.unwrap();
    client.list_microvms().send().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(80),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unsigned_requests_are_denied_with_a_request_id() {
    let emu = Emulator::start().await;
    let resp = reqwest::get(format!("{}/2025-09-09/microvms", emu.base_url()))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(resp.headers()["x-amzn-errortype"], "AccessDeniedException");
    assert!(resp.headers().contains_key("x-amzn-requestid"));
    assert_eq!(emu.calls()[0].access_key_id, None);
}

#[tokio::test]
async fn cloudtrail_records_match_the_served_calls() {
    let emu = Emulator::start().await;
    let launcher_role = "arn:aws:iam::123456789012:role/governance/microvm-launcher";
    emu.register_identity(
        "ASIALAUNCHER",
        CallerIdentity::assumed_role(launcher_role, "microvm-launcher-fn"),
    );
    emu.register_identity(
        "AKIAROGUE",
        CallerIdentity::iam_user("123456789012", "mallory"),
    );
    let launcher = emu.client("ASIALAUNCHER");
    let rogue = emu.client("AKIAROGUE");

    let out = run(&launcher, "contro1-req-7").await;
    let id = out.microvm_id().to_string();
    let token = launcher
        .create_microvm_shell_auth_token()
        .microvm_identifier(&id)
        .send()
        .await
        .unwrap();
    let failed = rogue
        .run_microvm()
        .client_token("contro1-req-7")
        .image_identifier(OTHER_IMAGE)
        .send()
        .await
        .expect_err("conflict");
    let failed_request_id = failed.request_id().unwrap().to_string();
    launcher
        .get_microvm()
        .microvm_identifier(&id)
        .send()
        .await
        .unwrap();
    rogue
        .terminate_microvm()
        .microvm_identifier(&id)
        .send()
        .await
        .unwrap();

    let records = emu.cloudtrail_records();
    assert_eq!(records.len(), 5);
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "RunMicrovm",
            "CreateMicrovmShellAuthToken",
            "RunMicrovm",
            "GetMicrovm",
            "TerminateMicrovm"
        ]
    );
    for r in &records {
        assert_eq!(r["eventVersion"], "1.11");
        assert_eq!(r["eventSource"], "lambda.amazonaws.com");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["eventType"], "AwsApiCall");
        assert_eq!(r["recipientAccountId"], "123456789012");
        assert_eq!(r["sourceIPAddress"], "127.0.0.1");
        assert!(
            r["userAgent"].as_str().unwrap().contains("aws-sdk-rust"),
            "{}",
            r["userAgent"]
        );
        let t = r["eventTime"].as_str().unwrap();
        assert!(
            t.len() == 20 && t.ends_with('Z') && &t[10..11] == "T",
            "{t}"
        );
        assert!(uuid::Uuid::parse_str(r["eventID"].as_str().unwrap()).is_ok());
    }
    let run_rec = &records[0];
    assert_eq!(run_rec["requestID"], out.request_id().unwrap());
    assert_eq!(run_rec["eventCategory"], "Data");
    assert_eq!(run_rec["managementEvent"], false);
    assert_eq!(run_rec["readOnly"], false);
    assert_eq!(run_rec["userIdentity"]["type"], "AssumedRole");
    assert_eq!(
        run_rec["userIdentity"]["arn"],
        "arn:aws:sts::123456789012:assumed-role/microvm-launcher/microvm-launcher-fn"
    );
    assert_eq!(run_rec["userIdentity"]["accessKeyId"], "ASIALAUNCHER");
    assert_eq!(
        run_rec["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"],
        launcher_role
    );
    assert_eq!(run_rec["requestParameters"]["clientToken"], "contro1-req-7");
    assert_eq!(run_rec["requestParameters"]["imageIdentifier"], IMAGE);
    assert_eq!(run_rec["requestParameters"]["executionRoleArn"], ROLE);
    assert_eq!(
        run_rec["requestParameters"]["runHookPayload"],
        r#"{"contro1_request_id":"req-1"}"#
    );
    assert_eq!(run_rec["responseElements"]["microvmId"], id.as_str());
    assert_eq!(run_rec["responseElements"]["state"], "RUNNING");
    assert_eq!(run_rec["responseElements"]["imageArn"], IMAGE);
    assert_eq!(run_rec["resources"][0]["type"], "AWS::Lambda::MicrovmImage");
    assert_eq!(run_rec["resources"][0]["ARN"], IMAGE);

    let tok = &records[1];
    assert_eq!(tok["requestID"], token.request_id().unwrap());
    assert_eq!(tok["requestParameters"]["microvmIdentifier"], id.as_str());
    assert!(
        !tok.to_string()
            .contains(token.auth_token()["X-aws-proxy-auth"].as_str()),
        "token value leaked into CloudTrail"
    );

    let bad = &records[2];
    assert_eq!(bad["requestID"], failed_request_id.as_str());
    assert_eq!(bad["errorCode"], "ConflictException");
    assert!(
        bad["errorMessage"]
            .as_str()
            .unwrap()
            .contains("contro1-req-7")
    );
    assert!(bad["responseElements"].is_null());
    assert_eq!(bad["userIdentity"]["type"], "IAMUser");
    assert_eq!(bad["userIdentity"]["userName"], "mallory");
    assert_eq!(bad["resources"][0]["ARN"], OTHER_IMAGE);

    let get = &records[3];
    assert_eq!(get["eventCategory"], "Management");
    assert_eq!(get["managementEvent"], true);
    assert_eq!(get["readOnly"], true);

    let term = &records[4];
    assert_eq!(term["responseElements"]["state"], "TERMINATED");
    assert_eq!(term["userIdentity"]["accessKeyId"], "AKIAROGUE");

    let mut json = String::new();
    flate2::read::GzDecoder::new(emu.cloudtrail_log_gz().as_slice())
        .read_to_string(&mut json)
        .unwrap();
    let file: serde_json::Value = serde_json::from_str(&json).unwrap();
    let from_file = file["Records"].as_array().unwrap();
    assert_eq!(from_file.len(), 5);
    assert_eq!(from_file[0]["requestID"], records[0]["requestID"]);
    assert_eq!(from_file[0]["eventID"], records[0]["eventID"]);

    let key = Emulator::cloudtrail_object_key(std::time::SystemTime::now());
    assert!(
        key.starts_with("AWSLogs/123456789012/CloudTrail/us-east-1/"),
        "{key}"
    );
    assert!(key.ends_with(".json.gz"), "{key}");
}
