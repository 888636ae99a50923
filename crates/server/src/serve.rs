//! The serve loop: binds the listeners (HTTP; HTTPS and the admin API's
//! mutual-TLS listener when asked for), publishes the CRLs, starts the CA
//! service's background maintenance, and serves until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use hallmark_authority::{Authority, AuthorityError, maintenance, system_now};
use tokio::net::TcpListener;

/// Where to listen; `None` leaves a TLS listener off.
#[derive(Clone, Debug)]
pub struct Listen {
    pub http: String,
    pub https: Option<String>,
    pub admin_https: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Refused before anything listens: the configuration does not allow
    /// what was asked.
    #[error("{0}")]
    Refused(String),
    /// An address that does not parse, or a port that cannot be bound.
    #[error("{0}")]
    Listen(String),
    #[error("{0}")]
    Tls(String),
    #[error(transparent)]
    Authority(#[from] AuthorityError),
}

async fn bind(addr: &str, what: &str) -> Result<TcpListener, ServeError> {
    let a: SocketAddr = addr
        .parse()
        .map_err(|e| ServeError::Listen(format!("{what}listen address {addr:?}: {e}")))?;
    TcpListener::bind(a)
        .await
        .map_err(|e| ServeError::Listen(format!("cannot listen on {a}: {e}")))
}

/// Serves `auth` on `listen`; `announce` hears a line for each listener
/// once it listens ("listening on http://…"). Returns after a shutdown
/// signal, with the audit chain checkpointed.
pub async fn serve(
    auth: Arc<Authority>,
    listen: Listen,
    announce: impl Fn(&str),
) -> Result<(), ServeError> {
    // Refused before anything listens.
    if listen.admin_https.is_some() && auth.server_config().admin_client_certs.is_empty() {
        return Err(ServeError::Refused(
            "an admin HTTPS listener needs an allowed client certificate first: `hallmark admin-cert add --cert FILE`"
                .into(),
        ));
    }
    let listener = bind(&listen.http, "").await?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Listen(e.to_string()))?;
    // CRLs exist from the first request on.
    auth.crls()
        .generate_crls(None, None, system_now())
        .await
        .map_err(AuthorityError::from)?;
    maintenance::spawn(auth.clone());
    tracing::info!(%local, "serving");
    announce(&format!("listening on http://{local}"));
    let ra = hallmark_ra::Ra::open(auth.clone())
        .await
        .map_err(|e| ServeError::Refused(format!("registration authority: {e}")))?;
    tokio::spawn(notices(ra.clone()));
    let app = crate::router(auth.clone(), ra.clone(), crate::Listener::Public);
    let limits = limits(auth.server_config());
    let listeners =
        1 + usize::from(listen.https.is_some()) + usize::from(listen.admin_https.is_some());
    if let Some(files) = crate::conn::open_files_limit()
        && (limits.max_connections * listeners + 256) as u64 > files
    {
        tracing::warn!(
            files,
            max_connections = limits.max_connections,
            listeners,
            "the open-files limit is below what server.max_connections allows on every listener: \
             raise it (ulimit -n, LimitNOFILE) or lower server.max_connections"
        );
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    if listen.https.is_some() || listen.admin_https.is_some() {
        let (chain, signer) = auth.tls_identity(system_now()).await?;
        let identity = crate::tls::Identity::new(chain, signer).map_err(ServeError::Tls)?;
        tokio::spawn(renew_tls(auth.clone(), identity.clone()));
        if let Some(addr) = &listen.https {
            let cfg = crate::tls::server_config(identity.clone(), None).map_err(ServeError::Tls)?;
            let l = bind(addr, "HTTPS ").await?;
            let at = l
                .local_addr()
                .map_err(|e| ServeError::Listen(e.to_string()))?;
            announce(&format!("listening on https://{at}"));
            tasks.push(tokio::spawn(crate::conn::serve(
                l,
                app.clone(),
                Some(Arc::new(cfg)),
                limits,
                stopped.clone(),
            )));
        }
        if let Some(addr) = &listen.admin_https {
            // Clients must present a certificate chaining to one of this
            // installation's CAs that is not revoked; the API then checks
            // the fingerprint, expiry and revocation at each request.
            let anchors: Vec<Vec<u8>> = auth
                .ca_records()
                .await?
                .into_iter()
                .filter(|i| !auth.is_revoked_ca(&i.id))
                .map(|i| i.cert)
                .collect();
            let cfg =
                crate::tls::server_config(identity, Some(&anchors)).map_err(ServeError::Tls)?;
            let l = bind(addr, "admin HTTPS ").await?;
            let at = l
                .local_addr()
                .map_err(|e| ServeError::Listen(e.to_string()))?;
            announce(&format!(
                "listening on https://{at} (admin API, mutual TLS)"
            ));
            let admin = crate::router(auth.clone(), ra, crate::Listener::AdminTls);
            tasks.push(tokio::spawn(crate::conn::serve(
                l,
                admin,
                Some(Arc::new(cfg)),
                limits,
                stopped.clone(),
            )));
        }
    }
    tasks.push(tokio::spawn(crate::conn::serve(
        listener, app, None, limits, stopped,
    )));
    shutdown_signal().await;
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    auth.checkpoint(system_now()).await?;
    Ok(())
}

/// The listeners' limits from the configuration.
fn limits(cfg: &hallmark_authority::ServerConfig) -> crate::conn::Limits {
    crate::conn::Limits {
        header_read: std::time::Duration::from_secs(cfg.header_read_timeout_secs),
        request: std::time::Duration::from_secs(cfg.request_timeout_secs),
        tls_handshake: std::time::Duration::from_secs(cfg.tls_handshake_timeout_secs),
        max_connections: cfg.max_connections,
    }
}

/// Renews the server's TLS certificate when a third of its validity is
/// left (or takes the one another process renewed) and swaps it into the
/// listeners; on failure it tries again in a minute, while the current one
/// is still valid.
async fn renew_tls(auth: Arc<Authority>, identity: Arc<crate::tls::Identity>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    let mut retry_at = 0;
    loop {
        tick.tick().await;
        let now = system_now();
        if now < identity.renew_at() || now < retry_at {
            continue;
        }
        match auth.tls_identity(now).await {
            Ok((chain, signer)) => {
                let changed = chain.first().is_some_and(|c| *c != identity.leaf());
                match identity.replace(chain, signer) {
                    Ok(()) if changed => tracing::info!("renewed the server's TLS certificate"),
                    Ok(()) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "cannot use the renewed TLS certificate");
                        retry_at = now + 60;
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "renewing the server's TLS certificate failed; retrying in a minute");
                retry_at = now + 60;
            }
        }
    }
}

/// How often applications waiting for a registry that was down are asked
/// about again.
const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// Queues the reminders that are due every `ra.remind_every_minutes`
/// (first at start), deletes incomplete applications past their retention
/// daily, asks the registry again about applications it could not answer
/// for (every 20 s), and delivers the outbox every two seconds. Several
/// processes on one database share the work: each notice is queued once
/// and claimed by one of them.
async fn notices(ra: Arc<hallmark_ra::Ra>) {
    let every = std::time::Duration::from_secs(
        u64::from(ra.authority().ra_config().remind_every_minutes) * 60,
    );
    let mut next_remind = tokio::time::Instant::now();
    let mut next_purge = tokio::time::Instant::now();
    let mut next_recheck = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        tick.tick().await;
        if tokio::time::Instant::now() >= next_remind {
            match ra.remind(system_now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(reminders = n, "reminders queued"),
                Err(e) => {
                    tracing::error!(error = %e, "queueing reminders failed; trying again later")
                }
            }
            next_remind = tokio::time::Instant::now() + every;
        }
        if tokio::time::Instant::now() >= next_purge {
            match ra.purge(system_now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    applications = n,
                    "incomplete applications past retention deleted"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "purging incomplete applications failed; trying again later")
                }
            }
            next_purge = tokio::time::Instant::now() + std::time::Duration::from_secs(86_400);
        }
        if tokio::time::Instant::now() >= next_recheck {
            // Applications made while the registry was down.
            match ra.recheck_registry("system", system_now()).await {
                Ok(r) if r != hallmark_ra::registry::Rechecked::default() => tracing::info!(
                    confirmed = r.confirmed,
                    mismatch = r.mismatch,
                    unknown = r.unknown,
                    "waiting applications checked with the registry"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the registry still cannot be asked; applications keep waiting")
                }
            }
            next_recheck = tokio::time::Instant::now() + RECHECK_EVERY;
        }
        match ra.deliver(system_now()).await {
            Ok(d) if d.sent > 0 => tracing::info!(sent = d.sent, "notices delivered"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "delivering notices failed; trying again"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
