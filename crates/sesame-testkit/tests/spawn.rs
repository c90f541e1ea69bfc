//! Spawns real `redis-server` processes and checks the harness behaves.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use sesame_testkit::{RedisOptions, RedisServer, TestkitError};

/// Sends a raw RESP `PING` without authenticating and returns the reply line.
fn unauthenticated_ping(port: u16) -> std::io::Result<String> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    (&stream).write_all(b"*1\r\n$4\r\nPING\r\n")?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

/// Waits up to `timeout` for `condition` to hold.
fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    condition()
}

// Proves a default server starts and answers PING through redis-cli.
#[test]
fn started_server_answers_ping() {
    let server = RedisServer::start();
    // The readiness probe sends no counted command.
    assert_eq!(server.total_commands().unwrap(), 0);
    assert_eq!(server.cli(&["PING"]).unwrap(), "PONG");
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert!(server.log().contains("Ready to accept connections"));
}

// Proves two servers running side by side get distinct ports and directories.
#[test]
fn two_servers_get_different_ports() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    assert_eq!(b.cli(&["PING"]).unwrap(), "PONG");
}

// Proves stop + start_again keeps the port, and appendonly keeps data across a SIGKILL.
#[test]
fn restart_keeps_port_and_appendonly_data() {
    let mut server =
        RedisServer::start_with(RedisOptions { appendonly: true, ..RedisOptions::default() })
            .unwrap();
    let port = server.port();
    assert_eq!(server.cli(&["SET", "k", "v"]).unwrap(), "OK");

    server.stop();
    server.stop(); // idempotent
    assert!(!server.is_running());
    assert!(server.pid().is_none());
    assert!(server.cli(&["PING"]).is_err());

    server.start_again().unwrap();
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    assert_eq!(server.cli(&["GET", "k"]).unwrap(), "v");
}

// Proves requirepass is enforced for raw clients while url() and cli() carry the password.
#[test]
fn password_server_refuses_unauthenticated_ping() {
    let server = RedisServer::start_with(RedisOptions {
        password: Some("s3cret".to_owned()),
        ..RedisOptions::default()
    })
    .unwrap();
    let reply = unauthenticated_ping(server.port()).unwrap();
    assert!(reply.starts_with("-NOAUTH"), "unexpected reply {reply:?}");
    assert_eq!(server.url(), format!("redis://:s3cret@127.0.0.1:{}", server.port()));
    assert_eq!(server.cli(&["PING"]).unwrap(), "PONG");
}

// Proves the extra ACL user exists, has full rights, and is what url() and cli() use.
#[test]
fn acl_user_is_used_for_url_and_cli() {
    let server = RedisServer::start_with(RedisOptions {
        password: Some("defaultpw".to_owned()),
        acl_user: Some(("app".to_owned(), "apppw".to_owned())),
        ..RedisOptions::default()
    })
    .unwrap();
    assert_eq!(server.cli(&["ACL", "WHOAMI"]).unwrap(), "app");
    assert_eq!(server.cli(&["SET", "x", "1"]).unwrap(), "OK");
    assert_eq!(server.url(), format!("redis://app:apppw@127.0.0.1:{}", server.port()));
}

// Proves a TLS server serves PING over TLS with the generated CA, and not over plain TCP.
#[test]
fn tls_server_answers_ping_over_tls() {
    let server =
        match RedisServer::start_with(RedisOptions { tls: true, ..RedisOptions::default() }) {
            Ok(server) => server,
            Err(err) if err.to_string().contains("TLS") && err.to_string().contains("support") => {
                eprintln!("skipping: this redis-server has no TLS support: {err}");
                return;
            }
            Err(err) => panic!("{err}"),
        };
    assert_eq!(server.cli(&["PING"]).unwrap(), "PONG");
    assert!(server.url().starts_with("rediss://127.0.0.1:"));
    let ca = server.ca_cert_pem().unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(Path::new(&server.dir().join("ca.crt")).exists());
    // A plaintext PING on the TLS port gets no +PONG back.
    let plain = unauthenticated_ping(server.port());
    assert!(!matches!(plain.as_deref(), Ok("+PONG")), "{plain:?}");
}

// Proves commandstats sees a SET and total_commands ignores the measuring commands.
#[test]
fn commandstats_counts_a_set() {
    let server = RedisServer::start();
    server.reset_stats().unwrap();
    assert_eq!(server.cli(&["SET", "a", "1"]).unwrap(), "OK");
    let stats = server.info_commandstats().unwrap();
    assert_eq!(stats.get("set"), Some(&1), "stats: {stats:?}");
    assert_eq!(server.total_commands().unwrap(), 1);
    server.reset_stats().unwrap();
    assert_eq!(server.total_commands().unwrap(), 0);
}

// Proves dropping the server kills its process and frees its port.
#[test]
fn drop_kills_the_process() {
    let server = RedisServer::start();
    let pid = server.pid().unwrap();
    let port = server.port();
    let dir = server.dir().to_path_buf();
    drop(server);
    let proc_dir = format!("/proc/{pid}");
    assert!(
        eventually(Duration::from_secs(5), || {
            !Path::new(&proc_dir).exists() || TcpStream::connect(("127.0.0.1", port)).is_err()
        }),
        "redis-server {pid} still alive after drop"
    );
    assert!(!dir.exists(), "temporary directory {} not removed", dir.display());
}

// Proves start_again on a port someone else holds retries, then reports PortInUse with the log.
#[test]
fn start_again_on_a_taken_port_reports_port_in_use() {
    let mut server = RedisServer::start();
    server.stop();
    let _squatter = TcpListener::bind(("127.0.0.1", server.port())).unwrap();
    let started = Instant::now();
    let err = server.start_again().unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(2), "gave up too early");
    assert!(matches!(err, TestkitError::PortInUse { .. }), "{err:?}");
    assert!(err.to_string().contains("Address already in use"), "{err}");
    assert!(!server.is_running());
}

// Proves a server that cannot start yields an error carrying Redis' own complaint.
#[test]
fn bad_option_reports_the_reason() {
    let err = RedisServer::start_with(RedisOptions {
        extra_args: vec!["--no-such-directive".to_owned(), "1".to_owned()],
        ..RedisOptions::default()
    })
    .unwrap_err();
    assert!(matches!(err, TestkitError::Start { .. }), "{err:?}");
    assert!(err.to_string().contains("Bad directive"), "{err}");
}
