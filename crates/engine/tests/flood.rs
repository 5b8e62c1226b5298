//! Hostile traffic on real sockets while live calls carry audio: an INVITE flood, an OPTIONS
//! flood and garbage, each from its own loopback address, plus held-open TCP connections,
//! aimed at the SIP port of an endpoint that is answering real calls. The calls keep every
//! packet of their audio; each flood gets its small budget, a few 503s with Retry-After and
//! otherwise silence; the agent's calls and transactions stay bounded; each flood is logged
//! as two lines (started, ended), not one per packet.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use waihu_core::CallOutcome;
use waihu_engine::call::{self, CallOptions, MediaOptions};
use waihu_engine::sip::{SipEndpoint, TCP_PER_SOURCE};
use waihu_engine::waihu_sip::GuardConfig;
use waihu_testkit::flood::{Flood, Kind, Source};
use waihu_testkit::signal::melody;

const RATE: u32 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_calls_keep_their_audio_through_a_sip_flood() {
    let guard = GuardConfig {
        report_every: Duration::from_secs(2),
        ..GuardConfig::default()
    };
    let uas = Arc::new(
        SipEndpoint::bind_with("127.0.0.1:0".parse().unwrap(), "callee", None, Some(guard))
            .await
            .unwrap(),
    );
    // The callee answers our caller and turns everyone else away (as a dialer does).
    let mut incoming = uas.incoming().unwrap();
    let callee_prompt: Arc<[i16]> = melody(8.0, 3).into();
    let served = {
        let uas = uas.clone();
        let opts = MediaOptions {
            play: Some(callee_prompt),
            max_duration: Duration::from_secs(20),
            ..MediaOptions::default()
        };
        tokio::spawn(async move {
            let mut reports = Vec::new();
            let mut tasks = Vec::new();
            while let Some(inc) = incoming.recv().await {
                if !inc.from.contains("sip:caller@") {
                    let _ = uas.reject(inc.call, 603);
                    continue;
                }
                let (uas, opts) = (uas.clone(), opts.clone());
                tasks.push(tokio::spawn(async move {
                    call::serve_incoming(&uas, inc, Duration::from_millis(100), &opts, &mut |_| {})
                        .await
                }));
                if tasks.len() == 4 {
                    break;
                }
            }
            for t in tasks {
                reports.push(t.await.unwrap().unwrap());
            }
            reports
        })
    };

    let ip = |last: u8| IpAddr::from([127, 0, 0, last]);
    let flood = Flood::start(
        uas.local_addr(),
        &[
            Source {
                kind: Kind::Invite,
                ip: ip(2),
                rate: RATE,
            },
            Source {
                kind: Kind::Options,
                ip: ip(3),
                rate: RATE,
            },
            Source {
                kind: Kind::Garbage,
                ip: ip(4),
                rate: RATE,
            },
            Source {
                kind: Kind::TcpHold,
                ip: ip(5),
                rate: 100,
            },
        ],
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Four live calls, 8 s of audio each way, placed while the flood is on.
    let uac = Arc::new(
        SipEndpoint::bind("127.0.0.1:0".parse().unwrap(), "caller", None)
            .await
            .unwrap(),
    );
    let caller_prompt: Arc<[i16]> = melody(8.0, 5).into();
    let mut calls = Vec::new();
    for _ in 0..4 {
        let uac = uac.clone();
        let mut opts = CallOptions::new(format!("sip:callee@{}", uas.local_addr()));
        opts.media.play = Some(caller_prompt.clone());
        opts.media.hangup_after_play = true;
        calls.push(tokio::spawn(async move {
            call::place_call(&uac, opts, &mut |_| {}).await.unwrap()
        }));
    }
    let t0 = Instant::now();
    let mut ours = Vec::new();
    for c in calls {
        ours.push(c.await.unwrap());
    }
    let call_s = t0.elapsed().as_secs_f64();
    // Long enough for the first held connections to reach the 10 s first-message limit.
    tokio::time::sleep_until((t0 + Duration::from_millis(11_000)).into()).await;
    let outcomes = flood.stop();
    let flood_s = outcomes[0].1.seconds;
    let theirs = tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the callee's side of the calls ended")
        .unwrap();

    for (kind, o) in outcomes.iter().map(|(s, o)| (s.kind, o)) {
        eprintln!(
            "flood {kind:?}: sent {} in {:.1} s ({:.0}/s), answers {:?}, 503 with Retry-After {}, TCP held {} closed {}",
            o.sent,
            o.seconds,
            o.rate(),
            o.responses,
            o.retry_after,
            o.tcp_held,
            o.tcp_closed
        );
    }
    let stats = uas.stats();
    eprintln!("callee endpoint: {stats:?}; calls took {call_s:.1} s");

    // 1. The live calls: answered, whole, no packet lost either way.
    for r in ours.iter().chain(theirs.iter()) {
        assert_eq!(r.outcome, CallOutcome::Answered, "{r:?}");
        assert_eq!(r.rtp.lost, 0, "{r:?}");
        assert!(r.rtp.packets_received >= 390, "{r:?}");
    }
    for r in &ours {
        assert!(r.duration_s > 7.9 && r.duration_s < 9.5, "{r:?}");
        assert_eq!(r.rtp.peer_lost, Some(0), "{r:?}");
    }

    // 2. The floods were real (thousands a second) and got their budget, then silence.
    let of = |k: Kind| &outcomes.iter().find(|(s, _)| s.kind == k).unwrap().1;
    let (inv, opt, bad, tcp) = (
        of(Kind::Invite),
        of(Kind::Options),
        of(Kind::Garbage),
        of(Kind::TcpHold),
    );
    for o in [inv, opt, bad] {
        assert!(o.rate() > 2_000.0, "{o:?}");
    }
    let budget = 20 + (10.0 * flood_s) as u64 + 2;
    let refusals = 5 + (2.0 * flood_s) as u64 + 2;
    // Admitted INVITEs: 100 Trying and our 603 (retransmitted until ACKed: the flood
    // never ACKs, so up to 11 times each over UDP).
    let trying = inv.responses.get(&100).copied().unwrap_or(0);
    assert!(trying >= 20 && trying <= budget, "{inv:?}");
    let r503 = inv.responses.get(&503).copied().unwrap_or(0);
    assert!(r503 >= 5 && r503 <= refusals, "{inv:?}");
    assert_eq!(inv.retry_after, r503, "every 503 carries Retry-After");
    assert!(
        inv.answered() < inv.sent / 100,
        "the INVITE flood was mostly answered with silence: {inv:?}"
    );
    let ok = opt.responses.get(&200).copied().unwrap_or(0);
    assert!(ok >= 20 && ok <= budget, "{opt:?}");
    assert!(
        opt.responses.get(&503).copied().unwrap_or(0) <= refusals,
        "{opt:?}"
    );
    assert_eq!(bad.answered(), 0, "garbage is never answered: {bad:?}");
    // Held TCP connections: at most the per-source cap stays open, the rest are closed at
    // once, and those that said nothing for 10 s are closed.
    assert!(tcp.tcp_held <= TCP_PER_SOURCE as u64, "{tcp:?}");
    assert!(
        tcp.sent > 2 * TCP_PER_SOURCE as u64 && stats.tcp_refused > 0,
        "{tcp:?} {stats:?}"
    );
    assert!(stats.tcp_silent >= TCP_PER_SOURCE as u64, "{stats:?}");

    // 3. Bounded state: the admitted INVITEs became calls (rejected), nothing more.
    assert!(
        stats.guard.admitted <= 3 * budget + 8,
        "admitted {} > {}",
        stats.guard.admitted,
        3 * budget + 8
    );
    assert!(stats.transactions as u64 <= 2 * budget + 20, "{stats:?}");

    // 4. One report when each flood started, one every 2 s while it lasted, one when it
    // ended (2 s of quiet; the sweep runs every 2 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let s = uas.stats();
    assert_eq!(s.guard.floods, 3, "{s:?}");
    // Started, Continuing every 2 s while the flood lasted, Ended.
    let most = 3 * (2 + (flood_s / 2.0).ceil() as u64);
    assert!(
        s.flood_reports >= 6 && s.flood_reports <= most,
        "{} flood reports (at most {most}) for {} + {} + {} datagrams",
        s.flood_reports,
        inv.sent,
        opt.sent,
        bad.sent
    );
    assert_eq!(s.tcp_open, 0, "{s:?}");
}
