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

    /// Saves due a touch: with native saves, the script runs them, and each moves the index
    /// (one `ZADD`), as each load's touch does (with its one `PEXPIRE`).
    fn touch_saves(&self) -> u64 {
        self.calls_of("zadd").saturating_sub(self.calls_of("pexpire"))
    }

    /// Script runs that lost a race: the record had changed, so the script answered it with
    /// its `PTTL` and wrote nothing (the store then tries again). Without native saves, a
    /// script run that did not `SET`; with them, one that was not a touch-due save (the script
    /// runs after a native `SET` that did not write).
    fn lost_races(&self) -> u64 {
        if self.native_saves() {
            self.scripts().saturating_sub(self.touch_saves())
        } else {
            self.scripts().saturating_sub(self.calls_of("set"))
        }
    }

    /// Native `SET … IFEQ` calls, those that did not write included.
    fn native_sets(&self) -> u64 {
        if self.native_saves() {
            self.calls_of("set").saturating_sub(self.touch_saves())
        } else {
            0
        }
    }

    /// sesame's loads: one `PTTL` each, apart from those of the script runs that lost a race.
    pub(crate) fn loads(&self) -> u64 {
        self.calls_of("pttl").saturating_sub(self.lost_races())
    }

    /// Saves that wrote: every `SET`, less the native ones that lost a race (each of those was
    /// followed by a script run).
    pub(crate) fn saves(&self) -> u64 {
        self.calls_of("set").saturating_sub(if self.native_saves() { self.lost_races() } else { 0 })
    }

    /// Round trips from the client: sesame pipelines a load's `GET` + `PTTL`, a touch's
    /// `PEXPIRE` + index update (one `PEXPIRE` per touch), and runs each save as one
    /// `EVALSHA` or one native `SET`; a server whose Redis saw no `PTTL` and no script (the
    /// peers) sends one command per round trip.
    pub(crate) fn round_trips(&self) -> u64 {
        if self.calls_of("pttl") > 0 || self.scripts() > 0 {
            self.loads() + self.calls_of("pexpire") + self.scripts() + self.native_sets()
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
/// - every request loads once: pipelined `GET` + `PTTL`, no script; only when the session's
///   idle deadline is due for a push, a second pipeline: `PEXPIRE` of the session, `ZADD` +
///   `PEXPIREAT` of its user's index;
/// - `GET /me` also saves once: one `EVALSHA` of the compare-and-set script, which runs `GET`
///   and then `SET`, or `PTTL` when another save came first (then the store retries); only
///   when a touch is due does that `SET` move the TTL, with `ZADD` + `PEXPIREAT` of the index.
///   On Valkey a save not due a touch is one native `SET … IFEQ` instead, and the script runs
///   only after one that did not write (`GET`, `PTTL`), or for a save due a touch;
/// - `GET /me_ro` writes nothing: no `EVALSHA`, no `SET`.
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
    let (scripts, set) = (u.scripts(), u.calls_of("set"));
    let loads = u.loads();
    let within = |calls: u64| (requests..=requests + slack).contains(&calls);
    let mut problems = Vec::new();
    let known = ["get", "pttl", "pexpire", "zadd", "pexpireat", "evalsha", "set"];
    if let Some(other) = u.calls.keys().find(|name| !known.contains(&name.as_str())) {
        problems.push(format!("unexpected command {other}"));
    }
    if !within(loads) {
        problems.push(format!(
            "{loads} loads (PTTL outside lost script races) for {requests} requests"
        ));
    }
    // One GET per load and one per script run; a load caught half done may be off by one.
    if u.calls_of("get").abs_diff(loads + scripts) > slack {
        problems.push("GET is not one per load plus one per EVALSHA".to_string());
    }
    let saves = u.saves();
    if writes && !within(saves) {
        problems
            .push(format!("{saves} saves ({set} SET, {scripts} EVALSHA) for {requests} requests"));
    }
    if !writes && (scripts > 0 || set > 0) {
        problems.push(format!("{scripts} EVALSHA and {set} SET on a read-only endpoint"));
    }
    // The index moves with each touch (a PEXPIRE) and with each save that pushes the TTL: at
    // least once per touch, at most once per touch and save, ZADD and PEXPIREAT together.
    let (zadd, pexpireat, touches) =
        (u.calls_of("zadd"), u.calls_of("pexpireat"), u.calls_of("pexpire"));
    if zadd.abs_diff(pexpireat) > slack {
        problems.push(format!("{zadd} ZADD but {pexpireat} PEXPIREAT (they go together)"));
    }
    if zadd + slack < touches || zadd > touches + set + slack {
        problems.push(format!("{zadd} ZADD for {touches} touches and {set} saves"));
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

    // The store's protocol passes; a script on a read, a missing save, a stray command or
    // a touch or save that leaves the index behind fails.
    #[test]
    fn protocol_checks() {
        let read =
            usage(&[("get", 1003), ("pttl", 1003), ("pexpire", 7), ("zadd", 7), ("pexpireat", 7)]);
        assert!(check_protocol("/me_ro", 1000, 32, &read).is_ok());
        let write = usage(&[
            ("get", 2012),
            ("pttl", 1007),
            ("evalsha", 1007),
            ("set", 1005),
            ("pexpire", 5),
            ("zadd", 40),
            ("pexpireat", 40),
        ]);
        assert!(check_protocol("/me", 1000, 32, &write).is_ok());
        // On Valkey: 1000 requests, 10 native saves that lost a race (each then a script run
        // with its PTTL), 20 saves due a touch (the script, moving the index), 5 load touches.
        let native = usage(&[
            ("get", 1030),
            ("pttl", 1010),
            ("evalsha", 30),
            ("set", 1010),
            ("pexpire", 5),
            ("zadd", 25),
            ("pexpireat", 25),
        ]);
        assert!(native.native_saves() && !write.native_saves());
        assert_eq!((native.loads(), native.saves(), native.round_trips()), (1000, 1000, 2025));
        assert!(check_protocol("/me", 1000, 32, &native).is_ok());
        let native_unsaved = usage(&[("get", 1000), ("pttl", 1000), ("set", 900)]);
        assert!(check_protocol("/me", 1000, 32, &native_unsaved).is_err());
        let native_on_read = usage(&[("get", 1000), ("pttl", 1000), ("set", 3)]);
        assert!(check_protocol("/me_ro", 1000, 32, &native_on_read).is_err());
        // A save script that asks for the TTL every time (as it once did) is not the protocol.
        let ttl_in_script =
            usage(&[("get", 2000), ("pttl", 2000), ("evalsha", 1000), ("set", 1000)]);
        assert!(check_protocol("/me", 1000, 32, &ttl_in_script).is_err());
        let scripted = usage(&[("get", 1000), ("evalsha", 1000), ("pttl", 1000)]);
        assert!(check_protocol("/me_ro", 1000, 32, &scripted).is_err());
        assert!(check_protocol("/me", 1000, 32, &read).is_err());
        let stray = usage(&[("get", 1000), ("pttl", 1000), ("hgetall", 1)]);
        let unsaved = usage(&[
            ("get", 2000),
            ("pttl", 1100),
            ("evalsha", 1000),
            ("set", 900),
            ("zadd", 900),
            ("pexpireat", 900),
        ]);
        assert!(check_protocol("/me", 1000, 32, &unsaved).is_err());
        assert!(check_protocol("/me_ro", 1000, 32, &stray).is_err());
        assert!(check_protocol("/me_ro", 2000, 32, &read).is_err());
        let unpaired = usage(&[
            ("get", 2000),
            ("pttl", 1000),
            ("evalsha", 1000),
            ("set", 1000),
            ("zadd", 500),
        ]);
        assert!(check_protocol("/me", 1000, 32, &unpaired).is_err());
        let over_indexed = usage(&[
            ("get", 2000),
            ("pttl", 1000),
            ("evalsha", 1000),
            ("set", 1000),
            ("zadd", 1500),
            ("pexpireat", 1500),
        ]);
        assert!(check_protocol("/me", 1000, 32, &over_indexed).is_err());
        let untouched_index = usage(&[("get", 1000), ("pttl", 1000), ("pexpire", 100)]);
        assert!(check_protocol("/me_ro", 1000, 32, &untouched_index).is_err());
    }
}
