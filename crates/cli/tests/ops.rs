//! `queuematch ops` against a real `queuematch dev`: a duel matched and placed on a real game
//! server, then the operators' views, as JSON for scripts and as tables; and a session's detail with its
//! timeline and its workflows' histories from `GET /v1/ops/sessions/{id}`, also drawn by
//! `queuematch ops session ID`; and the DLQ view.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{repo, DevProcess};

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

fn queuematch(dev: &Dev, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .args(args)
        .arg("--home")
        .arg(&dev.home)
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn submit(dev: &Dev, player: &str, skill: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .args(["submit", "--url", &dev.url, "--queue", "ranked-1v1", "--player", player])
        .args([
            "--attr",
            &format!("skill={skill}"),
            "--wait",
            "--json",
            "--timeout",
            "60",
        ])
        .arg("--home")
        .arg(&dev.home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `queuematch ops --json`, parsed.
fn ops_json(dev: &Dev) -> Value {
    let output = queuematch(dev, &["ops", "--url", &dev.url, "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `GET path` with `token`, which must answer 200; its body.
fn runtime_get(dev: &Dev, path: &str, token: &str) -> Value {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .block_on(async {
            let response = reqwest::Client::new()
                .get(format!("{}{path}", dev.url))
                .bearer_auth(token)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(response.status().as_u16(), 200, "{path}");
            response.json().await.unwrap_or_else(|e| panic!("{e}"))
        })
}

#[test]
fn ops_shows_a_placed_duel_in_its_views_and_the_session_with_its_workflow_history() {
    let home = std::env::temp_dir().join(format!("qm-ops-{}", std::process::id()));
    let fast = [
        "--gameserver-arg=--ticks-per-second=200",
        "--gameserver-arg=--game-ticks=20",
    ];
    let process = DevProcess::spawn_with(&repo().join("examples/rulesets"), &home, None, &fast);
    let url = process.url.clone();
    let dev = Dev { process, url, home };

    // GIVEN a duel matched and placed on a real server (nobody connects, so the game waits in its
    // lobby and the session stays ACTIVE)
    let players = [submit(&dev, "ada", 1500), submit(&dev, "bo", 1520)];
    for child in players {
        let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        let ticket: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!(ticket["status"], "COMPLETED", "{ticket}");
    }
    // The tickets are COMPLETED once the session is ACTIVE; the placement workflow's last step
    // (publishing) may still be running.
    let started = Instant::now();
    let views = loop {
        let views = ops_json(&dev);
        if views["queues"]["queues"]
            .as_array()
            .is_some_and(|q| q.iter().any(|q| q["activeSessions"] == 1))
            || started.elapsed() > Duration::from_secs(10)
        {
            break views;
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    // THEN `queuematch ops --json` shows the session, the queues and the metrics of what happened
    let sessions = views["sessions"].as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 1, "{views}");
    let session = &sessions[0];
    assert_eq!(session["queue"], "ranked-1v1");
    assert_eq!(session["status"], "ACTIVE", "{session}");
    assert!(
        session["endpoint"]
            .as_str()
            .is_some_and(|e| e.starts_with("127.0.0.1:")),
        "{session}"
    );
    let mut players: Vec<&str> = session["players"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    players.sort_unstable();
    assert_eq!(players, ["ada", "bo"]);
    let duels = views["queues"]["queues"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["name"] == "ranked-1v1"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (duels["searching"].as_u64(), duels["placing"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(views["queues"]["ticketsQueue"]["dead"], 0);
    let metrics = &views["metrics"]["metrics"];
    assert_eq!(metrics["TicketsStarted"], 2, "{metrics}");
    assert_eq!(metrics["TicketsCompleted"], 2);
    assert_eq!(metrics["CurrentTickets"], 0);
    assert_eq!(metrics["MatchesCreated"], 1);
    assert_eq!(metrics["MatchesPlaced"], 1);
    assert_eq!(metrics["TimeToMatch"]["count"], 2);
    assert_eq!(metrics["TimeToTicketSuccess"]["count"], 2);
    let spread = &views["metrics"]["quality"][0];
    assert_eq!(
        (spread["name"].as_str(), spread["sum"].as_f64()),
        (Some("SkillSpread"), Some(20.0))
    );

    // AND the session's detail has its timeline and its placement workflow, with its steps and the
    // embedded engine's history
    let session_id = session["sessionId"].as_str().unwrap_or_default();
    let token = queuematch(&dev, &["token", "--operator"]);
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    let detail = runtime_get(&dev, &format!("/v1/ops/sessions/{session_id}"), &token);
    let statuses: Vec<&str> = detail["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert_eq!(statuses.first(), Some(&"PLACING"), "{detail}");
    assert_eq!(statuses.last(), Some(&"ACTIVE"), "{statuses:?}");
    let workflows: Vec<&str> = detail["executions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["workflow"].as_str())
        .collect();
    assert_eq!(workflows, ["session-placement"], "{detail}");
    let placement = &detail["executions"][0];
    // The engine may still be on `Publish`, after the step that made the session ACTIVE.
    let placement = if placement["engine"]["status"] == "RUNNING" {
        std::thread::sleep(Duration::from_millis(500));
        &runtime_get(&dev, &format!("/v1/ops/sessions/{session_id}"), &token)["executions"][0]
    } else {
        placement
    };
    assert_eq!(placement["engine"]["status"], "SUCCEEDED", "{placement}");
    let path: Vec<&str> = placement["engine"]["path"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(path.last(), Some(&"Placed"), "{path:?}");
    assert!(placement["engine"]["events"].as_array().is_some_and(|e| !e.is_empty()));
    assert!(placement["steps"].as_array().is_some_and(|s| !s.is_empty()));
    assert_eq!(detail["match"]["queue"], "ranked-1v1");

    // AND `queuematch ops session ID` draws that detail: the timeline in order, the path taken
    let output = queuematch(&dev, &["ops", "session", session_id, "--url", &dev.url]);
    let drawn = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{drawn} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        drawn
            .lines()
            .next()
            .is_some_and(|l| l.contains(session_id) && l.ends_with("ACTIVE")),
        "{drawn}"
    );
    let steps: Vec<&str> = drawn
        .lines()
        .skip_while(|l| !l.starts_with("TIME"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().nth(3).unwrap_or_default())
        .collect();
    let timeline_states: Vec<&str> = detail["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(steps, timeline_states, "{drawn}");
    assert!(
        drawn
            .lines()
            .any(|l| l.starts_with("session-placement") && l.contains("SUCCEEDED") && l.ends_with("> Placed")),
        "{drawn}"
    );
    let output = queuematch(&dev, &["ops", "session", session_id, "--url", &dev.url, "--json"]);
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {output:?}"));
    assert_eq!(json["timeline"], detail["timeline"]);
    // An unknown session is the service's 404, an id that cannot be one is refused before asking
    let output = queuematch(&dev, &["ops", "session", "s-none", "--url", &dev.url]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("404"), "{stderr}");
    let output = queuematch(&dev, &["ops", "session", "../queues", "--url", &dev.url]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("\"../queues\" is not a session id"),
        "{stderr}"
    );

    // AND `queuematch ops histograms` draws the two waits and the duel's 20-point spread
    let output = queuematch(&dev, &["ops", "histograms", "--url", &dev.url]);
    let drawn = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{drawn}");
    assert!(drawn.contains("time to match (s): 2 values"), "{drawn}");
    let spread: Vec<&str> = drawn
        .lines()
        .skip_while(|l| !l.starts_with("skill spread (points): 1 value, mean 20.0"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.ends_with('#'))
        .collect();
    assert_eq!(spread.len(), 1, "one bucket holds the one match: {drawn}");
    assert!(spread[0].trim_start().starts_with("<= 25"), "{drawn}");

    // AND the DLQ view is empty, and redriving it moves nothing
    let output = queuematch(&dev, &["ops", "dlq", "--url", &dev.url]);
    let drawn = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && drawn.starts_with("dead letters: 0 (showing 0;"),
        "{drawn}"
    );
    let output = queuematch(&dev, &["ops", "dlq", "--redrive", "--url", &dev.url]);
    let said = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        said.trim(),
        "moved 0 dead letters back to the tickets queue",
        "{output:?}"
    );
    let output = queuematch(&dev, &["ops", "dlq", "--redrive", "--json", "--url", &dev.url]);
    assert!(!output.status.success(), "--redrive --json must be refused: {output:?}");

    // AND the tables show the same
    let output = queuematch(&dev, &["ops", "--url", &dev.url]);
    assert!(output.status.success());
    let tables = String::from_utf8_lossy(&output.stdout);
    assert!(tables.contains("tickets queue: 0 visible"), "{tables}");
    assert!(tables.lines().any(|l| l.starts_with("ranked-1v1")), "{tables}");
    assert!(
        tables
            .lines()
            .any(|l| l.starts_with(session_id) && l.contains("ACTIVE")),
        "{tables}"
    );
    assert!(
        tables
            .lines()
            .any(|l| l.starts_with("MatchesPlaced") && l.trim_end().ends_with('1')),
        "{tables}"
    );

    // AND `--watch 1` redraws the screen every second, with the same tables
    let mut watch = Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .args(["ops", "--url", &dev.url, "--watch", "1"])
        .arg("--home")
        .arg(&dev.home)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stdout = watch.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (frames, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buffer) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buffer[..n]));
            if text.matches("\x1b[2J").count() >= 3 {
                break;
            }
        }
        let _ = frames.send(text);
    });
    let watched = seen.recv_timeout(Duration::from_secs(10));
    let _ = watch.kill();
    let _ = watch.wait();
    let watched = watched.unwrap_or_else(|_| panic!("--watch 1 drew fewer than 3 frames in 10 s"));
    let frames: Vec<&str> = watched.split("\x1b[2J\x1b[H").filter(|f| !f.is_empty()).collect();
    assert!(frames.len() >= 2, "{watched:?}");
    for frame in &frames[..2] {
        assert!(frame.lines().any(|l| l.starts_with(session_id)), "{frame}");
        assert!(frame.contains("(every 1 s; Ctrl-C to stop)"), "{frame}");
    }

    // AND a player's token is refused with the server's reason, and a bad --watch by clap
    let player = queuematch(&dev, &["token", "--player", "ada"]);
    let player = String::from_utf8_lossy(&player.stdout).trim().to_owned();
    let output = queuematch(&dev, &["ops", "--url", &dev.url, "--json", "--token", &player]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("403") && stderr.contains("operators"), "{stderr}");
    let output = queuematch(&dev, &["ops", "--url", &dev.url, "--watch", "0"]);
    assert!(!output.status.success());
    // … and ends a watch too, rather than being shown again every second
    let output = queuematch(&dev, &["ops", "--url", &dev.url, "--watch", "1", "--token", &player]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("403"));
}

/// `queuematch submit` without waiting: the ticket id it prints.
fn submit_now(dev: &Dev, player: &str, skill: u32) -> String {
    let output = queuematch(
        dev,
        &[
            "submit",
            "--url",
            &dev.url,
            "--queue",
            "ranked-1v1",
            "--player",
            player,
            "--attr",
            &format!("skill={skill}"),
        ],
    );
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Polls `queuematch ops --json` until `done` holds, for at most 20 s.
fn ops_until(dev: &Dev, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let views = ops_json(dev);
        if done(&views) {
            return views;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never {what}: {views}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ops_counts_matches_accepted_and_rejected_and_the_time_to_cancel() {
    // GIVEN ranked-1v1 with acceptance required
    let home = std::env::temp_dir().join(format!("qm-ops-acceptance-{}", std::process::id()));
    let rulesets = home.join("rulesets");
    std::fs::create_dir_all(&rulesets).unwrap_or_else(|e| panic!("{e}"));
    let text =
        std::fs::read_to_string(repo().join("examples/rulesets/ranked-1v1.json")).unwrap_or_else(|e| panic!("{e}"));
    let mut rule_set: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    rule_set["queue"]["acceptance"] = serde_json::json!({"required": true, "timeoutSeconds": 30});
    std::fs::write(rulesets.join("ranked-1v1.json"), rule_set.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let process = DevProcess::spawn(&rulesets, &home, None);
    let url = process.url.clone();
    let dev = Dev { process, url, home };
    let accepting = |n: u64| {
        move |views: &Value| {
            views["queues"]["queues"][0]["requiresAcceptance"].as_u64() == Some(n)
                && views["metrics"]["metrics"]["MatchesCreated"].as_u64() >= Some(1)
        }
    };

    // WHEN one duel is accepted by both players
    let ada = submit_now(&dev, "ada", 1500);
    let bo = submit_now(&dev, "bo", 1510);
    ops_until(&dev, "awaiting acceptance", accepting(2));
    for (ticket, player) in [(&ada, "ada"), (&bo, "bo")] {
        let output = queuematch(&dev, &["accept", ticket, "--player", player, "--url", &dev.url]);
        assert!(output.status.success(), "{output:?}");
    }
    let views = ops_until(&dev, "accepted", |v| {
        v["metrics"]["metrics"]["MatchesAccepted"] == 1 && v["metrics"]["metrics"]["MatchesPlaced"] == 1
    });
    assert_eq!(views["metrics"]["metrics"]["MatchesRejected"], 0, "{views}");

    // AND another is declined by one of its players
    let cy = submit_now(&dev, "cy", 1500);
    let di = submit_now(&dev, "di", 1510);
    ops_until(&dev, "awaiting acceptance again", |v| {
        accepting(2)(v) && v["metrics"]["metrics"]["MatchesCreated"] == 2
    });
    let output = queuematch(&dev, &["accept", &cy, "--player", "cy", "--url", &dev.url]);
    assert!(output.status.success(), "{output:?}");
    let output = queuematch(&dev, &["decline", &di, "--player", "di", "--url", &dev.url]);
    assert!(output.status.success(), "{output:?}");

    // THEN the metrics count one match accepted and placed, one rejected, and di's cancel
    // (cy's ticket leaves the rejected match for a moment before it searches again)
    let views = ops_until(&dev, "rejected, and cy searching again", |v| {
        v["metrics"]["metrics"]["MatchesRejected"] == 1 && v["queues"]["queues"][0]["searching"] == 1
    });
    let metrics = &views["metrics"]["metrics"];
    assert_eq!(metrics["MatchesCreated"], 2, "{metrics}");
    assert_eq!(metrics["MatchesAccepted"], 1);
    assert_eq!(metrics["MatchesPlaced"], 1);
    assert_eq!(metrics["TicketsCancelled"], 1);
    assert_eq!(metrics["TimeToTicketCancel"]["count"], 1);
    assert_eq!(metrics["CurrentTickets"], 1, "cy searches again");
    assert_eq!(views["queues"]["queues"][0]["searching"], 1);

    // AND the rejected match names no session, as none was made; the placed one names its own
    let operator = queuematch(&dev, &["token", "--operator"]);
    let operator = String::from_utf8_lossy(&operator.stdout).trim().to_owned();
    let matches = runtime_get(&dev, "/v1/ops/matches", &operator);
    let sessions: Vec<(String, Value)> = matches["matches"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let players: Vec<&str> = m["teams"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|t| t["players"].as_array().into_iter().flatten().filter_map(Value::as_str))
                .collect();
            (players.join(","), m["sessionId"].clone())
        })
        .collect();
    let of = |players: &[&str]| {
        sessions
            .iter()
            .find(|(p, _)| players.iter().all(|player| p.contains(player)))
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("no match of {players:?}: {matches}"))
    };
    assert_eq!(of(&["cy", "di"]), Value::Null, "{matches}");
    let placed = of(&["ada", "bo"]);
    let placed = placed.as_str().unwrap_or_else(|| panic!("{matches}"));
    assert_eq!(
        runtime_get(&dev, &format!("/v1/ops/sessions/{placed}"), &operator)["session"]["sessionId"],
        placed
    );
}
