//! ECS: the server registers itself in the service's table, heartbeats, and hosts what is claimed.
//!
//! With `--register-table T --fleet F` (a build with the `ecs` feature), the server:
//! 1. puts its own warm-server item, `FLEET#F` / `SERVER#<id>`: its address and port, free, seen now,
//!    expiring `--registration-ttl` later (queuematch-aws's [`ServerRegistry`]);
//! 2. every `--heartbeat-interval`, refreshes the item (keeping any claim), and every 250 ms reads
//!    it: a session the fleet's adapter ([`queuematch_aws::ecs::EcsFleet`]) claimed there is fed to
//!    the server as the local fleet feeds its control channel, once; an item that expired (a long
//!    pause) is put back, free;
//! 3. on SIGTERM or Ctrl-C (ECS stops a task with SIGTERM), deletes its item, or marks it dead when
//!    a session holds it, and exits.
//!
//! A server that dies without a word stops heartbeating: its item expires, and the store's TTL
//! makes it invisible, so the adapter never claims it.

use crate::config::Registration;
use crate::server::{self, Options, Sessions};
use queuematch_aws::clock::SystemClock;
use queuematch_aws::config::{self, Clients};
use queuematch_aws::dynamo::DynamoStore;
use queuematch_aws::ecs::{ServerRecord, ServerRegistry};
use queuematch_core::ids::SessionId;
use queuematch_core::ports::fleet::Endpoint;
use queuematch_core::ports::{Clock, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// How often an idle server looks for a claim on its item, between heartbeats.
const CLAIM_POLL: Duration = Duration::from_millis(250);

/// Why a registered server stopped.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("cannot register in the table: {0}")]
    Store(#[from] queuematch_core::ports::PortError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the fleet marked this server dead")]
    Dead,
}

/// Runs the server registered in the table until a signal or a fatal error.
pub async fn run(
    listener: TcpListener,
    client: reqwest::Client,
    options: Options,
    registration: Registration,
) -> Result<(), RegistrationError> {
    let sdk = config::load(None).await;
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(
        Clients::new(&sdk).dynamodb,
        registration.table.clone(),
    ));
    let registry = ServerRegistry::new(store, registration.fleet.clone());
    let local = listener.local_addr()?;
    let record = ServerRecord {
        server_id: registration.server_id.clone(),
        endpoint: Endpoint {
            address: registration
                .advertise_address
                .clone()
                .unwrap_or_else(|| local.ip().to_string()),
            port: local.port(),
        },
        task_arn: None,
        session: None,
        dead: false,
        last_seen: None,
    };
    let heartbeat = options.timing.heartbeat;
    registry.register(&record, SystemClock.now(), registration.ttl).await?;
    tracing::info!(
        server_id = %record.server_id,
        fleet = %registration.fleet,
        address = %record.endpoint.address,
        port = record.endpoint.port,
        "registered"
    );

    // The server reads its sessions as assignment lines, as from a fleet's control channel.
    let (mut feed, lines) = tokio::io::duplex(64 * 1024);
    let serving = server::run(
        listener,
        client,
        options,
        Sessions::Control(tokio::io::BufReader::new(lines)),
        tokio::io::stdout(),
    );
    let beating = async {
        let mut fed: Option<SessionId> = None;
        // A claim is looked for often (a read), the item refreshed once a heartbeat (a write):
        // placement answers ready as soon as it claims, and the players come at once.
        let mut ticks = tokio::time::interval(heartbeat.min(CLAIM_POLL));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_beat: Option<tokio::time::Instant> = None;
        loop {
            ticks.tick().await;
            let now = SystemClock.now();
            let due = last_beat.is_none_or(|at| at.elapsed() >= heartbeat);
            let read = if due {
                last_beat = Some(tokio::time::Instant::now());
                registry.heartbeat(&record.server_id, now, registration.ttl).await
            } else {
                registry.current(&record.server_id).await
            };
            match read {
                Ok(Some(current)) if current.dead => return Err(RegistrationError::Dead),
                Ok(Some(current)) => {
                    if let Some(assignment) = current.session {
                        if fed.as_ref() != Some(&assignment.session_id) {
                            tracing::info!(session_id = %assignment.session_id, "claimed");
                            let mut line = serde_json::to_vec(&assignment).unwrap_or_default();
                            line.push(b'\n');
                            feed.write_all(&line).await?;
                            fed = Some(assignment.session_id);
                        }
                    }
                }
                // Expired (heartbeats were late): back in, free. A claim it missed was never
                // acknowledged by this server; that placement fails on its own.
                Ok(None) => registry.register(&record, now, registration.ttl).await?,
                // The next heartbeat is as good; the TTL covers a few missed ones.
                Err(error) => tracing::warn!(%error, "registration heartbeat failed"),
            }
        }
    };
    let outcome = tokio::select! {
        served = serving => served.map_err(RegistrationError::from),
        beat = beating => beat,
        () = stopped() => Ok(()),
    };
    if let Err(error) = registry.deregister(&record.server_id).await {
        tracing::error!(%error, "could not deregister");
    }
    tracing::info!(server_id = %record.server_id, "deregistered");
    outcome
}

/// SIGTERM (how ECS stops a task) or Ctrl-C.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    // Give in-flight writes a moment; the deregistration follows.
    tokio::time::sleep(Duration::from_millis(10)).await;
}
