//! `matcher`: the tickets queue's batches (see `functions::matcher`).
use lambda_runtime::{service_fn, Error};
use queuematch_lambda::config::{Env, MatcherConfig};
use queuematch_lambda::metrics::Sink;
use queuematch_lambda::{functions, startup, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    queuematch_lambda::init_tracing();
    let config = startup(MatcherConfig::from_env(&Env::process(MatcherConfig::BINARY)))?;
    let clients = wiring::clients().await;
    let service = startup(wiring::matcher(&config, &clients).await)?;
    lambda_runtime::run(service_fn(|event| functions::matcher(&service, event, &Sink::Stdout))).await
}
