//! The GameLift fleet on recorded GameLift responses (aws-smithy-mocks): the requests it makes,
//! every placement status, and every error mapped to the port's.
//!
//! GameLift speaks Smithy RPC v2 CBOR, so the recorded responses are given as the SDK's modeled
//! outputs, and errors as the error metadata (code and message) its deserializer reads off the
//! wire; the adapter maps errors by those codes, as it does against the service.

use aws_sdk_gamelift::error::ErrorMetadata;
use aws_sdk_gamelift::operation::create_player_sessions::{CreatePlayerSessionsError, CreatePlayerSessionsOutput};
use aws_sdk_gamelift::operation::describe_game_session_placement::{
    DescribeGameSessionPlacementError, DescribeGameSessionPlacementOutput,
};
use aws_sdk_gamelift::operation::start_game_session_placement::{
    StartGameSessionPlacementError, StartGameSessionPlacementOutput,
};
use aws_sdk_gamelift::operation::stop_game_session_placement::StopGameSessionPlacementOutput;
use aws_sdk_gamelift::operation::terminate_game_session::{TerminateGameSessionError, TerminateGameSessionOutput};
use aws_sdk_gamelift::types::{GameSessionPlacement, GameSessionPlacementState};
use aws_sdk_gamelift::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use queuematch_aws::GameLiftFleet;
use queuematch_contract::fleet::two_player_match;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId, SessionAssignment};
use queuematch_core::ports::store::items::{self, TicketRecord};
use queuematch_core::ports::store::{Condition, Store};
use queuematch_core::ports::{Fleet, PortError};
use queuematch_core::{Player, Ticket, TicketStatus, Timestamp};
use queuematch_local::{ManualClock, MemoryStore};
use std::sync::Arc;

const QUEUE: &str = "queuematch-sessions";

fn session() -> SessionId {
    "s-1".into()
}

fn secret() -> SessionSecret {
    SessionSecret::from_random_bytes(&[7; 32])
}

fn matched() -> Match {
    let mut m = two_player_match("g");
    m.region = Some("eu-west-1".into());
    m
}

fn assignment_json(m: &Match, secret: &SessionSecret) -> String {
    serde_json::to_string(&SessionAssignment::new(&session(), m, secret)).unwrap_or_default()
}

/// A store holding the match's tickets, each player with latencies to two regions.
async fn store_with_tickets(m: &Match) -> Arc<dyn Store> {
    let store = MemoryStore::new(ManualClock::default());
    for (team, ms) in m.teams.iter().zip([30u32, 45]) {
        let mut player = Player::new(team.players[0].clone());
        player.latencies.insert("eu-west-1", ms);
        player.latencies.insert("us-east-1", ms + 80);
        let mut ticket = Ticket::queued(team.tickets[0].clone(), m.queue.as_str(), vec![player], Timestamp(1));
        ticket.status = TicketStatus::Searching;
        let record = TicketRecord::unmatched(ticket, "p");
        let item = items::ticket_item(&record, 4).unwrap_or_else(|e| panic!("ticket item: {e}"));
        store
            .put(item, Condition::Absent)
            .await
            .unwrap_or_else(|e| panic!("seeding a ticket: {e}"));
    }
    Arc::new(store)
}

/// A placement in `status` as GameLift describes it, carrying `data` as its game session data.
fn placement(status: &str, data: &str) -> GameSessionPlacement {
    let mut p = GameSessionPlacement::builder()
        .placement_id("s-1")
        .game_session_queue_name(QUEUE)
        .status(GameSessionPlacementState::from(status))
        .maximum_player_session_count(2)
        .game_session_data(data);
    if status == "FULFILLED" {
        p = p
            .game_session_id("arn:aws:gamelift:eu-west-1::gamesession/fleet-1/gs-1")
            .ip_address("198.51.100.7")
            .dns_name("ec2-198-51-100-7.eu-west-1.compute.amazonaws.com")
            .port(7777);
    }
    p.build()
}

/// An error as GameLift's deserializer leaves it: its code and message.
fn meta(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code(code)
        .message(format!("recorded {code}"))
        .build()
}

fn describe(status: &str, data: &str) -> Rule {
    let (status, data) = (status.to_owned(), data.to_owned());
    mock!(Client::describe_game_session_placement)
        .match_requests(|r| r.placement_id() == Some("s-1"))
        .then_output(move || {
            DescribeGameSessionPlacementOutput::builder()
                .game_session_placement(placement(&status, &data))
                .build()
        })
}

fn describe_error(code: &str) -> Rule {
    let code = code.to_owned();
    mock!(Client::describe_game_session_placement)
        .then_error(move || DescribeGameSessionPlacementError::generic(meta(&code)))
}

fn fleet(client: Client, store: Arc<dyn Store>) -> GameLiftFleet {
    GameLiftFleet::new(client, QUEUE, store)
}

#[tokio::test]
async fn place_asks_for_the_matchs_region_with_every_players_latencies() {
    let m = matched();
    let unknown = describe_error("NotFoundException");
    let start = mock!(Client::start_game_session_placement)
        .match_requests(|r| {
            let latencies: Vec<(String, String, f32)> = r
                .player_latencies()
                .iter()
                .map(|l| {
                    (
                        l.player_id().unwrap_or_default().to_owned(),
                        l.region_identifier().unwrap_or_default().to_owned(),
                        l.latency_in_milliseconds().unwrap_or_default(),
                    )
                })
                .collect();
            let assignment: Option<SessionAssignment> =
                r.game_session_data().and_then(|d| serde_json::from_str(d).ok());
            r.placement_id() == Some("s-1")
                && r.game_session_queue_name() == Some(QUEUE)
                && r.game_session_name() == Some("m-g")
                && r.maximum_player_session_count() == Some(2)
                && r.priority_configuration_override().map(|p| p.location_order().to_vec())
                    == Some(vec!["eu-west-1".to_owned()])
                && latencies.len() == 4
                && latencies.contains(&("g-a".into(), "eu-west-1".into(), 30.0))
                && latencies.contains(&("g-b".into(), "us-east-1".into(), 125.0))
                && assignment.is_some_and(|a| a.secret == secret() && a.players.len() == 2)
        })
        .then_output(|| {
            StartGameSessionPlacementOutput::builder()
                .game_session_placement(placement("PENDING", ""))
                .build()
        });
    let client = mock_client!(aws_sdk_gamelift, RuleMode::MatchAny, [&unknown, &start]);
    let placed = fleet(client, store_with_tickets(&m).await)
        .place(&session(), &m, &secret())
        .await;
    assert_eq!(
        placed.unwrap(),
        Placement::Pending {
            placement: PlacementId("s-1".into())
        }
    );
    assert_eq!(start.num_calls(), 1);
}

#[tokio::test]
async fn a_fulfilled_placement_reserves_the_players_and_is_ready() {
    let m = matched();
    let data = assignment_json(&m, &secret());
    let fulfilled = describe("FULFILLED", &data);
    let players = mock!(Client::create_player_sessions)
        .match_requests(|r| {
            r.game_session_id() == Some("arn:aws:gamelift:eu-west-1::gamesession/fleet-1/gs-1")
                && r.player_ids() == ["g-a".to_owned(), "g-b".to_owned()]
        })
        .sequence()
        .output(|| CreatePlayerSessionsOutput::builder().build())
        .error(|| CreatePlayerSessionsError::generic(meta("GameSessionFullException")))
        .build();
    let client = mock_client!(aws_sdk_gamelift, RuleMode::MatchAny, [&fulfilled, &players]);
    let fleet = fleet(client, store_with_tickets(&m).await);
    let ready = Placement::Ready {
        placement: PlacementId("s-1".into()),
        endpoint: Endpoint {
            address: "ec2-198-51-100-7.eu-west-1.compute.amazonaws.com".into(),
            port: 7777,
        },
    };
    assert_eq!(fleet.poll(&PlacementId("s-1".into())).await.unwrap(), ready);
    // Polled again: the players' sessions exist (the game session is full of them).
    assert_eq!(fleet.poll(&PlacementId("s-1".into())).await.unwrap(), ready);
    assert_eq!(players.num_calls(), 2);
}

#[tokio::test]
async fn every_placement_status_maps_to_the_port() {
    let m = matched();
    let data = assignment_json(&m, &secret());
    for (status, want) in [
        ("PENDING", "pending"),
        ("CANCELLED", "PlacementUnavailable"),
        ("TIMED_OUT", "PlacementUnavailable"),
        ("FAILED", "PlacementUnavailable"),
    ] {
        let rule = describe(status, &data);
        let client = mock_client!(aws_sdk_gamelift, RuleMode::MatchAny, [&rule]);
        let got = fleet(client, store_with_tickets(&m).await)
            .poll(&PlacementId("s-1".into()))
            .await;
        let seen = match &got {
            Ok(Placement::Pending { .. }) => "pending".to_owned(),
            Ok(other) => format!("{other:?}"),
            Err(e) => e.error_type().as_str().to_owned(),
        };
        assert_eq!(seen, want, "{status}: {got:?}");
    }
}

#[tokio::test]
async fn placing_again_answers_from_the_existing_placement() {
    let m = matched();
    let data = assignment_json(&m, &secret());
    let pending = describe("PENDING", &data);
    let start = mock!(Client::start_game_session_placement).then_output(|| {
        StartGameSessionPlacementOutput::builder()
            .game_session_placement(placement("PENDING", ""))
            .build()
    });
    let client = mock_client!(aws_sdk_gamelift, RuleMode::MatchAny, [&pending, &start]);
    let fleet = fleet(client, store_with_tickets(&m).await);
    let again = fleet.place(&session(), &m, &secret()).await.unwrap();
    assert!(matches!(again, Placement::Pending { .. }), "{again:?}");
    assert_eq!(start.num_calls(), 0, "a placed session is not placed twice");
    let other = fleet
        .place(&session(), &m, &SessionSecret::from_random_bytes(&[8; 32]))
        .await;
    assert!(matches!(other, Err(PortError::Invalid(_))), "{other:?}");
}

#[tokio::test]
async fn start_errors_map_to_the_port() {
    let m = matched();
    for (code, want) in [
        ("LimitExceededException", "PlacementUnavailable"),
        ("FleetCapacityExceededException", "PlacementUnavailable"),
        ("InvalidRequestException", "Invalid"),
        ("UnauthorizedException", "Invalid"),
        ("UnsupportedRegionException", "Invalid"),
        ("NotFoundException", "NotFound"),
        ("InternalServiceException", "Transient"),
        ("ThrottlingException", "Throttled"),
    ] {
        let unknown = describe_error("NotFoundException");
        let start = mock!(Client::start_game_session_placement)
            .then_error(move || StartGameSessionPlacementError::generic(meta(code)));
        let client = mock_client!(aws_sdk_gamelift, RuleMode::MatchAny, [&unknown, &start], |c| c
            .retry_config(
                aws_sdk_gamelift::config::retry::RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(std::time::Duration::from_millis(1))
            ));
        let got = fleet(client, store_with_tickets(&m).await)
            .place(&session(), &m, &secret())
            .await;
        let seen = got.as_ref().map_err(|e| e.error_type().as_str());
        assert_eq!(seen.err(), Some(want), "{code}: {got:?}");
    }
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_before_it_reaches_the_port() {
    let m = matched();
    let data = assignment_json(&m, &secret());
    let rule = mock!(Client::describe_game_session_placement)
        .sequence()
        .error(|| DescribeGameSessionPlacementError::generic(meta("ThrottlingException")))
        .times(2)
        .output(move || {
            DescribeGameSessionPlacementOutput::builder()
                .game_session_placement(placement("PENDING", &data))
                .build()
        })
        .build();
    let client = mock_client!(aws_sdk_gamelift, RuleMode::Sequential, [&rule], |c| c.retry_config(
        queuematch_aws::config::retry_config().with_initial_backoff(std::time::Duration::from_millis(1))
    ));
    let got = fleet(client, store_with_tickets(&m).await)
        .poll(&PlacementId("s-1".into()))
        .await;
    assert!(matches!(got, Ok(Placement::Pending { .. })), "{got:?}");
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn an_unknown_placement_is_not_found_and_releases_as_done() {
    let unknown = describe_error("NotFoundException");
    let client = mock_client!(aws_sdk_gamelift, RuleMode::MatchAny, [&unknown]);
    let fleet = fleet(client, store_with_tickets(&matched()).await);
    let polled = fleet.poll(&PlacementId("nope".into())).await;
    assert!(matches!(polled, Err(PortError::NotFound(_))), "{polled:?}");
    assert!(fleet.release(&PlacementId("nope".into())).await.is_ok());
}

#[tokio::test]
async fn release_stops_a_pending_placement_and_terminates_a_fulfilled_one_once() {
    let m = matched();
    let data = assignment_json(&m, &secret());

    let pending = describe("PENDING", &data);
    let stop = mock!(Client::stop_game_session_placement)
        .match_requests(|r| r.placement_id() == Some("s-1"))
        .then_output(|| StopGameSessionPlacementOutput::builder().build());
    let client = mock_client!(aws_sdk_gamelift, RuleMode::MatchAny, [&pending, &stop]);
    fleet(client, store_with_tickets(&m).await)
        .release(&PlacementId("s-1".into()))
        .await
        .unwrap();
    assert_eq!(stop.num_calls(), 1);

    let fulfilled = describe("FULFILLED", &data);
    let terminate = mock!(Client::terminate_game_session)
        .match_requests(|r| r.game_session_id() == Some("arn:aws:gamelift:eu-west-1::gamesession/fleet-1/gs-1"))
        .sequence()
        .output(|| TerminateGameSessionOutput::builder().build())
        .error(|| TerminateGameSessionError::generic(meta("InvalidGameSessionStatusException")))
        .build();
    let client = mock_client!(aws_sdk_gamelift, RuleMode::MatchAny, [&fulfilled, &terminate]);
    let fleet = fleet(client, store_with_tickets(&m).await);
    fleet.release(&PlacementId("s-1".into())).await.unwrap();
    fleet.release(&PlacementId("s-1".into())).await.unwrap();
    assert_eq!(
        terminate.num_calls(),
        2,
        "the second release finds it terminating and is done"
    );

    let cancelled = describe("CANCELLED", &data);
    let client = mock_client!(aws_sdk_gamelift, RuleMode::MatchAny, [&cancelled]);
    assert!(fleet_release_ok(client, &m).await);
}

async fn fleet_release_ok(client: Client, m: &Match) -> bool {
    fleet(client, store_with_tickets(m).await)
        .release(&PlacementId("s-1".into()))
        .await
        .is_ok()
}
