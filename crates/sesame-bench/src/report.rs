//! Medians over rounds and the Markdown report.

use std::fmt::Write;

use crate::content::ContentSizes;
use crate::layout::Layout;
use crate::measure::{Config, LayoutFigures};

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

const ROWS: [Row; 12] = [
    ("bytes per session: `MEMORY USAGE` (mean)", 1, |f| f.memory.memory_usage),
    ("bytes per session: `used_memory` delta / sessions (client buffers excluded)", 1, |f| {
        f.memory.used_memory
    }),
    ("read: Redis time per request, µs (`evalsha` usec / requests)", 2, |f| {
        f.read.usec_per_request()
    }),
    ("read: Redis CPU per request, µs (`used_cpu_user+sys` / requests)", 2, |f| {
        f.read.cpu_usec_per_request()
    }),
    ("read: script calls per request (`evalsha` calls / requests)", 2, |f| {
        f.read.commands_per_request()
    }),
    ("read: commands run inside the scripts per request", 2, |f| f.read.inner_calls_per_request()),
    ("read: client requests/s, wall clock (information only)", 0, |f| f.read.requests_per_sec()),
    ("read+write: Redis time per request, µs (`evalsha` usec / requests)", 2, |f| {
        f.read_write.usec_per_request()
    }),
    ("read+write: Redis CPU per request, µs (`used_cpu_user+sys` / requests)", 2, |f| {
        f.read_write.cpu_usec_per_request()
    }),
    ("read+write: script calls per request (`evalsha` calls / requests)", 2, |f| {
        f.read_write.commands_per_request()
    }),
    ("read+write: commands run inside the scripts per request", 2, |f| {
        f.read_write.inner_calls_per_request()
    }),
    ("read+write: client requests/s, wall clock (information only)", 0, |f| {
        f.read_write.requests_per_sec()
    }),
];

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

    let _ = writeln!(out, "\n### Per round\n");
    let _ = writeln!(
        out,
        "| round | layout | `MEMORY USAGE` | `used_memory` / session | read µs | read CPU µs | \
         read+write µs | read+write CPU µs |"
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
                f.read.usec_per_request(),
                f.read.cpu_usec_per_request(),
                f.read_write.usec_per_request(),
                f.read_write.cpu_usec_per_request()
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
        "- compact: the store as built (`RedisStore`: `load.lua`, `save.lua`). hash: fields \
         `_v _c _a _p _t` plus one field per attribute, key TTL = idle timeout; its load is \
         `HGETALL` + `PTTL` + the same coalesced touch, its save `HSET` / `HDEL` + `HINCRBY \
         _v 1` + `PEXPIRE`. The hash save does not check the size and attribute limits that \
         the compact save checks, so its cost is a lower bound."
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
         after its create, so both figures cover session keys only."
    );
    let _ = writeln!(
        out,
        "- `evalsha` usec is main-thread time inside the scripts (the commands they call \
         included); the CPU figure is the whole process, so it also counts reading requests \
         and writing replies. Client and server share the machine: requests/s is for \
         information only."
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
