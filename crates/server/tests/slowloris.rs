//! Slow and greedy HTTP clients do not starve the dashboard: 300 slow-loris connections from
//! three addresses (127.0.0.2–4, headers trickled a line every 2 s, never finished) while the
//! dashboard's own client (127.0.0.1) keeps reading the KPI page. Each slow address gets at
//! most `PER_SOURCE` connections (the rest are closed before a byte is read); those it gets are
//! closed once their headers are `HEADER_TIMEOUT` late.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use waihu_server::conns::{HEADER_TIMEOUT, PER_SOURCE};

async fn connect_from(ip: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(ip, 0))?;
    s.connect(to).await
}

/// Whether the server has closed `s` (read gives end of stream, an error, or a response
/// followed by the end) within `wait`.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let until = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_capped_and_timed_out_while_the_dashboard_answers() {
    let s = Server::start(waihu_server::Config::default()).await;
    let per_ip = 100;
    let mut slow = Vec::new();
    for last in 2..=4u8 {
        let ip = IpAddr::from([127, 0, 0, last]);
        for _ in 0..per_ip {
            let mut c = connect_from(ip, s.addr).await.unwrap();
            // Nothing is read before the cap is checked: an over-cap connection is closed
            // whatever it sends.
            let _ = c
                .write_all(b"GET /api/kpis HTTP/1.1\r\nHost: waihu\r\n")
                .await;
            slow.push((ip, c));
        }
    }
    // Over the cap: closed at once (by now, 300 ms on).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut kept = Vec::new();
    let mut refused = 0;
    for (ip, mut c) in slow {
        if closed_within(&mut c, Duration::from_millis(5)).await {
            refused += 1;
        } else {
            kept.push((ip, c));
        }
    }
    eprintln!(
        "slow connections: {} opened, {} held, {refused} closed at once",
        3 * per_ip,
        kept.len()
    );
    assert_eq!(
        kept.len(),
        3 * PER_SOURCE,
        "each address holds at most the cap"
    );
    assert_eq!(refused, 3 * (per_ip - PER_SOURCE));

    // The dashboard keeps answering while the held connections trickle their headers.
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut trickle = tokio::time::interval(Duration::from_secs(2));
    let mut n = 0;
    while started.elapsed() < HEADER_TIMEOUT + Duration::from_secs(2) {
        tokio::select! {
            _ = trickle.tick() => {
                n += 1;
                for (_, c) in kept.iter_mut() {
                    let _ = c.write_all(format!("X-Slow-{n}: still here\r\n").as_bytes()).await;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                let t = Instant::now();
                let (st, v) = s.get(&s.analyst, "/api/kpis").await;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(st, 200, "{v}");
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    eprintln!(
        "dashboard during the attack: {} requests, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        latencies.len(),
        at(0.5),
        at(0.95),
        at(1.0)
    );
    assert!(latencies.len() >= 20);

    // The slow connections are closed once their headers are late, trickle or not.
    let mut still_open = 0;
    for (_, c) in kept.iter_mut() {
        if !closed_within(c, Duration::from_secs(3)).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "every slow connection was closed");

    // Their slots are free again: a new connection from a slow address is served.
    let mut c = connect_from(IpAddr::from([127, 0, 0, 2]), s.addr)
        .await
        .unwrap();
    c.write_all(b"GET /api/nothing HTTP/1.1\r\nHost: waihu\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = Vec::new();
    c.read_to_end(&mut resp).await.unwrap();
    assert!(
        resp.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&resp)
    );
    s.stop().await;
}
