//! The `Events` contract: every published event reaches the consumers, whole.
//!
//! The suite reads what the adapter delivered through an [`EventTap`]: the local bus's subscription,
//! or on AWS a queue that the bus's rule targets. EventBridge promises no order, so the cases compare
//! what arrived as a set.

use crate::ok;
use queuematch_core::ports::Events;
use queuematch_core::{DomainEvent, SessionStatus};
use std::future::Future;
use std::time::Duration;

/// The adapter under test and where its deliveries are seen.
#[derive(Debug)]
pub struct EventsSubject<E, Tap> {
    pub port: E,
    pub tap: Tap,
}

/// Where a suite sees what an `Events` adapter delivered.
pub trait EventTap: Send + Sync {
    /// The next delivered event, or `None` if none arrives within `within` (real time).
    fn next(&self, within: Duration) -> impl Future<Output = Option<DomainEvent>> + Send;
}

/// Generates the events suite's tests from `$make`, an `async fn() -> EventsSubject<impl Events,
/// impl EventTap>` whose tap is already listening.
#[macro_export]
macro_rules! events_contract {
    ($make:path) => {
        $crate::__contract_tests!(
            $make,
            events,
            [
                every_kind_of_event_is_delivered_whole,
                a_burst_of_events_is_delivered_in_full
            ]
        );
    };
}

/// One event of every kind.
pub fn every_kind() -> Vec<DomainEvent> {
    let t = || "t-1".into();
    let p = || vec!["p-1".into(), "p-2".into()];
    vec![
        DomainEvent::MatchmakingSearching {
            ticket_id: t(),
            player_ids: p(),
        },
        DomainEvent::PotentialMatchCreated {
            ticket_id: t(),
            player_ids: p(),
            acceptance_required: true,
        },
        DomainEvent::AcceptMatch {
            ticket_id: t(),
            match_id: "m-1".into(),
            player_id: "p-1".into(),
            accepted: false,
            player_ids: p(),
        },
        DomainEvent::AcceptMatchCompleted {
            match_id: "m-1".into(),
            acceptance: queuematch_core::event::AcceptanceOutcome::Rejected,
            player_ids: p(),
            reason: Some("p-1 declined".into()),
        },
        DomainEvent::MatchmakingSucceeded {
            ticket_id: t(),
            player_ids: p(),
        },
        DomainEvent::MatchmakingCancelled {
            ticket_id: t(),
            player_ids: p(),
            reason: "left".into(),
        },
        DomainEvent::MatchmakingTimedOut {
            ticket_id: t(),
            player_ids: p(),
            reason: "120 s".into(),
        },
        DomainEvent::MatchmakingFailed {
            ticket_id: t(),
            player_ids: p(),
            reason: "no server".into(),
        },
        DomainEvent::SessionStatusChanged {
            session_id: "s-1".into(),
            player_ids: p(),
            status: SessionStatus::Ended,
            reason: Some("game over".into()),
        },
    ]
}

/// Collects `n` delivered events, panicking if they stop coming.
async fn collect<Tap: EventTap>(tap: &Tap, n: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(n);
    for i in 0..n {
        match tap.next(Duration::from_secs(10)).await {
            Some(e) => got.push(ok(serde_json::to_string(&e), "event json")),
            None => panic!("only {i} of {n} events were delivered"),
        }
    }
    got.sort();
    got
}

/// Publishes `events` and checks that exactly they arrive, in any order.
async fn publish_and_expect<E: Events, Tap: EventTap>(s: &EventsSubject<E, Tap>, events: Vec<DomainEvent>) {
    let mut want: Vec<String> = events
        .iter()
        .map(|e| ok(serde_json::to_string(e), "event json"))
        .collect();
    want.sort();
    for e in events {
        ok(s.port.publish(e).await, "publish");
    }
    assert_eq!(collect(&s.tap, want.len()).await, want);
}

pub async fn every_kind_of_event_is_delivered_whole<E: Events, Tap: EventTap>(s: EventsSubject<E, Tap>) {
    publish_and_expect(&s, every_kind()).await;
}

pub async fn a_burst_of_events_is_delivered_in_full<E: Events, Tap: EventTap>(s: EventsSubject<E, Tap>) {
    let burst = (0..200).map(|i| DomainEvent::MatchmakingSearching {
        ticket_id: format!("t-{i}").into(),
        player_ids: vec![],
    });
    publish_and_expect(&s, burst.collect()).await;
}
