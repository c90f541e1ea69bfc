//! `peruser`: Redis work of a login, a logout and a list for a user with 1, 100 and the cap of
//! sessions, with 10,000 and then 1,000,000 sessions in Redis. Prints a Markdown table of the
//! commands Redis ran per operation (inside scripts too) and the Redis time they took
//! (`INFO commandstats` usec), averaged over many operations.
//!
//! It starts its own private `redis-server` on a loopback port. Run with
//! `cargo run --release -p sesame-bench --bin peruser` (about two minutes; pass a smaller total
//! as the first argument, e.g. `peruser 100000`, for a quicker run).
// A command-line measurement tool: printing its report is its whole purpose.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use sesame::{CapPolicy, Policy, Principal, Record, SessionKey, Store, TokenCodec};
use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;

const CAP: u32 = sesame::DEFAULT_MAX_SESSIONS_PER_USER;
/// Operations averaged per figure.
const REPEAT: usize = 200;

use sesame_bench::content::named;

fn policy() -> Policy {
    Policy {
        idle_ms: 1_800_000,
        absolute_ms: 43_200_000,
        touch_after_ms: 60_000,
        max_record_bytes: 64 * 1024,
        max_attributes: 256,
        max_sessions_per_user: CAP,
        cap_policy: CapPolicy::EvictOldest,
        grace_ms: 5_000,
        renew_after_ms: None,
    }
}

fn record(principal: &Principal) -> Record {
    let t = sesame::now_ms();
    let mut attrs = BTreeMap::new();
    attrs.insert("profile".to_string(), br#"{"name":"someone","theme":"dark"}"#.to_vec());
    Record {
        created_ms: t,
        absolute_ms: t + 43_200_000,
        principal: Some(principal.clone()),
        auth_ms: Some(t),
        version: 1,
        attrs,
        ..Record::default()
    }
}

async fn login(store: &RedisStore, p: &Principal, pol: &Policy) -> SessionKey {
    let k = TokenCodec::insecure_development().generate(p.user().tag()).unwrap().key();
    let out = store.create(&k, &record(p), None, sesame::now_ms(), pol).await.unwrap();
    assert!(out.is_created());
    k
}

/// (calls, usec) summed over every command in `INFO commandstats`, minus INFO/CONFIG.
async fn stats(conn: &mut redis::aio::MultiplexedConnection) -> (u64, u64) {
    let text: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.unwrap();
    let (mut calls, mut usec) = (0, 0);
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else { continue };
        let Some((name, fields)) = rest.split_once(':') else { continue };
        if name == "info" || name.starts_with("config") {
            continue;
        }
        for f in fields.split(',') {
            match f.split_once('=') {
                Some(("calls", v)) => calls += v.parse::<u64>().unwrap_or(0),
                Some(("usec", v)) => usec += v.parse::<u64>().unwrap_or(0),
                _ => {}
            }
        }
    }
    (calls, usec)
}

async fn fill(store: &Arc<RedisStore>, from: usize, to: usize) {
    let mut tasks = Vec::new();
    let workers = 64;
    for w in 0..workers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let pol = policy();
            let mut i = from + w;
            while i < to {
                // Ten sessions per background user.
                login(&store, &named(&format!("bg-{}", i / 10)), &pol).await;
                i += workers;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let server = RedisServer::start();
    let store = Arc::new(RedisStore::connect(&server.url()).await.unwrap());
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pol = policy();
    println!("| sessions in Redis | user's sessions | login: commands | login: Redis µs | logout: commands | logout: Redis µs | list (50): commands | list: Redis µs |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut filled = 0;
    for background in [10_000usize, total] {
        eprintln!("filling to {background} sessions...");
        fill(&store, filled, background).await;
        filled = background;
        for n in [1usize, 100, CAP as usize] {
            let p = named(&format!("measured-{background}-{n}"));
            for _ in 0..n {
                login(&store, &p, &pol).await;
            }
            // Each round logs in once more (at the cap that login evicts the least recently
            // active session), logs that session out, and lists; the user stays at `n`.
            let (mut lc, mut lu, mut oc, mut ou, mut sc, mut su) = (0, 0, 0, 0, 0, 0);
            for _ in 0..REPEAT {
                let before = stats(&mut conn).await;
                let k = login(&store, &p, &pol).await;
                let mid = stats(&mut conn).await;
                store.destroy(&k, sesame::now_ms()).await.unwrap();
                let after = stats(&mut conn).await;
                store.list_user(p.user(), sesame::now_ms(), 50).await.unwrap();
                let listed = stats(&mut conn).await;
                // Each INFO is itself one call, excluded above.
                lc += mid.0 - before.0;
                lu += mid.1 - before.1;
                oc += after.0 - mid.0;
                ou += after.1 - mid.1;
                sc += listed.0 - after.0;
                su += listed.1 - after.1;
                if n == CAP as usize {
                    // Back to the cap (the measured login evicted one, the logout ended one).
                    login(&store, &p, &pol).await;
                }
            }
            let r = REPEAT as f64;
            println!(
                "| {background} | {n} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                lc as f64 / r,
                lu as f64 / r,
                oc as f64 / r,
                ou as f64 / r,
                sc as f64 / r,
                su as f64 / r
            );
        }
    }
}
