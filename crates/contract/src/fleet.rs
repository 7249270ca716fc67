//! The `Fleet` contract: placements are idempotent on the session id, a server serves one session,
//! capacity runs out as `PlacementUnavailable`, release happens exactly once, and a server that dies
//! fails its placement and is never placed again.
//!
//! Fleets run real servers, so the suite runs on real time: it polls a placement until it is ready
//! (or failed) within the subject's `ready_within`, never sleeping longer than it must.

use crate::ok;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::matcher::{Match, MatchQuality, MatchTeam};
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId};
use queuematch_core::ports::{ErrorType, Fleet, PortError};
use queuematch_core::Timestamp;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The adapter under test, what it holds, and how to break its servers.
#[derive(Debug)]
pub struct FleetSubject<F, C> {
    pub port: F,
    /// How many sessions the fleet can serve at once (at least 2).
    pub capacity: usize,
    /// How long a placement may take to become ready, or to poll as failed once its server died.
    pub ready_within: Duration,
    pub crash: C,
}

/// How a suite makes a server die, as a crash would.
pub trait ServerCrash: Send + Sync {
    /// Kills the server of `placement` at once, without telling the fleet.
    fn crash(&self, placement: &PlacementId) -> impl Future<Output = ()> + Send;
}

/// Generates the fleet suite's tests from `$make`, an `async fn() -> FleetSubject<impl Fleet, impl
/// ServerCrash>` giving a fleet with no placements.
#[macro_export]
macro_rules! fleet_contract {
    ($make:path) => {
        $crate::__contract_tests!(
            $make,
            fleet,
            [
                a_placement_becomes_ready_on_a_server_of_its_own,
                placing_a_session_again_returns_its_placement,
                concurrent_places_of_one_session_start_one_server,
                placing_a_session_again_with_another_match_or_secret_is_invalid,
                placing_beyond_capacity_is_unavailable_until_a_server_is_released,
                release_happens_exactly_once,
                a_pending_placement_can_be_released,
                a_crashed_server_fails_its_placement_and_is_never_reused,
                an_unknown_placement_is_not_found
            ]
        );
    };
}

/// A two-player match in region `local`, `id` naming its match and players.
pub fn two_player_match(id: &str) -> Match {
    let team = |name: &str, player: String| MatchTeam {
        name: name.into(),
        tickets: [format!("t-{player}").into()].into(),
        players: [player.into()].into(),
    };
    Match {
        id: format!("m-{id}").into(),
        queue: "duel".into(),
        created_at: Timestamp(1_000),
        teams: [team("red", format!("{id}-a")), team("blue", format!("{id}-b"))].into(),
        region: Some("local".into()),
        collections: BTreeMap::new(),
        quality: MatchQuality {
            skill_spread: None,
            team_imbalance: None,
            worst_latency_ms: None,
            waits_ms: [0, 0].into(),
            expansion_steps: Default::default(),
        },
    }
}

/// A session secret, different for each `seed`.
pub fn secret(seed: u8) -> SessionSecret {
    SessionSecret::from_random_bytes(&[seed; 32])
}

fn placement_of(placement: &Placement) -> &PlacementId {
    match placement {
        Placement::Pending { placement } | Placement::Ready { placement, .. } => placement,
    }
}

/// Places session `id` (match `m-<id>`, secret of `seed`).
async fn place<F: Fleet>(fleet: &F, id: &str, seed: u8) -> Result<Placement, PortError> {
    fleet
        .place(&SessionId::from(id), &two_player_match(id), &secret(seed))
        .await
}

/// Polls `placement` until it is ready.
async fn until_ready<F: Fleet>(fleet: &F, placement: &PlacementId, within: Duration) -> Endpoint {
    let deadline = Instant::now() + within;
    loop {
        match ok(fleet.poll(placement).await, "poll") {
            Placement::Ready { endpoint, .. } => return endpoint,
            Placement::Pending { .. } if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Placement::Pending { .. } => panic!("{placement:?} was not ready within {within:?}"),
        }
    }
}

/// Polls `placement` until it fails, returning the error.
async fn until_failed<F: Fleet>(fleet: &F, placement: &PlacementId, within: Duration) -> PortError {
    let deadline = Instant::now() + within;
    loop {
        match fleet.poll(placement).await {
            Err(e) => return e,
            Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            Ok(p) => panic!("{p:?} still polls as placed {within:?} after its server died"),
        }
    }
}

#[track_caller]
fn assert_unavailable(result: Result<impl std::fmt::Debug, PortError>, what: &str) {
    match result {
        Err(e) => assert_eq!(e.error_type(), ErrorType::PlacementUnavailable, "{what}: {e}"),
        Ok(v) => panic!("{what}: expected PlacementUnavailable, got {v:?}"),
    }
}

pub async fn a_placement_becomes_ready_on_a_server_of_its_own<F: Fleet, C>(s: FleetSubject<F, C>) {
    let one = ok(place(&s.port, "s-1", 1).await, "place s-1");
    let two = ok(place(&s.port, "s-2", 2).await, "place s-2");
    assert_ne!(placement_of(&one), placement_of(&two));
    let one = until_ready(&s.port, placement_of(&one), s.ready_within).await;
    let two = until_ready(&s.port, placement_of(&two), s.ready_within).await;
    assert_ne!(one, two, "two sessions never share a server");
    assert_ne!(one.port, 0);
}

pub async fn placing_a_session_again_returns_its_placement<F: Fleet, C>(s: FleetSubject<F, C>) {
    let first = ok(place(&s.port, "s-1", 1).await, "place");
    let again = ok(place(&s.port, "s-1", 1).await, "place again while pending");
    assert_eq!(placement_of(&first), placement_of(&again));
    let endpoint = until_ready(&s.port, placement_of(&first), s.ready_within).await;
    let once_ready = ok(place(&s.port, "s-1", 1).await, "place again once ready");
    assert_eq!(
        once_ready,
        Placement::Ready {
            placement: placement_of(&first).clone(),
            endpoint
        }
    );
    // The session holds one server, so every other slot is still free.
    for i in 1..s.capacity {
        ok(place(&s.port, &format!("other-{i}"), 9).await, "place another session");
    }
}

pub async fn concurrent_places_of_one_session_start_one_server<F: Fleet, C>(s: FleetSubject<F, C>) {
    let attempts = futures::future::join_all((0..4).map(|_| place(&s.port, "s-1", 1))).await;
    let placements: Vec<PlacementId> = attempts
        .iter()
        .map(|a| placement_of(ok(a.as_ref(), "concurrent place")).clone())
        .collect();
    assert!(placements.windows(2).all(|w| w[0] == w[1]), "{placements:?}");
    for i in 1..s.capacity {
        ok(place(&s.port, &format!("other-{i}"), 9).await, "place another session");
    }
    assert_unavailable(place(&s.port, "one-too-many", 9).await, "the duplicates took no slot");
}

pub async fn placing_a_session_again_with_another_match_or_secret_is_invalid<F: Fleet, C>(s: FleetSubject<F, C>) {
    ok(place(&s.port, "s-1", 1).await, "place");
    let other_secret = s.port.place(&"s-1".into(), &two_player_match("s-1"), &secret(2)).await;
    assert!(matches!(other_secret, Err(PortError::Invalid(_))), "{other_secret:?}");
    let other_match = s.port.place(&"s-1".into(), &two_player_match("s-9"), &secret(1)).await;
    assert!(matches!(other_match, Err(PortError::Invalid(_))), "{other_match:?}");
}

pub async fn placing_beyond_capacity_is_unavailable_until_a_server_is_released<F: Fleet, C>(s: FleetSubject<F, C>) {
    let mut placements = Vec::new();
    for i in 0..s.capacity {
        placements.push(placement_of(&ok(place(&s.port, &format!("s-{i}"), 1).await, "place")).clone());
    }
    assert_unavailable(place(&s.port, "s-full", 1).await, "the fleet is full");
    ok(s.port.release(&placements[0]).await, "release");
    let freed = ok(place(&s.port, "s-full", 1).await, "place once a server is free");
    until_ready(&s.port, placement_of(&freed), s.ready_within).await;
}

pub async fn release_happens_exactly_once<F: Fleet, C>(s: FleetSubject<F, C>) {
    let placed = ok(place(&s.port, "s-1", 1).await, "place");
    let placement = placement_of(&placed).clone();
    until_ready(&s.port, &placement, s.ready_within).await;
    ok(s.port.release(&placement).await, "release");
    ok(s.port.release(&placement).await, "release again does nothing more");
    assert_unavailable(s.port.poll(&placement).await, "a released placement");
    // A duplicate place after the release (Express starts at least once) claims nothing.
    assert_unavailable(place(&s.port, "s-1", 1).await, "placing a released session again");
    for i in 0..s.capacity {
        ok(
            place(&s.port, &format!("other-{i}"), 9).await,
            "every slot is free again",
        );
    }
}

pub async fn a_pending_placement_can_be_released<F: Fleet, C>(s: FleetSubject<F, C>) {
    let placed = ok(place(&s.port, "s-1", 1).await, "place");
    ok(s.port.release(placement_of(&placed)).await, "release at once");
    assert_unavailable(s.port.poll(placement_of(&placed)).await, "a released placement");
}

pub async fn a_crashed_server_fails_its_placement_and_is_never_reused<F: Fleet, C: ServerCrash>(s: FleetSubject<F, C>) {
    let placed = ok(place(&s.port, "s-1", 1).await, "place");
    let placement = placement_of(&placed).clone();
    until_ready(&s.port, &placement, s.ready_within).await;
    s.crash.crash(&placement).await;
    let failed = until_failed(&s.port, &placement, s.ready_within).await;
    assert_eq!(failed.error_type(), ErrorType::PlacementUnavailable, "{failed}");
    assert_unavailable(place(&s.port, "s-1", 1).await, "the session keeps its failed placement");
    // The dead server holds no slot, and no later session gets its placement.
    let mut others = Vec::new();
    for i in 0..s.capacity {
        let other = ok(place(&s.port, &format!("other-{i}"), 9).await, "place another session");
        assert_ne!(placement_of(&other), &placement);
        others.push(placement_of(&other).clone());
    }
    for other in &others {
        until_ready(&s.port, other, s.ready_within).await;
    }
    ok(
        s.port.release(&placement).await,
        "releasing a failed placement succeeds",
    );
}

pub async fn an_unknown_placement_is_not_found<F: Fleet, C>(s: FleetSubject<F, C>) {
    let unknown = PlacementId("never-placed".into());
    assert!(matches!(s.port.poll(&unknown).await, Err(PortError::NotFound(_))));
    // Nothing runs for it, so there is nothing to give back: a session whose fleet forgot it (the
    // dev server's, restarted) can still be failed or abandoned.
    ok(
        s.port.release(&unknown).await,
        "releasing an unknown placement does nothing",
    );
}
