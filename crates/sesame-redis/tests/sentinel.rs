//! The Sentinel connection follows a failover: after a graceful `SENTINEL FAILOVER` (no
//! connection breaks: the old master is demoted and answers `READONLY`, and the sentinels
//! announce `+switch-master`) and after a SIGKILL of the master.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use sesame::{CreateOutcome, Store, StoreError, TokenCodec};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{policy, principal, record};
use sesame_testkit::{SentinelGroup, SentinelOptions};

async fn create_until_ok(s: &RedisStore, deadline: Duration) -> (u32, Duration) {
    let started = Instant::now();
    let mut failures = 0;
    loop {
        let p = principal();
        let k = TokenCodec::insecure_development().generate(p.user().tag()).unwrap().key();
        match s.create(&k, &record(Some(&p), &[]), None, sesame::now_ms(), &policy()).await {
            Ok(CreateOutcome::Created) => return (failures, started.elapsed()),
            Ok(other) => panic!("not created: {other:?}"),
            Err(StoreError::Unavailable { .. }) if started.elapsed() < deadline => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("not back after {:?}: {e}", started.elapsed()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_switchover_and_kill() {
    let mut group = tokio::task::spawn_blocking(|| {
        SentinelGroup::start_with(SentinelOptions { replicas: 2, ..SentinelOptions::default() })
    })
    .await
    .unwrap()
    .unwrap();
    let s = RedisStore::connect(&group.url()).await.unwrap();
    let first = group.current_master_port().unwrap();
    assert_eq!(s.current_master(), Some(format!("127.0.0.1:{first}")));
    let p = principal();
    let k = TokenCodec::insecure_development().generate(p.user().tag()).unwrap().key();
    assert!(s
        .create(&k, &record(Some(&p), &[("a", b"1")]), None, sesame::now_ms(), &policy())
        .await
        .unwrap()
        .is_created());
    // Make sure both replicas have it before the master changes.
    group.data_nodes()[0].cli(&["WAIT", "2", "5000"]).unwrap();

    // 1. A graceful switchover: nothing breaks the connection; the store must notice anyway.
    group.sentinel_cli(0, &["SENTINEL", "FAILOVER", group.master_name()]).unwrap();
    let second = tokio::task::block_in_place(|| {
        group.wait_for_failover(first, Duration::from_secs(30)).unwrap()
    });
    // Without a single request, the `+switch-master` announcement alone makes the store
    // forget the old master.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.current_master() == Some(format!("127.0.0.1:{first}")) {
        assert!(Instant::now() < deadline, "the store never heard of the switch");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (failures, _) = create_until_ok(&s, Duration::from_secs(20)).await;
    assert_eq!(
        s.current_master(),
        Some(format!("127.0.0.1:{second}")),
        "after {failures} failures"
    );
    assert!(s.load(&k, sesame::now_ms(), &policy()).await.unwrap().is_live(), "data survived");

    // 2. The new master is killed: requests fail as unavailable, then work on the next one.
    let victim = group.kill_master().unwrap();
    let third = tokio::task::block_in_place(|| {
        group.wait_for_failover(second, Duration::from_secs(30)).unwrap()
    });
    let (_, took) = create_until_ok(&s, Duration::from_secs(20)).await;
    assert_eq!(s.current_master(), Some(format!("127.0.0.1:{third}")), "{took:?}");
    assert!(s.load(&k, sesame::now_ms(), &policy()).await.unwrap().is_live());
    tokio::task::block_in_place(|| group.restart_node(victim).unwrap());
}

#[tokio::test]
async fn unknown_master_name_and_dead_sentinels_are_clear_errors() {
    let group = tokio::task::spawn_blocking(SentinelGroup::start).await.unwrap().unwrap();
    let ports = group.sentinel_ports();
    let url = format!("redis+sentinel://127.0.0.1:{}/no-such-master", ports[0]);
    let e = RedisStore::connect(&url).await.unwrap_err().to_string();
    assert!(e.contains("no-such-master"), "{e}");
    let dead = sesame_testkit::free_port();
    let e = RedisStore::connect(&format!("redis+sentinel://127.0.0.1:{dead}/sesame"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
}

// Sentinels that require their own password: without `sentinel_credentials` the store
// cannot connect (a configuration error, not an outage); with them it works and follows a
// failover (the `+switch-master` listeners authenticate too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_with_their_own_password() {
    let mut group = tokio::task::spawn_blocking(|| {
        SentinelGroup::start_with(SentinelOptions {
            password: Some("data-pw".into()),
            sentinel_password: Some("sentinel pw".into()),
            ..SentinelOptions::default()
        })
    })
    .await
    .unwrap()
    .unwrap();
    let url = group.url();
    let e = RedisStore::connect(&url).await.unwrap_err();
    assert!(!matches!(e, StoreError::Unavailable { .. }), "{e}");
    assert!(!e.to_string().contains("sentinel pw") && !e.to_string().contains("data-pw"), "{e}");
    let s = RedisStore::builder(&url)
        .sentinel_credentials(None, "sentinel pw")
        .connect()
        .await
        .unwrap();
    let p = principal();
    let k = TokenCodec::insecure_development().generate(p.user().tag()).unwrap().key();
    let created = s.create(&k, &record(Some(&p), &[]), None, sesame::now_ms(), &policy()).await;
    assert!(created.unwrap().is_created());
    group.data_nodes()[0].cli(&["WAIT", "1", "5000"]).unwrap();
    let first = group.current_master_port().unwrap();
    group.kill_master().unwrap();
    let second = tokio::task::block_in_place(|| {
        group.wait_for_failover(first, Duration::from_secs(30)).unwrap()
    });
    create_until_ok(&s, Duration::from_secs(20)).await;
    assert_eq!(s.current_master(), Some(format!("127.0.0.1:{second}")));
    assert!(s.load(&k, sesame::now_ms(), &policy()).await.unwrap().is_live());
}
