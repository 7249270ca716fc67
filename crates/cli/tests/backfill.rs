//! Backfill on the real stack: `queuematch dev` with its real game-server processes, players on the
//! game's WebSocket. A player quits a live game; the server reports the open slot; the next ticket
//! is matched into it before a new match can form, connects with the token its ticket shows, and
//! plays the rest of the game.

use queuematch_gameserver::client::GameClient;
use queuematch_gameserver::game;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;

use common::DevProcess;

struct Dev {
    process: DevProcess,
    url: String,
    home: PathBuf,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.process.stop();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// `queuematch dev` serving `duo`: one team of two, anyone with anyone, AUTOMATIC backfill; games of
/// 15 s, long enough for a replacement to arrive and play.
fn start_dev() -> Dev {
    let home = std::env::temp_dir().join(format!("qm-backfill-{}", std::process::id()));
    let rulesets = home.join("rulesets");
    std::fs::create_dir_all(&rulesets).unwrap_or_else(|e| panic!("{e}"));
    let duo = json!({
        "name": "duo",
        "ruleLanguageVersion": "1.0",
        "playerAttributes": [{"name": "skill", "type": "number", "default": 1500}],
        "teams": [{"name": "squad", "minPlayers": 2, "maxPlayers": 2}],
        "rules": [{"name": "fair", "type": "distance", "attribute": "skill", "maxDistance": 1000}],
        "queue": {"timeoutSeconds": 120, "placementTimeoutSeconds": 60, "backfillMode": "AUTOMATIC"}
    });
    std::fs::write(rulesets.join("duo.json"), duo.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let process = DevProcess::spawn_with(
        &rulesets,
        &home,
        None,
        &[
            "--warm-servers",
            "2",
            "--gameserver-arg=--ticks-per-second=20",
            "--gameserver-arg=--game-ticks=300",
        ],
    );
    let url = process.url.clone();
    Dev { process, url, home }
}

fn cli(dev: &Dev, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .args(args)
        .args(["--url", &dev.url, "--json", "--home"])
        .arg(&dev.home)
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn json_of(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&output.stderr)))
}

/// Queues `player` in `duo`; the ticket's id.
fn submit(dev: &Dev, player: &str) -> String {
    let output = cli(dev, &["submit", "--queue", "duo", "--player", player]);
    assert!(output.status.success(), "{output:?}");
    json_of(&output)["ticketId"]
        .as_str()
        .unwrap_or_else(|| panic!("no ticketId: {output:?}"))
        .to_owned()
}

/// The ticket as its player reads it, once it is visible (admission is asynchronous).
fn status(dev: &Dev, ticket: &str, player: &str) -> Option<Value> {
    let output = cli(dev, &["status", ticket, "--player", player]);
    output.status.success().then(|| json_of(&output))
}

/// Polls the ticket until it is `wanted`, for at most `within`.
fn await_status(dev: &Dev, ticket: &str, player: &str, wanted: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        last = status(dev, ticket, player);
        if last.as_ref().is_some_and(|t| t["status"] == wanted) {
            return last.unwrap_or_default();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{player}'s ticket {ticket} is not {wanted} within {within:?}: {last:?}")
}

/// Where a COMPLETED ticket says to connect.
fn connection(ticket: &Value) -> (String, u16, String) {
    let c = &ticket["connection"];
    let port = c["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    match (c["address"].as_str(), port, c["playerToken"].as_str()) {
        (Some(address), Some(port), Some(token)) => (address.to_owned(), port, token.to_owned()),
        _ => panic!("no connection in {ticket}"),
    }
}

#[test]
fn a_player_who_quits_a_live_game_is_replaced_by_the_next_ticket_before_a_new_match_forms() {
    let dev = start_dev();
    // GIVEN alice and bob matched and placed on one game server
    let alice_ticket = submit(&dev, "alice");
    let bob_ticket = submit(&dev, "bob");
    let alice = await_status(&dev, &alice_ticket, "alice", "COMPLETED", Duration::from_secs(30));
    let bob = await_status(&dev, &bob_ticket, "bob", "COMPLETED", Duration::from_secs(30));
    let (address, port, alice_token) = connection(&alice);
    let (_, bob_port, bob_token) = connection(&bob);
    assert_eq!(port, bob_port, "one session for both");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let alice_client = runtime
        .block_on(GameClient::connect(&address, port, &alice_token))
        .unwrap_or_else(|e| panic!("alice connects: {e}"));
    let mut bob_client = runtime
        .block_on(GameClient::connect(&address, port, &bob_token))
        .unwrap_or_else(|e| panic!("bob connects: {e}"));
    let session = alice_client.welcome().session_id.clone();
    let alice_game = runtime.spawn(async move {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
        alice_client.play(|view| Some(game::aim_at(view, 0.02, &mut rng))).await
    });
    // WHEN bob quits once the game is under way
    runtime.block_on(async {
        for _ in 0..10 {
            bob_client.next().await.unwrap_or_else(|e| panic!("bob plays: {e}"));
        }
        bob_client.close().await;
    });
    // (the server's `playerLeft` report is on its way; give it a moment to land)
    std::thread::sleep(Duration::from_millis(1_500));

    // AND carol, then dave, ask for a match: together they could form a new one
    let carol_ticket = submit(&dev, "carol");
    std::thread::sleep(Duration::from_millis(300));
    let dave_ticket = submit(&dev, "dave");

    // THEN carol, the older, is matched into bob's open slot on the running server
    let carol = await_status(&dev, &carol_ticket, "carol", "COMPLETED", Duration::from_secs(20));
    let (carol_address, carol_port, carol_token) = connection(&carol);
    assert_eq!(
        (carol_address.as_str(), carol_port),
        (address.as_str(), port),
        "{carol}"
    );
    assert!(
        carol["reason"]
            .as_str()
            .is_some_and(|r| r.contains("backfilled into session")),
        "{carol}"
    );
    // AND dave is left searching: no new match was formed out of the two of them
    std::thread::sleep(Duration::from_secs(4));
    let dave = status(&dev, &dave_ticket, "dave").unwrap_or_else(|| panic!("dave's ticket is visible"));
    assert_eq!(dave["status"], "SEARCHING", "{dave}");

    // AND carol connects with her token, is seated in the squad and plays to the end
    let carol_client = runtime
        .block_on(GameClient::connect(&carol_address, carol_port, &carol_token))
        .unwrap_or_else(|e| panic!("carol connects with her token: {e}"));
    assert_eq!(carol_client.welcome().session_id, session);
    assert_eq!(carol_client.welcome().team, "squad");
    let carol_outcome = runtime
        .block_on(async {
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
            carol_client.play(|view| Some(game::aim_at(view, 0.02, &mut rng))).await
        })
        .unwrap_or_else(|e| panic!("carol plays: {e}"));
    let alice_outcome = runtime
        .block_on(alice_game)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("alice plays: {e}"));
    assert_eq!(alice_outcome, carol_outcome);
    let players: Vec<&str> = carol_outcome.scores.keys().map(|p| p.as_str()).collect();
    assert_eq!(players, ["alice", "bob", "carol"], "{carol_outcome:?}");
    assert!(
        carol_outcome
            .scores
            .iter()
            .any(|(p, s)| p.as_str() == "carol" && *s > 0.0),
        "{carol_outcome:?}"
    );

    // AND the service took the result with carol in it and ended the session: carol, whose guard
    // the session held, may queue again
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let again = cli(&dev, &["submit", "--queue", "duo", "--player", "carol"]);
        if again.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "carol is still held by the session: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
