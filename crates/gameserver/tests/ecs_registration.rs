//! ECS self-registration on a moto server: a real `queuematch-gameserver --register-table` process
//! puts its own warm-server item and heartbeats it; the ECS fleet adapter claims it (and not a stale
//! server registered before it); the server learns its session from its item and hosts it; on
//! SIGTERM it removes its item.
//!
//! Needs `QUEUEMATCH_MOTO_ENDPOINT` (scripts/test starts moto and sets it); without it, a plain
//! `cargo test` skips this binary with a message, and under CI (`CI` set) fails.

mod common;

use queuematch_aws::clock::SystemClock;
use queuematch_aws::config::{self, Clients};
use queuematch_aws::dynamo::{create_table, DynamoStore};
use queuematch_aws::ecs::{EcsFleet, EcsFleetConfig, ServerRecord, ServerRegistry};
use queuematch_contract::fleet::{secret, two_player_match};
use queuematch_core::identity::player_token::{self, PlayerTokenClaims};
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::ports::fleet::{Endpoint, Placement};
use queuematch_core::ports::{Clock, Fleet, Store};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ENDPOINT_VAR: &str = "QUEUEMATCH_MOTO_ENDPOINT";

fn endpoint() -> Option<String> {
    match std::env::var(ENDPOINT_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{ENDPOINT_VAR} is not set: under CI the moto tests must run (scripts/test starts moto)")
        }
        _ => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipping the ECS registration test: {ENDPOINT_VAR} is not set (scripts/test sets it)"
            );
            None
        }
    }
}

fn token(secret: &SessionSecret, session: &SessionId, player: &str) -> String {
    player_token::mint(
        secret,
        &PlayerTokenClaims {
            session_id: session.clone(),
            player_id: player.into(),
            exp: common::now().as_millis() / 1000 + 300,
        },
    )
}

async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut probe: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The server process, killed when the test is over, passed or not (std sends nothing to a child
/// already waited for).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_registers_itself_is_claimed_hosts_its_session_and_deregisters_on_sigterm() {
    let Some(url) = endpoint() else { return };
    let clients = Clients::new(&config::local(&url, "us-east-1"));
    let table = format!("qm-ecs-{}", uuid::Uuid::new_v4().simple());
    create_table(&clients.dynamodb, &table)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(clients.dynamodb.clone(), table.clone()));
    let fleet = EcsFleet::new(
        clients.ecs.clone(),
        store.clone(),
        EcsFleetConfig {
            fleet: "arena".into(),
            cluster: "cluster".into(),
            task_definition: "gameserver".into(),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            assign_public_ip: false,
        },
    );
    // GIVEN a server that registered long ago and stopped heartbeating: first in the table's order
    let registry = ServerRegistry::new(store.clone(), "arena");
    let stale = ServerRecord {
        server_id: "aaa-stale".into(),
        endpoint: Endpoint {
            address: "127.0.0.1".into(),
            port: 1,
        },
        task_arn: None,
        session: None,
        dead: false,
        last_seen: None,
    };
    let long_ago = queuematch_core::Timestamp(SystemClock.now().as_millis() - 60_000);
    registry
        .register(&stale, long_ago, Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // WHEN a game server starts in ECS mode
    let receiver = common::ReportReceiver::start().await;
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_queuematch-gameserver"))
            .args(["--service-url", &receiver.url, "--register-table", &table])
            .args(["--fleet", "arena", "--server-id", "srv-1"])
            .args(["--heartbeat-interval", "1s", "--registration-ttl", "4s"])
            .args(["--ticks-per-second", "50", "--game-ticks", "30"])
            .env("AWS_ENDPOINT_URL", &url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("the game server does not start: {e}")),
    );
    let pid = server.0.id();

    // THEN its item appears, free, with its port, and is kept fresh
    let registered = wait_for("the server's item", || async {
        fleet.server("srv-1").await.unwrap_or_else(|e| panic!("{e}"))
    })
    .await;
    assert_eq!(registered.value.endpoint.address, "127.0.0.1");
    assert_ne!(registered.value.endpoint.port, 0);
    assert!(registered.value.session.is_none() && !registered.value.dead);
    let first_seen = registered.value.last_seen;
    wait_for("a heartbeat", || async {
        let now = fleet.server("srv-1").await.unwrap_or_else(|e| panic!("{e}"))?;
        (now.value.last_seen > first_seen).then_some(())
    })
    .await;

    // WHEN the fleet places a session THEN it claims the live server, not the stale one
    let matched = two_player_match("ecs");
    let session: SessionId = "s-ecs".into();
    let session_secret = secret(4);
    let placed = fleet
        .place(&session, &matched, &session_secret)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Placement::Ready { placement, endpoint } = placed else {
        panic!("a free server is claimed at once: {placed:?}")
    };
    assert_eq!(endpoint, registered.value.endpoint);

    // AND the server learns its session from its item, at its next heartbeat: both players are
    // let in and play
    let a = wait_for("the server to host its claimed session", || async {
        common::hello(&endpoint, &token(&session_secret, &session, "ecs-a"))
            .await
            .ok()
    })
    .await;
    let b = common::join(&endpoint, &token(&session_secret, &session, "ecs-b")).await;
    assert_eq!(a.welcome().session_id, session);
    assert_eq!(b.welcome().team, "blue");
    let (played_a, played_b) = tokio::join!(a.play(|_| None), b.play(|_| None));
    assert_eq!(
        played_a.unwrap_or_else(|e| panic!("{e}")),
        played_b.unwrap_or_else(|e| panic!("{e}"))
    );
    let reports = receiver.until("end").await;
    assert!(
        reports.iter().any(|r| r.kind() == "result"),
        "the server reported its game"
    );
    // (the heartbeats kept the claim: the item still holds the session)
    let claimed = fleet.server("srv-1").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(claimed.is_some_and(|s| s.value.session.is_some_and(|a| a.session_id == session)));

    // WHEN the fleet releases it and ECS stops its task (SIGTERM)
    fleet.release(&placement).await.unwrap_or_else(|e| panic!("{e}"));
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(killed.success());
    let status = wait_for("the server's exit", || {
        let exited = server.0.try_wait().unwrap_or_else(|e| panic!("{e}"));
        async move { exited }
    })
    .await;
    // THEN it exits cleanly and its item is gone: nothing can claim it any more
    assert!(status.success(), "{status:?}");
    assert!(fleet.server("srv-1").await.unwrap_or_else(|e| panic!("{e}")).is_none());
    let again = fleet
        .place(&"s-ecs-2".into(), &two_player_match("ecs-2"), &secret(5))
        .await;
    assert!(
        !matches!(again, Ok(Placement::Ready { .. })),
        "no server is left to claim: {again:?}"
    );
}
