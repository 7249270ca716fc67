//! `ws-connections`: `$connect`, `$disconnect` and `subscribe` (see `functions::ws_connections`).
use lambda_runtime::{service_fn, Error};
use queuematch_aws::clock::SystemClock;
use queuematch_lambda::config::{Env, WsConnectionsConfig};
use queuematch_lambda::{functions, startup, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    queuematch_lambda::init_tracing();
    let config = startup(WsConnectionsConfig::from_env(&Env::process(
        WsConnectionsConfig::BINARY,
    )))?;
    let store = wiring::connections_store(&wiring::clients().await, &config.table_name);
    lambda_runtime::run(service_fn(|event| {
        functions::ws_connections(&store, &SystemClock, event)
    }))
    .await
}
