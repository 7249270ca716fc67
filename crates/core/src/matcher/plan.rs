//! The rule set compiled for the matcher: rules grouped by kind, and the limits in force at every
//! expansion level, worked out once per round instead of once per candidate match.

use super::outcome::{ExpansionSteps, Name};
use crate::ruleset::{ComparisonOp, ExpansionTarget, PartyAggregation, RuleField, RuleKind, RuleSet, Team, TeamField};

/// A `distance` rule, by its position among the rule set's distance rules.
#[derive(Debug)]
pub(crate) struct DistanceRule<'a> {
    pub attribute: &'a str,
    pub aggregation: PartyAggregation,
}

/// A `composition` rule: the roles each team needs, with how many of each.
#[derive(Debug)]
pub(crate) struct CompositionRule<'a> {
    pub attribute: &'a str,
    /// Role names, sorted (the `perTeam` map's order); a role's index here is its id.
    pub roles: Vec<&'a str>,
    /// Players needed per team for each role, by role id.
    pub per_team: Vec<u32>,
    /// With at most [`HALL_MAX_ROLES`] roles: for every set of roles (a bitmask of role ids), the
    /// players a team needs for them together. Empty with more roles.
    pub team_need: Vec<u32>,
}

/// Up to this many roles, compositions are checked by Hall's condition over every set of roles
/// (2^roles counters), which is far cheaper than growing a matching; beyond, by augmenting paths.
pub(crate) const HALL_MAX_ROLES: usize = 8;

/// For every set of roles (as a bitmask), the sum of their counts.
fn need_per_set(counts: &[u32]) -> Vec<u32> {
    (0..1usize << counts.len())
        .map(|set| {
            counts
                .iter()
                .enumerate()
                .filter(|(role, _)| set & (1 << role) != 0)
                .map(|(_, &n)| n)
                .sum()
        })
        .collect()
}

impl CompositionRule<'_> {
    /// Players per team that must hold a role; the rest of a team may play anything.
    pub fn role_slots_per_team(&self) -> u32 {
        self.per_team.iter().sum()
    }
}

/// The limits of every loosenable field, as they stand at one expansion level.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limits {
    /// By distance rule.
    pub max_distance: Vec<f64>,
    /// By team-balance rule.
    pub max_difference: Vec<f64>,
    /// The tightest of the latency rules, if there is one.
    pub max_latency: Option<f64>,
    /// By collection rule.
    pub min_count: Vec<u32>,
    /// By team slot (quantity unrolled).
    pub team_min: Vec<u32>,
    /// By expansion: how many of its steps apply.
    pub steps_applied: ExpansionSteps,
    /// The same as an array, when they fit one (see [`Limits::expansion_steps`]).
    steps_inline: Option<[u16; INLINE_EXPANSIONS]>,
}

/// Expansions an [`ExpansionSteps`] holds inline.
const INLINE_EXPANSIONS: usize = 4;

impl Limits {
    /// The expansion level of a match formed under these limits. Made from an array, which is a
    /// copy of 8 bytes: cloning the list copies item by item, checking its capacity each time,
    /// several times the instructions, for each of a round's matches.
    #[inline(always)]
    pub fn expansion_steps(&self) -> ExpansionSteps {
        match self.steps_inline {
            Some(inline) => ExpansionSteps::from_buf_and_len(inline, self.steps_applied.len()),
            None => self.steps_applied.clone(),
        }
    }
}

/// A rule set, compiled.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub rule_set: &'a RuleSet,
    pub distance: Vec<DistanceRule<'a>>,
    /// Attributes of the team-balance rules.
    pub balance: Vec<&'a str>,
    pub has_latency_rule: bool,
    /// Attributes every player of a match must share: the pool is partitioned on them.
    pub equal: Vec<&'a str>,
    /// Attributes no two players of a match may share.
    pub distinct: Vec<&'a str>,
    /// Collection rules: (rule name, attribute).
    pub collection: Vec<(&'a str, &'a str)>,
    pub composition: Vec<CompositionRule<'a>>,
    /// The attribute that skill spread is reported on: the first distance rule's, else the first
    /// team-balance rule's.
    pub skill: Option<&'a str>,
    /// The attributes whose team averages are computed: the team-balance rules', in order; or, when
    /// there are none, the first distance rule's, so that teams come out even when no rule demands
    /// it. Column 0 is the one team assignment minimises.
    pub balance_columns: Vec<&'a str>,
    pub slots: Vec<Team>,
    /// The queue's and the slots' names, shared by every match of the round.
    pub queue: Name,
    pub slot_names: Vec<Name>,
    pub max_players: u32,
    /// The most players any one team slot takes: what a ticket may bring, and the room a team has
    /// around a ticket.
    pub largest_team: u32,
    pub timeout_ms: u64,
    /// Wait times (ms) at which some expansion steps in, ascending and distinct.
    breakpoints: Vec<u64>,
    /// `levels[i]` holds between `breakpoints[i-1]` and `breakpoints[i]`; `levels[0]` before any step.
    levels: Vec<Limits>,
}

impl<'a> Plan<'a> {
    pub fn new(rule_set: &'a RuleSet) -> Self {
        let mut plan = Plan {
            rule_set,
            distance: Vec::new(),
            balance: Vec::new(),
            has_latency_rule: false,
            equal: Vec::new(),
            distinct: Vec::new(),
            collection: Vec::new(),
            composition: Vec::new(),
            skill: None,
            balance_columns: Vec::new(),
            slots: rule_set.team_slots(),
            queue: Name::from(rule_set.name.as_str()),
            slot_names: Vec::new(),
            max_players: rule_set.max_players(),
            largest_team: rule_set.largest_team(),
            timeout_ms: u64::from(rule_set.queue.timeout_seconds) * 1000,
            breakpoints: Vec::new(),
            levels: Vec::new(),
        };
        for rule in &rule_set.rules {
            match &rule.kind {
                RuleKind::Distance {
                    attribute,
                    party_aggregation,
                    ..
                } => plan.distance.push(DistanceRule {
                    attribute,
                    aggregation: *party_aggregation,
                }),
                RuleKind::TeamBalance { attribute, .. } => plan.balance.push(attribute),
                RuleKind::Latency { .. } => plan.has_latency_rule = true,
                RuleKind::Comparison { attribute, operation } => match operation {
                    ComparisonOp::Equal => plan.equal.push(attribute),
                    ComparisonOp::NotEqual => plan.distinct.push(attribute),
                },
                RuleKind::Collection { attribute, .. } => plan.collection.push((&rule.name, attribute)),
                RuleKind::Composition { attribute, per_team } => {
                    let counts: Vec<u32> = per_team.values().copied().collect();
                    plan.composition.push(CompositionRule {
                        attribute,
                        roles: per_team.keys().map(String::as_str).collect(),
                        team_need: if counts.len() <= HALL_MAX_ROLES {
                            need_per_set(&counts)
                        } else {
                            Vec::new()
                        },
                        per_team: counts,
                    })
                }
            }
        }
        plan.slot_names = plan.slots.iter().map(|s| Name::from(s.name.as_str())).collect();
        plan.skill = plan
            .distance
            .first()
            .map(|d| d.attribute)
            .or(plan.balance.first().copied());
        plan.balance_columns = if plan.balance.is_empty() {
            plan.distance.iter().take(1).map(|d| d.attribute).collect()
        } else {
            plan.balance.clone()
        };

        let mut breakpoints: Vec<u64> = rule_set
            .expansions
            .iter()
            .flat_map(|e| e.steps.iter().map(|s| u64::from(s.wait_time_seconds) * 1000))
            .collect();
        breakpoints.sort_unstable();
        breakpoints.dedup();
        plan.levels = std::iter::once(0)
            .chain(breakpoints.iter().copied())
            .map(|waited_ms| limits_after(rule_set, waited_ms))
            .collect();
        plan.breakpoints = breakpoints;
        plan
    }

    /// The limits in force for a match whose oldest ticket has waited `waited_ms`.
    pub fn limits(&self, waited_ms: u64) -> &Limits {
        let level = self.breakpoints.partition_point(|&b| b <= waited_ms);
        // `levels` has one more entry than `breakpoints`, so `level` is always in range.
        &self.levels[level.min(self.levels.len() - 1)]
    }

    /// The fewest players a match may hold at these limits.
    pub fn min_players(&self, limits: &Limits) -> u32 {
        limits.team_min.iter().sum()
    }

    /// When, after waiting `waited_ms`, the limits next loosen, as a further wait in ms.
    pub fn next_loosening_after(&self, waited_ms: u64) -> Option<u64> {
        self.breakpoints.iter().find(|&&b| b > waited_ms).map(|b| b - waited_ms)
    }
}

/// The limits in force after `waited_ms`, worked out from the rule set's expansions.
fn limits_after(rule_set: &RuleSet, waited_ms: u64) -> Limits {
    let waited_seconds = waited_ms as f64 / 1000.0;
    let expanded = |target: &ExpansionTarget| {
        rule_set
            .expansion_for(target)
            .and_then(|e| e.value_after(waited_seconds))
    };
    let rule_value = |name: &str, field: RuleField| {
        expanded(&ExpansionTarget::Rule {
            rule: name.to_owned(),
            field,
        })
    };
    let mut limits = Limits {
        max_distance: Vec::new(),
        max_difference: Vec::new(),
        max_latency: None,
        min_count: Vec::new(),
        team_min: Vec::new(),
        steps_applied: rule_set
            .expansions
            .iter()
            .map(|e| {
                let applied = e
                    .steps
                    .iter()
                    .filter(|s| f64::from(s.wait_time_seconds) <= waited_seconds)
                    .count();
                u16::try_from(applied).unwrap_or(u16::MAX)
            })
            .collect(),
        steps_inline: None,
    };
    let mut inline = [0; INLINE_EXPANSIONS];
    if let Some(head) = inline.get_mut(..limits.steps_applied.len()) {
        head.copy_from_slice(&limits.steps_applied);
        limits.steps_inline = Some(inline);
    }
    for rule in &rule_set.rules {
        match &rule.kind {
            RuleKind::Distance { max_distance, .. } => limits
                .max_distance
                .push(rule_value(&rule.name, RuleField::MaxDistance).unwrap_or(*max_distance)),
            RuleKind::TeamBalance { max_difference, .. } => limits
                .max_difference
                .push(rule_value(&rule.name, RuleField::MaxDifference).unwrap_or(*max_difference)),
            RuleKind::Latency { max_latency } => {
                let value = rule_value(&rule.name, RuleField::MaxLatency).unwrap_or(f64::from(*max_latency));
                limits.max_latency = Some(limits.max_latency.map_or(value, |m: f64| m.min(value)));
            }
            RuleKind::Collection { min_count, .. } => limits.min_count.push(
                rule_value(&rule.name, RuleField::MinCount)
                    .map_or(*min_count, |v| v.round() as u32)
                    .max(1),
            ),
            RuleKind::Comparison { .. } | RuleKind::Composition { .. } => {}
        }
    }
    // Slots follow `team_slots()`: each team, `quantity` times, in declaration order.
    for team in &rule_set.teams {
        let min = expanded(&ExpansionTarget::Team {
            team: team.name.clone(),
            field: TeamField::MinPlayers,
        })
        .map_or(team.min_players, |v| (v.round() as u32).min(team.min_players));
        limits.team_min.extend((0..team.quantity).map(|_| min));
    }
    limits
}
