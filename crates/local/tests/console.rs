//! The operators' console on the dev server: the page, and its push (`GET /v1/ops/stream`).

use futures::{SinkExt, StreamExt};
use queuematch_core::identity::jwt::{Audience, DevTokens, Role};
use queuematch_core::ports::{Clock, Events, Store, TicketQueue, Workflows};
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::{Queues, Settings};
use queuematch_core::{DomainEvent, RuleSet, SessionStatus};
use queuematch_handlers::Service;
use queuematch_local::dev::{self, DevState};
use queuematch_local::{
    EventBus, LocalWorkflows, MemoryQueue, MemoryStore, ProcessFleet, ProcessFleetConfig, QueueConfig, SystemClock,
    WorkflowsConfig,
};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Running {
    url: String,
    tokens: DevTokens,
    service: Arc<dev::LocalService>,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

async fn start() -> Running {
    let text = std::fs::read_to_string(repo("examples/rulesets/ranked-1v1.json")).unwrap_or_else(|e| panic!("{e}"));
    let rule_set = RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let workflows = Arc::new(
        LocalWorkflows::load(&repo("workflows"), WorkflowsConfig::default()).unwrap_or_else(|e| panic!("{e}")),
    );
    let tokens = DevTokens::new(b"console test secret");
    let service = Arc::new(Service {
        store: Arc::new(MemoryStore::new(SystemClock)) as Arc<dyn Store>,
        queue: Arc::new(MemoryQueue::new(SystemClock, QueueConfig::default())) as Arc<dyn TicketQueue>,
        workflows: workflows.clone() as Arc<dyn Workflows>,
        events: Arc::new(EventBus::new(1024)),
        clock: Arc::new(SystemClock) as Arc<dyn Clock>,
        party_tokens: tokens.clone(),
        queues: Arc::new(Queues::new([rule_set])),
        settings: Arc::new(Settings {
            single_region: Some("local".into()),
            ..Settings::default()
        }),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    // Nothing here places a session: the fleet is never asked for a server.
    let fleet = Arc::new(ProcessFleet::new(ProcessFleetConfig::new(
        "queuematch-gameserver",
        url.clone(),
    )));
    let state = DevState::new(service.clone(), tokens.clone(), fleet)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_workflows(workflows);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = dev::serve(listener, state, async {
            let _ = stopped.await;
        })
        .await;
    });
    Running {
        url,
        tokens,
        service,
        client: reqwest::Client::new(),
        stop: Some(stop),
    }
}

impl Running {
    fn token(&self, subject: &str, role: Role) -> String {
        let now = Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        );
        self.tokens
            .mint(subject, Audience::Api, role, now, Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn stream_url(&self, token: &str) -> String {
        format!("{}/v1/ops/stream?token={token}", self.url.replacen("http", "ws", 1))
    }

    async fn connect(&self) -> Socket {
        let url = self.stream_url(&self.token("operator", Role::Operator));
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        socket
    }
}

/// The next message of `type`, skipping others, within a generous bound.
async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    let wait = async {
        loop {
            let message = socket
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream closed"))
                .unwrap_or_else(|e| panic!("{e}"));
            let Message::Text(text) = message else { continue };
            let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            if value["type"] == kind {
                return value;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no `{kind}` message within 10 s"))
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_and_nothing_else() {
    let running = start().await;
    let page = running
        .client
        .get(format!("{}/console", running.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("<script type=\"module\" src=\"/console/console.js\">"));
    for (asset, kind) in [
        ("console.js", "text/javascript"),
        ("graph.js", "text/javascript"),
        ("charts.js", "text/javascript"),
        ("console.css", "text/css"),
    ] {
        let response = running
            .client
            .get(format!("{}/console/{asset}", running.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(
            response.headers()["content-type"].to_str().unwrap().starts_with(kind),
            "{asset}"
        );
    }
    let missing = running
        .client
        .get(format!("{}/console/secrets.txt", running.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
    let posted = running
        .client
        .post(format!("{}/console", running.url))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 405);
}

#[tokio::test]
async fn the_stream_is_for_operators_only() {
    let running = start().await;
    let no_token = format!("{}/v1/ops/stream", running.url.replacen("http", "ws", 1));
    let err = tokio_tungstenite::connect_async(no_token).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let forged = running.stream_url("forged");
    let err = tokio_tungstenite::connect_async(forged).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let player = running.stream_url(&running.token("p-1", Role::Player));
    let err = tokio_tungstenite::connect_async(player).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    // An operator's token on a plain GET: refused as no upgrade, in problem+json.
    let plain = running
        .client
        .get(format!(
            "{}/v1/ops/stream?token={}",
            running.url,
            running.token("operator", Role::Operator)
        ))
        .send()
        .await
        .unwrap();
    assert!([400, 426].contains(&plain.status().as_u16()), "{}", plain.status());
    assert_eq!(plain.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn a_snapshot_comes_first_and_again_after_each_event_with_the_event_itself() {
    let running = start().await;
    let mut socket = running.connect().await;
    // GIVEN a connected operator, who is sent a snapshot at once
    let first = next_of(&mut socket, "snapshot").await;
    assert_eq!(
        first["ticketsQueue"],
        json!({"visible": 0, "inFlight": 0, "delayed": 0, "dead": 0})
    );
    assert_eq!(first["deadLetters"], json!([]));
    // WHEN a ticket is queued and an event is published
    running
        .service
        .queue
        .send("{}".into(), Duration::from_secs(60))
        .await
        .unwrap();
    let event = DomainEvent::SessionStatusChanged {
        session_id: "s-1".into(),
        player_ids: vec!["p-1".into(), "p-2".into()],
        status: SessionStatus::Active,
        reason: None,
    };
    running.service.events.publish(event.clone()).await.unwrap();
    // THEN the event is pushed as it is, and then a snapshot that sees the queued message
    let pushed = next_of(&mut socket, "event").await;
    assert_eq!(pushed["event"], serde_json::to_value(&event).unwrap());
    let second = next_of(&mut socket, "snapshot").await;
    assert_eq!(second["ticketsQueue"]["delayed"], 1, "{second}");
}

#[tokio::test]
async fn a_watch_is_answered_with_the_session_and_a_bad_message_with_an_error() {
    let running = start().await;
    let mut socket = running.connect().await;
    next_of(&mut socket, "snapshot").await;
    socket
        .send(Message::Text(json!({"watch": "s-404"}).to_string().into()))
        .await
        .unwrap();
    let detail = next_of(&mut socket, "session").await;
    assert_eq!(detail["sessionId"], "s-404");
    socket
        .send(Message::Text(json!({"follow": "s-1"}).to_string().into()))
        .await
        .unwrap();
    let error = next_of(&mut socket, "error").await;
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .starts_with("`follow`: \"s-1\" is not a message"),
        "{error}"
    );
    socket.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    let error = next_of(&mut socket, "error").await;
    assert!(
        error["detail"].as_str().unwrap().starts_with("a binary frame"),
        "{error}"
    );
}

#[tokio::test]
async fn the_dlq_is_shown_and_redriven_over_the_stream() {
    let running = start().await;
    // GIVEN a message no consumer deleted, received until it went to the DLQ (the matcher loop
    // does not run here, so nothing else receives it)
    let queue = &running.service.queue;
    queue.send("not a ticket".into(), Duration::ZERO).await.unwrap();
    let mut receives = 0;
    while !queue.receive(10, Duration::ZERO).await.unwrap().is_empty() {
        receives += 1;
        assert!(receives <= 5, "received more than its 5 receives");
    }
    let mut socket = running.connect().await;
    let snapshot = next_of(&mut socket, "snapshot").await;
    assert_eq!(snapshot["ticketsQueue"]["dead"], 1, "{snapshot}");
    assert_eq!(snapshot["deadLetters"][0]["body"], "not a ticket");
    assert_eq!(snapshot["deadLetters"][0]["receiveCount"], 5);
    // WHEN the operator presses redrive
    socket
        .send(Message::Text(json!({"redrive": true}).to_string().into()))
        .await
        .unwrap();
    // THEN the letter moves back, and the snapshot that follows shows it queued again
    let answer = next_of(&mut socket, "redriven").await;
    assert_eq!(answer["moved"], 1);
    let after = next_of(&mut socket, "snapshot").await;
    assert_eq!(after["ticketsQueue"]["dead"], 0, "{after}");
    assert_eq!(after["ticketsQueue"]["visible"], 1, "{after}");
    assert_eq!(after["deadLetters"], json!([]));
}
