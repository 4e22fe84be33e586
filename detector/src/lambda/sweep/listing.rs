//! Listing: `ListMicrovms` over every page (50 a page; pages are sequential
//! by nature), each page's non-terminated MicroVMs joined against the
//! launcher's ledger while the next page is fetched (ledger reads with bounded
//! concurrency), then a second ledger read of the candidates old enough to
//! be reported.

use super::SweepError;
use crate::lambda::alert::ListedMicrovm;
use crate::lambda::counters::Counters;
use crate::lambda::ports::TargetPorts;
use futures::{SinkExt, StreamExt, TryStreamExt};
use std::collections::HashSet;

/// ListMicrovms accepts 1–50.
pub const PAGE_SIZE: i32 = 50;
/// A pagination loop that goes on longer than this is a bug or a hostile
/// endpoint (2.5 M MicroVMs).
pub const MAX_PAGES: usize = 50_000;

/// List every page, keeping non-terminated MicroVMs, joined against the
/// ledger with bounded concurrency while the next page is fetched.
/// A MicroVM younger than `min_age` seconds at `now` is not reported in
/// this sweep (counted in `microvms_too_young`): the launcher writes its
/// ledger item just after RunMicrovm returns. One without a start time is
/// judged old (nothing shows it is young).
pub(super) async fn list_unmanaged(
    ports: &TargetPorts,
    concurrency: usize,
    min_age: i64,
    now: i64,
    counters: &mut Counters,
) -> Result<(usize, Vec<ListedMicrovm>), SweepError> {
    let (mut tx, rx) = futures::channel::mpsc::channel::<Vec<ListedMicrovm>>(concurrency.max(1));
    let mut listed = 0u64;
    let mut active = 0u64;
    let producer = async {
        let mut token: Option<String> = None;
        let mut seen_tokens = HashSet::new();
        let mut pages = 0usize;
        loop {
            if pages >= MAX_PAGES {
                return Err(SweepError::TooManyPages);
            }
            let page = ports
                .microvms
                .list_page(token.as_deref(), PAGE_SIZE)
                .await
                .map_err(|source| SweepError::List {
                    page: pages + 1,
                    source,
                })?;
            pages += 1;
            listed += page.items.len() as u64;
            let live: Vec<ListedMicrovm> = page
                .items
                .into_iter()
                .filter(|v| v.state != "TERMINATED")
                .collect();
            active += live.len() as u64;
            if !live.is_empty() && tx.send(live).await.is_err() {
                // The consumer stopped on an error; it reports it.
                break;
            }
            match page.next_token.filter(|t| !t.is_empty()) {
                Some(t) => {
                    if !seen_tokens.insert(t.clone()) {
                        return Err(SweepError::PaginationLoop { page: pages });
                    }
                    token = Some(t);
                }
                None => break,
            }
        }
        tx.close_channel();
        Ok(pages)
    };
    let consumer = rx
        .map(|vms| async move {
            let ids: Vec<String> = vms.iter().map(|v| v.microvm_id.clone()).collect();
            let known = ports
                .ledger
                .known_microvms(&ids)
                .await
                .map_err(SweepError::Ledger)?;
            Ok::<_, SweepError>(
                vms.into_iter()
                    .filter(|v| !known.contains(&v.microvm_id))
                    .collect::<Vec<_>>(),
            )
        })
        .buffer_unordered(concurrency.max(1))
        .try_fold(Vec::new(), |mut acc, v| async move {
            acc.extend(v);
            Ok(acc)
        });
    let (pages, candidates) = futures::try_join!(producer, consumer)?;
    counters.microvms_listed += listed;
    counters.microvms_active += active;
    let (young, mut unmanaged): (Vec<ListedMicrovm>, Vec<ListedMicrovm>) = candidates
        .into_iter()
        .partition(|v| v.started_at.is_some_and(|t| now - t < min_age));
    counters.microvms_too_young += young.len() as u64;
    // Second read of the candidates, after the minimum age: a VM the
    // launcher had just started may have been listed before its ledger item
    // was written.
    if !unmanaged.is_empty() {
        let ids: Vec<String> = unmanaged.iter().map(|v| v.microvm_id.clone()).collect();
        let known = ports
            .ledger
            .known_microvms(&ids)
            .await
            .map_err(SweepError::Ledger)?;
        unmanaged.retain(|v| !known.contains(&v.microvm_id));
    }
    unmanaged.sort_by(|a, b| a.microvm_id.cmp(&b.microvm_id));
    Ok((pages, unmanaged))
}
