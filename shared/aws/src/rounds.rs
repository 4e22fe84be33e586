//! DynamoDB's batch calls (`BatchWriteItem`, `BatchGetItem`) may leave part
//! of a request unprocessed (throttling, the response size limit) and answer
//! it back: it must be sent again. One bounded loop for every such call.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_sdk_dynamodb::types::WriteRequest;
use std::future::Future;
use std::time::Duration;

/// Calls per batch before what is still unprocessed is an error.
pub const MAX_ROUNDS: u32 = 8;

/// Why a batch did not complete.
#[derive(Debug)]
pub enum RoundsError<E> {
    /// A call failed (after the SDK's own retries).
    Call(E),
    /// Still unprocessed after [`MAX_ROUNDS`] calls.
    Unprocessed { remaining: usize, rounds: u32 },
}

/// Send `pending` with `send` until nothing is left unprocessed: at most
/// [`MAX_ROUNDS`] calls, with a pause that doubles from 50 ms up to 1.6 s
/// before each call after the first. `send` answers what is left and what
/// it found; the answer is everything found.
pub async fn until_processed<T, R, E, F, Fut>(
    pending: Vec<T>,
    send: F,
) -> Result<Vec<R>, RoundsError<E>>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Vec<R>), E>>,
{
    until_processed_pausing(pending, send, tokio::time::sleep).await
}

/// The pause before call `round` (1-based, the first has none): doubling
/// from 50 ms, at most 1.6 s.
fn pause_before(round: u32) -> Duration {
    Duration::from_millis(25u64 << round.min(6))
}

/// [`until_processed`] with the pause given: `pause(d)` waits `d`.
async fn until_processed_pausing<T, R, E, F, Fut, P, PFut>(
    mut pending: Vec<T>,
    mut send: F,
    mut pause: P,
) -> Result<Vec<R>, RoundsError<E>>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Vec<R>), E>>,
    P: FnMut(Duration) -> PFut,
    PFut: Future<Output = ()>,
{
    let mut found = Vec::new();
    let mut round = 0;
    while !pending.is_empty() {
        if round >= MAX_ROUNDS {
            return Err(RoundsError::Unprocessed {
                remaining: pending.len(),
                rounds: round,
            });
        }
        if round > 0 {
            pause(pause_before(round)).await;
        }
        round += 1;
        let (left, got) = send(pending).await.map_err(RoundsError::Call)?;
        found.extend(got);
        pending = left;
    }
    Ok(found)
}

/// Write `requests` (at most 25, one request's worth) to `table` with
/// `BatchWriteItem`, sending again what comes back unprocessed.
pub async fn write_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    requests: Vec<WriteRequest>,
) -> Result<(), RoundsError<SdkError<BatchWriteItemError>>> {
    until_processed(requests, |pending| async move {
        let out = client
            .batch_write_item()
            .request_items(table, pending)
            .send()
            .await?;
        let left = out
            .unprocessed_items()
            .and_then(|u| u.get(table))
            .cloned()
            .unwrap_or_default();
        Ok((left, Vec::<()>::new()))
    })
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A pause that takes no time and records what it was asked to wait.
    fn recorded() -> (
        Arc<Mutex<Vec<Duration>>>,
        impl FnMut(Duration) -> std::future::Ready<()>,
    ) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        (log, move |d| {
            l.lock().unwrap().push(d);
            std::future::ready(())
        })
    }

    #[tokio::test]
    async fn what_is_answered_back_is_sent_again_until_none_is_left() {
        let mut calls = Vec::new();
        let (pauses, pause) = recorded();
        let found = until_processed_pausing(
            vec![1, 2, 3, 4],
            |pending: Vec<u32>| {
                calls.push(pending.len());
                // One item processed per call, the rest answered back.
                let (done, left) = pending.split_at(1);
                let (done, left) = (done.to_vec(), left.to_vec());
                async move { Ok::<_, ()>((left, done)) }
            },
            pause,
        )
        .await
        .unwrap();
        assert_eq!(found, [1, 2, 3, 4]);
        assert_eq!(calls, [4, 3, 2, 1]);
        let ms: Vec<u128> = pauses
            .lock()
            .unwrap()
            .iter()
            .map(Duration::as_millis)
            .collect();
        assert_eq!(
            ms,
            [50, 100, 200],
            "a pause before each call after the first"
        );
    }

    #[tokio::test]
    async fn a_batch_never_processed_ends_after_the_last_round() {
        let mut calls = 0;
        let (pauses, pause) = recorded();
        let err = until_processed_pausing(
            vec!["k"],
            |pending: Vec<&str>| {
                calls += 1;
                async move { Ok::<(Vec<&str>, Vec<()>), ()>((pending, Vec::new())) }
            },
            pause,
        )
        .await
        .unwrap_err();
        let ms: Vec<u128> = pauses
            .lock()
            .unwrap()
            .iter()
            .map(Duration::as_millis)
            .collect();
        assert_eq!(
            ms,
            [50, 100, 200, 400, 800, 1600, 1600],
            "doubling, at most 1.6 s"
        );
        assert!(matches!(
            err,
            RoundsError::Unprocessed {
                remaining: 1,
                rounds: MAX_ROUNDS
            }
        ));
        assert_eq!(calls, MAX_ROUNDS);
    }

    #[tokio::test]
    async fn a_failed_call_ends_the_batch_with_its_error() {
        let (pauses, pause) = recorded();
        let err = until_processed_pausing(
            vec![1],
            |_: Vec<u32>| async { Err::<(Vec<u32>, Vec<()>), _>("throttled") },
            pause,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RoundsError::Call("throttled")));
        assert!(pauses.lock().unwrap().is_empty());
    }
}
