//! What the Redis store keeps in Redis for a principal's sessions, on real spawned
//! redis-server processes (and one Redis Cluster): index keys that expire a fixed margin after
//! the idle deadlines of their sessions and follow touches, saves, rotations and removals,
//! pointers left by rotations that expire by themselves, a refused login put back with its
//! TTL, and the exact commands of each operation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use sesame::store::write_ttl;
use sesame::{Delta, Lookup, Policy, RotateOutcome, SaveOutcome, Store, StoreError, Tag};
use sesame_redis::fuzzing::{decode_stored, encode_record, StoredForm};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{
    elevate, key, login, policy, principal, record, renew, set, token,
};
use sesame_testkit::fixtures::{create, is_pointer, live, now, INDEX_MARGIN_MS};
use sesame_testkit::RedisServer;

use common::{all_keys, conn, raw, store, zrange};

/// Slack allowed between a TTL computed on the client and one Redis reports.
const SLACK_MS: i64 = 100;

/// PTTL of each key, read in one pipeline (one server instant, so they compare exactly).
fn pttls(server: &RedisServer, keys: &[&str]) -> Vec<i64> {
    let mut p = redis::pipe();
    for k in keys {
        p.cmd("PTTL").arg(*k);
    }
    p.query(&mut conn(server)).unwrap()
}

/// Asserts that an index's TTL is the margin past a member's: `idx` ≈ `ttl` + margin.
fn assert_index_follows(what: &str, idx: i64, ttl: i64) {
    assert!(
        idx >= ttl + INDEX_MARGIN_MS - SLACK_MS && idx <= ttl + INDEX_MARGIN_MS + SLACK_MS,
        "{what}: index TTL {idx} is not the session's {ttl} + the margin"
    );
}

/// Waits (up to 2 s) for the server's active expiry to reclaim every expired key.
async fn wait_for_empty_db(server: &RedisServer) -> String {
    let mut size = String::new();
    for _ in 0..40 {
        size = server.cli(&["DBSIZE"]).unwrap();
        if size == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    size
}

// A principal's index key expires a fixed margin after the idle deadline of its sessions (not
// their absolute deadline), capped like theirs by the absolute one, and is deleted when its
// last session is revoked or logged out: index keys never pile up. Revoking all leaves only
// the principal's epoch, which expires too.
#[tokio::test]
async fn index_keys_do_not_outlive_sessions() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let who = principal();
    let index = s.index_key(who.user());
    // Idle 60 s, absolute 1 h: the index follows the idle TTL.
    let k0 = key(who.user().tag());
    create(&s, &k0, &record(Some(&who), &[]), &policy()).await;
    let [session, idx] = pttls(&server, &[&s.session_key(&k0), &index])[..] else { panic!() };
    assert!(session > 0 && session <= policy().idle_ms as i64, "session TTL: {session}");
    assert_index_follows("idle", idx, session);
    assert_eq!(s.revoke_all(who.user(), None, now()).await.unwrap(), 1);
    assert_eq!(all_keys(&server), vec![s.epoch_key(who.user())], "revoke-all leaves no index key");
    let epoch_ttl = pttls(&server, &[&s.epoch_key(who.user())])[0];
    assert!(epoch_ttl > 0, "the epoch expires: {epoch_ttl}");
    let _: () = redis::cmd("DEL").arg(s.epoch_key(who.user())).query(&mut conn(&server)).unwrap();
    // An absolute deadline 1.5 s away caps both TTLs.
    let k = key(who.user().tag());
    let mut r = record(Some(&who), &[]);
    r.absolute_ms = now() + 1_500;
    create(&s, &k, &r, &policy()).await;
    let [session, idx] = pttls(&server, &[&s.session_key(&k), &index])[..] else { panic!() };
    assert!(session > 0 && session <= 1_500, "session TTL capped: {session}");
    assert_index_follows("absolute", idx, session);
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    assert!(s.list_user(who.user(), now(), 64).await.unwrap().is_empty());
    assert_eq!(all_keys(&server), vec![index.clone()], "the session is gone, its index expiring");
    let k2 = key(who.user().tag());
    create(&s, &k2, &record(Some(&who), &[]), &policy()).await;
    assert_eq!(s.revoke_all(who.user(), None, now()).await.unwrap(), 1);
    assert_eq!(all_keys(&server), vec![s.epoch_key(who.user())], "revoke-all leaves no index key");
    let k3 = key(who.user().tag());
    create(&s, &k3, &record(Some(&who), &[]), &policy()).await;
    assert!(s.destroy(&k3, now()).await.unwrap());
    assert_eq!(all_keys(&server), vec![s.epoch_key(who.user())], "logout leaves no index key");
}

// Sessions that die by their idle timeout (the usual death, long before the absolute
// deadline) take their index key with them, even when one of them was touched later than the
// others: the index follows the latest idle deadline, lists only live sessions meanwhile, and
// once the margin after the last one has passed nothing is left in Redis.
#[tokio::test]
async fn index_key_expires_with_idle_sessions() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let pol = Policy { idle_ms: 1_200, touch_after_ms: 200, ..policy() };
    let who = principal();
    let index = s.index_key(who.user());
    let mut keys = Vec::new();
    for _ in 0..3 {
        let k = key(who.user().tag());
        create(&s, &k, &record(Some(&who), &[]), &pol).await;
        keys.push(k);
    }
    let [first, idx] = pttls(&server, &[&s.session_key(&keys[0]), &index])[..] else { panic!() };
    assert!(idx <= 1_200 + INDEX_MARGIN_MS + SLACK_MS, "the idle TTL, not the absolute: {idx}");
    assert_index_follows("created", idx, first);
    // The last session is used once more 400 ms in: it now outlives the others, and the index
    // with it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s.load(&keys[2], now(), &pol).await.unwrap().is_live());
    let [last, idx] = pttls(&server, &[&s.session_key(&keys[2]), &index])[..] else { panic!() };
    assert!(last > 1_000, "touched: {last}");
    assert_index_follows("touched", idx, last);
    // 1.3 s after creation: the untouched sessions are gone, the touched one and the index not.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(s.load(&keys[0], now(), &pol).await.unwrap(), Lookup::Missing);
    let listed = s.list_user(who.user(), now(), 64).await.unwrap();
    assert_eq!(listed.into_iter().map(|i| i.id).collect::<Vec<_>>(), vec![keys[2].id()]);
    // Past the touched session's idle deadline: nothing is listed; the index goes once the
    // margin after that deadline has passed, and nothing else is left.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.load(&keys[2], now(), &pol).await.unwrap(), Lookup::Missing);
    assert!(s.list_user(who.user(), now(), 64).await.unwrap().is_empty());
    assert_eq!(all_keys(&server), vec![index.clone()]);
    let left = pttls(&server, &[&index])[0];
    assert!(left > 0 && left <= INDEX_MARGIN_MS, "{left}");
    tokio::time::sleep(Duration::from_millis(left as u64 + 100)).await;
    assert_eq!(server.cli(&["EXISTS", &index]).unwrap(), "0", "the index died with them");
    assert_eq!(wait_for_empty_db(&server).await, "0", "nothing left behind");
}

// A save decides from the idle deadline its load saw whether a touch is due, and that deadline
// may have moved since (another request's touch, another save). Under racing loads (which
// touch) and saves made from stale loads, on two store instances, the session's idle deadline
// and its index score never move back, and the index never falls behind the session: a
// stale decision may only touch early.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_touches_and_stale_saves_never_move_the_deadline_back() {
    let server = RedisServer::start();
    let stores = [store(&server).await, store(&server).await];
    let pol = Policy { idle_ms: 3_000, touch_after_ms: 60, ..policy() };
    let who = principal();
    let k = key(who.user().tag());
    let (session, index) = (stores[0].session_key(&k), stores[0].index_key(who.user()));
    create(&stores[0], &k, &record(Some(&who), &[]), &pol).await;
    let member = live(stores[0].load(&k, now(), &pol).await.unwrap()).record.index_member(&k.id());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The watcher reads the key's TTL and the member's score in one pipeline, many times.
    let watcher = {
        let (url, stop) = (server.url(), stop.clone());
        let (session, index, member) = (session.clone(), index.clone(), member.clone());
        std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            let (mut latest, mut score_seen, mut samples) = (0i64, 0i64, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let before = now() as i64;
                let (ttl, score): (i64, Option<i64>) = redis::pipe()
                    .cmd("PTTL")
                    .arg(&session)
                    .cmd("ZSCORE")
                    .arg(&index)
                    .arg(&member)
                    .query(&mut c)
                    .unwrap();
                let after = now() as i64;
                assert!(ttl > 0, "the session lost its TTL or expired: {ttl}");
                let score = score.expect("the member left the index");
                // The deadline lies between before + ttl and after + ttl (PTTL is in ms).
                assert!(
                    after + ttl + 2 >= latest,
                    "the idle deadline moved back: {} after {latest}",
                    after + ttl
                );
                assert!(
                    score >= score_seen,
                    "the index score moved back: {score} after {score_seen}"
                );
                // The score is the deadline as the client computed it, a round trip before Redis
                // set the TTL: within the slack.
                assert!(
                    score + SLACK_MS >= before + ttl,
                    "the index score {score} is behind the session's deadline {}",
                    before + ttl
                );
                latest = latest.max(before + ttl);
                score_seen = score;
                samples += 1;
            }
            samples
        })
    };
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let s = stores[(i % 2) as usize].clone();
        let pol = pol.clone();
        tasks.push(tokio::spawn(async move {
            let mut saves = 0u32;
            for round in 0..60u32 {
                let loaded = live(s.load(&k, now(), &pol).await.unwrap());
                if i % 4 == 0 {
                    // A reader: its loads touch once touch_after has passed.
                    tokio::time::sleep(Duration::from_millis(u64::from(round % 7))).await;
                    continue;
                }
                // A writer whose load goes stale while others touch and save.
                tokio::time::sleep(Duration::from_millis(u64::from((round * 13 + i) % 90))).await;
                let (name, value) = (format!("w{i}"), round.to_string());
                let d = set(&[(name.as_str(), value.as_bytes())]);
                let saved = s.save(&k, &loaded, &d, now(), &pol).await.unwrap();
                assert!(matches!(saved, SaveOutcome::Saved(_)), "{saved:?}");
                saves += 1;
            }
            saves
        }));
    }
    let mut saves = 0;
    for t in tasks {
        saves += t.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = watcher.join().unwrap();
    assert_eq!(saves, 6 * 60);
    assert!(samples > 100, "the watcher sampled {samples} times");
    // Every write landed: each writer's last value is there.
    let last = live(stores[1].load(&k, now(), &pol).await.unwrap()).record;
    for i in (0..8u32).filter(|i| i % 4 != 0) {
        assert_eq!(last.attrs[&format!("w{i}")], b"59".to_vec(), "writer {i}");
    }
}

// A touch (a load once touch_after has passed) and a save push the session's idle deadline,
// its member's score in the index (the score is the idle deadline) and the index's TTL with
// it; neither ever shortens the index below another member's TTL.
#[tokio::test]
async fn touch_and_save_extend_the_index_ttl() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let pol = Policy { idle_ms: 1_500, touch_after_ms: 200, ..policy() };
    let who = principal();
    let index = s.index_key(who.user());
    let k = key(who.user().tag());
    let session = s.session_key(&k);
    create(&s, &k, &record(Some(&who), &[]), &pol).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idx = pttls(&server, &[&index])[0];
    assert!(idx > 0 && idx <= 1_050 + INDEX_MARGIN_MS, "the index TTL runs down: {idx}");
    // The touch.
    let loaded = live(s.load(&k, now(), &pol).await.unwrap());
    let [ttl, idx] = pttls(&server, &[&session, &index])[..] else { panic!() };
    assert!(ttl > 1_300, "the touch pushed the session: {ttl}");
    assert_index_follows("touch", idx, ttl);
    let member = loaded.record.index_member(&k.id());
    assert_eq!(zrange(&server, &index), vec![(member.clone(), loaded.idle_deadline_ms)]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The save.
    let at = now();
    let saved = s.save(&k, &loaded, &set(&[("a", b"1")]), at, &pol).await.unwrap();
    let SaveOutcome::Saved(written) = saved else { panic!("{saved:?}") };
    assert_eq!(written.version, 2);
    let [ttl, idx] = pttls(&server, &[&session, &index])[..] else { panic!() };
    assert!(ttl > 1_300, "the save reset the session's TTL: {ttl}");
    assert_index_follows("save", idx, ttl);
    let deadline = at + write_ttl(&pol, written.absolute_ms, at);
    assert_eq!(zrange(&server, &index), vec![(member, deadline)], "the score moved");
    // A second session whose absolute deadline is near: its touch and save get short TTLs,
    // which must not cut the index below the first session's.
    let k2 = key(who.user().tag());
    let mut r2 = record(Some(&who), &[]);
    r2.absolute_ms = now() + 900;
    create(&s, &k2, &r2, &pol).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let l2 = live(s.load(&k2, now(), &pol).await.unwrap());
    let saved = s.save(&k2, &l2, &set(&[("a", b"1")]), now(), &pol).await.unwrap();
    assert!(matches!(saved, SaveOutcome::Saved(ref r) if r.version == 2), "{saved:?}");
    let [first, second, idx] = pttls(&server, &[&session, &s.session_key(&k2), &index])[..] else {
        panic!()
    };
    assert!(second > 0 && second <= 600, "capped by its absolute deadline: {second}");
    assert!(idx >= first && idx >= second, "never below a member's TTL: {idx} {first}");
    assert_index_follows("two members", idx, first);
}

// A renewal inside the user's slot moves the session's member in the index (the old id
// leaves, the successor joins with its idle deadline as score, the index's TTL follows), and
// the old key becomes a pointer that expires with the lineage's absolute deadline: nothing a
// rotation leaves behind lives forever, and ending the lineage leaves only that pointer.
#[tokio::test]
async fn rotation_moves_the_index_member_and_leaves_an_expiring_pointer() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let pol = policy();
    let who = principal();
    let index = s.index_key(who.user());
    let t0 = token(who.user().tag());
    let r0 = record(Some(&who), &[("a", b"1")]);
    create(&s, &t0.key(), &r0, &pol).await;
    let t1 = token(who.user().tag());
    let at = now();
    let d = set(&[("b", b"2")]);
    let out = s.rotate(&renew(&t0, &t1, &r0, &d, 1_000), at, &pol).await.unwrap();
    let RotateOutcome::Rotated(r1) = out else { panic!("{out:?}") };
    assert_eq!((r1.version, r1.rotated_ms, r1.attrs.len()), (2, at, 2));
    let ttl = write_ttl(&pol, r1.absolute_ms, at);
    assert_eq!(zrange(&server, &index), vec![(r1.index_member(&t1.key().id()), at + ttl)]);
    let (old, new) = (s.session_key(&t0.key()), s.session_key(&t1.key()));
    let [old_ttl, new_ttl, idx] = pttls(&server, &[&old, &new, &index])[..] else { panic!() };
    assert!(new_ttl > 0 && new_ttl <= ttl as i64, "{new_ttl}");
    assert_index_follows("rotated", idx, new_ttl);
    let lineage = r1.absolute_ms as i64 - at as i64;
    assert!(old_ttl > lineage - 1_000 && old_ttl <= lineage, "pointer TTL {old_ttl}");
    assert!(is_pointer(&raw(&server, &old).unwrap()), "the old key holds a pointer");
    let listed = s.list_user(who.user(), now(), 64).await.unwrap();
    assert_eq!(listed.into_iter().map(|i| i.id).collect::<Vec<_>>(), vec![t1.key().id()]);
    // Logging out with the old token ends the lineage's head: only the pointer is left.
    assert!(s.destroy(&t0.key(), now()).await.unwrap());
    assert_eq!(all_keys(&server), vec![old.clone()]);
    assert!(pttls(&server, &[&old])[0] > 0);
}

// A login refused at the cap (the three-step login into the user's slot) puts the anonymous
// session back whole, with a TTL within its idle window: no claim is left behind, nothing is
// written under the new key, and the user's index is unchanged.
#[tokio::test]
async fn refused_login_restores_the_session_with_a_ttl() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let pol =
        Policy { max_sessions_per_user: 1, cap_policy: sesame::CapPolicy::Refuse, ..policy() };
    let who = principal();
    let existing = key(who.user().tag());
    create(&s, &existing, &record(Some(&who), &[]), &pol).await;
    let before = zrange(&server, &s.index_key(who.user()));
    let anon = key(Tag::random().unwrap());
    let r = record(None, &[("cart", b"tea")]);
    create(&s, &anon, &r, &pol).await;
    let new = key(who.user().tag());
    let d = set(&[("x", b"1")]);
    let epoch = s.user_epoch(who.user()).await.unwrap();
    let e =
        s.rotate(&elevate(&anon, &new, &r, &d, login(&who, epoch)), now(), &pol).await.unwrap_err();
    assert!(matches!(e, StoreError::LimitExceeded(_)), "{e}");
    let back = live(s.load(&anon, now(), &pol).await.unwrap());
    assert_eq!(*back.record, r, "put back as it was");
    let stored = raw(&server, &s.session_key(&anon)).unwrap();
    assert!(!is_pointer(&stored), "no claim left behind");
    let ttl = pttls(&server, &[&s.session_key(&anon)])[0];
    assert!(ttl > 0 && ttl <= pol.idle_ms as i64, "{ttl}");
    assert_eq!(raw(&server, &s.session_key(&new)), None);
    assert_eq!(zrange(&server, &s.index_key(who.user())), before);
    assert_eq!(all_keys(&server).len(), 3, "two sessions and the index");
}

/// Calls per command since the last reset, without the commands sent to measure.
fn calls(server: &RedisServer) -> BTreeMap<String, u64> {
    let mut stats = server.info_commandstats().unwrap();
    stats.retain(|name, _| {
        !matches!(name.split('|').next(), Some("info" | "config" | "script" | "client"))
    });
    server.reset_stats().unwrap();
    stats
}

fn want(calls: &[(&str, u64)]) -> BTreeMap<String, u64> {
    calls.iter().map(|&(name, n)| (name.to_string(), n)).collect()
}

// Each operation asks Redis for exactly the commands of its protocol (INFO commandstats,
// commands run inside scripts counted too): a load is GET + PTTL, its touch PEXPIRE + ZADD +
// PEXPIREAT, a save one EVALSHA of GET + SET (+ ZADD + PEXPIREAT when a touch is due; PTTL
// only when it loses a race, then a second EVALSHA), a renewal one script, a login
// into another slot three, a logout follows the pointer then one script, a revoke-all two.
#[tokio::test]
async fn each_operation_runs_exactly_its_commands() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let pol = policy();
    let who = principal();
    let t0 = token(who.user().tag());
    let r0 = record(Some(&who), &[("a", b"1")]);
    server.reset_stats().unwrap();
    create(&s, &t0.key(), &r0, &pol).await;
    // The least recently active member is read first (one ZRANGE, evicted at the cap), then
    // the script.
    assert_eq!(
        calls(&server),
        want(&[
            ("evalsha", 1),
            ("get", 1),
            ("zremrangebyscore", 1),
            ("zcard", 1),
            ("zadd", 1),
            ("zrange", 2),
            ("pexpireat", 1),
            ("set", 1),
        ]),
        "create"
    );
    // A load is one GET: the record carries its idle deadline.
    let l = live(s.load(&t0.key(), now(), &pol).await.unwrap());
    assert_eq!(calls(&server), want(&[("get", 1)]), "load");
    // A touch writes the record again with its new deadline (compare-and-set, the save
    // script), and moves the index member's score.
    let touching = Policy { touch_after_ms: 0, ..pol.clone() };
    let lt = live(s.load(&t0.key(), now(), &touching).await.unwrap());
    assert!(lt.idle_deadline_ms >= l.idle_deadline_ms);
    assert_eq!(
        calls(&server),
        want(&[("get", 2), ("evalsha", 1), ("set", 1), ("zadd", 1), ("pexpireat", 1)]),
        "load with its touch"
    );
    // A save keeps the TTL (and leaves the index alone) unless a touch is due.
    let saved = s.save(&t0.key(), &lt, &set(&[("b", b"2")]), now(), &pol).await.unwrap();
    let SaveOutcome::Saved(r) = saved else { panic!("{saved:?}") };
    assert_eq!(calls(&server), want(&[("evalsha", 1), ("get", 1), ("set", 1)]), "save");
    // (The saved record keeps the deadline it was loaded with: no touch was due.)
    let base = sesame::Loaded { record: r, idle_deadline_ms: lt.idle_deadline_ms };
    let saved = s.save(&t0.key(), &base, &set(&[("b", b"3")]), now(), &touching).await.unwrap();
    assert!(matches!(saved, SaveOutcome::Saved(_)), "{saved:?}");
    assert_eq!(
        calls(&server),
        want(&[("evalsha", 1), ("get", 1), ("set", 1), ("zadd", 1), ("pexpireat", 1)]),
        "save with its touch"
    );
    // A save from a load that a touch and two saves have overtaken loses the race: the script
    // answers the current value with its TTL (one PTTL), and the second attempt, which the
    // fresh deadline says is not due a touch, keeps it.
    let saved = s.save(&t0.key(), &l, &set(&[("c", b"4")]), now(), &pol).await.unwrap();
    let SaveOutcome::Saved(r) = saved else { panic!("{saved:?}") };
    assert_eq!(r.attrs["b"], b"3".to_vec(), "merged into the current record");
    assert_eq!(
        calls(&server),
        want(&[("evalsha", 2), ("get", 2), ("pttl", 1), ("set", 1)]),
        "a save that lost a race"
    );
    let t1 = token(who.user().tag());
    let d = Delta::default();
    // A rotation told the deadline its base was loaded with expects the stored bytes at once.
    let lr = live(s.load(&t0.key(), now(), &pol).await.unwrap());
    assert_eq!(lr.record, r);
    assert_eq!(calls(&server), want(&[("get", 1)]), "load");
    let mut renewal = renew(&t0, &t1, &lr.record, &d, 1_000);
    renewal.base_idle_deadline_ms = Some(lr.idle_deadline_ms);
    let out = s.rotate(&renewal, now(), &pol).await.unwrap();
    assert!(matches!(out, RotateOutcome::Rotated(_)), "{out:?}");
    assert_eq!(
        calls(&server),
        want(&[
            ("evalsha", 1),
            ("get", 1),
            ("exists", 1),
            ("set", 2),
            ("zrem", 1),
            ("zadd", 1),
            ("zrange", 1),
            ("pexpireat", 1),
        ]),
        "renewal"
    );
    let found = s.load(&t0.key(), now(), &pol).await.unwrap();
    assert!(matches!(found, Lookup::Successor { head, .. } if head == t1.key()));
    assert_eq!(calls(&server), want(&[("get", 2)]), "load of a renewed token");
    assert_eq!(s.list_user(who.user(), now(), 64).await.unwrap().len(), 1);
    assert_eq!(calls(&server), want(&[("zrange", 1)]), "list");
    assert!(s.destroy(&t0.key(), now()).await.unwrap());
    assert_eq!(
        calls(&server),
        want(&[("get", 3), ("evalsha", 1), ("del", 2), ("zrem", 1), ("zrange", 1),]),
        "logout through the renewed token"
    );
    // An anonymous session logs in: claim, create in the user's slot, settle.
    let anon = key(Tag::random().unwrap());
    let ra = record(None, &[("cart", b"tea")]);
    create(&s, &anon, &ra, &pol).await;
    let epoch = s.user_epoch(who.user()).await.unwrap();
    let la = live(s.load(&anon, now(), &pol).await.unwrap());
    server.reset_stats().unwrap();
    let new = key(who.user().tag());
    let mut login_rot = elevate(&anon, &new, &la.record, &d, login(&who, epoch));
    login_rot.base_idle_deadline_ms = Some(la.idle_deadline_ms);
    let out = s.rotate(&login_rot, now(), &pol).await.unwrap();
    assert!(matches!(out, RotateOutcome::Rotated(_)), "{out:?}");
    assert_eq!(
        calls(&server),
        want(&[
            ("evalsha", 3),
            ("get", 4),
            ("set", 3),
            ("time", 1),
            ("zremrangebyscore", 1),
            ("zcard", 1),
            ("zadd", 1),
            ("zrange", 2),
            ("pexpireat", 1),
        ]),
        "login into another slot"
    );
    assert_eq!(s.user_epoch(who.user()).await.unwrap(), epoch);
    assert_eq!(calls(&server), want(&[("get", 1)]), "epoch");
    assert_eq!(s.revoke_all(who.user(), None, now()).await.unwrap(), 1);
    assert_eq!(
        calls(&server),
        want(&[
            ("evalsha", 2),
            ("incr", 1),
            ("pexpire", 1),
            ("zrange", 3),
            ("get", 1),
            ("del", 2),
            ("zrem", 1),
        ]),
        "revoke all"
    );
}

/// Rewrites the record under session key `k` as `encode` writes it (an earlier form), keeping
/// its TTL; returns the record and the bytes now stored.
fn store_in_an_earlier_form(
    server: &RedisServer,
    k: &str,
    encode: fn(&sesame::Record) -> Vec<u8>,
) -> (sesame::Record, Vec<u8>) {
    let stored = raw(server, k).unwrap();
    let Ok(StoredForm::Record(r)) = decode_stored(&stored) else { panic!("{stored:?}") };
    let old = encode(&r);
    let _: () = redis::cmd("SET").arg(k).arg(&old).arg("KEEPTTL").query(&mut conn(server)).unwrap();
    (r, old)
}

// A record written before records carried their idle deadline (seven fields) still loads: its
// load asks for the TTL (a second round trip), its first save loses one race to the bytes it
// could not name, merges, and writes the record with its deadline; from then on a load is one
// GET again. Nothing of the session is lost on the way.
#[tokio::test]
async fn a_record_without_its_deadline_is_read_and_upgraded() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let pol = policy();
    let who = principal();
    let t = token(who.user().tag());
    let k = s.session_key(&t.key());
    create(&s, &t.key(), &record(Some(&who), &[("a", b"1")]), &pol).await;
    let (r, old) = store_in_an_earlier_form(&server, &k, encode_record);
    assert_eq!(old[0], 0x97, "seven fields: no deadline");
    let ttl = pttls(&server, &[&k])[0];
    let before = now() as i64;
    server.reset_stats().unwrap();
    let l = live(s.load(&t.key(), now(), &pol).await.unwrap());
    assert_eq!(calls(&server), want(&[("get", 1), ("pttl", 1)]), "load of an old record");
    assert_eq!(*l.record, r);
    let left = l.idle_deadline_ms as i64 - before;
    assert!((left - ttl).abs() <= SLACK_MS, "the deadline from the TTL: {left} {ttl}");
    let saved = s.save(&t.key(), &l, &set(&[("b", b"2")]), now(), &pol).await.unwrap();
    let SaveOutcome::Saved(next) = saved else { panic!("{saved:?}") };
    assert_eq!(
        calls(&server),
        want(&[("evalsha", 2), ("get", 2), ("pttl", 1), ("set", 1)]),
        "the first save names the bytes with a deadline, misses once, then writes"
    );
    let upgraded = raw(&server, &k).unwrap();
    assert_eq!(upgraded[0], 0x98, "eight fields: the deadline");
    server.reset_stats().unwrap();
    let l2 = live(s.load(&t.key(), now(), &pol).await.unwrap());
    assert_eq!(calls(&server), want(&[("get", 1)]), "load of the upgraded record");
    assert_eq!(l2.record, next);
    assert_eq!(
        (l2.record.attrs["a"].as_slice(), l2.record.attrs["b"].as_slice()),
        (&b"1"[..], &b"2"[..])
    );
    assert!(l2.idle_deadline_ms.abs_diff(l.idle_deadline_ms) <= SLACK_MS as u64);
}

/// `r` in the record form that came first: seven fields, every time written as itself (no
/// deadline, nothing relative to the creation time), as that form's encoder wrote it.
fn with_plain_times(r: &sesame::Record) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_array_len(&mut out, 7).unwrap();
    rmp::encode::write_uint(&mut out, r.version).unwrap();
    for t in [r.created_ms, r.absolute_ms] {
        rmp::encode::write_uint(&mut out, t).unwrap();
    }
    let p = r.principal.as_ref().unwrap();
    rmp::encode::write_str_len(&mut out, 20 + p.name().len() as u32).unwrap();
    out.extend_from_slice(&p.user().to_bytes());
    out.extend_from_slice(p.name().as_bytes());
    rmp::encode::write_uint(&mut out, r.auth_ms.unwrap()).unwrap();
    rmp::encode::write_map_len(&mut out, r.attrs.len() as u32).unwrap();
    for (k, v) in &r.attrs {
        rmp::encode::write_str(&mut out, k).unwrap();
        rmp::encode::write_str_len(&mut out, v.len() as u32).unwrap();
        out.extend_from_slice(v);
    }
    rmp::encode::write_uint(&mut out, r.rotated_ms).unwrap();
    out
}

// A record in the first form (every time a 64-bit number, no deadline) still loads as itself;
// its first save misses once (the store names the bytes in the current form), then writes the
// current form, in which the absolute deadline and the authentication time are negative
// numbers relative to the creation time (12 bytes fewer, 5 more for the deadline); nothing
// of the session is lost.
#[tokio::test]
async fn a_record_with_plain_times_is_read_and_upgraded() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let pol = policy();
    let who = principal();
    let t = token(who.user().tag());
    let k = s.session_key(&t.key());
    let mut first = record(Some(&who), &[("a", b"1")]);
    first.auth_ms = Some(first.created_ms - 3);
    create(&s, &t.key(), &first, &pol).await;
    let (r, old) = store_in_an_earlier_form(&server, &k, with_plain_times);
    assert_eq!(decode_stored(&old), Ok(StoredForm::Record(r.clone())), "the first form reads");
    let l = live(s.load(&t.key(), now(), &pol).await.unwrap());
    assert_eq!(*l.record, r);
    let saved = s.save(&t.key(), &l, &set(&[("b", b"2")]), now(), &pol).await.unwrap();
    let SaveOutcome::Saved(next) = saved else { panic!("{saved:?}") };
    let upgraded = raw(&server, &k).unwrap();
    assert_eq!(upgraded[0], 0x98, "eight fields: the deadline");
    let head = 1 + 1 + 9; // the array's marker, a one-byte version, the creation time
    assert_eq!(upgraded[head], 0xd2, "the absolute deadline as a negative 32-bit life");
    let plain_next = with_plain_times(&next);
    assert_eq!(upgraded.len(), plain_next.len() + 5 - 4 - 8, "5 for the deadline; 4 and 8 saved");
    let l2 = live(s.load(&t.key(), now(), &pol).await.unwrap());
    assert_eq!(l2.record, next);
    assert_eq!(
        (l2.record.attrs["a"].as_slice(), l2.record.attrs["b"].as_slice()),
        (&b"1"[..], &b"2"[..])
    );
    assert_eq!(
        (l2.record.created_ms, l2.record.absolute_ms, l2.record.auth_ms),
        (r.created_ms, r.absolute_ms, r.auth_ms)
    );
}

// On a Redis Cluster, the touch and the save (the save script, with the index as its second
// key) and a renewal of logged-in sessions reach one node each: the
// sessions and their index share a slot. Principals spread over every master.
#[tokio::test]
async fn touch_and_save_on_a_cluster() {
    let cluster =
        tokio::task::spawn_blocking(sesame_testkit::Cluster::start).await.unwrap().unwrap();
    let s = RedisStore::connect(&cluster.url()).await.unwrap();
    let pol = Policy { idle_ms: 1_500, touch_after_ms: 100, ..policy() };
    let mut sessions = Vec::new();
    for _ in 0..12 {
        let who = principal();
        let t = token(who.user().tag());
        create(&s, &t.key(), &record(Some(&who), &[]), &pol).await;
        sessions.push((who, t));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (who, t) in &sessions {
        let k = t.key();
        let l = live(s.load(&k, now(), &pol).await.unwrap());
        assert!(l.idle_deadline_ms >= now() + 1_400, "touched");
        let node = &cluster.nodes()
            [cluster.master_for_slot(cluster.keyslot(&s.index_key(who.user())).unwrap()).unwrap()];
        let member = l.record.index_member(&k.id());
        assert_eq!(zrange(node, &s.index_key(who.user())), vec![(member, l.idle_deadline_ms)]);
        let idx = pttls(node, &[&s.index_key(who.user())])[0];
        assert!(idx > 1_300 + INDEX_MARGIN_MS, "the touch pushed the index: {idx}");
        let saved = s.save(&k, &l, &set(&[("a", b"1")]), now(), &pol).await.unwrap();
        let SaveOutcome::Saved(r) = saved else { panic!("{saved:?}") };
        assert_eq!(r.version, 2);
        let next = token(who.user().tag());
        let d = Delta::default();
        let out = s.rotate(&renew(t, &next, &r, &d, 1_000), now(), &pol).await.unwrap();
        assert!(matches!(out, RotateOutcome::Rotated(_)), "{out:?}");
        let listed = s.list_user(who.user(), now(), 64).await.unwrap();
        assert_eq!(listed.into_iter().map(|i| i.id).collect::<Vec<_>>(), vec![next.key().id()]);
    }
}

// Logging out or revoking the session with the latest deadline shortens the index's TTL to
// the margin past that of the longest-lived remaining session: the index never outlives its
// sessions by more than the margin, also after removals.
#[tokio::test]
async fn removals_shorten_the_index_ttl() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let who = principal();
    let short = Policy { idle_ms: 3_000, touch_after_ms: 100, ..policy() };
    let long = Policy { idle_ms: 600_000, ..policy() };
    let index = s.index_key(who.user());
    let pttl =
        |server: &RedisServer| -> i64 { server.cli(&["PTTL", &index]).unwrap().parse().unwrap() };
    let ks = key(who.user().tag());
    create(&s, &ks, &record(Some(&who), &[]), &short).await;
    for how in ["logout", "revoke"] {
        let kl = key(who.user().tag());
        create(&s, &kl, &record(Some(&who), &[]), &long).await;
        assert!(pttl(&server) > 500_000, "{how}: the long session sets the index TTL");
        if how == "logout" {
            assert!(s.destroy(&kl, now()).await.unwrap());
        } else {
            assert!(s.revoke(who.user(), &kl.id(), now()).await.unwrap());
        }
        let left = pttl(&server);
        assert!(
            left > 0 && left <= 3_000 + INDEX_MARGIN_MS,
            "{how}: index TTL follows the short session: {left}"
        );
    }
    assert!(s.destroy(&ks, now()).await.unwrap());
    assert_eq!(server.cli(&["DBSIZE"]).unwrap(), "0");
}
