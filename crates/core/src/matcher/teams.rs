//! Splitting a candidate match into teams.
//!
//! Parties stay whole, every team ends within its size bounds and can field the composition's roles,
//! every team-balance rule holds, and among the splits that do, the one with the smallest difference
//! between team averages wins. Small matches are searched exhaustively (with identical empty teams
//! treated as one, so 5v5 is 126 splits, not 1,024); large ones are drafted greedily and then improved
//! by swaps, because their number of splits is astronomical.

use super::group::augment;
use super::plan::{Limits, Plan};
use super::prepare::Pool;

/// At most this many tickets are split exhaustively.
const EXHAUSTIVE_TICKETS: usize = 14;
/// Search nodes after which the exhaustive search stops and keeps the best split found so far.
const NODE_BUDGET: u32 = 50_000;
/// Rounds of swaps the heuristic tries.
const SWAP_ROUNDS: usize = 64;
/// Team averages closer than this are equal: sums of floats are not exact.
const EPSILON: f64 = 1e-9;

/// A split of the candidate into teams.
#[derive(Debug, Clone)]
pub(crate) struct Split {
    /// Team slot of each member, parallel to the members.
    pub team_of: Vec<usize>,
    /// The largest difference between team averages of balance column 0.
    pub imbalance: f64,
}

/// What the search needs to know about each member and team.
struct Problem<'p, 'a> {
    plan: &'p Plan<'a>,
    pool: &'p Pool<'a>,
    limits: &'p Limits,
    members: &'p [u32],
    sizes: Vec<u32>,
}

impl Problem<'_, '_> {
    fn balance(&self, member: usize, column: usize) -> f64 {
        // A rule set with nothing numeric to balance has no columns: every split is even.
        self.pool
            .balance(self.members[member] as usize)
            .get(column)
            .copied()
            .unwrap_or(0.0)
    }

    /// The largest difference between team averages of `column`, over teams with players.
    fn imbalance(&self, team_of: &[usize], column: usize) -> f64 {
        let teams = self.plan.slots.len();
        let mut sums = vec![0.0; teams];
        let mut counts = vec![0u32; teams];
        for (m, &t) in team_of.iter().enumerate() {
            sums[t] += self.balance(m, column);
            counts[t] += self.sizes[m];
        }
        spread_of_averages(&sums, &counts)
    }

    /// Every team-balance rule holds.
    fn balanced(&self, team_of: &[usize]) -> bool {
        self.limits
            .max_difference
            .iter()
            .enumerate()
            .all(|(column, &limit)| self.imbalance(team_of, column) <= limit + EPSILON)
    }

    /// Every team can field every composition rule's roles.
    fn composed(&self, team_of: &[usize]) -> bool {
        (0..self.plan.slots.len()).all(|t| self.team_composed(team_of, t))
    }

    fn team_composed(&self, team_of: &[usize], team: usize) -> bool {
        let rules = self.plan.composition.len();
        self.plan.composition.iter().enumerate().all(|(c, rule)| {
            let roles_of = |p: u32| self.pool.roles(p as usize, c, rules);
            let mut holders = vec![Vec::new(); rule.per_team.len()];
            let mut visited = vec![false; rule.per_team.len()];
            let mut filled = 0;
            let needed = rule.role_slots_per_team();
            for (m, _) in team_of.iter().enumerate().filter(|(_, &t)| t == team) {
                let info = &self.pool.entries[self.members[m] as usize];
                for p in info.first_player..info.first_player + info.size {
                    visited.iter_mut().for_each(|v| *v = false);
                    if augment(p, &roles_of, &rule.per_team, &mut holders, &mut visited) {
                        filled += 1;
                    }
                }
            }
            filled == needed
        })
    }

    fn sizes_ok(&self, team_of: &[usize]) -> bool {
        let mut counts = vec![0u32; self.plan.slots.len()];
        for (m, &t) in team_of.iter().enumerate() {
            counts[t] += self.sizes[m];
        }
        counts
            .iter()
            .zip(&self.plan.slots)
            .zip(&self.limits.team_min)
            .all(|((&n, slot), &min)| n >= min && n <= slot.max_players)
    }

    fn valid(&self, team_of: &[usize]) -> bool {
        self.sizes_ok(team_of) && self.balanced(team_of) && self.composed(team_of)
    }
}

/// The largest difference between the averages of teams that have players.
pub(crate) fn spread_of_averages(sums: &[f64], counts: &[u32]) -> f64 {
    let (lo, hi) = sums
        .iter()
        .zip(counts)
        .filter(|(_, &n)| n > 0)
        .map(|(&s, &n)| s / f64::from(n))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), a| (lo.min(a), hi.max(a)));
    if lo.is_finite() {
        hi - lo
    } else {
        0.0
    }
}

/// Splits `members` into the plan's teams, or `None` when no split satisfies the rules.
pub(crate) fn split(plan: &Plan, pool: &Pool, limits: &Limits, members: &[u32]) -> Option<Split> {
    let problem = Problem {
        plan,
        pool,
        limits,
        members,
        sizes: members.iter().map(|&m| pool.entries[m as usize].size).collect(),
    };
    let found = if members.len() <= EXHAUSTIVE_TICKETS {
        exhaustive(&problem)
    } else {
        None
    };
    found.or_else(|| draft(&problem))
}

/// Depth-first search over every split, keeping the valid one with the least imbalance.
fn exhaustive(problem: &Problem) -> Option<Split> {
    let teams = problem.plan.slots.len();
    // Big parties first: they constrain the most, so dead ends are found near the root.
    let mut order: Vec<usize> = (0..problem.members.len()).collect();
    order.sort_by(|&a, &b| problem.sizes[b].cmp(&problem.sizes[a]).then(a.cmp(&b)));
    let mut search = Search {
        problem,
        order,
        team_of: vec![0; problem.members.len()],
        counts: vec![0; teams],
        sums: vec![0.0; teams],
        remaining: problem.sizes.iter().sum(),
        best: None,
        nodes: 0,
    };
    search.descend(0);
    search.best
}

struct Search<'s, 'p, 'a> {
    problem: &'s Problem<'p, 'a>,
    order: Vec<usize>,
    team_of: Vec<usize>,
    counts: Vec<u32>,
    sums: Vec<f64>,
    /// Players not yet placed.
    remaining: u32,
    best: Option<Split>,
    nodes: u32,
}

impl Search<'_, '_, '_> {
    fn descend(&mut self, depth: usize) {
        self.nodes += 1;
        if self.nodes > NODE_BUDGET || self.best.as_ref().is_some_and(|b| b.imbalance <= EPSILON) {
            return;
        }
        let problem = self.problem;
        let slots = &problem.plan.slots;
        let Some(&member) = self.order.get(depth) else {
            let imbalance = spread_of_averages(&self.sums, &self.counts);
            let better = self.best.as_ref().is_none_or(|b| imbalance < b.imbalance - EPSILON);
            if better && problem.valid(&self.team_of) {
                self.best = Some(Split {
                    team_of: self.team_of.clone(),
                    imbalance,
                });
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
            self.counts[team] += size;
            self.sums[team] += value;
            self.remaining -= size;
            self.team_of[member] = team;
            // Prune when the players left cannot bring every team up to its minimum.
            let shortfall: u32 = self
                .counts
                .iter()
                .zip(&problem.limits.team_min)
                .map(|(&n, &min)| min.saturating_sub(n))
                .sum();
            if shortfall <= self.remaining {
                self.descend(depth + 1);
            }
            self.counts[team] -= size;
            self.sums[team] -= value;
            self.remaining += size;
        }
    }
}

/// A greedy draft, then swaps: for matches too big to search.
///
/// Teams are given target sizes (their minimums, then the rest round-robin up to their maximums).
/// Tickets, biggest parties and then highest values first, go to the team with room whose sum is
/// lowest: a snake draft that also works with parties. Then, while it helps, a ticket of the team with
/// the highest average swaps with one of the same size from the team with the lowest.
fn draft(problem: &Problem) -> Option<Split> {
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

    let mut order: Vec<usize> = (0..problem.members.len()).collect();
    order.sort_by(|&a, &b| {
        let per_player = |m: usize| problem.balance(m, 0) / f64::from(problem.sizes[m].max(1));
        problem.sizes[b]
            .cmp(&problem.sizes[a])
            .then(per_player(b).total_cmp(&per_player(a)))
            .then(a.cmp(&b))
    });
    let mut team_of = vec![0; problem.members.len()];
    let mut counts = vec![0u32; teams];
    let mut sums = vec![0.0f64; teams];
    for &m in &order {
        let size = problem.sizes[m];
        let pick = |limit: &dyn Fn(usize) -> u32| {
            (0..teams)
                .filter(|&t| counts[t] + size <= limit(t))
                .min_by(|&a, &b| sums[a].total_cmp(&sums[b]).then(a.cmp(&b)))
        };
        let team = pick(&|t| targets[t]).or_else(|| pick(&|t| slots[t].max_players))?;
        team_of[m] = team;
        counts[team] += size;
        sums[team] += problem.balance(m, 0);
    }

    // Swaps between the highest and the lowest team, while they reduce (failing teams, imbalance).
    let score = |team_of: &[usize]| {
        let failing = if problem.plan.composition.is_empty() {
            0
        } else {
            (0..teams).filter(|&t| !problem.team_composed(team_of, t)).count()
        };
        (failing, problem.imbalance(team_of, 0))
    };
    let mut current = score(&team_of);
    for _ in 0..SWAP_ROUNDS {
        let averages: Vec<f64> = (0..teams)
            .map(|t| {
                if counts[t] == 0 {
                    0.0
                } else {
                    sums[t] / f64::from(counts[t])
                }
            })
            .collect();
        let by_average = |a: &usize, b: &usize| averages[*a].total_cmp(&averages[*b]).then(a.cmp(b));
        let (Some(high), Some(low)) = ((0..teams).max_by(by_average), (0..teams).min_by(by_average)) else {
            break;
        };
        let mut best: Option<((usize, f64), usize, usize)> = None;
        let highs: Vec<usize> = (0..team_of.len()).filter(|&m| team_of[m] == high).collect();
        let lows: Vec<usize> = (0..team_of.len()).filter(|&m| team_of[m] == low).collect();
        for &a in &highs {
            for &b in lows.iter().filter(|&&b| problem.sizes[b] == problem.sizes[a]) {
                team_of[a] = low;
                team_of[b] = high;
                let candidate = score(&team_of);
                team_of[a] = high;
                team_of[b] = low;
                let improves =
                    candidate.0 < current.0 || (candidate.0 == current.0 && candidate.1 < current.1 - EPSILON);
                let beats_best = best
                    .is_none_or(|(s, _, _)| candidate.0 < s.0 || (candidate.0 == s.0 && candidate.1 < s.1 - EPSILON));
                if improves && beats_best {
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

    problem.valid(&team_of).then(|| Split {
        imbalance: problem.imbalance(&team_of, 0),
        team_of,
    })
}
