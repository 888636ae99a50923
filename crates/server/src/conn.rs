//! Accepting connections, with the same limits on every listener (HTTP,
//! HTTPS and the admin mutual-TLS one):
//!
//! - a deadline for each request's header (hyper's header-read timeout,
//!   which in hyper 1.x also runs while a keep-alive connection waits for
//!   its next request, so it is the idle timeout too);
//! - a deadline for the TLS handshake and one for each request (a body
//!   that trickles in gets 408);
//! - at most `max_connections` open at once. At the limit, the connection
//!   idle longest (no request in progress: a header still arriving, a
//!   keep-alive connection waiting) is closed to make room for the new one;
//!   when every connection has a request in progress, the new one is closed.
//!   So slow or idle connections, however many, cannot take the descriptors
//!   from clients that send requests (slowloris), and OCSP keeps answering.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use crate::Problem;
use crate::tls::ClientCert;

/// The limits of a listener (from `[server]` in hallmark.toml).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read: Duration,
    pub request: Duration,
    pub tls_handshake: Duration,
    pub max_connections: usize,
}

/// Largest request head hyper buffers (the default is about 400 KB; a
/// request line and headers of Hallmark's clients fit in a few hundred
/// bytes, an RFC 5019 GET in about 200).
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// How long a shut-down listener lets requests in progress finish.
const DRAIN: Duration = Duration::from_secs(10);

struct Conn {
    /// When it last became idle (milliseconds since the listener started).
    idle_since: AtomicU64,
    /// Requests in progress.
    in_flight: AtomicUsize,
    /// Told when the connection is closed to make room.
    close: Notify,
    /// Tells when its task has ended and its descriptor is closed.
    gone: Notify,
}

/// The open connections of one listener.
pub struct Tracker {
    start: Instant,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    limits: Limits,
    /// Connections closed to make room, and new ones closed at once.
    pub evicted: AtomicU64,
    pub refused: AtomicU64,
}

impl Tracker {
    fn new(limits: Limits) -> Self {
        Self {
            start: Instant::now(),
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            limits,
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.conns.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Admits a new connection, closing the one idle longest if the
    /// listener is full (returned third, to wait for); None if every
    /// connection has a request in progress.
    fn admit(&self) -> Option<(u64, Arc<Conn>, Option<Arc<Conn>>)> {
        let mut m = self.conns.lock().ok()?;
        let mut evicted = None;
        if m.len() >= self.limits.max_connections {
            let victim = m
                .iter()
                .filter(|(_, c)| c.in_flight.load(Ordering::SeqCst) == 0)
                .min_by_key(|(_, c)| c.idle_since.load(Ordering::SeqCst))
                .map(|(id, _)| *id);
            match victim.and_then(|id| m.remove(&id)) {
                Some(c) => {
                    c.close.notify_one();
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                    evicted = Some(c);
                }
                None => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let c = Arc::new(Conn {
            idle_since: AtomicU64::new(self.now_ms()),
            in_flight: AtomicUsize::new(0),
            close: Notify::new(),
            gone: Notify::new(),
        });
        m.insert(id, c.clone());
        Some((id, c, evicted))
    }

    fn release(&self, id: u64) {
        if let Ok(mut m) = self.conns.lock() {
            m.remove(&id);
        }
    }
}

/// Removes a connection from its tracker when its task ends, however,
/// and tells whoever waits for its descriptor to be closed.
struct Admitted(Arc<Tracker>, u64, Arc<Conn>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.release(self.1);
        self.2.gone.notify_one();
    }
}

/// A request in progress on a connection, until its response is made.
struct InFlight(Arc<Conn>, Arc<Tracker>);

impl InFlight {
    fn begin(conn: &Arc<Conn>, tracker: &Arc<Tracker>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(conn.clone(), tracker.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.idle_since.store(self.1.now_ms(), Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown` turns
/// true, then lets requests in progress finish (at most 10 s).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) -> Arc<Tracker> {
    let tracker = Arc::new(Tracker::new(limits));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, most likely: wait, not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let Some((id, conn, evicted)) = tracker.admit() else {
            drop(tcp);
            continue;
        };
        if let Some(v) = evicted {
            // Its descriptor closed before this one is served: the process
            // holds no more than the limit (and the one just accepted).
            let _ = tokio::time::timeout(Duration::from_millis(200), v.gone.notified()).await;
        }
        let guard = Admitted(tracker.clone(), id, conn.clone());
        let (app, acceptor, tracker, shutdown) = (
            app.clone(),
            acceptor.clone(),
            tracker.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let _guard = guard;
            match acceptor {
                None => serve_conn(tcp, peer, None, app, conn, tracker, shutdown).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.tls_handshake, acceptor.accept(tcp));
                    let tls = tokio::select! {
                        r = handshake => match r {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        },
                        _ = conn.close.notified() => return,
                    };
                    let cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| ClientCert(Arc::new(c.to_vec())));
                    serve_conn(tls, peer, cert, app, conn, tracker, shutdown).await
                }
            }
        });
    }
    let deadline = Instant::now() + DRAIN;
    while tracker.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracker
}

async fn serve_conn<I>(
    io: I,
    peer: SocketAddr,
    cert: Option<ClientCert>,
    app: Router,
    conn: Arc<Conn>,
    tracker: Arc<Tracker>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = tracker.limits;
    let svc = {
        let (conn, tracker) = (conn.clone(), tracker.clone());
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            // Who connected comes from the socket and the TLS layer, never
            // from a header.
            req.extensions_mut().insert(ConnectInfo(peer));
            if let Some(c) = &cert {
                req.extensions_mut().insert(c.clone());
            }
            let busy = InFlight::begin(&conn, &tracker);
            let app = app.clone();
            async move {
                let res = match tokio::time::timeout(limits.request, app.oneshot(req)).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(never)) => match never {},
                    Err(_) => Problem::new(
                        axum::http::StatusCode::REQUEST_TIMEOUT,
                        "request-timeout",
                        "Request timeout",
                        format!(
                            "the request was not received and answered within {} s",
                            limits.request.as_secs()
                        ),
                    )
                    .into_response(),
                };
                drop(busy);
                Ok::<_, Infallible>(res)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_buf_size(MAX_HEAD_BYTES);
    let c = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(c);
    tokio::select! {
        _ = c.as_mut() => {}
        // Closed to make room: dropped at once.
        _ = conn.close.notified() => {}
        _ = shutdown.changed() => {
            c.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, c).await;
        }
    }
}

/// The soft limit on this process's open files (Linux), to check
/// `max_connections` against at start.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> Limits {
        Limits {
            header_read: Duration::from_secs(1),
            request: Duration::from_secs(1),
            tls_handshake: Duration::from_secs(1),
            max_connections: max,
        }
    }

    /// At the limit the connection idle longest makes room; connections
    /// with a request in progress are never closed for a new one, and when
    /// all are busy the new one is refused.
    #[test]
    fn the_idle_longest_makes_room() {
        let t = Arc::new(Tracker::new(limits(3)));
        let pause = || std::thread::sleep(Duration::from_millis(5));
        let (a, ca, _) = t.admit().unwrap();
        pause();
        let (_b, cb, none) = t.admit().unwrap();
        assert!(none.is_none());
        pause();
        let (_c, cc, _) = t.admit().unwrap();
        // a is idle longest, but busy.
        let busy_a = InFlight::begin(&ca, &t);
        let (_d, cd, victim) = t.admit().unwrap();
        assert!(victim.is_some_and(|v| Arc::ptr_eq(&v, &cb)), "b made room");
        assert_eq!(t.open(), 3);
        assert_eq!(t.evicted.load(Ordering::Relaxed), 1);
        // b (idle since before c) went: the map no longer has it.
        let ids: Vec<u64> = t.conns.lock().unwrap().keys().copied().collect();
        assert!(ids.contains(&a) && !ids.contains(&1), "{ids:?}");
        let _busy = [InFlight::begin(&cc, &t), InFlight::begin(&cd, &t)];
        assert!(t.admit().is_none(), "every connection is busy");
        assert_eq!(t.refused.load(Ordering::Relaxed), 1);
        drop(busy_a);
        assert!(t.admit().is_some(), "a is idle again");
        drop(cb);
    }
}
