//! End to end: a session placed on the local fleet, played by real TCP clients, and reported to a
//! stand-in for the service, whose receiver checks every signature as the service does.

mod common;

use common::{Client, ReportReceiver, GAMESERVER, STEP};
use queuematch_contract::fleet::two_player_match;
use queuematch_core::identity::player_token::{self, PlayerTokenClaims};
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::ports::fleet::Endpoint;
use queuematch_core::ports::{ErrorType, Fleet};
use std::collections::HashSet;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

fn token(secret: &SessionSecret, session: &str, player: &str) -> String {
    player_token::mint(
        secret,
        &PlayerTokenClaims {
            session_id: session.into(),
            player_id: player.into(),
            exp: common::now().as_millis() / 1000 + 300,
        },
    )
}

fn random_secret() -> SessionSecret {
    SessionSecret::from_random_bytes(&rand::random())
}

fn result_of(line: &str) -> serde_json::Value {
    let json = line
        .strip_prefix("RESULT ")
        .unwrap_or_else(|| panic!("expected RESULT, got {line:?}"));
    serde_json::from_str(json).unwrap_or_else(|e| panic!("RESULT is not JSON: {e}"))
}

/// Every report is signed with the session's secret, under a nonce of its own, in the right order.
fn check_reports(reports: &[common::Received], session: &str, secret: &SessionSecret) -> Vec<String> {
    let mut nonces = HashSet::new();
    for report in reports {
        assert_eq!(report.session, session);
        report
            .verify(secret)
            .unwrap_or_else(|e| panic!("{} report: {e}", report.kind()));
        assert!(nonces.insert(report.nonce.clone()), "nonce {} repeated", report.nonce);
        let forger = SessionSecret::from_random_bytes(&[0; 32]);
        assert!(report.verify(&forger).is_err(), "another secret must not verify");
    }
    let kinds: Vec<String> = reports.iter().map(|r| r.kind()).filter(|k| k != "heartbeat").collect();
    kinds
}

#[tokio::test]
async fn players_with_valid_tokens_play_and_the_signed_result_is_reported() {
    // GIVEN a session placed on the local fleet, with its secret
    let receiver = ReportReceiver::start().await;
    let fleet = common::fleet(&receiver.url, 2, &["--heartbeat-interval", "100ms"]);
    let secret = random_secret();
    let session = SessionId::from("s-e2e");
    let matched = two_player_match("p");
    let placed = fleet.place(&session, &matched, &secret).await.unwrap();
    let (placement, endpoint) = common::ready(&fleet, &placed).await;
    assert_eq!(endpoint.address, "127.0.0.1");

    // WHEN a forger and garbage knock first
    let forged = token(&SessionSecret::from_random_bytes(&[1; 32]), "s-e2e", "p-a");
    let (mut refused, answer) = Client::hello(&endpoint, &forged).await;
    assert_eq!(
        answer,
        "DENIED the player token's signature does not match this session"
    );
    assert_eq!(refused.line().await, None, "a refused connection is closed");
    let other_session = token(&secret, "s-other", "p-a");
    assert!(Client::hello(&endpoint, &other_session).await.1.starts_with("DENIED "));
    assert!(Client::hello(&endpoint, "not a token at all")
        .await
        .1
        .starts_with("DENIED "));
    let mut binary = Client::connect(&endpoint).await;
    binary.send(b"\xff\xfe\x00garbage\n").await;
    assert_eq!(binary.expect_line().await, "DENIED the line is not UTF-8");
    let mut flood = Client::connect(&endpoint).await;
    flood.send(&[b'x'; 10_000]).await;
    assert_eq!(flood.expect_line().await, "DENIED the line is longer than 4096 bytes");

    // AND the players connect with their tokens
    let (mut a, answer) = Client::hello(&endpoint, &token(&secret, "s-e2e", "p-a")).await;
    assert_eq!(answer, "OK p-a");
    let (mut b, answer) = Client::hello(&endpoint, &token(&secret, "s-e2e", "p-b")).await;
    assert_eq!(answer, "OK p-b");

    // THEN the game starts, and the closest to two thirds of the average wins
    assert!(a.expect_line().await.starts_with("PLAY "));
    assert!(b.expect_line().await.starts_with("PLAY "));
    let (late, answer) = Client::hello(&endpoint, &token(&secret, "s-e2e", "p-a")).await;
    assert_eq!(answer, "DENIED the game has started");
    drop(late);
    a.send_line("60").await;
    b.send_line("a lot").await;
    assert_eq!(b.expect_line().await, r#"ERR "a lot" is not a number"#);
    b.send_line("30").await;
    let result = result_of(&a.expect_line().await);
    assert_eq!(
        result,
        result_of(&b.expect_line().await),
        "both players are told the same"
    );
    assert_eq!(result["target"], 30.0);
    assert_eq!(result["winners"], serde_json::json!(["p-b"]));
    assert_eq!(result["scores"], serde_json::json!({"p-a": 70.0, "p-b": 100.0}));
    assert_eq!(a.line().await, None, "the server hangs up after the result");

    // AND the service received ready, the result and end, each signed with the session's secret
    let reports = receiver.until("end").await;
    assert_eq!(check_reports(&reports, "s-e2e", &secret), ["ready", "result", "end"]);
    let result = reports.iter().find(|r| r.kind() == "result").unwrap().json();
    assert_eq!(
        result,
        serde_json::json!({"type": "result", "result": {"scores": {"p-a": 70.0, "p-b": 100.0}}})
    );
    assert_eq!(reports.last().unwrap().json()["reason"], "game over");

    // AND after the game the server hosts nothing, until it is released and gone
    let (_, answer) = Client::hello(&endpoint, &token(&secret, "s-e2e", "p-a")).await;
    assert_eq!(answer, "DENIED this server hosts no session now");
    fleet.release(&placement).await.unwrap();
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", endpoint.port))
        .await
        .is_err());
    let again = fleet.place(&session, &matched, &secret).await.unwrap_err();
    assert_eq!(again.error_type(), ErrorType::PlacementUnavailable);
}

#[tokio::test]
async fn the_lobby_timer_starts_the_game_with_the_players_present() {
    let receiver = ReportReceiver::start().await;
    let fleet = common::fleet(
        &receiver.url,
        1,
        &[
            "--lobby-timeout",
            "500ms",
            "--move-timeout",
            "5s",
            "--heartbeat-interval",
            "100ms",
        ],
    );
    let secret = random_secret();
    let placed = fleet
        .place(&"s-timer".into(), &two_player_match("p"), &secret)
        .await
        .unwrap();
    let (_, endpoint) = common::ready(&fleet, &placed).await;

    // GIVEN only one of the two players shows up
    let (mut a, answer) = Client::hello(&endpoint, &token(&secret, "s-timer", "p-a")).await;
    assert_eq!(answer, "OK p-a");
    // WHEN the lobby timer runs out, the game starts without the other
    assert!(a.expect_line().await.starts_with("PLAY "));
    a.send_line("45").await;
    let result = result_of(&a.expect_line().await);
    // THEN the absent player scores 0 and counts for nothing: the target is two thirds of 45
    assert_eq!(result["target"], 30.0);
    assert_eq!(result["winners"], serde_json::json!(["p-a"]));
    assert_eq!(result["scores"], serde_json::json!({"p-a": 85.0, "p-b": 0.0}));
    let reports = receiver.until("end").await;
    assert_eq!(check_reports(&reports, "s-timer", &secret), ["ready", "result", "end"]);
    let heartbeats = reports.iter().filter(|r| r.kind() == "heartbeat").count();
    assert!(
        heartbeats >= 2,
        "the server heartbeats while its lobby waits ({heartbeats} seen)"
    );
}

#[tokio::test]
async fn a_session_given_on_the_command_line_is_hosted_once_with_its_secret_from_the_environment() {
    let receiver = ReportReceiver::start().await;
    let secret = random_secret();
    let mut server = tokio::process::Command::new(GAMESERVER)
        .args(["--service-url", &receiver.url, "--session", "s-cli", "--match", "m-cli"])
        .args(["--player", "p-a", "--lobby-timeout", "10s"])
        .env("QUEUEMATCH_SESSION_SECRET", secret.expose())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut events = BufReader::new(server.stdout.take().unwrap()).lines();
    let listening: serde_json::Value = serde_json::from_str(&events.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(listening["event"], "listening");
    let endpoint = Endpoint {
        address: "127.0.0.1".into(),
        port: listening["port"].as_u64().unwrap() as u16,
    };
    let assigned: serde_json::Value = serde_json::from_str(&events.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(assigned, serde_json::json!({"event": "assigned", "sessionId": "s-cli"}));

    let (mut a, answer) = Client::hello(&endpoint, &token(&secret, "s-cli", "p-a")).await;
    assert_eq!(answer, "OK p-a", "everyone is in: the game starts at once");
    assert!(a.expect_line().await.starts_with("PLAY "));
    a.send_line("0").await;
    assert_eq!(result_of(&a.expect_line().await)["winners"], serde_json::json!(["p-a"]));

    let reports = receiver.until("end").await;
    assert_eq!(check_reports(&reports, "s-cli", &secret), ["ready", "result", "end"]);
    let status = tokio::time::timeout(STEP, server.wait()).await.unwrap().unwrap();
    assert!(status.success(), "the server exits after its one session: {status}");
}

#[tokio::test]
async fn without_its_secret_a_command_line_session_does_not_start() {
    let output = tokio::process::Command::new(GAMESERVER)
        .args([
            "--service-url",
            "http://127.0.0.1:9",
            "--session",
            "s",
            "--match",
            "m",
            "--player",
            "p",
        ])
        .env_remove("QUEUEMATCH_SESSION_SECRET")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("QUEUEMATCH_SESSION_SECRET"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing on the control channel");
}

#[tokio::test]
async fn a_player_who_reconnects_in_the_lobby_replaces_their_earlier_connection() {
    let receiver = ReportReceiver::start().await;
    let fleet = common::fleet(&receiver.url, 1, &[]);
    let secret = random_secret();
    let placed = fleet
        .place(&"s-again".into(), &two_player_match("p"), &secret)
        .await
        .unwrap();
    let (_, endpoint) = common::ready(&fleet, &placed).await;

    // GIVEN p-a in the lobby
    let (mut first, answer) = Client::hello(&endpoint, &token(&secret, "s-again", "p-a")).await;
    assert_eq!(answer, "OK p-a");
    // WHEN p-a connects again (a client that lost its connection, say)
    let (mut again, answer) = Client::hello(&endpoint, &token(&secret, "s-again", "p-a")).await;
    assert_eq!(answer, "OK p-a");
    // THEN the earlier connection is closed, and p-a still counts once: the game waits for p-b
    assert_eq!(first.line().await, None);
    let (mut b, answer) = Client::hello(&endpoint, &token(&secret, "s-again", "p-b")).await;
    assert_eq!(answer, "OK p-b");
    assert!(again.expect_line().await.starts_with("PLAY "));
    assert!(b.expect_line().await.starts_with("PLAY "));
    again.send_line("10").await;
    b.send_line("20").await;
    assert_eq!(
        result_of(&again.expect_line().await)["winners"],
        serde_json::json!(["p-a"])
    );
}
