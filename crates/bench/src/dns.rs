//! `waihu bench dns`: what RFC 3263 resolution of a trunk costs (NAPTR → SRV → A, four
//! queries) beside the single A lookup the dialer did before, against dnsmasq on loopback,
//! same run, same resolver code; and a lookup answered from the cache within the TTL.

use std::time::{Duration, Instant};

use anyhow::Context;
use waihu_resolve::dns::Resolver;
use waihu_resolve::Transport;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Lookups per path.
    #[arg(long, default_value_t = 500)]
    pub lookups: usize,
}

const RECORDS: &[&str] = &[
    "--naptr-record=carrier.waihu.test,10,50,s,SIP+D2U,,_sip._udp.carrier.waihu.test",
    "--naptr-record=carrier.waihu.test,20,50,s,SIP+D2T,,_sip._tcp.carrier.waihu.test",
    "--srv-host=_sip._udp.carrier.waihu.test,a.waihu.test,5070,10,60",
    "--srv-host=_sip._udp.carrier.waihu.test,b.waihu.test,5071,10,40",
    "--host-record=a.waihu.test,127.0.0.1",
    "--host-record=b.waihu.test,127.0.0.2",
    "--host-record=carrier.waihu.test,127.0.0.3",
];

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len().max(1) as f64;
    let at = |q: f64| ms(v[((v.len() as f64 * q) as usize).min(v.len() - 1)]);
    (mean, at(0.5), at(0.95))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let n = a.lookups.max(1);
    let dns = waihu_testkit::dnsmasq::Dnsmasq::start("waihu.test", RECORDS)
        .context("dnsmasq not found: install dnsmasq-base (scripts/deps/sip.apt)")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let all = Transport::ALL;
    let mut a_only = Vec::with_capacity(n);
    let mut chain = Vec::with_capacity(n);
    let mut cached = Vec::with_capacity(n);
    rt.block_on(async {
        let warm = Resolver::new(Some(dns.addr)).map_err(anyhow::Error::msg)?;
        warm.resolve("carrier.waihu.test", None, None, &all).await?;
        for _ in 0..n {
            // A fresh resolver each time: nothing cached, as at a node's start.
            let r = Resolver::new(Some(dns.addr)).map_err(anyhow::Error::msg)?;
            let t = Instant::now();
            r.resolve("carrier.waihu.test", Some(5060), None, &all)
                .await?;
            a_only.push(t.elapsed());
            let r = Resolver::new(Some(dns.addr)).map_err(anyhow::Error::msg)?;
            let t = Instant::now();
            let found = r.resolve("carrier.waihu.test", None, None, &all).await?;
            chain.push(t.elapsed());
            anyhow::ensure!(found.targets(0).len() == 2, "unexpected answer: {found:?}");
            let t = Instant::now();
            warm.resolve("carrier.waihu.test", None, None, &all).await?;
            cached.push(t.elapsed());
        }
        anyhow::Ok(())
    })?;
    println!("DNS resolution of a trunk against dnsmasq on loopback ({n} lookups per path)");
    println!("解析中继地址（本地 dnsmasq）");
    println!(
        "{:<34} {:>9} {:>9} {:>9}",
        "path", "mean ms", "p50 ms", "p95 ms"
    );
    let (base, _, _) = stats(a_only.clone());
    for (name, v) in [
        ("A only (baseline: before RFC 3263)", a_only),
        ("NAPTR → SRV → A (RFC 3263)", chain),
        ("RFC 3263, cached within the TTL", cached),
    ] {
        let (mean, p50, p95) = stats(v);
        println!(
            "{name:<34} {mean:>9.3} {p50:>9.3} {p95:>9.3}   ×{:.2} of the baseline",
            mean / base
        );
    }
    Ok(())
}
