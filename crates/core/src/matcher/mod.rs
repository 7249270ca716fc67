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
//! A duel's rule set (two teams of one, and only distance, latency, `=` and team-balance rules)
//! takes the same steps with a `Pair` in place of the group: the same rule functions and the same
//! split, without the summaries, lists and scratch a match of any size needs; its matches are
//! built whole. A test holds it to the general path on random duels.
//!
//! A round costs O(n log n) for two sorts plus O(n × the match size) for the walks, which also give
//! up after a run of refusals. The sorts are radix sorts of packed integer keys. In practice reading
//! the pool and building the matches cost about as much as the matching itself, and the walks' cost
//! is mostly cache misses (anchors come in age order, at random in skill order), so the memory of
//! the anchor a few places on is prefetched while this one is worked on. A round's working vectors
//! are kept on its thread for the next round (see `recycle`). BENCHMARKS.md has the figures.
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
mod recycle;
mod teams;
#[cfg(test)]
mod tests;

pub use outcome::{ExpansionSteps, Match, MatchQuality, MatchTeam, MatchTeams, Name, RoundOutcome, TeamMembers, Waits};

use crate::ids::{MatchId, PlayerId, TicketId};
use crate::ruleset::{ExpansionTarget, RuleSet};
use crate::ticket::Ticket;
use crate::time::Timestamp;
use group::{skill_spread, Group, Pair};
use plan::{Limits, Plan};
use prefetch_index::prefetch_index;
use prepare::{Pool, OUT_OF_WALKS};
use recycle::{recyclable, Buf};
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

/// The share of the first distance rule's limit a ticket that waited `waited_ms` reaches for, in a
/// queue whose tickets time out after `timeout_ms`.
///
/// A ticket that has just arrived only takes an opponent within a quarter of the limit; the share
/// grows to the whole limit over its first seconds ([`patience_ms`]). Arrivals keep coming
/// meanwhile, so the wait usually buys a much closer match for a second or two: this, more than
/// anything, is why the matcher's matches are closer than first come, first served. The rule set's
/// own limits and expansions still bound everything.
fn patience(waited_ms: u64, timeout_ms: u64) -> f64 {
    let span = patience_ms(timeout_ms);
    if waited_ms >= span {
        return 1.0;
    }
    EAGER_SHARE + (1.0 - EAGER_SHARE) * waited_ms as f64 / span as f64
}

/// How long a ticket's patience grows: [`PATIENCE_MS`], but never so long that the ticket reaches its
/// whole limit with fewer than two looks at the pool left before it times out. In a queue of short
/// timeouts a patient ticket would time out where first come, first served matched it (a 2 s
/// timeout timed out twice as many); there the ticket takes the whole limit at once.
fn patience_ms(timeout_ms: u64) -> u64 {
    PATIENCE_MS.min(timeout_ms.saturating_sub(2 * PATIENCE_RECHECK_MS))
}

/// How many anchors ahead [`form`] asks for an anchor's memory: enough for it to arrive from memory
/// while the anchors before it are worked on.
const ANCHORS_AHEAD: usize = 8;

/// How many duels ahead [`build_duels`] asks for a duel's ids.
const DUELS_AHEAD: usize = 8;

/// Marks the end of a chain.
const NIL: u32 = u32::MAX;

/// Runs one round of the matcher over `pool` at `now`, pairing by closest skill.
pub fn round(pool: &[Ticket], rule_set: &RuleSet, now: Timestamp) -> RoundOutcome {
    round_with(pool, rule_set, now, Pairing::ClosestSkill)
}

/// Runs one round, choosing who joins each anchor by `pairing`.
// Never inlined, though it is a call: profiles count the round by this name (see BENCHMARKS.md).
#[inline(never)]
pub fn round_with(tickets: &[Ticket], rule_set: &RuleSet, now: Timestamp, pairing: Pairing) -> RoundOutcome {
    round_by(tickets, rule_set, now, pairing, Paths::Fastest)
}

/// The code that reads the pool and forms a round's matches: a solo ticket may be read by a path of
/// its own, and a duel's rule set may form its matches by one; the tests hold both to the general
/// path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Paths {
    /// The plain solos' reading (see `prepare::Reader::plain_solos`), the duel path (see
    /// [`duels_only`]) where they apply, no team search or draft for a candidate no split can serve
    /// and no candidate gathered for an anchor no split can take (see
    /// `teams::Splitter::shortcuts`), two teams split by a search of their own (see
    /// `teams::TwoTeams`), and a failed candidate's newest member undone rather than the candidate
    /// rebuilt (see `group::Group::drop_newest`).
    Fastest,
    /// The general paths for every ticket and rule set.
    #[cfg_attr(not(test), allow(dead_code))]
    General,
}

// Each phase of a round is a function of its own, never inlined (each is called once a round), so
// that a profile shows what each costs by name.
fn round_by(tickets: &[Ticket], rule_set: &RuleSet, now: Timestamp, pairing: Pairing, paths: Paths) -> RoundOutcome {
    let plan = Plan::new(rule_set);
    let now_ms = now.as_millis();
    let mut pool = Pool::new(tickets, &plan, now_ms, paths);
    let by_age = age_order(&pool);
    let walked = walk_order(&pool, &plan, &by_age, pairing);
    let by_age = renumber(&mut pool, &walked, &by_age);
    // Each walked entry now has its age rank (see `renumber`): walks break ties by it, and a
    // match's oldest ticket has the lowest. It is kept in the entries, which the walks read anyway.
    let walked = walked.len();
    // The walks' tickets are linked until they match: the others timed out or cannot match.
    let mut chain = Chain::new(pool.len(), 0..u32_of(walked));
    // The ids are moved into the outcome instead of cloned: no decision reads them.
    let ids = pool.take_ids();
    let round = Round {
        plan: &plan,
        pool: &pool,
        by_age: &by_age,
        walked,
        pairing,
        now,
        paths,
    };
    let (matches, ids) = if paths == Paths::Fastest && duels_only(&plan) {
        let duels = form_duels(&round, &mut chain);
        build_duels(&round, duels, ids)
    } else {
        let (formed, formed_members) = form_groups(&round, &mut chain);
        build_matches(&round, formed, &formed_members, ids)
    };
    let (timed_out, remaining, next_change_at) = the_rest(&round, &chain, ids);
    RoundOutcome {
        matches,
        timed_out,
        remaining,
        next_change_at,
    }
}

/// What every phase after the renumbering reads.
struct Round<'r, 'a> {
    plan: &'r Plan<'a>,
    pool: &'r Pool<'a>,
    /// Entries, oldest first.
    by_age: &'r [u32],
    /// How many entries the walks take: the first ones (see `renumber`).
    walked: usize,
    pairing: Pairing,
    now: Timestamp,
    paths: Paths,
}

/// The entries, oldest first: by created_at, then id, so ties never depend on the pool's order.
///
/// Sorting plain integers first and comparing ids only within runs of equal times keeps the sort
/// cache-friendly. Each (time, entry) pair is packed into one integer of the same order, and the
/// integers are radix sorted: keys are distinct, so the order is the one a comparison sort gives,
/// and the bytes every key shares cost nothing. Times are taken from the oldest, so that a pool
/// spanning less than 49 days (any real one) packs into a u64, half the bytes to move. A pool
/// given in id order, whose ties need no ids compared, is counted instead when its times are
/// dense enough (see [`by_counting`]).
#[inline(never)]
fn age_order(pool: &Pool) -> Buf<u32> {
    let n = pool.len();
    let (oldest_ms, newest_ms) = pool.created_range;
    let span_ms = newest_ms.saturating_sub(oldest_ms);
    // A pool given in id order (as the store reads it) sorts its ties by id already: the keys are
    // made in entry order and the sorts are stable.
    let in_id_order = (1..n).all(|e| pool.cmp_ticket_ids(e - 1, e).is_lt());
    if in_id_order && span_ms < 8 * n as u64 + 1_024 {
        return by_counting(pool, oldest_ms, span_ms as usize);
    }
    if span_ms <= u64::from(u32::MAX) {
        let mut keyed: Buf<u64> = (0..n)
            .map(|e| ((pool.created[e] - oldest_ms) << 32) | u64::from(u32_of(e)))
            .collect();
        // Sorting on the time alone gives the order of the whole key, without passes over the
        // entry's bytes; the time fits 32 bits, and a key of 32 bits counts half the digits.
        radsort::sort_by_key(&mut keyed, |&k| (k >> 32) as u32);
        let mut by_age: Buf<u32> = keyed.iter().map(|&k| k as u32).collect();
        if !in_id_order {
            order_ties_by_id(&mut by_age, |i| keyed[i] >> 32, pool);
        }
        by_age
    } else {
        let mut keyed: Buf<u128> = (0..n)
            .map(|e| (u128::from(pool.created[e]) << 32) | u128::from(u32_of(e)))
            .collect();
        radsort::sort(&mut keyed);
        let mut by_age: Buf<u32> = keyed.iter().map(|&k| k as u32).collect();
        if !in_id_order {
            order_ties_by_id(&mut by_age, |i| (keyed[i] >> 32) as u64, pool);
        }
        by_age
    }
}

/// [`age_order`] for a pool in id order whose times span few milliseconds for its size (a minute
/// of 100k tickets): a counting sort. One pass counts each millisecond's tickets, one places them,
/// in entry order within a millisecond, which is id order. The radix sort made the packed keys,
/// counted them and moved them twice or three times.
fn by_counting(pool: &Pool, oldest_ms: u64, span_ms: usize) -> Buf<u32> {
    let at = |created: u64| (created - oldest_ms) as usize;
    // `starts[t]`: how many entries are older than `t` ms after the oldest, then where the next
    // of time `t` goes.
    let mut starts: Buf<u32> = Buf::filled(0, span_ms + 2);
    for &created in pool.created.iter() {
        starts[at(created) + 1] += 1;
    }
    let mut older = 0;
    for start in starts.iter_mut() {
        older += *start;
        *start = older;
    }
    let mut by_age: Buf<u32> = Buf::filled(0, pool.len());
    for (e, &created) in pool.created.iter().enumerate() {
        let slot = &mut starts[at(created)];
        by_age[*slot as usize] = u32_of(e);
        *slot += 1;
    }
    by_age
}

/// The age ranks of the tickets that may match (neither timed out nor unmatchable), in the order
/// the walks step through them: by partition, then skill (or arrival, as `pairing` says), then age.
#[inline(never)]
fn walk_order(pool: &Pool, plan: &Plan, by_age: &[u32], pairing: Pairing) -> Buf<u32> {
    // Whether a walk takes the entry: it may match, and has not timed out (see `Pool::walk_keys`).
    let may_match = |e: usize| pool.walk_keys[e] != OUT_OF_WALKS;
    let candidates = by_age.iter().enumerate().filter(|&(_, &e)| may_match(e as usize));
    match pairing {
        Pairing::ClosestSkill if plan.equal.is_empty() => by_skill(&pool.walk_keys, pool.walk_key_bits, by_age),
        Pairing::ClosestSkill => {
            // (partition, skill, age rank) packed into one integer of the same order, sorted whole.
            let mut order = Buf::collect_at_most(
                by_age.len(),
                candidates.map(|(rank, &e)| {
                    (u128::from(pool.entries[e as usize].partition) << 96)
                        | (u128::from(pool.walk_keys[e as usize]) << 32)
                        | u128::from(u32_of(rank))
                }),
            );
            radsort::sort(&mut order);
            order.iter().map(|&k| k as u32).collect()
        }
        Pairing::ArrivalOrder => {
            let mut order = Buf::collect_at_most(
                by_age.len(),
                candidates
                    .map(|(rank, &e)| (u64::from(pool.entries[e as usize].partition) << 32) | u64::from(u32_of(rank))),
            );
            radsort::sort(&mut order);
            order.iter().map(|&k| k as u32).collect()
        }
    }
}

/// [`walk_order`] without `=` rules, where every ticket is in partition 0: the walked entries' age
/// ranks by skill, then age. `keys` are the entries' walk keys (see `Pool::walk_keys`), and
/// `key_bits` their AND and OR.
///
/// Each walked entry is sorted as one integer, its age rank below 32 bits of its skill key: the
/// bits that tell the keys apart (those every key shares, at either end, say nothing). The
/// candidates come in age order and the radix sort is stable, so equal skills stay in age order
/// without sorting on the rank. When the keys differ in more than 32 bits, the top 32 of those
/// order them up to ties, and each run of tied entries is then sorted by its whole keys.
///
/// Sorting the whole keys beside the ranks moved 16 bytes an entry in up to eight passes; this
/// moves 8 in four at most. The keys are the pool's, made while reading (see `Pool::walk_keys`):
/// read in age order, the entries themselves were a cache miss each, where the keys are a quarter
/// of their size.
fn by_skill(keys: &[u64], (and, or): (u64, u64), by_age: &[u32]) -> Buf<u32> {
    let key_of = |rank: u32| keys[by_age[rank as usize] as usize];
    let differ = and ^ or;
    // The bits below `low` and from `high` up are the same in every key.
    let (high, low) = (64 - differ.leading_zeros(), differ.trailing_zeros().min(64));
    let exact = high.saturating_sub(low) <= 32;
    let shift = if exact { low } else { high - 32 };
    let mut order = Buf::collect_at_most(
        by_age.len(),
        by_age
            .iter()
            .zip(0u32..)
            .filter(|&(&e, _)| keys[e as usize] != OUT_OF_WALKS)
            .map(|(&e, rank)| (u64::from(skill_bits(keys[e as usize], shift)) << 32) | u64::from(rank)),
    );
    radsort::sort_by_key(&mut order, |&k| (k >> 32) as u32);
    if !exact {
        // Stable: equal keys stay in age order.
        sort_runs(
            &mut order,
            |_, &k| k >> 32,
            |run| run.sort_by_key(|&k| key_of(k as u32)),
        );
    }
    order.iter().map(|&k| k as u32).collect()
}

/// The 32 bits of a walk key from bit `shift` (see [`by_skill`]).
fn skill_bits(key: u64, shift: u32) -> u32 {
    (key.checked_shr(shift).unwrap_or(0) & u64::from(u32::MAX)) as u32
}

/// Numbers the entries in walk order, the rest after them, oldest first, so that a walk reads
/// neighbouring memory; returns the new numbers, oldest first.
///
/// Only numbering changes: every decision depends on values and age ranks, never on an entry's
/// number. New entry `i < walked.len()` is the one of age rank `walked[i]`, so the new numbers in
/// age order are written straight from the ranks, without a table from old numbers to new.
#[inline(never)]
fn renumber(pool: &mut Pool, walked: &[u32], by_age: &[u32]) -> Buf<u32> {
    let n = pool.len();
    let mut renumbered: Buf<u32> = Buf::with_capacity(n);
    let mut new_by_age = Buf::filled(NIL, n);
    for (new, &rank) in walked.iter().enumerate() {
        renumbered.push(by_age[rank as usize]);
        new_by_age[rank as usize] = u32_of(new);
    }
    for (new, &old) in new_by_age.iter_mut().zip(by_age) {
        if *new == NIL {
            *new = u32_of(renumbered.len());
            renumbered.push(old);
        }
    }
    pool.renumber(&renumbered, walked);
    new_by_age
}

/// The duel path's matching: a [`Pair`] for each anchor, and what [`Duel::decide`] records.
#[inline(never)]
fn form_duels(round: &Round, chain: &mut Chain) -> Buf<Duel> {
    let mut duels: Buf<Duel> = Buf::with_capacity(round.walked / 2 + 1);
    form(&mut Pair::default(), round, chain, |pair, _, imbalance, _| {
        duels.push(Duel::decide(pair, imbalance, round.plan, round.pool));
    });
    duels
}

/// The general matching: a [`Group`] for each anchor, and what [`decide`] records.
#[inline(never)]
fn form_groups(round: &Round, chain: &mut Chain) -> (Vec<Formed>, Vec<(u32, u32)>) {
    let (plan, pool) = (round.plan, round.pool);
    let n = pool.len();
    // Sized for a pool of solo tickets that all match, so that in the usual case neither grows
    // (and copies itself) in the loop.
    let mut formed: Vec<Formed> = Vec::with_capacity(n / plan.max_players.max(1) as usize + 1);
    let mut formed_members: Vec<(u32, u32)> = Vec::with_capacity(n);
    form(
        &mut Group::new(plan, pool, round.paths == Paths::Fastest),
        round,
        chain,
        |group, splitter, imbalance, limits| {
            formed.push(decide(
                imbalance,
                splitter.team_of(),
                group,
                plan,
                pool,
                limits,
                &mut formed_members,
            ));
        },
    );
    (formed, formed_members)
}

/// Builds the duels' matches.
#[inline(never)]
fn build_duels(round: &Round, mut duels: Buf<Duel>, mut ids: prepare::Ids) -> (Vec<Match>, prepare::Ids) {
    let pool = round.pool;
    // Each loop below reads the duels' ids at random, and asks for the memory of the duel a few
    // places on first (as `form` does for its anchors).
    let ahead = |d: usize| duels.get(d + DUELS_AHEAD);
    let mut match_ids = match_ids(
        duels.iter().enumerate().map(|(d, duel)| {
            if let Some(next) = ahead(d) {
                pool.prefetch_id_text(next.id_span);
            }
            pool.id_text_at(duel.id_span, duel.entries[duel.oldest] as usize)
        }),
        round,
    );
    // The members' ids are taken in a loop of their own too. It was made one when a match cloned
    // shared names (each a locked instruction, which waits for every load before it, so the ids'
    // misses could not overlap); no match does since, but one loop for all of a duel's building
    // measured no faster (BENCHMARKS.md, seventh pass).
    let mut members: Buf<DuelIds> = duels
        .iter()
        .enumerate()
        .map(|(d, duel)| {
            for &e in ahead(d).map_or(&[][..], |next| &next.entries) {
                ids.prefetch(e as usize, pool);
            }
            let [first, second] = duel.entries.map(|e| e as usize);
            DuelIds {
                tickets: [ids.ticket(first, pool), ids.ticket(second, pool)],
                players: [ids.player(first, 0, pool), ids.player(second, 0, pool)],
            }
        })
        .collect();
    let regions = shared_regions(pool);
    let mut matches = Vec::with_capacity(duels.len());
    matches.extend(
        duels
            .drain(..)
            .zip(match_ids.drain(..))
            .zip(members.drain(..))
            .map(|((duel, id), members)| build_duel(duel, id, members, round, &regions)),
    );
    (matches, ids)
}

/// Builds the general path's matches.
#[inline(never)]
fn build_matches(
    round: &Round,
    formed: Vec<Formed>,
    formed_members: &[(u32, u32)],
    mut ids: prepare::Ids,
) -> (Vec<Match>, prepare::Ids) {
    let oldest = formed.iter().map(|f| formed_members[f.members.start].0);
    let mut match_ids = match_ids(oldest.map(|e| round.pool.ticket_id_text(e as usize)), round);
    let regions = shared_regions(round.pool);
    // Sized once: collected from an iterator that gives no size, 50k matches of about 300 bytes
    // grew by doubling, and each growth copied all of them (about 30 MB of copying at 100k).
    let mut matches = Vec::with_capacity(formed.len());
    for (f, id) in formed.into_iter().zip(match_ids.drain(..)) {
        matches.push(build_match(f, id, formed_members, round, &regions, &mut ids));
    }
    (matches, ids)
}

/// The tickets that did not match, oldest first: those that timed out, those still waiting, and
/// when the next round could match differently although no ticket arrives.
#[inline(never)]
fn the_rest(round: &Round, chain: &Chain, mut ids: prepare::Ids) -> (Vec<TicketId>, Vec<TicketId>, Option<Timestamp>) {
    let (plan, pool) = (round.plan, round.pool);
    let n = pool.len();
    let walked = round.walked;
    let matched = |e: usize| e < walked && !chain.contains(u32_of(e));
    // Sized for the same reason: every ticket not matched is in one of the two. Those that timed
    // out are the oldest, a run at the start of the age order, found by a binary search rather
    // than a pass over every entry; the walks' tickets matched are those unlinked.
    let timed_out_count = round
        .by_age
        .partition_point(|&e| pool.waited(e as usize) >= plan.timeout_ms);
    let matched_count = chain.unlinked;
    let mut timed_out = Vec::with_capacity(timed_out_count);
    let mut remaining = Vec::with_capacity(n - matched_count - timed_out_count);
    let mut next_change: Option<u64> = None;
    let patience = patience_ms(plan.timeout_ms);
    for &e in round.by_age {
        let e = e as usize;
        if matched(e) {
            continue;
        }
        let w = pool.waited(e);
        if w >= plan.timeout_ms {
            timed_out.push(ids.ticket(e, pool));
            continue;
        }
        remaining.push(ids.ticket(e, pool));
        let timeout = plan.timeout_ms - w.min(plan.timeout_ms);
        let mut due = plan.next_loosening_after(w).map_or(timeout, |d| d.min(timeout));
        // Patience loosens continuously over a ticket's first seconds: look again within a
        // second while it does, or a pool with no arrivals would wait for its next
        // expansion step although a match is already within reach.
        if w < patience {
            due = due.min((patience - w).min(PATIENCE_RECHECK_MS));
        }
        next_change = Some(next_change.map_or(due, |n| n.min(due)));
    }
    let next_change_at = next_change.map(|d| Timestamp(round.now.as_millis().saturating_add(d)));
    (timed_out, remaining, next_change_at)
}

/// Whether `plan`'s matches are duels a [`Pair`] forms as a [`Group`] would: two teams of one
/// player, both needed at every wait (no expansion lowers a team's minimum, so no match starts
/// short), and no rule beyond distance, latency, `=` (the walks keep to a partition) and team
/// balance (the split's).
fn duels_only(plan: &Plan) -> bool {
    plan.slots.len() == 2
        && plan.slots.iter().all(|s| s.min_players == 1 && s.max_players == 1)
        && !plan
            .rule_set
            .expansions
            .iter()
            .any(|e| matches!(e.target, ExpansionTarget::Team { .. }))
        && plan.distinct.is_empty()
        && plan.collection.is_empty()
        && plan.composition.is_empty()
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Orders each run of tickets created in the same millisecond by id, so that ties never depend
/// on the pool's order. `by_age` is sorted by time already, and `time(i)` is the time of its `i`th
/// entry (or that time less a constant): read from the sorted keys, in order, rather than from
/// each entry, at random.
fn order_ties_by_id(by_age: &mut [u32], time: impl Fn(usize) -> u64, pool: &Pool) {
    sort_runs(
        by_age,
        |i, _| time(i),
        |run| run.sort_unstable_by(|&a, &b| pool.cmp_ticket_ids(a as usize, b as usize)),
    );
}

/// Hands `sort` each run of two or more consecutive `items` of the same `run_key` (given an item's
/// position and the item): what a sort on a coarser key leaves to settle.
fn sort_runs<T, K: PartialEq>(items: &mut [T], run_key: impl Fn(usize, &T) -> K, mut sort: impl FnMut(&mut [T])) {
    let mut start = 0;
    while start < items.len() {
        let key = run_key(start, &items[start]);
        let end = (start + 1..items.len())
            .find(|&i| run_key(i, &items[i]) != key)
            .unwrap_or(items.len());
        if end - start > 1 {
            sort(&mut items[start..end]);
        }
        start = end;
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

/// A candidate match as [`grow`] grows it: a [`Group`] for any rule set, or a [`Pair`] for a duel.
trait Forming {
    /// Empties it, ready for a new anchor.
    fn clear(&mut self);
    /// Adds `entry` if the match can still satisfy every rule with it; reports whether it did.
    fn offer(&mut self, entry: u32, plan: &Plan, pool: &Pool, limits: &Limits) -> bool;
    /// Entries, in the order they joined; the first is the anchor.
    fn members(&self) -> &[u32];
    fn players(&self) -> u32;
    /// Takes the newest member out.
    fn drop_newest(&mut self, plan: &Plan, pool: &Pool, limits: &Limits);
    /// Splits the complete candidate into teams, if it can be; returns the split's imbalance.
    fn finish(&self, splitter: &mut Splitter, plan: &Plan, pool: &Pool, limits: &Limits) -> Option<f64>;
}

impl Forming for Group {
    fn clear(&mut self) {
        Group::clear(self);
    }

    fn offer(&mut self, entry: u32, plan: &Plan, pool: &Pool, limits: &Limits) -> bool {
        Group::offer(self, entry, plan, pool, limits)
    }

    fn members(&self) -> &[u32] {
        &self.members
    }

    fn players(&self) -> u32 {
        self.players
    }

    fn drop_newest(&mut self, plan: &Plan, pool: &Pool, limits: &Limits) {
        Group::drop_newest(self, plan, pool, limits);
    }

    fn finish(&self, splitter: &mut Splitter, plan: &Plan, pool: &Pool, limits: &Limits) -> Option<f64> {
        if !self.roles_complete() {
            return None;
        }
        splitter.split(plan, pool, limits, &self.members)
    }
}

impl Forming for Pair {
    fn clear(&mut self) {
        Pair::clear(self);
    }

    // Small, and called for every candidate: inlined where the anchor and its walk offer.
    #[inline(always)]
    fn offer(&mut self, entry: u32, plan: &Plan, pool: &Pool, limits: &Limits) -> bool {
        Pair::offer(self, entry, plan, pool, limits)
    }

    fn members(&self) -> &[u32] {
        Pair::members(self)
    }

    fn players(&self) -> u32 {
        Pair::players(self)
    }

    fn drop_newest(&mut self, _: &Plan, pool: &Pool, _: &Limits) {
        Pair::drop_newest(self, pool);
    }

    /// A pair is only finished full (its rule set has no match that starts short): two solos.
    fn finish(&self, splitter: &mut Splitter, plan: &Plan, pool: &Pool, limits: &Limits) -> Option<f64> {
        splitter.split_duel(plan, pool, limits, &self.both())
    }
}

/// Oldest first, each ticket still waiting anchors a candidate match, grown from its walk. Each
/// match formed is handed to `record`, with the splitter that split it, the split's imbalance and
/// the limits in force, and its members leave the chain.
fn form<F: Forming>(
    forming: &mut F,
    round: &Round,
    chain: &mut Chain,
    mut record: impl FnMut(&F, &Splitter, f64, &Limits),
) {
    let (plan, pool) = (round.plan, round.pool);
    let mut splitter = Splitter::new(plan, pool, round.paths == Paths::Fastest);
    for (i, &anchor) in round.by_age.iter().enumerate() {
        // Anchors come in age order, each at random in the walk order: the memory of the one a few
        // places on is asked for now, so that it is in the cache when its turn comes.
        if let Some(&ahead) = round.by_age.get(i + ANCHORS_AHEAD) {
            chain.prefetch(ahead);
            pool.prefetch(ahead as usize);
        }
        // Only tickets that may still match are linked.
        if !chain.contains(anchor) {
            continue;
        }
        let limits = plan.limits(pool.waited(anchor as usize));
        forming.clear();
        if !forming.offer(anchor, plan, pool, limits) || splitter.never_splits(plan, pool, anchor) {
            continue;
        }
        let walk = Walk::new(chain, pool, plan, limits, anchor, round.pairing);
        let Some(imbalance) = grow(forming, &mut splitter, walk, plan, pool, limits) else {
            continue;
        };
        record(forming, &splitter, imbalance, limits);
        for &m in forming.members() {
            chain.unlink(m);
        }
    }
}

/// Offers the walk's tickets to the anchor's candidate until it forms a match; returns its team split.
fn grow<F: Forming>(
    forming: &mut F,
    splitter: &mut Splitter,
    mut walk: Walk,
    plan: &Plan,
    pool: &Pool,
    limits: &Limits,
) -> Option<f64> {
    let mut failed_splits = 0;
    let mut refusals = 0;
    // First come, first served takes the earliest arrivals that fit, however many do not: giving up
    // after a run of refusals would make it time tickets out that a later candidate would have taken.
    let patience_for_refusals = match walk.pairing {
        Pairing::ClosestSkill => REFUSALS_IN_A_ROW + 8 * plan.max_players as usize,
        Pairing::ArrivalOrder => usize::MAX,
    };
    loop {
        if forming.players() == plan.max_players {
            if let Some(split) = forming.finish(splitter, plan, pool, limits) {
                return Some(split);
            }
            failed_splits += 1;
            if failed_splits >= SPLIT_ATTEMPTS || forming.members().len() < 2 {
                return None;
            }
            // The newest member spoilt the split: look on without it.
            forming.drop_newest(plan, pool, limits);
            continue;
        }
        let Some(candidate) = walk.next(pool) else { break };
        if forming.offer(candidate, plan, pool, limits) {
            refusals = 0;
        } else {
            refusals += 1;
            if refusals > patience_for_refusals {
                break;
            }
        }
    }
    // The walk ran out before the match was full: it may still start short, at its minimum.
    (forming.players() >= plan.min_players(limits).max(1))
        .then(|| forming.finish(splitter, plan, pool, limits))
        .flatten()
}

/// A doubly linked list over the waiting tickets in some order, from which matched tickets are
/// unlinked, so a walk steps over them in O(1).
///
/// Each entry's two links are kept side by side, and whether it is linked is told by them too: an
/// anchor's first reads (is it still waiting? who are its neighbours?) are one cache line, where
/// three arrays were up to three cache misses per anchor, anchors coming in age order, at random.
#[derive(Debug)]
struct Chain {
    /// By entry: the previous and the next linked entry ([`NIL`] at the ends), or [`UNLINKED`] twice
    /// for an entry not linked.
    links: Buf<[u32; 2]>,
    /// How many entries have been unlinked.
    unlinked: usize,
}

/// The links of an entry not in the chain: no entry has this number, and neither is it [`NIL`].
const UNLINKED: u32 = u32::MAX - 1;

impl Chain {
    fn new(n: usize, order: impl Iterator<Item = u32>) -> Self {
        let mut chain = Chain {
            links: Buf::filled([UNLINKED; 2], n),
            unlinked: 0,
        };
        let mut last = NIL;
        for e in order {
            chain.links[e as usize] = [last, NIL];
            if last != NIL {
                chain.links[last as usize][1] = e;
            }
            last = e;
        }
        chain
    }

    /// Asks for entry `e`'s links to be brought into the cache (see [`form`]).
    fn prefetch(&self, e: u32) {
        prefetch_index(&*self.links, e as usize);
    }

    fn contains(&self, e: u32) -> bool {
        self.links[e as usize][0] != UNLINKED
    }

    fn prev(&self, e: u32) -> u32 {
        self.links[e as usize][0]
    }

    fn next(&self, e: u32) -> u32 {
        self.links[e as usize][1]
    }

    fn unlink(&mut self, e: u32) {
        let [p, n] = self.links[e as usize];
        if p != NIL {
            self.links[p as usize][1] = n;
        }
        if n != NIL {
            self.links[n as usize][0] = p;
        }
        self.links[e as usize] = [UNLINKED; 2];
        self.unlinked += 1;
    }
}

/// The tickets offered to one anchor, in the order the pairing wants them.
struct Walk<'c> {
    chain: &'c Chain,
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
    #[inline(always)]
    fn new(chain: &'c Chain, pool: &Pool, plan: &Plan, limits: &Limits, anchor: u32, pairing: Pairing) -> Self {
        let reach = match (pairing, plan.distance.is_empty()) {
            (Pairing::ClosestSkill, false) => {
                limits.max_distance[0] * patience(pool.waited(anchor as usize), plan.timeout_ms)
            }
            _ => f64::INFINITY,
        };
        Walk {
            chain,
            pairing,
            partition: pool.entries[anchor as usize].partition,
            key: pool.sort_key(anchor as usize),
            reach,
            left: match pairing {
                Pairing::ClosestSkill => chain.prev(anchor),
                Pairing::ArrivalOrder => NIL,
            },
            right: chain.next(anchor),
            offered: 0,
        }
    }

    /// The next ticket to offer, or `None` when the walk is over.
    #[inline(always)]
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
                dl < dr
                    || (dl == dr
                        && pool.entries[self.left as usize].age_rank < pool.entries[self.right as usize].age_rank)
            }
        };
        self.offered += 1;
        let chosen = if take_left { self.left } else { self.right };
        if take_left {
            self.left = self.chain.prev(chosen);
        } else {
            self.right = self.chain.next(chosen);
        }
        Some(chosen)
    }
}

/// What a match reports beyond its teams, worked out when it is decided, while its tickets' rows
/// are in the cache.
struct Summary {
    imbalance: Option<f64>,
    region: Option<(usize, u32)>,
    spread: Option<f64>,
    /// The wait of the match's oldest ticket, which sets the expansion level in force.
    oldest_wait_ms: u64,
}

impl Summary {
    fn new(
        imbalance: f64,
        region: Option<(usize, u32)>,
        members: &[u32],
        oldest: usize,
        plan: &Plan,
        pool: &Pool,
    ) -> Self {
        Summary {
            // With nothing to balance, or one team to put it in, every split is even, and there is
            // nothing to report.
            imbalance: (!plan.balance_columns.is_empty() && plan.slots.len() > 1).then_some(imbalance),
            region,
            spread: plan.skill.map(|_| skill_spread(pool, members)),
            oldest_wait_ms: pool.waited(oldest),
        }
    }
}

/// A match decided in the first pass. It is built into a [`Match`] after the last decision, so
/// that the ids it needs can be moved out of the pool rather than cloned.
struct Formed {
    /// Its members' range of `formed_members`: (entry, team slot), oldest first.
    members: std::ops::Range<usize>,
    collections: BTreeMap<String, Vec<String>>,
    summary: Summary,
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
    formed_members: &mut Vec<(u32, u32)>,
) -> Formed {
    let start = formed_members.len();
    formed_members.extend(group.members.iter().zip(team_of).map(|(&e, &t)| (e, u32_of(t))));
    formed_members[start..].sort_unstable_by_key(|&(e, _)| pool.entries[e as usize].age_rank);
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
    Formed {
        members: start..formed_members.len(),
        collections,
        summary: Summary::new(imbalance, group.best_region(), &group.members, oldest, plan, pool),
    }
}

/// A duel decided in the first pass: what [`decide`] records of a match of two solos, without
/// the general lists.
struct Duel {
    /// Entries by team: the anchor on the first, its opponent on the second, as a split of two
    /// solos puts them.
    entries: [u32; 2],
    waits_ms: [u64; 2],
    /// Which of the two has waited longer (by age rank): the match is named after it.
    oldest: usize,
    /// Where its id is in the pool's copy of the ids (see `Entry::id_span`): read here, with the
    /// entry, and not when the match is named.
    id_span: (u32, u32),
    summary: Summary,
}

impl Duel {
    fn decide(pair: &Pair, imbalance: f64, plan: &Plan, pool: &Pool) -> Self {
        let entries = pair.both();
        let entry = |t: usize| &pool.entries[entries[t] as usize];
        let oldest = usize::from(entry(1).age_rank < entry(0).age_rank);
        Duel {
            entries,
            waits_ms: [pool.waited(entries[0] as usize), pool.waited(entries[1] as usize)],
            oldest,
            id_span: pool.id_span(entries[oldest] as usize),
            summary: Summary::new(
                imbalance,
                pair.best_region(),
                &entries,
                entries[oldest] as usize,
                plan,
                pool,
            ),
        }
    }
}

/// Each match's id, `m-<now>-<oldest ticket>`, given each match's oldest ticket's id. Made for
/// all the matches before any is built: the oldest tickets' ids are read at random (from the
/// pool's copy of their text), and in a loop this short the processor overlaps those cache misses,
/// which it could not while building a match.
fn match_ids<'p>(oldest: impl Iterator<Item = &'p str>, round: &Round) -> Buf<MatchId> {
    let mut id = format!("m-{}-", round.now.as_millis());
    let prefix = id.len();
    oldest
        .map(|ticket| {
            id.truncate(prefix);
            id.push_str(ticket);
            MatchId::from(id.as_str())
        })
        .collect()
}

/// Region names are shared by the round's matches: one string per region, not per match.
fn shared_regions(pool: &Pool) -> Vec<Name> {
    pool.regions.iter().map(|&r| Name::from(r)).collect()
}

/// A match from its parts: everything but its teams and waits is shared or worked out already.
#[inline(always)]
fn assemble(
    id: MatchId,
    teams: MatchTeams,
    waits_ms: Waits,
    collections: BTreeMap<String, Vec<String>>,
    summary: Summary,
    round: &Round,
    regions: &[Name],
) -> Match {
    let plan = round.plan;
    Match {
        id,
        queue: plan.queue,
        created_at: round.now,
        teams,
        region: summary.region.map(|(r, _)| regions[r]),
        collections,
        quality: MatchQuality {
            skill_spread: summary.spread,
            team_imbalance: summary.imbalance,
            worst_latency_ms: summary.region.map(|(_, ms)| ms),
            waits_ms,
            expansion_steps: plan.limits(summary.oldest_wait_ms).expansion_steps(),
        },
    }
}

/// Builds the match the round reports from what was decided.
///
/// Names and the expansion level are shared, and a duel's lists are inline, so a 1v1 match costs
/// one allocation: its id.
fn build_match(
    formed: Formed,
    id: MatchId,
    formed_members: &[(u32, u32)],
    round: &Round,
    regions: &[Name],
    ids: &mut prepare::Ids,
) -> Match {
    let (plan, pool) = (round.plan, round.pool);
    let members = &formed_members[formed.members.clone()];
    let mut waits_ms = Waits::with_capacity(members.len());
    let mut teams = MatchTeams::with_capacity(plan.slot_names.len());
    for (t, name) in plan.slot_names.iter().enumerate() {
        let on_team = || members.iter().filter(move |&&(_, team)| team as usize == t);
        // Sized first: a team of five solos grew its lists from one inline place by doubling, three
        // allocations each where one does.
        let players = on_team().map(|&(e, _)| pool.entries[e as usize].size as usize).sum();
        let mut team = MatchTeam {
            name: *name,
            tickets: TeamMembers::with_capacity(on_team().count()),
            players: TeamMembers::with_capacity(players),
        };
        for &(e, _) in on_team() {
            let e = e as usize;
            team.tickets.push(ids.ticket(e, pool));
            team.players.extend(ids.players(e, pool));
            waits_ms.push(pool.waited(e));
        }
        teams.push(team);
    }
    assemble(id, teams, waits_ms, formed.collections, formed.summary, round, regions)
}

/// A duel's ticket and player ids, by team.
struct DuelIds {
    tickets: [TicketId; 2],
    players: [PlayerId; 2],
}

recyclable!(Duel, DuelIds, MatchId);

/// [`build_match`] for a duel: each team one ticket of one player, the lists made whole.
#[inline(always)]
fn build_duel(duel: Duel, id: MatchId, members: DuelIds, round: &Round, regions: &[Name]) -> Match {
    let DuelIds {
        tickets: [first_ticket, second_ticket],
        players: [first_player, second_player],
    } = members;
    let team = |t: usize, ticket: TicketId, player: PlayerId| MatchTeam {
        name: round.plan.slot_names[t],
        tickets: TeamMembers::from_buf([ticket]),
        players: TeamMembers::from_buf([player]),
    };
    let teams = MatchTeams::from_buf([
        team(0, first_ticket, first_player),
        team(1, second_ticket, second_player),
    ]);
    assemble(
        id,
        teams,
        Waits::from_buf(duel.waits_ms),
        BTreeMap::new(),
        duel.summary,
        round,
        regions,
    )
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
