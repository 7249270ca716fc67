//! The whole local stack as a new user meets it: `queuematch dev`, then players submitted with
//! `queuematch submit --wait`, then each player's token presented to the game server it was given.

use queuematch_gameserver::client::{ClientError, GameClient};
use queuematch_gameserver::game;
use rand::SeedableRng;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use common::{repo, DevProcess};

/// `queuematch dev` on a free port with a home of its own; both gone when dropped.
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

fn start_dev(name: &str) -> Dev {
    let home = std::env::temp_dir().join(format!("qm-dev-stack-{name}-{}", std::process::id()));
    // Short games: 100 ticks a second, 50 ticks long.
    let fast = [
        "--gameserver-arg=--ticks-per-second=100",
        "--gameserver-arg=--game-ticks=50",
    ];
    let process = DevProcess::spawn_with(&repo().join("examples/rulesets"), &home, None, &fast);
    let url = process.url.clone();
    Dev { process, url, home }
}

/// Starts `queuematch submit --wait --json` for one player.
fn submit(dev: &Dev, queue: &str, player: &str, attributes: &[String]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_queuematch"));
    command
        .args([
            "submit",
            "--url",
            &dev.url,
            "--queue",
            queue,
            "--player",
            player,
            "--wait",
            "--json",
            "--timeout",
            "60",
        ])
        .arg("--home")
        .arg(&dev.home);
    for attribute in attributes {
        command.args(["--attr", attribute]);
    }
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn finished(child: Child, player: &str) -> Value {
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{player}: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{player}: {e}: {stdout}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// What the game server answers to `token`: the player it let in, or why not. It hangs up after.
fn present(address: &str, port: u64, token: &str) -> Result<String, String> {
    runtime().block_on(async {
        let port = u16::try_from(port).unwrap_or_else(|e| panic!("{e}"));
        match GameClient::connect_with(address, port, token, Duration::from_secs(5)).await {
            Ok(client) => {
                let player = client.welcome().player_id.to_string();
                client.close().await;
                Ok(player)
            }
            Err(ClientError::Denied(reason)) => Err(reason),
            Err(other) => panic!("{other}"),
        }
    })
}

#[test]
fn ten_duellists_and_ten_five_a_side_players_are_all_placed_on_real_servers() {
    let dev = start_dev("happy");
    let roles = ["tank", "healer", "dps", "dps", "dps"];
    let mut children = Vec::new();
    for i in 0..10 {
        let player = format!("duel-{i}");
        let attributes = vec![format!("skill={}", 1500 + i * 7)];
        children.push((player.clone(), submit(&dev, "ranked-1v1", &player, &attributes)));
    }
    for i in 0..10 {
        let player = format!("squad-{i}");
        let attributes = vec![
            format!("skill={}", 1500 + i * 5),
            format!("roles=[\"{}\"]", roles[i % 5]),
        ];
        children.push((player.clone(), submit(&dev, "ranked-5v5", &player, &attributes)));
    }
    let tickets: Vec<(String, Value)> = children
        .into_iter()
        .map(|(p, c)| (p.clone(), finished(c, &p)))
        .collect();

    // Group the players by the server they were given.
    let mut servers: std::collections::BTreeMap<u64, Vec<(&str, &str)>> = std::collections::BTreeMap::new();
    for (player, ticket) in &tickets {
        assert_eq!(ticket["status"], "COMPLETED", "{player}: {ticket}");
        let connection = &ticket["connection"];
        assert_eq!(connection["address"], "127.0.0.1", "{player}: {ticket}");
        let port = connection["port"]
            .as_u64()
            .unwrap_or_else(|| panic!("{player}: no port in {ticket}"));
        let token = connection["playerToken"]
            .as_str()
            .unwrap_or_else(|| panic!("{player}: no token in {ticket}"));
        servers.entry(port).or_default().push((player.as_str(), token));
    }
    // Five duels and one five-against-five, each on a server of its own.
    assert_eq!(servers.len(), 6, "{servers:?}");
    let ports: Vec<u64> = servers.keys().copied().collect();
    for (i, (port, players)) in servers.iter().enumerate() {
        // Before its game starts (it starts once every player is in), each server refuses a forged
        // token and another session's token...
        let forged = present("127.0.0.1", *port, "eyJzZXNzaW9uSWQiOiJ4In0.Zm9yZ2Vk");
        assert!(forged.is_err(), "a forged token is refused: {forged:?}");
        let other_port = ports[(i + 1) % ports.len()];
        let (_, other_token) = servers[&other_port][0];
        let other = present("127.0.0.1", *port, other_token);
        assert!(other.is_err(), "another session's token is refused: {other:?}");
        // ...and accepts each of its players' own.
        for (player, token) in players {
            assert_eq!(
                present("127.0.0.1", *port, token),
                Ok(player.to_string()),
                "{player}'s own token"
            );
        }
    }
}

#[test]
fn a_party_is_placed_together_and_push_tells_its_leader_every_step_in_order() {
    let dev = start_dev("party");
    let watch = Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .args([
            "watch", "--url", &dev.url, "--player", "leader", "--json", "--count", "5",
        ])
        .arg("--home")
        .arg(&dev.home)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // Let the watcher subscribe before anything happens.
    std::thread::sleep(Duration::from_millis(500));

    let mut party = Command::new(env!("CARGO_BIN_EXE_queuematch"));
    party
        .args([
            "submit", "--url", &dev.url, "--queue", "coop-4", "--player", "leader", "--member", "friend",
        ])
        .args(["--wait", "--json", "--timeout", "60", "--home"])
        .arg(&dev.home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let party = party.spawn().unwrap_or_else(|e| panic!("{e}"));
    let solos: Vec<Child> = ["solo-1", "solo-2"]
        .iter()
        .map(|p| submit(&dev, "coop-4", p, &[]))
        .collect();

    let ticket = finished(party, "leader");
    assert_eq!(ticket["status"], "COMPLETED", "{ticket}");
    assert_eq!(ticket["players"], serde_json::json!(["leader", "friend"]));
    let solo_tickets: Vec<Value> = solos.into_iter().map(|c| finished(c, "solo")).collect();
    for solo in &solo_tickets {
        assert_eq!(
            solo["connection"]["port"], ticket["connection"]["port"],
            "one squad, one server: {solo}"
        );
    }

    let output = watch.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let steps: Vec<String> = events
        .iter()
        .map(|e| match e["status"].as_str() {
            Some(status) => format!("{} {status}", e["type"].as_str().unwrap_or("?")),
            None => e["type"].as_str().unwrap_or("?").to_owned(),
        })
        .collect();
    assert_eq!(
        steps,
        [
            "MatchmakingSearching",
            "PotentialMatchCreated",
            "SessionStatusChanged PLACING",
            "SessionStatusChanged ACTIVE",
            "MatchmakingSucceeded"
        ],
        "{events:#?}"
    );
}

#[test]
fn a_member_with_a_forged_party_token_is_refused_at_once_with_the_reason() {
    // On AWS this ticket would be accepted and then FAILED at admission; the dev server refuses it
    // up front (403), naming the member's partyToken.
    let dev = start_dev("no-party-token");
    let mut command = Command::new(env!("CARGO_BIN_EXE_queuematch"));
    command
        .args([
            "submit",
            "--url",
            &dev.url,
            "--queue",
            "coop-4",
            "--player",
            "leader",
            "--member",
            "friend=forged",
        ])
        .args(["--wait", "--json", "--timeout", "30", "--home"])
        .arg(&dev.home);
    let output = command.output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(2), "refused, not queued");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("403 Forbidden"), "{stderr}");
    assert!(stderr.contains("/players/1/partyToken"), "{stderr}");
    assert!(stderr.contains("the party token of friend is refused"), "{stderr}");
}

#[test]
fn a_played_game_is_reported_and_ends_its_session_so_its_players_can_queue_again() {
    let dev = start_dev("played");
    let children: Vec<(String, Child)> = [("ann", 1500), ("ben", 1510)]
        .iter()
        .map(|(p, skill)| {
            (
                p.to_string(),
                submit(&dev, "ranked-1v1", p, &[format!("skill={skill}")]),
            )
        })
        .collect();
    let tickets: Vec<(String, Value)> = children
        .into_iter()
        .map(|(p, c)| (p.clone(), finished(c, &p)))
        .collect();
    let port = tickets[0].1["connection"]["port"]
        .as_u64()
        .unwrap_or_else(|| panic!("no port: {:?}", tickets[0]));

    // ann aims well, ben at random: ann wins.
    let outcomes = runtime().block_on(async {
        let mut games = Vec::new();
        for (i, (player, ticket)) in tickets.iter().enumerate() {
            let token = ticket["connection"]["playerToken"].as_str().unwrap_or("").to_owned();
            let client = GameClient::connect("127.0.0.1", port as u16, &token)
                .await
                .unwrap_or_else(|e| panic!("{player}: {e}"));
            assert_eq!(client.welcome().player_id.as_str(), player);
            games.push(tokio::spawn(async move {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
                client
                    .play(|view| {
                        Some(if i == 0 {
                            game::aim_at(view, 0.02, &mut rng)
                        } else {
                            game::random_aim(&mut rng)
                        })
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
            }));
        }
        let mut outcomes = Vec::new();
        for game in games {
            outcomes.push(game.await.unwrap_or_else(|e| panic!("{e}")));
        }
        outcomes
    });
    assert_eq!(outcomes[0], outcomes[1], "both are told the same");
    let ann_team = &outcomes[0]
        .teams
        .iter()
        .find(|t| t.players.iter().any(|p| p.as_str() == "ann"));
    let ann_team = ann_team.unwrap_or_else(|| panic!("ann plays: {:?}", outcomes[0]));
    assert_eq!(outcomes[0].winners, vec![ann_team.name.clone()], "{:?}", outcomes[0]);

    // The server reports the result and the end; the session's players are then free to queue again
    // (while it is ACTIVE, a second ticket is refused with 409, or, if it slips past that check,
    // fails at admission: one active ticket or session per player).
    let queuematch = |args: &[&str]| -> Value {
        let output = Command::new(env!("CARGO_BIN_EXE_queuematch"))
            .args(args)
            .args(["--url", &dev.url, "--player", "ann", "--json", "--home"])
            .arg(&dev.home)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    };
    let mut requeued = None;
    for _ in 0..20 {
        let created = queuematch(&["submit", "--queue", "ranked-1v1", "--attr", "skill=1500"]);
        let Some(id) = created["ticketId"].as_str().map(str::to_owned) else {
            // Refused (409) while the session is still ACTIVE.
            std::thread::sleep(Duration::from_millis(500));
            continue;
        };
        // Admission is asynchronous: give it a batching window or two.
        let mut shown = Value::Null;
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(100));
            shown = queuematch(&["status", &id]);
            if shown["status"].is_string() {
                break;
            }
        }
        if shown["status"] == "SEARCHING" {
            requeued = Some(shown);
            break;
        }
        assert_eq!(shown["status"], "FAILED", "{shown}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        requeued.is_some(),
        "ann could never queue again: her session never ended"
    );
}
