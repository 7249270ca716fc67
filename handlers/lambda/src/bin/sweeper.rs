//! `sweeper`: the scheduled safety net (see `functions::sweeper`).
use lambda_runtime::{service_fn, Error};
use queuematch_lambda::config::{Env, SweeperConfig};
use queuematch_lambda::{functions, startup, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    queuematch_lambda::init_tracing();
    let config = startup(SweeperConfig::from_env(&Env::process(SweeperConfig::BINARY)))?;
    let clients = wiring::clients().await;
    let (service, fleet) = startup(wiring::sweeper(&config, &clients))?;
    lambda_runtime::run(service_fn(|event| functions::sweeper(&service, &fleet, event))).await
}
