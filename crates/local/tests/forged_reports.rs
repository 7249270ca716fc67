//! Forged and replayed game-server reports at the dev server's `POST /v1/sessions/{id}/events`: each
//! is refused with a precise 4xx problem and changes nothing, for either of two ACTIVE sessions.
//!
//! A report is signed over its timestamp, nonce and body with its session's secret (DESIGN.md
//! "Identity"), within 60 s of the service's clock, and a nonce is taken once. The service's clock
//! here is a manual one, so a replay "a minute later" is one `advance` away.

use queuematch_core::identity::jwt::DevTokens;
use queuematch_core::identity::report::sign;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::ports::fleet::PlacementId;
use queuematch_core::ports::store::items::{self, SessionRecord};
use queuematch_core::ports::store::{Condition, Index, Query};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Clock, PortError, Store, TicketQueue, Workflows};
use queuematch_core::status::SessionStatus;
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::{Queues, Settings};
use queuematch_core::RuleSet;
use queuematch_handlers::Service;
use queuematch_local::dev::{self, DevState};
use queuematch_local::{
    EventBus, ManualClock, MemoryQueue, MemoryStore, ProcessFleet, ProcessFleetConfig, QueueConfig,
};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

const A: &str = "s-a";
const B: &str = "s-b";

/// Records the completions reports start.
#[derive(Debug, Default)]
struct Started(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl Workflows for Started {
    async fn start(&self, definition: &str, name: &str, _input: Value) -> Result<ExecutionId, PortError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(name.to_owned());
        Ok(ExecutionId(format!("local:{definition}:{name}")))
    }
}

struct Server {
    url: String,
    client: reqwest::Client,
    clock: ManualClock,
    store: Arc<MemoryStore>,
    started: Arc<Started>,
    secrets: [(SessionId, SessionSecret); 2],
    _stop: oneshot::Sender<()>,
}

/// One signed report, as a game server sends it.
#[derive(Debug, Clone)]
struct Signed {
    timestamp: String,
    nonce: String,
    signature: String,
    body: String,
}

fn rule_set() -> RuleSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rulesets/ranked-1v1.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{e}"))
}

/// The dev server with two ACTIVE sessions, A of p-1 and p-2 and B of p-3 and p-4, each with its
/// own secret.
async fn start() -> Server {
    let clock = ManualClock::default();
    let store = Arc::new(MemoryStore::new(clock.clone()));
    let started = Arc::new(Started::default());
    let service = Arc::new(Service {
        store: store.clone() as Arc<dyn Store>,
        queue: Arc::new(MemoryQueue::new(clock.clone(), QueueConfig::default())) as Arc<dyn TicketQueue>,
        workflows: started.clone() as Arc<dyn Workflows>,
        events: Arc::new(EventBus::new(64)),
        clock: Arc::new(clock.clone()) as Arc<dyn Clock>,
        party_tokens: DevTokens::new(b"forged reports test secret"),
        queues: Arc::new(Queues::new([rule_set()])),
        settings: Arc::new(Settings::default()),
    });
    let secrets = [
        (SessionId::from(A), SessionSecret::from_random_bytes(&[1; 32])),
        (SessionId::from(B), SessionSecret::from_random_bytes(&[2; 32])),
    ];
    for ((session, secret), players) in secrets.iter().zip([["p-1", "p-2"], ["p-3", "p-4"]]) {
        let record = SessionRecord {
            session_id: session.clone(),
            match_id: format!("m-{session}").as_str().into(),
            queue: "ranked-1v1".into(),
            status: SessionStatus::Active,
            player_ids: players.iter().map(|p| (*p).into()).collect(),
            created_at: clock.now(),
            secret: secret.clone(),
            placement_deadline: clock.now().plus(Duration::from_secs(60)),
            placement: Some(PlacementId(format!("local-{session}"))),
            endpoint: None,
            reason: None,
            timeline_len: 0,
        };
        let item = items::session_item(&record).unwrap_or_else(|e| panic!("{e}"));
        store
            .put(item, Condition::Absent)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    // No report here ends a session without a result, so the fleet is never asked for anything.
    let fleet = Arc::new(ProcessFleet::new(ProcessFleetConfig::new(
        "queuematch-gameserver",
        url.clone(),
    )));
    let state =
        DevState::new(service, DevTokens::new(b"forged reports test secret"), fleet).unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(dev::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Server {
        url,
        client: reqwest::Client::new(),
        clock,
        store,
        started,
        secrets,
        _stop: stop,
    }
}

impl Server {
    fn secret(&self, session: &str) -> &SessionSecret {
        &self
            .secrets
            .iter()
            .find(|(s, _)| s.as_str() == session)
            .unwrap_or_else(|| panic!("no session {session}"))
            .1
    }

    /// `body` signed at `at` with `nonce` by the server of `session`.
    fn signed(&self, session: &str, at: Timestamp, nonce: &str, body: &str) -> Signed {
        Signed {
            timestamp: at.as_millis().to_string(),
            nonce: nonce.to_owned(),
            signature: sign(self.secret(session), at, nonce, body.as_bytes()),
            body: body.to_owned(),
        }
    }

    /// Posts `report` to `session`'s events: the status and the body.
    async fn post(&self, session: &str, report: &Signed) -> (u16, Option<String>, Value) {
        let response = self
            .client
            .post(format!("{}/v1/sessions/{session}/events", self.url))
            .header("x-queuematch-timestamp", &report.timestamp)
            .header("x-queuematch-nonce", &report.nonce)
            .header("x-queuematch-signature", &report.signature)
            .body(report.body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.json().await.unwrap_or(Value::Null);
        (status, content_type, body)
    }

    /// Every item of both sessions (session, timeline, reports, nonces) with its version, and the
    /// completions started.
    async fn snapshot(&self) -> (Vec<(String, String, u64, Value)>, Vec<String>) {
        let mut all = Vec::new();
        for session in [A, B] {
            let page = self
                .store
                .query(Query::new(Index::Table, format!("SESSION#{session}"), 100))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            all.extend(page.items.into_iter().map(|s| {
                (
                    s.item.key.pk.clone(),
                    s.item.key.sk.clone(),
                    s.version,
                    s.item.body.clone(),
                )
            }));
        }
        let started = self
            .started
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        (all, started)
    }

    /// Posts `report` to `session`, which must be refused with `status` as problem+json whose
    /// detail says `says`, and change nothing.
    async fn refused(&self, case: &str, session: &str, report: &Signed, status: u16, says: &str) {
        let before = self.snapshot().await;
        let (got, content_type, body) = self.post(session, report).await;
        assert_eq!(got, status, "{case}: {body}");
        assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{case}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{case}: {detail:?} should say {says:?}");
        assert_eq!(self.snapshot().await, before, "{case} changed something");
    }
}

#[tokio::test]
async fn forged_and_replayed_reports_are_refused_precisely_and_change_nothing() {
    let s = start().await;
    let now = s.clock.now();
    let heartbeat = r#"{"type":"heartbeat"}"#;

    // A signature made with another key, or over another body.
    let mut forged = s.signed(A, now, "forged-0001", heartbeat);
    forged.signature = sign(
        &SessionSecret::from_random_bytes(&[9; 32]),
        now,
        "forged-0001",
        heartbeat.as_bytes(),
    );
    s.refused("a signature of another key", A, &forged, 401, "does not match")
        .await;
    let mut tampered = s.signed(A, now, "tamper-0001", heartbeat);
    tampered.body = r#"{"type":"end","reason":"forged"}"#.into();
    s.refused("a body changed after signing", A, &tampered, 401, "does not match")
        .await;
    let mut retimed = s.signed(A, now, "retime-0001", heartbeat);
    retimed.timestamp = now.plus(Duration::from_secs(1)).as_millis().to_string();
    s.refused("a timestamp changed after signing", A, &retimed, 401, "does not match")
        .await;

    // A report signed properly, but outside the 60 s window either side of the service's clock.
    let stale = s.signed(A, Timestamp(now.as_millis() - 61_000), "stale-0001", heartbeat);
    s.refused("a stale timestamp", A, &stale, 401, "more than 60 s").await;
    let early = s.signed(A, now.plus(Duration::from_secs(61)), "early-0001", heartbeat);
    s.refused("a timestamp from the future", A, &early, 401, "more than 60 s")
        .await;

    // A's server reporting, properly signed, to session B: B's secret does not verify it.
    let elsewhere = s.signed(
        A,
        now,
        "cross-0001",
        r#"{"type":"result","result":{"scores":{"p-3":1,"p-4":0}}}"#,
    );
    s.refused("a report for another session", B, &elsewhere, 401, "does not match")
        .await;

    // A heartbeat accepted once...
    let accepted = s.signed(A, now, "beat-00001", heartbeat);
    let (status, _, body) = s.post(A, &accepted).await;
    assert_eq!(status, 202, "{body}");
    // ...is refused when replayed as it was, when its nonce carries another report, and at the other
    // session (whose key does not verify it)
    s.refused("a replay", A, &accepted, 409, "nonce beat-00001 was already used")
        .await;
    let reused = s.signed(A, now, "beat-00001", r#"{"type":"ready"}"#);
    s.refused("a reused nonce", A, &reused, 409, "nonce beat-00001 was already used")
        .await;
    s.refused("a replay at the other session", B, &accepted, 401, "does not match")
        .await;
    // ...and a minute later, once its timestamp is stale, by the window.
    s.clock.advance(Duration::from_secs(61));
    s.refused("a late replay", A, &accepted, 401, "more than 60 s").await;

    // A result is taken once: another one for the same game, freshly signed, is a conflict.
    let now = s.clock.now();
    let result = s.signed(
        A,
        now,
        "result-0001",
        r#"{"type":"result","result":{"scores":{"p-1":3,"p-2":1}}}"#,
    );
    let (status, _, body) = s.post(A, &result).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(s.snapshot().await.1, ["complete-s-a"]);
    let rewritten = s.signed(
        A,
        now,
        "result-0002",
        r#"{"type":"result","result":{"scores":{"p-1":0,"p-2":9}}}"#,
    );
    s.refused(
        "a second, different result",
        A,
        &rewritten,
        409,
        "has its result already",
    )
    .await;

    // AND session B, which was never reported to for real, holds nothing but itself
    let (items, _) = s.snapshot().await;
    let of_b: Vec<&str> = items
        .iter()
        .filter(|i| i.0 == format!("SESSION#{B}"))
        .map(|i| i.1.as_str())
        .collect();
    assert_eq!(of_b, ["SESSION"]);
}
