//! The pool, read once into flat arrays of numbers.
//!
//! Rules are evaluated millions of times per round, so each ticket's attributes are resolved (defaults
//! filled in, types checked, parties aggregated) exactly once, and strings are interned to integers.
//! Everything is indexed by the ticket's position in the pool (its *entry*) or by a player's position
//! in the flattened list of all players.

use super::group::{role_mask, worse};
use super::plan::Plan;
use super::recycle::{recyclable, Buf, Recycle};
use super::{sortable, Paths};
use crate::attribute::{AttributeType, AttributeValue};
use crate::ids::{PlayerId, TicketId};
use crate::latencies::Latencies;
use crate::ruleset::PartyAggregation;
use crate::ticket::Ticket;
use prefetch_index::prefetch_index;
use std::collections::BTreeMap;

/// Latency of a region some player did not measure: no match may be placed there.
pub(crate) const UNMEASURED: u32 = u32::MAX;

/// A value of a `comparison` attribute, made comparable: numbers by their bits, strings interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Number(u64),
    String(u32),
}

/// One ticket, as the walks see it: what they read of every candidate, in 32 bytes, two to a cache
/// line. What only a match's members need is in rows of its own beside the entries (the id's
/// span, the first player, the skill range). The walks read entries at random, and their size
/// shows in the round's time: padded from 64 bytes to 96, a 1v1 round at 100k took 1.10 of the
/// time; cut from 64 to 32, 0.94 (alternated pairs; BENCHMARKS.md, ninth pass).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// What the walks sort and step by: the first distance rule's value, else the lowest skill of
    /// the party (see [`Pool::sort_key`]).
    pub key: f64,
    pub created_at: u64,
    pub size: u32,
    /// Tickets can only match within their partition (equal values of every `=` attribute).
    pub partition: u32,
    /// The ticket's rank in age order among those the walks take, set once they are numbered in
    /// walk order (see [`Pool::renumber`]); [`NOT_WALKED`] for the others.
    pub age_rank: u32,
    /// False when no match could ever take the ticket (a missing attribute without default, a party
    /// that disagrees on an `=` attribute, a party too big for any team…). Such tickets wait out
    /// their timeout rather than being dropped, so that nothing is lost.
    pub matchable: bool,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 32, "an entry is half a cache line");

recyclable!(Entry, Key, (Option<TicketId>, Option<PlayerId>), Option<PlayerId>);

/// The `id_span` of an id past the first 4 GiB of the ids' text: no text is there, and the id is
/// read from its ticket.
const NO_SPAN: (u32, u32) = (1, 0);

/// The walk key (see `Pool::walk_keys`) of an entry no walk takes: the key of a NaN, which no sort
/// key is (values are finite).
pub(crate) const OUT_OF_WALKS: u64 = u64::MAX;

/// The age rank of an entry no walk takes (it timed out, or cannot match).
pub(crate) const NOT_WALKED: u32 = u32::MAX;

/// A string attribute's interned values, so sets of them are sorted integer slices.
#[derive(Debug, Default)]
struct Interner<'a> {
    ids: BTreeMap<&'a str, u32>,
}

impl<'a> Interner<'a> {
    fn intern(&mut self, s: &'a str) -> u32 {
        let next = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        *self.ids.entry(s).or_insert(next)
    }
}

/// A declared attribute the rules read, with its type and default.
#[derive(Debug, Clone, Copy)]
struct Attr<'a> {
    /// The attribute's position in [`Names`]: where each player's value of it is found.
    slot: usize,
    kind: AttributeType,
    default: Option<&'a AttributeValue>,
}

/// The attributes the rules read, sorted and distinct. Each player's are looked up once, in one
/// walk of their map (see [`Names::look_up`]), however many rules read them.
#[derive(Debug, Default)]
struct Names<'a> {
    names: Vec<&'a str>,
}

impl<'a> Names<'a> {
    /// Every attribute `plan` reads.
    fn of(plan: &Plan<'a>) -> Self {
        let mut names: Vec<&'a str> = plan
            .distance
            .iter()
            .map(|d| d.attribute)
            .chain(plan.balance_columns.iter().copied())
            .chain(plan.skill)
            .chain(plan.equal.iter().copied())
            .chain(plan.distinct.iter().copied())
            .chain(plan.collection.iter().map(|&(_, a)| a))
            .chain(plan.composition.iter().map(|c| c.attribute))
            .collect();
        names.sort_unstable();
        names.dedup();
        Names { names }
    }

    /// The attribute called `name`, which must be one of these.
    fn attr(&self, plan: &Plan<'a>, name: &str) -> Attr<'a> {
        let declared = plan.rule_set.attribute(name);
        Attr {
            slot: self.names.binary_search(&name).unwrap_or(0),
            kind: declared.map_or(AttributeType::Number, |a| a.kind),
            default: declared.and_then(|a| a.default.as_ref()),
        }
    }

    fn attrs(&self, plan: &Plan<'a>, names: impl Iterator<Item = &'a str>) -> Vec<Attr<'a>> {
        names.map(|name| self.attr(plan, name)).collect()
    }

    /// A player's row of values: one per name, `None` where the player has no such attribute.
    fn width(&self) -> usize {
        // At least one, so that rows are never empty and can be counted.
        self.names.len().max(1)
    }

    /// Writes `attributes`' value of each name into `row` (of [`Names::width`]): `None` for the
    /// names the player has no value for.
    ///
    /// The map and the names are both sorted, so one walk of the map finds them all, comparing
    /// names by [`next_is`] (else [`seek`]); a search per name compared each with the map's keys by
    /// calls to `memcmp`.
    /// A map far larger than the names is searched instead, since the walk would visit every entry.
    fn look_up(&self, attributes: &'a BTreeMap<String, AttributeValue>, row: &mut [Option<&'a AttributeValue>]) {
        if attributes.len() > WALK_LIMIT {
            for (value, name) in row.iter_mut().zip(&self.names) {
                *value = attributes.get(*name);
            }
            return;
        }
        let mut slot = 0;
        match attributes.len() {
            // The first and the last entry are all of such a map, and each is one step from the
            // root: an iterator's set-up, for both of its ends, cost more than the walk itself.
            1 | 2 => {
                if let Some((name, value)) = attributes.first_key_value() {
                    slot = self.found(slot, name, value, row);
                }
                if let Some((name, value)) = attributes.last_key_value().filter(|_| attributes.len() == 2) {
                    slot = self.found(slot, name, value, row);
                }
            }
            _ => {
                for (name, value) in attributes {
                    if slot == self.names.len() {
                        break;
                    }
                    slot = self.found(slot, name, value, row);
                }
            }
        }
        fill(row, slot..row.len(), None);
    }

    /// One step of [`Names::look_up`]'s walk: the map's next entry is `name`, and the names before
    /// `slot` are done. Fills `row` up to the slot after `name`'s, if `name` is one of the names,
    /// else up to where it would be, and returns that slot.
    fn found(
        &self,
        slot: usize,
        name: &str,
        value: &'a AttributeValue,
        row: &mut [Option<&'a AttributeValue>],
    ) -> usize {
        if next_is(&self.names, slot, name) {
            fill(row, slot..slot + 1, Some(value));
            return slot + 1;
        }
        // The names passed over: the player has none of them.
        match seek(&self.names, slot, name) {
            Ok(at) => {
                fill(row, slot..at, None);
                fill(row, at..at + 1, Some(value));
                at + 1
            }
            Err(at) => {
                fill(row, slot..at, None);
                at
            }
        }
    }
}

/// Sets `row[range]` to `value`. Usually the range is empty, and then nothing is called.
fn fill<T: Copy>(row: &mut [T], range: std::ops::Range<usize>, value: T) {
    if let Some(cells) = row.get_mut(range) {
        for cell in cells {
            *cell = value;
        }
    }
}

/// Attribute maps larger than this are searched by name rather than walked (see [`Names::look_up`]):
/// up to this size a map is one node, in which a search compares keys one by one anyway.
const WALK_LIMIT: usize = 11;

impl<'a> Attr<'a> {
    /// The player's value, from the player's `row` of looked-up values: the default when the ticket
    /// omits it or gives one of the wrong type.
    fn of(&self, row: &[Option<&'a AttributeValue>]) -> Option<&'a AttributeValue> {
        row.get(self.slot)
            .copied()
            .flatten()
            .filter(|v| v.kind() == self.kind)
            .or(self.default)
    }

    fn number(&self, row: &[Option<&'a AttributeValue>]) -> Option<f64> {
        self.of(row)
            .and_then(AttributeValue::as_number)
            .filter(|n| n.is_finite())
    }
}

/// Finds `name` in `known` (sorted, distinct) at or after `from`: `Ok` with its index, or `Err`
/// with the index it would be inserted at.
///
/// Callers walk a sorted map against `known`, and its names nearly always come in the same order,
/// each the very next one (every player measures the same regions): they try that one first, by
/// [`next_is`], and call this only when it is not. Out of line, so that their loops stay short.
#[inline(never)]
fn seek(known: &[&str], from: usize, name: &str) -> Result<usize, usize> {
    let mut at = from;
    while let Some(&k) = known.get(at) {
        if same(k.as_bytes(), name.as_bytes()) {
            return Ok(at);
        }
        if k > name {
            return Err(at);
        }
        at += 1;
    }
    Err(at)
}

/// Whether `name` is `known[at]`.
fn next_is(known: &[&str], at: usize, name: &str) -> bool {
    known.get(at).is_some_and(|k| same(k.as_bytes(), name.as_bytes()))
}

/// Whether two byte strings are equal.
///
/// The names and id prefixes read from tickets are short; up to 16 bytes they are compared as two
/// overlapping words (or bytes) in a few instructions, where `==` calls `bcmp`, whose call and
/// set-up cost several times as many for a few bytes. Longer ones are compared by `==`.
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Region names and ids' prefixes are mostly 8 to 16 bytes: that case is tested first, in one
    // comparison (a match on the ranges tested them in order, four comparisons).
    if n.wrapping_sub(8) <= 8 {
        u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8)
    } else if n > 16 {
        a == b
    } else if n >= 4 {
        u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4)
    } else {
        // Up to 3 bytes: the first, middle and last are all of them.
        n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1])
    }
}

/// The 4 bytes of `s` from `at`, as an integer (0 past the end, which callers never ask for).
fn u32_at(s: &[u8], at: usize) -> u32 {
    s.get(at..)
        .and_then(<[u8]>::first_chunk)
        .map_or(0, |w| u32::from_ne_bytes(*w))
}

/// The 8 bytes of `s` from `at`, as an integer (0 past the end, which callers never ask for).
fn u64_at(s: &[u8], at: usize) -> u64 {
    s.get(at..)
        .and_then(<[u8]>::first_chunk)
        .map_or(0, |w| u64::from_ne_bytes(*w))
}

/// The pool, flattened.
#[derive(Debug)]
pub(crate) struct Pool<'a> {
    pub tickets: &'a [Ticket],
    pub entries: Buf<Entry>,
    /// Every region any player measured, sorted; a region's index here is its id.
    pub regions: Vec<&'a str>,
    /// `entries × regions`: the party's worst latency to each region, or [`UNMEASURED`].
    latency: Buf<u32>,
    /// `entries × distance rules`: the party's value, aggregated as the rule says. Empty with one
    /// rule, whose values are the entries' keys (see [`Pool::distance`]).
    distance: Buf<f64>,
    /// Distance rules: the width of a row of `distance`. Kept rather than divided out, since the
    /// walks read rows millions of times.
    distance_rules: usize,
    /// `entries × balance columns`: the sum of the party's values (see `Plan::balance_columns`).
    /// Empty once [`Pool::balance_is_key`] (see [`Pool::renumber`]).
    balance: Buf<f64>,
    balance_columns: usize,
    /// Whether the one balance column is the first distance rule's attribute, whose value a solo
    /// ticket's sum is: in a pool of solos, then, every entry's balance is its key.
    balance_of_key: bool,
    /// Whether the entries' balance is read from their keys (see [`Pool::balance`]).
    balance_is_key: bool,
    /// `players × distinct rules`.
    distinct: Buf<Key>,
    /// `entries × collection rules`: a range of `collection_values`, the party's common values.
    collection: Buf<(u32, u32)>,
    collection_values: Vec<u32>,
    /// `players × composition rules`: a range of `role_ids`, the roles the player can take.
    roles: Buf<(u32, u32)>,
    role_ids: Vec<u16>,
    /// `players × composition rules`: the same roles as a bitmask (see `group::role_mask`), which
    /// is what Hall's condition counts: worked out once per player, not once per check.
    role_masks: Buf<usize>,
    /// Interned strings, by id.
    strings: Vec<&'a str>,
    /// The round's time, in ms.
    now_ms: u64,
    /// Players in the pool.
    players: usize,
    /// The earliest and the latest of the entries' `created_at`, kept while they are read: the age
    /// order packs times from the earliest, and finding them there took two passes (over `created`,
    /// 1.9 M instructions a 1v1 round at 100k).
    pub created_range: (u64, u64),
    /// By entry, until [`Pool::renumber`]: its `created_at`, written while reading, so that the age
    /// order reads these (a quarter of the entries' size) rather than passing over the entries again.
    pub created: Buf<u64>,
    /// By entry, until [`Pool::renumber`]: its sort key as an integer of the same order
    /// ([`sortable`]), or [`OUT_OF_WALKS`] when no walk takes it (it timed out or cannot match);
    /// written while reading, for the walk order, as `created` is for the age order.
    pub walk_keys: Buf<u64>,
    /// The AND and the OR of the walked entries' `walk_keys`: which of their bits every one shares
    /// (see `matcher::by_skill`). `(u64::MAX, 0)` while none is walked.
    pub walk_key_bits: (u64, u64),
    ids: Ids,
    /// By entry: the ticket id's bytes after the prefix every id of the pool shares, the first 8
    /// of them (zero-padded) as a big-endian integer. A smaller key is a smaller id; equal keys say
    /// nothing, and those ids are compared whole. Ordering tickets created in the same millisecond
    /// compares these rather than reading two strings at random per comparison. Only the age
    /// order compares ids, before [`Pool::renumber`], which drops them rather than moving them.
    id_keys: Buf<u64>,
    /// Every ticket id's text, one after another in the pool's order (each entry has its span):
    /// a copy made while [`Pool::new`] reads the ids anyway. A match is named after its oldest ticket, and
    /// reading that id from its ticket when the match is built was a cache miss per match (the
    /// ids' own memory is scattered over the pool's), about a seventh of a duel round's time; here
    /// they are a few contiguous megabytes at most.
    id_text: String,
    /// By entry: where its ticket's id is in `id_text`, so that naming a match after its oldest
    /// ticket reads the row beside the entry its decision has just read.
    id_spans: Buf<(u32, u32)>,
    /// By entry: its first player's index in the per-player rows, its players following it. Empty
    /// while every entry is a solo, whose entry `e` is player `e` (before [`Pool::renumber`] and
    /// after): written from the first ticket that is not, the solos before it filled in then, as
    /// [`Ids`] keeps the players after the first.
    first_players: Buf<u32>,
    /// By entry: the lowest and highest skill of the party (as the distance rule aggregates it,
    /// when the skill attribute is a distance rule's). Empty when every entry's range is its key
    /// alone (the skill is the first distance rule's attribute) or the rule set reads no skill.
    skill_ranges: Buf<(f64, f64)>,
    /// Each entry's position in `tickets`, once [`Pool::renumber`] has put the entries in another
    /// order; empty while they are in the pool's order.
    origin: Buf<u32>,
}

/// The pool's ticket and player ids, cloned in pool order (reading memory in order is several times
/// faster than in the random order matches come in), to be moved into the outcome.
///
/// A ticket's id and its first player's are kept side by side, so that a match of solos reads one
/// place per ticket for both. They stay in the pool's order when [`Pool::renumber`] moves the
/// entries, and are found through [`Pool::origin`]: moving them cost a random read and two writes
/// per id, more than a match's reading them apart instead of side by side.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    /// By the ticket's position in the pool: its id and its first player's.
    firsts: Buf<(Option<TicketId>, Option<PlayerId>)>,
    /// The players after the first of each party, ticket after ticket.
    others: Buf<Option<PlayerId>>,
    /// By the ticket's position: where its players after the first start in `others`. Empty until
    /// the first party is read (and then filled for the solos before it), as it stays in a pool
    /// of solos.
    others_start: Buf<u32>,
}

impl Ids {
    /// Keeps ticket `t`'s ids (`t` being the number of tickets kept so far).
    fn keep(&mut self, t: usize, ticket: &Ticket) {
        let mut players = ticket.players.iter().map(|p| Some(p.id.clone()));
        self.firsts.push((Some(ticket.id.clone()), players.next().flatten()));
        let party = ticket.players.len() > 1;
        if party && self.others_start.len() < t {
            self.others_start.resize(t, 0);
        }
        if party || !self.others_start.is_empty() {
            self.others_start.push(u32_len(self.others.len()));
            self.others.extend(players);
        }
    }

    /// Asks for entry `e`'s ticket id and first player's id to be brought into the cache.
    pub fn prefetch(&self, e: usize, pool: &Pool) {
        prefetch_index(&*self.firsts, pool.origin(e));
    }

    /// Entry `e`'s ticket id; each is taken once, and a second take clones.
    pub fn ticket(&mut self, e: usize, pool: &Pool) -> TicketId {
        self.firsts
            .get_mut(pool.origin(e))
            .and_then(|(ticket, _)| ticket.take())
            .unwrap_or_else(|| pool.ticket_id(e).clone())
    }

    /// The ids of entry `e`'s players.
    pub fn players<'s>(&'s mut self, e: usize, pool: &'s Pool) -> impl Iterator<Item = PlayerId> + 's {
        (0..pool.entries[e].size as usize).map(move |i| self.player(e, i, pool))
    }

    /// The id of entry `e`'s player `i`; taken once, as [`Ids::ticket`].
    pub fn player(&mut self, e: usize, i: usize, pool: &Pool) -> PlayerId {
        let t = pool.origin(e);
        let kept = match i {
            0 => self.firsts.get_mut(t).and_then(|(_, player)| player.take()),
            _ => self
                .others_start
                .get(t)
                .and_then(|&start| self.others.get_mut(start as usize + i - 1))
                .and_then(Option::take),
        };
        kept.unwrap_or_else(|| pool.ticket(e).players[i].id.clone())
    }
}

/// How many entries ahead [`Pool::renumber`] asks for the entry it will gather.
const GATHER_AHEAD: usize = 16;

/// How many of a player's attribute names [`Pool::new`] asks for before it looks them up: the
/// first few, which a look-up compares (a player's map usually holds a handful). A duel round at
/// 100k took 0.97 of the time with them, a 5v5 round 0.95.
const NAMES_PREFETCHED: usize = 4;

/// Tickets read at a time by [`Pool::new`], each kind of read in its own loop over them.
const BLOCK: usize = 16;

/// How [`Pool::new`] reads tickets under one rule set: the attributes each kind of rule reads, and
/// what the reading carries from one ticket to the next (interned strings, partitions).
struct Reader<'p, 'a> {
    plan: &'p Plan<'a>,
    names: Names<'a>,
    /// Each distance rule's attribute, and its aggregation (looked up by name once, not per ticket).
    distance: Vec<(Attr<'a>, PartyAggregation)>,
    /// Each balance column's attribute, and the distance rule that reads it too, if one does: for a
    /// solo ticket the column's sum is the value that rule has just read (one value, aggregated or
    /// summed, is itself).
    balance: Vec<(Attr<'a>, Option<usize>)>,
    skill: Option<Attr<'a>>,
    skill_is_distance: bool,
    /// Whether each entry's skill range is kept (see `Pool::skill_ranges`).
    skill_rows: bool,
    equal: Vec<Attr<'a>>,
    distinct: Vec<Attr<'a>>,
    collection: Vec<Attr<'a>>,
    composition: Vec<Attr<'a>>,
    largest_team: u32,
    /// Whether a solo ticket's entry is its first distance rule's value and nothing else: the rule
    /// set's one distance rule is the only attribute it reads (a balance column or the skill on that
    /// same attribute being that value), so [`Reader::read_plain_solo`] reads it.
    plain_solos: bool,
    strings: Interner<'a>,
    partitions: BTreeMap<Vec<Key>, u32>,
    partition_key: Vec<Key>,
}

impl<'p, 'a> Reader<'p, 'a> {
    fn new(plan: &'p Plan<'a>, paths: Paths) -> Self {
        let names = Names::of(plan);
        let distance: Vec<(Attr<'a>, PartyAggregation)> = plan
            .distance
            .iter()
            .map(|d| (names.attr(plan, d.attribute), plan.distance_aggregation(d.attribute)))
            .collect();
        let balance: Vec<(Attr<'a>, Option<usize>)> = names
            .attrs(plan, plan.balance_columns.iter().copied())
            .into_iter()
            .map(|b| (b, distance.iter().position(|(d, _)| d.slot == b.slot)))
            .collect();
        let skill_is_distance = plan.distance.first().map(|d| d.attribute) == plan.skill;
        let plain_solos = paths == Paths::Fastest
            && distance.len() == 1
            && balance.iter().all(|&(_, same)| same == Some(0))
            && (plan.skill.is_none() || skill_is_distance)
            && plan.equal.is_empty()
            && plan.distinct.is_empty()
            && plan.collection.is_empty()
            && plan.composition.is_empty();
        Reader {
            plan,
            distance,
            balance,
            skill: plan.skill.map(|a| names.attr(plan, a)),
            skill_is_distance,
            skill_rows: plan.skill.is_some() && !skill_is_distance,
            equal: names.attrs(plan, plan.equal.iter().copied()),
            distinct: names.attrs(plan, plan.distinct.iter().copied()),
            collection: names.attrs(plan, plan.collection.iter().map(|&(_, a)| a)),
            composition: names.attrs(plan, plan.composition.iter().map(|c| c.attribute)),
            largest_team: plan.largest_team,
            plain_solos,
            names,
            strings: Interner::default(),
            partitions: BTreeMap::new(),
            partition_key: Vec::new(),
        }
    }

    /// Reads ticket `t` into `pool`'s rows for it and returns its entry, from `values`, its players'
    /// rows of looked-up attributes (see [`Names::look_up`]). Its ids and latencies are read already.
    /// Its rows beside the entries are pushed here too, but for its id's span.
    fn read(
        &mut self,
        pool: &mut Pool<'a>,
        t: usize,
        ticket: &Ticket,
        values: &[Option<&'a AttributeValue>],
        first_player: u32,
    ) -> Entry {
        if self.plain_solos && ticket.players.len() == 1 {
            return self.read_plain_solo(pool, t, ticket, values, first_player);
        }
        let width = self.names.width();
        // Rows by multiplication: `chunks_exact` divides by the width, a slow instruction, per ticket.
        let rows =
            || (0..ticket.players.len()).map(move |p| values.get(p * width..(p + 1) * width).unwrap_or_default());
        let size = u32_len(ticket.players.len());
        let mut matchable = size >= 1 && size <= self.largest_team;

        let distance_row = pool.distance.len();
        // The first rule's value, which is the entry's key. With one rule it is all the entry's
        // distance values, and no row is kept (see `Pool::distance`).
        let mut first_value = 0.0;
        for (rule, &(attr, aggregation)) in self.distance.iter().enumerate() {
            // A solo's value is its player's, whatever the aggregation (an average of one is
            // exactly that one): read directly, without the party's iterator and fold.
            let value = if size == 1 {
                attr.number(values)
            } else {
                party_number(rows(), &attr, aggregation)
            };
            matchable &= value.is_some();
            let value = value.unwrap_or(0.0);
            if rule == 0 {
                first_value = value;
            }
            if self.distance.len() > 1 {
                pool.distance.push(value);
            }
        }
        let distance_value = |d: usize| {
            if d == 0 {
                first_value
            } else {
                pool.distance[distance_row + d]
            }
        };
        for (attr, same) in &self.balance {
            match same {
                // A missing value made the ticket unmatchable above and was recorded as 0.
                Some(d) if size == 1 => pool.balance.push(distance_value(*d)),
                _ => {
                    let sum: Option<f64> = rows().map(|row| attr.number(row)).sum();
                    matchable &= sum.is_some();
                    pool.balance.push(sum.unwrap_or(0.0));
                }
            }
        }
        let (skill_lo, skill_hi) = match self.skill {
            Some(_) if self.skill_is_distance => (first_value, first_value),
            Some(attr) => rows()
                .filter_map(|row| attr.number(row))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v))),
            None => (0.0, 0.0),
        };

        // `=` attributes: every member must agree, and the shared values name the partition.
        let partition = if self.equal.is_empty() {
            // No `=` rule: one partition, without a map lookup per ticket.
            0
        } else {
            self.partition_key.clear();
            for attr in &self.equal {
                let mut keys = rows().map(|row| key_of(attr, row, &mut self.strings));
                let first = keys.next().flatten();
                let agreed = first.is_some() && keys.all(|k| k == first);
                matchable &= agreed;
                self.partition_key.push(first.unwrap_or(Key::Number(0)));
            }
            match self.partitions.get(self.partition_key.as_slice()) {
                Some(&id) => id,
                None => {
                    let id = u32_len(self.partitions.len());
                    self.partitions.insert(self.partition_key.clone(), id);
                    id
                }
            }
        };

        // `!=` attributes: members of one party must already differ from each other.
        if !self.distinct.is_empty() {
            let distinct_start = pool.distinct.len();
            for row in rows() {
                for attr in &self.distinct {
                    let key = key_of(attr, row, &mut self.strings);
                    matchable &= key.is_some();
                    pool.distinct.push(key.unwrap_or(Key::Number(0)));
                }
            }
            let rules = self.distinct.len();
            for rule in 0..rules {
                let mut keys: Vec<Key> = pool.distinct[distinct_start..]
                    .chunks(rules)
                    .map(|keys| keys[rule])
                    .collect();
                let n = keys.len();
                keys.sort_unstable();
                keys.dedup();
                matchable &= keys.len() == n;
            }
        }

        // Collections: the party's common values, as a sorted set of ids.
        for attr in &self.collection {
            let start = pool.collection_values.len();
            let mut common: Option<Vec<u32>> = None;
            for row in rows() {
                let mut ids: Vec<u32> = attr
                    .of(row)
                    .and_then(AttributeValue::as_string_list)
                    .unwrap_or(&[])
                    .iter()
                    .map(|s| self.strings.intern(s))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                common = Some(match common {
                    None => ids,
                    Some(prev) => intersect(&prev, &ids),
                });
            }
            let common = common.unwrap_or_default();
            matchable &= !common.is_empty();
            pool.collection_values.extend_from_slice(&common);
            pool.collection
                .push((u32_len(start), u32_len(pool.collection_values.len())));
        }

        // Roles each member can take, for each composition rule.
        if !self.composition.is_empty() {
            for row in rows() {
                for (rule, attr) in self.plan.composition.iter().zip(&self.composition) {
                    let start = pool.role_ids.len();
                    if let Some(list) = attr.of(row).and_then(AttributeValue::as_string_list) {
                        // Sorted and deduplicated in place: a vector per player would be an
                        // allocation per player.
                        pool.role_ids.extend(
                            list.iter()
                                .filter_map(|r| rule.roles.binary_search(&r.as_str()).ok())
                                .filter_map(|i| u16::try_from(i).ok()),
                        );
                        pool.role_ids[start..].sort_unstable();
                        let mut kept = start;
                        for i in start..pool.role_ids.len() {
                            if kept == start || pool.role_ids[i] != pool.role_ids[kept - 1] {
                                pool.role_ids[kept] = pool.role_ids[i];
                                kept += 1;
                            }
                        }
                        pool.role_ids.truncate(kept);
                    } else {
                        matchable = false;
                    }
                    pool.roles.push((u32_len(start), u32_len(pool.role_ids.len())));
                    pool.role_masks.push(role_mask(&pool.role_ids[start..]));
                }
            }
        }

        matchable &= self.in_some_region(pool, t);
        if self.skill_rows {
            pool.skill_ranges.push((skill_lo, skill_hi));
        }
        pool.keep_first_player(t, size, first_player);
        Entry {
            key: if self.distance.is_empty() {
                skill_lo
            } else {
                first_value
            },
            created_at: ticket.created_at.as_millis(),
            size,
            partition,
            age_rank: NOT_WALKED,
            matchable,
        }
    }

    /// [`Reader::read`] for a solo ticket when [`Reader::plain_solos`]: what the general path works
    /// out, without its loops over rules that are not there (a ranked duel's every ticket).
    fn read_plain_solo(
        &self,
        pool: &mut Pool<'a>,
        t: usize,
        ticket: &Ticket,
        values: &[Option<&'a AttributeValue>],
        first_player: u32,
    ) -> Entry {
        let value = self.distance.first().and_then(|(attr, _)| attr.number(values));
        let key = value.unwrap_or(0.0);
        // Every balance column is this attribute's: a solo's sum is its value.
        for _ in &self.balance {
            pool.balance.push(key);
        }
        pool.keep_first_player(t, 1, first_player);
        Entry {
            key,
            created_at: ticket.created_at.as_millis(),
            size: 1,
            partition: 0,
            age_rank: NOT_WALKED,
            matchable: value.is_some() && self.largest_team >= 1 && self.in_some_region(pool, t),
        }
    }

    /// Whether ticket `t` can be placed in a region: always without a latency rule, else when its
    /// party measured one region at least (its latencies are merged already).
    fn in_some_region(&self, pool: &Pool, t: usize) -> bool {
        !self.plan.has_latency_rule || pool.latency(t).iter().any(|&ms| ms != UNMEASURED)
    }
}

impl<'a> Pool<'a> {
    /// Reads the pool, [`BLOCK`] tickets at a time.
    ///
    /// Nearly all the cost of reading a ticket is cache misses along chains of pointers (ticket,
    /// players, map node, key string), and a loop that does all of a ticket's work is too long for the
    /// processor to start the next ticket's misses while it works on this one. So each kind of read
    /// has its own short loop over the block (the ids' bytes; the attributes; the latencies), in which
    /// the processor has several tickets' misses in flight at once, and the rules' work on the values
    /// read comes last. (It replaced a read-ahead loop that walked every map a second time.)
    pub fn new(tickets: &'a [Ticket], plan: &Plan<'a>, now_ms: u64, paths: Paths) -> Self {
        let mut reader = Reader::new(plan, paths);
        let width = reader.names.width();
        let distance_rules = reader.distance.len();
        let balance_columns = reader.balance.len();
        // Sized for one player a ticket: counting the players first read every ticket once more
        // (about a millisecond at 100k), and the per-player rows of a pool with parties grow as they
        // are read instead, into the recycled vectors of earlier rounds once a thread has run some.
        let player_count = tickets.len();

        let mut pool = Pool {
            tickets,
            entries: Buf::with_capacity(tickets.len()),
            // Its width grows with each region found (see `add_region`), in the first tickets.
            latency: Buf::default(),
            regions: Vec::new(),
            // With one rule, the values are the entries' keys, and no rows are kept.
            distance: Buf::with_capacity(if distance_rules > 1 {
                tickets.len() * distance_rules
            } else {
                0
            }),
            distance_rules,
            balance: Buf::with_capacity(tickets.len() * balance_columns),
            balance_columns,
            balance_of_key: reader.balance.len() == 1 && reader.balance[0].1 == Some(0),
            balance_is_key: false,
            distinct: Buf::with_capacity(player_count * reader.distinct.len()),
            collection: Buf::with_capacity(tickets.len() * reader.collection.len()),
            collection_values: Vec::new(),
            roles: Buf::with_capacity(player_count * reader.composition.len()),
            role_ids: Vec::new(),
            role_masks: Buf::with_capacity(player_count * reader.composition.len()),
            strings: Vec::new(),
            now_ms,
            players: 0,
            created_range: (u64::MAX, 0),
            created: Buf::with_capacity(tickets.len()),
            walk_keys: Buf::with_capacity(tickets.len()),
            walk_key_bits: (u64::MAX, 0),
            ids: Ids {
                firsts: Buf::with_capacity(tickets.len()),
                others: Buf::default(),
                others_start: Buf::default(),
            },
            id_keys: Buf::with_capacity(tickets.len()),
            // Sized as if every id were as long as the first: a pool's ids usually are, and then
            // the text is not copied as it grows.
            id_text: String::with_capacity(tickets.first().map_or(0, |t| t.id.as_str().len()) * tickets.len()),
            id_spans: Buf::with_capacity(tickets.len()),
            first_players: Buf::default(),
            skill_ranges: Buf::with_capacity(if reader.skill_rows { tickets.len() } else { 0 }),
            origin: Buf::default(),
        };
        let first_id = tickets.first().map_or(&b""[..], |t| t.id.as_str().as_bytes());
        // The length of the prefix every ticket id seen so far shares (see `id_keys`), and the
        // first ticket whose key was made with the final length: the keys before it were made with a
        // longer prefix and are made again after the loop.
        let mut shared_prefix = first_id.len();
        let mut keys_valid_from = 0;
        // The block's players' rows of looked-up attributes, `width` each.
        let mut values: Vec<Option<&'a AttributeValue>> = Vec::new();
        let mut first_player = 0u32;

        for (b, block) in tickets.chunks(BLOCK).enumerate() {
            let first = b * BLOCK;

            // The ids' bytes: their keys; and the player ids' memory, which their clones below
            // write (each clone is a locked increment, which waits for its line, one at a time).
            // The players' latencies are prefetched here: read in a loop of their own, they were
            // a round of misses after the attributes' (a sixth of a duel round's time at 100k).
            // So are the bytes of their first attributes' names, which the attributes' loop
            // compares: reaching them reads the map's node, a miss, and the name's string is one
            // more, two in a row that loop took one after the other.
            let mut touched = 0usize;
            let mut id_spans = [(0, 0); BLOCK];
            for (ticket, span) in block.iter().zip(&mut id_spans) {
                let id = ticket.id.as_str().as_bytes();
                // Usually the whole prefix is shared still: one comparison, not one per byte.
                if !id
                    .get(..shared_prefix)
                    .is_some_and(|p| same(p, &first_id[..shared_prefix]))
                {
                    shared_prefix = first_id[..shared_prefix]
                        .iter()
                        .zip(id)
                        .take_while(|(a, b)| a == b)
                        .count();
                    keys_valid_from = pool.id_keys.len();
                }
                pool.id_keys.push(id_key(id, shared_prefix));
                let start = pool.id_text.len();
                pool.id_text.push_str(ticket.id.as_str());
                *span = match (u32::try_from(start), u32::try_from(pool.id_text.len())) {
                    (Ok(start), Ok(end)) => (start, end),
                    _ => NO_SPAN,
                };
                for player in &ticket.players {
                    player.latencies.prefetch();
                    for name in player.attributes.keys().take(NAMES_PREFETCHED) {
                        prefetch_index(name.as_bytes(), 0);
                    }
                    touched =
                        touched.wrapping_add(usize::from(player.id.as_str().as_bytes().first().copied().unwrap_or(0)));
                }
            }
            std::hint::black_box(touched);

            // Each player's values of the attributes the rules read, once however many rules do.
            let players: usize = block.iter().map(|t| t.players.len()).sum();
            if values.len() < players * width {
                values.resize(players * width, None);
            }
            for (player, row) in block
                .iter()
                .flat_map(|t| &t.players)
                .zip(values.chunks_exact_mut(width))
            {
                reader.names.look_up(&player.attributes, row);
            }

            for (t, ticket) in (first..).zip(block) {
                pool.read_latencies(t, ticket);
            }

            let mut rest = &values[..];
            for ((t, ticket), id_span) in (first..).zip(block).zip(id_spans) {
                let (own, after) = rest.split_at(ticket.players.len() * width);
                rest = after;
                pool.ids.keep(t, ticket);
                let entry = reader.read(&mut pool, t, ticket, own, first_player);
                pool.entries.push(entry);
                pool.id_spans.push(id_span);
                let (earliest, latest) = &mut pool.created_range;
                *earliest = (*earliest).min(entry.created_at);
                *latest = (*latest).max(entry.created_at);
                pool.created.push(entry.created_at);
                let walked = entry.matchable && waited(now_ms, entry.created_at) < plan.timeout_ms;
                if walked {
                    let key = sortable(entry.key);
                    let (and, or) = &mut pool.walk_key_bits;
                    *and &= key;
                    *or |= key;
                    pool.walk_keys.push(key);
                } else {
                    pool.walk_keys.push(OUT_OF_WALKS);
                }
                first_player = first_player.saturating_add(entry.size);
            }
        }
        pool.players = first_player as usize;
        for (key, ticket) in pool.id_keys[..keys_valid_from].iter_mut().zip(tickets) {
            *key = id_key(ticket.id.as_str().as_bytes(), shared_prefix);
        }
        let mut by_id: Vec<(u32, &str)> = reader.strings.ids.into_iter().map(|(s, id)| (id, s)).collect();
        by_id.sort_unstable();
        pool.strings = by_id.into_iter().map(|(_, s)| s).collect();
        pool
    }

    /// Merges the latencies of ticket `t`'s players into its row of the table: the party's worst to
    /// each region; a region one member did not measure is out.
    fn read_latencies(&mut self, t: usize, ticket: &'a Ticket) {
        // Rows are added zeroed, a block's at a time (see `add_region`): one call to `memset` per
        // block, not per ticket, nor one for the whole table.
        let width = self.regions.len();
        if self.latency.len() < (t + 1) * width {
            self.latency.resize((t + BLOCK).min(self.tickets.len()) * width, 0);
        }
        for (i, player) in ticket.players.iter().enumerate() {
            loop {
                let width = self.regions.len();
                let row = self.latency.get_mut(t * width..(t + 1) * width).unwrap_or_default();
                match merge_latencies(row, &self.regions, &player.latencies) {
                    None => break,
                    // Earlier members of the party did not measure the new region.
                    Some((at, region)) => self.add_region(t, at, region, if i == 0 { 0 } else { UNMEASURED }),
                }
            }
        }
    }

    /// The string an interned id stands for.
    pub fn string(&self, id: u32) -> &'a str {
        self.strings.get(id as usize).copied().unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// How long entry `e` has waited at the round's time.
    pub fn waited(&self, e: usize) -> u64 {
        waited(self.now_ms, self.entries[e].created_at)
    }

    /// Entry `e`'s ticket.
    pub fn ticket(&self, e: usize) -> &'a Ticket {
        &self.tickets[self.origin(e)]
    }

    /// Orders entries `a` and `b` as their ticket ids.
    pub fn cmp_ticket_ids(&self, a: usize, b: usize) -> std::cmp::Ordering {
        self.id_keys[a]
            .cmp(&self.id_keys[b])
            .then_with(|| self.ticket_id(a).cmp(self.ticket_id(b)))
    }

    pub fn ticket_id(&self, e: usize) -> &'a TicketId {
        &self.ticket(e).id
    }

    /// Entry `e`'s ticket id, from the pool's copy of the ids' text (see `id_text`).
    pub fn ticket_id_text(&self, e: usize) -> &str {
        self.id_text_at(self.id_span(e), e)
    }

    /// Where entry `e`'s ticket id is in the ids' text (see [`Pool::id_text_at`]).
    pub fn id_span(&self, e: usize) -> (u32, u32) {
        self.id_spans[e]
    }

    /// Writes down ticket `t`'s first player, of `size`, when the row is kept (see `first_players`):
    /// from the first ticket that is not a solo, the solos before it filled in then.
    fn keep_first_player(&mut self, t: usize, size: u32, first_player: u32) {
        let solo = size == 1;
        if !solo && self.first_players.len() < t {
            self.first_players.extend(0..u32_len(t));
        }
        if !solo || !self.first_players.is_empty() {
            self.first_players.push(first_player);
        }
    }

    /// Entry `e`'s players: their indices in the per-player rows.
    pub fn players_of(&self, e: usize) -> std::ops::Range<u32> {
        let first = self.first_players.get(e).copied().unwrap_or(u32_len(e));
        first..first.saturating_add(self.entries[e].size)
    }

    /// Entry `e`'s lowest and highest skill (see `Pool::skill_ranges`).
    pub fn skill_range(&self, e: usize) -> (f64, f64) {
        self.skill_ranges
            .get(e)
            .copied()
            .unwrap_or_else(|| (self.entries[e].key, self.entries[e].key))
    }

    /// Entry `e`'s ticket id, given its `id_span` read already: from the ids' text, or from the
    /// ticket where the text is too long for its spans (see [`NO_SPAN`]).
    pub fn id_text_at(&self, (start, end): (u32, u32), e: usize) -> &str {
        self.id_text
            .get(start as usize..end as usize)
            .unwrap_or_else(|| self.ticket_id(e).as_str())
    }

    /// Asks for the ids' text at `span` (see [`Pool::id_text_at`]) to be brought into the cache.
    pub fn prefetch_id_text(&self, (start, _): (u32, u32)) {
        prefetch_index(self.id_text.as_bytes(), start as usize);
    }

    /// Entry `e`'s position in the pool's tickets.
    pub fn origin(&self, e: usize) -> usize {
        self.origin.get(e).map_or(e, |&t| t as usize)
    }

    /// Renumbers the entries so that entry `i` is the one that was entry `order[i]` (a permutation
    /// of the entries), moving every per-entry and per-player row with it; the first of them are
    /// the walks' in walk order, and entry `i` is given the age rank `ranks[i]` (see
    /// `Entry::age_rank`), the others none.
    ///
    /// The walks visit tickets in skill order, which is random in the pool's order: renumbered in
    /// skill order, a walk reads adjacent memory instead of missing the cache on every array for
    /// every candidate. Players are renumbered too (an entry's players stay consecutive, from its
    /// new first player, see `Pool::first_players`), so an offer's role and `!=` checks read the
    /// neighbourhood the walk has just read. The ids are not moved (see [`Ids`]). The gathers here
    /// read at random, but in short loops whose cache misses the processor overlaps; the walks and
    /// the matches could not.
    pub fn renumber(&mut self, order: &[u32], ranks: &[u32]) {
        // Rows are read at random, as the entries are, and the row some places on is asked for
        // first: a round's rows are a megabyte or two each (a duel round at 100k took 0.97 of the
        // time with this).
        fn gather<T: Copy + Recycle>(rows: &[T], width: usize, order: &[u32]) -> Buf<T> {
            // The usual widths copy rows of a size known at compile time: a few moves each, not a
            // call to `memcpy` per row (a million calls a round at 100k).
            match width {
                0 => Buf::default(),
                1 => gather_rows::<T, 1>(rows, order),
                2 => gather_rows::<T, 2>(rows, order),
                3 => gather_rows::<T, 3>(rows, order),
                4 => gather_rows::<T, 4>(rows, order),
                _ => {
                    let mut out = Buf::with_capacity(rows.len());
                    for (i, &o) in order.iter().enumerate() {
                        if let Some(&ahead) = order.get(i + GATHER_AHEAD) {
                            prefetch_index(rows, ahead as usize * width);
                        }
                        let o = o as usize;
                        out.extend_from_slice(&rows[o * width..(o + 1) * width]);
                    }
                    out
                }
            }
        }
        fn gather_rows<T: Copy + Recycle, const W: usize>(rows: &[T], order: &[u32]) -> Buf<T> {
            let (rows, _) = rows.as_chunks::<W>();
            let mut out = Buf::with_capacity(order.len() * W);
            for (i, &o) in order.iter().enumerate() {
                if let Some(&ahead) = order.get(i + GATHER_AHEAD) {
                    prefetch_index(rows, ahead as usize);
                }
                out.extend_from_slice(&rows[o as usize]);
            }
            out
        }
        let players = self.players;
        // Old player numbers in their new order. When every ticket is a solo, a ticket's player
        // has the ticket's own number, before and after: the players' order is `order` itself,
        // not a list of its own (a duel's pool, usually), and no entry's first player is written
        // down, before or after.
        let solos = self.first_players.is_empty();
        let mut player_order: Vec<u32> = Vec::with_capacity(if solos { 0 } else { players });
        let mut first_players: Buf<u32> = Buf::with_capacity(if solos { 0 } else { order.len() });
        self.entries = order
            .iter()
            .enumerate()
            .map(|(new, &o)| {
                // Read at random: the entry some places on is asked for first.
                if let Some(&ahead) = order.get(new + GATHER_AHEAD) {
                    prefetch_index(&*self.entries, ahead as usize);
                }
                let mut entry = self.entries[o as usize];
                entry.age_rank = ranks.get(new).copied().unwrap_or(NOT_WALKED);
                if !solos {
                    first_players.push(u32_len(player_order.len()));
                    player_order.extend(self.players_of(o as usize));
                }
                entry
            })
            .collect();
        self.first_players = first_players;
        self.id_spans = gather(&self.id_spans, 1, order);
        if !self.skill_ranges.is_empty() {
            self.skill_ranges = gather(&self.skill_ranges, 1, order);
        }
        let player_order = if solos { order } else { &player_order };
        // One rule's values are the entries' keys (see `Pool::distance`): there are no rows.
        if self.distance_rules > 1 {
            self.distance = gather(&self.distance, self.distance_rules, order);
        }
        // A pool of solos whose one balance column is the first distance rule's (a duel's,
        // usually): each entry's balance is its key, read from the entry as the walk reads it,
        // rather than gathered here and read from a row of its own.
        self.balance_is_key = solos && self.balance_of_key;
        self.balance = if self.balance_is_key {
            Buf::default()
        } else {
            gather(&self.balance, self.balance_columns, order)
        };
        self.latency = gather(&self.latency, self.regions.len(), order);
        self.id_keys = Buf::default();
        self.created = Buf::default();
        self.walk_keys = Buf::default();
        let collections = self.collection.len().checked_div(order.len()).unwrap_or(0);
        self.collection = gather(&self.collection, collections, order);
        let distinct_rules = self.distinct.len().checked_div(players).unwrap_or(0);
        self.distinct = gather(&self.distinct, distinct_rules, player_order);
        let compositions = self.roles.len().checked_div(players).unwrap_or(0);
        self.roles = gather(&self.roles, compositions, player_order);
        self.role_masks = gather(&self.role_masks, compositions, player_order);
        self.origin = if self.origin.is_empty() {
            order.iter().copied().collect()
        } else {
            order.iter().map(|&o| self.origin[o as usize]).collect()
        };
    }

    /// Adds a region no earlier ticket measured, at index `at` of the sorted regions, while ticket
    /// `filling`'s row is being filled. Earlier rows get [`UNMEASURED`] there, the row being filled
    /// gets `current`, and later rows 0, as the rest of their row. Regions are few and show up in
    /// the first tickets, so this rarely runs and never late.
    ///
    /// The table keeps the rows up to `filling` only: later ones are added, zeroed, by
    /// [`Pool::read_latencies`]. (A zeroed table of every row was zeroed by `memset`, once the
    /// allocator reused memory rather than mapping fresh pages, as it does from the second round.)
    fn add_region(&mut self, filling: usize, at: usize, region: &'a str, current: u32) {
        let width = self.regions.len();
        let mut latency = Buf::with_capacity((width + 1) * self.tickets.len());
        for row in 0..=filling {
            let old = self.latency.get(row * width..(row + 1) * width).unwrap_or_default();
            latency.extend_from_slice(&old[..at]);
            latency.push(if row == filling { current } else { UNMEASURED });
            latency.extend_from_slice(&old[at..]);
        }
        self.latency = latency;
        self.regions.insert(at, region);
    }

    /// The ids, to move into the outcome once the matching is done.
    pub fn take_ids(&mut self) -> Ids {
        std::mem::take(&mut self.ids)
    }

    /// Asks for entry `e`, its neighbours in the entries' order, their rows of latencies and `e`'s id
    /// span (a match is named after its older ticket, often the anchor) to be brought into the
    /// cache, ahead of reading them at random (a prefetch, which does not wait for the memory as a
    /// read would). Once renumbered, the neighbours are the ones a walk from `e` offers first.
    /// Without the span's prefetch, moving the spans out of the entries gained nothing.
    ///
    /// The neighbours are those up to three places either side (entries are half a line, so two
    /// lines each way): later in a round the tickets right beside an anchor have often matched, and
    /// its walk starts a place or two farther; with one place either side, reading the first of them
    /// was a quarter of forming the duels at 100k. Five places gained nothing more.
    pub fn prefetch(&self, e: usize) {
        for near in [e.saturating_sub(3), e.saturating_sub(1), e, e + 1, e + 3] {
            prefetch_index(&*self.entries, near);
        }
        // The same reach in the latencies' rows (3 regions: two lines or three): 0.98 of the round.
        let width = self.regions.len();
        for near in [e.saturating_sub(3), e, e + 3] {
            prefetch_index(&*self.latency, near * width);
        }
        prefetch_index(&*self.id_spans, e);
    }

    /// The value the matcher sorts tickets by: the first distance rule's, else the skill attribute's.
    pub fn sort_key(&self, entry: usize) -> f64 {
        self.entries[entry].key
    }

    fn distance_rules(&self) -> usize {
        self.distance_rules
    }

    /// The party's value for each distance rule.
    ///
    /// With one distance rule (a duel's, usually) that value is the entry's key: read from the
    /// entry, which a walk reads anyway, rather than from a row of its own, which is not kept.
    pub fn distance(&self, entry: usize) -> &[f64] {
        match self.distance_rules() {
            1 => std::slice::from_ref(&self.entries[entry].key),
            n => &self.distance[entry * n..(entry + 1) * n],
        }
    }

    /// The sum of the party's values for each balance column.
    pub fn balance(&self, entry: usize) -> &[f64] {
        if self.balance_is_key {
            return std::slice::from_ref(&self.entries[entry].key);
        }
        let n = self.balance_columns;
        &self.balance[entry * n..(entry + 1) * n]
    }

    /// The party's worst latency to each region.
    pub fn latency(&self, entry: usize) -> &[u32] {
        let n = self.regions.len();
        &self.latency[entry * n..(entry + 1) * n]
    }

    pub fn distinct(&self, player: usize, rules: usize) -> &[Key] {
        &self.distinct[player * rules..(player + 1) * rules]
    }

    /// The party's common values for collection rule `rule` of `rules`.
    pub fn collection(&self, entry: usize, rule: usize, rules: usize) -> &[u32] {
        let (start, end) = self.collection[entry * rules + rule];
        &self.collection_values[start as usize..end as usize]
    }

    /// The roles `player` can take under composition rule `rule` of `rules`, as a bitmask.
    pub fn role_mask(&self, player: usize, rule: usize, rules: usize) -> usize {
        self.role_masks[player * rules + rule]
    }

    /// The roles `player` can take under composition rule `rule` of `rules`.
    pub fn roles(&self, player: usize, rule: usize, rules: usize) -> &[u16] {
        let (start, end) = self.roles[player * rules + rule];
        &self.role_ids[start as usize..end as usize]
    }
}

impl Plan<'_> {
    fn distance_aggregation(&self, attribute: &str) -> PartyAggregation {
        self.distance
            .iter()
            .find(|d| d.attribute == attribute)
            .map_or(PartyAggregation::Avg, |d| d.aggregation)
    }
}

/// How long a ticket created at `created_at` has waited at `now_ms`.
fn waited(now_ms: u64, created_at: u64) -> u64 {
    now_ms.saturating_sub(created_at)
}

fn u32_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A ticket id's key (see `Pool::id_keys`), given the length of the prefix every id shares.
fn id_key(id: &[u8], shared: usize) -> u64 {
    let rest = id.get(shared..).unwrap_or_default();
    let n = rest.len();
    match rest.first_chunk::<8>() {
        Some(first) => u64::from_be_bytes(*first),
        // 4 to 7 bytes (a pool's ids usually differ in their last few digits), zero-padded on the
        // right: the first 4 and the last 4, which overlap, each moved into place; the bytes they
        // share are equal, so or-ing them is harmless. Byte by byte, it was a loop of ~20.
        None if n >= 4 => {
            let (first, last) = (u32::from_be(u32_at(rest, 0)), u32::from_be(u32_at(rest, n - 4)));
            (u64::from(first) << 32) | (u64::from(last) << (64 - 8 * n))
        }
        // Fewer, byte by byte, where copying them into an array was a call to `memcpy`.
        None => rest
            .iter()
            .enumerate()
            .fold(0, |key, (i, &b)| key | u64::from(b) << (56 - 8 * i)),
    }
}

/// Merges one player's `measured` latencies into their ticket's `row` of the latency table, whose
/// columns are the `known` regions: the worst of the party's so far, or [`UNMEASURED`] where this
/// player measured nothing. Returns a measured region not known yet, and where it goes among the
/// known: the caller adds it and merges again, which repeats the steps already made to the same
/// effect (each keeps the worst, or marks a region out).
///
/// Both the measurements and the known regions are sorted by name, so this is a merge, which
/// compares each measured name with the known region after the last one found, by [`seek`].
///
/// Nearly every player measured every known region: that case is tried first, as one pass over the
/// three lists side by side, without the merge's index arithmetic and bounds checks. On the first
/// name that differs the merge starts over, which redoes the worst-of steps to the same effect.
#[inline(never)]
fn merge_latencies<'m>(row: &mut [u32], known: &[&str], measured: &'m Latencies) -> Option<(usize, &'m str)> {
    if measured.len() == known.len() && row.len() == known.len() {
        let all_known = measured
            .iter()
            .zip(known.iter().zip(row.iter_mut()))
            .all(|((region, ms), (k, cell))| {
                let same_region = same(k.as_bytes(), region.as_bytes());
                if same_region {
                    *cell = worse(*cell, ms);
                }
                same_region
            });
        if all_known {
            return None;
        }
    }
    let mut r = 0;
    for (region, ms) in measured {
        let at = if next_is(known, r, region) {
            r
        } else {
            match seek(known, r, region) {
                Ok(at) => {
                    // Known regions passed over: this player did not measure them.
                    fill(row, r..at, UNMEASURED);
                    at
                }
                Err(at) => return Some((at, region)),
            }
        };
        // The worst of the party's; an unmeasured region stays out.
        if let Some(cell) = row.get_mut(at) {
            *cell = worse(*cell, ms);
        }
        r = at + 1;
    }
    fill(row, r..row.len(), UNMEASURED);
    None
}

/// The party's value of a number attribute, as `aggregation` counts a party: `rows` are its players'
/// looked-up values.
fn party_number<'r, 'a: 'r>(
    rows: impl Iterator<Item = &'r [Option<&'a AttributeValue>]>,
    attr: &Attr<'a>,
    aggregation: PartyAggregation,
) -> Option<f64> {
    let mut values = rows.map(|row| attr.number(row));
    let first = values.next()??;
    let (mut lo, mut hi, mut sum, mut n) = (first, first, first, 1.0);
    for v in values {
        let v = v?;
        lo = lo.min(v);
        hi = hi.max(v);
        sum += v;
        n += 1.0;
    }
    Some(match aggregation {
        PartyAggregation::Avg => sum / n,
        PartyAggregation::Min => lo,
        PartyAggregation::Max => hi,
    })
}

fn key_of<'a>(attr: &Attr<'a>, row: &[Option<&'a AttributeValue>], strings: &mut Interner<'a>) -> Option<Key> {
    match attr.of(row)? {
        AttributeValue::Number(n) if n.is_finite() => {
            // 0.0 and -0.0 are equal values; give them one key.
            let n = if *n == 0.0 { 0.0 } else { *n };
            Some(Key::Number(n.to_bits()))
        }
        AttributeValue::String(s) => Some(Key::String(strings.intern(s))),
        _ => None,
    }
}

/// The intersection of two sorted, distinct slices.
pub(crate) fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    intersect_into(a, b, &mut out);
    out
}

/// The intersection of two sorted, distinct slices, written into `out`.
pub(crate) fn intersect_into(a: &[u32], b: &[u32], out: &mut Vec<u32>) {
    out.clear();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::id_key;

    #[test]
    fn an_id_key_is_the_first_8_bytes_after_the_prefix_zero_padded() {
        let id = b"ticket-0123456789";
        for shared in 0..=id.len() {
            let rest = &id[shared..];
            let expected = rest
                .iter()
                .take(8)
                .enumerate()
                .fold(0u64, |key, (i, &b)| key | u64::from(b) << (56 - 8 * i));
            assert_eq!(id_key(id, shared), expected, "{} bytes after the prefix", rest.len());
        }
    }
}
