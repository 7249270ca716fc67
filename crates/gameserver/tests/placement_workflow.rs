//! The placement workflow onto real game servers: two tickets matched, `session-placement` run by the
//! local Workflows adapter on the real clock, the session placed on the process fleet, and each player
//! let in by the server with the token their ticket shows them, where a forged one is refused.

mod common;

use common::{ReportReceiver, STEP};
use queuematch_core::identity::jwt::DevTokens;
use queuematch_core::identity::player_token::{self, PlayerTokenClaims};
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::{PlayerId, TicketId};
use queuematch_core::ports::Clock;
use queuematch_core::usecases::admission::Admitted;
use queuematch_core::usecases::messages::TicketMessage;
use queuematch_core::usecases::placement::session_id_for;
use queuematch_core::usecases::{pool_of, tickets, Queues, Settings};
use queuematch_core::{RuleSet, TicketStatus};
use queuematch_handlers::Service;
use queuematch_local::workflows::ExecutionStatus;
use queuematch_local::{
    EventBus, LocalWorkflows, MemoryQueue, MemoryStore, QueueConfig, ServiceTasks, SystemClock, WorkflowsConfig,
};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[tokio::test]
async fn a_matched_pair_is_placed_on_a_real_server_that_lets_each_player_in_with_their_token() {
    // GIVEN the local stack on the real clock, with a process fleet of two servers
    let receiver = ReportReceiver::start().await;
    let fleet = Arc::new(common::fleet(&receiver.url, 2, &[]));
    let workflows = Arc::new(
        LocalWorkflows::load(&repo().join("workflows"), WorkflowsConfig::default()).unwrap_or_else(|e| panic!("{e}")),
    );
    let text = std::fs::read_to_string(repo().join("examples/rulesets/ranked-1v1.json")).unwrap();
    let rule_set = RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let service = Arc::new(Service {
        store: MemoryStore::new(SystemClock),
        queue: MemoryQueue::new(SystemClock, QueueConfig::default()),
        workflows: workflows.clone(),
        events: EventBus::new(64),
        clock: SystemClock,
        party_tokens: DevTokens::new(b"placement workflow test"),
        queues: Arc::new(Queues::new([rule_set.clone()])),
        settings: Arc::new(Settings {
            single_region: Some("local".into()),
            ..Settings::default()
        }),
    });
    workflows.connect(Arc::new(ServiceTasks::new(&service, fleet))).unwrap();

    // WHEN two close players are admitted a moment ago and their pool's round runs
    let admission = service.admission();
    let received = service.clock.now().as_millis() - 1_000;
    for (ticket, player, skill) in [("t-1", "p-1", 1500), ("t-2", "p-2", 1505)] {
        let message = TicketMessage {
            ticket_id: ticket.into(),
            player_id: player.into(),
            received_at: queuematch_core::Timestamp(received),
            request: json!({"queue": "ranked-1v1", "players": [{"id": player, "attributes": {"skill": skill}}]}),
        };
        assert!(matches!(admission.admit(&message).await, Ok(Admitted::Searching(_))));
    }
    let rounds = service.rounds();
    let pool = pool_of(&[queuematch_core::Player::new("p-1")], &rule_set).unwrap();
    let report = rounds.run(&pool, "test").await.unwrap();
    assert_eq!(report.matches.len(), 1, "{report:#?}");

    // THEN the placement execution succeeds
    let id = workflows.executions()[0].id.clone();
    let record = tokio::time::timeout(STEP, workflows.finished(&id))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(record.status, ExecutionStatus::Succeeded { .. }),
        "{:#}",
        record.history_json()
    );

    // AND the server lets each player in with the token their ticket shows them
    let mut players = Vec::new();
    for (ticket, player) in [("t-1", "p-1"), ("t-2", "p-2")] {
        let view = tickets::get(
            &service.store,
            &service.clock,
            &PlayerId::from(player),
            &TicketId::from(ticket),
        )
        .await
        .unwrap();
        assert_eq!(view.status, TicketStatus::Completed);
        let connection = view.connection.unwrap();
        let endpoint = queuematch_core::ports::fleet::Endpoint {
            address: connection.address,
            port: connection.port,
        };
        // The same claims signed with any other secret are refused.
        let session = session_id_for(view.matched.as_ref().map(|m| &m.match_id).unwrap());
        let claims = PlayerTokenClaims {
            session_id: session,
            player_id: player.into(),
            exp: service.clock.now().as_millis() / 1_000 + 300,
        };
        let forged = player_token::mint(&SessionSecret::from_random_bytes(&[1; 32]), &claims);
        assert_eq!(
            common::denial(&endpoint, &forged).await,
            "the player token's signature does not match this session"
        );
        let client = common::join(&endpoint, &connection.player_token).await;
        assert_eq!(client.welcome().player_id, PlayerId::from(player));
        // Stay connected while the other player joins.
        players.push(client);
    }
    assert_eq!(players.len(), 2);
}
