//! The timed operations of the scale measurement, one at a time (latency, not throughput).
//! Each checks its outcome, so a figure never comes from an operation that did nothing.

use std::ops::Range;
use std::time::Instant;

use sesame::TokenAction;

use super::{create, spread, user_name, ScaleBench, SESSIONS_PER_USER};
use crate::{BenchError, BenchResult};

/// Untimed loads before the timed ones (connection and caches warm).
const WARM_UP: u64 = 100;

/// Sessions of a user the timed logins added one to.
const FIFTH: usize = SESSIONS_PER_USER as usize + 1;

/// A kind of timed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Open a session from its token and read one attribute.
    Load,
    /// Open a session, set one attribute and commit.
    Save,
    /// A new session logging in as an existing user (open, content, login, commit).
    Login,
    /// List one user's sessions.
    ListUser,
    /// End every session of one user.
    RevokeAll,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 5] =
        [OpKind::Load, OpKind::Save, OpKind::Login, OpKind::ListUser, OpKind::RevokeAll];

    /// Label used in the report.
    pub fn label(self) -> &'static str {
        match self {
            OpKind::Load => "load",
            OpKind::Save => "save",
            OpKind::Login => "login",
            OpKind::ListUser => "list-a-user",
            OpKind::RevokeAll => "revoke-all",
        }
    }

    /// Whether the operation concerns one user only (its latency should not grow with the
    /// total).
    pub fn per_user(self) -> bool {
        matches!(self, OpKind::Login | OpKind::ListUser | OpKind::RevokeAll)
    }
}

/// Latencies of one kind at one total, microseconds, in the order measured.
#[derive(Debug, Clone, PartialEq)]
pub struct OpLatencies {
    /// The kind.
    pub kind: OpKind,
    /// One entry per timed operation.
    pub micros: Vec<f64>,
}

impl OpLatencies {
    /// No latency of `kind` yet.
    pub fn new(kind: OpKind) -> OpLatencies {
        OpLatencies { kind, micros: Vec::new() }
    }

    /// One empty entry per kind, in [`OpKind::ALL`] order.
    pub fn all() -> Vec<OpLatencies> {
        OpKind::ALL.into_iter().map(OpLatencies::new).collect()
    }

    /// The `p`-quantile (0 < p ≤ 1) by the nearest-rank method; 0 when empty.
    pub fn quantile(&self, p: f64) -> f64 {
        let mut sorted = self.micros.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return 0.0;
        }
        let rank = (p * n as f64).ceil() as usize;
        sorted[rank.clamp(1, n) - 1]
    }

    /// The median.
    pub fn p50(&self) -> f64 {
        self.quantile(0.5)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> f64 {
        self.quantile(0.99)
    }
}

/// Operations of each kind per total: the configured number, at most one per user (the
/// logins and revoke-alls each need a user of their own).
pub fn count(bench: &ScaleBench) -> u64 {
    (bench.config().ops as u64).min(bench.sessions() / SESSIONS_PER_USER)
}

/// Untimed loads spread over the sessions (connections and caches warm).
pub async fn warm_up(bench: &ScaleBench) -> BenchResult<()> {
    let n = bench.sessions();
    for j in 0..WARM_UP.min(n) {
        load(bench, spread(j, WARM_UP, n)).await?;
    }
    Ok(())
}

/// Round `round` of `rounds`: operations `j` of `count(bench)` with `j * rounds / count ==
/// round`, of every kind in [`OpKind::ALL`] order, their latencies added to `out` (as made by
/// [`OpLatencies::all`]). The logins add one session to each of the round's users; the
/// revoke-alls then end those users' sessions, and their four sessions are made again
/// (untimed), so the total is the same afterwards.
pub async fn run_round(
    bench: &mut ScaleBench,
    round: u64,
    rounds: u64,
    out: &mut [OpLatencies],
) -> BenchResult<()> {
    let (n, ops) = (bench.sessions(), count(bench));
    let users = n / SESSIONS_PER_USER;
    let part = share(round, rounds, ops);
    let b = &*bench;
    for (kind, out) in OpKind::ALL.into_iter().zip(out.iter_mut()) {
        for j in part.clone() {
            let started = Instant::now();
            match kind {
                OpKind::Load => load(b, spread(j, ops, n)).await?,
                OpKind::Save => save(b, spread(j, ops, n)).await?,
                OpKind::Login => login(b, spread(j, ops, users)).await?,
                OpKind::ListUser => list(b, spread(j, ops, users), FIFTH).await?,
                OpKind::RevokeAll => revoke(b, spread(j, ops, users)).await?,
            }
            out.micros.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    for j in part.clone() {
        let u = spread(j, ops, users);
        for i in u * SESSIONS_PER_USER..(u + 1) * SESSIONS_PER_USER {
            let token = create(bench.manager(), i).await?;
            bench.set_token(i, token)?;
        }
        list(bench, u, SESSIONS_PER_USER as usize).await?;
    }
    Ok(())
}

/// The operations of round `round` of `rounds` out of `ops`: consecutive, disjoint, and all
/// of them over the rounds.
pub fn share(round: u64, rounds: u64, ops: u64) -> Range<u64> {
    let at = |r: u64| {
        let x = u128::from(r.min(rounds)) * u128::from(ops) / u128::from(rounds.max(1));
        u64::try_from(x).unwrap_or(ops)
    };
    at(round)..at(round.saturating_add(1))
}

/// Opens session `i` and reads its `hits`.
async fn load(bench: &ScaleBench, i: u64) -> BenchResult<()> {
    let session = bench.manager().open(Some(bench.token(i)?));
    match session.get::<u64>("hits").await? {
        Some(_) => Ok(()),
        None => Err(BenchError::new(format!("session {i} vanished"))),
    }
}

/// Opens session `i`, adds one to its `hits` and commits.
async fn save(bench: &ScaleBench, i: u64) -> BenchResult<()> {
    let session = bench.manager().open(Some(bench.token(i)?));
    let hits = session
        .get::<u64>("hits")
        .await?
        .ok_or_else(|| BenchError::new(format!("session {i} vanished")))?;
    session.insert("hits", &hits.saturating_add(1)).await?;
    match session.commit().await? {
        TokenAction::Clear => Err(BenchError::new(format!("session {i} ended on save"))),
        _ => Ok(()),
    }
}

/// A new session of user `u` (its fifth).
async fn login(bench: &ScaleBench, u: u64) -> BenchResult<()> {
    // Any index of the user's range names the same user and content.
    create(bench.manager(), u * SESSIONS_PER_USER).await.map(drop)
}

/// Lists user `u`'s sessions, expecting `expected` of them.
async fn list(bench: &ScaleBench, u: u64, expected: usize) -> BenchResult<()> {
    let listed = bench.manager().list_user(&user_name(u)).await?.len();
    if listed != expected {
        return Err(BenchError::new(format!("user {u} has {listed} sessions, not {expected}")));
    }
    Ok(())
}

/// Ends every session of user `u`, expecting its four plus the one the login made.
async fn revoke(bench: &ScaleBench, u: u64) -> BenchResult<()> {
    let ended = bench.manager().revoke_user(&user_name(u)).await?;
    let expected = FIFTH as u64;
    if ended != expected {
        return Err(BenchError::new(format!(
            "revoked {ended} sessions of user {u}, not {expected}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_share_out_every_operation_once() {
        for (rounds, ops) in [(10, 2000), (10, 7), (3, 200), (1, 5)] {
            let parts: Vec<_> = (0..rounds).map(|r| share(r, rounds, ops)).collect();
            assert_eq!(parts.first().map(|p| p.start), Some(0));
            assert_eq!(parts.last().map(|p| p.end), Some(ops));
            assert!(parts.windows(2).all(|w| w[0].end == w[1].start), "{parts:?}");
        }
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut l = OpLatencies::new(OpKind::Load);
        l.micros = (1..=100).rev().map(f64::from).collect();
        assert_eq!((l.p50(), l.p99(), l.quantile(1.0)), (50.0, 99.0, 100.0));
        assert_eq!(OpLatencies::new(OpKind::Save).p99(), 0.0);
    }
}
