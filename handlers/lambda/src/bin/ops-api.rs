//! `ops-api`: the operators' routes under /v1/ops/ (see `functions::ops_api`).
use lambda_runtime::{service_fn, Error};
use queuematch_lambda::config::{Env, OpsApiConfig};
use queuematch_lambda::{functions, startup, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    queuematch_lambda::init_tracing();
    let config = startup(OpsApiConfig::from_env(&Env::process(OpsApiConfig::BINARY)))?;
    let clients = wiring::clients().await;
    let service = startup(wiring::ops_api(&config, &clients))?;
    lambda_runtime::run(service_fn(|event| functions::ops_api(&service, event))).await
}
