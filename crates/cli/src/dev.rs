//! `queuematch dev`: the whole service on 127.0.0.1, on embedded components.
//!
//! The same handlers, rule sets and workflow files as on AWS: the API and push of the dev server,
//! the matcher loop over the embedded queue, the sweeper every minute, `workflows/*.asl.json` on the
//! embedded engine, and real game-server processes on loopback ports. The store and the queue live in
//! memory, or on disk with `--data-dir`; the dev secret always lives in the home directory, so tokens
//! survive restarts.

use crate::{dev_home, rulesets};
use anyhow::{bail, Context};
use clap::Args;
use queuematch_core::identity::jwt::{Audience, DevTokens, Role};
use queuematch_core::ports::{Clock, Fleet, Store, TicketQueue, Workflows};
use queuematch_core::usecases::{Queues, Settings};
use queuematch_handlers::Service;
use queuematch_local::dev::{self, DevState};
use queuematch_local::fleet::{gameserver_beside_current_exe, REGION};
use queuematch_local::workflows::{LocalWorkflows, ServiceTasks, WorkflowsConfig};
use queuematch_local::{
    DiskQueue, DiskStore, EventBus, MemoryQueue, MemoryStore, ProcessFleet, ProcessFleetConfig, QueueConfig,
    SystemClock,
};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// The port to listen on, on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The rule sets to serve as queues.
    #[arg(long, default_value = "examples/rulesets")]
    rulesets: PathBuf,
    /// The workflow definitions (the files SAM deploys).
    #[arg(long, default_value = "workflows")]
    workflows: PathBuf,
    /// The game-server executable (default: `queuematch-gameserver` beside this one).
    #[arg(long)]
    gameserver: Option<PathBuf>,
    /// Idle game servers started ahead and kept ready for the next sessions (the warm pool).
    #[arg(long, default_value_t = 2)]
    warm_servers: usize,
    /// Game-server processes at once, at most: the pool scales up on demand to this cap.
    #[arg(long, default_value_t = 16)]
    max_servers: usize,
    /// An argument for every game server (repeat): `--gameserver-arg=--game-ticks=40` makes games short.
    #[arg(long = "gameserver-arg", value_name = "ARG", allow_hyphen_values = true)]
    gameserver_args: Vec<std::ffi::OsString>,
    /// Where the dev secret lives (default: $QUEUEMATCH_HOME or ~/.queuematch).
    #[arg(long, env = "QUEUEMATCH_HOME")]
    home: Option<PathBuf>,
    /// Keep the store and the tickets queue on disk in DIR (created if missing), so that a restart,
    /// kill -9 included, loses nothing accepted. Without it, state lives in memory.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// The store and the queue: in memory, or on disk under `--data-dir`.
fn state_ports(data_dir: Option<&Path>) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn TicketQueue>)> {
    let Some(dir) = data_dir else {
        return Ok((
            Arc::new(MemoryStore::new(SystemClock)),
            Arc::new(MemoryQueue::new(SystemClock, QueueConfig::default())),
        ));
    };
    if dir.exists() && !dir.is_dir() {
        bail!("--data-dir {} is a file, not a directory", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let (store_path, queue_path) = (dir.join("store.redb"), dir.join("queue.redb"));
    // Both are made on the first start: one without the other is a directory that lost a file, and
    // starting would take the survivor with an empty partner (accepted tickets, or every ticket's
    // state, silently gone).
    for (present, missing) in [(&store_path, &queue_path), (&queue_path, &store_path)] {
        if present.exists() && !missing.exists() {
            bail!(
                "{} is there but {} is not: the data directory is incomplete; restore the missing \
                 file, or remove the directory to start afresh",
                present.display(),
                missing.display()
            );
        }
    }
    let store = DiskStore::open(SystemClock, &store_path).context("cannot open the store")?;
    let queue =
        DiskQueue::open(SystemClock, QueueConfig::default(), &queue_path).context("cannot open the tickets queue")?;
    Ok((Arc::new(store), Arc::new(queue)))
}

pub fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: DevArgs) -> anyhow::Result<ExitCode> {
    let rule_sets = rulesets::load_dir(&args.rulesets)?;
    let home = dev_home::resolve(args.home.clone())?;
    let tokens = DevTokens::new(&dev_home::load_or_create_secret(&home)?);
    if args.max_servers == 0 {
        anyhow::bail!("--max-servers must be at least 1: sessions need a server to play on");
    }
    if args.warm_servers > args.max_servers {
        anyhow::bail!(
            "--warm-servers {} is more than --max-servers {}: the warm pool must fit under the cap",
            args.warm_servers,
            args.max_servers
        );
    }
    let gameserver = match args.gameserver.clone() {
        Some(path) => path,
        None => gameserver_beside_current_exe()
            .context("no queuematch-gameserver beside this executable; build it (cargo build -p queuematch-gameserver) or pass --gameserver")?,
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let url = format!("http://{}", listener.local_addr()?);

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut fleet_config = ProcessFleetConfig::new(gameserver, url.clone());
    fleet_config.max_servers = args.max_servers;
    fleet_config.server_args = args.gameserver_args.clone();
    fleet_config.warm_servers = args.warm_servers;
    let fleet: Arc<dyn Fleet> = Arc::new(ProcessFleet::new(fleet_config));
    let workflows = Arc::new(
        LocalWorkflows::load(&args.workflows, WorkflowsConfig::default())
            .with_context(|| format!("cannot load the workflows in {}", args.workflows.display()))?,
    );
    let queues: Vec<String> = rule_sets.iter().map(|r| r.name.clone()).collect();
    let (store, queue) = state_ports(args.data_dir.as_deref())?;
    let service = Arc::new(Service {
        store,
        queue,
        workflows: workflows.clone() as Arc<dyn Workflows>,
        events: Arc::new(EventBus::default()),
        clock,
        party_tokens: tokens.clone(),
        queues: Arc::new(Queues::new(rule_sets)),
        // The local fleet serves one region, so tickets need no latencies.
        settings: Arc::new(Settings {
            single_region: Some(REGION.to_owned()),
            ..Settings::default()
        }),
    });
    workflows.connect(Arc::new(ServiceTasks::new(&service, fleet.clone())))?;
    if args.data_dir.is_some() {
        // The state on disk may hold placements whose workflows ran in the last process, and
        // sessions on its game servers: both stopped with it. Nothing comes back for them.
        let resumed = queuematch_handlers::sweeper::after_restart(&service, &fleet, true)
            .await
            .map_err(|e| anyhow::anyhow!("cannot resume what the last run left in flight: {e}"))?;
        tracing::info!(summary = %resumed, "resumed what the last run left in flight");
    }
    let state = DevState::new(service.clone(), tokens.clone(), fleet.clone())
        .map_err(anyhow::Error::msg)?
        .with_workflows(workflows.clone());

    let now = queuematch_core::ports::Clock::now(&SystemClock);
    let sample = tokens.mint(
        "player-1",
        Audience::Api,
        Role::Player,
        now,
        Duration::from_secs(24 * 3600),
    )?;
    let operator = tokens.mint(
        "operator",
        Audience::Api,
        Role::Operator,
        now,
        Duration::from_secs(24 * 3600),
    )?;
    // Whoever started us may stop reading stdout (a script that waited for the first line): the
    // service must go on, so a closed stdout is not an error here.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "queuematch dev: listening on {url}");
    let _ = writeln!(out, "queues: {}", queues.join(", "));
    let _ = writeln!(
        out,
        "game servers: {} warm, at most {}",
        args.warm_servers, args.max_servers
    );
    match &args.data_dir {
        Some(dir) => writeln!(out, "state: on disk in {}", dir.display()),
        None => writeln!(out, "state: in memory (--data-dir DIR keeps it across restarts)"),
    }
    .ok();
    let _ = writeln!(
        out,
        "a token for player-1 (or mint one: queuematch token --player ID):\n{sample}"
    );
    // The token rides in the fragment, which the browser keeps to itself (see the console's docs).
    let _ = writeln!(out, "console: {url}/console#token={operator}");
    let _ = out.flush();
    drop(out);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(dev::run_sweeper(service.clone(), fleet, dev::SWEEP_EVERY, {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    }));
    let matcher = tokio::spawn(dev::run_matcher(service, {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    }));
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    };
    dev::serve(listener, state, shutdown).await?;
    let _ = matcher.await;
    let _ = sweeper.await;
    Ok(ExitCode::SUCCESS)
}
