//! queuematch-handlers: one module per Lambda function, each a plain async function from its AWS
//! event to its response, generic over the ports.
//!
//! The Lambda binaries (`handlers/lambda`) wire these to the AWS adapters; `queuematch dev` wires
//! them to the embedded ones and feeds them the same event shapes (`aws_lambda_events`), so the code
//! a player meets locally is the code that runs on AWS.
//!
//! - [`matcher`]: SQS `tickets` batches → admissions and pool rounds → `batchItemFailures`.
//! - [`tickets_api`]: API Gateway proxy requests for reading and cancelling tickets.
//! - [`ops_api`]: the operators' listings, session histories, queue figures, DLQ and metrics.
//! - [`workflow_tasks`]: the Task states of the `session-placement` workflow.
//! - [`session_reports`]: game servers' signed reports on their sessions.
//! - [`sweeper`]: the scheduled safety net: timed-out tickets, stuck sessions, lost placements.
//! - [`ws_authorizer`] and [`push`]: the WebSocket API's `$connect` authorizer, its routes, and the
//!   notifier that pushes domain events to the players' connections.

pub mod cognito;
pub mod matcher;
pub mod ops_api;
pub mod players_api;
pub mod problem;
pub mod push;
pub mod session_reports;
pub mod sweeper;
pub mod tickets_api;
pub mod workflow_tasks;
pub mod ws_authorizer;

use queuematch_core::usecases::admission::Admission;
use queuematch_core::usecases::round::Rounds;
use queuematch_core::usecases::{Queues, Settings};
use std::sync::Arc;

/// Everything a handler reaches: the ports, the queues served, and the settings. Built once per
/// process (a Lambda's cold start, or `queuematch dev`'s start) and shared by every invocation.
#[derive(Debug, Clone)]
pub struct Service<S, Q, W, E, C, P> {
    pub store: S,
    pub queue: Q,
    pub workflows: W,
    pub events: E,
    pub clock: C,
    pub party_tokens: P,
    pub queues: Arc<Queues>,
    pub settings: Arc<Settings>,
}

impl<S, Q, W, E, C, P> Service<S, Q, W, E, C, P> {
    /// Admission over this service's ports.
    pub fn admission(&self) -> Admission<'_, S, E, C, P> {
        Admission {
            store: &self.store,
            events: &self.events,
            clock: &self.clock,
            party_tokens: &self.party_tokens,
            queues: &self.queues,
            settings: &self.settings,
        }
    }

    /// Pool rounds over this service's ports.
    pub fn rounds(&self) -> Rounds<'_, S, Q, W, E, C> {
        Rounds {
            store: &self.store,
            queue: &self.queue,
            workflows: &self.workflows,
            events: &self.events,
            clock: &self.clock,
            queues: &self.queues,
            settings: &self.settings,
        }
    }
}
