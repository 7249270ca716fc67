//! Splitting a candidate match into teams.
//!
//! Parties stay whole, every team ends within its size bounds and can field the composition's roles,
//! every team-balance rule holds, and among the splits that do, the one with the smallest difference
//! between team averages wins. Small matches are searched exhaustively (with identical empty teams
//! treated as one, so 5v5 is 126 splits, not 1,024); large ones are drafted greedily and then improved
//! by swaps, because their number of splits is astronomical.

use super::group::{augment, hall_holds};
use super::plan::{Limits, Plan};
use super::prepare::Pool;
use super::u32_of;

/// At most this many tickets are split exhaustively.
const EXHAUSTIVE_TICKETS: usize = 14;
/// Search nodes after which the exhaustive search stops and keeps the best split found so far.
const NODE_BUDGET: u32 = 50_000;
/// Rounds of swaps the heuristic tries.
const SWAP_ROUNDS: usize = 64;
/// Team averages closer than this are equal: sums of floats are not exact.
const EPSILON: f64 = 1e-9;
/// The team of a member the search has not placed yet.
const UNPLACED: usize = usize::MAX;

/// The candidate being split: read-only during a split.
#[derive(Clone, Copy)]
struct Problem<'p, 'a> {
    plan: &'p Plan<'a>,
    pool: &'p Pool<'a>,
    limits: &'p Limits,
    members: &'p [u32],
    sizes: &'p [u32],
}

/// Buffers the checks reuse, so that splitting a match allocates nothing once warm.
#[derive(Debug, Default)]
struct Scratch {
    counts: Vec<u32>,
    sums: Vec<f64>,
    holders: Vec<Vec<u32>>,
    visited: Vec<bool>,
    reach: Vec<u32>,
    /// Each member's players' average of a balance column, and its players (see
    /// `Problem::surely_unbalanced`).
    averages: Vec<(f64, f64)>,
}

impl Problem<'_, '_> {
    fn teams(&self) -> usize {
        self.plan.slots.len()
    }

    fn balance(&self, member: usize, column: usize) -> f64 {
        // A rule set with nothing numeric to balance has no columns: every split is even.
        self.pool
            .balance(self.members[member] as usize)
            .get(column)
            .copied()
            .unwrap_or(0.0)
    }

    /// The largest difference between team averages of `column`, over teams with players.
    fn imbalance(&self, scratch: &mut Scratch, team_of: &[usize], column: usize) -> f64 {
        self.tally(scratch, team_of, column);
        spread_of_averages(&scratch.sums, &scratch.counts)
    }

    /// [`Problem::imbalance`] of a split where member `t` is team `t`'s one player (see `solo_seats`),
    /// without tallying teams: a duel is split tens of thousands of times a round. Each team's
    /// average is its sum, started from 0.0 as the tally starts it, over one player; adding to 0.0
    /// is kept so that a -0.0 value gives the same bits as the tally does.
    fn solo_imbalance(&self, column: usize) -> f64 {
        spread((0..self.members.len()).map(|m| (0.0 + self.balance(m, column)) / 1.0))
    }

    /// Players and the sum of `column` per team, into `scratch`.
    fn tally(&self, scratch: &mut Scratch, team_of: &[usize], column: usize) {
        scratch.counts.clear();
        scratch.counts.resize(self.teams(), 0);
        scratch.sums.clear();
        scratch.sums.resize(self.teams(), 0.0);
        for (m, &t) in team_of.iter().enumerate().filter(|&(_, &t)| t != UNPLACED) {
            scratch.sums[t] += self.balance(m, column);
            scratch.counts[t] += self.sizes[m];
        }
    }

    fn sizes_ok(&self, scratch: &mut Scratch, team_of: &[usize]) -> bool {
        self.tally(scratch, team_of, 0);
        scratch
            .counts
            .iter()
            .zip(&self.plan.slots)
            .zip(&self.limits.team_min)
            .all(|((&n, slot), &min)| n >= min && n <= slot.max_players)
    }

    /// Whether some team-balance rule must fail however the members are split, by a bound that
    /// holds for every split: the teams' mean `m` (players weighted) lies between the lowest and the
    /// highest team average; and the team of a ticket whose players average `a` averages at least
    /// `lo + (a - lo) * s / n_max` (its `s` players, the rest of a team of at most `n_max` at the
    /// lowest ticket average `lo`), and symmetrically at most. So the imbalance is at least the
    /// highest such floor less the lowest such ceiling, and each of them against `m`. A margin keeps
    /// rounding from refusing a split the tally would accept.
    ///
    /// A squads candidate of dozens of tickets is asked this by every anchor that gathers it, so the
    /// averages go to a reused buffer and the floor and ceiling are folded in one pass.
    fn surely_unbalanced(&self, scratch: &mut Scratch) -> bool {
        let n_max = self.plan.largest_team;
        if n_max == 0 || self.members.is_empty() || self.limits.max_difference.is_empty() {
            return false;
        }
        let n_max = f64::from(n_max);
        let size = |m: usize| f64::from(self.sizes[m].max(1));
        let players: f64 = (0..self.members.len()).map(size).sum();
        let averages = &mut scratch.averages;
        self.limits.max_difference.iter().enumerate().any(|(column, &limit)| {
            // Each ticket's players' average, read from the pool once for the folds below.
            averages.clear();
            averages.extend((0..self.members.len()).map(|m| (self.balance(m, column) / size(m), size(m))));
            let (lo, hi) = averages
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(a, _)| {
                    (lo.min(a), hi.max(a))
                });
            let mean = averages.iter().map(|&(a, s)| a * s).sum::<f64>() / players;
            let (floor, ceiling) =
                (averages.iter()).fold((f64::NEG_INFINITY, f64::INFINITY), |(floor, ceiling), &(a, s)| {
                    (
                        floor.max(lo + (a - lo) * s / n_max),
                        ceiling.min(hi - (hi - a) * s / n_max),
                    )
                });
            let bound = (floor - ceiling).max(floor - mean).max(mean - ceiling);
            let margin = EPSILON + 1e-9 * lo.abs().max(hi.abs());
            bound.is_finite() && bound > limit + margin
        })
    }

    /// Every team-balance rule holds.
    fn balanced(&self, scratch: &mut Scratch, team_of: &[usize]) -> bool {
        let limits = &self.limits.max_difference;
        (0..limits.len()).all(|column| self.imbalance(scratch, team_of, column) <= limits[column] + EPSILON)
    }

    /// Every team can field every composition rule's roles.
    fn composed(&self, scratch: &mut Scratch, team_of: &[usize]) -> bool {
        self.plan.composition.is_empty() || (0..self.teams()).all(|t| self.team_composed(scratch, team_of, t))
    }

    fn team_composed(&self, scratch: &mut Scratch, team_of: &[usize], team: usize) -> bool {
        let rules = self.plan.composition.len();
        self.plan.composition.iter().enumerate().all(|(c, rule)| {
            let roles_of = |p: u32| self.pool.roles(p as usize, c, rules);
            if !rule.team_need.is_empty() {
                let masks = team_of
                    .iter()
                    .enumerate()
                    .filter(|&(_, &t)| t == team)
                    .flat_map(|(m, _)| self.pool.players_of(self.members[m] as usize))
                    .map(|p| self.pool.role_mask(p as usize, c, rules));
                return hall_holds(masks, &rule.team_need, &mut scratch.reach);
            }
            let roles = rule.per_team.len();
            scratch.holders.iter_mut().for_each(Vec::clear);
            scratch.holders.resize_with(roles, Vec::new);
            scratch.visited.resize(roles, false);
            let mut filled = 0;
            for (m, _) in team_of.iter().enumerate().filter(|(_, &t)| t == team) {
                for p in self.pool.players_of(self.members[m] as usize) {
                    scratch.visited.iter_mut().for_each(|v| *v = false);
                    if augment(
                        p,
                        &roles_of,
                        &rule.per_team,
                        &mut scratch.holders[..roles],
                        &mut scratch.visited[..roles],
                    ) {
                        filled += 1;
                    }
                }
            }
            filled == rule.role_slots_per_team()
        })
    }

    fn valid(&self, scratch: &mut Scratch, team_of: &[usize]) -> bool {
        self.sizes_ok(scratch, team_of) && self.balanced(scratch, team_of) && self.composed(scratch, team_of)
    }
}

/// Appends ticket `entry`'s reach counts: for each composition rule checked by Hall's condition, in
/// turn, and each set of its roles, how many of the ticket's players can take one of them.
fn add_reach(plan: &Plan, pool: &Pool, entry: u32, reach: &mut Vec<u32>) {
    let rules = plan.composition.len();
    for (c, rule) in plan.composition.iter().enumerate() {
        let start = reach.len();
        reach.resize(start + rule.team_need.len(), 0);
        for p in pool.players_of(entry as usize) {
            let mask = pool.role_mask(p as usize, c, rules);
            for (set, r) in reach[start..].iter_mut().enumerate() {
                *r += u32::from(set & mask != 0);
            }
        }
    }
}

/// Whether a ticket of `size` players whose reach counts are `reach` (see [`add_reach`]) leaves any
/// team it joins too few places for the roles its players cannot take, by Hall's counts: a team
/// holding it has at most `largest_team - size` other players, each of whom adds at most one to the players
/// able to take a set of roles. If that falls short of what the team needs for some set, no split
/// fields the roles.
fn short_of_roles(plan: &Plan, size: u32, reach: &[u32]) -> bool {
    let others = plan.largest_team.saturating_sub(size);
    let needs = plan.composition.iter().flat_map(|rule| &rule.team_need);
    needs.zip(reach).any(|(&need, &reach)| need > reach + others)
}

/// The team with the lowest sum among those with room for `size` more players under `limit`; the
/// first such team on a tie. Generic over `limit`, so that the loop inlines it: a draft makes this
/// choice for every member, and a squads candidate is drafted by every anchor that gathers it.
fn lightest_with_room(sums: &[f64], counts: &[u32], size: u32, limit: impl Fn(usize) -> u32) -> Option<usize> {
    let mut lightest: Option<usize> = None;
    for (t, (&sum, &count)) in sums.iter().zip(counts).enumerate() {
        if count + size <= limit(t) && lightest.is_none_or(|l| sum.total_cmp(&sums[l]).is_lt()) {
            lightest = Some(t);
        }
    }
    lightest
}

/// The largest difference between the averages of teams that have players.
pub(crate) fn spread_of_averages(sums: &[f64], counts: &[u32]) -> f64 {
    spread(
        sums.iter()
            .zip(counts)
            .filter(|(_, &n)| n > 0)
            .map(|(&s, &n)| s / f64::from(n)),
    )
}

/// The largest difference between `averages`, in the order given; 0 when there are none.
fn spread(averages: impl Iterator<Item = f64>) -> f64 {
    let (lo, hi) = averages.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), a| (lo.min(a), hi.max(a)));
    if lo.is_finite() {
        hi - lo
    } else {
        0.0
    }
}

/// Whether each team takes exactly one player and the candidate is that many solo tickets.
fn solo_seats(problem: Problem) -> bool {
    problem.members.len() == problem.plan.slots.len()
        && problem.sizes.iter().all(|&n| n == 1)
        && problem.plan.slots.iter().all(|s| s.max_players == 1)
}

/// Splits a candidate whose teams are one player each and whose tickets are solos (see
/// [`solo_seats`]); `team_of` is member `t` on team `t`. All splits are the same up to naming the
/// teams (1v1, free-for-all), so the first is as good as any. `imbalance` is
/// [`Problem::solo_imbalance`], or what a duel works out the same way for two.
fn split_solo_seats(
    problem: Problem,
    scratch: &mut Scratch,
    team_of: &[usize],
    imbalance: impl Fn(usize) -> f64,
) -> Option<f64> {
    // Each team holds exactly one player, so the sizes hold when no minimum exceeds one: nothing
    // to tally.
    if !problem.limits.team_min.iter().all(|&min| min <= 1) {
        return None;
    }
    // The first column's imbalance is the split's, and its rule's check: worked out once.
    let first = imbalance(0);
    let balanced = problem
        .limits
        .max_difference
        .iter()
        .enumerate()
        .all(|(column, &limit)| {
            let imbalance = if column == 0 { first } else { imbalance(column) };
            imbalance <= limit + EPSILON
        });
    (balanced && problem.composed(scratch, team_of)).then_some(first)
}

/// Splits candidates into teams; one per round, its buffers reused from match to match.
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    sizes: Vec<u32>,
    order: Vec<usize>,
    assigned: Vec<usize>,
    counts: Vec<u32>,
    sums: Vec<f64>,
    best: Vec<usize>,
    /// Every complete split the search reached: its imbalance and its index in `leaf_teams`.
    leaves: Vec<(f64, usize)>,
    /// The leaves' team of each member, `members` at a time.
    leaf_teams: Vec<usize>,
    nodes: u32,
    remaining: u32,
    /// The imbalance above which a leaf is not kept: the first balance rule's limit.
    leaf_limit: f64,
    /// Whether the search leaves a branch as soon as a team it fills cannot field the roles: with
    /// [`Splitter::shortcuts`], and only where the whole tree fits in [`NODE_BUDGET`], so that the
    /// budget never cuts short a search that would otherwise have run to the end and the leaves
    /// kept are the same. Most of a 5v5 candidate's splits fail on roles.
    pruning_full_teams: bool,
    /// For the composition rules checked by Hall's condition, one after another: for each member
    /// (`reach_width` at a time), how many of its players can take one of each set of roles.
    member_reach: Vec<u32>,
    /// The same for every entry of the pool (see [`add_reach`]), worked out once a round: a ticket
    /// is a member of many candidates.
    entry_reach: Vec<u32>,
    /// The same, summed over each team's members as the search places them, so a leaf whose teams
    /// cannot field the roles is dropped where it is reached, in a few comparisons, rather than
    /// sorted with the others and checked from scratch: most of a 5v5 candidate's splits fail on
    /// roles, not on balance.
    team_reach: Vec<u32>,
    /// The composition rules' sets of roles, all told: each member's and each entry's reach counts.
    reach_width: usize,
    /// [`TwoTeams`]'s steps, reused.
    steps: Vec<Step>,
    scratch: Scratch,
    /// Whether a candidate no split can serve is refused without a search or a draft, which would
    /// fail too: when some ticket leaves its team too few places for the roles (see
    /// [`Splitter::roles_out_of_reach`]; an anchor that does is not even gathered for, see
    /// [`Splitter::never_splits`]), and, too many for the exhaustive search, when no split could
    /// meet its balance rules (see `Problem::surely_unbalanced`). Two teams are searched by
    /// [`TwoTeams`]. This only spares work: most failing 5v5 candidates were searched in full, and
    /// a squads rule set whose parties fill teams alone spent thousands of drafts a round. Off only
    /// to test that it changes nothing.
    shortcuts: bool,
}

impl Splitter {
    /// A splitter for a round over `pool`; `shortcuts` sets [`Splitter::shortcuts`].
    pub fn new(plan: &Plan, pool: &Pool, shortcuts: bool) -> Self {
        let reach_width = plan.composition.iter().map(|c| c.team_need.len()).sum();
        let mut entry_reach = Vec::new();
        if reach_width > 0 {
            entry_reach.reserve(pool.len() * reach_width);
            for e in 0..pool.len() {
                add_reach(plan, pool, u32_of(e), &mut entry_reach);
            }
        }
        Splitter {
            shortcuts,
            reach_width,
            entry_reach,
            ..Splitter::default()
        }
    }

    /// Entry `e`'s reach counts (see [`add_reach`]).
    fn reach_of(&self, e: u32) -> &[u32] {
        let width = self.reach_width;
        &self.entry_reach[e as usize * width..(e as usize + 1) * width]
    }

    /// Splits `members` into the plan's teams; on success the split is in [`Splitter::team_of`] and
    /// the imbalance (of balance column 0) is returned. `None` when no split satisfies the rules.
    pub fn split(&mut self, plan: &Plan, pool: &Pool, limits: &Limits, members: &[u32]) -> Option<f64> {
        self.sizes.clear();
        self.sizes
            .extend(members.iter().map(|&m| pool.entries[m as usize].size));
        let sizes = std::mem::take(&mut self.sizes);
        let problem = Problem {
            plan,
            pool,
            limits,
            members,
            sizes: &sizes,
        };
        if solo_seats(problem) {
            self.best.clear();
            self.best.extend(0..members.len());
            let found = split_solo_seats(problem, &mut self.scratch, &self.best, |c| problem.solo_imbalance(c));
            // Hand the buffer back, or every 1v1 match would allocate a fresh one.
            self.sizes = sizes;
            return found;
        }
        self.count_reach(problem);
        if self.shortcuts && self.roles_out_of_reach(problem) {
            self.sizes = sizes;
            return None;
        }
        let found = if members.len() <= EXHAUSTIVE_TICKETS {
            self.exhaustive(problem)
        } else {
            None
        };
        // A search that ran to the end and found nothing proves there is no split; only one cut
        // short (or never started) hands over to the heuristic.
        let searched_all = members.len() <= EXHAUSTIVE_TICKETS && self.nodes <= NODE_BUDGET;
        // The draft is a heuristic over many tickets; where no split at all can balance, it would
        // fail, and is not tried.
        let found = found.or_else(|| {
            if searched_all || (self.shortcuts && problem.surely_unbalanced(&mut self.scratch)) {
                None
            } else {
                self.draft(problem)
            }
        });
        self.sizes = sizes;
        found
    }

    /// [`Splitter::split`] of a duel's two solo tickets, teams of one player each: its split is
    /// theirs in order (the first member on the first team), and [`Splitter::team_of`] is not set.
    ///
    /// A column's imbalance is worked out from the two values directly, without
    /// [`Problem::solo_imbalance`]'s loop over members: each team's average is its one player's
    /// value. Tens of thousands of duels are split a round, and the general loop cost more than the
    /// rest of deciding a duel.
    pub fn split_duel(&mut self, plan: &Plan, pool: &Pool, limits: &Limits, members: &[u32; 2]) -> Option<f64> {
        let problem = Problem {
            plan,
            pool,
            limits,
            members,
            sizes: &[1, 1],
        };
        debug_assert!(solo_seats(problem));
        let [first, second] = members.map(|m| pool.balance(m as usize));
        let imbalance = |column: usize| match (first.get(column), second.get(column)) {
            // Started from 0.0, as the tally starts a team's sum (see `Problem::solo_imbalance`).
            (Some(&a), Some(&b)) => spread([0.0 + a, 0.0 + b].into_iter()),
            // A rule set with nothing numeric to balance has no columns: every split is even.
            _ => 0.0,
        };
        split_solo_seats(problem, &mut self.scratch, &[0, 1], imbalance)
    }

    /// The team slot of each member, parallel to the members of the last successful split.
    pub fn team_of(&self) -> &[usize] {
        &self.best
    }

    /// Depth-first search over every split, keeping the valid one with the least imbalance.
    fn exhaustive(&mut self, problem: Problem) -> Option<f64> {
        let teams = problem.teams();
        let n = problem.members.len();
        // Big parties first: they constrain the most, so dead ends are found near the root.
        self.order.clear();
        self.order.extend(0..n);
        self.order
            .sort_by(|&a, &b| problem.sizes[b].cmp(&problem.sizes[a]).then(a.cmp(&b)));
        self.assigned.clear();
        self.assigned.resize(n, UNPLACED);
        self.counts.clear();
        self.counts.resize(teams, 0);
        self.sums.clear();
        self.sums.resize(teams, 0.0);
        self.remaining = problem.sizes.iter().sum();
        self.leaves.clear();
        self.leaf_teams.clear();
        self.nodes = 0;
        // Past the first balance rule's limit a split fails that rule: such leaves are not kept.
        self.leaf_limit = problem
            .limits
            .max_difference
            .first()
            .map_or(f64::INFINITY, |l| l + EPSILON);
        // Two teams whose reach counts fit in a byte each: the search of `TwoTeams`.
        let in_two = self.shortcuts && self.two_teams(problem);
        if !in_two {
            // Nodes of the full tree: one per placement of the first `d` tickets, for every depth.
            let teams = teams as u64;
            let full_tree = (0..=n as u32).try_fold(0u64, |nodes, d| nodes.checked_add(teams.checked_pow(d)?));
            self.pruning_full_teams = self.shortcuts
                && self.reach_width > 0
                && full_tree.is_some_and(|nodes| nodes <= u64::from(NODE_BUDGET));
            self.descend(problem, 0);
        }

        // Sizes hold by construction; the rest is checked from the most even split up, so the
        // first valid one is the answer and most splits are never checked.
        // Leaves are distinct, so an unstable sort gives the one order (and allocates nothing).
        self.leaves
            .sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for k in 0..self.leaves.len() {
            let (imbalance, leaf) = self.leaves[k];
            self.best.clear();
            if in_two {
                // Team 1 holds the mask's members: bit b is the member at position n - 1 - b.
                self.best.resize(n, 0);
                for (b, &member) in self.order.iter().rev().enumerate() {
                    self.best[member] = (leaf >> b) & 1;
                }
            } else {
                self.best.extend_from_slice(&self.leaf_teams[leaf * n..(leaf + 1) * n]);
            }
            if problem.balanced(&mut self.scratch, &self.best) && problem.composed(&mut self.scratch, &self.best) {
                return Some(imbalance);
            }
        }
        None
    }

    /// [`Splitter::descend`] for two teams, by [`TwoTeams`]: the same leaves, kept in the same
    /// order, as masks of the members on team 1 (bit `b` the member at position `n - 1 - b` of
    /// `order`, so that masks grow in the order the search reaches its leaves). `false`, having done
    /// nothing, where it does not apply: more than two teams, a ticket of no players, or counts
    /// that do not fit its bytes.
    fn two_teams(&mut self, problem: Problem) -> bool {
        let n = problem.members.len();
        let players: u32 = problem.sizes.iter().sum();
        let needs = problem.plan.composition.iter().flat_map(|rule| &rule.team_need);
        if problem.teams() != 2
            || n == 0
            || problem.sizes.contains(&0)
            || self.reach_width > 8
            || players >= 128
            || needs.clone().any(|&need| need >= 128)
        {
            return false;
        }
        let width = self.reach_width;
        self.steps.clear();
        self.steps.extend(self.order.iter().map(|&member| Step {
            players: problem.sizes[member],
            value: problem.balance(member, 0),
            reach: one_to_a_byte(&self.member_reach[member * width..(member + 1) * width]),
            rest_players: 0,
            rest_reach: 0,
        }));
        let (mut rest_players, mut rest_reach) = (0, 0);
        for step in self.steps.iter_mut().rev() {
            step.rest_players = rest_players;
            step.rest_reach = rest_reach;
            rest_players += step.players;
            rest_reach += step.reach;
        }
        let slots = &problem.plan.slots;
        let min = [problem.limits.team_min[0], problem.limits.team_min[1]];
        let max = [slots[0].max_players, slots[1].max_players];
        let mut search = TwoTeams {
            steps: &self.steps,
            min,
            max,
            // Identical empty teams: the first ticket goes to team 0 only.
            interchangeable: min[0] == min[1] && max[0] == max[1],
            need: one_to_a_byte(needs),
            leaf_limit: self.leaf_limit,
            leaves: &mut self.leaves,
            nodes: 0,
        };
        search.place(0, Placed::default());
        self.nodes = search.nodes;
        true
    }

    fn descend(&mut self, problem: Problem, depth: usize) {
        self.nodes += 1;
        if self.nodes > NODE_BUDGET {
            return;
        }
        let slots = &problem.plan.slots;
        let Some(&member) = self.order.get(depth) else {
            let imbalance = spread_of_averages(&self.sums, &self.counts);
            // Leaves keep their order of discovery, the tie-break among equally even splits. A
            // leaf dropped for its roles would have failed `composed` after the sort: the leaves
            // kept are in the same order, and the first valid one is the same.
            if imbalance <= self.leaf_limit && self.teams_reach_roles(problem) {
                self.leaves.push((imbalance, self.leaves.len()));
                self.leaf_teams.extend_from_slice(&self.assigned);
            }
            return;
        };
        let size = problem.sizes[member];
        let value = problem.balance(member, 0);
        for team in 0..slots.len() {
            if self.counts[team] + size > slots[team].max_players {
                continue;
            }
            // Identical empty teams are interchangeable: try only the first of them.
            let interchangeable = (0..team).any(|earlier| {
                self.counts[earlier] == 0
                    && self.counts[team] == 0
                    && slots[earlier].max_players == slots[team].max_players
                    && problem.limits.team_min[earlier] == problem.limits.team_min[team]
            });
            if interchangeable {
                continue;
            }
            let sum_before = self.sums[team];
            self.counts[team] += size;
            self.sums[team] += value;
            self.remaining -= size;
            self.assigned[member] = team;
            self.move_reach(member, team, true);
            // Prune when the players left cannot bring every team up to its minimum.
            let shortfall: u32 = self
                .counts
                .iter()
                .zip(&problem.limits.team_min)
                .map(|(&n, &min)| min.saturating_sub(n))
                .sum();
            // A team this ticket filled takes no one else: if it cannot field the roles, no split
            // below can, and none of their leaves would be kept.
            let filled_short = self.pruning_full_teams
                && self.counts[team] == slots[team].max_players
                && !self.team_reaches_roles(problem, team);
            if shortfall <= self.remaining && !filled_short {
                self.descend(problem, depth + 1);
            }
            self.move_reach(member, team, false);
            self.assigned[member] = UNPLACED;
            self.counts[team] -= size;
            self.sums[team] = sum_before;
            self.remaining += size;
        }
    }

    /// Whether some member leaves any team it joins too few places for the roles (see
    /// [`short_of_roles`]): then no split fields them, and neither the search nor the draft can
    /// succeed. Most 5v5 candidates that fail to split fail so (a party of four who all want to deal
    /// damage): caught here, they cost no search.
    fn roles_out_of_reach(&self, problem: Problem) -> bool {
        let width = self.reach_width;
        if width == 0 {
            return false;
        }
        (problem.sizes.iter().zip(self.member_reach.chunks_exact(width)))
            .any(|(&size, reach)| short_of_roles(problem.plan, size, reach))
    }

    /// Whether ticket `entry` can be in no match this round: it leaves any team it joins too few
    /// places for the roles (see [`Splitter::roles_out_of_reach`]), which depends on it alone. A
    /// candidate of such an anchor fails every split, however it is gathered; with
    /// [`Splitter::shortcuts`] it is not gathered.
    pub fn never_splits(&self, plan: &Plan, pool: &Pool, entry: u32) -> bool {
        self.shortcuts
            && self.reach_width > 0
            && short_of_roles(plan, pool.entries[entry as usize].size, self.reach_of(entry))
    }

    /// Fills `member_reach` for the candidate and empties `team_reach`.
    fn count_reach(&mut self, problem: Problem) {
        let width = self.reach_width;
        self.member_reach.clear();
        if width > 0 {
            for &m in problem.members {
                let row = m as usize * width..(m as usize + 1) * width;
                self.member_reach.extend_from_slice(&self.entry_reach[row]);
            }
        }
        self.team_reach.clear();
        self.team_reach.resize(problem.teams() * self.reach_width, 0);
    }

    /// Adds member `member`'s reach to team `team`'s, or takes it back out.
    fn move_reach(&mut self, member: usize, team: usize, add: bool) {
        let width = self.reach_width;
        let theirs = &self.member_reach[member * width..(member + 1) * width];
        for (r, &n) in self.team_reach[team * width..(team + 1) * width].iter_mut().zip(theirs) {
            *r = if add { *r + n } else { *r - n };
        }
    }

    /// Hall's condition for every team and every composition rule checked by it, as
    /// [`hall_holds`] would find it for the split the search has placed.
    fn teams_reach_roles(&self, problem: Problem) -> bool {
        let width = self.reach_width;
        if width == 0 {
            return true;
        }
        (0..problem.teams()).all(|team| self.team_reaches_roles(problem, team))
    }

    /// [`Splitter::teams_reach_roles`] for one team.
    fn team_reaches_roles(&self, problem: Problem, team: usize) -> bool {
        let width = self.reach_width;
        let mut reach = self.team_reach[team * width..(team + 1) * width].iter();
        problem
            .plan
            .composition
            .iter()
            .all(|rule| rule.team_need.iter().zip(reach.by_ref()).all(|(need, r)| r >= need))
    }

    /// A greedy draft, then swaps: for matches too big to search.
    ///
    /// Teams are given target sizes (their minimums, then the rest round-robin up to their
    /// maximums). Tickets, biggest parties and then highest values first, go to the team with room
    /// whose sum is lowest: a snake draft that also works with parties. Then, while it helps, a ticket
    /// of the team with the highest average swaps with one of the same size from the team with the
    /// lowest.
    fn draft(&mut self, problem: Problem) -> Option<f64> {
        let slots = &problem.plan.slots;
        let teams = slots.len();
        let total: u32 = problem.sizes.iter().sum();
        let mut targets = problem.limits.team_min.clone();
        let mut left = total.checked_sub(targets.iter().sum())?;
        while left > 0 {
            let before = left;
            for (t, slot) in slots.iter().enumerate() {
                if left > 0 && targets[t] < slot.max_players {
                    targets[t] += 1;
                    left -= 1;
                }
            }
            if left == before {
                return None;
            }
        }

        // Each member's keys read once, not once per comparison: a candidate of many tickets is
        // drafted by every anchor that gathers it, round after round. The member's index breaks
        // ties, so the unstable sort orders as a stable one would.
        let mut keyed: Vec<(u32, f64, usize)> = (0..problem.members.len())
            .map(|m| {
                let size = problem.sizes[m];
                (size, problem.balance(m, 0) / f64::from(size.max(1)), m)
            })
            .collect();
        keyed.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
        let order: Vec<usize> = keyed.into_iter().map(|(_, _, m)| m).collect();
        let mut team_of = vec![0; problem.members.len()];
        let mut counts = vec![0u32; teams];
        let mut sums = vec![0.0f64; teams];
        for &m in &order {
            let size = problem.sizes[m];
            let team = lightest_with_room(&sums, &counts, size, |t| targets[t])
                .or_else(|| lightest_with_room(&sums, &counts, size, |t| slots[t].max_players))?;
            team_of[m] = team;
            counts[team] += size;
            sums[team] += problem.balance(m, 0);
        }

        // Swaps between the highest and the lowest team, while they reduce (failing teams, imbalance).
        let scratch = &mut self.scratch;
        let mut score = |team_of: &[usize]| {
            let failing = if problem.plan.composition.is_empty() {
                0
            } else {
                (0..teams)
                    .filter(|&t| !problem.team_composed(scratch, team_of, t))
                    .count()
            };
            (failing, problem.imbalance(scratch, team_of, 0))
        };
        let better = |a: (usize, f64), b: (usize, f64)| a.0 < b.0 || (a.0 == b.0 && a.1 < b.1 - EPSILON);
        let mut current = score(&team_of);
        for _ in 0..SWAP_ROUNDS {
            let average = |t: usize| {
                if counts[t] == 0 {
                    0.0
                } else {
                    sums[t] / f64::from(counts[t])
                }
            };
            let by_average = |a: &usize, b: &usize| average(*a).total_cmp(&average(*b)).then(a.cmp(b));
            let (Some(high), Some(low)) = ((0..teams).max_by(by_average), (0..teams).min_by(by_average)) else {
                break;
            };
            let highs: Vec<usize> = (0..team_of.len()).filter(|&m| team_of[m] == high).collect();
            let lows: Vec<usize> = (0..team_of.len()).filter(|&m| team_of[m] == low).collect();
            let mut best: Option<((usize, f64), usize, usize)> = None;
            for &a in &highs {
                for &b in lows.iter().filter(|&&b| problem.sizes[b] == problem.sizes[a]) {
                    team_of[a] = low;
                    team_of[b] = high;
                    let candidate = score(&team_of);
                    team_of[a] = high;
                    team_of[b] = low;
                    if better(candidate, current) && best.is_none_or(|(s, _, _)| better(candidate, s)) {
                        best = Some((candidate, a, b));
                    }
                }
            }
            let Some((candidate, a, b)) = best else { break };
            team_of[a] = low;
            team_of[b] = high;
            let (va, vb) = (problem.balance(a, 0), problem.balance(b, 0));
            sums[high] += vb - va;
            sums[low] += va - vb;
            current = candidate;
        }

        if !problem.valid(&mut self.scratch, &team_of) {
            return None;
        }
        let imbalance = problem.imbalance(&mut self.scratch, &team_of, 0);
        self.best = team_of;
        Some(imbalance)
    }
}

/// A ticket of a two-team search, at its position of the search's order: players, balance column 0,
/// and reach counts (see [`Splitter::member_reach`]) one to a byte; and the players and reach of
/// every ticket after it.
#[derive(Debug, Clone, Copy)]
struct Step {
    players: u32,
    value: f64,
    reach: u64,
    rest_players: u32,
    rest_reach: u64,
}

/// What the tickets placed so far make of the two teams, and the mask of those on team 1.
#[derive(Debug, Clone, Copy, Default)]
struct Placed {
    players: [u32; 2],
    sums: [f64; 2],
    reach: [u64; 2],
    mask: usize,
}

/// [`Splitter::descend`] for two teams: the same tree in the same order, each node's state passed
/// down by value (no undoing), reach counts one to a byte so that a team's are added and checked in
/// one step, and a branch left as soon as a team cannot field the roles with every ticket still
/// to place: none of its leaves would be kept. Each team's sum is added in the order the search
/// adds it, from 0.0, so the imbalances are the same to the bit.
struct TwoTeams<'s> {
    /// The candidate's tickets in the search's order (see `Splitter::exhaustive`).
    steps: &'s [Step],
    /// Each team's bounds on players.
    min: [u32; 2],
    max: [u32; 2],
    /// Whether the teams' bounds are the same: the first ticket then goes to team 0 only, as the
    /// general search puts it.
    interchangeable: bool,
    /// What each team's reach must be, one to a byte.
    need: u64,
    /// The imbalance above which a leaf is not kept (see `Splitter::leaf_limit`).
    leaf_limit: f64,
    /// The leaves kept: imbalance and mask, in the order reached.
    leaves: &'s mut Vec<(f64, usize)>,
    nodes: u32,
}

/// `counts`, each under 256, as the bytes of a word: the first the lowest.
fn one_to_a_byte<'c>(counts: impl IntoIterator<Item = &'c u32>) -> u64 {
    (counts.into_iter().enumerate()).fold(0, |bytes, (i, &count)| bytes | u64::from(count) << (8 * i))
}

/// The high bit of every byte.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether every byte of `reach` is at least that of `need`, both under 128: a byte's borrow-free
/// difference keeps its high bit exactly when it is.
fn bytes_at_least(reach: u64, need: u64) -> bool {
    ((reach | HIGH_BITS) - need) & HIGH_BITS == HIGH_BITS
}

impl TwoTeams<'_> {
    fn place(&mut self, depth: usize, placed: Placed) {
        self.nodes += 1;
        let n = self.steps.len();
        let Some(step) = self.steps.get(depth) else {
            let imbalance = spread_of_averages(&placed.sums, &placed.players);
            if imbalance <= self.leaf_limit
                && bytes_at_least(placed.reach[0], self.need)
                && bytes_at_least(placed.reach[1], self.need)
            {
                self.leaves.push((imbalance, placed.mask));
            }
            return;
        };
        let teams = if depth == 0 && self.interchangeable { 1 } else { 2 };
        for team in 0..teams {
            let players = placed.players[team] + step.players;
            if players > self.max[team] {
                continue;
            }
            let mut next = placed;
            next.players[team] = players;
            next.sums[team] += step.value;
            next.reach[team] += step.reach;
            if team == 1 {
                next.mask |= 1 << (n - 1 - depth);
            }
            // As the search prunes: when the players left cannot bring both teams up to their
            // minimums, and when a team cannot field the roles even with every ticket left (a
            // full team, with none).
            let shortfall: u32 = (0..2).map(|t| self.min[t].saturating_sub(next.players[t])).sum();
            let fieldable = (0..2).all(|t| {
                let more = if next.players[t] < self.max[t] {
                    step.rest_reach
                } else {
                    0
                };
                bytes_at_least(next.reach[t] + more, self.need)
            });
            if shortfall <= step.rest_players && fieldable {
                self.place(depth + 1, next);
            }
        }
    }
}
