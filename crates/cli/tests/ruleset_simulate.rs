//! `queuematch ruleset simulate`, run as a designer runs it.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/rulesets/{name}.json"))
}

fn simulate(file: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_queuematch"))
        .args(["ruleset", "simulate"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("queuematch does not run: {e}"))
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

#[test]
fn the_json_report_compares_both_strategies_and_is_the_same_on_every_run() {
    let args = ["--players", "2000", "--rate", "50", "--seed", "1", "--json"];
    let first = simulate(&example("ranked-1v1"), &args);
    let second = simulate(&example("ranked-1v1"), &args);
    assert_eq!(first.stdout, second.stdout, "two runs with one seed differ");
    let report = json(&first);
    for strategy in ["matcher", "fcfs"] {
        let s = &report[strategy];
        for field in ["meanSkillSpread", "timedOutPercent"] {
            assert!(s[field].is_number(), "{strategy}.{field} in {report}");
        }
        for p in ["p50", "p95", "p99"] {
            assert!(s["timeToMatch"][p].as_f64().is_some_and(|t| t >= 0.0), "{report}");
        }
    }
    let spread = |s: &str| report[s]["meanSkillSpread"].as_f64().unwrap_or(f64::NAN);
    assert!(spread("matcher") < spread("fcfs"), "{report}");
}

#[test]
fn another_seed_gives_other_traffic() {
    let run = |seed: &str| simulate(&example("coop-4"), &["--players", "400", "--seed", seed, "--json"]).stdout;
    assert_ne!(run("1"), run("2"));
}

#[test]
fn the_table_shows_every_figure_for_both_and_no_bar_off_a_terminal() {
    let out = simulate(&example("ranked-5v5"), &["--players", "500", "--rate", "25"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    for row in [
        "time to match p50",
        "time to match p95",
        "time to match p99",
        "mean skill spread",
        "mean team imbalance",
        "worst latency",
        "timed out",
    ] {
        assert!(table.contains(row), "{table}");
    }
    assert!(table.contains("matcher") && table.contains("fcfs"), "{table}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_bad_rule_set_or_rate_is_refused_with_a_reason() {
    let out = simulate(Path::new("/nonexistent/rules.json"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    for (args, says) in [
        (
            &["--rate", "0"][..],
            "--rate must be a positive number of players per second, not 0",
        ),
        (
            &["--rate", "-1"],
            "--rate must be a positive number of players per second, not -1",
        ),
        (&["--rate", "NaN"], "not NaN"),
        (&["--rate", "-inf"], "not -inf"),
        (&["--players", "0"], "0 is not in 1..=10000000"),
        (&["--players", "-5"], "-5 is not in 1..=10000000"),
        (&["--players", "4000000000"], "4000000000 is not in 1..=10000000"),
        (&["--players", "99999999999"], "99999999999 is not in 1..=10000000"),
        (
            &["--players", "100", "--rate", "1e-9"],
            "over about 3169 years of virtual time",
        ),
        (
            &["--players", "1", "--rate", "5e-324"],
            "over more than 1.8e308 years of virtual time",
        ),
    ] {
        let out = simulate(&example("ranked-1v1"), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn sparse_traffic_is_simulated_to_the_end() {
    // A player every ten minutes, for a week of virtual time: most wait alone and time out.
    let out = simulate(
        &example("ranked-1v1"),
        &["--players", "1000", "--rate", "0.0016", "--json"],
    );
    let report = json(&out);
    assert_eq!(report["tickets"], 1000);
    assert_eq!(report["players"], 1000);
    assert!(
        report["matcher"]["timedOutPercent"].as_f64().is_some_and(|p| p > 50.0),
        "{report}"
    );
}

#[test]
fn what_nobody_could_measure_is_null_and_a_dash_not_a_perfect_zero() {
    // One player matches nobody: no time to match, no spread, no latency.
    let report = json(&simulate(&example("ranked-1v1"), &["--players", "1", "--json"]));
    for strategy in ["matcher", "fcfs"] {
        let s = &report[strategy];
        assert_eq!(s["matches"], 0, "{report}");
        for field in ["timeToMatch", "meanSkillSpread", "meanWorstLatencyMs", "worstLatencyMs"] {
            assert!(s[field].is_null(), "{strategy}.{field} in {report}");
        }
        assert_eq!(s["timedOutPercent"], 100.0, "{report}");
    }
    let out = simulate(&example("ranked-1v1"), &["--players", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let spread = table
        .lines()
        .find(|l| l.starts_with("mean skill spread"))
        .unwrap_or_default();
    assert_eq!(
        spread.split_whitespace().skip(3).collect::<Vec<_>>(),
        ["–", "–"],
        "{table}"
    );
}

#[test]
fn when_most_tickets_time_out_the_report_says_what_each_rule_costs() {
    // coop-4 with a 10 ms latency limit, 12 after 30 s: the players' nearest region is 15-60 ms away.
    let text = std::fs::read_to_string(example("coop-4")).unwrap();
    let strict = text
        .replace("\"maxLatency\": 120", "\"maxLatency\": 10")
        .replace("\"value\": 200}", "\"value\": 12}");
    assert_ne!(strict, text, "coop-4's ping rule moved");
    let file = std::env::temp_dir().join(format!("qm-simulate-ping-{}.json", std::process::id()));
    std::fs::write(&file, strict).unwrap();
    let args = ["--players", "600", "--rate", "40", "--seed", "2"];
    let json_args = [&args[..], &["--json"]].concat();
    let report = json(&simulate(&file, &json_args));
    let table = simulate(&file, &args);
    std::fs::remove_file(&file).unwrap();

    assert_eq!(report["matcher"]["timedOutPercent"], 100.0, "{report}");
    let without: Vec<(&str, f64)> = report["withoutEachRule"]
        .as_array()
        .unwrap_or_else(|| panic!("no withoutEachRule in {report}"))
        .iter()
        .map(|w| (w["rule"].as_str().unwrap(), w["timedOutPercent"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        without.iter().map(|w| w.0).collect::<Vec<_>>(),
        ["loose", "map", "ping"],
        "{report}"
    );
    for (rule, timed_out) in without {
        assert_eq!(timed_out < 50.0, rule == "ping", "{rule}: {report}");
    }
    let table = String::from_utf8_lossy(&table.stdout);
    let ping = table.lines().find(|l| l.trim_start().starts_with("without `ping`"));
    assert!(ping.is_some_and(|l| l.contains("tickets matched")), "{table}");
    assert!(!table.contains("No one rule"), "{table}");

    // A report where the matcher does well says nothing of the kind.
    let fine = json(&simulate(&example("coop-4"), &json_args));
    assert!(fine.get("withoutEachRule").is_none(), "{fine}");
}

#[test]
fn a_rule_set_without_rules_that_times_out_is_told_so() {
    let file = std::env::temp_dir().join(format!("qm-simulate-bare-{}.json", std::process::id()));
    let bare = serde_json::json!({
        "name": "bare", "ruleLanguageVersion": "1.0",
        "teams": [{"name": "a", "minPlayers": 5, "maxPlayers": 5}, {"name": "b", "minPlayers": 5, "maxPlayers": 5}],
        "rules": [], "queue": {"timeoutSeconds": 60}
    });
    std::fs::write(&file, bare.to_string()).unwrap();
    let out = simulate(&file, &["--players", "3"]);
    std::fs::remove_file(&file).unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        table.contains("timed out 100.00 % of the tickets. The rule set has no rules"),
        "{table}"
    );
}

#[test]
fn when_no_one_rule_is_to_blame_the_report_says_so() {
    // One player can match nobody, whatever the rules.
    let out = simulate(&example("ranked-1v1"), &["--players", "1"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("without `fair`") && table.contains("without `ping`"),
        "{table}"
    );
    assert!(table.contains("No one rule holds them back"), "{table}");
}
