//! Encryption at rest, end to end through the session layer, on any [`Store`](sesame::Store): the same
//! checks run on the in-memory store and on a real Redis. Each check takes a fresh store (or
//! one shared with other checks: they use random principals) and drives whole requests through
//! [`SessionManager`]s whose configurations share keys by id, reading what the store holds
//! through the [`Store`](sesame::Store) trait.
// Test code: a failed expectation must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sesame::crypt::PRINCIPAL_SLOT;
use sesame::value::ENCRYPTED;
use sesame::{
    Delta, Error, Lookup, Record, RotateOutcome, Rotation, RotationKind, SaveOutcome,
    SessionConfig, SessionManager, SessionToken, StoreError, TokenAction,
};

use crate::conformance::{base_of, login, DynStore};
use crate::fixtures::{contains, live, now};

/// Marker text put into attribute values: it must never be found in the store.
pub const MARKER: &str = "MARKER-c0ffee";

/// The 32-byte key every configuration of these checks uses for `id`.
pub fn key_bytes(id: u8) -> [u8; 32] {
    [id.wrapping_mul(37).wrapping_add(11); 32]
}

/// A configuration with encryption keys `ids` (the first current), or none when `ids` is empty.
pub fn config(ids: &[u8]) -> SessionConfig {
    let b = SessionConfig::builder().insecure_development_secret();
    if ids.is_empty() {
        return b.build().unwrap();
    }
    b.encryption_keys(ids.iter().map(|&id| (id, key_bytes(id)))).build().unwrap()
}

/// A manager on `store` with encryption keys `ids`.
pub fn manager(store: &DynStore, ids: &[u8]) -> SessionManager {
    SessionManager::new(store.clone(), config(ids))
}

/// A principal nobody else uses, recognisable in a dump of the store.
pub fn principal() -> String {
    format!("ada.lovelace.{}@marker.example", sesame::Tag::random().unwrap().to_hex())
}

/// The token a commit handed out.
pub fn token(a: TokenAction) -> SessionToken {
    match a {
        TokenAction::Set { token, .. } => token,
        other => panic!("expected a new token, got {other:?}"),
    }
}

/// The record the store holds for `token`'s own session.
pub async fn stored(store: &DynStore, m: &SessionManager, token: &SessionToken) -> Record {
    let policy = m.config().policy();
    std::sync::Arc::unwrap_or_clone(
        live(store.load(&token.key(), now(), policy).await.unwrap()).record,
    )
}

/// Writes `value` into attribute `name` of `token`'s stored session through the store (as
/// someone with write access to the store could), bypassing the session layer.
pub async fn plant(
    store: &DynStore,
    m: &SessionManager,
    token: &SessionToken,
    name: &str,
    value: Vec<u8>,
) {
    let base = stored(store, m, token).await;
    let delta = Delta { set: vec![(name.to_string(), value)], ..Delta::default() };
    let out = store
        .save(&token.key(), &base_of(&base), &delta, now(), m.config().policy())
        .await
        .unwrap();
    assert!(matches!(out, SaveOutcome::Saved(_)), "{out:?}");
}

/// A logged-in session of `who` holding marker values (a cart made by `update`, a note, and a
/// long note that compresses); returns its token.
pub async fn marked_session(m: &SessionManager, who: &str) -> SessionToken {
    let s = m.open(None);
    s.update("cart", |c: &mut Vec<String>| c.push(format!("{MARKER}-apple"))).await.unwrap();
    s.insert("note", &format!("{MARKER}-note")).await.unwrap();
    s.insert("long", &format!("{MARKER}-long ").repeat(100)).await.unwrap();
    let anonymous = token(s.commit().await.unwrap());
    let s = m.open(Some(&anonymous.expose()));
    s.login(who).await.unwrap();
    token(s.commit().await.unwrap())
}

/// Whether a value is an envelope.
fn sealed(v: &[u8]) -> bool {
    v.first() == Some(&ENCRYPTED) && v.len() >= 2 + 24 + 16
}

/// Asserts a value error for `name` that names authentication (not the value).
fn assert_fails_authentication(r: Result<Option<Vec<String>>, Error>, name: &str) {
    match r {
        Err(Error::Value { name: n, message }) => {
            assert_eq!(n, name);
            assert!(message.contains("failed authentication"), "{message}");
            assert!(!message.contains(MARKER), "{message}");
        }
        other => panic!("expected a value error, got {other:?}"),
    }
}

/// What the store holds for a session with encryption on: the session's identity, every value
/// an envelope under the current key, the principal only as its keyed reference (the index)
/// and sealed, no marker and no name anywhere; large values compressed before they were sealed.
/// The session reads everything back, and lists and revocation by name work.
pub async fn store_holds_only_sealed_values(store: DynStore) {
    let m = manager(&store, &[3]);
    let who = principal();
    let t = marked_session(&m, &who).await;
    let r = stored(&store, &m, &t).await;
    assert!(r.sid.is_some());
    assert_eq!(r.principal, Some(m.config().store_principal(&who)));
    assert_eq!(r.principal.as_ref().map(|p| p.name()), Some(""), "no name in clear");
    let names: Vec<&str> = r.attrs.keys().map(String::as_str).collect();
    assert_eq!(names, [PRINCIPAL_SLOT, "cart", "long", "note"]);
    for (name, v) in &r.attrs {
        assert!(sealed(v), "{name} is not sealed");
        assert_eq!(v[1], 3, "{name} is sealed under the current key");
        assert!(!contains(v, MARKER.as_bytes()) && !contains(v, who.as_bytes()), "{name}");
    }
    // The long value (about 2 KB of repeated text) was compressed before it was sealed.
    assert!(r.attrs["long"].len() < 300, "{} bytes", r.attrs["long"].len());
    let s = m.open(Some(&t.expose()));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some(who.as_str()));
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap().unwrap(), [format!("{MARKER}-apple")]);
    assert_eq!(s.get::<String>("note").await.unwrap().unwrap(), format!("{MARKER}-note"));
    let long = s.get::<String>("long").await.unwrap().unwrap();
    assert_eq!(long, format!("{MARKER}-long ").repeat(100));
    // Setting the value a session already has changes nothing (compared in plain).
    s.insert("note", &format!("{MARKER}-note")).await.unwrap();
    assert_eq!(s.commit().await.unwrap(), TokenAction::Keep);
    assert_eq!(stored(&store, &m, &t).await, r, "nothing written");
    // The principal's sealed entry is no attribute: it cannot be read or removed as one.
    let s = m.open(Some(&t.expose()));
    assert!(matches!(s.get::<String>(PRINCIPAL_SLOT).await, Err(Error::Invalid(_))));
    assert!(matches!(s.remove(PRINCIPAL_SLOT).await, Err(Error::Invalid(_))));
    // Lists and revocation take the name; the store knows only the keyed reference.
    let listed = m.list_user(&who).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(Some(listed[0].id.clone()), m.open(Some(&t.expose())).id().await.unwrap());
    assert_eq!(store.list_user(m.config().naming().user(&who), now(), 10).await.unwrap().len(), 1);
    assert_eq!(m.open(Some(&t.expose())).list_sessions().await.unwrap().len(), 1);
    assert_eq!(m.revoke_user(&who).await.unwrap(), 1);
    assert!(!m.open(Some(&t.expose())).exists().await.unwrap());
}

/// A value copied into another session, or into another attribute of its own session, fails
/// to open with a clear error (not the foreign value, no panic); a session holding another
/// session's sealed principal is not used.
pub async fn copied_values_do_not_open(store: DynStore) {
    let m = manager(&store, &[1]);
    let (alice, bob) = (principal(), principal());
    let a = marked_session(&m, &alice).await;
    let b = marked_session(&m, &bob).await;
    let from_a = stored(&store, &m, &a).await;
    // Into the same attribute of another session.
    plant(&store, &m, &b, "cart", from_a.attrs["cart"].clone()).await;
    let s = m.open(Some(&b.expose()));
    assert_fails_authentication(s.get("cart").await, "cart");
    // Its other values still open.
    assert_eq!(s.get::<String>("note").await.unwrap().unwrap(), format!("{MARKER}-note"));
    // An update of the foreign value fails too, and writes nothing.
    let r = s.update("cart", |c: &mut Vec<String>| c.push("pear".into())).await;
    assert!(matches!(r, Err(Error::Value { .. })), "{r:?}");
    // Into another attribute of the same session.
    plant(&store, &m, &a, "wish", from_a.attrs["cart"].clone()).await;
    let s = m.open(Some(&a.expose()));
    assert_fails_authentication(s.get("wish").await, "wish");
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap().unwrap(), [format!("{MARKER}-apple")]);
    // The sealed principal of one session in another's.
    plant(&store, &m, &b, PRINCIPAL_SLOT, from_a.attrs[PRINCIPAL_SLOT].clone()).await;
    let unknown = m.stats().unknown_tokens;
    let s = m.open(Some(&b.expose()));
    assert!(!s.exists().await.unwrap());
    assert_eq!(s.principal().await.unwrap(), None);
    assert_eq!(m.stats().unknown_tokens, unknown + 1);
    // Its owner's session is untouched.
    let s = m.open(Some(&a.expose()));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some(alice.as_str()));
    // Alice's record moved by the store into Bob's index (its principal field now Bob's
    // reference, its sealed principal still Alice's): not used either.
    let base = stored(&store, &m, &a).await;
    let bobs = m.config().store_principal(&bob);
    let epoch = store.user_epoch(bobs.user()).await.unwrap();
    let moved = m.config().tokens().generate(bobs.user().tag()).unwrap();
    let rotation = Rotation {
        old: a.key(),
        base: &base,
        base_idle_deadline_ms: None,
        new: moved.key(),
        sealed_successor: Vec::new(),
        delta: &Delta::default(),
        login: Some(login(&bobs, epoch)),
        kind: RotationKind::Elevate,
    };
    let out = store.rotate(&rotation, now(), m.config().policy()).await.unwrap();
    assert!(matches!(out, RotateOutcome::Rotated(_)), "{out:?}");
    assert_eq!(stored(&store, &m, &moved).await.principal, Some(bobs));
    assert!(!m.open(Some(&moved.expose())).exists().await.unwrap());
}

/// Rotations and exact updates with encryption on: an anonymous session's data is carried into
/// its login with its identity, `cycle_id` and a re-login keep both, an update run again by the
/// store on a value another request saved meanwhile opens and seals it correctly, and a login
/// as another principal starts clean with a new identity.
pub async fn rotations_and_updates_keep_working(store: DynStore) {
    let m = manager(&store, &[1]);
    let who = principal();
    let s = m.open(None);
    s.update("cart", |c: &mut Vec<String>| c.push("tea".into())).await.unwrap();
    let anonymous = token(s.commit().await.unwrap());
    let sid = stored(&store, &m, &anonymous).await.sid.unwrap();
    // Login from the anonymous session: data and identity kept.
    let s = m.open(Some(&anonymous.expose()));
    s.login(&who).await.unwrap();
    s.update("cart", |c: &mut Vec<String>| c.push("milk".into())).await.unwrap();
    let t1 = token(s.commit().await.unwrap());
    assert_eq!(stored(&store, &m, &t1).await.sid, Some(sid));
    let s = m.open(Some(&t1.expose()));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some(who.as_str()));
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap().unwrap(), ["tea", "milk"]);
    // cycle_id with a change in the same request.
    s.cycle_id().await.unwrap();
    s.update("cart", |c: &mut Vec<String>| c.push("jam".into())).await.unwrap();
    let t2 = token(s.commit().await.unwrap());
    assert_eq!(stored(&store, &m, &t2).await.sid, Some(sid));
    // A re-login as the same principal.
    let s = m.open(Some(&t2.expose()));
    s.login(&who).await.unwrap();
    let t3 = token(s.commit().await.unwrap());
    let r = stored(&store, &m, &t3).await;
    assert_eq!(r.sid, Some(sid));
    let s = m.open(Some(&t3.expose()));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some(who.as_str()));
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap().unwrap(), ["tea", "milk", "jam"]);
    // Two requests update the cart from the same stored value: the second commit finds the
    // first one's value and runs its update again on it.
    let (x, y) = (m.open(Some(&t3.expose())), m.open(Some(&t3.expose())));
    x.update("cart", |c: &mut Vec<String>| c.push("x".into())).await.unwrap();
    y.update("cart", |c: &mut Vec<String>| c.push("y".into())).await.unwrap();
    assert_eq!(x.commit().await.unwrap(), TokenAction::Keep);
    assert_eq!(y.commit().await.unwrap(), TokenAction::Keep);
    assert_eq!(stored(&store, &m, &t3).await.sid, Some(sid), "saves keep the identity");
    let s = m.open(Some(&t3.expose()));
    assert_eq!(
        s.get::<Vec<String>>("cart").await.unwrap().unwrap(),
        ["tea", "milk", "jam", "x", "y"]
    );
    // A login as another principal starts clean, with a new identity.
    let other = principal();
    s.login(&other).await.unwrap();
    s.insert("theme", "dark").await.unwrap();
    let t4 = token(s.commit().await.unwrap());
    let r = stored(&store, &m, &t4).await;
    assert!(r.sid.is_some() && r.sid != Some(sid));
    let s = m.open(Some(&t4.expose()));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some(other.as_str()));
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap(), None);
    assert_eq!(s.get::<String>("theme").await.unwrap().as_deref(), Some("dark"));
    assert!(!m.open(Some(&t3.expose())).exists().await.unwrap());
}

/// Key rotation: values sealed under key 1 open with keys `[2, 1]`, which seal new values under
/// key 2; with `[2]` alone, a value still under key 1 gives a clear error naming the key id,
/// and a session whose principal is sealed under key 1 is not used. A
/// rotation (here `cycle_id`) seals every value again under the current key, after which key 1
/// is not needed.
pub async fn key_rotation(store: DynStore) {
    let (m1, m21, m2) = (manager(&store, &[1]), manager(&store, &[2, 1]), manager(&store, &[2]));
    let who = principal();
    let t = marked_session(&m1, &who).await;
    let s = m21.open(Some(&t.expose()));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some(who.as_str()));
    assert_eq!(s.get::<String>("note").await.unwrap().unwrap(), format!("{MARKER}-note"));
    s.insert("fresh", "new value").await.unwrap();
    s.update("cart", |c: &mut Vec<String>| c.push("fig".into())).await.unwrap();
    assert_eq!(s.commit().await.unwrap(), TokenAction::Keep);
    let r = stored(&store, &m21, &t).await;
    assert_eq!((r.attrs["fresh"][1], r.attrs["cart"][1]), (2, 2), "new values under key 2");
    assert_eq!((r.attrs["note"][1], r.attrs[PRINCIPAL_SLOT][1]), (1, 1), "untouched: key 1");
    // With key 1 gone, the session's principal (under key 1) no longer opens: not used.
    assert!(!m2.open(Some(&t.expose())).exists().await.unwrap());
    // A rotation under [2, 1] seals what was left under key 1 again: [2] reads it all.
    let s = m21.open(Some(&t.expose()));
    s.cycle_id().await.unwrap();
    let t = token(s.commit().await.unwrap());
    let r = stored(&store, &m2, &t).await;
    assert!(r.attrs.values().all(|v| v[1] == 2), "every value under key 2");
    let s = m2.open(Some(&t.expose()));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some(who.as_str()));
    assert_eq!(s.get::<String>("note").await.unwrap().unwrap(), format!("{MARKER}-note"));
    assert_eq!(
        s.get::<Vec<String>>("cart").await.unwrap().unwrap(),
        [format!("{MARKER}-apple"), "fig".to_string()]
    );
    // An anonymous session: its values are read one by one.
    let s = m1.open(None);
    s.insert("old", &format!("{MARKER}-old")).await.unwrap();
    let anon = token(s.commit().await.unwrap());
    let s = m21.open(Some(&anon.expose()));
    s.insert("new", "written under 2").await.unwrap();
    s.commit().await.unwrap();
    let s = m2.open(Some(&anon.expose()));
    assert_eq!(s.get::<String>("new").await.unwrap().as_deref(), Some("written under 2"));
    match s.get::<String>("old").await {
        Err(Error::Value { name, message }) => {
            assert_eq!(name, "old");
            assert_eq!(message, "the value was encrypted under key id 1, which is not configured");
        }
        other => panic!("expected a value error, got {other:?}"),
    }
    // Its login under [2, 1] seals the value left under key 1 again.
    let s = m21.open(Some(&anon.expose()));
    s.login(&principal()).await.unwrap();
    let t = token(s.commit().await.unwrap());
    let s = m2.open(Some(&t.expose()));
    assert_eq!(s.get::<String>("old").await.unwrap().unwrap(), format!("{MARKER}-old"));
    // The sealing again is an exact update: a value another request wrote between the
    // rotating request's load and its commit is kept.
    let s = m1.open(None);
    s.insert("note", "first").await.unwrap();
    let t = token(s.commit().await.unwrap());
    let (x, y) = (m21.open(Some(&t.expose())), m21.open(Some(&t.expose())));
    assert!(x.exists().await.unwrap() && y.exists().await.unwrap());
    x.insert("note", "second").await.unwrap();
    x.commit().await.unwrap();
    y.cycle_id().await.unwrap();
    let t = token(y.commit().await.unwrap());
    let s = m2.open(Some(&t.expose()));
    assert_eq!(s.get::<String>("note").await.unwrap().as_deref(), Some("second"));
}

/// Turning encryption on or off starts clients on new sessions: a session written with the
/// other setting is not used (counted as an unknown token), and nothing of it is read.
pub async fn switching_encryption_starts_new_sessions(store: DynStore) {
    let (plain, sealed) = (manager(&store, &[]), manager(&store, &[1]));
    let who = principal();
    let t = marked_session(&plain, &who).await;
    let r = stored(&store, &plain, &t).await;
    assert_eq!(r.sid, None);
    assert_eq!(
        r.principal.as_ref().map(|p| p.name()),
        Some(who.as_str()),
        "without encryption: as before"
    );
    assert!(!r.attrs.contains_key(PRINCIPAL_SLOT));
    let s = sealed.open(Some(&t.expose()));
    assert!(!s.exists().await.unwrap());
    assert_eq!(sealed.stats().unknown_tokens, 1);
    let t = marked_session(&sealed, &who).await;
    let s = plain.open(Some(&t.expose()));
    assert_eq!(s.get::<String>("note").await.unwrap(), None);
    assert_eq!(s.principal().await.unwrap(), None);
}

/// The sealed principal is not counted as an attribute: with `max_attributes(1)`, a logged-in
/// session still holds one attribute of its own, and not two.
pub async fn sealed_principal_is_not_an_attribute(store: DynStore) {
    let c = SessionConfig::builder()
        .insecure_development_secret()
        .max_attributes(1)
        .encryption_keys([(1, key_bytes(1))])
        .build()
        .unwrap();
    let m = SessionManager::new(store.clone(), c);
    let s = m.open(None);
    s.login(&principal()).await.unwrap();
    s.insert("one", &1).await.unwrap();
    let t = token(s.commit().await.unwrap());
    let s = m.open(Some(&t.expose()));
    s.insert("two", &2).await.unwrap();
    match s.commit().await {
        Err(Error::Store(StoreError::LimitExceeded(message))) => {
            assert!(message.starts_with("2 attributes"), "{message}")
        }
        other => panic!("expected the limit, got {other:?}"),
    }
    assert!(matches!(store.load(&t.key(), now(), m.config().policy()).await, Ok(Lookup::Live(_))));
}
