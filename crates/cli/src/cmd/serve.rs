//! `waihu serve` and `waihu apikey ...`: the HTTP API and dashboard (crate
//! `waihu-server`) and its keys (`waihu bench api` is in crate `waihu-bench`).
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use chrono::Utc;
use waihu_server::auth::Role;

use crate::ctx::{print_json, Ctx};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (监听地址).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Let requests without a key read as analysts (personal data masked, no
    /// edits). Only on a loopback address. 无密钥只读访问（仅本机）。
    #[arg(long)]
    open: bool,
    /// Conversation outcomes counted as conversions (转化), comma-separated.
    #[arg(long, value_delimiter = ',')]
    conversion: Option<Vec<String>>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); renewed
    /// files are picked up without a restart. HTTPS 证书。
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate for localhost made on first
    /// use in DATA_DIR/tls/ and reused; its SHA-256 fingerprint is printed.
    /// 自签名证书（本地使用）。
    #[arg(long)]
    tls_self_signed: bool,
    /// Sign-in sessions end after this many minutes without a request. 会话空闲超时（分钟）。
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    session_idle_min: u32,
    /// ...and this many hours after sign-in at the latest. 会话最长有效期（小时）。
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..))]
    session_hours: u32,
    /// Failed sign-ins in a row that lock an account. 连续失败锁定次数。
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    lockout_after: u32,
    /// How long a lock-out lasts, in minutes. 锁定时长（分钟）。
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..))]
    lockout_min: u32,
    /// Mark the session cookie Secure although waihu serves plain HTTP (behind
    /// a TLS-terminating proxy). Set by itself with --tls-*.
    #[arg(long)]
    secure_cookies: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum ApikeyCmd {
    /// Create a key and print it once (only its SHA-256 is stored). 创建 API 密钥。
    Create {
        #[arg(long, value_parser = ["admin", "supervisor", "operator", "analyst"])]
        role: String,
        /// Who or what uses the key (shown in the audit trail).
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the keys themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    Revoke { id: i64 },
}

pub fn run_serve(ctx: &Ctx, a: ServeArgs) -> anyhow::Result<()> {
    if ctx.data_dir() != ctx.home() {
        anyhow::bail!(
            "serve: `waihu serve` serves every tenant of the installation; drop --tenant"
        );
    }
    ctx.runtime()?.block_on(async {
        let mut tenants = Vec::new();
        for (name, dir) in ctx.tenants()? {
            let store = waihu_store::Store::open(&dir)
                .await
                .with_context(|| format!("opening tenant '{name}' ({})", dir.display()))?
                .with_home(ctx.home());
            tenants.push((name, store));
        }
        let mut cfg = waihu_server::Config {
            open: a.open,
            sessions: waihu_accounts::session::Lifetime {
                idle: chrono::Duration::minutes(a.session_idle_min.into()),
                absolute: chrono::Duration::hours(a.session_hours.into()),
            },
            lockout: waihu_accounts::lockout::Policy {
                max_failures: a.lockout_after,
                lock_for: chrono::Duration::minutes(a.lockout_min.into()),
            },
            secure_cookies: a.secure_cookies,
            ..Default::default()
        };
        if let Some(c) = a.conversion {
            cfg.conversion_outcomes = c;
        }
        // A multi-node deployment: the API shows every node and shared campaign.
        if let Ok(url) = std::env::var("WAIHU_DATABASE_URL") {
            if !url.trim().is_empty() {
                let node = format!("api-{}", std::process::id());
                cfg.cluster = Some(
                    waihu_cluster::Cluster::connect(&url, &node, 2)
                        .await
                        .context("WAIHU_DATABASE_URL: connecting to the cluster's PostgreSQL")?,
                );
            }
        }
        let tls = match (&a.tls_cert, &a.tls_key, a.tls_self_signed) {
            (Some(cert), Some(key), _) => Some(waihu_server::tls::Tls::from_files(cert, key)?),
            (_, _, true) => Some(waihu_server::tls::Tls::self_signed(ctx.home())?),
            _ => None,
        };
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve_stores(tenants, a.listen, cfg, tls.as_ref(), shutdown).await
    })
}

/// The listening socket; refuses `cfg.open` on a non-loopback address.
async fn bind(
    listen: SocketAddr,
    cfg: &waihu_server::Config,
) -> anyhow::Result<tokio::net::TcpListener> {
    if cfg.open && !listen.ip().is_loopback() {
        anyhow::bail!(
            "--open allows key-less access and is only allowed on a loopback address, not {listen}"
        );
    }
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))
}

/// Serve the API and dashboard over `store` on `listen` until `shutdown`
/// completes (what `waihu demo` calls after its run).
pub async fn serve_store(
    store: waihu_store::Store,
    listen: SocketAddr,
    cfg: waihu_server::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tenants = vec![(waihu_server::tenancy::DEFAULT.to_string(), store)];
    serve_stores(tenants, listen, cfg, None, shutdown).await
}

/// Serve every tenant's store (`waihu serve`), over HTTPS with `tls`, until
/// `shutdown` completes. Refuses `cfg.open` on a non-loopback address or with
/// tenants; prints where to look.
pub async fn serve_stores(
    tenants: Vec<(String, waihu_store::Store)>,
    listen: SocketAddr,
    cfg: waihu_server::Config,
    tls: Option<&waihu_server::tls::Tls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = bind(listen, &cfg).await?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!(
        "waihu: 数据平台 / dashboard: {scheme}://{addr}/   API: {scheme}://{addr}/api/openapi.json"
    );
    if let Some(tls) = tls {
        eprintln!(
            "waihu: 证书指纹 / certificate SHA-256 fingerprint: {}",
            tls.current_fingerprint()
        );
    }
    if tenants.len() > 1 {
        let names: Vec<&str> = tenants.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "waihu: 租户 / tenants: {} (header {} or the sign-in form's organisation)",
            names.join(", "),
            waihu_server::tenancy::HEADER
        );
    }
    for (name, store) in &tenants {
        if store.api_keys().await?.is_empty() && store.users().await?.is_empty() && !cfg.open {
            let t = if name == waihu_server::tenancy::DEFAULT {
                String::new()
            } else {
                format!("--tenant {name} ")
            };
            eprintln!("waihu: {name}: 还没有 API 密钥或用户 / no API keys or users yet: waihu {t}apikey create --role analyst --name dashboard");
        }
    }
    waihu_server::serve_tenants(listener, tls, tenants, cfg, shutdown)
        .await
        .context("serving the API")?;
    Ok(())
}

pub fn run_apikey(ctx: &Ctx, cmd: ApikeyCmd) -> anyhow::Result<()> {
    ctx.runtime()?.block_on(async {
        let store = ctx.store().await?;
        match cmd {
            ApikeyCmd::Create { role, name, json } => {
                let role = Role::parse(&role).context("role must be admin, supervisor, operator or analyst (agent keys: POST /api/keys with an agent id)")?;
                if name.trim().is_empty() {
                    anyhow::bail!("--name must not be empty");
                }
                let (key, rec) = waihu_server::auth::create_key(&store, name.trim(), role, Utc::now()).await?;
                if json {
                    print_json(&serde_json::json!({"id": rec.id, "name": rec.name, "role": rec.role, "key": key}))?;
                } else {
                    println!("{key}");
                    eprintln!("waihu: key {} ({}, {}) created; it is shown only this once / 密钥只显示这一次", rec.id, rec.name, rec.role);
                }
            }
            ApikeyCmd::List { json } => {
                for k in store.api_keys().await? {
                    if json {
                        print_json(&k)?;
                    } else {
                        let state = k.revoked_at.map(|t| format!("revoked {}", t.format("%Y-%m-%d %H:%M"))).unwrap_or_default();
                        println!("{:>4} {:<9} {:<24} {} {state}", k.id, k.role, k.name, k.created_at.format("%Y-%m-%d %H:%M"));
                    }
                }
            }
            ApikeyCmd::Revoke { id } => {
                if !store.api_key_revoke(id, Utc::now()).await? {
                    anyhow::bail!("no unrevoked key with id {id} (see `waihu apikey list`)");
                }
                println!("revoked key {id}");
            }
        }
        store.close().await;
        Ok(())
    })
}
