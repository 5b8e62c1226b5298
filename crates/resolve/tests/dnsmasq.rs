//! RFC 3263 resolution against a real DNS server: dnsmasq on a loopback port, started by
//! the test with NAPTR, SRV and A records for `waihu.test` (Debian `dnsmasq-base`,
//! scripts/deps/sip.apt). A missing dnsmasq skips, and fails under `CI`.

use std::net::SocketAddr;

use waihu_resolve::dns::Resolver;
use waihu_resolve::{Step, Transport};
use waihu_testkit::dnsmasq::Dnsmasq;

const RECORDS: &[&str] = &[
    // carrier: TLS first, then TCP, then UDP.
    "--naptr-record=carrier.waihu.test,5,50,s,SIPS+D2T,,_sips._tcp.carrier.waihu.test",
    "--naptr-record=carrier.waihu.test,10,50,s,SIP+D2T,,_sip._tcp.carrier.waihu.test",
    "--naptr-record=carrier.waihu.test,20,50,s,SIP+D2U,,_sip._udp.carrier.waihu.test",
    "--naptr-record=carrier.waihu.test,30,50,u,E2U+sip,!^.*$!sip:x@y!,",
    "--srv-host=_sips._tcp.carrier.waihu.test,a.waihu.test,5061,10,1",
    "--srv-host=_sip._tcp.carrier.waihu.test,b.waihu.test,5072,10,1",
    "--srv-host=_sip._udp.carrier.waihu.test,a.waihu.test,5070,10,60",
    "--srv-host=_sip._udp.carrier.waihu.test,b.waihu.test,5071,10,30",
    "--srv-host=_sip._udp.carrier.waihu.test,c.waihu.test,5073,10,10",
    "--srv-host=_sip._udp.carrier.waihu.test,d.waihu.test,5074,20,0",
    "--host-record=carrier.waihu.test,127.0.0.5",
    "--host-record=a.waihu.test,127.0.0.1",
    "--host-record=b.waihu.test,127.0.0.2",
    "--host-record=c.waihu.test,127.0.0.3",
    "--host-record=d.waihu.test,127.0.0.4",
    // srvonly: no NAPTR, SRV for TCP only.
    "--srv-host=_sip._tcp.srvonly.waihu.test,b.waihu.test,5080,0,0",
    // plain: an A record only.
    "--host-record=plain.waihu.test,127.0.0.6",
];

fn start() -> Option<(Dnsmasq, Resolver)> {
    let dns = Dnsmasq::start("waihu.test", RECORDS)?;
    let r = Resolver::new(Some(dns.addr)).unwrap();
    Some((dns, r))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn naptr_then_srv_then_a_in_order_skipping_unsupported_transports() {
    let Some((_dns, r)) = start() else { return };
    rt().block_on(async {
        let udp_tcp = [Transport::Udp, Transport::Tcp];
        let found = r
            .resolve("carrier.waihu.test", None, None, &udp_tcp)
            .await
            .unwrap();
        assert!(
            (1..=30).contains(&found.ttl_s),
            "dnsmasq's --local-ttl: {}",
            found.ttl_s
        );
        let t = found.targets(7);
        // NAPTR order: TCP (10) before UDP (20); TLS (5) is not supported here.
        assert_eq!(t.len(), 5, "{t:#?}");
        assert_eq!(
            (t[0].transport, t[0].addr),
            (Transport::Tcp, addr("127.0.0.2:5072"))
        );
        assert!(t[1..].iter().all(|x| x.transport == Transport::Udp));
        assert_eq!(t[4].addr, addr("127.0.0.4:5074"), "priority 20 comes last");
        let chain: Vec<String> = t[0].chain.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            chain,
            vec![
                "NAPTR carrier.waihu.test 10 50 \"s\" \"SIP+D2T\" _sip._tcp.carrier.waihu.test.",
                "SRV _sip._tcp.carrier.waihu.test 10 1 5072 b.waihu.test.",
                "A b.waihu.test 127.0.0.2",
            ]
        );
        // With TLS supported, the NAPTR's first choice leads.
        let all = r
            .resolve("carrier.waihu.test", None, None, &Transport::ALL)
            .await
            .unwrap();
        let t = all.targets(7);
        assert_eq!(
            (t[0].transport, t[0].addr),
            (Transport::Tls, addr("127.0.0.1:5061"))
        );
        assert!(
            matches!(&t[0].chain[0], Step::Naptr { record, .. } if record.services == "SIPS+D2T")
        );
    });
}

#[test]
fn srv_priority_and_weights_over_many_draws() {
    let Some((_dns, r)) = start() else { return };
    rt().block_on(async {
        let found = r
            .resolve(
                "carrier.waihu.test",
                None,
                Some(Transport::Udp),
                &Transport::ALL,
            )
            .await
            .unwrap();
        let n = 10_000u64;
        let mut first = std::collections::HashMap::new();
        for seed in 0..n {
            let t = found.targets(seed);
            assert_eq!(t.len(), 4);
            assert!(t.iter().all(|x| x.transport == Transport::Udp));
            assert_eq!(t[3].addr, addr("127.0.0.4:5074"), "priority 20 always last");
            *first.entry(t[0].addr.port()).or_insert(0u64) += 1;
        }
        // Running-sum draw over 0..=100 (weights 60/30/10): 61, 30 and 10 in 101.
        for (port, expected) in [(5070u16, 61.0), (5071, 30.0), (5073, 10.0)] {
            let share = first[&port] as f64 / n as f64;
            assert!(
                (share - expected / 101.0).abs() < 0.02,
                "{port}: {share} ({first:?})"
            );
        }
    });
}

#[test]
fn explicit_transport_asks_that_transports_srv_only() {
    let Some((_dns, r)) = start() else { return };
    rt().block_on(async {
        let t = r
            .resolve(
                "carrier.waihu.test",
                None,
                Some(Transport::Tcp),
                &Transport::ALL,
            )
            .await
            .unwrap()
            .targets(1);
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].transport, t[0].addr),
            (Transport::Tcp, addr("127.0.0.2:5072"))
        );
        assert!(
            matches!(t[0].chain[0], Step::Srv { .. }),
            "no NAPTR step: {t:?}"
        );
        // No NAPTR at srvonly: SRV per transport finds TCP.
        let t = r
            .resolve("srvonly.waihu.test", None, None, &Transport::ALL)
            .await
            .unwrap()
            .targets(1);
        assert_eq!(
            (t[0].transport, t[0].addr),
            (Transport::Tcp, addr("127.0.0.2:5080"))
        );
        // Neither NAPTR nor SRV: A on 5060 over UDP.
        let t = r
            .resolve("plain.waihu.test", None, None, &Transport::ALL)
            .await
            .unwrap()
            .targets(1);
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].transport, t[0].addr),
            (Transport::Udp, addr("127.0.0.6:5060"))
        );
    });
}

#[test]
fn ip_literals_and_explicit_ports_bypass_srv() {
    let Some((_dns, r)) = start() else { return };
    rt().block_on(async {
        // An explicit port: the carrier's A record, not its SRV targets.
        let t = r
            .resolve("carrier.waihu.test", Some(5080), None, &Transport::ALL)
            .await
            .unwrap()
            .targets(1);
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].transport, t[0].addr),
            (Transport::Udp, addr("127.0.0.5:5080"))
        );
        assert_eq!(t[0].chain.len(), 1);
        // A literal needs no DNS at all: a resolver pointed at a port nobody answers on
        // still gives it.
        let dead = Resolver::new(Some(addr("127.0.0.1:9"))).unwrap();
        let t = dead
            .resolve("127.0.0.9", None, Some(Transport::Tcp), &Transport::ALL)
            .await
            .unwrap()
            .targets(1);
        assert_eq!(
            (t[0].transport, t[0].addr),
            (Transport::Tcp, addr("127.0.0.9:5060"))
        );
        let t = dead
            .resolve("::1", Some(5070), None, &Transport::ALL)
            .await
            .unwrap()
            .targets(1);
        assert_eq!(t[0].addr, addr("[::1]:5070"));
    });
}

#[test]
fn a_missing_domain_is_a_clear_nxdomain_error() {
    let Some((_dns, r)) = start() else { return };
    rt().block_on(async {
        let e = r
            .resolve("nope.waihu.test", None, None, &Transport::ALL)
            .await
            .unwrap_err();
        assert_eq!(e.name, "nope.waihu.test");
        assert!(e.to_string().contains("NXDOMAIN"), "{e}");
        let e = r
            .resolve("nope.waihu.test", Some(5060), None, &Transport::ALL)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("NXDOMAIN"), "{e}");
    });
}
