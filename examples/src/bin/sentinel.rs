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
//! replicas must confirm each write: the number of replicas of the master.

use std::time::Duration;

use sesame_examples::{durability_replicas, init_logs, required_redis_url, serve_visits, BoxError};
use sesame_redis::RedisStore;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    init_logs();
    let url = required_redis_url("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster")?;
    let store = RedisStore::builder(url)
        // Give up on a connection attempt, or a reply, quickly: the request gets a 503 and
        // the client can retry while the sentinels promote a replica.
        .connect_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(1))
        // Acknowledge a write only once the replicas have it, so that a failover cannot
        // lose it; when they do not confirm within 500 ms the request gets a 503. WAIT can
        // block for its whole timeout: keep the response timeout above it.
        .durability(durability_replicas()?, Duration::from_millis(500))
        .connect()
        .await?;
    tracing::info!(master = ?store.current_master(), "connected through the sentinels");
    serve_visits(store).await
}
