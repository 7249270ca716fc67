//! Synthetic players for a rule set: what the simulator and the benchmark feed the matcher.
//!
//! Players get what the rule set reads and nothing else: skill where a distance or team-balance rule
//! reads a number, latencies to three regions where a latency rule asks, roles weighted by what a
//! composition needs, collection values, unique values for `!=` rules. Parties form where the teams
//! allow them. Everything comes from one seeded ChaCha stream and arithmetic written out here (no
//! library distributions, whose algorithms may change between versions), so a seed gives the same
//! players on every machine.

use crate::attribute::{AttributeType, AttributeValue};
use crate::ruleset::{ComparisonOp, RuleKind, RuleSet};
use crate::ticket::{Player, Ticket};
use crate::time::Timestamp;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Regions synthetic players measure, and the share of players living nearest to each.
const REGIONS: [(&str, f64); 3] = [("us-east-1", 0.5), ("eu-west-1", 0.35), ("ap-northeast-1", 0.15)];
/// The mean of a skill attribute declared without a default.
const SKILL_MEAN: f64 = 1500.0;
/// A skill's standard deviation, as a share of its mean: 300 around 1500.
const SKILL_SD_SHARE: f64 = 0.2;
/// A skill around 0 has no scale of its own: its standard deviation is this many times the limit
/// of the rule reading it.
const SKILL_SD_PER_LIMIT: f64 = 3.0;
/// How far a party member's skill strays from the party's, as a share of the skill's deviation.
const PARTY_SKILL_SD_SHARE: f64 = 1.0 / 3.0;
/// The share of tickets that are parties, where parties are possible.
const PARTY_SHARE: f64 = 0.3;
/// Largest party generated (the API allows 10; real parties are mostly small).
const MAX_PARTY: u32 = 5;
/// Values of a collection attribute that has no default to draw from.
const COLLECTION_VALUES: [&str; 3] = ["alpha", "bravo", "charlie"];

/// A collection attribute as players are drawn with it.
#[derive(Debug, Clone)]
struct Collection<'r> {
    name: &'r str,
    /// The values players choose among: the attribute's default list (else [`COLLECTION_VALUES`]),
    /// with made-up ones added until there are more than `min_count`.
    values: Vec<String>,
    /// The most values a collection rule on this attribute asks a match to share: every player
    /// lists at least this many. A population that could not would never match, which says
    /// nothing about the rule set.
    min_count: usize,
}

impl Collection<'_> {
    /// Makes players list at least `min_count` values, out of more than that.
    fn at_least(&mut self, min_count: usize) {
        self.min_count = self.min_count.max(min_count);
        let mut n = self.values.len();
        while self.values.len() <= self.min_count {
            n += 1;
            let value = format!("value-{n}");
            if !self.values.contains(&value) {
                self.values.push(value);
            }
        }
    }
}

/// How one skill attribute is drawn: normal around its default, on the default's own scale, so that
/// a rank of 1 to 30 is drawn as ranks are and a rating around 1500 as ratings are.
#[derive(Debug, Clone, Copy)]
struct Skill<'r> {
    name: &'r str,
    mean: f64,
    /// A fifth of the mean; around 0, three times the limit of the rule reading it (else 1).
    sd: f64,
    /// Values are rounded to 1 / `per_unit`: about a hundredth of `sd`, a power of ten (whole numbers
    /// at 300, hundredths at 2). Kept as its inverse so that hundredths come out as the nearest
    /// double to the decimal.
    per_unit: f64,
    /// A skill with a positive mean is never negative.
    floor: Option<f64>,
}

impl<'r> Skill<'r> {
    fn new(name: &'r str, default: Option<f64>, limit: f64) -> Self {
        let mean = default.unwrap_or(SKILL_MEAN);
        let sd = if mean != 0.0 {
            mean.abs() * SKILL_SD_SHARE
        } else if limit.is_finite() && limit > 0.0 {
            limit * SKILL_SD_PER_LIMIT
        } else {
            1.0
        };
        Skill {
            name,
            mean,
            sd,
            per_unit: 10f64.powf(-(sd / 100.0).log10().floor()),
            floor: (mean > 0.0).then_some(0.0),
        }
    }

    /// A drawn value as a player has it: within the floor, rounded.
    fn settle(&self, value: f64) -> f64 {
        let value = self.floor.map_or(value, |floor| value.max(floor));
        (value * self.per_unit).round() / self.per_unit
    }
}

/// A seeded source of synthetic tickets for one rule set.
#[derive(Debug, Clone)]
pub struct Population<'r> {
    rule_set: &'r RuleSet,
    rng: ChaCha8Rng,
    /// Number attributes a skill rule reads, each drawn on its own scale.
    skills: Vec<Skill<'r>>,
    /// String or number attributes every player must share: players get the default.
    shared: Vec<(&'r str, AttributeValue)>,
    /// Attributes no two players may share: each player gets their own.
    unique: Vec<(&'r str, AttributeType)>,
    /// Collection attributes: the values players choose among, and how many each lists at least.
    collections: Vec<Collection<'r>>,
    /// Composition attributes and each role's weight (its count per team).
    compositions: Vec<(&'r str, Vec<(String, f64)>)>,
    latencies: bool,
    largest_party: u32,
    next_player: u64,
}

impl<'r> Population<'r> {
    pub fn new(rule_set: &'r RuleSet, seed: u64) -> Self {
        let mut population = Population {
            rule_set,
            rng: ChaCha8Rng::seed_from_u64(seed),
            skills: Vec::new(),
            shared: Vec::new(),
            unique: Vec::new(),
            collections: Vec::new(),
            compositions: Vec::new(),
            latencies: false,
            largest_party: rule_set
                .teams
                .iter()
                .map(|t| t.max_players)
                .max()
                .unwrap_or(1)
                .min(MAX_PARTY),
            next_player: 0,
        };
        let default = |name: &str| rule_set.attribute(name).and_then(|a| a.default.clone());
        for rule in &rule_set.rules {
            match &rule.kind {
                RuleKind::Distance {
                    attribute,
                    max_distance: limit,
                    ..
                }
                | RuleKind::TeamBalance {
                    attribute,
                    max_difference: limit,
                } => {
                    if !population.skills.iter().any(|s| s.name == attribute) {
                        let mean = default(attribute).and_then(|d| d.as_number());
                        population.skills.push(Skill::new(attribute, mean, *limit));
                    }
                }
                RuleKind::Latency { .. } => population.latencies = true,
                RuleKind::Comparison { attribute, operation } => {
                    let kind = rule_set.attribute(attribute).map_or(AttributeType::String, |a| a.kind);
                    match operation {
                        ComparisonOp::Equal => {
                            let value = default(attribute).unwrap_or(match kind {
                                AttributeType::Number => AttributeValue::Number(0.0),
                                _ => AttributeValue::String("default".into()),
                            });
                            population.shared.push((attribute, value));
                        }
                        ComparisonOp::NotEqual => population.unique.push((attribute, kind)),
                    }
                }
                RuleKind::Collection { attribute, min_count } => {
                    let min_count = *min_count as usize;
                    match population.collections.iter_mut().find(|c| c.name == attribute) {
                        Some(collection) => collection.at_least(min_count),
                        None => {
                            let values = default(attribute)
                                .and_then(|d| d.as_string_list().map(<[String]>::to_vec))
                                .filter(|v| !v.is_empty())
                                .unwrap_or_else(|| COLLECTION_VALUES.iter().map(|v| v.to_string()).collect());
                            let mut collection = Collection {
                                name: attribute,
                                values,
                                min_count: 0,
                            };
                            collection.at_least(min_count);
                            population.collections.push(collection);
                        }
                    }
                }
                RuleKind::Composition { attribute, per_team } => {
                    let weights = per_team.iter().map(|(role, &n)| (role.clone(), f64::from(n))).collect();
                    population.compositions.push((attribute, weights));
                }
            }
        }
        population
    }

    /// A uniform draw from [0, 1), from the top 53 bits of the stream.
    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit(); // in (0, 1]: ln is finite
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// An index drawn with the given weights.
    fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// How many players the next ticket has, at most `cap`.
    pub fn party_size(&mut self, cap: u32) -> u32 {
        let largest = self.largest_party.min(cap).max(1);
        if largest == 1 || self.unit() >= PARTY_SHARE {
            return 1;
        }
        2 + (self.unit() * f64::from(largest - 1)) as u32 % (largest - 1)
    }

    /// A ticket of `size` players, created at `created_at`.
    pub fn ticket(&mut self, id: String, size: u32, created_at: Timestamp) -> Ticket {
        let skills: Vec<f64> = self
            .skills
            .clone()
            .iter()
            .map(|skill| skill.mean + skill.sd * self.normal())
            .collect();
        let home = self.weighted(&REGIONS.map(|(_, share)| share));
        let collections: Vec<Vec<String>> = self
            .collections
            .clone()
            .iter()
            .map(|collection| {
                // The party chose together: one list for all its members, never empty, and never
                // shorter than the rules ask every match to share.
                let values = &collection.values;
                let mut taken: Vec<bool> = values.iter().map(|_| self.unit() < 0.6).collect();
                let wanted = collection.min_count.max(1).min(values.len());
                let mut count = taken.iter().filter(|&&t| t).count();
                while count < wanted {
                    let pick = (self.unit() * values.len() as f64) as usize % values.len();
                    // The first value not taken yet from the one drawn on, round the list.
                    if let Some(at) = (pick..values.len()).chain(0..pick).find(|&i| !taken[i]) {
                        taken[at] = true;
                        count += 1;
                    }
                }
                values
                    .iter()
                    .zip(&taken)
                    .filter(|(_, &t)| t)
                    .map(|(v, _)| v.clone())
                    .collect::<Vec<String>>()
            })
            .collect();
        let players = (0..size.max(1))
            .map(|_| self.player(&skills, home, &collections, size > 1))
            .collect();
        Ticket::queued(id, self.rule_set.name.clone(), players, created_at)
    }

    fn player(&mut self, party_skills: &[f64], home: usize, collections: &[Vec<String>], in_party: bool) -> Player {
        let n = self.next_player;
        self.next_player += 1;
        let mut player = Player::new(format!("player-{n:07}"));
        for (skill, &party_skill) in self.skills.clone().iter().zip(party_skills) {
            let value = if in_party {
                party_skill + skill.sd * PARTY_SKILL_SD_SHARE * self.normal()
            } else {
                party_skill
            };
            player = player.with_attribute(skill.name, AttributeValue::Number(skill.settle(value)));
        }
        for (name, value) in &self.shared {
            player = player.with_attribute(name, value.clone());
        }
        for &(name, kind) in &self.unique {
            let value = match kind {
                AttributeType::Number => AttributeValue::Number(n as f64),
                _ => AttributeValue::String(format!("player-{n:07}")),
            };
            player = player.with_attribute(name, value);
        }
        for (collection, chosen) in self.collections.iter().zip(collections) {
            player = player.with_attribute(collection.name, AttributeValue::StringList(chosen.clone()));
        }
        for (name, weights) in self.compositions.clone() {
            let counts: Vec<f64> = weights.iter().map(|(_, w)| *w).collect();
            let first = self.weighted(&counts);
            let mut roles = vec![weights[first].0.clone()];
            // A quarter of players are happy with a second role.
            if weights.len() > 1 && self.unit() < 0.25 {
                let others = weights.len() - 1;
                let second = (first + 1 + (self.unit() * others as f64) as usize % others) % weights.len();
                roles.push(weights[second].0.clone());
            }
            player = player.with_attribute(name, AttributeValue::StringList(roles));
        }
        if self.latencies {
            for (r, (region, _)) in REGIONS.iter().enumerate() {
                let ms = if r == home {
                    15.0 + 45.0 * self.unit()
                } else {
                    70.0 + 150.0 * self.unit()
                };
                player = player.with_latency(region, ms.round() as u32);
            }
        }
        player
    }

    /// `players` players arriving at `rate` per second from time zero, in tickets (parties where
    /// allowed), oldest first: a Poisson process, with gaps scaled by each ticket's size.
    pub fn arrivals(&mut self, players: u32, rate: f64) -> Vec<Ticket> {
        let mut tickets = Vec::new();
        let mut left = players;
        let mut at_ms = 0.0f64;
        while left > 0 {
            let size = self.party_size(left);
            let gap_s = -(1.0 - self.unit()).ln() * f64::from(size) / rate.max(f64::MIN_POSITIVE);
            at_ms += gap_s * 1000.0;
            let id = format!("ticket-{:07}", tickets.len());
            tickets.push(self.ticket(id, size, Timestamp(at_ms as u64)));
            left -= size;
        }
        tickets
    }

    /// A pool of `count` tickets that arrived evenly over the `spread_ms` before `now`, as the pool
    /// of a busy queue looks at one round (the benchmark's input).
    pub fn waiting_pool(&mut self, count: usize, now: Timestamp, spread_ms: u64) -> Vec<Ticket> {
        (0..count)
            .map(|i| {
                let size = self.party_size(u32::MAX);
                let age = (self.unit() * spread_ms as f64) as u64;
                self.ticket(
                    format!("ticket-{i:07}"),
                    size,
                    Timestamp(now.as_millis().saturating_sub(age)),
                )
            })
            .collect()
    }
}
