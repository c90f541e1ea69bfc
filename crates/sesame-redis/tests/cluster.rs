//! Redis Cluster specifics on a real 3-master/3-replica cluster: logins that cross slots,
//! scripts reloaded on every master, the per-user index staying exact while sessions expire
//! (no session key left behind on any node, index keys that go within their margin), a slot
//! migrated under traffic, durability per shard, and reads going on while a durable write waits
//! for its replica. One cluster serves all checks (each with
//! its own key prefix); the checks run one after another.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sesame::{
    CapPolicy, CreateOutcome, Delta, Lookup, Policy, Principal, RotateOutcome, SaveOutcome,
    SessionConfig, SessionManager, SessionToken, Store, StoreError, TokenAction,
};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{policy, principal, record, renew, set, token};
use sesame_testkit::fixtures::{create, is_pointer, now, INDEX_MARGIN_MS};
use sesame_testkit::Cluster;

async fn store(cluster: &Cluster, prefix: &str) -> RedisStore {
    RedisStore::builder(cluster.url()).prefix(prefix).connect().await.unwrap()
}

/// Every key matching `pattern` on every node (masters and replicas), with its node.
fn keys_everywhere(cluster: &Cluster, pattern: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, node) in cluster.nodes().iter().enumerate() {
        for k in node.cli(&["KEYS", pattern]).unwrap().lines() {
            if !k.trim().is_empty() {
                out.push((i, k.trim().to_string()));
            }
        }
    }
    out
}

/// Every key matching `pattern` on the masters, with its value (raw bytes, `None` for a
/// sorted set) and PTTL.
fn keys_on_masters(cluster: &Cluster, pattern: &str) -> Vec<(String, Option<Vec<u8>>, i64)> {
    let mut out = Vec::new();
    for m in cluster.masters().unwrap() {
        let node = &cluster.nodes()[m];
        let mut conn = redis::Client::open(node.url()).unwrap().get_connection().unwrap();
        for k in node.cli(&["KEYS", pattern]).unwrap().lines().map(str::trim) {
            if k.is_empty() {
                continue;
            }
            let kind: String = redis::cmd("TYPE").arg(k).query(&mut conn).unwrap();
            let value = match kind.as_str() {
                "string" => Some(redis::cmd("GET").arg(k).query(&mut conn).unwrap()),
                _ => None,
            };
            let pttl: i64 = redis::cmd("PTTL").arg(k).query(&mut conn).unwrap();
            out.push((k.to_string(), value, pttl));
        }
    }
    out
}

/// Waits (bounded) until no key matches `pattern` on any node: expired keys may linger a
/// moment on replicas until their master's expiry reaches them.
async fn until_no_keys(cluster: &Cluster, pattern: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = keys_everywhere(cluster, pattern);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "keys left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_specifics() {
    let mut cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap().unwrap();
    let report = store(&cluster, "report").await.server_report().await;
    assert!(report.version.is_some() && report.maxmemory_policy.is_some(), "{report:?}");
    login_crosses_slots(&cluster).await;
    scripts_reload_on_every_master(&cluster).await;
    index_is_exact_while_sessions_expire(&cluster).await;
    reshard_under_traffic(&cluster).await;
    durability_per_shard(&mut cluster).await;
    reads_go_on_while_a_write_waits(&cluster).await;
}

// With durability on, a write's `WAIT` runs on a cluster connection of its own: while it waits
// for the stopped replica of its shard, reads of sessions on that master and on the others are
// answered, and the write completes once the replica resumes.
async fn reads_go_on_while_a_write_waits(cluster: &Cluster) {
    let s = RedisStore::builder(cluster.url())
        .prefix("waiting")
        .durability(1, Duration::from_secs(30))
        .response_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    common::reads_go_on_while_a_write_waits(&s, |redis_key| {
        let master = cluster.master_for_slot(cluster.keyslot(redis_key).unwrap()).unwrap();
        let nodes = cluster.nodes();
        let port = nodes[master].port().to_string();
        let replica = nodes
            .iter()
            .find(|n| {
                let role = n.cli(&["ROLE"]).unwrap();
                let mut lines = role.lines();
                lines.next() == Some("slave") && lines.nth(1) == Some(port.as_str())
            })
            .expect("the master has a replica");
        (&nodes[master], replica)
    })
    .await;
}

// A user's slot is migrated to another master key by key (as `redis-cli --cluster reshard`
// does) while the user's sessions are read, saved, renewed, listed and revoked. Every
// operation either succeeds with the right answer or fails as unavailable (503) — `ASK`,
// `TRYAGAIN` and scripts meeting a moved key — and afterwards the index is exact: a session is
// listed exactly when it loads as live, every successful write is there, and the sessions work
// on the new master.
async fn reshard_under_traffic(cluster: &Cluster) {
    let s = store(cluster, "mig").await;
    let pol = policy();
    let user = principal();
    let slot = cluster.keyslot(&s.index_key(user.user())).unwrap();
    let src = cluster.master_for_slot(slot).unwrap();
    let dst = cluster.masters().unwrap().into_iter().find(|&m| m != src).unwrap();
    let id_of = |i: usize| cluster.nodes()[i].cli(&["CLUSTER", "MYID"]).unwrap().trim().to_string();
    let (src_id, dst_id) = (id_of(src), id_of(dst));
    // Each session's current token and the value of `n` its last acknowledged save wrote.
    let mut current: Vec<(SessionToken, u8)> = Vec::new();
    let mut every_token = Vec::new();
    for i in 0..6u8 {
        let t = token(user.user().tag());
        create(&s, &t.key(), &record(Some(&user), &[("n", &[i])]), &pol).await;
        current.push((t.clone(), i));
        every_token.push(t);
    }
    let dst_port = cluster.nodes()[dst].port().to_string();
    cluster.nodes()[dst]
        .cli(&["CLUSTER", "SETSLOT", &slot.to_string(), "IMPORTING", &src_id])
        .unwrap();
    cluster.nodes()[src]
        .cli(&["CLUSTER", "SETSLOT", &slot.to_string(), "MIGRATING", &dst_id])
        .unwrap();
    let keys_in_slot = || -> Vec<String> {
        let listed = cluster.nodes()[src]
            .cli(&["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "100"])
            .unwrap();
        // Only this test's keys: another test's random tag may share the slot.
        listed.lines().map(|l| l.trim().to_string()).filter(|l| l.starts_with("mig:")).collect()
    };
    let in_slot = keys_in_slot();
    assert_eq!(in_slot.len(), 7, "six sessions and the index: {in_slot:?}");
    let (mut ok, mut unavailable) = (0, 0);
    let mut revoked: Option<usize> = None;
    let migrate = |key: &str| {
        let r = cluster.nodes()[src]
            .cli(&["MIGRATE", "127.0.0.1", &dst_port, "", "0", "5000", "KEYS", key])
            .unwrap();
        // NOKEY: the traffic deleted it meanwhile (the revocation below).
        assert!(r == "OK" || r == "NOKEY", "{key}: {r}");
    };
    for (step, key) in in_slot.iter().enumerate() {
        migrate(key);
        // Traffic between two moves.
        let mut outcomes: Vec<Result<(), StoreError>> = Vec::new();
        outcomes.push(s.list_user(user.user(), now(), 64).await.map(|l| {
            let listed: BTreeSet<String> = l.into_iter().map(|i| i.id).collect();
            let expected: BTreeSet<String> = current
                .iter()
                .enumerate()
                .filter(|(i, _)| revoked != Some(*i))
                .map(|(_, (t, _))| t.key().id())
                .collect();
            assert_eq!(listed, expected, "a list during the migration must be exact");
        }));
        for (i, (t, _)) in current.iter().enumerate().skip(1) {
            outcomes.push(s.load(&t.key(), now(), &pol).await.map(|l| {
                assert!(l.is_live(), "session {i}: a live session loads, or the load fails");
            }));
        }
        // A save of one session.
        let i = 1 + step % 5;
        let n = 10 + step as u8;
        match s.load(&current[i].0.key(), now(), &pol).await {
            Ok(l) => {
                let base = l.live().expect("a live session");
                match s.save(&current[i].0.key(), &base, &set(&[("n", &[n])]), now(), &pol).await {
                    Ok(SaveOutcome::Saved(r)) => {
                        assert_eq!(r.attrs["n"], [n]);
                        current[i].1 = n;
                        outcomes.push(Ok(()));
                    }
                    Ok(other) => panic!("step {step}: a live session's save: {other:?}"),
                    Err(e) => outcomes.push(Err(e)),
                }
            }
            Err(e) => outcomes.push(Err(e)),
        }
        // A renewal of another.
        let j = 1 + (step + 2) % 5;
        match s.load(&current[j].0.key(), now(), &pol).await {
            Ok(l) => {
                let base = l.live().expect("a live session").record;
                let next = token(user.user().tag());
                let d = Delta::default();
                match s.rotate(&renew(&current[j].0, &next, &base, &d, 60_000), now(), &pol).await {
                    Ok(RotateOutcome::Rotated(_)) => {
                        every_token.push(next.clone());
                        current[j].0 = next;
                        outcomes.push(Ok(()));
                    }
                    Ok(other) => panic!("step {step}: a live session's renewal: {other:?}"),
                    Err(e) => outcomes.push(Err(e)),
                }
            }
            Err(e) => outcomes.push(Err(e)),
        }
        if step == 3 {
            match s.revoke(user.user(), &current[0].0.key().id(), now()).await {
                Ok(true) => revoked = Some(0),
                Ok(false) => panic!("the session was there to revoke"),
                Err(e) => outcomes.push(Err(e)),
            }
        }
        for o in outcomes {
            match o {
                Ok(()) => ok += 1,
                Err(StoreError::Unavailable { .. }) => unavailable += 1,
                Err(e) => panic!(
                    "step {step}: only 'unavailable' may fail a request during a migration: {e}"
                ),
            }
        }
    }
    // Whatever the traffic wrote to the old master meanwhile moves too.
    for _ in 0..10 {
        let left = keys_in_slot();
        if left.is_empty() {
            break;
        }
        left.iter().for_each(|k| migrate(k));
    }
    assert!(keys_in_slot().is_empty());
    for node in cluster.nodes() {
        // Replicas answer an error for SETSLOT; only the masters' answers matter.
        let _ = node.cli(&["CLUSTER", "SETSLOT", &slot.to_string(), "NODE", &dst_id]);
    }
    assert_eq!(cluster.master_for_slot(slot).unwrap(), dst);
    eprintln!("during the migration: {ok} operations succeeded, {unavailable} were unavailable");
    // Afterwards: exactly the live sessions are listed, and all of them load.
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        match s.list_user(user.user(), now(), 64).await {
            Ok(l) => break l,
            Err(e) if Instant::now() < deadline => {
                eprintln!("after the migration: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    let listed: BTreeSet<String> = listed.into_iter().map(|i| i.id).collect();
    for t in &every_token {
        let loaded = s.load(&t.key(), now(), &pol).await.unwrap();
        let id = t.key().id();
        assert_eq!(loaded.is_live(), listed.contains(&id), "listed iff alive: {id}");
    }
    for (i, (t, n)) in current.iter().enumerate() {
        let loaded = s.load(&t.key(), now(), &pol).await.unwrap();
        if revoked == Some(i) {
            assert_eq!(loaded, Lookup::Missing, "a revocation that succeeded stays done");
            continue;
        }
        let Lookup::Live(l) = loaded else { panic!("session {i} lost: {loaded:?}") };
        assert_eq!(l.record.attrs["n"], [*n], "session {i}: its last acknowledged save");
    }
    let alive = listed.len() as u64;
    assert!(alive >= 5);
    // A renewal on the new master.
    let (t, _) = current[1].clone();
    let base = s.load(&t.key(), now(), &pol).await.unwrap().live().unwrap().record;
    let next = token(user.user().tag());
    let d = Delta::default();
    let out = s.rotate(&renew(&t, &next, &base, &d, 60_000), now(), &pol).await.unwrap();
    assert!(matches!(out, RotateOutcome::Rotated(_)), "{out:?}");
    let ids: BTreeSet<String> =
        s.list_user(user.user(), now(), 64).await.unwrap().into_iter().map(|i| i.id).collect();
    assert!(ids.contains(&next.key().id()) && !ids.contains(&t.key().id()));
    assert_eq!(ids.len() as u64, alive);
    assert_eq!(s.revoke_all(user.user(), None, now()).await.unwrap(), alive);
    assert!(s.list_user(user.user(), now(), 64).await.unwrap().is_empty());
}

// With durability on, a write is confirmed by the replica of the key's own master: when that
// replica is down, writes to that shard fail as unavailable while the other shards carry on.
// The writes expected to fail wait 500 ms for their replica; those expected to succeed get
// 10 s, since a busy machine (the suite runs in parallel) can take longer than 500 ms to
// confirm a write, and the restarted replica has to sync again first.
async fn durability_per_shard(cluster: &mut Cluster) {
    let durable =
        |wait| RedisStore::builder(cluster.url()).prefix("durable").durability(1, wait).connect();
    let s = durable(Duration::from_millis(500)).await.unwrap();
    let patient = durable(Duration::from_secs(10)).await.unwrap();
    let pol = policy();
    let users: Vec<Principal> = (0..24).map(|_| principal()).collect();
    let master_of = |c: &Cluster, u: &Principal| {
        c.master_for_slot(c.keyslot(&s.index_key(u.user())).unwrap()).unwrap()
    };
    let victim_master = master_of(cluster, &users[0]);
    let master_port = cluster.nodes()[victim_master].port().to_string();
    let replica = (0..cluster.nodes().len())
        .find(|&i| {
            let role = cluster.nodes()[i].cli(&["ROLE"]).unwrap();
            let mut lines = role.lines();
            lines.next() == Some("slave") && lines.nth(1) == Some(master_port.as_str())
        })
        .expect("the master has a replica");
    cluster.kill_node(replica);
    let (mut refused, mut accepted) = (0, 0);
    for u in &users {
        let k = token(u.user().tag()).key();
        let rec = record(Some(u), &[]);
        if master_of(cluster, u) == victim_master {
            let e = s.create(&k, &rec, None, now(), &pol).await.unwrap_err();
            assert!(e.to_string().contains("not confirmed"), "{e}");
            refused += 1;
        } else {
            let r = patient.create(&k, &rec, None, now(), &pol).await;
            assert_eq!(r.unwrap(), CreateOutcome::Created);
            accepted += 1;
        }
    }
    assert!(refused > 0 && accepted > 0, "{refused} refused, {accepted} accepted");
    tokio::task::block_in_place(|| cluster.restart_node(replica).unwrap());
    let k = token(users[0].user().tag()).key();
    create(&patient, &k, &record(Some(&users[0]), &[]), &pol).await;
}

// An anonymous session (random tag) logs in: the new session lives in the user's slot, the
// data came along, the old key (in its own slot) is left holding a pointer without the data
// that expires within the idle window, and a login refused at the cap restores the old
// session in its own slot; no claim of a login is left behind.
async fn login_crosses_slots(cluster: &Cluster) {
    let s = store(cluster, "cross").await;
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .max_sessions_per_user(1)
        .cap_policy(CapPolicy::Refuse)
        .build()
        .unwrap();
    let idle = config.policy().idle_ms as i64;
    let manager = SessionManager::new(Arc::new(s.clone()), config);
    let mut crossed = 0;
    for i in 0..6 {
        let user = format!("cross-user-{i}");
        let anon = manager.open(None);
        anon.insert("cart", &vec![format!("item{i}")]).await.unwrap();
        let TokenAction::Set { token: old, .. } = anon.commit().await.unwrap() else { panic!() };
        let login = manager.open(Some(&old.expose()));
        login.login(&user).await.unwrap();
        let TokenAction::Set { token: new, .. } = login.commit().await.unwrap() else { panic!() };
        let old_slot = cluster.keyslot(&s.session_key(&old.key())).unwrap();
        let new_slot = cluster.keyslot(&s.session_key(&new.key())).unwrap();
        assert_eq!(
            new_slot,
            cluster.keyslot(&s.index_key(manager.config().principal(&user).user())).unwrap(),
            "user's slot"
        );
        if old_slot != new_slot {
            crossed += 1;
        }
        let again = manager.open(Some(&new.expose()));
        assert_eq!(again.principal().await.unwrap().as_deref(), Some(user.as_str()));
        assert_eq!(again.get::<Vec<String>>("cart").await.unwrap(), Some(vec![format!("item{i}")]));
        assert!(manager
            .open(Some(&old.expose()))
            .get::<Vec<String>>("cart")
            .await
            .unwrap()
            .is_none());
        let left = keys_on_masters(cluster, &format!("*{}*", old.key().id()));
        let [(_, Some(v), ttl)] = &left[..] else { panic!("the old key: {left:?}") };
        assert!(is_pointer(v), "the old key holds a pointer");
        let item = format!("item{i}");
        assert!(!v.windows(item.len()).any(|w| w == item.as_bytes()), "without the data");
        assert!(*ttl > 0 && *ttl <= idle, "expiring within the idle window: {ttl}");

        // A second anonymous session logging in as the same user is refused at the cap and
        // put back whole in its own slot.
        let other = manager.open(None);
        other.insert("cart", &vec!["kept"]).await.unwrap();
        let TokenAction::Set { token: t2, .. } = other.commit().await.unwrap() else { panic!() };
        let refused = manager.open(Some(&t2.expose()));
        refused.login(&user).await.unwrap();
        assert!(refused.commit().await.is_err());
        let back = manager.open(Some(&t2.expose()));
        assert_eq!(back.get::<Vec<String>>("cart").await.unwrap(), Some(vec!["kept".to_string()]));
        let left = keys_on_masters(cluster, &format!("*{}*", t2.key().id()));
        let [(_, Some(v), ttl)] = &left[..] else { panic!("the restored key: {left:?}") };
        assert!(!is_pointer(v), "a record again");
        assert!(*ttl > 0 && *ttl <= idle, "{ttl}");
    }
    assert!(crossed >= 3, "most logins should cross slots ({crossed} of 6 did)");
    for (k, v, ttl) in keys_on_masters(cluster, "cross:*:s:*") {
        let v = v.expect("a session key is a string");
        // A claim (the first step of a login into another slot) is a pointer of kind `M`.
        assert!(!v.starts_with(b"PM"), "a login's claim left behind under {k}");
        assert!(ttl > 0, "{k} expires");
    }
}

// After SCRIPT FLUSH on every node (as after restarts or a failover to a node that never saw
// the scripts), every operation still works, on every master; afterwards no session or index
// is left, only the pointers of renewed tokens and the revocation epochs, which expire.
async fn scripts_reload_on_every_master(cluster: &Cluster) {
    let s = store(cluster, "flush").await;
    let pol = policy();
    let users: Vec<Principal> = (0..24).map(|_| principal()).collect();
    let masters: BTreeSet<usize> = users
        .iter()
        .map(|u| cluster.master_for_slot(cluster.keyslot(&s.index_key(u.user())).unwrap()).unwrap())
        .collect();
    assert_eq!(masters.len(), 3, "the users spread over the three masters");
    for node in cluster.nodes() {
        assert_eq!(node.cli(&["SCRIPT", "FLUSH"]).unwrap(), "OK");
    }
    for u in &users {
        let t = token(u.user().tag());
        create(&s, &t.key(), &record(Some(u), &[("a", b"1")]), &pol).await;
        let base = s.load(&t.key(), now(), &pol).await.unwrap().live().unwrap();
        let saved = s.save(&t.key(), &base, &set(&[("b", b"2")]), now(), &pol).await.unwrap();
        let SaveOutcome::Saved(r) = saved else { panic!("{saved:?}") };
        let next = token(u.user().tag());
        let d = Delta::default();
        let out = s.rotate(&renew(&t, &next, &r, &d, 60_000), now(), &pol).await.unwrap();
        assert!(matches!(out, RotateOutcome::Rotated(_)), "{out:?}");
        assert_eq!(s.list_user(u.user(), now(), 64).await.unwrap().len(), 1);
        assert_eq!(s.revoke_all(u.user(), None, now()).await.unwrap(), 1);
    }
    until_no_keys(cluster, "flush:*:u:*").await;
    let left = keys_on_masters(cluster, "flush:*");
    assert_eq!(left.len(), 48, "a pointer and an epoch per user: {left:?}");
    for (k, v, ttl) in left {
        assert!(ttl > 0, "{k} expires");
        if k.contains(":s:") {
            assert!(is_pointer(&v.unwrap()), "no session left under {k}");
        } else {
            assert!(k.contains(":e:"), "{k}");
        }
    }
}

// Sessions that die by idle timeout leave the index exact (list, revoke-all and the cap
// count live sessions only), no session key survives them on any node, and the index keys
// left behind go within their margin after the last idle deadline.
async fn index_is_exact_while_sessions_expire(cluster: &Cluster) {
    let s = store(cluster, "expire").await;
    let short =
        Policy { idle_ms: 1_200, touch_after_ms: 100, max_sessions_per_user: 3, ..policy() };
    let users: Vec<Principal> = (0..9).map(|_| principal()).collect();
    for u in &users {
        for _ in 0..3 {
            create(&s, &token(u.user().tag()).key(), &record(Some(u), &[]), &short).await;
        }
        assert_eq!(s.list_user(u.user(), now(), 64).await.unwrap().len(), 3);
    }
    // One more session of a user at the cap is refused under the refusing policy.
    let refuse = Policy { cap_policy: CapPolicy::Refuse, ..short.clone() };
    let k = token(users[0].user().tag()).key();
    let e = s.create(&k, &record(Some(&users[0]), &[]), None, now(), &refuse).await.unwrap_err();
    assert!(matches!(e, StoreError::LimitExceeded(_)), "{e}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for u in &users {
        assert!(
            s.list_user(u.user(), now(), 64).await.unwrap().is_empty(),
            "expired sessions listed"
        );
        assert_eq!(s.revoke_all(u.user(), None, now()).await.unwrap(), 0);
    }
    // The cap counts live sessions only: three new ones fit again.
    for _ in 0..3 {
        let k = token(users[1].user().tag()).key();
        create(&s, &k, &record(Some(&users[1]), &[]), &refuse).await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    until_no_keys(cluster, "expire:*:s:*").await;
    // Revoke-all cleared the other users' indexes; the last sessions' index is going.
    let indexes = keys_on_masters(cluster, "expire:*:u:*");
    let [(k, _, ttl)] = &indexes[..] else { panic!("{indexes:?}") };
    assert_eq!(k, &s.index_key(users[1].user()));
    assert!(*ttl > 0 && *ttl <= INDEX_MARGIN_MS, "{k} goes within the margin: {ttl}");
}
