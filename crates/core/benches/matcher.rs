//! The matcher's benchmark: `cargo bench -p queuematch-core`.
//!
//! For pools of 10k and 100k waiting tickets of `ranked-1v1` and `ranked-5v5` (synthetic players from
//! the simulator's population, ages spread over the last minute), it prints:
//! - the round's CPU time and tickets matched per second, on one thread;
//! - the round's time as a multiple of sorting the same tickets by skill (the two run in turn, and the
//!   ratio is the median of each turn's, see [`in_turn`]; one untimed turn first warms both), and the
//!   lowest and highest turn's ("turns");
//! - the same ratio warm against warm ("warm r/s"): rounds run back to back, then sorts back to back,
//!   the ratio of the two medians. Sorted again and again, the same pool's sort gets faster run by
//!   run for the first five to eight runs, as the cache comes to keep the memory it reads each time
//!   (at 100k, from about 6 ms to 2–4 ms on the machine of BENCHMARKS.md; one sort before it gains
//!   little). The round reads too much to be kept that way and gains about a tenth. So this reading
//!   is the sort's steady state under repetition, which the in-turn reading never reaches;
//! - the same ratio cold against cold ("cold r/s"): in turn again, but with the cache wiped before each
//!   round and each sort (a gibibyte written over, see [`Wipe`]), so that neither finds its own
//!   memory in the cache, nor what the other left there (in turn, the round follows a sort that has
//!   just read the tickets' skills, and the sort follows a round that has read more than the cache
//!   holds);
//! - for 1v1, the time of a naive greedy matcher that scans every waiting ticket for each anchor,
//!   given the same rules and expansions and the same preprocessed numbers (so it is not slowed
//!   by attribute lookups), measured in the same run, and the ratio.
//!
//! The naive matcher is quadratic: at 100k it runs once (about a minute); everything else is the
//! median of 15 runs (3 for the naive matcher at 10k): the ratio at 100k moves by several per cent
//! from one turn to the next, and the median of five moved with it. `QM_BENCH_SKIP_NAIVE_100K=1` skips that one run; `QM_BENCH_ONLY=ranked-1v1`
//! runs one rule set; `QM_BENCH_SIZES=10000,50000` other pool sizes.

use cpu_time::ThreadTime;
use queuematch_core::matcher::round;
use queuematch_core::ruleset::{ExpansionTarget, RuleField, RuleKind};
use queuematch_core::simulate::Population;
use queuematch_core::{RuleSet, Ticket, Timestamp};
use std::hint::black_box;
use std::time::Duration;

const SIZES: [usize; 2] = [10_000, 100_000];
const NOW: Timestamp = Timestamp(10_000_000);
/// Tickets' ages spread over this much time before the round.
const AGES_MS: u64 = 60_000;

fn example(name: &str) -> RuleSet {
    let path = format!("{}/../../examples/rulesets/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One timed run of `f` on this thread's CPU clock, and its result. CPU time, not wall time: on a
/// shared machine the wall clock also counts other processes' turns.
fn timed<T>(f: &mut impl FnMut() -> T) -> (Duration, T) {
    let start = ThreadTime::now();
    let out = black_box(f());
    (start.elapsed(), out)
}

fn middle(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The median CPU time over `runs` runs of `f`, and its last result.
fn median<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        // The previous result is dropped outside the timed region.
        drop(last.take());
        let (time, out) = timed(&mut f);
        times.push(time);
        last = Some(out);
    }
    (middle(times), last.unwrap_or_else(|| panic!("no runs")))
}

/// The round and the yardstick run in turn, `runs` times each, `before` called (untimed) before each
/// of them: their median times, each turn's ratio (sorted: the median is the figure, the ends show
/// how far the host moved it), and the round's last result.
///
/// This machine's speed drifts by up to 2x within minutes, so a ratio of two medians taken one after
/// the other can compare a fast minute with a slow one; a round and the sort timed back to back run at
/// the same speed, and the median of their ratios is what the target is about.
fn in_turn<T>(
    runs: usize,
    mut before: impl FnMut(),
    mut round: impl FnMut() -> T,
    mut sort: impl FnMut() -> usize,
) -> (Duration, Duration, Vec<f64>, T) {
    let (mut round_times, mut sort_times, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..runs {
        drop(last.take());
        before();
        let (round_time, out) = timed(&mut round);
        before();
        let (sort_time, _) = timed(&mut sort);
        ratios.push(round_time.as_secs_f64() / sort_time.as_secs_f64());
        round_times.push(round_time);
        sort_times.push(sort_time);
        last = Some(out);
    }
    ratios.sort_by(f64::total_cmp);
    (
        middle(round_times),
        middle(sort_times),
        ratios,
        last.unwrap_or_else(|| panic!("no runs")),
    )
}

/// Memory written over before a cold run, more than the last-level cache of the machines this runs on
/// (480 MB of L3 on the one of BENCHMARKS.md), so that neither the round nor the sort finds anything
/// in the cache, its own memory or the other's.
const WIPE_BYTES: usize = 1 << 30;

/// A buffer of [`WIPE_BYTES`] written over to push everything else out of the cache.
struct Wipe(Vec<u64>);

impl Wipe {
    fn new() -> Self {
        Wipe(vec![0; WIPE_BYTES / 8])
    }

    fn run(&mut self) {
        for word in &mut self.0 {
            *word = word.wrapping_add(1);
        }
        black_box(&self.0);
    }
}

fn skill(t: &Ticket) -> f64 {
    t.players
        .first()
        .and_then(|p| p.attributes.get("skill"))
        .and_then(|v| v.as_number())
        .unwrap_or(1500.0)
}

/// The yardstick: read each ticket's skill and sort the tickets by it.
fn sort_by_skill(pool: &[Ticket]) -> usize {
    let mut keyed: Vec<(f64, &Ticket)> = pool.iter().map(|t| (skill(t), t)).collect();
    keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    keyed.len()
}

/// A naive greedy 1v1 matcher: oldest first, each anchor scans every other waiting ticket for the
/// closest skill within the distance limit that shares a region within the latency limit, both at
/// the anchor's expansion level. Returns the tickets matched.
fn naive_1v1(pool: &[Ticket], rules: &RuleSet, now: Timestamp) -> usize {
    let (mut distance, mut latency) = (f64::INFINITY, f64::INFINITY);
    for rule in &rules.rules {
        match rule.kind {
            RuleKind::Distance { max_distance, .. } => distance = max_distance,
            RuleKind::Latency { max_latency } => latency = f64::from(max_latency),
            _ => {}
        }
    }
    let expanded = |name: &str, field, base: f64, waited_s: f64| {
        rules
            .expansion_for(&ExpansionTarget::Rule {
                rule: name.to_owned(),
                field,
            })
            .and_then(|e| e.value_after(waited_s))
            .unwrap_or(base)
    };
    let regions = ["us-east-1", "eu-west-1", "ap-northeast-1"];
    let skills: Vec<f64> = pool.iter().map(skill).collect();
    let latencies: Vec<[u32; 3]> = pool
        .iter()
        .map(|t| regions.map(|r| t.players[0].latencies.get(r).unwrap_or(u32::MAX)))
        .collect();
    let mut order: Vec<usize> = (0..pool.len()).collect();
    order.sort_by(|&a, &b| {
        pool[a]
            .created_at
            .cmp(&pool[b].created_at)
            .then(pool[a].id.cmp(&pool[b].id))
    });
    let mut used = vec![false; pool.len()];
    let mut matched = 0;
    for &i in &order {
        if used[i] {
            continue;
        }
        let waited_s = now.since(pool[i].created_at).as_secs_f64();
        let max_distance = expanded("fair", RuleField::MaxDistance, distance, waited_s);
        let max_latency = expanded("ping", RuleField::MaxLatency, latency, waited_s);
        let mut best: Option<(f64, usize)> = None;
        for j in 0..pool.len() {
            if used[j] || j == i {
                continue;
            }
            let gap = (skills[i] - skills[j]).abs();
            if gap > max_distance || best.is_some_and(|(g, _)| g <= gap) {
                continue;
            }
            let reachable = (0..3).any(|r| f64::from(latencies[i][r].max(latencies[j][r])) <= max_latency);
            if reachable {
                best = Some((gap, j));
            }
        }
        if let Some((_, j)) = best {
            used[i] = true;
            used[j] = true;
            matched += 2;
        }
    }
    matched
}

fn main() {
    let skip_naive_100k = std::env::var_os("QM_BENCH_SKIP_NAIVE_100K").is_some();
    println!("queuematch matcher benchmark: one thread, release build; CPU times, medians unless marked once");
    println!(
        "round/sort: a round and a sort in turn, the median of each turn's ratio; turns: the lowest and the highest"
    );
    println!("warm r/s: rounds back to back against sorts back to back; repeated, a sort comes to read its pool from");
    println!(
        "the cache where the pool fits it, and a round, working on several times the memory, does not (BENCHMARKS.md)"
    );
    println!("cold r/s: as round/sort, with the cache wiped (1 GiB written over) before each round and each sort");
    println!();
    println!(
        "{:<11} {:>7} {:>10} {:>9} {:>15} {:>9} {:>11} {:>12} {:>10} {:>10} {:>9} {:>12} {:>10}",
        "rule set",
        "pool",
        "round",
        "matched",
        "tickets/s",
        "sort",
        "round/sort",
        "turns",
        "warm sort",
        "warm r/s",
        "cold r/s",
        "naive",
        "naive/round"
    );
    let mut wipe = Wipe::new();
    let only = std::env::var("QM_BENCH_ONLY").ok();
    let sizes: Vec<usize> = std::env::var("QM_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| SIZES.to_vec());
    for name in ["ranked-1v1", "ranked-5v5"] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let rules = example(name);
        for size in sizes.iter().copied() {
            let pool = Population::new(&rules, 42).waiting_pool(size, NOW, AGES_MS);
            let runs = 15;
            // One turn of each, untimed, first: the first round at a larger size grows the working
            // memory the matcher keeps on its thread (see matcher/recycle.rs), page by page from
            // the system, which a matcher that runs round after round does once; the sort gets
            // its turn too, so both are timed warm.
            black_box(round(&pool, &rules, NOW));
            black_box(sort_by_skill(&pool));
            let (round_time, sort_time, turns, outcome) =
                in_turn(runs, || {}, || round(&pool, &rules, NOW), || sort_by_skill(&pool));
            let round_per_sort = turns[turns.len() / 2];
            let spread = format!("{:.2}-{:.2}", turns[0], turns[turns.len() - 1]);
            let matched: usize = outcome.matches.iter().map(|m| m.ticket_ids().count()).sum();
            drop(outcome);
            let (_, _, cold_turns, _) = in_turn(
                runs,
                || wipe.run(),
                || round(&pool, &rules, NOW),
                || sort_by_skill(&pool),
            );
            let (warm_round, _) = median(runs, || round(&pool, &rules, NOW));
            let (warm_sort, _) = median(runs, || sort_by_skill(&pool));
            let naive = if name == "ranked-1v1" && !(size > 10_000 && skip_naive_100k) {
                let naive_runs = if size > 10_000 { 1 } else { 3 };
                let (t, naive_matched) = median(naive_runs, || naive_1v1(&pool, &rules, NOW));
                let once = if naive_runs == 1 { " once" } else { "" };
                Some((t, naive_matched, once))
            } else {
                None
            };
            let per_second = matched as f64 / round_time.as_secs_f64();
            let (naive_time, naive_ratio) = match naive {
                Some((t, naive_matched, once)) => (
                    format!("{:.1} ms{once}", t.as_secs_f64() * 1e3),
                    format!(
                        "{:.0}x ({naive_matched} m.)",
                        t.as_secs_f64() / round_time.as_secs_f64()
                    ),
                ),
                None => ("-".to_owned(), "-".to_owned()),
            };
            println!(
                "{:<11} {:>7} {:>7.2} ms {:>9} {:>15.0} {:>6.2} ms {:>10.2}x {:>12} {:>7.2} ms {:>9.2}x {:>8.2}x {:>12} {:>10}",
                name,
                size,
                round_time.as_secs_f64() * 1e3,
                matched,
                per_second,
                sort_time.as_secs_f64() * 1e3,
                round_per_sort,
                spread,
                warm_sort.as_secs_f64() * 1e3,
                warm_round.as_secs_f64() / warm_sort.as_secs_f64(),
                cold_turns[cold_turns.len() / 2],
                naive_time,
                naive_ratio,
            );
        }
    }
}
