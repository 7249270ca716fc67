//! `queuematch dev --data-dir` under a `kill -9`: tickets are submitted over HTTP by concurrent
//! clients, the server is killed mid-load, restarted on the same directory, and every ticket that was
//! answered 202 must still be there, in exactly one status, readable with the token minted before the
//! restart. Tickets in flight at the kill come back through their visibility timeout (30 s), so this
//! test runs on real time for up to a minute and a half.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{repo, DevProcess};

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("qm-restart-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `queuematch dev --data-dir` on a free port; killed (SIGKILL) when dropped.
struct Dev {
    process: DevProcess,
    url: String,
}

impl Dev {
    fn start(home: &Path, data: &Path) -> Dev {
        let process = DevProcess::spawn(&repo().join("examples/rulesets"), home, Some(data));
        let url = process.url.clone();
        Dev { process, url }
    }

    /// `kill -9`: no shutdown of any kind.
    fn kill(mut self) {
        self.process.stop().unwrap_or_else(|e| panic!("kill -9: {e}"));
    }
}

fn token(home: &Path, player: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .args(["token", "--player", player, "--home"])
        .arg(home)
        .output()
        .unwrap_or_else(|e| panic!("queuematch token: {e}"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A ticket answered 202.
#[derive(Debug, Clone)]
struct Accepted {
    id: String,
    player: String,
    token: String,
}

/// The players: most far apart in skill (they wait), a few in close pairs (they are matched and
/// placed on real game servers), so the kill finds tickets at every stage.
/// The pairs come first, so that they are admitted, matched and placed while the rest still arrive.
fn players() -> Vec<(String, f64)> {
    let mut players = Vec::new();
    for pair in 0..4 {
        let skill = 500_000.0 + 5_000.0 * f64::from(pair);
        players.push((format!("pair-{pair}-a"), skill));
        players.push((format!("pair-{pair}-b"), skill + 10.0));
    }
    players.extend((0..112).map(|i| (format!("far-{i}"), 1_000.0 * f64::from(i))));
    players
}

/// Each client's pause between tickets: the load lasts about 4 s, and the kill comes after 2.
const PACE: Duration = Duration::from_millis(250);
const KILL_AFTER: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_ticket_accepted_before_a_kill_9_is_accounted_for_after_the_restart() {
    let home = Scratch::new("home");
    let data = Scratch::new("data");
    let players = players();
    let tokens: BTreeMap<String, String> = players.iter().map(|(p, _)| (p.clone(), token(&home.0, p))).collect();

    let dev = Dev::start(&home.0, &data.0);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<Accepted>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    // Players whose ticket was sent, answered or not: one in flight at the kill may have been admitted.
    let sent_for = Arc::new(std::sync::Mutex::new(BTreeSet::<String>::new()));
    // Eight clients share the players; each sends until its share is done or the server is gone.
    let mut clients = Vec::new();
    for lane in 0..8 {
        let share: Vec<(String, f64)> = players.iter().skip(lane).step_by(8).cloned().collect();
        let (client, url, tokens) = (client.clone(), dev.url.clone(), tokens.clone());
        let (accepted, count, sent_for) = (accepted.clone(), count.clone(), sent_for.clone());
        clients.push(tokio::spawn(async move {
            for (player, skill) in share {
                let body = json!({"queue": "ranked-1v1", "players": [{"id": player, "attributes": {"skill": skill}}]});
                let token = tokens[&player].clone();
                sent_for
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(player.clone());
                let sent = client
                    .post(format!("{url}/v1/tickets"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let Ok(response) = sent else { return };
                if response.status() != 202 {
                    continue;
                }
                let Ok(created) = response.json::<Value>().await else {
                    return;
                };
                let id = created["ticketId"].as_str().unwrap_or_default().to_owned();
                accepted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Accepted { id, player, token });
                count.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(PACE).await;
            }
        }));
    }
    // Kill it mid-load, while the clients are still sending.
    let started = Instant::now();
    while started.elapsed() < KILL_AFTER || count.load(Ordering::SeqCst) < players.len() / 4 {
        assert!(started.elapsed() < Duration::from_secs(60), "the load never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    dev.kill();
    for c in clients {
        c.await.unwrap_or_else(|e| panic!("a client panicked: {e}"));
    }
    let accepted = accepted.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(accepted.len() >= players.len() / 4, "{} accepted", accepted.len());
    assert!(
        accepted.len() < players.len(),
        "the kill came after the load: nothing was in flight"
    );

    let dev = Dev::start(&home.0, &data.0);
    // Every accepted ticket is found, with the token minted before the restart. One in flight at the
    // kill is invisible until its message is received again, after the visibility timeout.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut missing: Vec<&Accepted> = accepted.iter().collect();
    let mut found: BTreeMap<String, Value> = BTreeMap::new();
    let mut first_look = None;
    while !missing.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} of {} accepted tickets lost after the restart: {:?}",
            missing.len(),
            accepted.len(),
            missing.iter().map(|a| &a.id).collect::<Vec<_>>()
        );
        let mut still = Vec::new();
        for ticket in missing {
            let response = client
                .get(format!("{}/v1/tickets/{}", dev.url, ticket.id))
                .bearer_auth(&ticket.token)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET after the restart: {e}"));
            match response.status().as_u16() {
                200 => {
                    let shown: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
                    found.insert(ticket.id.clone(), shown);
                }
                404 => still.push(ticket),
                other => panic!("GET {} answered {other}", ticket.id),
            }
        }
        missing = still;
        first_look.get_or_insert(missing.len());
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let statuses = [
        "SEARCHING",
        "REQUIRES_ACCEPTANCE",
        "PLACING",
        "COMPLETED",
        "CANCELLED",
        "TIMED_OUT",
        "FAILED",
    ];
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for ticket in &accepted {
        let shown = &found[&ticket.id];
        assert_eq!(shown["ticketId"], json!(ticket.id), "{shown}");
        assert_eq!(shown["players"], json!([ticket.player]), "{shown}");
        let status = shown["status"].as_str().unwrap_or_else(|| panic!("no status: {shown}"));
        assert!(statuses.contains(&status), "{status}");
        // A ticket that failed says why; none of these should fail at all (each player sent one).
        assert_ne!(status, "FAILED", "{shown}");
        *by_status.entry(status.to_owned()).or_default() += 1;
    }
    eprintln!(
        "after the restart: {by_status:?} of {} accepted; {} not yet admitted at the first look",
        accepted.len(),
        first_look.unwrap_or(0)
    );

    // A token minted before the restart still opens the API for a new ticket. The player is one whose
    // ticket was never sent: one sent but unanswered at the kill may have been admitted, and then a
    // second ticket is rightly refused (409, an active ticket).
    let sent_for = sent_for.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (player, _) = players
        .iter()
        .find(|(p, _)| !sent_for.contains(p))
        .unwrap_or_else(|| panic!("every player's ticket was sent before the kill"));
    let response = client
        .post(format!("{}/v1/tickets", dev.url))
        .bearer_auth(&tokens[player])
        .json(&json!({"queue": "ranked-1v1", "players": [{"id": player}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
}

/// A data directory that lost one of its two files is refused at start, naming both, rather than
/// started with the survivor and an empty partner; so is a data directory that is a file.
#[test]
fn a_data_directory_missing_a_file_is_refused_at_start() {
    let scratch = Scratch::new("incomplete");
    let data = scratch.0.join("data");
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(data.join("queue.redb"), b"the survivor").unwrap_or_else(|e| panic!("{e}"));
    let start = |data: &Path| {
        Command::new(env!("CARGO_BIN_EXE_queuematch"))
            .current_dir(repo())
            .args(["dev", "--port", "0", "--rulesets"])
            .arg(repo().join("examples/rulesets"))
            .arg("--home")
            .arg(scratch.0.join("home"))
            .arg("--data-dir")
            .arg(data)
            .output()
            .unwrap_or_else(|e| panic!("queuematch dev does not run: {e}"))
    };
    let refused = start(&data);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("queue.redb is there but") && stderr.contains("store.redb is not"),
        "{stderr}"
    );
    let file = scratch.0.join("a-file");
    std::fs::write(&file, b"").unwrap_or_else(|e| panic!("{e}"));
    let refused = start(&file);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is a file, not a directory"), "{stderr}");
}
