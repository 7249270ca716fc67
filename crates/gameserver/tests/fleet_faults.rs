//! Faults on real game-server processes, through the local stack as `queuematch dev` wires it: the
//! dev server's API (where the servers report), `workflows/*.asl.json` on the embedded engine, the
//! process fleet with its warm pool, and the sweeper.
//!
//! The processes and the engine run on the real clock (a server's startup is real time); the
//! service's domain clock is a manual one that starts at the wall clock's time, so that the
//! sweeper's 60 s of silence pass by advancing it rather than by waiting.

use queuematch_core::identity::jwt::DevTokens;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::{MatchId, SessionId};
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Placement, PlacementId};
use queuematch_core::ports::store::items::{self, SessionRecord, TimelineEntry, Versioned};
use queuematch_core::ports::store::{Index, Query};
use queuematch_core::ports::{Clock, ErrorType, Fleet, PortError, Store, TicketQueue, Workflows};
use queuematch_core::usecases::messages::TicketMessage;
use queuematch_core::usecases::placement::session_id_for;
use queuematch_core::usecases::sweeper::{SweepReport, Sweeper};
use queuematch_core::usecases::{pool_of, Queues, Settings};
use queuematch_core::{RuleSet, SessionStatus, Timestamp};
use queuematch_handlers::Service;
use queuematch_local::dev::{self, DevState, LocalService};
use queuematch_local::fleet::{ServerLogs, ServerState};
use queuematch_local::workflows::ExecutionStatus;
use queuematch_local::{
    EventBus, LocalWorkflows, ManualClock, MemoryQueue, MemoryStore, ProcessFleet, ProcessFleetConfig, QueueConfig,
    ServiceTasks, SystemClock, WorkflowsConfig,
};
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long any one step may take before the test fails rather than hangs.
const STEP: Duration = Duration::from_secs(30);

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The local stack on a process fleet of the binary under test.
struct Stack {
    service: Arc<LocalService>,
    workflows: Arc<LocalWorkflows>,
    fleet: Arc<ProcessFleet>,
    clock: ManualClock,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts the stack: the fleet's servers report to the dev server's API; the workflows place
/// sessions through `tasks_fleet(fleet)` (the fleet itself, or a wrapper around it).
async fn stack(warm: usize, max: usize, tasks_fleet: impl FnOnce(Arc<ProcessFleet>) -> Arc<dyn Fleet>) -> Stack {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    let mut config = ProcessFleetConfig::new(env!("CARGO_BIN_EXE_queuematch-gameserver"), url);
    config.warm_servers = warm;
    config.max_servers = max;
    // Set QUEUEMATCH_TEST_SERVER_LOGS to see the servers' JSON logs when a test fails.
    config.logs = if std::env::var_os("QUEUEMATCH_TEST_SERVER_LOGS").is_some() {
        ServerLogs::Inherit
    } else {
        ServerLogs::Discard
    };
    let fleet = Arc::new(ProcessFleet::new(config));

    let clock = ManualClock::new(SystemClock.now());
    let text =
        std::fs::read_to_string(repo().join("examples/rulesets/ranked-1v1.json")).unwrap_or_else(|e| panic!("{e}"));
    let rule_set = RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let workflows = Arc::new(
        LocalWorkflows::load(
            &repo().join("workflows"),
            WorkflowsConfig {
                seed: Some(8),
                ..WorkflowsConfig::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let tokens = DevTokens::new(b"fleet faults test");
    let service: Arc<LocalService> = Arc::new(Service {
        store: Arc::new(MemoryStore::new(clock.clone())) as Arc<dyn Store>,
        queue: Arc::new(MemoryQueue::new(clock.clone(), QueueConfig::default())) as Arc<dyn TicketQueue>,
        workflows: workflows.clone() as Arc<dyn Workflows>,
        events: Arc::new(EventBus::new(256)),
        clock: Arc::new(clock.clone()) as Arc<dyn Clock>,
        party_tokens: tokens.clone(),
        queues: Arc::new(Queues::new([rule_set])),
        settings: Arc::new(Settings {
            single_region: Some("local".into()),
            ..Settings::default()
        }),
    });
    let placing = tasks_fleet(fleet.clone());
    workflows
        .connect(Arc::new(ServiceTasks::new(&service, placing.clone())))
        .unwrap_or_else(|e| panic!("{e}"));
    let state = DevState::new(service.clone(), tokens, placing).unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(dev::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Stack {
        service,
        workflows,
        fleet,
        clock,
        _stop: stop,
    }
}

impl Stack {
    /// Admits two solo tickets of close skill and runs their pool's round: the match, and its
    /// placement execution's id.
    async fn match_pair(&self, a: &str, b: &str) -> (MatchId, queuematch_core::ports::workflows::ExecutionId) {
        let received = Timestamp(self.clock.now().as_millis() - 1_000);
        let before = self.workflows.executions().len();
        for (player, skill) in [(a, 1500), (b, 1505)] {
            let message = TicketMessage {
                ticket_id: format!("t-{player}-{before}").as_str().into(),
                player_id: player.into(),
                received_at: received,
                request: json!({"queue": "ranked-1v1", "players": [{"id": player, "attributes": {"skill": skill}}]}),
            };
            self.service
                .admission()
                .admit(&message)
                .await
                .unwrap_or_else(|e| panic!("admit {player}: {e}"));
        }
        let rule_set = self
            .service
            .queues
            .get("ranked-1v1")
            .unwrap_or_else(|| panic!("no ranked-1v1"));
        let pool = pool_of(&[queuematch_core::Player::new(a)], rule_set).unwrap_or_else(|e| panic!("{e}"));
        let report = self
            .service
            .rounds()
            .run(&pool, "test")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.matches.len(), 1, "{report:#?}");
        let executions = self.workflows.executions();
        assert_eq!(executions.len(), before + 1);
        (report.matches[0].id.clone(), executions[before].id.clone())
    }

    /// Waits for the placement execution to end, which must succeed.
    async fn placed(&self, execution: &queuematch_core::ports::workflows::ExecutionId) {
        let record = tokio::time::timeout(STEP, self.workflows.finished(execution))
            .await
            .unwrap_or_else(|_| panic!("{execution} did not finish within {STEP:?}"))
            .unwrap_or_else(|| panic!("no execution {execution}"));
        assert!(
            matches!(record.status, ExecutionStatus::Succeeded { .. }),
            "{:#}",
            record.history_json()
        );
    }

    async fn session(&self, matched: &MatchId) -> SessionRecord {
        let stored = self
            .service
            .store
            .get(&items::session_key(&session_id_for(matched)))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no session for {matched}"));
        items::read::<SessionRecord>(&stored)
            .unwrap_or_else(|e| panic!("{e}"))
            .value
    }

    async fn timeline(&self, session: &SessionId) -> Vec<TimelineEntry> {
        let query = Query::new(Index::Table, format!("SESSION#{session}"), 100).with_prefix(items::TIMELINE_PREFIX);
        let page = self.service.store.query(query).await.unwrap_or_else(|e| panic!("{e}"));
        page.items
            .iter()
            .map(|stored| {
                items::read::<TimelineEntry>(stored)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .value
            })
            .collect()
    }

    /// Waits until the session's server has reported (ready or a heartbeat) to the dev server.
    /// When the session's server last reported (ready or heartbeat), as the service stamped it.
    async fn last_report(&self, session: &SessionId) -> Timestamp {
        let stored = self
            .service
            .store
            .get(&queuematch_core::usecases::reports::reports_key(session))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{session} has no reports"));
        let reports: Versioned<queuematch_core::usecases::reports::SessionReports> =
            items::read(&stored).unwrap_or_else(|e| panic!("{e}"));
        [reports.value.ready_at, reports.value.last_heartbeat_at]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or_else(|| panic!("{session} never reported"))
    }

    async fn reported(&self, session: &SessionId) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let stored = self
                .service
                .store
                .get(&queuematch_core::usecases::reports::reports_key(session))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if let Some(stored) = stored {
                let reports: Versioned<queuematch_core::usecases::reports::SessionReports> =
                    items::read(&stored).unwrap_or_else(|e| panic!("{e}"));
                if reports.value.ready_at.is_some() {
                    return;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "{session} never reported ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One pass of the sweeper, as its scheduled function runs it.
    async fn sweep(&self, run: &str) -> SweepReport {
        let sweeper = Sweeper {
            store: &self.service.store,
            queue: &self.service.queue,
            workflows: &self.service.workflows,
            fleet: &self.fleet,
            events: &self.service.events,
            clock: &self.service.clock,
            queues: &self.service.queues,
            settings: &self.service.settings,
        };
        sweeper.sweep(run).await.unwrap_or_else(|e| panic!("sweep: {e}"))
    }
}

async fn kill(pid: u32) {
    let status = tokio::process::Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .await
        .unwrap_or_else(|e| panic!("kill {pid}: {e}"));
    assert!(status.success(), "kill {pid}: {status}");
}

/// Polls `placement` until the fleet reports it failed.
async fn until_failed(fleet: &ProcessFleet, placement: &PlacementId) -> PortError {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match fleet.poll(placement).await {
            Err(e) => return e,
            Ok(p) => assert!(tokio::time::Instant::now() < deadline, "{p:?} never failed"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_game_has_its_session_abandoned_by_the_sweeper_and_is_never_reused() {
    // GIVEN the stack with two warm servers, and an ACTIVE session on one of them that has
    // reported ready to the service
    let stack = stack(2, 4, |fleet| fleet).await;
    let (match_id, execution) = stack.match_pair("p-1", "p-2").await;
    stack.placed(&execution).await;
    let active = stack.session(&match_id).await;
    assert_eq!(active.status, SessionStatus::Active);
    stack.reported(&active.session_id).await;
    let placement = active.placement.clone().unwrap_or_else(|| panic!("no placement"));
    let pid = stack
        .fleet
        .pid(&placement)
        .unwrap_or_else(|| panic!("{placement:?} has no server"));

    // WHEN its server is killed, without a word to anyone
    kill(pid).await;

    // THEN the fleet sees it die: the placement fails and the server is out of the fleet for good
    let failed = until_failed(&stack.fleet, &placement).await;
    assert_eq!(failed.error_type(), ErrorType::PlacementUnavailable, "{failed}");
    assert!(failed.to_string().contains("exited"), "{failed}");
    assert!(stack.fleet.servers().iter().all(|s| s.pid != Some(pid)));

    // AND the sweeper leaves the session alone until 60 s have passed since its server's last
    // report...
    let silent_from = stack.last_report(&active.session_id).await;
    stack.clock.set(silent_from.plus(Duration::from_secs(59)));
    assert_eq!(stack.sweep("early").await.abandoned, []);
    // ...then ABANDONS it, the step on its timeline, and frees its players
    stack.clock.set(silent_from.plus(Duration::from_secs(61)));
    let summary = stack.sweep("late").await;
    assert_eq!(summary.abandoned, std::slice::from_ref(&active.session_id));
    let abandoned = stack.session(&match_id).await;
    assert_eq!(abandoned.status, SessionStatus::Abandoned);
    let last = stack
        .timeline(&active.session_id)
        .await
        .pop()
        .unwrap_or_else(|| panic!("no timeline"));
    assert_eq!(
        (last.execution_id.as_str(), last.state.as_str(), last.status),
        ("sweeper:late", "Sweep", SessionStatus::Abandoned)
    );

    // AND the players' next match is placed on another process
    let (next_match, next_execution) = stack.match_pair("p-1", "p-2").await;
    stack.placed(&next_execution).await;
    let next = stack.session(&next_match).await;
    let next_placement = next.placement.clone().unwrap_or_else(|| panic!("no placement"));
    assert_ne!(next_placement, placement);
    let next_pid = stack.fleet.pid(&next_placement);
    assert!(
        next_pid.is_some() && next_pid != Some(pid),
        "{next_pid:?} vs the killed {pid}"
    );
}

/// The process fleet, with the end of another game arranged just before the third placement: the
/// real fleet answers the first two itself (it is full), and has room for the third.
#[derive(Debug)]
struct GameEndsBeforeThirdPlace {
    fleet: Arc<ProcessFleet>,
    /// The placement holding the fleet's only server until the third call.
    blocker: Mutex<Option<PlacementId>>,
    places: AtomicU32,
}

#[async_trait::async_trait]
impl Fleet for GameEndsBeforeThirdPlace {
    async fn place(
        &self,
        session: &SessionId,
        matched: &Match,
        secret: &SessionSecret,
    ) -> Result<Placement, PortError> {
        if self.places.fetch_add(1, Ordering::SeqCst) == 2 {
            let blocker = self.blocker.lock().unwrap_or_else(|e| panic!("{e}")).take();
            if let Some(blocker) = blocker {
                self.fleet.release(&blocker).await?;
            }
        }
        self.fleet.place(session, matched, secret).await
    }

    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        self.fleet.poll(placement).await
    }

    async fn release(&self, placement: &PlacementId) -> Result<(), PortError> {
        self.fleet.release(placement).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_refused_twice_by_a_full_fleet_then_placed_shows_each_retry_on_the_timeline() {
    // GIVEN a fleet of one server, hosting another game
    let wrapper = Arc::new(Mutex::new(None::<Arc<GameEndsBeforeThirdPlace>>));
    let stack = stack(1, 1, |fleet| {
        let wrapped = Arc::new(GameEndsBeforeThirdPlace {
            fleet,
            blocker: Mutex::new(None),
            places: AtomicU32::new(0),
        });
        *wrapper.lock().unwrap_or_else(|e| panic!("{e}")) = Some(wrapped.clone());
        wrapped
    })
    .await;
    let other = queuematch_contract::fleet::two_player_match("other");
    let blocking = stack
        .fleet
        .place(&"s-other".into(), &other, &queuematch_contract::fleet::secret(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (Placement::Pending { placement: blocker } | Placement::Ready { placement: blocker, .. }) = blocking;
    let blocking_pid = loop {
        if let Some(pid) = stack.fleet.pid(&blocker) {
            break pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wrapped = wrapper
        .lock()
        .unwrap_or_else(|e| panic!("{e}"))
        .clone()
        .unwrap_or_else(|| panic!("no fleet wrapper"));
    *wrapped.blocker.lock().unwrap_or_else(|e| panic!("{e}")) = Some(blocker.clone());

    // WHEN a match is formed: the first two Place attempts find the fleet full, and the other game
    // ends before the third
    let (match_id, execution) = stack.match_pair("p-1", "p-2").await;
    stack.placed(&execution).await;

    // THEN the session is ACTIVE on a fresh process, placed at the third attempt
    let active = stack.session(&match_id).await;
    assert_eq!(active.status, SessionStatus::Active);
    assert_eq!(wrapped.places.load(Ordering::SeqCst), 3);
    let placement = active.placement.clone().unwrap_or_else(|| panic!("no placement"));
    let pid = stack.fleet.pid(&placement);
    assert!(pid.is_some() && pid != Some(blocking_pid), "{pid:?}");
    assert_eq!(stack.fleet.servers().len(), 1, "{:#?}", stack.fleet.servers());

    // AND the timeline shows both refusals on the Place state of this execution, then the placement
    let entries = stack.timeline(&active.session_id).await;
    let place_steps: Vec<&str> = entries
        .iter()
        .filter(|e| e.state == "Place")
        .map(|e| e.detail.as_deref().unwrap_or_default())
        .collect();
    let refused = "PlacementUnavailable: placement unavailable: all 1 local game servers are in use";
    assert_eq!(
        place_steps,
        [
            format!("attempt 1 failed: {refused}"),
            format!("attempt 2 failed: {refused}"),
            format!("placement {} pending", placement.0),
        ],
        "{entries:#?}"
    );
    assert!(entries.iter().all(|e| e.execution_id == execution.0), "{entries:#?}");
    let states: Vec<&str> = entries.iter().map(|e| e.state.as_str()).collect();
    assert_eq!(states.first(), Some(&"CreateSession"));
    assert_eq!(states.last(), Some(&"Activate"));
    assert!(states.contains(&"Poll"), "{states:?}");
    assert_eq!(
        stack.fleet.servers()[0].state,
        ServerState::Hosting,
        "the new session's server hosts it"
    );
}
