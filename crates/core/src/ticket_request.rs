//! The body of `POST /v1/tickets`: reading it, checking it against its queue's rule set, and the
//! JSON Schema the edge validates it with.
//!
//! Checks happen in two places, as on AWS. The edge (API Gateway's model, or the dev server with
//! the same schema) refuses what is malformed. Admission, behind the queue, checks what only the
//! rule set knows (attribute names and types, party size against the teams) and fails the ticket
//! with a reason. Both report each problem at its JSON pointer.

use crate::attribute::AttributeValue;
use crate::ids::PlayerId;
use crate::latencies::Latencies;
use crate::ruleset::{RuleKind, RuleSet};
use crate::ticket::Player;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The most players one ticket may hold unless configured otherwise.
pub const DEFAULT_MAX_PLAYERS_PER_TICKET: usize = 10;
/// A measured latency above 10 s is an error in the client, not a player to match.
const MAX_LATENCY_MS: u64 = 10_000;

/// One problem with a request body, at its RFC 6901 JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub pointer: String,
    pub message: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "the body"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.message)
    }
}

/// A player as the request names them; attributes are still raw JSON until read against the
/// queue's rule set.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestedPlayer {
    pub id: PlayerId,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub latencies: Latencies,
    /// A party member's consent: required for every member but the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party_token: Option<String>,
}

/// A well-formed ticket request.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TicketRequest {
    pub queue: String,
    pub players: Vec<RequestedPlayer>,
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl TicketRequest {
    /// With one region served (see `Settings::single_region`), the players who measured latencies
    /// but not to it: no match of theirs could be placed. A player who sent none is taken to be next
    /// to it, and the other regions one measured are left aside.
    pub fn unserved_latencies(&self, served: &str) -> Vec<FieldError> {
        self.players
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.latencies.is_empty() && p.latencies.get(served).is_none())
            .map(|(i, p)| {
                let measured: Vec<&str> = p.latencies.regions().collect();
                FieldError::new(
                    format!("/players/{i}/latencies"),
                    format!(
                        "matches are placed in region `{served}` only, which {} did not measure (only {}); send its latency, or none",
                        p.id,
                        measured.join(", ")
                    ),
                )
            })
            .collect()
    }

    /// Reads a request body, reporting every structural problem at its pointer. `queues` are the
    /// queues served; `max_players` bounds a party.
    pub fn parse(body: &Value, queues: &[&str], max_players: usize) -> Result<TicketRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Value::Object(map) = body else {
            return Err(vec![FieldError::new(
                "",
                format!("expected a JSON object, found {}", kind(body)),
            )]);
        };
        for key in map.keys().filter(|k| !matches!(k.as_str(), "queue" | "players")) {
            errors.push(FieldError::new(
                format!("/{key}"),
                format!("unknown field `{key}`; expected `queue` and `players`"),
            ));
        }
        let queue = match map.get("queue") {
            None => {
                errors.push(FieldError::new("/queue", "missing required field `queue`"));
                None
            }
            Some(Value::String(q)) if queues.contains(&q.as_str()) => Some(q.clone()),
            Some(Value::String(q)) => {
                let known = queues.iter().map(|q| format!("`{q}`")).collect::<Vec<_>>().join(", ");
                errors.push(FieldError::new(
                    "/queue",
                    format!("unknown queue `{}`; this service serves {known}", quoted(q)),
                ));
                None
            }
            Some(other) => {
                errors.push(FieldError::new(
                    "/queue",
                    format!("expected a string, found {}", kind(other)),
                ));
                None
            }
        };
        let players = match map.get("players") {
            None => {
                errors.push(FieldError::new("/players", "missing required field `players`"));
                None
            }
            Some(Value::Array(items)) if items.is_empty() => {
                errors.push(FieldError::new("/players", "a ticket needs at least one player"));
                None
            }
            Some(Value::Array(items)) if items.len() > max_players => {
                errors.push(FieldError::new(
                    "/players",
                    format!(
                        "a ticket holds at most {max_players} players; this one has {}",
                        items.len()
                    ),
                ));
                None
            }
            Some(Value::Array(items)) => {
                let mut seen = BTreeSet::new();
                let players: Vec<_> = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| read_player(item, &format!("/players/{i}"), &mut seen, &mut errors))
                    .collect();
                players.into_iter().collect::<Option<Vec<_>>>()
            }
            Some(other) => {
                errors.push(FieldError::new(
                    "/players",
                    format!("expected an array, found {}", kind(other)),
                ));
                None
            }
        };
        match (queue, players) {
            (Some(queue), Some(players)) if errors.is_empty() => Ok(TicketRequest { queue, players }),
            _ => Err(errors),
        }
    }

    /// Reads each player's attributes against `rule_set`: every attribute must be declared and of
    /// its declared type; declared ones left out take their default, or are an error without one.
    /// A party must fit in one team, since it is never split.
    pub fn players_for(&self, rule_set: &RuleSet) -> Result<Vec<Player>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let largest_team = rule_set.largest_team() as usize;
        if self.players.len() > largest_team {
            errors.push(FieldError::new(
                "/players",
                format!(
                    "a party of {} cannot be matched in queue `{}`: its largest team holds {largest_team}",
                    self.players.len(),
                    rule_set.name
                ),
            ));
        }
        let mut players = Vec::new();
        for (i, requested) in self.players.iter().enumerate() {
            let mut attributes = BTreeMap::new();
            // By name, so that errors come in one order whether or not serde_json keeps the
            // body's order (its `preserve_order` feature, which the AWS SDK's HTTP client turns on
            // in any build that has it).
            let by_name: BTreeMap<&String, &Value> = requested.attributes.iter().collect();
            for (name, raw) in by_name {
                let pointer = format!("/players/{i}/attributes/{name}");
                match rule_set.attribute(name) {
                    None => {
                        let declared: Vec<_> = rule_set
                            .player_attributes
                            .iter()
                            .map(|a| format!("`{}`", a.name))
                            .collect();
                        let declared = if declared.is_empty() {
                            "none".to_owned()
                        } else {
                            declared.join(", ")
                        };
                        errors.push(FieldError::new(
                            pointer,
                            format!(
                                "queue `{}` has no attribute `{name}` (it has {declared})",
                                rule_set.name
                            ),
                        ));
                    }
                    Some(declared) => match AttributeValue::from_json(raw, declared.kind) {
                        Ok(value) => {
                            attributes.insert(name.clone(), value);
                        }
                        Err(e) => errors.push(FieldError::new(
                            pointer,
                            format!("{e} for a {} attribute", declared.kind),
                        )),
                    },
                }
            }
            for declared in &rule_set.player_attributes {
                if attributes.contains_key(&declared.name) {
                    continue;
                }
                match &declared.default {
                    Some(default) => {
                        attributes.insert(declared.name.clone(), default.clone());
                    }
                    None => errors.push(FieldError::new(
                        format!("/players/{i}/attributes"),
                        format!(
                            "missing attribute `{}`: queue `{}` gives it no default",
                            declared.name, rule_set.name
                        ),
                    )),
                }
            }
            composition_errors(rule_set, i, &attributes, &mut errors);
            players.push(Player {
                id: requested.id.clone(),
                attributes,
                latencies: requested.latencies.clone(),
            });
        }
        if errors.is_empty() {
            Ok(players)
        } else {
            Err(errors)
        }
    }
}

/// The roles player `i` lists for each composition rule must be some of the rule's: a role it does
/// not have (a typo, as a rule set sees it) or none at all leaves a player no place in any team,
/// and the ticket would wait until it timed out.
fn composition_errors(
    rule_set: &RuleSet,
    i: usize,
    attributes: &BTreeMap<String, AttributeValue>,
    errors: &mut Vec<FieldError>,
) {
    for rule in &rule_set.rules {
        let RuleKind::Composition { attribute, per_team } = &rule.kind else {
            continue;
        };
        let Some(listed) = attributes.get(attribute).and_then(AttributeValue::as_string_list) else {
            continue;
        };
        let roles: Vec<&str> = per_team.keys().map(String::as_str).collect();
        let pointer = format!("/players/{i}/attributes/{attribute}");
        let unknown: Vec<&str> = listed
            .iter()
            .map(String::as_str)
            .filter(|r| !roles.contains(r))
            .collect();
        if !unknown.is_empty() {
            let named: Vec<String> = unknown.iter().map(|r| format!("`{r}`")).collect();
            let verb = if unknown.len() == 1 { "is" } else { "are" };
            errors.push(FieldError::new(
                pointer,
                format!(
                    "{} {verb} not a role of rule `{}`, whose roles are {}",
                    named.join(", "),
                    rule.name,
                    roles.join(", ")
                ),
            ));
        } else if listed.is_empty() {
            errors.push(FieldError::new(
                pointer,
                format!(
                    "no role: rule `{}` gives every player one of {}",
                    rule.name,
                    roles.join(", ")
                ),
            ));
        }
    }
}

/// The longest of a caller's values an error quotes whole.
const QUOTED_CHARS: usize = 64;

/// `value` as an error quotes it: cut after [`QUOTED_CHARS`] characters, so that a 60 KB name is
/// not sent back whole.
fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{}… ({} bytes)", &value[..cut], value.len()),
        None => value.to_owned(),
    }
}

fn read_player(
    item: &Value,
    pointer: &str,
    seen: &mut BTreeSet<String>,
    errors: &mut Vec<FieldError>,
) -> Option<RequestedPlayer> {
    let Value::Object(map) = item else {
        errors.push(FieldError::new(
            pointer,
            format!("expected an object, found {}", kind(item)),
        ));
        return None;
    };
    let before = errors.len();
    for key in map
        .keys()
        .filter(|k| !matches!(k.as_str(), "id" | "attributes" | "latencies" | "partyToken"))
    {
        errors.push(FieldError::new(
            format!("{pointer}/{key}"),
            format!("unknown field `{key}`; a player has `id`, `attributes`, `latencies` and `partyToken`"),
        ));
    }
    let id = match map.get("id") {
        Some(Value::String(id)) if PlayerId::is_valid(id) => {
            if !seen.insert(id.clone()) {
                errors.push(FieldError::new(
                    format!("{pointer}/id"),
                    format!("player `{id}` is listed twice"),
                ));
            }
            Some(PlayerId::new(id.clone()))
        }
        Some(Value::String(_)) => {
            errors.push(FieldError::new(format!("{pointer}/id"), PlayerId::RULE.to_owned()));
            None
        }
        Some(other) => {
            errors.push(FieldError::new(
                format!("{pointer}/id"),
                format!("expected a string, found {}", kind(other)),
            ));
            None
        }
        None => {
            errors.push(FieldError::new(format!("{pointer}/id"), "missing required field `id`"));
            None
        }
    };
    let attributes = match map.get("attributes") {
        None => Map::new(),
        Some(Value::Object(attributes)) => attributes.clone(),
        Some(other) => {
            errors.push(FieldError::new(
                format!("{pointer}/attributes"),
                format!("expected an object, found {}", kind(other)),
            ));
            Map::new()
        }
    };
    let mut latencies = Latencies::new();
    match map.get("latencies") {
        None => {}
        Some(Value::Object(regions)) => {
            for (region, ms) in regions {
                match ms.as_u64() {
                    Some(ms) if ms <= MAX_LATENCY_MS => {
                        latencies.insert(region.as_str(), ms as u32);
                    }
                    _ => errors.push(FieldError::new(
                        format!("{pointer}/latencies/{region}"),
                        match ms {
                            // 10.0 and 1E3 are whole, but JSON Schema's integer (the API's model)
                            // and this reader take only numbers written without a point or exponent.
                            Value::Number(n) if n.is_f64() => format!(
                                "a latency is an integer number of milliseconds, written without a decimal point or \
                                 exponent: found {n}"
                            ),
                            Value::Number(n) => format!(
                                "{n} is out of range: a latency is a whole number of milliseconds from 0 to {MAX_LATENCY_MS}"
                            ),
                            other => format!(
                                "a latency is a whole number of milliseconds from 0 to {MAX_LATENCY_MS}, found {}",
                                kind(other)
                            ),
                        },
                    )),
                }
            }
        }
        Some(other) => {
            errors.push(FieldError::new(
                format!("{pointer}/latencies"),
                format!("expected an object, found {}", kind(other)),
            ));
        }
    }
    let party_token = match map.get("partyToken") {
        None => None,
        Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
        Some(other) => {
            let found = match other {
                Value::String(_) => "an empty string".to_owned(),
                other => kind(other).to_owned(),
            };
            errors.push(FieldError::new(
                format!("{pointer}/partyToken"),
                format!("expected a token, found {found}"),
            ));
            None
        }
    };
    if errors.len() > before {
        return None;
    }
    Some(RequestedPlayer {
        id: id?,
        attributes,
        latencies,
        party_token,
    })
}

/// The JSON Schema (draft 4) of a ticket request for `queues`: what API Gateway's request model and
/// the dev server validate against. The queue enum comes from the rule sets, so an unknown queue is
/// refused at the edge.
pub fn json_schema(queues: &[&str], max_players: usize) -> Value {
    let mut queues: Vec<&str> = queues.to_vec();
    queues.sort_unstable();
    json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "id": "urn:queuematch:schema:ticket-request",
        "title": "TicketRequest",
        "description": "A request for a match, solo or for a party. Generated from the rule sets by `queuematch schema ticket-request`; do not edit by hand.",
        "type": "object",
        "additionalProperties": false,
        "required": ["queue", "players"],
        "properties": {
            "queue": {"type": "string", "enum": queues},
            "players": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_players,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "string", "pattern": format!("^[A-Za-z0-9_.@:-]{{1,{}}}$", PlayerId::MAX_LEN)},
                        "attributes": {
                            "type": "object",
                            "additionalProperties": {
                                "type": ["number", "string", "array", "object"],
                                "items": {"type": "string"},
                                "additionalProperties": {"type": "number"}
                            }
                        },
                        "latencies": {
                            "type": "object",
                            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": MAX_LATENCY_MS}
                        },
                        "partyToken": {"type": "string", "minLength": 1}
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribute::AttributeValue;

    const QUEUES: &[&str] = &["ranked-1v1", "ranked-5v5"];

    fn rule_set() -> RuleSet {
        RuleSet::from_json(&json!({
            "name": "ranked-5v5",
            "ruleLanguageVersion": "1.0",
            "playerAttributes": [
                {"name": "skill", "type": "number", "default": 1500},
                {"name": "roles", "type": "string_list"}
            ],
            "teams": [{"name": "red", "minPlayers": 5, "maxPlayers": 5}, {"name": "blue", "minPlayers": 5, "maxPlayers": 5}]
        }))
        .unwrap()
    }

    fn pointers(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.pointer.as_str()).collect()
    }

    #[test]
    fn a_good_request_reads_whole() {
        let body = json!({"queue": "ranked-5v5", "players": [
            {"id": "p-1", "attributes": {"skill": 1600, "roles": ["tank"]}, "latencies": {"eu-west-1": 40}},
            {"id": "p-2", "attributes": {"roles": ["dps"]}, "partyToken": "tok"}
        ]});
        let request = TicketRequest::parse(&body, QUEUES, 10).unwrap();
        assert_eq!(request.players.len(), 2);
        assert_eq!(request.players[1].party_token.as_deref(), Some("tok"));
        let players = request.players_for(&rule_set()).unwrap();
        assert_eq!(players[0].attributes["skill"], AttributeValue::Number(1600.0));
        assert_eq!(
            players[1].attributes["skill"],
            AttributeValue::Number(1500.0),
            "the default"
        );
        assert_eq!(players[0].latencies.get("eu-west-1"), Some(40));
    }

    #[test]
    fn a_latency_refused_says_why_it_is_not_one() {
        let message = |ms: Value| {
            let body = json!({"queue": "ranked-1v1", "players": [{"id": "p-1", "latencies": {"eu": ms}}]});
            let errors = TicketRequest::parse(&body, QUEUES, 10).unwrap_err();
            assert_eq!(pointers(&errors), ["/players/0/latencies/eu"]);
            errors[0].message.clone()
        };
        let written = "an integer number of milliseconds, written without a decimal point or exponent";
        let cases = [
            (serde_json::from_str("1E3").unwrap(), format!("{written}: found 1000.0")),
            (json!(10.0), format!("{written}: found 10.0")),
            (json!(10.5), format!("{written}: found 10.5")),
            (json!(-1), "-1 is out of range".into()),
            (
                json!(10_001),
                "10001 is out of range: a latency is a whole number of milliseconds from 0 to 10000".into(),
            ),
            (json!("fast"), "from 0 to 10000, found a string".into()),
        ];
        for (ms, expected) in cases {
            let got = message(ms.clone());
            assert!(got.contains(&expected), "{ms}: {got}");
        }
    }

    #[test]
    fn every_structural_problem_is_reported_at_its_pointer() {
        let body = json!({"queue": "ranked-9v9", "extra": 1, "players": [
            {"id": "", "attributes": []},
            {"id": "p-2", "latencies": {"eu": -1}, "nickname": "x"},
            "p-3"
        ]});
        let errors = TicketRequest::parse(&body, QUEUES, 10).unwrap_err();
        assert_eq!(
            pointers(&errors),
            [
                "/extra",
                "/queue",
                "/players/0/id",
                "/players/0/attributes",
                "/players/1/nickname",
                "/players/1/latencies/eu",
                "/players/2"
            ]
        );
        assert!(errors[1]
            .message
            .contains("unknown queue `ranked-9v9`; this service serves `ranked-1v1`, `ranked-5v5`"));
    }

    #[test]
    fn party_size_is_bounded() {
        let players: Vec<_> = (0..11).map(|i| json!({"id": format!("p-{i}")})).collect();
        let errors = TicketRequest::parse(&json!({"queue": "ranked-1v1", "players": players}), QUEUES, 10).unwrap_err();
        assert_eq!(
            errors,
            [FieldError::new(
                "/players",
                "a ticket holds at most 10 players; this one has 11"
            )]
        );
        let errors = TicketRequest::parse(&json!({"queue": "ranked-1v1", "players": []}), QUEUES, 10).unwrap_err();
        assert_eq!(pointers(&errors), ["/players"]);
    }

    #[test]
    fn a_player_listed_twice_is_refused() {
        let body = json!({"queue": "ranked-1v1", "players": [{"id": "p-1"}, {"id": "p-1"}]});
        let errors = TicketRequest::parse(&body, QUEUES, 10).unwrap_err();
        assert_eq!(
            errors,
            [FieldError::new("/players/1/id", "player `p-1` is listed twice")]
        );
    }

    #[test]
    fn missing_fields_and_wrong_shapes_are_named() {
        assert_eq!(
            pointers(&TicketRequest::parse(&json!({}), QUEUES, 10).unwrap_err()),
            ["/queue", "/players"]
        );
        assert_eq!(
            pointers(&TicketRequest::parse(&json!([1]), QUEUES, 10).unwrap_err()),
            [""]
        );
        let errors = TicketRequest::parse(&json!({"queue": 5, "players": {}}), QUEUES, 10).unwrap_err();
        assert_eq!(pointers(&errors), ["/queue", "/players"]);
    }

    #[test]
    fn attributes_are_read_against_the_rule_set() {
        let body = json!({"queue": "ranked-5v5", "players": [
            {"id": "p-1", "attributes": {"skill": "high", "rank": 3, "roles": ["tank"]}},
            {"id": "p-2"}
        ]});
        let request = TicketRequest::parse(&body, QUEUES, 10).unwrap();
        let errors = request.players_for(&rule_set()).unwrap_err();
        assert_eq!(
            pointers(&errors),
            [
                "/players/0/attributes/rank",
                "/players/0/attributes/skill",
                "/players/1/attributes"
            ]
        );
        assert_eq!(
            errors[0].message,
            "queue `ranked-5v5` has no attribute `rank` (it has `skill`, `roles`)"
        );
        assert_eq!(errors[1].message, "expected a number for a number attribute");
        assert_eq!(
            errors[2].message,
            "missing attribute `roles`: queue `ranked-5v5` gives it no default"
        );
    }

    #[test]
    fn roles_a_composition_rule_does_not_have_are_refused() {
        let rules = RuleSet::from_json(&json!({
            "name": "ranked-5v5",
            "ruleLanguageVersion": "1.0",
            "playerAttributes": [{"name": "roles", "type": "string_list"}],
            "teams": [{"name": "red", "minPlayers": 5, "maxPlayers": 5}, {"name": "blue", "minPlayers": 5, "maxPlayers": 5}],
            "rules": [{"name": "roster", "type": "composition", "attribute": "roles",
                "perTeam": {"tank": 1, "healer": 1, "dps": 3}}]
        }))
        .unwrap();
        let body = json!({"queue": "ranked-5v5", "players": [
            {"id": "p-1", "attributes": {"roles": ["tank", "tank", "dps"]}},
            {"id": "p-2", "attributes": {"roles": ["wizard", "dps", "bard"]}},
            {"id": "p-3", "attributes": {"roles": []}}
        ]});
        let request = TicketRequest::parse(&body, QUEUES, 10).unwrap();
        let errors = request.players_for(&rules).unwrap_err();
        assert_eq!(
            errors,
            [
                FieldError::new(
                    "/players/1/attributes/roles",
                    "`wizard`, `bard` are not a role of rule `roster`, whose roles are dps, healer, tank"
                ),
                FieldError::new(
                    "/players/2/attributes/roles",
                    "no role: rule `roster` gives every player one of dps, healer, tank"
                ),
            ]
        );
    }

    #[test]
    fn a_long_unknown_queue_is_quoted_cut() {
        let name = "q".repeat(60_000);
        let errors = TicketRequest::parse(&json!({"queue": name, "players": [{"id": "p-1"}]}), QUEUES, 10).unwrap_err();
        let message = &errors[0].message;
        assert!(message.len() < 200, "{message}");
        assert!(
            message.contains(&format!("`{}… (60000 bytes)`", "q".repeat(64))),
            "{message}"
        );
    }

    #[test]
    fn a_party_larger_than_every_team_is_refused() {
        let players: Vec<_> = (0..6)
            .map(|i| json!({"id": format!("p-{i}"), "attributes": {"roles": ["dps"]}}))
            .collect();
        let request = TicketRequest::parse(&json!({"queue": "ranked-5v5", "players": players}), QUEUES, 10).unwrap();
        let errors = request.players_for(&rule_set()).unwrap_err();
        assert_eq!(
            errors,
            [FieldError::new(
                "/players",
                "a party of 6 cannot be matched in queue `ranked-5v5`: its largest team holds 5"
            )]
        );
    }

    #[test]
    fn the_schema_lists_the_queues_sorted_and_bounds_the_party() {
        let schema = json_schema(&["b", "a"], 10);
        assert_eq!(schema["properties"]["queue"]["enum"], json!(["a", "b"]));
        assert_eq!(schema["properties"]["players"]["maxItems"], json!(10));
    }
}
