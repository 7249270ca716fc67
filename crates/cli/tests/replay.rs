//! `queuematch replay`, run as a developer runs it: the recorded traces of `tests/fixtures/traces/`
//! against their golden match logs, byte for byte, and every event fixture of `tests/fixtures/`
//! against its expected response.

use queuematch_local::replay::trace::{self, Trace};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn traces_dir() -> PathBuf {
    repo().join("tests/fixtures/traces")
}

/// `queuematch replay ARGS…`, from the repository's root (where its default `--rulesets` is).
fn replay(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .arg("replay")
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("queuematch does not run: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The match log of `trace`, replayed by its own process, on stdout.
fn replay_trace(trace: &Path) -> Vec<u8> {
    let out = replay(&["--trace".as_ref(), trace.as_os_str()]);
    assert!(out.status.success(), "{}: {}", trace.display(), text(&out.stderr));
    out.stdout
}

/// Every recorded trace, each with its golden log: `<name>.jsonl` beside `<name>.matches.jsonl`.
fn traces() -> Vec<(PathBuf, PathBuf)> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(traces_dir()).unwrap_or_else(|e| panic!("{}: {e}", traces_dir().display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if let Some(stem) = name.strip_suffix(".jsonl").filter(|s| !s.ends_with(".matches")) {
            let golden = traces_dir().join(format!("{stem}.matches.jsonl"));
            assert!(
                golden.is_file(),
                "{} has no golden log {}",
                path.display(),
                golden.display()
            );
            found.push((path, golden));
        }
    }
    found.sort();
    found
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qm-replay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

#[test]
fn every_trace_replays_to_its_golden_log_byte_for_byte() {
    let traces = traces();
    let names: Vec<String> = traces
        .iter()
        .map(|(t, _)| t.file_name().unwrap_or_default().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["coop-4.jsonl", "ranked-1v1.jsonl", "ranked-5v5.jsonl"]);
    let dir = temp_dir("golden");
    for (trace, golden) in &traces {
        let expected = std::fs::read(golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        let log = replay_trace(trace);
        assert!(
            log == expected,
            "{} differs from {}; if the change is meant, scripts/record-traces rewrites it:\n{}",
            trace.display(),
            golden.display(),
            text(&log)
        );
        // The log written with --out is the same bytes as the one printed.
        let out = dir.join("log.jsonl");
        let written = replay(&["--trace".as_ref(), trace.as_os_str(), "--out".as_ref(), out.as_os_str()]);
        assert!(written.status.success(), "{}", text(&written.stderr));
        assert_eq!(std::fs::read(&out).unwrap_or_default(), expected, "{}", trace.display());
        // A golden log holds what the replay found: every kind of line the traces were recorded for.
        let log = text(&expected);
        assert!(log.contains("\"kind\":\"match\""), "{}: no match", golden.display());
    }
    let all: String = traces
        .iter()
        .map(|(_, golden)| std::fs::read_to_string(golden).unwrap_or_default())
        .collect();
    // A refused cancel has its case in the trace module's tests: the traces' only second cancel is
    // answered with the ticket unchanged, which logs nothing.
    for kind in ["match", "timeout", "cancelled"] {
        assert!(
            all.contains(&format!("\"kind\":\"{kind}\"")),
            "no {kind} line in any golden log"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_same_trace_gives_the_same_bytes_twice_in_one_process_and_across_processes() {
    for (path, golden) in traces() {
        // Twice in this process, on the library the binary runs.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let trace = Trace::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let first = runtime
            .block_on(trace::replay(
                &trace,
                trace.queues(None).unwrap_or_else(|e| panic!("{e}")),
            ))
            .unwrap_or_else(|e| panic!("{e}"))
            .log_text();
        let second = runtime
            .block_on(trace::replay(
                &trace,
                trace.queues(None).unwrap_or_else(|e| panic!("{e}")),
            ))
            .unwrap_or_else(|e| panic!("{e}"))
            .log_text();
        assert_eq!(first, second, "{}", path.display());
        // Across restarts: two processes of their own.
        let one = replay_trace(&path);
        let other = replay_trace(&path);
        assert_eq!(one, other, "{}", path.display());
        assert_eq!(one, first.as_bytes(), "{}", path.display());
        assert_eq!(one, std::fs::read(&golden).unwrap_or_default(), "{}", path.display());
    }
}

#[test]
fn another_rule_set_gives_another_log_and_both_figures() {
    let dir = temp_dir("ruleset");
    // ranked-1v1 loose enough for the lone ace (2900) and the quitter (100) to meet anybody at once.
    let example =
        std::fs::read_to_string(repo().join("examples/rulesets/ranked-1v1.json")).unwrap_or_else(|e| panic!("{e}"));
    let mut loose: serde_json::Value = serde_json::from_str(&example).unwrap_or_else(|e| panic!("{e}"));
    loose["rules"][0]["maxDistance"] = 3000.into();
    loose["expansions"] = serde_json::json!([]);
    let ruleset = dir.join("loose-1v1.json");
    std::fs::write(&ruleset, loose.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let trace = traces_dir().join("ranked-1v1.jsonl");
    let golden = std::fs::read(traces_dir().join("ranked-1v1.matches.jsonl")).unwrap_or_default();

    let out = replay(&[
        "--trace".as_ref(),
        trace.as_os_str(),
        "--ruleset".as_ref(),
        ruleset.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(out.stdout, golden);
    let log = text(&out.stdout);
    for player in ["lone-ace", "quitter"] {
        assert!(
            log.lines()
                .any(|l| l.contains("\"kind\":\"match\"") && l.contains(&format!("\"{player}\""))),
            "{player} is not matched: {log}"
        );
    }
    assert!(!log.contains("\"kind\":\"timeout\""), "{log}");
    // The figures of both, side by side: the recorded rule set's, then the given one's.
    let stderr = text(&out.stderr);
    let row = |name: &str| -> Vec<String> {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row: {stderr}"));
        line[name.len()..].split_whitespace().map(str::to_owned).collect()
    };
    assert!(stderr.contains("recorded") && stderr.contains("given"), "{stderr}");
    assert_eq!(row("matches"), ["4", "5"], "{stderr}");
    assert_eq!(row("timed out"), ["1", "0"], "{stderr}");
    assert_eq!(row("cancelled"), ["1", "0"], "{stderr}");
    // And the same again: a tuned replay is as reproducible as a recorded one.
    let again = replay(&[
        "--trace".as_ref(),
        trace.as_os_str(),
        "--ruleset".as_ref(),
        ruleset.as_os_str(),
    ]);
    assert_eq!(again.stdout, out.stdout);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_rule_set_for_a_queue_the_trace_has_no_ticket_for_is_refused() {
    let trace = traces_dir().join("ranked-5v5.jsonl");
    let ruleset = repo().join("examples/rulesets/ranked-1v1.json");
    let out = replay(&[
        "--trace".as_ref(),
        trace.as_os_str(),
        "--ruleset".as_ref(),
        ruleset.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the rule set is queue `ranked-1v1`, and no ticket of")
            && stderr.contains("its tickets are for: ranked-5v5"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn the_match_log_never_replaces_its_trace() {
    let dir = temp_dir("self");
    let trace = dir.join("coop-4.jsonl");
    std::fs::copy(traces_dir().join("coop-4.jsonl"), &trace).unwrap_or_else(|e| panic!("{e}"));
    let before = std::fs::read(&trace).unwrap_or_default();
    // The same file by another name.
    let same = dir.join(".").join("coop-4.jsonl");
    let out = replay(&[
        "--trace".as_ref(),
        trace.as_os_str(),
        "--out".as_ref(),
        same.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is the trace being replayed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&trace).unwrap_or_default(), before);
    let _ = std::fs::remove_dir_all(dir);
}

/// Turns a good trace line into a bad one.
type Corruption = Box<dyn Fn(&str) -> String>;

#[test]
fn a_malformed_line_is_refused_with_its_line_and_field_and_nothing_is_written() {
    let dir = temp_dir("malformed");
    let source = std::fs::read_to_string(traces_dir().join("ranked-1v1.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<&str> = source.lines().collect();
    let cases: [(&str, Corruption, &str); 3] = [
        // A time that is not a number.
        (
            "at",
            Box::new(|l: &str| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                v["at"] = "soon".into();
                v.to_string()
            }),
            ":5: $.at: invalid type: string \"soon\", expected",
        ),
        // A ticket without its player.
        (
            "player",
            Box::new(|l: &str| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                v.as_object_mut().map(|o| o.remove("playerId"));
                v.to_string()
            }),
            ":5: $: missing field `playerId`",
        ),
        // Not JSON at all.
        ("cut", Box::new(|l: &str| l[..l.len() / 2].to_owned()), ":5:"),
    ];
    assert!(
        lines[4].contains("\"kind\":\"ticket\""),
        "line 5 is a ticket: {}",
        lines[4]
    );
    for (name, corrupt, expected) in cases {
        let mut changed: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        changed[4] = corrupt(lines[4]);
        let bad = dir.join(format!("{name}.jsonl"));
        std::fs::write(&bad, changed.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
        let out_file = dir.join(format!("{name}.matches.jsonl"));
        let out = replay(&[
            "--trace".as_ref(),
            bad.as_os_str(),
            "--out".as_ref(),
            out_file.as_os_str(),
        ]);
        assert!(!out.status.success(), "{name}: accepted");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("{}{expected}", bad.display())),
            "{name}: {stderr}"
        );
        assert!(!out_file.exists(), "{name}: a log was written");
        assert!(out.stdout.is_empty(), "{name}: {}", text(&out.stdout));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The event fixtures' directories: those holding a `<case>.event.json`.
fn fixture_functions() -> BTreeSet<String> {
    let root = repo().join("tests/fixtures");
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let has_events = path.is_dir()
            && std::fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("{e}"))
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".event.json"));
        if has_events {
            found.insert(path.file_name().unwrap_or_default().to_string_lossy().into_owned());
        }
    }
    found
}

#[test]
fn every_event_fixture_replays_to_its_expected_response() {
    let out = replay(&["tests/fixtures".as_ref(), "--quiet".as_ref()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let verdicts: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.ends_with("with nothing expected"))
        .collect();
    let events: usize = fixture_functions()
        .iter()
        .map(|f| {
            std::fs::read_dir(repo().join("tests/fixtures").join(f))
                .unwrap_or_else(|e| panic!("{e}"))
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".event.json"))
                .count()
        })
        .sum();
    assert_eq!(verdicts.len(), events, "{stdout}");
    assert!(verdicts.iter().all(|l| l.starts_with("PASS ")), "{stdout}");
    assert!(
        stdout.ends_with(&format!(
            "{events} fixtures: {events} as expected, 0 different, 0 with nothing expected\n"
        )),
        "{stdout}"
    );
    // Every directory of event fixtures was replayed.
    let replayed: BTreeSet<String> = verdicts
        .iter()
        .filter_map(|l| l.rsplit_once('(').map(|(_, f)| f.trim_end_matches(')').to_owned()))
        .collect();
    assert_eq!(replayed, fixture_functions());
    assert!(fixture_functions().len() >= 7, "{:?}", fixture_functions());
}

#[test]
fn a_fixture_whose_response_differs_fails_the_replay() {
    let dir = temp_dir("fixture-differs");
    let function = dir.join("tickets-api");
    std::fs::create_dir_all(&function).unwrap_or_else(|e| panic!("{e}"));
    let source = repo().join("tests/fixtures/tickets-api");
    for part in ["event", "given", "expected"] {
        let name = format!("get-a-searching-ticket.{part}.json");
        if source.join(&name).is_file() {
            std::fs::copy(source.join(&name), function.join(&name)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let passes = replay(&[dir.as_os_str()]);
    assert!(passes.status.success(), "{}", text(&passes.stdout));
    let expected = function.join("get-a-searching-ticket.expected.json");
    let changed = std::fs::read_to_string(&expected)
        .unwrap_or_else(|e| panic!("{e}"))
        .replace("SEARCHING", "PLACING");
    std::fs::write(&expected, changed).unwrap_or_else(|e| panic!("{e}"));
    let fails = replay(&[dir.as_os_str()]);
    let stdout = text(&fails.stdout);
    assert_eq!(fails.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL "), "{stdout}");
    assert!(
        stdout.contains("$.body.status: expected \"PLACING\", got \"SEARCHING\""),
        "{stdout}"
    );
    assert!(stdout.contains("1 fixtures: 0 as expected, 1 different"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The CLI's binary, with `home` for the dev secret.
fn queuematch(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_queuematch"));
    command.env("QUEUEMATCH_HOME", home).current_dir(repo());
    command
}

#[test]
fn concurrent_traffic_is_recorded_in_time_order_and_replays() {
    // GIVEN a dev server, and `queuematch record` on its traffic, for thirteen tickets and a cancel
    let home = temp_dir("record");
    let mut dev = common::DevProcess::spawn(&repo().join("examples/rulesets"), &home, None);
    let trace = home.join("live.jsonl");
    let mut recorder = queuematch(&home)
        .args(["record", "--url", &dev.url, "--out"])
        .arg(&trace)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("queuematch record does not start: {e}"));
    // Recording starts with the header.
    let started = Instant::now();
    while std::fs::read_to_string(&trace).map_or(true, |t| !t.ends_with('\n')) {
        assert!(started.elapsed() < Duration::from_secs(20), "no header recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    // WHEN twelve players submit at once (requests that finish in another order than they began),
    // then one of them cancels
    let submits: Vec<_> = (1..=12)
        .map(|i| {
            queuematch(&home)
                .args([
                    "submit",
                    "--url",
                    &dev.url,
                    "--queue",
                    "ranked-1v1",
                    "--attr",
                    "skill=1500",
                ])
                .args(["--player", &format!("rec-{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("queuematch submit does not start: {e}"))
        })
        .collect();
    for submit in submits {
        let out = submit.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let late = queuematch(&home)
        .args(["submit", "--url", &dev.url, "--queue", "ranked-5v5", "--player", "late"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(late.status.success(), "{}", text(&late.stderr));
    let ticket = text(&late.stdout).trim().to_owned();
    // Admission is asynchronous: until the ticket is admitted, its cancel is a 404, not recorded.
    let started = Instant::now();
    loop {
        let cancel = queuematch(&home)
            .args(["cancel", "--url", &dev.url, "--player", "late", &ticket])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        if cancel.status.success() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{}", text(&cancel.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
    // Once the cancel is in the trace, stop the recorder as a user would, with ^C.
    let started = Instant::now();
    while !std::fs::read_to_string(&trace)
        .unwrap_or_default()
        .contains("\"kind\":\"cancel\"")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the cancel is not recorded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let interrupt = Command::new("kill")
        .args(["-INT", &recorder.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(interrupt.success());
    let status = recorder.wait().unwrap_or_else(|e| panic!("{e}"));
    let _ = dev.stop();
    // THEN the trace holds them all, in time order (reading it checks the order)
    assert!(status.success());
    let read = Trace::read(&trace).unwrap_or_else(|e| panic!("{e}"));
    let kinds = |kind: &str| {
        read.records
            .iter()
            .filter(|r| serde_json::to_value(r).is_ok_and(|v| v["kind"] == kind))
            .count()
    };
    // Game servers' reports come in too, as many as the sessions got to send.
    assert_eq!((kinds("ticket"), kinds("cancel")), (13, 1));
    // AND it replays: six matches of ranked-1v1 and the cancel
    let out = replay(&["--trace".as_ref(), trace.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = text(&out.stdout);
    assert_eq!(
        log.lines().filter(|l| l.contains("\"kind\":\"match\"")).count(),
        6,
        "{log}"
    );
    assert_eq!(
        log.lines().filter(|l| l.contains("\"kind\":\"cancelled\"")).count(),
        1,
        "{log}"
    );
    let _ = std::fs::remove_dir_all(home);
}
