//! The pool, read once into flat arrays of numbers.
//!
//! Rules are evaluated millions of times per round, so each ticket's attributes are resolved (defaults
//! filled in, types checked, parties aggregated) exactly once, and strings are interned to integers.
//! Everything is indexed by the ticket's position in the pool (its *entry*) or by a player's position
//! in the flattened list of all players.

use super::group::role_mask;
use super::plan::Plan;
use crate::attribute::{AttributeType, AttributeValue};
use crate::ids::{PlayerId, TicketId};
use crate::ruleset::PartyAggregation;
use crate::ticket::{Player, Ticket};
use std::collections::BTreeMap;

/// Latency of a region some player did not measure: no match may be placed there.
pub(crate) const UNMEASURED: u32 = u32::MAX;

/// A value of a `comparison` attribute, made comparable: numbers by their bits, strings interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Number(u64),
    String(u32),
}

/// One ticket, as the matcher sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// False when no match could ever take the ticket (a missing attribute without default, a party
    /// that disagrees on an `=` attribute, a party too big for any team…). Such tickets wait out
    /// their timeout rather than being dropped, so that nothing is lost.
    pub matchable: bool,
    pub size: u32,
    /// Index of the ticket's first player in the flattened player arrays.
    pub first_player: u32,
    /// Tickets can only match within their partition (equal values of every `=` attribute).
    pub partition: u32,
    pub created_at: u64,
    /// Lowest and highest value of the skill attribute over the party (as the distance rule
    /// aggregates it, when the skill attribute is a distance rule's).
    pub skill_lo: f64,
    pub skill_hi: f64,
}

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
    name: &'a str,
    kind: AttributeType,
    default: Option<&'a AttributeValue>,
}

impl<'a> Attr<'a> {
    fn new(plan: &Plan<'a>, name: &'a str) -> Self {
        let declared = plan.rule_set.attribute(name);
        Attr {
            name,
            kind: declared.map_or(AttributeType::Number, |a| a.kind),
            default: declared.and_then(|a| a.default.as_ref()),
        }
    }

    /// The player's value, or the default when the ticket omits it or gives one of the wrong type.
    fn of(&self, player: &'a Player) -> Option<&'a AttributeValue> {
        player
            .attributes
            .get(self.name)
            .filter(|v| v.kind() == self.kind)
            .or(self.default)
    }

    fn number(&self, player: &'a Player) -> Option<f64> {
        self.of(player)
            .and_then(AttributeValue::as_number)
            .filter(|n| n.is_finite())
    }
}

/// The pool, flattened.
#[derive(Debug)]
pub(crate) struct Pool<'a> {
    pub tickets: &'a [Ticket],
    pub entries: Vec<Entry>,
    /// Every region any player measured, sorted; a region's index here is its id.
    pub regions: Vec<&'a str>,
    /// `entries × regions`: the party's worst latency to each region, or [`UNMEASURED`].
    latency: Vec<u32>,
    /// `entries × distance rules`: the party's value, aggregated as the rule says.
    distance: Vec<f64>,
    /// Distance rules: the width of a row of `distance`. Kept rather than divided out, since the
    /// walks read rows millions of times.
    distance_rules: usize,
    /// `entries × balance columns`: the sum of the party's values (see `Plan::balance_columns`).
    balance: Vec<f64>,
    balance_columns: usize,
    /// `players × distinct rules`.
    distinct: Vec<Key>,
    /// `entries × collection rules`: a range of `collection_values`, the party's common values.
    collection: Vec<(u32, u32)>,
    collection_values: Vec<u32>,
    /// `players × composition rules`: a range of `role_ids`, the roles the player can take.
    roles: Vec<(u32, u32)>,
    role_ids: Vec<u16>,
    /// `players × composition rules`: the same roles as a bitmask (see `group::role_mask`), which
    /// is what Hall's condition counts: worked out once per player, not once per check.
    role_masks: Vec<usize>,
    /// Interned strings, by id.
    strings: Vec<&'a str>,
    /// The round's time, in ms.
    now_ms: u64,
    ids: Ids,
    /// By entry: the ticket id's bytes after the prefix every id of the pool shares, the first 8
    /// of them (zero-padded) as a big-endian integer. A smaller key is a smaller id; equal keys say
    /// nothing, and those ids are compared whole. Ordering tickets created in the same millisecond
    /// compares these rather than reading two strings at random per comparison. Only the age
    /// order compares ids, before [`Pool::renumber`], which drops them rather than moving them.
    id_keys: Vec<u64>,
    /// Each entry's position in `tickets`, once [`Pool::renumber`] has put the entries in another
    /// order; empty while they are in the pool's order.
    origin: Vec<u32>,
}

/// The pool's ticket and player ids, cloned in pool order (reading memory in order is several times
/// faster than in the random order matches come in), to be moved into the outcome. They follow the
/// entries when [`Pool::renumber`] moves them, so a match's ids are neighbours, as its entries are.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    /// By entry.
    tickets: Vec<Option<TicketId>>,
    /// By player, flattened as in [`Entry::first_player`].
    players: Vec<Option<PlayerId>>,
}

impl Ids {
    /// Entry `e`'s ticket id; each is taken once, and a second take clones.
    pub fn ticket(&mut self, e: usize, pool: &Pool) -> TicketId {
        self.tickets
            .get_mut(e)
            .and_then(Option::take)
            .unwrap_or_else(|| pool.ticket_id(e).clone())
    }

    /// Entry `e`'s ticket id, without taking it.
    pub fn peek_ticket<'s>(&'s self, e: usize, pool: &'s Pool) -> &'s str {
        match self.tickets.get(e) {
            Some(Some(id)) => id.as_str(),
            _ => pool.ticket_id(e).as_str(),
        }
    }

    /// The ids of entry `e`'s players.
    pub fn players<'s>(&'s mut self, e: usize, pool: &'s Pool) -> impl Iterator<Item = PlayerId> + 's {
        let entry = &pool.entries[e];
        (0..entry.size as usize).map(move |i| self.player(e, entry.first_player as usize, i, pool))
    }

    /// The id of entry `e`'s player `i`, given its first player `first` (see `Entry::first_player`);
    /// taken once, as [`Ids::ticket`].
    pub fn player(&mut self, e: usize, first: usize, i: usize, pool: &Pool) -> PlayerId {
        self.players
            .get_mut(first + i)
            .and_then(Option::take)
            .unwrap_or_else(|| pool.ticket(e).players[i].id.clone())
    }
}

impl<'a> Pool<'a> {
    pub fn new(tickets: &'a [Ticket], plan: &Plan<'a>, now_ms: u64) -> Self {
        let distance_attrs: Vec<Attr> = plan.distance.iter().map(|d| Attr::new(plan, d.attribute)).collect();
        // Looked up by name once, not once per ticket.
        let distance_aggregations: Vec<PartyAggregation> = distance_attrs
            .iter()
            .map(|a| plan.distance_aggregation(a.name))
            .collect();
        let balance_attrs: Vec<Attr> = plan.balance_columns.iter().map(|a| Attr::new(plan, a)).collect();
        let skill_attr = plan.skill.map(|a| Attr::new(plan, a));
        let skill_is_distance = plan.distance.first().map(|d| d.attribute) == plan.skill;
        let equal_attrs: Vec<Attr> = plan.equal.iter().map(|a| Attr::new(plan, a)).collect();
        let distinct_attrs: Vec<Attr> = plan.distinct.iter().map(|a| Attr::new(plan, a)).collect();
        let collection_attrs: Vec<Attr> = plan.collection.iter().map(|(_, a)| Attr::new(plan, a)).collect();
        let composition_attrs: Vec<Attr> = plan.composition.iter().map(|c| Attr::new(plan, c.attribute)).collect();
        let largest_team = plan.slots.iter().map(|s| s.max_players).max().unwrap_or(0);
        let player_count: usize = tickets.iter().map(|t| t.players.len()).sum();

        let mut pool = Pool {
            tickets,
            entries: Vec::with_capacity(tickets.len()),
            latency: Vec::new(),
            regions: Vec::new(),
            distance: Vec::with_capacity(tickets.len() * distance_attrs.len()),
            distance_rules: distance_attrs.len(),
            balance: Vec::with_capacity(tickets.len() * balance_attrs.len()),
            balance_columns: balance_attrs.len(),
            distinct: Vec::with_capacity(player_count * distinct_attrs.len()),
            collection: Vec::with_capacity(tickets.len() * collection_attrs.len()),
            collection_values: Vec::new(),
            roles: Vec::with_capacity(player_count * composition_attrs.len()),
            role_ids: Vec::new(),
            role_masks: Vec::with_capacity(player_count * composition_attrs.len()),
            strings: Vec::new(),
            now_ms,
            // Filled in the loop below, which reads each ticket and its players anyway: a pass of
            // its own would read them all a second time, mostly from memory.
            ids: Ids {
                tickets: Vec::with_capacity(tickets.len()),
                players: Vec::with_capacity(player_count),
            },
            id_keys: Vec::with_capacity(tickets.len()),
            origin: Vec::new(),
        };
        let first_id = tickets.first().map_or(&b""[..], |t| t.id.as_str().as_bytes());
        // The length of the prefix every ticket id seen so far shares (see `id_keys`), and the
        // first ticket whose key was made with the final length: the keys before it were made with a
        // longer prefix and are made again after the loop.
        let mut shared_prefix = first_id.len();
        let mut keys_valid_from = 0;
        // A balance column that a distance rule also reads: for a solo ticket its sum is the value
        // the distance rule has just read (one value, aggregated or summed, is itself), so the
        // attribute is looked up once, not twice.
        let balance_from_distance: Vec<Option<usize>> = balance_attrs
            .iter()
            .map(|b| distance_attrs.iter().position(|d| d.name == b.name))
            .collect();
        let mut strings = Interner::default();
        let mut partitions: BTreeMap<Vec<Key>, u32> = BTreeMap::new();
        let mut partition_key: Vec<Key> = Vec::with_capacity(equal_attrs.len());
        let mut first_player = 0u32;

        for (t, ticket) in tickets.iter().enumerate() {
            if t % TOUCH_AHEAD == 0 {
                touch(&tickets[t..tickets.len().min(t + TOUCH_AHEAD)]);
            }
            let players = &ticket.players;
            let size = u32::try_from(players.len()).unwrap_or(u32::MAX);
            let mut matchable = size >= 1 && size <= largest_team;

            let id = ticket.id.as_str().as_bytes();
            // Usually the whole prefix is shared still: one comparison, not one per byte.
            if id.get(..shared_prefix) != Some(&first_id[..shared_prefix]) {
                shared_prefix = first_id[..shared_prefix]
                    .iter()
                    .zip(id)
                    .take_while(|(a, b)| a == b)
                    .count();
                keys_valid_from = pool.id_keys.len();
            }
            pool.id_keys.push(id_key(id, shared_prefix));
            pool.ids.tickets.push(Some(ticket.id.clone()));
            pool.ids.players.extend(players.iter().map(|p| Some(p.id.clone())));

            let distance_row = pool.distance.len();
            for (attr, &aggregation) in distance_attrs.iter().zip(&distance_aggregations) {
                let value = party_number(players, attr, aggregation);
                matchable &= value.is_some();
                pool.distance.push(value.unwrap_or(0.0));
            }
            for (attr, same) in balance_attrs.iter().zip(&balance_from_distance) {
                match same {
                    // A missing value made the ticket unmatchable above and was recorded as 0.
                    Some(d) if size == 1 => pool.balance.push(pool.distance[distance_row + d]),
                    _ => {
                        let sum: Option<f64> = players.iter().map(|p| attr.number(p)).sum();
                        matchable &= sum.is_some();
                        pool.balance.push(sum.unwrap_or(0.0));
                    }
                }
            }
            let (skill_lo, skill_hi) = match skill_attr {
                Some(_) if skill_is_distance => {
                    let v = pool.distance[pool.distance.len() - distance_attrs.len()];
                    (v, v)
                }
                Some(attr) => players
                    .iter()
                    .filter_map(|p| attr.number(p))
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v))),
                None => (0.0, 0.0),
            };

            // `=` attributes: every member must agree, and the shared values name the partition.
            partition_key.clear();
            for attr in &equal_attrs {
                let mut keys = players.iter().map(|p| key_of(attr, p, &mut strings));
                let first = keys.next().flatten();
                let agreed = first.is_some() && keys.all(|k| k == first);
                matchable &= agreed;
                partition_key.push(first.unwrap_or(Key::Number(0)));
            }
            let partition = if equal_attrs.is_empty() {
                // No `=` rule: one partition, without a map lookup per ticket.
                0
            } else {
                match partitions.get(partition_key.as_slice()) {
                    Some(&id) => id,
                    None => {
                        let id = u32::try_from(partitions.len()).unwrap_or(u32::MAX);
                        partitions.insert(partition_key.clone(), id);
                        id
                    }
                }
            };

            // `!=` attributes: members of one party must already differ from each other.
            let distinct_start = pool.distinct.len();
            for player in players {
                for attr in &distinct_attrs {
                    let key = key_of(attr, player, &mut strings);
                    matchable &= key.is_some();
                    pool.distinct.push(key.unwrap_or(Key::Number(0)));
                }
            }
            let rules = distinct_attrs.len();
            for rule in 0..rules {
                let mut values: Vec<Key> = pool.distinct[distinct_start..]
                    .chunks(rules)
                    .map(|keys| keys[rule])
                    .collect();
                let n = values.len();
                values.sort_unstable();
                values.dedup();
                matchable &= values.len() == n;
            }

            // Collections: the party's common values, as a sorted set of ids.
            for attr in &collection_attrs {
                let start = pool.collection_values.len();
                let mut common: Option<Vec<u32>> = None;
                for player in players {
                    let mut ids: Vec<u32> = attr
                        .of(player)
                        .and_then(AttributeValue::as_string_list)
                        .unwrap_or(&[])
                        .iter()
                        .map(|s| strings.intern(s))
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
            for player in players {
                for (rule, attr) in plan.composition.iter().zip(&composition_attrs) {
                    let start = pool.role_ids.len();
                    if let Some(list) = attr.of(player).and_then(AttributeValue::as_string_list) {
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

            // Latencies: the party's worst to each region; a region one member did not measure is out.
            // The row starts at `entries × regions`, which moves when a region is added.
            let row = |pool: &Pool| pool.entries.len() * pool.regions.len();
            pool.latency.resize(row(&pool) + pool.regions.len(), 0);
            for (i, player) in players.iter().enumerate() {
                // Both the player's measurements and the known regions are sorted by name: merge them.
                let mut r = 0;
                for (region, &ms) in &player.latencies {
                    // One comparison per step: comparing names is most of the cost of reading a
                    // ticket's latencies, and a known region is usually the very next one.
                    loop {
                        match pool.regions.get(r).map(|known| (*known).cmp(region.as_str())) {
                            Some(std::cmp::Ordering::Less) => {
                                let at = row(&pool) + r;
                                pool.latency[at] = UNMEASURED;
                                r += 1;
                            }
                            Some(std::cmp::Ordering::Equal) => break,
                            _ => {
                                // Earlier members of the party did not measure the new region.
                                pool.add_region(r, region, if i == 0 { 0 } else { UNMEASURED });
                                break;
                            }
                        }
                    }
                    let at = row(&pool) + r;
                    if pool.latency[at] != UNMEASURED {
                        pool.latency[at] = pool.latency[at].max(ms);
                    }
                    r += 1;
                }
                // Usually every region was measured and there is nothing to fill: not even a call
                // to `memset` for no bytes, once per player.
                if r < pool.regions.len() {
                    let start = row(&pool);
                    pool.latency[start + r..start + pool.regions.len()].fill(UNMEASURED);
                }
            }
            if plan.has_latency_rule {
                matchable &= pool.latency[row(&pool)..].iter().any(|&ms| ms != UNMEASURED);
            }

            pool.entries.push(Entry {
                matchable,
                size,
                first_player,
                partition,
                created_at: ticket.created_at.as_millis(),
                skill_lo,
                skill_hi,
            });
            first_player = first_player.saturating_add(size);
        }
        for (key, ticket) in pool.id_keys[..keys_valid_from].iter_mut().zip(tickets) {
            *key = id_key(ticket.id.as_str().as_bytes(), shared_prefix);
        }
        let mut by_id: Vec<(u32, &str)> = strings.ids.into_iter().map(|(s, id)| (id, s)).collect();
        by_id.sort_unstable();
        pool.strings = by_id.into_iter().map(|(_, s)| s).collect();
        pool
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
        self.now_ms.saturating_sub(self.entries[e].created_at)
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

    /// Entry `e`'s position in the pool's tickets.
    pub fn origin(&self, e: usize) -> usize {
        self.origin.get(e).map_or(e, |&t| t as usize)
    }

    /// Renumbers the entries so that entry `i` is the one that was entry `order[i]` (a permutation
    /// of the entries), moving every per-entry and per-player row with it.
    ///
    /// The walks visit tickets in skill order, which is random in the pool's order: renumbered in
    /// skill order, a walk reads adjacent memory instead of missing the cache on every array for
    /// every candidate. Players are renumbered too (an entry's players stay consecutive, from its
    /// new `first_player`), so an offer's role and `!=` checks and a match's ids read the
    /// neighbourhood the walk has just read. The gathers here read at random, but in short loops
    /// whose cache misses the processor overlaps; the walks and the matches could not.
    pub fn renumber(&mut self, order: &[u32]) {
        fn gather<T: Copy>(rows: &[T], width: usize, order: &[u32]) -> Vec<T> {
            // The usual widths copy rows of a size known at compile time: a few moves each, not a
            // call to `memcpy` per row (a million calls a round at 100k).
            match width {
                0 => Vec::new(),
                1 => gather_rows::<T, 1>(rows, order),
                2 => gather_rows::<T, 2>(rows, order),
                3 => gather_rows::<T, 3>(rows, order),
                4 => gather_rows::<T, 4>(rows, order),
                _ => {
                    let mut out = Vec::with_capacity(rows.len());
                    for &o in order {
                        let o = o as usize;
                        out.extend_from_slice(&rows[o * width..(o + 1) * width]);
                    }
                    out
                }
            }
        }
        fn gather_rows<T: Copy, const W: usize>(rows: &[T], order: &[u32]) -> Vec<T> {
            let (rows, _) = rows.as_chunks::<W>();
            let mut out = Vec::with_capacity(order.len() * W);
            for &o in order {
                out.extend_from_slice(&rows[o as usize]);
            }
            out
        }
        fn take<T>(rows: &mut [Option<T>], order: &[u32]) -> Vec<Option<T>> {
            order
                .iter()
                .map(|&o| rows.get_mut(o as usize).and_then(Option::take))
                .collect()
        }
        let players = self.ids.players.len();
        // Old player numbers in their new order. When every ticket is a solo, a ticket's player
        // has the ticket's own number, before and after: the players' order is `order` itself,
        // not a list of its own (a duel's pool, usually).
        let solos = players == self.entries.len() && self.entries.iter().all(|e| e.size == 1);
        let mut player_order: Vec<u32> = Vec::with_capacity(if solos { 0 } else { players });
        self.entries = order
            .iter()
            .enumerate()
            .map(|(new, &o)| {
                let mut entry = self.entries[o as usize];
                if solos {
                    entry.first_player = u32_len(new);
                } else {
                    let first = u32_len(player_order.len());
                    player_order.extend(entry.first_player..entry.first_player.saturating_add(entry.size));
                    entry.first_player = first;
                }
                entry
            })
            .collect();
        let player_order = if solos { order } else { &player_order };
        self.distance = gather(&self.distance, self.distance_rules, order);
        self.balance = gather(&self.balance, self.balance_columns, order);
        self.latency = gather(&self.latency, self.regions.len(), order);
        self.id_keys = Vec::new();
        let collections = self.collection.len().checked_div(order.len()).unwrap_or(0);
        self.collection = gather(&self.collection, collections, order);
        let distinct_rules = self.distinct.len().checked_div(players).unwrap_or(0);
        self.distinct = gather(&self.distinct, distinct_rules, player_order);
        let compositions = self.roles.len().checked_div(players).unwrap_or(0);
        self.roles = gather(&self.roles, compositions, player_order);
        self.role_masks = gather(&self.role_masks, compositions, player_order);
        self.ids.tickets = take(&mut self.ids.tickets, order);
        self.ids.players = take(&mut self.ids.players, player_order);
        self.origin = if self.origin.is_empty() {
            order.to_vec()
        } else {
            order.iter().map(|&o| self.origin[o as usize]).collect()
        };
    }

    /// Adds a region no earlier ticket measured, at index `at` of the sorted regions. Rows already
    /// filled get [`UNMEASURED`] there, the row being filled gets `current`. Regions are few and
    /// show up in the first tickets, so this rarely runs and never late.
    fn add_region(&mut self, at: usize, region: &'a str, current: u32) {
        let width = self.regions.len();
        // With no region yet every row is empty: the rows are the entries so far and this one.
        let rows = self.latency.len().checked_div(width).unwrap_or(self.entries.len() + 1);
        // Room for every ticket's row: the table then never grows (and copies itself) again
        // unless yet another region turns up.
        let mut latency = Vec::with_capacity((width + 1) * self.tickets.len().max(rows));
        for row in 0..rows {
            let old = &self.latency[row * width..(row + 1) * width];
            latency.extend_from_slice(&old[..at]);
            latency.push(if row + 1 == rows { current } else { UNMEASURED });
            latency.extend_from_slice(&old[at..]);
        }
        self.latency = latency;
        self.regions.insert(at, region);
    }

    /// The ids, to move into the outcome once the matching is done.
    pub fn take_ids(&mut self) -> Ids {
        std::mem::take(&mut self.ids)
    }

    /// The value the matcher sorts tickets by: the first distance rule's, else the skill attribute's.
    pub fn sort_key(&self, entry: usize) -> f64 {
        match self.distance_rules() {
            0 => self.entries[entry].skill_lo,
            n => self.distance[entry * n],
        }
    }

    fn distance_rules(&self) -> usize {
        self.distance_rules
    }

    /// The party's value for each distance rule.
    pub fn distance(&self, entry: usize) -> &[f64] {
        let n = self.distance_rules();
        &self.distance[entry * n..(entry + 1) * n]
    }

    /// The sum of the party's values for each balance column.
    pub fn balance(&self, entry: usize) -> &[f64] {
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

fn u32_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Tickets read ahead by [`touch`] at a time.
const TOUCH_AHEAD: usize = 16;

/// Reads the heap memory the loop of [`Pool::new`] is about to read for `tickets`: each id, and
/// each player's id and the names in its attribute and latency maps.
///
/// Nearly all the cost of reading a ticket is cache misses along chains of pointers (ticket,
/// players, map node, key string), and the loop's body is too long for the processor to start
/// the next ticket's misses while it works on this one. In a loop this short it starts a few
/// tickets' at once, and the loop then finds them in the cache. It changes nothing; the sum it
/// computes is only there so that the reads are made.
fn touch(tickets: &[Ticket]) {
    // A string's length is in its pointer; its first byte is in the memory to be read.
    let first = |s: &str| usize::from(s.as_bytes().first().copied().unwrap_or(0));
    let mut sum = 0usize;
    for ticket in tickets {
        sum = sum.wrapping_add(first(ticket.id.as_str()));
        for player in &ticket.players {
            sum = sum.wrapping_add(first(player.id.as_str()));
            for name in player.attributes.keys().chain(player.latencies.keys()) {
                sum = sum.wrapping_add(first(name));
            }
        }
    }
    std::hint::black_box(sum);
}

/// A ticket id's key (see `Pool::id_keys`), given the length of the prefix every id shares.
fn id_key(id: &[u8], shared: usize) -> u64 {
    let mut key = [0u8; 8];
    for (k, &b) in key.iter_mut().zip(&id[shared..]) {
        *k = b;
    }
    u64::from_be_bytes(key)
}

/// The party's value of a number attribute, as `aggregation` counts a party.
fn party_number<'a>(players: &'a [Player], attr: &Attr<'a>, aggregation: PartyAggregation) -> Option<f64> {
    let mut values = players.iter().map(|p| attr.number(p));
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

fn key_of<'a>(attr: &Attr<'a>, player: &'a Player, strings: &mut Interner<'a>) -> Option<Key> {
    match attr.of(player)? {
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
