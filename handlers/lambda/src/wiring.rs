//! The AWS side of each function, built once per cold start: the SDK clients from the
//! environment (region, role credentials, and `AWS_ENDPOINT_URL` for a local AWS API), the
//! adapters of queuematch-aws over them, and the handlers' [`Service`].
//!
//! A function gets only the ports its handler reaches; the others are `()`, so that, say, the
//! tickets API holds no SQS or Step Functions client at all, as its role holds no such permission.

use aws_sdk_apigatewaymanagement::error::SdkError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use queuematch_aws::clock::SystemClock;
use queuematch_aws::{
    Clients, DynamoStore, EcsFleet, EcsFleetConfig, EventBridgeEvents, GameLiftFleet, SfnWorkflows, SqsTicketQueue,
};
use queuematch_core::ports::{Fleet, PortError, Store};
use queuematch_core::usecases::{Queues, Settings};
use queuematch_handlers::push::{Connections, Posted};
use queuematch_handlers::Service;
use std::collections::HashMap;
use std::sync::Arc;

use crate::cognito::{CognitoTokens, JwksError};
use crate::config::{ConfigError, FleetConfig, QueueUrls};
use crate::metrics::{Metered, Sink};

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Jwks(#[from] JwksError),
    #[error("{0}")]
    RuleSets(String),
}

/// The name the workflows adapter knows the placement workflow by: its file's, in `workflows/`.
pub const PLACEMENT_WORKFLOW: &str = "session-placement";
pub use queuematch_core::usecases::completion::COMPLETION_WORKFLOW;

/// Domain events go to EventBridge, and the ones that are metrics to CloudWatch (as EMF on stdout).
pub type FunctionEvents = Metered<EventBridgeEvents, SystemClock>;

pub type MatcherService =
    Service<DynamoStore, SqsTicketQueue, SfnWorkflows, FunctionEvents, SystemClock, CognitoTokens>;
pub type TicketsApiService = Service<DynamoStore, (), (), FunctionEvents, SystemClock, ()>;
pub type OpsApiService = Service<DynamoStore, SqsTicketQueue, (), (), SystemClock, ()>;
pub type WorkflowTasksService = Service<DynamoStore, SqsTicketQueue, (), FunctionEvents, SystemClock, ()>;
pub type SessionReportsService = Service<DynamoStore, SqsTicketQueue, SfnWorkflows, FunctionEvents, SystemClock, ()>;
pub type SweeperService = Service<DynamoStore, SqsTicketQueue, SfnWorkflows, FunctionEvents, SystemClock, ()>;

/// The SDK configuration from the environment, with the adapters' retry policy.
pub async fn sdk_config() -> aws_config::SdkConfig {
    queuematch_aws::config::load(None).await
}

/// The SDK clients, from the environment.
pub async fn clients() -> Clients {
    Clients::new(&sdk_config().await)
}

fn queues() -> Result<Arc<Queues>, StartError> {
    crate::rulesets::queues().map(Arc::new).map_err(StartError::RuleSets)
}

fn store(clients: &Clients, table: &str) -> DynamoStore {
    DynamoStore::new(clients.dynamodb.clone(), table)
}

fn queue(clients: &Clients, urls: &QueueUrls) -> SqsTicketQueue {
    SqsTicketQueue::new(clients.sqs.clone(), &urls.url, &urls.dlq_url)
}

fn events(clients: &Clients, bus: &str) -> FunctionEvents {
    Metered {
        inner: EventBridgeEvents::new(clients.eventbridge.clone(), bus),
        clock: SystemClock,
        sink: Sink::Stdout,
    }
}

fn placement_workflows(clients: &Clients, arn: &str, store: &DynamoStore) -> SfnWorkflows {
    workflows(clients, PLACEMENT_WORKFLOW, arn, store)
}

/// Starts `workflow` at `arn`. Express state machines deduplicate no execution names, so each start
/// is recorded in the table and a repeated one (a redelivered batch, a retried start) is answered
/// from the record rather than run twice.
fn workflows(clients: &Clients, workflow: &str, arn: &str, store: &DynamoStore) -> SfnWorkflows {
    SfnWorkflows::new(
        clients.sfn.clone(),
        HashMap::from([(workflow.to_owned(), arn.to_owned())]),
    )
    .deduplicated_by(Arc::new(store.clone()), SystemClock)
}

/// The fleet of `config`, keeping its records in `store`.
pub fn fleet(clients: &Clients, store: &DynamoStore, config: &FleetConfig) -> Arc<dyn Fleet> {
    let records: Arc<dyn Store> = Arc::new(store.clone());
    match config {
        FleetConfig::GameLift { queue_name } => {
            Arc::new(GameLiftFleet::new(clients.gamelift.clone(), queue_name, records))
        }
        FleetConfig::Ecs {
            cluster,
            task_definition,
            subnets,
            security_groups,
        } => Arc::new(EcsFleet::new(
            clients.ecs.clone(),
            records,
            EcsFleetConfig {
                fleet: cluster.clone(),
                cluster: cluster.clone(),
                task_definition: task_definition.clone(),
                subnets: subnets.clone(),
                security_groups: security_groups.clone(),
                // Players connect to the tasks directly.
                assign_public_ip: !subnets.is_empty(),
            },
        )),
    }
}

pub async fn matcher(config: &crate::config::MatcherConfig, clients: &Clients) -> Result<MatcherService, StartError> {
    let store = store(clients, &config.table_name);
    Ok(Service {
        workflows: placement_workflows(clients, &config.placement_state_machine_arn, &store),
        store,
        queue: queue(clients, &config.queue),
        events: events(clients, &config.event_bus_name),
        clock: SystemClock,
        party_tokens: crate::cognito::fetch(&config.cognito).await?,
        queues: queues()?,
        settings: Arc::new(Settings::default()),
    })
}

pub fn tickets_api(
    config: &crate::config::TicketsApiConfig,
    clients: &Clients,
) -> Result<TicketsApiService, StartError> {
    Ok(Service {
        store: store(clients, &config.table_name),
        queue: (),
        workflows: (),
        events: events(clients, &config.event_bus_name),
        clock: SystemClock,
        party_tokens: (),
        queues: queues()?,
        settings: Arc::new(Settings::default()),
    })
}

pub fn workflow_tasks(
    config: &crate::config::WorkflowTasksConfig,
    clients: &Clients,
) -> Result<(WorkflowTasksService, Arc<dyn Fleet>), StartError> {
    let store = store(clients, &config.table_name);
    let fleet = fleet(clients, &store, &config.fleet);
    let service = Service {
        store,
        queue: queue(clients, &config.queue),
        workflows: (),
        events: events(clients, &config.event_bus_name),
        clock: SystemClock,
        party_tokens: (),
        queues: queues()?,
        settings: Arc::new(Settings::default()),
    };
    Ok((service, fleet))
}

pub fn session_reports(
    config: &crate::config::SessionReportsConfig,
    clients: &Clients,
) -> Result<(SessionReportsService, Arc<dyn Fleet>), StartError> {
    let store = store(clients, &config.table_name);
    let fleet = fleet(clients, &store, &config.fleet);
    let service = Service {
        workflows: workflows(
            clients,
            COMPLETION_WORKFLOW,
            &config.completion_state_machine_arn,
            &store,
        ),
        store,
        queue: queue(clients, &config.queue),
        events: events(clients, &config.event_bus_name),
        clock: SystemClock,
        party_tokens: (),
        queues: queues()?,
        settings: Arc::new(Settings::default()),
    };
    Ok((service, fleet))
}

pub fn ops_api(config: &crate::config::OpsApiConfig, clients: &Clients) -> Result<OpsApiService, StartError> {
    Ok(Service {
        store: store(clients, &config.table_name),
        queue: queue(clients, &config.queue),
        workflows: (),
        events: (),
        clock: SystemClock,
        party_tokens: (),
        queues: queues()?,
        settings: Arc::new(Settings::default()),
    })
}

pub fn sweeper(
    config: &crate::config::SweeperConfig,
    clients: &Clients,
) -> Result<(SweeperService, Arc<dyn Fleet>), StartError> {
    let store = store(clients, &config.table_name);
    let fleet = fleet(clients, &store, &config.fleet);
    let service = Service {
        workflows: placement_workflows(clients, &config.placement_state_machine_arn, &store),
        store,
        queue: queue(clients, &config.queue),
        events: events(clients, &config.event_bus_name),
        clock: SystemClock,
        party_tokens: (),
        queues: queues()?,
        settings: Arc::new(Settings::default()),
    };
    Ok((service, fleet))
}

/// The table, for the functions that only keep connections.
pub fn connections_store(clients: &Clients, table: &str) -> DynamoStore {
    store(clients, table)
}

/// `PostToConnection` on the WebSocket API's management endpoint.
#[derive(Debug, Clone)]
pub struct ApiGatewayConnections {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ApiGatewayConnections {
    /// A client for the management API at `endpoint` (`https://<api>.execute-api.<region>.amazonaws.com/<stage>`).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build();
        Self {
            client: aws_sdk_apigatewaymanagement::Client::from_conf(config),
        }
    }
}

#[async_trait::async_trait]
impl Connections for ApiGatewayConnections {
    async fn post(&self, connection_id: &str, message: &[u8]) -> Result<Posted, PortError> {
        let sent = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(message))
            .send()
            .await;
        let err = match sent {
            Ok(_) => return Ok(Posted::Sent),
            Err(err) => err,
        };
        if let SdkError::ServiceError(e) = &err {
            match e.err() {
                PostToConnectionError::GoneException(_) => return Ok(Posted::Gone),
                PostToConnectionError::LimitExceededException(_) => {
                    return Err(PortError::Throttled { retry_after: None })
                }
                PostToConnectionError::PayloadTooLargeException(_) => {
                    return Err(PortError::invalid(format!(
                        "a message of {} bytes is over the WebSocket API's frame limit",
                        message.len()
                    )))
                }
                _ => {}
            }
        }
        // As every adapter maps the rest: the cause kept (a refused connection, the service's
        // code and message), and a refusal retrying cannot change (Forbidden: a wrong stage in
        // WEBSOCKET_ENDPOINT, a missing permission) not retried as if transient.
        Err(queuematch_aws::error::map("PostToConnection", err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_post_that_cannot_reach_the_management_api_says_why() {
        // GIVEN a management endpoint where nothing listens
        let endpoint = "http://127.0.0.1:9";
        let connections = ApiGatewayConnections::new(&queuematch_aws::config::local(endpoint, "us-east-1"), endpoint);
        // WHEN a message is posted THEN the error keeps the cause, not only "dispatch failure"
        let refused = connections.post("c-1", b"{}").await.err();
        let message = refused.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("PostToConnection: the request could not be sent: "),
            "{message}"
        );
        assert!(message.contains("Connection refused"), "{message}");
    }
}
