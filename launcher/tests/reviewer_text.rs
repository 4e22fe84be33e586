//! Text an agent writes reaches a human reviewer (Contro1's request and
//! audit records) and the logs only after one sanitiser
//! (`shared_core::text`): bidi controls, zero-width characters, line and
//! paragraph separators and C0/C1 controls are escaped visibly, lengths
//! capped; and a body is validated before anything is audited or logged.
//! Through the real router, DynamoDB on moto, the emulator and the stand-in.
//!
//! Regression: owner, reason and metadata with U+2028, U+202E (right-to-left
//! override), zero-width and control characters reached the reviewer's
//! context unfiltered; a 60 KB `agent_id` claim with newlines and ESC was
//! audited as a 60 KB critical record before it was validated.

mod common;

use axum::http::StatusCode;
use common::{CI, CI_AGENT, IMAGE, SANDBOX, Setup, harness, policy_file};
use serde_json::{Value, json};

/// Every character the sanitiser must never let through raw.
const HIDDEN: &[char] = &[
    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}',
    '\u{2069}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}', '\u{2028}', '\u{2029}',
    '\u{1B}', '\u{7}', '\u{85}', '\u{9B}',
];

fn raw_hidden(s: &str) -> Vec<char> {
    s.chars().filter(|c| HIDDEN.contains(c)).collect()
}

#[tokio::test]
async fn bidi_zero_width_and_control_characters_reach_the_reviewer_escaped_and_capped() {
    let h = harness(
        Setup::new(policy_file("text", false, &[CI_AGENT])),
        "http://127.0.0.1:9",
    )
    .await;
    // A run that needs a human (internet egress), with hostile text everywhere
    // the agent writes.
    let owner = "team\u{202E}ahpla\u{202C}";
    let reason = "routine\u{2028}APPROVED BY SECURITY\u{200B}\u{2066}x\u{2069}";
    let long = "y".repeat(3000);
    let (s, v) = h
        .post(
            CI,
            "/microvms/run-request",
            json!({"owner": owner, "reason": reason, "image_arn": IMAGE,
                   "execution_role_arn": SANDBOX, "duration_seconds": 600,
                   "network_egress": "internet",
                   "metadata": {"note": "a\u{1B}[31mred\nforged line\u{85}\u{9B}2J",
                                "k\u{202E}ey": "v\u{200F}", "long": long, "bell": "\u{7}"}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["request_id"].as_str().unwrap();
    let stored = h.c1.state().request(id).unwrap();
    let sent = stored.body.to_string();
    let sent_text: String = serde_json::from_str::<Value>(&sent)
        .map(|v| collect_strings(&v))
        .unwrap();
    assert_eq!(
        raw_hidden(&sent_text),
        Vec::<char>::new(),
        "raw hidden characters reached Contro1's request: {sent}"
    );
    let context = stored.body["context"].as_str().unwrap();
    assert!(
        context.contains("team\\u{202e}ahpla\\u{202c}"),
        "escaped visibly: {context}"
    );
    assert!(
        context.contains("routine\\u{2028}APPROVED BY SECURITY\\u{200b}\\u{2066}x\\u{2069}"),
        "{context}"
    );
    let meta = stored.body["metadata"]["launcher"]["agent_metadata"].clone();
    assert_eq!(
        meta["note"], "a\\u{1b}[31mred\\nforged line\\u{85}\\u{9b}2J",
        "{meta}"
    );
    assert_eq!(meta["k\\u{202e}ey"], "v\\u{200f}", "{meta}");
    assert_eq!(meta["bell"], "\\u{7}", "{meta}");
    let capped = meta["long"].as_str().unwrap();
    assert!(
        capped.chars().count() < 600 && capped.contains("more characters"),
        "capped and says so: {} chars",
        capped.chars().count()
    );
    // The audit records (what a reviewer reads later) are clean too.
    let audits = serde_json::to_string(&h.c1.state().audit_records()).unwrap();
    let audit_text: String = serde_json::from_str::<Value>(&audits)
        .map(|v| collect_strings(&v))
        .unwrap();
    assert_eq!(raw_hidden(&audit_text), Vec::<char>::new(), "{audits}");
}

fn collect_strings(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(collect_strings).collect::<Vec<_>>().join(" "),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k} {}", collect_strings(v)))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[tokio::test]
async fn an_agent_id_claim_is_validated_before_it_is_audited_or_logged() {
    let h = harness(
        Setup::new(policy_file("text", false, &[CI_AGENT])),
        "http://127.0.0.1:9",
    )
    .await;
    let huge = format!(
        "x\n2026-12-07T00:00:00Z INFO audit: approved\u{1B}[2K{}",
        "z".repeat(60 * 1024)
    );
    let body = |claim: &str| {
        json!({"agent_id": claim, "owner": "platform", "reason": "r", "image_arn": IMAGE,
               "execution_role_arn": SANDBOX, "duration_seconds": 600})
    };
    // The body limit is 64 KiB; the claim fits.
    let (s, v) = h.post(CI, "/microvms/run-request", body(&huge)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "agent_id", "{v}");
    assert!(
        h.c1.state().audit_records().is_empty(),
        "an invalid claim was audited"
    );
    // A well-formed claim of another agent is still refused and audited once.
    let (s, v) = h
        .post(CI, "/microvms/run-request", body("someone-else"))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "agent_mismatch");
    let audits = h.c1.state().audit_records();
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert!(audits[0].to_string().len() < 4096);
    assert_eq!(h.emulator_calls("RunMicrovm"), 0);
}
