//! The HTTP server loop: a connection cap, header and request timeouts, and a graceful stop
//! (stop accepting, let in-flight requests finish, give up on stragglers after a bound).
//!
//! Why not `axum::serve`: it has no header-read timeout and no connection cap, so 1,000 slow
//! clients could hold the node's file descriptors forever. The loop is hyper-util's own
//! connection builder with its graceful-shutdown watcher.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How much a client may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; beyond it new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, also between requests on a kept-alive
    /// connection (an idle connection is closed after it); `baton serve` gives a request's body
    /// the same time.
    pub header_timeout: Duration,
    /// Time in-flight requests get to finish once a shutdown began.
    pub drain: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
///
/// # Errors
/// Never for a client's fault: accept errors (e.g. out of file descriptors) are logged and
/// retried.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Each request carries its client's address (the guard serves an open server's
        // loopback clients only).
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(limits.drain) => {
            tracing::warn!(seconds = limits.drain.as_secs_f64(), "connections still open after the drain period; stopping anyway");
        }
    }
    Ok(())
}
