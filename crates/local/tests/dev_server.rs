//! The dev server on 127.0.0.1:0, driven over HTTP and WebSocket as a game client drives it.

use futures::StreamExt;
use queuematch_core::identity::jwt::{Audience, DevTokens, Role};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::{Clock, PortError, Store, TicketQueue, Workflows};
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::{Queues, Settings};
use queuematch_core::RuleSet;
use queuematch_handlers::Service;
use queuematch_local::dev::{self, DevState};
use queuematch_local::{
    EventBus, MemoryQueue, MemoryStore, ProcessFleet, ProcessFleetConfig, QueueConfig, SystemClock,
};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Records placements started; the placement workflow's adapter is wired by `queuematch dev`.
#[derive(Debug, Default)]
struct StartedExecutions(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl Workflows for StartedExecutions {
    async fn start(&self, definition: &str, name: &str, _input: Value) -> Result<ExecutionId, PortError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(name.to_owned());
        Ok(ExecutionId(format!("local:{definition}:{name}")))
    }
}

struct Running {
    url: String,
    tokens: DevTokens,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    workflows: Arc<StartedExecutions>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn rule_set(name: &str) -> RuleSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/rulesets/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{e}"))
}

async fn start() -> Running {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let workflows = Arc::new(StartedExecutions::default());
    let tokens = DevTokens::new(b"dev server test secret");
    let service = Arc::new(Service {
        store: Arc::new(MemoryStore::new(SystemClock)) as Arc<dyn Store>,
        queue: Arc::new(MemoryQueue::new(SystemClock, QueueConfig::default())) as Arc<dyn TicketQueue>,
        workflows: workflows.clone() as Arc<dyn Workflows>,
        events: Arc::new(EventBus::new(1024)),
        clock,
        party_tokens: tokens.clone(),
        queues: Arc::new(Queues::new([rule_set("ranked-1v1"), rule_set("coop-4")])),
        // One region, as the local fleet serves: tickets need no latencies.
        settings: Arc::new(Settings {
            single_region: Some("local".into()),
            ..Settings::default()
        }),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    // No test here places a session: the fleet is never asked for a server.
    let fleet = Arc::new(ProcessFleet::new(ProcessFleetConfig::new(
        "queuematch-gameserver",
        url.clone(),
    )));
    let state = DevState::new(service.clone(), tokens.clone(), fleet).unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = oneshot::channel::<()>();
    let (stop_matcher, matcher_stopped) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        let _ = dev::serve(listener, state, async {
            let _ = stopped.await;
        })
        .await;
        let _ = stop_matcher.send(());
    });
    tokio::spawn(dev::run_matcher(service, async move {
        let mut rx = matcher_stopped;
        let _ = rx.changed().await;
    }));
    Running {
        url,
        tokens,
        client: reqwest::Client::new(),
        stop: Some(stop),
        workflows,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Running {
    fn token(&self, player: &str) -> String {
        let now = Timestamp(now_ms());
        self.tokens
            .mint(player, Audience::Api, Role::Player, now, Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn post_ticket(&self, player: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/tickets", self.url))
            .bearer_auth(self.token(player))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get_ticket(&self, player: &str, id: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/v1/tickets/{id}", self.url))
            .bearer_auth(self.token(player))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls until the ticket reaches `status`, within a few batching windows.
    async fn await_status(&self, player: &str, id: &str, status: &str) -> Value {
        for _ in 0..60 {
            let (code, body) = self.get_ticket(player, id).await;
            if code == 200 && body["status"] == status {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "ticket {id} never became {status}: {:?}",
            self.get_ticket(player, id).await
        );
    }
}

fn solo(player: &str, skill: u32) -> Value {
    json!({"queue": "ranked-1v1", "players": [{"id": player, "attributes": {"skill": skill}}]})
}

#[tokio::test]
async fn health_answers() {
    let running = start().await;
    let body: Value = running
        .client
        .get(format!("{}/health", running.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"status": "ok"}));
    let spec = running
        .client
        .get(format!("{}/openapi.yaml", running.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        spec.starts_with("openapi: 3.0.3"),
        "the spec it serves: {}",
        &spec[..40.min(spec.len())]
    );
}

#[tokio::test]
async fn two_duellists_are_admitted_and_matched_through_the_queue() {
    let running = start().await;
    let (code, first) = running.post_ticket("p-1", &solo("p-1", 1500)).await;
    assert_eq!(code, 202, "{first}");
    let (code, second) = running.post_ticket("p-2", &solo("p-2", 1530)).await;
    assert_eq!(code, 202, "{second}");
    let t1 = first["ticketId"].as_str().unwrap().to_owned();
    let t2 = second["ticketId"].as_str().unwrap().to_owned();
    let one = running.await_status("p-1", &t1, "PLACING").await;
    let two = running.await_status("p-2", &t2, "PLACING").await;
    assert_eq!(one["match"]["matchId"], two["match"]["matchId"]);
    // Each reads its session, its own team and the region from its ticket.
    let match_id = one["match"]["matchId"].as_str().unwrap_or_default();
    let mut teams = Vec::new();
    for view in [&one, &two] {
        assert_eq!(view["match"]["sessionId"], format!("s-{match_id}"), "{view}");
        assert_eq!(view["match"]["region"], "local", "{view}");
        teams.push(view["match"]["team"].as_str().unwrap_or_default());
    }
    teams.sort_unstable();
    assert_eq!(teams, ["blue", "red"]);
    let started = running.workflows.0.lock().unwrap().clone();
    assert_eq!(started, [one["match"]["matchId"].as_str().unwrap().to_owned()]);
    // Another player cannot see it.
    assert_eq!(running.get_ticket("p-3", &t1).await.0, 404);
}

/// One region served (`local`): the regions a player measured beside it are left aside, so the
/// match is formed where servers run though both players are nearer `mars`; a player who measured
/// only other regions is refused at the edge, where the ticket would have matched for nowhere.
#[tokio::test]
async fn with_one_region_served_matches_are_formed_in_it() {
    let running = start().await;
    let measured = |player: &str, skill: u32, latencies: Value| {
        let mut body = solo(player, skill);
        body["players"][0]["latencies"] = latencies;
        body
    };
    let mut tickets = Vec::new();
    for (player, skill) in [("p-1", 1500), ("p-2", 1520)] {
        let body = measured(player, skill, json!({"local": 40, "mars": 5}));
        let (code, answer) = running.post_ticket(player, &body).await;
        assert_eq!(code, 202, "{answer}");
        tickets.push(answer["ticketId"].as_str().unwrap_or_default().to_owned());
    }
    running.await_status("p-1", &tickets[0], "PLACING").await;
    let operator = running
        .tokens
        .mint(
            "ops",
            Audience::Api,
            Role::Operator,
            Timestamp::from_millis(now_ms()),
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let matches: Value = running
        .client
        .get(format!("{}/v1/ops/matches", running.url))
        .bearer_auth(operator)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(matches["matches"][0]["region"], "local", "{matches}");
    assert_eq!(matches["matches"][0]["quality"]["worstLatencyMs"], 40, "{matches}");

    let (code, refused) = running
        .post_ticket("p-3", &measured("p-3", 1500, json!({"mars": 5, "venus": 9})))
        .await;
    assert_eq!(code, 400, "{refused}");
    assert_eq!(refused["errors"][0]["pointer"], "/players/0/latencies", "{refused}");
    let message = refused["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("region `local` only") && message.contains("mars, venus"),
        "{message}"
    );
}

#[tokio::test]
async fn a_searching_ticket_is_cancelled() {
    let running = start().await;
    let (_, created) = running.post_ticket("p-1", &solo("p-1", 1500)).await;
    let id = created["ticketId"].as_str().unwrap().to_owned();
    running.await_status("p-1", &id, "SEARCHING").await;
    let response = running
        .client
        .delete(format!("{}/v1/tickets/{id}", running.url))
        .bearer_auth(running.token("p-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["reason"].as_str()),
        (Some("CANCELLED"), Some("cancelled by p-1"))
    );
}

#[tokio::test]
async fn push_delivers_every_status_change_in_order() {
    let running = start().await;
    let ws_url = format!(
        "{}/v1/events?token={}",
        running.url.replacen("http", "ws", 1),
        running.token("p-1")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    running.post_ticket("p-1", &solo("p-1", 1500)).await;
    running.post_ticket("p-2", &solo("p-2", 1510)).await;
    let mut types = Vec::new();
    while types.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let event: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        assert!(
            event["playerIds"].as_array().unwrap().contains(&json!("p-1")),
            "{event}"
        );
        types.push(event["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(types, ["MatchmakingSearching", "PotentialMatchCreated"]);
}

#[tokio::test]
async fn push_refuses_a_bad_token() {
    let running = start().await;
    let ws_url = format!("{}/v1/events?token=forged", running.url.replacen("http", "ws", 1));
    let err = tokio_tungstenite::connect_async(ws_url).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn bad_requests_get_precise_problems() {
    let running = start().await;
    let url = format!("{}/v1/tickets", running.url);
    let no_token = running.client.post(&url).json(&solo("p-1", 1)).send().await.unwrap();
    assert_eq!(no_token.status().as_u16(), 401);
    assert_eq!(no_token.headers()["content-type"], "application/problem+json");

    let not_json = running
        .client
        .post(&url)
        .bearer_auth(running.token("p-1"))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 400);
    let body: Value = not_json.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("not valid JSON"),
        "{body}"
    );

    let (code, body) = running
        .post_ticket("p-1", &json!({"queue": "ranked-9v9", "players": [{"id": "p-1"}]}))
        .await;
    assert_eq!(code, 400);
    assert_eq!(body["errors"][0]["pointer"], "/queue", "{body}");

    let huge = json!({"queue": "ranked-1v1", "players": [{"id": "p-1", "attributes": {"skill": 1, "pad": "x".repeat(70_000)}}]});
    let (code, body) = running.post_ticket("p-1", &huge).await;
    assert_eq!(code, 413, "{body}");

    let expired = running
        .tokens
        .mint(
            "p-1",
            Audience::Api,
            Role::Player,
            Timestamp(1_000_000),
            Duration::from_secs(1),
        )
        .unwrap();
    let response = running
        .client
        .post(&url)
        .bearer_auth(expired)
        .json(&solo("p-1", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);

    let wrong_method = running
        .client
        .put(&url)
        .bearer_auth(running.token("p-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
}
