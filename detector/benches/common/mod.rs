//! Ports the benchmarks leave off, shared by the benches that use them.
#![allow(dead_code)] // each bench is its own crate and uses a part of these

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use detector::lambda::ports::{Auditor, LogSink, PortResult, TrailInfo, TrailsApi};
use futures::FutureExt;

pub struct NoLog;
impl LogSink for NoLog {
    fn line(&self, _: &serde_json::Value) {}
}

pub struct NoTrails;
impl TrailsApi for NoTrails {
    fn trails(&self) -> PortResult<'_, Vec<TrailInfo>> {
        async { Ok(Vec::new()) }.boxed()
    }
}

pub struct NoAudit;
impl Auditor for NoAudit {
    fn audit<'a>(&'a self, _: &'a contro1::AuditRecord) -> PortResult<'a, ()> {
        async { Ok(()) }.boxed()
    }
}

/// Integrity and heartbeat are off here (no parameter, no silence limit).
pub struct Off;
impl detector::lambda::ports::FunctionsApi for Off {
    fn baseline<'a>(&'a self, _: &'a str) -> PortResult<'a, String> {
        async { unreachable!("integrity check is off") }.boxed()
    }
    fn observe<'a>(
        &'a self,
        _: &'a detector::lambda::integrity::FunctionBaseline,
    ) -> PortResult<'a, Option<detector::lambda::integrity::ObservedFunction>> {
        async { unreachable!("integrity check is off") }.boxed()
    }
}
impl detector::lambda::ports::HeartbeatStore for Off {
    fn beat(&self, _: i64) -> PortResult<'_, ()> {
        async { Ok(()) }.boxed()
    }
    fn last_beat(&self, now: i64) -> PortResult<'_, (Option<i64>, i64)> {
        async move { Ok((Some(now), now)) }.boxed()
    }
}

/// User + system CPU seconds of a process so far, every thread included
/// (`/proc/PID/stat` fields 14 and 15, in USER_HZ = 100 ticks per second);
/// `pid` may be `self`. `None` when there is no such process.
pub fn process_cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields count from after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

pub fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The ledger's MicroVM items (`vm#ID`) for `ids`, as BatchWriteItem puts.
pub fn vm_writes(ids: &[String]) -> Vec<WriteRequest> {
    ids.iter()
        .map(|id| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .item("pk", AttributeValue::S(format!("vm#{id}")))
                        .item("kind", AttributeValue::S("vm".into()))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect()
}
