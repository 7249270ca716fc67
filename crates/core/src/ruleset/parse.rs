//! Reading and validating rule sets.
//!
//! The reader walks the JSON by hand instead of deriving `Deserialize`, because serde stops at the
//! first error while a game designer wants every problem at once, each at its path. It collects
//! errors as it goes and builds the typed [`RuleSet`] only when there are none.

use super::error::{JsonPath, RuleSetError, RuleSetErrors};
use super::model::*;
use crate::attribute::{AttributeType, AttributeValue};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};

const ROOT_FIELDS: &[&str] = &[
    "name",
    "description",
    "ruleLanguageVersion",
    "playerAttributes",
    "teams",
    "rules",
    "expansions",
    "queue",
];
const ATTRIBUTE_FIELDS: &[&str] = &["name", "type", "default"];
const TEAM_FIELDS: &[&str] = &["name", "minPlayers", "maxPlayers", "quantity"];
const EXPANSION_FIELDS: &[&str] = &["target", "steps"];
const STEP_FIELDS: &[&str] = &["waitTimeSeconds", "value"];
const QUEUE_FIELDS: &[&str] = &[
    "timeoutSeconds",
    "acceptance",
    "placementTimeoutSeconds",
    "backfillMode",
];
const ACCEPTANCE_FIELDS: &[&str] = &["required", "timeoutSeconds"];
const RULE_TYPES: &[&str] = &[
    "distance",
    "teamBalance",
    "latency",
    "comparison",
    "collection",
    "composition",
];

/// FlexMatch's limits on how long a ticket may wait and how long acceptance may take.
const MAX_TICKET_TIMEOUT_SECONDS: u32 = 43_200;
const MAX_ACCEPTANCE_TIMEOUT_SECONDS: u32 = 600;
/// A latency above 10 s is a measurement error, not a player.
const MAX_LATENCY_MS: u32 = 10_000;
const MAX_NAME_LEN: usize = 64;

/// Defaults of the `queue` block, for the fields a rule set leaves out.
const DEFAULT_TICKET_TIMEOUT_SECONDS: u32 = 120;
const DEFAULT_ACCEPTANCE_TIMEOUT_SECONDS: u32 = 30;
const DEFAULT_PLACEMENT_TIMEOUT_SECONDS: u32 = 60;

impl RuleSet {
    /// Parses and validates a rule set from its JSON text.
    ///
    /// A byte order mark before the JSON, which editors on Windows write at the start of a UTF-8
    /// file, is ignored, as RFC 8259 allows. A syntax error's position is in `text`, mark and all.
    pub fn from_json_str(text: &str) -> Result<RuleSet, RuleSetErrors> {
        let json = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: Value = crate::json::from_str_unique(json).map_err(|e| {
            let (line, column) = crate::json::position(json, &e);
            let skipped = if line == 1 { text.len() - json.len() } else { 0 };
            // serde_json's message ends with its own "at line L column C"; the position says it.
            let message = e.to_string();
            let what = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(what, _)| what);
            RuleSetErrors(vec![RuleSetError {
                path: JsonPath::root(),
                message: format!("not valid JSON: {what}"),
                position: Some((line, column + skipped)),
            }])
        })?;
        RuleSet::from_json(&value)
    }

    /// Validates a rule set already parsed as JSON.
    pub fn from_json(value: &Value) -> Result<RuleSet, RuleSetErrors> {
        let mut reader = Reader::default();
        let rule_set = reader.rule_set(value);
        match rule_set {
            Some(rule_set) if reader.errors.is_empty() => Ok(rule_set),
            _ => Err(RuleSetErrors(reader.errors)),
        }
    }
}

/// An attribute as declared, with its type when that was readable.
struct Declared {
    name: String,
    kind: Option<AttributeType>,
}

/// What `rules` read: the good rules, whether every rule was good, and the names of all of them.
struct RulesRead {
    good: Vec<Rule>,
    complete: bool,
    /// Whether `rules` was an array at all; if not, no reference to a rule can be checked.
    listed: bool,
    names: Vec<String>,
}

/// The rules an expansion may target: those that read well, and the names of all of them.
struct KnownRules<'a> {
    parsed: &'a [Rule],
    listed: bool,
    names: &'a [String],
}

#[derive(Default)]
struct Reader {
    errors: Vec<RuleSetError>,
}

/// The JSON type of a value, for "expected X, found Y" messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_valid_queue_name(name: &str) -> bool {
    is_valid_name(name)
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Reader {
    fn error(&mut self, path: &JsonPath, message: impl Into<String>) {
        self.errors.push(RuleSetError {
            path: path.clone(),
            message: message.into(),
            position: None,
        });
    }

    fn object<'a>(&mut self, value: &'a Value, path: &JsonPath, fields: &[&str]) -> Option<&'a Map<String, Value>> {
        let Value::Object(map) = value else {
            self.error(path, format!("expected an object, found {}", json_kind(value)));
            return None;
        };
        for key in map.keys().filter(|k| !fields.contains(&k.as_str())) {
            let hint = fields
                .iter()
                .filter(|f| strsim::damerau_levenshtein(f, key) <= 2 || f.eq_ignore_ascii_case(key))
                .min_by_key(|f| strsim::damerau_levenshtein(f, key))
                .map(|f| format!("; did you mean `{f}`?"))
                .unwrap_or_else(|| format!("; expected one of {}", quoted_list(fields)));
            self.error(&path.key(key), format!("unknown field `{key}`{hint}"));
        }
        Some(map)
    }

    fn array<'a>(&mut self, value: &'a Value, path: &JsonPath) -> Option<&'a [Value]> {
        match value {
            Value::Array(items) => Some(items),
            other => {
                self.error(path, format!("expected an array, found {}", json_kind(other)));
                None
            }
        }
    }

    fn required<'a>(&mut self, map: &'a Map<String, Value>, key: &str, path: &JsonPath) -> Option<&'a Value> {
        let value = map.get(key);
        if value.is_none() {
            self.error(path, format!("missing required field `{key}`"));
        }
        value
    }

    fn string(&mut self, value: &Value, path: &JsonPath) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            other => {
                self.error(path, format!("expected a string, found {}", json_kind(other)));
                None
            }
        }
    }

    fn boolean(&mut self, value: &Value, path: &JsonPath) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            other => {
                self.error(path, format!("expected a boolean, found {}", json_kind(other)));
                None
            }
        }
    }

    /// A whole number in `min..=max`.
    fn integer(&mut self, value: &Value, path: &JsonPath, min: u32, max: u32) -> Option<u32> {
        let Value::Number(number) = value else {
            self.error(path, format!("expected an integer, found {}", json_kind(value)));
            return None;
        };
        let out_of_range = |reader: &mut Self| {
            // A float in scientific notation when far out: 1e300 rather than 301 digits.
            let spelt = match number.as_f64() {
                Some(f) if number.is_f64() => crate::json::figure(f),
                _ => number.to_string(),
            };
            reader.error(path, format!("{spelt} is out of range: must be from {min} to {max}"));
            None
        };
        match number.as_i64() {
            Some(n) if n < i64::from(min) || n > i64::from(max) => out_of_range(self),
            Some(n) => u32::try_from(n).ok(),
            // Past i64, or written past u64 (which serde_json reads as a float): a whole number
            // still, too large for any field.
            None if number.is_u64() => out_of_range(self),
            None if number
                .as_f64()
                .is_some_and(|f| f.fract() == 0.0 && (f < f64::from(min) || f > f64::from(max))) =>
            {
                out_of_range(self)
            }
            // `5.0` is a number, not an integer, as JSON Schema sees it too.
            None => {
                self.error(path, format!("expected an integer, found {}", json_kind(value)));
                None
            }
        }
    }

    /// A number ≥ 0.
    fn non_negative(&mut self, value: &Value, path: &JsonPath) -> Option<f64> {
        let Some(n) = value.as_f64() else {
            self.error(path, format!("expected a number, found {}", json_kind(value)));
            return None;
        };
        if n < 0.0 {
            // In serde_json's shortest form (-1e+308): `{n}` would spell it in 309 digits.
            self.error(path, format!("{value} is out of range: must be at least 0"));
            return None;
        }
        Some(n)
    }

    /// A name: ASCII letters, digits, `-` and `_`, starting with a letter or digit, unique among `seen`.
    fn name(
        &mut self,
        map: &Map<String, Value>,
        path: &JsonPath,
        what: &str,
        seen: &mut HashSet<String>,
    ) -> Option<String> {
        let name = self
            .required(map, "name", path)
            .and_then(|v| self.string(v, &path.key("name")))?;
        if !is_valid_name(&name) {
            self.error(
                &path.key("name"),
                format!(
                    "{what} name `{name}` is not valid: use 1 to {MAX_NAME_LEN} ASCII letters, digits, `-` or `_`, starting with a letter or digit"
                ),
            );
            return None;
        }
        if !seen.insert(name.clone()) {
            self.error(&path.key("name"), format!("duplicate {what} name `{name}`"));
            return None;
        }
        Some(name)
    }

    fn rule_set(&mut self, value: &Value) -> Option<RuleSet> {
        let root = JsonPath::root();
        let map = self.object(value, &root, ROOT_FIELDS)?;

        let name = self
            .required(map, "name", &root)
            .and_then(|v| self.string(v, &root.key("name")));
        let name = name.filter(|n| {
            let ok = is_valid_queue_name(n);
            if !ok {
                self.error(
                    &root.key("name"),
                    format!("queue name `{n}` is not valid: use 1 to {MAX_NAME_LEN} lowercase ASCII letters, digits and `-`, starting with a letter or digit"),
                );
            }
            ok
        });
        if let Some(d) = map.get("description") {
            self.string(d, &root.key("description"));
        }
        let version = self.required(map, "ruleLanguageVersion", &root).and_then(|v| {
            let path = root.key("ruleLanguageVersion");
            let version = self.string(v, &path)?;
            if version != RULE_LANGUAGE_VERSION {
                self.error(
                    &path,
                    format!(
                        "unsupported ruleLanguageVersion `{version}`: the only version is `{RULE_LANGUAGE_VERSION}`"
                    ),
                );
                return None;
            }
            Some(version)
        });

        let (attributes, declared) = match map.get("playerAttributes") {
            Some(v) => self.player_attributes(v, &root.key("playerAttributes")),
            None => (Some(Vec::new()), Some(Vec::new())),
        };
        let teams = self
            .required(map, "teams", &root)
            .and_then(|v| self.teams(v, &root.key("teams")));
        let queue = match map.get("queue") {
            Some(v) => self.queue(v, &root.key("queue")),
            None => Some(QueueConfig {
                timeout_seconds: DEFAULT_TICKET_TIMEOUT_SECONDS,
                acceptance: Acceptance {
                    required: false,
                    timeout_seconds: DEFAULT_ACCEPTANCE_TIMEOUT_SECONDS,
                },
                placement_timeout_seconds: DEFAULT_PLACEMENT_TIMEOUT_SECONDS,
                backfill_mode: BackfillMode::Manual,
            }),
        };
        // Rules read attributes and teams; when those failed to read, rules are still checked on
        // their own, so a designer sees everything, but references to them are not.
        let rules = match map.get("rules") {
            Some(v) => self.rules(v, &root.key("rules"), declared.as_deref(), teams.as_deref()),
            None => RulesRead {
                good: Vec::new(),
                complete: true,
                listed: true,
                names: Vec::new(),
            },
        };
        let expansions = match map.get("expansions") {
            Some(v) => {
                let known = KnownRules {
                    parsed: &rules.good,
                    listed: rules.listed,
                    names: &rules.names,
                };
                self.expansions(v, &root.key("expansions"), &known, teams.as_deref(), queue.as_ref())
            }
            None => Some(Vec::new()),
        };

        Some(RuleSet {
            name: name?,
            rule_language_version: version?,
            player_attributes: attributes?,
            teams: teams?,
            rules: rules.complete.then_some(rules.good)?,
            expansions: expansions?,
            queue: queue?,
        })
    }

    /// Reads `playerAttributes`. Besides the attributes (when all are good), returns every name
    /// that was declared, with its type where that was readable, so that rules are still checked
    /// against the declarations when some other attribute is broken.
    fn player_attributes(
        &mut self,
        value: &Value,
        path: &JsonPath,
    ) -> (Option<Vec<PlayerAttribute>>, Option<Vec<Declared>>) {
        let Some(items) = self.array(value, path) else {
            return (None, None);
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut declared = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let attribute = self.player_attribute(item, &path.index(i), &mut seen, &mut declared);
            ok &= attribute.is_some();
            out.extend(attribute);
        }
        (ok.then_some(out), Some(declared))
    }

    fn player_attribute(
        &mut self,
        value: &Value,
        path: &JsonPath,
        seen: &mut HashSet<String>,
        declared: &mut Vec<Declared>,
    ) -> Option<PlayerAttribute> {
        let map = self.object(value, path, ATTRIBUTE_FIELDS)?;
        let name = self.name(map, path, "attribute", seen);
        let kind = self.required(map, "type", path).and_then(|v| {
            let type_path = path.key("type");
            let t = self.string(v, &type_path)?;
            let kind = AttributeType::from_name(&t);
            if kind.is_none() {
                let names: Vec<_> = AttributeType::ALL.iter().map(|t| t.name()).collect();
                self.error(
                    &type_path,
                    format!("unknown attribute type `{t}`; expected one of {}", quoted_list(&names)),
                );
            }
            kind
        });
        match (&name, map.get("name").and_then(Value::as_str)) {
            (Some(name), _) => declared.push(Declared {
                name: name.clone(),
                kind,
            }),
            // A name refused (not valid, or given twice) is still declared, without a type: a rule
            // reading it gets no second error saying it was never declared.
            (None, Some(raw)) => declared.push(Declared {
                name: raw.to_owned(),
                kind: None,
            }),
            (None, None) => {}
        }
        let default = match (map.get("default"), kind) {
            (Some(v), Some(kind)) => match AttributeValue::from_json(v, kind) {
                Ok(value) => Some(Some(value)),
                Err(e) => {
                    self.error(
                        &path.key("default"),
                        format!("default of a {kind} attribute: {e}, found {}", json_kind(v)),
                    );
                    None
                }
            },
            (None, _) => Some(None),
            (Some(_), None) => None,
        };
        Some(PlayerAttribute {
            name: name?,
            kind: kind?,
            default: default?,
        })
    }

    fn teams(&mut self, value: &Value, path: &JsonPath) -> Option<Vec<Team>> {
        let items = self.array(value, path)?;
        if items.is_empty() {
            self.error(path, "a match needs at least one team");
            return None;
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let team = self.team(item, &path.index(i), &mut seen);
            ok &= team.is_some();
            out.extend(team);
        }
        if !ok {
            return None;
        }
        // In u64: a u32 sum of products wraps, and 107,374 teams of 200 × 200 read as 192 players.
        let total: u64 = out
            .iter()
            .map(|t| u64::from(t.max_players) * u64::from(t.quantity))
            .sum();
        if total > u64::from(MAX_PLAYERS_PER_MATCH) {
            self.error(
                path,
                format!("the teams hold {total} players in all; a match holds at most {MAX_PLAYERS_PER_MATCH}"),
            );
            return None;
        }
        Some(out)
    }

    fn team(&mut self, value: &Value, path: &JsonPath, seen: &mut HashSet<String>) -> Option<Team> {
        let map = self.object(value, path, TEAM_FIELDS)?;
        let name = self.name(map, path, "team", seen);
        let max = MAX_PLAYERS_PER_MATCH;
        let min_players = self
            .required(map, "minPlayers", path)
            .and_then(|v| self.integer(v, &path.key("minPlayers"), 1, max));
        let max_players = self
            .required(map, "maxPlayers", path)
            .and_then(|v| self.integer(v, &path.key("maxPlayers"), 1, max));
        let quantity = match map.get("quantity") {
            Some(v) => self.integer(v, &path.key("quantity"), 1, max),
            None => Some(1),
        };
        if let (Some(lo), Some(hi)) = (min_players, max_players) {
            if lo > hi {
                self.error(
                    &path.key("minPlayers"),
                    format!("impossible team: minPlayers {lo} is more than maxPlayers {hi}"),
                );
                return None;
            }
        }
        Some(Team {
            name: name?,
            min_players: min_players?,
            max_players: max_players?,
            quantity: quantity?,
        })
    }

    fn rules(
        &mut self,
        value: &Value,
        path: &JsonPath,
        attributes: Option<&[Declared]>,
        teams: Option<&[Team]>,
    ) -> RulesRead {
        let Some(items) = self.array(value, path) else {
            return RulesRead {
                good: Vec::new(),
                complete: false,
                listed: false,
                names: Vec::new(),
            };
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let rule = self.rule(item, &path.index(i), &mut seen, attributes, teams);
            ok &= rule.is_some();
            out.extend(rule);
        }
        // `seen` holds every rule name that was read, good rule or not.
        let mut names: Vec<String> = seen.into_iter().collect();
        names.sort();
        RulesRead {
            good: out,
            complete: ok,
            listed: true,
            names,
        }
    }

    fn rule(
        &mut self,
        value: &Value,
        path: &JsonPath,
        seen: &mut HashSet<String>,
        attributes: Option<&[Declared]>,
        teams: Option<&[Team]>,
    ) -> Option<Rule> {
        let Value::Object(map) = value else {
            self.error(path, format!("expected an object, found {}", json_kind(value)));
            return None;
        };
        let type_path = path.key("type");
        let rule_type = self
            .required(map, "type", path)
            .and_then(|v| self.string(v, &type_path));
        let fields: &[&str] = match rule_type.as_deref() {
            Some("distance") => &[
                "name",
                "type",
                "description",
                "attribute",
                "maxDistance",
                "partyAggregation",
            ],
            Some("teamBalance") => &["name", "type", "description", "attribute", "maxDifference"],
            Some("latency") => &["name", "type", "description", "maxLatency"],
            Some("comparison") => &["name", "type", "description", "attribute", "operation"],
            Some("collection") => &["name", "type", "description", "attribute", "minCount"],
            Some("composition") => &["name", "type", "description", "attribute", "perTeam"],
            Some(other) => {
                self.error(
                    &type_path,
                    format!(
                        "unknown rule type `{other}`; expected one of {}",
                        quoted_list(RULE_TYPES)
                    ),
                );
                // Check the name anyway, so a duplicate is still reported.
                self.name(map, path, "rule", seen);
                return None;
            }
            None => {
                self.name(map, path, "rule", seen);
                return None;
            }
        };
        self.object(value, path, fields)?;
        let name = self.name(map, path, "rule", seen);
        if let Some(d) = map.get("description") {
            self.string(d, &path.key("description"));
        }
        let kind = match rule_type.as_deref() {
            Some("distance") => {
                let attribute = self.attribute_ref(map, path, attributes, &[AttributeType::Number]);
                let max_distance = self
                    .required(map, "maxDistance", path)
                    .and_then(|v| self.non_negative(v, &path.key("maxDistance")));
                let party_aggregation = match map.get("partyAggregation") {
                    None => Some(PartyAggregation::Avg),
                    Some(v) => {
                        let agg_path = path.key("partyAggregation");
                        match self.string(v, &agg_path).as_deref() {
                            Some("avg") => Some(PartyAggregation::Avg),
                            Some("min") => Some(PartyAggregation::Min),
                            Some("max") => Some(PartyAggregation::Max),
                            Some(other) => {
                                self.error(
                                    &agg_path,
                                    format!("unknown partyAggregation `{other}`; expected one of `avg`, `min`, `max`"),
                                );
                                None
                            }
                            None => None,
                        }
                    }
                };
                RuleKind::Distance {
                    attribute: attribute?,
                    max_distance: max_distance?,
                    party_aggregation: party_aggregation?,
                }
            }
            Some("teamBalance") => {
                let attribute = self.attribute_ref(map, path, attributes, &[AttributeType::Number]);
                let max_difference = self
                    .required(map, "maxDifference", path)
                    .and_then(|v| self.non_negative(v, &path.key("maxDifference")));
                if let Some(teams) = teams {
                    let slots: u32 = teams.iter().map(|t| t.quantity).sum();
                    if slots < 2 {
                        self.error(&type_path, "a teamBalance rule needs at least two teams to balance");
                        return None;
                    }
                }
                RuleKind::TeamBalance {
                    attribute: attribute?,
                    max_difference: max_difference?,
                }
            }
            Some("latency") => {
                let max_latency = self
                    .required(map, "maxLatency", path)
                    .and_then(|v| self.integer(v, &path.key("maxLatency"), 1, MAX_LATENCY_MS));
                RuleKind::Latency {
                    max_latency: max_latency?,
                }
            }
            Some("comparison") => {
                let attribute =
                    self.attribute_ref(map, path, attributes, &[AttributeType::Number, AttributeType::String]);
                let op_path = path.key("operation");
                let operation =
                    self.required(map, "operation", path)
                        .and_then(|v| match self.string(v, &op_path).as_deref() {
                            Some("=") => Some(ComparisonOp::Equal),
                            Some("!=") => Some(ComparisonOp::NotEqual),
                            Some(other) => {
                                self.error(&op_path, format!("unknown operation `{other}`; expected `=` or `!=`"));
                                None
                            }
                            None => None,
                        });
                RuleKind::Comparison {
                    attribute: attribute?,
                    operation: operation?,
                }
            }
            Some("collection") => {
                let attribute = self.attribute_ref(map, path, attributes, &[AttributeType::StringList]);
                let min_count = match map.get("minCount") {
                    Some(v) => self.integer(v, &path.key("minCount"), 1, 100),
                    None => Some(1),
                };
                RuleKind::Collection {
                    attribute: attribute?,
                    min_count: min_count?,
                }
            }
            Some("composition") => {
                let attribute = self.attribute_ref(map, path, attributes, &[AttributeType::StringList]);
                let per_team = self
                    .required(map, "perTeam", path)
                    .and_then(|v| self.per_team(v, &path.key("perTeam"), teams));
                RuleKind::Composition {
                    attribute: attribute?,
                    per_team: per_team?,
                }
            }
            _ => return None,
        };
        Some(Rule { name: name?, kind })
    }

    /// The rule's `attribute`: declared in `playerAttributes`, and of one of the types the rule reads.
    fn attribute_ref(
        &mut self,
        map: &Map<String, Value>,
        path: &JsonPath,
        attributes: Option<&[Declared]>,
        allowed: &[AttributeType],
    ) -> Option<String> {
        let attr_path = path.key("attribute");
        let name = self
            .required(map, "attribute", path)
            .and_then(|v| self.string(v, &attr_path))?;
        // When playerAttributes itself is broken its errors are already reported; do not pile on.
        let attributes = attributes?;
        let Some(declared) = attributes.iter().find(|a| a.name == name) else {
            let names: Vec<_> = attributes.iter().map(|a| a.name.as_str()).collect();
            let known = if names.is_empty() {
                "none are declared".to_owned()
            } else {
                format!("declared: {}", quoted_list(&names))
            };
            self.error(
                &attr_path,
                format!("unknown attribute `{name}`: it is not in playerAttributes ({known})"),
            );
            return None;
        };
        // An attribute whose type did not read has its own error already.
        let kind = declared.kind?;
        if !allowed.contains(&kind) {
            let allowed: Vec<_> = allowed.iter().map(|t| t.name()).collect();
            self.error(
                &attr_path,
                format!(
                    "attribute `{name}` is a {kind} attribute; this rule reads {}",
                    quoted_list(&allowed)
                ),
            );
            return None;
        }
        Some(name)
    }

    fn per_team(&mut self, value: &Value, path: &JsonPath, teams: Option<&[Team]>) -> Option<BTreeMap<String, u32>> {
        let Value::Object(map) = value else {
            self.error(
                path,
                format!("expected an object of role counts, found {}", json_kind(value)),
            );
            return None;
        };
        if map.is_empty() {
            self.error(path, "perTeam names no roles");
            return None;
        }
        let mut roles = BTreeMap::new();
        let mut ok = true;
        for (role, count) in map {
            match self.integer(count, &path.key(role), 1, MAX_PLAYERS_PER_MATCH) {
                Some(n) => {
                    roles.insert(role.clone(), n);
                }
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let needed: u32 = roles.values().sum();
        if let Some(team) = teams.and_then(|ts| ts.iter().find(|t| t.max_players < needed)) {
            self.error(
                path,
                format!(
                    "impossible composition: it needs {needed} players per team, but team `{}` holds at most {}",
                    team.name, team.max_players
                ),
            );
            return None;
        }
        Some(roles)
    }

    fn queue(&mut self, value: &Value, path: &JsonPath) -> Option<QueueConfig> {
        let map = self.object(value, path, QUEUE_FIELDS)?;
        let timeout_seconds = match map.get("timeoutSeconds") {
            Some(v) => self.integer(v, &path.key("timeoutSeconds"), 1, MAX_TICKET_TIMEOUT_SECONDS),
            None => Some(DEFAULT_TICKET_TIMEOUT_SECONDS),
        };
        let acceptance = match map.get("acceptance") {
            Some(v) => self.acceptance(v, &path.key("acceptance")),
            None => Some(Acceptance {
                required: false,
                timeout_seconds: DEFAULT_ACCEPTANCE_TIMEOUT_SECONDS,
            }),
        };
        let cap = MAX_ACCEPTANCE_PLUS_PLACEMENT_SECONDS;
        let placement_timeout_seconds = match map.get("placementTimeoutSeconds") {
            Some(v) => self.integer(v, &path.key("placementTimeoutSeconds"), 1, cap),
            None => Some(DEFAULT_PLACEMENT_TIMEOUT_SECONDS),
        };
        let backfill_mode = match map.get("backfillMode") {
            None => Some(BackfillMode::Manual),
            Some(v) => {
                let mode_path = path.key("backfillMode");
                match self.string(v, &mode_path).as_deref() {
                    Some("AUTOMATIC") => Some(BackfillMode::Automatic),
                    Some("MANUAL") => Some(BackfillMode::Manual),
                    Some(other) => {
                        self.error(
                            &mode_path,
                            format!("unknown backfillMode `{other}`; expected `AUTOMATIC` or `MANUAL`"),
                        );
                        None
                    }
                    None => None,
                }
            }
        };
        if let (Some(acceptance), Some(placement)) = (acceptance, placement_timeout_seconds) {
            if acceptance.required && acceptance.timeout_seconds + placement > cap {
                self.error(
                    path,
                    format!(
                        "acceptance.timeoutSeconds ({}) plus placementTimeoutSeconds ({placement}) is {} s; together they must be at most {cap} s so that placement fits in one Express execution",
                        acceptance.timeout_seconds,
                        acceptance.timeout_seconds + placement
                    ),
                );
                return None;
            }
        }
        Some(QueueConfig {
            timeout_seconds: timeout_seconds?,
            acceptance: acceptance?,
            placement_timeout_seconds: placement_timeout_seconds?,
            backfill_mode: backfill_mode?,
        })
    }

    fn acceptance(&mut self, value: &Value, path: &JsonPath) -> Option<Acceptance> {
        let map = self.object(value, path, ACCEPTANCE_FIELDS)?;
        let required = self
            .required(map, "required", path)
            .and_then(|v| self.boolean(v, &path.key("required")));
        let timeout_seconds = match map.get("timeoutSeconds") {
            Some(v) => self.integer(v, &path.key("timeoutSeconds"), 1, MAX_ACCEPTANCE_TIMEOUT_SECONDS),
            None => Some(DEFAULT_ACCEPTANCE_TIMEOUT_SECONDS),
        };
        Some(Acceptance {
            required: required?,
            timeout_seconds: timeout_seconds?,
        })
    }

    fn expansions(
        &mut self,
        value: &Value,
        path: &JsonPath,
        rules: &KnownRules<'_>,
        teams: Option<&[Team]>,
        queue: Option<&QueueConfig>,
    ) -> Option<Vec<Expansion>> {
        let items = self.array(value, path)?;
        let mut targets = HashSet::new();
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let expansion = self.expansion(item, &path.index(i), rules, teams, queue);
            if let Some(e) = &expansion {
                if !targets.insert(e.target.clone()) {
                    self.error(
                        &path.index(i).key("target"),
                        "duplicate expansion: another expansion already targets this field",
                    );
                    ok = false;
                    continue;
                }
            }
            ok &= expansion.is_some();
            out.extend(expansion);
        }
        ok.then_some(out)
    }

    fn expansion(
        &mut self,
        value: &Value,
        path: &JsonPath,
        rules: &KnownRules<'_>,
        teams: Option<&[Team]>,
        queue: Option<&QueueConfig>,
    ) -> Option<Expansion> {
        let map = self.object(value, path, EXPANSION_FIELDS)?;
        let target_path = path.key("target");
        let resolved = self
            .required(map, "target", path)
            .and_then(|v| self.string(v, &target_path))
            .and_then(|t| self.target(&t, &target_path, rules, teams));
        let steps_path = path.key("steps");
        let steps = self
            .required(map, "steps", path)
            .and_then(|v| self.array(v, &steps_path));
        let steps = steps.and_then(|items| {
            if items.is_empty() {
                self.error(&steps_path, "an expansion needs at least one step");
                return None;
            }
            let mut out: Vec<ExpansionStep> = Vec::new();
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                let step = self.step(item, &steps_path.index(i), queue);
                // Wait times must increase whatever the target, so this is checked even when the
                // target did not resolve.
                if let (Some(step), Some(previous)) = (&step, out.last()) {
                    if step.wait_time_seconds <= previous.wait_time_seconds {
                        self.error(
                            &steps_path.index(i).key("waitTimeSeconds"),
                            format!(
                                "steps must wait longer each time: {} s is not after the previous step's {} s",
                                step.wait_time_seconds, previous.wait_time_seconds
                            ),
                        );
                        ok = false;
                    }
                }
                ok &= step.is_some();
                out.extend(step);
            }
            ok.then_some(out)
        });
        let (target, base) = resolved?;
        let steps = steps?;
        self.check_steps(&target, base, &steps, &steps_path)?;
        Some(Expansion { target, steps })
    }

    fn step(&mut self, value: &Value, path: &JsonPath, queue: Option<&QueueConfig>) -> Option<ExpansionStep> {
        let map = self.object(value, path, STEP_FIELDS)?;
        let wait_path = path.key("waitTimeSeconds");
        let wait = self
            .required(map, "waitTimeSeconds", path)
            .and_then(|v| self.integer(v, &wait_path, 1, MAX_TICKET_TIMEOUT_SECONDS));
        if let (Some(wait), Some(queue)) = (wait, queue) {
            if wait >= queue.timeout_seconds {
                self.error(
                    &wait_path,
                    format!(
                        "this step never applies: tickets time out after {} s (queue.timeoutSeconds)",
                        queue.timeout_seconds
                    ),
                );
                return None;
            }
        }
        let value = self
            .required(map, "value", path)
            .and_then(|v| self.non_negative(v, &path.key("value")));
        Some(ExpansionStep {
            wait_time_seconds: wait?,
            value: value?,
        })
    }

    /// Resolves `rules[NAME].FIELD` or `teams[NAME].minPlayers`, returning the target and the value
    /// it has before any expansion.
    fn target(
        &mut self,
        target: &str,
        path: &JsonPath,
        rules: &KnownRules<'_>,
        teams: Option<&[Team]>,
    ) -> Option<(ExpansionTarget, f64)> {
        let Some((collection, name, field)) = split_target(target) else {
            self.error(
                path,
                format!("target `{target}` is not of the form `rules[NAME].FIELD` or `teams[NAME].minPlayers`"),
            );
            return None;
        };
        match collection {
            "rules" => {
                let Some(rule) = rules.parsed.iter().find(|r| r.name == name) else {
                    // A rule that exists but did not read has its own errors already.
                    if rules.listed && !rules.names.iter().any(|n| n == name) {
                        let names: Vec<_> = rules.names.iter().map(String::as_str).collect();
                        self.error(
                            path,
                            format!(
                                "target names rule `{name}`, which does not exist (rules: {})",
                                or_none(&names)
                            ),
                        );
                    }
                    return None;
                };
                let (expandable, base) = match &rule.kind {
                    RuleKind::Distance { max_distance, .. } => (Some(RuleField::MaxDistance), *max_distance),
                    RuleKind::TeamBalance { max_difference, .. } => (Some(RuleField::MaxDifference), *max_difference),
                    RuleKind::Latency { max_latency } => (Some(RuleField::MaxLatency), f64::from(*max_latency)),
                    RuleKind::Collection { min_count, .. } => (Some(RuleField::MinCount), f64::from(*min_count)),
                    RuleKind::Comparison { .. } | RuleKind::Composition { .. } => (None, 0.0),
                };
                match expandable {
                    Some(f) if f.name() == field => Some((
                        ExpansionTarget::Rule {
                            rule: name.to_owned(),
                            field: f,
                        },
                        base,
                    )),
                    Some(f) => {
                        self.error(
                            path,
                            format!(
                                "rule `{name}` is a {} rule and has no expandable field `{field}`; its expandable field is `{}`",
                                rule.kind.type_name(),
                                f.name()
                            ),
                        );
                        None
                    }
                    None => {
                        self.error(
                            path,
                            format!(
                                "rule `{name}` is a {} rule and has no field an expansion can loosen",
                                rule.kind.type_name()
                            ),
                        );
                        None
                    }
                }
            }
            "teams" => {
                let teams = teams?;
                let Some(team) = teams.iter().find(|t| t.name == name) else {
                    let names: Vec<_> = teams.iter().map(|t| t.name.as_str()).collect();
                    self.error(
                        path,
                        format!(
                            "target names team `{name}`, which does not exist (teams: {})",
                            or_none(&names)
                        ),
                    );
                    return None;
                };
                if field != "minPlayers" {
                    self.error(
                        path,
                        format!("team field `{field}` cannot be expanded; the expandable team field is `minPlayers`"),
                    );
                    return None;
                }
                Some((
                    ExpansionTarget::Team {
                        team: name.to_owned(),
                        field: TeamField::MinPlayers,
                    },
                    f64::from(team.min_players),
                ))
            }
            other => {
                self.error(
                    path,
                    format!("target `{target}` names `{other}`; expansions target `rules[…]` or `teams[…]`"),
                );
                None
            }
        }
    }

    /// Each step must loosen its target further, starting looser than the value before expansion.
    fn check_steps(
        &mut self,
        target: &ExpansionTarget,
        base: f64,
        steps: &[ExpansionStep],
        path: &JsonPath,
    ) -> Option<()> {
        let (upward, integral, field) = match target {
            ExpansionTarget::Rule { field, .. } => (
                field.loosens_upward(),
                matches!(field, RuleField::MaxLatency | RuleField::MinCount),
                field.name(),
            ),
            ExpansionTarget::Team { .. } => (false, true, "minPlayers"),
        };
        // What the rule's own value may be at most, where the rule bounds it.
        let ceiling = match target {
            ExpansionTarget::Rule {
                field: RuleField::MaxLatency,
                ..
            } => Some(f64::from(MAX_LATENCY_MS)),
            _ => None,
        };
        let mut ok = true;
        let mut previous_value = base;
        for (i, step) in steps.iter().enumerate() {
            let step_path = path.index(i);
            if integral && (step.value.fract() != 0.0 || step.value < 1.0) {
                self.error(
                    &step_path.key("value"),
                    format!(
                        "{field} must be a whole number of at least 1, found {}",
                        crate::json::figure(step.value)
                    ),
                );
                ok = false;
            } else if let Some(max) = ceiling.filter(|&max| step.value > max) {
                self.error(
                    &step_path.key("value"),
                    format!(
                        "{} is out of range: {field} must be from 1 to {max}, as the rule's own",
                        crate::json::figure(step.value)
                    ),
                );
                ok = false;
            } else if (upward && step.value <= previous_value) || (!upward && step.value >= previous_value) {
                let direction = if upward { "larger" } else { "smaller" };
                let against = if i == 0 {
                    "the value before any expansion,"
                } else {
                    "the previous step's"
                };
                self.error(
                    &step_path.key("value"),
                    format!(
                        "steps must loosen {field} each time: {} is not {direction} than {against} {}",
                        crate::json::figure(step.value),
                        crate::json::figure(previous_value)
                    ),
                );
                ok = false;
            }
            previous_value = step.value;
        }
        ok.then_some(())
    }
}

/// Splits `rules[fair].maxDistance` into `("rules", "fair", "maxDistance")`.
fn split_target(target: &str) -> Option<(&str, &str, &str)> {
    let (collection, rest) = target.split_once('[')?;
    let (name, rest) = rest.split_once(']')?;
    let field = rest.strip_prefix('.')?;
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (plain(collection) && plain(name) && plain(field)).then_some((collection, name, field))
}

fn quoted_list(items: &[&str]) -> String {
    items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

fn or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        quoted_list(items)
    }
}
