//! A player's latencies: the round-trip time they measured to each region.
//!
//! The matcher reads every player's latencies in every round. Kept as a `BTreeMap<String, u32>`,
//! that read cost about four cache misses a player: the tree's root node, then each region name's
//! heap string. [`Latencies`] keeps the same map, sorted the same way, inside the `Player` itself:
//! up to four regions, with names of up to 24 bytes, need no memory beyond it.

use compact_str::CompactString;
use prefetch_index::prefetch_index;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use smallvec::SmallVec;
use std::fmt;

/// How many regions fit inline before the list moves to the heap. Clients measure a handful of
/// regions, so four covers the usual case; each slot is 32 bytes of every `Player`, used or not.
const INLINE_REGIONS: usize = 4;

/// Round-trip milliseconds by region name: a map with the invariants of the `BTreeMap` it replaced,
/// which the matcher relies on to merge a player's regions with its own sorted list.
///
/// It serialises as that map did, as an object keyed by region in sorted order, so what is stored and
/// what the API speaks are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Latencies {
    /// Sorted by region name, each region once.
    by_region: SmallVec<[(CompactString, u32); INLINE_REGIONS]>,
}

impl Latencies {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the latency to `region`, returning the one it replaces, as `BTreeMap::insert` does.
    pub fn insert(&mut self, region: impl Into<CompactString>, ms: u32) -> Option<u32> {
        let region = region.into();
        match self.position(&region) {
            Ok(at) => self.by_region.get_mut(at).map(|(_, old)| std::mem::replace(old, ms)),
            Err(at) => {
                self.by_region.insert(at, (region, ms));
                None
            }
        }
    }

    /// The latency to `region`, if the player measured it.
    pub fn get(&self, region: &str) -> Option<u32> {
        let at = self.position(region).ok()?;
        self.by_region.get(at).map(|&(_, ms)| ms)
    }

    pub fn len(&self) -> usize {
        self.by_region.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_region.is_empty()
    }

    /// Every region and its latency, in region order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            entries: self.by_region.iter(),
        }
    }

    /// The regions measured, in order.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(region, _)| region)
    }

    /// Asks for the regions and their latencies to be brought into the cache, ahead of reading them
    /// (a prefetch does not wait for the memory as a read would): the matcher reads every player's,
    /// and asks for them while it reads the player's id.
    pub fn prefetch(&self) {
        let entries = self.by_region.as_slice();
        for at in 0..entries.len() {
            prefetch_index(entries, at);
        }
    }

    /// Where `region` is, or where it would go.
    fn position(&self, region: &str) -> Result<usize, usize> {
        self.by_region.binary_search_by(|(r, _)| r.as_str().cmp(region))
    }

    /// The map of `entries` given in any order, where a region given twice keeps its last value, as
    /// collecting into a `BTreeMap` does. Sorting once is O(n log n), where inserting one by one would
    /// be quadratic in what a client sends.
    fn from_entries(mut entries: SmallVec<[(CompactString, u32); INLINE_REGIONS]>) -> Self {
        // A stable sort keeps a repeated region's values in the order given, so the last is the last
        // of its run; `dedup_by` keeps the first of a run, so it takes the later value over.
        entries.sort_by(|(a, _), (b, _)| a.as_str().cmp(b.as_str()));
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        Self { by_region: entries }
    }
}

/// The regions of a [`Latencies`] and their latencies, in region order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    entries: std::slice::Iter<'a, (CompactString, u32)>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, u32);

    fn next(&mut self) -> Option<Self::Item> {
        self.entries.next().map(|(region, ms)| (region.as_str(), *ms))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl<'a> IntoIterator for &'a Latencies {
    type Item = (&'a str, u32);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<S: Into<CompactString>> FromIterator<(S, u32)> for Latencies {
    fn from_iter<I: IntoIterator<Item = (S, u32)>>(entries: I) -> Self {
        Self::from_entries(entries.into_iter().map(|(region, ms)| (region.into(), ms)).collect())
    }
}

impl Serialize for Latencies {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (region, ms) in self {
            map.serialize_entry(region, &ms)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Latencies {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RegionMap;

        impl<'de> Visitor<'de> for RegionMap {
            type Value = Latencies;

            // What a `BTreeMap` expects, so that a malformed body is refused in the same words.
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Latencies, A::Error> {
                let mut entries = SmallVec::new();
                while let Some(entry) = map.next_entry::<CompactString, u32>()? {
                    entries.push(entry);
                }
                Ok(Latencies::from_entries(entries))
            }
        }

        deserializer.deserialize_map(RegionMap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Longer than the 24 bytes a region name holds inline.
    const LONG: &str = "a-region-name-too-long-to-be-inline-1";

    fn entries(latencies: &Latencies) -> Vec<(&str, u32)> {
        latencies.iter().collect()
    }

    #[test]
    fn insert_keeps_regions_sorted_and_replaces_a_known_one() {
        let mut latencies = Latencies::new();
        assert_eq!(latencies.insert("us-east-1", 90), None);
        assert_eq!(latencies.insert("eu-west-1", 40), None);
        assert_eq!(latencies.insert("ap-south-1", 200), None);

        assert_eq!(latencies.insert("eu-west-1", 35), Some(40));

        assert_eq!(
            entries(&latencies),
            [("ap-south-1", 200), ("eu-west-1", 35), ("us-east-1", 90)]
        );
        assert_eq!(latencies.get("eu-west-1"), Some(35));
        assert_eq!(latencies.get("eu-north-1"), None);
        assert_eq!(
            latencies.regions().collect::<Vec<_>>(),
            ["ap-south-1", "eu-west-1", "us-east-1"]
        );
    }

    #[test]
    fn a_region_collected_twice_keeps_its_last_value() {
        let latencies: Latencies = [("eu", 1), ("us", 2), ("eu", 3), ("ap", 4), ("eu", 5)]
            .into_iter()
            .collect();

        assert_eq!(entries(&latencies), [("ap", 4), ("eu", 5), ("us", 2)]);
    }

    #[test]
    fn serialises_as_the_map_it_replaced_inline_or_spilled() {
        let given = [
            ("us-east-1", 90),
            ("eu-west-1", 40),
            (LONG, 7),
            ("ap-south-1", 200),
            ("sa-east-1", 150),
            ("eu-central-1", 30),
        ];
        for n in [0, 1, 4, given.len()] {
            let latencies: Latencies = given[..n].iter().copied().collect();
            let map: BTreeMap<String, u32> = given[..n].iter().map(|&(r, ms)| (r.to_owned(), ms)).collect();

            let json = serde_json::to_string(&latencies).unwrap();

            assert_eq!(json, serde_json::to_string(&map).unwrap(), "{n} regions");
            assert_eq!(
                serde_json::from_str::<Latencies>(&json).unwrap(),
                latencies,
                "{n} regions"
            );
        }
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_as_a_map_does() {
        let json = r#"{"us": 1, "eu": 2, "us": 3}"#;

        let latencies: Latencies = serde_json::from_str(json).unwrap();

        let map: BTreeMap<String, u32> = serde_json::from_str(json).unwrap();
        assert_eq!(entries(&latencies), [("eu", 2), ("us", 3)]);
        assert_eq!(
            serde_json::to_string(&latencies).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
    }

    #[test]
    fn a_malformed_body_is_refused_as_a_map_refuses_it() {
        for json in [r#"["eu", 1]"#, r#"{"eu": -1}"#, r#"{"eu": "fast"}"#] {
            let ours = serde_json::from_str::<Latencies>(json).unwrap_err();
            let map = serde_json::from_str::<BTreeMap<String, u32>>(json).unwrap_err();
            assert_eq!(ours.to_string(), map.to_string(), "{json}");
        }
    }

    /// Region names that repeat often, among them one too long to be inline.
    fn region() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "eu-west-1",
                "eu-west-2",
                "us-east-1",
                "ap-south-1",
                "b",
                "a",
                LONG
            ])
            .prop_map(str::to_owned),
            "[a-z-]{0,30}",
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_a_btree_map(given in prop::collection::vec((region(), any::<u32>()), 0..12)) {
            let latencies: Latencies = given.iter().map(|(r, ms)| (r.as_str(), *ms)).collect();
            let map: BTreeMap<String, u32> = given.iter().cloned().collect();

            let from_map: Vec<(&str, u32)> = map.iter().map(|(r, ms)| (r.as_str(), *ms)).collect();
            prop_assert_eq!(entries(&latencies), from_map);
            let json = serde_json::to_string(&map).unwrap();
            prop_assert_eq!(serde_json::to_string(&latencies).unwrap(), json.as_str());
            prop_assert_eq!(serde_json::from_str::<Latencies>(&json).unwrap(), latencies.clone());

            let mut inserted = Latencies::new();
            for (region, ms) in &given {
                inserted.insert(region.as_str(), *ms);
            }
            prop_assert_eq!(inserted, latencies);
        }
    }
}
