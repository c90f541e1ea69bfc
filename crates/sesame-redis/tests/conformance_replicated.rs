//! The store conformance suite on a Sentinel group and on a Redis Cluster, each spawned once
//! for all checks (every check gets its own client and key prefix), with a password.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sesame_redis::RedisStore;
use sesame_testkit::conformance::{self, DynStore};
use sesame_testkit::{Cluster, ClusterOptions, SentinelGroup, SentinelOptions};

static PREFIX: AtomicUsize = AtomicUsize::new(0);

async fn client(url: &str) -> DynStore {
    let prefix = format!("conf{}", PREFIX.fetch_add(1, Ordering::Relaxed));
    Arc::new(RedisStore::builder(url).prefix(prefix).connect().await.unwrap())
}

#[tokio::test]
async fn conformance_on_sentinel() {
    let group = tokio::task::spawn_blocking(|| {
        SentinelGroup::start_with(SentinelOptions {
            password: Some("s3cret pw".into()),
            ..SentinelOptions::default()
        })
    })
    .await
    .unwrap()
    .unwrap();
    let url = group.url();
    assert!(url.starts_with("redis+sentinel://"), "{url}");
    conformance::run_all(|| client(&url)).await;
    drop(group);
}

#[tokio::test]
async fn conformance_on_cluster() {
    let cluster = tokio::task::spawn_blocking(|| {
        Cluster::start_with(ClusterOptions {
            password: Some("s3cret".into()),
            ..ClusterOptions::default()
        })
    })
    .await
    .unwrap()
    .unwrap();
    let url = cluster.url();
    assert!(url.starts_with("redis+cluster://"), "{url}");
    conformance::run_all(|| client(&url)).await;
    drop(cluster);
}
