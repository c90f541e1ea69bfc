//! Sessions on Redis Cluster: the URL lists some nodes (any reachable ones serve as seeds);
//! every operation of a session, and of a user's index, stays inside one hash slot. Serves
//! `GET /visits`.
//!
//! Run it against your cluster:
//!
//! ```sh
//! export SESSION_SECRET="$(openssl rand -base64 48)"
//! export REDIS_URL='redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002'
//! cargo run -p sesame-examples --bin cluster
//! curl -c jar -b jar http://127.0.0.1:3000/visits
//! ```
//!
//! URL forms: `redis+cluster://[user:password@]host:port,host:port,...` (database 0 only),
//! `rediss+cluster://...` for TLS (add the CA with `ca_cert_pem` when it is not a system
//! root). `DURABILITY_REPLICAS` (default 1) is how many replicas must confirm each write: the
//! number of replicas per master; `DURABILITY_TIMEOUT_MS` (default 500) is how long a write
//! waits for them before the request gets a 503.

use std::time::Duration;

use sesame_examples::{
    durability_replicas, durability_timeout, init_logs, required_redis_url, response_timeout_above,
    serve_visits, BoxError,
};
use sesame_redis::RedisStore;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    init_logs();
    let url = required_redis_url("redis+cluster://127.0.0.1:7000,127.0.0.1:7001")?;
    let wait = durability_timeout()?;
    let store = RedisStore::builder(url)
        // Fail a request with a 503 rather than keep it waiting while a master is down; the
        // users whose slots live on the other masters carry on meanwhile.
        .connect_timeout(Duration::from_secs(1))
        // WAIT can block for its whole timeout: keep the response timeout above it.
        .response_timeout(response_timeout_above(wait))
        // Acknowledge a write only once the master's replicas have it, so that a failover
        // cannot lose it; when they do not confirm within `wait` the request gets a 503.
        .durability(durability_replicas()?, wait)
        .connect()
        .await?;
    tracing::info!("connected to the cluster");
    serve_visits(store).await
}
