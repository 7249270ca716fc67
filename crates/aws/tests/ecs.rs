//! The ECS fleet on recorded ECS responses (aws-smithy-mocks) and the in-memory store: warm servers
//! claimed conditionally, RunTask to scale out, DescribeTasks to see servers die, and every error
//! mapped to the port's.

use aws_sdk_ecs::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use queuematch_aws::ecs::{EcsFleet, EcsFleetConfig, ServerRecord};
use queuematch_contract::fleet::two_player_match;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId};
use queuematch_core::ports::store::Store;
use queuematch_core::ports::{Fleet, PortError};
use queuematch_local::{ManualClock, MemoryStore};
use serde_json::json;
use std::sync::Arc;

const TASK: &str = "arn:aws:ecs:eu-west-1:123456789012:task/game/0f1e2d";

fn config() -> EcsFleetConfig {
    EcsFleetConfig {
        fleet: "duel".into(),
        cluster: "game".into(),
        task_definition: "queuematch-gameserver:3".into(),
        subnets: vec!["subnet-1".into()],
        security_groups: vec!["sg-1".into()],
        assign_public_ip: true,
    }
}

fn secret(n: u8) -> SessionSecret {
    SessionSecret::from_random_bytes(&[n; 32])
}

fn server(id: &str, port: u16, task: Option<&str>) -> ServerRecord {
    ServerRecord {
        server_id: id.into(),
        endpoint: Endpoint {
            address: "203.0.113.5".into(),
            port,
        },
        task_arn: task.map(str::to_owned),
        session: None,
        dead: false,
        last_seen: None,
    }
}

fn error_json(code: &str) -> String {
    json!({ "__type": code, "message": format!("recorded {code}") }).to_string()
}

fn run_task_started() -> Rule {
    let body = json!({ "tasks": [{ "taskArn": TASK, "lastStatus": "PROVISIONING" }], "failures": [] }).to_string();
    mock!(Client::run_task)
        .match_requests(|r| {
            let vpc = r.network_configuration().and_then(|n| n.awsvpc_configuration());
            r.cluster() == Some("game")
                && r.task_definition() == Some("queuematch-gameserver:3")
                && r.count() == Some(1)
                && r.started_by().is_some_and(|s| s.starts_with("s-"))
                && vpc.is_some_and(|v| v.subnets() == ["subnet-1".to_owned()])
        })
        .sequence()
        .http_status(200, Some(body))
        .repeatedly()
        .build()
}

fn describe_task(status: &str) -> Rule {
    let body = json!({
        "tasks": [{ "taskArn": TASK, "lastStatus": status, "stoppedReason": "Essential container in task exited" }],
        "failures": []
    })
    .to_string();
    mock!(Client::describe_tasks)
        .match_requests(|r| r.cluster() == Some("game") && r.tasks() == [TASK.to_owned()])
        .sequence()
        .http_status(200, Some(body))
        .repeatedly()
        .build()
}

struct Subject {
    fleet: EcsFleet,
    store: Arc<dyn Store>,
}

fn subject(client: Client) -> Subject {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(ManualClock::default()));
    Subject {
        fleet: EcsFleet::new(client, Arc::clone(&store), config()),
        store,
    }
}

fn session(n: u32) -> SessionId {
    format!("s-{n}").into()
}

async fn place(s: &Subject, n: u32) -> Result<Placement, PortError> {
    s.fleet
        .place(&session(n), &two_player_match(&format!("m{n}")), &secret(1))
        .await
}

fn ready_on(port: u16, n: u32) -> Placement {
    Placement::Ready {
        placement: PlacementId(format!("s-{n}")),
        endpoint: Endpoint {
            address: "203.0.113.5".into(),
            port,
        },
    }
}

#[tokio::test]
async fn a_place_claims_a_free_warm_server_and_hands_it_the_session() {
    let run = run_task_started();
    let s = subject(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run]));
    s.fleet.register_server(&server("a", 7000, None)).await.unwrap();
    let placed = place(&s, 1).await.unwrap();
    assert_eq!(placed, ready_on(7000, 1));
    let claimed = s.fleet.server("a").await.unwrap().unwrap().value;
    let assignment = claimed.session.unwrap();
    assert_eq!((assignment.session_id, assignment.secret), (session(1), secret(1)));
    assert_eq!(run.num_calls(), 0, "no task is started while a server is free");
    let _ = &s.store;
}

#[tokio::test]
async fn placing_again_returns_the_placement_and_another_match_or_secret_is_invalid() {
    let s = subject(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run_task_started()]));
    s.fleet.register_server(&server("a", 7000, None)).await.unwrap();
    s.fleet.register_server(&server("b", 7001, None)).await.unwrap();
    let first = place(&s, 1).await.unwrap();
    assert_eq!(place(&s, 1).await.unwrap(), first);
    let other = s.fleet.place(&session(1), &two_player_match("m1"), &secret(2)).await;
    assert!(matches!(other, Err(PortError::Invalid(_))), "{other:?}");
    let second = place(&s, 2).await.unwrap();
    assert_ne!(second, first, "another session gets the other server");
}

#[tokio::test]
async fn concurrent_places_of_one_session_claim_one_server() {
    let s = subject(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run_task_started()]));
    for (id, port) in [("a", 7000), ("b", 7001), ("c", 7002)] {
        s.fleet.register_server(&server(id, port, None)).await.unwrap();
    }
    let m = two_player_match("m1");
    let (secret, id) = (secret(1), session(1));
    let places = (0..5).map(|_| s.fleet.place(&id, &m, &secret));
    let results = futures::future::join_all(places).await;
    let first = results[0].as_ref().unwrap().clone();
    assert!(results.iter().all(|r| r.as_ref().ok() == Some(&first)), "{results:?}");
    let mut taken = 0;
    for id in ["a", "b", "c"] {
        taken += usize::from(s.fleet.server(id).await.unwrap().unwrap().value.session.is_some());
    }
    assert_eq!(taken, 1);
}

#[tokio::test]
async fn with_no_free_server_a_task_is_started_and_its_server_claimed_once_it_registers() {
    let run = run_task_started();
    let running = describe_task("RUNNING");
    let s = subject(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run, &running]));
    let placed = place(&s, 1).await.unwrap();
    assert_eq!(
        placed,
        Placement::Pending {
            placement: PlacementId("s-1".into())
        }
    );
    assert_eq!(run.num_calls(), 1);
    assert_eq!(
        place(&s, 1).await.unwrap(),
        placed,
        "placing again starts no second task"
    );
    assert_eq!(run.num_calls(), 1);
    let id = PlacementId("s-1".into());
    assert_eq!(s.fleet.poll(&id).await.unwrap(), placed, "its task is still starting");
    s.fleet.register_server(&server("new", 7100, Some(TASK))).await.unwrap();
    assert_eq!(s.fleet.poll(&id).await.unwrap(), ready_on(7100, 1));
}

#[tokio::test]
async fn a_task_that_stopped_fails_its_pending_placement() {
    let stopped = describe_task("STOPPED");
    let s = subject(mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&run_task_started(), &stopped]
    ));
    place(&s, 1).await.unwrap();
    let id = PlacementId("s-1".into());
    for _ in 0..2 {
        let polled = s.fleet.poll(&id).await;
        assert!(
            matches!(&polled, Err(PortError::PlacementUnavailable(m)) if m.contains("Essential container")),
            "{polled:?}"
        );
    }
}

#[tokio::test]
async fn a_dead_server_fails_its_placement_and_is_never_claimed_again() {
    let stopped = describe_task("STOPPED");
    let run = run_task_started();
    let s = subject(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run, &stopped]));
    s.fleet.register_server(&server("a", 7000, Some(TASK))).await.unwrap();
    assert_eq!(place(&s, 1).await.unwrap(), ready_on(7000, 1));
    let polled = s.fleet.poll(&PlacementId("s-1".into())).await;
    assert!(matches!(polled, Err(PortError::PlacementUnavailable(_))), "{polled:?}");
    assert!(s.fleet.server("a").await.unwrap().unwrap().value.dead);
    s.fleet.release(&PlacementId("s-1".into())).await.unwrap();
    let next = place(&s, 2).await.unwrap();
    assert!(matches!(next, Placement::Pending { .. }), "{next:?}");
    assert_eq!(
        run.num_calls(),
        1,
        "the dead server was not claimed; a task was started"
    );
}

#[tokio::test]
async fn release_frees_the_server_exactly_once() {
    let s = subject(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run_task_started()]));
    s.fleet.register_server(&server("a", 7000, None)).await.unwrap();
    place(&s, 1).await.unwrap();
    s.fleet.release(&PlacementId("s-1".into())).await.unwrap();
    assert_eq!(s.fleet.server("a").await.unwrap().unwrap().value.session, None);
    let released = s.fleet.poll(&PlacementId("s-1".into())).await;
    assert!(
        matches!(released, Err(PortError::PlacementUnavailable(_))),
        "{released:?}"
    );
    let again = place(&s, 1).await;
    assert!(
        matches!(again, Err(PortError::PlacementUnavailable(_))),
        "a released session stays released: {again:?}"
    );
    assert_eq!(place(&s, 2).await.unwrap(), ready_on(7000, 2));
    s.fleet.release(&PlacementId("s-1".into())).await.unwrap();
    let holder = s.fleet.server("a").await.unwrap().unwrap().value.session;
    assert_eq!(
        holder.map(|a| a.session_id),
        Some(session(2)),
        "a second release freed another's server"
    );
}

#[tokio::test]
async fn an_unknown_placement_is_not_found() {
    let s = subject(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&run_task_started()]));
    let polled = s.fleet.poll(&PlacementId("nope".into())).await;
    assert!(matches!(polled, Err(PortError::NotFound(_))), "{polled:?}");
    assert!(s.fleet.release(&PlacementId("nope".into())).await.is_ok());
}

#[tokio::test]
async fn run_task_failures_and_errors_map_to_the_port() {
    let capacity = mock!(Client::run_task)
        .sequence()
        .http_status(
            200,
            Some(json!({ "tasks": [], "failures": [{ "arn": "arn:aws:ecs:eu-west-1:1:container-instance/x", "reason": "RESOURCE:CPU" }] }).to_string()),
        )
        .build();
    let s = subject(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&capacity]));
    let full = place(&s, 1).await;
    assert!(
        matches!(&full, Err(PortError::PlacementUnavailable(m)) if m.contains("RESOURCE:CPU")),
        "{full:?}"
    );
    let polled = s.fleet.poll(&PlacementId("s-1".into())).await;
    assert!(matches!(polled, Err(PortError::PlacementUnavailable(_))), "{polled:?}");

    for (code, want) in [
        ("ClusterNotFoundException", "Invalid"),
        ("InvalidParameterException", "Invalid"),
        ("AccessDeniedException", "Invalid"),
        ("ClientException", "Invalid"),
        ("PlatformUnknownException", "Invalid"),
        ("BlockedException", "PlacementUnavailable"),
        ("ServerException", "Transient"),
        ("ThrottlingException", "Throttled"),
    ] {
        let rule = mock!(Client::run_task)
            .sequence()
            .http_status(400, Some(error_json(code)))
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&rule], |c| c.retry_config(
            aws_sdk_ecs::config::retry::RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(std::time::Duration::from_millis(1))
        ));
        let got = place(&subject(client), 1).await;
        assert_eq!(
            got.as_ref().err().map(|e| e.error_type().as_str()),
            Some(want),
            "{code}: {got:?}"
        );
    }
}
