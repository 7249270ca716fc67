//! `ws-authorizer`: the WebSocket API's `$connect` authorizer (see `functions::ws_authorizer`).
use lambda_runtime::{service_fn, Error};
use queuematch_aws::clock::SystemClock;
use queuematch_lambda::cognito;
use queuematch_lambda::config::{Env, WsAuthorizerConfig};
use queuematch_lambda::{functions, startup};

#[tokio::main]
async fn main() -> Result<(), Error> {
    queuematch_lambda::init_tracing();
    let config = startup(WsAuthorizerConfig::from_env(&Env::process(WsAuthorizerConfig::BINARY)))?;
    let tokens = startup(cognito::fetch(&config.cognito).await)?;
    lambda_runtime::run(service_fn(|event| {
        functions::ws_authorizer(&tokens, &SystemClock, event)
    }))
    .await
}
