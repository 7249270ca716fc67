//! queuematch-lambda: the Lambda functions of `infra/template.yaml`, one binary each in `src/bin/`.
//!
//! The business logic is in `queuematch-handlers`; this crate only wires it to AWS. Each binary's
//! `main` loads its [`config`], builds its clients once, and hands events to one of the functions of
//! [`functions`], which tests call with the same events.

pub mod cognito;
pub mod config;
pub mod functions;
pub mod metrics;
pub mod rulesets;
pub mod wiring;

/// A start-up failure, logged with its message and returned from `main`, which ends the process:
/// Lambda reports the function's init as failed, and the log says which variable to set.
pub fn startup<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, lambda_runtime::Error> {
    result.map_err(|e| {
        tracing::error!(error = %e, "cannot start");
        lambda_runtime::Error::from(e.to_string())
    })
}

/// JSON logs, one object a line, filtered by `RUST_LOG` (the template sets `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(false)
        .with_target(false)
        .init();
}
