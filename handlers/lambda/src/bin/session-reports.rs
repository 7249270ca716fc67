//! `session-reports`: the game servers' signed reports (see `functions::session_reports`).
use lambda_runtime::{service_fn, Error};
use queuematch_lambda::config::{Env, SessionReportsConfig};
use queuematch_lambda::{functions, startup, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    queuematch_lambda::init_tracing();
    let config = startup(SessionReportsConfig::from_env(&Env::process(
        SessionReportsConfig::BINARY,
    )))?;
    let clients = wiring::clients().await;
    let (service, fleet) = startup(wiring::session_reports(&config, &clients))?;
    lambda_runtime::run(service_fn(|event| functions::session_reports(&service, &fleet, event))).await
}
