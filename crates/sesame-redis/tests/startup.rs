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
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let redis = RedisServer::start();
    for _ in 0..3 {
        RedisStore::connect(&redis.url()).await.unwrap();
    }
    let log = captured.text();
    let persistence = log.lines().filter(|l| l.contains("persist")).count();
    assert_eq!(persistence, 1, "{log}");
    assert!(!log.contains('\u{1b}'), "no colour codes: {log}");
}
