//! The store conformance suite: the same checks, run against every [`Store`].
//!
//! Each check is a public async function taking a fresh store. The list of checks is written
//! once, inside [`conformance_tests!`](crate::conformance_tests); that macro turns it into one
//! `#[tokio::test]` per check for one backend, and the same list builds [`CHECKS`], which
//! [`run_all`] runs in turn. A check added to the list runs on every store.
//!
//! Checks use random principals and tags, so they never see each other's sessions (they run in
//! parallel against one Redis). Every check asserts exact outcomes: a store that breaks the
//! protocol fails it.
//!
//! The checks are grouped by topic in the submodules `sessions` (create, load, saves and their
//! limits, exact updates, timeouts), `rotation` (rotations, grace windows, reuse, logins,
//! logouts) and `users` (the per-user index, lists, revocation, epochs, the cap). They are
//! re-exported here, so every check is `conformance::name`, the path the macro calls.
// Test code: a failed expectation must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sesame::store::UpdateFn;
use sesame::{
    value, CapPolicy, CreateOutcome, Delta, Loaded, Login, Lookup, Naming, Policy, Principal,
    Record, RotateOutcome, Rotation, RotationKind, SaveOutcome, SessionKey, SessionToken, Store,
    StoreError, Tag, TokenCodec, TokenSecret, Update,
};

use crate::fixtures::now;

mod rotation;
mod sessions;
mod users;

pub use rotation::*;
pub use sessions::*;
pub use users::*;

/// A store under test.
pub type DynStore = Arc<dyn Store>;

/// A running check: the future of one check function.
pub type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One conformance check: its name and its function.
pub type Check = (&'static str, fn(DynStore) -> CheckFuture);

macro_rules! check_table {
    (; $($name:ident),* $(,)?) => {
        /// Every conformance check, by name, in the order [`run_all`] runs them (the list
        /// of [`conformance_tests!`](crate::conformance_tests)).
        pub const CHECKS: &[Check] = &[
            $((stringify!($name), |store: DynStore| -> CheckFuture { Box::pin($name(store)) }),)*
        ];
    };
}

crate::conformance_tests!(@list (check_table));

/// A policy with generous limits, a 60 s idle window, a cap of 64 sessions per user and a 1 s
/// grace window.
pub fn policy() -> Policy {
    Policy {
        idle_ms: 60_000,
        absolute_ms: 3_600_000,
        touch_after_ms: 2_000,
        max_record_bytes: 64 * 1024,
        max_attributes: 64,
        max_sessions_per_user: 64,
        cap_policy: CapPolicy::EvictOldest,
        grace_ms: 1_000,
        renew_after_ms: None,
    }
}

fn codec() -> TokenCodec {
    TokenCodec::insecure_development()
}

/// The naming of principals the checks use: the development secret's, the same as a
/// [`SessionConfig`](sesame::SessionConfig) built with `insecure_development_secret()`.
pub fn naming() -> Naming {
    Naming::from_secret(&TokenSecret::insecure_development())
}

/// The principal named `name` under [`naming`].
pub fn named(name: &str) -> Principal {
    naming().principal(name)
}

/// A fresh token under `tag`.
pub fn token(tag: Tag) -> SessionToken {
    codec().generate(tag).unwrap()
}

/// A fresh key under `tag`.
pub fn key(tag: Tag) -> SessionKey {
    token(tag).key()
}

/// A principal nobody else uses.
pub fn principal() -> Principal {
    named(&format!("user-{}", key(Tag::random().unwrap()).id()))
}

/// A record created now with the given attributes.
pub fn record(principal: Option<&Principal>, attrs: &[(&str, &[u8])]) -> Record {
    let t = now();
    Record {
        created_ms: t,
        absolute_ms: t + policy().absolute_ms,
        principal: principal.cloned(),
        auth_ms: principal.map(|_| t),
        rotated_ms: 0,
        version: 1,
        attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
        sid: None,
    }
}

/// Saves `d` with the record as stored now as the base (the lineage's head when `k` was
/// superseded within its grace window, an empty record when absent), the way the session layer
/// does after its load.
pub async fn save(
    store: &DynStore,
    k: &SessionKey,
    d: &Delta,
    now_ms: u64,
    pol: &Policy,
) -> Result<SaveOutcome, StoreError> {
    let base = match store.load(k, now_ms, pol).await? {
        Lookup::Live(l) | Lookup::Successor { loaded: l, .. } => l,
        _ => base_of(&Record::default()),
    };
    store.save(k, &base, d, now_ms, pol).await
}

/// `record` as the base of a save whose idle deadline the caller does not know (it read the
/// record some other way than a load): the save then pushes the deadline, as a due touch.
pub fn base_of(record: &Record) -> Loaded {
    Loaded { record: std::sync::Arc::new(record.clone()), idle_deadline_ms: 0 }
}

/// A login of `principal` at the given epoch, authenticated now.
pub fn login(principal: &Principal, epoch: u64) -> Login {
    Login { principal: principal.clone(), auth_ms: now(), epoch }
}

/// A same-privilege rotation of `old` to `new` (the successor sealed for `old`'s holder).
pub fn renew<'a>(
    old: &SessionToken,
    new: &SessionToken,
    base: &'a Record,
    delta: &'a Delta,
    grace_ms: u64,
) -> Rotation<'a> {
    Rotation {
        old: old.key(),
        base,
        base_idle_deadline_ms: None,
        new: new.key(),
        sealed_successor: codec().seal_successor(old, new),
        delta,
        login: None,
        kind: RotationKind::Renew { grace_ms },
    }
}

/// An anonymous session under `old` logging in as `login`'s principal under `new`.
pub fn elevate<'a>(
    old: &SessionKey,
    new: &SessionKey,
    base: &'a Record,
    delta: &'a Delta,
    login: Login,
) -> Rotation<'a> {
    Rotation {
        old: *old,
        base,
        base_idle_deadline_ms: None,
        new: *new,
        sealed_successor: Vec::new(),
        delta,
        login: Some(login),
        kind: RotationKind::Elevate,
    }
}

/// A delta setting the given attributes.
pub fn set(attrs: &[(&str, &[u8])]) -> Delta {
    Delta {
        set: attrs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
        ..Delta::default()
    }
}

/// An encoded list of numbers.
fn list(v: &[u64]) -> Vec<u8> {
    value::encode(v, usize::MAX).unwrap()
}

fn decode_list(b: &[u8]) -> Vec<u64> {
    value::decode(b).unwrap()
}

/// An exact update of `name` appending `n` to the list stored there, computed from `seen`.
pub fn append(name: &str, seen: Option<Vec<u8>>, n: u64) -> Update {
    let apply: UpdateFn = Arc::new(move |stored: Option<&[u8]>| {
        let mut v: Vec<u64> = match stored {
            Some(b) => value::decode(b)?,
            None => Vec::new(),
        };
        v.push(n);
        value::encode(&v, usize::MAX).map(Some)
    });
    let result = apply(seen.as_deref()).unwrap();
    Update { name: name.to_string(), seen, result, apply }
}

/// The session under `k`, which must be its own live session.
async fn expect_live(store: &DynStore, k: &SessionKey, pol: &Policy) -> Loaded {
    match store.load(k, now(), pol).await.unwrap() {
        Lookup::Live(l) => l,
        other => panic!("expected a live session under {k:?}, got {other:?}"),
    }
}

async fn expect_missing(store: &DynStore, k: &SessionKey, pol: &Policy) {
    let got = store.load(k, now(), pol).await.unwrap();
    assert_eq!(got, Lookup::Missing, "expected no session under {k:?}");
}

fn saved(outcome: SaveOutcome) -> Record {
    match outcome {
        SaveOutcome::Saved(r) => std::sync::Arc::unwrap_or_clone(r),
        other => panic!("expected Saved, got {other:?}"),
    }
}

fn rotated(outcome: RotateOutcome) -> Record {
    match outcome {
        RotateOutcome::Rotated(r) => r,
        other => panic!("expected Rotated, got {other:?}"),
    }
}

async fn listed_ids(store: &DynStore, p: &Principal, limit: usize) -> Vec<String> {
    store.list_user(p.user(), now(), limit).await.unwrap().into_iter().map(|s| s.id).collect()
}

/// Opens a chain of sealed successors from `old`.
fn open_chain(old: &SessionToken, sealed: &[Vec<u8>]) -> Option<SessionToken> {
    let mut t = old.clone();
    for s in sealed {
        t = codec().open_successor(&t, s)?;
    }
    Some(t)
}

async fn create_user_session_token(store: &DynStore, p: &Principal, pol: &Policy) -> SessionToken {
    let t = token(p.user().tag());
    let out = store.create(&t.key(), &record(Some(p), &[]), None, now(), pol).await.unwrap();
    assert_eq!(out, CreateOutcome::Created);
    t
}

async fn create_user_session(store: &DynStore, p: &Principal, pol: &Policy) -> SessionKey {
    create_user_session_token(store, p, pol).await.key()
}

async fn create_anonymous(store: &DynStore, attrs: &[(&str, &[u8])]) -> SessionToken {
    let t = token(Tag::random().unwrap());
    let out = store.create(&t.key(), &record(None, attrs), None, now(), &policy()).await.unwrap();
    assert_eq!(out, CreateOutcome::Created);
    t
}

/// Runs every check of [`CHECKS`] in turn, each on a fresh store from `make` (for example a
/// new client with its own key prefix on one shared Redis Cluster, which is too slow to start
/// per check). Prints each check's name to stderr first, so a failure names its check.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = DynStore>,
{
    for (name, check) in CHECKS {
        eprintln!("conformance check: {name}");
        check(make().await).await;
    }
}

/// Generates one `#[tokio::test]` (multi-threaded runtime) per conformance check. `$make` is
/// an async function or closure returning `(DynStore, guard)`; the guard (for example the
/// Redis server) lives until the test ends.
///
/// This macro holds the one list of checks: [`conformance::CHECKS`](crate::conformance::CHECKS)
/// and [`conformance::run_all`](crate::conformance::run_all) are built from it too.
#[macro_export]
macro_rules! conformance_tests {
    // The list of checks, written once: calls `$cb! { $args ; check, check, ... }`.
    (@list ($($cb:tt)*) $($args:tt)*) => {
        $($cb)*! { $($args)* ;
            create_then_load,
            create_is_create_if_absent,
            save_merges_delta,
            save_missing_writes_nothing,
            save_over_limits_is_refused_whole,
            update_failure_writes_nothing,
            idle_timeout_and_coalesced_touch,
            save_touches_like_a_read,
            absolute_timeout,
            version_saturates,
            concurrent_saves_all_persist,
            concurrent_exact_updates,
            set_and_update_same_attribute,
            rotate_merges_into_current_record,
            rotate_collision_writes_nothing,
            concurrent_rotations_have_one_successor,
            grace_window_resolves_to_successor,
            reuse_after_grace_revokes_lineage,
            elevate_kills_old_token_at_once,
            elevate_ends_the_chain,
            destroy_ends_session,
            destroy_superseded_ends_head,
            destroy_races_rotations,
            list_user_sessions,
            list_limit_most_recent_first,
            peek_reads_without_touching,
            revoke_one_and_all,
            stale_epoch_login_is_refused,
            revoke_all_races_logins,
            cap_evicts_least_recently_active,
            cap_is_exact_under_concurrent_logins,
            cap_refuses,
            index_forgets_expired_sessions,
        }
    };
    (@each $make:expr ; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _guard) = ($make)().await;
                $crate::conformance::$name(store).await;
            }
        )*
    };
    ($make:expr) => {
        $crate::conformance_tests!(@list ($crate::conformance_tests) @each $make);
    };
}
