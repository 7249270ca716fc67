//! `queuematch ruleset simulate`: synthetic traffic through the real matcher and through
//! first-come-first-served, so a game designer sees what a rule set does before shipping it.
//!
//! The simulation itself is `queuematch_core::simulate`, pure and seeded; this file reads the rule
//! set, draws the progress bar and prints the report.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use queuematch_core::simulate::{simulate, SimulationConfig, SimulationReport, StrategyReport, HINT_TIMED_OUT_PERCENT};
use queuematch_core::RuleSet;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

/// The options of `ruleset simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The rule set (JSON).
    pub file: std::path::PathBuf,
    /// Players to simulate, in all: at most 10 million (every ticket is held in memory, about a
    /// kilobyte each).
    // Ranged here, so that 0, a negative count and one past u32 are all told the same bounds.
    #[arg(
        long,
        default_value_t = 10_000,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(queuematch_core::simulate::MAX_PLAYERS))
    )]
    pub players: u32,
    /// Players arriving per second: high enough that the arrivals span at most 100 years of
    /// virtual time.
    // Negative numbers (and -inf) reach the check below, which says what a rate must be, rather
    // than being taken for an unknown option.
    #[arg(long, default_value_t = 50.0, allow_hyphen_values = true)]
    pub rate: f64,
    /// Seed of the synthetic traffic: the same seed gives the same report, byte for byte.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub seed: u64,
    /// Print the report as JSON: `matcher` and `fcfs`, each with its figures (one with nothing to
    /// measure is null), and `withoutEachRule` when the matcher timed out half the tickets or more.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let config = SimulationConfig {
        players: args.players,
        rate: args.rate,
        seed: args.seed,
    };
    let rule_set = read(&args.file)?;

    // A bar only for a person watching: on a pipe or in CI it would be noise.
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} simulating {bar:40} {pos}/{len} tickets settled ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = simulate(&rule_set, &config, |progress| {
        bar.set_length(progress.total);
        bar.set_position(progress.done);
    })?;
    bar.finish_and_clear();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn read(file: &Path) -> anyhow::Result<RuleSet> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    RuleSet::from_json_str(&text).map_err(|errors| {
        anyhow::anyhow!(
            "{} is not a valid rule set; `queuematch ruleset validate` shows where:\n{errors}",
            file.display()
        )
    })
}

/// A row of the table: its label, and how to show a strategy's figure.
type Row = (&'static str, fn(&StrategyReport) -> String);

/// A figure as the table shows it: "–" where there was nothing to measure.
fn figure<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "–".to_owned(), show)
}

/// The report as a table, the matcher beside the baseline.
fn render(report: &SimulationReport) -> String {
    let rows: [Row; 10] = [
        ("matches", |s| s.matches.to_string()),
        ("matched tickets", |s| s.matched_tickets.to_string()),
        ("time to match p50", |s| {
            figure(s.time_to_match.map(|t| t.p50), |v| format!("{v:.1} s"))
        }),
        ("time to match p95", |s| {
            figure(s.time_to_match.map(|t| t.p95), |v| format!("{v:.1} s"))
        }),
        ("time to match p99", |s| {
            figure(s.time_to_match.map(|t| t.p99), |v| format!("{v:.1} s"))
        }),
        ("mean skill spread", |s| {
            figure(s.mean_skill_spread, |v| format!("{v:.1}"))
        }),
        ("mean team imbalance", |s| {
            figure(s.mean_team_imbalance, |v| format!("{v:.1}"))
        }),
        ("mean worst latency", |s| {
            figure(s.mean_worst_latency_ms, |v| format!("{v:.1} ms"))
        }),
        ("worst latency", |s| figure(s.worst_latency_ms, |v| format!("{v} ms"))),
        ("timed out", |s| format!("{:.2} %", s.timed_out_percent)),
    ];
    let mut out = format!(
        "{}: {} players in {} tickets at {} per second, seed {}\n\n{:<22}{:>14}{:>14}\n",
        report.rule_set,
        report.players,
        report.tickets,
        queuematch_core::json::figure(report.rate),
        report.seed,
        "",
        "matcher",
        "fcfs"
    );
    for (label, value) in rows {
        out.push_str(&format!(
            "{label:<22}{:>14}{:>14}\n",
            value(&report.matcher),
            value(&report.fcfs)
        ));
    }
    out.push_str(&hint(report));
    out
}

/// What each rule costs, when the matcher timed most tickets out (see
/// `SimulationReport::without_each_rule`): the rules that hold them back, or that none alone does.
fn hint(report: &SimulationReport) -> String {
    let timed_out = report.matcher.timed_out_percent;
    if timed_out < HINT_TIMED_OUT_PERCENT {
        return String::new();
    }
    let without = &report.without_each_rule;
    let mut out = format!("\nThe matcher timed out {timed_out:.2} % of the tickets.");
    if without.is_empty() {
        // A rule set without rules: nothing to leave out.
        out.push_str(
            " The rule set has no rules: too few players wait at once (a higher --rate), or the \
             teams' sizes do not fit the parties.\n",
        );
        return out;
    }
    out.push_str(" The same players without one rule");
    let run_on = without.first().map_or(report.tickets, |w| w.tickets);
    if run_on < report.tickets {
        out.push_str(&format!(" (the first {run_on} tickets)"));
    }
    out.push_str(":\n");
    let width = without.iter().map(|w| w.rule.len()).max().unwrap_or(0) + 2;
    for w in without {
        out.push_str(&format!(
            "  without {:<width$} {:>8} tickets matched, {:.2} % timed out\n",
            format!("`{}`", w.rule),
            w.matched_tickets,
            w.timed_out_percent
        ));
    }
    let best = without
        .iter()
        .map(|w| w.timed_out_percent)
        .fold(f64::INFINITY, f64::min);
    if best >= HINT_TIMED_OUT_PERCENT {
        out.push_str(
            "No one rule holds them back: too few players wait at once (a higher --rate), the teams' \
             sizes do not fit the parties, or two rules together do.\n",
        );
    }
    out
}
