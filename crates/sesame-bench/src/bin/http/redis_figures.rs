//! Figures read from the private `redis-server`: its version, commands per request (checked
//! against the store's protocol) and memory per key.

use std::collections::BTreeMap;

use sesame_bench::info::{is_measuring_command, parse_info};
use sesame_bench::{BenchError, BenchResult};
use sesame_testkit::RedisServer;

/// Key pattern of session records under the default prefix.
pub(crate) const SESSION_PATTERN: &str = "sesame:*:s:*";
/// Key pattern of the per-user indexes under the default prefix.
pub(crate) const INDEX_PATTERN: &str = "sesame:*:u:*";

/// The server's version: `valkey_version` on Valkey, else `redis_version`.
pub(crate) fn version(redis: &RedisServer) -> BenchResult<String> {
    let info = parse_info(&redis.cli(&["INFO", "server"])?);
    info.get("valkey_version")
        .or_else(|| info.get("redis_version"))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| BenchError::new("INFO server has no redis_version"))
}

/// The server's `used_memory`, bytes.
pub(crate) fn used_memory(redis: &RedisServer) -> BenchResult<u64> {
    let info = parse_info(&redis.cli(&["INFO", "memory"])?);
    info.get("used_memory")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| BenchError::new("INFO memory has no used_memory"))
}

/// What the Redis server did during one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RedisUse {
    /// Calls per command since `CONFIG RESETSTAT` (lowercase names), without the `INFO`,
    /// `CONFIG` and `SCRIPT` calls made to measure. Redis counts the commands a script runs
    /// too, so one `EVALSHA` shows up together with the `GET`, `SET`... inside it.
    pub(crate) calls: BTreeMap<String, u64>,
    /// CPU time the server used (user + system), seconds.
    pub(crate) cpu_s: f64,
}

impl RedisUse {
    /// Calls of one command (lowercase name); 0 when Redis did not see it.
    pub(crate) fn calls_of(&self, name: &str) -> u64 {
        self.calls.get(name).copied().unwrap_or(0)
    }

    /// Script calls (`EVALSHA`).
    pub(crate) fn scripts(&self) -> u64 {
        self.calls_of("evalsha")
    }

    /// Whether sesame saved with Valkey's own compare-and-set (`SET … IFEQ`): more `SET` than
    /// script runs, since a script run writes at most one.
    pub(crate) fn native_saves(&self) -> bool {
        self.calls_of("set") > self.scripts()
    }

    /// Touches that wrote (a load's, or a save's that was due one): each is a script run that
    /// writes the record with its new deadline and moves the index (one `ZADD`).
    fn touches(&self) -> u64 {
        self.calls_of("zadd")
    }

    /// Script runs that wrote nothing: another write came first, or (on Valkey) the run that
    /// follows a native `SET` that did not write. Without native saves, a run that did not
    /// `SET`; with them, a run that was not a touch (in this benchmark, the run after a
    /// native `SET` that did not write finds another value, and writes nothing).
    fn lost_races(&self) -> u64 {
        let script_sets = if self.native_saves() { self.touches() } else { self.calls_of("set") };
        self.scripts().saturating_sub(script_sets)
    }

    /// Native `SET … IFEQ` calls, those that did not write included.
    fn native_sets(&self) -> u64 {
        if self.native_saves() {
            self.calls_of("set").saturating_sub(self.touches())
        } else {
            0
        }
    }

    /// sesame's loads: one `GET` each (the record carries its idle deadline), less the one
    /// `GET` of each script run.
    pub(crate) fn loads(&self) -> u64 {
        self.calls_of("get").saturating_sub(self.scripts())
    }

    /// Saves that wrote: every `SET` that was not a touch's, less, with native saves, the
    /// native ones that did not write (one per lost race).
    pub(crate) fn saves(&self) -> u64 {
        let not_written = if self.native_saves() { self.lost_races() } else { 0 };
        self.calls_of("set").saturating_sub(self.touches()).saturating_sub(not_written)
    }

    /// Round trips from the client: sesame sends a load's `GET`, each touch and script save
    /// as one `EVALSHA`, each native save as one `SET`; with no script run (the peers, or
    /// sesame with nothing but plain reads and native saves) every command is a round trip.
    pub(crate) fn round_trips(&self) -> u64 {
        if self.scripts() > 0 {
            self.loads() + self.scripts() + self.native_sets()
        } else {
            self.commands()
        }
    }

    /// Every command counted, those run inside scripts included.
    pub(crate) fn commands(&self) -> u64 {
        self.calls.values().sum()
    }
}

/// Checks that a run of `endpoint` on the sesame server asked of Redis what the store's
/// protocol says, given the `requests` wrk saw completed (every session is logged in):
///
/// - every request loads once: one `GET`, no script (the record carries its idle deadline);
///   only when that deadline is due for a push, a touch: one `EVALSHA` of the
///   compare-and-set script, which runs `GET`, then `SET` of the record with its new deadline
///   and `ZADD` + `PEXPIREAT` of the user's index, or `PTTL` when another write came first;
/// - `GET /me` also saves once: one `EVALSHA` of the same script, which runs `GET` and then
///   `SET`, or `PTTL` when another save came first (then the store retries). On Valkey a save
///   not due a touch is one native `SET … IFEQ` instead, and the script runs only after one
///   that did not write (`GET`, `PTTL`);
/// - `GET /me_ro` writes nothing but touches: every `SET` there is a touch's.
///
/// Requests still in flight when wrk stops are counted by Redis but not by wrk, hence the
/// `slack` allowed above the completed requests.
pub(crate) fn check_protocol(
    endpoint: &str,
    requests: u64,
    slack: u64,
    u: &RedisUse,
) -> BenchResult<()> {
    let writes = endpoint == "/me";
    let (scripts, set, pttl) = (u.scripts(), u.calls_of("set"), u.calls_of("pttl"));
    let (loads, touches, lost) = (u.loads(), u.touches(), u.lost_races());
    let within = |calls: u64| (requests..=requests + slack).contains(&calls);
    let mut problems = Vec::new();
    let known = ["get", "pttl", "zadd", "pexpireat", "evalsha", "set"];
    if let Some(other) = u.calls.keys().find(|name| !known.contains(&name.as_str())) {
        problems.push(format!("unexpected command {other}"));
    }
    if !within(loads) {
        problems.push(format!("{loads} loads (GET outside script runs) for {requests} requests"));
    }
    // A script run asks for the TTL only when it found another value.
    if pttl.abs_diff(lost) > slack {
        problems.push(format!("{pttl} PTTL for {lost} script runs that lost a race"));
    }
    let saves = u.saves();
    if writes && !within(saves) {
        problems
            .push(format!("{saves} saves ({set} SET, {scripts} EVALSHA) for {requests} requests"));
    }
    if !writes && (set > touches + slack || scripts > touches + lost + slack) {
        problems.push(format!(
            "{scripts} EVALSHA and {set} SET for {touches} touches on a read-only endpoint"
        ));
    }
    // The index moves with each touch, ZADD and PEXPIREAT together; at most one per request.
    let pexpireat = u.calls_of("pexpireat");
    if touches.abs_diff(pexpireat) > slack {
        problems.push(format!("{touches} ZADD but {pexpireat} PEXPIREAT (they go together)"));
    }
    if touches > requests + slack {
        problems.push(format!("{touches} touches for {requests} requests"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BenchError::new(format!(
            "GET {endpoint}: Redis saw {:?} for {requests} requests: {}",
            u.calls,
            problems.join("; ")
        )))
    }
}

/// The server's CPU time so far (user + system, main thread and children), seconds.
fn cpu_seconds(redis: &RedisServer) -> BenchResult<f64> {
    let info = parse_info(&redis.cli(&["INFO", "cpu"])?);
    let field = |k: &str| -> BenchResult<f64> {
        info.get(k)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| BenchError::new(format!("INFO cpu has no {k}")))
    };
    Ok(field("used_cpu_user")? + field("used_cpu_sys")?)
}

/// Resets the command statistics before a run; returns the CPU time to pass to [`usage_since`].
pub(crate) fn start(redis: &RedisServer) -> BenchResult<f64> {
    redis.reset_stats()?;
    cpu_seconds(redis)
}

/// What the server did since [`start`] returned `cpu_before`.
pub(crate) fn usage_since(redis: &RedisServer, cpu_before: f64) -> BenchResult<RedisUse> {
    let mut calls = redis.info_commandstats()?;
    calls.retain(|name, _| !is_measuring_command(name));
    Ok(RedisUse { calls, cpu_s: (cpu_seconds(redis)? - cpu_before).max(0.0) })
}

/// Mean `MEMORY USAGE` of up to `max` keys matching `pattern`, and how many keys were
/// measured. Errors when no key matches.
pub(crate) fn mean_key_bytes(
    redis: &RedisServer,
    pattern: &str,
    max: usize,
) -> BenchResult<(f64, usize)> {
    let listed = redis.cli(&["--scan", "--pattern", pattern])?;
    let keys: Vec<&str> =
        listed.lines().map(str::trim).filter(|k| !k.is_empty()).take(max).collect();
    if keys.is_empty() {
        return Err(BenchError::new(format!("no key matches {pattern}")));
    }
    let mut total = 0u64;
    for key in &keys {
        let reply = redis.cli(&["MEMORY", "USAGE", key])?;
        total += reply
            .trim()
            .parse::<u64>()
            .map_err(|_| BenchError::new(format!("MEMORY USAGE {key} answered {reply:?}")))?;
    }
    Ok((total as f64 / keys.len() as f64, keys.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(calls: &[(&str, u64)]) -> RedisUse {
        RedisUse { calls: calls.iter().map(|&(n, c)| (n.to_string(), c)).collect(), cpu_s: 0.1 }
    }

    // The store's protocol passes; a write on a read that is not a touch, a missing save, a
    // stray command, a script asking for the TTL when it won, or an index left behind fails.
    #[test]
    fn protocol_checks() {
        // 1000 reads, 7 of them touching (a script each: GET, SET, ZADD, PEXPIREAT).
        let read =
            usage(&[("get", 1010), ("evalsha", 7), ("set", 7), ("zadd", 7), ("pexpireat", 7)]);
        assert_eq!((read.loads(), read.saves(), read.round_trips()), (1003, 0, 1010));
        assert!(check_protocol("/me_ro", 1000, 32, &read).is_ok());
        // 1000 reads and saves on Redis: 5 touches on load, 7 saves that lost a race once.
        let write = usage(&[
            ("get", 2024),
            ("evalsha", 1012),
            ("set", 1005),
            ("pttl", 7),
            ("zadd", 5),
            ("pexpireat", 5),
        ]);
        assert_eq!((write.loads(), write.saves(), write.round_trips()), (1012, 1000, 2024));
        assert!(check_protocol("/me", 1000, 32, &write).is_ok());
        // On Valkey: 1000 requests, 10 native saves that lost a race (each then a script run
        // with its PTTL, then a native SET that wrote), 5 load touches.
        let native = usage(&[
            ("get", 1015),
            ("pttl", 10),
            ("evalsha", 15),
            ("set", 1015),
            ("zadd", 5),
            ("pexpireat", 5),
        ]);
        assert!(native.native_saves() && !write.native_saves());
        assert_eq!((native.loads(), native.saves(), native.round_trips()), (1000, 1000, 2025));
        assert!(check_protocol("/me", 1000, 32, &native).is_ok());
        // Nothing but loads and native saves: every command one round trip.
        let plain = usage(&[("get", 1000), ("set", 1000)]);
        assert_eq!((plain.loads(), plain.saves(), plain.round_trips()), (1000, 1000, 2000));
        assert!(check_protocol("/me", 1000, 32, &plain).is_ok());
        let native_unsaved = usage(&[("get", 1000), ("set", 900)]);
        assert!(check_protocol("/me", 1000, 32, &native_unsaved).is_err());
        let native_on_read = usage(&[("get", 1000), ("set", 40)]);
        assert!(check_protocol("/me_ro", 1000, 32, &native_on_read).is_err());
        // A load that still asks for the TTL, or a save script that asks for it every time (as
        // it once did), is not the protocol.
        let ttl_on_load = usage(&[("get", 1000), ("pttl", 1000)]);
        assert!(check_protocol("/me_ro", 1000, 32, &ttl_on_load).is_err());
        let ttl_in_script =
            usage(&[("get", 2000), ("pttl", 1000), ("evalsha", 1000), ("set", 1000)]);
        assert!(check_protocol("/me", 1000, 32, &ttl_in_script).is_err());
        let scripted = usage(&[("get", 2000), ("evalsha", 1000), ("set", 1000)]);
        assert!(check_protocol("/me_ro", 1000, 32, &scripted).is_err());
        assert!(check_protocol("/me", 1000, 32, &read).is_err());
        let stray = usage(&[("get", 1000), ("hgetall", 1)]);
        assert!(check_protocol("/me_ro", 1000, 32, &stray).is_err());
        assert!(check_protocol("/me_ro", 2000, 32, &read).is_err());
        let unsaved = usage(&[("get", 2000), ("evalsha", 1000), ("set", 900), ("pttl", 100)]);
        assert!(check_protocol("/me", 1000, 32, &unsaved).is_err());
        let unpaired = usage(&[
            ("get", 2000),
            ("evalsha", 1000),
            ("set", 1000),
            ("zadd", 500),
            ("pexpireat", 100),
        ]);
        assert!(check_protocol("/me", 1000, 32, &unpaired).is_err());
        let over_indexed = usage(&[
            ("get", 4000),
            ("evalsha", 2000),
            ("set", 2000),
            ("zadd", 1500),
            ("pexpireat", 1500),
        ]);
        assert!(check_protocol("/me", 1000, 32, &over_indexed).is_err());
    }
}
