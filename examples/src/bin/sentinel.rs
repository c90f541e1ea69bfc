//! Sessions on Redis Sentinel: the URL lists the sentinels and names the master they watch; the
//! store asks them where the master is and follows failovers by itself. Serves `GET /visits`.
//!
//! Run it against your sentinels:
//!
//! ```sh
//! export SESSION_SECRET="$(openssl rand -base64 48)"
//! export REDIS_URL='redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster'
//! cargo run -p sesame-examples --bin sentinel
//! curl -c jar -b jar http://127.0.0.1:3000/visits
//! ```
//!
//! URL forms: `redis+sentinel://[user:password@]host:port,host:port,.../<master-name>[/db]`,
//! `rediss+sentinel://...` for TLS (add the CA with `ca_cert_pem` when it is not a system
//! root). The credentials are the data nodes'; when the sentinels require their own, add
//! `sentinel_credentials(user, password)`. `DURABILITY_REPLICAS` (default 1) is how many
//! replicas must confirm each write: the number of replicas of the master;
//! `DURABILITY_TIMEOUT_MS` (default 500) is how long a write waits for them before the request
//! gets a 503.

use std::time::Duration;

use sesame_examples::{
    durability_replicas, durability_timeout, init_logs, required_redis_url, response_timeout_above,
    serve_visits, BoxError,
};
use sesame_redis::RedisStore;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    init_logs();
    let url = required_redis_url("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster")?;
    let wait = durability_timeout()?;
    let store = RedisStore::builder(url)
        // Give up on a connection attempt, or a reply, quickly: the request gets a 503 and
        // the client can retry while the sentinels promote a replica. WAIT can block for its
        // whole timeout: keep the response timeout above it.
        .connect_timeout(Duration::from_secs(1))
        .response_timeout(response_timeout_above(wait))
        // Acknowledge a write only once the replicas have it, so that a failover cannot
        // lose it; when they do not confirm within `wait` the request gets a 503.
        .durability(durability_replicas()?, wait)
        .connect()
        .await?;
    tracing::info!(master = ?store.current_master(), "connected through the sentinels");
    serve_visits(store).await
}
