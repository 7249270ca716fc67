//! A candidate match under construction: tickets are offered one at a time and kept only if the match
//! can still satisfy every rule with them in it.
//!
//! Each rule keeps a small running summary (the lowest and highest value, the worst latency per
//! region, the values already taken, the common collection values, a role matching) so an offer costs
//! time in the size of the ticket, not of the match.

use super::plan::{Limits, Plan};
use super::prepare::{intersect_into, Key, Pool, UNMEASURED};

/// Players matched to role slots, for one composition rule over the whole match.
///
/// A player who cannot be given a role slot, even by moving others, can only fill one of the
/// match's free places; when more players are left without a role than there are free places, the
/// roles can never all be filled and the player is refused. How many players the roles can take
/// is the size of a maximum bipartite matching. With few roles it is read off Hall's condition
/// (all role slots less the largest shortfall of any set of roles), counted incrementally; with
/// many, the matching itself is grown one player at a time by Kuhn's augmenting paths.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoleMatching {
    /// Slots per role.
    capacity: Vec<u32>,
    /// The players holding each role.
    holders: Vec<Vec<u32>>,
    /// Players without a role.
    unmatched: u32,
    /// Places in the match not tied to a role.
    free: u32,
    /// Roles the last search visited. After a failed search they are kept: no alternating path
    /// through them reaches a free slot, and that stays true until the matching changes, so a
    /// later search may skip them (the usual speed-up of Kuhn's algorithm). A success clears them.
    visited: Vec<bool>,
    /// Whether `visited` is stale, from a search that succeeded.
    stale: bool,
    /// With few roles, Hall's condition replaces the matching: `need[S]` players are needed for
    /// the set of roles `S` (a bitmask), and `reach[S]` players so far can take one of them. The
    /// largest shortfall over all `S` is how many role slots no assignment can fill. Empty with
    /// many roles.
    need: Vec<u32>,
    reach: Vec<u32>,
    players: u32,
}

/// The role ids `roles` as a bitmask (ids past 63 are dropped: only used with few roles).
pub(crate) fn role_mask(roles: &[u16]) -> usize {
    roles.iter().filter(|&&r| r < 64).fold(0, |m, &r| m | 1 << r)
}

/// Whether players whose role masks are `masks` can fill roles needing `need[S]` players for each
/// set `S` (Hall's condition); `reach` is scratch.
pub(crate) fn hall_holds(masks: impl Iterator<Item = usize>, need: &[u32], reach: &mut Vec<u32>) -> bool {
    reach.clear();
    reach.resize(need.len(), 0);
    for mask in masks {
        for (set, r) in reach.iter_mut().enumerate() {
            *r += u32::from(set & mask != 0);
        }
    }
    need.iter().zip(reach.iter()).all(|(n, r)| r >= n)
}

impl RoleMatching {
    /// A matching for role slots `capacity` (by role id) in a match with `free` places beyond them;
    /// `need` as in the field of that name, or empty to grow a matching instead.
    pub fn new(capacity: Vec<u32>, free: u32, need: Vec<u32>) -> Self {
        RoleMatching {
            reach: vec![0; need.len()],
            need,
            players: 0,
            holders: vec![Vec::new(); capacity.len()],
            visited: vec![false; capacity.len()],
            capacity,
            unmatched: 0,
            free,
            stale: true,
        }
    }

    fn clear(&mut self) {
        self.holders.iter_mut().for_each(Vec::clear);
        self.unmatched = 0;
        self.stale = true;
        self.reach.iter_mut().for_each(|r| *r = 0);
        self.players = 0;
    }

    /// Role slots no assignment of the players so far can fill (Hall mode).
    fn shortfall(&self) -> u32 {
        self.need
            .iter()
            .zip(&self.reach)
            .map(|(&n, &r)| n.saturating_sub(r))
            .max()
            .unwrap_or(0)
    }

    fn count(&mut self, mask: usize, add: bool) {
        // Without a branch per set: whether a set meets a player's roles is as good as random to
        // the branch predictor, and its misses cost more than the adds (which this way vectorise).
        for (set, r) in self.reach.iter_mut().enumerate() {
            let hit = u32::from(set & mask != 0);
            *r = if add { *r + hit } else { r.saturating_sub(hit) };
        }
    }

    /// Offers a player; false (and nothing changed) when the match would have too many role-less players.
    fn offer<'r>(&mut self, player: u32, roles_of: &dyn Fn(u32) -> &'r [u16], mask_of: &dyn Fn(u32) -> usize) -> bool {
        if !self.need.is_empty() {
            let mask = mask_of(player);
            self.count(mask, true);
            self.players += 1;
            // Players without a role are those beyond the largest assignment: all the role slots
            // less the shortfall.
            let total = self.need.last().copied().unwrap_or(0);
            let assigned = total - self.shortfall().min(total);
            if self.players - assigned.min(self.players) <= self.free {
                return true;
            }
            self.count(mask, false);
            self.players -= 1;
            return false;
        }
        if self.stale {
            self.visited.iter_mut().for_each(|v| *v = false);
            self.stale = false;
        }
        if augment(player, roles_of, &self.capacity, &mut self.holders, &mut self.visited) {
            self.stale = true;
            return true;
        }
        if self.unmatched < self.free {
            self.unmatched += 1;
            return true;
        }
        false
    }

    /// Offers a party's players together: all of them are taken, or none and nothing changed.
    ///
    /// With few roles the state is a set of counters, so a refused party is taken back out by
    /// counting its players down again; only a matching grown by augmenting paths is copied
    /// first and restored (a copy per party offer was a tenth of a 5v5 round).
    fn offer_all<'r>(
        &mut self,
        players: std::ops::Range<u32>,
        roles_of: &dyn Fn(u32) -> &'r [u16],
        mask_of: &dyn Fn(u32) -> usize,
    ) -> bool {
        if !self.need.is_empty() {
            for p in players.clone() {
                if !self.offer(p, roles_of, mask_of) {
                    for taken in players.start..p {
                        self.count(mask_of(taken), false);
                        self.players -= 1;
                    }
                    return false;
                }
            }
            return true;
        }
        let before = (players.len() > 1).then(|| self.clone());
        if players.clone().all(|p| self.offer(p, roles_of, mask_of)) {
            return true;
        }
        if let Some(before) = before {
            *self = before;
        }
        false
    }

    /// Whether the matching is Hall's counters, which [`RoleMatching::withdraw`] can count down.
    fn counts_only(&self) -> bool {
        !self.need.is_empty()
    }

    /// Takes the player whose role mask is `mask`, the last one offered, back out: the counters
    /// are as they were before its offer. Only for [`RoleMatching::counts_only`]; a matching grown
    /// by augmenting paths is rebuilt instead.
    fn withdraw(&mut self, mask: usize) {
        self.count(mask, false);
        self.players -= 1;
    }

    /// Whether every role slot is filled.
    pub fn complete(&self) -> bool {
        if !self.need.is_empty() {
            return self.shortfall() == 0;
        }
        self.holders
            .iter()
            .zip(&self.capacity)
            .all(|(h, &c)| h.len() == c as usize)
    }
}

/// Finds an augmenting path from `player`: a role with room, or one whose holder can move elsewhere.
pub(crate) fn augment<'r>(
    player: u32,
    roles_of: &dyn Fn(u32) -> &'r [u16],
    capacity: &[u32],
    holders: &mut [Vec<u32>],
    visited: &mut [bool],
) -> bool {
    for &role in roles_of(player) {
        let role = role as usize;
        if visited[role] {
            continue;
        }
        visited[role] = true;
        if holders[role].len() < capacity[role] as usize {
            holders[role].push(player);
            return true;
        }
        for i in 0..holders[role].len() {
            let holder = holders[role][i];
            if augment(holder, roles_of, capacity, holders, visited) {
                holders[role][i] = player;
                return true;
            }
        }
    }
    false
}

/// The candidate match.
#[derive(Debug)]
pub(crate) struct Group {
    /// Entries, in the order they joined; the first is the anchor.
    pub members: Vec<u32>,
    pub players: u32,
    /// Per distance rule.
    lo: Vec<f64>,
    hi: Vec<f64>,
    /// Per region: the worst latency of any member.
    worst: Vec<u32>,
    /// Per `!=` rule: values taken.
    taken: Vec<Vec<Key>>,
    /// Per collection rule: values every member has.
    common: Vec<Vec<u32>>,
    scratch: Vec<u32>,
    roles: Vec<RoleMatching>,
    /// What each member's joining changed, so that [`Group::drop_newest`] restores the group as it
    /// was before the newest joined without offering every other member again: `lo` and `hi` (each
    /// distance rule's, in turn) and `worst` as they were, one member after another.
    bounds_before: Vec<f64>,
    worst_before: Vec<u32>,
    /// Whether [`Group::drop_newest`] undoes where it can; off only to test that it decides as
    /// rebuilding does.
    undoing: bool,
}

impl Group {
    /// An empty group for `plan`'s matches; `undoing` sets [`Group::undoing`].
    pub fn new(plan: &Plan, pool: &Pool, undoing: bool) -> Self {
        let teams = u32::try_from(plan.slots.len()).unwrap_or(u32::MAX);
        Group {
            members: Vec::new(),
            players: 0,
            lo: vec![0.0; plan.distance.len()],
            hi: vec![0.0; plan.distance.len()],
            worst: vec![0; pool.regions.len()],
            taken: vec![Vec::new(); plan.distinct.len()],
            common: vec![Vec::new(); plan.collection.len()],
            scratch: Vec::new(),
            bounds_before: Vec::new(),
            worst_before: Vec::new(),
            undoing,
            roles: plan
                .composition
                .iter()
                .map(|c| {
                    let role_slots = c.role_slots_per_team().saturating_mul(teams);
                    RoleMatching::new(
                        c.per_team.iter().map(|n| n.saturating_mul(teams)).collect(),
                        plan.max_players.saturating_sub(role_slots),
                        c.team_need.iter().map(|n| n.saturating_mul(teams)).collect(),
                    )
                })
                .collect(),
        }
    }

    /// Empties the group, ready for a new anchor.
    pub fn clear(&mut self) {
        self.members.clear();
        self.players = 0;
        self.lo.iter_mut().for_each(|v| *v = f64::INFINITY);
        self.hi.iter_mut().for_each(|v| *v = f64::NEG_INFINITY);
        self.worst.iter_mut().for_each(|v| *v = 0);
        self.taken.iter_mut().for_each(Vec::clear);
        self.common.iter_mut().for_each(Vec::clear);
        self.roles.iter_mut().for_each(RoleMatching::clear);
        self.bounds_before.clear();
        self.worst_before.clear();
    }

    /// Rebuilds the group from `members`, dropping any that no longer fit (used after removing one).
    pub fn rebuild(&mut self, members: &[u32], plan: &Plan, pool: &Pool, limits: &Limits) {
        self.clear();
        for &m in members {
            self.offer(m, plan, pool, limits);
        }
    }

    /// Adds `entry` if the match can still satisfy every rule with it; reports whether it did.
    pub fn offer(&mut self, entry: u32, plan: &Plan, pool: &Pool, limits: &Limits) -> bool {
        let e = entry as usize;
        let info = &pool.entries[e];
        if !info.matchable || self.players + info.size > plan.max_players {
            return false;
        }
        let distance = pool.distance(e);
        if !distances_hold(&self.lo, &self.hi, distance, limits) {
            return false;
        }
        let latency = pool.latency(e);
        if plan.has_latency_rule && !region_in_reach(&self.worst, latency, limits) {
            return false;
        }
        let rules = plan.distinct.len();
        let players = pool.players_of(e);
        let players = players.start as usize..players.end as usize;
        // Without `!=` rules (a duel, say) there is nothing to look at per player, here or below.
        let distinct_players = if rules == 0 { 0..0 } else { players };
        for p in distinct_players.clone() {
            for (taken, key) in self.taken.iter().zip(pool.distinct(p, rules)) {
                if taken.contains(key) {
                    return false;
                }
            }
        }
        let collections = plan.collection.len();
        for c in 0..collections {
            let theirs = pool.collection(e, c, collections);
            let count = if self.members.is_empty() {
                theirs.len()
            } else {
                intersect_into(&self.common[c], theirs, &mut self.scratch);
                self.scratch.len()
            };
            if count < limits.min_count[c] as usize {
                return false;
            }
        }
        // Roles last: the only check that changes state, so it is undone if the party does not fit.
        let compositions = plan.composition.len();
        for c in 0..compositions {
            let roles_of = |p: u32| pool.roles(p as usize, c, compositions);
            let mask_of = |p: u32| pool.role_mask(p as usize, c, compositions);
            if !self.roles[c].offer_all(pool.players_of(e), &roles_of, &mask_of) {
                for undo in 0..c {
                    // An earlier rule accepted the party: rebuild it without the party.
                    self.rebuild_roles(undo, plan, pool);
                }
                return false;
            }
        }

        for (&lo, &hi) in self.lo.iter().zip(&self.hi) {
            self.bounds_before.extend([lo, hi]);
        }
        self.worst_before.extend_from_slice(&self.worst);
        for (i, &v) in distance.iter().enumerate() {
            self.lo[i] = self.lo[i].min(v);
            self.hi[i] = self.hi[i].max(v);
        }
        for (w, &l) in self.worst.iter_mut().zip(latency) {
            *w = worse(*w, l);
        }
        for p in distinct_players {
            for (taken, key) in self.taken.iter_mut().zip(pool.distinct(p, rules)) {
                taken.push(*key);
            }
        }
        for c in 0..collections {
            let theirs = pool.collection(e, c, collections);
            if self.members.is_empty() {
                self.common[c].clear();
                self.common[c].extend_from_slice(theirs);
            } else {
                intersect_into(&self.common[c], theirs, &mut self.scratch);
                std::mem::swap(&mut self.common[c], &mut self.scratch);
            }
        }
        self.members.push(entry);
        self.players += info.size;
        true
    }

    /// Takes the newest member out: the group is as it was before it joined.
    ///
    /// A candidate whose split failed drops its newest member and looks on, up to four times an
    /// anchor; first come, first served builds nearly the same failing candidate for anchor after
    /// anchor, and offering every other member again was a third of a squads simulation. So what
    /// the newest member changed is undone instead: the bounds and latencies from what was kept
    /// when it joined, the `!=` values it took, Hall's role counters. Collection rules (the common
    /// values cannot be widened again) and roles matched by augmenting paths are rebuilt from the
    /// other members, as the same offers in the same order give the same group.
    pub fn drop_newest(&mut self, plan: &Plan, pool: &Pool, limits: &Limits) {
        let Some(&newest) = self.members.last() else { return };
        if !self.undoing || !plan.collection.is_empty() || !self.roles.iter().all(RoleMatching::counts_only) {
            let kept: Vec<u32> = self.members[..self.members.len() - 1].to_vec();
            self.rebuild(&kept, plan, pool, limits);
            return;
        }
        self.members.pop();
        let e = newest as usize;
        let players = pool.players_of(e);
        let bounds_at = self.bounds_before.len() - 2 * self.lo.len();
        for (i, before) in self.bounds_before[bounds_at..].chunks_exact(2).enumerate() {
            (self.lo[i], self.hi[i]) = (before[0], before[1]);
        }
        self.bounds_before.truncate(bounds_at);
        let worst_at = self.worst_before.len() - self.worst.len();
        self.worst.copy_from_slice(&self.worst_before[worst_at..]);
        self.worst_before.truncate(worst_at);
        // Each `!=` rule took one value per player.
        for taken in &mut self.taken {
            taken.truncate(taken.len() - players.len());
        }
        let compositions = plan.composition.len();
        for (c, roles) in self.roles.iter_mut().enumerate() {
            for p in players.clone() {
                roles.withdraw(pool.role_mask(p as usize, c, compositions));
            }
        }
        self.players -= pool.entries[e].size;
    }

    /// Re-grows composition rule `c`'s matching from the current members.
    fn rebuild_roles(&mut self, c: usize, plan: &Plan, pool: &Pool) {
        let compositions = plan.composition.len();
        let roles_of = |p: u32| pool.roles(p as usize, c, compositions);
        let mask_of = |p: u32| pool.role_mask(p as usize, c, compositions);
        self.roles[c].clear();
        for &m in &self.members {
            for p in pool.players_of(m as usize) {
                self.roles[c].offer(p, &roles_of, &mask_of);
            }
        }
    }

    /// Whether every composition rule's role slots are filled across the match.
    pub fn roles_complete(&self) -> bool {
        self.roles.iter().all(RoleMatching::complete)
    }

    /// Values every member shares, per collection rule.
    pub fn common(&self) -> &[Vec<u32>] {
        &self.common
    }

    /// The region with the lowest worst latency (see [`best_region`]), and that latency.
    pub fn best_region(&self) -> Option<(usize, u32)> {
        best_region(self.worst.iter().copied())
    }
}

// The rules a candidate match applies to a ticket, written once for a [`Group`] and a [`Pair`].

/// Whether every distance rule still holds when a ticket whose values are `values` joins members
/// whose lowest and highest values are `lo` and `hi` (infinite while there are none).
pub(crate) fn distances_hold(lo: &[f64], hi: &[f64], values: &[f64], limits: &Limits) -> bool {
    // Zipped rather than indexed: no bounds checks in a check made for every offer.
    !values
        .iter()
        .zip(lo.iter().zip(hi))
        .zip(&limits.max_distance)
        .any(|((&v, (&lo, &hi)), &limit)| hi.max(v) - lo.min(v) > limit)
}

/// Whether some region is within the latency limit for everyone when a ticket whose latencies are
/// `latency` joins members whose worst latencies are `worst`.
pub(crate) fn region_in_reach(worst: &[u32], latency: &[u32], limits: &Limits) -> bool {
    let limit = limits.max_latency.unwrap_or(f64::INFINITY);
    worst.iter().zip(latency).any(|(&w, &l)| {
        let worst = worse(w, l);
        worst != UNMEASURED && f64::from(worst) <= limit
    })
}

/// The worse of two latencies to a region, where an unmeasured one rules the region out: the
/// higher, since [`UNMEASURED`] is above every measurement.
pub(crate) fn worse(w: u32, l: u32) -> u32 {
    const { assert!(UNMEASURED == u32::MAX) };
    w.max(l)
}

/// The region whose worst latency is lowest (the first such, in name order), and that latency.
pub(crate) fn best_region(worst: impl Iterator<Item = u32>) -> Option<(usize, u32)> {
    // Only a strictly lower latency replaces the best so far, so the first of equals stays, and
    // an unmeasured region (above every measurement) never does.
    let (mut best, mut best_ms) = (0, UNMEASURED);
    for (i, w) in worst.enumerate() {
        if w < best_ms {
            (best, best_ms) = (i, w);
        }
    }
    (best_ms != UNMEASURED).then_some((best, best_ms))
}

/// The skill spread of a match: the highest of its members' highest skills less the lowest of
/// their lowest.
pub(crate) fn skill_spread(pool: &Pool, members: &[u32]) -> f64 {
    let (lo, hi) = members.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &m| {
        let (skill_lo, skill_hi) = pool.skill_range(m as usize);
        (lo.min(skill_lo), hi.max(skill_hi))
    });
    hi - lo
}

/// A duel's candidate match: an anchor and at most one opponent, solo tickets on teams of one.
///
/// It applies a [`Group`]'s rules with the same functions, but keeps no summaries: a group of one
/// ticket has that ticket's values as its lowest, highest and worst, so the anchor's own rows
/// stand in for them. Before anyone joins, the anchor checked against itself gets what an empty
/// group gives it: a spread of 0, and the regions it reaches within the limit. Only for rule sets
/// with nothing else to check (see `duels_only` in the parent module).
#[derive(Debug, Default)]
pub(crate) struct Pair {
    members: [u32; 2],
    len: usize,
    players: u32,
    /// The best region of both, found when the second joined (see [`Pair::best_region`]).
    region: Option<(usize, u32)>,
}

impl Pair {
    pub fn clear(&mut self) {
        self.len = 0;
        self.players = 0;
    }

    /// As [`Group::offer`], for a rule set with only distance and latency rules.
    #[inline(always)]
    pub fn offer(&mut self, entry: u32, plan: &Plan, pool: &Pool, limits: &Limits) -> bool {
        let e = entry as usize;
        let info = &pool.entries[e];
        if !info.matchable || self.players + info.size > plan.max_players {
            return false;
        }
        let first = if self.len == 0 { e } else { self.members[0] as usize };
        let own = pool.distance(first);
        if !distances_hold(own, own, pool.distance(e), limits) {
            return false;
        }
        // The best region of the pair so far is worked out here, while the latencies are at hand,
        // for the match to report. A region is in reach exactly when the best one is, since the
        // best has the lowest worst latency. (With the anchor alone, `first` is `e`: the worse of
        // a latency and itself is itself.)
        let region = best_region_of(pool.latency(first), pool.latency(e));
        let limit = limits.max_latency.unwrap_or(f64::INFINITY);
        if plan.has_latency_rule && !region.is_some_and(|(_, ms)| f64::from(ms) <= limit) {
            return false;
        }
        self.region = region;
        // A matchable ticket is one player, at most two fit: there is room.
        self.members[self.len] = entry;
        self.len += 1;
        self.players += info.size;
        true
    }

    /// Entries, in the order they joined; the first is the anchor.
    pub fn members(&self) -> &[u32] {
        &self.members[..self.len]
    }

    pub fn players(&self) -> u32 {
        self.players
    }

    /// Both members, once the pair is full.
    pub fn both(&self) -> [u32; 2] {
        debug_assert_eq!(self.len, 2);
        self.members
    }

    /// Drops the newest member: what [`Group::rebuild`] does without it, since the anchor alone is
    /// taken again as it was taken first.
    pub fn drop_newest(&mut self, pool: &Pool) {
        self.len -= 1;
        self.players -= pool.entries[self.members[self.len] as usize].size;
        let anchor = pool.latency(self.members[0] as usize);
        self.region = best_region_of(anchor, anchor);
    }

    /// The region with the lowest worst latency of the members, as [`Group::best_region`] finds
    /// it: found as each joined.
    pub fn best_region(&self) -> Option<(usize, u32)> {
        self.region
    }
}

/// [`best_region`] of two tickets' latencies: the region whose worse of the two is lowest.
fn best_region_of(a: &[u32], b: &[u32]) -> Option<(usize, u32)> {
    best_region(a.iter().zip(b).map(|(&a, &b)| worse(a, b)))
}
