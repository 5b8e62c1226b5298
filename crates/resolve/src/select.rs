//! The sans-IO half: which records to ask for (RFC 3263 §4.1/4.2), which NAPTR records a
//! client may follow, the RFC 2782 order of SRV records, and the flat ordered list of
//! targets. Records in, targets out; randomness is a seed; nothing here reads a socket
//! or a clock.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

/// A SIP transport a resolved target may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// Every transport, in the order a client without NAPTR records tries their SRV names.
    pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The NAPTR service field of this transport (RFC 3263 §4.1).
    pub fn naptr_service(self) -> &'static str {
        match self {
            Transport::Udp => "SIP+D2U",
            Transport::Tcp => "SIP+D2T",
            Transport::Tls => "SIPS+D2T",
        }
    }

    pub fn from_naptr_service(s: &str) -> Option<Transport> {
        Transport::ALL
            .into_iter()
            .find(|t| t.naptr_service().eq_ignore_ascii_case(s))
    }

    /// The SRV owner name of this transport for `domain` (RFC 3263 §4.2).
    pub fn srv_name(self, domain: &str) -> String {
        let prefix = match self {
            Transport::Udp => "_sip._udp",
            Transport::Tcp => "_sip._tcp",
            Transport::Tls => "_sips._tcp",
        };
        format!("{prefix}.{}", domain.trim_end_matches('.'))
    }

    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A NAPTR record as the resolver returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Naptr {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub services: String,
    pub replacement: String,
}

/// An SRV record as the resolver returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// What to look up for a next hop (RFC 3263 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// An IP literal or an explicit port: A/AAAA (none for a literal), no SRV.
    Address {
        host: String,
        port: u16,
        transport: Transport,
    },
    /// A transport given in the configuration: SRV of that transport, then A/AAAA.
    Srv {
        domain: String,
        transport: Transport,
    },
    /// Nothing given: NAPTR, else SRV per supported transport, else A/AAAA on 5060/UDP.
    Naptr { domain: String },
}

/// The lookups for `host` with an optional explicit `port` and `transport`.
pub fn plan(host: &str, port: Option<u16>, transport: Option<Transport>) -> Plan {
    let literal = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .is_ok();
    if literal || port.is_some() {
        let transport = transport.unwrap_or(Transport::Udp);
        return Plan::Address {
            host: host.to_string(),
            port: port.unwrap_or(transport.default_port()),
            transport,
        };
    }
    match transport {
        Some(transport) => Plan::Srv {
            domain: host.to_string(),
            transport,
        },
        None => Plan::Naptr {
            domain: host.to_string(),
        },
    }
}

/// The NAPTR records a SIP client follows, best first (order, then preference): flag `s`
/// and a service among `supported`, each with the SRV name (its replacement) to ask for.
/// A transport appears once, from its best record (RFC 3263 §4.1).
pub fn select_naptr<'a>(
    records: &'a [Naptr],
    supported: &[Transport],
) -> Vec<(Transport, &'a Naptr)> {
    let mut usable: Vec<(Transport, &Naptr)> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s"))
        .filter(|r| !r.replacement.trim_end_matches('.').is_empty())
        .filter_map(|r| {
            let t = Transport::from_naptr_service(&r.services)?;
            supported.contains(&t).then_some((t, r))
        })
        .collect();
    usable.sort_by_key(|(_, r)| (r.order, r.preference));
    let mut seen = Vec::new();
    usable.retain(|(t, _)| {
        let first = !seen.contains(t);
        seen.push(*t);
        first
    });
    usable
}

/// SplitMix64: the seed's stream of random numbers.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    fn upto(&mut self, max: u64) -> u64 {
        self.next() % (max + 1)
    }
}

/// The order in which to contact SRV targets (RFC 2782): priority ascending; within a
/// priority, each next target drawn with probability proportional to its weight (weight
/// 0 only when nothing heavier is left, as the RFC's running sum gives). A lone record
/// with target `.` means "no service here": no targets.
pub fn order_srv(records: &[Srv], seed: u64) -> Vec<Srv> {
    if records.len() == 1 && records[0].target.trim_end_matches('.').is_empty() {
        return Vec::new();
    }
    let mut draws = Draws(seed);
    let mut sorted: Vec<&Srv> = records
        .iter()
        .filter(|r| !r.target.trim_end_matches('.').is_empty())
        .collect();
    sorted.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(sorted.len());
    for group in sorted.chunk_by(|a, b| a.priority == b.priority) {
        // RFC 2782: zero-weight records first, then the running-sum draw.
        let mut left: Vec<&Srv> = group.iter().filter(|r| r.weight == 0).copied().collect();
        left.extend(group.iter().filter(|r| r.weight > 0).copied());
        while !left.is_empty() {
            let total: u64 = left.iter().map(|r| u64::from(r.weight)).sum();
            let pick = draws.upto(total);
            let mut sum = 0u64;
            let mut chosen = left.len() - 1;
            for (i, r) in left.iter().enumerate() {
                sum += u64::from(r.weight);
                if sum >= pick {
                    chosen = i;
                    break;
                }
            }
            out.push(left.remove(chosen).clone());
        }
    }
    out
}

/// One step of the record chain that produced a target, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum Step {
    Naptr {
        name: String,
        #[serde(flatten)]
        record: Naptr,
    },
    Srv {
        name: String,
        #[serde(flatten)]
        record: Srv,
    },
    /// An A or AAAA answer (or the literal itself).
    Address { name: String, ip: IpAddr },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Naptr { name, record: r } => write!(
                f,
                "NAPTR {name} {} {} \"{}\" \"{}\" {}",
                r.order, r.preference, r.flags, r.services, r.replacement
            ),
            Step::Srv { name, record: r } => write!(
                f,
                "SRV {name} {} {} {} {}",
                r.priority, r.weight, r.port, r.target
            ),
            Step::Address { name, ip } if name.parse::<IpAddr>().is_ok() => {
                write!(f, "{ip} (IP literal, no DNS)")
            }
            Step::Address { name, ip } => {
                let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
                write!(f, "{kind} {name} {ip}")
            }
        }
    }
}

/// A place to send requests to, with the records that led there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub addr: SocketAddr,
    pub transport: Transport,
    pub chain: Vec<Step>,
}

/// An SRV record and the addresses of its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SrvHost {
    pub record: Srv,
    pub ips: Vec<IpAddr>,
}

/// What the lookups found for one transport: the SRV set (weights kept, so every
/// [`Resolved::targets`] draws the order anew) or a plain host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Found {
    Srv {
        transport: Transport,
        naptr: Option<(String, Naptr)>,
        name: String,
        hosts: Vec<SrvHost>,
    },
    Host {
        transport: Transport,
        name: String,
        port: u16,
        ips: Vec<IpAddr>,
    },
}

/// The outcome of resolving a next hop: the found sets in preference order, and the
/// smallest TTL seen (seconds), after which it should be resolved again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub found: Vec<Found>,
    pub ttl_s: u32,
}

impl Resolved {
    /// Every target, in the order to try them: sets in preference order; within an SRV
    /// set the RFC 2782 order drawn with `seed`; within a host its addresses in the
    /// order the resolver gave.
    pub fn targets(&self, seed: u64) -> Vec<Target> {
        let mut out = Vec::new();
        for f in &self.found {
            match f {
                Found::Host {
                    transport,
                    name,
                    port,
                    ips,
                } => {
                    for ip in ips {
                        out.push(Target {
                            addr: SocketAddr::new(*ip, *port),
                            transport: *transport,
                            chain: vec![Step::Address {
                                name: name.clone(),
                                ip: *ip,
                            }],
                        });
                    }
                }
                Found::Srv {
                    transport,
                    naptr,
                    name,
                    hosts,
                } => {
                    let records: Vec<Srv> = hosts.iter().map(|h| h.record.clone()).collect();
                    for srv in order_srv(&records, seed) {
                        let Some(h) = hosts.iter().find(|h| h.record == srv) else {
                            continue;
                        };
                        for ip in &h.ips {
                            let mut chain = Vec::with_capacity(3);
                            if let Some((n, r)) = naptr {
                                chain.push(Step::Naptr {
                                    name: n.clone(),
                                    record: r.clone(),
                                });
                            }
                            chain.push(Step::Srv {
                                name: name.clone(),
                                record: srv.clone(),
                            });
                            chain.push(Step::Address {
                                name: srv.target.trim_end_matches('.').to_string(),
                                ip: *ip,
                            });
                            out.push(Target {
                                addr: SocketAddr::new(*ip, srv.port),
                                transport: *transport,
                                chain,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    fn naptr(order: u16, preference: u16, flags: &str, services: &str, repl: &str) -> Naptr {
        Naptr {
            order,
            preference,
            flags: flags.into(),
            services: services.into(),
            replacement: repl.into(),
        }
    }

    #[test]
    fn plans_follow_rfc_3263() {
        assert_eq!(
            plan("10.0.0.1", None, None),
            Plan::Address {
                host: "10.0.0.1".into(),
                port: 5060,
                transport: Transport::Udp
            }
        );
        assert_eq!(
            plan("::1", None, Some(Transport::Tls)),
            Plan::Address {
                host: "::1".into(),
                port: 5061,
                transport: Transport::Tls
            }
        );
        assert_eq!(
            plan("sip.example.com", Some(5070), None),
            Plan::Address {
                host: "sip.example.com".into(),
                port: 5070,
                transport: Transport::Udp
            }
        );
        assert_eq!(
            plan("sip.example.com", None, Some(Transport::Tcp)),
            Plan::Srv {
                domain: "sip.example.com".into(),
                transport: Transport::Tcp
            }
        );
        assert_eq!(
            plan("sip.example.com", None, None),
            Plan::Naptr {
                domain: "sip.example.com".into()
            }
        );
        assert_eq!(
            Transport::Tls.srv_name("example.com."),
            "_sips._tcp.example.com"
        );
    }

    #[test]
    fn naptr_keeps_supported_sip_services_in_order() {
        let recs = vec![
            naptr(20, 10, "s", "SIP+D2U", "_sip._udp.x."),
            naptr(10, 20, "s", "SIP+D2T", "_sip._tcp.x."),
            naptr(10, 10, "s", "SIPS+D2T", "_sips._tcp.x."),
            naptr(5, 5, "u", "E2U+sip", "."),
            naptr(30, 5, "s", "SIP+D2U", "_other._udp.x."),
        ];
        let got: Vec<(Transport, &str)> = select_naptr(&recs, &Transport::ALL)
            .into_iter()
            .map(|(t, r)| (t, r.replacement.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Transport::Tls, "_sips._tcp.x."),
                (Transport::Tcp, "_sip._tcp.x."),
                (Transport::Udp, "_sip._udp.x."),
            ]
        );
        let no_tls = select_naptr(&recs, &[Transport::Udp, Transport::Tcp]);
        assert_eq!(no_tls[0].0, Transport::Tcp);
        assert_eq!(no_tls.len(), 2);
    }

    #[test]
    fn srv_priority_first_and_dot_means_no_service() {
        let recs = vec![
            srv(20, 0, 1, "c."),
            srv(10, 5, 2, "a."),
            srv(10, 5, 3, "b."),
        ];
        for seed in 0..50 {
            let o = order_srv(&recs, seed);
            assert_eq!(o.len(), 3);
            assert_eq!(o[2].target, "c.");
        }
        assert!(order_srv(&[srv(0, 0, 0, ".")], 7).is_empty());
    }

    #[test]
    fn srv_weights_share_the_first_place() {
        let recs = vec![
            srv(10, 60, 1, "a."),
            srv(10, 30, 2, "b."),
            srv(10, 10, 3, "c."),
        ];
        let mut first = [0u32; 3];
        let n = 20_000;
        for seed in 0..n {
            let o = order_srv(&recs, seed);
            first[usize::from(o[0].port - 1)] += 1;
        }
        // Expected shares of the running-sum draw over 0..=100: a 61/101, b 30/101, c 10/101.
        let share = |i: usize| f64::from(first[i]) / n as f64;
        assert!((share(0) - 61.0 / 101.0).abs() < 0.02, "{first:?}");
        assert!((share(1) - 30.0 / 101.0).abs() < 0.02, "{first:?}");
        assert!((share(2) - 10.0 / 101.0).abs() < 0.02, "{first:?}");
    }

    #[test]
    fn targets_carry_their_record_chain() {
        let r = Resolved {
            found: vec![Found::Srv {
                transport: Transport::Udp,
                naptr: Some(("x".into(), naptr(10, 10, "s", "SIP+D2U", "_sip._udp.x."))),
                name: "_sip._udp.x".into(),
                hosts: vec![SrvHost {
                    record: srv(10, 1, 5070, "a.x."),
                    ips: vec!["127.0.0.1".parse().unwrap()],
                }],
            }],
            ttl_s: 60,
        };
        let t = r.targets(1);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].addr, "127.0.0.1:5070".parse().unwrap());
        let lit = Step::Address {
            name: "10.0.0.1".into(),
            ip: "10.0.0.1".parse().unwrap(),
        };
        assert_eq!(lit.to_string(), "10.0.0.1 (IP literal, no DNS)");
        let chain: Vec<String> = t[0].chain.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            chain,
            vec![
                "NAPTR x 10 10 \"s\" \"SIP+D2U\" _sip._udp.x.",
                "SRV _sip._udp.x 10 1 5070 a.x.",
                "A a.x 127.0.0.1",
            ]
        );
    }

    proptest! {
        /// Whatever the records and the seed: every usable record comes out once, in
        /// ascending priority.
        #[test]
        fn srv_order_is_a_priority_sorted_permutation(
            recs in proptest::collection::vec((0u16..4, 0u16..100, 1u16..100), 0..12),
            seed in any::<u64>(),
        ) {
            let recs: Vec<Srv> = recs
                .iter()
                .enumerate()
                .map(|(i, (p, w, port))| srv(*p, *w, *port, &format!("h{i}.")))
                .collect();
            let o = order_srv(&recs, seed);
            prop_assert_eq!(o.len(), recs.len());
            prop_assert!(o.windows(2).all(|w| w[0].priority <= w[1].priority));
            for r in &recs {
                prop_assert_eq!(o.iter().filter(|x| *x == r).count(), 1);
            }
        }

        /// NAPTR selection never returns an unsupported or repeated transport, and is
        /// sorted by (order, preference).
        #[test]
        fn naptr_selection_is_sorted_and_supported(
            recs in proptest::collection::vec(
                (0u16..5, 0u16..5, prop_oneof!["s", "S", "u", ""], prop_oneof!["SIP+D2U", "SIP+D2T", "SIPS+D2T", "SIP+D2S", "E2U"]),
                0..10,
            ),
            udp in any::<bool>(),
        ) {
            let recs: Vec<Naptr> = recs
                .into_iter()
                .map(|(o, p, f, s)| naptr(o, p, &f, &s, "_x._y.z."))
                .collect();
            let supported: Vec<Transport> = if udp { Transport::ALL.to_vec() } else { vec![Transport::Tcp] };
            let sel = select_naptr(&recs, &supported);
            prop_assert!(sel.windows(2).all(|w| (w[0].1.order, w[0].1.preference) <= (w[1].1.order, w[1].1.preference)));
            for (i, (t, r)) in sel.iter().enumerate() {
                prop_assert!(supported.contains(t));
                prop_assert!(r.flags.eq_ignore_ascii_case("s"));
                prop_assert!(sel[..i].iter().all(|(u, _)| u != t));
            }
        }
    }
}
