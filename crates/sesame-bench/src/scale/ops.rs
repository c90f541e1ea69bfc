//! The timed operations of the scale measurement, one at a time (latency, not throughput).
//! Each checks its outcome, so a figure never comes from an operation that did nothing.

use std::future::Future;
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

/// Latencies of one kind at one total, microseconds, sorted ascending.
#[derive(Debug, Clone, PartialEq)]
pub struct OpLatencies {
    /// The kind.
    pub kind: OpKind,
    /// One entry per timed operation.
    pub micros: Vec<f64>,
}

impl OpLatencies {
    /// The `p`-quantile (0 < p ≤ 1) by the nearest-rank method; 0 when empty.
    pub fn quantile(&self, p: f64) -> f64 {
        let n = self.micros.len();
        if n == 0 {
            return 0.0;
        }
        let rank = (p * n as f64).ceil() as usize;
        self.micros[rank.clamp(1, n) - 1]
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

/// Runs every kind at the bench's current total, in [`OpKind::ALL`] order. The logins add one
/// session to each of `ops` users; the revoke-alls then end those users' sessions and their
/// four sessions are made again (untimed), so the total is the same afterwards.
pub async fn run_all(bench: &mut ScaleBench) -> BenchResult<Vec<OpLatencies>> {
    let n = bench.sessions();
    let users = n / SESSIONS_PER_USER;
    let ops = (bench.config().ops as u64).min(users);
    for j in 0..WARM_UP.min(n) {
        load(bench, spread(j, WARM_UP, n)).await?;
    }
    let mut out = Vec::new();
    let b = &*bench;
    out.push(time(OpKind::Load, ops, |j| load(b, spread(j, ops, n))).await?);
    out.push(time(OpKind::Save, ops, |j| save(b, spread(j, ops, n))).await?);
    out.push(time(OpKind::Login, ops, |j| login(b, spread(j, ops, users))).await?);
    out.push(time(OpKind::ListUser, ops, |j| list(b, spread(j, ops, users), FIFTH)).await?);
    out.push(time(OpKind::RevokeAll, ops, |j| revoke(b, spread(j, ops, users))).await?);
    for j in 0..ops {
        let u = spread(j, ops, users);
        for i in u * SESSIONS_PER_USER..(u + 1) * SESSIONS_PER_USER {
            let token = create(bench.manager(), i).await?;
            bench.set_token(i, token)?;
        }
    }
    for j in 0..ops.min(WARM_UP) {
        list(bench, spread(j, ops.min(WARM_UP), users), SESSIONS_PER_USER as usize).await?;
    }
    Ok(out)
}

/// Times `count` operations made by `op(0..count)`, one after the other.
async fn time<F, Fut>(kind: OpKind, count: u64, mut op: F) -> BenchResult<OpLatencies>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = BenchResult<()>>,
{
    let mut micros = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for j in 0..count {
        let started = Instant::now();
        op(j).await?;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    micros.sort_by(f64::total_cmp);
    Ok(OpLatencies { kind, micros })
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
