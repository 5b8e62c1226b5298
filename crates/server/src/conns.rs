//! Serving HTTP connections so that slow or greedy clients cannot starve the dashboard.
//!
//! `axum::serve` takes every connection and waits for its headers forever (hyper's header
//! timeout needs a timer, which it does not set), so a slow-loris client — or a thousand —
//! holds descriptors and tasks until the process runs out of them. Here each connection is
//! served by hyper's HTTP/1 server with a timer, and the accept loop counts connections:
//!
//! - a request's headers must arrive within [`HEADER_TIMEOUT`] (also the idle limit of a
//!   kept-alive connection between requests), or the connection is closed;
//! - at most [`PER_SOURCE`] connections from one IP address (the loopback address exempt: it
//!   is this machine, the operator's own tools and reverse proxy) and [`TOTAL`] in all; a
//!   connection over either cap is closed at once, before a byte is read;
//! - a shutdown lets requests in flight finish (graceful), then ends.
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

/// Time for a request's headers to arrive (and for a kept-alive connection to send its next
/// request).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections one (non-loopback) address may hold open.
pub const PER_SOURCE: usize = 64;
/// Connections open at once, from everyone.
pub const TOTAL: usize = 4096;

/// Counters of the connection layer (for tests and the benchmark).
#[derive(Debug, Default)]
pub struct ConnStats {
    pub accepted: AtomicU64,
    /// Closed at once: over the per-source or total cap.
    pub refused: AtomicU64,
}

struct Open {
    by_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// A connection's place in the counts; given back when the connection ends.
struct Slot {
    ip: IpAddr,
    open: Arc<Mutex<Open>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut o) = self.open.lock() {
            o.total = o.total.saturating_sub(1);
            if let Some(n) = o.by_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    o.by_ip.remove(&self.ip);
                }
            }
        }
    }
}

fn admit(open: &Arc<Mutex<Open>>, ip: IpAddr) -> Option<Slot> {
    let mut o = open.lock().ok()?;
    let mine = o.by_ip.get(&ip).copied().unwrap_or(0);
    if o.total >= TOTAL || (!is_this_machine(ip) && mine >= PER_SOURCE) {
        return None;
    }
    o.total += 1;
    *o.by_ip.entry(ip).or_default() += 1;
    Some(Slot {
        ip,
        open: open.clone(),
    })
}

/// 127.0.0.1 and ::1 only: this machine (tests use other 127/8 addresses as distinct hosts).
fn is_this_machine(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.octets() == [127, 0, 0, 1],
        IpAddr::V6(a) => a.is_loopback(),
    }
}

/// Serves `router` on every connection `listener` accepts until `shutdown` completes, then
/// lets the requests in flight finish.
pub async fn serve<L>(
    mut listener: L,
    router: axum::Router,
    stats: Arc<ConnStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let open = Arc::new(Mutex::new(Open {
        by_ip: HashMap::new(),
        total: 0,
    }));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (io, peer) = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => break,
            // Reap finished connection tasks as they end.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let Some(slot) = admit(&open, peer.ip()) else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "HTTP connection over the cap: closed");
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        // The client's address reaches handlers as `ConnectInfo` (the sign-in
        // rate limit is per address).
        let svc = TowerToHyperService::new(tower::util::MapRequest::new(
            router.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let _slot = slot;
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true);
            let conn = b.serve_connection(TokioIo::new(io), svc).with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::trace!(%peer, error = %e, "HTTP connection ended");
                    }
                    return;
                }
                _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    let _ = stop_tx.send(true);
    // Requests in flight finish; streams (server-sent events) end at their next write.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    Ok(())
}
