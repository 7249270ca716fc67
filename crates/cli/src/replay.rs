//! `queuematch replay`: fixtures through their handlers, or a recorded trace through the matcher on
//! virtual time. The work is `queuematch_local::replay`'s, which the tests run too.

use crate::rulesets;
use anyhow::Context;
use clap::Args;
use queuematch_core::usecases::Queues;
use queuematch_core::RuleSet;
use queuematch_local::replay::fixtures;
use queuematch_local::replay::trace::{self, Summary, Trace};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["fixtures", "trace"]))]
pub struct ReplayArgs {
    /// A fixture's event (`<case>.event.json`) or a directory of them, searched recursively.
    fixtures: Option<PathBuf>,
    /// A trace recorded by `queuematch record`, replayed on virtual time into a match log.
    #[arg(long, conflicts_with = "fixtures")]
    trace: Option<PathBuf>,
    /// With --trace: replay under this rule set instead of the recorded one of its queue, and
    /// compare the two.
    #[arg(long, requires = "trace", conflicts_with = "fixtures")]
    ruleset: Option<PathBuf>,
    /// With --trace: write the match log here instead of to stdout.
    #[arg(long, requires = "trace", conflicts_with = "fixtures")]
    out: Option<PathBuf>,
    /// The rule sets the fixtures' handlers serve.
    #[arg(long, default_value = "examples/rulesets", conflicts_with = "trace")]
    rulesets: PathBuf,
    /// With fixtures: print only the verdicts, not the responses.
    #[arg(long, short, conflicts_with = "trace")]
    quiet: bool,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match (&args.fixtures, &args.trace) {
        (Some(path), _) => runtime.block_on(replay_fixtures(&args, path.clone())),
        (None, Some(path)) => runtime.block_on(replay_trace(&args, path.clone())),
        (None, None) => anyhow::bail!("say what to replay: FIXTURE|DIR, or --trace FILE"),
    }
}

async fn replay_fixtures(args: &ReplayArgs, path: PathBuf) -> anyhow::Result<ExitCode> {
    let queues = Arc::new(Queues::new(rulesets::load_dir(&args.rulesets)?));
    let replayed = fixtures::replay_path(&path, &queues).await?;
    let mut out = std::io::stdout().lock();
    let (mut passed, mut failed, mut unchecked) = (0, 0, 0);
    for r in &replayed {
        let differences = r.differences();
        let verdict = match (&r.expected, differences.is_empty()) {
            (None, _) => {
                unchecked += 1;
                "REPLAYED"
            }
            (Some(_), true) => {
                passed += 1;
                "PASS"
            }
            (Some(_), false) => {
                failed += 1;
                "FAIL"
            }
        };
        writeln!(out, "{verdict:<8} {} ({})", r.path.display(), r.function)?;
        if !args.quiet {
            writeln!(out, "  response: {}", r.response)?;
        }
        for difference in &differences {
            writeln!(out, "  {difference}")?;
        }
    }
    writeln!(
        out,
        "{} fixtures: {passed} as expected, {failed} different, {unchecked} with nothing expected",
        replayed.len()
    )?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn replay_trace(args: &ReplayArgs, path: PathBuf) -> anyhow::Result<ExitCode> {
    let trace = Trace::read(&path)?;
    if let Some(out) = &args.out {
        // The log would replace the trace it was replayed from.
        let same = |a: &PathBuf, b: &PathBuf| std::fs::canonicalize(a).ok().zip(std::fs::canonicalize(b).ok());
        anyhow::ensure!(
            same(out, &path).is_none_or(|(a, b)| a != b),
            "--out {} is the trace being replayed; write the match log elsewhere",
            out.display()
        );
    }
    // The rule set file given, as messages name it.
    let given = args
        .ruleset
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let replacement = match &args.ruleset {
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            Some(RuleSet::from_json_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?)
        }
        None => None,
    };
    let queues = trace.ticket_queues();
    if let Some(rule_set) = &replacement {
        // Tuning a queue the trace has no ticket for would compare two replays of the other
        // queues' tickets, under its name.
        anyhow::ensure!(
            queues.contains(&rule_set.name.as_str()),
            "{}: the rule set is queue `{}`, and no ticket of {} is for it; its tickets are for: {}",
            given,
            rule_set.name,
            path.display(),
            if queues.is_empty() {
                "no queue".to_owned()
            } else {
                queues.join(", ")
            }
        );
    }
    let replayed = trace::replay(&trace, trace.queues(replacement.as_ref())?).await?;
    let log = replayed.log_text();
    match &args.out {
        Some(out) => std::fs::write(out, &log).with_context(|| format!("cannot write {}", out.display()))?,
        None => std::io::stdout().lock().write_all(log.as_bytes())?,
    }
    let summary = replayed.summary();
    let mut err = std::io::stderr().lock();
    match &replacement {
        None => writeln!(err, "{}", summary_line(&summary))?,
        Some(rule_set) => {
            let recorded = trace::replay(&trace, trace.queues(None)?).await?.summary();
            let others: Vec<&str> = queues.iter().copied().filter(|q| *q != rule_set.name).collect();
            writeln!(
                err,
                "queue {}: the recorded rule set against {}{}",
                rule_set.name,
                given,
                if others.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (the figures count the trace's other queues too, replayed alike: {})",
                        others.join(", ")
                    )
                }
            )?;
            write!(err, "{}", comparison(&recorded, &summary))?;
        }
    }
    if replayed.reports_skipped > 0 {
        writeln!(
            err,
            "{} server reports not replayed (a replay places no session)",
            replayed.reports_skipped
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(value: Option<u64>) -> String {
    value.map_or("-".into(), |v| format!("{:.1} s", v as f64 / 1000.0))
}

fn summary_line(s: &Summary) -> String {
    format!(
        "{} tickets: {} matches ({} tickets), {} timed out, {} cancelled, {} failed, {} still waiting; wait p50 {} p90 {} max {}; mean skill spread {}",
        s.tickets,
        s.matches,
        s.matched_tickets,
        s.timed_out,
        s.cancelled,
        s.failed,
        s.still_waiting,
        ms(s.wait_p50_ms),
        ms(s.wait_p90_ms),
        ms(s.wait_max_ms),
        s.mean_skill_spread.map_or("-".into(), |v| format!("{v:.1}")),
    )
}

/// A table of the two replays' figures, side by side.
fn comparison(recorded: &Summary, tuned: &Summary) -> String {
    let spread = |s: &Summary| s.mean_skill_spread.map_or("-".into(), |v| format!("{v:.1}"));
    let rows: [(&str, String, String); 10] = [
        ("matches", recorded.matches.to_string(), tuned.matches.to_string()),
        (
            "tickets matched",
            recorded.matched_tickets.to_string(),
            tuned.matched_tickets.to_string(),
        ),
        ("timed out", recorded.timed_out.to_string(), tuned.timed_out.to_string()),
        ("cancelled", recorded.cancelled.to_string(), tuned.cancelled.to_string()),
        ("failed", recorded.failed.to_string(), tuned.failed.to_string()),
        (
            "still waiting",
            recorded.still_waiting.to_string(),
            tuned.still_waiting.to_string(),
        ),
        ("wait p50", ms(recorded.wait_p50_ms), ms(tuned.wait_p50_ms)),
        ("wait p90", ms(recorded.wait_p90_ms), ms(tuned.wait_p90_ms)),
        ("wait max", ms(recorded.wait_max_ms), ms(tuned.wait_max_ms)),
        ("mean skill spread", spread(recorded), spread(tuned)),
    ];
    let mut table = format!("{:<18} {:>10} {:>10}\n", "", "recorded", "given");
    for (name, a, b) in rows {
        table.push_str(&format!("{name:<18} {a:>10} {b:>10}\n"));
    }
    table
}
