//! Replicas over one PostgreSQL database hear each other's commits: every
//! commit of a build or a report sends `NOTIFY` with the job's name
//! (`db/postgres.rs`), and each server `LISTEN`s on one connection of its
//! own. A notification bumps the job in the [`Notifier`], which wakes its
//! long-polls and makes its cached `latest` stale (`cache.rs` keys on the
//! job's generation), so a commit anywhere is seen everywhere within a
//! round trip. A removed job arrives as `-NAME`.
//!
//! The connection is re-made when it drops; after a gap every job is
//! bumped, since notifications sent meanwhile are lost.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use uk_names::JobName;

use crate::cache::Caches;
use crate::db::postgres::CHANNEL;
use crate::longpoll::Notifier;
use crate::state::AppState;

#[derive(Clone)]
struct Targets {
    notify: Arc<Notifier>,
    caches: Arc<Caches>,
}

impl Targets {
    fn apply(&self, payload: &str) {
        if let Some(removed) = payload.strip_prefix('-') {
            self.caches.clear();
            if let Ok(job) = removed.parse::<JobName>() {
                self.notify.forget(&job);
            }
        } else if let Ok(job) = payload.parse::<JobName>() {
            // The job exists now (a replica may have just created it).
            self.caches.add_job(&job);
            self.notify.bump(&job);
        }
    }

    /// Notifications may have been missed: everything may have changed.
    fn resync(&self) {
        self.caches.clear();
        self.notify.bump_all();
    }
}

/// Starts listening; returns once the first `LISTEN` is in place (so a
/// commit made after start-up is never missed), then keeps the connection
/// up in the background until the server shuts down.
pub async fn listen(url: String, st: &AppState) -> anyhow::Result<()> {
    let targets = Targets {
        notify: st.notify.clone(),
        caches: st.caches.clone(),
    };
    let shutdown = st.shutdown.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut backoff = Duration::from_millis(100);
        loop {
            let connected = |t: &Targets| {
                t.resync();
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Ok(()));
                }
            };
            let result = session(&url, &targets, &shutdown, connected).await;
            if shutdown.is_cancelled() {
                return;
            }
            let err = match result {
                Ok(()) => anyhow::anyhow!("the connection closed"),
                Err(e) => e,
            };
            if let Some(tx) = ready.take() {
                let _ = tx.send(Err(err));
                return;
            }
            tracing::warn!(
                error = format!("{err:#}"),
                "listening for other replicas' commits; reconnecting"
            );
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
    ready_rx
        .await
        .context("the listener stopped")?
        .context("listening for other replicas' commits (PostgreSQL LISTEN)")
}

/// One connection: `LISTEN`, then apply notifications until it fails or
/// the server shuts down.
async fn session(
    url: &str,
    targets: &Targets,
    shutdown: &CancellationToken,
    mut connected: impl FnMut(&Targets),
) -> anyhow::Result<()> {
    let config: tokio_postgres::Config = url.parse()?;
    let (client, mut conn) = config.connect(NoTls).await.context("connecting")?;
    let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    let statement = format!("LISTEN {CHANNEL}");
    let listen = client.batch_execute(&statement);
    tokio::pin!(listen);
    let mut listening = false;
    loop {
        tokio::select! {
            r = &mut listen, if !listening => {
                r.context("LISTEN")?;
                listening = true;
                connected(targets);
            }
            m = messages.next() => match m {
                Some(Ok(AsyncMessage::Notification(n))) => targets.apply(n.payload()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}
