//! The golden test: the outcomes of the example rule sets on seeded pools, as a digest of their JSON.
//!
//! Speed work on the matcher must not change a single match. The scenario and property tests check
//! behaviours and invariants; this one checks that every choice stays exactly as it was: any change
//! in the matches, their order, teams, regions, quality figures or the next change shows up as a
//! different digest. The digests were made by the code before the third speed pass. A deliberate
//! change of behaviour must update them, and say so: the coop-4 and battle-royale-60 ones were, when a
//! match of one team slot stopped reporting a team imbalance of 0 (it reports none; every other figure
//! and choice was compared and is the same); two `ArrivalOrder` ones (ranked-1v1 and ranked-5v5 at
//! 60 s), when first come, first served stopped giving up on an anchor after a run of refusals (the
//! `ClosestSkill` digests, the matcher's own, stayed the same).

use super::{round_with, Pairing};
use crate::simulate::Population;
use crate::{RuleSet, Timestamp};

const NOW: Timestamp = Timestamp(10_000_000);

/// FNV-1a, 64 bits: enough to tell two outcomes apart, and no dependency.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn example(name: &str) -> RuleSet {
    let path = format!("{}/../../examples/rulesets/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Each example rule set's outcome on a pool of 3,000 tickets (seed 7), aged over 60 s and over 200 s
/// (so some time out), with both pairings: (rule set, ages in ms, pairing, JSON bytes, digest).
fn digests() -> Vec<(String, u64, Pairing, usize, u64)> {
    let mut out = Vec::new();
    for name in ["ranked-1v1", "ranked-5v5", "coop-4", "battle-royale-60"] {
        let rules = example(name);
        for ages_ms in [60_000, 200_000] {
            let pool = Population::new(&rules, 7).waiting_pool(3_000, NOW, ages_ms);
            for pairing in [Pairing::ClosestSkill, Pairing::ArrivalOrder] {
                let json = serde_json::to_vec(&round_with(&pool, &rules, NOW, pairing)).unwrap();
                out.push((name.to_owned(), ages_ms, pairing, json.len(), fnv1a(&json)));
            }
        }
    }
    out
}

#[test]
fn the_example_rule_sets_match_exactly_as_before() {
    // (JSON bytes, digest), in the order of `digests`.
    let expected: &[(usize, u64)] = &[
        (557968, 0xc1ec1db0b9d3f6e5), // ranked-1v1 60000 ClosestSkill
        (560876, 0x1efcc55456354d83), // ranked-1v1 60000 ArrivalOrder
        (358581, 0x09a2cef4af0c0fea), // ranked-1v1 200000 ClosestSkill
        (360386, 0x073e6b1f376f6ce5), // ranked-1v1 200000 ArrivalOrder
        (249474, 0x35b1f52d04fcb6f8), // ranked-5v5 60000 ClosestSkill
        (214664, 0x8f16a413b67ac275), // ranked-5v5 60000 ArrivalOrder
        (169981, 0x74936feff72bf5f6), // ranked-5v5 200000 ClosestSkill
        (147104, 0x59793fd56e39a1e3), // ranked-5v5 200000 ArrivalOrder
        (454048, 0xba176665dd1dea5f), // coop-4 60000 ClosestSkill
        (466344, 0x058451f8b2769787), // coop-4 60000 ArrivalOrder
        (407549, 0x6d732fcdbcf09625), // coop-4 200000 ClosestSkill
        (423623, 0x87fb07cde23009f8), // coop-4 200000 ArrivalOrder
        (178807, 0x27ed116ef2dcbfac), // battle-royale-60 60000 ClosestSkill
        (178645, 0x1ef8068eb0489d57), // battle-royale-60 60000 ArrivalOrder
        (168995, 0x969f421e491689d4), // battle-royale-60 200000 ClosestSkill
        (167137, 0x4b50e654707ec456), // battle-royale-60 200000 ArrivalOrder
    ];
    let got = digests();
    let printed: Vec<String> = got
        .iter()
        .map(|(n, a, p, len, d)| format!("({len}, 0x{d:016x}), // {n} {a} {p:?}"))
        .collect();
    assert_eq!(
        got.iter().map(|g| (g.3, g.4)).collect::<Vec<_>>(),
        expected,
        "outcomes changed:\n{}",
        printed.join("\n")
    );
}
