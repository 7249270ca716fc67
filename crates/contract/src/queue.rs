//! The `TicketQueue` contract: SQS's delay, visibility, receive counts, dead letters and Lambda's
//! batching window.
//!
//! Subjects are built with `max_receives` = [`DEFAULT_MAX_RECEIVES`] (5), the redrive policy of
//! DESIGN.md. Where SQS is only approximate (a short-poll receive may return fewer messages than are
//! there) the cases gather with repeated receives instead of asserting one call's count.

use crate::{ok, Subject, Time};
use queuematch_core::ports::queue::{QueueMessage, TicketQueue, DEFAULT_MAX_RECEIVES, MAX_BATCH, MAX_RECEIVE};
use queuematch_core::ports::PortError;

use std::collections::BTreeSet;
use std::time::Duration;

/// Generates the queue suite's tests from `$make`, an `async fn() -> Subject<impl TicketQueue, impl
/// Time>` giving an empty queue with an empty dead-letter queue.
#[macro_export]
macro_rules! queue_contract {
    ($make:path) => {
        $crate::__contract_tests!(
            $make,
            queue,
            [
                a_sent_message_is_received_with_its_attributes,
                a_delayed_message_waits_for_its_delay,
                an_undeleted_message_comes_back_after_its_visibility_timeout,
                a_deleted_message_never_comes_back,
                a_stale_receipt_never_fails,
                visibility_can_be_extended_or_ended,
                after_max_receives_a_message_is_a_dead_letter,
                dead_letters_are_redriven,
                a_receive_takes_at_most_its_max,
                a_batch_returns_at_its_max_without_waiting_for_the_window,
                a_batch_gathers_until_its_window_closes,
                an_empty_batch_returns_when_its_window_closes,
                depth_counts_visible_in_flight_and_delayed,
                requests_outside_the_limits_are_invalid,
            ]
        );
    };
}

const VISIBILITY: Duration = Duration::from_secs(30);

fn sec(s: u64) -> Duration {
    Duration::from_secs(s)
}

async fn send<Q: TicketQueue>(q: &Q, body: &str) -> String {
    ok(q.send(body.to_owned(), Duration::ZERO).await, "send")
}

async fn receive<Q: TicketQueue>(q: &Q, visibility: Duration) -> Vec<QueueMessage> {
    ok(q.receive(MAX_RECEIVE, visibility).await, "receive")
}

/// Receives until `want` messages are in hand or a few receives in a row bring nothing.
async fn gather<Q: TicketQueue>(q: &Q, want: usize) -> Vec<QueueMessage> {
    let mut got = Vec::new();
    let mut idle = 0;
    while got.len() < want && idle < 3 {
        let batch = receive(q, VISIBILITY).await;
        idle = if batch.is_empty() { idle + 1 } else { 0 };
        got.extend(batch);
    }
    got
}

/// Runs `fut`, failing the case if it takes more than a few real seconds: a receive that waits for a
/// window it should not wait for would otherwise hang the suite on virtual time.
async fn promptly<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not return in time"),
    }
}

pub async fn a_sent_message_is_received_with_its_attributes<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    let before = s.time.now();
    let id = send(&s.port, r#"{"kind":"ticket"}"#).await;
    let after = s.time.now();
    let got = gather(&s.port, 1).await;
    let [m] = got.as_slice() else {
        panic!("one message, got {got:?}")
    };
    assert_eq!(
        (m.message_id.as_str(), m.body.as_str(), m.receive_count),
        (id.as_str(), r#"{"kind":"ticket"}"#, 1)
    );
    // SentTimestamp is in milliseconds, but SQS's clock is not ours: allow a second either way.
    let earliest = before.as_millis().saturating_sub(1_000);
    assert!(
        m.sent_at.as_millis() >= earliest && m.sent_at <= after.plus(sec(1)),
        "{m:?}"
    );
}

pub async fn a_delayed_message_waits_for_its_delay<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    ok(s.port.send("later".into(), sec(5)).await, "send delayed");
    assert!(
        receive(&s.port, VISIBILITY).await.is_empty(),
        "received before its delay"
    );
    s.time.advance(sec(6)).await;
    let got = gather(&s.port, 1).await;
    assert_eq!(got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["later"]);
}

pub async fn an_undeleted_message_comes_back_after_its_visibility_timeout<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    let id = send(&s.port, "m").await;
    let first = gather(&s.port, 1).await;
    assert_eq!(first.len(), 1);
    s.time.advance(sec(2)).await;
    assert!(
        receive(&s.port, VISIBILITY).await.is_empty(),
        "delivered again while in flight"
    );
    s.time.advance(VISIBILITY).await;
    let again = gather(&s.port, 1).await;
    let [m] = again.as_slice() else {
        panic!("redelivered once, got {again:?}")
    };
    assert_eq!((m.message_id.as_str(), m.receive_count), (id.as_str(), 2));
    assert_ne!(m.receipt, first[0].receipt, "each receive has its own receipt");
}

pub async fn a_deleted_message_never_comes_back<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    send(&s.port, "m").await;
    let got = gather(&s.port, 1).await;
    let [m] = got.as_slice() else {
        panic!("one message, got {got:?}")
    };
    ok(s.port.delete(&m.receipt).await, "delete");
    ok(s.port.delete(&m.receipt).await, "a retried delete is harmless");
    s.time.advance(VISIBILITY + sec(1)).await;
    assert!(gather(&s.port, 1).await.is_empty());
}

/// A slow consumer deletes with the receipt of an earlier receive: that never fails, and the
/// consumer holding the current receipt can still delete.
pub async fn a_stale_receipt_never_fails<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    send(&s.port, "m").await;
    let first = gather(&s.port, 1).await;
    s.time.advance(VISIBILITY + sec(1)).await;
    let second = gather(&s.port, 1).await;
    let ([stale], [current]) = (first.as_slice(), second.as_slice()) else {
        panic!("two receives of one message, got {first:?} and {second:?}")
    };
    ok(s.port.delete(&stale.receipt).await, "delete with a stale receipt");
    ok(s.port.delete(&current.receipt).await, "delete with the current receipt");
    s.time.advance(VISIBILITY + sec(1)).await;
    assert!(
        gather(&s.port, 1).await.is_empty(),
        "the current receipt did not delete"
    );
}

pub async fn visibility_can_be_extended_or_ended<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    send(&s.port, "m").await;
    let got = ok(s.port.receive(1, sec(10)).await, "receive");
    let [m] = got.as_slice() else {
        panic!("one message, got {got:?}")
    };
    ok(s.port.change_visibility(&m.receipt, sec(60)).await, "extend");
    s.time.advance(sec(20)).await;
    assert!(
        receive(&s.port, VISIBILITY).await.is_empty(),
        "visible although extended"
    );
    s.time.advance(sec(41)).await;
    let again = gather(&s.port, 1).await;
    let [m] = again.as_slice() else {
        panic!("visible once the extension passed, got {again:?}")
    };
    ok(
        s.port.change_visibility(&m.receipt, Duration::ZERO).await,
        "end visibility",
    );
    let third = gather(&s.port, 1).await;
    let [m] = third.as_slice() else {
        panic!("visible at once, got {third:?}")
    };
    assert_eq!(m.receive_count, 3);
    ok(s.port.delete(&m.receipt).await, "delete");
    let gone = s.port.change_visibility(&m.receipt, sec(5)).await;
    assert!(
        matches!(gone, Err(PortError::NotFound(_))),
        "change visibility of a deleted message: {gone:?}"
    );
}

/// Receives the one message `n` times, letting its visibility pass each time.
async fn receive_times<Q: TicketQueue, T: Time>(s: &Subject<Q, T>, n: u32) {
    for i in 1..=n {
        let got = gather(&s.port, 1).await;
        assert_eq!(
            got.iter().map(|m| m.receive_count).collect::<Vec<_>>(),
            [i],
            "receive {i}"
        );
        s.time.advance(VISIBILITY + sec(1)).await;
    }
}

pub async fn after_max_receives_a_message_is_a_dead_letter<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    let id = send(&s.port, "poison").await;
    receive_times(&s, DEFAULT_MAX_RECEIVES).await;
    assert!(
        gather(&s.port, 1).await.is_empty(),
        "delivered after {DEFAULT_MAX_RECEIVES} receives"
    );
    let dead = ok(s.port.dead_letters(MAX_RECEIVE).await, "dead letters");
    let [d] = dead.as_slice() else {
        panic!("one dead letter, got {dead:?}")
    };
    assert_eq!((d.message_id.as_str(), d.body.as_str()), (id.as_str(), "poison"));
    assert!(d.receive_count >= DEFAULT_MAX_RECEIVES, "{d:?}");
    let depth = ok(s.port.depth().await, "depth");
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 0, 1));
}

pub async fn dead_letters_are_redriven<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    send(&s.port, "poison").await;
    receive_times(&s, DEFAULT_MAX_RECEIVES).await;
    assert!(gather(&s.port, 1).await.is_empty());
    assert_eq!(ok(s.port.redrive().await, "redrive"), 1);
    assert!(ok(s.port.dead_letters(MAX_RECEIVE).await, "dead letters").is_empty());
    let back = gather(&s.port, 1).await;
    let [m] = back.as_slice() else {
        panic!("redriven once, got {back:?}")
    };
    assert_eq!((m.body.as_str(), m.receive_count), ("poison", 1));
    assert_eq!(ok(s.port.redrive().await, "an empty redrive"), 0);
}

pub async fn a_receive_takes_at_most_its_max<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    for i in 0..15 {
        send(&s.port, &format!("m-{i}")).await;
    }
    let first = ok(s.port.receive(4, VISIBILITY).await, "receive 4");
    assert!(
        !first.is_empty() && first.len() <= 4,
        "{} messages for a max of 4",
        first.len()
    );
    let mut bodies: BTreeSet<String> = first.into_iter().map(|m| m.body).collect();
    for m in gather(&s.port, 15 - bodies.len()).await {
        assert!(
            bodies.insert(m.body.clone()),
            "{} delivered twice while in flight",
            m.body
        );
    }
    assert_eq!(bodies.len(), 15);
}

pub async fn a_batch_returns_at_its_max_without_waiting_for_the_window<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    for i in 0..25 {
        send(&s.port, &format!("m-{i}")).await;
    }
    let batch = promptly("a full batch", s.port.receive_batch(20, sec(300), VISIBILITY)).await;
    let batch = ok(batch, "receive batch");
    assert_eq!(batch.len(), 20);
    let distinct: BTreeSet<&str> = batch.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(distinct.len(), 20);
}

pub async fn a_batch_gathers_until_its_window_closes<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    for i in 0..3 {
        send(&s.port, &format!("early-{i}")).await;
    }
    let receiving = s.port.receive_batch(100, sec(4), VISIBILITY);
    let traffic = async {
        s.time.advance(sec(1)).await;
        send(&s.port, "late").await;
        s.time.advance(sec(4)).await;
    };
    let (batch, ()) = promptly("a batch at its window's end", async {
        futures::join!(receiving, traffic)
    })
    .await;
    let mut bodies: Vec<String> = ok(batch, "receive batch").into_iter().map(|m| m.body).collect();
    bodies.sort();
    assert_eq!(bodies, ["early-0", "early-1", "early-2", "late"]);
}

pub async fn an_empty_batch_returns_when_its_window_closes<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    let receiving = s.port.receive_batch(10, sec(1), VISIBILITY);
    let (batch, ()) = promptly("an empty batch", async {
        futures::join!(receiving, s.time.advance(sec(2)))
    })
    .await;
    assert!(ok(batch, "receive batch").is_empty());
}

pub async fn depth_counts_visible_in_flight_and_delayed<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    send(&s.port, "a").await;
    send(&s.port, "b").await;
    ok(s.port.send("c".into(), sec(60)).await, "send delayed");
    let got = ok(s.port.receive(1, VISIBILITY).await, "receive");
    assert_eq!(got.len(), 1);
    let depth = ok(s.port.depth().await, "depth");
    assert_eq!(
        (depth.visible, depth.in_flight, depth.delayed, depth.dead),
        (1, 1, 1, 0)
    );
}

pub async fn requests_outside_the_limits_are_invalid<Q: TicketQueue, T: Time>(s: Subject<Q, T>) {
    let invalid = |r: Result<(), PortError>| matches!(r, Err(PortError::Invalid(_)));
    assert!(invalid(s.port.send("m".into(), sec(901)).await.map(|_| ())));
    assert!(invalid(s.port.send(String::new(), Duration::ZERO).await.map(|_| ())));
    assert!(invalid(s.port.receive(0, VISIBILITY).await.map(|_| ())));
    assert!(invalid(s.port.receive(MAX_RECEIVE + 1, VISIBILITY).await.map(|_| ())));
    assert!(invalid(
        s.port
            .receive_batch(MAX_BATCH + 1, sec(1), VISIBILITY)
            .await
            .map(|_| ())
    ));
    assert!(invalid(
        s.port.receive_batch(10, sec(301), VISIBILITY).await.map(|_| ())
    ));
    assert!(invalid(s.port.receive(1, sec(12 * 3_600 + 1)).await.map(|_| ())));
}
