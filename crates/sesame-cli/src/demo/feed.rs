//! The admin view's event feed: the lifecycle events of every instance of this process, merged
//! in the order they arrive, with the user names they carry remembered for the user list.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use sesame::{now_ms, SessionEvent};
use tokio::sync::broadcast::{self, error::RecvError};

/// How many recent events a new subscriber gets first.
pub const BACKLOG: usize = 100;
/// How many user names the feed remembers (later names are not added).
pub const MAX_USERS: usize = 1000;
/// How many session ids the feed remembers the user of (all are forgotten when full).
const MAX_OWNERS: usize = 10_000;

/// One line of the feed. Ids are public session ids (token digests), never tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedEvent {
    /// Position in the feed, from 1.
    pub seq: u64,
    /// When the demo saw it, ms since the Unix epoch.
    pub at: u64,
    /// The instance whose manager sent it.
    pub instance: String,
    /// What happened (`created`, `rotated`, `destroyed`, `revoked`, `user_revoked`,
    /// `reuse_detected`, `invalid_token`, `ended_by_hook`, `creation_refused`, or `lagged`
    /// when the feed fell behind and lost events).
    pub kind: &'static str,
    /// The session's id (for `rotated`: the superseded one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// For `rotated`: the new id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The user, when the event names one or names a session whose login the feed saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// More about it: a count, a reason, a client address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a line is made of before it gets its place and time.
#[derive(Default)]
struct Line {
    kind: &'static str,
    id: Option<String>,
    to: Option<String>,
    user: Option<String>,
    detail: Option<String>,
}

fn line(event: &SessionEvent) -> Line {
    match event.clone() {
        SessionEvent::Created { id, principal } => {
            Line { kind: "created", id: Some(id), user: principal, ..Line::default() }
        }
        SessionEvent::Rotated { from, to, principal } => Line {
            kind: "rotated",
            id: Some(from),
            to: Some(to),
            user: principal,
            ..Line::default()
        },
        SessionEvent::Destroyed { id } => {
            Line { kind: "destroyed", id: Some(id), ..Line::default() }
        }
        SessionEvent::Revoked { id } => Line { kind: "revoked", id: Some(id), ..Line::default() },
        SessionEvent::UserRevoked { principal, count } => Line {
            kind: "user_revoked",
            user: Some(principal),
            detail: Some(format!("{count} ended")),
            ..Line::default()
        },
        SessionEvent::ReuseDetected { id } => {
            Line { kind: "reuse_detected", id: Some(id), ..Line::default() }
        }
        SessionEvent::InvalidToken { reason } => {
            Line { kind: "invalid_token", detail: Some(reason), ..Line::default() }
        }
        SessionEvent::EndedByHook { id } => {
            Line { kind: "ended_by_hook", id: Some(id), ..Line::default() }
        }
        SessionEvent::CreationRefused { ip } => {
            Line { kind: "creation_refused", detail: ip, ..Line::default() }
        }
        _ => Line { kind: "other", ..Line::default() },
    }
}

#[derive(Default)]
struct State {
    seq: u64,
    recent: VecDeque<FeedEvent>,
    users: BTreeSet<String>,
    owners: HashMap<String, String>,
}

impl State {
    /// Learns the user of a session from an event that names both, or names the user of an
    /// event that names only the session.
    fn owner(&mut self, l: &mut Line) {
        let session = l.to.as_ref().or(l.id.as_ref());
        match (&l.user, session) {
            (Some(u), Some(id)) => {
                if self.owners.len() >= MAX_OWNERS {
                    self.owners.clear();
                }
                self.owners.insert(id.clone(), u.clone());
            }
            (None, Some(id)) => l.user = self.owners.get(id).cloned(),
            _ => {}
        }
    }
}

/// The merged feed: recent events, the user names seen, and the live subscribers.
pub struct Feed {
    state: Mutex<State>,
    live: broadcast::Sender<FeedEvent>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed { state: Mutex::default(), live: broadcast::channel(sesame::events::EVENT_BUFFER).0 }
    }
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an event of `instance` and sends it to the subscribers.
    pub fn push(&self, instance: &str, event: &SessionEvent) {
        self.add(instance, line(event));
    }

    fn add(&self, instance: &str, mut l: Line) {
        let mut s = self.lock();
        s.owner(&mut l);
        if let Some(u) = &l.user {
            if s.users.len() < MAX_USERS || s.users.contains(u) {
                s.users.insert(u.clone());
            }
        }
        s.seq = s.seq.saturating_add(1);
        let e = FeedEvent {
            seq: s.seq,
            at: now_ms(),
            instance: instance.to_string(),
            kind: l.kind,
            id: l.id,
            to: l.to,
            user: l.user,
            detail: l.detail,
        };
        if s.recent.len() >= BACKLOG {
            s.recent.pop_front();
        }
        s.recent.push_back(e.clone());
        // Sent under the lock, so that a subscriber's backlog and its live events neither
        // overlap nor leave a gap.
        let _ = self.live.send(e);
    }

    /// The user names seen, sorted.
    pub fn users(&self) -> Vec<String> {
        self.lock().users.iter().cloned().collect()
    }

    /// The recent events, oldest first, and a receiver of every later one.
    pub fn subscribe(&self) -> (Vec<FeedEvent>, broadcast::Receiver<FeedEvent>) {
        let s = self.lock();
        (s.recent.iter().cloned().collect(), self.live.subscribe())
    }
}

/// Copies the events of `instance` into `feed` until its manager is gone.
pub fn forward(feed: Arc<Feed>, instance: String, mut events: broadcast::Receiver<SessionEvent>) {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(e) => feed.push(&instance, &e),
                Err(RecvError::Lagged(n)) => feed.add(
                    &instance,
                    Line { kind: "lagged", detail: Some(format!("{n} lost")), ..Line::default() },
                ),
                Err(RecvError::Closed) => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn created(id: &str, user: &str) -> SessionEvent {
        SessionEvent::Created { id: id.into(), principal: Some(user.into()) }
    }

    // The backlog keeps the latest events in order; a subscriber gets it and then every later
    // event once.
    #[test]
    fn backlog_then_live() {
        let feed = Feed::default();
        for i in 0..BACKLOG + 5 {
            feed.push("app-1", &SessionEvent::Revoked { id: format!("s{i}") });
        }
        let (backlog, mut rx) = feed.subscribe();
        assert_eq!(backlog.len(), BACKLOG);
        assert_eq!(backlog[0].id.as_deref(), Some("s5"));
        assert_eq!(backlog[BACKLOG - 1].seq, (BACKLOG + 5) as u64);
        feed.push("app-2", &created("n", "ann"));
        let next = rx.try_recv().unwrap();
        assert_eq!((next.kind, next.instance.as_str()), ("created", "app-2"));
        assert!(rx.try_recv().is_err());
    }

    // An event that names only a session is told with the user of that session's login.
    #[test]
    fn names_the_user_of_a_known_session() {
        let feed = Feed::default();
        feed.push("a", &created("s1", "ann"));
        let rotated = SessionEvent::Rotated {
            from: "s1".into(),
            to: "s2".into(),
            principal: Some("ann".into()),
        };
        feed.push("a", &rotated);
        feed.push("b", &SessionEvent::Revoked { id: "s2".into() });
        feed.push("b", &SessionEvent::Destroyed { id: "unknown".into() });
        let (events, _) = feed.subscribe();
        assert_eq!(events[2].user.as_deref(), Some("ann"));
        assert_eq!(events[3].user, None);
    }

    // User names come from the events that carry them, at most MAX_USERS of them.
    #[test]
    fn remembers_a_bounded_set_of_users() {
        let feed = Feed::default();
        for i in 0..MAX_USERS + 3 {
            feed.push("a", &created("x", &format!("u{i:05}")));
        }
        feed.push("a", &created("x", "u00000"));
        let users = feed.users();
        assert_eq!(users.len(), MAX_USERS);
        assert_eq!(users[0], "u00000");
        assert!(!users.contains(&format!("u{:05}", MAX_USERS)));
    }
}
