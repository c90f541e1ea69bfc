//! A session that goes back to an older state in Redis (acknowledged writes lost, as after a
//! failover to a replica that had not received them) is detected by the next write from a
//! request that read the newer state: refused, counted, logged and sent as an event, never
//! merged into the older state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use sesame::events::SessionEvent;
use sesame::{Error, SessionConfig, SessionManager, SessionToken, StoreError, TokenAction};
use sesame_redis::RedisStore;
use sesame_testkit::logs::Captured;
use sesame_testkit::RedisServer;

fn token(a: TokenAction) -> SessionToken {
    match a {
        TokenAction::Set { token, .. } => token,
        other => panic!("expected a new token, got {other:?}"),
    }
}

/// Puts `bytes` back under `key`, keeping the key's remaining time to live.
fn write_back(server: &RedisServer, key: &str, bytes: &[u8]) {
    let mut c = common::conn(server);
    let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut c).unwrap();
    assert!(ttl > 0);
    let () = redis::cmd("SET").arg(key).arg(bytes).arg("PX").arg(ttl).query(&mut c).unwrap();
}

async fn scenario(server: &RedisServer, renew: bool) -> (SessionManager, SessionToken, String) {
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let config = SessionConfig::builder().insecure_development_secret().build().unwrap();
    let m = SessionManager::new(Arc::new(store.clone()), config);
    let mut events = m.events();
    let s = m.open(None);
    s.insert("n", &1).await.unwrap();
    let t = token(s.commit().await.unwrap());
    let key = store.session_key(&t.key());
    let older = common::raw(server, &key).unwrap();
    let s = m.open(Some(&t.expose()));
    s.insert("n", &2).await.unwrap();
    s.commit().await.unwrap();

    // This request reads the newer state; then Redis goes back to the older one.
    let s = m.open(Some(&t.expose()));
    assert_eq!(s.get::<i32>("n").await.unwrap(), Some(2));
    write_back(server, &key, &older);
    s.insert("m", &3).await.unwrap();
    if renew {
        s.cycle_id().await.unwrap();
    }
    let e = s.commit().await.unwrap_err();
    assert!(matches!(e, Error::Store(StoreError::RolledBack { .. })), "{e}");
    assert!(e.is_retryable() && e.to_string().contains("nothing was written"), "{e}");
    assert_eq!(common::raw(server, &key).unwrap(), older, "something was merged");
    let id = t.key().id();
    let mut seen = Vec::new();
    while let Ok(ev) = events.try_recv() {
        seen.push(ev);
    }
    assert!(seen.contains(&SessionEvent::RolledBack { id: id.clone() }), "{seen:?}");
    (m, t, id)
}

// A save and a rotation (`cycle_id`) that meet the older state: each refused with
// `StoreError::RolledBack`, counted in `Stats` and `sesame_rollbacks_total`, logged at warn
// with the session id (never the token), and sent as `SessionEvent::RolledBack`.
#[test]
fn a_rolled_back_session_is_refused_counted_and_reported() {
    let server = RedisServer::start();
    let recorder = DebuggingRecorder::new();
    let snapshot = recorder.snapshotter();
    let logs = Captured::default();
    let _guard = logs.install(tracing::Level::WARN);
    let mut runs = Vec::new();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for renew in [false, true] {
            let (m, t, id) = rt.block_on(scenario(&server, renew));
            assert_eq!(m.stats().rolled_back, 1);
            runs.push((t, id));
        }
    });
    let counted: u64 = snapshot
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, ..)| k.key().name() == sesame::metrics::ROLLBACKS)
        .map(|(.., v)| match v {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum();
    assert_eq!(counted, 2);
    let text = logs.text();
    for (t, id) in &runs {
        assert!(text.contains("WARN") && text.contains(id.as_str()), "{text}");
        assert!(!text.contains(t.expose().as_str()), "a token was logged");
    }
}
