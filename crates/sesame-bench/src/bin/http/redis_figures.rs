//! Figures read from the private `redis-server`: its version, commands per request and memory
//! per key.

use std::collections::BTreeMap;

use sesame_bench::info::parse_info;
use sesame_bench::{BenchError, BenchResult};
use sesame_testkit::RedisServer;

/// Key pattern of session records under the default prefix.
pub(crate) const SESSION_PATTERN: &str = "sesame:*:s:*";
/// Key pattern of the per-user indexes under the default prefix.
pub(crate) const INDEX_PATTERN: &str = "sesame:*:u:*";

/// The server's `redis_version`.
pub(crate) fn version(redis: &RedisServer) -> BenchResult<String> {
    let info = parse_info(&redis.cli(&["INFO", "server"])?);
    info.get("redis_version")
        .map(|v| v.trim().to_string())
        .ok_or_else(|| BenchError::new("INFO server has no redis_version"))
}

/// What the Redis server did during one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RedisUse {
    /// Calls per command since `CONFIG RESETSTAT` (lowercase names), without the `INFO` and
    /// `CONFIG` calls made to measure. Redis counts the commands a script runs too, so one
    /// `EVALSHA` shows up together with the `GET`, `SET`... inside it.
    pub(crate) calls: BTreeMap<String, u64>,
    /// CPU time the server used (user + system), seconds.
    pub(crate) cpu_s: f64,
}

impl RedisUse {
    /// `EVALSHA` calls: the round trips of the store, one per store operation.
    pub(crate) fn evalsha(&self) -> u64 {
        self.calls.get("evalsha").copied().unwrap_or(0)
    }

    /// Every other command: those the scripts ran, plus any sent directly.
    pub(crate) fn others(&self) -> u64 {
        self.calls.values().sum::<u64>().saturating_sub(self.evalsha())
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
    calls.retain(|name, _| name != "info" && name != "config" && !name.starts_with("config|"));
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
