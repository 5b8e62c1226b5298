//! The flood guard: which out-of-dialog requests a [`UserAgent`](crate::UserAgent) takes on,
//! per source address, and how a flood is reported. Sans-IO like the rest of the crate: time
//! is an input, and the guard only answers "admit", "refuse" (503 with Retry-After) or "drop".
//!
//! A dialer's SIP port faces carriers and, on a public address, anyone. Each request that
//! opens a transaction costs memory until its timers end (32 s over UDP), and each INVITE may
//! become a call; an unbounded stream of them from one host would starve the live calls of
//! CPU and grow memory without limit. The guard bounds both:
//!
//! - **Per source IP, a token bucket** for requests that open a new server transaction
//!   (new INVITE, OPTIONS, REGISTER, stray BYE/INFO, anything outside a known dialog).
//!   Retransmissions and requests inside a dialog we know are not charged.
//! - **Beyond the bucket, 503 with `Retry-After`**, itself limited per source (a second
//!   bucket): a flood is answered a few times a second and otherwise **dropped silently**,
//!   so answering never costs more than the flood.
//! - **Malformed datagrams** are always dropped (they cannot be answered); a source that
//!   sends more than a few a second is **muted** for a while: its datagrams are dropped
//!   before they are parsed.
//! - **Trusted sources** (the addresses we send requests to — the trunks — and any the
//!   runtime names) are never limited or muted; only the global overload limits (the agent's
//!   own caps on transactions and unanswered incoming calls) apply to them.
//! - **Memory is bounded**: at most `max_sources` sources are tracked; beyond that new
//!   sources share one bucket.
//! - **A flood is one report, not a line per packet**: a [`FloodReport`] when a source first
//!   goes over its budget, one every `report_every` while it lasts (running totals), and a
//!   last one when it has been quiet for `report_every`.
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Limits of the flood guard. The defaults suit a dialer: carriers are trusted by being
/// called, anything else that opens more than 10 transactions a second is not a phone.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// New out-of-dialog requests per second from one untrusted IP address…
    pub rate: f64,
    /// …with this many at once.
    pub burst: f64,
    /// 503 answers per second to one source over its budget (the rest are dropped).
    pub refusal_rate: f64,
    pub refusal_burst: f64,
    /// Malformed datagrams per second from one source before it is muted…
    pub malformed_rate: f64,
    pub malformed_burst: f64,
    /// …for this long.
    pub mute_for: Duration,
    /// `Retry-After` of the 503 answers.
    pub retry_after: Duration,
    /// Server transactions alive at once; beyond, new requests are refused (503) from anyone.
    pub max_server_transactions: usize,
    /// Incoming calls not yet answered or rejected; beyond, new INVITEs are refused.
    pub max_pending_incoming: usize,
    /// Sources tracked at once (beyond, new sources share one bucket).
    pub max_sources: usize,
    /// How often a flood is reported while it lasts, and how long it must be quiet to end.
    pub report_every: Duration,
    /// How long a destination we sent a request to stays trusted.
    pub trust_for: Duration,
    /// Sources trusted from the start (a Kamailio edge, a carrier's inbound gateways).
    pub trusted: Vec<IpAddr>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            rate: 10.0,
            burst: 20.0,
            refusal_rate: 2.0,
            refusal_burst: 5.0,
            malformed_rate: 2.0,
            malformed_burst: 10.0,
            mute_for: Duration::from_secs(30),
            retry_after: Duration::from_secs(10),
            max_server_transactions: 4096,
            max_pending_incoming: 256,
            max_sources: 4096,
            report_every: Duration::from_secs(10),
            trust_for: Duration::from_secs(3600),
            // The loopback address is this machine (a local Kamailio edge, the operator's
            // tools); packets from outside cannot carry it (Linux drops them as martians).
            trusted: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        }
    }
}

/// What to do with one new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Answer 503 with `Retry-After` without creating a transaction.
    Refuse,
    /// Say nothing.
    Drop,
}

/// One source's flood: its start, its running totals, its end.
#[derive(Debug, Clone, PartialEq)]
pub struct FloodReport {
    pub source: IpAddr,
    /// `Started` on the first excess, `Continuing` every `report_every`, `Ended` after quiet.
    pub phase: FloodPhase,
    /// Seconds since the flood started.
    pub seconds: f64,
    /// Since the flood started: requests admitted, refused with 503, dropped unanswered
    /// (over the refusal budget, or while muted), and malformed datagrams.
    pub admitted: u64,
    pub refused: u64,
    pub dropped: u64,
    pub malformed: u64,
    /// Whether the source is muted (malformed traffic) at the time of the report.
    pub muted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodPhase {
    Started,
    Continuing,
    Ended,
}

/// Running totals of the guard since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    pub admitted: u64,
    pub refused: u64,
    pub dropped: u64,
    pub malformed: u64,
    /// Floods reported as started.
    pub floods: u64,
    /// Sources tracked now.
    pub sources: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone)]
struct Flood {
    started: Instant,
    last_excess: Instant,
    /// Whether the start has been reported (a stray malformed datagram is not announced).
    announced: bool,
    next_report: Instant,
    admitted: u64,
    refused: u64,
    dropped: u64,
    malformed: u64,
}

#[derive(Debug, Clone)]
struct Source {
    requests: Bucket,
    refusals: Bucket,
    bad: Bucket,
    last_seen: Instant,
    muted_until: Option<Instant>,
    flood: Option<Flood>,
}

/// The key new sources share once `max_sources` are tracked.
const OVERFLOW: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Per-source admission and flood reports. See the module docs.
#[derive(Debug)]
pub struct Guard {
    cfg: GuardConfig,
    limits: Limits,
    sources: HashMap<IpAddr, Source>,
    /// Trusted until the instant (configured ones: forever).
    trusted: HashMap<IpAddr, Option<Instant>>,
    reports: VecDeque<FloodReport>,
    stats: GuardStats,
    next_sweep: Option<Instant>,
}

/// The numbers of [`GuardConfig`] the per-request path needs (copied, so no allocation).
#[derive(Debug, Clone, Copy)]
struct Limits {
    rate: f64,
    burst: f64,
    refusal_rate: f64,
    refusal_burst: f64,
    malformed_rate: f64,
    malformed_burst: f64,
    mute_for: Duration,
}

impl Limits {
    fn of(c: &GuardConfig) -> Limits {
        Limits {
            rate: c.rate,
            burst: c.burst,
            refusal_rate: c.refusal_rate,
            refusal_burst: c.refusal_burst,
            malformed_rate: c.malformed_rate,
            malformed_burst: c.malformed_burst,
            mute_for: c.mute_for,
        }
    }
}

enum Charge {
    Request,
    Malformed,
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Guard {
        let trusted = cfg.trusted.iter().map(|ip| (*ip, None)).collect();
        Guard {
            limits: Limits::of(&cfg),
            cfg,
            sources: HashMap::new(),
            trusted,
            reports: VecDeque::new(),
            stats: GuardStats::default(),
            next_sweep: None,
        }
    }

    pub fn config(&self) -> &GuardConfig {
        &self.cfg
    }

    /// Trusts `ip` (we sent it a request) for `trust_for` from `now`.
    pub fn trust_peer(&mut self, now: Instant, ip: IpAddr) {
        let until = now + self.cfg.trust_for;
        match self.trusted.get_mut(&ip) {
            Some(None) => {}
            Some(Some(u)) => *u = (*u).max(until),
            None => {
                // Bounded like the sources: when full, forget the trust that ends first.
                if self.trusted.len() >= self.cfg.max_sources {
                    let oldest = self
                        .trusted
                        .iter()
                        .filter_map(|(ip, u)| u.map(|u| (u, *ip)))
                        .min();
                    match oldest {
                        Some((_, o)) => {
                            self.trusted.remove(&o);
                        }
                        None => return,
                    }
                }
                self.trusted.insert(ip, Some(until));
            }
        }
        self.sources.remove(&ip);
    }

    pub fn is_trusted(&self, now: Instant, ip: IpAddr) -> bool {
        match self.trusted.get(&ip) {
            Some(None) => true,
            Some(Some(until)) => now < *until,
            None => false,
        }
    }

    /// Whether everything from `ip` is to be dropped unparsed now (it sent too much garbage).
    /// Counts the drop.
    pub fn muted(&mut self, now: Instant, ip: IpAddr) -> bool {
        let Some(s) = self.sources.get_mut(&ip) else {
            return false;
        };
        match s.muted_until {
            Some(u) if now < u => {
                s.last_seen = now;
                self.stats.dropped += 1;
                let f = s.flood.get_or_insert_with(|| Flood::new(now));
                f.dropped += 1;
                f.last_excess = now;
                true
            }
            Some(_) => {
                s.muted_until = None;
                false
            }
            None => false,
        }
    }

    /// A datagram from `ip` that is not a SIP message (whitespace keep-alives excluded by
    /// the caller). Too many in a row mute the source.
    pub fn malformed(&mut self, now: Instant, ip: IpAddr) {
        self.stats.malformed += 1;
        if self.is_trusted(now, ip) {
            return;
        }
        self.charge(now, ip, Charge::Malformed);
    }

    /// A request from `ip` that would open a new server transaction.
    pub fn request(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        if self.is_trusted(now, ip) {
            self.stats.admitted += 1;
            return Verdict::Admit;
        }
        self.charge(now, ip, Charge::Request)
    }

    /// A request [`request`](Self::request) admitted that the agent cannot take after all
    /// (it is over a global limit): counted as refused or dropped instead.
    pub fn overruled(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        self.stats.admitted = self.stats.admitted.saturating_sub(1);
        if let Some(f) = self
            .sources
            .get_mut(&ip)
            .and_then(|s| s.flood.as_mut())
            .filter(|f| f.admitted > 0)
        {
            f.admitted -= 1;
        }
        self.overloaded(now, ip)
    }

    /// A new request from `ip` while the agent is over one of its global limits: refused
    /// within the source's refusal budget, dropped beyond it. Trusted sources are refused
    /// (503 is the right answer to a carrier when we are full) but never dropped.
    pub fn overloaded(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        if self.is_trusted(now, ip) {
            self.stats.refused += 1;
            return Verdict::Refuse;
        }
        let cfg = self.limits;
        let s = self.source(now, ip);
        let v = if s.refusals.take(now, cfg.refusal_rate, cfg.refusal_burst) {
            Verdict::Refuse
        } else {
            Verdict::Drop
        };
        self.count(now, ip, v);
        v
    }

    fn source(&mut self, now: Instant, ip: IpAddr) -> &mut Source {
        let key = if self.sources.contains_key(&ip) || self.sources.len() < self.cfg.max_sources {
            ip
        } else {
            OVERFLOW
        };
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + self.cfg.report_every);
        }
        let cfg = self.limits;
        let s = self.sources.entry(key).or_insert_with(|| Source {
            requests: Bucket::full(cfg.burst, now),
            refusals: Bucket::full(cfg.refusal_burst, now),
            bad: Bucket::full(cfg.malformed_burst, now),
            last_seen: now,
            muted_until: None,
            flood: None,
        });
        s.last_seen = now;
        s
    }

    fn key(&self, ip: IpAddr) -> IpAddr {
        if self.sources.contains_key(&ip) {
            ip
        } else {
            OVERFLOW
        }
    }

    fn charge(&mut self, now: Instant, ip: IpAddr, what: Charge) -> Verdict {
        let cfg = self.limits;
        let s = self.source(now, ip);
        match what {
            Charge::Malformed => {
                if !s.bad.take(now, cfg.malformed_rate, cfg.malformed_burst) {
                    s.muted_until = Some(now + cfg.mute_for);
                }
                // A stray bad datagram is not a flood; a muted source is.
                let f = s.flood.get_or_insert_with(|| Flood::new(now));
                f.malformed += 1;
                let muted = s.muted_until.is_some();
                if muted {
                    f.last_excess = now;
                }
                self.announce(now, ip, muted);
                Verdict::Drop
            }
            Charge::Request => {
                let v = if s.requests.take(now, cfg.rate, cfg.burst) {
                    Verdict::Admit
                } else if s.refusals.take(now, cfg.refusal_rate, cfg.refusal_burst) {
                    Verdict::Refuse
                } else {
                    Verdict::Drop
                };
                self.count(now, ip, v);
                v
            }
        }
    }

    fn count(&mut self, now: Instant, ip: IpAddr, v: Verdict) {
        let key = self.key(ip);
        let Some(s) = self.sources.get_mut(&key) else {
            return;
        };
        match v {
            Verdict::Admit => {
                self.stats.admitted += 1;
                if let Some(f) = s.flood.as_mut() {
                    f.admitted += 1;
                }
                return;
            }
            Verdict::Refuse => self.stats.refused += 1,
            Verdict::Drop => self.stats.dropped += 1,
        }
        let f = s.flood.get_or_insert_with(|| Flood::new(now));
        f.last_excess = now;
        match v {
            Verdict::Refuse => f.refused += 1,
            _ => f.dropped += 1,
        }
        self.announce(now, key, true);
    }

    /// Reports a flood's start the first time the source goes over a budget.
    fn announce(&mut self, now: Instant, ip: IpAddr, excess: bool) {
        let key = self.key(ip);
        let Some(s) = self.sources.get_mut(&key) else {
            return;
        };
        let Some(f) = s.flood.as_mut() else { return };
        if excess && !f.announced {
            f.announced = true;
            f.next_report = now + self.cfg.report_every;
            self.stats.floods += 1;
            let r = f.report(key, FloodPhase::Started, now, s.muted_until, now);
            self.reports.push_back(r);
        }
    }

    /// The next report, if any.
    pub fn poll_report(&mut self) -> Option<FloodReport> {
        self.reports.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_sweep
    }

    /// Periodic reports of floods that go on, the last report of those that ended, and the
    /// eviction of sources quiet for a minute.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.next_sweep {
            Some(at) if at <= now => {}
            _ => return,
        }
        let every = self.cfg.report_every;
        let idle = Duration::from_secs(60).max(every * 2);
        let mut gone = Vec::new();
        for (ip, s) in self.sources.iter_mut() {
            if let Some(f) = s.flood.as_mut() {
                let announced = f.announced;
                if now.saturating_duration_since(f.last_excess) >= every {
                    if announced {
                        self.reports.push_back(f.report(
                            *ip,
                            FloodPhase::Ended,
                            now,
                            s.muted_until,
                            f.last_excess,
                        ));
                    }
                    s.flood = None;
                } else if announced && now >= f.next_report {
                    f.next_report = now + every;
                    self.reports.push_back(f.report(
                        *ip,
                        FloodPhase::Continuing,
                        now,
                        s.muted_until,
                        now,
                    ));
                }
            }
            let muted = s.muted_until.is_some_and(|u| now < u);
            if s.flood.is_none() && !muted && now.saturating_duration_since(s.last_seen) >= idle {
                gone.push(*ip);
            }
        }
        for ip in gone {
            self.sources.remove(&ip);
        }
        self.trusted.retain(|_, u| u.is_none_or(|u| now < u));
        self.next_sweep = (!self.sources.is_empty()).then(|| now + every);
    }

    pub fn stats(&self) -> GuardStats {
        GuardStats {
            sources: self.sources.len(),
            ..self.stats
        }
    }
}

impl Flood {
    fn new(now: Instant) -> Flood {
        Flood {
            started: now,
            last_excess: now,
            announced: false,
            next_report: now,
            admitted: 0,
            refused: 0,
            dropped: 0,
            malformed: 0,
        }
    }

    fn report(
        &self,
        source: IpAddr,
        phase: FloodPhase,
        now: Instant,
        muted_until: Option<Instant>,
        until: Instant,
    ) -> FloodReport {
        FloodReport {
            source,
            phase,
            seconds: until.saturating_duration_since(self.started).as_secs_f64(),
            admitted: self.admitted,
            refused: self.refused,
            dropped: self.dropped,
            malformed: self.malformed,
            muted: muted_until.is_some_and(|u| now < u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate_then_refusals_then_silence() {
        let t0 = Instant::now();
        let mut g = Guard::new(GuardConfig::default());
        let verdicts: Vec<Verdict> = (0..100).map(|_| g.request(t0, ip(1))).collect();
        let admitted = verdicts.iter().filter(|v| **v == Verdict::Admit).count();
        let refused = verdicts.iter().filter(|v| **v == Verdict::Refuse).count();
        assert_eq!(admitted, 20);
        assert_eq!(refused, 5);
        assert_eq!(verdicts.len() - admitted - refused, 75);
        // One start report, not a hundred.
        let r = g.poll_report().unwrap();
        assert_eq!((r.phase, r.source), (FloodPhase::Started, ip(1)));
        assert!(g.poll_report().is_none());
        // After a second the bucket holds 10 more; another source was never touched.
        let t1 = t0 + Duration::from_secs(1);
        let more = (0..50)
            .filter(|_| g.request(t1, ip(1)) == Verdict::Admit)
            .count();
        assert_eq!(more, 10);
        assert_eq!(g.request(t1, ip(2)), Verdict::Admit);
    }

    #[test]
    fn a_flood_is_reported_at_start_while_it_lasts_and_at_its_end() {
        let t0 = Instant::now();
        let mut g = Guard::new(GuardConfig::default());
        // 25 s of 1,000 requests a second.
        for ms in 0..25_000u64 {
            let now = t0 + Duration::from_millis(ms);
            g.request(now, ip(7));
            if g.poll_timeout().is_some_and(|t| t <= now) {
                g.handle_timeout(now);
            }
        }
        let t_end = t0 + Duration::from_secs(25);
        for s in 0..30 {
            let now = t_end + Duration::from_secs(s);
            if g.poll_timeout().is_some_and(|t| t <= now) {
                g.handle_timeout(now);
            }
        }
        let reports: Vec<FloodReport> = std::iter::from_fn(|| g.poll_report()).collect();
        let phases: Vec<FloodPhase> = reports.iter().map(|r| r.phase).collect();
        assert_eq!(phases.first(), Some(&FloodPhase::Started));
        assert_eq!(phases.last(), Some(&FloodPhase::Ended));
        assert!(reports.len() <= 5, "{phases:?}");
        let last = reports.last().unwrap();
        assert_eq!(last.admitted + last.refused + last.dropped, 25_000 - 20);
        // Admitted: the burst, then about 10 a second.
        let total = g.stats();
        assert!(
            total.admitted >= 20 + 240 && total.admitted <= 20 + 251,
            "{total:?}"
        );
        assert!(total.refused <= 5 + 2 * 25 + 1, "{total:?}");
        assert!((24.0..=25.0).contains(&last.seconds), "{last:?}");
        // The quiet source is forgotten after a minute.
        g.handle_timeout(t_end + Duration::from_secs(120));
        g.handle_timeout(t_end + Duration::from_secs(200));
        assert_eq!(g.stats().sources, 0);
        assert_eq!(g.poll_timeout(), None);
    }

    #[test]
    fn garbage_mutes_a_source_and_trusted_peers_are_never_limited() {
        let t0 = Instant::now();
        let mut g = Guard::new(GuardConfig::default());
        for _ in 0..11 {
            assert!(!g.muted(t0, ip(3)));
            g.malformed(t0, ip(3));
        }
        assert!(g.muted(t0, ip(3)));
        assert!(g.muted(t0 + Duration::from_secs(29), ip(3)));
        assert!(!g.muted(t0 + Duration::from_secs(31), ip(3)));
        assert_eq!(g.poll_report().map(|r| r.muted), Some(true));

        g.trust_peer(t0, ip(4));
        for _ in 0..1000 {
            g.malformed(t0, ip(4));
            assert_eq!(g.request(t0, ip(4)), Verdict::Admit);
        }
        assert!(!g.muted(t0, ip(4)));
        assert!(g.poll_report().is_none());
        // Trust from being called ends; configured trust does not.
        assert_ne!(
            g.request(t0 + Duration::from_secs(3601), ip(4)),
            Verdict::Drop
        );
        assert!(!g.is_trusted(t0 + Duration::from_secs(3601), ip(4)));
        let g2 = Guard::new(GuardConfig {
            trusted: vec![ip(5)],
            ..GuardConfig::default()
        });
        assert!(g2.is_trusted(t0 + Duration::from_secs(1_000_000), ip(5)));
    }

    #[test]
    fn memory_is_bounded_when_every_request_comes_from_a_new_address() {
        let t0 = Instant::now();
        let mut g = Guard::new(GuardConfig {
            max_sources: 100,
            ..GuardConfig::default()
        });
        let mut admitted = 0;
        for i in 0..100_000u32 {
            let a = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            if g.request(t0, a) == Verdict::Admit {
                admitted += 1;
            }
        }
        // 100 sources with their own burst, then the shared bucket's.
        assert_eq!(admitted, 100 + 20);
        assert_eq!(g.stats().sources, 101);
        for i in 0..10_000u32 {
            g.trust_peer(t0, IpAddr::from((0x0b00_0000u32 + i).to_be_bytes()));
        }
        assert!(g.trusted.len() <= 100);
    }

    #[test]
    fn overload_refuses_within_the_refusal_budget() {
        let t0 = Instant::now();
        let mut g = Guard::new(GuardConfig::default());
        let v: Vec<Verdict> = (0..20).map(|_| g.overloaded(t0, ip(9))).collect();
        assert_eq!(v.iter().filter(|v| **v == Verdict::Refuse).count(), 5);
        g.trust_peer(t0, ip(10));
        assert!((0..20).all(|_| g.overloaded(t0, ip(10)) == Verdict::Refuse));
    }
}
