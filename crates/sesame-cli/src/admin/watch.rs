//! `sesame watch`: session lifecycle events from keyspace notifications of every master.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use sesame::now_ms;
use sesame_redis::admin::{
    missing_notify_flags, with_notify_flags, Admin, Content, KeyName, Notification,
    PointerKindName, NOTIFY_FLAGS,
};

use super::{connect, Outcome, StoreArgs};
use sesame_cli::format::{self, out};

/// `sesame watch`
#[derive(clap::Args, Debug)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Turn on the keyspace notifications the watch needs (CONFIG SET notify-keyspace-events
    /// on every master) when they are off. Without it the watch only says what to set.
    #[arg(long)]
    configure: bool,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
}

/// Forget the pointers seen once this many are remembered (the memory stays bounded).
const MAX_REMEMBERED: usize = 100_000;

/// Said on stderr when the watch starts, and in the documentation.
const BEST_EFFORT: &str = "events are best effort: Redis publishes keyspace notifications \
     fire-and-forget (a watcher that is disconnected or slow misses them for good), and it \
     expires keys lazily (on access) and actively (by sampling), so an expired event can come \
     well after the deadline";

/// One lifecycle event.
struct Event {
    time_ms: u64,
    name: &'static str,
    id: String,
    tag: String,
    master: String,
    /// Rotated: the pointer's kind and successor.
    rotation: Option<(PointerKindName, String)>,
    /// Expired / ended: whether the key was last seen holding a pointer.
    pointer: bool,
}

pub(crate) async fn run(a: WatchArgs) -> Result<Outcome, String> {
    if a.duration.is_some_and(|d| !(d.is_finite() && d >= 0.0)) {
        return Err("--duration is a number of seconds".into());
    }
    let deadline =
        a.duration.map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d.min(1.0e9)));
    let Some((mut admin, mut rx)) = watch_masters(&a, "watching").await? else {
        return Ok(Outcome::Wrong);
    };
    let mut pointers: HashMap<String, (PointerKindName, String)> = HashMap::new();
    let mut printed: u64 = 0;
    if a.count == Some(0) {
        return Ok(Outcome::Done);
    }
    loop {
        let next = tokio::select! {
            n = rx.recv() => n,
            () = sleep_until(deadline) => return Ok(Outcome::Done),
            _ = tokio::signal::ctrl_c() => return Ok(Outcome::Done),
        };
        let n = match next {
            Some(Ok(n)) => n,
            // A master went away (a failover, a restart): find the masters again through the
            // store URL and subscribe to them, until they answer or the watch's time is up.
            lost => {
                let why = match lost {
                    Some(Err(e)) => e.to_string(),
                    _ => "every subscription ended".to_string(),
                };
                eprintln!("sesame watch: {why}; reconnecting (events until then are missed)");
                match reconnect(&a, deadline).await? {
                    Some((again, again_rx)) => (admin, rx) = (again, again_rx),
                    None => return Ok(Outcome::Wrong),
                }
                continue;
            }
        };
        let Some(event) = classify(&admin, n, &mut pointers).await? else { continue };
        print(&event, a.store.json);
        printed = printed.saturating_add(1);
        if a.count.is_some_and(|c| printed >= c) {
            return Ok(Outcome::Done);
        }
    }
}

/// The subscription's receiver.
type Events = tokio::sync::mpsc::Receiver<Result<Notification, sesame::StoreError>>;

/// Connects, checks (or with `--configure` sets) the notifications on every master, and
/// subscribes; says on stderr what it watches (`verb`: "watching", "resubscribed to"). `None`
/// when the notifications are off and the watch may not turn them on.
async fn watch_masters(a: &WatchArgs, verb: &str) -> Result<Option<(Admin, Events)>, String> {
    let admin = connect(&a.store).await?;
    if !configure(&admin, a.configure).await? {
        return Ok(None);
    }
    let rx = admin.subscribe_sessions().await.map_err(|e| e.to_string())?;
    let masters = admin.masters();
    eprintln!(
        "sesame watch: {verb} session keys under {:?} on {} master{} ({}); {BEST_EFFORT}",
        a.store.prefix,
        masters.len(),
        if masters.len() == 1 { "" } else { "s" },
        masters.join(", ")
    );
    Ok(Some((admin, rx)))
}

/// Longest wait for the masters to answer again after a subscription was lost, when the
/// watch has no `--duration` of its own.
const RECONNECT_FOR: Duration = Duration::from_secs(60);
/// Pause between attempts to reconnect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// [`watch_masters`] again, every [`RECONNECT_PAUSE`], until it works or `deadline` (or
/// [`RECONNECT_FOR`]) passes.
async fn reconnect(
    a: &WatchArgs,
    deadline: Option<tokio::time::Instant>,
) -> Result<Option<(Admin, Events)>, String> {
    let give_up = tokio::time::Instant::now() + RECONNECT_FOR;
    let give_up = deadline.map_or(give_up, |d| d.min(give_up));
    loop {
        match watch_masters(a, "resubscribed to").await {
            Ok(found) => return Ok(found),
            Err(e) if tokio::time::Instant::now() + RECONNECT_PAUSE < give_up => {
                tracing::debug!(error = %e, "the masters do not answer yet");
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
            Err(e) => return Err(format!("{e}; gave up reconnecting")),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Checks `notify-keyspace-events` on every master and, with `configure`, adds what is
/// missing. Whether the watch can run.
async fn configure(admin: &Admin, configure: bool) -> Result<bool, String> {
    let mut lacking = Vec::new();
    for (i, addr) in admin.masters().iter().enumerate() {
        let current = admin
            .config_get(i, "notify-keyspace-events")
            .await
            .map_err(|e| format!("cannot read notify-keyspace-events on {addr}: {e}"))?
            .unwrap_or_default();
        if missing_notify_flags(&current).is_empty() {
            continue;
        }
        if configure {
            let value = with_notify_flags(&current);
            admin
                .config_set(i, "notify-keyspace-events", &value)
                .await
                .map_err(|e| format!("cannot set notify-keyspace-events on {addr}: {e}"))?;
            eprintln!(
                "sesame watch: set notify-keyspace-events to '{value}' on {addr} (was '{current}')"
            );
        } else {
            lacking.push((addr.clone(), current));
        }
    }
    if lacking.is_empty() {
        return Ok(true);
    }
    eprintln!(
        "sesame watch: keyspace notifications lack what the watch needs (flags '{NOTIFY_FLAGS}': \
         keyspace channels, del, set, expired, new keys) on {} master{}:",
        lacking.len(),
        if lacking.len() == 1 { "" } else { "s" }
    );
    for (addr, current) in &lacking {
        eprintln!(
            "  {addr}: notify-keyspace-events is '{current}'; set it with \
             CONFIG SET notify-keyspace-events '{}'",
            with_notify_flags(current)
        );
    }
    eprintln!(
        "Set it on every master (and in their configuration files), or run the watch with \
         --configure to set it now. Notifications cost Redis some work on every write."
    );
    Ok(false)
}

/// Turns a notification into an event, reading the key when the notification alone does not
/// say what happened (`new`, `set`).
async fn classify(
    admin: &Admin,
    n: Notification,
    pointers: &mut HashMap<String, (PointerKindName, String)>,
) -> Result<Option<Event>, String> {
    let Some(KeyName::Session { tag, id }) = admin.parse_key(&n.key) else { return Ok(None) };
    let mut event = Event {
        time_ms: now_ms(),
        name: "",
        id,
        tag: tag.to_hex(),
        master: n.master,
        rotation: None,
        pointer: false,
    };
    match n.event.as_str() {
        "new" | "set" => {
            let content =
                admin.inspect(&n.key).await.map_err(|e| e.to_string())?.map(|i| i.content);
            let pointer = match &content {
                Some(Content::Pointer(p)) => Some((p.kind, p.successor_id.clone())),
                _ => None,
            };
            match (n.event.as_str(), pointer) {
                // A key that is new and already a record (or already gone): created.
                ("new", None) => event.name = "created",
                // A new key that is an `ended` tombstone: a logout closed it; any other
                // pointer on a new key was a session created and rotated at once.
                ("new", Some(p)) if p.0 != PointerKindName::Ended => event.name = "created",
                (_, Some(p)) => {
                    if pointers.get(&n.key) == Some(&p) {
                        return Ok(None);
                    }
                    if pointers.len() >= MAX_REMEMBERED {
                        pointers.clear();
                    }
                    pointers.insert(n.key.clone(), p.clone());
                    event.name = "rotated";
                    event.rotation = Some(p);
                }
                // A record written over a record: a save.
                _ => return Ok(None),
            }
        }
        "del" => {
            event.name = "ended";
            event.pointer = pointers.remove(&n.key).is_some();
        }
        "expired" => {
            event.name = "expired";
            event.pointer = pointers.remove(&n.key).is_some();
        }
        _ => return Ok(None),
    }
    Ok(Some(event))
}

fn print(e: &Event, json: bool) {
    if json {
        let mut v = json!({
            "time_ms": e.time_ms,
            "event": e.name,
            "id": e.id,
            "tag": e.tag,
            "master": e.master,
        });
        if let Some((kind, successor)) = &e.rotation {
            v["kind"] = json!(kind.as_str());
            v["successor"] = json!(successor);
        }
        if matches!(e.name, "ended" | "expired") {
            v["pointer"] = json!(e.pointer);
        }
        format::json(&v);
        return;
    }
    let detail = match (&e.rotation, e.pointer) {
        (Some((kind, successor)), _) => format!("  -> {successor} ({})", kind.as_str()),
        (None, true) => "  (a superseded token's pointer)".into(),
        (None, false) => String::new(),
    };
    out(&format!(
        "{}  {:<8} {{{}}} {}{detail}  [{}]",
        format::iso(e.time_ms),
        e.name,
        e.tag,
        e.id,
        e.master
    ));
}
