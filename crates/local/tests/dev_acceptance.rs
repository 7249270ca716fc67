//! `POST /v1/tickets/{id}/acceptance` on the dev server over HTTP: every bad request gets a precise
//! problem+json, and none changes a ticket; a good one records the caller's answer only.

use queuematch_core::identity::jwt::{Audience, DevTokens, Role};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Clock, PortError, Store, TicketQueue, Workflows};
use queuematch_core::usecases::messages::TicketMessage;
use queuematch_core::usecases::{Queues, Settings};
use queuematch_core::{RuleSet, Timestamp};
use queuematch_handlers::Service;
use queuematch_local::dev::{self, DevState, LocalService};
use queuematch_local::{
    EventBus, MemoryQueue, MemoryStore, ProcessFleet, ProcessFleetConfig, QueueConfig, SystemClock,
};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Accepts every start: these tests are about the route, not the placement behind it.
#[derive(Debug, Default)]
struct AcceptingWorkflows;

#[async_trait::async_trait]
impl Workflows for AcceptingWorkflows {
    async fn start(&self, definition: &str, name: &str, _input: Value) -> Result<ExecutionId, PortError> {
        Ok(ExecutionId(format!("local:{definition}:{name}")))
    }
}

/// `ranked-1v1` with acceptance required, and `coop-4` as it is.
fn queues() -> Queues {
    let read = |name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/rulesets/{name}.json"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let mut ranked: Value = serde_json::from_str(&read("ranked-1v1")).unwrap_or_else(|e| panic!("{e}"));
    ranked["queue"]["acceptance"] = json!({"required": true, "timeoutSeconds": 60});
    Queues::new([
        RuleSet::from_json_str(&ranked.to_string()).unwrap_or_else(|e| panic!("{e}")),
        RuleSet::from_json_str(&read("coop-4")).unwrap_or_else(|e| panic!("{e}")),
    ])
}

struct Running {
    url: String,
    tokens: DevTokens,
    service: Arc<LocalService>,
    client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

fn now() -> Timestamp {
    SystemClock.now()
}

fn message(ticket: &str, player: &str, queue: &str) -> TicketMessage {
    TicketMessage {
        ticket_id: ticket.into(),
        player_id: player.into(),
        received_at: now(),
        request: json!({"queue": queue, "players": [{"id": player, "attributes": {"skill": 1500}}]}),
    }
}

/// The dev server with t-1 (p-1) and t-2 (p-2) matched, REQUIRES_ACCEPTANCE, and t-3 (p-3)
/// SEARCHING alone in coop-4.
async fn start() -> Running {
    let tokens = DevTokens::new(b"dev acceptance test secret");
    let service: Arc<LocalService> = Arc::new(Service {
        store: Arc::new(MemoryStore::new(SystemClock)) as Arc<dyn Store>,
        queue: Arc::new(MemoryQueue::new(SystemClock, QueueConfig::default())) as Arc<dyn TicketQueue>,
        workflows: Arc::new(AcceptingWorkflows) as Arc<dyn Workflows>,
        events: Arc::new(EventBus::new(64)),
        clock: Arc::new(SystemClock) as Arc<dyn Clock>,
        party_tokens: tokens.clone(),
        queues: Arc::new(queues()),
        settings: Arc::new(Settings {
            single_region: Some("local".into()),
            ..Settings::default()
        }),
    });
    for (ticket, player, queue) in [
        ("t-1", "p-1", "ranked-1v1"),
        ("t-2", "p-2", "ranked-1v1"),
        ("t-3", "p-3", "coop-4"),
    ] {
        service
            .admission()
            .admit(&message(ticket, player, queue))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let pool = queuematch_core::ports::store::items::PoolRef::new("ranked-1v1", "all");
    let report = service
        .rounds()
        .run(&pool, "test")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.matches.len(), 1, "{report:?}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    // Nothing here places a session: the fleet is never asked for a server.
    let fleet = Arc::new(ProcessFleet::new(ProcessFleetConfig::new(
        "queuematch-gameserver",
        url.clone(),
    )));
    let state = DevState::new(service.clone(), tokens.clone(), fleet).unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(dev::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Running {
        url,
        tokens,
        service,
        client: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Running {
    fn token(&self, player: &str, audience: Audience, ttl: Duration) -> String {
        self.tokens
            .mint(player, audience, Role::Player, now(), ttl)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn post(&self, ticket: &str, token: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, String, Value) {
        let mut request = self
            .client
            .post(format!("{}/v1/tickets/{ticket}/acceptance", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, content_type, response.json().await.unwrap_or(Value::Null))
    }

    async fn ticket(&self, id: &str) -> Value {
        let stored = self
            .service
            .store
            .get(&queuematch_core::ports::store::items::ticket_key(&id.into()))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no {id}"));
        stored.item.body
    }
}

/// A bad request: what it is, the ticket, the token, the body, the status, and the pointer of the
/// field at fault when there is one.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16, Option<&'a str>);

#[tokio::test]
async fn bad_answers_get_precise_problems_and_change_nothing() {
    let server = start().await;
    let p1 = server.token("p-1", Audience::Api, Duration::from_secs(600));
    let p3 = server.token("p-3", Audience::Api, Duration::from_secs(600));
    let party = server.token("p-1", Audience::Party, Duration::from_secs(60));
    let expired = server
        .tokens
        .mint(
            "p-1",
            Audience::Api,
            Role::Player,
            Timestamp(now().as_millis() - 3_600_000),
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let forged = DevTokens::new(b"another secret")
        .mint("p-1", Audience::Api, Role::Player, now(), Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("{e}"));
    let accept = r#"{"acceptanceType": "ACCEPT"}"#;
    let before: Vec<Value> = [
        server.ticket("t-1").await,
        server.ticket("t-2").await,
        server.ticket("t-3").await,
    ]
    .into();

    let oversize = format!(r#"{{"acceptanceType": "ACCEPT", "pad": "{}"}}"#, "x".repeat(70 * 1024));
    let cases: Vec<Case> = vec![
        ("no token", "t-1", None, accept.into(), 401, None),
        ("expired token", "t-1", Some(&expired), accept.into(), 401, None),
        ("forged token", "t-1", Some(&forged), accept.into(), 401, None),
        (
            "a party token is not an API token",
            "t-1",
            Some(&party),
            accept.into(),
            401,
            None,
        ),
        ("not JSON", "t-1", Some(&p1), b"{acceptanceType".to_vec(), 400, Some("")),
        ("not UTF-8", "t-1", Some(&p1), vec![0xff, 0xfe, 0x7b], 400, Some("")),
        (
            "missing field",
            "t-1",
            Some(&p1),
            b"{}".to_vec(),
            400,
            Some("/acceptanceType"),
        ),
        (
            "wrong value",
            "t-1",
            Some(&p1),
            br#"{"acceptanceType": "YES"}"#.to_vec(),
            400,
            Some("/acceptanceType"),
        ),
        (
            "wrong type",
            "t-1",
            Some(&p1),
            br#"{"acceptanceType": 1}"#.to_vec(),
            400,
            Some("/acceptanceType"),
        ),
        ("over 64 KiB", "t-1", Some(&p1), oversize.into_bytes(), 413, None),
        ("another player's ticket", "t-2", Some(&p1), accept.into(), 404, None),
        ("an unknown ticket", "t-404", Some(&p1), accept.into(), 404, None),
        (
            "a ticket not waiting for acceptance",
            "t-3",
            Some(&p3),
            accept.into(),
            409,
            None,
        ),
    ];
    for (case, ticket, token, body, status, pointer) in cases {
        let (got, content_type, problem) = server.post(ticket, token, body).await;
        assert_eq!(got, status, "{case}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{case}");
        assert_eq!(problem["status"], status, "{case}: {problem}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{case}: a problem says what is wrong: {problem}"
        );
        if let Some(pointer) = pointer {
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{case}: {problem}");
        }
    }
    let after: Vec<Value> = [
        server.ticket("t-1").await,
        server.ticket("t-2").await,
        server.ticket("t-3").await,
    ]
    .into();
    assert_eq!(after, before, "no bad request changed a ticket");

    // A GET of the acceptance route is not allowed, as problem+json too.
    let response = server
        .client
        .get(format!("{}/v1/tickets/t-1/acceptance", server.url))
        .bearer_auth(&p1)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 405);

    // AND a good answer records the caller's, and only the caller's
    let (status, _, view) = server.post("t-1", Some(&p1), accept).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "REQUIRES_ACCEPTANCE");
    assert_eq!(view["acceptances"], json!({"p-1": "ACCEPT"}));
    // with its match as a read of the ticket shows it: session, team and region
    let matched = &view["match"];
    let match_id = matched["matchId"].as_str().unwrap_or_default();
    assert_eq!(matched["sessionId"], format!("s-{match_id}"), "{view}");
    assert!(matches!(matched["team"].as_str(), Some("red" | "blue")), "{view}");
    assert_eq!(matched["region"], "local", "{view}");
    assert_eq!(server.ticket("t-2").await, before[1], "p-2's ticket is p-2's to answer");
    // Changing the answer is refused: it is final.
    let (status, _, problem) = server.post("t-1", Some(&p1), r#"{"acceptanceType": "REJECT"}"#).await;
    assert_eq!(status, 409, "{problem}");
}
