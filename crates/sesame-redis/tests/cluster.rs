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
    durability_per_shard(&mut cluster).await;
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
