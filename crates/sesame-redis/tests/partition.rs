//! What a network partition does to a Sentinel-followed store, simulated with stopped
//! processes (SIGSTOP: connections stay open and nothing answers, as when packets are
//! dropped): requests fail within the documented bound; the store moves to a new master
//! without the `+switch-master` announcements, and stops writing to a master that was
//! demoted; a write's `WAIT` holds up no other request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use sesame::{Store, StoreError, Tag};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{key, policy, record};
use sesame_testkit::fixtures::{create, now};
use sesame_testkit::{SentinelGroup, SentinelOptions};

use common::signal;

async fn group(replicas: usize) -> SentinelGroup {
    tokio::task::spawn_blocking(move || {
        SentinelGroup::start_with(SentinelOptions { replicas, ..SentinelOptions::default() })
    })
    .await
    .unwrap()
    .unwrap()
}

/// Waits (generously) until `done` holds.
async fn eventually(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < until, "{what}: not within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// The documented bound: a request waits at most connect_timeout + 2 x response_timeout (one
// master lookup, then its command), however many sentinels are out of reach. Here the master
// and every sentinel hang (stopped), and five more sentinel addresses accept connections but
// never answer: every request fails as unavailable within the bound (plus scheduling slack),
// and the store recovers once the processes resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_within_the_bound_when_nothing_answers() {
    let g = group(1).await;
    let silent: Vec<TcpListener> =
        (0..5).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let mut hosts: Vec<String> =
        silent.iter().map(|l| format!("127.0.0.1:{}", l.local_addr().unwrap().port())).collect();
    hosts.extend(g.sentinel_ports().iter().map(|p| format!("127.0.0.1:{p}")));
    let url = format!("redis+sentinel://{}/{}", hosts.join(","), g.master_name());
    let (connect, response) = (Duration::from_millis(800), Duration::from_millis(800));
    let s = RedisStore::builder(&url)
        .connect_timeout(connect)
        .response_timeout(response)
        .connect()
        .await
        .unwrap();
    let k = key(Tag::random().unwrap());
    create(&s, &k, &record(None, &[]), &policy()).await;

    let master = &g.data_nodes()[g.current_master().unwrap()];
    let mut stopped: Vec<u32> = g.sentinel_pids().into_iter().flatten().collect();
    stopped.push(master.pid().unwrap());
    for pid in &stopped {
        signal(*pid, "STOP");
    }
    let bound = connect + response * 2;
    let slack = Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::new();
            for _ in 0..4 {
                let started = Instant::now();
                let r = s.load(&k, now(), &policy()).await;
                took.push(started.elapsed());
                assert!(matches!(r, Err(StoreError::Unavailable { .. })), "{r:?}");
            }
            took
        }));
    }
    let mut worst = Duration::ZERO;
    for t in tasks {
        worst = worst.max(t.await.unwrap().into_iter().max().unwrap());
    }
    for pid in &stopped {
        signal(*pid, "CONT");
    }
    eprintln!("slowest failed request: {worst:?} (bound {bound:?})");
    assert!(worst <= bound + slack, "a request took {worst:?}; the bound is {bound:?}");

    let until = Instant::now() + Duration::from_secs(30);
    while s.load(&k, now(), &policy()).await.is_err() {
        assert!(Instant::now() < until, "the store did not recover: {}", g.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many connections sentinel `i` has accepted so far.
fn sentinel_connections(g: &SentinelGroup, i: usize) -> u64 {
    let info = g.sentinel_cli(i, &["INFO", "stats"]).unwrap();
    let line = info.lines().find_map(|l| l.strip_prefix("total_connections_received:"));
    line.unwrap().trim().parse().unwrap()
}

// Without the `+switch-master` announcements (the store does not listen, as when a partition
// swallowed them), the periodic check moves the store to the new master after a failover,
// with no request made. The check keeps its connection to each sentinel: a few seconds of
// checks open no new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_failover_without_announcements() {
    let g = group(1).await;
    let s = RedisStore::builder(g.url()).without_switch_announcements().connect().await.unwrap();
    let first = g.current_master_port().unwrap();
    assert_eq!(s.current_master(), Some(format!("127.0.0.1:{first}")));
    let before: Vec<u64> = (0..3).map(|i| sentinel_connections(&g, i)).collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, b) in before.iter().enumerate() {
        // One for each `INFO` of this test, at most one for the store.
        let opened = sentinel_connections(&g, i) - b;
        assert!(opened <= 2, "sentinel {i}: {opened} new connections");
    }
    g.sentinel_cli(0, &["SENTINEL", "FAILOVER", g.master_name()]).unwrap();
    let second =
        tokio::task::block_in_place(|| g.wait_for_failover(first, Duration::from_secs(30)))
            .unwrap();
    let want = Some(format!("127.0.0.1:{second}"));
    let promoted = Instant::now();
    eventually("the store follows the new master", Duration::from_secs(20), || {
        s.current_master() == want
    })
    .await;
    eprintln!("followed {:?} after the sentinels agreed on the new master", promoted.elapsed());
    create(&s, &key(Tag::random().unwrap()), &record(None, &[]), &policy()).await;
}

// A master that says it is a replica now (`ROLE`) is forgotten by the periodic check even
// when no sentinel answers, and no write goes to it: writes fail as unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_master_gets_no_writes() {
    let g = group(1).await;
    let s = RedisStore::builder(g.url())
        .without_switch_announcements()
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let master = &g.data_nodes()[g.current_master().unwrap()];
    let sentinels: Vec<u32> = g.sentinel_pids().into_iter().flatten().collect();
    for pid in &sentinels {
        signal(*pid, "STOP");
    }
    let nowhere = sesame_testkit::free_port().to_string();
    master.cli(&["REPLICAOF", "127.0.0.1", &nowhere]).unwrap();
    eventually("the store forgets the demoted master", Duration::from_secs(20), || {
        s.current_master().is_none()
    })
    .await;
    let k = key(Tag::random().unwrap());
    let r = s.create(&k, &record(None, &[]), None, now(), &policy()).await;
    assert!(matches!(r, Err(StoreError::Unavailable { .. })), "{r:?}");
    for pid in &sentinels {
        signal(*pid, "CONT");
    }
}

// With durability on, a Sentinel-followed store's writes wait for replicas on connections of
// their own: reads go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_reads_are_not_held_up_by_a_waiting_write() {
    let g = group(1).await;
    let s = RedisStore::builder(g.url())
        .durability(1, Duration::from_secs(30))
        .response_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let m = g.current_master().unwrap();
    let nodes = g.data_nodes();
    common::reads_go_on_while_a_write_waits(&s, |_| (&nodes[m], &nodes[1 - m])).await;
}

// A write whose reply does not come within the response timeout (the server hangs) may have
// been applied: its error says the outcome is unknown. A read that times out does not.
#[tokio::test]
async fn a_write_without_a_reply_has_an_unknown_outcome() {
    let server = sesame_testkit::RedisServer::start();
    let s = RedisStore::builder(server.url())
        .response_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let pid = server.pid().unwrap();
    signal(pid, "STOP");
    let k = key(Tag::random().unwrap());
    let written = s.create(&k, &record(None, &[]), None, now(), &policy()).await;
    let read = s.load(&k, now(), &policy()).await;
    signal(pid, "CONT");
    let e = written.unwrap_err();
    assert!(
        matches!(&e, StoreError::Unavailable { message, .. } if message.contains("outcome unknown")),
        "{e}"
    );
    let e = read.unwrap_err();
    assert!(e.is_unavailable() && !e.to_string().contains("outcome unknown"), "{e}");
}
