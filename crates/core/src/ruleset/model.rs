//! The typed rule set. Every value here has passed validation: names are unique, references resolve,
//! attribute types fit the rules that read them, and expansion steps loosen monotonically.

use crate::attribute::{AttributeType, AttributeValue};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// The only `ruleLanguageVersion` understood.
pub const RULE_LANGUAGE_VERSION: &str = "1.0";

/// Players in one match, all teams together, at most. FlexMatch's own limit for non-large matches.
pub const MAX_PLAYERS_PER_MATCH: u32 = 200;

/// Express workflows run for at most 5 minutes; acceptance plus placement must leave room for the
/// rest of the placement workflow, so together they are capped at 240 s.
pub const MAX_ACCEPTANCE_PLUS_PLACEMENT_SECONDS: u32 = 240;

/// A validated rule set. Its `name` is its queue's name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSet {
    pub name: String,
    pub rule_language_version: String,
    pub player_attributes: Vec<PlayerAttribute>,
    pub teams: Vec<Team>,
    pub rules: Vec<Rule>,
    pub expansions: Vec<Expansion>,
    pub queue: QueueConfig,
}

/// A player attribute the rules may read, with the value a player gets when the ticket omits it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayerAttribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: AttributeType,
    pub default: Option<AttributeValue>,
}

/// A team of the match. With `quantity` > 1 the team stands for that many identical teams, named
/// `name-1`, `name-2`, … (free-for-all is one team of one player, many times).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub name: String,
    pub min_players: u32,
    pub max_players: u32,
    pub quantity: u32,
}

/// A named rule. Every rule must hold for a match to be formed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub name: String,
    #[serde(flatten)]
    pub kind: RuleKind,
}

/// How a party's values count in a `distance` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PartyAggregation {
    /// The party counts as the average of its members (FlexMatch's default).
    #[default]
    Avg,
    Min,
    Max,
}

/// `=` or `!=` in a `comparison` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ComparisonOp {
    /// Every player has the same value. On a string this partitions the pool.
    #[serde(rename = "=")]
    Equal,
    /// No two players share a value.
    #[serde(rename = "!=")]
    NotEqual,
}

/// What a rule requires of a match.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum RuleKind {
    /// max − min of a number attribute over the match's players ≤ `max_distance`.
    Distance {
        attribute: String,
        max_distance: f64,
        party_aggregation: PartyAggregation,
    },
    /// The largest difference between team averages of a number attribute ≤ `max_difference`.
    TeamBalance { attribute: String, max_difference: f64 },
    /// Every player ≤ `max_latency` ms to the match's region, chosen to minimise the worst latency.
    Latency { max_latency: u32 },
    /// `=` or `!=` over a number or string attribute.
    Comparison { attribute: String, operation: ComparisonOp },
    /// The players' string lists share at least `min_count` values; the chosen ones go into the match.
    Collection { attribute: String, min_count: u32 },
    /// Every team can be given `per_team` roles, each player taking one role from their string list.
    Composition {
        attribute: String,
        per_team: BTreeMap<String, u32>,
    },
}

impl RuleKind {
    /// The rule's type as written in rule sets.
    pub fn type_name(&self) -> &'static str {
        match self {
            RuleKind::Distance { .. } => "distance",
            RuleKind::TeamBalance { .. } => "teamBalance",
            RuleKind::Latency { .. } => "latency",
            RuleKind::Comparison { .. } => "comparison",
            RuleKind::Collection { .. } => "collection",
            RuleKind::Composition { .. } => "composition",
        }
    }

    /// The attribute the rule reads, if it reads one.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            RuleKind::Latency { .. } => None,
            RuleKind::Distance { attribute, .. }
            | RuleKind::TeamBalance { attribute, .. }
            | RuleKind::Comparison { attribute, .. }
            | RuleKind::Collection { attribute, .. }
            | RuleKind::Composition { attribute, .. } => Some(attribute),
        }
    }
}

/// The field an expansion loosens. It serialises as the rule-set format writes it
/// (`rules[fair].maxDistance`), so that a serialised rule set reads back as the same rule set: the
/// dev server's traffic tap sends the rule sets it serves that way, for replays.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExpansionTarget {
    /// `rules[NAME].FIELD`: `maxDistance`, `maxDifference`, `maxLatency` or `minCount`.
    Rule { rule: String, field: RuleField },
    /// `teams[NAME].minPlayers`: lets a match start short after a wait.
    Team { team: String, field: TeamField },
}

impl fmt::Display for ExpansionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpansionTarget::Rule { rule, field } => write!(f, "rules[{rule}].{}", field.name()),
            ExpansionTarget::Team { team, field } => write!(f, "teams[{team}].{}", field.name()),
        }
    }
}

impl Serialize for ExpansionTarget {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A rule field an expansion may target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleField {
    MaxDistance,
    MaxDifference,
    MaxLatency,
    MinCount,
}

impl RuleField {
    pub fn name(self) -> &'static str {
        match self {
            RuleField::MaxDistance => "maxDistance",
            RuleField::MaxDifference => "maxDifference",
            RuleField::MaxLatency => "maxLatency",
            RuleField::MinCount => "minCount",
        }
    }

    /// Whether a larger value is looser (true for every field but `minCount`).
    pub fn loosens_upward(self) -> bool {
        !matches!(self, RuleField::MinCount)
    }
}

/// A team field an expansion may target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TeamField {
    MinPlayers,
}

impl TeamField {
    pub fn name(self) -> &'static str {
        match self {
            TeamField::MinPlayers => "minPlayers",
        }
    }
}

/// One step of an expansion: once the oldest ticket of a candidate match has waited
/// `wait_time_seconds`, the target takes `value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpansionStep {
    pub wait_time_seconds: u32,
    pub value: f64,
}

/// A schedule that loosens one field as tickets wait. Steps are strictly increasing in wait time,
/// and each step's value is looser than the one before it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expansion {
    pub target: ExpansionTarget,
    pub steps: Vec<ExpansionStep>,
}

impl Expansion {
    /// The value in force after waiting `waited_seconds`, or `None` before the first step.
    pub fn value_after(&self, waited_seconds: f64) -> Option<f64> {
        self.steps
            .iter()
            .rev()
            .find(|s| f64::from(s.wait_time_seconds) <= waited_seconds)
            .map(|s| s.value)
    }
}

/// Whether a session asks the matcher to backfill open slots itself or waits to be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BackfillMode {
    Automatic,
    #[default]
    Manual,
}

/// Whether every player must accept a match before it is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Acceptance {
    pub required: bool,
    pub timeout_seconds: u32,
}

/// The queue block: how long tickets wait, acceptance and placement, and backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueConfig {
    /// A ticket still SEARCHING after this long becomes TIMED_OUT.
    pub timeout_seconds: u32,
    pub acceptance: Acceptance,
    /// How long the placement workflow may wait for a server.
    pub placement_timeout_seconds: u32,
    pub backfill_mode: BackfillMode,
}

impl RuleSet {
    /// The attribute that stands for skill: the first distance rule's, else the first team-balance
    /// rule's (as the matcher reports skill spread on). A ticket that leaves it out is given the
    /// player's rating in the queue, when there is one.
    pub fn skill_attribute(&self) -> Option<&str> {
        let first = |distance: bool| {
            self.rules.iter().find_map(|rule| match (&rule.kind, distance) {
                (RuleKind::Distance { attribute, .. }, true) | (RuleKind::TeamBalance { attribute, .. }, false) => {
                    Some(attribute.as_str())
                }
                _ => None,
            })
        };
        first(true).or_else(|| first(false))
    }

    pub fn attribute(&self, name: &str) -> Option<&PlayerAttribute> {
        self.player_attributes.iter().find(|a| a.name == name)
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// Teams with `quantity` unrolled, in declaration order: the teams a match really has.
    pub fn team_slots(&self) -> Vec<Team> {
        self.teams
            .iter()
            .flat_map(|t| {
                (1..=t.quantity).map(move |i| Team {
                    name: if t.quantity == 1 {
                        t.name.clone()
                    } else {
                        format!("{}-{i}", t.name)
                    },
                    quantity: 1,
                    ..t.clone()
                })
            })
            .collect()
    }

    /// The most players a match can hold.
    pub fn max_players(&self) -> u32 {
        self.teams.iter().map(|t| t.max_players * t.quantity).sum()
    }

    /// The most players one team takes (0 without teams): a party larger than this can never play.
    pub fn largest_team(&self) -> u32 {
        self.teams.iter().map(|t| t.max_players).max().unwrap_or(0)
    }

    /// The fewest players a match can start with, before expansions.
    pub fn min_players(&self) -> u32 {
        self.teams.iter().map(|t| t.min_players * t.quantity).sum()
    }

    /// The fewest players a match can ever start with: [`RuleSet::min_players`] once every expansion
    /// of a team's `minPlayers` has taken its last step.
    pub fn fewest_players(&self) -> u32 {
        self.teams
            .iter()
            .map(|t| {
                let target = ExpansionTarget::Team {
                    team: t.name.clone(),
                    field: TeamField::MinPlayers,
                };
                let least = self
                    .expansion_for(&target)
                    .and_then(|e| e.steps.last())
                    // Validated whole and non-negative.
                    .map_or(t.min_players, |step| t.min_players.min(step.value as u32));
                least * t.quantity
            })
            .sum()
    }

    /// The expansion that targets `target`, if any (validation allows at most one per target).
    pub fn expansion_for(&self, target: &ExpansionTarget) -> Option<&Expansion> {
        self.expansions.iter().find(|e| &e.target == target)
    }

    /// This rule set without the rule called `name`, nor the expansions that loosen it (an
    /// expansion is all that refers to a rule by name), so that what is left is as valid as this.
    pub fn without_rule(&self, name: &str) -> RuleSet {
        let mut fewer = self.clone();
        fewer.rules.retain(|r| r.name != name);
        fewer
            .expansions
            .retain(|e| !matches!(&e.target, ExpansionTarget::Rule { rule, .. } if rule == name));
        fewer
    }
}
