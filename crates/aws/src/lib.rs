//! queuematch-aws: the ports of `queuematch-core` on AWS services.
//!
//! | port | adapter | service |
//! |---|---|---|
//! | `TicketQueue` | [`SqsTicketQueue::new(client, queue_url, dlq_url)`](SqsTicketQueue::new) | SQS, DLQ by RedrivePolicy |
//! | `Store` | [`DynamoStore::new(client, table_name)`](DynamoStore::new) | the DynamoDB single table |
//! | `Workflows` | [`SfnWorkflows::new(client, state_machine_arns)`](SfnWorkflows::new) | Step Functions StartExecution |
//! | `Events` | [`EventBridgeEvents::new(client, bus_name)`](EventBridgeEvents::new) | EventBridge PutEvents |
//! | `Fleet` | [`GameLiftFleet::new(client, queue_name, store)`](GameLiftFleet::new) | GameLift game session placements |
//! | `Fleet` | [`EcsFleet::new(client, store, config)`](EcsFleet::new) | warm ECS servers in the table, RunTask |
//!
//! Clients come from [`config`]: [`config::load`] reads the environment (region, credentials,
//! `AWS_ENDPOINT_URL`) with the retry policy of DESIGN.md, [`config::Clients`] builds one client
//! per service. Every adapter maps SDK errors onto `PortError`; no SDK error type leaves this crate.

pub mod clock;
pub mod config;
pub mod dynamo;
pub mod ecs;
mod error;
pub mod eventbridge;
pub mod gamelift;
pub mod sfn;
pub mod sqs;

pub use config::Clients;
pub use dynamo::DynamoStore;
pub use ecs::{EcsFleet, EcsFleetConfig};
pub use eventbridge::EventBridgeEvents;
pub use gamelift::GameLiftFleet;
pub use sfn::SfnWorkflows;
pub use sqs::SqsTicketQueue;
