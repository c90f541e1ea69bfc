//! Checks of rotations: merges into the current record, collisions, concurrent rotations,
//! grace windows, reuse detection, logins (elevation) and logouts (destroy).

use std::sync::Arc;
use std::time::Duration;

use sesame::{CreateOutcome, Delta, Lookup, RotateOutcome, SaveOutcome, SessionToken, Tag};
use tokio::sync::Barrier;

use super::{
    base_of, codec, create_anonymous, create_user_session, create_user_session_token, elevate,
    expect_live, expect_missing, key, listed_ids, login, now, open_chain, policy, principal,
    record, renew, rotated, save, saved, set, token, DynStore,
};

/// A rotation builds the successor from the record as stored now, not from the caller's
/// (possibly stale) base: a save that landed between the load and the rotation is kept.
pub async fn rotate_merges_into_current_record(store: DynStore) {
    let pol = policy();
    let old = create_anonymous(&store, &[("a", b"1")]).await;
    let base = expect_live(&store, &old.key(), &pol).await.record;
    saved(
        store.save(&old.key(), &base_of(&base), &set(&[("x", b"1")]), now(), &pol).await.unwrap(),
    );
    let new = token(old.tag());
    let d = set(&[("y", b"2")]);
    let t = now();
    let rec =
        rotated(store.rotate(&renew(&old, &new, &base, &d, 1_000), now(), &pol).await.unwrap());
    let names: Vec<&str> = rec.attrs.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "x", "y"]);
    assert_eq!(rec.version, 3);
    assert!(rec.rotated_ms >= t && rec.rotated_ms <= now(), "rotation time recorded");
    assert_eq!(
        (rec.created_ms, rec.absolute_ms),
        (base.created_ms, base.absolute_ms),
        "no login: deadlines kept"
    );
    assert_eq!(*expect_live(&store, &new.key(), &pol).await.record, rec);
}

/// A rotation to a key that is taken (a token collision) writes nothing.
pub async fn rotate_collision_writes_nothing(store: DynStore) {
    let pol = policy();
    let a = create_anonymous(&store, &[("who", b"a")]).await;
    let b = create_anonymous(&store, &[("who", b"b")]).await;
    let base = expect_live(&store, &a.key(), &pol).await.record;
    let d = set(&[("who", b"c")]);
    let out = store.rotate(&renew(&a, &b, &base, &d, 1_000), now(), &pol).await.unwrap();
    assert_eq!(out, RotateOutcome::Collision);
    assert_eq!(expect_live(&store, &a.key(), &pol).await.record, base);
    let lb = expect_live(&store, &b.key(), &pol).await.record;
    assert_eq!((lb.attrs["who"].as_slice(), lb.version), (&b"b"[..], 1));
}

/// Concurrent same-privilege rotations of one token leave exactly one live successor: one
/// `Rotated`, every other `AlreadyRotated` naming that same head (and writing nothing).
pub async fn concurrent_rotations_have_one_successor(store: DynStore) {
    const N: usize = 16;
    let pol = policy();
    let p = principal();
    let old = create_user_session_token(&store, &p, &pol).await;
    let base = expect_live(&store, &old.key(), &pol).await.record;
    let barrier = Arc::new(Barrier::new(N));
    let mut tasks = Vec::new();
    for i in 0..N {
        let (store, barrier, base, old) =
            (store.clone(), barrier.clone(), base.clone(), old.clone());
        tasks.push(tokio::spawn(async move {
            let new = token(old.tag());
            let d = set(&[(&format!("r{i}"), &[i as u8])]);
            barrier.wait().await;
            let out =
                store.rotate(&renew(&old, &new, &base, &d, 1_000), now(), &policy()).await.unwrap();
            (i, new, out)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let winners: Vec<&(usize, SessionToken, RotateOutcome)> =
        results.iter().filter(|r| matches!(r.2, RotateOutcome::Rotated(_))).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one rotation wins: {:?}",
        results.iter().map(|r| &r.2).collect::<Vec<_>>()
    );
    let (wi, winner, _) = winners[0];
    for (_, _, out) in &results {
        match out {
            RotateOutcome::Rotated(_) => {}
            RotateOutcome::AlreadyRotated { head, loaded, sealed } => {
                assert_eq!(head, &winner.key());
                assert!(loaded.record.attrs.contains_key(&format!("r{wi}")));
                assert_eq!(
                    open_chain(&old, sealed).as_ref(),
                    Some(winner),
                    "sealed opens to the head's token"
                );
            }
            other => panic!("expected Rotated or AlreadyRotated, got {other:?}"),
        }
    }
    let mut live = Vec::new();
    for (i, new, _) in &results {
        match store.load(&new.key(), now(), &pol).await.unwrap() {
            Lookup::Live(l) => live.push((*i, l)),
            Lookup::Missing => {}
            other => panic!("a losing key must be Missing, got {other:?}"),
        }
    }
    assert_eq!(live.len(), 1, "exactly one new key is live");
    assert_eq!(live[0].0, *wi);
    let names: Vec<String> = live[0].1.record.attrs.keys().cloned().collect();
    assert_eq!(names, [format!("r{wi}")], "the losers wrote nothing");
    assert_eq!(listed_ids(&store, &p, 64).await, [winner.key().id()]);
}

/// Within its grace window a superseded token resolves to its successor: the sealed successor
/// opens to the head's token (along a chain of rotations too), a save through it lands on the
/// head, and the principal's index holds the head only.
pub async fn grace_window_resolves_to_successor(store: DynStore) {
    let pol = policy();
    let p = principal();
    let old = token(p.user().tag());
    let out = store
        .create(&old.key(), &record(Some(&p), &[("a", b"1")]), None, now(), &pol)
        .await
        .unwrap();
    assert_eq!(out, CreateOutcome::Created);
    let base = expect_live(&store, &old.key(), &pol).await.record;
    let new = token(old.tag());
    let d = set(&[("b", b"2")]);
    let rec =
        rotated(store.rotate(&renew(&old, &new, &base, &d, 1_000), now(), &pol).await.unwrap());
    match store.load(&old.key(), now(), &pol).await.unwrap() {
        Lookup::Successor { head, loaded, sealed } => {
            assert_eq!(head, new.key());
            assert_eq!(*loaded.record, rec);
            assert_eq!(sealed.len(), 1);
            assert_eq!(codec().open_successor(&old, &sealed[0]), Some(new.clone()));
        }
        other => panic!("expected Successor, got {other:?}"),
    }
    assert_eq!(*expect_live(&store, &new.key(), &pol).await.record, rec);
    // A save through the old token within grace is applied to the head.
    let written = saved(
        store.save(&old.key(), &base_of(&base), &set(&[("c", b"3")]), now(), &pol).await.unwrap(),
    );
    assert_eq!(written.version, rec.version + 1);
    let head = expect_live(&store, &new.key(), &pol).await.record;
    assert_eq!(*head, written);
    let names: Vec<&str> = head.attrs.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(listed_ids(&store, &p, 64).await, [new.key().id()]);
    // A second rotation: the first token still reaches the head through both hops.
    let newer = token(old.tag());
    let d = Delta::default();
    rotated(store.rotate(&renew(&new, &newer, &head, &d, 1_000), now(), &pol).await.unwrap());
    match store.load(&old.key(), now(), &pol).await.unwrap() {
        Lookup::Successor { head, sealed, .. } => {
            assert_eq!(head, newer.key());
            assert_eq!(sealed.len(), 2);
            assert_eq!(open_chain(&old, &sealed), Some(newer.clone()));
        }
        other => panic!("expected Successor, got {other:?}"),
    }
    assert_eq!(listed_ids(&store, &p, 64).await, [newer.key().id()]);
}

/// A superseded token presented after its grace window is reuse: the load answers `Reused`
/// and the whole lineage is revoked (the head is gone); saves and rotations through it write
/// nothing.
pub async fn reuse_after_grace_revokes_lineage(store: DynStore) {
    let pol = policy();
    let p = principal();
    let d = Delta::default();
    // Two lineages of one user, each rotated once with a 300 ms grace window.
    let mut lineages = Vec::new();
    for _ in 0..2 {
        let old = create_user_session_token(&store, &p, &pol).await;
        let base = expect_live(&store, &old.key(), &pol).await.record;
        let new = token(old.tag());
        rotated(store.rotate(&renew(&old, &new, &base, &d, 300), now(), &pol).await.unwrap());
        expect_live(&store, &new.key(), &pol).await;
        lineages.push((old, base, new));
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    // The first: a load through its old token is reuse, and revokes it.
    let (old, _, new) = &lineages[0];
    assert_eq!(store.load(&old.key(), now(), &pol).await.unwrap(), Lookup::Reused);
    expect_missing(&store, &new.key(), &pol).await;
    let out = save(&store, &new.key(), &set(&[("x", b"1")]), now(), &pol).await.unwrap();
    assert_eq!(out, SaveOutcome::Missing);
    assert_eq!(
        listed_ids(&store, &p, 64).await,
        [lineages[1].2.key().id()],
        "the head left the index"
    );
    // The second: a save or a rotation through its old token writes nothing; a load then is
    // reuse all the same.
    let (old, base, new) = &lineages[1];
    let out =
        store.save(&old.key(), &base_of(base), &set(&[("x", b"1")]), now(), &pol).await.unwrap();
    assert_eq!(out, SaveOutcome::Missing, "a save through a token past grace writes nothing");
    let third = token(old.tag());
    let out = store.rotate(&renew(old, &third, base, &d, 300), now(), &pol).await.unwrap();
    assert_eq!(out, RotateOutcome::Missing, "a rotation of a token past grace writes nothing");
    expect_missing(&store, &third.key(), &pol).await;
    assert_eq!(store.load(&old.key(), now(), &pol).await.unwrap(), Lookup::Reused);
    expect_missing(&store, &new.key(), &pol).await;
    assert!(listed_ids(&store, &p, 64).await.is_empty());
}

/// An anonymous session logging in (Elevate): the successor carries the data and the login
/// (deadlines restart) and joins the principal's index; the old token is dead at once and is
/// never reuse; a second rotation of it finds nothing.
pub async fn elevate_kills_old_token_at_once(store: DynStore) {
    let pol = policy();
    let p = principal();
    let anon = create_anonymous(&store, &[("cart", b"[1]")]).await;
    let base = expect_live(&store, &anon.key(), &pol).await.record;
    let epoch = store.user_epoch(p.user()).await.unwrap();
    let new = key(p.user().tag());
    let l = login(&p, epoch);
    let d = set(&[("step", b"2")]);
    let t = now();
    let rec = rotated(
        store.rotate(&elevate(&anon.key(), &new, &base, &d, l.clone()), now(), &pol).await.unwrap(),
    );
    assert_eq!(rec.principal.as_ref(), Some(&p));
    assert_eq!(rec.auth_ms, Some(l.auth_ms));
    assert!(rec.created_ms >= t && rec.created_ms <= now(), "creation time restarts at login");
    assert_eq!(rec.absolute_ms, rec.created_ms + pol.absolute_ms);
    let names: Vec<&str> = rec.attrs.keys().map(String::as_str).collect();
    assert_eq!(names, ["cart", "step"]);
    assert_eq!(*expect_live(&store, &new, &pol).await.record, rec);
    expect_missing(&store, &anon.key(), &pol).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    expect_missing(&store, &anon.key(), &pol).await;
    let again = key(p.user().tag());
    let out = store
        .rotate(&elevate(&anon.key(), &again, &base, &d, login(&p, epoch)), now(), &pol)
        .await
        .unwrap();
    assert_eq!(out, RotateOutcome::Missing);
    expect_missing(&store, &again, &pol).await;
    let renewed = token(anon.tag());
    let out = store.rotate(&renew(&anon, &renewed, &base, &d, 1_000), now(), &pol).await.unwrap();
    assert_eq!(out, RotateOutcome::Missing);
    expect_missing(&store, &renewed.key(), &pol).await;
    assert_eq!(
        store.save(&anon.key(), &base_of(&base), &d, now(), &pol).await.unwrap(),
        SaveOutcome::Missing
    );
    assert_eq!(listed_ids(&store, &p, 64).await, [new.id()]);
    expect_live(&store, &new, &pol).await;
}

/// A login (Elevate) ends the chain of superseded tokens for requests: an anonymous token
/// renewed before the login and presented within its grace window reaches no session (a load,
/// a save or a rotation through it neither sees nor touches the logged-in session), as the
/// elevated token itself does not: either may have been planted (session fixation).
pub async fn elevate_ends_the_chain(store: DynStore) {
    let pol = policy();
    let p = principal();
    let t0 = create_anonymous(&store, &[("cart", b"1")]).await;
    let base = expect_live(&store, &t0.key(), &pol).await.record;
    let t1 = token(t0.tag());
    let d = Delta::default();
    rotated(store.rotate(&renew(&t0, &t1, &base, &d, 1_000), now(), &pol).await.unwrap());
    let base1 = expect_live(&store, &t1.key(), &pol).await.record;
    let epoch = store.user_epoch(p.user()).await.unwrap();
    let t2 = key(p.user().tag());
    let l = login(&p, epoch);
    let head =
        rotated(store.rotate(&elevate(&t1.key(), &t2, &base1, &d, l), now(), &pol).await.unwrap());
    assert_eq!(
        store.load(&t0.key(), now(), &pol).await.unwrap(),
        Lookup::Missing,
        "load through t0"
    );
    let out =
        store.save(&t0.key(), &base_of(&base), &set(&[("x", b"1")]), now(), &pol).await.unwrap();
    assert_eq!(out, SaveOutcome::Missing, "save through t0");
    let t3 = token(t0.tag());
    let out = store.rotate(&renew(&t0, &t3, &base, &d, 1_000), now(), &pol).await.unwrap();
    assert_eq!(out, RotateOutcome::Missing, "rotation of t0");
    expect_missing(&store, &t3.key(), &pol).await;
    assert_eq!(*expect_live(&store, &t2, &pol).await.record, head);
}

/// Destroy reports whether a live session was ended and removes it from its index.
pub async fn destroy_ends_session(store: DynStore) {
    let pol = policy();
    let p = principal();
    let k = create_user_session(&store, &p, &pol).await;
    let other = create_user_session(&store, &p, &pol).await;
    assert!(store.destroy(&k, now()).await.unwrap());
    expect_missing(&store, &k, &pol).await;
    assert!(!store.destroy(&k, now()).await.unwrap());
    assert_eq!(
        save(&store, &k, &set(&[("a", b"1")]), now(), &pol).await.unwrap(),
        SaveOutcome::Missing
    );
    assert_eq!(listed_ids(&store, &p, 64).await, [other.id()]);
    assert!(!store.destroy(&key(Tag::random().unwrap()), now()).await.unwrap());
}

/// Destroying a superseded token (within grace) ends its lineage: the head is deleted.
pub async fn destroy_superseded_ends_head(store: DynStore) {
    let pol = policy();
    let p = principal();
    let old = create_user_session_token(&store, &p, &pol).await;
    let base = expect_live(&store, &old.key(), &pol).await.record;
    let new = token(old.tag());
    let d = Delta::default();
    rotated(store.rotate(&renew(&old, &new, &base, &d, 1_000), now(), &pol).await.unwrap());
    assert!(store.destroy(&old.key(), now()).await.unwrap());
    expect_missing(&store, &new.key(), &pol).await;
    expect_missing(&store, &old.key(), &pol).await;
    assert!(listed_ids(&store, &p, 64).await.is_empty());
    assert!(!store.destroy(&old.key(), now()).await.unwrap());
    assert!(!store.destroy(&new.key(), now()).await.unwrap());
}

/// A logout racing concurrent rotations of the same token ends the lineage whoever wins:
/// destroy reports a live session ended, and afterwards no new key holds a live session.
pub async fn destroy_races_rotations(store: DynStore) {
    const N: usize = 16;
    let pol = policy();
    for round in 0..8 {
        let p = principal();
        let old = create_user_session_token(&store, &p, &pol).await;
        let base = expect_live(&store, &old.key(), &pol).await.record;
        let barrier = Arc::new(Barrier::new(N + 1));
        let mut tasks = Vec::new();
        for _ in 0..N {
            let (store, barrier, base, old) =
                (store.clone(), barrier.clone(), base.clone(), old.clone());
            tasks.push(tokio::spawn(async move {
                let new = token(old.tag());
                let d = set(&[("r", b"1")]);
                barrier.wait().await;
                let out = store
                    .rotate(&renew(&old, &new, &base, &d, 1_000), now(), &policy())
                    .await
                    .unwrap();
                assert!(
                    matches!(
                        out,
                        RotateOutcome::Rotated(_)
                            | RotateOutcome::AlreadyRotated { .. }
                            | RotateOutcome::Missing
                    ),
                    "{out:?}"
                );
                new
            }));
        }
        let destroy = {
            let (store, barrier, k) = (store.clone(), barrier.clone(), old.key());
            tokio::spawn(async move {
                barrier.wait().await;
                store.destroy(&k, now()).await.unwrap()
            })
        };
        let mut news = Vec::new();
        for t in tasks {
            news.push(t.await.unwrap());
        }
        assert!(destroy.await.unwrap(), "round {round}: a live session was ended");
        for new in &news {
            let got = store.load(&new.key(), now(), &pol).await.unwrap();
            assert_eq!(got, Lookup::Missing, "round {round}: a rotation outlived the logout");
        }
        expect_missing(&store, &old.key(), &pol).await;
        assert!(listed_ids(&store, &p, 64).await.is_empty(), "round {round}");
    }
}
