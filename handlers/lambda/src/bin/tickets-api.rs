//! `tickets-api`: GET and DELETE /v1/tickets/{ticketId}, its acceptance, and a player's ratings (see
//! `functions::tickets_api`).
use lambda_runtime::{service_fn, Error};
use queuematch_lambda::config::{Env, TicketsApiConfig};
use queuematch_lambda::metrics::Sink;
use queuematch_lambda::{functions, startup, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    queuematch_lambda::init_tracing();
    let config = startup(TicketsApiConfig::from_env(&Env::process(TicketsApiConfig::BINARY)))?;
    let clients = wiring::clients().await;
    let service = startup(wiring::tickets_api(&config, &clients))?;
    lambda_runtime::run(service_fn(|event| {
        functions::tickets_api(&service, event, &Sink::Stdout)
    }))
    .await
}
