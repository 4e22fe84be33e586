//! The Security Hub channel on the wire, against a local HTTP server that
//! answers as `BatchImportFindings` does: a round of 150 findings goes out
//! as two requests (100 and 50, the API's limit), a throttled request
//! (`LimitExceededException`, HTTP 429) is retried, and a finding Security
//! Hub refuses (`FailedFindings`, by `Id`) fails only its own alert.
//!
//! With `SECURITY_HUB_REQUESTS_OUT=FILE` the request bodies the SDK sent are
//! written there, one a line, for `scripts/conformance/asff_validate.py`
//! (botocore's model) to judge; `scripts/conformance/check.sh` does that.

use detector::lambda::alert::Alert;
use detector::lambda::aws::{SecurityHubChannel, SecurityHubConfig};
use detector::lambda::ports::AlertChannel;
use detector_core::encode::asff::Importer;
use detector_core::{Finding, Rule, Severity};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const ACCOUNT: &str = "111122223333";

#[derive(Default)]
struct Seen {
    /// Every request: path and body.
    requests: Vec<(String, Value)>,
}

/// Serve HTTP/1.1 on a local port: the first request is throttled, every
/// other one imports all findings but those whose `Id` contains `refuse`.
async fn server(seen: Arc<Mutex<Seen>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut start = String::new();
                    if r.read_line(&mut start).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let path = start.split(' ').nth(1).unwrap_or("").to_string();
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).await.unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).await.unwrap();
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let first = {
                        let mut s = seen.lock().unwrap();
                        s.requests.push((path, body.clone()));
                        s.requests.len() == 1
                    };
                    let (status, extra, out) = if first {
                        (
                            "429 Too Many Requests",
                            "x-amzn-ErrorType: LimitExceededException\r\n",
                            json!({"Code": "LimitExceededException", "Message": "Rate exceeded"}),
                        )
                    } else {
                        let ids: Vec<&str> = body["Findings"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|f| f["Id"].as_str())
                            .collect();
                        let failed: Vec<Value> = ids
                            .iter()
                            .filter(|id| id.contains("refuse"))
                            .map(|id| {
                                json!({"Id": id, "ErrorCode": "InvalidInput",
                                       "ErrorMessage": "Finding does not adhere to ASFF"})
                            })
                            .collect();
                        (
                            "200 OK",
                            "",
                            json!({"FailedCount": failed.len(),
                                   "SuccessCount": ids.len() - failed.len(),
                                   "FailedFindings": failed}),
                        )
                    };
                    let out = out.to_string();
                    let resp = format!(
                        "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{out}",
                        out.len()
                    );
                    if w.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn alert(event_id: &str) -> Alert {
    let mut f = Finding::new(
        Rule::NonLauncherPrincipal,
        Severity::High,
        "RunMicrovm succeeded outside the launcher".into(),
        "wire-test".into(),
    );
    f.event_id = Some(event_id.into());
    f.event_name = Some("RunMicrovm".into());
    f.event_time = Some("2026-11-20T10:00:00Z".into());
    f.account_id = Some(ACCOUNT.into());
    f.region = Some("us-east-1".into());
    f.microvm_id = Some(format!("ai-{event_id}"));
    Alert::from_finding(f.with_incident_key())
}

#[tokio::test]
async fn a_round_is_two_requests_throttling_is_retried_and_a_refused_finding_fails_alone() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let endpoint = server(seen.clone()).await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "wire",
        ))
        .endpoint_url(&endpoint)
        .load()
        .await;
    let channel = SecurityHubChannel::new(
        &sdk,
        SecurityHubConfig {
            own: Importer::new(ACCOUNT, "us-east-1").unwrap(),
            role_name: None,
        },
    );
    let alerts: Vec<Alert> = (0..150)
        .map(|i| {
            if i == 77 {
                alert("refuse-me")
            } else {
                alert(&format!("ev-{i:03}"))
            }
        })
        .collect();
    let refs: Vec<&Alert> = alerts.iter().collect();
    let results = channel.deliver_batch(&refs).await;

    assert_eq!(results.len(), 150);
    for (i, r) in results.iter().enumerate() {
        if i == 77 {
            let e = r.as_ref().unwrap_err().to_string();
            assert!(e.contains("InvalidInput") && e.contains("refuse-me"), "{e}");
        } else {
            assert!(r.is_ok(), "alert {i}: {r:?}");
        }
    }
    let requests = seen.lock().unwrap().requests.clone();
    assert!(
        requests.iter().all(|(p, _)| p == "/findings/import"),
        "{:?}",
        requests.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let mut sizes: Vec<usize> = requests
        .iter()
        .map(|(_, b)| b["Findings"].as_array().map_or(0, Vec::len))
        .collect();
    // One request was throttled and sent again: three in all.
    assert_eq!(requests.len(), 3, "{sizes:?}");
    sizes.sort_unstable();
    assert!(
        sizes == [50, 100, 100] || sizes == [50, 50, 100],
        "{sizes:?}"
    );
    let ids: std::collections::BTreeSet<&str> = requests[1..]
        .iter()
        .flat_map(|(_, b)| b["Findings"].as_array().unwrap())
        .filter_map(|f| f["Id"].as_str())
        .collect();
    assert_eq!(
        ids.len(),
        150,
        "every finding imported once after the retry"
    );

    if let Some(out) = std::env::var_os("SECURITY_HUB_REQUESTS_OUT") {
        let lines: String = requests.iter().map(|(_, b)| format!("{b}\n")).collect();
        std::fs::write(out, lines).unwrap();
    }
}
