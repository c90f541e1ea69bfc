//! The admin commands (`sesame sessions`, `stats`, `watch`, `doctor`) run as the real binary
//! against real Redis servers (one server, and a 3-master / 3-replica Cluster), on sessions
//! made by the real library with the secret the command is given.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sesame::{Naming, SessionConfig, SessionManager, TokenAction, TokenSecret};
use sesame_redis::RedisStore;
use sesame_testkit::{Cluster, RedisOptions, RedisServer, SentinelGroup};

/// The token secret the applications (here: the test) and the command share.
const SECRET: &str = "sesame admin test: a fixed token secret of more than 32 bytes";

fn config() -> SessionConfig {
    SessionConfig::builder().token_secret(SECRET.as_bytes().to_vec()).build().unwrap()
}

async fn manager(url: &str, config: SessionConfig) -> SessionManager {
    SessionManager::new(Arc::new(RedisStore::connect(url).await.unwrap()), config)
}

/// The command with the test's secret in its environment and nothing else of ours.
fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sesame"));
    c.args(args)
        .env("SESAME_TOKEN_SECRET", SECRET)
        .env_remove("SESAME_NAMING_SECRET")
        .env_remove("RUST_LOG");
    c
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

fn done(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

fn sesame(args: &[&str]) -> Run {
    done(command(args).output().unwrap())
}

/// Runs without any secret in the environment and requires exit code `code`.
fn expect_without_secret(code: i32, args: &[&str]) -> Run {
    let r = done(command(args).env_remove("SESAME_TOKEN_SECRET").output().unwrap());
    assert_eq!(r.code, code, "sesame {args:?}\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
    r
}

fn assert_no_token(text: &str, tokens: &[String]) {
    for t in tokens {
        assert!(!text.contains(t.as_str()), "a token was printed: {text}");
    }
}

/// Runs and requires exit code `code`.
fn expect(code: i32, args: &[&str]) -> Run {
    let r = sesame(args);
    assert_eq!(r.code, code, "sesame {args:?}\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
    r
}

fn token(a: TokenAction) -> sesame::SessionToken {
    match a {
        TokenAction::Set { token, .. } => token,
        other => panic!("expected a token, got {other:?}"),
    }
}

/// A committed session (logged in as `user` when given) holding a cart; its token and id.
async fn session(m: &SessionManager, user: Option<&str>) -> (String, String) {
    let s = m.open(None);
    if let Some(u) = user {
        s.login(u).await.unwrap();
    }
    s.insert("cart", &["apple", "pear"]).await.unwrap();
    let t = token(s.commit().await.unwrap());
    (t.expose(), t.key().id())
}

/// Rotates a session's token (`cycle_id`): its new token and id.
async fn cycle(m: &SessionManager, t: &str) -> (String, String) {
    let s = m.open(Some(t));
    s.cycle_id().await.unwrap();
    let t = token(s.commit().await.unwrap());
    (t.expose(), t.key().id())
}

fn user_ref(name: &str) -> String {
    let user =
        Naming::from_secret(&TokenSecret::new(SECRET.as_bytes().to_vec()).unwrap()).user(name);
    format!("{{{}}}:{}", user.tag().to_hex(), user.id())
}

fn ids(list: &Value) -> Vec<String> {
    list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// `sessions list`, `show` and `revoke` on one server: the list is the user's live sessions,
// most recently active first; `show` finds a session by SCAN or through its user and shows
// metadata and attribute sizes, never a value or a token; a superseded token's key shows as a
// pointer to its successor; revoking one, all but one and all end exactly those. Without the
// secret the user commands refuse to run; ids that are not ids are refused without echoing
// them.
#[tokio::test]
async fn sessions_list_show_and_revoke() {
    let redis = RedisServer::start();
    let url = redis.url();
    let m = manager(&url, config()).await;
    let (_, a1) = session(&m, Some("alice")).await;
    let (t2, a2_old) = session(&m, Some("alice")).await;
    let (t2, a2) = cycle(&m, &t2).await;
    let (t3, a3) = session(&m, Some("alice")).await;
    let (_, b1) = session(&m, Some("bob")).await;
    let (anon_token, anon) = session(&m, None).await;
    let tokens = [t2.clone(), t3.clone(), anon_token];

    // list
    let r = expect(0, &["sessions", "list", "--store", &url, "--user", "alice", "--json"]);
    let list = r.json();
    assert_eq!(list["user_ref"], user_ref("alice"));
    let listed = ids(&list);
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), set(&[&a1, &a2, &a3]));
    let expires: Vec<u64> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["expires_ms"].as_u64().unwrap())
        .collect();
    assert!(expires.windows(2).all(|w| w[0] >= w[1]), "most recently active first: {expires:?}");
    for s in list["sessions"].as_array().unwrap() {
        assert!(s["created_ms"].as_u64().unwrap() > 0 && s["auth_ms"].as_u64().is_some(), "{s}");
    }
    let r = expect(0, &["sessions", "list", "--store", &url, "--user", "alice"]);
    assert!(r.stdout.contains("3 live sessions, the most recently active first"), "{}", r.stdout);
    assert_no_token(&r.stdout, &tokens);
    assert_no_token(&list.to_string(), &tokens);
    assert!(
        r.stdout.contains("EXPIRES IF IDLE")
            && [&a1, &a2, &a3].iter().all(|id| r.stdout.contains(id.as_str()))
    );
    let r = expect(0, &["sessions", "list", "--store", &url, "--user", "nobody"]);
    assert!(r.stdout.contains("no live sessions"), "{}", r.stdout);
    let r = expect(
        0,
        &["sessions", "list", "--store", &url, "--user", "alice", "--limit", "1", "--json"],
    );
    assert_eq!(ids(&r.json()), [listed[0].clone()]);
    // Nothing listens on port 1: the command fails with exit code 2.
    let r = expect(2, &["sessions", "list", "--store", "redis://127.0.0.1:1", "--user", "alice"]);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);

    // Without the secret: refused, saying which variable to set.
    let r = done(
        command(&["sessions", "list", "--store", &url, "--user", "alice"])
            .env_remove("SESAME_TOKEN_SECRET")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("SESAME_TOKEN_SECRET") && r.stderr.contains("SESAME_NAMING_SECRET"),
        "{}",
        r.stderr
    );
    // Another secret names other keys: the user has no sessions under it.
    let r = done(
        command(&["sessions", "list", "--store", &url, "--user", "alice", "--json"])
            .env("SESAME_TOKEN_SECRET", "another secret, also longer than thirty-two bytes")
            .output()
            .unwrap(),
    );
    assert_eq!(ids(&r.json()).len(), 0);

    // show, found by SCAN
    let r = expect(0, &["sessions", "show", &a3, "--store", &url, "--json"]);
    let shown = r.json();
    let s = &shown[0];
    assert_eq!(s["kind"], "session");
    assert_eq!(s["id"], a3.as_str());
    assert_eq!(s["principal"]["name"], "alice");
    assert_eq!(s["principal"]["user_ref"], user_ref("alice"));
    assert_eq!(s["attributes"][0]["name"], "cart");
    assert!(s["attributes"][0]["bytes"].as_u64().unwrap() > 0);
    assert!(
        s["ttl_ms"].as_u64().unwrap() > 0 && s["absolute_ms"].as_u64() > s["created_ms"].as_u64()
    );
    assert_eq!(s["encrypted"], false);
    for text in [&r.stdout, &expect(0, &["sessions", "show", &a3, "--store", &url]).stdout] {
        assert!(!text.contains("apple") && !text.contains("pear"), "a value was printed: {text}");
        for t in &tokens {
            assert!(!text.contains(t.as_str()), "a token was printed");
        }
    }
    let human = expect(0, &["sessions", "show", &a3, "--store", &url]).stdout;
    assert!(
        human.contains("live session record") && human.contains("cart") && human.contains("alice"),
        "{human}"
    );
    // through the user
    let r = expect(0, &["sessions", "show", &a3, "--user", "alice", "--store", &url, "--json"]);
    assert_eq!(r.json()[0]["key"], shown[0]["key"]);
    // an anonymous session, shown without any secret
    let r = expect_without_secret(0, &["sessions", "show", &anon, "--store", &url, "--json"]);
    assert!(r.json()[0]["principal"].is_null());
    let human = expect_without_secret(0, &["sessions", "show", &anon, "--store", &url]).stdout;
    assert!(human.contains("none (anonymous)"), "{human}");
    // it logs in: its key becomes an `elevated` pointer to the new session
    let s = m.open(Some(&tokens[2]));
    s.login("carol").await.unwrap();
    let carol = token(s.commit().await.unwrap()).key().id();
    let p = expect(0, &["sessions", "show", &anon, "--store", &url, "--json"]).json();
    assert_eq!(
        (p[0]["pointer_kind"].as_str(), p[0]["successor"].as_str()),
        (Some("elevated"), Some(carol.as_str()))
    );
    // a superseded token: a pointer to its successor
    let r = expect(0, &["sessions", "show", &a2_old, "--store", &url, "--json"]);
    let p = &r.json()[0];
    assert_eq!(
        (p["kind"].as_str(), p["pointer_kind"].as_str()),
        (Some("pointer"), Some("renewed"))
    );
    assert_eq!(p["successor"], a2.as_str());
    let human = expect(0, &["sessions", "show", &a2_old, "--store", &url]).stdout;
    assert!(
        human.contains("pointer left by a rotation: renewed") && human.contains(&a2),
        "{human}"
    );
    // unknown ids, and a token given as an id
    let r = expect(1, &["sessions", "show", "AAAAAAAAAAAAAAAAAAAAAA", "--store", &url]);
    assert!(r.stdout.contains("no key of session"), "{}", r.stdout);
    expect(1, &["sessions", "show", "AAAAAAAAAAAAAAAAAAAAAA", "--user", "alice", "--store", &url]);
    let r = expect(2, &["sessions", "show", &t3, "--store", &url]);
    assert!(!r.stderr.contains(t3.as_str()) && r.stderr.contains("not one"), "{}", r.stderr);

    // Encryption at rest: the principal's name is sealed, and the sealed name is not listed
    // as an attribute.
    let sealed = SessionConfig::builder()
        .token_secret(SECRET.as_bytes().to_vec())
        .encryption_keys([(1, [7u8; 32])])
        .build()
        .unwrap();
    let (_, dora) = session(&manager(&url, sealed).await, Some("dora")).await;
    let r = expect(0, &["sessions", "show", &dora, "--user", "dora", "--store", &url, "--json"]);
    let d = &r.json()[0];
    assert_eq!((d["encrypted"].as_bool(), d["principal"]["name"].is_null()), (Some(true), true));
    assert_eq!(d["principal"]["user_ref"], user_ref("dora"));
    let names: Vec<&str> =
        d["attributes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cart"]);
    let human = expect(0, &["sessions", "show", &dora, "--store", &url]).stdout;
    assert!(human.contains("(name sealed)") && !human.contains("dora"), "{human}");

    // revoke one
    let r = expect(0, &["sessions", "revoke", &a3, "--user", "alice", "--store", &url, "--json"]);
    assert_eq!(r.json()["revoked"], true);
    assert!(!m.open(Some(&t3)).exists().await.unwrap());
    let r = expect(1, &["sessions", "revoke", &a3, "--user", "alice", "--store", &url]);
    assert!(r.stdout.contains("nothing revoked"), "{}", r.stdout);
    // not bob's
    expect(1, &["sessions", "revoke", &a1, "--user", "bob", "--store", &url]);
    // all but one
    let r = expect(0, &["sessions", "revoke", "--user", "alice", "--except", &a2, "--store", &url]);
    assert!(r.stdout.contains("revoked 1 session of user alice (kept"), "{}", r.stdout);
    let list =
        expect(0, &["sessions", "list", "--store", &url, "--user", "alice", "--json"]).json();
    assert_eq!(ids(&list), std::slice::from_ref(&a2));
    assert!(m.open(Some(&t2)).exists().await.unwrap());
    // all
    let r = expect(0, &["sessions", "revoke", "--user", "bob", "--store", &url, "--json"]);
    assert_eq!(r.json()["revoked"], 1);
    let list = expect(0, &["sessions", "list", "--store", &url, "--user", "bob", "--json"]).json();
    assert!(ids(&list).is_empty(), "{b1} still listed");
}

// Applications with several token secrets and a naming secret: the command finds their users
// with SESAME_NAMING_SECRET, under their key prefix.
// A TLS server whose CA the system does not trust: the commands connect with `--ca-cert`,
// and without it they fail to connect (exit 2), as they do with an unreadable file.
#[tokio::test(flavor = "multi_thread")]
async fn tls_store_with_ca_cert() {
    let redis =
        RedisServer::start_with(RedisOptions { tls: true, ..RedisOptions::default() }).unwrap();
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let pem = redis.ca_cert_pem().unwrap();
    let store = RedisStore::builder(&url).ca_cert_pem(pem.as_bytes().to_vec()).connect().await;
    let m = SessionManager::new(Arc::new(store.unwrap()), config());
    let (_, id) = session(&m, Some("tess")).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    let ca = ca.to_str().unwrap();
    let list = ["sessions", "list", "--store", &url, "--user", "tess", "--json", "--ca-cert", ca];
    assert_eq!(ids(&expect(0, &list).json()), [id]);
    let r = expect(2, &["sessions", "list", "--store", &url, "--user", "tess"]);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let args = ["stats", "--store", &url, "--ca-cert", missing];
    let r = expect(2, &args);
    assert!(r.stderr.contains("cannot read --ca-cert"), "{}", r.stderr);
}

#[tokio::test]
async fn naming_secret_and_prefix() {
    let redis = RedisServer::start();
    let url = redis.url();
    let naming = "the naming secret of these applications, 32+ bytes";
    let config = SessionConfig::builder()
        .token_secrets(vec![
            b"the new token secret, thirty-two bytes or more".to_vec(),
            SECRET.as_bytes().to_vec(),
        ])
        .naming_secret(naming.as_bytes().to_vec())
        .build()
        .unwrap();
    let store = RedisStore::builder(&url).prefix("shop").connect().await.unwrap();
    let m = SessionManager::new(Arc::new(store), config);
    let (_, id) = session(&m, Some("erin")).await;
    let args =
        ["sessions", "list", "--store", &url, "--prefix", "shop", "--user", "erin", "--json"];
    let r = done(command(&args).env("SESAME_NAMING_SECRET", naming).output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(ids(&r.json()), std::slice::from_ref(&id));
    // Without the naming secret the user's keys are named otherwise; without the prefix too.
    assert!(ids(&expect(0, &args).json()).is_empty());
    let r = done(
        command(&["sessions", "list", "--store", &url, "--user", "erin", "--json"])
            .env("SESAME_NAMING_SECRET", naming)
            .output()
            .unwrap(),
    );
    assert!(ids(&r.json()).is_empty());
    // A session of another prefix is not found by SCAN under the default one.
    expect(1, &["sessions", "show", &id, "--store", &url]);
    expect(0, &["sessions", "show", &id, "--store", &url, "--prefix", "shop"]);
}

/// `stats --json` of `url`.
fn stats(url: &str, extra: &[&str]) -> Value {
    let mut args = vec!["stats", "--store", url, "--json"];
    args.extend_from_slice(extra);
    expect(0, &args).json()
}

fn histogram_total(s: &Value) -> u64 {
    s["expiry_histogram"].as_array().unwrap().iter().map(|b| b["records"].as_u64().unwrap()).sum()
}

// `stats` counts live records, pointers, users (index keys), bytes by MEMORY USAGE, the top
// users by their keyed ids and the records' TTLs; --limit cuts the scan and says so.
#[tokio::test]
async fn stats_counts_sessions_users_and_bytes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let m = manager(&url, config()).await;
    let mut alice = Vec::new();
    for _ in 0..4 {
        alice.push(session(&m, Some("alice")).await.0);
    }
    session(&m, Some("bob")).await;
    session(&m, Some("bob")).await;
    for _ in 0..3 {
        session(&m, None).await;
    }
    cycle(&m, &alice[0]).await;

    let s = stats(&url, &[]);
    assert_eq!(s["complete"], true);
    assert_eq!(s["keys_scanned"], 9 + 1 + 2);
    assert_eq!(s["sessions"], 9);
    assert_eq!(s["pointers"], 1);
    assert_eq!(s["users"], 2);
    let bytes = &s["bytes"];
    assert!(
        bytes["records"].as_u64().unwrap() > 9 * 50 && bytes["pointers"].as_u64().unwrap() > 0,
        "{bytes}"
    );
    assert_eq!(
        bytes["session_keys"].as_u64(),
        Some(bytes["records"].as_u64().unwrap() + bytes["pointers"].as_u64().unwrap())
    );
    assert!(bytes["index_keys"].as_u64().unwrap() > 0);
    let top = s["top_users"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    assert_eq!(
        (&top[0]["user_ref"], &top[0]["sessions"]),
        (&Value::from(user_ref("alice")), &Value::from(4))
    );
    assert_eq!(
        (&top[1]["user_ref"], &top[1]["sessions"]),
        (&Value::from(user_ref("bob")), &Value::from(2))
    );
    assert_eq!(histogram_total(&s), 9);
    // The default idle timeout is 30 minutes: every record expires in 15m-1h.
    let bucket =
        s["expiry_histogram"].as_array().unwrap().iter().find(|b| b["bucket"] == "15m-1h").unwrap();
    assert_eq!(bucket["records"], 9);

    let r = expect_without_secret(0, &["stats", "--store", &url, "--json"]);
    assert_eq!(r.json()["sessions"], 9);
    let s = stats(&url, &["--top", "1"]);
    assert_eq!(s["top_users"].as_array().unwrap().len(), 1);
    assert_eq!(s["top_users"][0]["user_ref"], user_ref("alice"));

    let s = stats(&url, &["--limit", "3", "--count", "2"]);
    assert_eq!((s["complete"].as_bool(), s["keys_scanned"].as_u64()), (Some(false), Some(3)));

    let human = expect(0, &["stats", "--store", &url]).stdout;
    assert!(human.contains("scanned 12 keys") && human.contains(": complete"), "{human}");
    assert!(
        human.contains("9 live session records") && human.contains(&user_ref("alice")),
        "{human}"
    );
    let r = expect(0, &["stats", "--store", &url, "--limit", "5"]);
    assert!(r.stdout.contains("partial: stopped at --limit 5"), "{}", r.stdout);
    // stderr is not a terminal here: no progress line, no control characters anywhere.
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert!(!r.stdout.contains('\u{1b}') && !r.stdout.contains('\r'));
    // On a terminal, the scan shows its progress on stderr (`script` gives it one).
    let bin = env!("CARGO_BIN_EXE_sesame");
    match Command::new("script")
        .args(["-qec", &format!("{bin} stats --store {url} > /dev/null"), "/dev/null"])
        .output()
    {
        Ok(o) => {
            let seen = String::from_utf8_lossy(&o.stdout);
            assert!(o.status.success() && seen.contains("scanning 127.0.0.1:"), "{seen:?}");
            assert!(!seen.contains('\u{1b}'), "{seen:?}");
        }
        Err(e) => eprintln!("not checked on a terminal: cannot run `script` ({e})"),
    }
}

/// A running `sesame watch`: its stdout lines and stderr lines as they come.
struct Watch {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Watch {
    /// Starts `sesame watch --json --configure [--count <count>]` and waits until it watches.
    fn start(url: &str, count: Option<u64>) -> (Watch, String) {
        Watch::start_for(url, count, 60)
    }

    /// Like [`Watch::start`], ending after `seconds`.
    fn start_for(url: &str, count: Option<u64>, seconds: u64) -> (Watch, String) {
        let seconds = seconds.to_string();
        let mut args = vec!["watch", "--store", url, "--json", "--configure", "--duration"];
        args.push(&seconds);
        let count = count.map(|c| c.to_string());
        if let Some(c) = &count {
            args.extend(["--count", c.as_str()]);
        }
        let mut child =
            command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        let mut said = String::new();
        loop {
            let line =
                stderr.recv_timeout(Duration::from_secs(30)).expect("the watch never started");
            said.push_str(&line);
            said.push('\n');
            if line.contains("watching session keys") {
                break;
            }
        }
        (Watch { child, stdout, stderr }, said)
    }

    /// Waits for the watch to end by itself; its events.
    fn events(mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(line) = self.stdout.recv_timeout(Duration::from_secs(70)) {
            out.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
        let status = self.child.wait().unwrap();
        let err: Vec<String> = self.stderr.try_iter().collect();
        assert!(status.success(), "watch failed: {err:?}");
        out
    }
}

impl Watch {
    /// Reads events until `done` says enough (at most 30 s), then stops the watch.
    fn until(mut self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut out = Vec::new();
        while !done(&out) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = self.stdout.recv_timeout(left) else { break };
            out.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        out
    }
}

impl Watch {
    /// Waits for the watch to end by itself: its exit code and what it said on stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        let said: Vec<String> = self.stderr.iter().collect();
        (status.code(), said.join("\n"))
    }
}

/// `(event, id)` pairs.
fn kinds(events: &[Value]) -> BTreeMap<(String, String), Value> {
    events
        .iter()
        .map(|e| {
            (
                (e["event"].as_str().unwrap().to_string(), e["id"].as_str().unwrap().to_string()),
                e.clone(),
            )
        })
        .collect()
}

// `watch` refuses to run without the keyspace notifications it needs (naming them), sets them
// with --configure, and reports a creation, a rotation (pointer kind and successor), a logout
// (ended) and an expiry, saying that it is best effort; it prints no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_lifecycle_events() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let r = expect(2, &["watch", "--store", &url, "--count", "1"]);
    assert!(
        r.stderr.contains("notify-keyspace-events") && r.stderr.contains("Kg$xn"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--configure"), "{}", r.stderr);

    let (watch, said) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || Watch::start(&url, Some(6))
    })
    .await
    .unwrap();
    assert!(
        said.contains("set notify-keyspace-events to 'Kg$xn'") && said.contains("best effort"),
        "{said}"
    );
    let flags = redis.cli(&["CONFIG", "GET", "notify-keyspace-events"]).unwrap();
    let flags = flags.lines().last().unwrap();
    assert!("Kg$xn".chars().all(|f| flags.contains(f)), "{flags}");

    let m = manager(&url, config()).await;
    let (t, a) = session(&m, Some("alice")).await;
    // A save is not an event.
    let s = m.open(Some(&t));
    s.insert("visits", &1).await.unwrap();
    assert!(matches!(s.commit().await.unwrap(), TokenAction::Keep));
    let (t2, b) = cycle(&m, &t).await;
    let s = m.open(Some(&t2));
    s.logout().await.unwrap();
    s.commit().await.unwrap();
    let short = SessionConfig::builder()
        .token_secret(SECRET.as_bytes().to_vec())
        .idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let (t3, c) = session(&manager(&url, short).await, None).await;

    let events = tokio::task::spawn_blocking(move || watch.events()).await.unwrap();
    let seen = kinds(&events);
    let expected: BTreeSet<(String, String)> = [
        ("created", &a),
        ("rotated", &a),
        ("created", &b),
        ("ended", &b),
        ("created", &c),
        ("expired", &c),
    ]
    .iter()
    .map(|(e, id)| (e.to_string(), id.to_string()))
    .collect();
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), expected, "{events:?}");
    let rotated = &seen[&("rotated".to_string(), a.clone())];
    assert_eq!(
        (rotated["kind"].as_str(), rotated["successor"].as_str()),
        (Some("renewed"), Some(b.as_str()))
    );
    assert_eq!(seen[&("expired".to_string(), c.clone())]["pointer"], false);
    let printed = serde_json::to_string(&events).unwrap();
    for token in [&t, &t2, &t3] {
        assert!(!printed.contains(token.as_str()));
    }

    // --duration ends a watch that saw nothing; no secret is needed.
    let r = expect_without_secret(0, &["watch", "--store", &url, "--duration", "0.5"]);
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    // A login from an anonymous session: the anonymous key is claimed (a `moving` pointer,
    // reported when the watcher reads the key before the login settles), the successor is
    // created, and the anonymous key ends as an `elevated` pointer. With a one-second idle
    // timeout both keys then expire: the pointer's expiry says it was one.
    let (watch, _) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || Watch::start(&url, None)
    })
    .await
    .unwrap();
    let short = SessionConfig::builder()
        .token_secret(SECRET.as_bytes().to_vec())
        .idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let m = manager(&url, short).await;
    let (anon_token, d) = session(&m, None).await;
    let s = m.open(Some(&anon_token));
    s.login("bob").await.unwrap();
    let e = token(s.commit().await.unwrap()).key().id();
    let want = [
        ("created", d.clone(), None),
        ("created", e.clone(), None),
        ("rotated", d.clone(), Some("elevated")),
        ("expired", d.clone(), None),
        ("expired", e.clone(), None),
    ];
    let events = tokio::task::spawn_blocking(move || {
        watch.until(|events| {
            want.iter().all(|(name, id, kind)| {
                events.iter().any(|ev| {
                    ev["event"] == *name
                        && ev["id"] == id.as_str()
                        && kind.is_none_or(|k| ev["kind"] == k)
                })
            })
        })
    })
    .await
    .unwrap();
    let rotated: Vec<&Value> = events.iter().filter(|ev| ev["event"] == "rotated").collect();
    assert!(
        rotated.iter().all(|ev| ev["id"] == d.as_str() && ev["successor"] == e.as_str()),
        "{events:?}"
    );
    let rotation_kinds: Vec<&str> = rotated.iter().map(|ev| ev["kind"].as_str().unwrap()).collect();
    assert!(
        rotation_kinds == ["elevated"] || rotation_kinds == ["moving", "elevated"],
        "{events:?}"
    );
    assert_eq!(events.iter().filter(|ev| ev["event"] == "created").count(), 2, "{events:?}");
    let expired = kinds(&events);
    assert_eq!(expired[&("expired".to_string(), d.clone())]["pointer"], true);
    assert_eq!(expired[&("expired".to_string(), e.clone())]["pointer"], false);

    // A lost subscription (the server goes away) makes the watch try to reconnect; when the
    // server stays away until the watch's time is up, it ends with exit code 2.
    let (watch, _) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || Watch::start_for(&url, None, 3)
    })
    .await
    .unwrap();
    redis.stop();
    let (code, said) = tokio::task::spawn_blocking(move || watch.finish()).await.unwrap();
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("lost the subscription"), "{said}");
    assert!(said.contains("reconnecting") && said.contains("gave up reconnecting"), "{said}");
}

// `doctor` names what is wrong and exits 2 on errors (an evicting policy with a memory limit),
// 1 on warnings only (no persistence), 0 on a well-configured server.
#[tokio::test]
async fn doctor_flags_risky_settings_and_passes_a_good_server() {
    let risky = RedisServer::start_with(RedisOptions {
        extra_args: ["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]
            .map(String::from)
            .to_vec(),
        ..RedisOptions::default()
    })
    .unwrap();
    let r = expect(2, &["doctor", "--store", &risky.url(), "--json"]);
    let report = r.json();
    let find = |report: &Value, check: &str| -> Vec<Value> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["check"] == check)
            .cloned()
            .collect()
    };
    let policy = find(&report, "maxmemory-policy");
    assert_eq!(policy[0]["level"], "error");
    assert!(policy[0]["message"].as_str().unwrap().contains("allkeys-lru"));
    assert!(policy[0]["fix"].as_str().unwrap().contains("noeviction"));
    assert_eq!(find(&report, "persistence")[0]["level"], "warning");
    assert_eq!(find(&report, "version")[0]["level"], "ok");
    assert_eq!(find(&report, "keyspace notifications")[0]["level"], "note");
    assert!(report["errors"].as_u64().unwrap() >= 1);
    let human = expect(2, &["doctor", "--store", &risky.url()]).stdout;
    assert!(
        human.contains("[error]") && human.contains("allkeys-lru") && human.contains("change: "),
        "{human}"
    );

    // Persistence off only: warnings, exit 1.
    let plain = RedisServer::start();
    let report = expect_without_secret(1, &["doctor", "--store", &plain.url(), "--json"]).json();
    assert_eq!((report["errors"].as_u64(), report["warnings"].as_u64()), (Some(0), Some(1)));

    let good =
        RedisServer::start_with(RedisOptions { appendonly: true, ..RedisOptions::default() })
            .unwrap();
    let r = expect(0, &["doctor", "--store", &good.url(), "--json"]);
    let report = r.json();
    assert_eq!(
        (report["errors"].as_u64(), report["warnings"].as_u64()),
        (Some(0), Some(0)),
        "{report}"
    );
    assert_eq!(find(&report, "persistence")[0]["level"], "ok");
    assert_eq!(find(&report, "maxmemory-policy")[0]["level"], "ok");

    // A good Valkey passes too, and the report says its saves are native.
    let valkey = RedisServer::start_with(RedisOptions {
        appendonly: true,
        flavor: sesame_testkit::Flavor::Valkey,
        ..RedisOptions::default()
    })
    .unwrap();
    let report = expect(0, &["doctor", "--store", &valkey.url(), "--json"]).json();
    let version = &find(&report, "version")[0];
    assert_eq!(version["level"], "ok");
    let message = version["message"].as_str().unwrap();
    assert!(message.starts_with("Valkey 9.") && message.contains("SET … IFEQ"), "{message}");
}

// Through the sentinels, the commands reach the group's master, and `doctor` reports its
// replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_url() {
    let group = tokio::task::spawn_blocking(SentinelGroup::start).await.unwrap().unwrap();
    let url = group.url();
    let master = format!("127.0.0.1:{}", group.current_master_port().unwrap());
    let m = manager(&url, config()).await;
    let (_, a) = session(&m, Some("alice")).await;
    let (_, b) = session(&m, Some("alice")).await;
    let list =
        expect(0, &["sessions", "list", "--store", &url, "--user", "alice", "--json"]).json();
    assert_eq!(ids(&list).into_iter().collect::<BTreeSet<_>>(), set(&[&a, &b]));
    assert_eq!(
        expect(0, &["sessions", "show", &a, "--store", &url, "--json"]).json()[0]["id"],
        a.as_str()
    );
    let s = stats(&url, &[]);
    assert_eq!(s["masters"], serde_json::json!([master]));
    assert_eq!((s["sessions"].as_u64(), s["users"].as_u64()), (Some(2), Some(1)));
    let report = expect(1, &["doctor", "--store", &url, "--json"]).json();
    let replicas: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "replication")
        .collect();
    assert!(!replicas.is_empty() && replicas.iter().all(|f| f["level"] == "ok"), "{replicas:?}");
    assert!(replicas.iter().all(|f| f["node"] == master.as_str()));
}

// When the master it watches goes away, `watch` finds the new one through the sentinels,
// subscribes again (turning the notifications on there too, with --configure) and goes on
// reporting; it says that events in between were missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_sentinel_failover() {
    let mut group = tokio::task::spawn_blocking(SentinelGroup::start).await.unwrap().unwrap();
    let url = group.url();
    let m = manager(&url, config()).await;
    let (watch, said) = Watch::start(&url, None);
    assert!(said.contains("watching session keys"), "{said}");
    let (_, before) = session(&m, Some("alice")).await;
    let old = group.current_master_port().unwrap();
    group.kill_master().unwrap();
    let group = tokio::task::spawn_blocking(move || {
        group.wait_for_failover(old, Duration::from_secs(30)).unwrap();
        group
    })
    .await
    .unwrap();
    // The watch says it lost its master, then that it subscribed to the new one.
    let mut said = String::new();
    while !said.contains("resubscribed to session keys") {
        let line = watch.stderr.recv_timeout(Duration::from_secs(60)).expect("never resubscribed");
        said.push_str(&line);
        said.push('\n');
    }
    assert!(said.contains("reconnecting (events until then are missed)"), "{said}");
    // The store follows the new master by itself; retry until the login lands there.
    let mut after = None;
    for _ in 0..100 {
        let s = m.open(None);
        if s.login("bob").await.is_ok() {
            if let Ok(a) = s.commit().await {
                after = Some(token(a).key().id());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = after.expect("no login after the failover");
    let events = watch.until(|ev| ev.iter().any(|e| e["id"] == after.as_str()));
    let created: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "created")
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert!(created.contains(&before.as_str()), "{events:?}");
    assert!(created.contains(&after.as_str()), "reported after the failover: {events:?}");
    drop(group);
}

// On a Cluster, every command covers every master: `watch` reports creations from several
// masters, `show` finds a session by SCAN wherever it is, `stats` counts all of them, `list`
// and `revoke` reach each user's slot, and `doctor` checks the cluster state and replication
// of each master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_a_cluster() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap().unwrap();
    let url = cluster.url();
    let users: Vec<String> = (0..9).map(|i| format!("user{i}")).collect();
    let total = users.len() + 3;

    let (watch, _) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || Watch::start(&url, Some(total as u64))
    })
    .await
    .unwrap();
    let m = manager(&url, config()).await;
    let mut alice = Vec::new();
    for _ in 0..3 {
        alice.push(session(&m, Some("alice")).await.1);
    }
    let mut others = Vec::new();
    for u in &users {
        others.push(session(&m, Some(u)).await.1);
    }
    let events = tokio::task::spawn_blocking(move || watch.events()).await.unwrap();
    let created: BTreeSet<String> = events
        .iter()
        .filter(|e| e["event"] == "created")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let all: BTreeSet<String> = alice.iter().chain(&others).cloned().collect();
    assert_eq!(created, all, "{events:?}");
    let masters: BTreeSet<&str> = events.iter().map(|e| e["master"].as_str().unwrap()).collect();
    assert!(masters.len() >= 2, "events from one master only: {masters:?}");

    let s = stats(&url, &["--count", "5"]);
    assert_eq!(s["masters"].as_array().unwrap().len(), 3);
    assert_eq!((s["sessions"].as_u64(), s["users"].as_u64()), (Some(total as u64), Some(10)));
    assert_eq!(s["top_users"][0]["user_ref"], user_ref("alice"));
    assert_eq!(s["top_users"][0]["sessions"], 3);
    assert_eq!(histogram_total(&s), total as u64);

    for id in [&alice[0], &others[4]] {
        let r = expect(0, &["sessions", "show", id, "--store", &url, "--json"]);
        assert_eq!(r.json()[0]["id"], id.as_str());
    }

    let list =
        expect(0, &["sessions", "list", "--store", &url, "--user", "alice", "--json"]).json();
    assert_eq!(ids(&list).into_iter().collect::<BTreeSet<_>>(), alice.iter().cloned().collect());
    let r = expect(
        0,
        &[
            "sessions", "revoke", "--user", "alice", "--except", &alice[1], "--store", &url,
            "--json",
        ],
    );
    assert_eq!(r.json()["revoked"], 2);
    let list =
        expect(0, &["sessions", "list", "--store", &url, "--user", "alice", "--json"]).json();
    assert_eq!(ids(&list), [alice[1].clone()]);
    expect(0, &["sessions", "revoke", &others[2], "--user", "user2", "--store", &url]);
    expect(1, &["sessions", "revoke", &others[2], "--user", "user2", "--store", &url]);
    assert_eq!(stats(&url, &[])["sessions"].as_u64(), Some(total as u64 - 3));

    // The test cluster keeps no data on disk and sets no min-replicas-to-write: warnings.
    let report = expect(1, &["doctor", "--store", &url, "--json"]).json();
    let of = |check: &str| -> Vec<Value> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["check"] == check)
            .cloned()
            .collect()
    };
    let state = of("cluster state");
    assert_eq!(state.len(), 3);
    assert!(state.iter().all(|f| f["level"] == "ok"), "{state:?}");
    let replicas: Vec<Value> = of("replication");
    assert_eq!(replicas.len(), 3);
    assert!(
        replicas.iter().all(|f| f["message"].as_str().unwrap().contains("online")),
        "{replicas:?}"
    );
    let min = of("min-replicas-to-write");
    assert!(min.len() == 3 && min.iter().all(|f| f["level"] == "warning"), "{min:?}");
}
