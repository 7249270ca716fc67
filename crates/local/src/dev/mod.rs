//! The dev server: `queuematch dev`'s HTTP API, WebSocket push and matcher loop on one machine.
//!
//! It serves `infra/openapi.yaml` on 127.0.0.1 with the same handlers Lambda runs:
//! - `POST /v1/tickets` validates the body against the ticket-request schema (generated from the
//!   rule sets, as API Gateway's model is), answers 202 and queues the ticket. Admission happens
//!   behind the queue, as on AWS; what AWS can only report as a FAILED ticket (party tokens, the
//!   active-ticket guard, attribute types) is also refused up front here (see `ticket_checks`).
//! - Every refusal, of every route, is `application/problem+json` with a 4xx status, fields named by
//!   JSON pointer; what axum's extractors reject is answered the same way, never as plain text.
//! - `GET`/`DELETE /v1/tickets/{id}` and `POST /v1/tickets/{id}/acceptance` become API Gateway proxy
//!   events for the `tickets-api` handler.
//! - `GET /v1/events?token=` is the WebSocket push: every event of the caller's tickets.
//! - `POST /v1/sessions/{id}/events` takes game servers' signed reports.
//! - The matcher loop receives SQS-shaped batches (1 s window, up to 1,000) and hands them to the
//!   `matcher` handler, deleting what it acknowledged; the rest comes back after its visibility
//!   timeout, as on SQS.
//! - The sweeper loop runs the `sweeper` handler every minute, as EventBridge Scheduler does.
//! - `GET /console` is the operators' web console, and `GET /v1/ops/stream?token=` its push: see
//!   [`console`].
//! - `/v1/ops/tickets`, `matches`, `sessions`, `sessions/{id}`, `queues`, `dlq`, `dlq/redrive` and
//!   `metrics` become API Gateway proxy events for the `ops-api` handler (see `ops`).
//! - `GET /v1/ops/traffic?token=` streams the accepted requests to an operator as trace lines, for
//!   `queuematch record` (see `traffic`).
//!
//! [`serve`] takes its listener and a shutdown future, so tests bind `127.0.0.1:0` and stop it.

pub mod console;
mod matcher_loop;
mod ops;
mod push;
mod reports;
mod routes;
mod socket;
mod sweeper_loop;
mod ticket_checks;
mod traffic;

pub use matcher_loop::run_matcher;
pub use routes::BODY_READ_TIMEOUT;
pub use sweeper_loop::{run_sweeper, SWEEP_EVERY};

use crate::workflows::LocalWorkflows;
use crate::EventBus;
use queuematch_core::identity::jwt::DevTokens;
use queuematch_core::ports::{Clock, Fleet, Store, TicketQueue, Workflows};
use queuematch_handlers::Service;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The largest request body accepted (DESIGN.md: 64 KiB by default).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The ports of the local stack, wired: what every route and loop of the dev server shares.
pub type LocalService =
    Service<Arc<dyn Store>, Arc<dyn TicketQueue>, Arc<dyn Workflows>, Arc<EventBus>, Arc<dyn Clock>, DevTokens>;

/// The dev server's shared state.
#[derive(Clone)]
pub struct DevState {
    pub service: Arc<LocalService>,
    /// Checks the callers' dev tokens (the party tokens are checked by admission).
    pub tokens: DevTokens,
    /// The ticket-request schema, compiled once; its queue enum comes from the rule sets served.
    pub ticket_schema: Arc<jsonschema::Validator>,
    /// Where sessions' servers run: an ended session's server is released.
    pub fleet: Arc<dyn Fleet>,
    /// The embedded engine's executions, when the workflows run on it: what the console draws each
    /// session's workflow from. `None` leaves the console without graphs, not without its other views.
    pub workflows: Option<Arc<LocalWorkflows>>,
    /// The operators' consoles' snapshot, built once for all of them.
    pub snapshots: console::stream::Snapshots,
}

impl std::fmt::Debug for DevState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevState")
            .field("queues", &self.service.queues.names())
            .finish_non_exhaustive()
    }
}

impl DevState {
    /// Fails only if the generated schema does not compile: a bug in the generator, not in input.
    pub fn new(service: Arc<LocalService>, tokens: DevTokens, fleet: Arc<dyn Fleet>) -> Result<Self, String> {
        let queues = service.queues.names();
        let schema = queuematch_core::ticket_request::json_schema(&queues, service.settings.max_players_per_ticket);
        let ticket_schema = Arc::new(jsonschema::draft4::new(&schema).map_err(|e| e.to_string())?);
        Ok(Self {
            service,
            tokens,
            ticket_schema,
            fleet,
            workflows: None,
            snapshots: Default::default(),
        })
    }

    /// The same state, with the engine whose executions the console shows.
    pub fn with_workflows(mut self, workflows: Arc<LocalWorkflows>) -> Self {
        self.workflows = Some(workflows);
        self
    }
}

/// How long a client has to send a request's headers, the first on a connection or the next on a
/// kept-alive one, before the connection is closed. Without it, sockets opened and left silent held
/// the server's file descriptors until it could accept no one.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the API on `listener` until `shutdown` completes, then lets the requests in flight finish.
///
/// The accept loop is hyper's HTTP/1 with a timer, for [`HEADER_READ_TIMEOUT`]; WebSocket upgrades
/// leave the connection to their handlers.
pub async fn serve(
    listener: TcpListener,
    state: DevState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = hyper_util::service::TowerToHyperService::new(routes::router(state));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: those held are let go by their timeouts.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = service.clone();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = builder
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopping.wait_for(|stop| *stop) => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}
