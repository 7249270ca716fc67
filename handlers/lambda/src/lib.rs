//! queuematch-lambda: the Lambda functions of `infra/template.yaml`, one binary each in `src/bin/`.
//!
//! The business logic is in `queuematch-handlers`; this crate only wires it to AWS. Each binary's
//! `main` loads its [`config`], builds its clients once, and hands events to one of the functions of
//! [`functions`], which tests call with the same events.

pub mod cognito;
pub mod config;
pub mod functions;
pub mod rulesets;

/// JSON logs, one object a line, filtered by `RUST_LOG` (the template sets `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(false)
        .with_target(false)
        .init();
}
