//! `waihu bench https`: API requests per second over HTTPS beside plain HTTP,
//! same server code, same store, same run. Clients keep their connections
//! alive (as the dashboard does), so the figure is the steady cost of TLS
//! records; `--new-connections` makes every request a new connection (a
//! full handshake each) to show the handshake cost too.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds per protocol.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// A new connection per request (TLS handshake every time).
    #[arg(long)]
    new_connections: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    protocol: &'static str,
    requests: u64,
    errors: u64,
    requests_per_s: f64,
}

async fn load(
    url: String,
    client: impl Fn() -> reqwest::Client + Send + Sync + 'static,
    a: &Args,
    key: &str,
) -> Row {
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let make = Arc::new(client);
    let until = Instant::now() + Duration::from_secs_f64(a.seconds);
    let mut tasks = Vec::new();
    for _ in 0..a.clients.max(1) {
        let (ok, bad, make, url, key) = (
            ok.clone(),
            bad.clone(),
            make.clone(),
            url.clone(),
            key.to_string(),
        );
        let fresh = a.new_connections;
        tasks.push(tokio::spawn(async move {
            let mut c = make();
            while Instant::now() < until {
                if fresh {
                    c = make();
                }
                let good = match c.get(&url).bearer_auth(&key).send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                };
                if good {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let t = Instant::now();
    for task in tasks {
        let _ = task.await;
    }
    let el = t.elapsed().as_secs_f64();
    let requests = ok.load(Ordering::Relaxed);
    Row {
        protocol: "",
        requests,
        errors: bad.load(Ordering::Relaxed),
        requests_per_s: requests as f64 / el,
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let store = waihu_store::Store::open(dir.path()).await?;
        let (key, _) = waihu_server::auth::create_key(
            &store,
            "bench",
            waihu_server::auth::Role::Analyst,
            chrono::Utc::now(),
        )
        .await?;
        let tls = waihu_server::tls::Tls::self_signed(dir.path())?;
        let cert = std::fs::read(dir.path().join("tls/cert.pem"))?;
        let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let plain_l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let tls_l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let (plain_port, tls_port) = (plain_l.local_addr()?.port(), tls_l.local_addr()?.port());
        let mut rx = stop_tx.subscribe();
        let plain = tokio::spawn(waihu_server::serve(
            plain_l,
            store.clone(),
            waihu_server::Config::default(),
            async move {
                let _ = rx.recv().await;
            },
        ));
        let mut rx = stop_tx.subscribe();
        let store2 = store.clone();
        let secure = tokio::spawn(async move {
            waihu_server::serve_tls(
                tls_l,
                &tls,
                store2,
                waihu_server::Config::default(),
                async move {
                    let _ = rx.recv().await;
                },
            )
            .await
        });
        let path = "/api/segments";
        if !a.json {
            eprintln!(
                "bench https: {} clients × {:.0} s per protocol, GET {path}{}",
                a.clients,
                a.seconds,
                if a.new_connections {
                    ", a new connection per request"
                } else {
                    ", keep-alive"
                }
            );
        }
        let mut http = load(
            format!("http://127.0.0.1:{plain_port}{path}"),
            || reqwest::Client::builder().build().expect("client"),
            &a,
            &key,
        )
        .await;
        http.protocol = "http";
        let cert = reqwest::Certificate::from_pem(&cert)?;
        let mut https = load(
            format!("https://localhost:{tls_port}{path}"),
            move || {
                reqwest::Client::builder()
                    .use_rustls_tls()
                    .add_root_certificate(cert.clone())
                    .build()
                    .expect("client")
            },
            &a,
            &key,
        )
        .await;
        https.protocol = "https";
        let _ = stop_tx.send(());
        let _ = plain.await;
        let _ = secure.await;
        anyhow::ensure!(
            http.requests > 0 && https.requests > 0,
            "no request succeeded: http {http:?}, https {https:?}"
        );
        if a.json {
            println!("{}", serde_json::to_string(&http)?);
            println!("{}", serde_json::to_string(&https)?);
        } else {
            for r in [&http, &https] {
                println!(
                    "  {:<6} {:>9.0} req/s  ({} requests, {} errors)",
                    r.protocol, r.requests_per_s, r.requests, r.errors
                );
            }
            println!(
                "  https / http: {:.2}×",
                https.requests_per_s / http.requests_per_s
            );
        }
        Ok(())
    })
}
