//! `queuematch-gameserver`: parse the configuration, start JSON logs on stderr, run the server.

use anyhow::Context;
use queuematch_gameserver::config::{Config, SessionSource};
use queuematch_gameserver::report::Backoff;
use queuematch_gameserver::server::{self, Options, Sessions};
use tracing_subscriber::EnvFilter;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // stdout is the control channel, so logs go to stderr.
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_current_span(true)
        .init();
    let config = Config::load()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let client = reqwest::Client::builder()
        .build()
        .context("cannot build the HTTP client for reports")?;
    let options = Options {
        service_url: config.service_url,
        timing: config.timing,
        backoff: Backoff::default(),
    };
    #[cfg(feature = "ecs")]
    if let Some(registration) = config.registration {
        queuematch_gameserver::ecs::run(listener, client, options, registration).await?;
        return Ok(());
    }
    let sessions = match config.source {
        SessionSource::Control => Sessions::Control(tokio::io::BufReader::new(tokio::io::stdin())),
        SessionSource::Fixed(assignment) => Sessions::Fixed(assignment),
    };
    server::run(listener, client, options, sessions, tokio::io::stdout()).await?;
    Ok(())
}
