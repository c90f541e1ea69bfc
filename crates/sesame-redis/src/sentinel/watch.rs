//! The background tasks of a Sentinel-followed store: one `+switch-master` listener per
//! sentinel, and a periodic check that does not depend on those announcements arriving (a
//! partition can swallow them).

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::RedisResult;
use tokio::sync::watch::Receiver;

use super::lookup::is_master;
use super::{master_lost, Inner};

/// How often the master in use is checked: its `ROLE`, and the sentinels' answer.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(500);

/// Starts the listeners (unless turned off) and the periodic check.
pub(super) fn start(inner: &Arc<Inner>) {
    if inner.spec.announcements {
        for s in &inner.spec.sentinels {
            tokio::spawn(listen(Arc::downgrade(inner), s.clone(), inner.alive.clone()));
        }
    }
    tokio::spawn(poll(Arc::downgrade(inner), inner.alive.clone()));
}

/// Waits `d`, or returns `false` when the store was dropped meanwhile.
async fn pause(alive: &mut Receiver<()>, d: Duration) -> bool {
    tokio::select! {
        _ = alive.changed() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Checks the master every [`POLL_EVERY`] until the store is dropped.
async fn poll(inner: Weak<Inner>, mut alive: Receiver<()>) {
    while pause(&mut alive, POLL_EVERY).await {
        let Some(i) = inner.upgrade() else { return };
        tokio::select! {
            _ = alive.changed() => return,
            _ = i.check() => {}
        }
    }
}

impl Inner {
    /// One periodic check: forget a master that no longer says it is one, and move to the
    /// master the sentinels name when it differs from the one in use (once it answers `ROLE`
    /// with `master`). With no master known, look one up, so that the next request finds it.
    async fn check(&self) {
        let Some(current) = self.cached() else {
            let _ = self.master(None).await;
            return;
        };
        let mut conn = current.conn.clone();
        match is_master(&mut conn).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(master = %current.addr, "the Redis master in use is no longer a master (ROLE); no more writes go there");
                self.invalidate(Some(current.generation));
                return;
            }
            Err(e) => {
                if master_lost(&e) {
                    self.invalidate(Some(current.generation));
                }
                return;
            }
        }
        let Some(named) = self.ask_any().await else { return };
        if named == current.addr {
            return;
        }
        let Ok(conn) = self.confirm(&named).await else { return };
        let _one = self.resolving.lock().await;
        let still = self.cached().is_some_and(|c| c.generation == current.generation);
        if still {
            tracing::info!(from = %current.addr, to = %named, "the sentinels name another Redis master");
            self.install(named, conn);
        }
    }
}

/// Listens to one sentinel's `+switch-master` announcements until the store is dropped.
async fn listen(inner: Weak<Inner>, sentinel: String, mut alive: Receiver<()>) {
    loop {
        let (url, name, ca) = match inner.upgrade() {
            Some(i) => (
                i.spec.node.sentinel_at(&sentinel, i.spec.sentinel_userinfo.as_deref()),
                i.spec.master_name.clone(),
                i.spec.ca_pem.clone(),
            ),
            None => return,
        };
        let session = async {
            let client = crate::conn::client(&url, ca.as_deref())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe("+switch-master").await?;
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let payload: String = msg.get_payload().unwrap_or_default();
                // "<name> <old ip> <old port> <new ip> <new port>"
                if payload.split(' ').next() == Some(name.as_str()) {
                    match inner.upgrade() {
                        Some(i) => i.invalidate(None),
                        None => return Ok(()),
                    }
                }
            }
            RedisResult::Ok(())
        };
        tokio::select! {
            _ = alive.changed() => return,
            r = session => {
                if let Err(e) = r {
                    tracing::debug!(%sentinel, error = %e, "sentinel listener disconnected");
                }
            }
        }
        if !pause(&mut alive, Duration::from_secs(1)).await {
            return;
        }
    }
}
