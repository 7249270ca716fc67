//! `notifier`: domain events from EventBridge, pushed to the players' connections (see
//! `functions::notifier`).
use lambda_runtime::{service_fn, Error};
use queuematch_lambda::config::{Env, NotifierConfig};
use queuematch_lambda::wiring::{self, ApiGatewayConnections};
use queuematch_lambda::{functions, startup};

#[tokio::main]
async fn main() -> Result<(), Error> {
    queuematch_lambda::init_tracing();
    let config = startup(NotifierConfig::from_env(&Env::process(NotifierConfig::BINARY)))?;
    let sdk = wiring::sdk_config().await;
    let store = wiring::connections_store(&queuematch_aws::Clients::new(&sdk), &config.table_name);
    let connections = ApiGatewayConnections::new(&sdk, &config.websocket_endpoint);
    lambda_runtime::run(service_fn(|event| functions::notifier(&store, &connections, event))).await
}
