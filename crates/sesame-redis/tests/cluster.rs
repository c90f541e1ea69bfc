//! Redis Cluster specifics on a real 3-master/3-replica cluster: logins that cross slots,
//! scripts reloaded on every master, and the per-user index staying exact while sessions
//! expire, with no index key left behind on any node. One cluster serves all checks (each
//! with its own key prefix); the checks run one after another.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sesame::{
    CapPolicy, Delta, Policy, SessionConfig, SessionManager, Store, Tag, TokenAction, TokenCodec,
};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{policy, principal, record};
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
}

// A user's slot is migrated to another master key by key (as `redis-cli --cluster reshard`
// does) while the user's sessions are read, written, listed and revoked. Every operation
// either succeeds with the right answer or fails as unavailable (503) — `ASK`, `TRYAGAIN` and
// scripts meeting a moved key — and afterwards the index is exact: a session is listed
// exactly when it can be loaded.
async fn reshard_under_traffic(cluster: &Cluster) {
    let s = store(cluster, "mig").await;
    let pol = policy();
    let user = principal();
    let slot = cluster.keyslot(&s.index_key(&user)).unwrap();
    let src = cluster.master_for_slot(slot).unwrap();
    let dst = cluster.masters().unwrap().into_iter().find(|&m| m != src).unwrap();
    let id_of = |i: usize| cluster.nodes()[i].cli(&["CLUSTER", "MYID"]).unwrap().trim().to_string();
    let (src_id, dst_id) = (id_of(src), id_of(dst));
    let mut keys = Vec::new();
    for i in 0..6u8 {
        let k = TokenCodec::default().generate(Tag::for_principal(&user)).unwrap().key();
        assert!(s
            .create(&k, &record(Some(&user), &[("n", &[i])]), sesame::now_ms(), &pol)
            .await
            .unwrap());
        keys.push(k);
    }
    let dst_port = cluster.nodes()[dst].port().to_string();
    cluster.nodes()[dst]
        .cli(&["CLUSTER", "SETSLOT", &slot.to_string(), "IMPORTING", &src_id])
        .unwrap();
    cluster.nodes()[src]
        .cli(&["CLUSTER", "SETSLOT", &slot.to_string(), "MIGRATING", &dst_id])
        .unwrap();
    let in_slot =
        cluster.nodes()[src].cli(&["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "100"]).unwrap();
    let in_slot: Vec<String> =
        in_slot.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    assert_eq!(in_slot.len(), 7, "six sessions and the index: {in_slot:?}");
    let (mut ok, mut unavailable) = (0, 0);
    let mut revoked = None;
    for (step, key) in in_slot.iter().enumerate() {
        let r = cluster.nodes()[src]
            .cli(&["MIGRATE", "127.0.0.1", &dst_port, "", "0", "5000", "KEYS", key])
            .unwrap();
        // NOKEY: the traffic deleted it meanwhile (the revocation below).
        assert!(r == "OK" || r == "NOKEY", "{key}: {r}");
        // Traffic between two moves.
        let mut outcomes = Vec::new();
        outcomes.push(s.list_user(&user, sesame::now_ms()).await.map(|l| {
            let listed: BTreeSet<String> = l.into_iter().map(|i| i.id).collect();
            let expected: BTreeSet<String> =
                keys.iter().map(|k| k.id()).filter(|id| Some(id) != revoked.as_ref()).collect();
            assert_eq!(listed, expected, "a list during the migration must be exact");
        }));
        for k in &keys[1..] {
            outcomes.push(s.load(k, sesame::now_ms(), &pol).await.map(|l| {
                assert!(l.is_some(), "a live session loads, or the load fails");
            }));
        }
        if step == 3 {
            match s.revoke(&user, &keys[0].id()).await {
                Ok(true) => revoked = Some(keys[0].id()),
                Ok(false) => panic!("the session was there to revoke"),
                Err(e) => outcomes.push(Err(e)),
            }
        }
        for o in outcomes {
            match o {
                Ok(()) => ok += 1,
                Err(sesame::StoreError::Unavailable { .. }) => unavailable += 1,
                Err(e) => panic!(
                    "step {step}: only 'unavailable' may fail a request during a migration: {e}"
                ),
            }
        }
    }
    for node in cluster.nodes() {
        // Replicas answer an error for SETSLOT; only the masters' answers matter.
        let _ = node.cli(&["CLUSTER", "SETSLOT", &slot.to_string(), "NODE", &dst_id]);
    }
    assert_eq!(cluster.master_for_slot(slot).unwrap(), dst);
    eprintln!("during the migration: {ok} operations succeeded, {unavailable} were unavailable");
    // Afterwards: exactly the live sessions are listed, and all of them load.
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        match s.list_user(&user, sesame::now_ms()).await {
            Ok(l) => break l,
            Err(e) if Instant::now() < deadline => {
                eprintln!("after the migration: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    let listed: BTreeSet<String> = listed.into_iter().map(|i| i.id).collect();
    for k in &keys {
        let loaded = s.load(k, sesame::now_ms(), &pol).await.unwrap();
        assert_eq!(loaded.is_some(), listed.contains(&k.id()), "listed iff alive: {}", k.id());
        if revoked.as_deref() == Some(k.id().as_str()) {
            assert!(loaded.is_none(), "a revocation that succeeded stays done");
        }
    }
    let alive = listed.len() as u64;
    assert!(alive >= 5);
    assert_eq!(s.revoke_all(&user, None).await.unwrap(), alive);
    assert!(s.list_user(&user, sesame::now_ms()).await.unwrap().is_empty());
}

// With durability on, a write is confirmed by the replica of the key's own master: when that
// replica is down, writes to that shard fail as unavailable while the other shards carry on.
async fn durability_per_shard(cluster: &mut Cluster) {
    let s = RedisStore::builder(cluster.url())
        .prefix("durable")
        .durability(1, Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let pol = policy();
    let users: Vec<String> = (0..24).map(|_| principal()).collect();
    let master_of =
        |c: &Cluster, u: &str| c.master_for_slot(c.keyslot(&s.index_key(u)).unwrap()).unwrap();
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
        let k = TokenCodec::default().generate(Tag::for_principal(u)).unwrap().key();
        let r = s.create(&k, &record(Some(u), &[]), sesame::now_ms(), &pol).await;
        if master_of(cluster, u) == victim_master {
            let e = r.unwrap_err();
            assert!(e.to_string().contains("not confirmed"), "{e}");
            refused += 1;
        } else {
            assert!(r.unwrap());
            accepted += 1;
        }
    }
    assert!(refused > 0 && accepted > 0, "{refused} refused, {accepted} accepted");
    tokio::task::block_in_place(|| cluster.restart_node(replica).unwrap());
    let k = TokenCodec::default().generate(Tag::for_principal(&users[0])).unwrap().key();
    assert!(s.create(&k, &record(Some(&users[0]), &[]), sesame::now_ms(), &pol).await.unwrap());
}

// An anonymous session (random tag) logs in: the new session lives in the user's slot, the
// old key is gone from every node, the data came along, and a login refused at the cap
// restores the old session in its own slot.
async fn login_crosses_slots(cluster: &Cluster) {
    let s = store(cluster, "cross").await;
    let config = SessionConfig::builder()
        .max_sessions_per_user(1)
        .cap_policy(CapPolicy::Refuse)
        .build()
        .unwrap();
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
        assert_eq!(new_slot, cluster.keyslot(&s.index_key(&user)).unwrap(), "user's slot");
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
        assert!(
            keys_everywhere(cluster, &format!("*{}*", old.key().id())).is_empty(),
            "old key gone"
        );

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
    }
    assert!(crossed >= 3, "most logins should cross slots ({crossed} of 6 did)");
    until_no_keys(cluster, "cross:*:x:*").await;
}

// After SCRIPT FLUSH on every node (as after restarts or a failover to a node that never saw
// the scripts), every operation still works, on every master.
async fn scripts_reload_on_every_master(cluster: &Cluster) {
    let s = store(cluster, "flush").await;
    let pol = policy();
    let users: Vec<String> = (0..24).map(|_| principal()).collect();
    let masters: BTreeSet<usize> = users
        .iter()
        .map(|u| cluster.master_for_slot(cluster.keyslot(&s.index_key(u)).unwrap()).unwrap())
        .collect();
    assert_eq!(masters.len(), 3, "the users spread over the three masters");
    for node in cluster.nodes() {
        assert_eq!(node.cli(&["SCRIPT", "FLUSH"]).unwrap(), "OK");
    }
    for u in &users {
        let k = TokenCodec::default().generate(Tag::for_principal(u)).unwrap().key();
        assert!(s
            .create(&k, &record(Some(u), &[("a", b"1")]), sesame::now_ms(), &pol)
            .await
            .unwrap());
        let base = s.load(&k, sesame::now_ms(), &pol).await.unwrap().unwrap().record;
        let d = Delta { set: vec![("b".into(), b"2".to_vec())], ..Delta::default() };
        s.save(&k, &base, &d, sesame::now_ms(), &pol).await.unwrap();
        assert_eq!(s.list_user(u, sesame::now_ms()).await.unwrap().len(), 1);
        assert_eq!(s.revoke_all(u, None).await.unwrap(), 1);
    }
    until_no_keys(cluster, "flush:*").await;
}

// Sessions that die by idle timeout leave the index exact (list, revoke-all and the cap
// count live sessions only) and no index key survives them on any node.
async fn index_is_exact_while_sessions_expire(cluster: &Cluster) {
    let s = store(cluster, "expire").await;
    let short =
        Policy { idle_ms: 1_200, touch_after_ms: 100, max_sessions_per_user: Some(3), ..policy() };
    let users: Vec<String> = (0..9).map(|_| principal()).collect();
    for u in &users {
        for _ in 0..3 {
            let k = TokenCodec::default().generate(Tag::for_principal(u)).unwrap().key();
            assert!(s.create(&k, &record(Some(u), &[]), sesame::now_ms(), &short).await.unwrap());
        }
        assert_eq!(s.list_user(u, sesame::now_ms()).await.unwrap().len(), 3);
    }
    // One more session per user at the cap evicts exactly the oldest one.
    let refuse = Policy { cap_policy: CapPolicy::Refuse, ..short.clone() };
    let k = TokenCodec::default().generate(Tag::for_principal(&users[0])).unwrap().key();
    assert!(s.create(&k, &record(Some(&users[0]), &[]), sesame::now_ms(), &refuse).await.is_err());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for u in &users {
        assert!(
            s.list_user(u, sesame::now_ms()).await.unwrap().is_empty(),
            "expired sessions listed"
        );
        assert_eq!(s.revoke_all(u, None).await.unwrap(), 0);
    }
    // The cap counts live sessions only: three new ones fit again.
    for _ in 0..3 {
        let k = TokenCodec::default().generate(Tag::for_principal(&users[1])).unwrap().key();
        assert!(s
            .create(&k, &record(Some(&users[1]), &[]), sesame::now_ms(), &refuse)
            .await
            .unwrap());
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    until_no_keys(cluster, "expire:*").await;
}
