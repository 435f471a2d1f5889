//! Accepting connections: hyper 1.x through hyper-util's auto (HTTP/1 + HTTP/2) builder, with
//! `TCP_NODELAY`, a cap on open connections (503 beyond it), header and idle timeouts (see
//! `connections`), and a graceful shutdown: stop accepting, let in-flight requests (streams
//! included) finish up to `server.shutdown_grace_ms`, cut the rest, then wait until every hold
//! of a cut request is settled or released before returning.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use llmgate_core::keys::Secret;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::api;
use crate::config::{Config, ConfigError};
use crate::connections::{
    Activity, ConnectionSlots, effective_limit, hold_until_sent, open_files_limit,
};
use crate::state::AppState;
use crate::telemetry::{CONNECTIONS_REFUSED, bind_metrics_listener, serve_metrics};

/// After the drain, how long to wait for the ledger writes of the requests that were cut. They
/// are single database transactions; a database that takes longer is unwell, and the holds it
/// did not get are reclaimed at their expiry.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// A server ready to run on a bound listener.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    listener: TcpListener,
    /// `server.metrics_listen`, when set: bound in [`Server::spawn`] or [`Server::run`].
    metrics_listener: Option<TcpListener>,
}

impl Server {
    /// Build the state from `config` (connecting the database) and serve on `listener`.
    pub async fn new(
        config: Config,
        master_key: &Secret,
        listener: TcpListener,
    ) -> Result<Self, ConfigError> {
        Ok(Self::with_state(
            AppState::new(config, master_key).await?,
            listener,
        ))
    }

    /// Serve prepared state (e.g. with extra backends attached) on `listener`.
    pub fn with_state(state: AppState, listener: TcpListener) -> Self {
        Self {
            state,
            listener,
            metrics_listener: None,
        }
    }

    /// Serve `GET /metrics` on this listener (instead of binding `server.metrics_listen`).
    pub fn with_metrics_listener(mut self, listener: TcpListener) -> Self {
        self.metrics_listener = Some(listener);
        self
    }

    /// Bind `server.metrics_listen` unless a metrics listener is there already.
    fn bind_metrics(&mut self) -> io::Result<()> {
        if self.metrics_listener.is_none()
            && let Some(addr) = &self.state.config.server.metrics_listen
        {
            self.metrics_listener = Some(bind_metrics_listener(addr).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot listen on {addr} (server.metrics_listen): {error}"),
                )
            })?);
        }
        Ok(())
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` completes, then stop accepting, drain open connections for up to
    /// `server.shutdown_grace_ms`, cut what is left, and wait (up to 10 s) until the ledger
    /// work of every request is written: no hold is left open by a clean shutdown.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
        self.bind_metrics()?;
        let Server {
            state,
            listener,
            metrics_listener,
        } = self;
        let metrics =
            metrics_listener.map(|l| tokio::spawn(serve_metrics(l, state.gateway.clone())));
        let settings = &state.config.server;
        let grace = Duration::from_millis(settings.shutdown_grace_ms);
        let header_timeout = Duration::from_millis(settings.header_read_timeout_ms);
        let idle_timeout = Duration::from_millis(settings.idle_timeout_ms);
        let limit = effective_limit(settings.max_connections, open_files_limit());
        if limit < settings.max_connections {
            tracing::warn!(
                configured = settings.max_connections,
                limit,
                "server.max_connections is more than the open-file limit allows; raise \
                 `ulimit -n` to use it"
            );
        }
        let slots = ConnectionSlots::new(limit);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper's own header timer is off: the idle watch below covers every wait for a
        // request head, the first (`header_read_timeout_ms`) and the later ones
        // (`idle_timeout_ms`), on HTTP/1 and HTTP/2 alike.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None);
        builder.http2().timer(TokioTimer::new());
        let graceful = GracefulShutdown::new();
        // Every connection's task, so that the ones still open after the grace period can be
        // cut while the runtime still runs the settles their dropped streams start.
        let mut connections = JoinSet::new();
        let mut shutdown = pin!(shutdown);

        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            tracing::warn!(%error, "accepting a connection failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let Some(slot) = slots.try_open() else {
                        // Counted, not logged one by one: a flood would flood the log too.
                        tracing::debug!(%peer, limit, "at the connection limit; refusing a connection");
                        metrics::counter!(CONNECTIONS_REFUSED).increment(1);
                        slots.shed(stream);
                        continue;
                    };
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, %error, "setting TCP_NODELAY failed");
                    }
                    let activity = Activity::new();
                    let service = service_fn({
                        let (state, activity) = (state.clone(), activity.clone());
                        move |request| {
                            let state = state.clone();
                            let in_flight = activity.begin();
                            async move {
                                let response = api::handle(state, request).await;
                                Ok::<_, Infallible>(hold_until_sent(response, in_flight))
                            }
                        }
                    });
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    let connection = graceful.watch(connection);
                    connections.spawn(async move {
                        let _slot = slot;
                        tokio::select! {
                            result = connection => if let Err(error) = result {
                                tracing::debug!(%peer, %error, "connection ended with an error");
                            },
                            () = activity.idle_too_long(header_timeout, idle_timeout) => {
                                tracing::debug!(%peer, "closing a connection without requests");
                            }
                        }
                    });
                }
                // Reap finished connections so the set does not grow.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = &mut shutdown => break,
            }
        }

        drop(listener);
        tracing::info!(
            open = graceful.count(),
            grace_ms = grace.as_millis() as u64,
            "shutting down: no new connections; draining in-flight requests"
        );
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(grace) => {
                tracing::warn!(
                    open = connections.len(),
                    "drain deadline passed; cutting the remaining connections"
                );
            }
        }
        // Dropping a cut connection drops its requests; their holds are settled (streams, for
        // what was sent) or released on background tasks, which the wait below covers.
        connections.abort_all();
        while connections.join_next().await.is_some() {}
        let gateway = &state.gateway;
        let pending = gateway.pending_settlements();
        if pending > 0 {
            tracing::info!(pending, "waiting for the ledger writes of cut requests");
        }
        match tokio::time::timeout(SETTLE_WAIT, gateway.settled()).await {
            Ok(()) => tracing::info!("ledger settled; shutdown complete"),
            Err(_) => tracing::error!(
                pending = gateway.pending_settlements(),
                "ledger writes still pending at exit; their holds are reclaimed at expiry"
            ),
        }
        // The request log's last rows (capped at two seconds: they are not money).
        state.request_log.flush().await;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        Ok(())
    }

    /// Run in a background task; the handle stops it.
    pub fn spawn(mut self) -> io::Result<RunningServer> {
        self.bind_metrics()?;
        let addr = self.local_addr()?;
        let metrics_addr = match &self.metrics_listener {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async move {
            let _ = stopped.await;
        }));
        Ok(RunningServer {
            addr,
            metrics_addr,
            stop: Some(stop),
            task,
        })
    }
}

/// A server running in the background (tests, embedding).
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where `GET /metrics` is served when `server.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stop accepting, drain, and wait until the server is done.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|error| io::Error::other(error.to_string()))?
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
