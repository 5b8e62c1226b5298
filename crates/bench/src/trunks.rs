//! `waihu bench trunks`: call setup through a carrier-like proxy (Kamailio as registrar
//! with digest auth on REGISTER and INVITE, Record-Route) against the same calls placed
//! directly on the callee, in the same run, through the product's trunk path
//! ([`waihu_dialer::trunks::TrunkPool`]: registration, selection, auth). The callee is our
//! UAS in-process; each call is answered at once and hung up on its first media frame.
//! A third path goes through the same Kamailio over TLS (its `tls` module, a test CA
//! made for the run, the certificate verified by name), so TLS's cost shows against UDP.
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use waihu_campaign::trunks::{HostPort, NumberFormat, PasswordSource, TrunkConfig, TrunkTransport};
use waihu_dialer::trunks::TrunkPool;
use waihu_engine::agent::{CallAgent, Control};
use waihu_engine::call::{answer_loop, CallOptions, MediaOptions};
use waihu_engine::sip::SipEndpoint;

/// `waihu bench trunks` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Calls per path (direct, via Kamailio).
    #[arg(long, default_value_t = 200)]
    pub calls: usize,
    /// Calls at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    #[arg(long)]
    pub json: bool,
}

fn start_kamailio(
    dir: &Path,
    port: u16,
    tls_port: u16,
    callee: u16,
) -> anyhow::Result<waihu_testkit::kamailio::Kamailio> {
    let ca = waihu_testkit::kamailio::make_test_ca(dir, &["carrier.test"])
        .context("making a test CA (openssl)")?;
    waihu_testkit::kamailio::Kamailio::start(
        dir,
        &waihu_testkit::kamailio::Config {
            port,
            secret: "bench-secret".into(),
            invite_to: Some(callee),
            min_expires: None,
            tls: Some(waihu_testkit::kamailio::TlsListen {
                port: tls_port,
                cert: ca.cert,
                key: ca.key,
            }),
        },
    )
    .context("starting kamailio (apt-get install kamailio; scripts/deps/sip.apt)")
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Hangs up on the first frame after the answer.
struct HangUp;
impl CallAgent for HangUp {
    fn on_frame(&mut self, _now: Instant, _heard: &[i16], _say: &mut [i16]) -> Control {
        Control::Hangup("bench".into())
    }
}

fn trunk(name: &str, port: u16, secret: Option<&Path>, concurrency: usize) -> TrunkConfig {
    trunk_over(name, port, secret, concurrency, None)
}

/// A trunk; with `tls_ca` over TLS, the proxy's certificate checked for `carrier.test`.
fn trunk_over(
    name: &str,
    port: u16,
    secret: Option<&Path>,
    concurrency: usize,
    tls_ca: Option<&Path>,
) -> TrunkConfig {
    let register = secret.is_some();
    TrunkConfig {
        name: name.into(),
        proxy: HostPort {
            host: "127.0.0.1".into(),
            port,
        },
        transport: if tls_ca.is_some() {
            TrunkTransport::Tls
        } else {
            TrunkTransport::Udp
        },
        username: register.then(|| "waihu".into()),
        realm: None,
        password: secret.map(|p| PasswordSource::File(p.to_path_buf())),
        register,
        expires: 600,
        srtp: waihu_campaign::trunks::TrunkSrtp::Off,
        outbound_proxy: None,
        channels: concurrency as u32,
        cps: 10_000.0,
        weight: 1,
        number_format: NumberFormat::E164,
        asserted_identity: false,
        privacy: None,
        tls_ca: tls_ca.map(Path::to_path_buf),
        tls_server_name: tls_ca.map(|_| "carrier.test".into()),
        dns: Default::default(),
    }
}

/// One path's figures.
#[derive(Debug, serde::Serialize)]
pub struct PathResult {
    pub path: &'static str,
    pub calls: usize,
    pub answered: usize,
    pub calls_per_s: f64,
    pub mean_setup_ms: f64,
    pub p95_setup_ms: f64,
    /// Time from starting the trunk to its first registration (REGISTER, 401, REGISTER
    /// with credentials, 200; over TLS the connection and handshake too).
    pub register_ms: Option<f64>,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits (up to 10 s) until something accepts TCP connections on `port`.
async fn wait_tcp(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_path(
    path: &'static str,
    ep: Arc<SipEndpoint>,
    pool: Arc<TrunkPool>,
    calls: usize,
    concurrency: usize,
) -> anyhow::Result<PathResult> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(calls);
    for i in 0..calls {
        let permit = sem.clone().acquire_owned().await?;
        let (ep, pool) = (ep.clone(), pool.clone());
        tasks.push(tokio::spawn(async move {
            let mut opts = CallOptions::new("");
            opts.ring_timeout = Duration::from_secs(10);
            opts.media.max_duration = Duration::from_secs(5);
            let phone = format!("+1212555{:04}", i % 10_000);
            let r = pool
                .place(&ep, opts, &phone, 0, Box::new(HangUp), &mut |_| {}, &|_| {})
                .await;
            drop(permit);
            r
        }));
    }
    let mut setups = Vec::new();
    for t in tasks {
        if let Ok(Ok(r)) = t.await {
            if r.outcome == waihu_core::CallOutcome::Answered {
                setups.extend(r.setup_ms);
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    setups.sort_by(f64::total_cmp);
    let mean = setups.iter().sum::<f64>() / setups.len().max(1) as f64;
    let p95 = setups
        .get((setups.len() as f64 * 0.95) as usize)
        .or(setups.last())
        .copied()
        .unwrap_or(0.0);
    Ok(PathResult {
        path,
        calls,
        answered: setups.len(),
        calls_per_s: (calls as f64 / wall * 10.0).round() / 10.0,
        mean_setup_ms: (mean * 10.0).round() / 10.0,
        p95_setup_ms: (p95 * 10.0).round() / 10.0,
        register_ms: None,
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let results = measure(&a)?;
    print(&a, &results)
}

/// Runs the three paths back to back in one process.
fn measure(a: &Args) -> anyhow::Result<Vec<PathResult>> {
    let dir = tempfile::tempdir()?;
    // The bench's own secret for its own Kamailio, handed over the way a trunk's is.
    let secret = dir.path().join("trunk-password");
    std::fs::write(&secret, "bench-secret\n")?;
    let rt = crate::runtime()?;
    let results = rt.block_on(async {
        let callee = Arc::new(SipEndpoint::bind("127.0.0.1:0".parse()?, "callee", None).await?);
        let callee_port = callee.local_addr().port();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(answer_loop(
            callee.clone(),
            Duration::ZERO,
            MediaOptions {
                max_duration: Duration::from_secs(10),
                ..MediaOptions::default()
            },
            tx,
        ));
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let kam_port = free_udp_port()?;
        let tls_port = free_tcp_port()?;
        let _kam = start_kamailio(dir.path(), kam_port, tls_port, callee_port)?;
        wait_tcp(tls_port).await;
        let ep = Arc::new(SipEndpoint::bind("127.0.0.1:0".parse()?, "waihu", None).await?);
        let register = |cfg: TrunkConfig| {
            let ep = ep.clone();
            async move {
                let pool = Arc::new(
                    TrunkPool::new(vec![cfg])
                        .await
                        .map_err(anyhow::Error::msg)?,
                );
                let t0 = Instant::now();
                tokio::spawn(pool.clone().run(ep, None));
                anyhow::ensure!(
                    pool.wait_registered(Duration::from_secs(10)).await,
                    "could not register with Kamailio"
                );
                anyhow::Ok((pool, t0.elapsed().as_secs_f64() * 1e3))
            }
        };
        let (via, reg_udp_ms) =
            register(trunk("kamailio", kam_port, Some(&secret), a.concurrency)).await?;
        let (via_tls, reg_tls_ms) = register(trunk_over(
            "kamailio-tls",
            tls_port,
            Some(&secret),
            a.concurrency,
            Some(&dir.path().join("ca.pem")),
        ))
        .await?;
        let direct = Arc::new(
            TrunkPool::new(vec![trunk("direct", callee_port, None, a.concurrency)])
                .await
                .map_err(anyhow::Error::msg)?,
        );
        // Warm-up, then both paths back to back in this run.
        let _ = run_path("warm-up", ep.clone(), direct.clone(), 5, 1).await?;
        let d = run_path("direct", ep.clone(), direct, a.calls, a.concurrency).await?;
        let mut k = run_path(
            "via Kamailio + digest auth",
            ep.clone(),
            via,
            a.calls,
            a.concurrency,
        )
        .await?;
        k.register_ms = Some(round1(reg_udp_ms));
        let mut t = run_path(
            "via Kamailio over TLS",
            ep.clone(),
            via_tls,
            a.calls,
            a.concurrency,
        )
        .await?;
        t.register_ms = Some(round1(reg_tls_ms));
        anyhow::Ok(vec![d, k, t])
    })?;
    Ok(results)
}

fn print(a: &Args, results: &[PathResult]) -> anyhow::Result<()> {
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({"paths": results}))?
        );
        return Ok(());
    }
    println!(
        "中继呼叫建立 trunk call setup: {} calls per path, {} at once (loopback)",
        a.calls, a.concurrency
    );
    println!(
        "{:<28} {:>9} {:>9} {:>15} {:>14} {:>12}",
        "path", "answered", "calls/s", "mean setup ms", "p95 setup ms", "register ms"
    );
    for r in results {
        println!(
            "{:<28} {:>9} {:>9.1} {:>15.1} {:>14.1} {:>12}",
            r.path,
            r.answered,
            r.calls_per_s,
            r.mean_setup_ms,
            r.p95_setup_ms,
            r.register_ms.map_or("-".into(), |m| format!("{m:.1}"))
        );
    }
    let (d, k, t) = (&results[0], &results[1], &results[2]);
    println!(
        "via Kamailio / direct: {:.2}x calls/s, {:.1}x mean setup (baseline: direct)",
        k.calls_per_s / d.calls_per_s.max(1e-9),
        k.mean_setup_ms / d.mean_setup_ms.max(1e-9)
    );
    println!(
        "TLS / UDP through Kamailio: {:.2}x calls/s, {:.2}x mean setup (baseline: UDP)",
        t.calls_per_s / k.calls_per_s.max(1e-9),
        t.mean_setup_ms / k.mean_setup_ms.max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short run of all three paths (the figures come from the command itself).
    #[test]
    fn smoke() {
        if !waihu_testkit::have_peer("kamailio") || !waihu_testkit::have_peer("openssl") {
            return;
        }
        let a = Args {
            calls: 3,
            concurrency: 1,
            json: true,
        };
        let r = measure(&a).unwrap();
        assert_eq!(r.len(), 3);
        for p in &r {
            assert_eq!(p.answered, 3, "{p:?}");
        }
        assert!(r[2].register_ms.is_some_and(|m| m > 0.0), "{:?}", r[2]);
        print(&a, &r).unwrap();
    }
}
