//! Backfill: the open slots of a running session, filled from the pool under the same rules.
//!
//! A session whose player left has a team short of players. [`fill`] picks waiting tickets for the
//! open slots, oldest first, and keeps a ticket only if the session's roster with it (the players
//! still seated, and the tickets picked before it) satisfies the rule set, checked by the same
//! independent [`check_match`] that holds the matcher to its rules. So backfill follows the rules by
//! construction:
//! - distance, team balance, comparison, collection and composition are checked against the whole
//!   roster (composition therefore asks the team, once filled, to field its roles: a backfilled
//!   player takes the role that left);
//! - latency is checked to the session's region, which cannot move; a ticket that would make another
//!   region the better one is refused, as `check_match` refuses such a match (conservative);
//! - the collections chosen for the session (its map) must be among the new player's;
//! - the expansion level is the one for the oldest ticket picked: seated players count as if they had
//!   just arrived, so their wait loosens nothing;
//! - minimum team sizes do not apply: the session is running, and any filled slot helps.
//!
//! Parties stay whole (a ticket fits in one team's open slots or is not picked), a ticket is picked
//! once, and the result depends only on the roster, the pool's contents (not their order), the rule
//! set and the time.

use super::check::{check_match, Violation};
use super::outcome::{ExpansionSteps, Match, MatchQuality, MatchTeam, MatchTeams, Name, TeamMembers};
use crate::ids::{MatchId, TicketId};
use crate::ruleset::{ExpansionTarget, RuleSet};
use crate::status::TicketStatus;
use crate::ticket::{Player, Ticket};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Tickets offered to one session at most, oldest first: past this, a pool so crowded with tickets
/// that do not fit makes waiting a round cheaper, as for the matcher's walks.
pub const WALK_LIMIT: usize = 1_000;

/// One team slot of a running session: who is seated in it, and how many slots are open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatedTeam {
    /// The team slot's name, as in the session's match (`red`, `squad-3`).
    pub name: String,
    /// The players in the team now, with the attributes and latencies their tickets carried.
    pub players: Vec<Player>,
    /// Slots open for backfill.
    pub open: u32,
}

/// A running session, as backfill sees it.
#[derive(Debug, Clone, Copy)]
pub struct OpenSession<'a> {
    /// Names the check's pseudo-match, for its messages.
    pub session: &'a str,
    /// Every team slot of the rule set, in order.
    pub teams: &'a [SeatedTeam],
    /// The region the session plays in.
    pub region: Option<&'a str>,
    /// The values the session's match chose for its collection rules.
    pub collections: &'a BTreeMap<String, Vec<String>>,
}

/// What [`fill`] picked: for each team slot, in order, the tickets it takes, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    pub teams: Vec<Vec<TicketId>>,
}

impl Fill {
    pub fn ticket_ids(&self) -> impl Iterator<Item = &TicketId> {
        self.teams.iter().flatten()
    }
}

/// Picks tickets of `pool` for `session`'s open slots at `now`, or `None` when none fits. Only
/// SEARCHING tickets are considered.
pub fn fill(session: OpenSession<'_>, pool: &[Ticket], rule_set: &RuleSet, now: Timestamp) -> Option<Fill> {
    if session.teams.len() != rule_set.team_slots().len() {
        return None;
    }
    let relaxed = without_minimums(rule_set);
    let mut waiting: Vec<&Ticket> = pool.iter().filter(|t| t.status == TicketStatus::Searching).collect();
    waiting.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    waiting.truncate(WALK_LIMIT);

    let mut picked: Vec<Vec<&Ticket>> = vec![Vec::new(); session.teams.len()];
    let mut taken: BTreeSet<&TicketId> = BTreeSet::new();
    // The team with the most open slots first, as the game server seats a newcomer there.
    let mut order: Vec<usize> = (0..session.teams.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(session.teams[i].open), i));
    for team in order {
        for ticket in &waiting {
            let open = session.teams[team].open as usize - picked[team].iter().map(|t| t.players.len()).sum::<usize>();
            if open == 0 {
                break;
            }
            if taken.contains(&ticket.id) || ticket.players.is_empty() || ticket.players.len() > open {
                continue;
            }
            picked[team].push(ticket);
            if check(session, &picked, &relaxed, now).is_ok() {
                taken.insert(&ticket.id);
            } else {
                picked[team].pop();
            }
        }
    }
    if taken.is_empty() {
        return None;
    }
    Some(Fill {
        teams: picked
            .iter()
            .map(|team| team.iter().map(|t| t.id.clone()).collect())
            .collect(),
    })
}

/// Checks the session's roster with `picked` added, team by team, against `rule_set` (minimum team
/// sizes waived) at `now`.
pub fn check(
    session: OpenSession<'_>,
    picked: &[Vec<&Ticket>],
    rule_set: &RuleSet,
    now: Timestamp,
) -> Result<(), Violation> {
    let (roster, tickets) = roster_match(session, picked, now);
    check_match(&roster, &tickets, rule_set)
}

/// The session's roster as a match the independent check reads: each seated player as a ticket of
/// their own, created `now` (so their wait loosens nothing), then the picked tickets.
fn roster_match(session: OpenSession<'_>, picked: &[Vec<&Ticket>], now: Timestamp) -> (Match, Vec<Ticket>) {
    let mut tickets = Vec::new();
    let mut teams = MatchTeams::new();
    let mut everyone: Vec<&Player> = Vec::new();
    for (i, seated) in session.teams.iter().enumerate() {
        let mut team = MatchTeam {
            name: Name::from(seated.name.as_str()),
            tickets: TeamMembers::new(),
            players: TeamMembers::new(),
        };
        for player in &seated.players {
            // A NUL cannot be in a ticket id that came through the API, so these never collide.
            let id = TicketId::new(format!("\u{0}seated#{}", player.id));
            let mut ticket = Ticket::queued(id.clone(), "", vec![player.clone()], now);
            ticket.status = TicketStatus::Searching;
            team.tickets.push(id);
            team.players.push(player.id.clone());
            tickets.push(ticket);
        }
        for ticket in picked.get(i).into_iter().flatten() {
            team.tickets.push(ticket.id.clone());
            team.players.extend(ticket.players.iter().map(|p| p.id.clone()));
            tickets.push((*ticket).clone());
        }
        teams.push(team);
    }
    for ticket in &tickets {
        everyone.extend(ticket.players.iter());
    }
    let worst_latency_ms = session.region.and_then(|region| {
        everyone
            .iter()
            .map(|p| p.latencies.get(region))
            .try_fold(0, |worst, l| l.map(|l| worst.max(l)))
    });
    let roster = Match {
        id: MatchId::new(format!("backfill-{}", session.session)),
        queue: Name::from(""),
        created_at: now,
        teams,
        region: session.region.map(Name::from),
        collections: session.collections.clone(),
        quality: MatchQuality {
            skill_spread: None,
            team_imbalance: None,
            worst_latency_ms,
            waits_ms: Default::default(),
            expansion_steps: ExpansionSteps::new(),
        },
    };
    (roster, tickets)
}

/// The rule set with every team's minimum waived (and the expansions of minimums dropped): a running
/// session takes players into its open slots one ticket at a time.
fn without_minimums(rule_set: &RuleSet) -> RuleSet {
    let mut relaxed = rule_set.clone();
    for team in &mut relaxed.teams {
        team.min_players = 0;
    }
    relaxed
        .expansions
        .retain(|e| !matches!(e.target, ExpansionTarget::Team { .. }));
    relaxed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribute::AttributeValue;
    use proptest::prelude::*;
    use serde_json::json;

    fn rule_set(value: serde_json::Value) -> RuleSet {
        RuleSet::from_json(&value).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn duel() -> RuleSet {
        rule_set(json!({
            "name": "duel",
            "ruleLanguageVersion": "1.0",
            "playerAttributes": [{"name": "skill", "type": "number", "default": 1500}],
            "teams": [{"name": "red", "minPlayers": 1, "maxPlayers": 1}, {"name": "blue", "minPlayers": 1, "maxPlayers": 1}],
            "rules": [{"name": "fair", "type": "distance", "attribute": "skill", "maxDistance": 100}],
            "expansions": [{"target": "rules[fair].maxDistance", "steps": [{"waitTimeSeconds": 10, "value": 400}]}],
            "queue": {"timeoutSeconds": 60, "backfillMode": "AUTOMATIC"}
        }))
    }

    fn five_a_side() -> RuleSet {
        let path = format!("{}/../../examples/rulesets/ranked-5v5.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        rule_set(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}")))
    }

    fn player(id: &str, skill: f64, role: &str) -> Player {
        Player::new(id)
            .with_attribute("skill", AttributeValue::Number(skill))
            .with_attribute("roles", AttributeValue::StringList(vec![role.to_owned()]))
            .with_attribute("mode", AttributeValue::String("ranked".into()))
            .with_latency("eu", 30)
    }

    fn ticket(id: &str, at_ms: u64, players: Vec<Player>) -> Ticket {
        let mut t = Ticket::queued(id, "q", players, Timestamp(at_ms));
        t.status = TicketStatus::Searching;
        t
    }

    fn solo(id: &str, at_ms: u64, skill: f64) -> Ticket {
        ticket(id, at_ms, vec![player(&format!("p-{id}"), skill, "dps")])
    }

    fn team(name: &str, players: Vec<Player>, open: u32) -> SeatedTeam {
        SeatedTeam {
            name: name.into(),
            players,
            open,
        }
    }

    fn open<'a>(teams: &'a [SeatedTeam], collections: &'a BTreeMap<String, Vec<String>>) -> OpenSession<'a> {
        OpenSession {
            session: "s-1",
            teams,
            region: Some("eu"),
            collections,
        }
    }

    fn picked(fill: &Option<Fill>) -> Vec<Vec<&str>> {
        fill.as_ref()
            .map(|f| {
                f.teams
                    .iter()
                    .map(|t| t.iter().map(TicketId::as_str).collect())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_oldest_ticket_that_fits_takes_the_open_slot() {
        // GIVEN a duel whose blue player left, and a pool: the oldest too far in skill, then two that fit
        let none = BTreeMap::new();
        let teams = [
            team("red", vec![player("alice", 1500.0, "dps")], 0),
            team("blue", vec![], 1),
        ];
        let pool = vec![
            solo("far", 0, 1800.0),
            solo("near-2", 2, 1550.0),
            solo("near-1", 1, 1520.0),
        ];
        // WHEN backfill runs
        let fill = fill(open(&teams, &none), &pool, &duel(), Timestamp(1_000));
        // THEN the oldest that fits is seated in blue, whatever the pool's order
        assert_eq!(picked(&fill), vec![vec![], vec!["near-1"]]);
        let mut reversed = pool.clone();
        reversed.reverse();
        assert_eq!(
            super::fill(open(&teams, &none), &reversed, &duel(), Timestamp(1_000)),
            fill
        );
    }

    #[test]
    fn the_expansion_level_is_the_oldest_picked_tickets() {
        let none = BTreeMap::new();
        let teams = [
            team("red", vec![player("alice", 1500.0, "dps")], 0),
            team("blue", vec![], 1),
        ];
        let pool = vec![solo("far", 0, 1800.0)];
        // GIVEN a ticket 300 away: WHEN it has waited 5 s THEN it does not fit (limit 100)
        assert_eq!(fill(open(&teams, &none), &pool, &duel(), Timestamp(5_000)), None);
        // WHEN it has waited 10 s, THEN the expanded limit (400) lets it in
        assert_eq!(
            picked(&fill(open(&teams, &none), &pool, &duel(), Timestamp(10_000))),
            vec![vec![], vec!["far"]]
        );
        // WHEN it timed out, THEN it is not picked
        assert_eq!(fill(open(&teams, &none), &pool, &duel(), Timestamp(60_000)), None);
    }

    #[test]
    fn the_team_that_lost_its_healer_takes_a_healer_not_the_older_damage_dealer() {
        // GIVEN a 5v5 whose blue healer left
        let rules = five_a_side();
        let none = BTreeMap::new();
        let roles = ["tank", "healer", "dps", "dps", "dps"];
        let red: Vec<Player> = roles
            .iter()
            .enumerate()
            .map(|(i, r)| player(&format!("r{i}"), 1500.0, r))
            .collect();
        let blue: Vec<Player> = roles
            .iter()
            .enumerate()
            .filter(|(_, r)| **r != "healer")
            .map(|(i, r)| player(&format!("b{i}"), 1500.0, r))
            .collect();
        let teams = [team("red", red, 0), team("blue", blue, 1)];
        let pool = vec![
            ticket("dps", 0, vec![player("d", 1500.0, "dps")]),
            ticket("healer", 1, vec![player("h", 1510.0, "healer")]),
        ];
        // WHEN backfill runs THEN the healer is seated
        assert_eq!(
            picked(&fill(open(&teams, &none), &pool, &rules, Timestamp(5_000))),
            vec![vec![], vec!["healer"]]
        );
    }

    #[test]
    fn a_party_is_never_split_over_too_few_open_slots() {
        let none = BTreeMap::new();
        let teams = [
            team("red", vec![player("alice", 1500.0, "dps")], 0),
            team("blue", vec![], 1),
        ];
        let party = ticket("party", 0, vec![player("x", 1500.0, "dps"), player("y", 1500.0, "dps")]);
        assert_eq!(
            fill(
                open(&teams, &none),
                std::slice::from_ref(&party),
                &duel(),
                Timestamp(1_000)
            ),
            None
        );
        let pool = vec![party, solo("solo", 1, 1500.0)];
        assert_eq!(
            picked(&fill(open(&teams, &none), &pool, &duel(), Timestamp(1_000))),
            vec![vec![], vec!["solo"]]
        );
    }

    #[test]
    fn the_sessions_map_must_be_among_the_newcomers() {
        let rules = rule_set(json!({
            "name": "coop",
            "ruleLanguageVersion": "1.0",
            "playerAttributes": [{"name": "maps", "type": "string_list", "default": ["harbor"]}],
            "teams": [{"name": "squad", "minPlayers": 2, "maxPlayers": 2}],
            "rules": [{"name": "map", "type": "collection", "attribute": "maps", "minCount": 1}],
            "queue": {"timeoutSeconds": 60, "backfillMode": "AUTOMATIC"}
        }));
        let maps = |id: &str, at: u64, list: &[&str]| {
            let list = list.iter().map(|m| (*m).to_owned()).collect();
            ticket(
                id,
                at,
                vec![Player::new(id).with_attribute("maps", AttributeValue::StringList(list))],
            )
        };
        let seated = Player::new("alice").with_attribute(
            "maps",
            AttributeValue::StringList(vec!["harbor".into(), "summit".into()]),
        );
        let chosen = BTreeMap::from([("map".to_owned(), vec!["summit".to_owned()])]);
        let teams = [team("squad", vec![seated], 1)];
        let session = OpenSession {
            region: None,
            ..open(&teams, &chosen)
        };
        let pool = vec![maps("harbor-only", 0, &["harbor"]), maps("summit", 1, &["summit"])];
        assert_eq!(
            picked(&fill(session, &pool, &rules, Timestamp(1_000))),
            vec![vec!["summit"]]
        );
    }

    /// A 5v5 roster with `gone` players taken out of it, and a pool of solos and duos.
    fn scenario() -> impl Strategy<Value = (Vec<SeatedTeam>, Vec<Ticket>, u64)> {
        let roles = ["tank", "healer", "dps", "dps", "dps"];
        let seated = proptest::collection::vec((1400.0..1600.0f64, proptest::bool::weighted(0.25)), 10);
        let pool = proptest::collection::vec(
            (1200.0..1900.0f64, 0usize..3, 0u64..20_000, 1usize..=2, 10u32..200),
            0..40,
        );
        (seated, pool, 0u64..40_000).prop_map(move |(seated, pool, later)| {
            let mut teams = vec![team("red", vec![], 0), team("blue", vec![], 0)];
            for (i, (skill, gone)) in seated.into_iter().enumerate() {
                let t = &mut teams[i / 5];
                if gone {
                    t.open += 1;
                } else {
                    t.players.push(player(&format!("seated-{i}"), skill, roles[i % 5]));
                }
            }
            let tickets = pool
                .into_iter()
                .enumerate()
                .map(|(i, (skill, role, at, size, ping))| {
                    let players = (0..size)
                        .map(|j| {
                            let mut p = player(
                                &format!("t{i}-{j}"),
                                skill + j as f64 * 10.0,
                                ["tank", "healer", "dps"][role],
                            );
                            p.latencies.insert("eu", ping);
                            p
                        })
                        .collect();
                    ticket(&format!("t{i:02}"), at, players)
                })
                .collect();
            (teams, tickets, 20_000 + later)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn backfill_keeps_the_rules_the_parties_and_books_each_ticket_once((teams, pool, now) in scenario()) {
            let rules = five_a_side();
            let none = BTreeMap::new();
            let session = open(&teams, &none);
            let Some(fill) = fill(session, &pool, &rules, Timestamp(now)) else {
                return Ok(());
            };
            // Each ticket once, and only tickets of the pool.
            let ids: Vec<&TicketId> = fill.ticket_ids().collect();
            let unique: BTreeSet<&TicketId> = ids.iter().copied().collect();
            prop_assert_eq!(ids.len(), unique.len());
            let by_id: BTreeMap<&TicketId, &Ticket> = pool.iter().map(|t| (&t.id, t)).collect();
            let mut chosen: Vec<Vec<&Ticket>> = Vec::new();
            for (team, tickets) in teams.iter().zip(&fill.teams) {
                let tickets: Vec<&Ticket> = tickets.iter().map(|id| by_id[id]).collect();
                // Parties whole, inside the open slots.
                let players: usize = tickets.iter().map(|t| t.players.len()).sum();
                prop_assert!(players <= team.open as usize, "{} open, {} seated", team.open, players);
                chosen.push(tickets);
            }
            // The roster with them satisfies the rule set (minimums waived), at the level of the
            // oldest ticket picked: the independent check.
            prop_assert!(check(session, &chosen, &without_minimums(&rules), Timestamp(now)).is_ok());
            // And, by hand, the distance rule: the whole roster within the limit in force, a party
            // counting as its average (the rule's partyAggregation, FlexMatch's default), as it is
            // matched.
            let oldest = chosen.iter().flatten().map(|t| t.created_at.as_millis()).min().unwrap_or(now);
            let limit = match now - oldest {
                w if w >= 30_000 => 600.0,
                w if w >= 10_000 => 300.0,
                _ => 150.0,
            };
            let skill = |p: &Player| p.attributes.get("skill").and_then(AttributeValue::as_number);
            let parties = chosen.iter().flatten().filter_map(|t| {
                let members: Vec<f64> = t.players.iter().filter_map(skill).collect();
                (!members.is_empty()).then(|| members.iter().sum::<f64>() / members.len() as f64)
            });
            let skills: Vec<f64> = teams
                .iter()
                .flat_map(|t| &t.players)
                .filter_map(skill)
                .chain(parties)
                .collect();
            let spread = skills.iter().copied().fold(f64::MIN, f64::max) - skills.iter().copied().fold(f64::MAX, f64::min);
            prop_assert!(spread <= limit + 1e-6, "spread {spread} over {limit}");
        }
    }
}
