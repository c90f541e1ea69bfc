//! What a [`Partition`] does on the loopback interface: a server of the test process's user
//! (side A) and a replica of another user (side B); during a cut nothing crosses in either
//! direction (new connections time out, open ones stall, replication stops), processes of one
//! side still reach each other, and after the heal everything flows again. Dropping the
//! partition leaves no rule behind. Needs root and iptables; elsewhere it says why and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use sesame_testkit::{Partition, RedisOptions, RedisServer, RunAs};

/// A plain-TCP connection to `port` with short timeouts.
fn connect(port: u16) -> std::io::Result<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    Ok(stream)
}

/// Sends `PING` and reads the reply (`Err` when none comes within the read timeout).
fn ping(stream: &mut TcpStream) -> std::io::Result<String> {
    stream.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Whether `iptables -S` mentions `needle`.
fn rules_mention(needle: &str) -> bool {
    let out = Command::new("iptables").args(["-w", "10", "-S"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains(needle)
}

/// Waits (at most `timeout`) for `done`.
fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= until {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
    true
}

// A cut drops both directions of every connection between the sides, new and established,
// and nothing else; a heal restores them; dropping the partition removes its chains.
#[test]
fn a_cut_stalls_both_directions_and_a_heal_restores_them() {
    if let Err(why) = Partition::available() {
        eprintln!("skipped: no network partition can be made here: {why}");
        return;
    }
    let mut partition = Partition::new(RunAs::NOBODY).unwrap();
    let chain = format!("SESAME_PART_{}_", std::process::id());
    assert!(rules_mention(&chain));
    let a = RedisServer::start();
    let a_port = a.port().to_string();
    let diskless = ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"];
    let mut extra_args: Vec<String> = diskless.iter().map(|s| s.to_string()).collect();
    extra_args.extend(["--replicaof".to_owned(), "127.0.0.1".to_owned(), a_port.clone()]);
    let b = RedisServer::start_with(RedisOptions {
        run_as: Some(RunAs::NOBODY),
        extra_args,
        ..RedisOptions::default()
    })
    .unwrap();
    assert_eq!(b.run_as(), Some(RunAs::NOBODY));
    let linked = eventually(Duration::from_secs(20), || {
        b.cli(&["INFO", "replication"]).unwrap().contains("master_link_status:up")
    });
    assert!(linked, "the replica never linked: {}", b.log());
    // The replica's process runs as nobody.
    let status = std::fs::read_to_string(format!("/proc/{}/status", b.pid().unwrap())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.split_whitespace().skip(1).all(|u| u == "65534"), "{uid}");

    let mut before = connect(b.port()).unwrap();
    assert_eq!(ping(&mut before).unwrap(), "+PONG\r\n");
    partition.cut(&[a.port()], &[b.port()]).unwrap();
    assert!(partition.is_cut());

    // Side A (this process) cannot open a connection to side B: it times out (not refused),
    // and an established one gets no answer.
    let e = connect(b.port()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    let e = ping(&mut before).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{e}");
    // Side A still reaches side A; side B (redis-cli as nobody) still reaches side B.
    assert_eq!(connect(a.port()).and_then(|mut s| ping(&mut s)).unwrap(), "+PONG\r\n");
    assert_eq!(b.cli(&["PING"]).unwrap(), "PONG");
    // Side B cannot reach side A: a write on the master does not reach the replica.
    assert_eq!(a.cli(&["SET", "during", "1"]).unwrap(), "OK");
    thread::sleep(Duration::from_secs(2));
    assert_eq!(b.cli(&["EXISTS", "during"]).unwrap(), "0", "the write crossed the cut");
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &a_port, "PING"]);
    std::os::unix::process::CommandExt::uid(&mut cmd, RunAs::NOBODY.uid);
    let mut child = cmd.stdout(std::process::Stdio::null()).spawn().unwrap();
    thread::sleep(Duration::from_secs(2));
    let waiting = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(waiting, "a client of side B reached side A");

    partition.heal().unwrap();
    assert!(!partition.is_cut());
    let caught_up =
        eventually(Duration::from_secs(20), || b.cli(&["EXISTS", "during"]).unwrap() == "1");
    assert!(caught_up, "the replica did not catch up after the heal: {}", b.log());
    assert_eq!(connect(b.port()).and_then(|mut s| ping(&mut s)).unwrap(), "+PONG\r\n");

    drop(partition);
    assert!(!rules_mention(&chain), "rules left behind");
}
