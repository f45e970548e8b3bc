//! The operator's HTTP endpoints: ZooKeeper's AdminServer (`GET /commands`,
//! `GET /commands/NAME`, JSON) and the Prometheus page (`GET /metrics`).
//!
//! Both run on one executor of their own, not pinned to a core and apart
//! from the shards, so a slow scrape or a large `dump` never delays a
//! client request. They read the server through the operations layer's
//! read-only view (`crate::ops::ServerView`), which asks the shards and the
//! broadcast core through the shell's control channels (server/control.rs).
//!
//! `admin.serverPort=0` and `metricsProvider.httpPort=0` bind any free port;
//! the bound addresses are reported to the caller of [`start`] (the binary
//! prints `zoocore admin on ADDRESS` and `zoocore metrics on ADDRESS`). A
//! port that cannot be bound is logged and that endpoint stays off, as
//! ZooKeeper keeps running without its AdminServer.

pub mod http;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{debug, info, warn};

use crate::ops::ServerView;
use crate::server::OperationsStarted;
use http::{Request, Response};

/// ZooKeeper's Prometheus metrics provider; naming it in
/// `metricsProvider.className` turns the /metrics page on.
pub const PROMETHEUS_PROVIDER_CLASS_NAME: &str = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";
use crate::limits::CONNECTIONS_MAX;

/// Where the HTTP endpoints listen, once bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub admin: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
}

fn metrics_enabled(server: &dyn ServerView) -> bool {
    server.config().metrics_provider_class_name == PROMETHEUS_PROVIDER_CLASS_NAME
}

/// Starts the admin executor if the AdminServer or the metrics page is on.
/// Returns its handle (to join at shutdown) and the bound addresses.
pub fn start(server: Arc<dyn ServerView>) -> Result<OperationsStarted, String> {
    let config = server.config();
    let admin = config.admin_server_enabled.then(|| config.admin_socket_address());
    let metrics = metrics_enabled(&*server)
        .then(|| SocketAddr::new(config.metrics_provider_http_host, config.metrics_provider_http_port));
    if admin.is_none() && metrics.is_none() {
        return Ok(OperationsStarted { executor: None, admin: None, metrics: None });
    }
    let (bound_sender, bound_receiver) = std::sync::mpsc::channel();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("zoocore-admin")
        .spawn(move || run(server, admin, metrics, bound_sender))
        .map_err(|error| format!("cannot start the admin executor: {error}"))?;
    let endpoints = bound_receiver.recv().map_err(|_| "the admin executor stopped before listening".to_string())?;
    Ok(OperationsStarted { executor: Some(handle), admin: endpoints.admin, metrics: endpoints.metrics })
}

fn bind(what: &str, address: Option<SocketAddr>) -> Option<TcpListener> {
    let address = address?;
    match TcpListener::bind(address) {
        Ok(listener) => Some(listener),
        Err(error) => {
            warn!(%address, %error, "cannot listen for the {what}; it stays off");
            None
        }
    }
}

async fn run(
    server: Arc<dyn ServerView>,
    admin: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    bound: std::sync::mpsc::Sender<Endpoints>,
) {
    let admin = bind("AdminServer (admin.serverPort)", admin);
    let metrics = bind("Prometheus metrics (metricsProvider.httpPort)", metrics);
    let endpoints = Endpoints {
        admin: admin.as_ref().and_then(|listener| listener.local_addr().ok()),
        metrics: metrics.as_ref().and_then(|listener| listener.local_addr().ok()),
    };
    let _ = bound.send(endpoints);
    if let Some(address) = endpoints.admin {
        info!(%address, url = %server.config().admin_command_url, "AdminServer listening");
    }
    if let Some(address) = endpoints.metrics {
        info!(%address, "Prometheus metrics listening on /metrics");
    }
    let open = Rc::new(Cell::new(0usize));
    let mut tasks = Vec::new();
    if let Some(listener) = admin {
        tasks.push(glommio::spawn_local(accept(listener, server.clone(), open.clone(), Page::Admin)));
    }
    if let Some(listener) = metrics {
        tasks.push(glommio::spawn_local(accept(listener, server.clone(), open.clone(), Page::Metrics)));
    }
    for task in tasks {
        task.await;
    }
}

#[derive(Clone, Copy)]
enum Page {
    Admin,
    Metrics,
}

/// Accepts until the server stops.
async fn accept(listener: TcpListener, server: Arc<dyn ServerView>, open: Rc<Cell<usize>>, page: Page) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            server.stopped().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { return };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                debug!(%error, "admin accept failed");
                glommio::timer::Timer::new(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if open.get() >= CONNECTIONS_MAX {
            debug!("admin connection refused: {CONNECTIONS_MAX} already open");
            continue;
        }
        open.set(open.get() + 1);
        let server = server.clone();
        let open = open.clone();
        glommio::spawn_local(async move {
            http::serve(stream, move |request| {
                let server = server.clone();
                async move {
                    match page {
                        Page::Admin => admin_page(&*server, request).await,
                        Page::Metrics => metrics_page(&*server, request).await,
                    }
                }
            })
            .await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}

async fn admin_page(server: &dyn ServerView, request: Request) -> Response {
    let base = server.config().admin_command_url.trim_end_matches('/');
    let path = request.path.as_str();
    if path == base || path == format!("{base}/") {
        return Response::new(200, "text/html; charset=utf-8", crate::ops::commands::listing(base));
    }
    let Some(name) = path.strip_prefix(base).and_then(|rest| rest.strip_prefix('/')) else {
        return Response::not_found();
    };
    let name = name.trim_end_matches('/');
    debug!(command = name, "admin command");
    let value = crate::ops::commands::run(server, name, |key| request.parameter(key).map(str::to_string)).await;
    Response::json(&value)
}

async fn metrics_page(server: &dyn ServerView, request: Request) -> Response {
    if request.path != "/metrics" {
        return Response::not_found();
    }
    let watches = server.watch_summary().await;
    let monitor = crate::ops::Monitor::gather(server, watches);
    let page = crate::ops::render_prometheus(server, &monitor);
    Response::new(200, "text/plain; version=0.0.4; charset=utf-8", page)
}
