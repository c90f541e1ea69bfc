//! Medians over rounds and the Markdown table of the `http` benchmark.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::redis_figures::RedisUse;
use crate::wrk::WrkResult;

/// One wrk run of one (server, endpoint) in one round.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// Server name, e.g. `sesame`.
    pub(crate) server: &'static str,
    /// Endpoint path, e.g. `/me`.
    pub(crate) endpoint: &'static str,
    /// What wrk measured.
    pub(crate) result: WrkResult,
    /// What Redis did during the run, for the Redis-backed servers.
    pub(crate) redis: Option<RedisUse>,
    /// CPU seconds this process (the servers under test) used during the run.
    pub(crate) app_cpu_s: f64,
}

/// One line of the table: medians over the rounds of one (server, endpoint).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// Server name.
    pub(crate) server: &'static str,
    /// Endpoint path.
    pub(crate) endpoint: &'static str,
    /// Requests per second of each round, in round order.
    pub(crate) rounds: Vec<f64>,
    /// Median requests per second.
    pub(crate) req_per_s: f64,
    /// Median requests per second divided by the ceiling's for the same endpoint.
    pub(crate) ratio: f64,
    /// Median p50 latency, ms.
    pub(crate) p50_ms: f64,
    /// Median p99 latency, ms.
    pub(crate) p99_ms: f64,
    /// Median CPU µs of the app process per request.
    pub(crate) app_us_per_req: f64,
    /// Median Redis CPU µs per request.
    pub(crate) redis_us_per_req: Option<f64>,
    /// Median Redis round trips per request.
    pub(crate) round_trips_per_req: Option<f64>,
    /// Median script calls (`EVALSHA`) per request, for the Redis-backed server.
    pub(crate) scripts_per_req: Option<f64>,
    /// Median commands per request, all of them (those run inside scripts included).
    pub(crate) commands_per_req: Option<f64>,
    /// Median Redis CPU use, in cores (CPU seconds per second of the run).
    pub(crate) redis_cores: Option<f64>,
    /// Median calls per request of each command, by name.
    pub(crate) by_command: Vec<(String, f64)>,
}

/// The median (mean of the middle two for an even count); 0 for no values.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The median over `runs` of `figure(redis use, requests, seconds)`; `None` when a run has no
/// Redis figures.
fn redis_median(runs: &[&Run], figure: impl Fn(&RedisUse, f64, f64) -> f64) -> Option<f64> {
    let values: Option<Vec<f64>> = runs
        .iter()
        .map(|r| {
            let requests = r.result.requests.max(1) as f64;
            let seconds = r.result.duration_us.max(1) as f64 / 1e6;
            r.redis.as_ref().map(|u| figure(u, requests, seconds))
        })
        .collect();
    values.map(median)
}

/// The rows for every (server, endpoint), endpoints outer, servers in the given order, with
/// ratios to `ceiling`'s median for the same endpoint.
pub(crate) fn rows(
    runs: &[Run],
    servers: &[&'static str],
    endpoints: &[&'static str],
    ceiling: &str,
) -> Vec<Row> {
    let mut out = Vec::new();
    for &endpoint in endpoints {
        let of = |server: &str| -> Vec<&Run> {
            runs.iter().filter(|r| r.server == server && r.endpoint == endpoint).collect()
        };
        let base = median(of(ceiling).iter().map(|r| r.result.req_per_s()).collect());
        for &server in servers {
            let mine = of(server);
            if mine.is_empty() {
                continue;
            }
            let rounds: Vec<f64> = mine.iter().map(|r| r.result.req_per_s()).collect();
            let names: BTreeSet<&String> =
                mine.iter().filter_map(|r| r.redis.as_ref()).flat_map(|u| u.calls.keys()).collect();
            let by_command = names
                .into_iter()
                .filter_map(|name| {
                    let per_req =
                        redis_median(&mine, |u, requests, _| u.calls_of(name) as f64 / requests)?;
                    Some((name.clone(), per_req))
                })
                .collect();
            let req_per_s = median(rounds.clone());
            out.push(Row {
                server,
                endpoint,
                req_per_s,
                ratio: if base > 0.0 { req_per_s / base } else { 0.0 },
                p50_ms: median(mine.iter().map(|r| r.result.p50_us as f64 / 1000.0).collect()),
                p99_ms: median(mine.iter().map(|r| r.result.p99_us as f64 / 1000.0).collect()),
                app_us_per_req: median(
                    mine.iter()
                        .map(|r| r.app_cpu_s * 1e6 / r.result.requests.max(1) as f64)
                        .collect(),
                ),
                redis_us_per_req: redis_median(&mine, |u, n, _| u.cpu_s * 1e6 / n),
                round_trips_per_req: redis_median(&mine, |u, n, _| u.round_trips() as f64 / n),
                scripts_per_req: redis_median(&mine, |u, n, _| u.scripts() as f64 / n),
                commands_per_req: redis_median(&mine, |u, n, _| u.commands() as f64 / n),
                redis_cores: redis_median(&mine, |u, _, seconds| u.cpu_s / seconds),
                by_command,
                rounds,
            });
        }
    }
    out
}

/// Formats an optional figure with two decimals, or a dash.
fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.2}"))
}

/// The Markdown table of `rows`, then one line per row with Redis figures giving the calls
/// per request of each command.
pub(crate) fn markdown(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str(
        "| server | endpoint | req/s (median) | req/s per round | vs ceiling | p50 ms | p99 ms \
         | Redis round trips/req | Redis commands/req (incl. inside scripts) \
         | Redis CPU µs/req | app CPU µs/req |\n\
         |---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let rounds: Vec<String> = r.rounds.iter().map(|v| format!("{v:.0}")).collect();
        let _ = writeln!(
            s,
            "| {} | GET {} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {:.0} |",
            r.server,
            r.endpoint,
            r.req_per_s,
            rounds.join(" / "),
            r.ratio,
            r.p50_ms,
            r.p99_ms,
            opt(r.round_trips_per_req),
            opt(r.commands_per_req),
            r.redis_us_per_req.map_or_else(|| "—".to_string(), |v| format!("{v:.0}")),
            r.app_us_per_req,
        );
    }
    for r in rows.iter().filter(|r| !r.by_command.is_empty()) {
        let calls: Vec<String> =
            r.by_command.iter().map(|(name, n)| format!("{name} {n:.2}")).collect();
        let _ = write!(
            s,
            "\nRedis calls per request, {} GET {}: {}.",
            r.server,
            r.endpoint,
            calls.join(", ")
        );
    }
    if rows.iter().any(|r| !r.by_command.is_empty()) {
        s.push('\n');
    }
    s
}

/// A Markdown table of each session server's median requests per second over `base`'s, per
/// endpoint: what the session layer costs beyond the handlers' own work (`base` is the
/// server without sessions that does that work). Servers named in `leave_out` are not listed.
pub(crate) fn against(rows: &[Row], base: &str, leave_out: &[&str]) -> String {
    let servers: Vec<&str> = {
        let mut seen = Vec::new();
        for r in rows {
            if r.server != base && !leave_out.contains(&r.server) && !seen.contains(&r.server) {
                seen.push(r.server);
            }
        }
        seen
    };
    let mut s = format!("| endpoint | {base} vs ceiling |");
    for server in &servers {
        let _ = write!(s, " {server} vs {base} |");
    }
    s.push_str("\n|---|---:|");
    s.push_str(&"---:|".repeat(servers.len()));
    s.push('\n');
    let mut endpoints: Vec<&str> = Vec::new();
    for r in rows {
        if !endpoints.contains(&r.endpoint) {
            endpoints.push(r.endpoint);
        }
    }
    for endpoint in endpoints {
        let of = |server: &str| rows.iter().find(|r| r.server == server && r.endpoint == endpoint);
        let Some(b) = of(base) else { continue };
        let _ = write!(s, "| GET {endpoint} | {:.2} |", b.ratio);
        for server in &servers {
            match of(server) {
                Some(r) if b.req_per_s > 0.0 => {
                    let _ = write!(s, " {:.2} |", r.req_per_s / b.req_per_s);
                }
                _ => s.push_str(" — |"),
            }
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(server: &'static str, endpoint: &'static str, requests: u64, p99_us: u64) -> Run {
        let calls = [("evalsha", 1), ("get", 2), ("set", 1)]
            .into_iter()
            .map(|(name, per)| (name.to_string(), per * requests))
            .collect();
        Run {
            server,
            endpoint,
            result: WrkResult {
                requests,
                duration_us: 1_000_000,
                non_2xx: 0,
                socket_errors: 0,
                p50_us: 100,
                p99_us,
            },
            redis: (server == "redis").then_some(RedisUse { calls, cpu_s: 0.5 }),
            app_cpu_s: 0.2,
        }
    }

    // Medians per (server, endpoint), ratios to the ceiling of the same endpoint.
    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
        let runs = [
            run("ceiling", "/me", 1000, 1000),
            run("ceiling", "/me", 3000, 3000),
            run("ceiling", "/me", 2000, 2000),
            run("redis", "/me", 500, 4000),
            run("redis", "/me", 600, 5000),
            run("redis", "/me", 400, 6000),
        ];
        let rows = rows(&runs, &["ceiling", "redis"], &["/me"], "ceiling");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].req_per_s, 500.0);
        assert_eq!(rows[1].ratio, 0.25);
        assert_eq!(rows[1].p99_ms, 5.0);
        assert_eq!(rows[1].scripts_per_req, Some(1.0));
        assert_eq!(rows[1].commands_per_req, Some(4.0));
        assert_eq!(rows[1].redis_cores, Some(0.5));
        assert_eq!(rows[0].scripts_per_req, None);
        let md = markdown(&rows);
        assert_eq!(rows[1].app_us_per_req, 400.0);
        assert_eq!(rows[1].redis_us_per_req, Some(1000.0));
        assert_eq!(rows[1].round_trips_per_req, Some(2.0));
        let line =
            "| redis | GET /me | 500 | 500 / 600 / 400 | 0.25 | 0.10 | 5.00 | 2.00 | 4.00 | 1000 | 400 |";
        assert!(md.contains(line), "{md}");
        assert!(md.contains("redis GET /me: evalsha 1.00, get 2.00, set 1.00."), "{md}");
    }

    // Each session server over the server that does only the handlers' work, per endpoint.
    #[test]
    fn ratios_against_the_handlers_work() {
        let runs = [
            run("ceiling", "/me", 2000, 1000),
            run("work", "/me", 1600, 1000),
            run("redis", "/me", 400, 1000),
            run("memory", "/me", 1200, 1000),
            run("ceiling", "/me_ro", 4000, 1000),
            run("work", "/me_ro", 2000, 1000),
            run("memory", "/me_ro", 1000, 1000),
        ];
        let servers = ["ceiling", "work", "redis", "memory"];
        let rows = rows(&runs, &servers, &["/me", "/me_ro"], "ceiling");
        let table = against(&rows, "work", &["ceiling"]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "| endpoint | work vs ceiling | redis vs work | memory vs work |");
        assert_eq!(lines[2], "| GET /me | 0.80 | 0.25 | 0.75 |");
        assert_eq!(lines[3], "| GET /me_ro | 0.50 | — | 0.50 |", "{table}");
        assert_eq!(lines.len(), 4);
    }
}
