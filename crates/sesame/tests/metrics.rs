//! The metrics a known sequence of requests records through the `metrics` facade.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use sesame::{
    ClientInfo, Error, MemoryStore, Refusal, SessionConfig, SessionHooks, SessionManager,
    SessionToken, TokenAction,
};

fn manager() -> SessionManager {
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .grace_period(Duration::ZERO)
        .build()
        .unwrap();
    SessionManager::new(Arc::new(MemoryStore::new()), config)
}

fn token(a: TokenAction) -> SessionToken {
    match a {
        TokenAction::Set { token, .. } => token,
        other => panic!("expected a new token, got {other:?}"),
    }
}

#[derive(Debug)]
struct RefuseAll;

#[async_trait]
impl SessionHooks for RefuseAll {
    async fn before_create(&self, _client: Option<&ClientInfo>) -> Result<(), Refusal> {
        Err(Refusal { message: "no".into(), retry_after: None })
    }
}

/// Runs `f` on a current-thread runtime with `recorder` installed on this thread, and returns
/// every counter (`name{label=value,..}` → count) and how many samples each histogram got.
fn record<F, Fut>(f: F) -> (BTreeMap<String, u64>, BTreeMap<String, usize>)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(f());
    });
    let mut counters = BTreeMap::new();
    let mut histograms = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> =
            key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        let name = if labels.is_empty() {
            key.name().to_string()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        match value {
            DebugValue::Counter(n) => {
                counters.insert(name, n);
            }
            DebugValue::Histogram(samples) => {
                histograms.insert(name, samples.len());
            }
            DebugValue::Gauge(_) => {}
        }
    }
    (counters, histograms)
}

// A known sequence of requests on the in-memory store gives exact counts: 4 creates, 2
// rotations, 1 save, 1 invalid token, 1 unknown token, 1 reuse detection, 1 revocation of one
// session and 1 of all, 1 logout, 1 commit on an ended session, 1 refused creation, and one
// latency sample per store call with its `op` label.
#[test]
fn a_known_sequence_gives_exact_counts() {
    let (counters, histograms) = record(|| async {
        let m = manager();
        // Create a logged-in session (A).
        let s = m.open(None);
        s.login("alice").await.unwrap();
        let a = token(s.commit().await.unwrap());
        // Save a change to it.
        let s = m.open(Some(&a.expose()));
        s.insert("x", &1).await.unwrap();
        assert_eq!(s.commit().await.unwrap(), TokenAction::Keep);
        // Two rotations: A -> B -> C.
        let s = m.open(Some(&a.expose()));
        s.cycle_id().await.unwrap();
        let b = token(s.commit().await.unwrap());
        let s = m.open(Some(&b.expose()));
        s.cycle_id().await.unwrap();
        let c = token(s.commit().await.unwrap());
        // A presented again after its (zero) grace window: reuse, the lineage is revoked.
        let s = m.open(Some(&a.expose()));
        assert_eq!(s.get::<u32>("x").await.unwrap(), None);
        // A token that fails its format: no store call.
        let s = m.open(Some("not-a-token"));
        assert_eq!(s.get::<u32>("x").await.unwrap(), None);
        // C is gone with its lineage: an unknown token.
        let s = m.open(Some(&c.expose()));
        assert_eq!(s.get::<u32>("x").await.unwrap(), None);
        // Two more sessions of alice (D, F) and an anonymous one (E).
        let s = m.open(None);
        s.login("alice").await.unwrap();
        let d = token(s.commit().await.unwrap());
        let s = m.open(None);
        s.insert("cart", &3).await.unwrap();
        let e = token(s.commit().await.unwrap());
        let s = m.open(None);
        s.login("alice").await.unwrap();
        token(s.commit().await.unwrap());
        // Revoke D by id, then every session of alice.
        let id = d.key().id();
        assert_eq!(m.list_user("alice").await.unwrap().len(), 2);
        assert!(m.revoke_session("alice", &id).await.unwrap());
        assert_eq!(m.revoke_user("alice").await.unwrap(), 1);
        // E is loaded by one request, logged out by another; the first one's save is refused.
        let s1 = m.open(Some(&e.expose()));
        assert_eq!(s1.get::<u32>("cart").await.unwrap(), Some(3));
        let s2 = m.open(Some(&e.expose()));
        s2.logout().await.unwrap();
        assert_eq!(s2.commit().await.unwrap(), TokenAction::Clear);
        s1.insert("cart", &4).await.unwrap();
        assert!(matches!(s1.commit().await, Err(Error::SessionEnded)));
        // A creation refused by a hook.
        let refusing = manager().with_hooks(Arc::new(RefuseAll));
        let s = refusing.open(None);
        s.insert("y", &1).await.unwrap();
        assert!(matches!(s.commit().await, Err(Error::CreationRefused { .. })));
    });
    let expected: BTreeMap<String, u64> = [
        ("sesame_creates_total", 4),
        ("sesame_creation_refusals_total", 1),
        ("sesame_destroys_total", 1),
        ("sesame_invalid_tokens_total", 1),
        // A, A, B, A, C, E, E.
        ("sesame_loads_total", 7),
        ("sesame_reuse_detections_total", 1),
        ("sesame_revocations_total{scope=all}", 1),
        ("sesame_revocations_total{scope=one}", 1),
        ("sesame_rotations_total", 2),
        ("sesame_saves_total", 1),
        ("sesame_sessions_ended_total", 1),
        ("sesame_unknown_tokens_total", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(counters, expected);
    let latency: BTreeMap<String, usize> = [
        ("create", 4),
        ("destroy", 1),
        ("epoch", 3),
        ("list", 1),
        ("load", 7),
        ("revoke", 1),
        ("revoke_all", 1),
        ("rotate", 2),
        ("save", 2),
    ]
    .into_iter()
    .map(|(op, n)| (format!("sesame_store_op_duration_seconds{{op={op}}}"), n))
    .collect();
    assert_eq!(histograms, latency);
}

// A failed store operation is counted by its error's kind: a login beyond the per-user cap
// under `CapPolicy::Refuse` fails with a "limit" error.
#[test]
fn store_errors_are_counted_by_kind() {
    let (counters, histograms) = record(|| async {
        let config = SessionConfig::builder()
            .insecure_development_secret()
            .max_sessions_per_user(1)
            .cap_policy(sesame::CapPolicy::Refuse)
            .build()
            .unwrap();
        let m = SessionManager::new(Arc::new(MemoryStore::new()), config);
        for _ in 0..2 {
            let s = m.open(None);
            s.login("alice").await.unwrap();
            let _ = s.commit().await;
        }
    });
    assert_eq!(counters.get("sesame_store_errors_total{kind=limit}"), Some(&1), "{counters:?}");
    assert_eq!(counters.get("sesame_creates_total"), Some(&1), "{counters:?}");
    assert_eq!(histograms.get("sesame_store_op_duration_seconds{op=create}"), Some(&2));
}
