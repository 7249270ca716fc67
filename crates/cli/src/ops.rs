//! `queuematch ops`: the operators' views in the terminal, as tables; `--watch N` redraws them every N
//! seconds, `--json` prints them once for scripts.
//!
//! - with no view: queues, the newest sessions and the metrics (`/v1/ops/queues`, `/v1/ops/sessions`,
//!   `/v1/ops/metrics`);
//! - `session ID`: one session, its match, its timeline and the path each of its workflows took
//!   (`/v1/ops/sessions/{id}`);
//! - `histograms`: the times and the match quality, drawn as bars (`/v1/ops/metrics`);
//! - `dlq`: the tickets queue's dead letters (`/v1/ops/dlq`); `dlq --redrive` moves them back.

use crate::client::{answer, DevSigner};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use queuematch_core::identity::jwt::{Audience, Role};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// How many sessions the table shows, newest first.
const SESSIONS_SHOWN: usize = 15;

/// How much of a dead letter's body its row shows.
const BODY_SHOWN: usize = 60;

/// The widest bar of a histogram, in characters.
const BAR_WIDTH: usize = 40;

#[derive(Debug, Args)]
pub struct OpsArgs {
    /// What to show; with none, queues, sessions and metrics.
    #[command(subcommand)]
    view: Option<View>,
    /// The service's base URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An operator's token to use instead of minting one from the dev secret (e.g. a Cognito token
    /// of the `operators` group on AWS).
    #[arg(long, global = true, env = "QUEUEMATCH_TOKEN")]
    token: Option<String>,
    /// Where the dev secret lives (default: $QUEUEMATCH_HOME or ~/.queuematch).
    #[arg(long, global = true, env = "QUEUEMATCH_HOME")]
    home: Option<PathBuf>,
    /// Print the view once, as the service's JSON, for scripts.
    #[arg(long, global = true, conflicts_with = "watch")]
    json: bool,
    /// Redraw the tables every SECONDS until interrupted.
    #[arg(long, global = true, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    watch: Option<u64>,
}

#[derive(Debug, Clone, Subcommand)]
enum View {
    /// One session: its players and server, its timeline (every transition with the workflow and
    /// state that made it) and the path each of its workflow executions took.
    Session {
        /// The session's id, as `queuematch ops` lists it.
        session_id: String,
    },
    /// The time-to-match and time-to-ticket histograms and the match quality ones (skill spread,
    /// team imbalance, worst latency), drawn as bars.
    Histograms,
    /// The tickets queue's dead letters, up to 10 of them; --redrive moves them all back.
    Dlq {
        /// Move every dead letter back to the tickets queue, and say how many moved.
        #[arg(long)]
        redrive: bool,
    },
}

/// The operator routes of one service, with one token.
struct Ops<'a> {
    client: reqwest::Client,
    base: &'a str,
    token: &'a str,
}

impl Ops<'_> {
    /// `GET path`, which must answer 2xx: its body.
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(reqwest::Method::GET, path).await
    }

    /// `method path`: its JSON body, or the service's problem as an error naming the request.
    async fn send(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        let base = self.base;
        let response = self
            .client
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {base}; is the service running?"))?;
        answer(response).await.with_context(|| format!("{method} {path}"))
    }

    /// What `view` shows, as the service's JSON.
    async fn fetch(&self, view: Option<&View>) -> anyhow::Result<Value> {
        match view {
            None => self.overview().await,
            Some(View::Session { session_id }) => self.get(&format!("/v1/ops/sessions/{session_id}")).await,
            Some(View::Histograms) => self.get("/v1/ops/metrics").await,
            Some(View::Dlq { .. }) => self.get("/v1/ops/dlq").await,
        }
    }
}

/// Whether the service refused in a way a retry cannot change: a 4xx but for throttling (429) and
/// a timeout (408).
fn is_final(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<crate::client::Refusal>()
        .is_some_and(|r| r.status.is_client_error() && !matches!(r.status.as_u16(), 408 | 429))
}

fn render(view: Option<&View>, body: &Value) -> String {
    match view {
        None => render_overview(body),
        Some(View::Session { .. }) => render_session(body),
        Some(View::Histograms) => render_histograms(body),
        Some(View::Dlq { .. }) => render_dlq(body),
    }
}

pub fn run(args: OpsArgs) -> anyhow::Result<ExitCode> {
    let view = args.view.as_ref();
    if let Some(View::Session { session_id }) = view {
        // The id goes into the path: say what is wrong with it here rather than ask for another route.
        if !queuematch_core::ids::SessionId::is_valid(session_id) {
            bail!(
                "{session_id:?} is not a session id: {}",
                queuematch_core::ids::SessionId::RULE
            );
        }
    }
    let redrive = matches!(view, Some(View::Dlq { redrive: true }));
    if redrive && (args.watch.is_some() || args.json) {
        bail!("--redrive moves the dead letters once: it takes neither --watch nor --json");
    }
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
        let ops = Ops {
            client: reqwest::Client::new(),
            base: args.url.trim_end_matches('/'),
            token: &token,
        };
        if redrive {
            let answer = ops.send(reqwest::Method::POST, "/v1/ops/dlq/redrive").await?;
            println!(
                "moved {} dead letters back to the tickets queue",
                cell(&answer["moved"])
            );
            return Ok(ExitCode::SUCCESS);
        }
        if args.json {
            let body = ops.fetch(view).await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
            return Ok(ExitCode::SUCCESS);
        }
        let Some(every) = args.watch else {
            print!("{}", render(view, &ops.fetch(view).await?));
            return Ok(ExitCode::SUCCESS);
        };
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            // A failed refresh is shown in place of the tables and retried, not fatal: the server
            // may be restarting. A refusal that asking again cannot change (a token that is not an
            // operator's, a session that does not exist) ends the watch, as it ends a single view.
            let screen = match ops.fetch(view).await {
                Ok(body) => render(view, &body),
                Err(e) if is_final(&e) => return Err(e),
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

impl Ops<'_> {
    /// The three views: `{"queues", "sessions", "metrics"}`.
    async fn overview(&self) -> anyhow::Result<Value> {
        Ok(json!({
            "queues": self.get("/v1/ops/queues").await?,
            "sessions": self.get(&format!("/v1/ops/sessions?limit={SESSIONS_SHOWN}")).await?["sessions"].take(),
            "metrics": self.get("/v1/ops/metrics").await?,
        }))
    }
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

/// The tables of `queuematch ops` with no view.
fn render_overview(views: &Value) -> String {
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
            let created = time_of_day(&s["createdAt"], false);
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
    for h in histograms(&views["metrics"]) {
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
    let capped: Vec<&str> = views["metrics"]["capped"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !capped.is_empty() {
        let _ = writeln!(
            out,
            "counted from at most {} items each, so floors: {}",
            queuematch_handlers::ops_api::TICKETS_COUNTED,
            capped.join(", ")
        );
    }
    out
}

/// A time in milliseconds since the epoch as its time of day, UTC (with milliseconds when `precise`):
/// enough to tell recent sessions, and the steps of one, apart.
fn time_of_day(millis: &Value, precise: bool) -> String {
    let Some(ms) = millis.as_u64() else {
        return "-".into();
    };
    let day = (ms / 1000) % 86_400;
    let (h, m, s) = (day / 3600, day % 3600 / 60, day % 60);
    if precise {
        format!("{h:02}:{m:02}:{s:02}.{:03}Z", ms % 1000)
    } else {
        format!("{h:02}:{m:02}:{s:02}Z")
    }
}

/// The state machine an execution ARN belongs to (`…:execution:<state machine>:<name>`), or the whole
/// id when it is not one.
fn workflow_of(execution_id: &str) -> &str {
    execution_id
        .split_once(":execution:")
        .and_then(|(_, rest)| rest.split_once(':'))
        .map_or(execution_id, |(machine, _)| machine)
}

/// `queuematch ops session ID`: the session, its match, its timeline and its workflows' paths.
fn render_session(detail: &Value) -> String {
    let mut out = String::new();
    let session = &detail["session"];
    let reason = session["reason"]
        .as_str()
        .map_or_else(String::new, |r| format!(": {r}"));
    let _ = writeln!(
        out,
        "session  {}  {}  {}{reason}",
        cell(&session["sessionId"]),
        cell(&session["queue"]),
        cell(&session["status"])
    );
    let _ = writeln!(
        out,
        "created  {}   server {}",
        time_of_day(&session["createdAt"], true),
        cell(&session["endpoint"])
    );
    let matched = &detail["match"];
    if matched.is_object() {
        let q = &matched["quality"];
        let _ = writeln!(
            out,
            "match    {}  region {}  skill spread {}  team imbalance {}  worst latency {} ms",
            cell(&matched["matchId"]),
            cell(&matched["region"]),
            cell(&q["skillSpread"]),
            cell(&q["teamImbalance"]),
            cell(&q["worstLatencyMs"])
        );
        for team in matched["teams"].as_array().into_iter().flatten() {
            let players: Vec<String> = team["players"].as_array().into_iter().flatten().map(cell).collect();
            let _ = writeln!(out, "  {:<7}{}", cell(&team["name"]), players.join(", "));
        }
    } else {
        let players: Vec<String> = session["players"].as_array().into_iter().flatten().map(cell).collect();
        let _ = writeln!(out, "players  {}", players.join(", "));
    }
    let _ = writeln!(out);
    let rows: Vec<Vec<String>> = detail["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            vec![
                time_of_day(&entry["at"], true),
                cell(&entry["status"]),
                workflow_of(entry["executionId"].as_str().unwrap_or("-")).to_owned(),
                cell(&entry["state"]),
                cell(&entry["detail"]),
            ]
        })
        .collect();
    table(&mut out, &["TIME", "STATUS", "WORKFLOW", "STATE", "DETAIL"], &rows);
    let rows: Vec<Vec<String>> = detail["executions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|execution| {
            let id = execution["executionId"].as_str().unwrap_or("-");
            let workflow = execution["workflow"].as_str().unwrap_or_else(|| workflow_of(id));
            // The engine's record where the stack has one (`queuematch dev`); on AWS, where Express
            // workflows keep no history, the states the timeline names.
            let engine = &execution["engine"];
            let (status, path): (String, Vec<String>) = if engine.is_object() {
                let mut path: Vec<String> = engine["path"].as_array().into_iter().flatten().map(cell).collect();
                if let Some(current) = engine["current"].as_str() {
                    path.push(format!("[{current}]"));
                }
                (cell(&engine["status"]), path)
            } else {
                let steps = execution["steps"].as_array().into_iter().flatten();
                ("-".into(), steps.map(|s| cell(&s["state"])).collect())
            };
            vec![workflow.to_owned(), status, path.join(" > ")]
        })
        .collect();
    let _ = writeln!(out);
    table(&mut out, &["WORKFLOW", "STATUS", "PATH"], &rows);
    out
}

/// The histograms of a `/v1/ops/metrics` answer: the times, then the match quality.
fn histograms(metrics: &Value) -> impl Iterator<Item = &Value> {
    ["TimeToMatch", "TimeToTicketSuccess", "TimeToTicketCancel"]
        .into_iter()
        .map(|n| &metrics["metrics"][n])
        .chain(metrics["quality"].as_array().into_iter().flatten())
}

/// `queuematch ops histograms`: each histogram of `/v1/ops/metrics` as a bar per bucket, the longest
/// bar [`BAR_WIDTH`] wide; an empty histogram is one line saying so.
fn render_histograms(metrics: &Value) -> String {
    let mut out = String::new();
    for h in histograms(metrics) {
        let title = h["title"].as_str().or(h["name"].as_str()).unwrap_or("-");
        let unit = cell(&h["unit"]);
        let count = h["count"].as_u64().unwrap_or(0);
        if count == 0 {
            let _ = writeln!(out, "{title} ({unit}): no values yet\n");
            continue;
        }
        let mean = h["sum"].as_f64().unwrap_or(0.0) / count as f64;
        let values = if count == 1 { "value" } else { "values" };
        let _ = writeln!(out, "{title} ({unit}): {count} {values}, mean {mean:.1}");
        let buckets = h["buckets"].as_array().map_or(&[][..], Vec::as_slice);
        let most = buckets
            .iter()
            .filter_map(|b| b["count"].as_u64())
            .max()
            .unwrap_or(0)
            .max(1);
        // Each bucket counts the values above the bound before it, up to its own (`le`); the last,
        // without a bound, the values above every bound.
        let mut last_bound = String::from("-");
        for bucket in buckets {
            let n = bucket["count"].as_u64().unwrap_or(0);
            let label = match bucket["le"].as_f64() {
                Some(le) => {
                    last_bound = trim_number(le);
                    format!("<= {last_bound}")
                }
                None => format!("> {last_bound}"),
            };
            // Rounded up: a bucket with values always shows at least one mark.
            let bar = "#".repeat((n as usize * BAR_WIDTH).div_ceil(most as usize));
            let line = format!("  {label:<10} {n:>6}  {bar}");
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let _ = writeln!(out);
    }
    out
}

/// A bucket's bound without a needless `.0`.
fn trim_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        value.to_string()
    }
}

/// `queuematch ops dlq`: how many dead letters, and the first ones.
fn render_dlq(dlq: &Value) -> String {
    let mut out = String::new();
    let letters = dlq["deadLetters"].as_array().map_or(&[][..], Vec::as_slice);
    let _ = writeln!(
        out,
        "dead letters: {} (showing {}; `queuematch ops dlq --redrive` moves them all back)\n",
        cell(&dlq["dead"]),
        letters.len()
    );
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|letter| {
            let body = letter["body"].as_str().unwrap_or_default();
            // One line a letter: newlines shown as spaces, long bodies cut.
            let mut shown: String = body
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(BODY_SHOWN)
                .collect();
            if body.chars().count() > BODY_SHOWN {
                shown.push('…');
            }
            vec![
                cell(&letter["messageId"]),
                cell(&letter["receiveCount"]),
                time_of_day(&letter["sentAt"], false),
                shown,
            ]
        })
        .collect();
    table(&mut out, &["MESSAGE", "RECEIVES", "SENT", "BODY"], &rows);
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

    #[test]
    fn the_overview_says_which_counts_are_floors() {
        let views = |capped: Value| json!({"metrics": {"metrics": {"TicketsTimedOut": 10000}, "capped": capped}});
        let drawn = render_overview(&views(json!(["TICKETS#TIMED_OUT", "MATCHES#COMMITTED"])));
        assert!(
            drawn.contains("counted from at most 10000 items each, so floors: TICKETS#TIMED_OUT, MATCHES#COMMITTED"),
            "{drawn}"
        );
        assert!(!render_overview(&views(json!([]))).contains("floors"));
    }

    #[test]
    fn a_workflow_is_named_from_its_execution_arn() {
        assert_eq!(
            workflow_of("arn:aws:states:eu-west-1:123456789012:execution:session-placement:m-1"),
            "session-placement"
        );
        assert_eq!(workflow_of("local-run"), "local-run");
    }

    #[test]
    fn a_dead_letter_is_one_line_with_its_body_cut() {
        let long = format!("{{\"ticket\":\n{}}}", "x".repeat(100));
        let drawn = render_dlq(&json!({
            "dead": 12,
            "deadLetters": [{"messageId": "m-1", "body": long, "receiveCount": 5, "sentAt": 3_723_004u64}],
        }));
        let lines: Vec<&str> = drawn.lines().collect();
        assert!(lines[0].starts_with("dead letters: 12 (showing 1;"), "{drawn}");
        assert!(lines[2].starts_with("MESSAGE"), "{drawn}");
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>()[..3],
            ["m-1", "5", "01:02:03Z"]
        );
        assert!(lines[3].ends_with("xxx…"), "{drawn}");
        assert_eq!(lines[3].matches('x').count(), BODY_SHOWN - 11, "{drawn}");
        assert_eq!(lines.len(), 4, "{drawn}");
    }

    #[test]
    fn a_histogram_draws_a_bar_per_bucket_scaled_to_the_fullest() {
        let drawn = render_histograms(&json!({
            "metrics": {
                "TimeToMatch": {"name": "TimeToMatch", "title": "time to match", "unit": "s", "count": 41,
                    "sum": 50.5, "buckets": [
                        {"le": 1.0, "count": 40}, {"le": 2.5, "count": 1}, {"le": null, "count": 0}]},
                "TimeToTicketSuccess": {"name": "TimeToTicketSuccess", "unit": "s", "count": 0, "sum": 0,
                    "buckets": []},
            },
            "quality": [],
        }));
        let lines: Vec<&str> = drawn.lines().collect();
        assert_eq!(lines[0], "time to match (s): 41 values, mean 1.2", "{drawn}");
        assert_eq!(lines[1], format!("  <= 1           40  {}", "#".repeat(BAR_WIDTH)));
        assert_eq!(lines[2], "  <= 2.5          1  #", "{drawn}");
        assert_eq!(lines[3], "  > 2.5           0", "{drawn}");
        assert_eq!(lines[5], "TimeToTicketSuccess (s): no values yet", "{drawn}");
    }
}
