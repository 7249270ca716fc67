//! The batch matcher: one round over a pool of waiting tickets forms every match it can.
//!
//! A round is a pure function of the pool, the rule set and the time, so the same pool gives the
//! same matches on Lambda, locally and in the simulator. It goes like this:
//!
//! 1. Tickets that waited the queue's timeout are set aside; the others are read once into flat
//!    arrays (see `prepare`).
//! 2. The waiting tickets are sorted by partition (the values of the `=` rules) and skill.
//! 3. Oldest first, each ticket still unmatched *anchors* a candidate match, under the limits in
//!    force for its wait. Its neighbours in skill order are offered nearest first; each is kept if the
//!    match can still satisfy every rule with it (see `group`). Those beyond the distance limit end
//!    the walk on their side, so the walk looks at a handful of tickets, never the whole pool. A
//!    ticket in its first seconds reaches for only part of that limit (see `patience`).
//! 4. A full candidate (or one that reached its minimum when the walk ran out) is split into teams
//!    (see `teams`). If no split satisfies the rules, the newest member is dropped and the walk
//!    goes on.
//!
//! A round costs O(n log n) for two sorts plus O(n × the match size) for the walks, which also give
//! up after a run of refusals. The sorts are radix sorts of packed integer keys. In practice reading
//! the pool and building the matches cost about as much as the matching itself, and the walks' cost
//! is mostly cache misses (they visit tickets in skill order): BENCHMARKS.md has the figures.
//!
//! [`check`] verifies a match independently of all this, and the property tests hold the matcher to it.

pub mod backfill;
pub mod check;
#[cfg(test)]
mod golden;
mod group;
mod outcome;
mod plan;
mod prepare;
mod teams;
#[cfg(test)]
mod tests;

pub use outcome::{Match, MatchQuality, MatchTeam, MatchTeams, RoundOutcome, TeamMembers, Waits};
use std::sync::Arc;

use crate::ids::MatchId;
use crate::ruleset::RuleSet;
use crate::ticket::Ticket;
use crate::time::Timestamp;
use group::Group;
use plan::{Limits, Plan};
use prepare::Pool;
use std::collections::BTreeMap;
use teams::Splitter;

/// How a round chooses the tickets that join an anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pairing {
    /// The nearest in skill first: the matcher.
    #[default]
    ClosestSkill,
    /// The earliest arrivals first, skill only needing to be within the rules: first come, first
    /// served, the baseline the simulator compares the matcher with.
    ArrivalOrder,
}

/// Tickets offered to one anchor at most, in skill order: beyond this a pool is so crowded with
/// tickets that cannot join (other regions, missing roles) that waiting a round is cheaper.
const SKILL_WALK_LIMIT: usize = 1_000;
/// Tickets offered to one anchor at most, in arrival order, where the walk has no skill bound.
const ARRIVAL_WALK_LIMIT: usize = 4_096;
/// An anchor gives up for the round after this many tickets in a row (plus 8 per player of a
/// match) could not join: the rest of its walk would almost surely refuse too, and a crowded pool
/// of tickets that cannot match (too few healers, say) would otherwise cost a full walk each.
const REFUSALS_IN_A_ROW: usize = 64;
/// Full candidates that may fail to split into teams before the anchor gives up for this round.
const SPLIT_ATTEMPTS: usize = 4;
/// How long a new ticket holds out for a closer match than its rules allow (see [`patience`]).
const PATIENCE_MS: u64 = 3_000;
/// How often a pool is looked at again while a ticket's patience grows.
const PATIENCE_RECHECK_MS: u64 = 1_000;
/// The share of the distance limit a ticket accepts the moment it arrives.
const EAGER_SHARE: f64 = 0.25;

/// The share of the first distance rule's limit a ticket that waited `waited_ms` reaches for.
///
/// A ticket that has just arrived only takes an opponent within a quarter of the limit; the share
/// grows to the whole limit over its first seconds. Arrivals keep coming meanwhile, so the wait
/// usually buys a much closer match for a second or two: this, more than anything, is why the
/// matcher's matches are closer than first come, first served. The rule set's own limits and
/// expansions still bound everything.
fn patience(waited_ms: u64) -> f64 {
    let grown = waited_ms.min(PATIENCE_MS) as f64 / PATIENCE_MS as f64;
    EAGER_SHARE + (1.0 - EAGER_SHARE) * grown
}

/// Marks the end of a chain.
const NIL: u32 = u32::MAX;

/// Runs one round of the matcher over `pool` at `now`, pairing by closest skill.
pub fn round(pool: &[Ticket], rule_set: &RuleSet, now: Timestamp) -> RoundOutcome {
    round_with(pool, rule_set, now, Pairing::ClosestSkill)
}

/// Runs one round, choosing who joins each anchor by `pairing`.
pub fn round_with(tickets: &[Ticket], rule_set: &RuleSet, now: Timestamp, pairing: Pairing) -> RoundOutcome {
    let plan = Plan::new(rule_set);
    let now_ms = now.as_millis();
    let mut pool = Pool::new(tickets, &plan, now_ms);
    let n = pool.len();

    // Age order: created_at, then id, so ties never depend on the pool's order. Sorting plain
    // integers first and comparing ids only within runs of equal times keeps the sort cache-friendly.
    // Each (time, entry) pair is packed into one integer of the same order, and the integers are
    // radix sorted: keys are distinct, so the order is the one a comparison sort gives, and the
    // bytes every key shares cost nothing. Times are taken from the oldest, so that a pool
    // spanning less than 49 days (any real one) packs into a u64, half the bytes to move.
    let oldest_ms = pool.entries.iter().map(|e| e.created_at).min().unwrap_or(0);
    let span_ms = pool.entries.iter().map(|e| e.created_at - oldest_ms).max().unwrap_or(0);
    let mut by_age: Vec<u32> = if span_ms <= u64::from(u32::MAX) {
        let mut keyed: Vec<u64> = (0..n)
            .map(|e| ((pool.entries[e].created_at - oldest_ms) << 32) | u64::from(u32_of(e)))
            .collect();
        // The keys are made in entry order and the sort is stable, so sorting on the time alone
        // gives the order of the whole key, without passes over the entry's bytes.
        radsort::sort_by_key(&mut keyed, |&k| k >> 32);
        let mut by_age: Vec<u32> = keyed.iter().map(|&k| k as u32).collect();
        order_ties_by_id(&mut by_age, |i| keyed[i] >> 32, &pool);
        by_age
    } else {
        let mut keyed: Vec<u128> = (0..n)
            .map(|e| (u128::from(pool.entries[e].created_at) << 32) | u128::from(u32_of(e)))
            .collect();
        radsort::sort(&mut keyed);
        let mut by_age: Vec<u32> = keyed.iter().map(|&k| k as u32).collect();
        order_ties_by_id(&mut by_age, |i| (keyed[i] >> 32) as u64, &pool);
        by_age
    };

    let mut fate = vec![Fate::Waiting; n];
    for (e, f) in fate.iter_mut().enumerate() {
        if pool.waited(e) >= plan.timeout_ms {
            *f = Fate::TimedOut;
        }
    }
    let candidates = by_age
        .iter()
        .enumerate()
        .filter(|&(_, &e)| fate[e as usize] == Fate::Waiting && pool.entries[e as usize].matchable);
    // The entries the walks step through, in the pairing's order.
    let walked: Vec<u32> = match pairing {
        Pairing::ClosestSkill if plan.equal.is_empty() => {
            // Without `=` rules every ticket is in partition 0, and the order is (skill, age rank).
            // The candidates come in age order and the radix sort is stable, so sorting by skill
            // alone leaves equal skills in age order: half the passes of sorting the packed key
            // below (the age rank's bytes are not sorted on), each moving the same 16 bytes.
            let mut order: Vec<(u64, u32)> = candidates
                .map(|(rank, &e)| (sortable(pool.sort_key(e as usize)), u32_of(rank)))
                .collect();
            radsort::sort_by_key(&mut order, |&(skill, _)| skill);
            order.iter().map(|&(_, rank)| by_age[rank as usize]).collect()
        }
        Pairing::ClosestSkill => {
            // (partition, skill, age rank) packed into one integer of the same order, as above.
            let mut order: Vec<u128> = candidates
                .map(|(rank, &e)| {
                    (u128::from(pool.entries[e as usize].partition) << 96)
                        | (u128::from(sortable(pool.sort_key(e as usize))) << 32)
                        | u128::from(u32_of(rank))
                })
                .collect();
            radsort::sort(&mut order);
            order.iter().map(|&k| by_age[k as u32 as usize]).collect()
        }
        Pairing::ArrivalOrder => {
            let mut order: Vec<u64> = candidates
                .map(|(rank, &e)| (u64::from(pool.entries[e as usize].partition) << 32) | u64::from(u32_of(rank)))
                .collect();
            radsort::sort(&mut order);
            order.iter().map(|&k| by_age[k as u32 as usize]).collect()
        }
    };
    // From here on entries are numbered in walk order (the rest after them, oldest first), so a
    // walk reads neighbouring memory. Only numbering changes: every decision below depends on
    // values and age ranks, never on an entry's number.
    let walked_len = walked.len();
    let mut renumbered = walked;
    let mut walked_mark = vec![false; n];
    for &e in &renumbered {
        walked_mark[e as usize] = true;
    }
    renumbered.extend(by_age.iter().copied().filter(|&e| !walked_mark[e as usize]));
    drop(walked_mark);
    let mut new_of = vec![0u32; n];
    for (new, &old) in renumbered.iter().enumerate() {
        new_of[old as usize] = u32_of(new);
    }
    pool.renumber(&renumbered);
    let fate: Vec<Fate> = renumbered.iter().map(|&old| fate[old as usize]).collect();
    let mut fate = fate;
    for e in &mut by_age {
        *e = new_of[*e as usize];
    }
    drop(new_of);
    drop(renumbered);
    let mut chain = Chain::new(n, 0..u32_of(walked_len));
    let mut age_rank = vec![0u32; n];
    for (rank, &e) in by_age.iter().enumerate() {
        age_rank[e as usize] = u32_of(rank);
    }

    let mut group = Group::new(&plan, &pool);
    let mut splitter = Splitter::default();
    // Sized for a pool of solo tickets that all match, so that in the usual case neither grows
    // (and copies itself) in the loop.
    let mut formed: Vec<Formed> = Vec::with_capacity(n / plan.max_players.max(1) as usize + 1);
    let mut formed_members: Vec<(u32, u32)> = Vec::with_capacity(n);
    for &anchor in &by_age {
        if fate[anchor as usize] != Fate::Waiting || !chain.contains(anchor) {
            continue;
        }
        let limits = plan.limits(pool.waited(anchor as usize));
        group.clear();
        if !group.offer(anchor, &plan, &pool, limits) {
            continue;
        }
        let walk = Walk::new(&chain, &pool, &plan, limits, &age_rank, anchor, pairing);
        let Some(imbalance) = grow(&mut group, &mut splitter, walk, &plan, &pool, limits) else {
            continue;
        };
        formed.push(decide(
            imbalance,
            splitter.team_of(),
            &group,
            &plan,
            &pool,
            limits,
            &age_rank,
            &mut formed_members,
        ));
        for &m in &group.members {
            fate[m as usize] = Fate::Matched;
            chain.unlink(m);
        }
    }

    // Every decision is made: move the ids into the outcome instead of cloning them.
    let mut ids = pool.take_ids();
    // Each match's id, `m-<now>-<oldest ticket>`, written for all the matches first, into one
    // string: the oldest tickets' ids are read at random, and in a loop this short the processor
    // overlaps those cache misses, which it could not inside `build_match`.
    let id_prefix = format!("m-{now_ms}-");
    let mut match_ids = String::with_capacity(formed.len() * (id_prefix.len() + 16));
    let mut match_id_ends = Vec::with_capacity(formed.len());
    for f in &formed {
        let oldest = formed_members[f.members.clone()]
            .first()
            .map_or(0, |&(e, _)| e as usize);
        match_ids.push_str(&id_prefix);
        match_ids.push_str(ids.peek_ticket(oldest, &pool));
        match_id_ends.push(match_ids.len());
    }
    // Region names are shared by the round's matches: one string per region, not per match.
    let regions: Vec<Arc<str>> = pool.regions.iter().map(|&r| Arc::from(r)).collect();
    // Sized once: collected from an iterator that gives no size, 50k matches of about 300 bytes
    // grew by doubling, and each growth copied all of them (about 30 MB of copying at 100k).
    let mut matches = Vec::with_capacity(formed.len());
    let mut start = 0;
    for (f, &end) in formed.into_iter().zip(&match_id_ends) {
        let id = &match_ids[start..end];
        start = end;
        matches.push(build_match(
            f,
            id,
            &formed_members,
            &plan,
            &pool,
            &regions,
            &mut ids,
            now,
        ));
    }

    // Sized for the same reason: every ticket not matched is in one of the two.
    let unmatched = fate.iter().filter(|&&f| f != Fate::Matched).count();
    let timed_out_count = fate.iter().filter(|&&f| f == Fate::TimedOut).count();
    let mut timed_out = Vec::with_capacity(timed_out_count);
    let mut remaining = Vec::with_capacity(unmatched - timed_out_count);
    let mut next_change: Option<u64> = None;
    for &e in &by_age {
        let e = e as usize;
        match fate[e] {
            Fate::TimedOut => timed_out.push(ids.ticket(e, &pool)),
            Fate::Waiting => {
                remaining.push(ids.ticket(e, &pool));
                let w = pool.waited(e);
                let timeout = plan.timeout_ms - w.min(plan.timeout_ms);
                let mut due = plan.next_loosening_after(w).map_or(timeout, |d| d.min(timeout));
                // Patience loosens continuously over a ticket's first seconds: look again within a
                // second while it does, or a pool with no arrivals would wait for its next
                // expansion step although a match is already within reach.
                if w < PATIENCE_MS {
                    due = due.min((PATIENCE_MS - w).min(PATIENCE_RECHECK_MS));
                }
                next_change = Some(next_change.map_or(due, |n| n.min(due)));
            }
            Fate::Matched => {}
        }
    }
    RoundOutcome {
        matches,
        timed_out,
        remaining,
        next_change_at: next_change.map(|d| Timestamp(now_ms.saturating_add(d))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Waiting,
    TimedOut,
    Matched,
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Orders each run of tickets created in the same millisecond by id, so that ties never depend
/// on the pool's order. `by_age` is sorted by time already, and `time(i)` is the time of its `i`th
/// entry (or that time less a constant): read from the sorted keys, in order, rather than from
/// each entry, at random.
fn order_ties_by_id(by_age: &mut [u32], time: impl Fn(usize) -> u64, pool: &Pool) {
    let mut start = 0;
    for i in 1..=by_age.len() {
        if i == by_age.len() || time(i) != time(start) {
            if i - start > 1 {
                by_age[start..i].sort_unstable_by(|&a, &b| pool.cmp_ticket_ids(a as usize, b as usize));
            }
            start = i;
        }
    }
}

/// Maps a float to an integer with the same order, so sorting compares integers.
fn sortable(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Offers the walk's tickets to the anchor's group until it forms a match; returns its team split.
fn grow(
    group: &mut Group,
    splitter: &mut Splitter,
    mut walk: Walk,
    plan: &Plan,
    pool: &Pool,
    limits: &Limits,
) -> Option<f64> {
    let mut failed_splits = 0;
    let mut refusals = 0;
    let patience_for_refusals = REFUSALS_IN_A_ROW + 8 * plan.max_players as usize;
    loop {
        if group.players == plan.max_players {
            if let Some(split) = finish(group, splitter, plan, pool, limits) {
                return Some(split);
            }
            failed_splits += 1;
            if failed_splits >= SPLIT_ATTEMPTS || group.members.len() < 2 {
                return None;
            }
            // The newest member spoilt the split: look on without it.
            let kept: Vec<u32> = group.members[..group.members.len() - 1].to_vec();
            group.rebuild(&kept, plan, pool, limits);
            continue;
        }
        let Some(candidate) = walk.next(pool) else { break };
        if group.offer(candidate, plan, pool, limits) {
            refusals = 0;
        } else {
            refusals += 1;
            if refusals > patience_for_refusals {
                break;
            }
        }
    }
    // The walk ran out before the match was full: it may still start short, at its minimum.
    (group.players >= plan.min_players(limits).max(1))
        .then(|| finish(group, splitter, plan, pool, limits))
        .flatten()
}

/// Splits a complete candidate into teams, if it can be; returns the split's imbalance.
fn finish(group: &Group, splitter: &mut Splitter, plan: &Plan, pool: &Pool, limits: &Limits) -> Option<f64> {
    if !group.roles_complete() {
        return None;
    }
    splitter.split(plan, pool, limits, &group.members)
}

/// A doubly linked list over the waiting tickets in some order, from which matched tickets are
/// unlinked, so a walk steps over them in O(1).
#[derive(Debug)]
struct Chain {
    prev: Vec<u32>,
    next: Vec<u32>,
    /// Whether each entry is linked.
    linked: Vec<bool>,
}

impl Chain {
    fn new(n: usize, order: impl Iterator<Item = u32>) -> Self {
        let mut chain = Chain {
            prev: vec![NIL; n],
            next: vec![NIL; n],
            linked: vec![false; n],
        };
        let mut last = NIL;
        for e in order {
            chain.linked[e as usize] = true;
            chain.prev[e as usize] = last;
            if last != NIL {
                chain.next[last as usize] = e;
            }
            last = e;
        }
        chain
    }

    fn contains(&self, e: u32) -> bool {
        self.linked[e as usize]
    }

    fn unlink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        if p != NIL {
            self.next[p as usize] = n;
        }
        if n != NIL {
            self.prev[n as usize] = p;
        }
        self.linked[e as usize] = false;
    }
}

/// The tickets offered to one anchor, in the order the pairing wants them.
struct Walk<'c> {
    chain: &'c Chain,
    age_rank: &'c [u32],
    pairing: Pairing,
    partition: u32,
    key: f64,
    /// How far from the anchor's key a ticket may be: the first distance rule's limit.
    reach: f64,
    left: u32,
    right: u32,
    offered: usize,
}

impl<'c> Walk<'c> {
    fn new(
        chain: &'c Chain,
        pool: &Pool,
        plan: &Plan,
        limits: &Limits,
        age_rank: &'c [u32],
        anchor: u32,
        pairing: Pairing,
    ) -> Self {
        let reach = match (pairing, plan.distance.is_empty()) {
            (Pairing::ClosestSkill, false) => limits.max_distance[0] * patience(pool.waited(anchor as usize)),
            _ => f64::INFINITY,
        };
        Walk {
            chain,
            age_rank,
            pairing,
            partition: pool.entries[anchor as usize].partition,
            key: pool.sort_key(anchor as usize),
            reach,
            left: match pairing {
                Pairing::ClosestSkill => chain.prev[anchor as usize],
                Pairing::ArrivalOrder => NIL,
            },
            right: chain.next[anchor as usize],
            offered: 0,
        }
    }

    /// The next ticket to offer, or `None` when the walk is over.
    fn next(&mut self, pool: &Pool) -> Option<u32> {
        let limit = match self.pairing {
            Pairing::ClosestSkill => SKILL_WALK_LIMIT,
            Pairing::ArrivalOrder => ARRIVAL_WALK_LIMIT,
        };
        if self.offered >= limit {
            return None;
        }
        // A side ends at the partition's edge or, walking by skill, past the distance limit: from
        // there on every ticket is farther still.
        let gap = |e: u32| {
            if e == NIL || pool.entries[e as usize].partition != self.partition {
                return None;
            }
            let d = (pool.sort_key(e as usize) - self.key).abs();
            (d <= self.reach).then_some(d)
        };
        let (l, r) = (gap(self.left), gap(self.right));
        let take_left = match (l, r) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            // Equally near: the one who has waited longer.
            (Some(dl), Some(dr)) => {
                dl < dr || (dl == dr && self.age_rank[self.left as usize] < self.age_rank[self.right as usize])
            }
        };
        self.offered += 1;
        let chosen = if take_left { self.left } else { self.right };
        if take_left {
            self.left = self.chain.prev[chosen as usize];
        } else {
            self.right = self.chain.next[chosen as usize];
        }
        Some(chosen)
    }
}

/// A match decided in the first pass. It is built into a [`Match`] after the last decision, so
/// that the ids it needs can be moved out of the pool rather than cloned.
struct Formed {
    /// Its members' range of `formed_members`: (entry, team slot), oldest first.
    members: std::ops::Range<usize>,
    imbalance: Option<f64>,
    region: Option<(usize, u32)>,
    collections: BTreeMap<String, Vec<String>>,
    spread: Option<f64>,
    /// The wait of the match's oldest ticket, which sets the expansion level in force.
    oldest_wait_ms: u64,
}

/// Records what the match of `group` is, split into teams by `team_of`.
#[allow(clippy::too_many_arguments)]
fn decide(
    imbalance: f64,
    team_of: &[usize],
    group: &Group,
    plan: &Plan,
    pool: &Pool,
    limits: &Limits,
    age_rank: &[u32],
    formed_members: &mut Vec<(u32, u32)>,
) -> Formed {
    let start = formed_members.len();
    formed_members.extend(group.members.iter().zip(team_of).map(|(&e, &t)| (e, u32_of(t))));
    formed_members[start..].sort_unstable_by_key(|&(e, _)| age_rank[e as usize]);
    let oldest = formed_members[start].0 as usize;

    let anchor = pool.ticket(group.members[0] as usize);
    let collections = plan
        .collection
        .iter()
        .enumerate()
        .map(|(c, (rule, attribute))| {
            let common: Vec<&str> = group.common()[c].iter().map(|&id| pool.string(id)).collect();
            (
                rule.to_string(),
                choose(anchor, plan, attribute, &common, limits.min_count[c] as usize),
            )
        })
        .collect();
    let spread = plan.skill.map(|_| {
        let (lo, hi) = group
            .members
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &m| {
                let e = &pool.entries[m as usize];
                (lo.min(e.skill_lo), hi.max(e.skill_hi))
            });
        hi - lo
    });
    Formed {
        members: start..formed_members.len(),
        imbalance: (!plan.balance_columns.is_empty()).then_some(imbalance),
        region: group.best_region(),
        collections,
        spread,
        oldest_wait_ms: pool.waited(oldest),
    }
}

/// Builds the match the round reports from what was decided.
///
/// Names and the expansion level are shared, and a duel's lists are inline, so a 1v1 match costs
/// one allocation: its id.
#[allow(clippy::too_many_arguments)]
fn build_match(
    formed: Formed,
    id: &str,
    formed_members: &[(u32, u32)],
    plan: &Plan,
    pool: &Pool,
    regions: &[Arc<str>],
    ids: &mut prepare::Ids,
    now: Timestamp,
) -> Match {
    let members = &formed_members[formed.members.clone()];
    let match_id = MatchId::from(id);
    let mut waits_ms = Waits::with_capacity(members.len());
    let mut teams = MatchTeams::with_capacity(plan.slot_names.len());
    for (t, name) in plan.slot_names.iter().enumerate() {
        let mut team = MatchTeam {
            name: Arc::clone(name),
            tickets: TeamMembers::new(),
            players: TeamMembers::new(),
        };
        for &(e, _) in members.iter().filter(|&&(_, team)| team as usize == t) {
            let e = e as usize;
            team.tickets.push(ids.ticket(e, pool));
            team.players.extend(ids.players(e, pool));
            waits_ms.push(pool.waited(e));
        }
        teams.push(team);
    }
    Match {
        id: match_id,
        queue: Arc::clone(&plan.queue),
        created_at: now,
        teams,
        region: formed.region.map(|(r, _)| Arc::clone(&regions[r])),
        collections: formed.collections,
        quality: MatchQuality {
            skill_spread: formed.spread,
            team_imbalance: formed.imbalance,
            worst_latency_ms: formed.region.map(|(_, ms)| ms),
            waits_ms,
            expansion_steps: Arc::clone(&plan.limits(formed.oldest_wait_ms).steps_applied),
        },
    }
}

/// Picks `count` of the `common` values, in the order the anchor's first player listed them: the
/// oldest ticket's preference decides (its map, its mode).
fn choose(anchor: &Ticket, plan: &Plan, attribute: &str, common: &[&str], count: usize) -> Vec<String> {
    let default = plan.rule_set.attribute(attribute).and_then(|a| a.default.as_ref());
    let listed = anchor
        .players
        .first()
        .and_then(|p| p.attributes.get(attribute))
        .and_then(|v| v.as_string_list())
        .or(default.and_then(|d| d.as_string_list()))
        .unwrap_or(&[]);
    let mut chosen: Vec<String> = Vec::with_capacity(count);
    // The anchor's own order first; `common` (every player's values) backs it up.
    for value in listed.iter().map(String::as_str).chain(common.iter().copied()) {
        if chosen.len() == count {
            break;
        }
        if common.contains(&value) && !chosen.iter().any(|c| c == value) {
            chosen.push(value.to_owned());
        }
    }
    chosen
}
