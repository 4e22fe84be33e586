//! `launcher serve` reads each request within its read timeout, through the
//! real router served over TCP (DynamoDB on moto, the emulator and the
//! Contro1 stand-in behind it).
//!
//! Regression: `serve` had no header or body read timeout; a declared 10 MB
//! body that never arrived held a connection for 70 s (as long as the
//! client liked).

mod common;

use common::{CI, CI_AGENT, Setup, harness, policy_file};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the server keeps `stream` open after `sent` was written,
/// waiting at most `cap`.
async fn held_open(addr: std::net::SocketAddr, sent: &[u8], cap: Duration) -> Duration {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(sent).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(cap.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            // Closed (EOF or reset), possibly after an error answer.
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => return start.elapsed(),
        }
    }
}

#[tokio::test]
async fn a_request_that_does_not_arrive_within_the_read_timeout_loses_its_connection() {
    let h = harness(
        Setup::new(policy_file("serve-timeouts", false, &[CI_AGENT])),
        "http://127.0.0.1:9",
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limit = Duration::from_secs(1);
    tokio::spawn(launcher::serve::serve(
        listener,
        h.router.clone(),
        limit,
        std::future::pending(),
    ));
    let cap = Duration::from_secs(10);
    // Headers that never end.
    let slow_headers = b"POST /microvms/run-request HTTP/1.1\r\nhost: x\r\nx-slow: ";
    // A declared body of which a few bytes arrive: 10 MB (over the body
    // limit) and 60 000 bytes (under it: the handler waits for it).
    let body = |len: usize| {
        format!(
            "POST /microvms/run-request HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CI}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n{{\"owner\":"
        )
        .into_bytes()
    };
    for (what, sent) in [
        ("unfinished headers", slow_headers.to_vec()),
        ("a 10 MB body that does not arrive", body(10_000_000)),
        ("a 60 kB body that does not arrive", body(60_000)),
    ] {
        let held = held_open(addr, &sent, cap).await;
        assert!(
            held < limit * 4,
            "{what}: the connection was held {held:?} (read timeout {limit:?})"
        );
    }
    // A request that arrives in time is answered, on a connection that then
    // stays usable for the next one within the limit.
    let mut s = TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(
            format!("GET /requests/nope HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {CI}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(cap, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
        tokio::time::sleep(limit / 2).await;
    }
}
