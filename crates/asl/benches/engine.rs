//! State transitions per second for two shapes of workflow, each against a baseline measured in the same run:
//! the cost of doing the same data handling by hand with serde_json (clones, lookups, inserts). The ratio is
//! what the interpreter costs on top of the data work it cannot avoid.
//!
//! Run with `cargo bench -p queuematch-asl`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use queuematch_asl::{Engine, ExecutionOptions, ScriptedTasks, StateMachine};
use serde_json::{json, Map, Value};

const CHAIN_STATES: usize = 100;
const MAP_ITEMS: usize = 10_000;

/// 50 Pass/Choice pairs: each Pass records its step, each Choice checks it and moves on.
fn chain_definition() -> Value {
    let mut states = Map::new();
    for i in 0..CHAIN_STATES / 2 {
        let next_pass = format!("Pass{}", i + 1);
        states.insert(
            format!("Pass{i}"),
            json!({"Type": "Pass", "Result": i, "ResultPath": "$.step", "Next": format!("Choice{i}")}),
        );
        let choice_next = if i + 1 == CHAIN_STATES / 2 {
            "Done".to_owned()
        } else {
            next_pass
        };
        states.insert(
            format!("Choice{i}"),
            json!({"Type": "Choice", "Choices": [{"Variable": "$.step", "NumericEquals": i, "Next": choice_next}],
                   "Default": "Lost"}),
        );
    }
    states.insert("Done".into(), json!({"Type": "Succeed"}));
    states.insert("Lost".into(), json!({"Type": "Fail", "Error": "Lost"}));
    json!({"StartAt": "Pass0", "States": states})
}

fn chain_input() -> Value {
    let players: Vec<Value> = (0..10)
        .map(|i| json!({"playerId": format!("p{i}"), "skill": 1500 + i}))
        .collect();
    json!({"matchId": "m-1", "queue": "ranked-5v5", "players": players})
}

/// The data work of the chain done directly: per Pass, a clone of the data and an insert; per Choice, a lookup
/// and comparison.
fn chain_baseline(input: &Value) -> Value {
    let mut data = input.clone();
    for i in 0..CHAIN_STATES / 2 {
        let mut next = data.clone();
        if let Value::Object(map) = &mut next {
            map.insert("step".into(), Value::from(i));
        }
        data = next;
        let step = data.get("step").and_then(Value::as_u64);
        assert_eq!(step, Some(i as u64));
    }
    data
}

fn map_definition() -> Value {
    json!({
        "StartAt": "Each",
        "States": {"Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {"index.$": "$$.Map.Item.Index", "item.$": "$$.Map.Item.Value"},
            "ItemProcessor": {"StartAt": "Score", "States": {"Score": {"Type": "Pass", "InputPath": "$.item", "End": true}}},
            "ResultPath": "$.scored",
            "End": true
        }}
    })
}

fn map_input() -> Value {
    // Skill ratings: 10,000 of anything larger would break the 256 KiB payload limit, as it would on AWS.
    let items: Vec<Value> = (0..MAP_ITEMS).map(|i| Value::from(1000 + i % 2000)).collect();
    json!({"items": items})
}

/// The data work of the Map done directly: per item, the selector object built and the item taken out of it.
fn map_baseline(input: &Value) -> Value {
    let items = input["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut results = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let mut selected = json!({"index": index, "item": item.clone()});
        results.push(selected["item"].take());
    }
    let mut output = input.clone();
    output["scored"] = Value::Array(results);
    output
}

/// The median wall time of `runs` calls of `f`, after a warm-up call.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn report(name: &str, transitions: u64, engine: Duration, baseline: Duration) {
    let per_second = transitions as f64 / engine.as_secs_f64();
    println!(
        "{name:<44} {transitions:>6} transitions in {:>9.3} ms = {:>12.0} transitions/s; baseline {:>8.3} ms; ratio {:>5.1}x",
        engine.as_secs_f64() * 1e3,
        per_second,
        baseline.as_secs_f64() * 1e3,
        engine.as_secs_f64() / baseline.as_secs_f64()
    );
}

fn bench(name: &str, machine: &StateMachine, input: &Value, history: bool, runs: usize, baseline: Duration) {
    let engine = Engine::new(Arc::new(ScriptedTasks::default()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut transitions = 0;
    let time = median(runs, || {
        let options = ExecutionOptions {
            record_history: history,
            seed: Some(1),
            ..ExecutionOptions::default()
        };
        let execution = runtime.block_on(engine.execute(machine, input.clone(), options));
        assert!(execution.result().is_ok(), "{:?}", execution.result());
        transitions = execution.state_transitions;
        black_box(execution);
    });
    report(name, transitions, time, baseline);
}

fn main() {
    let chain = StateMachine::from_value(&chain_definition()).unwrap_or_else(|e| panic!("{e}"));
    let input = chain_input();
    let baseline = median(201, || {
        black_box(chain_baseline(black_box(&input)));
    });
    bench("100-state Pass/Choice chain", &chain, &input, false, 201, baseline);
    bench(
        "100-state Pass/Choice chain, with history",
        &chain,
        &input,
        true,
        201,
        baseline,
    );

    let map = StateMachine::from_value(&map_definition()).unwrap_or_else(|e| panic!("{e}"));
    let input = map_input();
    let baseline = median(21, || {
        black_box(map_baseline(black_box(&input)));
    });
    bench("Map over 10,000 items", &map, &input, false, 21, baseline);
    bench("Map over 10,000 items, with history", &map, &input, true, 11, baseline);
}
