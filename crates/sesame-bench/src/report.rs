//! Medians over rounds and the Markdown report.

use std::fmt::Write;

use crate::content::ContentSizes;
use crate::layout::Layout;
use crate::measure::{Config, LayoutFigures, RunFigures};

/// The exact command that reproduces the report.
pub const COMMAND: &str = "cargo run --release -p sesame-bench --bin layouts";

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A numeric figure of the table: label, decimals shown, how to read it.
type Row = (&'static str, usize, fn(&LayoutFigures) -> f64);

const ROWS: [Row; 10] = [
    ("bytes per session: `MEMORY USAGE` (mean)", 1, |f| f.memory.memory_usage),
    ("bytes per session: `used_memory` delta / sessions (client buffers excluded)", 1, |f| {
        f.memory.used_memory
    }),
    ("read: Redis CPU per request, µs (`used_cpu_user+sys` / requests)", 2, |f| {
        f.read.cpu_usec_per_request()
    }),
    (COMMANDS_READ, 2, |f| f.read.commands_per_request()),
    ("read: scripts per request (`evalsha` calls / requests)", 2, |f| f.read.scripts_per_request()),
    ("read: client requests/s, wall clock (information only)", 0, |f| f.read.requests_per_sec()),
    ("read+write: Redis CPU per request, µs (`used_cpu_user+sys` / requests)", 2, |f| {
        f.read_write.cpu_usec_per_request()
    }),
    (COMMANDS_READ_WRITE, 2, |f| f.read_write.commands_per_request()),
    ("read+write: scripts per request (`evalsha` calls / requests)", 2, |f| {
        f.read_write.scripts_per_request()
    }),
    ("read+write: client requests/s, wall clock (information only)", 0, |f| {
        f.read_write.requests_per_sec()
    }),
];

const COMMANDS_READ: &str = "read: Redis commands per request (all commands counted by \
     `INFO commandstats`, those run inside scripts included)";
const COMMANDS_READ_WRITE: &str = "read+write: Redis commands per request (all commands \
     counted by `INFO commandstats`, those run inside scripts included)";

/// Picks the run of one request kind out of a layout's figures.
type RunOf = fn(&LayoutFigures) -> &RunFigures;

/// The request kinds, by label.
const KINDS: [(&str, RunOf); 2] = [("read", |f| &f.read), ("read+write", |f| &f.read_write)];

fn of(all: &[LayoutFigures], layout: Layout) -> Vec<&LayoutFigures> {
    all.iter().filter(|f| f.layout == layout).collect()
}

fn median_of(figures: &[&LayoutFigures], get: fn(&LayoutFigures) -> f64) -> f64 {
    median(&figures.iter().map(|f| get(f)).collect::<Vec<_>>())
}

fn encodings(figures: &[&LayoutFigures]) -> String {
    let mut names: Vec<&str> =
        figures.iter().flat_map(|f| f.memory.encodings.keys().map(String::as_str)).collect();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
}

/// Median calls per request of every command the runs saw, as `get 1.00, pttl 1.00`.
fn by_command(figures: &[&LayoutFigures], run: RunOf) -> String {
    let mut names: Vec<&str> =
        figures.iter().flat_map(|f| run(f).calls.keys().map(String::as_str)).collect();
    names.sort_unstable();
    names.dedup();
    let per_request = |name: &str| {
        median(&figures.iter().map(|f| run(f).calls_per_request(name)).collect::<Vec<_>>())
    };
    let parts: Vec<String> =
        names.iter().map(|&name| format!("`{name}` {:.2}", per_request(name))).collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// `a / b` with two decimals, or a dash when `b` is not positive.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

/// The Markdown report of every round of every layout.
pub fn markdown(config: &Config, sizes: &ContentSizes, all: &[LayoutFigures]) -> String {
    let compact = of(all, Layout::Compact);
    let msgpack = of(all, Layout::CompactMsgpack);
    let hash = of(all, Layout::Hash);
    let rounds = compact.len().min(msgpack.len()).min(hash.len());
    let version = all.first().map_or("?", |f| f.redis_version.as_str());
    let mut out = String::new();
    // Writing into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        out,
        "## Session layouts in Redis: compact string (JSON or MessagePack values) vs hash\n"
    );
    let _ = writeln!(
        out,
        "Redis {version}; {} sessions per layout; {} requests of each kind, {} in flight; \
         median of {rounds} rounds, each on fresh `redis-server` processes.\n",
        config.sessions, config.requests, config.concurrency
    );
    let _ = writeln!(
        out,
        "| figure | compact | compact-msgpack | hash | hash / compact | \
         compact-msgpack / compact |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for (label, decimals, get) in ROWS {
        let (c, m, h) = (median_of(&compact, get), median_of(&msgpack, get), median_of(&hash, get));
        let _ = writeln!(
            out,
            "| {label} | {c:.decimals$} | {m:.decimals$} | {h:.decimals$} | {} | {} |",
            ratio(h, c),
            ratio(m, c)
        );
    }
    let _ = writeln!(
        out,
        "| `OBJECT ENCODING` of the session key | {} | {} | {} | | |",
        encodings(&compact),
        encodings(&msgpack),
        encodings(&hash)
    );

    let _ = writeln!(out, "\n### Commands per request, by command (median of the rounds)\n");
    for (name, figures) in [("compact", &compact), ("compact-msgpack", &msgpack), ("hash", &hash)] {
        for (kind, run) in KINDS {
            let _ = writeln!(out, "- {name}, {kind}: {}", by_command(figures, run));
        }
    }

    let _ = writeln!(out, "\n### Per round\n");
    let _ = writeln!(
        out,
        "| round | layout | `MEMORY USAGE` | `used_memory` / session | read CPU µs | \
         read commands | read+write CPU µs | read+write commands |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|");
    for i in 0..rounds {
        for f in [compact[i], msgpack[i], hash[i]] {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} |",
                i + 1,
                f.layout,
                f.memory.memory_usage,
                f.memory.used_memory,
                f.read.cpu_usec_per_request(),
                f.read.commands_per_request(),
                f.read_write.cpu_usec_per_request(),
                f.read_write.commands_per_request()
            );
        }
    }

    let _ = writeln!(out, "\n### Content and method\n");
    let _ = writeln!(
        out,
        "- Each session: principal `user-NNNNNN` and attributes `user_id`, `profile` (an \
         object, {:.1} bytes of JSON on average, {:.1} bytes encoded; {} of {} stored \
         LZ4-compressed) and `hits` (a number); {:.1} bytes of attribute names and encoded \
         values in all. compact and hash store the same encoded (JSON) bytes.",
        sizes.profile_json,
        sizes.profile_encoded,
        sizes.profile_compressed,
        config.sessions,
        sizes.attributes_total
    );
    let _ = writeln!(
        out,
        "- compact-msgpack: the same `RedisStore` and record layout as compact, but the \
         attribute values (`hits` updates included) are serialized as MessagePack with field \
         names (`ValueFormat::MessagePack`), which is smaller than JSON: `profile` is {:.1} \
         bytes encoded ({} of {} LZ4-compressed), {:.1} bytes of names and values in all.",
        sizes.profile_msgpack,
        sizes.profile_msgpack_compressed,
        config.sessions,
        sizes.attributes_total_msgpack
    );
    let _ = writeln!(out, "- {}", encoding_note(all, sizes));
    let _ = writeln!(
        out,
        "- compact (both variants): the store as built (`RedisStore`), one MessagePack record \
         per session key, encoded and decoded on the client; the record carries its idle \
         deadline. Its load is one `GET`, no script; only when the idle deadline is due for a \
         push (`touch after` has passed since the last push) does a second round trip run the \
         save script to write the record with its new deadline (with `ZADD` + `PEXPIREAT` of \
         the user's index for a logged-in session). Its save merges the delta on the client \
         into the record it loaded, checks the size and attribute limits, and sends one \
         `EVALSHA` of `save.lua`, a compare-and-set: `GET`, compare with the bytes the client \
         loaded, `SET ... KEEPTTL` (or `SET ... PX` and the index's `ZADD` + `PEXPIREAT` when a \
         touch is due); when another save came first the script returns the current record \
         and the client merges again and retries (a retry is another `EVALSHA`)."
    );
    let _ = writeln!(
        out,
        "- hash: fields `_v _c _a _p _t` plus one field per attribute, key TTL = idle timeout. \
         Both operations are scripts: the load (`hash_load.lua`) is `HGETALL` + `PTTL` + the \
         same coalesced touch (`PEXPIRE` when due), the save (`hash_save.lua`) `HGET _a` + \
         `HSET` / `HDEL` + `HINCRBY _v 1` + `PEXPIRE`, with no compare-and-set. The hash save \
         does not check the size and attribute limits that the compact save checks, so its \
         cost is a lower bound."
    );
    let _ = writeln!(
        out,
        "- Round trips per request, from the protocols (`INFO commandstats` cannot show them): \
         compact read 1 (2 when the touch is due), compact read+write 2 (one more when the \
         touch is due, one more per compare-and-set retry), hash read 1, hash read+write 2."
    );
    let _ = writeln!(
        out,
        "- read = load only; read+write = load, then save a delta setting `hits` to hits+1. \
         Policy: idle {} s, absolute {} s, touch after {} s. One warm-up pass over every \
         session precedes each timed run; `CONFIG RESETSTAT` separates them.",
        config.policy.idle_ms / 1000,
        config.policy.absolute_ms / 1000,
        config.policy.touch_after_ms / 1000
    );
    let _ = writeln!(
        out,
        "- `MEMORY USAGE <key> SAMPLES 0` is Redis's count for the key name, value and main \
         dictionary entry. The `used_memory` delta is what Redis allocated for the sessions, \
         including the expires dictionary entry and both dictionaries' bucket arrays; it is \
         read as `used_memory − mem_clients_normal` (client buffers are not session data) \
         1 s after the last write, once a throwaway session was created and deleted (Redis \
         allocates a latency histogram per command on first use). The compact create (both \
         variants) also indexes the session under its user; each index key is deleted right \
         after its create, so both figures cover session keys only (the saves' `ZADD ... XX` \
         then finds no index and adds none)."
    );
    let _ = writeln!(
        out,
        "- Redis CPU per request is the change of `used_cpu_user + used_cpu_sys` (`INFO cpu`) \
         over the timed run / requests: the whole process, so it counts reading requests and \
         writing replies as well as commands and scripts. It is the time figure because \
         `INFO commandstats` usec cannot be summed: a command run inside a script is counted \
         on its own and again inside the script's usec. Redis commands per request = the \
         `calls` of every command in `INFO commandstats` (the `INFO`, `CONFIG` and `SCRIPT` \
         calls made to measure left out) / requests, so the commands run inside scripts are \
         counted next to the `evalsha` that ran them (a compact read+write not due a touch: \
         `GET` + `EVALSHA` + `GET` + `SET` = 4); scripts per request = `evalsha` calls / \
         requests. \
         Client and server share the machine: requests/s is for information only."
    );
    let _ = writeln!(out, "\nReproduce with: `{COMMAND}`");
    out
}

/// Why the hash has the encoding it has.
fn encoding_note(all: &[LayoutFigures], sizes: &ContentSizes) -> String {
    let hash = of(all, Layout::Hash);
    let Some(f) = hash.first() else {
        return "No hash layout was measured.".into();
    };
    let (entries, value) = f.listpack_limits;
    let encoding = encodings(&hash);
    if encoding.contains("hashtable") && sizes.longest_value as u64 > value {
        format!(
            "The hash is a `hashtable`, not a `listpack`: its longest value (the encoded \
             `profile`, up to {} bytes) exceeds `hash-max-listpack-value` ({value} bytes; \
             `hash-max-listpack-entries` is {entries}), so Redis converts it to a real hash \
             table with a separate entry and strings per field.",
            sizes.longest_value
        )
    } else {
        format!(
            "The hash encoding is `{encoding}` (`hash-max-listpack-value` {value} bytes, \
             `hash-max-listpack-entries` {entries}; longest value {} bytes).",
            sizes.longest_value
        )
    }
}
