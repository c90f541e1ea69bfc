//! `sesame stats`: a `SCAN` of every master, counting sessions, users and bytes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{IsTerminal as _, Write as _};

use serde_json::json;
use sesame::now_ms;
use sesame_redis::admin::{Admin, KeyName, StoredKind};

use super::{connect, Outcome, StoreArgs};
use sesame_cli::format::{self, out};

/// `sesame stats`
#[derive(clap::Args, Debug)]
pub(crate) struct StatsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Stop after scanning this many keys (all masters together); the figures then cover
    /// those keys only. Default: every key under the prefix.
    #[arg(long)]
    limit: Option<u64>,
    /// The COUNT hint of each SCAN call (keys examined per round trip).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    count: u32,
    /// How many users to show, by number of live sessions.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

/// Buckets of remaining TTL: (label, upper bound in ms, exclusive).
const BUCKETS: [(&str, u64); 7] = [
    ("under 1m", 60_000),
    ("1m-5m", 300_000),
    ("5m-15m", 900_000),
    ("15m-1h", 3_600_000),
    ("1h-6h", 21_600_000),
    ("6h-24h", 86_400_000),
    ("24h and more", u64::MAX),
];

#[derive(Default)]
struct Tally {
    keys: u64,
    records: u64,
    pointers: u64,
    vanished: u64,
    users: u64,
    epochs: u64,
    other: u64,
    record_bytes: u64,
    pointer_bytes: u64,
    index_bytes: u64,
    unmeasured: u64,
    no_ttl: u64,
    histogram: [u64; BUCKETS.len()],
    /// The largest users seen, smallest first out (bounded by `--top`).
    top: BinaryHeap<Reverse<(u64, String)>>,
}

fn add(a: &mut u64, b: u64) {
    *a = a.saturating_add(b);
}

impl Tally {
    fn bucket(&mut self, ttl: Option<u64>) {
        match ttl {
            None => add(&mut self.no_ttl, 1),
            Some(t) => {
                let i = BUCKETS.iter().position(|(_, max)| t < *max).unwrap_or(BUCKETS.len() - 1);
                if let Some(n) = self.histogram.get_mut(i) {
                    add(n, 1);
                }
            }
        }
    }

    fn user(&mut self, user: String, live: u64, top: usize) {
        if top == 0 {
            return;
        }
        self.top.push(Reverse((live, user)));
        if self.top.len() > top {
            self.top.pop();
        }
    }
}

/// A progress line on stderr, only when stderr is a terminal (plain text, no colour).
struct Progress {
    on: bool,
    width: usize,
}

impl Progress {
    fn new() -> Progress {
        Progress { on: std::io::stderr().is_terminal(), width: 0 }
    }

    fn show(&mut self, text: &str) {
        if self.on {
            let pad = self.width.saturating_sub(text.len());
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r{text}{}", " ".repeat(pad));
            let _ = e.flush();
            self.width = text.len();
        }
    }

    fn clear(&mut self) {
        if self.on && self.width > 0 {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r{}\r", " ".repeat(self.width));
            let _ = e.flush();
            self.width = 0;
        }
    }
}

pub(crate) async fn run(a: StatsArgs) -> Result<Outcome, String> {
    let admin = connect(&a.store).await?;
    let masters = admin.masters();
    let mut t = Tally::default();
    let mut progress = Progress::new();
    let result = scan_all(&admin, &a, &masters, &mut t, &mut progress).await;
    progress.clear();
    let complete = result?;
    print(&a, &admin, &masters, &t, complete);
    Ok(Outcome::Done)
}

/// Scans every master into `t`; whether the scan is complete (not cut by `--limit`).
async fn scan_all(
    admin: &Admin,
    a: &StatsArgs,
    masters: &[String],
    t: &mut Tally,
    progress: &mut Progress,
) -> Result<bool, String> {
    let pattern = admin.all_keys_pattern();
    for (index, addr) in masters.iter().enumerate() {
        let mut cursor = 0;
        loop {
            let (next, mut keys) =
                admin.scan(index, cursor, &pattern, a.count).await.map_err(|e| e.to_string())?;
            let last = next == 0 && index + 1 == masters.len();
            let mut stop = false;
            if let Some(limit) = a.limit {
                let room = limit.saturating_sub(t.keys);
                if keys.len() as u64 > room {
                    keys.truncate(usize::try_from(room).unwrap_or(usize::MAX));
                    stop = true;
                } else if keys.len() as u64 == room && !last {
                    stop = true;
                }
            }
            add(&mut t.keys, keys.len() as u64);
            count_keys(admin, index, keys, t, a.top).await?;
            progress.show(&format!(
                "scanning {addr} (master {} of {}): {} keys",
                index + 1,
                masters.len(),
                format::count(t.keys)
            ));
            if stop {
                return Ok(false);
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(true)
}

async fn count_keys(
    admin: &Admin,
    index: usize,
    keys: Vec<String>,
    t: &mut Tally,
    top: usize,
) -> Result<(), String> {
    let mut sessions = Vec::new();
    let mut indexes = Vec::new();
    for key in keys {
        match admin.parse_key(&key) {
            Some(KeyName::Session { .. }) => sessions.push(key),
            Some(KeyName::Index { user }) => indexes.push((key, user)),
            Some(KeyName::Epoch { .. }) => add(&mut t.epochs, 1),
            _ => add(&mut t.other, 1),
        }
    }
    let facts = admin.session_facts(index, &sessions).await.map_err(|e| e.to_string())?;
    for f in facts {
        match f.kind {
            Some(StoredKind::Record) => {
                add(&mut t.records, 1);
                t.bucket(f.ttl_ms);
                match f.bytes {
                    Some(b) => add(&mut t.record_bytes, b),
                    None => add(&mut t.unmeasured, 1),
                }
            }
            Some(StoredKind::Pointer) => {
                add(&mut t.pointers, 1);
                match f.bytes {
                    Some(b) => add(&mut t.pointer_bytes, b),
                    None => add(&mut t.unmeasured, 1),
                }
            }
            None => add(&mut t.vanished, 1),
        }
    }
    let keys: Vec<String> = indexes.iter().map(|(k, _)| k.clone()).collect();
    let facts = admin.index_facts(index, &keys, now_ms()).await.map_err(|e| e.to_string())?;
    for ((_, user), f) in indexes.into_iter().zip(facts) {
        add(&mut t.users, 1);
        if let Some(b) = f.bytes {
            add(&mut t.index_bytes, b);
        }
        t.user(user, f.live.unwrap_or(0), top);
    }
    Ok(())
}

fn print(a: &StatsArgs, admin: &Admin, masters: &[String], t: &Tally, complete: bool) {
    let mut top: Vec<(u64, String)> = t.top.iter().map(|Reverse(x)| x.clone()).collect();
    top.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| x.1.cmp(&y.1)));
    let session_bytes = t.record_bytes.saturating_add(t.pointer_bytes);
    if a.store.json {
        let histogram: Vec<_> = BUCKETS
            .iter()
            .zip(t.histogram.iter())
            .map(|((label, max), n)| {
                json!({ "bucket": label, "below_ms": (*max != u64::MAX).then_some(*max), "records": n })
            })
            .collect();
        format::json(&json!({
            "topology": admin.topology(),
            "masters": masters,
            "complete": complete,
            "limit": a.limit,
            "keys_scanned": t.keys,
            "sessions": t.records,
            "pointers": t.pointers,
            "vanished_during_scan": t.vanished,
            "users": t.users,
            "epochs": t.epochs,
            "other_keys": t.other,
            "bytes": {
                "session_keys": session_bytes,
                "records": t.record_bytes,
                "pointers": t.pointer_bytes,
                "index_keys": t.index_bytes,
                "method": "MEMORY USAGE of every session and index key scanned",
                "unmeasured_keys": t.unmeasured,
            },
            "top_users": top.iter().map(|(n, u)| json!({ "user_ref": u, "sessions": n })).collect::<Vec<_>>(),
            "expiry_histogram": histogram,
            "records_without_ttl": t.no_ttl,
        }));
        return;
    }
    let coverage = if complete {
        "complete".to_string()
    } else {
        format!(
            "partial: stopped at --limit {}, figures cover the keys scanned",
            format::count(t.keys)
        )
    };
    let mut lines = vec![format!(
        "scanned {} keys under {:?} on {} master{} ({}): {coverage}",
        format::count(t.keys),
        a.store.prefix,
        masters.len(),
        if masters.len() == 1 { "" } else { "s" },
        masters.join(", ")
    )];
    lines.push(format!("sessions   {} live session records", format::count(t.records)));
    lines.push(format!(
        "pointers   {} (keys of superseded tokens, kept for grace and reuse detection)",
        format::count(t.pointers)
    ));
    lines.push(format!("users      {} (index keys)", format::count(t.users)));
    if t.epochs > 0 || t.other > 0 || t.vanished > 0 {
        lines.push(format!(
            "other      {} revocation epochs, {} other keys, {} keys gone during the scan",
            format::count(t.epochs),
            format::count(t.other),
            format::count(t.vanished)
        ));
    }
    let unmeasured = if t.unmeasured > 0 {
        format!(", {} keys not measured", format::count(t.unmeasured))
    } else {
        String::new()
    };
    lines.push(format!(
        "bytes      {} in session keys (records {}, pointers {}), {} in index keys; \
         MEMORY USAGE of every key scanned{unmeasured}",
        format::count(session_bytes),
        format::count(t.record_bytes),
        format::count(t.pointer_bytes),
        format::count(t.index_bytes),
    ));
    out(&lines.join("\n"));
    if !top.is_empty() {
        out(&format!(
            "\ntop {} users by live sessions (keyed ids: names are not in Redis)",
            top.len()
        ));
        let rows: Vec<Vec<String>> =
            top.iter().map(|(n, u)| vec![format!("  {u}"), format::count(*n)]).collect();
        out(&format::table(&["  USER", "SESSIONS"], &rows));
    }
    out("\nexpiry of live session records (remaining TTL)");
    let mut rows: Vec<Vec<String>> = BUCKETS
        .iter()
        .zip(t.histogram.iter())
        .map(|((label, _), n)| vec![format!("  {label}"), format::count(*n)])
        .collect();
    if t.no_ttl > 0 {
        rows.push(vec!["  no TTL (sesame always sets one)".into(), format::count(t.no_ttl)]);
    }
    out(&format::table(&["  TTL", "RECORDS"], &rows));
}
