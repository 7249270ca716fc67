//! The reporter against a service that fails on purpose: transient failures are retried, each
//! attempt signed afresh; refusals are not retried; an unreachable service is given up on.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use queuematch_core::identity::{report, SessionSecret};
use queuematch_core::Timestamp;
use queuematch_gameserver::report::{Backoff, Report, ReportError, Reporter};
use queuematch_gameserver::report::{NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Answers each attempt with the next scripted status (202 once the script runs out), and keeps
/// whether each attempt's signature verified, with its nonce.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<StatusCode>>>,
    attempts: Arc<Mutex<Vec<(String, bool)>>>,
}

fn secret() -> SessionSecret {
    SessionSecret::from_random_bytes(&[8; 32])
}

async fn answer(State(script): State<Script>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let timestamp = Timestamp(header(TIMESTAMP_HEADER).parse().unwrap_or_default());
    let nonce = header(NONCE_HEADER).to_owned();
    let verified = report::verify(
        &secret(),
        timestamp,
        &nonce,
        &body,
        header(SIGNATURE_HEADER),
        common::now(),
    )
    .is_ok();
    script
        .attempts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((nonce, verified));
    let next = script.answers.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
    next.unwrap_or(StatusCode::ACCEPTED)
}

/// A service answering `answers` in turn, and a reporter for session `s-1` pointed at it.
async fn service(answers: &[StatusCode]) -> (Script, Reporter, tokio::task::JoinHandle<()>) {
    let script = Script::default();
    script.answers.lock().unwrap_or_else(|e| e.into_inner()).extend(answers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    let app = Router::new()
        .route("/v1/sessions/s-1/events", post(answer))
        .with_state(script.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (script, reporter(&url), server)
}

fn reporter(url: &str) -> Reporter {
    Reporter::new(reqwest::Client::new(), url, &"s-1".into(), secret()).with_backoff(Backoff {
        attempts: 4,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(40),
    })
}

#[tokio::test]
async fn transient_failures_are_retried_and_each_attempt_is_signed_afresh() {
    let (script, reporter, _server) = service(&[StatusCode::SERVICE_UNAVAILABLE, StatusCode::TOO_MANY_REQUESTS]).await;
    reporter.send(&Report::Ready).await.unwrap();
    let attempts = script.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 3, "two failures, then the success");
    assert!(attempts.iter().all(|(_, verified)| *verified), "{attempts:?}");
    let mut nonces: Vec<&String> = attempts.iter().map(|(nonce, _)| nonce).collect();
    nonces.dedup();
    assert_eq!(nonces.len(), 3, "a new nonce for every attempt");
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let (script, reporter, _server) = service(&[StatusCode::CONFLICT]).await;
    let refused = reporter.send(&Report::Heartbeat).await.unwrap_err();
    assert!(
        matches!(refused, ReportError::Refused { status, .. } if status == StatusCode::CONFLICT),
        "{refused}"
    );
    assert_eq!(script.attempts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn persistent_failures_are_given_up_after_the_last_attempt() {
    let (script, reporter, _server) = service(&[StatusCode::BAD_GATEWAY; 10]).await;
    let failed = reporter.send(&Report::Ready).await.unwrap_err();
    assert!(matches!(failed, ReportError::GaveUp { attempts: 4, .. }), "{failed}");
    assert_eq!(script.attempts.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn an_unreachable_service_is_given_up_on_without_a_panic() {
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let failed = reporter(&format!("http://127.0.0.1:{closed}"))
        .send(&Report::End {
            reason: "game over".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(failed, ReportError::GaveUp { attempts: 4, .. }), "{failed}");
    let heartbeat = reporter(&format!("http://127.0.0.1:{closed}"))
        .send_once(&Report::Heartbeat)
        .await
        .unwrap_err();
    assert!(
        matches!(heartbeat, ReportError::GaveUp { attempts: 1, .. }),
        "{heartbeat}"
    );
}
