//! `queuematch bots` against a real `queuematch dev`: bots queue, are placed on real game-server
//! processes, play, and their results are reported and rated; then the ratings are read back.

mod common;

use common::{repo, DevProcess};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// `queuematch dev` with short games, on a free port with a home of its own; both gone when dropped.
struct Dev {
    process: DevProcess,
    home: PathBuf,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.process.stop();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn start_dev(name: &str, extra: &[&str]) -> Dev {
    let home = std::env::temp_dir().join(format!("qm-bots-{name}-{}", std::process::id()));
    let process = DevProcess::spawn_with(&repo().join("examples/rulesets"), &home, None, extra);
    Dev { process, home }
}

/// Runs `queuematch bots … --json` to its end and reads its summary.
fn bots(dev: &Dev, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .arg("bots")
        .args(["--url", &dev.process.url, "--json", "--timeout", "120"])
        .arg("--rulesets")
        .arg(repo().join("examples/rulesets"))
        .arg("--home")
        .arg(&dev.home)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("queuematch bots does not run: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    assert!(output.status.success(), "the bots failed: {summary:#}");
    summary
}

fn get(dev: &Dev, path: &str, token: &str) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", dev.process.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    })
}

fn token(dev: &Dev, who: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .arg("token")
        .args(who)
        .arg("--home")
        .arg(&dev.home)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn number(value: &Value, what: &str) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {value}"))
}

#[test]
fn twenty_bots_play_two_five_a_side_sessions_on_real_servers_and_are_rated() {
    let dev = start_dev(
        "5v5",
        &[
            "--gameserver-arg=--ticks-per-second=100",
            "--gameserver-arg=--game-ticks=40",
        ],
    );
    let operator = token(&dev, &["--operator"]);
    // Nobody has a rating before playing.
    assert_eq!(get(&dev, "/v1/players/squad-1/ratings", &operator).0, 404);

    let summary = bots(
        &dev,
        &[
            "--queue",
            "ranked-5v5",
            "--players",
            "20",
            "--games",
            "1",
            "--prefix",
            "squad",
        ],
    );

    // The bots' summary: 20 players, each played one game, in two sessions on two servers.
    assert_eq!(summary["players"], 20, "{summary:#}");
    assert_eq!(summary["gamesPlayed"], 20, "{summary:#}");
    assert_eq!(summary["failed"], 0, "{summary:#}");
    assert_eq!(summary["sessions"], 2, "{summary:#}");
    let servers = summary["servers"].as_object().unwrap_or_else(|| panic!("{summary:#}"));
    assert_eq!(servers.len(), 2);
    let addresses: std::collections::BTreeSet<&str> = servers.values().filter_map(Value::as_str).collect();
    assert_eq!(addresses.len(), 2, "each session on a server of its own: {servers:?}");
    for figure in ["timeToMatchMs", "timeToServerMs"] {
        let p50 = number(&summary[figure]["p50"], figure);
        let p95 = number(&summary[figure]["p95"], figure);
        assert!(0.0 < p50 && p50 <= p95, "{figure}: {summary:#}");
    }
    assert!(
        summary["timeToMatchMs"]["p50"].as_u64() <= summary["timeToServerMs"]["p50"].as_u64(),
        "a match comes before its server"
    );
    assert_eq!(summary["rated"], 20, "{summary:#}");
    let rho = number(&summary["spearman"], "spearman");
    assert!((-1.0..=1.0).contains(&rho));

    // Each team's result moved its players' ratings: winners up from the initial 1500, losers down.
    let bots = summary["bots"].as_array().unwrap_or_else(|| panic!("{summary:#}"));
    let winners = bots.iter().filter(|b| b["wins"] == 1).count();
    assert_eq!(winners, 10, "one team of five won each session: {summary:#}");
    for bot in bots {
        let rating = number(&bot["rating"], "rating");
        if bot["wins"] == 1 {
            assert!(rating > 1500.0, "{bot}");
        } else {
            assert!(rating < 1500.0, "{bot}");
        }
    }

    // The ratings read back over the API: one game each, in this queue.
    for bot in bots.iter().take(5) {
        let player = bot["playerId"].as_str().unwrap_or_default();
        let (status, view) = get(&dev, &format!("/v1/players/{player}/ratings"), &operator);
        assert_eq!(status, 200, "{view}");
        let rating = &view["ratings"][0];
        assert_eq!(rating["queue"], "ranked-5v5");
        assert_eq!(rating["games"], 1, "{view}");
        assert_eq!(rating["conservativeEstimate"], bot["conservativeEstimate"]);
        // A player reads their own too.
        let own = token(&dev, &["--player", player]);
        assert_eq!(get(&dev, &format!("/v1/players/{player}/ratings"), &own).0, 200);
    }

    // Every server was released after its session: its process is gone, so its port is closed.
    let deadline = Instant::now() + Duration::from_secs(20);
    for address in addresses {
        while std::net::TcpStream::connect(address).is_ok() {
            assert!(Instant::now() < deadline, "the server at {address} was never released");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `ranked-1v1` with its skill window widened after 1, 3 and 6 s instead of 10, 30 and 60: as
/// ratings spread, a bot with no close rival waits for an expansion, and the rule set's own schedule
/// spends most of a short run waiting. What is rated, and how, is unchanged.
fn quick_duels() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qm-bots-rulesets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let text =
        std::fs::read_to_string(repo().join("examples/rulesets/ranked-1v1.json")).unwrap_or_else(|e| panic!("{e}"));
    let mut rule_set: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    // The last step admits any pair: near the end, the only bots still owed a game may be the
    // strongest and the weakest, rated further apart than 800 points, and they must still meet.
    rule_set["expansions"][0]["steps"] = serde_json::json!([
        {"waitTimeSeconds": 1, "value": 200},
        {"waitTimeSeconds": 3, "value": 400},
        {"waitTimeSeconds": 6, "value": 800},
        {"waitTimeSeconds": 10, "value": 5000}
    ]);
    std::fs::write(dir.join("ranked-1v1.json"), rule_set.to_string()).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// Ratings learn: bots of hidden skill play duels, and their ratings come to rank them.
///
/// The figure is 500 games among 50 bots on the `ranked-1v1` of `examples/rulesets`
/// (`queuematch bots --queue ranked-1v1 --players 50 --games 20`); that run's figures are in
/// BENCHMARKS.md. It takes minutes, most of them spent waiting for the rule set's expansions, so CI
/// runs 50 games among 20 bots on the quicker schedule of [`quick_duels`], with the same bar: the
/// game is decisive enough (a better aim wins most duels) that five games a bot already order them.
#[test]
fn ratings_come_to_rank_the_bots_by_their_hidden_skill_on_ranked_1v1() {
    let rulesets = quick_duels();
    let home = std::env::temp_dir().join(format!("qm-bots-learn-{}", std::process::id()));
    let process = DevProcess::spawn_with(
        &rulesets,
        &home,
        None,
        &[
            "--gameserver-arg=--ticks-per-second=200",
            "--gameserver-arg=--game-ticks=40",
            "--max-servers=32",
        ],
    );
    let dev = Dev { process, home };
    let summary = bots(
        &dev,
        &[
            "--queue",
            "ranked-1v1",
            "--players",
            "20",
            "--games",
            "5",
            "--seed",
            "8",
            "--prefix",
            "duel",
        ],
    );
    let _ = std::fs::remove_dir_all(&rulesets);
    let rho = number(&summary["spearman"], "spearman");
    assert_eq!(summary["failed"], 0, "{summary:#}");
    assert_eq!(summary["gamesPlayed"], 100, "{summary:#}");
    assert_eq!(summary["sessions"], 50, "{summary:#}");
    assert_eq!(summary["rated"], 20, "{summary:#}");
    assert!(rho >= 0.8, "Spearman(rating, hidden skill) = {rho}: {summary:#}");
}

/// Fewer bots than the queue's smallest match, or no time to play, are refused before anything is
/// asked of the service (no server runs here).
#[test]
fn bots_that_could_never_play_are_refused() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_queuematch"))
            .arg("bots")
            .args(["--url", "http://127.0.0.1:9", "--rulesets"])
            .arg(repo().join("examples/rulesets"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("queuematch bots does not run: {e}"))
    };
    for (args, says) in [
        (
            &["--queue", "ranked-1v1", "--players", "1"][..],
            "queue ranked-1v1 forms no match of fewer than 2 players",
        ),
        // battle-royale-60 starts short after expansions, at 24 players.
        (
            &["--queue", "battle-royale-60", "--players", "23"][..],
            "fewer than 24 players",
        ),
        (
            &["--queue", "ranked-1v1", "--players", "2", "--timeout", "0"][..],
            "--timeout",
        ),
    ] {
        let output = run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
