//! `workflow-tasks`: the Task states of the session workflows (see `functions::workflow_tasks`).
use lambda_runtime::{service_fn, Error};
use queuematch_lambda::config::{Env, WorkflowTasksConfig};
use queuematch_lambda::metrics::Sink;
use queuematch_lambda::{functions, startup, wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    queuematch_lambda::init_tracing();
    let config = startup(WorkflowTasksConfig::from_env(&Env::process(
        WorkflowTasksConfig::BINARY,
    )))?;
    let clients = wiring::clients().await;
    let (service, fleet) = startup(wiring::workflow_tasks(&config, &clients))?;
    lambda_runtime::run(service_fn(|event| {
        functions::workflow_tasks(&service, &fleet, event, &Sink::Stdout)
    }))
    .await
}
