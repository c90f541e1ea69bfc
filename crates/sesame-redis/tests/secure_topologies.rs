//! The store on secured replicated topologies: a Sentinel group and a Redis Cluster that
//! serve TLS only (one throwaway CA for every data node and sentinel; replication, the
//! sentinels' links and the cluster bus over TLS too) and whose data nodes are reached as an
//! ACL user (`rediss+sentinel://app:…@…`, `rediss+cluster://app:…@…`; the default user keeps
//! its own password).
//!
//! For each topology, spawned once: the whole conformance suite runs through
//! `RedisStore::builder(url).ca_cert_pem(pem)` (every check with its own client and key
//! prefix); then connecting fails with an error (never a panic or a hang) when the URL has a
//! wrong password, when it asks for plain TCP (`redis+sentinel://`, `redis+cluster://`) to the
//! TLS-only ports, and when the CA is not given.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sesame::{StoreError, Tag, TokenCodec};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{self, policy, record, DynStore};
use sesame_testkit::{Cluster, ClusterOptions, SentinelGroup, SentinelOptions};

static PREFIX: AtomicUsize = AtomicUsize::new(0);

/// The ACL user's password, as written in the URLs (it needs percent-encoding).
const APP_PASSWORD_ENCODED: &str = "p%40ss%20w%3Ard";
/// A wrong password that must not show up in error messages.
const WRONG_PASSWORD: &str = "wrong-pw-4711";
/// Upper bound for a connection attempt that is expected to fail.
const FAILING_CONNECT_BOUND: Duration = Duration::from_secs(30);

/// The ACL user `app` with full rights, next to the default user's own password.
fn acl_user() -> Option<(String, String)> {
    Some(("app".to_owned(), "p@ss w:rd".to_owned()))
}

/// A connected store for `url` trusting `pem`, with a key prefix of its own.
async fn client(url: &str, pem: &str) -> DynStore {
    let prefix = format!("sec{}", PREFIX.fetch_add(1, Ordering::Relaxed));
    let store = RedisStore::builder(url)
        .ca_cert_pem(pem.as_bytes().to_vec())
        .prefix(prefix)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    Arc::new(store)
}

/// Connecting with `builder` fails with an error (within a bound, without a panic);
/// returns the error's text.
async fn connect_fails(what: &str, builder: sesame_redis::RedisStoreBuilder) -> String {
    let started = Instant::now();
    let result =
        tokio::time::timeout(FAILING_CONNECT_BOUND, builder.connect()).await.unwrap_or_else(|_| {
            panic!("{what}: connect still pending after {FAILING_CONNECT_BOUND:?}")
        });
    let err: StoreError = match result {
        Ok(_) => panic!("{what}: connected"),
        Err(e) => e,
    };
    let text = err.to_string();
    eprintln!("{what}: failed after {:?} with: {text}", started.elapsed());
    text
}

/// One create and load through a store, as a smoke test before the suite.
async fn create_and_load(store: &DynStore) {
    let k = TokenCodec::insecure_development().generate(Tag::random().unwrap()).unwrap().key();
    assert!(store
        .create(&k, &record(None, &[("a", b"1")]), None, sesame::now_ms(), &policy())
        .await
        .unwrap()
        .is_created());
    let loaded = store.load(&k, sesame::now_ms(), &policy()).await.unwrap().live().unwrap();
    assert_eq!(loaded.record.attrs["a"], b"1");
}

/// The failure checks shared by both topologies: `url` is the working `rediss+…` URL.
async fn wrong_settings_fail(url: &str, pem: &str) {
    let with_ca = |url: String| RedisStore::builder(url).ca_cert_pem(pem.as_bytes().to_vec());

    let wrong = url.replacen(APP_PASSWORD_ENCODED, WRONG_PASSWORD, 1);
    assert_ne!(wrong, url);
    let text = connect_fails("wrong password", with_ca(wrong)).await;
    assert!(!text.contains(WRONG_PASSWORD), "no password in the message: {text}");
    // A configuration error, not an outage (which would tell the app to retry with a 503).
    assert!(!text.contains("unavailable"), "{text}");

    // A CA with a URL that does not ask for TLS is refused before any connection.
    let plain_with_ca = with_ca(url.replacen("rediss+", "redis+", 1));
    let text = connect_fails("CA with a plain URL", plain_with_ca).await;
    assert!(text.contains("does not use TLS"), "{text}");

    // Without a CA: nothing in the configuration mentions TLS, so the client really speaks
    // plain RESP to the TLS-only ports.
    let plain = url.replacen("rediss+", "redis+", 1);
    assert_ne!(plain, url);
    connect_fails("plain TCP to TLS-only ports", RedisStore::builder(plain)).await;

    connect_fails("TLS without the CA", RedisStore::builder(url)).await;
}

#[tokio::test]
async fn tls_acl_sentinel() {
    let started = Instant::now();
    let group = tokio::task::spawn_blocking(|| {
        SentinelGroup::start_with(SentinelOptions {
            password: Some("default pw".into()),
            acl_user: acl_user(),
            tls: true,
            ..SentinelOptions::default()
        })
    })
    .await
    .unwrap()
    .unwrap();
    eprintln!("sentinel group up after {:?}", started.elapsed());
    let url = group.url();
    assert!(url.starts_with(&format!("rediss+sentinel://app:{APP_PASSWORD_ENCODED}@")), "{url}");
    let pem = group.ca_cert_pem().unwrap();

    create_and_load(&client(&url, &pem).await).await;
    let suite = Instant::now();
    conformance::run_all(|| client(&url, &pem)).await;
    eprintln!("conformance suite on the sentinel group took {:?}", suite.elapsed());

    wrong_settings_fail(&url, &pem).await;
    eprintln!("sentinel test took {:?}", started.elapsed());
    drop(group);
}

#[tokio::test]
async fn tls_acl_cluster() {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(|| {
        Cluster::start_with(ClusterOptions {
            password: Some("default pw".into()),
            acl_user: acl_user(),
            tls: true,
            ..ClusterOptions::default()
        })
    })
    .await
    .unwrap()
    .unwrap();
    eprintln!("cluster up after {:?}", started.elapsed());
    let url = cluster.url();
    assert!(url.starts_with(&format!("rediss+cluster://app:{APP_PASSWORD_ENCODED}@")), "{url}");
    let pem = cluster.ca_cert_pem().unwrap();

    create_and_load(&client(&url, &pem).await).await;
    let suite = Instant::now();
    conformance::run_all(|| client(&url, &pem)).await;
    eprintln!("conformance suite on the cluster took {:?}", suite.elapsed());

    wrong_settings_fail(&url, &pem).await;
    eprintln!("cluster test took {:?}", started.elapsed());
    drop(cluster);
}
