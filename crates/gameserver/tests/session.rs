//! End to end: a session placed on the local fleet, played over WebSockets by the crate's client, and
//! reported to a stand-in for the service, whose receiver checks every signature as the service does.

mod common;

use common::{denial, join, raw, raw_next, ReportReceiver, GAMESERVER, STEP};
use futures::SinkExt;
use queuematch_contract::fleet::two_player_match;
use queuematch_core::identity::player_token::{self, PlayerTokenClaims};
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::{PlayerId, SessionId};
use queuematch_core::ports::fleet::Endpoint;
use queuematch_core::ports::{ErrorType, Fleet};
use queuematch_gameserver::client::{ClientError, GameClient, GameEvent};
use queuematch_gameserver::game::{self, Outcome};
use queuematch_local::ProcessFleet;
use rand::SeedableRng;
use std::collections::HashSet;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

/// Fast games: 100 ticks a second, 30 ticks long.
const FAST: [&str; 6] = [
    "--ticks-per-second",
    "100",
    "--game-ticks",
    "30",
    "--heartbeat-interval",
    "100ms",
];

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

/// Plays as a precise bot (`Some(noise)`) or at random (`None`).
fn player(client: GameClient, noise: Option<f64>, seed: u64) -> tokio::task::JoinHandle<Outcome> {
    tokio::spawn(async move {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        client
            .play(|view| {
                Some(match noise {
                    Some(noise) => game::aim_at(view, noise, &mut rng),
                    None => game::random_aim(&mut rng),
                })
            })
            .await
            .unwrap_or_else(|e| panic!("the game did not end well: {e}"))
    })
}

async fn outcome(handle: tokio::task::JoinHandle<Outcome>) -> Outcome {
    tokio::time::timeout(STEP, handle)
        .await
        .unwrap_or_else(|_| panic!("no result within {STEP:?}"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A two-player match (p-a on red, p-b on blue) placed as one session on a fleet of one server
/// started with `server_args`, which reports to a receiver of its own; ready to be joined.
struct Hosted {
    receiver: ReportReceiver,
    /// Kept so that the server runs as long as the test does.
    _fleet: ProcessFleet,
    session: &'static str,
    secret: SessionSecret,
    endpoint: Endpoint,
}

impl Hosted {
    async fn start(session: &'static str, server_args: &[&str]) -> Self {
        let receiver = ReportReceiver::start().await;
        let fleet = common::fleet(&receiver.url, 1, server_args);
        let secret = random_secret();
        let placed = fleet
            .place(&session.into(), &two_player_match("p"), &secret)
            .await
            .unwrap_or_else(|e| panic!("place {session}: {e}"));
        let (_, endpoint) = common::ready(&fleet, &placed).await;
        Hosted {
            receiver,
            _fleet: fleet,
            session,
            secret,
            endpoint,
        }
    }

    /// A token for `player` to this session.
    fn token(&self, player: &str) -> String {
        token(&self.secret, self.session, player)
    }

    /// The session's reports, until its end, each checked as the service checks it: their kinds.
    async fn reports_until_end(&self) -> (Vec<common::Received>, Vec<String>) {
        let reports = self.receiver.until("end").await;
        let kinds = check_reports(&reports, self.session, &self.secret);
        (reports, kinds)
    }
}

#[tokio::test]
async fn players_with_valid_tokens_play_in_ticks_and_the_signed_result_is_reported() {
    // GIVEN a session placed on the local fleet, with its secret
    let receiver = ReportReceiver::start().await;
    let fleet = common::fleet(&receiver.url, 2, &FAST);
    let secret = random_secret();
    let session = SessionId::from("s-e2e");
    let matched = two_player_match("p");
    let placed = fleet.place(&session, &matched, &secret).await.unwrap();
    let (placement, endpoint) = common::ready(&fleet, &placed).await;
    assert_eq!(endpoint.address, "127.0.0.1");

    // WHEN a forger, another session's player, and garbage knock first, they are denied
    let forged = token(&SessionSecret::from_random_bytes(&[1; 32]), "s-e2e", "p-a");
    assert_eq!(
        denial(&endpoint, &forged).await,
        "the player token's signature does not match this session"
    );
    assert!(!denial(&endpoint, &token(&secret, "s-other", "p-a")).await.is_empty());
    assert!(!denial(&endpoint, "not a token at all").await.is_empty());
    assert_eq!(
        denial(&endpoint, &token(&secret, "s-e2e", "p-c")).await,
        "player p-c is not in this session, and it has no open slot",
        "a stranger with a valid token is not seated before the game starts"
    );
    let mut line = raw(&endpoint).await;
    line.send(Message::text("eyJ.a.token.as.a.line")).await.unwrap();
    let denied = raw_next(&mut line).await.unwrap();
    assert_eq!(denied["type"], "denied");
    assert!(denied["reason"].as_str().unwrap().contains("not JSON"), "{denied}");
    assert_eq!(raw_next(&mut line).await, None, "a refused connection is closed");
    let mut binary = raw(&endpoint).await;
    binary.send(Message::binary(vec![0xff, 0xfe, 0])).await.unwrap();
    let denied = raw_next(&mut binary).await.unwrap();
    assert_eq!(denied["type"], "denied");
    assert!(denied["reason"].as_str().unwrap().contains("not binary"), "{denied}");
    let mut flood = raw(&endpoint).await;
    let _ = flood.send(Message::text("x".repeat(10_000))).await;
    assert!(
        !matches!(raw_next(&mut flood).await, Some(v) if v["type"] == "welcome"),
        "an oversized message is never taken"
    );
    // A plain TCP line (the old protocol) is no WebSocket handshake: the server hangs up.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", endpoint.port))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"token\n").await.unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(STEP, tokio::io::AsyncReadExt::read(&mut tcp, &mut buffer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");

    // AND the players connect with their tokens
    let a = join(&endpoint, &token(&secret, "s-e2e", "p-a")).await;
    assert_eq!(a.welcome().player_id, PlayerId::from("p-a"));
    assert_eq!(a.welcome().team, "red");
    assert_eq!((a.welcome().ticks_per_second, a.welcome().game_ticks), (100, 30));
    let b = join(&endpoint, &token(&secret, "s-e2e", "p-b")).await;
    assert_eq!(b.welcome().team, "blue");

    // THEN the game runs its 30 ticks, and the precise player beats the random one
    let (a, b) = (player(a, Some(0.03), 1), player(b, None, 2));
    let (told_a, told_b) = (outcome(a).await, outcome(b).await);
    assert_eq!(told_a, told_b, "both players are told the same");
    assert_eq!(told_a.winners, ["red"], "{told_a:?}");
    let score = |p: &str| told_a.scores[&PlayerId::from(p)];
    assert!(score("p-a") > score("p-b"), "{told_a:?}");
    assert_eq!(told_a.teams[0].score, score("p-a"));

    // AND the service received ready, the result and end, each signed with the session's secret
    let reports = receiver.until("end").await;
    assert_eq!(check_reports(&reports, "s-e2e", &secret), ["ready", "result", "end"]);
    let result = reports.iter().find(|r| r.kind() == "result").unwrap().json();
    assert_eq!(
        result["result"]["scores"],
        serde_json::to_value(&told_a.scores).unwrap()
    );
    assert_eq!(reports.last().unwrap().json()["reason"], "game over");

    // AND after the game nobody gets in: the server hosts nothing, and this fleet keeps no warm
    // pool, so it stops the server as soon as the server says it is idle (a connection made in
    // that instant finds it denying, or already gone)
    match common::hello(&endpoint, &token(&secret, "s-e2e", "p-a")).await {
        Err(ClientError::Denied(reason)) => assert_eq!(reason, "this server hosts no session now"),
        Err(ClientError::Connect { .. } | ClientError::Socket(_) | ClientError::Closed) => {}
        other => panic!("expected a denial or a server gone, got {other:?}"),
    }
    fleet.release(&placement).await.unwrap();
    // The process is killed, and its port closes once the kernel has reaped it.
    let gone_by = tokio::time::Instant::now() + STEP;
    while tokio::net::TcpStream::connect(("127.0.0.1", endpoint.port))
        .await
        .is_ok()
    {
        assert!(
            tokio::time::Instant::now() < gone_by,
            "the released server still listens"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let again = fleet.place(&session, &matched, &secret).await.unwrap_err();
    assert_eq!(again.error_type(), ErrorType::PlacementUnavailable);
}

#[tokio::test]
async fn a_player_who_leaves_mid_game_leaves_an_open_slot_that_a_backfilled_player_takes() {
    let args = [
        "--ticks-per-second",
        "50",
        "--game-ticks",
        "100",
        "--heartbeat-interval",
        "100ms",
    ];
    let hosted = Hosted::start("s-leave", &args).await;
    let mut a = join(&hosted.endpoint, &hosted.token("p-a")).await;
    let mut b = join(&hosted.endpoint, &hosted.token("p-b")).await;

    // GIVEN the game has started and p-b quits at once
    assert!(matches!(b.next().await.unwrap(), GameEvent::Tick(view) if view.tick == 0));
    b.close().await;
    // WHEN p-a keeps playing, a bad aim is told off and does not stop the game
    a.send_text(r#"{"type":"aim","tick":0,"x":7,"y":0}"#).await.unwrap();
    let mut refused = None;
    let mut seen_tick = 0;
    while refused.is_none() {
        match a.next().await.unwrap() {
            GameEvent::Refused(reason) => refused = Some(reason),
            GameEvent::Tick(view) => seen_tick = view.tick,
            GameEvent::Over(outcome) => panic!("over too soon: {outcome:?}"),
        }
    }
    assert!(refused.unwrap().contains("outside [0, 1]"));
    // AND a player the service backfilled into the session connects: p-b's open slot is theirs
    let c = join(&hosted.endpoint, &hosted.token("p-c")).await;
    assert_eq!(c.welcome().team, "blue", "the open slot is the blue team's");
    // AND once the slot is taken, another stranger finds none
    assert_eq!(
        denial(&hosted.endpoint, &hosted.token("p-d")).await,
        "player p-d is not in this session, and it has no open slot"
    );
    // AND p-b, back too late, finds their slot taken: the team stays at its size
    assert_eq!(
        denial(&hosted.endpoint, &hosted.token("p-b")).await,
        "player p-b is not in this session, and it has no open slot"
    );
    let (a, c) = (player(a, Some(0.05), 3), player(c, Some(0.05), 4));
    let told = outcome(a).await;
    assert_eq!(outcome(c).await, told);

    // THEN the game ran to its end: p-b keeps what they scored (nothing), p-c played for blue
    assert!(seen_tick < 100);
    let score = |p: &str| told.scores[&PlayerId::from(p)];
    assert_eq!(score("p-b"), 0.0);
    assert!(score("p-c") > 0.0, "{told:?}");
    assert_eq!(
        told.teams[1].players,
        vec![PlayerId::from("p-b"), PlayerId::from("p-c")]
    );
    assert_eq!(told.teams[1].score, score("p-c"));
    let (reports, kinds) = hosted.reports_until_end().await;
    // AND the service was told of the departure, signed like every report, so it could backfill
    assert_eq!(kinds, ["ready", "playerLeft", "result", "end"]);
    let left = reports.iter().find(|r| r.kind() == "playerLeft").unwrap().json();
    assert_eq!(left, serde_json::json!({"type": "playerLeft", "playerId": "p-b"}));
    let scores = &reports.iter().find(|r| r.kind() == "result").unwrap().json()["result"]["scores"];
    assert_eq!(
        scores.as_object().unwrap().len(),
        3,
        "everyone who played is scored: {scores}"
    );
}

#[tokio::test]
async fn a_player_who_reconnects_mid_game_plays_on_in_their_own_slot() {
    let args = [
        "--ticks-per-second",
        "50",
        "--game-ticks",
        "60",
        "--heartbeat-interval",
        "100ms",
    ];
    let hosted = Hosted::start("s-back", &args).await;
    let a = join(&hosted.endpoint, &hosted.token("p-a")).await;
    let mut b = join(&hosted.endpoint, &hosted.token("p-b")).await;
    let a = player(a, Some(0.05), 5);
    // p-b loses their connection after a few ticks, and comes back with the same token
    for _ in 0..5 {
        b.next().await.unwrap();
    }
    drop(b);
    let b = join(&hosted.endpoint, &hosted.token("p-b")).await;
    assert_eq!(b.welcome().team, "blue");
    let told = outcome(player(b, Some(0.05), 6)).await;
    assert_eq!(outcome(a).await, told);
    assert!(told.scores[&PlayerId::from("p-b")] > 0.0, "{told:?}");
    assert_eq!(
        told.teams[1].players,
        vec![PlayerId::from("p-b")],
        "still one player on blue"
    );
    // AND the service heard both: the slot opened, then closed again
    let (_, kinds) = hosted.reports_until_end().await;
    assert_eq!(kinds, ["ready", "playerLeft", "playerReturned", "result", "end"]);
}

#[tokio::test]
async fn the_lobby_timer_starts_the_game_with_the_players_present() {
    let mut args = FAST.to_vec();
    args.extend(["--lobby-timeout", "500ms"]);
    let hosted = Hosted::start("s-timer", &args).await;

    // GIVEN only one of the two players shows up
    let mut a = join(&hosted.endpoint, &hosted.token("p-a")).await;
    // WHEN the lobby timer runs out, the game starts without the other (an aim before it is refused)
    a.send_text(r#"{"type":"aim","tick":0,"x":0.5,"y":0.5}"#).await.unwrap();
    assert!(matches!(a.next().await.unwrap(), GameEvent::Refused(r) if r.contains("not started")));
    let told = outcome(player(a, Some(0.05), 7)).await;
    // THEN the absent player scores 0, and the present one wins
    assert_eq!(told.winners, ["red"]);
    assert_eq!(told.scores[&PlayerId::from("p-b")], 0.0);
    let (reports, kinds) = hosted.reports_until_end().await;
    assert_eq!(kinds, ["ready", "result", "end"]);
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
        .args(["--player", "p-a,p-b", "--lobby-timeout", "10s"])
        .args(FAST)
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

    // Without teams in the assignment, each player plays alone: free-for-all.
    let a = join(&endpoint, &token(&secret, "s-cli", "p-a")).await;
    assert_eq!(a.welcome().team, "p-a");
    let b = join(&endpoint, &token(&secret, "s-cli", "p-b")).await;
    let (a, b) = (player(a, Some(0.02), 8), player(b, None, 9));
    let told = outcome(a).await;
    outcome(b).await;
    assert_eq!(told.winners, ["p-a"]);

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
    let hosted = Hosted::start("s-again", &FAST).await;

    // GIVEN p-a in the lobby
    let mut first = join(&hosted.endpoint, &hosted.token("p-a")).await;
    // WHEN p-a connects again (a client that lost its connection, say)
    let again = join(&hosted.endpoint, &hosted.token("p-a")).await;
    // THEN the earlier connection is closed, and p-a still counts once: the game waits for p-b
    assert!(first.next().await.is_err(), "the earlier connection is closed");
    let b = join(&hosted.endpoint, &hosted.token("p-b")).await;
    let (a, b) = (player(again, Some(0.02), 10), player(b, None, 11));
    let told = outcome(a).await;
    outcome(b).await;
    assert_eq!(told.winners, ["red"]);
    assert_eq!(told.teams[0].players, vec![PlayerId::from("p-a")]);
}

#[tokio::test]
async fn a_seated_player_who_sends_a_message_too_big_is_closed_with_the_code_for_it() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let hosted = Hosted::start("s-big", &FAST).await;

    // GIVEN p-a seated in the lobby
    let mut socket = raw(&hosted.endpoint).await;
    let hello = serde_json::json!({"type": "hello", "token": hosted.token("p-a")});
    socket.send(Message::text(hello.to_string())).await.unwrap();
    assert_eq!(raw_next(&mut socket).await.unwrap()["type"], "welcome");

    // WHEN it sends a message over the 4 KiB limit
    let _ = socket.send(Message::text("x".repeat(10_000))).await;

    // THEN the server closes the connection with 1009 (message too big), saying the limit
    let close = loop {
        match tokio::time::timeout(STEP, socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    let close = close.unwrap_or_else(|| panic!("a close frame without a code"));
    assert_eq!(close.code, CloseCode::Size);
    assert!(close.reason.contains("at most 4096 bytes"), "{}", close.reason);
}
