//! HTTP/1 on a TCP listener: what `axum::serve` does, plus the limits a server on the
//! internet needs and `axum::serve` does not set. hyper does the protocol; this is only the
//! accept loop around it.
//! - A request's head must arrive within [`Limits::header_read`] (slowloris: a client that
//!   sends nothing, or a header every few seconds, is closed), also on an idle keep-alive
//!   connection waiting for its next request.
//! - At most [`Limits::max_connections`] connections are open; the next is accepted when one
//!   closes (the kernel's backlog holds the rest).
//! - An accept that fails (file descriptors exhausted) is retried after a pause, so the
//!   server degrades and recovers rather than spinning or stopping.
//! - Each request carries its connection's peer address (`ConnectInfo<SocketAddr>`), for
//!   per-client limits.
//! - Shutdown stops accepting, lets requests in flight finish, and returns when every
//!   connection has closed.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { header_read: Duration::from_secs(10), max_connections: 10_000 }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Closed (by dropping the sender) to ask every connection to finish.
    let (closing, close_rx) = watch::channel(());
    // Every connection holds a sender; when all are dropped, all connections are closed.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut failures = 0u32;
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let io = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((io, peer)) => {
                    failures = 0;
                    (io, peer)
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::error!(error = %e, failures, "cannot accept connections (out of file descriptors?); retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
            _ = &mut shutdown => break,
        };
        let (io, peer) = io;
        let _ = io.set_nodelay(true);
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let (mut close_rx, open) = (close_rx.clone(), open.clone());
        tokio::spawn(async move {
            let (_permit, _open) = (permit, open);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read);
            let conn = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = close_rx.changed() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    drop(closing);
    drop(open);
    let _ = all_closed.recv().await;
    Ok(())
}
