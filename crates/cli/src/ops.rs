//! `queuematch ops`: the operators' views in the terminal, from `/v1/ops/queues`, `/v1/ops/sessions`
//! and `/v1/ops/metrics`, as tables; `--watch N` redraws them every N seconds, `--json` prints them
//! once for scripts.

use crate::client::DevSigner;
use anyhow::{bail, Context};
use clap::Args;
use queuematch_core::identity::jwt::{Audience, Role};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// How many sessions the table shows, newest first.
const SESSIONS_SHOWN: usize = 15;

#[derive(Debug, Args)]
pub struct OpsArgs {
    /// The service's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An operator's token to use instead of minting one from the dev secret (e.g. a Cognito token
    /// of the `operators` group on AWS).
    #[arg(long, env = "QUEUEMATCH_TOKEN")]
    token: Option<String>,
    /// Where the dev secret lives (default: $QUEUEMATCH_HOME or ~/.queuematch).
    #[arg(long, env = "QUEUEMATCH_HOME")]
    home: Option<PathBuf>,
    /// Print the three views once, as one JSON object, for scripts.
    #[arg(long, conflicts_with = "watch")]
    json: bool,
    /// Redraw the tables every SECONDS until interrupted.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    watch: Option<u64>,
}

pub fn run(args: OpsArgs) -> anyhow::Result<ExitCode> {
    let token = match &args.token {
        Some(token) => token.clone(),
        None => DevSigner::load(args.home.clone())?.mint(
            "operator",
            Audience::Api,
            Role::Operator,
            Duration::from_secs(24 * 3600),
        )?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let base = args.url.trim_end_matches('/');
        if args.json {
            let views = fetch(&client, base, &token).await?;
            println!("{}", serde_json::to_string_pretty(&views)?);
            return Ok(ExitCode::SUCCESS);
        }
        let Some(every) = args.watch else {
            print!("{}", render(&fetch(&client, base, &token).await?));
            return Ok(ExitCode::SUCCESS);
        };
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            // A failed refresh is shown in place of the tables and retried, not fatal: the server
            // may be restarting.
            let screen = match fetch(&client, base, &token).await {
                Ok(views) => render(&views),
                Err(e) => format!("{e:#}\n"),
            };
            // Clear the screen and home the cursor, then draw.
            print!("\x1b[2J\x1b[H{screen}\n(every {every} s; Ctrl-C to stop)\n");
            tokio::select! {
                _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
                () = tokio::time::sleep(Duration::from_secs(every)) => {}
            }
        }
    })
}

/// The three views: `{"queues", "sessions", "metrics"}`.
async fn fetch(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<Value> {
    let get = |path: String| async move {
        let response = client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("cannot reach {base}; is the service running?"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let detail = body["detail"].as_str().unwrap_or("no detail");
            bail!("GET {path}: {status}: {detail}");
        }
        Ok(body)
    };
    Ok(json!({
        "queues": get("/v1/ops/queues".into()).await?,
        "sessions": get(format!("/v1/ops/sessions?limit={SESSIONS_SHOWN}")).await?["sessions"].take(),
        "metrics": get("/v1/ops/metrics".into()).await?,
    }))
}

/// A table: a header row and rows, each column as wide as its widest cell, numbers right-aligned.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| {
                if cell.parse::<f64>().is_ok() || cell == "-" {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        cells.join("  ").trim_end().to_owned()
    };
    let _ = writeln!(
        out,
        "{}",
        line(&header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())
    );
    for row in rows {
        let _ = writeln!(out, "{}", line(row));
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// The tables of `queuematch ops`.
fn render(views: &Value) -> String {
    let mut out = String::new();
    let q = &views["queues"]["ticketsQueue"];
    let _ = writeln!(
        out,
        "tickets queue: {} visible, {} in flight, {} delayed, {} dead letters\n",
        cell(&q["visible"]),
        cell(&q["inFlight"]),
        cell(&q["delayed"]),
        cell(&q["dead"])
    );
    let rows: Vec<Vec<String>> = views["queues"]["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| {
            [
                "name",
                "searching",
                "requiresAcceptance",
                "placing",
                "activeSessions",
                "oldestSearchingSeconds",
            ]
            .iter()
            .map(|k| cell(&q[*k]))
            .collect()
        })
        .collect();
    table(
        &mut out,
        &["QUEUE", "SEARCHING", "ACCEPTING", "PLACING", "ACTIVE", "OLDEST (s)"],
        &rows,
    );
    let _ = writeln!(out);
    let rows: Vec<Vec<String>> = views["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            // The time of day, UTC: enough to tell recent sessions apart.
            let created = s["createdAt"].as_u64().map_or_else(
                || "-".into(),
                |ms| {
                    let day = (ms / 1000) % 86_400;
                    format!("{:02}:{:02}:{:02}Z", day / 3600, day % 3600 / 60, day % 60)
                },
            );
            vec![
                cell(&s["sessionId"]),
                cell(&s["queue"]),
                cell(&s["status"]),
                s["players"].as_array().map_or(0, Vec::len).to_string(),
                created,
                cell(&s["endpoint"]),
            ]
        })
        .collect();
    table(
        &mut out,
        &["SESSION", "QUEUE", "STATUS", "PLAYERS", "CREATED", "SERVER"],
        &rows,
    );
    let _ = writeln!(out);
    let metrics = &views["metrics"]["metrics"];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for name in [
        "CurrentTickets",
        "TicketsStarted",
        "TicketsCompleted",
        "TicketsCancelled",
        "TicketsTimedOut",
        "TicketsFailed",
        "MatchesCreated",
        "MatchesAccepted",
        "MatchesRejected",
        "MatchesPlaced",
    ] {
        rows.push(vec![name.to_owned(), cell(&metrics[name]), String::new()]);
    }
    let histograms = ["TimeToMatch", "TimeToTicketSuccess", "TimeToTicketCancel"]
        .iter()
        .map(|n| &metrics[*n])
        .chain(views["metrics"]["quality"].as_array().into_iter().flatten());
    for h in histograms {
        let count = h["count"].as_f64().unwrap_or(0.0);
        let mean = if count > 0.0 {
            format!(
                "mean {:.1} {}",
                h["sum"].as_f64().unwrap_or(0.0) / count,
                cell(&h["unit"])
            )
        } else {
            String::new()
        };
        rows.push(vec![cell(&h["name"]), cell(&h["count"]), mean]);
    }
    table(&mut out, &["METRIC", "VALUE", ""], &rows);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns_and_numbers_to_the_right() {
        let mut out = String::new();
        table(
            &mut out,
            &["QUEUE", "SEARCHING"],
            &[
                vec!["ranked-1v1".into(), "3".into()],
                vec!["coop-4".into(), "12".into()],
            ],
        );
        assert_eq!(
            out,
            "QUEUE       SEARCHING\nranked-1v1          3\ncoop-4             12\n"
        );
    }
}
