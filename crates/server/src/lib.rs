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
pub mod alerts;
pub mod api;
pub mod auth;
pub mod calls;
pub mod campaigns;
pub mod cluster;
pub mod conns;
pub mod console;
#[cfg(feature = "engine")]
pub mod console_engine;
pub mod console_layout;
#[cfg(feature = "engine")]
pub mod console_voice;
pub mod desk;
pub mod desk_report;
pub mod error;
pub mod experiments;
pub mod import;
pub mod kpi;
pub mod messages;
pub mod openapi;
pub mod pdf;
pub mod reports;
pub mod rights;
pub mod tenancy;
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
    /// The tenant this router serves ([`tenancy::DEFAULT`] for the installation's own store).
    pub tenant: Arc<str>,
    /// That tenant's store, and the only one this router's handlers can reach.
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

/// The router and the list of routes it serves, over one store.
pub fn app(store: Store, cfg: Config) -> (Router, Vec<RouteInfo>) {
    let shared = Shared::new(&cfg);
    app_for(tenancy::DEFAULT, store, Arc::new(cfg), &shared)
}

/// What every tenant's router shares: the bound on open live streams and the
/// per-address sign-in rate limit (a password sprayer does not get ten tries
/// a minute per tenant).
struct Shared {
    streams: Arc<tokio::sync::Semaphore>,
    accounts: Arc<accounts::Accounts>,
}

impl Shared {
    fn new(cfg: &Config) -> Self {
        Shared {
            streams: Arc::new(tokio::sync::Semaphore::new(calls::STREAM_LIMIT)),
            accounts: Arc::new(accounts::Accounts::new(cfg.login_per_minute)),
        }
    }
}

fn app_for(
    tenant: &str,
    store: Store,
    cfg: Arc<Config>,
    shared: &Shared,
) -> (Router, Vec<RouteInfo>) {
    let state = AppState {
        tenant: tenant.into(),
        store,
        cfg,
        streams: shared.streams.clone(),
        console: Arc::new(console::Console::default()),
        accounts: shared.accounts.clone(),
    };
    let routes = alerts::routes(accounts::routes(rights::routes(console::routes(
        desk::routes(trunks::routes(experiments::routes(messages::routes(
            import::routes(calls::routes(campaigns::routes(cluster::routes(
                api::routes(Routes::new()),
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

/// One router over several tenants' stores (`(name, store)`, names checked by
/// [`tenancy::check_name`]): each request is served by the router of the
/// tenant it names ([`tenancy`]). The multi-node cluster view belongs to the
/// installation, so only [`tenancy::DEFAULT`] shows it.
pub fn app_tenants(
    tenants: Vec<(String, Store)>,
    cfg: Config,
) -> Result<(Router, Vec<RouteInfo>), String> {
    if cfg.open && tenants.iter().any(|(n, _)| n != tenancy::DEFAULT) {
        return Err("--open (key-less read access) cannot be combined with tenants".into());
    }
    let shared = Shared::new(&cfg);
    let secure = cfg.secure_cookies;
    let own = Arc::new(cfg.clone());
    let others = Arc::new(Config {
        cluster: None,
        ..cfg
    });
    let mut routers = std::collections::BTreeMap::new();
    let mut list = Vec::new();
    for (name, store) in tenants {
        tenancy::check_name(&name)?;
        let c = if name == tenancy::DEFAULT {
            own.clone()
        } else {
            others.clone()
        };
        let (r, l) = app_for(&name, store, c, &shared);
        list = l;
        if routers.insert(name.clone(), r).is_some() {
            return Err(format!("tenant {name:?} given twice"));
        }
    }
    Ok((tenancy::dispatch(routers, secure), list))
}

/// Serve on `listener` and run the webhook dispatcher until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tenants(
        listener,
        None,
        vec![(tenancy::DEFAULT.into(), store)],
        cfg,
        shutdown,
    )
    .await
}

/// [`serve`] over HTTPS: TLS from `tls` (its files are watched for renewal),
/// and every response says `Strict-Transport-Security`.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: &tls::Tls,
    store: Store,
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tenants(
        listener,
        Some(tls),
        vec![(tenancy::DEFAULT.into(), store)],
        cfg,
        shutdown,
    )
    .await
}

/// One year, subdomains included: what browsers' HSTS preload lists ask for.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Serve every tenant's store ([`app_tenants`]) on `listener`, over HTTPS when
/// `tls` is given (cookies `Secure`, HSTS), with a webhook dispatcher and an
/// audit-chain signer per store, until `shutdown` completes.
pub async fn serve_tenants(
    listener: tokio::net::TcpListener,
    tls: Option<&tls::Tls>,
    tenants: Vec<(String, Store)>,
    mut cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if tls.is_some() {
        cfg.secure_cookies = true;
    }
    let (router, _) = app_tenants(tenants.clone(), cfg.clone())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = Vec::new();
    for (_, store) in tenants {
        background.push(tokio::spawn(webhook::run_dispatcher(
            store.clone(),
            cfg.webhooks.clone(),
            stop_rx.clone(),
        )));
        background.push(tokio::spawn(sign_audit_head(store, stop_rx.clone())));
    }
    // The dummy hash an unknown user's sign-in is checked against is made before
    // the first request, so that request does not take one hash longer.
    tokio::task::spawn_blocking(|| {
        waihu_accounts::password::dummy_hash();
    });
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
    for task in background {
        let _ = task.await;
    }
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
