//! The retry schedule under virtual time: the gaps between a failed attempt and the next one, read from the
//! execution history, follow IntervalSeconds × BackoffRate^n, stop growing at MaxDelaySeconds, and with
//! `JitterStrategy: FULL` fall anywhere between zero and that delay, reproducibly for a given seed.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use queuematch_asl::{Clock, Engine, Execution, ExecutionOptions, ScriptedTasks, StateMachine};
use serde_json::{json, Value};

const RESOURCE: &str = "arn:aws:states:::always-fails";

fn machine(retrier: Value) -> StateMachine {
    let definition = json!({
        "StartAt": "Flaky",
        "States": {"Flaky": {"Type": "Task", "Resource": RESOURCE, "Retry": [retrier], "End": true}}
    });
    StateMachine::from_value(&definition).unwrap_or_else(|e| panic!("{e}"))
}

async fn run(machine: &StateMachine, seed: u64) -> Execution {
    let script = json!({RESOURCE: {"Throw": {"Error": "Transient", "Cause": "still failing"}}});
    let tasks = Arc::new(ScriptedTasks::from_json(&script).unwrap_or_else(|e| panic!("{e}")));
    let start = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap_or_else(|e| panic!("{e}"))
        .to_utc();
    let options = ExecutionOptions {
        clock: Clock::virtual_at(start),
        seed: Some(seed),
        ..ExecutionOptions::default()
    };
    Engine::new(tasks).execute(machine, json!({}), options).await
}

/// The waits between each TaskFailed and the TaskScheduled of the next attempt, in milliseconds.
fn gaps(execution: &Execution) -> Vec<i64> {
    let mut gaps = Vec::new();
    let mut failed_at = None;
    for event in &execution.history {
        match event.kind {
            "TaskFailed" => failed_at = Some(event.timestamp),
            "TaskScheduled" => {
                if let Some(failed) = failed_at.take() {
                    gaps.push((event.timestamp - failed).num_milliseconds());
                }
            }
            _ => {}
        }
    }
    gaps
}

#[tokio::test(start_paused = true)]
async fn intervals_grow_by_the_backoff_rate() {
    // GIVEN a retrier of 2 s growing by 1.5 each time, five attempts
    let machine =
        machine(json!({"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "BackoffRate": 1.5, "MaxAttempts": 5}));
    // WHEN the task never succeeds
    let execution = run(&machine, 1).await;
    // THEN the waits are 2, 3, 4.5, 6.75 and 10.125 s, and the error surfaces after the last attempt
    assert_eq!(gaps(&execution), vec![2000, 3000, 4500, 6750, 10125]);
    assert_eq!(execution.result().unwrap_err().error, "Transient");
    assert_eq!(
        execution.history.iter().filter(|e| e.kind == "TaskScheduled").count(),
        6
    );
}

#[tokio::test(start_paused = true)]
async fn max_delay_caps_the_backoff() {
    let machine = machine(json!({
        "ErrorEquals": ["Transient"], "IntervalSeconds": 1, "BackoffRate": 10, "MaxDelaySeconds": 60, "MaxAttempts": 5
    }));
    let execution = run(&machine, 1).await;
    assert_eq!(gaps(&execution), vec![1000, 10_000, 60_000, 60_000, 60_000]);
}

#[tokio::test(start_paused = true)]
async fn defaults_are_one_second_doubling_three_times() {
    let machine = machine(json!({"ErrorEquals": ["States.ALL"]}));
    let execution = run(&machine, 1).await;
    assert_eq!(gaps(&execution), vec![1000, 2000, 4000]);
    assert_eq!((execution.stop - execution.start).num_seconds(), 7);
}

#[tokio::test(start_paused = true)]
async fn full_jitter_stays_within_the_backoff_and_varies() {
    let machine = machine(json!({
        "ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "BackoffRate": 2, "MaxDelaySeconds": 100,
        "MaxAttempts": 6, "JitterStrategy": "FULL"
    }));
    let bounds = [10_000, 20_000, 40_000, 80_000, 100_000, 100_000];
    let mut below_half = 0;
    let mut total = 0;
    for seed in 0..200 {
        let gaps = gaps(&run(&machine, seed).await);
        assert_eq!(gaps.len(), bounds.len(), "seed {seed}");
        for (gap, bound) in gaps.iter().zip(bounds) {
            assert!(
                (0..=bound).contains(gap),
                "seed {seed}: a jittered wait of {gap} ms exceeds {bound} ms"
            );
            below_half += i32::from(*gap < bound / 2);
            total += 1;
        }
    }
    // Uniform jitter puts about half the waits in the lower half of their range.
    let share = f64::from(below_half) / f64::from(total);
    assert!(
        (0.4..0.6).contains(&share),
        "{below_half} of {total} waits were in the lower half"
    );
}

#[tokio::test(start_paused = true)]
async fn jitter_is_reproducible_for_a_seed() {
    let machine = machine(
        json!({"ErrorEquals": ["States.ALL"], "IntervalSeconds": 30, "MaxAttempts": 4, "JitterStrategy": "FULL"}),
    );
    let first = gaps(&run(&machine, 7).await);
    assert_eq!(first, gaps(&run(&machine, 7).await));
    assert_ne!(first, gaps(&run(&machine, 8).await));
}

#[tokio::test(start_paused = true)]
async fn hours_of_backoff_take_no_real_time() {
    let machine =
        machine(json!({"ErrorEquals": ["States.ALL"], "IntervalSeconds": 600, "BackoffRate": 2, "MaxAttempts": 5}));
    let real = std::time::Instant::now();
    let execution = run(&machine, 1).await;
    // 600 + 1200 + 2400 + 4800 + 9600 s: over five hours of virtual time.
    assert_eq!((execution.stop - execution.start).num_seconds(), 18_600);
    assert!(
        real.elapsed() < Duration::from_secs(5),
        "virtual time took {:?} of real time",
        real.elapsed()
    );
}
