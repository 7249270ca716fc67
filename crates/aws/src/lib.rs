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
//! **What the infrastructure must match** (infra/template.yaml):
//! - the table: keys `pk` (HASH) and `sk` (RANGE), both S; GSI [`dynamo::GSI1`] on `gsi1pk`/`gsi1sk`
//!   and GSI [`dynamo::GSI2`] (the pool index) on `poolpk`/`poolsk`, both projecting ALL; TTL on
//!   [`dynamo::TTL_ATTRIBUTE`] (`expiresAt`). [`dynamo::create_table`] makes exactly that.
//! - the tickets queue with a RedrivePolicy to its DLQ (`maxReceiveCount` 5), as
//!   [`sqs::create_queues`] makes them; the adapter needs both URLs.
//! - events are put with source [`eventbridge::SOURCE`] and detail-type the event's name.
//! - GameLift placements are named by session id, so the placement task's role needs
//!   `gamelift:StartGameSessionPlacement`, `DescribeGameSessionPlacement`,
//!   `StopGameSessionPlacement`, `CreatePlayerSessions` and `TerminateGameSession`; the ECS fleet
//!   needs `ecs:RunTask`, `ecs:DescribeTasks` (and `iam:PassRole` for the task roles).
//!
//! Clients come from [`config`]: [`config::load`] reads the environment (region, credentials,
//! `AWS_ENDPOINT_URL`) with the retry policy of DESIGN.md, [`config::Clients`] builds one client
//! per service. Every adapter maps SDK errors onto `PortError`; no SDK error type leaves this crate.

pub mod clock;
pub mod config;
pub mod dynamo;
pub mod ecs;
pub mod error;
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
