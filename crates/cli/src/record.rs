//! `queuematch record`: writes the live traffic of a running `queuematch dev` to a trace, from the
//! operators' tap `GET /v1/ops/traffic` (the format is `queuematch_local::replay::trace`'s).

use crate::dev_home;
use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use queuematch_core::identity::jwt::{Audience, DevTokens, Role};
use queuematch_core::Timestamp;
use queuematch_local::replay::trace::TraceLine;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The dev server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The trace to write (JSON Lines; replaced if it exists).
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many records (the header not counted); default: until interrupted.
    #[arg(long)]
    count: Option<usize>,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: Option<u64>,
    /// An operator's token to use instead of minting one from the dev secret.
    #[arg(long, env = "QUEUEMATCH_TOKEN")]
    token: Option<String>,
    /// Where the dev secret lives (default: $QUEUEMATCH_HOME or ~/.queuematch).
    #[arg(long, env = "QUEUEMATCH_HOME")]
    home: Option<PathBuf>,
}

pub fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let token = match &args.token {
        Some(token) => token.clone(),
        None => {
            let home = dev_home::resolve(args.home.clone())?;
            let tokens = DevTokens::new(&dev_home::load_or_create_secret(&home)?);
            let now = Timestamp::from_millis(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64);
            tokens.mint(
                "operator",
                Audience::Api,
                Role::Operator,
                now,
                Duration::from_secs(24 * 3600),
            )?
        }
    };
    let ws = args
        .url
        .trim_end_matches('/')
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let url = format!("{ws}/v1/ops/traffic?token={token}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(record(&args, &url))
}

async fn record(args: &RecordArgs, url: &str) -> anyhow::Result<ExitCode> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .context("cannot open the traffic stream (GET /v1/ops/traffic); is `queuematch dev` running?")?;
    let file = std::fs::File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let deadline = args
        .seconds
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let stop = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut records = 0usize;
    let mut header = false;
    while args.count.is_none_or(|n| records < n) {
        let message = tokio::select! {
            _ = &mut stop => break,
            _ = &mut interrupted => break,
            message = socket.next() => message,
        };
        let text = match message {
            None => break,
            Some(Err(e)) => return Err(e).context("the traffic stream failed"),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                out.flush()?;
                anyhow::ensure!(reason.is_empty(), "the server closed the traffic stream: {reason}");
                break;
            }
            Some(Ok(_)) => continue,
        };
        // Only what a replay can read goes into the trace.
        let line: TraceLine = serde_json::from_str(&text)
            .with_context(|| format!("the server sent something that is no trace line: {text}"))?;
        writeln!(out, "{}", line.to_line())?;
        // Every line reaches the disk as it comes, so an interrupted recording keeps what it saw.
        out.flush()?;
        if matches!(line, TraceLine::Header(_)) {
            if !header {
                eprintln!("recording {} to {}", args.url, args.out.display());
            }
            header = true;
        } else {
            records += 1;
        }
    }
    out.flush()?;
    eprintln!("{records} records written to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
