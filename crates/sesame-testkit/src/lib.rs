//! Test support for sesame: real `redis-server` processes on free loopback ports.
//!
//! Everything here is synchronous and std-only, so it can be used from plain
//! `#[test]` functions as well as from `#[tokio::test]` code.
//!
//! # Map of the crate
//!
//! - [`RedisServer`] (module `server`): owns one `redis-server` child process
//!   running in its own temporary directory, bound to `127.0.0.1` on a free port.
//!   It can be stopped and restarted on the same port and directory, queried with
//!   `redis-cli` ([`RedisServer::cli`]) and inspected through `INFO commandstats`
//!   ([`RedisServer::info_commandstats`], [`RedisServer::total_commands`]).
//!   Dropping it kills the process and removes the directory.
//! - [`RedisOptions`] (module `server`): password, extra ACL user, append-only
//!   persistence, TLS, verbatim extra arguments, and [`RunAs`]: another user
//!   to run the server as.
//! - [`SentinelGroup`] (module `sentinel`): one master, its replicas and three
//!   sentinels with short timeouts; [`SentinelGroup::kill_master`] and
//!   [`SentinelGroup::wait_for_failover`] drive a failover, and
//!   [`SentinelGroup::url`] is a `redis+sentinel://` URL. Configured by
//!   [`SentinelOptions`], which can also make every process TLS-only (one
//!   shared CA, [`SentinelGroup::ca_cert_pem`], `rediss+sentinel://`) and add
//!   an ACL user that clients, replicas and sentinels authenticate as, or run
//!   the replicas and sentinels as another user ([`SentinelOptions::run_as`]).
//! - [`Partition`] (module `partition`): a network partition on the loopback
//!   interface made with `iptables` (root only), between the processes of one
//!   user and all others: cut, heal, rules removed on drop;
//!   [`Partition::available`] says why it cannot be done here.
//! - [`Cluster`] (module `cluster`): six nodes joined into a Redis Cluster
//!   (three masters, three replicas) by `redis-cli --cluster create`;
//!   [`Cluster::kill_node`] and [`Cluster::wait_for_failover`] drive a failover,
//!   and [`Cluster::url`] is a `redis+cluster://` URL. Configured by
//!   [`ClusterOptions`], which can also make every node TLS-only (bus and
//!   replication included; one shared CA, [`Cluster::ca_cert_pem`],
//!   `rediss+cluster://`) and add an ACL user.
//! - module `process`: the child-process plumbing shared by [`RedisServer`] and
//!   the sentinels (spawn in a temporary directory, readiness probe, SIGKILL on
//!   drop); module `wait`: bounded polling for the topologies.
//! - [`free_port`] (module `port`): picks a free loopback port (and checks that
//!   `port + 10000`, the cluster bus port, is free as well).
//! - [`TestkitError`] (module `error`): every failure, with the tail of the server
//!   log in its message.
//! - module `tls`: generates a throwaway CA and a server certificate for
//!   `127.0.0.1` / `localhost` with `rcgen`, per server or shared by all
//!   processes of a topology.
//! - module `client`: [`RedisServer::cli`], the stats helpers and the readiness
//!   probe (`INFO server` over raw RESP, checking the `process_id` is our child).
//! - [`conformance`]: the store conformance suite and the
//!   [`conformance_tests!`] macro that runs it against one backend.
//! - [`http_suite`]: the HTTP suite, written once and run against every framework
//!   integration through the [`http_suite_tests!`] macro and a
//!   [`Framework`](http_suite::Framework) each integration's test file implements.
//! - [`encryption`]: encryption at rest end to end through the session layer, the same checks
//!   on every store.
//! - [`fixtures`]: small helpers shared by test files (the clock, a create that must
//!   succeed, a lookup that must be live, a byte search, the Redis store's pointer bytes).
//! - module `proc`: runs short-lived helper processes (`redis-cli`) with a timeout.
//!
//! # Example
//!
//! ```no_run
//! let server = sesame_testkit::RedisServer::start();
//! assert_eq!(server.cli(&["PING"]).unwrap(), "PONG");
//! println!("connect to {}", server.url());
//! ```

mod client;
mod cluster;
pub mod conformance;
pub mod encryption;
mod error;
pub mod fixtures;
pub mod http_suite;
pub mod logs;
mod partition;
mod port;
mod proc;
mod process;
mod sentinel;
mod server;
mod tls;
mod wait;

pub use cluster::{key_slot, Cluster, ClusterOptions};
pub use error::TestkitError;
pub use partition::Partition;
pub use port::free_port;
pub use sentinel::{SentinelGroup, SentinelOptions};
pub use server::{Flavor, RedisOptions, RedisServer, RunAs};

/// The core crate, re-exported for the conformance macro.
pub use sesame;
