//! Store URLs: which topology, which nodes, which credentials.
//!
//! - `redis://[user:password@]host:port[/db]`, `rediss://...` — one server.
//! - `redis+sentinel://[user:password@]host:port,host:port,.../<master-name>[/db]` — the
//!   master named `<master-name>`, found and followed through the listed sentinels.
//!   `rediss+sentinel://` uses TLS for the sentinels and the data nodes.
//! - `redis+cluster://[user:password@]host:port,host:port,...` — a Redis Cluster reached
//!   through any of the listed seed nodes. `rediss+cluster://` uses TLS.
//!
//! The credentials are those of the data nodes (`AUTH` / ACL user). Sentinels are contacted
//! without credentials unless the builder is given sentinel credentials.
//!
//! No form takes a query or a fragment: every option is a builder method. The client library
//! underneath reads options there (`#insecure` turns TLS certificate verification off,
//! `?protocol=` changes the protocol), so a URL carrying any is refused, naming the parameter
//! or fragment (never a value or a password). `/`, `?` and `#` inside the user name or
//! password must be percent-encoded (`%2F`, `%3F`, `%23`).

use sesame::StoreError;

/// A parsed store URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One server (possibly with replicas the client does not talk to).
    Single(String),
    /// A master followed through sentinels.
    Sentinel {
        /// `host:port` of every sentinel.
        sentinels: Vec<String>,
        /// The name the sentinels monitor the master under.
        master_name: String,
        /// The connection settings of data nodes.
        node: NodeUrl,
    },
    /// A Redis Cluster.
    Cluster {
        /// `host:port` of the seed nodes.
        seeds: Vec<String>,
        /// The connection settings of data nodes.
        node: NodeUrl,
    },
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print credentials.
        match self {
            Topology::Single(_) => f.write_str("Single"),
            Topology::Sentinel { sentinels, master_name, .. } => f
                .debug_struct("Sentinel")
                .field("sentinels", sentinels)
                .field("master_name", master_name)
                .finish_non_exhaustive(),
            Topology::Cluster { seeds, .. } => {
                f.debug_struct("Cluster").field("seeds", seeds).finish_non_exhaustive()
            }
        }
    }
}

/// How to reach a data node given its address: scheme, credentials and database.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct NodeUrl {
    /// Whether to use TLS.
    pub(crate) tls: bool,
    /// `user:password` or `:password` as written in the URL (still percent-encoded), if any.
    pub(crate) userinfo: Option<String>,
    /// The database number, if one was given.
    pub(crate) db: Option<u32>,
}

impl NodeUrl {
    /// The `redis[s]://` URL of the node at `host:port`.
    pub(crate) fn at(&self, host_port: &str) -> String {
        let mut url = String::from(if self.tls { "rediss://" } else { "redis://" });
        if let Some(u) = &self.userinfo {
            url.push_str(u);
            url.push('@');
        }
        url.push_str(host_port);
        if let Some(db) = self.db {
            url.push('/');
            url.push_str(&db.to_string());
        }
        url
    }

    /// The URL of a sentinel at `host:port`: same TLS setting, the given credentials, no db.
    pub(crate) fn sentinel_at(&self, host_port: &str, userinfo: Option<&str>) -> String {
        NodeUrl { tls: self.tls, userinfo: userinfo.map(str::to_owned), db: None }.at(host_port)
    }
}

fn invalid(url: &str, why: &str) -> StoreError {
    StoreError::Backend {
        message: format!("invalid Redis URL {}: {why}", redacted(url)),
        source: None,
    }
}

/// The URL with any password replaced by `***` and without its query or fragment (which may
/// hold values that are not to be echoed), for error messages.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "<unparsable>".into() };
    let (userinfo, tail) = match rest.rsplit_once('@') {
        Some((userinfo, tail)) => (Some(userinfo), tail),
        None => (None, rest),
    };
    let hosts = tail.split(['?', '#']).next().unwrap_or_default();
    match userinfo {
        Some(userinfo) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{hosts}")
        }
        None => format!("{scheme}://{hosts}"),
    }
}

/// A query parameter name or fragment as shown in an error: at most 40 characters, control
/// characters escaped.
fn shown(part: &str) -> String {
    let mut out: String = part.chars().take(40).flat_map(char::escape_debug).collect();
    if part.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// Refuses what sesame does not read from a URL (`rest` is everything after `scheme://`): a
/// query or a fragment, which the client library would otherwise act on, and `/`, `?` or `#`
/// before the last `@` (an unencoded character in the credentials would move where the
/// client library sees the host end and the query or fragment begin). The error names the
/// parameters or the fragment; it never shows a parameter's value or anything before the `@`.
fn reject_url_options(url: &str, rest: &str) -> Result<(), StoreError> {
    let tail = match rest.rsplit_once('@') {
        Some((userinfo, tail)) => {
            if userinfo.contains(['/', '?', '#']) {
                return Err(invalid(
                    url,
                    "'/', '?' or '#' before the '@': percent-encode them in the user name or \
                     password (%2F, %3F, %23)",
                ));
            }
            tail
        }
        None => rest,
    };
    let Some(start) = tail.find(['?', '#']) else { return Ok(()) };
    let after = tail.get(start..).unwrap_or_default();
    let (query, fragment) = match after.strip_prefix('?') {
        Some(q) => match q.split_once('#') {
            Some((q, f)) => (Some(q), Some(f)),
            None => (Some(q), None),
        },
        None => (None, after.strip_prefix('#')),
    };
    let mut why = Vec::new();
    match query {
        Some("") => why.push("an empty query ('?') is not supported".to_string()),
        Some(q) => {
            let names: Vec<String> = q
                .split('&')
                .map(|pair| format!("`{}`", shown(pair.split('=').next().unwrap_or_default())))
                .collect();
            let noun = if names.len() == 1 { "parameter" } else { "parameters" };
            why.push(format!("query {noun} {} not supported", names.join(", ")));
        }
        None => {}
    }
    match fragment {
        Some("insecure") => why.push(
            "the fragment `#insecure` is not supported: TLS certificates are always verified \
             (trust a private CA with RedisStoreBuilder::ca_cert_pem)"
                .to_string(),
        ),
        Some("") => why.push("an empty fragment ('#') is not supported".to_string()),
        Some(f) => why.push(format!("the fragment `#{}` is not supported", shown(f))),
        None => {}
    }
    Err(invalid(
        url,
        &format!("{}; sesame takes no options in the URL, use the builder", why.join("; ")),
    ))
}

/// Parses `host:port,host:port` into a checked list.
fn hosts(url: &str, list: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for h in list.split(',') {
        let h = h.trim();
        if h.is_empty() {
            return Err(invalid(url, "empty host in the host list"));
        }
        let (host, port) = match h.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() => (host, port),
            _ => return Err(invalid(url, "every host needs an explicit :port")),
        };
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(invalid(url, "a port is not a number between 1 and 65535"));
        }
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if !bracketed && host.contains(':') {
            return Err(invalid(url, "write IPv6 addresses in brackets: [::1]:6379"));
        }
        out.push(h.to_string());
    }
    Ok(out)
}

impl Topology {
    /// Parses a store URL (see the module documentation).
    pub(crate) fn parse(url: &str) -> Result<Topology, StoreError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid(url, "expected scheme://..."));
        };
        let (tls, kind) = match scheme {
            "redis" => (false, "single"),
            "rediss" => (true, "single"),
            "redis+sentinel" => (false, "sentinel"),
            "rediss+sentinel" => (true, "sentinel"),
            "redis+cluster" => (false, "cluster"),
            "rediss+cluster" => (true, "cluster"),
            other => {
                return Err(invalid(
                    url,
                    &format!(
                        "unknown scheme {other:?}; use redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster"
                    ),
                ))
            }
        };
        reject_url_options(url, rest)?;
        if kind == "single" {
            return Ok(Topology::Single(url.to_string()));
        }
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, rest),
        };
        let (host_list, path) = match rest.split_once('/') {
            Some((h, p)) => (h, p),
            None => (rest, ""),
        };
        let seeds = hosts(url, host_list)?;
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        if kind == "cluster" {
            if parts.next().is_some() {
                return Err(invalid(url, "a cluster URL has no path (clusters have only db 0)"));
            }
            return Ok(Topology::Cluster { seeds, node: NodeUrl { tls, userinfo, db: None } });
        }
        let Some(master_name) = parts.next() else {
            return Err(invalid(url, "a sentinel URL ends with /<master-name>"));
        };
        let db = match parts.next() {
            Some(d) => Some(d.parse::<u32>().map_err(|_| invalid(url, "the db is not a number"))?),
            None => None,
        };
        if parts.next().is_some() {
            return Err(invalid(url, "expected /<master-name>[/<db>] after the hosts"));
        }
        Ok(Topology::Sentinel {
            sentinels: seeds,
            master_name: master_name.to_string(),
            node: NodeUrl { tls, userinfo, db },
        })
    }

    /// Whether the URL asks for TLS.
    pub(crate) fn tls(&self) -> bool {
        match self {
            Topology::Single(u) => u.starts_with("rediss://"),
            Topology::Sentinel { node, .. } | Topology::Cluster { node, .. } => node.tls,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn parses_each_topology() {
        assert_eq!(
            Topology::parse("redis://127.0.0.1:7000").unwrap(),
            Topology::Single("redis://127.0.0.1:7000".into())
        );
        let Topology::Sentinel { sentinels, master_name, node } =
            Topology::parse("rediss+sentinel://app:s%40cret@127.0.0.1:1,127.0.0.1:2/main/3")
                .unwrap()
        else {
            panic!("not sentinel")
        };
        assert_eq!(sentinels, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(master_name, "main");
        assert_eq!(node.at("10.0.0.1:6380"), "rediss://app:s%40cret@10.0.0.1:6380/3");
        assert_eq!(node.sentinel_at("127.0.0.1:1", None), "rediss://127.0.0.1:1");
        let Topology::Cluster { seeds, node } =
            Topology::parse("redis+cluster://:pw@[::1]:7000,127.0.0.1:7001").unwrap()
        else {
            panic!("not cluster")
        };
        assert_eq!(seeds, ["[::1]:7000", "127.0.0.1:7001"]);
        assert_eq!(node.at("127.0.0.1:7002"), "redis://:pw@127.0.0.1:7002");
    }

    #[test]
    fn rejects_bad_urls_without_leaking_passwords() {
        for bad in [
            "http://x:1",
            "redis+sentinel://127.0.0.1:1",
            "redis+sentinel://127.0.0.1/main",
            "redis+sentinel://127.0.0.1:0/main",
            "redis+sentinel://127.0.0.1:1,,127.0.0.1:2/main",
            "redis+cluster://127.0.0.1:1/0",
            "redis+cluster://::1:7000",
            "redis+cluster://u:hunter2@127.0.0.1:x",
            "redis+cluster://127.0.0.1:1?tls=1",
            "nothing",
        ] {
            let e = Topology::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid Redis URL"), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    fn refusal(url: &str) -> String {
        match Topology::parse(url) {
            Ok(t) => panic!("{url} was accepted as {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    // Every form README.md and docs/OPERATIONS.md show parses, and the URLs handed to the
    // client library for the data nodes are ones it accepts.
    #[test]
    fn documented_forms_parse() {
        use redis::IntoConnectionInfo as _;
        for url in [
            "redis://127.0.0.1:6379",
            "redis://host:6379",
            "redis://user:password@host:6379",
            "redis://:password@host:6379/2",
            "rediss://user:password@host:6380/0",
            "rediss://host:6380",
            "redis://app:p%40ss%20w%3Ard%2F%3F%23@[::1]:6379",
        ] {
            let Topology::Single(u) = Topology::parse(url).unwrap() else { panic!("{url}") };
            assert!(u.as_str().into_connection_info().is_ok(), "{url}");
        }
        for url in [
            "redis+sentinel://host:26379,host:26380/mymaster",
            "redis+sentinel://user:password@s1:26379,s2:26379,s3:26379/mymaster/1",
            "rediss+sentinel://:password@s1:26379,s2:26379/mymaster",
            "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/sessions",
        ] {
            let Topology::Sentinel { node, .. } = Topology::parse(url).unwrap() else {
                panic!("{url}")
            };
            assert!(node.at("10.0.0.9:6379").into_connection_info().is_ok(), "{url}");
        }
        for url in [
            "redis+cluster://host:7000,host:7001",
            "redis+cluster://user:password@n1:7000,n2:7000,n3:7000",
            "rediss+cluster://:password@n1:7000,n2:7000",
        ] {
            let Topology::Cluster { node, .. } = Topology::parse(url).unwrap() else {
                panic!("{url}")
            };
            assert!(node.at("10.0.0.9:7000").into_connection_info().is_ok(), "{url}");
        }
    }

    // Options the client library would read from a URL are refused, naming the offending
    // part: `#insecure` (which turns certificate verification off), any query parameter,
    // any fragment, on every topology.
    #[test]
    fn refuses_url_options() {
        let e = refusal("rediss://host:6380#insecure");
        assert!(e.contains("`#insecure` is not supported"), "{e}");
        assert!(e.contains("certificates are always verified"), "{e}");
        let e = refusal("rediss://127.0.0.1:6380/#insecure");
        assert!(e.contains("`#insecure`"), "{e}");
        let e = refusal("redis://host/?protocol=resp3&foo=bar");
        assert!(e.contains("query parameters `protocol`, `foo` not supported"), "{e}");
        assert!(!e.contains("resp3") && !e.contains("bar"), "values are not echoed: {e}");
        let e = refusal("redis://host:6379?protocol=3");
        assert!(e.contains("query parameter `protocol` not supported"), "{e}");
        let e = refusal("redis://host:6379/0?db=1#x");
        assert!(e.contains("`db`") && e.contains("fragment `#x`"), "{e}");
        assert!(refusal("redis://host:6379?").contains("empty query"));
        assert!(refusal("redis://host:6379#").contains("empty fragment"));
        for url in [
            "rediss+sentinel://h:26379,h:26380/main#insecure",
            "redis+sentinel://h:26379/main/0?protocol=resp3",
            "rediss+cluster://h:7000,h:7001#insecure",
            "redis+cluster://h:7000?foo=bar",
            "rediss+cluster://h:7000/?tls=insecure",
        ] {
            let e = refusal(url);
            assert!(e.contains("not supported") && e.contains("use the builder"), "{url}: {e}");
        }
    }

    // Credentials with an unencoded '/', '?' or '#' are refused without echoing them, and no
    // refusal shows a password or a query value.
    #[test]
    fn refusals_never_show_passwords() {
        for url in [
            "rediss://app:hunter2#insecure@host:6380",
            "rediss://:hunter2?x@host:6380",
            "redis+sentinel://app:hunter2/x@h:26379/main",
            "redis+cluster://:hunter2#@h:7000",
            "rediss://app:hunter2@host:6380#insecure",
            "rediss://app:hunter2@host:6380/?password=hunter2",
            "valkeys://app:hunter2@host:6380/?password=hunter2",
            "redis+unix:///tmp/redis.sock?pass=hunter2",
        ] {
            let e = refusal(url);
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
        assert!(refusal("rediss://:a#b@host:1").contains("percent-encode"));
        assert_eq!(redacted("rediss://u:pw@h:1/?protocol=3#insecure"), "rediss://u:***@h:1/");
    }

    // Connecting with such a URL fails at once with the same message, before any connection
    // is attempted.
    #[tokio::test]
    async fn connect_refuses_insecure_tls() {
        let e = crate::RedisStore::connect("rediss://127.0.0.1:1#insecure").await.unwrap_err();
        assert!(e.to_string().contains("`#insecure` is not supported"), "{e}");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        /// URL-ish text: a scheme, maybe credentials (the password marked with `Zq`, which
        /// nothing else holds), hosts, a path, and any of `?`, `#`, `@`, `/`, `%` anywhere.
        fn url_text() -> impl Strategy<Value = (String, Option<String>)> {
            let scheme = prop_oneof![
                Just("redis"),
                Just("rediss"),
                Just("redis+sentinel"),
                Just("rediss+sentinel"),
                Just("redis+cluster"),
                Just("rediss+cluster"),
            ];
            let password = proptest::option::of("Zq[a-y0-9?#/@%:&=]{0,10}");
            let user = "[a-y0-9]{0,6}";
            let tail = "[a-y0-9.:,/?#&=@%\\\\\\[\\]]{0,40}";
            (scheme, user, password, tail).prop_map(|(scheme, user, password, tail)| {
                let creds = match &password {
                    Some(p) => format!("{user}:{p}@"),
                    None => String::new(),
                };
                (format!("{scheme}://{creds}{tail}"), password)
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

            // Whatever is accepted carries no query and no fragment as the client library
            // reads the URL; whatever is refused shows no password.
            #[test]
            fn accepted_urls_carry_no_options((url, password) in url_text()) {
                match Topology::parse(&url) {
                    Ok(Topology::Single(u)) => {
                        if let Some(parsed) = redis::parse_redis_url(&u) {
                            prop_assert_eq!(parsed.query(), None, "{}", url);
                            prop_assert_eq!(parsed.fragment(), None, "{}", url);
                        }
                    }
                    Ok(Topology::Sentinel { node, .. } | Topology::Cluster { node, .. }) => {
                        let u = node.at("127.0.0.1:6379");
                        if let Some(parsed) = redis::parse_redis_url(&u) {
                            prop_assert_eq!(parsed.query(), None, "{}", url);
                            prop_assert_eq!(parsed.fragment(), None, "{}", url);
                            prop_assert_eq!(parsed.host_str(), Some("127.0.0.1"), "{}", url);
                        }
                    }
                    Err(e) => {
                        if password.is_some() {
                            prop_assert!(!e.to_string().contains("Zq"), "{}: {}", url, e);
                        }
                    }
                }
            }
        }
    }
}
