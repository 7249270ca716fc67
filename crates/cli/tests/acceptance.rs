//! Acceptance as players meet it from the terminal: `queuematch dev` serving a queue that requires
//! acceptance, two players waiting with `queuematch submit --wait`, told how to accept, and
//! answering with `queuematch accept` / `queuematch decline`.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;

use common::{repo, DevProcess};

/// `queuematch dev` on a free port, serving ranked-1v1 with acceptance required; it and its home
/// are gone when dropped.
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
    let home = std::env::temp_dir().join(format!("qm-acceptance-{name}-{}", std::process::id()));
    let rulesets = home.join("rulesets");
    std::fs::create_dir_all(&rulesets).unwrap_or_else(|e| panic!("{e}"));
    let text =
        std::fs::read_to_string(repo().join("examples/rulesets/ranked-1v1.json")).unwrap_or_else(|e| panic!("{e}"));
    let mut rule_set: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    rule_set["queue"]["acceptance"] = serde_json::json!({"required": true, "timeoutSeconds": 30});
    std::fs::write(rulesets.join("ranked-1v1.json"), rule_set.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let process = DevProcess::spawn(&rulesets, &home, None);
    let url = process.url.clone();
    Dev { process, url, home }
}

/// A waiting `queuematch submit --wait --json`, and the ticket id it says to accept.
struct Waiting {
    child: Child,
    ticket: String,
}

fn submit_and_await_the_match(dev: &Dev, player: &str, skill: u32) -> Waiting {
    let mut child = Command::new(env!("CARGO_BIN_EXE_queuematch"))
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
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let (found, hint) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("match found for ") {
                let ticket = rest.split(':').next().unwrap_or_default().to_owned();
                let _ = found.send(ticket);
            }
        }
    });
    let ticket = hint
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{player} was never told of a match to accept: {e}"));
    Waiting { child, ticket }
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

#[test]
fn both_players_accept_from_the_terminal_and_are_placed() {
    let dev = start_dev("accept");
    // The first player waits alone; the second arrives, and both are told to accept.
    let alice = std::thread::scope(|scope| {
        let alice = scope.spawn(|| submit_and_await_the_match(&dev, "alice", 1500));
        std::thread::sleep(Duration::from_millis(200));
        let bob = submit_and_await_the_match(&dev, "bob", 1510);
        let alice = alice.join().unwrap_or_else(|_| panic!("alice's thread"));
        (alice, bob)
    });
    let (alice, bob) = alice;

    let status = cli(&dev, &["status", &alice.ticket, "--player", "alice"]);
    assert_eq!(json_of(&status)["status"], "REQUIRES_ACCEPTANCE");
    let accepted = cli(&dev, &["accept", &alice.ticket, "--player", "alice"]);
    assert!(accepted.status.success(), "{accepted:?}");
    assert_eq!(json_of(&accepted)["acceptances"]["alice"], "ACCEPT");
    // Nobody answers for someone else: bob's ticket is not alice's to accept.
    let meddling = cli(&dev, &["accept", &bob.ticket, "--player", "alice"]);
    assert!(!meddling.status.success());
    assert!(
        String::from_utf8_lossy(&meddling.stderr).contains("404"),
        "{meddling:?}"
    );
    let accepted = cli(&dev, &["accept", &bob.ticket, "--player", "bob"]);
    assert!(accepted.status.success(), "{accepted:?}");

    for (player, waiting) in [("alice", alice), ("bob", bob)] {
        let output = waiting.child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(output.status.success(), "{player}: {output:?}");
        let ticket = json_of(&output);
        assert_eq!(ticket["status"], "COMPLETED", "{player}: {ticket}");
        assert!(ticket["connection"]["playerToken"].is_string(), "{ticket}");
    }
}

#[test]
fn a_player_who_declines_is_cancelled_and_the_other_searches_again() {
    let dev = start_dev("decline");
    let (alice, bob) = std::thread::scope(|scope| {
        let alice = scope.spawn(|| submit_and_await_the_match(&dev, "alice", 1500));
        std::thread::sleep(Duration::from_millis(200));
        let bob = submit_and_await_the_match(&dev, "bob", 1510);
        (alice.join().unwrap_or_else(|_| panic!("alice's thread")), bob)
    });
    assert!(cli(&dev, &["accept", &alice.ticket, "--player", "alice"])
        .status
        .success());
    let declined = cli(&dev, &["decline", &bob.ticket, "--player", "bob"]);
    assert!(declined.status.success(), "{declined:?}");

    // bob's wait ends CANCELLED (a non-zero exit: not placed), with the reason
    let output = bob.child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!output.status.success());
    let ticket = json_of(&output);
    assert_eq!(ticket["status"], "CANCELLED", "{ticket}");
    assert!(
        ticket["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("bob rejected match")),
        "{ticket}"
    );

    // alice is searching again; she cancels to end her wait
    let mut searching = Value::Null;
    for _ in 0..50 {
        searching = json_of(&cli(&dev, &["status", &alice.ticket, "--player", "alice"]));
        if searching["status"] == "SEARCHING" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(searching["status"], "SEARCHING", "{searching}");
    assert!(cli(&dev, &["cancel", &alice.ticket, "--player", "alice"])
        .status
        .success());
    let output = alice.child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json_of(&output)["status"], "CANCELLED");
}
