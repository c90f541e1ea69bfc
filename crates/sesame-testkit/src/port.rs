//! Picking free loopback ports.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, PoisonError};

/// Offset of the Redis Cluster bus port from the client port.
const CLUSTER_BUS_OFFSET: u16 = 10_000;

/// The port a developer's own Redis most likely uses; never handed out.
const DEFAULT_REDIS_PORT: u16 = 6379;

/// Ports already handed out by this process, so that two servers started
/// concurrently by parallel tests never receive the same one.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Returns a loopback port that was free a moment ago.
///
/// The port is found by binding `127.0.0.1:0` and reading the port the kernel
/// chose; the listener is dropped before returning. The port `port + 10000`
/// (the Redis Cluster bus port) is checked to be free as well. A port is never
/// returned twice by the same process, and 6379 is never returned.
///
/// Another process may still grab the port before it is used; [`RedisServer`]
/// copes with that by retrying on a fresh port.
///
/// # Panics
///
/// Panics if no suitable port is found after many attempts (the loopback
/// interface is unusable or the port range is exhausted).
///
/// [`RedisServer`]: crate::RedisServer
// Test harness: without a port no test can run, so failing loudly is right.
#[allow(clippy::panic)]
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(err) => panic!("cannot find a free loopback port: {err}"),
    }
}

/// Fallible core of [`free_port`].
fn try_free_port() -> std::io::Result<u16> {
    const ATTEMPTS: usize = 200;
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..ATTEMPTS {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        if port == DEFAULT_REDIS_PORT || handed_out.contains(&port) {
            continue;
        }
        let Some(bus_port) = port.checked_add(CLUSTER_BUS_OFFSET) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, bus_port)).is_err() {
            continue;
        }
        handed_out.insert(port);
        return Ok(port);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        format!("no usable port after {ATTEMPTS} attempts"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_leave_room_for_the_bus() {
        let a = free_port();
        let b = free_port();
        assert_ne!(a, b);
        for port in [a, b] {
            assert_ne!(port, DEFAULT_REDIS_PORT);
            assert!(port.checked_add(CLUSTER_BUS_OFFSET).is_some());
            assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok());
        }
    }
}
