//! waihu's HTTP API, signed webhooks and the embedded dashboard.
//!
//! [`app`] builds the axum router over a [`Store`]; [`serve`] runs it (and the
//! webhook dispatcher) on a listener until a shutdown signal. Everything the
//! dashboard needs is compiled in (`dashboard.html`, no CDN).
//!
//! Architecture invariant: no SQL and no business rules about calls here —
//! figures come from the store's aggregates through the pure functions in
//! [`kpi`]; personal data leaves only masked, unless an operator or admin asks
//! for `reveal=true`, which appends a `pii_revealed` event before answering.
pub mod accounts;
pub mod api;
pub mod auth;
pub mod calls;
pub mod campaigns;
pub mod cluster;
pub mod conns;
pub mod console;
#[cfg(feature = "engine")]
pub mod console_engine;
pub mod desk;
pub mod desk_report;
pub mod error;
pub mod experiments;
pub mod import;
pub mod kpi;
pub mod messages;
pub mod openapi;
pub mod reports;
pub mod rights;
pub mod tls;
pub mod trunks;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;

use axum::routing::MethodRouter;
use axum::Router;
use waihu_store::Store;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Allow requests without a key as read-only analysts (loopback only;
    /// `waihu serve --open` refuses other listen addresses).
    pub open: bool,
    /// Conversation outcomes that count as a conversion (转化).
    pub conversion_outcomes: Vec<String>,
    pub webhooks: webhook::Settings,
    /// Sign-in sessions: idle timeout (30 min) and absolute lifetime (12 h).
    pub sessions: waihu_accounts::session::Lifetime,
    /// Failed sign-ins in a row that lock an account (5), and for how long (15 min).
    pub lockout: waihu_accounts::lockout::Policy,
    /// Sign-in attempts per client address and minute (10; the burst is the same).
    pub login_per_minute: u32,
    /// Mark the session cookie `Secure`. [`serve_tls`] sets it; behind a
    /// TLS-terminating proxy, set it yourself.
    pub secure_cookies: bool,
    /// The multi-node deployment's shared PostgreSQL (`GET /api/cluster`), when there is one.
    pub cluster: Option<waihu_cluster::Cluster>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            open: false,
            conversion_outcomes: waihu_core::kpi::DEFAULT_CONVERSION_OUTCOMES
                .map(String::from)
                .to_vec(),
            webhooks: webhook::Settings::default(),
            sessions: Default::default(),
            lockout: Default::default(),
            login_per_minute: 10,
            secure_cookies: false,
            cluster: None,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub cfg: Arc<Config>,
    /// Open live-call streams (bounded: each polls the store every second).
    pub streams: Arc<tokio::sync::Semaphore>,
    /// The console's chat sessions and script-save lock.
    pub console: Arc<console::Console>,
    /// Sign-in rate limits and the lock that serialises sign-in decisions.
    pub accounts: Arc<accounts::Accounts>,
}

/// A route as served: method, axum path (`/api/customers/{id}`) and the
/// least a caller needs to be let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    pub need: auth::Need,
}

/// Router builder that records every (method, path, need) it registers, so the
/// OpenAPI document can be checked against what is really served and
/// `tests/authz.rs` can try every route with every role. A route cannot be
/// added without saying what it needs.
pub(crate) struct Routes {
    router: Router<AppState>,
    list: Vec<RouteInfo>,
}

impl Routes {
    pub(crate) fn new() -> Self {
        Routes {
            router: Router::new(),
            list: Vec::new(),
        }
    }

    pub(crate) fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        need: auth::Need,
        h: MethodRouter<AppState>,
    ) -> Self {
        self.list.push(RouteInfo { method, path, need });
        self.router = self.router.route(path, h);
        self
    }
}

/// The router and the list of routes it serves.
pub fn app(store: Store, cfg: Config) -> (Router, Vec<RouteInfo>) {
    let cfg_login_per_minute = cfg.login_per_minute;
    let state = AppState {
        store,
        cfg: Arc::new(cfg),
        streams: Arc::new(tokio::sync::Semaphore::new(calls::STREAM_LIMIT)),
        console: Arc::new(console::Console::default()),
        accounts: Arc::new(accounts::Accounts::new(cfg_login_per_minute)),
    };
    let routes = accounts::routes(rights::routes(console::routes(desk::routes(
        trunks::routes(experiments::routes(messages::routes(import::routes(
            calls::routes(campaigns::routes(cluster::routes(api::routes(
                Routes::new(),
            )))),
        )))),
    ))));
    let needs = routes
        .list
        .iter()
        .map(|r| ((r.method.to_string(), r.path.to_string()), r.need))
        .collect();
    let guard = auth::Guard {
        app: state.clone(),
        needs: Arc::new(needs),
        paths_refusing: auth::REFUSAL_CODES,
    };
    let router = routes
        .router
        .route_layer(axum::middleware::from_fn_with_state(guard, auth::guard))
        .fallback(api::not_found)
        .with_state(state);
    (router, routes.list)
}

/// Serve on `listener` and run the webhook dispatcher until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, None, store, cfg, shutdown).await
}

/// [`serve`] over HTTPS: TLS from `tls` (its files are watched for renewal),
/// and every response says `Strict-Transport-Security`.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: &tls::Tls,
    store: Store,
    mut cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    cfg.secure_cookies = true;
    serve_with(listener, Some(tls), store, cfg, shutdown).await
}

/// One year, subdomains included: what browsers' HSTS preload lists ask for.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

async fn serve_with(
    listener: tokio::net::TcpListener,
    tls: Option<&tls::Tls>,
    store: Store,
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let dispatcher = tokio::spawn(webhook::run_dispatcher(
        store.clone(),
        cfg.webhooks.clone(),
        stop_rx.clone(),
    ));
    let signer = tokio::spawn(sign_audit_head(store.clone(), stop_rx));
    // The dummy hash an unknown user's sign-in is checked against is made before
    // the first request, so that request does not take one hash longer.
    tokio::task::spawn_blocking(|| {
        waihu_accounts::password::dummy_hash();
    });
    let (router, _) = app(store, cfg);
    let stats = std::sync::Arc::new(conns::ConnStats::default());
    let shutdown = async move {
        shutdown.await;
    };
    let result = match tls {
        Some(tls) => {
            let watcher = tls.watch(std::time::Duration::from_secs(2));
            let router = router.layer(axum::middleware::map_response(
                |mut r: axum::response::Response| async move {
                    r.headers_mut().insert(
                        axum::http::header::STRICT_TRANSPORT_SECURITY,
                        axum::http::HeaderValue::from_static(HSTS),
                    );
                    r
                },
            ));
            let r = conns::serve(tls.listen(listener)?, router, stats, shutdown).await;
            watcher.abort();
            r
        }
        None => {
            // Without TCP_NODELAY a response written in more than one piece waits for
            // the client's delayed ACK (~40 ms) before its last piece goes out.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY");
                }
            });
            conns::serve(listener, router, stats, shutdown).await
        }
    };
    let _ = stop_tx.send(true);
    let _ = dispatcher.await;
    let _ = signer.await;
    result
}

/// How often the server signs the audit chain's head when it moved: the store signs
/// every 1,000 events or 5 minutes of event time as events arrive; this covers the last
/// rows of a quiet log.
pub const AUDIT_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

async fn sign_audit_head(store: Store, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(AUDIT_CHECKPOINT_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if let Err(e) = store.audit_checkpoint(chrono::Utc::now()).await {
            tracing::warn!(error = %e, "signing the audit chain head");
        }
    }
    // Whatever this server appended last is signed before it exits.
    if let Err(e) = store.audit_checkpoint(chrono::Utc::now()).await {
        tracing::warn!(error = %e, "signing the audit chain head");
    }
}
