//! What connecting says: an unreachable Redis is named (without its password) in the error,
//! and a configuration warning is logged once per store, however many clients open it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sesame_testkit::logs::Captured;
use std::time::Duration;

use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;

// A store on a port nobody listens on fails with a message naming the address, never the
// password.
#[tokio::test]
async fn unreachable_redis_is_named_in_the_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("redis://:hunter2secret@127.0.0.1:{port}");
    let err =
        match RedisStore::builder(&url).connect_timeout(Duration::from_millis(300)).connect().await
        {
            Ok(_) => panic!("nothing listens there"),
            Err(e) => e,
        };
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("hunter2secret"), "{text}");
}

// A server with persistence off (the test servers' default) is warned about once per store
// URL, not once per client.
#[tokio::test]
async fn configuration_warnings_once_per_store() {
    let captured = Captured::default();
    let _guard = captured.install(tracing::Level::WARN);
    let redis = RedisServer::start();
    for _ in 0..3 {
        RedisStore::connect(&redis.url()).await.unwrap();
    }
    let log = captured.text();
    let persistence = log.lines().filter(|l| l.contains("persist")).count();
    assert_eq!(persistence, 1, "{log}");
    assert!(!log.contains('\u{1b}'), "no colour codes: {log}");
}

// A master with a replica and no min-replicas-to-write is warned about at start-up (an
// isolated master would keep acknowledging writes a failover erases); once the guard is set,
// it is not.
#[tokio::test]
async fn replicated_master_without_the_write_guard_is_warned_about() {
    let master = RedisServer::start();
    let replica = RedisServer::start();
    replica.cli(&["REPLICAOF", "127.0.0.1", &master.port().to_string()]).unwrap();
    let mut linked = false;
    for _ in 0..100 {
        let info = master.cli(&["INFO", "replication"]).unwrap();
        if info.contains("connected_slaves:1") {
            linked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(linked, "the replica never connected");
    let guard = |r: &sesame_redis::ServerReport| {
        r.warnings.iter().any(|w| w.contains("min-replicas-to-write is 0"))
    };
    let store = RedisStore::connect(&master.url()).await.unwrap();
    let report = store.server_report().await;
    assert_eq!((report.replicas, report.min_replicas_to_write), (Some(1), Some(0)));
    assert!(guard(&report), "{:?}", report.warnings);
    master.cli(&["CONFIG", "SET", "min-replicas-to-write", "1"]).unwrap();
    master.cli(&["CONFIG", "SET", "min-replicas-max-lag", "2"]).unwrap();
    let store = RedisStore::connect(&master.url()).await.unwrap();
    let report = store.server_report().await;
    assert!(!guard(&report), "{:?}", report.warnings);
    // One replica for one required: a failover would leave the new master refusing writes.
    assert!(
        report.warnings.iter().any(|w| w.contains("one replica fewer")),
        "{:?}",
        report.warnings
    );
    // Cut off from its replica, the guarded master refuses writes after the lag: a login is
    // an outage (503, retry later), not a server error, and nothing is written.
    let config = sesame::SessionConfig::builder().insecure_development_secret().build().unwrap();
    let m = sesame::SessionManager::new(std::sync::Arc::new(store), config);
    // With its replica acknowledging (once a second), the master takes writes.
    // (The master counts its good replicas once a second; on a loaded machine the first
    // acknowledgements can come late, hence up to 10 s.)
    let mut refused = None;
    for _ in 0..100 {
        let s = m.open(None);
        let result = async {
            s.login("ann").await?;
            s.commit().await
        }
        .await;
        match result {
            Ok(_) => {
                refused = None;
                break;
            }
            Err(e) => refused = Some(e.to_string()),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        refused.is_none(),
        "the guarded master refused writes with its replica connected: {refused:?}, {}",
        master.cli(&["INFO", "replication"]).unwrap()
    );
    // A session whose touch will be due (idle 4 s: a touch at most once a second).
    let short = sesame::SessionConfig::builder()
        .insecure_development_secret()
        .idle_timeout(std::time::Duration::from_secs(4))
        .build()
        .unwrap();
    let store2 = RedisStore::connect(&master.url()).await.unwrap();
    let m2 = sesame::SessionManager::new(std::sync::Arc::new(store2), short);
    let s = m2.open(None);
    s.login("cat").await.unwrap();
    let cat = match s.commit().await.unwrap() {
        sesame::TokenAction::Set { token, .. } => token.expose(),
        other => panic!("{other:?}"),
    };
    replica.cli(&["REPLICAOF", "NO", "ONE"]).unwrap();
    let mut refused = None;
    for _ in 0..100 {
        let s = m.open(None);
        let r = async {
            s.login("bob").await?;
            s.commit().await
        }
        .await;
        if let Err(e) = r {
            refused = Some(e);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let e = refused.expect("the isolated master kept accepting writes");
    assert!(e.is_retryable(), "an outage: {e}");
    assert!(e.to_string().contains("NOREPLICAS"), "{e}");
    // Reads go on: the load whose touch is due keeps the deadline instead of failing.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let s = m2.open(Some(&cat));
    assert_eq!(
        s.principal().await.unwrap().as_deref(),
        Some("cat"),
        "a read on the guarded master"
    );
    let alone = RedisServer::start();
    let store = RedisStore::connect(&alone.url()).await.unwrap();
    let report = store.server_report().await;
    assert!(!guard(&report), "no replica: {:?}", report.warnings);
}
