//! Game-server reports on the embedded adapters: signatures, replays, and the end of a session.

use queuematch_core::identity::report::sign;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Placement, PlacementId};
use queuematch_core::ports::store::items::{self, GuardHolder, SessionRecord, Versioned};
use queuematch_core::ports::store::{Condition, Index, Query};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Fleet, PortError, Store, Workflows};
use queuematch_core::status::SessionStatus;
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::reports::{ReportError, Reports, SignedReport};
use queuematch_core::usecases::{Queues, Settings};
use queuematch_local::{EventBus, ManualClock, MemoryQueue, MemoryStore, QueueConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NOW: Timestamp = Timestamp(1_800_000_000_000);

/// Counts releases; the placements themselves are made by the placement workflow, not here.
#[derive(Debug, Default)]
struct Releases(Mutex<Vec<PlacementId>>);

#[async_trait::async_trait]
impl Fleet for Releases {
    async fn place(&self, _: &SessionId, _: &Match, _: &SessionSecret) -> Result<Placement, PortError> {
        Err(PortError::invalid("this fleet only releases"))
    }
    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        Err(PortError::NotFound(placement.0.clone()))
    }
    async fn release(&self, placement: &PlacementId) -> Result<(), PortError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(placement.clone());
        Ok(())
    }
}

/// Records the workflows started; a result starts `session-completion`.
#[derive(Debug, Default)]
struct Starts(Mutex<Vec<(String, String, serde_json::Value)>>);

#[async_trait::async_trait]
impl Workflows for Starts {
    async fn start(&self, definition: &str, name: &str, input: serde_json::Value) -> Result<ExecutionId, PortError> {
        let mut starts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !starts.iter().any(|(d, n, _)| d == definition && n == name) {
            starts.push((definition.to_owned(), name.to_owned(), input));
        }
        Ok(ExecutionId(format!("{definition}:{name}")))
    }
}

struct World {
    clock: Arc<ManualClock>,
    store: MemoryStore,
    events: EventBus,
    fleet: Releases,
    workflows: Starts,
    queue: MemoryQueue,
    queues: Queues,
    settings: Settings,
    secret: SessionSecret,
    session: SessionId,
}

async fn world() -> World {
    world_in(SessionStatus::Active).await
}

/// A session of p-1 and p-2 in `status`.
async fn world_in(status: SessionStatus) -> World {
    let clock = Arc::new(ManualClock::new(NOW));
    let store = MemoryStore::new(clock.clone());
    let secret = SessionSecret::from_random_bytes(&[5; 32]);
    let session: SessionId = "s-m-1".into();
    let record = SessionRecord {
        session_id: session.clone(),
        match_id: "m-1".into(),
        queue: "ranked-1v1".into(),
        status,
        player_ids: vec!["p-1".into(), "p-2".into()],
        created_at: NOW,
        secret: secret.clone(),
        placement_deadline: NOW.plus(Duration::from_secs(60)),
        placement: Some(PlacementId("local-1".into())),
        endpoint: None,
        reason: None,
        timeline_len: 3,
    };
    let item = items::session_item(&record).unwrap_or_else(|e| panic!("{e}"));
    store
        .put(item, Condition::Absent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for player in &record.player_ids {
        let guard = items::hold_guard(player, &GuardHolder::Session(session.clone())).unwrap_or_else(|e| panic!("{e}"));
        let queuematch_core::ports::store::Write::Put { item, condition } = guard else {
            panic!("a put")
        };
        store.put(item, condition).await.unwrap_or_else(|e| panic!("{e}"));
    }
    World {
        clock: clock.clone(),
        store,
        events: EventBus::default(),
        fleet: Releases::default(),
        workflows: Starts::default(),
        queue: MemoryQueue::new(clock.clone(), QueueConfig::default()),
        queues: Queues::default(),
        settings: Settings::default(),
        secret,
        session,
    }
}

impl World {
    async fn report(&self, nonce: &str, body: &str) -> Result<SessionStatus, ReportError> {
        let signature = sign(&self.secret, NOW, nonce, body.as_bytes());
        self.report_signed(nonce, body, &signature, NOW).await
    }

    async fn report_signed(
        &self,
        nonce: &str,
        body: &str,
        signature: &str,
        at: Timestamp,
    ) -> Result<SessionStatus, ReportError> {
        let reports = Reports {
            store: &self.store,
            queue: &self.queue,
            queues: &self.queues,
            fleet: &self.fleet,
            workflows: &self.workflows,
            events: &self.events,
            clock: &self.clock,
            settings: &self.settings,
        };
        let signed = SignedReport {
            timestamp: at,
            nonce,
            signature,
            body: body.as_bytes(),
        };
        reports.record(&self.session, signed).await.map(|r| r.status)
    }

    async fn session(&self) -> SessionRecord {
        let stored = self
            .store
            .get(&items::session_key(&self.session))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let stored = stored.unwrap_or_else(|| panic!("no session"));
        let read: Versioned<SessionRecord> = items::read(&stored).unwrap_or_else(|e| panic!("{e}"));
        read.value
    }
}

#[tokio::test]
async fn signed_reports_are_recorded_once() {
    let world = world().await;
    assert_eq!(
        world.report("nonce-0001", r#"{"type":"ready"}"#).await.ok(),
        Some(SessionStatus::Active)
    );
    assert_eq!(
        world.report("nonce-0002", r#"{"type":"heartbeat"}"#).await.ok(),
        Some(SessionStatus::Active)
    );
    let replay = world.report("nonce-0002", r#"{"type":"heartbeat"}"#).await;
    assert!(
        matches!(replay, Err(ReportError::Replayed(ref n)) if n == "nonce-0002"),
        "{replay:?}"
    );
    let result = world
        .report(
            "nonce-0003",
            r#"{"type":"result","result":{"scores":{"p-1":3,"p-2":1}}}"#,
        )
        .await;
    assert_eq!(result.ok(), Some(SessionStatus::Active));
    // The result starts the session's completion, once, named after the session.
    let starts = world
        .workflows
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert_eq!(
        starts,
        [(
            "session-completion".to_owned(),
            "complete-s-m-1".to_owned(),
            serde_json::json!({"sessionId": "s-m-1"})
        )]
    );
}

#[tokio::test]
async fn forged_stale_and_stranger_reports_are_refused() {
    let world = world().await;
    let forged = world
        .report_signed("nonce-0001", r#"{"type":"end"}"#, "Zm9yZ2Vk", NOW)
        .await;
    assert!(matches!(forged, Err(ReportError::Unauthorized(_))), "{forged:?}");
    let stale_at = Timestamp(NOW.as_millis() - 61_000);
    let stale_signature = sign(&world.secret, stale_at, "nonce-0002", br#"{"type":"end"}"#);
    let stale = world
        .report_signed("nonce-0002", r#"{"type":"end"}"#, &stale_signature, stale_at)
        .await;
    assert!(matches!(stale, Err(ReportError::Unauthorized(_))), "{stale:?}");
    let stranger = world
        .report("nonce-0003", r#"{"type":"result","result":{"scores":{"p-9":1}}}"#)
        .await;
    assert!(
        matches!(stranger, Err(ReportError::Invalid(ref m)) if m.pointer == "/result/scores/p-9"),
        "{stranger:?}"
    );
    let garbage = world.report("nonce-0004", "not json").await;
    assert!(matches!(garbage, Err(ReportError::Invalid(_))), "{garbage:?}");
    assert_eq!(world.session().await.status, SessionStatus::Active, "nothing changed");
    let unknown = Reports {
        store: &world.store,
        queue: &world.queue,
        queues: &world.queues,
        fleet: &world.fleet,
        workflows: &world.workflows,
        events: &world.events,
        clock: &world.clock,
        settings: &world.settings,
    }
    .record(
        &"s-404".into(),
        SignedReport {
            timestamp: NOW,
            nonce: "nonce-0005",
            signature: "x",
            body: b"{}",
        },
    )
    .await;
    assert!(matches!(unknown, Err(ReportError::NotFound(_))), "{unknown:?}");
}

#[tokio::test]
async fn a_session_still_placing_takes_no_result_nor_end_and_keeps_their_nonces_unused() {
    let world = world_in(SessionStatus::Placing).await;
    let result = r#"{"type":"result","result":{"scores":{"p-1":3,"p-2":1}}}"#;
    let refused = world.report("nonce-0001", result).await;
    assert!(
        matches!(refused, Err(ReportError::Conflict(ref m)) if m.contains("a result is taken from a running game")),
        "{refused:?}"
    );
    let starts = world
        .workflows
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert!(starts.is_empty(), "nothing was rated: {starts:?}");
    // A refused report may be sent again with its nonce: the same answer, not "already used".
    for _ in 0..2 {
        let end = world.report("nonce-0002", r#"{"type":"end"}"#).await;
        assert!(
            matches!(end, Err(ReportError::Conflict(ref m)) if m.contains("only a running game ends")),
            "{end:?}"
        );
    }
    assert_eq!(world.session().await.status, SessionStatus::Placing, "nothing changed");
    // Ready is what a server placing a session says.
    assert_eq!(
        world.report("nonce-0003", r#"{"type":"ready"}"#).await.ok(),
        Some(SessionStatus::Placing)
    );
}

#[tokio::test]
async fn a_player_scored_twice_is_refused() {
    let world = world().await;
    let twice = world
        .report(
            "nonce-0001",
            r#"{"type":"result","result":{"scores":{"p-1":100,"p-2":2,"p-1":0}}}"#,
        )
        .await;
    assert!(
        matches!(twice, Err(ReportError::Invalid(ref e)) if e.message.contains("the key `p-1` is given twice")),
        "{twice:?}"
    );
}

#[tokio::test]
async fn the_end_ends_the_session_frees_its_players_and_releases_its_server_once() {
    let world = world().await;
    assert_eq!(
        world
            .report("nonce-0001", r#"{"type":"end","reason":"game over"}"#)
            .await
            .ok(),
        Some(SessionStatus::Ended)
    );
    let session = world.session().await;
    assert_eq!((session.status, session.timeline_len), (SessionStatus::Ended, 4));
    for player in ["p-1", "p-2"] {
        let guard = world
            .store
            .get(&items::player_guard_key(&player.into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(guard.is_none(), "{player} is free to queue again");
    }
    let timeline = world
        .store
        .query(Query::new(Index::Table, format!("SESSION#{}", world.session), 100).with_prefix(items::TIMELINE_PREFIX))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let last: Versioned<items::TimelineEntry> = items::read(&timeline.items[0]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (last.value.status, last.value.state.as_str()),
        (SessionStatus::Ended, "End")
    );
    assert_eq!(last.value.detail.as_deref(), Some("game over"));

    // A second end (a retried report with a new nonce) changes nothing and releases nothing more.
    assert_eq!(
        world.report("nonce-0002", r#"{"type":"end"}"#).await.ok(),
        Some(SessionStatus::Ended)
    );
    assert_eq!(
        world
            .fleet
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len(),
        1
    );
    let late = world.report("nonce-0003", r#"{"type":"heartbeat"}"#).await;
    assert!(
        matches!(late, Err(ReportError::Conflict(_))),
        "an ended session takes no heartbeat: {late:?}"
    );
}
