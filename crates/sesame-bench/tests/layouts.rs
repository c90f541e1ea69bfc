//! Sanity of the layouts measurement, on a small run of the same code path: every layout
//! gives back what was stored, read+write requests really write, and every figure the report
//! needs is there. Nothing here looks at timings or at which layout wins.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sesame::ValueFormat;
use sesame_bench::content::{self, decode_attr};
use sesame_bench::info::{is_measuring_command, parse_commandstats, store_calls};
use sesame_bench::layout::Layout;
use sesame_bench::measure::{Config, LayoutBench, RequestKind, RunFigures};
use sesame_bench::report::{markdown, median};

const SESSIONS: u32 = 50;
const REQUESTS: usize = 500;

fn small() -> Config {
    Config { sessions: SESSIONS, requests: REQUESTS, ..Config::standard() }
}

// The header byte of an encoded value, compression bit cleared: 0x01 JSON, 0x02 MessagePack.
fn format_byte(raw: &[u8]) -> u8 {
    raw[0] & !0x10
}

// One small round of each layout: stored content loads back, in the layout's value format,
// read+write bumps `hits` and the version, Redis ran exactly the layout's commands, and the
// report shows the hash's encoding.
#[tokio::test]
async fn every_layout_stores_loads_and_updates_the_content() {
    let mut all = Vec::new();
    for layout in Layout::ALL {
        let mut bench = LayoutBench::start(layout, small()).await.unwrap();
        let f = bench.measure().await.unwrap();
        assert_eq!(f.layout, layout);
        assert!(!f.redis_version.is_empty());
        assert!(f.memory.memory_usage > 0.0, "{layout}: {:?}", f.memory);
        assert!(f.memory.used_memory > 0.0, "{layout}: {:?}", f.memory);
        assert_eq!(f.memory.encodings.values().sum::<usize>(), SESSIONS as usize);
        if layout == Layout::Hash {
            for encoding in f.memory.encodings.keys() {
                assert!(["listpack", "hashtable"].contains(&encoding.as_str()), "{encoding}");
            }
        }
        assert_eq!(f.read.requests, REQUESTS as u64);
        assert_eq!(f.read_write.requests, REQUESTS as u64);
        assert!(f.read.wall_secs > 0.0 && f.read_write.wall_secs > 0.0);
        assert!(f.read.cpu_usec > 0.0 && f.read_write.cpu_usec > 0.0, "{layout}");
        assert_protocol(layout, &f.read, &f.read_write);

        // A warm-up pass plus REQUESTS / SESSIONS timed requests per session incremented
        // `hits`. The compact save is a compare-and-set, so no increment is lost; two
        // concurrent hash saves of one session may lose one, so only bounds are checked there.
        let most = 1 + (REQUESTS / SESSIONS as usize) as u64;
        let exact = layout != Layout::Hash;
        let header = match layout.value_format() {
            ValueFormat::MessagePack => 0x02,
            _ => 0x01,
        };
        for n in 0..SESSIONS {
            let r = bench.load(n).await.unwrap().expect("session present");
            for (name, raw) in &r.attrs {
                assert_eq!(format_byte(raw), header, "{layout}: user {n} {name}");
            }
            let profile: Value = sesame::value::decode(&r.attrs["profile"]).unwrap();
            assert_eq!(profile, content::profile(n), "{layout}: user {n}");
            assert_eq!(decode_attr(&r, "user_id").unwrap(), json!(content::principal(n).name()));
            assert_eq!(r.principal, Some(content::principal(n)));
            assert!(r.auth_ms.is_some() && r.absolute_ms > r.created_ms);
            let (hits, start) = (content::hits(&r).unwrap(), content::initial_hits(n));
            assert!(
                hits > start && hits <= start + most,
                "{layout}: user {n} hits {hits}, started at {start}"
            );
            assert!(r.version > 1 && r.version <= 1 + most, "{layout}: v{}", r.version);
            if exact {
                assert_eq!((hits, r.version), (start + most, 1 + most), "{layout}: user {n}");
            }
        }
        all.push(f);
    }
    let sizes = content::sizes(SESSIONS).unwrap();
    let report = markdown(&small(), &sizes, &all);
    let hash = all.iter().find(|f| f.layout == Layout::Hash).unwrap();
    let hash_encoding = hash.memory.encodings.keys().next().unwrap();
    let line = report.lines().find(|l| l.starts_with("| `OBJECT ENCODING`")).expect("encoding row");
    assert!(line.contains(hash_encoding.as_str()), "{line}");
    assert!(report.contains(
        "| figure | compact | compact-msgpack | hash | hash / compact | compact-msgpack / compact |"
    ));
    for layout in Layout::ALL {
        assert!(report.contains(&format!("| 1 | {layout} |")), "{layout}");
    }
    assert!(report.contains("cargo run --release -p sesame-bench --bin layouts"));
}

// What each layout must ask of Redis per request, from `INFO commandstats` (commands run
// inside scripts counted too): every command, and no other. The sessions were created just
// before and the policy's touch-after is 60 s, so no timed load is due for a touch (no
// `pexpire` on a compact read); the sessions outnumber the requests in flight, so no compact
// save meets a concurrent one (no compare-and-set retry, exactly one `evalsha`).
fn assert_protocol(layout: Layout, read: &RunFigures, read_write: &RunFigures) {
    for (kind, run) in [(RequestKind::Read, read), (RequestKind::ReadWrite, read_write)] {
        let per_request = expected_calls(layout, kind);
        let want: BTreeMap<String, u64> =
            per_request.iter().map(|&(name, n)| (name.to_string(), n * run.requests)).collect();
        assert_eq!(run.calls, want, "{layout} {}: calls per command", kind.label());
        let scripts = per_request.iter().find(|(name, _)| *name == "evalsha").map_or(0, |p| p.1);
        assert_eq!(run.scripts_per_request(), scripts as f64, "{layout} {}", kind.label());
        let commands: u64 = per_request.iter().map(|p| p.1).sum();
        assert_eq!(run.commands_per_request(), commands as f64, "{layout} {}", kind.label());
    }
}

// Calls per request of every command a layout's request of `kind` runs.
fn expected_calls(layout: Layout, kind: RequestKind) -> &'static [(&'static str, u64)] {
    match (layout, kind) {
        // Load: one GET (the record carries its idle deadline), no script.
        (Layout::Compact | Layout::CompactMsgpack, RequestKind::Read) => &[("get", 1)],
        // The load, then one compare-and-set script (GET, SET keeping the TTL: the load said
        // no touch is due, so the script asks for no TTL and the user's index is left alone).
        (Layout::Compact | Layout::CompactMsgpack, RequestKind::ReadWrite) => {
            &[("get", 2), ("evalsha", 1), ("set", 1)]
        }
        // Load: one script (HGETALL + PTTL).
        (Layout::Hash, RequestKind::Read) => &[("evalsha", 1), ("hgetall", 1), ("pttl", 1)],
        // The load, then one script (HGET, HSET, HINCRBY, PEXPIRE).
        (Layout::Hash, RequestKind::ReadWrite) => &[
            ("evalsha", 2),
            ("hgetall", 1),
            ("pttl", 1),
            ("hget", 1),
            ("hset", 1),
            ("hincrby", 1),
            ("pexpire", 1),
        ],
    }
}

// The content is about the size of the published benchmark's session.
#[test]
fn profile_is_about_205_bytes() {
    let sizes = content::sizes(1000).unwrap();
    assert!((195.0..=215.0).contains(&sizes.profile_json), "{}", sizes.profile_json);
    assert_ne!(content::profile(1), content::profile(2));
    assert!(sizes.profile_msgpack > 0.0 && sizes.attributes_total_msgpack > 0.0);
}

// Helpers of the report.
#[test]
fn medians_and_commandstats() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    assert_eq!(median(&[]), 0.0);
    let stats = parse_commandstats(
        "# Commandstats\r\ncmdstat_evalsha:calls=7,usec=70,usec_per_call=10.00,\
         rejected_calls=0,failed_calls=0\r\ncmdstat_get:calls=7,usec=9\r\n",
    );
    assert_eq!(stats.get("evalsha"), Some(&(7, 70)));
    assert_eq!(stats.get("get"), Some(&(7, 9)));
    let calls = store_calls(
        "cmdstat_get:calls=3,usec=1\r\ncmdstat_info:calls=2,usec=1\r\n\
         cmdstat_config|resetstat:calls=1,usec=1\r\ncmdstat_script|load:calls=1,usec=1\r\n",
    );
    assert_eq!(calls, BTreeMap::from([("get".to_string(), 3)]));
    assert!(is_measuring_command("config|get") && !is_measuring_command("evalsha"));
}
